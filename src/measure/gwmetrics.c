/* gwmetrics.c: the gateway's labelled metrics (see gwmetrics.h).
 *
 * Series live in one growable array, found by a linear scan over a hash of
 * their identity: a config has tens of routes and targets, so the scan is
 * short, and rendering walks families in a fixed order so each family's
 * HELP/TYPE lines appear once, as the exposition format requires. */
#include "measure/gwmetrics.h"
#include "util/sbuf.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Seconds; gateway latencies span sub-millisecond cache hits to minutes. */
static const double bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
                                60, 120};
#define NB (sizeof bounds / sizeof bounds[0])

typedef enum fkind { F_HIST, F_COUNTER, F_GAUGE } fkind;

typedef struct family {
    fkind kind;
    const char *name;
    const char *help;
    const char *extra_label; /* name of the third label, or NULL */
    bool has_target;
} family;

/* Order: histograms, counters, gauges, each as in the header's enums. */
static const family families[] = {
    {F_HIST, "hotpath_gateway_time_to_first_token_seconds",
     "Time from request arrival to the first token sent to the client.",
     NULL, true},
    {F_HIST, "hotpath_gateway_inter_token_latency_seconds",
     "Time between two streamed chunks sent to the client.", NULL, true},
    {F_HIST, "hotpath_gateway_e2e_request_latency_seconds",
     "Time from request arrival to the end of the response.", NULL, true},
    {F_COUNTER, "hotpath_gateway_requests_total",
     "Requests answered, by the target that answered and HTTP status.",
     "status", true},
    {F_COUNTER, "hotpath_gateway_tokens_total",
     "Tokens accounted: prompt, cached (part of prompt) and completion.",
     "kind", true},
    {F_COUNTER, "hotpath_gateway_cost_usd_total",
     "Cost in USD from the configured prices.", NULL, true},
    {F_COUNTER, "hotpath_gateway_retries_total",
     "Attempts repeated on the same target.", NULL, true},
    {F_COUNTER, "hotpath_gateway_fallbacks_total",
     "Requests moved to the next target after a failure.", NULL, true},
    {F_COUNTER, "hotpath_gateway_cache_total",
     "Response cache lookups by result.", "result", false},
    {F_COUNTER, "hotpath_gateway_upstream_failures_total",
     "Failed upstream attempts by reason.", "reason", true},
    {F_COUNTER, "hotpath_gateway_estimated_usage_total",
     "Requests whose usage the upstream did not report (counted by "
     "hotpath).", NULL, true},
    {F_GAUGE, "hotpath_gateway_requests_in_flight",
     "Requests being answered.", NULL, false},
    {F_GAUGE, "hotpath_gateway_circuit_open",
     "1 while a target's circuit breaker is open.", NULL, true},
};
#define NF (sizeof families / sizeof families[0])

typedef struct series {
    int fam;          /* index into families */
    uint64_t hash;    /* of fam and the three label values, for find() */
    char *key;        /* owns: the label values joined by \x1f */
    char *labels;     /* owns: rendered label set, e.g. route="a",target="b" */
    double value;     /* counter / gauge; histogram sum */
    uint64_t count;   /* histogram count */
    uint64_t buckets[NB]; /* histogram, non-cumulative */
} series;

struct hp_gwm {
    series *s; /* owns */
    size_t n, cap;
};

hp_gwm *hp_gwm_new(void)
{
    return calloc(1, sizeof(hp_gwm));
}

void hp_gwm_free(hp_gwm *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++) {
        free(m->s[i].labels);
        free(m->s[i].key);
    }
    free(m->s);
    free(m);
}

/* Append name="value" with the exposition format's escapes. */
static size_t put_label(char *dst, size_t cap, size_t at, const char *name,
                        const char *val)
{
    at += (size_t)snprintf(dst + at, at < cap ? cap - at : 0, "%s%s=\"",
                           at ? "," : "", name);
    for (const char *c = val ? val : ""; *c; c++) {
        const char *esc = *c == '\\' ? "\\\\" : *c == '"' ? "\\\""
                          : *c == '\n' ? "\\n" : NULL;
        if (esc) {
            at += (size_t)snprintf(dst + at, at < cap ? cap - at : 0, "%s",
                                   esc);
        } else {
            if (at + 1 < cap)
                dst[at] = *c;
            at++;
        }
    }
    if (at + 1 < cap)
        dst[at] = '"';
    at++;
    if (at < cap)
        dst[at] = '\0';
    return at;
}

/* FNV-1a over the label values; a series is found without formatting
 * its labels (several updates per request). */
static uint64_t fnv(uint64_t h, const char *v)
{
    for (const unsigned char *c = (const unsigned char *)(v ? v : ""); *c; c++)
        h = (h ^ *c) * 0x100000001b3ull;
    return (h ^ 0x1f) * 0x100000001b3ull;
}

