/* bench_stats.h: latency sample sets and their summary (mean and
 * percentiles) for `hotpath bench`. Included by the bench files only. */
#ifndef HP_BENCH_STATS_H
#define HP_BENCH_STATS_H

#include <stdbool.h>
#include <stddef.h>

/* A growable array of samples (milliseconds). Zero-initialize to start. */
typedef struct hp_bench_samples {
    double *v; /* owns */
    size_t n, cap;
} hp_bench_samples;

/* mean and percentiles of a sample set; valid is false when it is empty. */
typedef struct hp_bench_summary {
    bool valid;
    size_t n;
    double mean, p50, p95, p99;
} hp_bench_summary;

/* Append x; false on out-of-memory (the set is unchanged). */
bool hp_bench_samples_add(hp_bench_samples *s, double x);
void hp_bench_samples_free(hp_bench_samples *s); /* keeps s reusable */

/* Sort the samples in place and summarize them. Percentiles interpolate
 * linearly between closest ranks (numpy's default), so p50 of {1,2} is
 * 1.5. */
hp_bench_summary hp_bench_samples_summary(hp_bench_samples *s);

/* Percentile q in [0,100] of n sorted values (n > 0). */
double hp_bench_percentile(const double *sorted, size_t n, double q);

#endif
