/* matmul_k_avx2.c: AVX2 row kernels for Q4_1, Q5_0, Q5_1, Q4_K, Q5_K and
 * Q6_K weights against the Q8 activation blocks hp_matmul prepares (32
 * values, one f32 scale each: the same blocks Q8_0/Q4_0 use). Compiled with
 * -mavx2 -mfma -mf16c (CMake, by the _avx2.c suffix), called only after
 * cpu.c checked the CPU.
 *
 * Why 32-value activation blocks and not ggml's 256-value Q8_K: every one
 * of these formats has its scales on 16- or 32-element groups, so a 32
 * block lines up with them, and reusing the existing activation format
 * keeps one quantizer (and one hp_matmul_multi scratch) for every type. The
 * cost is one float FMA per 32 weights (each block has its own scale),
 * which is hidden under the memory stream at nb = 1.
 *
 * Per 32 weights the product is an exact integer dot: weights as unsigned
 * bytes u (0..15, 0..31 or 0..63) times int8 activations with maddubs (no
 * saturation: pairs <= 2*63*127 < 32767), then madd against the group's
 * integer scale (ones for Q4_1/Q5_x) to 8 int32 lanes. Offsets are put back
 * exactly in integers where the format has a fixed one (Q5_0: u - 16, Q6_K:
 * u - 32, via maddubs(offset, x) shared by the rows of a tile), and in
 * float where it is a per-block min (Q4_1/Q5_1: m * dx times the 8 lane
 * sums of x, one FMA; Q4_K/Q5_K: dmin * mn[k] * dx[k] * sum(x[k]), eight
 * sub-blocks as one 8-lane FMA).
 *
 * Determinism (matmul.c's contract): each output value has one 8-lane
 * accumulator, updated block by block in
 * column order with the same operations whatever the tile shape, and
 * reduced by one fixed horizontal sum. */
#include <immintrin.h>
#include <string.h>

#include "kernels/kern_k.h"

typedef enum kkind { KQ4_1, KQ5_0, KQ5_1, KQ4_K, KQ5_K, KQ6_K } kkind;

typedef struct kargs {
    const uint8_t *W;       /* borrows: row 0 */
    size_t rb;              /* bytes per weight row */
    const hp_kern__q8x *xq; /* borrows: nb x nblk activation blocks */
    float *out;             /* borrows: nb x rows */
    int rows, nblk;
} kargs;

#define UNROLL _Pragma("GCC unroll 8")
#define PF_DIST 1024 /* bytes ahead to prefetch on the matvec stream */

/* Fixed-order horizontal sum: (hi128 + lo128), then pairs, then the last. */
static inline float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v),
                          _mm256_extractf128_ps(v, 1));
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

static inline uint32_t ld32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Sums of the int8 values of 8 activation blocks, times their scales:
 * lane k = dx[k] * sum(qs[k]). The integer sums are exact. */
static inline __m256 xsum8(const hp_kern__q8x *xb)
{
    const __m256i one8 = _mm256_set1_epi8(1), one16 = _mm256_set1_epi16(1);
    __m256i v[8];
    UNROLL for (int k = 0; k < 8; k++)
    {
        __m256i xv = _mm256_loadu_si256((const __m256i *)xb[k].qs);
        v[k] = _mm256_madd_epi16(_mm256_maddubs_epi16(one8, xv), one16);
    }
    /* hadd tree: lane k of the result is block k's sum */
    __m256i h01 = _mm256_hadd_epi32(v[0], v[1]);
    __m256i h23 = _mm256_hadd_epi32(v[2], v[3]);
    __m256i h45 = _mm256_hadd_epi32(v[4], v[5]);
    __m256i h67 = _mm256_hadd_epi32(v[6], v[7]);
    __m256i h0123 = _mm256_hadd_epi32(h01, h23);
    __m256i h4567 = _mm256_hadd_epi32(h45, h67);
    __m256i s = _mm256_add_epi32(_mm256_permute2x128_si256(h0123, h4567, 0x20),
                                 _mm256_permute2x128_si256(h0123, h4567, 0x31));
    __m256 dx = _mm256_setr_ps(xb[0].d, xb[1].d, xb[2].d, xb[3].d, xb[4].d,
                               xb[5].d, xb[6].d, xb[7].d);
    return _mm256_mul_ps(dx, _mm256_cvtepi32_ps(s));
}

/* ---- K-quants: one 256-weight super-block per step ------------------------ */

