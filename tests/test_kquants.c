/* test_kquants.c: the spec of the Q4_1, Q5_0, Q5_1, Q4_K, Q5_K and Q6_K
 * formats and kernels (src/kernels/quant_k.c, matmul_k.c, matmul_k_avx2.c):
 * block sizes, hand-built blocks decoded to hand-computed values (the GGUF
 * layouts), quantize -> dequantize error bounds, every matmul path against
 * hp_matmul_ref, and bitwise batch/thread invariance. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kern_impl.h"
#include "kernels/kern_k.h"
#include "kernels/kernels.h"

/* ---- helpers ------------------------------------------------------------ */

static uint32_t rng_state = 777;

static uint32_t urand(void)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return rng_state >> 8;
}

static float frand(void) /* uniform in [-1, 1), deterministic */
{
    return (float)urand() / 8388608.0f - 1.0f;
}

static void fill(float *v, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++) {
        v[i] = frand() * scale;
        if (i % 97 == 5)
            v[i] *= 8.0f; /* outliers, as real weights and activations have */
    }
}

static const hp_dtype ktypes[] = {HP_DT_Q4_1, HP_DT_Q5_0, HP_DT_Q5_1,
                                  HP_DT_Q4_K, HP_DT_Q5_K, HP_DT_Q6_K};
#define N_KTYPES (sizeof(ktypes) / sizeof(ktypes[0]))

static void *make_w(hp_dtype t, const float *w, int rows, int cols)
{
    int64_t rb = hp_dtype_row_bytes(t, cols);
    assert_true(rb > 0);
    uint8_t *W = malloc((size_t)rb * rows);
    assert_non_null(W);
    for (int r = 0; r < rows; r++)
        hp_quant_row_ref(t, w + (size_t)r * cols, W + (size_t)r * rb, cols);
    return W;
}

/* Random bytes in every field, with the f16 scales replaced by sane
 * values: exercises bit patterns our quantizer never writes (negative Q6_K
 * scales mixed, every 6-bit scale value, every qh bit), so a kernel that
 * reads a layout differently from the reference dequantizer shows. */
static void *make_w_random_bits(hp_dtype t, int rows, int cols)
{
    int64_t rb = hp_dtype_row_bytes(t, cols);
    int64_t bb = hp_dtype_block_bytes(t), nblk = rb / bb * rows;
    uint8_t *W = malloc((size_t)rb * rows);
    assert_non_null(W);
    for (int64_t i = 0; i < rb * rows; i++)
        W[i] = (uint8_t)urand();
    for (int64_t b = 0; b < nblk; b++) {
        uint8_t *p = W + b * bb;
        uint16_t d = hp_f32_to_f16(0.01f + 0.02f * (float)(urand() % 64) / 64);
        uint16_t m = hp_f32_to_f16(-0.2f * (float)(urand() % 64) / 64);
        uint16_t dm = hp_f32_to_f16(0.005f * (float)(urand() % 64) / 64);
        switch (t) {
        case HP_DT_Q4_1: case HP_DT_Q5_1:
            memcpy(p, &d, 2);
            memcpy(p + 2, &m, 2);
            break;
        case HP_DT_Q5_0:
            memcpy(p, &d, 2);
            break;
        case HP_DT_Q4_K: case HP_DT_Q5_K:
            d = hp_f32_to_f16(0.001f);
            memcpy(p, &d, 2);
            memcpy(p + 2, &dm, 2);
            break;
        case HP_DT_Q6_K:
            d = hp_f32_to_f16(0.0005f);
            memcpy(p + 208, &d, 2);
            break;
        default: fail();
        }
    }
    return W;
}

typedef struct impl_case {
    const hp_kern__impl *im;
    bool q8x_act; /* these types use Q8 activation blocks on this path */
} impl_case;

static int impl_list(impl_case *out)
{
    int n = 0;
    out[n++] = (impl_case){&hp_kern__scalar, false};
#if defined(HP_HAVE_AVX2)
    if (hp_kernels_force("avx2")) {
        out[n++] = (impl_case){&hp_kern__avx2, true};
        /* no kernels for these types: hp_matmul falls back to scalar */
        out[n++] = (impl_case){&hp_kern__avx2_f32x, false};
    }
#endif
    return n;
}

