/* server.c: owns the HTTP server's lifecycle, routing and the bridge between
 * libevent's loop and the engine's scheduler thread (hp_server_*).
 *
 * Threads: the event loop runs on the thread that calls hp_server_run; the
 * engine calls on_engine_event on its scheduler thread. That callback only
 * copies the event into the request's queue (a mutex-protected list) and
 * calls event_active() on the request's wake event, which libevent (in
 * pthreads mode) turns into on_wake on the loop thread; only the loop
 * thread touches evhttp objects.
 *
 * Lifetime of a request's state (sreq): it holds two references, the
 * loop's and the engine's. The engine's is dropped inside the callback that
 * queues END or ERROR, under the same lock as the event_active call, so the
 * loop (which drops its own reference only after draining that END, and
 * only once the HTTP side is finished: reply sent or connection closed)
 * always frees it, on its own thread, after the engine is done with it.
 *
 * Client disconnects: the connection's close callback cancels the engine
 * request; the evhttp_request is not touched afterwards (a request libevent
 * detached from the dying connection is freed inside that callback, as
 * libevent hands its ownership to us then). Non-streamed requests wait
 * without sending anything, so read events are enabled with no read
 * callback (what evhttp itself does while it writes a reply) to learn about
 * a close early.
 *
 * Request heads are checked before libevent reads a body (http_guard.c):
 * an oversized, invalid or conflicting Content-Length, a long URL or large
 * headers come back here as a synthetic request for HP_HTTP_GUARD_PATH and
 * are answered at once. A chunked body over the limit is still refused by
 * libevent (evhttp_set_max_body_size); http_err.c rewrites its HTML pages
 * to OpenAI JSON. libevent's own log lines go through on_libevent_log.
 *
 * With an API key (opts.api_key), auth_ok runs after those framing checks
 * and before routing, so no body is parsed for an unauthorised client.
 * Knows HTTP and JSON; never sees a tensor. */
#include "server/server.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <event2/util.h>
#include <errno.h>
#include <jansson.h>
#include <netdb.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "measure/metrics.h"
#include "model/kvcache.h"
#include "model/model.h"
#include "server/http_err.h"
#include "server/http_guard.h"
#include "server/openai_req.h"
#include "server/openai_resp.h"
#include "util/arena.h"

/* Grace period for running requests when the server stops. */
#define STOP_GRACE_S 5

typedef struct sreq sreq;

static void finish_stop(hp_server *srv);

struct hp_server {
    hp_engine *engine;          /* borrows */
    const hp_model *model;      /* borrows */
    char *model_name;           /* owns */
    char *host;                 /* owns */
    size_t max_body;            /* read by connections' rewrite callback */
    int timeout_s;
    int port;
    long long created;          /* /v1/models "created" */
    struct hp_metrics *metrics; /* borrows: /metrics registry, or NULL */
    struct event_base *base;    /* owns */
    struct evhttp *http;        /* owns */
    hp_http_guard_set *guards;  /* owns: request-head checks */
    struct evhttp_bound_socket *sock; /* owned by http */
    struct evconnlistener *listener;  /* owned by http (via sock) */
    struct event *accept_retry; /* owns: re-enables accept after EMFILE */
    bool accept_paused;         /* out of descriptors; logged once */
    struct event *sig_int, *sig_term; /* owns */
    struct event *stop_ev;      /* owns: activated by hp_server_stop */
    struct event *grace_ev;     /* owns: stop deadline */
    sreq *reqs;                 /* in-flight requests (loop thread only) */
    int n_reqs;
    bool stopping;
    bool no_signals;            /* the embedding process owns SIGINT/TERM */
    bool auth;                  /* an API key is required (opts.api_key) */
    unsigned char key_sha[32];  /* SHA-256 of the key; the key is not kept */
};

/* One engine event, copied off the scheduler thread. */
typedef struct qnode {
    struct qnode *next;
    hp_event_kind kind;
    int index;
    int32_t token;
    hp_finish finish;
    int prompt_tokens, completion_tokens;
    bool has_lp;
    hp_token_logprob lp;
    size_t len;
    char text[]; /* TOKEN/CHOICE_END text or ERROR message, NUL-terminated */
} qnode;

struct sreq {
    hp_server *srv;             /* borrows */
    sreq *prev, *next;          /* srv->reqs (loop thread) */
    struct evhttp_request *req; /* borrows; NULL once replied or closed */
    struct evhttp_connection *evcon; /* borrows; valid while req != NULL */
    hp_request *ereq;           /* owns a reference */
    hp_oai_resp *resp;          /* owns */
    hp_oai_out out;             /* owns: scratch for the records to send */
    struct event *wake;         /* owns: activated by the engine callback */
    bool stream;
    bool end_seen;              /* loop drained END/ERROR */
    bool cancelled;             /* a choice ended CANCELLED */
    pthread_mutex_t mu;
    qnode *head, *tail;         /* mu */
    bool engine_done;           /* mu: END/ERROR queued (or lost to OOM) */
    int refs;                   /* mu: loop + engine */
};

/* ---- request state -------------------------------------------------------- */

