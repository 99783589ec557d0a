/* bench_stats.c: sample sets and percentile summaries (see bench_stats.h). */
#include "cli/bench_stats.h"

#include <stdlib.h>

bool hp_bench_samples_add(hp_bench_samples *s, double x)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        double *nv = realloc(s->v, cap * sizeof *nv);
        if (!nv)
            return false;
        s->v = nv;
        s->cap = cap;
    }
    s->v[s->n++] = x;
    return true;
}

void hp_bench_samples_free(hp_bench_samples *s)
{
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double hp_bench_percentile(const double *sorted, size_t n, double q)
{
    double pos = q / 100.0 * (double)(n - 1);
    size_t lo = (size_t)pos;
    if (lo + 1 >= n)
        return sorted[n - 1];
    double frac = pos - (double)lo;
    return sorted[lo] + (sorted[lo + 1] - sorted[lo]) * frac;
}

hp_bench_summary hp_bench_samples_summary(hp_bench_samples *s)
{
    hp_bench_summary r = {0};
    if (s->n == 0)
        return r;
    qsort(s->v, s->n, sizeof *s->v, cmp_double);
    double sum = 0;
    for (size_t i = 0; i < s->n; i++)
        sum += s->v[i];
    r.valid = true;
    r.n = s->n;
    r.mean = sum / (double)s->n;
    r.p50 = hp_bench_percentile(s->v, s->n, 50);
    r.p95 = hp_bench_percentile(s->v, s->n, 95);
    r.p99 = hp_bench_percentile(s->v, s->n, 99);
    return r;
}
