/* matmul_avx2.c: AVX2/FMA/F16C row kernels for hp_matmul. Compiled with
 * -mavx2 -mfma -mf16c (CMake, by the _avx2.c suffix) and only called after
 * cpu.c checked the CPU.
 *
 * Shape: a tile of NR weight rows x NC activation columns is computed per
 * pass over the weights, so each weight block is loaded once for up to 4
 * tokens (batched throughput) and nb == 1 still has 4 independent FMA
 * chains (4 rows). Every output value has exactly one 8-lane accumulator,
 * updated block by block in column order and reduced by one fixed
 * horizontal sum; the tile shape changes which values are computed
 * together, never how one is computed. That keeps hp_matmul batch- and
 * thread-invariant (see matmul.c).
 *
 * Q8_0/Q4_0 weights: the activations arrive quantized to Q8 blocks (xq) and
 * the block dot products are exact int8 products (maddubs/madd); one float
 * FMA per block applies both scales. The alternative kept below for
 * measurement (hp_kern__avx2_f32x) dequantizes weights to f32 and uses the
 * float activations. kbench 2048 x 8192, 1 thread, best ms of 3 runs
 * (shared 2-core Xeon VM under load 5, measured 2026-12-03; relative numbers):
 *              q4_0 nb=1  q4_0 nb=16  q8_0 nb=1  q8_0 nb=16
 *   int8 (xq)    2.14       16.5        3.09       19.2
 *   f32 (deq)    3.02       23.0        4.26       24.7
 * so the integer path is ~1.3-1.4x faster and is the one hp_kern__avx2 uses.
 * Memory read bandwidth on that box measured 8.6 GB/s; re-measure on a
 * quiet machine before quoting absolute numbers. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels/kern_impl.h"
#include "kernels/kern_k.h"

typedef enum kind {
    K_F32,
    K_F16,
    K_BF16,
    K_Q8_0, /* int8 activations */
    K_Q4_0, /* int8 activations */
    K_Q8_0F, /* f32 activations */
    K_Q4_0F  /* f32 activations */
} kind;

typedef struct targs {
    const uint8_t *W;          /* borrows: row 0 */
    size_t rb;                 /* bytes per weight row */
    const float *x;            /* borrows: nb x cols */
    const hp_kern__q8x *xq;    /* borrows: nb x nblk, or NULL */
    float *out;                /* borrows: nb x rows */
    int rows, cols, nblk;
} targs;