static void sreq_free(sreq *s)
{
    hp_server *srv = s->srv;
    if (s->prev)
        s->prev->next = s->next;
    else if (srv->reqs == s)
        srv->reqs = s->next;
    if (s->next)
        s->next->prev = s->prev;
    srv->n_reqs--;
    qnode *q = s->head;
    while (q) {
        qnode *n = q->next;
        free(q);
        q = n;
    }
    if (s->wake)
        event_free(s->wake);
    hp_request_release(s->ereq);
    hp_openai_resp_free(s->resp);
    hp_oai_out_free(&s->out);
    pthread_mutex_destroy(&s->mu);
    free(s);
    if (srv->stopping && srv->n_reqs == 0)
        finish_stop(srv);
}

/* Drop one reference; the last one frees. Only the loop thread frees (see
 * the file comment), so the engine's drop never reaches zero. */
static void sreq_unref(sreq *s)
{
    pthread_mutex_lock(&s->mu);
    int left = --s->refs;
    pthread_mutex_unlock(&s->mu);
    if (left == 0)
        sreq_free(s);
}

/* The HTTP side is finished: forget the request and its connection. */
static void http_detach(sreq *s)
{
    if (s->req && s->evcon)
        evhttp_connection_set_closecb(s->evcon, NULL, NULL);
    s->req = NULL;
    s->evcon = NULL;
}

/* Drop the loop's reference once both sides are finished. */
static void sreq_maybe_done(sreq *s)
{
    if (s->end_seen && !s->req) {
        s->end_seen = false; /* drop only once */
        sreq_unref(s);
    }
}

/* ---- engine thread -> loop ------------------------------------------------ */

static void on_engine_event(const hp_event *ev, void *ud)
{
    sreq *s = ud;
    const char *txt = ev->kind == HP_EV_ERROR ? ev->message : ev->text;
    size_t len = ev->kind == HP_EV_ERROR ? (txt ? strlen(txt) : 0)
                                         : (txt ? ev->len : 0);
    qnode *q = malloc(sizeof *q + len + 1);
    if (q) {
        q->next = NULL;
        q->kind = ev->kind;
        q->index = ev->index;
        q->token = ev->token;
        q->finish = ev->finish;
        q->prompt_tokens = ev->prompt_tokens;
        q->completion_tokens = ev->completion_tokens;
        q->has_lp = ev->lp != NULL;
        if (ev->lp)
            q->lp = *ev->lp;
        q->len = len;
        if (len)
            memcpy(q->text, txt, len);
        q->text[len] = '\0';
    }
    bool last = ev->kind == HP_EV_END || ev->kind == HP_EV_ERROR;
    pthread_mutex_lock(&s->mu);
    if (q) {
        if (s->tail)
            s->tail->next = q;
        else
            s->head = q;
        s->tail = q;
    }
    if (last) {
        s->engine_done = true;
        s->refs--; /* the engine's reference; the loop still holds one */
    }
    event_active(s->wake, EV_READ, 1);
    pthread_mutex_unlock(&s->mu);
}

/* ---- replies ------------------------------------------------------------- */

static void send_err(struct evhttp_request *req, const hp_oai_error *e)
{
    hp_http_err_send(req, e->status, e->type, e->param, e->code, e->message,
                     NULL, NULL);
}

static void stream_write(sreq *s)
{
    if (!s->req || s->out.len == 0)
        return;
    struct evbuffer *b = evbuffer_new();
    if (b) {
        evbuffer_add(b, s->out.data, s->out.len);
        evhttp_send_reply_chunk(s->req, b);
        evbuffer_free(b);
    }
    hp_oai_out_clear(&s->out);
}

static void stream_end(sreq *s)
{
    stream_write(s);
    struct evhttp_request *req = s->req;
    http_detach(s);
    if (req)
        evhttp_send_reply_end(req);
}

