/* matmul.c: hp_matmul (dispatch, activation quantization, OpenMP row
 * split), the kernel context that owns its scratch, the double-precision
 * reference hp_matmul_ref, hp_get_row, and the portable scalar row kernels.
 *
 * Determinism contract: every output value out[b*rows + r] is computed by
 * exactly one thread, by a row kernel whose arithmetic for that value does
 * not depend on nb, on the row range it was given, or on the thread count.
 * Threads split rows (output features), never the inner dimension. So a
 * token's logits are bit-identical whether it is evaluated alone or in a
 * batch, with 1 or 16 threads. The SIMD kernels live in matmul_avx2.c. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/kern_impl.h"
#include "kernels/kern_k.h"
#include "kernels/kernels.h"

struct hp_kctx {
    int n_threads;
    hp_kern__pool *pool; /* owns: workers, created on first parallel use */
    hp_kern__q8x *xq; /* owns: activation blocks, grows, never shrinks */
    size_t xq_cap;    /* blocks allocated */
};

hp_kctx *hp_kctx_new(int n_threads)
{
    hp_kctx *k = calloc(1, sizeof(*k));
    if (k == NULL)
        return NULL;
    if (n_threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = n > 0 ? (int)n : 1;
    }
    if (n_threads > 512)
        n_threads = 512;
    k->n_threads = n_threads;
    return k;
}

void hp_kctx_free(hp_kctx *k)
{
    if (k == NULL)
        return;
    hp_kern__pool_free(k->pool);
    free(k->xq);
    free(k);
}

/* The pool, created on first use; NULL (run serially) if threads cannot
 * be created. */
static hp_kern__pool *get_pool(hp_kctx *k)
{
    if (k->pool == NULL && k->n_threads > 1)
        k->pool = hp_kern__pool_new(k->n_threads);
    return k->pool;
}

void hp_kctx_parallel(hp_kctx *k, int n_chunks, hp_kctx_fn fn, void *arg)
{
    if (fn == NULL || n_chunks <= 0)
        return;
    if (k == NULL || k->n_threads <= 1 || n_chunks == 1 ||
        get_pool(k) == NULL) {
        for (int c = 0; c < n_chunks; c++)
            fn(arg, c, 0);
        return;
    }
    hp_kern__pool_run(k->pool, n_chunks, fn, arg);
}

int hp_kctx_threads(const hp_kctx *k)
{
    return k ? k->n_threads : 1;
}

/* Grow the activation scratch to n blocks; false on out-of-memory. */
static bool reserve_xq(hp_kctx *k, size_t n)
{
    if (n <= k->xq_cap)
        return true;
    size_t cap = k->xq_cap ? k->xq_cap : 256;
    while (cap < n)
        cap *= 2;
    void *p = aligned_alloc(64, (cap * sizeof(hp_kern__q8x) + 63) / 64 * 64);
    if (p == NULL)
        return false;
    free(k->xq);
    k->xq = p;
    k->xq_cap = cap;
    return true;
}

/* ---- scalar row kernels ---------------------------------------------------
 * Dequantize a chunk of the weight row (one block, or 32 elements for the
 * float types) to the stack, then dot it with up to 8 activation columns.
 * Per output value: a float partial sum per chunk, added in chunk order to
 * a float accumulator; this order is the same for any nb. */

#define SCALAR_NB 8

