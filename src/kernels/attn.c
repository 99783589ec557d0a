/* attn.c: the attention inner loops (scores q.K and the weighted sum of V
 * rows) as scalar references, and their public entry points, which go
 * through the dispatch table so the AVX2 twins (attn_avx2.c) are used when
 * the CPU has them. The forward pass owns the cache layout and the softmax;
 * these see only runs of rows. */
#include "kernels/kern_impl.h"
#include "kernels/kernels.h"

void hp_kern__attn_scores_ref(const float *q, const float *K, size_t stride,
                              int n, int D, float scale, float *s)
{
    for (int i = 0; i < n; i++) {
        const float *k = K + (size_t)i * stride;
        float dot = 0.0f;
        for (int d = 0; d < D; d++)
            dot += q[d] * k[d];
        s[i] = dot * scale;
    }
}

void hp_kern__attn_accum_ref(float *o, const float *w, const float *V,
                             size_t stride, int n, int D)
{
    for (int i = 0; i < n; i++) {
        const float *v = V + (size_t)i * stride;
        float a = w[i];
        for (int d = 0; d < D; d++)
            o[d] += a * v[d];
    }
}

void hp_attn_scores(const float *q, const float *K, size_t stride, int n,
                    int D, float scale, float *s)
{
    if (q == NULL || K == NULL || s == NULL || n <= 0 || D <= 0)
        return;
    const hp_kern__impl *im = hp_kern__active();
    if (im->attn_scores != NULL)
        im->attn_scores(q, K, stride, n, D, scale, s);
    else
        hp_kern__attn_scores_ref(q, K, stride, n, D, scale, s);
}

void hp_attn_accum(float *o, const float *w, const float *V, size_t stride,
                   int n, int D)
{
    if (o == NULL || w == NULL || V == NULL || n <= 0 || D <= 0)
        return;
    const hp_kern__impl *im = hp_kern__active();
    if (im->attn_accum != NULL)
        im->attn_accum(o, w, V, stride, n, D);
    else
        hp_kern__attn_accum_ref(o, w, V, stride, n, D);
}
