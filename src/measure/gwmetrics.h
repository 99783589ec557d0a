/* gwmetrics.h: the gateway's metrics, labelled by route and target, in
 * Prometheus text format.
 *
 * A small registry of series keyed by (family, labels): latency
 * histograms (time to first token, inter-token, end-to-end), counters
 * (requests by status, tokens by kind, cost, retries, fallbacks, cache
 * results, upstream failures by reason) and gauges (in-flight requests,
 * open circuits). Used from one thread (the gateway's event loop), so it
 * takes no lock. Labels are route and target names from the config, so the
 * number of series is bounded by the config. Knows nothing of HTTP. */
#ifndef HP_GWMETRICS_H
#define HP_GWMETRICS_H

#include <stdint.h>

typedef struct hp_gwm hp_gwm;

typedef enum hp_gwm_hist {
    HP_GWM_TTFT = 0, /* hotpath_gateway_time_to_first_token_seconds */
    HP_GWM_ITL,      /* hotpath_gateway_inter_token_latency_seconds */
    HP_GWM_E2E,      /* hotpath_gateway_e2e_request_latency_seconds */
    HP_GWM_HIST_COUNT
} hp_gwm_hist;

typedef enum hp_gwm_counter {
    HP_GWM_REQUESTS = 0, /* hotpath_gateway_requests_total{route,target,status} */
    HP_GWM_TOKENS,       /* hotpath_gateway_tokens_total{route,target,kind} */
    HP_GWM_COST,         /* hotpath_gateway_cost_usd_total{route,target} */
    HP_GWM_RETRIES,      /* hotpath_gateway_retries_total{route,target} */
    HP_GWM_FALLBACKS,    /* hotpath_gateway_fallbacks_total{route,target} */
    HP_GWM_CACHE,        /* hotpath_gateway_cache_total{route,result} */
    HP_GWM_FAILURES,     /* hotpath_gateway_upstream_failures_total{route,target,reason} */
    HP_GWM_ESTIMATED,    /* hotpath_gateway_estimated_usage_total{route,target} */
    HP_GWM_COUNTER_COUNT
} hp_gwm_counter;

typedef enum hp_gwm_gauge {
    HP_GWM_IN_FLIGHT = 0, /* hotpath_gateway_requests_in_flight{route} */
    HP_GWM_CIRCUIT_OPEN,  /* hotpath_gateway_circuit_open{route,target} */
    HP_GWM_GAUGE_COUNT
} hp_gwm_gauge;

/* NULL on OOM. */
hp_gwm *hp_gwm_new(void);
void hp_gwm_free(hp_gwm *m); /* accepts NULL */

/* Label values: route, target (NULL when the family has no target label)
 * and extra (status / kind / result / reason; NULL when none). Copied.
 * Out of memory drops the observation. */
void hp_gwm_observe(hp_gwm *m, hp_gwm_hist h, const char *route,
                    const char *target, double seconds);
void hp_gwm_add(hp_gwm *m, hp_gwm_counter c, const char *route,
                const char *target, const char *extra, double v);
void hp_gwm_set(hp_gwm *m, hp_gwm_gauge g, const char *route,
                const char *target, double v);

/* Approximate quantile q (0..1) of histogram h over all targets of route
 * (interpolated within a bucket, as Prometheus' histogram_quantile does);
 * -1 when nothing was observed. */
double hp_gwm_quantile(const hp_gwm *m, hp_gwm_hist h, const char *route,
                       double q);

/* Prometheus text exposition, malloc'd (caller frees); NULL on OOM. */
char *hp_gwm_render(const hp_gwm *m);

#endif