static inline size_t kbytes(kkind k)
{
    return k == KQ4_K ? sizeof(hp_block_q4_k)
           : k == KQ5_K ? sizeof(hp_block_q5_k)
                        : sizeof(hp_block_q6_k);
}

/* Bit 4 of the elements of sub-block kk from Q5_K's qh (bit kk of each
 * byte) as 0 or 0x10; 16-bit shifts are safe since the mask keeps only the
 * bit that came from the same byte. */
static inline __m256i q5k_high(__m256i qh, int kk)
{
    const __m256i m10 = _mm256_set1_epi8(0x10);
    __m256i v = kk < 4 ? _mm256_slli_epi16(qh, 4 - kk)
                       : _mm256_srli_epi16(qh, kk - 4);
    return _mm256_and_si256(v, m10);
}

/* Bits 4-5 of Q6_K group t from qh (bits 2t, 2t+1 of each byte), in place. */
static inline __m256i q6k_high(__m256i qh, int t)
{
    const __m256i m30 = _mm256_set1_epi8(0x30);
    __m256i v = t == 0   ? _mm256_slli_epi16(qh, 4)
                : t == 1 ? _mm256_slli_epi16(qh, 2)
                : t == 2 ? qh
                         : _mm256_srli_epi16(qh, 2);
    return _mm256_and_si256(v, m30);
}

static inline __attribute__((always_inline)) void
tile_k(kkind k, const kargs *a, int r, int b, const int NR, const int NC)
{
    const size_t bb = kbytes(k);
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i c32 = _mm256_set1_epi8(32);
    const uint8_t *row[4];
    const hp_kern__q8x *xq[4];
    __m256 acc[4][4];
    UNROLL for (int i = 0; i < NR; i++)
    {
        row[i] = a->W + (size_t)(r + i) * a->rb;
        UNROLL for (int j = 0; j < NC; j++) acc[i][j] = _mm256_setzero_ps();
    }
    UNROLL for (int j = 0; j < NC; j++)
        xq[j] = a->xq + (size_t)(b + j) * (size_t)a->nblk;
    const int nsb = a->nblk / 8;
    /* hot loop: one super-block of NR rows against NC tokens */
    for (int sb = 0; sb < nsb; sb++) {
        const uint8_t *p[4];
        __m256 dv[4], mv[4];
        uint8_t sc[4][16];
        UNROLL for (int i = 0; i < NR; i++)
        {
            p[i] = row[i] + (size_t)sb * bb;
            if (NC == 1) /* matvec streams from DRAM: run ahead */
                _mm_prefetch((const char *)p[i] + PF_DIST, _MM_HINT_T0);
            if (k == KQ6_K) {
                dv[i] = _mm256_set1_ps(f16s(p[i] + 208));
                memcpy(sc[i], p[i] + 192, 16);
            } else {
                /* 6-bit scales and mins, four at a time (kern_k.h) */
                uint32_t w0 = ld32(p[i] + 4), w1 = ld32(p[i] + 8),
                         w2 = ld32(p[i] + 12);
                uint32_t s4[4] = {
                    w0 & 0x3f3f3f3fu,
                    (w2 & 0x0f0f0f0fu) | ((w0 >> 2) & 0x30303030u),
                    w1 & 0x3f3f3f3fu,
                    ((w2 >> 4) & 0x0f0f0f0fu) | ((w1 >> 2) & 0x30303030u)};
                memcpy(sc[i], s4, 16); /* sc[0..7], then mn[0..7] */
                dv[i] = _mm256_set1_ps(f16s(p[i]));
                __m256 mn = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(
                    _mm_loadl_epi64((const __m128i *)(sc[i] + 8))));
                mv[i] = _mm256_mul_ps(_mm256_set1_ps(f16s(p[i] + 2)), mn);
            }
        }
        __m256 tmp[4][4];
        UNROLL for (int i = 0; i < NR; i++) UNROLL for (int j = 0; j < NC; j++)
            tmp[i][j] = _mm256_setzero_ps();
        UNROLL for (int kk = 0; kk < 8; kk++)
        {
            __m256i w[4];
            __m256i scv[4];
            UNROLL for (int i = 0; i < NR; i++)
            {
                if (k == KQ6_K) {
                    int h = kk / 4, t = kk % 4;
                    __m256i lo = _mm256_loadu_si256(
                        (const __m256i *)(p[i] + 64 * h + 32 * (t & 1)));
                    if (t >= 2)
                        lo = _mm256_srli_epi16(lo, 4);
                    __m256i qh = _mm256_loadu_si256(
                        (const __m256i *)(p[i] + 128 + 32 * h));
                    w[i] = _mm256_or_si256(_mm256_and_si256(lo, m4),
                                           q6k_high(qh, t));
                    const int8_t *s8 = (const int8_t *)sc[i];
                    scv[i] = _mm256_set_m128i(_mm_set1_epi16(s8[2 * kk + 1]),
                                              _mm_set1_epi16(s8[2 * kk]));
                } else {
                    const uint8_t *qs = p[i] + (k == KQ4_K ? 16 : 48);
                    __m256i v = _mm256_loadu_si256(
                        (const __m256i *)(qs + 32 * (kk / 2)));
                    if (kk & 1)
                        v = _mm256_srli_epi16(v, 4);
                    w[i] = _mm256_and_si256(v, m4);
                    if (k == KQ5_K) {
                        __m256i qh = _mm256_loadu_si256(
                            (const __m256i *)(p[i] + 16));
                        w[i] = _mm256_or_si256(w[i], q5k_high(qh, kk));
                    }
                    scv[i] = _mm256_set1_epi16(sc[i][kk]);
                }
            }
            UNROLL for (int j = 0; j < NC; j++)
            {
                const hp_kern__q8x *q = xq[j] + (size_t)sb * 8 + kk;
                __m256i xv = _mm256_loadu_si256((const __m256i *)q->qs);
                __m256 dx = _mm256_set1_ps(q->d);
                __m256i off = _mm256_setzero_si256();
                if (k == KQ6_K) /* 32 * x pairs, exact in int16 */
                    off = _mm256_maddubs_epi16(c32, xv);
                UNROLL for (int i = 0; i < NR; i++)
                {
                    __m256i p16 = _mm256_maddubs_epi16(w[i], xv);
                    if (k == KQ6_K)
                        p16 = _mm256_sub_epi16(p16, off);
                    __m256i p32 = _mm256_madd_epi16(p16, scv[i]);
                    tmp[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p32), dx,
                                                tmp[i][j]);
                }
            }
        }
        UNROLL for (int j = 0; j < NC; j++)
        {
            __m256 S = _mm256_setzero_ps();
            if (k != KQ6_K)
                S = xsum8(xq[j] + (size_t)sb * 8);
            UNROLL for (int i = 0; i < NR; i++)
            {
                acc[i][j] = _mm256_fmadd_ps(dv[i], tmp[i][j], acc[i][j]);
                if (k != KQ6_K)
                    acc[i][j] = _mm256_fnmadd_ps(mv[i], S, acc[i][j]);
            }
        }
    }
    UNROLL for (int i = 0; i < NR; i++) UNROLL for (int j = 0; j < NC; j++)
        a->out[(size_t)(b + j) * a->rows + r + i] = hsum(acc[i][j]);
}