/* ---- table ---------------------------------------------------------------- */

static void kquants_block_sizes_are_gguf(void **state)
{
    (void)state;
    static const struct { hp_dtype t; const char *name; int elems, bytes;
                          size_t sz; } want[] = {
        {HP_DT_Q4_1, "q4_1", 32, 20, sizeof(hp_block_q4_1)},
        {HP_DT_Q5_0, "q5_0", 32, 22, sizeof(hp_block_q5_0)},
        {HP_DT_Q5_1, "q5_1", 32, 24, sizeof(hp_block_q5_1)},
        {HP_DT_Q4_K, "q4_K", 256, 144, sizeof(hp_block_q4_k)},
        {HP_DT_Q5_K, "q5_K", 256, 176, sizeof(hp_block_q5_k)},
        {HP_DT_Q6_K, "q6_K", 256, 210, sizeof(hp_block_q6_k)},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        assert_string_equal(hp_dtype_name(want[i].t), want[i].name);
        assert_int_equal(hp_dtype_block_elems(want[i].t), want[i].elems);
        assert_int_equal(hp_dtype_block_bytes(want[i].t), want[i].bytes);
        assert_int_equal(want[i].sz, want[i].bytes);
        assert_true(hp_dtype_supported(want[i].t));
    }
    assert_int_equal(offsetof(hp_block_q6_k, d), 208);
    assert_int_equal(offsetof(hp_block_q5_k, qs), 48);
    assert_int_equal(hp_dtype_row_bytes(HP_DT_Q4_K, 4096), 16 * 144);
    assert_int_equal(hp_dtype_row_bytes(HP_DT_Q6_K, 128), -1);
    assert_false(hp_dtype_supported(HP_DT_Q2_K));
    assert_false(hp_dtype_supported(HP_DT_Q3_K));
    assert_false(hp_dtype_supported(HP_DT_Q8_K));
}

/* ---- hand-built blocks ---------------------------------------------------- */

static void put16(uint8_t *p, uint16_t v)
{
    memcpy(p, &v, 2); /* little-endian host, as GGUF files are */
}

/* Each expected value below is worked out by hand from the layout comments
 * in kern_k.h (which follow ggml's block definitions). */
static void kquants_legacy_blocks_decode_by_hand(void **state)
{
    (void)state;
    uint8_t b[24];
    float o[32];
    /* Q4_1: d 0.5, m -1; qs[j] = j | (15 - j) << 4 */
    memset(b, 0, sizeof b);
    put16(b, 0x3800);
    put16(b + 2, 0xbc00);
    for (int j = 0; j < 16; j++)
        b[4 + j] = (uint8_t)(j | ((15 - j) << 4));
    hp_dequant_row_ref(HP_DT_Q4_1, b, o, 32);
    assert_true(o[0] == -1.0f && o[3] == 0.5f && o[15] == 6.5f);
    assert_true(o[16] == 6.5f && o[31] == -1.0f);
    /* Q5_0: d 0.25, qh bits 0 and 31, qs[0] = 0x21, qs[15] = 0xf0 */
    memset(b, 0, sizeof b);
    put16(b, 0x3400);
    b[2] = 0x01;
    b[5] = 0x80;
    b[6 + 0] = 0x21;
    b[6 + 15] = 0xf0;
    hp_dequant_row_ref(HP_DT_Q5_0, b, o, 32);
    assert_true(o[0] == 0.25f);   /* (1 | 16) - 16 = 1 */
    assert_true(o[16] == -3.5f);  /* 2 - 16 */
    assert_true(o[15] == -4.0f);  /* 0 - 16 */
    assert_true(o[31] == 3.75f);  /* (15 | 16) - 16 = 15 */
    assert_true(o[7] == -4.0f);
    /* Q5_1: d 1, m 0.5, qh bits 5 and 20, qs[5] = 0x73, qs[4] = 0x90 */
    memset(b, 0, sizeof b);
    put16(b, 0x3c00);
    put16(b + 2, 0x3800);
    b[4] = 0x20;      /* bit 5 */
    b[4 + 2] = 0x10;  /* bit 20 */
    b[8 + 5] = 0x73;
    b[8 + 4] = 0x90;
    hp_dequant_row_ref(HP_DT_Q5_1, b, o, 32);
    assert_true(o[5] == 19.5f);  /* (3 | 16) + 0.5 */
    assert_true(o[21] == 7.5f);  /* 7 + 0.5, bit 21 clear */
    assert_true(o[4] == 0.5f);
    assert_true(o[20] == 25.5f); /* (9 | 16) + 0.5 */
}

