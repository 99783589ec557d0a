/* upstream.c: the gateway's HTTP client (see upstream.h).
 *
 * Owns one curl multi handle per hp_upc and the libevent events that drive
 * it: one event per curl socket (CURLMOPT_SOCKETFUNCTION), one timer for
 * curl's own timeouts (CURLMOPT_TIMERFUNCTION), and one timer per transfer
 * for the first-byte, idle and total deadlines. After every
 * curl_multi_socket_action the finished transfers are drained from
 * curl_multi_info_read. Everything runs on the loop thread; no threads.
 *
 * Re-entrancy. curl refuses curl_multi_add_handle/remove_handle while one
 * of its callbacks runs (CURLM_RECURSIVE_API_CALL), and a caller may free
 * or cancel anything from inside on_status/on_body/on_done. So while any
 * of our event handlers is on the stack (c->depth > 0) a cancel only marks
 * the transfer and queues it, a start only queues it, and settle() applies
 * the queue once curl has returned. A cancelled transfer whose write
 * callback is running returns 0 to curl, which aborts it with
 * CURLE_WRITE_ERROR and closes its connection ("Transfer returned error").
 * Removing an unfinished easy handle also closes its connection; we set
 * CURLOPT_FORBID_REUSE first anyway so a cancelled or timed-out transfer
 * never hands a half-read connection to the next request.
 *
 * Deadlines. Each transfer has one timer armed at its earliest deadline.
 * Body reads only move the idle deadline later, so the timer is re-armed
 * lazily: when it fires early it re-arms for what is left, and a body read
 * re-arms only when the first byte brings the idle deadline ahead of the
 * armed one. That keeps event_add off the per-chunk path.
 *
 * Knows nothing of OpenAI, routes or the server; never sees a tensor. */
#include "gateway/upstream.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#define SPARE_MAX 64   /* idle hp_upreq (with easy handle) kept for reuse */
#define DETAIL_LEN 160

typedef enum rstate {
    RS_FREE = 0,  /* in the spare list */
    RS_PENDING,   /* started, waiting for settle() to add it to the multi */
    RS_RUNNING,   /* added to the multi */
    RS_ENDING     /* finish() runs its callbacks; detached from the multi */
} rstate;

struct hp_upreq {
    hp_upc *c;                 /* borrows; the owning client */
    CURL *easy;                /* owns; kept across reuse, reset each start */
    struct event *tmr;         /* owns; first-byte/idle/total deadlines */
    struct curl_slist *hdrs;   /* owns; request headers for this start */
    char *body;                /* owns; copy of the request body */
    size_t body_cap;
    hp_up_cbs cb;
    void *ud;                  /* borrows; caller's */
    rstate state;
    int cancelled;             /* no callbacks any more */
    int queued;                /* on c->todo */
    int status_sent;
    int got_byte;
    int timer_on;
    int held;                  /* hp_upreq_hold: keep body bytes in curl */
    int paused;                /* write_cb answered CURL_WRITEFUNC_PAUSE */
    int retry_after;           /* seconds from a Retry-After header; 0 none */
    int64_t t_start, t_last, t_armed; /* monotonic microseconds */
    int64_t first_us, idle_us, total_us; /* 0 = none */
    hp_upreq *prev, *next;     /* c->live (all non-free) or c->spare */
    hp_upreq *qnext;           /* c->todo */
    char errbuf[CURL_ERROR_SIZE];
};

/* One per socket curl watches; attached with curl_multi_assign. */
typedef struct sockev {
    struct event *ev;          /* owns */
    int what;                  /* CURL_POLL_* the event is set up for */
    struct sockev *prev, *next; /* c->socks, so hp_upc_free can drop all */
} sockev;