/* Fixed-order horizontal sum: (hi128 + lo128), then pairs, then the last. */
static inline float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float f16s(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/* 8 consecutive weights of a float-type row as f32. */
static inline __m256 load8(kind k, const uint8_t *row, int c)
{
    if (k == K_F32)
        return _mm256_loadu_ps((const float *)row + c);
    __m128i h = _mm_loadu_si128((const __m128i *)(row + 2 * (size_t)c));
    if (k == K_F16)
        return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

static inline float load1(kind k, const uint8_t *row, int c)
{
    uint16_t h;
    if (k == K_F32) {
        float f;
        memcpy(&f, row + 4 * (size_t)c, 4);
        return f;
    }
    memcpy(&h, row + 2 * (size_t)c, 2);
    return k == K_F16 ? _cvtsh_ss(h) : hp_bf16_to_f32(h);
}

#define UNROLL _Pragma("GCC unroll 4")

#ifndef PF_DIST
#define PF_DIST 1024
#endif

/* F32 / F16 / BF16 weights, f32 activations. */
static inline __attribute__((always_inline)) void
tile_float(kind k, const targs *a, int r, int b, const int NR, const int NC)
{
    __m256 acc[4][4];
    const uint8_t *row[4];
    const float *xv[4];
    UNROLL for (int i = 0; i < NR; i++)
    {
        row[i] = a->W + (size_t)(r + i) * a->rb;
        UNROLL for (int j = 0; j < NC; j++) acc[i][j] = _mm256_setzero_ps();
    }
    UNROLL for (int j = 0; j < NC; j++) xv[j] = a->x + (size_t)(b + j) * a->cols;
    int c = 0;
    /* hot loop: one pass over NR weight rows for NC tokens */
    for (; c + 8 <= a->cols; c += 8) {
        __m256 xx[4];
        UNROLL for (int j = 0; j < NC; j++) xx[j] = _mm256_loadu_ps(xv[j] + c);
        UNROLL for (int i = 0; i < NR; i++)
        {
            __m256 w = load8(k, row[i], c);
            UNROLL for (int j = 0; j < NC; j++)
                acc[i][j] = _mm256_fmadd_ps(w, xx[j], acc[i][j]);
        }
    }
    UNROLL for (int i = 0; i < NR; i++) UNROLL for (int j = 0; j < NC; j++)
    {
        float s = hsum(acc[i][j]);
        for (int cc = c; cc < a->cols; cc++)
            s = fmaf(load1(k, row[i], cc), xv[j][cc], s);
        a->out[(size_t)(b + j) * a->rows + r + i] = s;
    }
}

/* Q8_0 / Q4_0 weights against Q8 activation blocks: exact integer block
 * dots, then acc += (dw * dx) * dot. */
static inline __attribute__((always_inline)) void
tile_int(kind k, const targs *a, int r, int b, const int NR, const int NC)
{
    const size_t bb = k == K_Q8_0 ? sizeof(hp_block_q8_0) : sizeof(hp_block_q4_0);
    const __m256i ones = _mm256_set1_epi16(1);
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i shift = _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4);
    __m256 acc[4][4];
    const uint8_t *row[4];
    const hp_kern__q8x *xq[4];
    UNROLL for (int i = 0; i < NR; i++)
    {
        row[i] = a->W + (size_t)(r + i) * a->rb;
        UNROLL for (int j = 0; j < NC; j++) acc[i][j] = _mm256_setzero_ps();
    }
    UNROLL for (int j = 0; j < NC; j++) xq[j] = a->xq + (size_t)(b + j) * a->nblk;
    /* hot loop: one weight block of NR rows against NC token blocks.
     * Q8_0: signed times signed via |w| * (x with w's sign), the maddubs
     * idiom; |w| <= 128, |x| <= 127, pairs fit in int16.
     * Q4_0: the raw nibbles u (0..15) are already unsigned, so maddubs
     * takes them as they are (pairs <= 2*15*127, no saturation) and the
     * -8 of w = u - 8 is added back in float: sum (u-8) x = sum u x
     * - 8 sum x, and dw * dx * (-8 sum q) = 8 * dw * ne with ne =
     * -dx * sum q precomputed per activation block; adding dw * ne to
     * each of the 8 lanes puts it in the horizontal sum 8 times. This
     * saves the sign, abs and subtract of the signed form; the nibbles are
     * split with one variable shift (low lane by 0, high lane by 4). */
    for (int blk = 0; blk < a->nblk; blk++) {
        __m256i w[4], aw[4];
        __m256 dw[4];
        UNROLL for (int i = 0; i < NR; i++)
        {
            const uint8_t *p = row[i] + (size_t)blk * bb;
            if (NC == 1 && PF_DIST > 0) /* matvec streams from DRAM: run ahead */
                _mm_prefetch((const char *)p + PF_DIST, _MM_HINT_T0);
            dw[i] = _mm256_set1_ps(f16s(p));
            if (k == K_Q8_0) {
                w[i] = _mm256_loadu_si256((const __m256i *)(p + 2));
                aw[i] = _mm256_abs_epi8(w[i]);
            } else {
                __m256i raw = _mm256_broadcastsi128_si256(
                    _mm_loadu_si128((const __m128i *)(p + 2)));
                w[i] = _mm256_and_si256(_mm256_srlv_epi32(raw, shift), m4);
            }
        }
        UNROLL for (int j = 0; j < NC; j++)
        {
            const hp_kern__q8x *q = xq[j] + blk;
            __m256i xv = _mm256_loadu_si256((const __m256i *)q->qs);
            __m256 dx = _mm256_set1_ps(q->d);
            UNROLL for (int i = 0; i < NR; i++)
            {
                __m256i p16;
                if (k == K_Q8_0)
                    p16 = _mm256_maddubs_epi16(aw[i], _mm256_sign_epi8(xv, w[i]));
                else
                    p16 = _mm256_maddubs_epi16(w[i], xv);
                __m256i p32 = _mm256_madd_epi16(p16, ones);
                acc[i][j] = _mm256_fmadd_ps(_mm256_mul_ps(dw[i], dx),
                                            _mm256_cvtepi32_ps(p32), acc[i][j]);
                if (k == K_Q4_0)
                    acc[i][j] = _mm256_fmadd_ps(dw[i], _mm256_set1_ps(q->ne),
                                                acc[i][j]);
            }
        }
    }
    UNROLL for (int i = 0; i < NR; i++) UNROLL for (int j = 0; j < NC; j++)
        a->out[(size_t)(b + j) * a->rows + r + i] = hsum(acc[i][j]);
}

/* Q8_0 / Q4_0 weights dequantized to f32 against f32 activations. */
static inline __attribute__((always_inline)) void
tile_deq(kind k, const targs *a, int r, int b, const int NR, const int NC)
{
    const size_t bb = k == K_Q8_0F ? sizeof(hp_block_q8_0) : sizeof(hp_block_q4_0);
    const __m128i m4 = _mm_set1_epi8(0x0f), e8 = _mm_set1_epi8(8);
    __m256 acc[4][4];
    const uint8_t *row[4];
    const float *xv[4];
    UNROLL for (int i = 0; i < NR; i++)
    {
        row[i] = a->W + (size_t)(r + i) * a->rb;
        UNROLL for (int j = 0; j < NC; j++) acc[i][j] = _mm256_setzero_ps();
    }
    UNROLL for (int j = 0; j < NC; j++) xv[j] = a->x + (size_t)(b + j) * a->cols;
    for (int blk = 0; blk < a->nblk; blk++) {
        __m128i q[4][2]; /* 32 signed int8 weights per row */
        __m256 dw[4];
        UNROLL for (int i = 0; i < NR; i++)
        {
            const uint8_t *p = row[i] + (size_t)blk * bb;
            dw[i] = _mm256_set1_ps(f16s(p));
            if (k == K_Q8_0F) {
                q[i][0] = _mm_loadu_si128((const __m128i *)(p + 2));
                q[i][1] = _mm_loadu_si128((const __m128i *)(p + 18));
            } else {
                __m128i raw = _mm_loadu_si128((const __m128i *)(p + 2));
                q[i][0] = _mm_sub_epi8(_mm_and_si128(raw, m4), e8);
                q[i][1] = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(raw, 4), m4), e8);
            }
        }
        UNROLL for (int s = 0; s < 4; s++)
        {
            __m256 xx[4];
            UNROLL for (int j = 0; j < NC; j++)
                xx[j] = _mm256_loadu_ps(xv[j] + blk * 32 + s * 8);
            UNROLL for (int i = 0; i < NR; i++)
            {
                __m128i h = (s & 1) ? _mm_srli_si128(q[i][s >> 1], 8) : q[i][s >> 1];
                __m256 w = _mm256_mul_ps(dw[i], _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(h)));
                UNROLL for (int j = 0; j < NC; j++)
                    acc[i][j] = _mm256_fmadd_ps(w, xx[j], acc[i][j]);
            }
        }
    }
    UNROLL for (int i = 0; i < NR; i++) UNROLL for (int j = 0; j < NC; j++)
        a->out[(size_t)(b + j) * a->rows + r + i] = hsum(acc[i][j]);
}