static void kquants_k_blocks_decode_by_hand(void **state)
{
    (void)state;
    float o[256];
    /* Q4_K: d 1, dmin 0.5, sc = {1,2,3,4,17,33,50,63},
     * mn = {0,1,2,3,20,40,61,5}, packed by hand:
     *   bytes 0-3: sc[j] | (sc[j+4] >> 4) << 6  = 65, 130, 195, 196
     *   bytes 4-7: mn[j] | (mn[j+4] >> 4) << 6  = 64, 129, 194, 3
     *   bytes 8-11: sc[j+4] & 15 | (mn[j+4] & 15) << 4 = 65, 129, 210, 95 */
    static const uint8_t sc12[12] = {65, 130, 195, 196, 64, 129,
                                     194, 3, 65, 129, 210, 95};
    hp_block_q4_k k4;
    memset(&k4, 0, sizeof k4);
    k4.d = 0x3c00;
    k4.dmin = 0x3800;
    memcpy(k4.scales, sc12, 12);
    k4.qs[0] = 0x5a;   /* element 0 (sub 0): 10; element 32 (sub 1): 5 */
    k4.qs[127] = 0xc3; /* element 223 (sub 6): 3; element 255 (sub 7): 12 */
    hp_dequant_row_ref(HP_DT_Q4_K, &k4, o, 256);
    assert_true(o[0] == 10.0f);     /* 1*1*10 - 0.5*0 */
    assert_true(o[32] == 9.5f);     /* 1*2*5 - 0.5*1 */
    assert_true(o[223] == 119.5f);  /* 50*3 - 0.5*61 */
    assert_true(o[255] == 753.5f);  /* 63*12 - 0.5*5 */
    assert_true(o[1] == 0.0f);
    assert_true(o[100] == -1.5f);   /* sub 3: -0.5*3 */
    assert_true(o[130] == -10.0f);  /* sub 4: -0.5*20 */
    uint8_t sc[8], mn[8], re[12];
    hp_kern__k4_scales(sc12, sc, mn);
    assert_int_equal(sc[5], 33);
    assert_int_equal(mn[6], 61);
    hp_kern__k4_pack(sc, mn, re);
    assert_memory_equal(re, sc12, 12);

    /* Q5_K: the same, plus qh[0] = 3 (bit 4 of elements 0 and 32) and
     * qh[31] = 0x80 (element 255) */
    hp_block_q5_k k5;
    memset(&k5, 0, sizeof k5);
    k5.d = 0x3c00;
    k5.dmin = 0x3800;
    memcpy(k5.scales, sc12, 12);
    k5.qs[0] = 0x5a;
    k5.qs[127] = 0xc3;
    k5.qh[0] = 0x03;
    k5.qh[31] = 0x80;
    hp_dequant_row_ref(HP_DT_Q5_K, &k5, o, 256);
    assert_true(o[0] == 26.0f);     /* 1*(10+16) */
    assert_true(o[32] == 41.5f);    /* 2*(5+16) - 0.5 */
    assert_true(o[223] == 119.5f);  /* bit 6 of qh[31] clear */
    assert_true(o[255] == 1761.5f); /* 63*(12+16) - 2.5 */

    /* Q6_K: d 0.5, scales[g] = g - 8. */
    hp_block_q6_k k6;
    memset(&k6, 0, sizeof k6);
    k6.d = 0x3800;
    for (int g = 0; g < 16; g++)
        k6.scales[g] = (int8_t)(g - 8);
    k6.ql[0] = 0x21;   /* element 0 low 1, element 64 low 2 */
    k6.ql[32] = 0x0f;  /* element 32 low 15, element 96 low 0 */
    k6.qh[0] = 0xe4;   /* high bits: e0 0, e32 1, e64 2, e96 3 */
    k6.ql[113] = 0x90; /* half 1, l 17: element 177 low 0, 241 low 9 */
    k6.qh[49] = 0x40;  /* half 1, l 17: element 241 high 1 */
    hp_dequant_row_ref(HP_DT_Q6_K, &k6, o, 256);
    assert_true(o[0] == 124.0f);   /* 0.5 * -8 * (1 - 32) */
    assert_true(o[32] == 3.0f);    /* 0.5 * -6 * (31 - 32) */
    assert_true(o[64] == -4.0f);   /* 0.5 * -4 * (34 - 32) */
    assert_true(o[96] == -16.0f);  /* 0.5 * -2 * (48 - 32) */
    assert_true(o[241] == -24.5f); /* 0.5 * 7 * (25 - 32) */
    assert_true(o[177] == -48.0f); /* 0.5 * 3 * (0 - 32) */
    assert_true(o[255] == -112.0f);
}