struct hp_upc {
    struct event_base *base;   /* borrows */
    CURLM *multi;              /* owns */
    struct event *tmr;         /* owns; curl's timer */
    hp_upreq *live;            /* every started, not yet freed transfer */
    hp_upreq *spare;           /* recycled transfers */
    size_t nspare;
    hp_upreq *todo, *todo_tail; /* pending adds and deferred cancels */
    sockev *socks;
    size_t active;             /* what hp_upc_active reports */
    int depth;                 /* our event handlers on the stack */
    char noproxy[1024];        /* loopback + $no_proxy: see hp_upc_new */
};

int hp_upreq_retry_after(const hp_upreq *r)
{
    return r ? r->retry_after : 0;
}

const char *hp_up_end_name(hp_up_end e)
{
    switch (e) {
    case HP_UP_OK: return "ok";
    case HP_UP_CONNECT: return "connect";
    case HP_UP_TIMEOUT_CONNECT: return "timeout_connect";
    case HP_UP_TIMEOUT_FIRST: return "timeout_first_byte";
    case HP_UP_TIMEOUT_IDLE: return "timeout_idle";
    case HP_UP_TIMEOUT_TOTAL: return "timeout_total";
    case HP_UP_CUT: return "cut";
    case HP_UP_OTHER: return "other";
    }
    return "unknown";
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- curl error mapping ---------------------------------------------- */

/* CURLOPT_TIMEOUT is never set (total_ms is our own timer), so the only
 * curl timeout left is the connect one. */
static hp_up_end map_curl(CURLcode rc)
{
    switch (rc) {
    case CURLE_OK:
        return HP_UP_OK;
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_USE_SSL_FAILED:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
        return HP_UP_CONNECT;
    case CURLE_OPERATION_TIMEDOUT:
        return HP_UP_TIMEOUT_CONNECT;
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_SHUTDOWN_FAILED:
        return HP_UP_CUT;
    default:
        return HP_UP_OTHER;
    }
}

/* ---- lists --------------------------------------------------------------- */

static void live_unlink(hp_upc *c, hp_upreq *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        c->live = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

static void todo_push(hp_upc *c, hp_upreq *r)
{
    if (r->queued)
        return;
    r->queued = 1;
    r->qnext = NULL;
    if (c->todo_tail)
        c->todo_tail->qnext = r;
    else
        c->todo = r;
    c->todo_tail = r;
}

static hp_upreq *todo_pop(hp_upc *c)
{
    hp_upreq *r = c->todo;
    if (!r)
        return NULL;
    c->todo = r->qnext;
    if (!c->todo)
        c->todo_tail = NULL;
    r->qnext = NULL;
    r->queued = 0;
    return r;
}

/* ---- transfer lifetime ------------------------------------------------- */

static void destroy(hp_upreq *r)
{
    if (r->tmr)
        event_free(r->tmr);
    if (r->easy)
        curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->hdrs);
    free(r->body);
    free(r);
}

/* Take r off the multi and stop its timer. Closes its connection unless
 * the transfer finished cleanly. Must not run inside a curl callback. */
static void detach(hp_upreq *r)
{
    if (r->timer_on) {
        evtimer_del(r->tmr);
        r->timer_on = 0;
    }
    if (r->state == RS_RUNNING) {
        if (r->cancelled)
            curl_easy_setopt(r->easy, CURLOPT_FORBID_REUSE, 1L);
        curl_multi_remove_handle(r->c->multi, r->easy);
    }
}

/* Detach r and put it in the spare list (or free it). */
static void recycle(hp_upreq *r)
{
    hp_upc *c = r->c;
    detach(r);
    live_unlink(c, r);
    curl_slist_free_all(r->hdrs);
    r->hdrs = NULL;
    r->state = RS_FREE;
    if (c->nspare >= SPARE_MAX) {
        destroy(r);
        return;
    }
    curl_easy_reset(r->easy);
    r->next = c->spare;
    c->spare = r;
    c->nspare++;
}

static void emit_status(hp_upreq *r)
{
    long code = 0;
    char *ct = NULL;
    r->status_sent = 1;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_getinfo(r->easy, CURLINFO_CONTENT_TYPE, &ct);
    if (r->cb.on_status)
        r->cb.on_status(r, (int)code, ct, r->ud);
}

/* The transfer is over: report it (unless cancelled) and recycle it.
 * Called only from settle() or the deadline timer, with c->depth > 0 and
 * curl not on the stack. The handle is taken off the multi before on_done
 * so a transfer started from on_done can reuse the connection. */
static void finish(hp_upreq *r, hp_up_end end, const char *detail)
{
    hp_upc *c = r->c;
    detach(r);
    r->state = RS_ENDING;
    if (!r->cancelled) {
        c->active--;
        if (end == HP_UP_OK && !r->status_sent)
            emit_status(r); /* empty body: status still comes first */
        if (!r->cancelled) {
            r->cancelled = 1; /* on_done is the last callback */
            r->cb.on_done(r, end, detail ? detail : "", r->ud);
        }
    }
    if (!r->queued)
        recycle(r);
    /* else a cancel queued it while curl was on the stack; settle frees it */
}

static hp_err add_now(hp_upreq *r)
{
    CURLMcode mc = curl_multi_add_handle(r->c->multi, r->easy);
    if (mc != CURLM_OK)
        return HP_ERR_INTERNAL;
    r->state = RS_RUNNING;
    return HP_OK;
}

/* Apply queued adds and cancels, then report finished transfers; repeat
 * until both are empty, since on_done may start or cancel more. */
static void settle(hp_upc *c)
{
    for (;;) {
        int progress = 0;
        for (hp_upreq *r = todo_pop(c); r; r = todo_pop(c)) {
            progress = 1;
            if (r->cancelled)
                recycle(r);
            else if (r->state == RS_PENDING && add_now(r) != HP_OK)
                finish(r, HP_UP_OTHER, "curl_multi_add_handle failed");
        }
        int left;
        for (CURLMsg *m = curl_multi_info_read(c->multi, &left); m;
             m = curl_multi_info_read(c->multi, &left)) {
            if (m->msg != CURLMSG_DONE)
                continue;
            progress = 1;
            char *p = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &p);
            hp_upreq *r = (hp_upreq *)p;
            CURLcode rc = m->data.result;
            if (!r || r->cancelled)
                continue; /* queued; the todo pass frees it */
            const char *d = r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc);
            finish(r, map_curl(rc), rc == CURLE_OK ? "" : d);
        }
        if (!progress)
            break;
    }
}