static void rows_generic(hp_dtype t, const void *W, size_t row_bytes,
                         const float *x, float *out, int r0, int r1,
                         int rows, int cols, int nb)
{
    const hp_kern__quant *q = hp_kern__quant_ops(t);
    int64_t be = hp_dtype_block_elems(t), bb = hp_dtype_block_bytes(t);
    int chunk = be > 1 ? (int)be : 32;
    float buf[256];
    for (int r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)W + (size_t)r * row_bytes;
        for (int b0 = 0; b0 < nb; b0 += SCALAR_NB) {
            int nbb = nb - b0 < SCALAR_NB ? nb - b0 : SCALAR_NB;
            float acc[SCALAR_NB] = {0};
            for (int c0 = 0; c0 < cols; c0 += chunk) {
                int n = cols - c0 < chunk ? cols - c0 : chunk;
                q->dequant(row + (size_t)(c0 / be) * (size_t)bb, buf, n);
                for (int j = 0; j < nbb; j++) {
                    const float *xv = x + (size_t)(b0 + j) * cols + c0;
                    float s = 0.0f;
                    for (int i = 0; i < n; i++)
                        s += buf[i] * xv[i];
                    acc[j] += s;
                }
            }
            for (int j = 0; j < nbb; j++)
                out[(size_t)(b0 + j) * rows + r] = acc[j];
        }
    }
}

#define SCALAR_WRAP(NAME, DT)                                                  \
    static void NAME(const void *W, size_t row_bytes, const float *x,          \
                     const hp_kern__q8x *xq, float *out, int r0, int r1,       \
                     int rows, int cols, int nb)                               \
    {                                                                          \
        (void)xq;                                                              \
        rows_generic(DT, W, row_bytes, x, out, r0, r1, rows, cols, nb);        \
    }
SCALAR_WRAP(rows_f32, HP_DT_F32)
SCALAR_WRAP(rows_f16, HP_DT_F16)
SCALAR_WRAP(rows_bf16, HP_DT_BF16)
SCALAR_WRAP(rows_q8_0, HP_DT_Q8_0)
SCALAR_WRAP(rows_q4_0, HP_DT_Q4_0)

static void quant_q8x_rows(const float *x, hp_kern__q8x *dst, int cols,
                           int nb)
{
    size_t nblk = (size_t)(cols / 32);
    for (int b = 0; b < nb; b++)
        hp_kern__quant_q8x(x + (size_t)b * cols, dst + b * nblk, cols);
    for (size_t i = 0; i < (size_t)nb * nblk; i++) {
        int sum = 0;
        for (int j = 0; j < 32; j++)
            sum += dst[i].qs[j];
        dst[i].ne = -(dst[i].d * (float)sum);
    }
}

const hp_kern__impl hp_kern__scalar = {
    .name = "scalar",
    .quant_q8x = quant_q8x_rows,
    .attn_scores = hp_kern__attn_scores_ref,
    .attn_accum = hp_kern__attn_accum_ref,
    .rows = {[HP_DT_F32] = rows_f32, [HP_DT_F16] = rows_f16,
             [HP_DT_BF16] = rows_bf16, [HP_DT_Q8_0] = rows_q8_0,
             [HP_DT_Q4_0] = rows_q4_0,
             /* matmul_k.c */
             [HP_DT_Q4_1] = hp_kern__rows_q4_1_scalar,
             [HP_DT_Q5_0] = hp_kern__rows_q5_0_scalar,
             [HP_DT_Q5_1] = hp_kern__rows_q5_1_scalar,
             [HP_DT_Q4_K] = hp_kern__rows_q4_k_scalar,
             [HP_DT_Q5_K] = hp_kern__rows_q5_k_scalar,
             [HP_DT_Q6_K] = hp_kern__rows_q6_k_scalar},
};

/* ---- dispatch ---------------------------------------------------------- */

/* Below this many weight elements a matmul runs on the calling thread:
 * waking the other thread and waiting for it (~1 us with spinning workers)
 * costs more than the work (64K MACs is ~10 us scalar, ~2 us AVX2). */
#define MT_MIN_WORK (1 << 16)

/* Rows are handed out in groups of 4 so SIMD kernels keep whole row tiles
 * per thread (tiles change speed only, never results). */
#define ROW_GROUP 4

typedef struct mm_job {
    hp_kern__rows_fn fn;
    const void *W;
    size_t rb;
    const float *x;
    const hp_kern__q8x *xq;
    float *out;
    int rows, cols, nb;
    int chunk_rows; /* a multiple of ROW_GROUP */
} mm_job;