/* ---- round trip ------------------------------------------------------------
 * Error bounds per element (derived in quant_k.c's comments; f16 rounding of
 * a scale is at most 2^-11 relative, rounding up at most 2^-10):
 *  Q4_1/Q5_1 (d = (max-min)/(2^b-1), m = min): d/2 from rounding q, plus
 *    the f16 rounding of d times q <= 2^b-1 and of m:
 *    d/2 + 2^-11 ((2^b-1) d + |min|).
 *  Q5_0 (d = max/-16): as Q4_0, the far side clamps from 32 to 31: 1.01 d,
 *    d = amax/16.
 *  Q4_K/Q5_K (sub-block k of 32, lo = min(0, min), range = max - lo,
 *    S = max over k of range/qmax, M = max over k of -lo):
 *    (range/qmax + 1.002 S/63) / 2 + 1.002 M/63 / 2.
 *  Q6_K (group of 16 with max |x| = a, A = max over groups of a/32):
 *    a/32 + 1.002 A/127.
 * Plus 1e-6 of the block's amax for float rounding of the arithmetic. */

static double bound(hp_dtype t, const float *x, int i)
{
    int b32 = i / 32 * 32, b256 = i / 256 * 256;
    float lo = 0, hi = 0, amax = 0;
    if (t == HP_DT_Q4_1 || t == HP_DT_Q5_1 || t == HP_DT_Q5_0) {
        lo = hi = x[b32];
        for (int j = b32; j < b32 + 32; j++) {
            lo = fminf(lo, x[j]);
            hi = fmaxf(hi, x[j]);
            amax = fmaxf(amax, fabsf(x[j]));
        }
        if (t == HP_DT_Q5_0)
            return 1.01 * amax / 16 + 1e-6 * amax;
        double qm = t == HP_DT_Q4_1 ? 15 : 31, d = (hi - lo) / qm;
        return d / 2 + 0x1p-11 * (qm * d + fabs(lo)) + 1e-6 * amax + 1e-7;
    }
    for (int j = b256; j < b256 + 256; j++)
        amax = fmaxf(amax, fabsf(x[j]));
    if (t == HP_DT_Q6_K) {
        double A = 0, a = 0;
        for (int g = b256; g < b256 + 256; g += 16) {
            double ga = 0;
            for (int j = g; j < g + 16; j++)
                ga = fmax(ga, fabs(x[j]));
            A = fmax(A, ga / 32);
            if (i >= g && i < g + 16)
                a = ga;
        }
        return a / 32 + 1.002 * A / 127 + 1e-6 * amax;
    }
    double qm = t == HP_DT_Q4_K ? 15 : 31, S = 0, M = 0, range = 0;
    for (int k = b256; k < b256 + 256; k += 32) {
        float l = 0, h = x[k];
        for (int j = k; j < k + 32; j++) {
            l = fminf(l, x[j]);
            h = fmaxf(h, x[j]);
        }
        S = fmax(S, (h - l) / qm);
        M = fmax(M, -l);
        if (i >= k && i < k + 32)
            range = h - l;
    }
    return (range / qm + 1.002 * S / 63) / 2 + 1.002 * M / 63 / 2 +
           1e-6 * amax;
}

