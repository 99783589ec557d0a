/* metrics.h: serving metrics in Prometheus text format.
 *
 * One registry per served model: latency histograms (time to first token,
 * inter-token latency, end-to-end latency, queue time), counters (tokens,
 * requests by finish reason and by HTTP status, prefix-cache queries and
 * hits) and gauges read at render time. Updates take a mutex: they happen
 * a few hundred times a second at most, far from the forward pass.
 * Counters only increase; histogram buckets are cumulative when rendered.
 * Knows nothing of HTTP or models beyond a name. Included by engine/ and
 * server/. */
#ifndef HP_METRICS_H
#define HP_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct hp_metrics hp_metrics;

typedef enum hp_metric_hist {
    HP_M_TTFT = 0,  /* hotpath_time_to_first_token_seconds */
    HP_M_ITL,       /* hotpath_inter_token_latency_seconds */
    HP_M_E2E,       /* hotpath_e2e_request_latency_seconds */
    HP_M_QUEUE,     /* hotpath_request_queue_time_seconds */
    HP_M_HIST_COUNT
} hp_metric_hist;

/* Values sampled at render time from the engine. */
typedef struct hp_metrics_gauges {
    int running;
    int waiting;
    int64_t kv_blocks_used;
    int64_t kv_blocks_total;
} hp_metrics_gauges;

/* model_name is copied (used as the `model` label). NULL on OOM. */
hp_metrics *hp_metrics_new(const char *model_name);
void hp_metrics_free(hp_metrics *m); /* accepts NULL */

/* Record one observation in seconds. */
void hp_metrics_observe(hp_metrics *m, hp_metric_hist h, double seconds);
void hp_metrics_add_tokens(hp_metrics *m, uint64_t prompt, uint64_t gen);
/* A finished request; reason is "stop", "length", "cancelled" or "error". */
void hp_metrics_request_finished(hp_metrics *m, const char *reason);
/* An HTTP response with this status was sent. */
void hp_metrics_http_status(hp_metrics *m, int status);
/* Prefix-cache lookups in tokens: queried and found. */
void hp_metrics_prefix_cache(hp_metrics *m, uint64_t queries, uint64_t hits);

/* Render everything as Prometheus text exposition into a malloc'd,
 * NUL-terminated string (caller frees). NULL on OOM. */
char *hp_metrics_render(hp_metrics *m, const hp_metrics_gauges *g);

#endif
