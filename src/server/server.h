/* server.h: the OpenAI-compatible HTTP server (libevent evhttp).
 *
 * Routes POST /v1/completions, POST /v1/chat/completions, GET /v1/models,
 * GET /health and GET /metrics (also without the /v1 prefix) to one
 * hp_engine, optionally behind an API key (opts.api_key). Runs a
 * single event-loop thread; the engine delivers events on its scheduler
 * thread, which the server copies into a per-request queue and hands to the
 * loop with event_active(). Knows HTTP and JSON; never sees a tensor.
 * Included by cli/cmd_serve.c. */
#ifndef HP_SERVER_H
#define HP_SERVER_H

#include <stddef.h>

#include "engine/engine.h"

struct hp_metrics;
#include "util/err.h"

typedef struct hp_server_opts {
    const char *host;       /* borrows; default "127.0.0.1" */
    int port;               /* 0: pick a free port */
    size_t max_body;        /* request body limit in bytes; default 8 MiB */
    const char *model_name; /* borrows; default the model's name */
    int timeout_s;          /* connection read/write timeout; default 600 */
    struct hp_metrics *metrics; /* borrows: served at GET /metrics and fed
                                   HTTP statuses; NULL disables both */
    int no_signals;         /* non-zero: do not stop on SIGINT/SIGTERM (an
                               embedding process, e.g. the gateway, owns
                               them and calls hp_server_stop) */
    const char *api_key;    /* borrows; NULL or "" = no auth. When set,
                               every request but GET/HEAD /health and
                               /metrics needs "Authorization: Bearer KEY"
                               (else 401 invalid_api_key). Probes and
                               Prometheus scrapers usually carry no key,
                               and vLLM leaves those two open as well.
                               Only a SHA-256 of it is kept; never logged */
} hp_server_opts;

void hp_server_opts_default(hp_server_opts *o);

typedef struct hp_server hp_server;

/* Bind and listen (but do not serve yet). The engine is borrowed and must
 * outlive the server. HP_ERR_IO with eb naming host:port when the address
 * is in use or cannot be bound. Calls evthread_use_pthreads() first. */
hp_err hp_server_new(hp_engine *e, const hp_server_opts *o, hp_server **out,
                     hp_errbuf *eb);

/* The bound port (the real one when opts.port was 0). */
int hp_server_port(const hp_server *s);
/* The served model id. */
const char *hp_server_model_name(const hp_server *s);

/* Serve until SIGINT/SIGTERM or hp_server_stop. On stop, running requests
 * are cancelled and the loop waits (at most a few seconds) for the engine to
 * finish them before returning HP_OK. */
hp_err hp_server_run(hp_server *s, hp_errbuf *eb);

/* Ask a running server to stop. Safe from any thread and from a signal
 * handler's thread context (it only activates an event). */
void hp_server_stop(hp_server *s);

/* Free; the server must not be running. Accepts NULL. */
void hp_server_free(hp_server *s);

#endif