/* ---- Q4_1 / Q5_0 / Q5_1: one 32-weight block per step --------------------- */

static inline size_t lbytes(kkind k)
{
    return k == KQ4_1 ? sizeof(hp_block_q4_1)
           : k == KQ5_0 ? sizeof(hp_block_q5_0)
                        : sizeof(hp_block_q5_1);
}

/* The 32 bits of qh as bytes 0 or 0x10, byte j from bit j. */
static inline __m256i qh_bytes(uint32_t qh)
{
    const __m256i shuf = _mm256_setr_epi8(
        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2,
        2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x(0x8040201008040201ll);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), shuf);
    v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

static inline __attribute__((always_inline)) void
tile_l(kkind k, const kargs *a, int r, int b, const int NR, const int NC)
{
    const size_t bb = lbytes(k);
    const __m256i m4 = _mm256_set1_epi8(0x0f), one16 = _mm256_set1_epi16(1);
    const __m256i one8 = _mm256_set1_epi8(1), c16 = _mm256_set1_epi8(16);
    const __m256i shift = _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4);
    const bool has_min = k != KQ5_0;
    const uint8_t *row[4];
    const hp_kern__q8x *xq[4];
    __m256 acc[4][4];
    UNROLL for (int i = 0; i < NR; i++)
    {
        row[i] = a->W + (size_t)(r + i) * a->rb;
        UNROLL for (int j = 0; j < NC; j++) acc[i][j] = _mm256_setzero_ps();
    }
    UNROLL for (int j = 0; j < NC; j++)
        xq[j] = a->xq + (size_t)(b + j) * (size_t)a->nblk;
    /* hot loop: one block of NR rows against NC tokens */
    for (int blk = 0; blk < a->nblk; blk++) {
        __m256i w[4];
        float d[4], m[4];
        UNROLL for (int i = 0; i < NR; i++)
        {
            const uint8_t *p = row[i] + (size_t)blk * bb;
            if (NC == 1)
                _mm_prefetch((const char *)p + PF_DIST, _MM_HINT_T0);
            d[i] = f16s(p);
            m[i] = has_min ? f16s(p + 2) : 0.0f;
            const uint8_t *qs = p + (k == KQ4_1 ? 4 : k == KQ5_0 ? 6 : 8);
            __m256i raw = _mm256_broadcastsi128_si256(
                _mm_loadu_si128((const __m128i *)qs));
            w[i] = _mm256_and_si256(_mm256_srlv_epi32(raw, shift), m4);
            if (k != KQ4_1)
                w[i] = _mm256_or_si256(w[i], qh_bytes(ld32(p + (k == KQ5_0 ? 2 : 4))));
        }
        UNROLL for (int j = 0; j < NC; j++)
        {
            const hp_kern__q8x *q = xq[j] + blk;
            __m256i xv = _mm256_loadu_si256((const __m256i *)q->qs);
            __m256 xs = _mm256_setzero_ps(); /* 8 lane sums of x */
            __m256i off = _mm256_setzero_si256();
            if (has_min)
                xs = _mm256_cvtepi32_ps(_mm256_madd_epi16(
                    _mm256_maddubs_epi16(one8, xv), one16));
            else
                off = _mm256_maddubs_epi16(c16, xv);
            UNROLL for (int i = 0; i < NR; i++)
            {
                __m256i p16 = _mm256_maddubs_epi16(w[i], xv);
                if (!has_min)
                    p16 = _mm256_sub_epi16(p16, off);
                __m256i p32 = _mm256_madd_epi16(p16, one16);
                acc[i][j] = _mm256_fmadd_ps(_mm256_set1_ps(d[i] * q->d),
                                            _mm256_cvtepi32_ps(p32), acc[i][j]);
                if (has_min)
                    acc[i][j] = _mm256_fmadd_ps(_mm256_set1_ps(m[i] * q->d),
                                                xs, acc[i][j]);
            }
        }
    }
    UNROLL for (int i = 0; i < NR; i++) UNROLL for (int j = 0; j < NC; j++)
        a->out[(size_t)(b + j) * a->rows + r + i] = hsum(acc[i][j]);
}

