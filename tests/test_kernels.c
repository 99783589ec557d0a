/* test_kernels.c: the spec of src/kernels/: dtype table, f16/bf16
 * conversions, reference block formats, every matmul implementation against
 * hp_matmul_ref, batch/thread invariance (bitwise), the small ops and the
 * dispatch switch. */
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
#include "kernels/kernels.h"

/* ---- helpers ------------------------------------------------------------ */

static uint32_t rng_state = 12345;

static float frand(void) /* uniform in [-1, 1), deterministic */
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)(rng_state >> 8) / 8388608.0f - 1.0f;
}

static void fill(float *v, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++) {
        v[i] = frand() * scale;
        if (i % 97 == 5)
            v[i] *= 8.0f; /* outliers, as real activations have */
    }
}

static uint32_t fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bitsf(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Quantize a rows x cols float matrix to dtype t; caller frees. */
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

typedef struct impl_case {
    const hp_kern__impl *im;
    bool q8x_act; /* Q8_0/Q4_0 use quantized activations */
} impl_case;

static int impl_list(impl_case *out)
{
    int n = 0;
    out[n++] = (impl_case){&hp_kern__scalar, false};
#if defined(HP_HAVE_AVX2)
    if (hp_kernels_force("avx2")) {
        out[n++] = (impl_case){&hp_kern__avx2, true};
        out[n++] = (impl_case){&hp_kern__avx2_f32x, false};
    }
#endif
    return n;
}

static const hp_dtype all_types[] = {HP_DT_F32, HP_DT_F16, HP_DT_BF16,
                                     HP_DT_Q8_0, HP_DT_Q4_0};
#define N_TYPES (sizeof(all_types) / sizeof(all_types[0]))

/* ---- dtype table ---------------------------------------------------------- */

static void dtype_table_matches_gguf(void **state)
{
    (void)state;
    assert_string_equal(hp_dtype_name(HP_DT_Q4_0), "q4_0");
    assert_string_equal(hp_dtype_name(HP_DT_BF16), "bf16");
    assert_null(hp_dtype_name((hp_dtype)4)); /* retired Q4_2 */
    assert_null(hp_dtype_name((hp_dtype)-1));
    assert_null(hp_dtype_name(HP_DT_COUNT));
    assert_int_equal(sizeof(hp_block_q8_0), 34);
    assert_int_equal(sizeof(hp_block_q4_0), 18);
    assert_int_equal(hp_dtype_block_bytes(HP_DT_Q8_0), 34);
    assert_int_equal(hp_dtype_block_bytes(HP_DT_Q4_0), 18);
    assert_int_equal(hp_dtype_block_bytes(HP_DT_Q4_K), 144);
    assert_int_equal(hp_dtype_block_bytes(HP_DT_Q6_K), 210);
    assert_int_equal(hp_dtype_block_elems(HP_DT_Q6_K), 256);
    assert_int_equal(hp_dtype_block_elems(HP_DT_F16), 1);
    assert_int_equal(hp_dtype_row_bytes(HP_DT_Q4_0, 4096), 4096 / 32 * 18);
    assert_int_equal(hp_dtype_row_bytes(HP_DT_F32, 7), 28);
    assert_int_equal(hp_dtype_row_bytes(HP_DT_Q8_0, 33), -1);
    assert_int_equal(hp_dtype_row_bytes((hp_dtype)5, 32), -1);
    for (size_t i = 0; i < N_TYPES; i++)
        assert_true(hp_dtype_supported(all_types[i]));
    assert_false(hp_dtype_supported(HP_DT_Q2_K)); /* listed, not computed */
    assert_false(hp_dtype_supported((hp_dtype)99));
}

/* ---- f16 / bf16 ----------------------------------------------------------- */

static void f16_known_values_and_edges(void **state)
{
    (void)state;
    assert_int_equal(hp_f32_to_f16(1.0f), 0x3c00);
    assert_int_equal(hp_f32_to_f16(-2.0f), 0xc000);
    assert_int_equal(hp_f32_to_f16(0.0f), 0x0000);
    assert_int_equal(hp_f32_to_f16(-0.0f), 0x8000);
    assert_int_equal(hp_f32_to_f16(65504.0f), 0x7bff);          /* max */
    assert_int_equal(hp_f32_to_f16(65519.0f), 0x7bff);          /* below tie */
    assert_int_equal(hp_f32_to_f16(65520.0f), 0x7c00);          /* tie -> inf */
    assert_int_equal(hp_f32_to_f16(INFINITY), 0x7c00);
    assert_int_equal(hp_f32_to_f16(-INFINITY), 0xfc00);
    assert_int_equal(hp_f32_to_f16(1e10f), 0x7c00);
    uint16_t hn = hp_f32_to_f16(NAN);
    assert_true((hn & 0x7c00) == 0x7c00 && (hn & 0x3ff) != 0);
    /* round to nearest even: 1 + half an ulp goes down to 1, 1 + 1.5 ulp up */
    assert_int_equal(hp_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);
    assert_int_equal(hp_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);
    assert_int_equal(hp_f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);
    /* subnormals: 2^-24 is the smallest; 2^-25 ties to even (0) */
    assert_int_equal(hp_f32_to_f16(0x1p-24f), 0x0001);
    assert_int_equal(hp_f32_to_f16(0x1p-25f), 0x0000);
    assert_int_equal(hp_f32_to_f16(1.5f * 0x1p-25f), 0x0001);
    assert_int_equal(hp_f32_to_f16(3 * 0x1p-25f), 0x0002); /* 1.5 -> 2 */
    assert_int_equal(hp_f32_to_f16(0x1p-14f), 0x0400);     /* min normal */
    assert_int_equal(hp_f32_to_f16(0x1p-14f - 0x1p-25f), 0x0400); /* carry */
    assert_int_equal(hp_f32_to_f16(1e-30f), 0x0000);
    assert_true(hp_f16_to_f32(0x0001) == 0x1p-24f);
    assert_true(hp_f16_to_f32(0x03ff) == 1023 * 0x1p-24f);
    assert_true(isinf(hp_f16_to_f32(0x7c00)) && hp_f16_to_f32(0xfc00) < 0);
    assert_true(isnan(hp_f16_to_f32(0x7e00)));
    /* every non-nan half survives a round trip through f32 */
    for (uint32_t h = 0; h < 65536; h++) {
        float f = hp_f16_to_f32((uint16_t)h);
        if (isnan(f))
            continue;
        assert_int_equal(hp_f32_to_f16(f), h);
    }
}

static void bf16_rounds_to_nearest_even(void **state)
{
    (void)state;
    assert_int_equal(hp_f32_to_bf16(1.0f), 0x3f80);
    assert_int_equal(hp_f32_to_bf16(bitsf(0x3f808000u)), 0x3f80); /* tie, even */
    assert_int_equal(hp_f32_to_bf16(bitsf(0x3f818000u)), 0x3f82); /* tie, odd */
    assert_int_equal(hp_f32_to_bf16(bitsf(0x3f808001u)), 0x3f81);
    assert_int_equal(hp_f32_to_bf16(INFINITY), 0x7f80);
    assert_int_equal(hp_f32_to_bf16(bitsf(0x7f7fffffu)), 0x7f80); /* overflow */
    assert_true(isnan(hp_bf16_to_f32(hp_f32_to_bf16(NAN))));
    /* a nan whose payload sits only in the low bits must stay nan */
    assert_true(isnan(hp_bf16_to_f32(hp_f32_to_bf16(bitsf(0x7f800001u)))));
    assert_int_equal(hp_f32_to_bf16(bitsf(0x00010000u)), 0x0001); /* denormal */
    assert_true(fbits(hp_bf16_to_f32(0xbf80)) == fbits(-1.0f));
}

/* ---- reference formats ---------------------------------------------------- */

static void quant_q4_0_layout_is_gguf(void **state)
{
    (void)state;
    hp_block_q4_0 b;
    b.d = hp_f32_to_f16(0.5f);
    for (int j = 0; j < 16; j++)
        b.qs[j] = (uint8_t)(j | ((15 - j) << 4));
    float o[32];
    hp_dequant_row_ref(HP_DT_Q4_0, &b, o, 32);
    for (int j = 0; j < 16; j++) {
        assert_true(o[j] == 0.5f * (float)(j - 8));        /* low nibbles */
        assert_true(o[j + 16] == 0.5f * (float)(7 - j));   /* high nibbles */
    }
    /* the largest-magnitude value maps to q = 0 exactly: d = max / -8 */
    float x[32] = {0};
    x[3] = -4.0f;
    x[20] = 1.0f;
    hp_quant_row_ref(HP_DT_Q4_0, x, &b, 32);
    assert_true(hp_f16_to_f32(b.d) == 0.5f);
    assert_int_equal(b.qs[3] & 0x0f, 0);
    assert_int_equal(b.qs[4] >> 4, 10); /* element 20: 1.0 / 0.5 + 8 = 10 */
}

static void quant_q8_0_layout_is_gguf(void **state)
{
    (void)state;
    hp_block_q8_0 b;
    float x[32];
    for (int j = 0; j < 32; j++)
        x[j] = (float)(j - 16) * 0.25f;
    hp_quant_row_ref(HP_DT_Q8_0, x, &b, 32);
    assert_true(hp_f16_to_f32(b.d) == hp_f16_to_f32(hp_f32_to_f16(4.0f / 127)));
    assert_int_equal(b.qs[0], -127); /* amax -> +-127 */
    assert_int_equal(b.qs[16], 0);
    uint8_t raw[34];
    memcpy(raw, &b, 34); /* d is the first two bytes, little-endian f16 */
    assert_int_equal(raw[0] | (raw[1] << 8), b.d);
    assert_int_equal((int8_t)raw[2], -127);
}

/* Round trip error bounds, per type:
 *  F32 exact; F16 relative 2^-11 (half an ulp, normal range); BF16 2^-8;
 *  Q8_0 per block d/2 rounding plus the f16 rounding of d times |q| <= 127
 *       (127 * 2^-11 * d): below 0.57 d, d = amax/127;
 *  Q4_0 d = amax/8; the value -max maps to q = 16, clamped to 15, so the
 *       error reaches d (plus f16 rounding of d): below 1.01 d. */
static void quant_round_trip_within_format_error(void **state)
{
    (void)state;
    enum { N = 4096 };
    float *x = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float));
    void *q = malloc(N * 4);
    fill(x, N, 3.0f);
    x[64] = 0.0f;
    for (int i = 96; i < 128; i++)
        x[i] = 0.0f; /* an all-zero block must give d = 0 and zeros */
    for (size_t t = 0; t < N_TYPES; t++) {
        hp_dtype dt = all_types[t];
        hp_quant_row_ref(dt, x, q, N);
        hp_dequant_row_ref(dt, q, y, N);
        for (int b = 0; b < N / 32; b++) {
            float amax = 0.0f;
            for (int j = 0; j < 32; j++)
                amax = fmaxf(amax, fabsf(x[b * 32 + j]));
            for (int j = 0; j < 32; j++) {
                int i = b * 32 + j;
                double e = fabs((double)y[i] - x[i]), tol = 0.0;
                switch (dt) {
                case HP_DT_F32: tol = 0.0; break;
                case HP_DT_F16: tol = fabs(x[i]) * 0x1p-11 + 0x1p-25; break;
                case HP_DT_BF16: tol = fabs(x[i]) * 0x1p-8; break;
                case HP_DT_Q8_0: tol = 0.57 * amax / 127; break;
                case HP_DT_Q4_0: tol = 1.01 * amax / 8; break;
                default: fail();
                }
                if (e > tol)
                    fail_msg("%s elem %d: %g vs %g", hp_dtype_name(dt), i,
                             y[i], x[i]);
            }
        }
        for (int i = 96; i < 128; i++)
            assert_true(y[i] == 0.0f);
    }
    /* unsupported or malformed requests write nothing and do not crash */
    y[0] = 42.0f;
    hp_dequant_row_ref(HP_DT_Q2_K, q, y, 256);
    hp_dequant_row_ref(HP_DT_Q8_0, q, y, 33);
    hp_dequant_row_ref(HP_DT_Q8_0, NULL, y, 32);
    assert_true(y[0] == 42.0f);
    free(x);
    free(y);
    free(q);
}

