/* http_guard.c: owns the per-connection request-head check
 * (hp_http_guard_*); see http_guard.h for why it exists.
 *
 * Each connection's guard is in one of three states:
 *   HEAD   new input bytes are moved into `hold` (libevent sees none of
 *          them) until a complete head (up to the empty line) is there;
 *          a good head goes back to libevent with what follows it, and the
 *          guard turns to PASS; a bad one is replaced by the synthetic
 *          rejection request and the guard turns to DRAIN.
 *   PASS   bytes flow to libevent untouched (the body, and any pipelined
 *          request after it). libevent answers a request only after
 *          reading all of its body, so the first bytes of a final response
 *          (not an interim "100 Continue") mark the end of the request: the
 *          guard pulls back whatever libevent has not read (the next
 *          pipelined request) and turns to HEAD.
 *   DRAIN  after a rejection: input is dropped; the synthetic request says
 *          Connection: close, so libevent closes after the answer.
 * The guard holds a reference on the bufferevent. When libevent frees it
 * (its event callback becomes NULL), a periodic sweep either frees the
 * guard or, after a rejection, keeps the socket open for LINGER_S more
 * seconds while discarding input (libevent has already shut down the
 * writing side): closing a socket with unread input sends a reset, which
 * can destroy the error answer before the client reads it.
 *
 * Memory per connection is bounded by the head limits: a head that grows
 * past them is rejected (414/431) without waiting for its end. */
#include "server/http_guard.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define SWEEP_MS 200
#define LINGER_S 2
/* request line: method, target, version and spaces */
#define LINE_SLACK 64
#define HEAD_LIMIT (HP_HTTP_MAX_URL + LINE_SLACK + HP_HTTP_MAX_HEADERS)

typedef enum gstate { G_HEAD, G_PASS, G_DRAIN } gstate;

typedef struct guard {
    struct guard *next;
    hp_http_guard_set *set;      /* borrows */
    struct bufferevent *bev;     /* owns a reference */
    struct evbuffer *hold;       /* owns: head bytes held back */
    struct evbuffer_cb_entry *in_cb, *out_cb; /* owned by the buffers */
    size_t scanned;              /* hold bytes searched for the head end */
    gstate state;
    bool busy;                   /* our own edits: ignore their callbacks */
    bool released;               /* libevent freed the bufferevent */
    bool done;                   /* free at the next sweep */
    time_t linger_until;
} guard;

struct hp_http_guard_set {
    struct event_base *base;     /* borrows */
    const size_t *max_body;      /* borrows */
    struct event *sweep;         /* owns */
    struct evbuffer *scratch;    /* owns: reordering space */
    guard *list;                 /* owns */
};

/* ---- buffer helpers ------------------------------------------------------ */

/* Append src to a bufferevent's input, whose end a socket bufferevent
 * keeps frozen outside its own reads. */
static void input_add_buffer(struct evbuffer *in, struct evbuffer *src)
{
    if (evbuffer_add_buffer(in, src) == 0)
        return;
    evbuffer_unfreeze(in, 0);
    evbuffer_add_buffer(in, src);
    evbuffer_freeze(in, 0);
}

static void input_add(struct evbuffer *in, const char *data, size_t len)
{
    if (evbuffer_add(in, data, len) == 0)
        return;
    evbuffer_unfreeze(in, 0);
    evbuffer_add(in, data, len);
    evbuffer_freeze(in, 0);
}

/* Move the last n bytes of in (the ones just read) to the end of dst. */
static void take_tail(hp_http_guard_set *gs, struct evbuffer *in, size_t n,
                      struct evbuffer *dst)
{
    size_t len = evbuffer_get_length(in);
    if (n > len)
        n = len;
    if (n == len) {
        evbuffer_remove_buffer(in, dst, n);
        return;
    }
    evbuffer_remove_buffer(in, gs->scratch, len - n);
    evbuffer_remove_buffer(in, dst, n);
    input_add_buffer(in, gs->scratch);
}

/* ---- head checks --------------------------------------------------------- */

/* Offset just past the empty line ending the head in hold, or 0. libevent
 * accepts bare LF line ends, so both "\n\n" and "\n\r\n" end a head. */
static size_t head_end(guard *g)
{
    size_t len = evbuffer_get_length(g->hold);
    size_t from = g->scanned > 2 ? g->scanned - 2 : 0;
    size_t best = 0;
    static const char *const ends[] = {"\n\n", "\n\r\n"};
    for (int i = 0; i < 2; i++) {
        struct evbuffer_ptr start;
        if (evbuffer_ptr_set(g->hold, &start, from, EVBUFFER_PTR_SET) != 0)
            continue;
        size_t el = strlen(ends[i]);
        struct evbuffer_ptr p = evbuffer_search(g->hold, ends[i], el, &start);
        if (p.pos >= 0 && (best == 0 || (size_t)p.pos + el < best))
            best = (size_t)p.pos + el;
    }
    g->scanned = len;
    return best;
}