/* One queued event, on the loop thread. */
static void handle_event(sreq *s, const qnode *q)
{
    if (q->kind == HP_EV_END || q->kind == HP_EV_ERROR)
        s->end_seen = true;
    if (q->kind == HP_EV_CHOICE_END && q->finish == HP_FINISH_CANCELLED)
        s->cancelled = true;
    if (!s->req)
        return; /* client gone: just wait for END */
    hp_event ev = {
        .kind = q->kind,
        .index = q->index,
        .text = q->text,
        .len = q->len,
        .token = q->token,
        .lp = q->has_lp ? &q->lp : NULL,
        .finish = q->finish,
        .prompt_tokens = q->prompt_tokens,
        .completion_tokens = q->completion_tokens,
        .message = q->text,
    };
    if (!s->stream) {
        struct evhttp_request *req = s->req;
        if (q->kind == HP_EV_ERROR) {
            http_detach(s);
            hp_http_err_send(req, 500, "server_error", NULL, NULL,
                             q->text[0] ? q->text : "generation failed",
                             NULL, NULL);
            return;
        }
        bool done = hp_openai_resp_event(s->resp, &ev, &s->out);
        if (!done)
            return;
        http_detach(s);
        if (s->cancelled && s->srv->stopping)
            hp_http_err_send(req, 503, "server_error", NULL, NULL,
                             "The server is shutting down", NULL, NULL);
        else if (s->out.oom)
            hp_http_err_send(req, 500, "server_error", NULL, NULL,
                             "out of memory building the response", NULL,
                             NULL);
        else
            hp_http_send_json(req, 200, s->out.data ? s->out.data : "{}",
                      s->out.len);
        return;
    }
    if (q->kind == HP_EV_CHOICE_END && q->finish == HP_FINISH_CANCELLED &&
        s->srv->stopping) {
        /* cut off by shutdown: the stream must not look complete, so it
         * ends with an in-band error event and no [DONE] */
        char *err = hp_http_err_json("The server is shutting down; the "
                                     "generation was cut off",
                                     "server_error", NULL, "shutdown");
        if (err) {
            hp_oai_out_clear(&s->out);
            struct evbuffer *b = evbuffer_new();
            if (b) {
                evbuffer_add_printf(b, "data: %s\n\n", err);
                evhttp_send_reply_chunk(s->req, b);
                evbuffer_free(b);
            }
            free(err);
        }
        struct evhttp_request *req = s->req;
        http_detach(s);
        evhttp_send_reply_end(req);
        return;
    }
    bool done = hp_openai_resp_event(s->resp, &ev, &s->out);
    if (done)
        stream_end(s);
    else
        stream_write(s);
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sreq *s = arg;
    pthread_mutex_lock(&s->mu);
    qnode *q = s->head;
    s->head = s->tail = NULL;
    bool engine_done = s->engine_done;
    pthread_mutex_unlock(&s->mu);
    while (q) {
        qnode *n = q->next;
        handle_event(s, q);
        free(q);
        q = n;
    }
    if (engine_done && !s->end_seen && s->req) {
        /* the END node was lost to out-of-memory: end as a failure */
        qnode err = {.kind = HP_EV_ERROR};
        handle_event(s, &err);
    }
    if (engine_done)
        s->end_seen = true;
    sreq_maybe_done(s);
}

/* The client went away (or the server is freeing connections). */
static void on_conn_close(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    sreq *s = arg;
    struct evhttp_request *req = s->req;
    s->req = NULL;
    s->evcon = NULL;
    /* libevent detaches an unfinished request from a connection that fails
     * (evcon becomes NULL) and leaves it to us; otherwise it frees it
     * itself with the connection. */
    if (req && evhttp_request_get_connection(req) == NULL)
        evhttp_request_free(req);
    hp_request_cancel(s->ereq);
    sreq_maybe_done(s);
}

/* ---- endpoints -------------------------------------------------------- */

/* Positions one sequence can really use: the context size, unless the KV
 * pool (--kv-memory) holds fewer. */
static int max_model_len(const hp_server *srv)
{
    const hp_engine_opts *o = hp_engine_options(srv->engine);
    long long pool = (long long)o->kv_blocks * HP_KV_BLOCK;
    return pool > 0 && pool < o->n_ctx ? (int)pool : o->n_ctx;
}