/* One chunk of rows: which thread computes a row never affects its value,
 * only speed. */
static void mm_chunk(void *arg, int c, int ith)
{
    (void)ith;
    const mm_job *j = arg;
    int r0 = c * j->chunk_rows;
    int r1 = r0 + j->chunk_rows < j->rows ? r0 + j->chunk_rows : j->rows;
    if (r0 < r1)
        j->fn(j->W, j->rb, j->x, j->xq, j->out, r0, r1, j->rows, j->cols,
              j->nb);
}

/* Chunks per thread: enough that a thread slowed by another process hands
 * work to the free one, few enough that claiming (one CAS) stays cheap. */
#define CHUNKS_PER_THREAD 8

void hp_matmul(hp_kctx *k, hp_dtype t, const void *W, const float *x,
               float *out, int rows, int cols, int nb)
{
    if (out == NULL || rows <= 0 || nb <= 0)
        return;
    int64_t rb = hp_dtype_row_bytes(t, cols);
    bool ok = k != NULL && W != NULL && x != NULL && cols > 0 && rb > 0 &&
              hp_dtype_supported(t);
    if (!ok) {
        /* Programming error upstream (loader should have checked
         * hp_dtype_supported); never crash, leave a defined result. */
        memset(out, 0, (size_t)rows * (size_t)nb * sizeof(float));
        return;
    }
    const hp_kern__impl *im = hp_kern__active();
    hp_kern__rows_fn fn = im->rows[t];
    bool q8 = im->wants_q8x[t];
    if (fn == NULL) {
        fn = hp_kern__scalar.rows[t];
        q8 = false;
    }
    const hp_kern__q8x *xq = NULL;
    if (q8) {
        size_t nblk = (size_t)(cols / 32);
        if (cols % 32 != 0 || !reserve_xq(k, nblk * (size_t)nb)) {
            fn = hp_kern__scalar.rows[t]; /* cannot happen for Q types */
        } else {
            im->quant_q8x(x, k->xq, cols, nb);
            xq = k->xq;
        }
    }
    int nt = k->n_threads;
    int ngroups = (rows + ROW_GROUP - 1) / ROW_GROUP;
    if ((double)rows * cols * nb < MT_MIN_WORK || ngroups < 2)
        nt = 1;
    if (nt <= 1 || get_pool(k) == NULL) {
        fn(W, (size_t)rb, x, xq, out, 0, rows, rows, cols, nb);
        return;
    }
    int nchunks = nt * CHUNKS_PER_THREAD;
    if (nchunks > ngroups)
        nchunks = ngroups;
    int per = (ngroups + nchunks - 1) / nchunks;
    mm_job j = {fn, W, (size_t)rb, x, xq, out, rows, cols, nb,
                per * ROW_GROUP};
    nchunks = (rows + j.chunk_rows - 1) / j.chunk_rows;
    hp_kern__pool_run(k->pool, nchunks, mm_chunk, &j);
}

/* ---- fused products ------------------------------------------------------ */

#define MULTI_MAX 8

typedef struct multi_job {
    mm_job j[MULTI_MAX];
    int first[MULTI_MAX + 1]; /* chunk index where op i starts */
    int n;
} multi_job;

static void multi_chunk(void *arg, int c, int ith)
{
    const multi_job *m = arg;
    int i = 0;
    while (i + 1 < m->n && c >= m->first[i + 1])
        i++;
    mm_chunk((void *)&m->j[i], c - m->first[i], ith);
}

