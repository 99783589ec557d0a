/* kbench.c: kernel benchmark. Prints, per implementation and dtype, the
 * weight bytes streamed per second by hp_matmul for matvec (nb = 1) and a
 * batch (nb = 16), and a memory read-bandwidth probe (the roofline a decode
 * step can reach). Not a test: run by hand, numbers go in docs/BENCHMARKS.md.
 *
 *   kbench [rows cols] [threads] [impl] [dtype]
 *   default 2048 x 8192, all cores, every impl and dtype
 *
 * Weights are cycled over copies totalling >= 512 MiB so every call streams
 * from DRAM, not from the (large, shared) L3 of a server CPU. */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/kern_impl.h"
#include "kernels/kernels.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- memory read bandwidth ------------------------------------------------ */

/* 8 independent accumulators so the loop is bound by loads, not add latency. */
__attribute__((target("avx2"))) static double read_sum(const float *p, size_t n)
{
    __m256 a[8];
    for (int i = 0; i < 8; i++)
        a[i] = _mm256_setzero_ps();
    for (size_t i = 0; i + 64 <= n; i += 64)
        for (int j = 0; j < 8; j++)
            a[j] = _mm256_add_ps(a[j], _mm256_load_ps(p + i + 8 * j));
    for (int j = 1; j < 8; j++)
        a[0] = _mm256_add_ps(a[0], a[j]);
    float t[8];
    _mm256_storeu_ps(t, a[0]);
    return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}

/* Best-of-n GB/s reading `bytes` with nt threads, each its own slice. */
static double mem_bw(const float *buf, size_t bytes, int nt, int n, double *sink)
{
    double best = 0.0;
    size_t nf = bytes / sizeof(float);
    for (int rep = 0; rep < n; rep++) {
        double t0 = now(), s = 0.0;
#pragma omp parallel for num_threads(nt) reduction(+ : s)
        for (int i = 0; i < nt; i++) {
            size_t a = nf / nt * i / 64 * 64, b = nf / nt * (i + 1) / 64 * 64;
            s += read_sum(buf + a, b - a);
        }
        double gbs = bytes / (now() - t0) / 1e9;
        *sink += s;
        if (gbs > best)
            best = gbs;
    }
    return best;
}

/* ---- matmul --------------------------------------------------------------- */

typedef struct bench_res {
    double ms, gbs, gflops, cpu_ms;
} bench_res;

/* Process CPU time: on a shared, oversubscribed box the 1-thread CPU time
 * per call is a steadier figure than wall time (time spent descheduled is
 * not counted). */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static bench_res bench(hp_kctx *k, hp_dtype t, uint8_t *W, size_t mat_bytes,
                       int copies, const float *x, float *out, int rows,
                       int cols, int nb)
{
    hp_matmul(k, t, W, x, out, rows, cols, nb); /* warm-up */
    int calls = 0;
    double c0 = cpu_now();
    double t0 = now(), el = 0.0;
    while (el < 0.4 || calls < 3) {
        hp_matmul(k, t, W + (size_t)(calls % copies) * mat_bytes, x, out, rows,
                  cols, nb);
        calls++;
        el = now() - t0;
    }
    bench_res r;
    r.cpu_ms = (cpu_now() - c0) / calls * 1e3;
    r.ms = el / calls * 1e3;
    r.gbs = (double)mat_bytes * calls / el / 1e9;
    r.gflops = 2.0 * rows * cols * nb * calls / el / 1e9;
    return r;
}