static bool name_is(const char *p, size_t n, const char *name)
{
    return strlen(name) == n && strncasecmp(p, name, n) == 0;
}

/* Check a complete head h[0..n). 0 = fine (or malformed in a way libevent
 * itself answers with 400); else the status, with msg filled. */
static int check_head(const guard *g, const char *h, size_t n, char *msg,
                      size_t cap)
{
    const char *end = h + n;
    const char *eol = memchr(h, '\n', n);
    if (!eol)
        return 0;
    size_t ll = (size_t)(eol - h);
    if (ll && h[ll - 1] == '\r')
        ll--;
    const char *sp1 = memchr(h, ' ', ll);
    const char *sp2 = NULL;
    for (const char *q = h + ll; q > h; q--)
        if (q[-1] == ' ') {
            sp2 = q - 1;
            break;
        }
    if (!sp1 || sp2 == sp1)
        return 0; /* not METHOD SP TARGET SP VERSION: libevent's 400 */
    if ((size_t)(sp2 - sp1 - 1) > HP_HTTP_MAX_URL) {
        snprintf(msg, cap, "The request URL is too long: the limit is %d "
                 "bytes", HP_HTTP_MAX_URL);
        return 414;
    }
    if ((size_t)(end - (eol + 1)) > HP_HTTP_MAX_HEADERS) {
        snprintf(msg, cap, "The request headers are too large: the limit "
                 "is %d bytes", HP_HTTP_MAX_HEADERS);
        return 431;
    }
    size_t ml = (size_t)(sp1 - h);
    bool bodyless = name_is(h, ml, "HEAD") || name_is(h, ml, "TRACE");

    int n_cl = 0, n_te = 0;
    bool cl_bad = false, cl_big = false, cl_conflict = false, chunked = false;
    uint64_t cl = 0;
    for (const char *q = eol + 1; q < end;) {
        const char *le = memchr(q, '\n', (size_t)(end - q));
        if (!le)
            le = end;
        size_t len = (size_t)(le - q);
        if (len && q[len - 1] == '\r')
            len--;
        if (len == 0)
            break; /* the empty line */
        if (q[0] == ' ' || q[0] == '\t') {
            snprintf(msg, cap, "Malformed HTTP request: obsolete header "
                     "line folding is not accepted");
            return 400;
        }
        const char *colon = memchr(q, ':', len);
        if (!colon)
            return 0; /* libevent answers 400 */
        size_t nl = (size_t)(colon - q);
        if (nl == 0 || memchr(q, ' ', nl) || memchr(q, '\t', nl)) {
            snprintf(msg, cap, "Malformed HTTP request: whitespace in a "
                     "header name");
            return 400;
        }
        const char *v = colon + 1, *ve = q + len;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        if (name_is(q, nl, "Content-Length")) {
            uint64_t x = 0;
            bool ok = v < ve, over = false;
            for (const char *d = v; d < ve && ok; d++) {
                if (*d < '0' || *d > '9')
                    ok = false;
                else if (x > (UINT64_C(1) << 62) / 5)
                    over = true; /* keeps going to check the digits */
                else
                    x = x * 10 + (uint64_t)(*d - '0');
            }
            if (!ok)
                cl_bad = true;
            else if (over || x > INT64_MAX)
                cl_big = true;
            else if (n_cl > 0 && x != cl)
                cl_conflict = true;
            cl = x;
            n_cl++;
        } else if (name_is(q, nl, "Transfer-Encoding")) {
            n_te++;
            chunked = name_is(v, (size_t)(ve - v), "chunked");
        }
        q = le + 1;
    }
    if (cl_bad || cl_big) {
        snprintf(msg, cap, "Invalid Content-Length header: %s",
                 cl_bad ? "it must be a non-negative decimal integer"
                        : "the value is out of range");
        return 400;
    }
    if (cl_conflict) {
        snprintf(msg, cap, "Conflicting Content-Length headers");
        return 400;
    }
    if (n_te && n_cl) {
        snprintf(msg, cap, "A request must not carry both Content-Length "
                 "and Transfer-Encoding");
        return 400;
    }
    if (n_te > 1) {
        snprintf(msg, cap, "Repeated Transfer-Encoding headers");
        return 400;
    }
    if (n_te && !chunked) {
        snprintf(msg, cap, "Transfer-Encoding not supported: only "
                 "'chunked' is");
        return 501;
    }
    if (bodyless && (n_te || cl > 0)) {
        snprintf(msg, cap, "A %.*s request must not have a body", (int)ml,
                 h);
        return 400;
    }
    size_t max_body = *g->set->max_body;
    if (n_cl && cl > max_body) {
        snprintf(msg, cap, "The request body is too large: Content-Length "
                 "%llu exceeds the limit of %zu bytes",
                 (unsigned long long)cl, max_body);
        return 413;
    }
    return 0;
}