/* ---- matmul vs reference -------------------------------------------------- */

/* Tolerances, per output value, with S = sum_c |w_c x_c| (double):
 *  f32 activations: float accumulation of 32-term block partial sums then
 *    cols/32 block sums, or 8-lane FMA chains then a horizontal sum; the
 *    rounding error is below ~ (32 + cols/8) * 2^-24 * S, which for cols =
 *    4096 is 3e-5 S: we allow 1e-4 S.
 *  Q8 activations (AVX2 path for Q8_0/Q4_0): each x_c is replaced by
 *    dx * round(x_c/dx), off by at most dx/2 = amax(block of c)/254, so the
 *    value moves by at most sum_c |w_c| amax_c / 254; we allow 1.01 times
 *    that plus the float 1e-4 S. */
static void check_impl_vs_ref(const impl_case *ic, hp_dtype t, int rows,
                              int cols, int max_nb)
{
    float *w = malloc(sizeof(float) * (size_t)rows * cols);
    float *wd = malloc(sizeof(float) * (size_t)cols);
    float *x = malloc(sizeof(float) * (size_t)max_nb * cols);
    float *ref = malloc(sizeof(float) * (size_t)max_nb * rows);
    float *out = malloc(sizeof(float) * (size_t)max_nb * rows);
    fill(w, (size_t)rows * cols, 1.0f);
    fill(x, (size_t)max_nb * cols, 2.0f);
    void *W = make_w(t, w, rows, cols);
    int64_t rb = hp_dtype_row_bytes(t, cols);
    hp_matmul_ref(t, W, x, ref, rows, cols, max_nb);
    hp_kctx *k = hp_kctx_new(2);
    hp_kern__set(ic->im);
    bool q8 = ic->q8x_act && (t == HP_DT_Q8_0 || t == HP_DT_Q4_0);
    for (int nb = 1; nb <= max_nb; nb++) {
        hp_matmul(k, t, W, x, out, rows, cols, nb);
        for (int r = 0; r < rows; r++) {
            hp_dequant_row_ref(t, (uint8_t *)W + (size_t)r * rb, wd, cols);
            for (int b = 0; b < nb; b++) {
                const float *xv = x + (size_t)b * cols;
                double S = 0.0, Q = 0.0;
                for (int c = 0; c < cols; c++) {
                    S += fabs((double)wd[c] * xv[c]);
                    if (q8) {
                        float amax = 0.0f;
                        for (int j = c / 32 * 32; j < c / 32 * 32 + 32; j++)
                            amax = fmaxf(amax, fabsf(xv[j]));
                        Q += fabs((double)wd[c]) * amax / 254.0;
                    }
                }
                double tol = 1e-4 * S + 1.01 * Q + 1e-30;
                /* ref for nb = max_nb holds every smaller nb's values */
                double got = out[(size_t)b * rows + r];
                double want = ref[(size_t)b * rows + r];
                if (!(fabs(got - want) <= tol))
                    fail_msg("%s %s rows %d cols %d nb %d: out[%d,%d] = %.9g,"
                             " ref %.9g, tol %.3g", ic->im->name,
                             hp_dtype_name(t), rows, cols, nb, b, r, got, want,
                             tol);
            }
        }
    }
    hp_kctx_free(k);
    free(W);
    free(w);
    free(wd);
    free(x);
    free(ref);
    free(out);
}