static void kquants_round_trip_within_bound(void **state)
{
    (void)state;
    enum { N = 4096 };
    float *x = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float));
    void *q = malloc(N * 4);
    fill(x, N, 3.0f);
    for (int i = 256; i < 512; i++)
        x[i] = 0.0f; /* an all-zero super-block: d = 0 and exact zeros */
    for (int i = 512; i < 544; i++)
        x[i] = -1.25f; /* a constant negative sub-block */
    for (int i = 768; i < 1024; i++)
        x[i] = fabsf(x[i]) + 0.5f; /* all positive: no offset needed */
    for (size_t t = 0; t < N_KTYPES; t++) {
        hp_dtype dt = ktypes[t];
        hp_quant_row_ref(dt, x, q, N);
        hp_dequant_row_ref(dt, q, y, N);
        double worst = 0;
        for (int i = 0; i < N; i++) {
            double e = fabs((double)y[i] - x[i]), tol = bound(dt, x, i);
            if (!(e <= tol))
                fail_msg("%s elem %d: %g vs %g (err %g > %g)",
                         hp_dtype_name(dt), i, y[i], x[i], e, tol);
            worst = fmax(worst, e / tol);
        }
        for (int i = 256; i < 512; i++)
            assert_true(y[i] == 0.0f);
        print_message("%s: worst error / bound %.3f\n", hp_dtype_name(dt),
                      worst);
    }
    /* bad input: nan and inf must not crash (values unspecified) */
    x[3] = NAN;
    x[300] = INFINITY;
    for (size_t t = 0; t < N_KTYPES; t++) {
        hp_quant_row_ref(ktypes[t], x, q, N);
        hp_dequant_row_ref(ktypes[t], q, y, N);
    }
    free(x);
    free(y);
    free(q);
}

/* ---- matmul vs reference ----------------------------------------------------
 * Tolerance per output value, S = sum_c |w_c x_c| (w dequantized):
 *  f32 activations (scalar path): float block partial sums, as in
 *    test_kernels.c: 1e-4 S.
 *  Q8 activations (AVX2 path): each x_c becomes dx * round(x_c / dx), off by
 *    at most amax(block of c) / 254; every block product is exact in int32
 *    and the scales are applied in float, so the value moves by at most
 *    sum_c |w_c| amax_c / 254: allow 1.01 times that plus 1e-4 S. */
static void check_path(const impl_case *ic, hp_dtype t, const void *W,
                       int rows, int cols, int max_nb, const float *x)
{
    float *wd = malloc(sizeof(float) * (size_t)cols);
    float *ref = malloc(sizeof(float) * (size_t)max_nb * rows);
    float *out = malloc(sizeof(float) * (size_t)max_nb * rows);
    float *bamax = malloc(sizeof(float) * (size_t)max_nb * cols / 32);
    for (int b = 0; b < max_nb; b++)
        for (int k = 0; k < cols / 32; k++) {
            float a = 0;
            for (int j = 0; j < 32; j++)
                a = fmaxf(a, fabsf(x[(size_t)b * cols + k * 32 + j]));
            bamax[b * (cols / 32) + k] = a;
        }
    int64_t rb = hp_dtype_row_bytes(t, cols);
    hp_matmul_ref(t, W, x, ref, rows, cols, max_nb);
    hp_kctx *k = hp_kctx_new(2);
    hp_kern__set(ic->im);
    for (int nb = 1; nb <= max_nb; nb++) {
        hp_matmul(k, t, W, x, out, rows, cols, nb);
        for (int r = 0; r < rows; r++) {
            hp_dequant_row_ref(t, (const uint8_t *)W + (size_t)r * rb, wd,
                               cols);
            for (int b = 0; b < nb; b++) {
                const float *xv = x + (size_t)b * cols;
                double S = 0.0, Q = 0.0;
                for (int c = 0; c < cols; c++) {
                    S += fabs((double)wd[c] * xv[c]);
                    if (ic->q8x_act)
                        Q += fabs((double)wd[c]) *
                             bamax[b * (cols / 32) + c / 32] / 254.0;
                }
                double tol = 1e-4 * S + 1.01 * Q + 1e-30;
                double got = out[(size_t)b * rows + r];
                double want = ref[(size_t)b * rows + r];
                if (!(fabs(got - want) <= tol))
                    fail_msg("%s %s rows %d cols %d nb %d: out[%d,%d] = %.9g,"
                             " ref %.9g, tol %.3g", ic->im->name,
                             hp_dtype_name(t), rows, cols, nb, b, r, got,
                             want, tol);
            }
        }
    }
    hp_kctx_free(k);
    free(wd);
    free(ref);
    free(out);
    free(bamax);
}

