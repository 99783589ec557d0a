/* bench_run.h: drive a load test against an OpenAI-compatible HTTP server
 * for `hotpath bench`: build the requests, send them closed-loop (N
 * clients) or open-loop (Poisson arrivals), parse the replies (SSE when
 * streaming) and collect latency samples.
 *
 * One libcurl multi handle drives every transfer from the calling thread;
 * there is no thread per request. Included by cmd_bench.c only; prints
 * nothing (progress goes through a callback). */
#ifndef HP_BENCH_RUN_H
#define HP_BENCH_RUN_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "cli/bench_stats.h"
#include "util/err.h"

typedef enum hp_bench_endpoint {
    HP_BENCH_COMPLETIONS, /* POST {url}/v1/completions, "prompt" */
    HP_BENCH_CHAT         /* POST {url}/v1/chat/completions, "messages" */
} hp_bench_endpoint;

/* What to run. Strings are borrowed for the duration of hp_bench_run. */
typedef struct hp_bench_config {
    const char *url;     /* borrows: base URL, "http://host:port[/v1]" */
    const char *model;   /* borrows */
    const char *api_key; /* borrows: sent as a Bearer token; NULL = none */
    hp_bench_endpoint endpoint;
    bool stream;
    int concurrency;     /* closed loop with this many clients, when > 0 */
    double rate;         /* else open loop: Poisson arrivals per second */
    long requests;       /* total requests to send */
    int prompt_tokens;   /* synthetic prompt length (words) */
    int max_tokens;      /* max_tokens of each request (ignore_eos set) */
    int shared_prefix;   /* leading prompt words identical across requests */
    double slo_ttft_ms;  /* <= 0: no TTFT objective */
    double slo_itl_ms;   /* <= 0: no ITL objective (mean ITL per request) */
    uint64_t seed;
    double timeout_s;    /* per request, whole transfer */
} hp_bench_config;

/* Open-loop runs hold at most this many requests in flight; arrivals past
 * it wait (counted in hp_bench_result.delayed) so file descriptors stay
 * bounded. */
#define HP_BENCH_MAX_INFLIGHT 1000

/* Snapshot handed to the progress callback about 4 times a second. */
typedef struct hp_bench_progress {
    long done, total, errors, inflight;
    double elapsed_s;
} hp_bench_progress;

typedef void (*hp_bench_progress_fn)(const hp_bench_progress *p, void *ud);

/* Outcome of a run. Latency samples are in milliseconds, over successful
 * requests only: ttft/tpot/e2e one per request (tpot only when streaming
 * and the request produced 2+ tokens), itl one per gap between successive
 * content chunks of any request. */
typedef struct hp_bench_result {
    long sent, ok, errors, good;
    long err_http;      /* non-2xx status, or an error object in the reply */
    long err_transport; /* connection failures, malformed or cut replies */
    long err_timeout;   /* over timeout_s */
    long delayed;       /* open-loop arrivals held back by the cap */
    long long input_tokens, output_tokens; /* usage sums (ok requests) */
    double duration_s;  /* first send to last completion */
    bool interrupted;   /* *stop was raised before the end */
    hp_bench_samples ttft, itl, tpot, e2e; /* owns */
    char first_error[256]; /* first failure, for the user ("" if none) */
} hp_bench_result;

/* Run the load test described by c. stop (may be NULL) is polled: when it
 * becomes non-zero, transfers are abandoned and the partial result kept.
 * Returns HP_OK when the run completed, even with failed requests;
 * HP_ERR_IO when the server cannot be reached at all (eb names the URL);
 * HP_ERR_NOMEM / HP_ERR_INTERNAL for local failures. *out is always
 * initialized and must be released with hp_bench_result_free. */
hp_err hp_bench_run(const hp_bench_config *c, hp_bench_progress_fn fn,
                    void *ud, const volatile sig_atomic_t *stop,
                    hp_bench_result *out, hp_errbuf *eb);
void hp_bench_result_free(hp_bench_result *r);

/* The full request URL for c ("{url}/v1/completions", not doubling a /v1
 * the base already ends with). Caller owns the malloc'd string. */
char *hp_bench_endpoint_url(const hp_bench_config *c);

#endif
