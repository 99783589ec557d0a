/* quant_ref.c: the reference (de)quantizers that define each supported
 * element format, one table entry per dtype, plus the Q8 activation
 * quantizer the fast integer matmuls use.
 *
 * Scalar and plain on purpose: these are the spec the SIMD paths are tested
 * against and what test fixtures are written with. Block layouts are GGUF's.
 * To add a format (e.g. Q4_K), write its dequant/quant pair and add a row
 * to the table; hp_dtype_supported and the scalar matmul pick it up. */
#include <math.h>
#include <string.h>

#include "kernels/kern_impl.h"
#include "kernels/kern_k.h"
#include "kernels/kernels.h"

/* ---- F32 / F16 / BF16 --------------------------------------------------- */

static void deq_f32(const void *src, float *dst, int64_t n)
{
    memmove(dst, src, (size_t)n * sizeof(float));
}

static void q_f32(const float *src, void *dst, int64_t n)
{
    memmove(dst, src, (size_t)n * sizeof(float));
}

static void deq_f16(const void *src, float *dst, int64_t n)
{
    const uint16_t *h = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = hp_f16_to_f32(h[i]);
}

static void q_f16(const float *src, void *dst, int64_t n)
{
    uint16_t *h = dst;
    for (int64_t i = 0; i < n; i++)
        h[i] = hp_f32_to_f16(src[i]);
}

static void deq_bf16(const void *src, float *dst, int64_t n)
{
    const uint16_t *h = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = hp_bf16_to_f32(h[i]);
}

static void q_bf16(const float *src, void *dst, int64_t n)
{
    uint16_t *h = dst;
    for (int64_t i = 0; i < n; i++)
        h[i] = hp_f32_to_bf16(src[i]);
}

/* float -> int clamped to [lo, hi]; nan -> 0. A bare cast of an out-of-range
 * float is undefined behaviour, and bad weights must never crash us. */
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

/* ---- Q8_0: d = amax/127, q = round(x/d) --------------------------------- */

static void deq_q8_0(const void *src, float *dst, int64_t n)
{
    const hp_block_q8_0 *b = src;
    for (int64_t i = 0; i < n / HP_QK8_0; i++) {
        float d = hp_f16_to_f32(b[i].d);
        for (int j = 0; j < HP_QK8_0; j++)
            dst[i * HP_QK8_0 + j] = d * (float)b[i].qs[j];
    }
}

/* Multiplies by 1/d rather than dividing, as the common GGUF tools do, so a
 * file quantized here matches theirs byte for byte in the usual case. */
static void q_q8_0(const float *src, void *dst, int64_t n)
{
    hp_block_q8_0 *b = dst;
    for (int64_t i = 0; i < n / HP_QK8_0; i++) {
        const float *x = src + i * HP_QK8_0;
        float amax = 0.0f;
        for (int j = 0; j < HP_QK8_0; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = hp_f32_to_f16(d);
        for (int j = 0; j < HP_QK8_0; j++)
            b[i].qs[j] = (int8_t)clampi(roundf(x[j] * id), -128, 127);
    }
}

/* ---- Q4_0: d = max/-8 (max = the value of largest magnitude, signed),
 *      q = clamp(trunc(x/d + 8.5), 0, 15); value = d * (q - 8) ------------ */

static void deq_q4_0(const void *src, float *dst, int64_t n)
{
    const hp_block_q4_0 *b = src;
    for (int64_t i = 0; i < n / HP_QK4_0; i++) {
        float d = hp_f16_to_f32(b[i].d);
        float *o = dst + i * HP_QK4_0;
        for (int j = 0; j < HP_QK4_0 / 2; j++) {
            o[j] = d * (float)((b[i].qs[j] & 0x0f) - 8);
            o[j + 16] = d * (float)((b[i].qs[j] >> 4) - 8);
        }
    }
}

/* Using the signed extreme lets the full -8 step be used on the side of the
 * largest magnitude (q = 0 maps exactly to it). */
static void q_q4_0(const float *src, void *dst, int64_t n)
{
    hp_block_q4_0 *b = dst;
    for (int64_t i = 0; i < n / HP_QK4_0; i++) {
        const float *x = src + i * HP_QK4_0;
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < HP_QK4_0; j++) {
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        float d = max / -8.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = hp_f32_to_f16(d);
        for (int j = 0; j < HP_QK4_0 / 2; j++) {
            float v0 = x[j] * id + 8.5f, v1 = x[j + 16] * id + 8.5f;
            int q0 = clampi(v0, 0, 15), q1 = clampi(v1, 0, 15);
            b[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

/* ---- activation blocks ---------------------------------------------------- */

void hp_kern__quant_q8x(const float *x, hp_kern__q8x *dst, int n)
{
    for (int i = 0; i < n / 32; i++) {
        const float *v = x + i * 32;
        float amax = 0.0f;
        for (int j = 0; j < 32; j++)
            amax = fmaxf(amax, fabsf(v[j]));
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        for (int j = 0; j < 32; j++)
            dst[i].qs[j] = (int8_t)clampi(roundf(v[j] * id), -127, 127);
        dst[i].d = d;
    }
}

/* ---- table ---------------------------------------------------------------- */

static const hp_kern__quant ops[HP_DT_COUNT] = {
    [HP_DT_F32] = {deq_f32, q_f32},     [HP_DT_F16] = {deq_f16, q_f16},
    [HP_DT_BF16] = {deq_bf16, q_bf16},  [HP_DT_Q8_0] = {deq_q8_0, q_q8_0},
    [HP_DT_Q4_0] = {deq_q4_0, q_q4_0},
    /* quant_k.c */
    [HP_DT_Q4_1] = {hp_kern__deq_q4_1, hp_kern__q_q4_1},
    [HP_DT_Q5_0] = {hp_kern__deq_q5_0, hp_kern__q_q5_0},
    [HP_DT_Q5_1] = {hp_kern__deq_q5_1, hp_kern__q_q5_1},
    [HP_DT_Q4_K] = {hp_kern__deq_q4_k, hp_kern__q_q4_k},
    [HP_DT_Q5_K] = {hp_kern__deq_q5_k, hp_kern__q_q5_k},
    [HP_DT_Q6_K] = {hp_kern__deq_q6_k, hp_kern__q_q6_k},
};

const hp_kern__quant *hp_kern__quant_ops(hp_dtype t)
{
    if ((int)t < 0 || (int)t >= HP_DT_COUNT || ops[t].dequant == NULL)
        return NULL;
    return &ops[t];
}

void hp_dequant_row_ref(hp_dtype t, const void *src, float *dst, int64_t n)
{
    const hp_kern__quant *q = hp_kern__quant_ops(t);
    int64_t be = hp_dtype_block_elems(t);
    if (q == NULL || src == NULL || dst == NULL || n <= 0 || n % be != 0)
        return; /* unsupported or malformed: nothing to write */
    q->dequant(src, dst, n);
}

void hp_quant_row_ref(hp_dtype t, const float *src, void *dst, int64_t n)
{
    const hp_kern__quant *q = hp_kern__quant_ops(t);
    int64_t be = hp_dtype_block_elems(t);
    if (q == NULL || src == NULL || dst == NULL || n <= 0 || n % be != 0)
        return;
    q->quant(src, dst, n);
}