static void handle_generate(hp_server *srv, struct evhttp_request *req,
                            hp_oai_kind kind)
{
    hp_oai_error err = {0};
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    if (len > srv->max_body) {
        hp_openai_error_set(&err, 413, "invalid_request_error", NULL, NULL,
                            "The request body is too large: the limit is %zu "
                            "bytes",
                            srv->max_body);
        send_err(req, &err);
        return;
    }
    const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
    if (!body) {
        hp_http_err_send(req, 500, NULL, NULL, NULL, "out of memory", NULL,
                         NULL);
        return;
    }
    hp_arena *a = hp_arena_new(0);
    sreq *s = calloc(1, sizeof *s);
    if (!a || !s) {
        hp_arena_free(a);
        free(s);
        hp_http_err_send(req, 500, NULL, NULL, NULL, "out of memory", NULL,
                         NULL);
        return;
    }
    const hp_model *m = srv->model;
    hp_oai_limits lim = {.model_name = srv->model_name,
                         .n_vocab = hp_vocab_size(m->vocab)};
    hp_oai_req r;
    int32_t *ids = NULL;
    int n_ids = 0;
    hp_err e = hp_openai_req_parse(kind, body, len, &lim, a, &r, &err);
    if (e == HP_OK)
        e = hp_openai_req_tokens(&r, m, a, &ids, &n_ids, &err);
    if (e == HP_OK)
        e = hp_openai_req_fit_context(
            &r, n_ids, max_model_len(srv), &err);
    if (e != HP_OK) {
        send_err(req, &err);
        goto fail;
    }

    hp_oai_resp_opts ro = {.kind = kind,
                           .model = r.model,
                           .n = r.gen.n,
                           .logprobs = r.logprobs,
                           .stream = r.stream,
                           .include_usage = r.include_usage,
                           .vocab = m->vocab};
    if (r.echo) {
        if (r.prompt) {
            ro.echo = r.prompt;
            ro.echo_len = r.prompt_len;
        } else {
            size_t cap = (size_t)n_ids * 64 + 1;
            char *t = hp_arena_alloc(a, cap);
            if (t) {
                size_t n = hp_detokenize(m->vocab, ids, n_ids, true, t, cap);
                ro.echo = t;
                ro.echo_len = n < cap ? n : cap - 1;
            }
        }
    }
    s->srv = srv;
    s->stream = r.stream;
    s->refs = 1;
    pthread_mutex_init(&s->mu, NULL);
    s->resp = hp_openai_resp_new(&ro);
    s->wake = event_new(srv->base, -1, 0, on_wake, s);
    if (!s->resp || !s->wake) {
        hp_http_err_send(req, 500, NULL, NULL, NULL, "out of memory", NULL,
                         NULL);
        goto fail_state;
    }
    s->refs = 2; /* loop + engine, set before the engine can call back */
    hp_errbuf eb = {{0}};
    e = hp_engine_submit(srv->engine, ids, n_ids, &r.gen, on_engine_event, s,
                         &s->ereq, &eb);
    if (e != HP_OK) {
        s->refs = 1;
        if (e == HP_ERR_AGAIN)
            hp_http_err_send(req, 429, "rate_limit_error", NULL,
                             "queue_full",
                             "The server is busy: too many requests are "
                             "queued. Retry shortly.",
                             "Retry-After", "1");
        else if (e == HP_ERR_RANGE)
            hp_http_err_send(req, 400, NULL,
                             kind == HP_OAI_CHAT ? "messages" : "prompt",
                             "context_length_exceeded", eb.msg, NULL, NULL);
        else if (e == HP_ERR_INVALID)
            hp_http_err_send(req, 400, NULL, NULL, NULL, eb.msg, NULL, NULL);
        else
            hp_http_err_send(req, 500, NULL, NULL, NULL,
                             eb.msg[0] ? eb.msg : hp_strerror(e), NULL,
                             NULL);
        goto fail_state;
    }
    hp_arena_free(a); /* the engine copied what it keeps */

    s->req = req;
    s->evcon = evhttp_request_get_connection(req);
    s->next = srv->reqs;
    if (srv->reqs)
        srv->reqs->prev = s;
    srv->reqs = s;
    srv->n_reqs++;
    if (s->evcon)
        evhttp_connection_set_closecb(s->evcon, on_conn_close, s);
    if (s->stream) {
        struct evkeyvalq *h = evhttp_request_get_output_headers(req);
        evhttp_add_header(h, "Content-Type", "text/event-stream");
        evhttp_add_header(h, "Cache-Control", "no-cache");
        evhttp_add_header(h, "X-Accel-Buffering", "no");
        /* HTTP/1.0 has no chunked encoding: the stream is delimited by
         * closing the connection (else libevent would announce a
         * Content-Length of 0 on a keep-alive reply) */
        /* libevent 2.1 exposes the version only in http_struct.h; it
         * decides keep-alive from the request's Connection header, so
         * dropping that makes it close after the stream */
        if (req->major == 1 && req->minor == 0)
            evhttp_remove_header(evhttp_request_get_input_headers(req),
                                 "Connection");
        evhttp_send_reply_start(req, 200, "OK");
        hp_openai_resp_begin(s->resp, &s->out);
        stream_write(s);
    } else if (s->evcon) {
        hp_http_watch_close(s->evcon);
    }
    return;

fail_state:
    if (s->wake)
        event_free(s->wake);
    hp_openai_resp_free(s->resp);
    pthread_mutex_destroy(&s->mu);
fail:
    free(s);
    hp_arena_free(a);
}

static json_t *model_object(const hp_server *srv)
{
    return json_pack("{s:s,s:s,s:I,s:s,s:I}", "id", srv->model_name,
                     "object", "model", "created", (json_int_t)srv->created,
                     "owned_by", "hotpath", "max_model_len",
                     (json_int_t)max_model_len(srv));
}

/* GET /v1/models, or /v1/models/{id} (the SDK's models.retrieve()) when id
 * is non-NULL: the served model, or 404. */
static void handle_models(hp_server *srv, struct evhttp_request *req,
                          const char *id)
{
    json_t *o;
    if (id) {
        char *dec = evhttp_uridecode(id, 0, NULL);
        bool match = dec && strcmp(dec, srv->model_name) == 0;
        if (!match) {
            char msg[200];
            snprintf(msg, sizeof msg, "The model '%.100s' does not exist",
                     dec ? dec : id);
            free(dec);
            hp_http_err_send(req, 404, "invalid_request_error", "model",
                             "model_not_found", msg, NULL, NULL);
            return;
        }
        free(dec);
        o = model_object(srv);
    } else {
        json_t *m = model_object(srv);
        o = m ? json_pack("{s:s,s:[o]}", "object", "list", "data", m) : NULL;
    }
    char *s = o ? json_dumps(o, JSON_PRESERVE_ORDER | JSON_COMPACT) : NULL;
    json_decref(o);
    if (s)
        hp_http_send_json(req, 200, s, strlen(s));
    else
        hp_http_err_send(req, 500, NULL, NULL, NULL, "out of memory", NULL,
                         NULL);
    free(s);
}

static void handle_health(hp_server *srv, struct evhttp_request *req)
{
    (void)srv;
    static const char ok[] = "{\"status\":\"ok\"}";
    hp_http_send_json(req, 200, ok, sizeof ok - 1);
}