void hp_matmul_multi(hp_kctx *k, const hp_matmul_op *ops, int n,
                     const float *x, int cols, int nb)
{
    if (ops == NULL || n <= 0 || nb <= 0)
        return;
    const hp_kern__impl *im = hp_kern__active();
    bool fused = k != NULL && x != NULL && cols > 0 && cols % 32 == 0 &&
                 n <= MULTI_MAX && k->n_threads > 1;
    bool any_q8 = false;
    for (int i = 0; fused && i < n; i++) {
        hp_dtype t = ops[i].type;
        fused = ops[i].W != NULL && ops[i].out != NULL && ops[i].rows > 0 &&
                hp_dtype_supported(t) && hp_dtype_row_bytes(t, cols) > 0 &&
                im->rows[t] != NULL;
        any_q8 = any_q8 || (fused && im->wants_q8x[t]);
    }
    size_t nblk = (size_t)cols / 32;
    if (fused && any_q8 && !reserve_xq(k, nblk * (size_t)nb))
        fused = false;
    if (!fused || get_pool(k) == NULL) {
        for (int i = 0; i < n; i++)
            hp_matmul(k, ops[i].type, ops[i].W, x, ops[i].out, ops[i].rows,
                      cols, nb);
        return;
    }
    if (any_q8)
        im->quant_q8x(x, k->xq, cols, nb);
    multi_job m;
    m.n = n;
    m.first[0] = 0;
    long long total_groups = 0;
    for (int i = 0; i < n; i++)
        total_groups += (ops[i].rows + ROW_GROUP - 1) / ROW_GROUP;
    /* chunks spread over the ops in proportion to their rows */
    int want = k->n_threads * CHUNKS_PER_THREAD;
    for (int i = 0; i < n; i++) {
        hp_dtype t = ops[i].type;
        int ngroups = (ops[i].rows + ROW_GROUP - 1) / ROW_GROUP;
        int nchunks = (int)((long long)want * ngroups / total_groups);
        if (nchunks < 1)
            nchunks = 1;
        if (nchunks > ngroups)
            nchunks = ngroups;
        int per = (ngroups + nchunks - 1) / nchunks;
        m.j[i] = (mm_job){im->rows[t], ops[i].W,
                          (size_t)hp_dtype_row_bytes(t, cols), x,
                          im->wants_q8x[t] ? k->xq : NULL, ops[i].out,
                          ops[i].rows, cols, nb, per * ROW_GROUP};
        nchunks = (ops[i].rows + m.j[i].chunk_rows - 1) / m.j[i].chunk_rows;
        m.first[i + 1] = m.first[i] + nchunks;
    }
    hp_kern__pool_run(k->pool, m.first[n], multi_chunk, &m);
}

/* ---- reference ---------------------------------------------------------- */

void hp_matmul_ref(hp_dtype t, const void *W, const float *x, float *out,
                   int rows, int cols, int nb)
{
    if (out == NULL || rows <= 0 || nb <= 0)
        return;
    int64_t rb = hp_dtype_row_bytes(t, cols);
    float *w = NULL;
    if (W != NULL && x != NULL && cols > 0 && rb > 0 && hp_dtype_supported(t))
        w = malloc((size_t)cols * sizeof(float));
    if (w == NULL) {
        memset(out, 0, (size_t)rows * (size_t)nb * sizeof(float));
        return;
    }
    for (int r = 0; r < rows; r++) {
        hp_dequant_row_ref(t, (const uint8_t *)W + (size_t)r * (size_t)rb, w,
                           cols);
        for (int b = 0; b < nb; b++) {
            const float *xv = x + (size_t)b * cols;
            double s = 0.0;
            for (int c = 0; c < cols; c++)
                s += (double)w[c] * (double)xv[c];
            out[(size_t)b * rows + r] = (float)s;
        }
    }
    free(w);
}

void hp_get_row(hp_dtype t, const void *E, int64_t row, int cols, float *dst)
{
    int64_t rb = hp_dtype_row_bytes(t, cols);
    if (dst == NULL || cols <= 0)
        return;
    if (E == NULL || row < 0 || rb <= 0 || !hp_dtype_supported(t)) {
        memset(dst, 0, (size_t)cols * sizeof(float));
        return;
    }
    hp_dequant_row_ref(t, (const uint8_t *)E + (size_t)row * (size_t)rb, dst,
                       cols);
}