static void matmul_every_impl_matches_ref(void **state)
{
    (void)state;
    impl_case ics[4];
    int n = impl_list(ics);
    static const int rows_list[] = {1, 3, 97};
    static const int cols_list[] = {32, 64, 4096};
    for (int i = 0; i < n; i++)
        for (size_t t = 0; t < N_TYPES; t++)
            for (int ri = 0; ri < 3; ri++)
                for (int ci = 0; ci < 3; ci++) {
                    int cols = cols_list[ci];
                    /* nb 1..9 everywhere but the big slow corner */
                    int max_nb = rows_list[ri] * cols > 10000 ? 5 : 9;
                    check_impl_vs_ref(&ics[i], all_types[t], rows_list[ri],
                                      cols, max_nb);
                }
    /* float types accept any cols: exercise the scalar tails of the
     * 8-wide SIMD loops */
    static const hp_dtype ft[] = {HP_DT_F32, HP_DT_F16, HP_DT_BF16};
    for (int i = 0; i < n; i++)
        for (int t = 0; t < 3; t++) {
            check_impl_vs_ref(&ics[i], ft[t], 5, 1, 3);
            check_impl_vs_ref(&ics[i], ft[t], 7, 13, 9);
            check_impl_vs_ref(&ics[i], ft[t], 9, 100, 6);
        }
    hp_kernels_init();
}