/* ---- deadlines ----------------------------------------------------------- */

static int64_t next_deadline(const hp_upreq *r)
{
    int64_t d = INT64_MAX;
    if (r->total_us && r->t_start + r->total_us < d)
        d = r->t_start + r->total_us;
    if (!r->got_byte && r->first_us && r->t_start + r->first_us < d)
        d = r->t_start + r->first_us;
    if (r->got_byte && !r->held && r->idle_us && r->t_last + r->idle_us < d)
        d = r->t_last + r->idle_us;
    return d;
}

static void arm(hp_upreq *r, int64_t deadline, int64_t now)
{
    int64_t left = deadline - now;
    if (left < 0)
        left = 0;
    struct timeval tv;
    tv.tv_sec = (time_t)(left / 1000000);
    tv.tv_usec = (suseconds_t)(left % 1000000);
    evtimer_add(r->tmr, &tv);
    r->t_armed = deadline;
    r->timer_on = 1;
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    hp_upreq *r = arg;
    hp_upc *c = r->c;
    int64_t now = now_us();
    char detail[DETAIL_LEN];
    hp_up_end end;
    r->timer_on = 0;
    if (r->cancelled || r->state != RS_RUNNING)
        return;
    if (r->total_us && now >= r->t_start + r->total_us) {
        end = HP_UP_TIMEOUT_TOTAL;
        snprintf(detail, sizeof detail, "not complete after %lld ms",
                 (long long)(r->total_us / 1000));
    } else if (!r->got_byte && r->first_us &&
               now >= r->t_start + r->first_us) {
        end = HP_UP_TIMEOUT_FIRST;
        snprintf(detail, sizeof detail, "no body byte after %lld ms",
                 (long long)(r->first_us / 1000));
    } else if (r->got_byte && !r->held && r->idle_us &&
               now >= r->t_last + r->idle_us) {
        end = HP_UP_TIMEOUT_IDLE;
        snprintf(detail, sizeof detail, "stalled %lld ms",
                 (long long)(r->idle_us / 1000));
    } else {
        int64_t d = next_deadline(r);
        if (d != INT64_MAX)
            arm(r, d, now);
        return;
    }
    c->depth++;
    /* Unfinished, so removal closes the connection; no reuse of a stream
     * that is still sending. */
    curl_easy_setopt(r->easy, CURLOPT_FORBID_REUSE, 1L);
    finish(r, end, detail);
    settle(c);
    c->depth--;
}