/* GET /metrics: Prometheus text; gauges are read from the engine now. */
static void handle_metrics(hp_server *srv, struct evhttp_request *req)
{
    hp_engine_stats st;
    hp_engine_get_stats(srv->engine, &st);
    hp_metrics_gauges g = {st.running, st.waiting, st.kv_blocks_used,
                           st.kv_blocks_total};
    char *text = srv->metrics ? hp_metrics_render(srv->metrics, &g) : NULL;
    if (!text) {
        hp_http_err_send(req, 503, "server_error", NULL, NULL,
                         srv->metrics ? "out of memory"
                                      : "metrics are not enabled",
                         NULL, NULL);
        return;
    }
    struct evbuffer *b = evbuffer_new();
    if (!b) {
        free(text);
        return;
    }
    evbuffer_add(b, text, strlen(text));
    free(text);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4; charset=utf-8");
    hp_http_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
}

/* Count every API response by status once it is complete. /health and
 * /metrics are left out so that probes and scrapes do not move the
 * counters they read. */
static void on_complete(struct evhttp_request *req, void *arg)
{
    hp_server *srv = arg;
    hp_metrics_http_status(srv->metrics, evhttp_request_get_response_code(req));
}

typedef enum route_id { R_COMPLETIONS, R_CHAT, R_MODELS, R_MODEL, R_HEALTH,
                        R_METRICS } route_id;

typedef struct route {
    const char *path; /* without the optional /v1 prefix; a trailing '*'
                         matches any non-empty rest */
    enum evhttp_cmd_type method;
    const char *allow;
    route_id id;
} route;

static const route routes[] = {
    {"/completions", EVHTTP_REQ_POST, "POST", R_COMPLETIONS},
    {"/chat/completions", EVHTTP_REQ_POST, "POST", R_CHAT},
    {"/models", EVHTTP_REQ_GET, "GET, HEAD", R_MODELS},
    {"/models/*", EVHTTP_REQ_GET, "GET, HEAD", R_MODEL},
    {"/health", EVHTTP_REQ_GET, "GET, HEAD", R_HEALTH},
    {"/metrics", EVHTTP_REQ_GET, "GET, HEAD", R_METRICS},
};

/* The API key check: true when req may go on, else it was answered 401.
 * p is the normalised path without /v1. GET/HEAD /health and /metrics stay
 * open: load balancers' probes and Prometheus scrapers usually carry no
 * key, and vLLM leaves them open too. The Bearer token is hashed and the
 * digests compared with CRYPTO_memcmp, so the time taken reveals neither
 * the key's bytes nor its length. A second Authorization header is
 * refused rather than guessing which one counts. */
static bool auth_ok(const hp_server *srv, struct evhttp_request *req,
                    const char *p, enum evhttp_cmd_type method)
{
    if (!srv->auth || ((method == EVHTTP_REQ_GET ||
                        method == EVHTTP_REQ_HEAD) &&
                       (!strcmp(p, "/health") || !strcmp(p, "/metrics"))))
        return true;
    const struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    const char *a = NULL;
    int n = 0;
    for (const struct evkeyval *kv = h->tqh_first; kv; kv = kv->next.tqe_next)
        if (!evutil_ascii_strcasecmp(kv->key, "Authorization")) {
            a = kv->value;
            n++;
        }
    const char *msg = "Incorrect API key provided";
    if (!a || (n == 1 && evutil_ascii_strncasecmp(a, "Bearer ", 7) != 0)) {
        msg = "Missing API key: send it as 'Authorization: Bearer KEY'";
    } else if (n == 1) {
        const char *k = a + 7;
        while (*k == ' ')
            k++;
        unsigned char d[EVP_MAX_MD_SIZE];
        unsigned int dl = 0;
        if (*k && EVP_Digest(k, strlen(k), d, &dl, EVP_sha256(), NULL) == 1 &&
            dl == sizeof srv->key_sha &&
            CRYPTO_memcmp(d, srv->key_sha, sizeof srv->key_sha) == 0)
            return true;
    }
    hp_http_err_send(req, 401, "invalid_request_error", NULL,
                     "invalid_api_key", msg, "WWW-Authenticate", "Bearer");
    return false;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    hp_server *srv = arg;
    const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
    const char *path = u ? evhttp_uri_get_path(u) : NULL;
    if (!path || !path[0])
        path = "/";
    char norm[256];
    size_t pl = strlen(path);
    if (pl >= sizeof norm)
        pl = sizeof norm - 1;
    memcpy(norm, path, pl);
    norm[pl] = '\0';
    while (pl > 1 && norm[pl - 1] == '/') /* "/v1/models/" == "/v1/models" */
        norm[--pl] = '\0';
    const char *p = norm;
    if (!strncmp(p, "/v1/", 4))
        p += 3;
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    if (srv->metrics && strcmp(p, "/health") != 0 && strcmp(p, "/metrics") != 0)
        evhttp_request_set_on_complete_cb(req, on_complete, srv);
    if (!strcmp(norm, HP_HTTP_GUARD_PATH)) {
        /* a head http_guard.c refused; the connection closes after this */
        const char *msg = NULL;
        int st = hp_http_guard_rejection(evhttp_request_get_input_headers(req),
                                         &msg);
        if (st) {
            hp_http_err_send(req, st, NULL, NULL, NULL, msg, NULL, NULL);
            return;
        }
    }
    if (!auth_ok(srv, req, p, method))
        return;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        const route *rt = &routes[i];
        size_t rl = strlen(rt->path);
        if (rt->path[rl - 1] == '*') {
            /* a prefix and a non-empty rest, which may hold '/' (ids such
             * as "org/model") */
            if (strncmp(p, rt->path, rl - 1) != 0 || !p[rl - 1])
                continue;
        } else if (strcmp(p, rt->path) != 0) {
            continue;
        }
        bool head_ok = method == EVHTTP_REQ_HEAD &&
                       rt->method == EVHTTP_REQ_GET;
        if (method != rt->method && !head_ok) {
            char msg[160];
            snprintf(msg, sizeof msg,
                     "Method not allowed for %.80s; allowed: %s", path,
                     rt->allow);
            hp_http_err_send(req, 405, "invalid_request_error", NULL,
                             "method_not_allowed", msg, "Allow", rt->allow);
            return;
        }
        if (srv->stopping) {
            hp_http_err_send(req, 503, "server_error", NULL, NULL,
                             "The server is shutting down", NULL, NULL);
            return;
        }
        switch (rt->id) {
        case R_COMPLETIONS:
            handle_generate(srv, req, HP_OAI_COMPLETIONS);
            return;
        case R_CHAT:
            handle_generate(srv, req, HP_OAI_CHAT);
            return;
        case R_MODELS:
            handle_models(srv, req, NULL);
            return;
        case R_MODEL:
            handle_models(srv, req, p + strlen("/models/"));
            return;
        case R_HEALTH:
            handle_health(srv, req);
            return;
        case R_METRICS:
            handle_metrics(srv, req);
            return;
        }
    }
    char msg[200];
    snprintf(msg, sizeof msg, "Unknown request URL: %.100s", path);
    hp_http_err_send(req, 404, "invalid_request_error", NULL,
                     "unknown_url", msg, NULL, NULL);
}