static inline __attribute__((always_inline)) void
tile(kind k, const targs *a, int r, int b, const int NR, const int NC)
{
    if (k == K_F32 || k == K_F16 || k == K_BF16)
        tile_float(k, a, r, b, NR, NC);
    else if (k == K_Q8_0 || k == K_Q4_0)
        tile_int(k, a, r, b, NR, NC);
    else
        tile_deq(k, a, r, b, NR, NC);
}

/* Rows per cache block of the batched path: the x tile of 4 tokens (up to
 * 36 KiB at 8192 columns) stays in L1 while 16 weight rows (139 KiB of
 * Q8_0 at 8192 columns, in L2) are swept; x is then read from L3 once per
 * 16 rows instead of once per row pair (measured 2026-12-03, pp512). */
#define ROW_BLOCK 16

static inline __attribute__((always_inline)) void
tiles_nc(kind k, const targs *a, int rc, int rend, int b, const int NC)
{
    int r = rc;
    for (; r + 2 <= rend; r += 2)
        tile(k, a, r, b, 2, NC);
    if (r < rend)
        tile(k, a, r, b, 1, NC);
}

static inline __attribute__((always_inline)) void
drive(kind k, const void *W, size_t rb, const float *x, const hp_kern__q8x *xq,
      float *out, int r0, int r1, int rows, int cols, int nb)
{
    targs a = {W, rb, x, xq, out, rows, cols, cols / 32};
    int r = r0;
    if (nb == 1) { /* matvec: 4 rows give 4 independent FMA chains */
        for (; r + 4 <= r1; r += 4)
            tile(k, &a, r, 0, 4, 1);
        for (; r < r1; r++)
            tile(k, &a, r, 0, 1, 1);
        return;
    }
    for (int rc = r0; rc < r1; rc += ROW_BLOCK) {
        int rend = rc + ROW_BLOCK < r1 ? rc + ROW_BLOCK : r1;
        int b = 0;
        for (; b + 4 <= nb; b += 4)
            tiles_nc(k, &a, rc, rend, b, 4);
        switch (nb - b) {
        case 3: tiles_nc(k, &a, rc, rend, b, 3); break;
        case 2: tiles_nc(k, &a, rc, rend, b, 2); break;
        case 1: tiles_nc(k, &a, rc, rend, b, 1); break;
        default: break;
        }
    }
}