/* ---- curl callbacks ------------------------------------------------------ */

/* End of the header block of the final (non-1xx) response: report the
 * status as soon as it is known, before any body byte. */
static size_t header_cb(char *p, size_t size, size_t n, void *ud)
{
    hp_upreq *r = ud;
    size_t len = size * n;
    if (r->cancelled)
        return 0; /* abort: CURLE_WRITE_ERROR */
    int blank = (len == 2 && p[0] == '\r' && p[1] == '\n') ||
                (len == 1 && p[0] == '\n');
    /* Retry-After in seconds (the HTTP-date form is rare from APIs and
     * is ignored); the status line of each response resets it */
    if (len > 12 && !strncasecmp(p, "Retry-After:", 12)) {
        long v = strtol(p + 12, NULL, 10);
        r->retry_after = v > 0 && v < 86400 ? (int)v : 0;
    } else if (len > 5 && !strncmp(p, "HTTP/", 5)) {
        r->retry_after = 0;
    }
    if (blank && !r->status_sent) {
        long code = 0;
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
        if (code >= 200) {
            emit_status(r);
            if (r->cancelled)
                return 0;
        }
    }
    return len;
}

static size_t write_cb(char *p, size_t size, size_t n, void *ud)
{
    hp_upreq *r = ud;
    size_t len = size * n;
    if (r->cancelled)
        return 0;
    if (!r->status_sent) {
        emit_status(r);
        if (r->cancelled)
            return 0;
    }
    if (len == 0)
        return 0;
    if (r->held) {
        /* curl keeps these bytes and hands them over again on resume */
        r->paused = 1;
        return CURL_WRITEFUNC_PAUSE;
    }
    r->t_last = now_us();
    if (!r->got_byte) {
        r->got_byte = 1;
        int64_t d = next_deadline(r);
        if (d != INT64_MAX && (!r->timer_on || d < r->t_armed))
            arm(r, d, r->t_last);
        else if (d == INT64_MAX && r->timer_on) {
            evtimer_del(r->tmr);
            r->timer_on = 0;
        }
    }
    if (r->cb.on_body)
        r->cb.on_body(r, p, len, r->ud);
    return r->cancelled ? 0 : len;
}

static void drive(hp_upc *c, curl_socket_t s, int action)
{
    int running = 0;
    c->depth++;
    curl_multi_socket_action(c->multi, s, action, &running);
    settle(c);
    c->depth--;
}

static void sock_event_cb(evutil_socket_t fd, short what, void *arg)
{
    int action = 0;
    if (what & EV_READ)
        action |= CURL_CSELECT_IN;
    if (what & EV_WRITE)
        action |= CURL_CSELECT_OUT;
    drive(arg, (curl_socket_t)fd, action);
}

static void multi_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    drive(arg, CURL_SOCKET_TIMEOUT, 0);
}