/* ---- accept errors --------------------------------------------------------- */

/* Out of file descriptors, accept() fails at once and libevent would call
 * it again in a tight loop (one log line each time). Pause accepting for
 * 100 ms instead, like nginx, and say so once per episode; connections
 * already open keep being served.
 *
 * libevent hands this callback the listener's user pointer, which evhttp
 * sets to its own struct evhttp, so a small table maps that back to our
 * server (a process normally runs one; the table allows a few). */
#define MAX_SERVERS 8
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static hp_server *reg[MAX_SERVERS];

static void reg_set(hp_server *srv, bool add)
{
    pthread_mutex_lock(&reg_mu);
    for (int i = 0; i < MAX_SERVERS; i++) {
        if (add && !reg[i]) {
            reg[i] = srv;
            break;
        }
        if (!add && reg[i] == srv)
            reg[i] = NULL;
    }
    pthread_mutex_unlock(&reg_mu);
}

static hp_server *reg_find(const void *http)
{
    hp_server *found = NULL;
    pthread_mutex_lock(&reg_mu);
    for (int i = 0; i < MAX_SERVERS; i++)
        if (reg[i] && (const void *)reg[i]->http == http)
            found = reg[i];
    pthread_mutex_unlock(&reg_mu);
    return found;
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
    int e = EVUTIL_SOCKET_ERROR();
    hp_server *srv = reg_find(arg);
    if (e != EMFILE && e != ENFILE && e != ENOBUFS && e != ENOMEM) {
        fprintf(stderr, "hotpath: accept: %s\n",
                evutil_socket_error_to_string(e));
        return;
    }
    evconnlistener_disable(l);
    if (srv && !srv->accept_paused) {
        srv->accept_paused = true;
        fprintf(stderr, "hotpath: out of file descriptors (%s): not "
                "accepting new connections for now\n",
                evutil_socket_error_to_string(e));
    }
    struct timeval tv = {0, 100000};
    if (srv)
        evtimer_add(srv->accept_retry, &tv);
    else
        evconnlistener_enable(l); /* cannot happen; never stay deaf */
}

static void on_accept_retry(evutil_socket_t fd, short what, void *arg)
{
    hp_server *srv = arg;
    (void)fd;
    (void)what;
    evconnlistener_enable(srv->listener);
    /* accept_paused stays set while accept keeps failing, so the message
     * is printed once per episode; a success clears it (on_new_conn) */
}

/* ---- lifecycle ---------------------------------------------------------- */

/* libevent's own log lines (event_set_log_callback is process-wide, hence
 * the file-level state). Its warnings name internal functions and file
 * descriptors and some repeat per connection, so debug/info lines are
 * dropped and the rest become one short, sanitised "hotpath: libevent:"
 * line, at most LOG_BURST per LOG_WINDOW_S seconds. They never carry
 * request data, so no secrets. */
#define LOG_BURST 10
#define LOG_WINDOW_S 60
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static time_t log_window;
static int log_count;

static void on_libevent_log(int severity, const char *msg)
{
    if (severity < EVENT_LOG_WARN || !msg)
        return;
    pthread_mutex_lock(&log_mu);
    time_t now = time(NULL);
    if (now - log_window >= LOG_WINDOW_S) {
        log_window = now;
        log_count = 0;
    }
    bool show = log_count++ < LOG_BURST;
    pthread_mutex_unlock(&log_mu);
    if (!show)
        return;
    char line[161];
    size_t n = 0;
    for (const char *c = msg; *c && n < sizeof line - 1; c++)
        line[n++] = (*c >= 0x20 && *c < 0x7f) ? *c : '?';
    line[n] = '\0';
    fprintf(stderr, "hotpath: libevent: %s\n", line);
}