/* ---- determinism ---------------------------------------------------------- */

/* out[b*rows + r] must be bitwise the same for nb = 1 and nb = 7, for any
 * thread count and any position in the batch: the engine's greedy output
 * must not depend on batching. */
static void matmul_batch_and_thread_invariant(void **state)
{
    (void)state;
    impl_case ics[4];
    int n = impl_list(ics);
    enum { ROWS = 203, COLS = 512, NB = 7 }; /* 203 rows: ragged thread split */
    float *w = malloc(sizeof(float) * ROWS * COLS);
    float *x = malloc(sizeof(float) * NB * COLS);
    float *batch = malloc(sizeof(float) * NB * ROWS);
    float *solo = malloc(sizeof(float) * ROWS);
    float *other = malloc(sizeof(float) * NB * ROWS);
    fill(w, ROWS * COLS, 1.0f);
    fill(x, NB * COLS, 1.0f);
    hp_kctx *k1 = hp_kctx_new(1), *k2 = hp_kctx_new(2), *k3 = hp_kctx_new(3);
    assert_int_equal(hp_kctx_threads(k2), 2);
    for (int i = 0; i < n; i++) {
        hp_kern__set(ics[i].im);
        for (size_t t = 0; t < N_TYPES; t++) {
            void *W = make_w(all_types[t], w, ROWS, COLS);
            hp_matmul(k2, all_types[t], W, x, batch, ROWS, COLS, NB);
            for (int b = 0; b < NB; b++) {
                hp_matmul(k1, all_types[t], W, x + b * COLS, solo, ROWS, COLS, 1);
                if (memcmp(solo, batch + b * ROWS, sizeof(float) * ROWS) != 0)
                    fail_msg("%s %s: token %d solo != batched", ics[i].im->name,
                             hp_dtype_name(all_types[t]), b);
            }
            hp_matmul(k3, all_types[t], W, x, other, ROWS, COLS, NB);
            assert_memory_equal(other, batch, sizeof(float) * NB * ROWS);
            hp_matmul(k1, all_types[t], W, x + 2 * COLS, other, ROWS, COLS, 5);
            assert_memory_equal(other, batch + 2 * ROWS, sizeof(float) * 5 * ROWS);
            free(W);
        }
    }
    hp_kctx_free(k1);
    hp_kctx_free(k2);
    hp_kctx_free(k3);
    free(w);
    free(x);
    free(batch);
    free(solo);
    free(other);
    hp_kernels_init();
}

