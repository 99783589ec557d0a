/* ops.c: the small element-wise ops of the forward pass (RMSNorm, softmax,
 * SiLU-gated product). Plain loops: they touch O(dim) values per token and
 * are a rounding error next to the matmuls, so no SIMD twins. The reduction
 * order is fixed, so results never depend on batching. */
#include <math.h>

#include "kernels/kernels.h"

void hp_rmsnorm(float *out, const float *x, const float *w, int n, float eps)
{
    if (out == NULL || x == NULL || w == NULL || n <= 0)
        return;
    float ss = 0.0f;
    for (int i = 0; i < n; i++)
        ss += x[i] * x[i];
    float scale = 1.0f / sqrtf(ss / (float)n + eps);
    for (int i = 0; i < n; i++)
        out[i] = x[i] * scale * w[i];
}

void hp_softmax(float *x, int n)
{
    if (x == NULL || n <= 0)
        return;
    float max = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > max)
            max = x[i];
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    float inv = 1.0f / sum;
    for (int i = 0; i < n; i++)
        x[i] *= inv;
}

void hp_silu_mul(float *x, const float *gate, const float *up, int n)
{
    if (x == NULL || gate == NULL || up == NULL || n <= 0)
        return;
    for (int i = 0; i < n; i++) {
        float g = gate[i];
        x[i] = g / (1.0f + expf(-g)) * up[i];
    }
}
