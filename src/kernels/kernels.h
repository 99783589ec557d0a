/* kernels.h: tensor element types, their block layouts, and the numeric
 * kernels the forward pass runs on.
 *
 * Knows floats, shapes and quantized blocks; nothing of files, HTTP or JSON.
 * Every fast kernel has a scalar reference twin (`_ref`) with the same
 * signature; the dispatch table picks AVX2/FMA/F16C versions at run time
 * when the CPU has them (hp_kernels_init), and tests compare each against
 * the reference. Included by model/ and engine/. */
#ifndef HP_KERNELS_H
#define HP_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Element types, numbered exactly as GGUF/ggml number them (file values). */
typedef enum hp_dtype {
    HP_DT_F32 = 0,
    HP_DT_F16 = 1,
    HP_DT_Q4_0 = 2,
    HP_DT_Q4_1 = 3,
    HP_DT_Q5_0 = 6,
    HP_DT_Q5_1 = 7,
    HP_DT_Q8_0 = 8,
    HP_DT_Q8_1 = 9,
    HP_DT_Q2_K = 10,
    HP_DT_Q3_K = 11,
    HP_DT_Q4_K = 12,
    HP_DT_Q5_K = 13,
    HP_DT_Q6_K = 14,
    HP_DT_Q8_K = 15,
    HP_DT_BF16 = 30,
    HP_DT_COUNT = 40 /* bound for tables indexed by dtype */
} hp_dtype;

#define HP_QK4_0 32
#define HP_QK8_0 32

/* Q4_0: 32 weights = d * (q - 8), q in 0..15. Low nibbles of qs[j] hold
 * elements j (0..15), high nibbles hold elements j+16. 18 bytes. */
typedef struct hp_block_q4_0 {
    uint16_t d; /* f16 scale */
    uint8_t qs[HP_QK4_0 / 2];
} hp_block_q4_0;

/* Q8_0: 32 weights = d * q, q in -127..127. 34 bytes. */
typedef struct hp_block_q8_0 {
    uint16_t d; /* f16 scale */
    int8_t qs[HP_QK8_0];
} hp_block_q8_0;

/* Name as GGUF tools print it ("q4_0"), or NULL for an unknown value. */
const char *hp_dtype_name(hp_dtype t);
/* Elements per block (1 for F32/F16/BF16, 32 for Q4_0/Q8_0, 256 for K). 0 if unknown. */
int64_t hp_dtype_block_elems(hp_dtype t);
/* Bytes per block. 0 if unknown. */
int64_t hp_dtype_block_bytes(hp_dtype t);
/* True when this build can compute with t (dequantize and matmul). */
bool hp_dtype_supported(hp_dtype t);
/* Bytes of one row of n elements; -1 if n is not a multiple of the block. */
int64_t hp_dtype_row_bytes(hp_dtype t, int64_t n);

/* Half and bfloat16 conversions (round-to-nearest-even on the way down). */
float hp_f16_to_f32(uint16_t h);
uint16_t hp_f32_to_f16(float f);
float hp_bf16_to_f32(uint16_t h);
uint16_t hp_f32_to_bf16(float f);

/* Reference (de)quantization of one row of n elements (n a multiple of the
 * block size). These define the formats; files written by tests use them. */
void hp_dequant_row_ref(hp_dtype t, const void *src, float *dst, int64_t n);
void hp_quant_row_ref(hp_dtype t, const float *src, void *dst, int64_t n);

/* Per-thread-of-control kernel context: thread count and scratch (for
 * example activations quantized to Q8). One per engine runner; not shared
 * between concurrent callers. */
typedef struct hp_kctx hp_kctx;

/* n_threads <= 0 means all online cores. NULL on out-of-memory. */
hp_kctx *hp_kctx_new(int n_threads);
void hp_kctx_free(hp_kctx *k); /* accepts NULL */
int hp_kctx_threads(const hp_kctx *k);

