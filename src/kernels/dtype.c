/* dtype.c: the element-type table (names, block sizes, row sizes) and the
 * scalar f16/bf16 conversions every other kernel file relies on.
 *
 * Owns no state beyond a constant table. Knows GGUF's type numbering and
 * block byte sizes (facts of the file format), nothing of files or models. */
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/kern_impl.h"

typedef struct dtype_info {
    const char *name; /* as GGUF tools print it */
    int64_t elems;    /* elements per block */
    int64_t bytes;    /* bytes per block */
} dtype_info;

/* Block byte sizes follow GGUF: e.g. Q4_K = f16 d + f16 dmin + 12 scale bytes
 * + 128 nibble bytes = 144. Types we cannot compute with are still listed so
 * a loader can report sizes and names of any file it meets. */
static const dtype_info infos[HP_DT_COUNT] = {
    [HP_DT_F32] = {"f32", 1, 4},        [HP_DT_F16] = {"f16", 1, 2},
    [HP_DT_Q4_0] = {"q4_0", 32, 18},    [HP_DT_Q4_1] = {"q4_1", 32, 20},
    [HP_DT_Q5_0] = {"q5_0", 32, 22},    [HP_DT_Q5_1] = {"q5_1", 32, 24},
    [HP_DT_Q8_0] = {"q8_0", 32, 34},    [HP_DT_Q8_1] = {"q8_1", 32, 36},
    [HP_DT_Q2_K] = {"q2_K", 256, 84},   [HP_DT_Q3_K] = {"q3_K", 256, 110},
    [HP_DT_Q4_K] = {"q4_K", 256, 144},  [HP_DT_Q5_K] = {"q5_K", 256, 176},
    [HP_DT_Q6_K] = {"q6_K", 256, 210},  [HP_DT_Q8_K] = {"q8_K", 256, 292},
    [HP_DT_BF16] = {"bf16", 1, 2},
};

static const dtype_info *info(hp_dtype t)
{
    if ((int)t < 0 || (int)t >= HP_DT_COUNT || infos[t].name == NULL)
        return NULL;
    return &infos[t];
}

const char *hp_dtype_name(hp_dtype t)
{
    const dtype_info *i = info(t);
    return i ? i->name : NULL;
}

int64_t hp_dtype_block_elems(hp_dtype t)
{
    const dtype_info *i = info(t);
    return i ? i->elems : 0;
}

int64_t hp_dtype_block_bytes(hp_dtype t)
{
    const dtype_info *i = info(t);
    return i ? i->bytes : 0;
}

bool hp_dtype_supported(hp_dtype t)
{
    return hp_kern__quant_ops(t) != NULL;
}

int64_t hp_dtype_row_bytes(hp_dtype t, int64_t n)
{
    const dtype_info *i = info(t);
    if (i == NULL || n < 0 || n % i->elems != 0)
        return -1;
    return n / i->elems * i->bytes;
}

/* ---- f16 ---------------------------------------------------------------- */

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float hp_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    if (exp == 0x1f) /* inf / nan: keep payload, nan stays nan */
        return bits_f32(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24 is exact in f32 */
        float v = (float)man * 0x1p-24f;
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t hp_f32_to_f16(float f)
{
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t exp = (u >> 23) & 0xff;
    uint32_t man = u & 0x7fffff;
    if (exp == 0xff) { /* inf or nan; a nan keeps the quiet bit set */
        if (man == 0)
            return sign | 0x7c00;
        return sign | 0x7e00 | (uint16_t)(man >> 13);
    }
    int e = (int)exp - 127 + 15; /* biased half exponent */
    if (e >= 31)
        return sign | 0x7c00; /* overflow to inf */
    if (e <= 0) {
        /* subnormal half (or zero): shift the full mantissa, round to
         * nearest even on the dropped bits */
        if (e < -10)
            return sign; /* below half of the smallest subnormal */
        uint32_t m = man | 0x800000u;
        int shift = 14 - e; /* 14..24 */
        uint32_t q = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1)))
            q++;
        return sign | (uint16_t)q; /* q may carry into the min normal */
    }
    uint32_t q = ((uint32_t)e << 10) | (man >> 13);
    uint32_t rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (q & 1)))
        q++; /* a carry may roll into the exponent, up to inf: correct */
    return sign | (uint16_t)q;
}

/* ---- bf16 --------------------------------------------------------------- */

float hp_bf16_to_f32(uint16_t h)
{
    return bits_f32((uint32_t)h << 16);
}

uint16_t hp_f32_to_bf16(float f)
{
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) /* nan: truncate, force quiet */
        return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1); /* round to nearest even */
    return (uint16_t)(u >> 16);
}
