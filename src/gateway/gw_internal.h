/* gw_internal.h: state shared by the gateway's files (gateway.c: server
 * and endpoints; gw_proxy.c: one request's exchange with its targets;
 * gw_admin.c: the admin API). Not a public header. */
#ifndef HP_GW_INTERNAL_H
#define HP_GW_INTERNAL_H

#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "gateway/anthropic.h"
#include "gateway/anthropic_in.h"
#include "gateway/config.h"
#include "gateway/gateway.h"
#include "gateway/keys.h"
#include "gateway/ledger.h"
#include "gateway/rcache.h"
#include "gateway/route.h"
#include "gateway/sse.h"
#include "gateway/upstream.h"
#include "measure/gwmetrics.h"

/* Largest upstream body buffered (non-streamed replies, error bodies). */
#define HP_GW_MAX_UPSTREAM_BODY (16u << 20)
/* Completion budget reserved (and, for keys with a budget, sent upstream)
 * when the client sets no max_tokens. */
#define HP_GW_DEFAULT_MAX_TOKENS 4096
/* Largest max_tokens accepted (keeps reservations far from overflow). */
#define HP_GW_MAX_TOKENS_LIMIT 100000000
/* Most messages (or prompts) one request may hold: a body of tiny
 * messages costs jansson ~50x its size in memory. */
#define HP_GW_MAX_MESSAGES 10000
/* A streaming client's unsent bytes above which its upstream transfer is
 * paused, and below which it resumes: a slow reader costs the gateway
 * about this much memory, not the whole stream. */
#define HP_GW_BACKLOG_HIGH (1u << 20)
#define HP_GW_BACKLOG_LOW (256u << 10)
/* Most choices (n) one request may ask for. */
#define HP_GW_MAX_CHOICES 128

typedef struct gwreq gwreq;

struct hp_gw {
    const hp_gwconf *c;          /* borrows */
    struct event_base *base;     /* owns */
    struct evhttp *http;         /* owns */
    struct hp_http_guard_set *guards; /* owns */
    struct evhttp_bound_socket *sock; /* owned by http */
    size_t max_body;
    int port;
    hp_upc *upc;                 /* owns */
    hp_routes *routes;           /* owns */
    hp_gwm *m;                   /* owns */
    hp_keys *keys;               /* owns */
    hp_ledger *ledger;           /* owns */
    hp_rcache *cache;            /* owns; NULL when off */
    char **local_urls;           /* owns; per config model */
    int *local_parallel;         /* owns */
    char **local_keys;           /* owns; per config model: secret or NULL */
    char **up_keys;              /* owns; per upstream: secret or NULL */
    char *admin_key;             /* owns; NULL = admin API off */
    hp_gw_count_fn count;
    void *count_ud;
    struct event *sig_int, *sig_term, *stop_ev, *grace_ev;
    gwreq *reqs;                 /* in flight */
    int n_reqs;
    bool stopping;
    uint64_t next_id;
};

/* One client request, from arrival to the last byte sent. */
struct gwreq {
    hp_gw *gw;                   /* borrows */
    gwreq *prev, *next;
    struct evhttp_request *req;  /* borrows; NULL once replied or gone */
    struct evhttp_connection *evcon;
    json_t *body;                /* owns: the client's request */
    bool chat, stream, include_usage;
    bool anth_in;                /* the client speaks the Messages API */
    hp_anth_out aout;            /* its stream translator */
    const hp_gwconf_route *route;
    hp_plan plan;
    int pi;                      /* plan entry being tried */
    int attempt;                 /* retries made on it */
    hp_upreq *up;                /* the transfer in flight, or NULL */
    struct event *retry_ev;      /* owns */
    struct event *drain_ev;      /* owns: polls a slow client's backlog */
    hp_gwconf_kind kind;         /* of the current target */
    int up_status;
    int up_retry_after;          /* the upstream's Retry-After, seconds */
    struct evbuffer *ubody;      /* owns: buffered upstream body */
    hp_sse sse;
    bool sse_on;
    hp_anth_stream as;
    hp_chunk_asm casm;
    json_t *reply;               /* owns: the non-streamed reply, once sent */
    bool started;                /* the client got its status line */
    bool done_seen;              /* the upstream stream ended properly */
    bool finished;
    int64_t prompt, cached, completion;
    bool have_usage;
    bool usage_estimated;        /* have_usage from hotpath's own count */
    int n_tokens_sent;           /* content chunks forwarded */
    double t0, t_first, t_last;  /* monotonic ms; 0 = not yet */
    /* the last failed attempt, for the final error */
    int last_status;             /* upstream HTTP status, 502/504 otherwise */
    char last_reason[32];
    char last_detail[200];
    char *last_body;             /* owns: upstream error body (translated) */
    size_t last_body_len;
    int last_retry_after;        /* seconds, from the upstream; 0 = none */
    hp_key_info ki;
    hp_key_resv resv;
    bool keyed;
    uint8_t ckey[HP_RCACHE_KEY_LEN];
    bool cacheable;
    int64_t est_prompt;          /* prompt tokens by hotpath's own count */
    int64_t max_tokens;          /* the client's, or 0 */
    int64_t n_choices;           /* n (or best_of), >= 1 */
    size_t body_len;             /* bytes of the client's body */
    char target[192];            /* display name of the current target */
    char id[48];
    int64_t created;
};

/* Monotonic milliseconds. */
double hp_gw_now_ms(void);

/* Tokens of text by the configured counter or the byte heuristic. */
int64_t hp_gw_count(hp_gw *g, const char *text, size_t len);

/* An error reply in the client's dialect: OpenAI's error JSON, or
 * Anthropic's when anth is set. type NULL: from status. extra_name /
 * extra_value: one more header (Retry-After, WWW-Authenticate) or NULL. */
void hp_gw_error(struct evhttp_request *req, bool anth, int status,
                 const char *type, const char *param, const char *code,
                 const char *msg, const char *extra_name,
                 const char *extra_value);

/* Send an upstream's OpenAI-shaped error body (status kept), translated
 * for a Messages client when anth. */
void hp_gw_send_error_body(struct evhttp_request *req, bool anth, int status,
                           const char *body, size_t len);

/* gw_proxy.c: take over a validated request (body already parsed,
 * route resolved, key admitted, cache missed) and answer it. */
void hp_gw_proxy_start(gwreq *r);
/* gw_proxy.c: end a request now (shutdown): a 503, or an error event if
 * its stream has started; accounted and freed. */
void hp_gw_proxy_abort(gwreq *r, const char *why);
/* gw_proxy.c: the client went away. */
void hp_gw_proxy_client_gone(gwreq *r);
/* gateway.c: forget a finished request. */
void hp_gw_req_free(gwreq *r);
/* gw_proxy.c: account a finished request (metrics, ledger, key). */
void hp_gw_account(gwreq *r, int status, bool cache_hit);

/* gw_admin.c: /admin/... ; path is the part after "/admin". */
void hp_gw_admin(hp_gw *g, struct evhttp_request *req, const char *path);

#endif
