/* upstream.h: the gateway's HTTP client: libcurl multi driven by the
 * server's own libevent loop.
 *
 * One hp_upc per event base. Each transfer (hp_upreq) is a curl easy handle
 * added to the multi handle; curl's sockets and timer are watched with
 * libevent events (CURLMOPT_SOCKETFUNCTION / CURLMOPT_TIMERFUNCTION), so
 * there is no thread per request and HTTP/1.1 keep-alive, connection reuse
 * and TLS come from libcurl. Body bytes are handed to the caller as they
 * arrive (streaming passthrough).
 *
 * Every callback runs on the loop thread. Callbacks may call
 * hp_upreq_cancel on their own transfer (or any other) and may start new
 * transfers; the client defers the curl clean-up until the callback
 * returns. on_done is called exactly once per started transfer unless the
 * transfer was cancelled first, and never from inside hp_upc_start.
 * Included by gateway/; knows nothing of OpenAI or routes. */
#ifndef HP_GATEWAY_UPSTREAM_H
#define HP_GATEWAY_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

struct event_base;

typedef struct hp_upc hp_upc;       /* a client: one curl multi handle */
typedef struct hp_upreq hp_upreq;   /* one transfer */

/* How a transfer ended. */
typedef enum hp_up_end {
    HP_UP_OK = 0,          /* the whole response arrived */
    HP_UP_CONNECT,         /* DNS failure, connection refused, TLS error */
    HP_UP_TIMEOUT_CONNECT, /* connect_ms passed before the connection was up */
    HP_UP_TIMEOUT_FIRST,   /* first_byte_ms passed with no body byte yet */
    HP_UP_TIMEOUT_IDLE,    /* idle_ms passed between two body reads (a stall) */
    HP_UP_TIMEOUT_TOTAL,   /* total_ms passed */
    HP_UP_CUT,             /* the peer closed before the response ended
                              (short body, broken chunked encoding, reset) */
    HP_UP_OTHER            /* anything else libcurl reports */
} hp_up_end;

/* "ok", "connect", "timeout_connect", ... Never NULL. */
const char *hp_up_end_name(hp_up_end e);

typedef struct hp_up_cbs {
    /* Response status line and headers are complete (called once, before
     * any on_body). content_type may be NULL; it is only valid during the
     * call. May be NULL. */
    void (*on_status)(hp_upreq *r, int status, const char *content_type,
                      void *ud);
    /* Body bytes as they arrive (never with len 0). Only valid during the
     * call. May be NULL. */
    void (*on_body)(hp_upreq *r, const char *data, size_t len, void *ud);
    /* The transfer is over. detail is a short human message (libcurl's
     * error text, "stalled 5000 ms", ...), valid during the call. r is
     * freed right after this returns. Required. */
    void (*on_done)(hp_upreq *r, hp_up_end end, const char *detail,
                    void *ud);
} hp_up_cbs;

typedef struct hp_up_opts {
    const char *method;      /* "GET" or "POST" (default "POST" when body) */
    const char *url;         /* borrowed for the call */
    const char *const *headers; /* NULL-terminated "Name: value" lines,
                                   copied; may be NULL */
    const char *body;        /* copied; may be NULL */
    size_t body_len;
    int64_t connect_ms;      /* > 0 */
    int64_t first_byte_ms;   /* from start to the first body byte; 0 = none */
    int64_t idle_ms;         /* longest gap between body reads; 0 = none */
    int64_t total_ms;        /* whole transfer; 0 = none */
} hp_up_opts;

/* A client on base (borrowed; must outlive the client). Calls
 * curl_global_init once per process. HP_ERR_NOMEM / HP_ERR_INTERNAL. */
hp_err hp_upc_new(struct event_base *base, hp_upc **out, hp_errbuf *eb);

/* Cancel every transfer (no callbacks) and free. Accepts NULL. */
void hp_upc_free(hp_upc *c);

/* Start a transfer. On HP_OK *out (may be NULL if not wanted) is a handle
 * valid until on_done returns or hp_upreq_cancel is called. ud is passed to
 * every callback. HP_ERR_INVALID for a missing url/method,
 * HP_ERR_NOMEM. */
hp_err hp_upc_start(hp_upc *c, const hp_up_opts *o, const hp_up_cbs *cb,
                    void *ud, hp_upreq **out, hp_errbuf *eb);

/* Stop a transfer now: no further callbacks, and its connection is closed
 * (not returned to the pool) before this returns or, when called from one
 * of r's own callbacks, as soon as that callback returns. */
void hp_upreq_cancel(hp_upreq *r);

/* Backpressure for a slow reader: after hp_upreq_hold, body bytes stay
 * with curl (the transfer is paused; nothing more is read from the
 * upstream's socket) until hp_upreq_resume, which may deliver them through
 * on_body before it returns. While held, the idle (stall) timeout does not
 * run; the first-byte and total timeouts still do. Must not be called
 * from r's own on_done. */
void hp_upreq_hold(hp_upreq *r);
void hp_upreq_resume(hp_upreq *r);

/* The response's Retry-After header in seconds (0 when absent or not a
 * number of seconds). Valid from on_status until on_done returns. */
int hp_upreq_retry_after(const hp_upreq *r);

/* Transfers in progress (for tests and metrics). */
size_t hp_upc_active(const hp_upc *c);

#endif