static void matmul_bad_input_does_not_crash(void **state)
{
    (void)state;
    float x[64] = {0}, out[4] = {1, 1, 1, 1};
    uint8_t W[1024] = {0};
    hp_kctx *k = hp_kctx_new(0);
    assert_true(hp_kctx_threads(k) >= 1);
    hp_matmul(k, HP_DT_Q2_K, W, x, out, 2, 256, 2); /* unsupported: zeros */
    assert_true(out[0] == 0.0f && out[3] == 0.0f);
    out[0] = 1.0f;
    hp_matmul(k, HP_DT_Q8_0, W, x, out, 1, 33, 1); /* cols not a block multiple */
    assert_true(out[0] == 0.0f);
    hp_matmul(NULL, HP_DT_F32, W, x, out, 1, 4, 1);
    hp_matmul(k, HP_DT_F32, NULL, x, out, 1, 4, 1);
    hp_matmul(k, HP_DT_F32, W, x, NULL, 1, 4, 1);
    hp_matmul(k, HP_DT_F32, W, x, out, 0, 4, 1);
    hp_matmul_ref(HP_DT_Q2_K, W, x, out, 1, 256, 1);
    hp_get_row(HP_DT_Q2_K, W, 0, 256, NULL);
    hp_kctx_free(k);
    hp_kctx_free(NULL);
}

