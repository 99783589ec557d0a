/* metrics.c: the Prometheus registry of metrics.h. Bucket bounds follow
 * what vLLM exposes for the same quantities, so dashboards built for it
 * read ours with the same resolution. */
#include "measure/metrics.h"
#include "util/sbuf.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double ttft_bounds[] = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06,
                                     0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
                                     5.0, 7.5, 10.0, 20.0, 40.0, 80.0};
static const double itl_bounds[] = {0.001, 0.005, 0.01, 0.015, 0.02, 0.025,
                                    0.03, 0.04, 0.05, 0.075, 0.1, 0.15,
                                    0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5};
static const double e2e_bounds[] = {0.1, 0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5,
                                    5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0,
                                    60.0, 120.0, 240.0, 480.0};

#define MAX_BOUNDS 19
#define MAX_STATUS 16
#define N_REASONS 4

typedef struct hist {
    const char *name;
    const char *help;
    const double *bounds;
    int n_bounds;
    uint64_t counts[MAX_BOUNDS + 1]; /* per bucket, not cumulative; last = +Inf */
    double sum;
    uint64_t count;
} hist;

static const char *const reasons[N_REASONS] = {"stop", "length", "cancelled",
                                               "error"};

struct hp_metrics {
    pthread_mutex_t mu;
    char *model; /* owns; label-escaped */
    hist h[HP_M_HIST_COUNT];
    uint64_t prompt_tokens, gen_tokens;
    uint64_t finished[N_REASONS];
    int status_code[MAX_STATUS];
    uint64_t status_count[MAX_STATUS];
    int n_status;
    uint64_t pc_queries, pc_hits;
};

/* Prometheus label values escape backslash, quote and newline. */
static char *escape_label(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(2 * n + 1), *p = out;
    if (!out)
        return NULL;
    for (; *s; s++) {
        if (*s == '\\' || *s == '"') {
            *p++ = '\\';
            *p++ = *s;
        } else if (*s == '\n') {
            *p++ = '\\';
            *p++ = 'n';
        } else {
            *p++ = *s;
        }
    }
    *p = 0;
    return out;
}

static void hist_init(hist *h, const char *name, const char *help,
                      const double *b, int n)
{
    memset(h, 0, sizeof *h);
    h->name = name;
    h->help = help;
    h->bounds = b;
    h->n_bounds = n;
}

hp_metrics *hp_metrics_new(const char *model_name)
{
    hp_metrics *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->model = escape_label(model_name ? model_name : "");
    if (!m->model) {
        free(m);
        return NULL;
    }
    pthread_mutex_init(&m->mu, NULL);
#define NB(a) ((int)(sizeof a / sizeof a[0]))
    hist_init(&m->h[HP_M_TTFT], "hotpath_time_to_first_token_seconds",
              "Time from request arrival to the first generated token.",
              ttft_bounds, NB(ttft_bounds));
    hist_init(&m->h[HP_M_ITL], "hotpath_inter_token_latency_seconds",
              "Time between successive generated tokens of a sequence.",
              itl_bounds, NB(itl_bounds));
    hist_init(&m->h[HP_M_E2E], "hotpath_e2e_request_latency_seconds",
              "Time from request arrival to its last token.", e2e_bounds,
              NB(e2e_bounds));
    hist_init(&m->h[HP_M_QUEUE], "hotpath_request_queue_time_seconds",
              "Time a request waited before its prompt started.",
              ttft_bounds, NB(ttft_bounds));
#undef NB
    return m;
}

void hp_metrics_free(hp_metrics *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->mu);
    free(m->model);
    free(m);
}

void hp_metrics_observe(hp_metrics *m, hp_metric_hist which, double s)
{
    if (!m || which < 0 || which >= HP_M_HIST_COUNT)
        return;
    if (!(s >= 0)) /* NaN or negative: a clock quirk, count as zero */
        s = 0;
    pthread_mutex_lock(&m->mu);
    hist *h = &m->h[which];
    int i = 0;
    while (i < h->n_bounds && s > h->bounds[i])
        i++;
    h->counts[i]++;
    h->sum += s;
    h->count++;
    pthread_mutex_unlock(&m->mu);
}

void hp_metrics_add_tokens(hp_metrics *m, uint64_t prompt, uint64_t gen)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    m->prompt_tokens += prompt;
    m->gen_tokens += gen;
    pthread_mutex_unlock(&m->mu);
}

void hp_metrics_request_finished(hp_metrics *m, const char *reason)
{
    if (!m || !reason)
        return;
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < N_REASONS; i++)
        if (!strcmp(reasons[i], reason))
            m->finished[i]++;
    pthread_mutex_unlock(&m->mu);
}