/* Resolve host to one numeric address to bind (so a bad name fails here,
 * with our message, rather than inside libevent). */
static hp_err resolve_host(const char *host, int port, char *num,
                           size_t cap, hp_errbuf *eb)
{
    /* "999.1.1.1" is no IPv4 address, and no name either: say which */
    bool dotted = host[0] != '\0' && strspn(host, "0123456789.") ==
                                         strlen(host);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | (dotted ? AI_NUMERICHOST : 0);
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0 || !res) {
        if (dotted)
            return hp_errf(eb, HP_ERR_INVALID,
                           "cannot listen on %s:%d: '%s' is not a valid "
                           "IPv4 address", host, port, host);
        return hp_errf(eb, HP_ERR_INVALID,
                       "cannot listen on %s:%d: the host name '%s' cannot "
                       "be resolved (%s)", host, port, host,
                       rc ? gai_strerror(rc) : "no address");
    }
    rc = getnameinfo(res->ai_addr, res->ai_addrlen, num, (socklen_t)cap, NULL,
                     0, NI_NUMERICHOST);
    freeaddrinfo(res);
    if (rc != 0)
        return hp_errf(eb, HP_ERR_INVALID, "cannot listen on %s:%d: %s",
                       host, port, gai_strerror(rc));
    return HP_OK;
}

static struct bufferevent *on_new_conn(struct event_base *base, void *arg)
{
    hp_server *srv = arg;
    srv->accept_paused = false; /* accepting works again */
    struct bufferevent *bev =
        bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (bev) {
        hp_http_err_install_rewrite(bev, &srv->max_body);
        if (srv->guards)
            hp_http_guard_attach(srv->guards, bev); /* else unguarded */
    }
    return bev;
}

static void on_grace_over(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    hp_server *srv = arg;
    event_base_loopbreak(srv->base);
}

/* Every request has finished: leave the loop after a moment, so the last
 * replies (final chunks, [DONE], 503s) reach their sockets first. */
static void finish_stop(hp_server *srv)
{
    struct timeval tv = {0, 200 * 1000};
    event_base_loopexit(srv->base, &tv);
}

static void begin_stop(hp_server *srv)
{
    if (srv->stopping)
        return;
    srv->stopping = true;
    if (srv->sock) {
        evhttp_del_accept_socket(srv->http, srv->sock);
        srv->sock = NULL;
    }
    for (sreq *s = srv->reqs; s; s = s->next)
        hp_request_cancel(s->ereq);
    if (srv->n_reqs == 0) {
        finish_stop(srv);
        return;
    }
    struct timeval tv = {STOP_GRACE_S, 0};
    srv->grace_ev = evtimer_new(srv->base, on_grace_over, srv);
    if (srv->grace_ev)
        evtimer_add(srv->grace_ev, &tv);
    else
        event_base_loopbreak(srv->base);
}

static void on_stop_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    begin_stop(arg);
}

void hp_server_opts_default(hp_server_opts *o)
{
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->port = 8080;
    o->max_body = 8u << 20;
    o->timeout_s = 600;
}