#define AVX2_ROWS(NAME, K)                                                     \
    static void NAME(const void *W, size_t rb, const float *x,                 \
                     const hp_kern__q8x *xq, float *out, int r0, int r1,       \
                     int rows, int cols, int nb)                               \
    {                                                                          \
        drive(K, W, rb, x, xq, out, r0, r1, rows, cols, nb);                   \
    }
AVX2_ROWS(rows_f32, K_F32)
AVX2_ROWS(rows_f16, K_F16)
AVX2_ROWS(rows_bf16, K_BF16)
AVX2_ROWS(rows_q8_0, K_Q8_0)
AVX2_ROWS(rows_q4_0, K_Q4_0)
AVX2_ROWS(rows_q8_0f, K_Q8_0F)
AVX2_ROWS(rows_q4_0f, K_Q4_0F)

/* Activation quantization, bit-identical to hp_kern__quant_q8x: the same
 * amax, d = amax / 127, id = 1 / d, and roundf (half away from zero),
 * which is trunc plus one step away from zero when the dropped part is
 * >= 0.5 (v - trunc(v) is exact in float). */
static void quant_q8x_avx2(const float *x, hp_kern__q8x *dst, int cols,
                           int nb)
{
    const int nblk = cols / 32;
    const __m256 absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
    const __m256 lim = _mm256_set1_ps(127.0f);
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int b = 0; b < nb; b++) {
        for (int i = 0; i < nblk; i++) {
            const float *v = x + (size_t)b * cols + (size_t)i * 32;
            hp_kern__q8x *o = dst + (size_t)b * nblk + i;
            __m256 xv[4];
            __m256 m = _mm256_setzero_ps();
            for (int s = 0; s < 4; s++) {
                xv[s] = _mm256_loadu_ps(v + 8 * s);
                m = _mm256_max_ps(m, _mm256_and_ps(xv[s], absm));
            }
            __m128 h = _mm_max_ps(_mm256_castps256_ps128(m),
                                  _mm256_extractf128_ps(m, 1));
            h = _mm_max_ps(h, _mm_movehl_ps(h, h));
            h = _mm_max_ss(h, _mm_movehdup_ps(h));
            float amax = _mm_cvtss_f32(h);
            float d = amax / 127.0f;
            float id = d != 0.0f ? 1.0f / d : 0.0f;
            __m256 idv = _mm256_set1_ps(id);
            __m256i q[4];
            for (int s = 0; s < 4; s++) {
                __m256 t = _mm256_mul_ps(xv[s], idv);
                __m256 tr = _mm256_round_ps(t, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
                __m256 fr = _mm256_and_ps(_mm256_sub_ps(t, tr), absm);
                __m256 step = _mm256_and_ps(_mm256_cmp_ps(fr, half, _CMP_GE_OQ), one);
                /* copy t's sign onto the step */
                step = _mm256_or_ps(step, _mm256_andnot_ps(absm, t));
                tr = _mm256_add_ps(tr, step);
                tr = _mm256_min_ps(_mm256_max_ps(tr, _mm256_sub_ps(_mm256_setzero_ps(), lim)), lim);
                q[s] = _mm256_cvttps_epi32(tr);
            }
            /* 32 int32 -> 32 int8 in order: packs work per 128-bit lane,
             * the final permute restores element order. */
            __m256i p01 = _mm256_packs_epi32(q[0], q[1]);
            __m256i p23 = _mm256_packs_epi32(q[2], q[3]);
            __m256i p = _mm256_packs_epi16(p01, p23);
            p = _mm256_permutevar8x32_epi32(p, perm);
            _mm256_storeu_si256((__m256i *)o->qs, p);
            o->d = d;
            /* sum of q: exact in int32, then the same float ops as the
             * scalar wrapper (matmul.c) */
            __m256i s4 = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]),
                                          _mm256_add_epi32(q[2], q[3]));
            __m128i s2 = _mm_add_epi32(_mm256_castsi256_si128(s4),
                                       _mm256_extracti128_si256(s4, 1));
            s2 = _mm_add_epi32(s2, _mm_shuffle_epi32(s2, 0x4e));
            s2 = _mm_add_epi32(s2, _mm_shuffle_epi32(s2, 0xb1));
            o->ne = -(d * (float)_mm_cvtsi128_si32(s2));
        }
    }
}