/* CURLMOPT_SOCKETFUNCTION: keep one persistent event per socket in step
 * with what curl wants to wait for. */
static int socket_cb(CURL *e, curl_socket_t s, int what, void *userp,
                     void *socketp)
{
    (void)e;
    hp_upc *c = userp;
    sockev *se = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (se) {
            event_free(se->ev);
            if (se->prev)
                se->prev->next = se->next;
            else
                c->socks = se->next;
            if (se->next)
                se->next->prev = se->prev;
            free(se);
            curl_multi_assign(c->multi, s, NULL);
        }
        return 0;
    }
    short kind = EV_PERSIST;
    if (what & CURL_POLL_IN)
        kind |= EV_READ;
    if (what & CURL_POLL_OUT)
        kind |= EV_WRITE;
    if (!se) {
        se = calloc(1, sizeof *se);
        if (!se)
            return -1;
        se->ev = event_new(c->base, s, kind, sock_event_cb, c);
        if (!se->ev) {
            free(se);
            return -1;
        }
        se->next = c->socks;
        if (c->socks)
            c->socks->prev = se;
        c->socks = se;
        curl_multi_assign(c->multi, s, se);
    } else if (se->what != what) {
        event_del(se->ev);
        event_assign(se->ev, c->base, s, kind, sock_event_cb, c);
    } else {
        return 0; /* already watching exactly this */
    }
    se->what = what;
    if (kind & (EV_READ | EV_WRITE))
        event_add(se->ev, NULL);
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: curl wants socket_action(TIMEOUT) after ms. */
static int timer_cb(CURLM *m, long ms, void *userp)
{
    (void)m;
    hp_upc *c = userp;
    if (ms < 0) {
        evtimer_del(c->tmr);
        return 0;
    }
    struct timeval tv;
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
    evtimer_add(c->tmr, &tv);
    return 0;
}

/* ---- public API ---------------------------------------------------------- */

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

hp_err hp_upc_new(struct event_base *base, hp_upc **out, hp_errbuf *eb)
{
    if (!out)
        return hp_errf(eb, HP_ERR_INVALID, "upstream: no out pointer");
    *out = NULL;
    if (!base)
        return hp_errf(eb, HP_ERR_INVALID, "upstream: no event base");
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK)
        return hp_errf(eb, HP_ERR_INTERNAL, "curl_global_init: %s",
                       curl_easy_strerror(global_rc));
    hp_upc *c = calloc(1, sizeof *c);
    if (!c)
        return hp_errf(eb, HP_ERR_NOMEM, "upstream: out of memory");
    c->base = base;
    /* An http_proxy in the environment applies to labs, but loopback
     * targets (local models, sidecars) must never go through it. curl's
     * CURLOPT_NOPROXY replaces $no_proxy, so keep the user's list too. */
    const char *np = getenv("no_proxy");
    if (!np || !*np)
        np = getenv("NO_PROXY");
    snprintf(c->noproxy, sizeof c->noproxy, "localhost,127.0.0.1,::1%s%.900s",
             np && *np ? "," : "", np && *np ? np : "");
    c->multi = curl_multi_init();
    if (!c->multi)
        goto fail;
    c->tmr = evtimer_new(base, multi_timer_cb, c);
    if (!c->tmr)
        goto fail;
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    /* HTTP/1.1 only (see hp_upc_start): no pipelining, no multiplexing. */
    curl_multi_setopt(c->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
    /* Keep idle connections for a burst's worth of concurrency: curl's
     * default cache (4 x the handles added) closes and reopens upstream
     * connections when many requests overlap, which costs a connect and a
     * close per request at a few thousand requests per second. */
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, 2048L);
    *out = c;
    return HP_OK;
fail:
    if (c->multi)
        curl_multi_cleanup(c->multi);
    free(c);
    return hp_errf(eb, HP_ERR_INTERNAL, "upstream: curl multi/timer setup");
}

