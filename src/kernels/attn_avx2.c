/* attn_avx2.c: AVX2/FMA twins of attn.c's loops (compiled with -mavx2
 * -mfma by the _avx2.c suffix; used only after cpu.c checked the CPU).
 *
 * Scores: one 8-lane FMA chain per row over d, reduced by a fixed
 * horizontal sum; four rows run side by side only so their chains
 * overlap, and a row alone (a tail) takes the very same steps. Weighted
 * sum: o is held in registers 8 lanes at a time and rows are added in
 * order, so each o[d] sees the same FMA sequence for any n split. */
#include <immintrin.h>

#include "kernels/kern_impl.h"

static inline float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* dot(q, k) with the tail (D % 8) added in order after the vector part. */
static inline float dot_row(const float *q, const float *k, int D)
{
    __m256 a = _mm256_setzero_ps();
    int d = 0;
    for (; d + 8 <= D; d += 8)
        a = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), _mm256_loadu_ps(k + d), a);
    float s = hsum(a);
    for (; d < D; d++)
        s += q[d] * k[d];
    return s;
}

void hp_kern__attn_scores_avx2(const float *q, const float *K, size_t stride,
                               int n, int D, float scale, float *s)
{
    int i = 0;
    if ((D & 7) == 0) {
        for (; i + 4 <= n; i += 4) {
            const float *k0 = K + (size_t)i * stride, *k1 = k0 + stride;
            const float *k2 = k1 + stride, *k3 = k2 + stride;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int d = 0; d < D; d += 8) {
                __m256 qv = _mm256_loadu_ps(q + d);
                a0 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + d), a0);
                a1 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k1 + d), a1);
                a2 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k2 + d), a2);
                a3 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k3 + d), a3);
            }
            s[i] = hsum(a0) * scale;
            s[i + 1] = hsum(a1) * scale;
            s[i + 2] = hsum(a2) * scale;
            s[i + 3] = hsum(a3) * scale;
        }
    }
    for (; i < n; i++)
        s[i] = dot_row(q, K + (size_t)i * stride, D) * scale;
}

void hp_kern__attn_accum_avx2(float *o, const float *w, const float *V,
                              size_t stride, int n, int D)
{
    int d = 0;
    /* 32 outputs at a time: four independent chains per row */
    for (; d + 32 <= D; d += 32) {
        __m256 o0 = _mm256_loadu_ps(o + d), o1 = _mm256_loadu_ps(o + d + 8);
        __m256 o2 = _mm256_loadu_ps(o + d + 16), o3 = _mm256_loadu_ps(o + d + 24);
        for (int i = 0; i < n; i++) {
            const float *v = V + (size_t)i * stride + d;
            __m256 a = _mm256_set1_ps(w[i]);
            o0 = _mm256_fmadd_ps(a, _mm256_loadu_ps(v), o0);
            o1 = _mm256_fmadd_ps(a, _mm256_loadu_ps(v + 8), o1);
            o2 = _mm256_fmadd_ps(a, _mm256_loadu_ps(v + 16), o2);
            o3 = _mm256_fmadd_ps(a, _mm256_loadu_ps(v + 24), o3);
        }
        _mm256_storeu_ps(o + d, o0);
        _mm256_storeu_ps(o + d + 8, o1);
        _mm256_storeu_ps(o + d + 16, o2);
        _mm256_storeu_ps(o + d + 24, o3);
    }
    for (; d + 8 <= D; d += 8) {
        __m256 o0 = _mm256_loadu_ps(o + d);
        for (int i = 0; i < n; i++)
            o0 = _mm256_fmadd_ps(_mm256_set1_ps(w[i]),
                                 _mm256_loadu_ps(V + (size_t)i * stride + d), o0);
        _mm256_storeu_ps(o + d, o0);
    }
    for (; d < D; d++) {
        float acc = o[d];
        for (int i = 0; i < n; i++)
            acc = __builtin_fmaf(w[i], V[(size_t)i * stride + d], acc);
        o[d] = acc;
    }
}
