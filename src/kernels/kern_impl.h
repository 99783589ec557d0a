/* kern_impl.h: internal interface between the kernel files (dispatch table,
 * per-dtype quant ops, activation blocks). Internal tier (hp_kern__*):
 * included only by the src/kernels/ sources and tests/test_kernels.c, never by
 * model/ or engine/, which use kernels.h. */
#ifndef HP_KERN_IMPL_H
#define HP_KERN_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"

/* Reference (de)quantizers of one dtype; n is a multiple of the block. */
typedef struct hp_kern__quant {
    void (*dequant)(const void *src, float *dst, int64_t n);
    void (*quant)(const float *src, void *dst, int64_t n);
} hp_kern__quant;

/* NULL when the dtype cannot be computed with in this build. */
const hp_kern__quant *hp_kern__quant_ops(hp_dtype t);

/* Activations quantized for integer dot products: 32 values = d * qs[i].
 * d is kept in f32 (not f16 as in Q8_0 files) because it is never stored,
 * which also keeps the activation error at the int8 rounding alone. */
typedef struct hp_kern__q8x {
    float d;
    /* -d * sum(qs), filled by the impl's quant_q8x (not by the spec
     * hp_kern__quant_q8x): lets the Q4_0 kernel use unsigned nibbles. */
    float ne;
    int8_t qs[32];
} hp_kern__q8x;

/* Quantize n floats (n multiple of 32) to n/32 activation blocks:
 * d = amax/127, q = round(x/d). Deterministic; scalar. */
void hp_kern__quant_q8x(const float *x, hp_kern__q8x *dst, int n);

/* Computes out[b*rows + r] for r0 <= r < r1 and all b < nb. W points at row
 * 0, row_bytes apart. x is nb x cols floats; xq (when the impl asked for it,
 * else NULL) is nb x cols/32 activation blocks. Each output value's
 * arithmetic must not depend on r0, r1 or nb: that is what makes hp_matmul
 * batch- and thread-invariant. */
typedef void (*hp_kern__rows_fn)(const void *W, size_t row_bytes,
                                 const float *x, const hp_kern__q8x *xq,
                                 float *out, int r0, int r1, int rows,
                                 int cols, int nb);

/* One implementation: a row kernel per dtype (NULL = fall back to scalar). */
typedef struct hp_kern__impl {
    const char *name;
    hp_kern__rows_fn rows[HP_DT_COUNT];
    bool wants_q8x[HP_DT_COUNT]; /* hp_matmul prepares xq for this dtype */
    /* nb rows of cols floats to nb x cols/32 activation blocks; must give
     * exactly hp_kern__quant_q8x's d and qs (it is the spec), and sets ne
     * = -(d * (float)sum(qs)). */
    void (*quant_q8x)(const float *x, hp_kern__q8x *dst, int cols, int nb);
    /* hp_attn_scores / hp_attn_accum (attn.c, attn_avx2.c) */
    void (*attn_scores)(const float *q, const float *K, size_t stride, int n,
                        int D, float scale, float *s);
    void (*attn_accum)(float *o, const float *w, const float *V,
                       size_t stride, int n, int D);
} hp_kern__impl;

void hp_kern__attn_scores_ref(const float *q, const float *K, size_t stride,
                              int n, int D, float scale, float *s);
void hp_kern__attn_accum_ref(float *o, const float *w, const float *V,
                             size_t stride, int n, int D);
#if defined(HP_HAVE_AVX2)
void hp_kern__attn_scores_avx2(const float *q, const float *K, size_t stride,
                               int n, int D, float scale, float *s);
void hp_kern__attn_accum_avx2(float *o, const float *w, const float *V,
                              size_t stride, int n, int D);
#endif

extern const hp_kern__impl hp_kern__scalar;
#if defined(HP_HAVE_AVX2)
extern const hp_kern__impl hp_kern__avx2;
/* AVX2 with Q8_0/Q4_0 dequantized against f32 activations: kept so kbench
 * and tests can compare it with the integer path. */
extern const hp_kern__impl hp_kern__avx2_f32x;
#endif

/* Persistent worker threads (threadpool.c). */
typedef struct hp_kern__pool hp_kern__pool;
typedef void (*hp_kern__job_fn)(void *arg, int chunk, int ith);
/* nth threads in all: nth - 1 workers plus the caller. NULL on OOM. */
hp_kern__pool *hp_kern__pool_new(int nth);
void hp_kern__pool_free(hp_kern__pool *p); /* accepts NULL; joins */
int hp_kern__pool_threads(const hp_kern__pool *p);
/* Run fn(arg, c, ith) for every chunk c < n_chunks exactly once; chunks
 * are claimed in increasing order by whichever thread is free (the caller
 * is ith 0), so a thread slowed by another process takes fewer. Returns
 * when all chunks are done. */
void hp_kern__pool_run(hp_kern__pool *p, int n_chunks, hp_kern__job_fn fn,
                       void *arg);

/* Use im for hp_matmul from now on (tests and kbench only; no CPU check). */
void hp_kern__set(const hp_kern__impl *im);

/* The implementation hp_matmul uses now (initialises on first use). */
const hp_kern__impl *hp_kern__active(void);

#endif