void hp_upc_free(hp_upc *c)
{
    if (!c)
        return;
    while (c->live) {
        hp_upreq *r = c->live;
        r->cancelled = 1;
        detach(r);
        live_unlink(c, r);
        destroy(r);
    }
    while (c->spare) {
        hp_upreq *r = c->spare;
        c->spare = r->next;
        destroy(r);
    }
    curl_multi_cleanup(c->multi); /* closes pooled connections */
    while (c->socks) {
        sockev *se = c->socks;
        c->socks = se->next;
        event_free(se->ev);
        free(se);
    }
    event_free(c->tmr);
    free(c);
}

static hp_upreq *take(hp_upc *c)
{
    hp_upreq *r = c->spare;
    if (r) {
        c->spare = r->next;
        c->nspare--;
        r->next = NULL;
        return r;
    }
    r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->c = c;
    r->easy = curl_easy_init();
    r->tmr = evtimer_new(c->base, deadline_cb, r);
    if (!r->easy || !r->tmr) {
        destroy(r);
        return NULL;
    }
    return r;
}

/* Options that make every transfer what the gateway expects: no signals,
 * HTTP/1.1 keep-alive, Nagle off, no Expect: 100-continue, no redirects,
 * http(s) only, bytes passed through as sent (no decoding). */
static hp_err setup(hp_upreq *r, const hp_up_opts *o, const char *method)
{
    CURL *e = r->easy;
    CURLcode rc = CURLE_OK;
    rc |= curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)r);
    rc |= curl_easy_setopt(e, CURLOPT_URL, o->url);
    rc |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    rc |= curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    rc |= curl_easy_setopt(e, CURLOPT_NOPROXY, r->c->noproxy);
    rc |= curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
                           (long)CURL_HTTP_VERSION_1_1);
    rc |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    rc |= curl_easy_setopt(e, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
    rc |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    rc |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    rc |= curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    rc |= curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    rc |= curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    if (o->connect_ms > 0)
        rc |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                               (long)o->connect_ms);
    if (rc != CURLE_OK)
        return HP_ERR_INTERNAL;

    struct curl_slist *h = curl_slist_append(NULL, "Expect:");
    if (!h)
        return HP_ERR_NOMEM;
    r->hdrs = h;
    for (size_t i = 0; o->headers && o->headers[i]; i++) {
        h = curl_slist_append(r->hdrs, o->headers[i]);
        if (!h)
            return HP_ERR_NOMEM;
        r->hdrs = h;
    }
    rc = curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);

    int is_get = strcmp(method, "GET") == 0;
    int is_head = strcmp(method, "HEAD") == 0;
    if (is_get && !o->body_len) {
        rc |= curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else if (is_head) {
        rc |= curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else {
        /* Copy the body so the caller's buffer may go right away. */
        size_t n = o->body ? o->body_len : 0;
        if (n + 1 > r->body_cap) {
            char *b = realloc(r->body, n + 1);
            if (!b)
                return HP_ERR_NOMEM;
            r->body = b;
            r->body_cap = n + 1;
        }
        if (n)
            memcpy(r->body, o->body, n);
        r->body[n] = '\0';
        rc |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                               (curl_off_t)n);
        rc |= curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
        if (strcmp(method, "POST") != 0)
            rc |= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    }
    return rc == CURLE_OK ? HP_OK : HP_ERR_INTERNAL;
}