static void get_row_dequantizes_one_row(void **state)
{
    (void)state;
    enum { R = 5, C = 64 };
    float e[R * C], got[C], want[C];
    fill(e, R * C, 1.0f);
    for (size_t t = 0; t < N_TYPES; t++) {
        void *E = make_w(all_types[t], e, R, C);
        int64_t rb = hp_dtype_row_bytes(all_types[t], C);
        hp_get_row(all_types[t], E, 3, C, got);
        hp_dequant_row_ref(all_types[t], (uint8_t *)E + 3 * rb, want, C);
        assert_memory_equal(got, want, sizeof(got));
        free(E);
    }
}

/* Large batches go through the cache-blocked tiles (row blocks, 4-token
 * tiles, ragged tails): every token of a 70-token batch must still equal
 * the token evaluated alone, bitwise, for 1 and 2 threads. */
static void matmul_large_batch_tiles_invariant(void **state)
{
    (void)state;
    impl_case ics[4];
    int n = impl_list(ics);
    enum { ROWS = 37, COLS = 96, NB = 70 };
    float *w = malloc(sizeof(float) * ROWS * COLS);
    float *x = malloc(sizeof(float) * NB * COLS);
    float *batch = malloc(sizeof(float) * NB * ROWS);
    float *batch2 = malloc(sizeof(float) * NB * ROWS);
    float *solo = malloc(sizeof(float) * ROWS);
    fill(w, ROWS * COLS, 1.0f);
    fill(x, NB * COLS, 3.0f);
    hp_kctx *k1 = hp_kctx_new(1), *k2 = hp_kctx_new(2);
    for (int i = 0; i < n; i++) {
        hp_kern__set(ics[i].im);
        for (size_t t = 0; t < N_TYPES; t++) {
            void *W = make_w(all_types[t], w, ROWS, COLS);
            hp_matmul(k1, all_types[t], W, x, batch, ROWS, COLS, NB);
            hp_matmul(k2, all_types[t], W, x, batch2, ROWS, COLS, NB);
            assert_memory_equal(batch, batch2, sizeof(float) * NB * ROWS);
            for (int b = 0; b < NB; b++) {
                hp_matmul(k1, all_types[t], W, x + b * COLS, solo, ROWS, COLS, 1);
                if (memcmp(solo, batch + b * ROWS, sizeof(float) * ROWS) != 0)
                    fail_msg("%s %s: token %d of %d solo != batched",
                             ics[i].im->name, hp_dtype_name(all_types[t]), b,
                             NB);
            }
            free(W);
        }
    }
    hp_kctx_free(k1);
    hp_kctx_free(k2);
    free(w);
    free(x);
    free(batch);
    free(batch2);
    free(solo);
    hp_kernels_init();
}

/* hp_matmul_multi gives exactly the values of separate hp_matmul calls,
 * mixed dtypes included (one quantized, one float). */
static void matmul_multi_equals_separate_calls(void **state)
{
    (void)state;
    enum { COLS = 128, NB = 5 };
    static const int rows[3] = {40, 13, 67};
    static const hp_dtype types[3] = {HP_DT_Q4_0, HP_DT_F16, HP_DT_Q8_0};
    float *w = malloc(sizeof(float) * 67 * COLS);
    float x[NB * COLS];
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
    hp_kctx *k1 = hp_kctx_new(1), *k2 = hp_kctx_new(2);
    for (int nb = 1; nb <= NB; nb += NB - 1) {
        for (int i = 0; i < 3; i++)
            hp_matmul(k1, types[i], W[i], x, sep[i], rows[i], COLS, nb);
        hp_matmul_multi(k2, ops, 3, x, COLS, nb);
        for (int i = 0; i < 3; i++)
            assert_memory_equal(sep[i], fused[i],
                                sizeof(float) * (size_t)nb * rows[i]);
        hp_matmul_multi(k1, ops, 3, x, COLS, nb);
        for (int i = 0; i < 3; i++)
            assert_memory_equal(sep[i], fused[i],
                                sizeof(float) * (size_t)nb * rows[i]);
    }
    hp_matmul_multi(k2, NULL, 3, x, COLS, 1); /* bad input: no crash */
    for (int i = 0; i < 3; i++) {
        free(W[i]);
        free(sep[i]);
        free(fused[i]);
    }
    hp_kctx_free(k1);
    hp_kctx_free(k2);
    free(w);
}