static void kquants_every_path_matches_ref(void **state)
{
    (void)state;
    impl_case ics[4];
    int n = impl_list(ics);
    static const int rows_list[] = {1, 3, 97};
    static const int cols_list[] = {256, 512, 4096};
    float *w = malloc(sizeof(float) * 97 * 4096);
    float *x = malloc(sizeof(float) * 9 * 4096);
    fill(w, 97 * 4096, 1.0f);
    fill(x, 9 * 4096, 2.0f);
    for (size_t t = 0; t < N_KTYPES; t++)
        for (int ci = 0; ci < 3; ci++)
            for (int ri = 0; ri < 3; ri++) {
                int rows = rows_list[ri], cols = cols_list[ci];
                /* nb 1..9 everywhere but the big slow corner */
                int max_nb = rows * cols > 10000 ? 5 : 9;
                void *W = make_w(ktypes[t], w, rows, cols);
                void *R = make_w_random_bits(ktypes[t], rows, cols);
                for (int i = 0; i < n; i++) {
                    check_path(&ics[i], ktypes[t], W, rows, cols, max_nb, x);
                    check_path(&ics[i], ktypes[t], R, rows, cols,
                               max_nb < 5 ? max_nb : 3, x);
                }
                free(W);
                free(R);
            }
    free(w);
    free(x);
    hp_kernels_init();
}

/* ---- determinism -------------------------------------------------------------
 * out[b*rows + r] must be bitwise the same for any nb, any position in the
 * batch and any thread count (the engine's greedy output must not depend
 * on batching): 203 rows (ragged split), 7 and 70 tokens (every tile
 * shape and tail of the AVX2 driver). */
static void kquants_batch_and_thread_invariant(void **state)
{
    (void)state;
    impl_case ics[4];
    int n = impl_list(ics);
    enum { ROWS = 203, COLS = 512, NB = 70 };
    float *w = malloc(sizeof(float) * ROWS * COLS);
    float *x = malloc(sizeof(float) * NB * COLS);
    float *batch = malloc(sizeof(float) * NB * ROWS);
    float *other = malloc(sizeof(float) * NB * ROWS);
    float *solo = malloc(sizeof(float) * ROWS);
    fill(w, ROWS * COLS, 1.0f);
    fill(x, NB * COLS, 1.0f);
    hp_kctx *k1 = hp_kctx_new(1), *k2 = hp_kctx_new(2), *k3 = hp_kctx_new(3);
    for (int i = 0; i < n; i++) {
        hp_kern__set(ics[i].im);
        for (size_t t = 0; t < N_KTYPES; t++) {
            hp_dtype dt = ktypes[t];
            void *W = make_w(dt, w, ROWS, COLS);
            hp_matmul(k2, dt, W, x, batch, ROWS, COLS, NB);
            for (int b = 0; b < NB; b++) {
                hp_matmul(k1, dt, W, x + b * COLS, solo, ROWS, COLS, 1);
                if (memcmp(solo, batch + b * ROWS, sizeof(float) * ROWS) != 0)
                    fail_msg("%s %s: token %d solo != batched",
                             ics[i].im->name, hp_dtype_name(dt), b);
            }
            hp_matmul(k3, dt, W, x, other, ROWS, COLS, NB);
            assert_memory_equal(other, batch, sizeof(float) * NB * ROWS);
            hp_matmul(k1, dt, W, x + 2 * COLS, other, ROWS, COLS, 7);
            assert_memory_equal(other, batch + 2 * ROWS,
                                sizeof(float) * 7 * ROWS);
            free(W);
        }
    }
    hp_kctx_free(k1);
    hp_kctx_free(k2);
    hp_kctx_free(k3);
    free(w);
    free(x);
    free(batch);
    free(other);
    free(solo);
    hp_kernels_init();
}