/* ---- drivers ---------------------------------------------------------------- */

static inline __attribute__((always_inline)) void
tile(kkind k, const kargs *a, int r, int b, const int NR, const int NC)
{
    if (k == KQ4_K || k == KQ5_K || k == KQ6_K)
        tile_k(k, a, r, b, NR, NC);
    else
        tile_l(k, a, r, b, NR, NC);
}

/* Rows per cache block of the batched path (as matmul_avx2.c): the 4-token
 * activation tile stays in L1 while 16 weight rows are swept. */
#define ROW_BLOCK 16

static inline __attribute__((always_inline)) void
tiles_nc(kkind k, const kargs *a, int rc, int rend, int b, const int NC)
{
    int r = rc;
    for (; r + 2 <= rend; r += 2)
        tile(k, a, r, b, 2, NC);
    if (r < rend)
        tile(k, a, r, b, 1, NC);
}

static inline __attribute__((always_inline)) void
drive(kkind k, const void *W, size_t rb, const hp_kern__q8x *xq, float *out,
      int r0, int r1, int rows, int cols, int nb)
{
    kargs a = {W, rb, xq, out, rows, cols / 32};
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

#define ROWS_AVX2(NAME, K)                                                     \
    void NAME(const void *W, size_t rb, const float *x,                        \
              const hp_kern__q8x *xq, float *out, int r0, int r1, int rows,    \
              int cols, int nb)                                                \
    {                                                                          \
        (void)x;                                                               \
        if (xq == NULL) /* registered without wants_q8x: a bug, not a crash */ \
            return;                                                            \
        drive(K, W, rb, xq, out, r0, r1, rows, cols, nb);                      \
    }
ROWS_AVX2(hp_kern__rows_q4_1_avx2, KQ4_1)
ROWS_AVX2(hp_kern__rows_q5_0_avx2, KQ5_0)
ROWS_AVX2(hp_kern__rows_q5_1_avx2, KQ5_1)
ROWS_AVX2(hp_kern__rows_q4_k_avx2, KQ4_K)
ROWS_AVX2(hp_kern__rows_q5_k_avx2, KQ5_K)
ROWS_AVX2(hp_kern__rows_q6_k_avx2, KQ6_K)
