/* quant_k.c: reference dequantizers and quantizers of Q4_1, Q5_0, Q5_1 and
 * the K-quants Q4_K, Q5_K, Q6_K (layouts in kern_k.h, GGUF byte for byte).
 *
 * Scalar and plain on purpose: the dequantizers define the formats (the
 * SIMD kernels and the NumPy reference are tested against them); the
 * quantizers write test fixtures. They are our own simple min/max
 * quantizers, not ggml's iterative fits: files from other tools decode the
 * same, but we do not promise to write the same bytes they would. Knows
 * blocks and floats only. */
#include <math.h>
#include <string.h>

#include "kernels/kern_k.h"
#include "kernels/kernels.h"

/* float -> int clamped to [lo, hi]; nan -> 0 (a bare cast of an
 * out-of-range float is undefined behaviour). */
static int clampi(float v, int lo, int hi)
{
    if (!(v == v))
        return 0;
    if (v <= (float)lo)
        return lo;
    if (v >= (float)hi)
        return hi;
    return (int)v;
}

/* f16 of v >= 0 rounded up, so scale * 63 (or 127) still covers the range
 * it was computed from and nothing clamps because of the f16 rounding. */
static uint16_t f16_up(float v)
{
    uint16_t h = hp_f32_to_f16(v);
    if (hp_f16_to_f32(h) < v && h < 0x7bff)
        h++;
    return h;
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static void wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* ---- Q4_1 / Q5_1: d = (max - min) / (2^bits - 1), m = min -------------- */

static void minmax(const float *x, int n, float *mn, float *mx)
{
    float lo = x[0], hi = x[0];
    for (int j = 1; j < n; j++) {
        lo = fminf(lo, x[j]);
        hi = fmaxf(hi, x[j]);
    }
    *mn = lo;
    *mx = hi;
}

void hp_kern__deq_q4_1(const void *src, float *dst, int64_t n)
{
    const hp_block_q4_1 *b = src;
    for (int64_t i = 0; i < n / 32; i++) {
        float d = hp_f16_to_f32(b[i].d), m = hp_f16_to_f32(b[i].m);
        float *o = dst + i * 32;
        for (int j = 0; j < 16; j++) {
            o[j] = d * (float)(b[i].qs[j] & 0x0f) + m;
            o[j + 16] = d * (float)(b[i].qs[j] >> 4) + m;
        }
    }
}

void hp_kern__q_q4_1(const float *src, void *dst, int64_t n)
{
    hp_block_q4_1 *b = dst;
    for (int64_t i = 0; i < n / 32; i++) {
        const float *x = src + i * 32;
        float lo, hi;
        minmax(x, 32, &lo, &hi);
        float d = (hi - lo) / 15.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = hp_f32_to_f16(d);
        b[i].m = hp_f32_to_f16(lo);
        for (int j = 0; j < 16; j++) {
            int q0 = clampi((x[j] - lo) * id + 0.5f, 0, 15);
            int q1 = clampi((x[j + 16] - lo) * id + 0.5f, 0, 15);
            b[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

void hp_kern__deq_q5_1(const void *src, float *dst, int64_t n)
{
    const hp_block_q5_1 *b = src;
    for (int64_t i = 0; i < n / 32; i++) {
        float d = hp_f16_to_f32(b[i].d), m = hp_f16_to_f32(b[i].m);
        uint32_t qh = rd32(b[i].qh);
        float *o = dst + i * 32;
        for (int j = 0; j < 16; j++) {
            int q0 = (b[i].qs[j] & 0x0f) | (int)((qh >> j) & 1) << 4;
            int q1 = (b[i].qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
            o[j] = d * (float)q0 + m;
            o[j + 16] = d * (float)q1 + m;
        }
    }
}

void hp_kern__q_q5_1(const float *src, void *dst, int64_t n)
{
    hp_block_q5_1 *b = dst;
    for (int64_t i = 0; i < n / 32; i++) {
        const float *x = src + i * 32;
        float lo, hi;
        minmax(x, 32, &lo, &hi);
        float d = (hi - lo) / 31.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = hp_f32_to_f16(d);
        b[i].m = hp_f32_to_f16(lo);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            int q0 = clampi((x[j] - lo) * id + 0.5f, 0, 31);
            int q1 = clampi((x[j + 16] - lo) * id + 0.5f, 0, 31);
            b[i].qs[j] = (uint8_t)((q0 & 0x0f) | ((q1 & 0x0f) << 4));
            qh |= (uint32_t)(q0 >> 4) << j | (uint32_t)(q1 >> 4) << (j + 16);
        }
        wr32(b[i].qh, qh);
    }
}

/* ---- Q5_0: d = max / -16 (max: the signed value of largest magnitude),
 *      as Q4_0 with one more bit ------------------------------------------ */

void hp_kern__deq_q5_0(const void *src, float *dst, int64_t n)
{
    const hp_block_q5_0 *b = src;
    for (int64_t i = 0; i < n / 32; i++) {
        float d = hp_f16_to_f32(b[i].d);
        uint32_t qh = rd32(b[i].qh);
        float *o = dst + i * 32;
        for (int j = 0; j < 16; j++) {
            int q0 = (b[i].qs[j] & 0x0f) | (int)((qh >> j) & 1) << 4;
            int q1 = (b[i].qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
            o[j] = d * (float)(q0 - 16);
            o[j + 16] = d * (float)(q1 - 16);
        }
    }
}

void hp_kern__q_q5_0(const float *src, void *dst, int64_t n)
{
    hp_block_q5_0 *b = dst;
    for (int64_t i = 0; i < n / 32; i++) {
        const float *x = src + i * 32;
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < 32; j++) {
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        float d = max / -16.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = hp_f32_to_f16(d);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            int q0 = clampi(x[j] * id + 16.5f, 0, 31);
            int q1 = clampi(x[j + 16] * id + 16.5f, 0, 31);
            b[i].qs[j] = (uint8_t)((q0 & 0x0f) | ((q1 & 0x0f) << 4));
            qh |= (uint32_t)(q0 >> 4) << j | (uint32_t)(q1 >> 4) << (j + 16);
        }
        wr32(b[i].qh, qh);
    }
}

/* ---- Q4_K / Q5_K ---------------------------------------------------------- */

void hp_kern__k4_scales(const uint8_t s[12], uint8_t sc[8], uint8_t mn[8])
{
    for (int j = 0; j < 4; j++) {
        sc[j] = s[j] & 63;
        mn[j] = s[j + 4] & 63;
        sc[j + 4] = (uint8_t)((s[j + 8] & 0x0f) | ((s[j] >> 6) << 4));
        mn[j + 4] = (uint8_t)((s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4));
    }
}

void hp_kern__k4_pack(const uint8_t sc[8], const uint8_t mn[8], uint8_t s[12])
{
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
        s[j + 4] = (uint8_t)((mn[j] & 63) | ((mn[j + 4] >> 4) << 6));
        s[j + 8] = (uint8_t)((sc[j + 4] & 0x0f) | ((mn[j + 4] & 0x0f) << 4));
    }
}

/* Element e of a Q4_K/Q5_K super-block: low 4 bits. */
static int k4_low(const uint8_t *qs, int e)
{
    uint8_t v = qs[32 * (e / 64) + e % 32];
    return (e / 32) & 1 ? v >> 4 : v & 0x0f;
}

/* Shared by Q4_K and Q5_K (qh NULL for Q4_K). */
static void deq_k45(uint16_t dh, uint16_t dmh, const uint8_t *scales,
                    const uint8_t *qh, const uint8_t *qs, float *o)
{
    float d = hp_f16_to_f32(dh), dmin = hp_f16_to_f32(dmh);
    uint8_t sc[8], mn[8];
    hp_kern__k4_scales(scales, sc, mn);
    for (int e = 0; e < HP_QK_K; e++) {
        int k = e / 32, q = k4_low(qs, e);
        if (qh)
            q |= ((qh[e % 32] >> k) & 1) << 4;
        o[e] = d * (float)sc[k] * (float)q - dmin * (float)mn[k];
    }
}

/* Per sub-block k of 32: lo = min(0, min x) (the offset dmin*mn must be
 * >= 0), scale = (max - lo) / qmax. d and dmin are the largest scale and
 * offset over 63, rounded up in f16; each sub-block's 6-bit scale is
 * rounded up too (so the top of its range is always reachable) and its
 * offset to nearest. Error per element, with s = d*sc (<= scale + d):
 * at most s/2 inside the range, dmin/2 at its ends, so below (scale + d +
 * dmin) / 2. */
static void q_k45(const float *x, int qmax, uint16_t *dh, uint16_t *dmh,
                  uint8_t *scales, uint8_t *qh, uint8_t *qs)
{
    float scale[8], off[8], maxs = 0.0f, maxm = 0.0f;
    for (int k = 0; k < 8; k++) {
        float lo, hi;
        minmax(x + 32 * k, 32, &lo, &hi);
        lo = fminf(lo, 0.0f);
        scale[k] = (hi - lo) / (float)qmax;
        off[k] = -lo;
        maxs = fmaxf(maxs, scale[k]);
        maxm = fmaxf(maxm, off[k]);
    }
    *dh = f16_up(maxs / 63.0f);
    *dmh = f16_up(maxm / 63.0f);
    float d = hp_f16_to_f32(*dh), dmin = hp_f16_to_f32(*dmh);
    uint8_t sc[8], mn[8];
    for (int k = 0; k < 8; k++) {
        sc[k] = (uint8_t)(d > 0.0f ? clampi(ceilf(scale[k] / d), 0, 63) : 0);
        mn[k] = (uint8_t)(dmin > 0.0f ? clampi(roundf(off[k] / dmin), 0, 63)
                                      : 0);
    }
    hp_kern__k4_pack(sc, mn, scales);
    memset(qs, 0, 128);
    if (qh)
        memset(qh, 0, 32);
    for (int e = 0; e < HP_QK_K; e++) {
        int k = e / 32;
        float s = d * (float)sc[k], m = dmin * (float)mn[k];
        int q = s > 0.0f ? clampi(roundf((x[e] + m) / s), 0, qmax) : 0;
        qs[32 * (e / 64) + e % 32] |= (uint8_t)((q & 0x0f) << (4 * (k & 1)));
        if (qh)
            qh[e % 32] |= (uint8_t)((q >> 4) << k);
    }
}

void hp_kern__deq_q4_k(const void *src, float *dst, int64_t n)
{
    const hp_block_q4_k *b = src;
    for (int64_t i = 0; i < n / HP_QK_K; i++)
        deq_k45(b[i].d, b[i].dmin, b[i].scales, NULL, b[i].qs,
                dst + i * HP_QK_K);
}

void hp_kern__q_q4_k(const float *src, void *dst, int64_t n)
{
    hp_block_q4_k *b = dst;
    for (int64_t i = 0; i < n / HP_QK_K; i++)
        q_k45(src + i * HP_QK_K, 15, &b[i].d, &b[i].dmin, b[i].scales, NULL,
              b[i].qs);
}

void hp_kern__deq_q5_k(const void *src, float *dst, int64_t n)
{
    const hp_block_q5_k *b = src;
    for (int64_t i = 0; i < n / HP_QK_K; i++)
        deq_k45(b[i].d, b[i].dmin, b[i].scales, b[i].qh, b[i].qs,
                dst + i * HP_QK_K);
}

void hp_kern__q_q5_k(const float *src, void *dst, int64_t n)
{
    hp_block_q5_k *b = dst;
    for (int64_t i = 0; i < n / HP_QK_K; i++)
        q_k45(src + i * HP_QK_K, 31, &b[i].d, &b[i].dmin, b[i].scales,
              b[i].qh, b[i].qs);
}

/* ---- Q6_K ----------------------------------------------------------------- */

void hp_kern__deq_q6_k(const void *src, float *dst, int64_t n)
{
    const hp_block_q6_k *b = src;
    for (int64_t i = 0; i < n / HP_QK_K; i++) {
        float d = hp_f16_to_f32(b[i].d);
        float *o = dst + i * HP_QK_K;
        for (int e = 0; e < HP_QK_K; e++) {
            int h = e / 128, t = (e % 128) / 32, l = e % 32;
            uint8_t lo = b[i].ql[64 * h + 32 * (t & 1) + l];
            int q = (t < 2 ? lo & 0x0f : lo >> 4) |
                    ((b[i].qh[32 * h + l] >> (2 * t)) & 3) << 4;
            o[e] = d * (float)b[i].scales[e / 16] * (float)(q - 32);
        }
    }
}

/* Per group of 16: scale = max / -32 with max the signed value of largest
 * magnitude (it lands exactly on q - 32 = -32), d = largest |scale| / 127
 * rounded up in f16, each int8 scale rounded away from zero so |d*sc| >=
 * |scale|. Error per element at most |d*sc| (a value of the opposite sign
 * and the same magnitude clamps from 32 to 31), below amax/32 + d. */
void hp_kern__q_q6_k(const float *src, void *dst, int64_t n)
{
    hp_block_q6_k *b = dst;
    for (int64_t i = 0; i < n / HP_QK_K; i++) {
        const float *x = src + i * HP_QK_K;
        float scale[16], maxs = 0.0f;
        for (int g = 0; g < 16; g++) {
            float amax = 0.0f, max = 0.0f;
            for (int j = 0; j < 16; j++) {
                if (fabsf(x[16 * g + j]) > amax) {
                    amax = fabsf(x[16 * g + j]);
                    max = x[16 * g + j];
                }
            }
            scale[g] = max / -32.0f;
            maxs = fmaxf(maxs, amax / 32.0f);
        }
        b[i].d = f16_up(maxs / 127.0f);
        float d = hp_f16_to_f32(b[i].d);
        memset(b[i].ql, 0, sizeof b[i].ql);
        memset(b[i].qh, 0, sizeof b[i].qh);
        for (int g = 0; g < 16; g++) {
            int sc = d > 0.0f ? clampi(ceilf(fabsf(scale[g]) / d), 0, 127) : 0;
            b[i].scales[g] = (int8_t)(scale[g] < 0.0f ? -sc : sc);
        }
        for (int e = 0; e < HP_QK_K; e++) {
            float s = d * (float)b[i].scales[e / 16];
            int q = s != 0.0f ? clampi(roundf(x[e] / s), -32, 31) : 0;
            q += 32;
            int h = e / 128, t = (e % 128) / 32, l = e % 32;
            b[i].ql[64 * h + 32 * (t & 1) + l] |=
                (uint8_t)((q & 0x0f) << (t < 2 ? 0 : 4));
            b[i].qh[32 * h + l] |= (uint8_t)((q >> 4) << (2 * t));
        }
    }
}