/* Replace the held head (and whatever follows) with the synthetic
 * rejection request; input from now on is dropped. */
static void reject(guard *g, struct evbuffer *in, int status,
                   const char *msg)
{
    evbuffer_drain(g->hold, evbuffer_get_length(g->hold));
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET " HP_HTTP_GUARD_PATH " HTTP/1.1\r\n"
                     "Host: hotpath\r\nConnection: close\r\n"
                     HP_HTTP_GUARD_STATUS ": %d\r\n"
                     HP_HTTP_GUARD_MESSAGE ": %s\r\n\r\n",
                     status, msg);
    if (n > 0 && (size_t)n < sizeof req)
        input_add(in, req, (size_t)n);
    g->state = G_DRAIN;
}

/* HEAD state: look at what is held; release, reject or keep waiting. */
static void process_hold(guard *g, struct evbuffer *in)
{
    size_t len = evbuffer_get_length(g->hold);
    if (len == 0)
        return;
    size_t end = head_end(g);
    char msg[200];
    if (end == 0 || end > HEAD_LIMIT) {
        if (len <= HEAD_LIMIT && (len <= HP_HTTP_MAX_URL + LINE_SLACK ||
                                  evbuffer_search(g->hold, "\n", 1, NULL)
                                          .pos >= 0))
            return; /* wait for the rest */
        /* too long to be a head we accept: a request line with no end in
         * sight is a long URL, anything else too many headers */
        struct evbuffer_ptr lf = evbuffer_search(g->hold, "\n", 1, NULL);
        if (lf.pos < 0 || lf.pos > HP_HTTP_MAX_URL + LINE_SLACK) {
            snprintf(msg, sizeof msg, "The request URL is too long: the "
                     "limit is %d bytes", HP_HTTP_MAX_URL);
            reject(g, in, 414, msg);
        } else {
            snprintf(msg, sizeof msg, "The request headers are too large: "
                     "the limit is %d bytes", HP_HTTP_MAX_HEADERS);
            reject(g, in, 431, msg);
        }
        return;
    }
    const char *h = (const char *)evbuffer_pullup(g->hold, (ev_ssize_t)end);
    int status = h ? check_head(g, h, end, msg, sizeof msg) : 0;
    if (status) {
        reject(g, in, status, msg);
        return;
    }
    g->state = G_PASS;
    g->scanned = 0;
    input_add_buffer(in, g->hold);
}

/* ---- callbacks ----------------------------------------------------------- */

static bool bev_released(const guard *g)
{
    bufferevent_data_cb rcb, wcb;
    bufferevent_event_cb ecb;
    void *arg;
    if (g->released)
        return true;
    bufferevent_getcb(g->bev, &rcb, &wcb, &ecb, &arg);
    return ecb == NULL; /* evhttp always sets one; bufferevent_free clears */
}

static void on_input(struct evbuffer *in, const struct evbuffer_cb_info *info,
                     void *arg)
{
    guard *g = arg;
    if (g->busy || info->n_added == 0)
        return;
    g->busy = true;
    if (bev_released(g)) {
        evbuffer_drain(in, evbuffer_get_length(in)); /* lingering */
    } else if (g->state == G_HEAD) {
        take_tail(g->set, in, info->n_added, g->hold);
        process_hold(g, in);
    } else if (g->state == G_DRAIN) {
        take_tail(g->set, in, info->n_added, g->hold);
        evbuffer_drain(g->hold, evbuffer_get_length(g->hold));
    }
    g->busy = false;
}

/* Start of a final response while passing: the request is read; take
 * back the unread rest (a pipelined request) for checking. */
static void on_output(struct evbuffer *out,
                      const struct evbuffer_cb_info *info, void *arg)
{
    guard *g = arg;
    if (g->busy || info->n_added < 13 || g->state != G_PASS)
        return;
    size_t len = evbuffer_get_length(out);
    char b[13];
    struct evbuffer_ptr p;
    if (evbuffer_ptr_set(out, &p, len - info->n_added, EVBUFFER_PTR_SET))
        return;
    if (evbuffer_copyout_from(out, &p, b, 13) != 13) {
        /* a socket bufferevent keeps its output's start frozen between
         * writes; thaw it for the look, as http_err.c does */
        evbuffer_unfreeze(out, 1);
        ev_ssize_t got = evbuffer_copyout_from(out, &p, b, 13);
        evbuffer_freeze(out, 1);
        if (got != 13)
            return;
    }
    if (!memcmp(b, "HTTP/1.", 7) && !memcmp(b + 8, " 1", 2))
        return; /* interim 1xx: the body is still to come */
    g->busy = true;
    struct evbuffer *in = bufferevent_get_input(g->bev);
    evbuffer_remove_buffer(in, g->hold, evbuffer_get_length(in));
    g->state = G_HEAD;
    g->scanned = 0;
    process_hold(g, in);
    g->busy = false;
}