int main(int argc, char **argv)
{
    int rows = 2048, cols = 8192, nt = 0;
    if (argc >= 3) {
        rows = (int)strtol(argv[1], NULL, 10);
        cols = (int)strtol(argv[2], NULL, 10);
    }
    if (argc >= 4)
        nt = (int)strtol(argv[3], NULL, 10);
    const char *only_impl = argc >= 5 ? argv[4] : NULL;
    const char *only_type = argc >= 6 ? argv[5] : NULL;
    if (rows <= 0 || cols <= 0 || cols % 32 != 0) {
        fprintf(stderr, "usage: kbench [rows cols(multiple of 32)] [threads]\n");
        return 2;
    }
    hp_kctx *k = hp_kctx_new(nt);
    nt = hp_kctx_threads(k);
    double sink = 0.0;

    size_t gib = (size_t)1 << 30;
    if (only_impl != NULL)
        gib >>= 3; /* a quick focused run: 128 MiB probe */
    float *buf = aligned_alloc(64, gib);
    if (buf == NULL)
        return 1;
    memset(buf, 1, gib); /* fault the pages in before timing */
    printf("memory read bandwidth (1 GiB, AVX2 8 accumulators, best of 5)\n");
    printf("  1 thread : %6.1f GB/s\n", mem_bw(buf, gib, 1, 5, &sink));
    if (nt > 1)
        printf("  %d threads: %6.1f GB/s\n", nt, mem_bw(buf, gib, nt, 5, &sink));
    free(buf);

    const hp_kern__impl *impls[3];
    int ni = 0;
    impls[ni++] = &hp_kern__scalar;
#if defined(HP_HAVE_AVX2)
    if (hp_kernels_force("avx2")) {
        impls[ni++] = &hp_kern__avx2;
        impls[ni++] = &hp_kern__avx2_f32x;
    }
#endif
    static const hp_dtype types[] = {HP_DT_F32,  HP_DT_F16,  HP_DT_BF16,
                                     HP_DT_Q8_0, HP_DT_Q4_0, HP_DT_Q4_1,
                                     HP_DT_Q5_0, HP_DT_Q5_1, HP_DT_Q4_K,
                                     HP_DT_Q5_K, HP_DT_Q6_K};
    float *w = malloc(sizeof(float) * (size_t)cols);
    float *x = malloc(sizeof(float) * (size_t)512 * cols);
    float *out = malloc(sizeof(float) * (size_t)512 * rows);
    for (int i = 0; i < 512 * cols; i++)
        x[i] = (float)((i * 7919) % 2001 - 1000) / 1000.0f;
    printf("\nmatmul %d x %d, weights cycled over >= 512 MiB; %d threads\n",
           rows, cols, nt);
    printf("%-10s %-5s %3s %4s %9s %12s %9s %9s\n", "impl", "dtype", "nb",
           "thr", "ms/call", "weight GB/s", "GFLOP/s", "cpu ms");
    for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++) {
        hp_dtype t = types[ti];
        if (only_type != NULL && strcmp(only_type, hp_dtype_name(t)) != 0)
            continue;
        size_t rb = (size_t)hp_dtype_row_bytes(t, cols);
        size_t mat = rb * rows;
        int copies = (int)(((size_t)512 << 20) / mat + 1);
        if (getenv("KBENCH_HOT") != NULL)
            copies = 1; /* one matrix: cache-resident if it fits */
        uint8_t *W = malloc(mat * copies);
        if (W == NULL)
            return 1;
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++)
                w[c] = (float)(((r * 131 + c * 71) % 997) - 498) / 500.0f;
            hp_quant_row_ref(t, w, W + (size_t)r * rb, cols);
        }
        for (int c = 1; c < copies; c++)
            memcpy(W + (size_t)c * mat, W, mat);
        for (int ii = 0; ii < ni; ii++) {
            if (only_impl != NULL && strcmp(only_impl, impls[ii]->name) != 0)
                continue;
            hp_kern__set(impls[ii]);
            int nbs[8] = {1, 16}, nnb = 2;
            /* KBENCH_NB=1,16,128 picks the batch sizes */
            const char *env = getenv("KBENCH_NB");
            if (env != NULL) {
                nnb = 0;
                for (char *e = (char *)env; *e != '\0' && nnb < 8;) {
                    long v = strtol(e, &e, 10);
                    if (v > 0 && v <= 512)
                        nbs[nnb++] = (int)v;
                    while (*e == ',')
                        e++;
                    if (v <= 0)
                        break;
                }
            }
            for (int bi = 0; bi < nnb; bi++) {
                int thr[2] = {1, nt};
                for (int ki = 0; ki < (nt > 1 ? 2 : 1); ki++) {
                    hp_kctx *kk = hp_kctx_new(thr[ki]);
                    bench_res r = bench(kk, t, W, mat, copies, x, out, rows,
                                        cols, nbs[bi]);
                    printf("%-10s %-5s %3d %4d %9.3f %12.2f %9.2f %9.3f\n",
                           impls[ii]->name, hp_dtype_name(t), nbs[bi],
                           thr[ki], r.ms, r.gbs, r.gflops, r.cpu_ms);
                    fflush(stdout);
                    hp_kctx_free(kk);
                }
            }
        }
        free(W);
    }
    hp_kernels_init();
    free(w);
    free(x);
    free(out);
    hp_kctx_free(k);
    return sink == 42.0 ? 3 : 0; /* keep the probe's loads alive */
}