hp_err hp_server_new(hp_engine *e, const hp_server_opts *o, hp_server **out,
                     hp_errbuf *eb)
{
    *out = NULL;
    event_set_log_callback(on_libevent_log);
    if (evthread_use_pthreads() != 0)
        return hp_errf(eb, HP_ERR_INTERNAL, "libevent: no pthreads support");
    hp_server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return hp_errf(eb, HP_ERR_NOMEM, "out of memory");
    srv->engine = e;
    srv->model = hp_engine_model(e);
    const char *name = o->model_name && o->model_name[0] ? o->model_name
                                                         : srv->model->name;
    srv->model_name = strdup(name ? name : "model");
    srv->host = strdup(o->host && o->host[0] ? o->host : "127.0.0.1");
    srv->max_body = o->max_body ? o->max_body : 8u << 20;
    srv->timeout_s = o->timeout_s > 0 ? o->timeout_s : 600;
    srv->created = (long long)time(NULL);
    srv->metrics = o->metrics;
    srv->no_signals = o->no_signals != 0;
    hp_err err = HP_ERR_NOMEM;
    if (!srv->model_name || !srv->host)
        goto fail;
    if (o->api_key && o->api_key[0]) {
        unsigned char d[EVP_MAX_MD_SIZE];
        unsigned int dl = 0;
        if (EVP_Digest(o->api_key, strlen(o->api_key), d, &dl, EVP_sha256(),
                       NULL) != 1 || dl != sizeof srv->key_sha) {
            err = hp_errf(eb, HP_ERR_INTERNAL, "cannot hash the API key");
            goto fail;
        }
        memcpy(srv->key_sha, d, sizeof srv->key_sha);
        srv->auth = true;
    }
    /* The engine re-activates a stream's wake event for every token, and
     * libevent by default runs active callbacks as long as any are queued.
     * Bound each pass (poll after 16 callbacks or 5 ms) so many fast
     * streams cannot delay reading new requests. */
    struct event_config *cfg = event_config_new();
    if (cfg) {
        struct timeval max_iv = {0, 5000};
        event_config_set_max_dispatch_interval(cfg, &max_iv, 16, 0);
        srv->base = event_base_new_with_config(cfg);
        event_config_free(cfg);
    }
    if (!srv->base)
        srv->base = event_base_new();
    if (!srv->base)
        goto fail;
    srv->http = evhttp_new(srv->base);
    srv->guards = hp_http_guard_set_new(srv->base, &srv->max_body);
    if (!srv->http || !srv->guards)
        goto fail;
    evhttp_set_gencb(srv->http, on_request, srv);
    evhttp_set_bevcb(srv->http, on_new_conn, srv);
    evhttp_set_allowed_methods(
        srv->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                       EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                       EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH |
                       EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT);
    evhttp_set_max_body_size(srv->http, (ev_ssize_t)srv->max_body);
    /* above the guard's limits, which answer 414/431 first */
    evhttp_set_max_headers_size(srv->http, HP_HTTP_MAX_URL +
                                               HP_HTTP_MAX_HEADERS + 4096);
    evhttp_set_timeout(srv->http, srv->timeout_s);
    evhttp_set_flags(srv->http, EVHTTP_SERVER_LINGERING_CLOSE);
    char num[NI_MAXHOST];
    err = resolve_host(srv->host, o->port, num, sizeof num, eb);
    if (err != HP_OK)
        goto fail;
    err = HP_ERR_NOMEM;
    errno = 0;
    srv->sock = evhttp_bind_socket_with_handle(srv->http, num,
                                               (ev_uint16_t)o->port);
    if (!srv->sock) {
        int se = EVUTIL_SOCKET_ERROR();
        err = hp_errf(eb, HP_ERR_IO, "cannot listen on %s:%d: %s", srv->host,
                      o->port,
                      se ? evutil_socket_error_to_string(se)
                         : "the address cannot be bound");
        goto fail;
    }
    srv->listener = evhttp_bound_socket_get_listener(srv->sock);
    srv->accept_retry = evtimer_new(srv->base, on_accept_retry, srv);
    if (!srv->accept_retry)
        goto fail;
    evconnlistener_set_error_cb(srv->listener, on_accept_error);
    reg_set(srv, true);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    evutil_socket_t fd = evhttp_bound_socket_get_fd(srv->sock);
    srv->port = o->port;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            srv->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            srv->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    srv->sig_int = evsignal_new(srv->base, SIGINT, on_stop_event, srv);
    srv->sig_term = evsignal_new(srv->base, SIGTERM, on_stop_event, srv);
    srv->stop_ev = event_new(srv->base, -1, 0, on_stop_event, srv);
    if (!srv->sig_int || !srv->sig_term || !srv->stop_ev)
        goto fail;
    *out = srv;
    return HP_OK;
fail:
    if (err == HP_ERR_NOMEM)
        hp_errf(eb, err, "out of memory starting the server");
    hp_server_free(srv);
    return err;
}

int hp_server_port(const hp_server *s)
{
    return s->port;
}

const char *hp_server_model_name(const hp_server *s)
{
    return s->model_name;
}

hp_err hp_server_run(hp_server *s, hp_errbuf *eb)
{
    /* a client closing mid-write must not kill the process */
    signal(SIGPIPE, SIG_IGN);
    if (!s->no_signals) {
        evsignal_add(s->sig_int, NULL);
        evsignal_add(s->sig_term, NULL);
    }
    if (event_base_dispatch(s->base) < 0)
        return hp_errf(eb, HP_ERR_INTERNAL, "event loop failed");
    /* a stop that arrived without a signal event, e.g. a loop error */
    if (!s->stopping)
        begin_stop(s);
    return HP_OK;
}

void hp_server_stop(hp_server *s)
{
    if (s && s->stop_ev)
        event_active(s->stop_ev, EV_READ, 1);
}

void hp_server_free(hp_server *s)
{
    if (!s)
        return;
    /* Requests the engine still holds: wait until each has seen END so the
     * callback can no longer touch them (bounded: the engine drops
     * cancelled sequences within a step). */
    for (sreq *r = s->reqs; r; r = r->next)
        hp_request_cancel(r->ereq);
    for (int i = 0; i < 200 && s->reqs; i++) {
        event_base_loop(s->base, EVLOOP_NONBLOCK);
        if (s->reqs) {
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    reg_set(s, false);
    if (s->accept_retry)
        event_free(s->accept_retry);
    if (s->http)
        evhttp_free(s->http); /* closes connections: close callbacks run */
    hp_http_guard_set_free(s->guards); /* after evhttp: closes sockets */
    while (s->reqs) {
        sreq *r = s->reqs;
        pthread_mutex_lock(&r->mu);
        bool engine_done = r->engine_done;
        pthread_mutex_unlock(&r->mu);
        if (!engine_done)
            break; /* the engine may still call back: leak rather than
                      free under it (hp_engine_free cancels and joins) */
        r->req = NULL;
        r->end_seen = true;
        r->refs = 1;
        sreq_free(r);
    }
    if (s->sig_int)
        event_free(s->sig_int);
    if (s->sig_term)
        event_free(s->sig_term);
    if (s->stop_ev)
        event_free(s->stop_ev);
    if (s->grace_ev)
        event_free(s->grace_ev);
    if (s->base && !s->reqs)
        event_base_free(s->base);
    free(s->model_name);
    free(s->host);
    free(s);
}