static series *find(hp_gwm *m, int fam, const char *route, const char *target,
                    const char *extra)
{
    const family *f = &families[fam];
    if (!f->has_target)
        target = NULL;
    if (!f->extra_label)
        extra = NULL;
    uint64_t h = fnv(fnv(fnv(0xcbf29ce484222325ull ^ (uint64_t)fam, route),
                         target), extra);
    char key[600];
    int kl = snprintf(key, sizeof key, "%s\x1f%s\x1f%s", route ? route : "",
                      target ? target : "", extra ? extra : "");
    if (kl < 0 || (size_t)kl >= sizeof key)
        key[sizeof key - 1] = '\0'; /* absurdly long names: truncated */
    for (size_t i = 0; i < m->n; i++)
        if (m->s[i].hash == h && m->s[i].fam == fam &&
            !strcmp(m->s[i].key, key))
            return &m->s[i];
    char lab[512];
    size_t at = put_label(lab, sizeof lab, 0, "route", route);
    if (f->has_target)
        at = put_label(lab, sizeof lab, at, "target", target);
    if (f->extra_label)
        at = put_label(lab, sizeof lab, at, f->extra_label, extra);
    if (at >= sizeof lab)
        lab[sizeof lab - 1] = '\0';
    if (m->n == m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 32;
        series *ns = realloc(m->s, nc * sizeof *ns);
        if (!ns)
            return NULL;
        m->s = ns;
        m->cap = nc;
    }
    series *s = &m->s[m->n];
    memset(s, 0, sizeof *s);
    s->fam = fam;
    s->hash = h;
    s->labels = strdup(lab);
    s->key = strdup(key);
    if (!s->labels || !s->key) {
        free(s->labels);
        free(s->key);
        return NULL;
    }
    m->n++;
    return s;
}

void hp_gwm_observe(hp_gwm *m, hp_gwm_hist h, const char *route,
                    const char *target, double seconds)
{
    if (!m || (int)h < 0 || h >= HP_GWM_HIST_COUNT)
        return;
    series *s = find(m, (int)h, route, target, NULL);
    if (!s)
        return;
    if (seconds < 0)
        seconds = 0;
    size_t b = 0;
    while (b < NB && seconds > bounds[b])
        b++;
    if (b < NB)
        s->buckets[b]++;
    s->count++;
    s->value += seconds;
}

void hp_gwm_add(hp_gwm *m, hp_gwm_counter c, const char *route,
                const char *target, const char *extra, double v)
{
    if (!m || (int)c < 0 || c >= HP_GWM_COUNTER_COUNT || v < 0)
        return;
    series *s = find(m, HP_GWM_HIST_COUNT + (int)c, route, target, extra);
    if (s)
        s->value += v;
}

void hp_gwm_set(hp_gwm *m, hp_gwm_gauge g, const char *route,
                const char *target, double v)
{
    if (!m || (int)g < 0 || g >= HP_GWM_GAUGE_COUNT)
        return;
    series *s = find(m, HP_GWM_HIST_COUNT + HP_GWM_COUNTER_COUNT + (int)g,
                     route, target, NULL);
    if (s)
        s->value = v;
}

double hp_gwm_quantile(const hp_gwm *m, hp_gwm_hist h, const char *route,
                       double q)
{
    if (!m || (int)h < 0 || h >= HP_GWM_HIST_COUNT || q < 0 || q > 1)
        return -1;
    char want[300];
    size_t wl = put_label(want, sizeof want, 0, "route", route);
    uint64_t b[NB + 1] = {0}, total = 0;
    for (size_t i = 0; i < m->n; i++) {
        const series *s = &m->s[i];
        /* the route label comes first, then ",target=..." */
        if (s->fam != (int)h || strncmp(s->labels, want, wl) != 0 ||
            (s->labels[wl] != '\0' && s->labels[wl] != ','))
            continue;
        uint64_t in = 0;
        for (size_t k = 0; k < NB; k++) {
            b[k] += s->buckets[k];
            in += s->buckets[k];
        }
        b[NB] += s->count - in; /* above the last bound */
        total += s->count;
    }
    if (!total)
        return -1;
    double rank = q * (double)total, seen = 0;
    for (size_t k = 0; k <= NB; k++) {
        if (seen + (double)b[k] >= rank && b[k]) {
            if (k == NB)
                return bounds[NB - 1];
            double lo = k ? bounds[k - 1] : 0, hi = bounds[k];
            return lo + (hi - lo) * (rank - seen) / (double)b[k];
        }
        seen += (double)b[k];
    }
    return bounds[NB - 1];
}

char *hp_gwm_render(const hp_gwm *m)
{
    hp_sbuf b = {0};
    for (size_t f = 0; f < NF && m; f++) {
        const family *fa = &families[f];
        bool any = false;
        for (size_t i = 0; i < m->n; i++) {
            const series *s = &m->s[i];
            if (s->fam != (int)f)
                continue;
            if (!any) {
                hp_sbuf_printf(&b, "# HELP %s %s\n# TYPE %s %s\n", fa->name,
                          fa->help, fa->name,
                          fa->kind == F_HIST ? "histogram"
                          : fa->kind == F_COUNTER ? "counter" : "gauge");
                any = true;
            }
            if (fa->kind != F_HIST) {
                hp_sbuf_printf(&b, "%s{%s} %.17g\n", fa->name, s->labels, s->value);
                continue;
            }
            uint64_t cum = 0;
            for (size_t k = 0; k < NB; k++) {
                cum += s->buckets[k];
                hp_sbuf_printf(&b, "%s_bucket{%s,le=\"%g\"} %llu\n", fa->name,
                          s->labels, bounds[k], (unsigned long long)cum);
            }
            hp_sbuf_printf(&b, "%s_bucket{%s,le=\"+Inf\"} %llu\n", fa->name,
                      s->labels, (unsigned long long)s->count);
            hp_sbuf_printf(&b, "%s_sum{%s} %.9g\n%s_count{%s} %llu\n", fa->name,
                      s->labels, s->value, fa->name, s->labels,
                      (unsigned long long)s->count);
        }
    }
    return hp_sbuf_take(&b);
}