/* A Q4_K_M-style layer: Q4_K, Q6_K and F32 products through
 * hp_matmul_multi give exactly the separate hp_matmul values. */
static void kquants_multi_equals_separate_calls(void **state)
{
    (void)state;
    enum { COLS = 512, NB = 5 };
    static const int rows[3] = {40, 13, 67};
    static const hp_dtype types[3] = {HP_DT_Q4_K, HP_DT_Q6_K, HP_DT_Q5_0};
    float *w = malloc(sizeof(float) * 67 * COLS);
    float *x = malloc(sizeof(float) * NB * COLS);
    fill(w, 67 * COLS, 1.0f);
    fill(x, NB * COLS, 2.0f);
    void *W[3];
    float *sep[3], *fused[3];
    hp_matmul_op ops[3];
    for (int i = 0; i < 3; i++) {
        W[i] = make_w(types[i], w, rows[i], COLS);
        sep[i] = malloc(sizeof(float) * NB * (size_t)rows[i]);
        fused[i] = malloc(sizeof(float) * NB * (size_t)rows[i]);
        ops[i] = (hp_matmul_op){types[i], W[i], fused[i], rows[i]};
    }
    hp_kernels_init();
    hp_kctx *k1 = hp_kctx_new(1), *k2 = hp_kctx_new(2);
    for (int nb = 1; nb <= NB; nb += NB - 1) {
        for (int i = 0; i < 3; i++)
            hp_matmul(k1, types[i], W[i], x, sep[i], rows[i], COLS, nb);
        hp_matmul_multi(k2, ops, 3, x, COLS, nb);
        for (int i = 0; i < 3; i++)
            assert_memory_equal(sep[i], fused[i],
                                sizeof(float) * (size_t)nb * rows[i]);
    }
    for (int i = 0; i < 3; i++) {
        free(W[i]);
        free(sep[i]);
        free(fused[i]);
    }
    hp_kctx_free(k1);
    hp_kctx_free(k2);
    free(w);
    free(x);
}

/* Rows of an embedding matrix come out as the reference dequantizer's. */
static void kquants_get_row_dequantizes(void **state)
{
    (void)state;
    enum { R = 3, C = 512 };
    float *e = malloc(sizeof(float) * R * C), got[C], want[C];
    fill(e, R * C, 1.0f);
    for (size_t t = 0; t < N_KTYPES; t++) {
        void *E = make_w(ktypes[t], e, R, C);
        int64_t rb = hp_dtype_row_bytes(ktypes[t], C);
        hp_get_row(ktypes[t], E, 2, C, got);
        hp_dequant_row_ref(ktypes[t], (uint8_t *)E + 2 * rb, want, C);
        assert_memory_equal(got, want, sizeof(got));
        free(E);
    }
    free(e);
}

int main(void)
{
    hp_kernels_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(kquants_block_sizes_are_gguf),
        cmocka_unit_test(kquants_legacy_blocks_decode_by_hand),
        cmocka_unit_test(kquants_k_blocks_decode_by_hand),
        cmocka_unit_test(kquants_round_trip_within_bound),
        cmocka_unit_test(kquants_every_path_matches_ref),
        cmocka_unit_test(kquants_batch_and_thread_invariant),
        cmocka_unit_test(kquants_multi_equals_separate_calls),
        cmocka_unit_test(kquants_get_row_dequantizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