void hp_metrics_http_status(hp_metrics *m, int status)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    int i = 0;
    while (i < m->n_status && m->status_code[i] != status)
        i++;
    if (i == m->n_status && m->n_status < MAX_STATUS) {
        m->status_code[i] = status;
        m->n_status++;
    }
    if (i < m->n_status)
        m->status_count[i]++;
    pthread_mutex_unlock(&m->mu);
}

void hp_metrics_prefix_cache(hp_metrics *m, uint64_t queries, uint64_t hits)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    m->pc_queries += queries;
    m->pc_hits += hits;
    pthread_mutex_unlock(&m->mu);
}

/* ---- rendering ---------------------------------------------------------- */

static void render_hist(hp_sbuf *b, const hist *h, const char *model)
{
    hp_sbuf_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", h->name, h->help,
              h->name);
    uint64_t cum = 0;
    for (int i = 0; i < h->n_bounds; i++) {
        cum += h->counts[i];
        hp_sbuf_printf(b, "%s_bucket{model=\"%s\",le=\"%g\"} %llu\n", h->name,
                  model, h->bounds[i], (unsigned long long)cum);
    }
    cum += h->counts[h->n_bounds];
    hp_sbuf_printf(b, "%s_bucket{model=\"%s\",le=\"+Inf\"} %llu\n", h->name, model,
              (unsigned long long)cum);
    hp_sbuf_printf(b, "%s_sum{model=\"%s\"} %.9g\n", h->name, model, h->sum);
    hp_sbuf_printf(b, "%s_count{model=\"%s\"} %llu\n", h->name, model,
              (unsigned long long)h->count);
}

static void counter(hp_sbuf *b, const char *name, const char *help,
                    const char *model, uint64_t v)
{
    hp_sbuf_printf(b, "# HELP %s %s\n# TYPE %s counter\n%s{model=\"%s\"} %llu\n",
              name, help, name, name, model, (unsigned long long)v);
}

static void gauge(hp_sbuf *b, const char *name, const char *help,
                  const char *model, long long v)
{
    hp_sbuf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n%s{model=\"%s\"} %lld\n",
              name, help, name, name, model, v);
}

char *hp_metrics_render(hp_metrics *m, const hp_metrics_gauges *g)
{
    hp_sbuf b = {0};
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < HP_M_HIST_COUNT; i++)
        render_hist(&b, &m->h[i], m->model);
    counter(&b, "hotpath_prompt_tokens_total", "Prompt tokens processed.",
            m->model, m->prompt_tokens);
    counter(&b, "hotpath_generation_tokens_total", "Tokens generated.",
            m->model, m->gen_tokens);
    hp_sbuf_printf(&b, "# HELP hotpath_requests_total Finished requests by finish reason.\n"
                  "# TYPE hotpath_requests_total counter\n");
    for (int i = 0; i < N_REASONS; i++)
        hp_sbuf_printf(&b, "hotpath_requests_total{model=\"%s\",finish_reason=\"%s\"} %llu\n",
                  m->model, reasons[i], (unsigned long long)m->finished[i]);
    hp_sbuf_printf(&b, "# HELP hotpath_http_responses_total HTTP responses by status code.\n"
                  "# TYPE hotpath_http_responses_total counter\n");
    for (int i = 0; i < m->n_status; i++)
        hp_sbuf_printf(&b, "hotpath_http_responses_total{model=\"%s\",status=\"%d\"} %llu\n",
                  m->model, m->status_code[i],
                  (unsigned long long)m->status_count[i]);
    counter(&b, "hotpath_prefix_cache_queries_total",
            "Prompt tokens looked up in the prefix cache.", m->model,
            m->pc_queries);
    counter(&b, "hotpath_prefix_cache_hits_total",
            "Prompt tokens found in the prefix cache.", m->model, m->pc_hits);
    pthread_mutex_unlock(&m->mu);
    hp_metrics_gauges zero = {0};
    if (!g)
        g = &zero;
    gauge(&b, "hotpath_num_requests_running", "Sequences in the running batch.",
          m->model, g->running);
    gauge(&b, "hotpath_num_requests_waiting", "Requests waiting in the queue.",
          m->model, g->waiting);
    gauge(&b, "hotpath_kv_cache_blocks_used", "KV-cache blocks in use.",
          m->model, (long long)g->kv_blocks_used);
    gauge(&b, "hotpath_kv_cache_blocks_total", "KV-cache blocks in the pool.",
          m->model, (long long)g->kv_blocks_total);
    return hp_sbuf_take(&b);
}