/* One chunk of a parallel job; ith (0 = the caller) names the thread
 * running it, for per-thread scratch. */
typedef void (*hp_kctx_fn)(void *arg, int chunk, int ith);
/* Run fn(arg, c, ith) once for every c < n_chunks on k's threads and
 * return when all are done. Chunks go to whichever thread is free (in
 * increasing c), so callers must make results independent of ith. Uses
 * k's persistent workers (the same ones hp_matmul uses), so the model's
 * other parallel loops do not fight a second thread pool for the cores.
 * Not reentrant: do not call from inside fn. */
void hp_kctx_parallel(hp_kctx *k, int n_chunks, hp_kctx_fn fn, void *arg);

/* out[b*rows + r] = sum_c W[r][c] * x[b*cols + c]
 * for r < rows, b < nb. W is rows x cols of type t, row-major, each row
 * hp_dtype_row_bytes(t, cols) bytes (weights are read in place from the
 * mmapped file). x is nb x cols floats, out is nb x rows floats.
 * Multithreaded over k's threads. This dominates the runtime. */
void hp_matmul(hp_kctx *k, hp_dtype t, const void *W, const float *x,
               float *out, int rows, int cols, int nb);
/* One matrix of a fused hp_matmul_multi call: out = W x, W rows x cols. */
typedef struct hp_matmul_op {
    hp_dtype type;
    const void *W; /* borrows */
    float *out;    /* borrows: nb x rows */
    int rows;
} hp_matmul_op;
/* n products sharing the input x (nb x cols), e.g. Q, K and V: exactly the
 * values of n hp_matmul calls, computed in one parallel job (one thread
 * hand-off instead of n, x quantized once), which matters in decode where
 * each matmul is only tens of microseconds. */
void hp_matmul_multi(hp_kctx *k, const hp_matmul_op *ops, int n,
                     const float *x, int cols, int nb);
/* The same product, scalar, single-threaded, dequantize-then-dot in double
 * accumulation: the reference every fast path is tested against. */
void hp_matmul_ref(hp_dtype t, const void *W, const float *x, float *out,
                   int rows, int cols, int nb);

/* Copy row `row` of embedding matrix E (n_rows x cols, type t) to dst as f32. */
void hp_get_row(hp_dtype t, const void *E, int64_t row, int cols, float *dst);

/* Small ops of the forward pass; plain loops are fast enough here. */
/* out = x / rms(x) * w, eps inside the sqrt. out may alias x. */
void hp_rmsnorm(float *out, const float *x, const float *w, int n, float eps);
/* In-place softmax over n values (max-subtracted). */
void hp_softmax(float *x, int n);
/* x[i] = silu(gate[i]) * up[i]; x may alias gate. */
void hp_silu_mul(float *x, const float *gate, const float *up, int n);

/* Attention over a run of n cached rows (K or V), row i at R + i*stride,
 * each D floats. Both go through the dispatch table (AVX2 or scalar); per
 * output value the order of operations is fixed by i and d only, so a row
 * gives the same result whatever run it is part of. */
/* s[i] = scale * dot(q, K row i) for i < n. */
void hp_attn_scores(const float *q, const float *K, size_t stride, int n,
                    int D, float scale, float *s);
/* o[d] += w[i] * V row i [d], for i = 0..n-1 in order, d < D. */
void hp_attn_accum(float *o, const float *w, const float *V, size_t stride,
                   int n, int D);

/* Which implementation hp_kernels_init chose: "avx2" or "scalar". */
const char *hp_kernels_impl(void);
/* Pick the fastest kernels for this CPU. Safe to call more than once;
 * honours HOTPATH_KERNELS=scalar to force the reference path. */
void hp_kernels_init(void);
/* Force an implementation ("scalar" or "avx2") for tests. Returns false if
 * the CPU or build does not have it. */
bool hp_kernels_force(const char *name);

#endif