static void on_linger_event(struct bufferevent *bev, short what, void *arg)
{
    (void)what;
    guard *g = arg;
    bufferevent_disable(bev, EV_READ | EV_WRITE);
    g->done = true; /* EOF, error or the read timeout */
}

static void guard_free(guard *g)
{
    bufferevent_setcb(g->bev, NULL, NULL, NULL, NULL);
    evbuffer_remove_cb_entry(bufferevent_get_input(g->bev), g->in_cb);
    evbuffer_remove_cb_entry(bufferevent_get_output(g->bev), g->out_cb);
    bufferevent_decref(g->bev); /* the last reference: closes the socket */
    evbuffer_free(g->hold);
    free(g);
}

static void arm_sweep(hp_http_guard_set *gs)
{
    struct timeval tv = {0, SWEEP_MS * 1000};
    if (!evtimer_pending(gs->sweep, NULL))
        evtimer_add(gs->sweep, &tv);
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    hp_http_guard_set *gs = arg;
    time_t now = time(NULL);
    for (guard **pp = &gs->list; *pp;) {
        guard *g = *pp;
        if (!g->released && bev_released(g)) {
            g->released = true;
            if (g->state == G_DRAIN) {
                /* keep reading (and dropping) so the close is clean */
                struct timeval tv = {LINGER_S, 0};
                g->linger_until = now + LINGER_S;
                bufferevent_setcb(g->bev, NULL, NULL, on_linger_event, g);
                bufferevent_set_timeouts(g->bev, &tv, NULL);
                bufferevent_enable(g->bev, EV_READ);
            } else {
                g->done = true;
            }
        }
        if (g->released && !g->done && now > g->linger_until)
            g->done = true;
        if (g->done) {
            *pp = g->next;
            guard_free(g);
            continue;
        }
        pp = &g->next;
    }
    if (gs->list)
        arm_sweep(gs);
}

/* ---- public -------------------------------------------------------------- */

hp_http_guard_set *hp_http_guard_set_new(struct event_base *base,
                                         const size_t *max_body)
{
    hp_http_guard_set *gs = calloc(1, sizeof *gs);
    if (!gs)
        return NULL;
    gs->base = base;
    gs->max_body = max_body;
    gs->sweep = evtimer_new(base, on_sweep, gs);
    gs->scratch = evbuffer_new();
    if (!gs->sweep || !gs->scratch) {
        hp_http_guard_set_free(gs);
        return NULL;
    }
    return gs;
}

int hp_http_guard_attach(hp_http_guard_set *gs, struct bufferevent *bev)
{
    guard *g = calloc(1, sizeof *g);
    if (!g)
        return -1;
    g->set = gs;
    g->bev = bev;
    g->hold = evbuffer_new();
    if (!g->hold)
        goto fail;
    g->in_cb = evbuffer_add_cb(bufferevent_get_input(bev), on_input, g);
    if (!g->in_cb)
        goto fail;
    g->out_cb = evbuffer_add_cb(bufferevent_get_output(bev), on_output, g);
    if (!g->out_cb) {
        evbuffer_remove_cb_entry(bufferevent_get_input(bev), g->in_cb);
        goto fail;
    }
    bufferevent_incref(bev);
    g->next = gs->list;
    gs->list = g;
    arm_sweep(gs);
    return 0;
fail:
    if (g->hold)
        evbuffer_free(g->hold);
    free(g);
    return -1;
}

int hp_http_guard_rejection(const struct evkeyvalq *h, const char **message)
{
    const char *st = evhttp_find_header(h, HP_HTTP_GUARD_STATUS);
    const char *msg = evhttp_find_header(h, HP_HTTP_GUARD_MESSAGE);
    int status = st ? atoi(st) : 0;
    switch (status) {
    case 400:
    case 413:
    case 414:
    case 431:
    case 501:
        break;
    default:
        return 0;
    }
    *message = msg && msg[0] ? msg : "Malformed HTTP request";
    return status;
}

void hp_http_guard_set_free(hp_http_guard_set *gs)
{
    if (!gs)
        return;
    while (gs->list) {
        guard *g = gs->list;
        gs->list = g->next;
        guard_free(g);
    }
    if (gs->sweep)
        event_free(gs->sweep);
    if (gs->scratch)
        evbuffer_free(gs->scratch);
    free(gs);
}
