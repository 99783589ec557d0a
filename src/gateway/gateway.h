/* gateway.h: the hybrid gateway: one OpenAI-compatible API in front of
 * local models, other runtimes and hosted labs.
 *
 * Serves POST /v1/chat/completions and /v1/completions by route (the
 * client's "model" names a route of the config), GET /v1/models (the
 * routes), /health, /metrics (per route and target), and the admin API
 * (/admin/keys, /admin/usage) guarded by the admin key. One libevent loop
 * carries both the server and the upstream client (libcurl multi), so
 * there is no thread per request. Local models are reached over loopback
 * HTTP: the embedding CLI serves each one with hp_server on its own thread
 * and passes its URL here, which keeps every target on one code path.
 * Included by cli/cmd_serve.c. */
#ifndef HP_GATEWAY_H
#define HP_GATEWAY_H

#include <stddef.h>

#include "gateway/config.h"
#include "util/err.h"

/* Counts the tokens of text with a real tokenizer (used when an upstream
 * reports no usage). NULL: hotpath's byte heuristic (bytes / 4, rounded
 * up). Must be callable from the gateway's thread. */
typedef size_t (*hp_gw_count_fn)(void *ud, const char *text, size_t len);

typedef struct hp_gw_opts {
    const char *host;        /* NULL: the config's listen.host */
    int port;                /* < 0: the config's listen.port; 0: free port */
    const char *const *local_urls; /* per config model: its base URL
                                      ("http://127.0.0.1:PORT/v1"); borrowed
                                      for the call */
    const int *local_parallel;     /* per config model: its decode slots
                                      (for the hourly cost share) */
    const char *const *local_keys; /* per config model: the bearer key its
                                      loopback server requires, or NULL;
                                      copied */
    const char *db_path;     /* the resolved database path (keys, ledger) */
    size_t max_body;         /* request body limit; 0 = 8 MiB */
    hp_gw_count_fn count;    /* may be NULL */
    void *count_ud;
} hp_gw_opts;

typedef struct hp_gw hp_gw;

/* Bind and listen; read upstream keys and the admin key from the
 * environment (names from the config; an upstream whose variable is unset
 * is an error naming the variable, never its value); open the database.
 * c is borrowed and must outlive the gateway. */
hp_err hp_gw_new(const hp_gwconf *c, const hp_gw_opts *o, hp_gw **out,
                 hp_errbuf *eb);

/* The bound port. */
int hp_gw_port(const hp_gw *g);

/* Serve until SIGINT/SIGTERM or hp_gw_stop; running requests get a few
 * seconds to finish. */
hp_err hp_gw_run(hp_gw *g, hp_errbuf *eb);

/* Ask a running gateway to stop. Safe from any thread. */
void hp_gw_stop(hp_gw *g);

/* Free (not while running). Flushes the ledger. Accepts NULL. */
void hp_gw_free(hp_gw *g);

#endif