hp_err hp_upc_start(hp_upc *c, const hp_up_opts *o, const hp_up_cbs *cb,
                    void *ud, hp_upreq **out, hp_errbuf *eb)
{
    if (out)
        *out = NULL;
    if (!c || !o || !cb || !cb->on_done)
        return hp_errf(eb, HP_ERR_INVALID, "upstream: missing client, "
                       "options or on_done");
    if (!o->url || !o->url[0])
        return hp_errf(eb, HP_ERR_INVALID, "upstream: missing url");
    const char *method = o->method;
    if (!method || !method[0]) {
        if (!o->body)
            return hp_errf(eb, HP_ERR_INVALID, "upstream: missing method");
        method = "POST";
    }
    if (o->body_len && !o->body)
        return hp_errf(eb, HP_ERR_INVALID, "upstream: body_len without body");
    if (o->connect_ms < 0 || o->first_byte_ms < 0 || o->idle_ms < 0 ||
        o->total_ms < 0)
        return hp_errf(eb, HP_ERR_INVALID, "upstream: negative timeout");

    hp_upreq *r = take(c);
    if (!r)
        return hp_errf(eb, HP_ERR_NOMEM, "upstream: out of memory");
    r->cb = *cb;
    r->ud = ud;
    r->cancelled = r->queued = r->status_sent = r->got_byte = 0;
    r->timer_on = r->held = r->paused = 0;
    r->errbuf[0] = '\0';
    r->state = RS_PENDING;
    r->prev = NULL;
    r->next = c->live;
    if (c->live)
        c->live->prev = r;
    c->live = r;

    hp_err err = setup(r, o, method);
    if (err != HP_OK) {
        recycle(r);
        return hp_errf(eb, err, "upstream: %s setting up %s",
                       hp_strerror(err), o->url);
    }
    r->first_us = o->first_byte_ms * 1000;
    r->idle_us = o->idle_ms * 1000;
    r->total_us = o->total_ms * 1000;
    r->t_start = r->t_last = now_us();

    if (c->depth > 0) {
        todo_push(c, r); /* curl may be on the stack; settle adds it */
    } else if (add_now(r) != HP_OK) {
        recycle(r);
        return hp_errf(eb, HP_ERR_INTERNAL,
                       "upstream: curl_multi_add_handle failed");
    }
    int64_t d = next_deadline(r);
    if (d != INT64_MAX)
        arm(r, d, r->t_start);
    c->active++;
    if (out)
        *out = r;
    return HP_OK;
}

void hp_upreq_cancel(hp_upreq *r)
{
    if (!r || r->cancelled || r->state == RS_FREE)
        return;
    hp_upc *c = r->c;
    r->cancelled = 1;
    if (r->state == RS_ENDING)
        return; /* finish() is on the stack and recycles it */
    c->active--;
    if (r->timer_on) {
        evtimer_del(r->tmr);
        r->timer_on = 0;
    }
    if (c->depth > 0)
        todo_push(c, r); /* curl may be on the stack: remove it after */
    else
        recycle(r);
}

void hp_upreq_hold(hp_upreq *r)
{
    if (!r || r->cancelled || r->state == RS_FREE || r->held)
        return;
    r->held = 1;
    if (r->timer_on && r->t_armed != next_deadline(r)) {
        /* the idle deadline no longer counts */
        evtimer_del(r->tmr);
        r->timer_on = 0;
        int64_t d = next_deadline(r);
        if (d != INT64_MAX)
            arm(r, d, now_us());
    }
}

void hp_upreq_resume(hp_upreq *r)
{
    if (!r || r->cancelled || r->state == RS_FREE || !r->held)
        return;
    hp_upc *c = r->c;
    r->held = 0;
    /* the stall clock starts again from now: the wait was the client's */
    r->t_last = now_us();
    int64_t d = next_deadline(r);
    if (d != INT64_MAX && (!r->timer_on || d < r->t_armed))
        arm(r, d, r->t_last);
    if (!r->paused || r->state != RS_RUNNING)
        return;
    r->paused = 0;
    /* curl may hand over its kept bytes from inside this call, so the
     * callbacks may run here: defer clean-ups as drive() does */
    c->depth++;
    curl_easy_pause(r->easy, CURLPAUSE_CONT);
    settle(c);
    c->depth--;
}

size_t hp_upc_active(const hp_upc *c)
{
    return c ? c->active : 0;
}