/* Every implementation's activation quantizer writes exactly the bytes of
 * the scalar spec hp_kern__quant_q8x, ties (x/d = k + 0.5) included. */
static void quant_q8x_impls_match_spec(void **state)
{
    (void)state;
    impl_case ics[4];
    int n = impl_list(ics);
    enum { COLS = 128, NB = 3 };
    float x[NB * COLS];
    fill(x, NB * COLS, 2.0f);
    /* block 1 of row 0: amax 127 so d = 1 and halves are exact ties */
    for (int j = 0; j < 32; j++)
        x[32 + j] = (float)(j - 16) + 0.5f;
    x[32] = -127.0f;
    for (int j = 0; j < 32; j++) /* an all-zero block: d = 0 */
        x[64 + j] = 0.0f;
    hp_kern__q8x want[NB * COLS / 32], got[NB * COLS / 32];
    for (int b = 0; b < NB; b++)
        hp_kern__quant_q8x(x + b * COLS, want + b * (COLS / 32), COLS);
    for (int i = 0; i < n; i++) {
        if (ics[i].im->quant_q8x == NULL)
            continue;
        memset(got, 0x55, sizeof(got));
        ics[i].im->quant_q8x(x, got, COLS, NB);
        for (int b = 0; b < NB * COLS / 32; b++) {
            assert_memory_equal(&got[b].d, &want[b].d, sizeof(float));
            assert_memory_equal(got[b].qs, want[b].qs, 32);
            int sum = 0;
            for (int j = 0; j < 32; j++)
                sum += want[b].qs[j];
            float ne = -(want[b].d * (float)sum);
            assert_memory_equal(&got[b].ne, &ne, sizeof(float));
        }
    }
}

/* Attention helpers: each implementation agrees with the plain loops
 * (float FMA chains, 1e-5 relative to sum |q k|), and a row's value does
 * not depend on the run it is part of (bitwise). */
static void attn_impls_match_ref_and_runs(void **state)
{
    (void)state;
    enum { N = 16, STRIDE = 200 };
    static const int dims[] = {64, 128, 12};
    float K[N * STRIDE], q[128], s[N], s1[1], sref[N];
    float w[N], o[128], oref[128], o2[128];
    fill(K, N * STRIDE, 1.0f);
    fill(q, 128, 2.0f);
    fill(w, N, 0.5f);
    for (int di = 0; di < 3; di++) {
        int D = dims[di];
        hp_kern__attn_scores_ref(q, K, STRIDE, N, D, 0.125f, sref);
        for (int impl = 0; impl < 2; impl++) {
            assert_true(hp_kernels_force(impl ? "avx2" : "scalar") || impl);
            hp_attn_scores(q, K, STRIDE, N, D, 0.125f, s);
            for (int i = 0; i < N; i++) {
                double S = 0.0;
                for (int d = 0; d < D; d++)
                    S += fabs((double)q[d] * K[i * STRIDE + d]);
                assert_true(fabs(s[i] - sref[i]) <= 1e-5 * S * 0.125 + 1e-30);
                hp_attn_scores(q, K + i * STRIDE, STRIDE, 1, D, 0.125f, s1);
                assert_memory_equal(s1, &s[i], sizeof(float));
            }
            fill(o, 128, 1.0f);
            memcpy(oref, o, sizeof(o));
            memcpy(o2, o, sizeof(o));
            hp_kern__attn_accum_ref(oref, w, K, STRIDE, N, D);
            hp_attn_accum(o, w, K, STRIDE, N, D);
            /* the same rows in two runs (5 + 11) give the same bits */
            hp_attn_accum(o2, w, K, STRIDE, 5, D);
            hp_attn_accum(o2, w + 5, K + 5 * STRIDE, STRIDE, N - 5, D);
            assert_memory_equal(o, o2, sizeof(float) * (size_t)D);
            for (int d = 0; d < D; d++) {
                double S = fabs(1.0);
                for (int i = 0; i < N; i++)
                    S += fabs((double)w[i] * K[i * STRIDE + d]);
                assert_true(fabs(o[d] - oref[d]) <= 1e-5 * S);
            }
        }
    }
    hp_kernels_init();
}

/* ---- ops ------------------------------------------------------------------ */