const hp_kern__impl hp_kern__avx2 = {
    .name = "avx2",
    .quant_q8x = quant_q8x_avx2,
    .attn_scores = hp_kern__attn_scores_avx2,
    .attn_accum = hp_kern__attn_accum_avx2,
    .rows = {[HP_DT_F32] = rows_f32, [HP_DT_F16] = rows_f16,
             [HP_DT_BF16] = rows_bf16, [HP_DT_Q8_0] = rows_q8_0,
             [HP_DT_Q4_0] = rows_q4_0,
             /* matmul_k_avx2.c */
             [HP_DT_Q4_1] = hp_kern__rows_q4_1_avx2,
             [HP_DT_Q5_0] = hp_kern__rows_q5_0_avx2,
             [HP_DT_Q5_1] = hp_kern__rows_q5_1_avx2,
             [HP_DT_Q4_K] = hp_kern__rows_q4_k_avx2,
             [HP_DT_Q5_K] = hp_kern__rows_q5_k_avx2,
             [HP_DT_Q6_K] = hp_kern__rows_q6_k_avx2},
    .wants_q8x = {[HP_DT_Q8_0] = true, [HP_DT_Q4_0] = true,
                  [HP_DT_Q4_1] = true, [HP_DT_Q5_0] = true,
                  [HP_DT_Q5_1] = true, [HP_DT_Q4_K] = true,
                  [HP_DT_Q5_K] = true, [HP_DT_Q6_K] = true},
};

/* The measured alternative: quantized weights against f32 activations. */
const hp_kern__impl hp_kern__avx2_f32x = {
    .name = "avx2-f32x",
    .quant_q8x = quant_q8x_avx2,
    .attn_scores = hp_kern__attn_scores_avx2,
    .attn_accum = hp_kern__attn_accum_avx2,
    .rows = {[HP_DT_F32] = rows_f32, [HP_DT_F16] = rows_f16,
             [HP_DT_BF16] = rows_bf16, [HP_DT_Q8_0] = rows_q8_0f,
             [HP_DT_Q4_0] = rows_q4_0f},
};