static void ops_match_plain_loops(void **state)
{
    (void)state;
    enum { N = 300 };
    float x[N], w[N], o[N], g[N], u[N];
    fill(x, N, 2.0f);
    fill(w, N, 1.0f);
    double ss = 0.0;
    for (int i = 0; i < N; i++)
        ss += (double)x[i] * x[i];
    double sc = 1.0 / sqrt(ss / N + 1e-5);
    hp_rmsnorm(o, x, w, N, 1e-5f);
    for (int i = 0; i < N; i++) /* float sum of 300 squares: 1e-5 relative */
        assert_true(fabs(o[i] - x[i] * sc * w[i]) <= 1e-5 * fabs(x[i] * sc * w[i]) + 1e-7);
    memcpy(g, x, sizeof(g));
    hp_rmsnorm(g, g, w, N, 1e-5f); /* aliasing out == x */
    assert_memory_equal(g, o, sizeof(g));

    memcpy(g, x, sizeof(g));
    g[7] = 1000.0f; /* max-subtraction keeps this finite */
    hp_softmax(g, N);
    double sum = 0.0;
    for (int i = 0; i < N; i++) {
        assert_true(g[i] >= 0.0f && g[i] <= 1.0f);
        sum += g[i];
    }
    assert_true(fabs(sum - 1.0) < 1e-5 && g[7] > 0.999f);
    memcpy(g, x, sizeof(g));
    hp_softmax(g, N);
    double mx = x[0], z = 0.0;
    for (int i = 0; i < N; i++)
        mx = fmax(mx, x[i]);
    for (int i = 0; i < N; i++)
        z += exp(x[i] - mx);
    for (int i = 0; i < N; i++)
        assert_true(fabs(g[i] - exp(x[i] - mx) / z) < 1e-6);

    fill(u, N, 1.0f);
    memcpy(g, x, sizeof(g));
    hp_silu_mul(g, g, u, N); /* aliasing x == gate */
    for (int i = 0; i < N; i++) {
        double want = x[i] / (1.0 + exp(-(double)x[i])) * u[i];
        assert_true(fabs(g[i] - want) <= 1e-6 * fabs(want) + 1e-7);
    }
    hp_softmax(NULL, 3);
    hp_rmsnorm(NULL, x, w, N, 1e-5f);
    hp_silu_mul(g, NULL, u, N);
}

/* ---- dispatch ------------------------------------------------------------- */

static void kernels_dispatch_can_be_forced(void **state)
{
    (void)state;
    assert_true(hp_kernels_force("scalar"));
    assert_string_equal(hp_kernels_impl(), "scalar");
    assert_false(hp_kernels_force("bogus"));
    assert_false(hp_kernels_force(NULL));
    assert_string_equal(hp_kernels_impl(), "scalar");
    setenv("HOTPATH_KERNELS", "scalar", 1);
    hp_kernels_init();
    assert_string_equal(hp_kernels_impl(), "scalar");
    unsetenv("HOTPATH_KERNELS");
    bool has_avx2 = hp_kernels_force("avx2");
    hp_kernels_init();
    /* init prefers AVX2 whenever the CPU has it */
    assert_string_equal(hp_kernels_impl(), has_avx2 ? "avx2" : "scalar");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dtype_table_matches_gguf),
        cmocka_unit_test(f16_known_values_and_edges),
        cmocka_unit_test(bf16_rounds_to_nearest_even),
        cmocka_unit_test(quant_q4_0_layout_is_gguf),
        cmocka_unit_test(quant_q8_0_layout_is_gguf),
        cmocka_unit_test(quant_round_trip_within_format_error),
        cmocka_unit_test(matmul_every_impl_matches_ref),
        cmocka_unit_test(matmul_batch_and_thread_invariant),
        cmocka_unit_test(matmul_bad_input_does_not_crash),
        cmocka_unit_test(matmul_large_batch_tiles_invariant),
        cmocka_unit_test(matmul_multi_equals_separate_calls),
        cmocka_unit_test(quant_q8x_impls_match_spec),
        cmocka_unit_test(attn_impls_match_ref_and_runs),
        cmocka_unit_test(get_row_dequantizes_one_row),
        cmocka_unit_test(ops_match_plain_loops),
        cmocka_unit_test(kernels_dispatch_can_be_forced),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
