/* test_upstream.c: the gateway's HTTP client (src/gateway/upstream.c).
 *
 * A fake upstream (evhttp) runs on 127.0.0.1 in the same event base as the
 * client, so every case is single-threaded and deterministic. It can answer
 * at once, stream chunks with gaps, hold the first byte, stall after one
 * chunk, cut the connection mid-body and answer 500; it records every
 * connection it accepts and when each one closes. A closed port stands in
 * for a dead upstream and a listen queue of 0 filled by two idle connects
 * for one that never completes the handshake.
 *
 * The cases are the contract in upstream.h: status before body, bodies of
 * 4xx/5xx delivered with HP_UP_OK, streaming, each deadline mapped to its
 * hp_up_end, cancel from inside a callback closing the TCP connection
 * within a second, keep-alive reuse and 100 transfers at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gateway/upstream.h"

#define MAXCONN 512
#define MAXGOT 128

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- fake upstream ----------------------------------------------------- */

typedef struct fx fx;

enum job_kind { J_STREAM, J_SLOW, J_CUT, J_STALL };

/* One server connection. A reply that is not sent at once is a job. */
typedef struct conn_rec {
    struct evhttp_connection *conn; /* borrows; evhttp's */
    int open;
    int64_t closed_at;
    struct evhttp_request *req;     /* reply in progress, else NULL */
    struct event *tmr;              /* owns; the job's timer */
    enum job_kind kind;
    int left, gap_ms, sent;
    fx *f;
} conn_rec;

struct fx {
    struct event_base *base;
    struct evhttp *http;
    int port;
    hp_upc *c;
    conn_rec recs[MAXCONN];
    int nconn, nopen, nreq;
};

static void job_stop(conn_rec *rec)
{
    if (rec->tmr) {
        event_free(rec->tmr);
        rec->tmr = NULL;
    }
}

static void conn_closed(struct evhttp_connection *conn, void *arg)
{
    (void)conn;
    conn_rec *rec = arg;
    rec->open = 0;
    rec->closed_at = now_ms();
    rec->f->nopen--;
    job_stop(rec);
    /* evhttp detaches an unfinished request from a failed connection and
     * leaves it to us; ending the reply frees it. */
    if (rec->req && !evhttp_request_get_connection(rec->req))
        evhttp_send_reply_end(rec->req);
    rec->req = NULL;
}

static conn_rec *track(fx *f, struct evhttp_request *req)
{
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    for (int i = 0; i < f->nconn; i++)
        if (f->recs[i].open && f->recs[i].conn == conn)
            return &f->recs[i];
    assert_true(f->nconn < MAXCONN);
    conn_rec *rec = &f->recs[f->nconn++];
    memset(rec, 0, sizeof *rec);
    rec->conn = conn;
    rec->open = 1;
    rec->f = f;
    f->nopen++;
    evhttp_connection_set_closecb(conn, conn_closed, rec);
    return rec;
}

static void reply(struct evhttp_request *req, int code, const char *ctype,
                  const char *body)
{
    struct evbuffer *b = evbuffer_new();
    if (ctype)
        evhttp_add_header(evhttp_request_get_output_headers(req),
                          "Content-Type", ctype);
    evbuffer_add(b, body, strlen(body));
    evhttp_send_reply(req, code, code == 200 ? "OK" : "Status", b);
    evbuffer_free(b);
}

static void chunk(struct evhttp_request *req, const char *text)
{
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, text, strlen(text));
    evhttp_send_reply_chunk(req, b);
    evbuffer_free(b);
}

static void job_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn_rec *rec = arg;
    struct evhttp_request *req = rec->req;
    struct timeval tv = { 0, rec->gap_ms * 1000 };
    char text[32];
    switch (rec->kind) {
    case J_STREAM:
        if (rec->left-- > 0) {
            snprintf(text, sizeof text, "chunk %d\n", rec->sent++);
            chunk(req, text);
            evtimer_add(rec->tmr, &tv);
            return;
        }
        rec->req = NULL;
        job_stop(rec);
        evhttp_send_reply_end(req);
        return;
    case J_SLOW:
        rec->req = NULL;
        job_stop(rec);
        reply(req, 200, "text/plain", "late");
        return;
    case J_CUT: {
        /* The partial chunk is on the wire by now; end the TCP stream
         * without the terminating chunk. evhttp sees EOF and cleans up. */
        struct bufferevent *bev =
            evhttp_connection_get_bufferevent(rec->conn);
        shutdown(bufferevent_getfd(bev), SHUT_RDWR);
        job_stop(rec);
        return;
    }
    case J_STALL:
        return;
    }
}

static void job_start(conn_rec *rec, struct evhttp_request *req,
                      enum job_kind kind, int left, int gap_ms)
{
    rec->req = req;
    rec->kind = kind;
    rec->left = left;
    rec->gap_ms = gap_ms;
    rec->sent = 0;
    rec->tmr = evtimer_new(rec->f->base, job_fire, rec);
    struct timeval tv = { gap_ms / 1000, (gap_ms % 1000) * 1000 };
    evtimer_add(rec->tmr, &tv);
}

static void serve(struct evhttp_request *req, void *arg)
{
    fx *f = arg;
    conn_rec *rec = track(f, req);
    const char *uri = evhttp_request_get_uri(req);
    f->nreq++;
    if (strcmp(uri, "/ok") == 0) {
        reply(req, 200, "text/plain", "hello, world");
    } else if (strcmp(uri, "/e500") == 0) {
        reply(req, 500, "application/json", "{\"error\":\"boom\"}");
    } else if (strcmp(uri, "/empty") == 0) {
        evhttp_send_reply(req, 204, "No Content", NULL);
    } else if (strcmp(uri, "/echo") == 0) {
        struct evkeyvalq *in = evhttp_request_get_input_headers(req);
        struct evbuffer *ib = evhttp_request_get_input_buffer(req);
        const char *x = evhttp_find_header(in, "X-Hp");
        const char *expect = evhttp_find_header(in, "Expect");
        char text[512];
        size_t n = evbuffer_get_length(ib);
        char body[256] = "";
        if (n < sizeof body)
            evbuffer_copyout(ib, body, n);
        const char *m = evhttp_request_get_command(req) == EVHTTP_REQ_POST
                            ? "POST" : "OTHER";
        snprintf(text, sizeof text, "%s x=%s expect=%s body=%s", m,
                 x ? x : "-", expect ? expect : "-", body);
        reply(req, 200, "text/plain", text);
    } else if (strncmp(uri, "/stream/", 8) == 0) {
        int n = 0, gap = 0;
        assert_int_equal(sscanf(uri + 8, "%d/%d", &n, &gap), 2);
        evhttp_add_header(evhttp_request_get_output_headers(req),
                          "Content-Type", "text/event-stream");
        evhttp_send_reply_start(req, 200, "OK");
        job_start(rec, req, J_STREAM, n, gap);
    } else if (strncmp(uri, "/slow/", 6) == 0) {
        job_start(rec, req, J_SLOW, 0, atoi(uri + 6));
    } else if (strcmp(uri, "/stall") == 0 || strcmp(uri, "/cut") == 0) {
        int cut = uri[1] == 'c';
        evhttp_send_reply_start(req, 200, "OK");
        chunk(req, "partial");
        job_start(rec, req, cut ? J_CUT : J_STALL, 0, cut ? 50 : 100000);
    } else {
        reply(req, 404, "text/plain", "no such path");
    }
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->base = event_base_new();
    assert_non_null(f->base);
    f->http = evhttp_new(f->base);
    assert_non_null(f->http);
    evhttp_set_gencb(f->http, serve, f);
    struct evhttp_bound_socket *bs =
        evhttp_bind_socket_with_handle(f->http, "127.0.0.1", 0);
    assert_non_null(bs);
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    assert_int_equal(getsockname(evhttp_bound_socket_get_fd(bs),
                                 (struct sockaddr *)&sa, &sl), 0);
    f->port = ntohs(sa.sin_port);
    hp_errbuf eb;
    assert_int_equal(hp_upc_new(f->base, &f->c, &eb), HP_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    hp_upc_free(f->c);
    evhttp_free(f->http);
    for (int i = 0; i < f->nconn; i++)
        job_stop(&f->recs[i]);
    event_base_free(f->base);
    free(f);
    return 0;
}

/* ---- client side recorder ---------------------------------------------- */

typedef struct got {
    hp_upreq *r;
    int nstatus, status;
    char ctype[64];
    int nbody;
    char body[4096];
    size_t blen;
    int done;
    hp_up_end end;
    char detail[256];
    int64_t t_start, t_first_body, t_last_body, t_done, t_cancel;
    int bad_order;           /* a callback came out of order or after end */
    int cancel_in_status;
    int cancel_in_body;      /* cancel on this body call (1 = first) */
    void (*then)(struct got *g); /* run from on_done */
    fx *f;
    int seq;
} got;

static void on_status(hp_upreq *r, int status, const char *ct, void *ud)
{
    got *g = ud;
    if (g->nstatus || g->nbody || g->done || g->t_cancel || r != g->r)
        g->bad_order = 1;
    g->nstatus++;
    g->status = status;
    snprintf(g->ctype, sizeof g->ctype, "%s", ct ? ct : "");
    if (g->cancel_in_status) {
        g->t_cancel = now_ms();
        hp_upreq_cancel(r);
        hp_upreq_cancel(r); /* twice is harmless */
    }
}

static void on_body(hp_upreq *r, const char *data, size_t len, void *ud)
{
    got *g = ud;
    if (!g->nstatus || g->done || g->t_cancel || len == 0 || r != g->r)
        g->bad_order = 1;
    g->nbody++;
    g->t_last_body = now_ms();
    if (g->nbody == 1)
        g->t_first_body = g->t_last_body;
    if (g->blen + len < sizeof g->body) {
        memcpy(g->body + g->blen, data, len);
        g->blen += len;
        g->body[g->blen] = '\0';
    }
    if (g->cancel_in_body == g->nbody) {
        g->t_cancel = now_ms();
        hp_upreq_cancel(r);
    }
}

static void on_done(hp_upreq *r, hp_up_end end, const char *detail, void *ud)
{
    got *g = ud;
    if (g->done || g->t_cancel || !detail || r != g->r)
        g->bad_order = 1;
    g->done = 1;
    g->end = end;
    g->t_done = now_ms();
    snprintf(g->detail, sizeof g->detail, "%s", detail ? detail : "");
    hp_upreq_cancel(r); /* after the end: a no-op */
    if (g->then)
        g->then(g);
}

static const hp_up_cbs CBS = { on_status, on_body, on_done };

static hp_up_opts opts(const char *url)
{
    hp_up_opts o;
    memset(&o, 0, sizeof o);
    o.method = "GET";
    o.url = url;
    o.connect_ms = 1000;
    o.total_ms = 5000;
    return o;
}

static void url_for(fx *f, const char *path, char *buf, size_t n)
{
    snprintf(buf, n, "http://127.0.0.1:%d%s", f->port, path);
}

static void start(fx *f, const hp_up_opts *o, got *g)
{
    hp_errbuf eb;
    g->f = f;
    g->t_start = now_ms();
    assert_int_equal(hp_upc_start(f->c, o, &CBS, g, &g->r, &eb), HP_OK);
    assert_non_null(g->r);
    assert_int_equal(g->done, 0); /* never from inside start */
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

/* Run the loop until cond(arg) holds or ms pass; returns cond(arg). */
static int run_until(fx *f, int (*cond)(void *), void *arg, int ms)
{
    struct event *t = event_new(f->base, -1, EV_PERSIST, tick, NULL);
    struct timeval tv = { 0, 5000 };
    event_add(t, &tv);
    int64_t end = now_ms() + ms;
    while (!cond(arg) && now_ms() < end)
        event_base_loop(f->base, EVLOOP_ONCE);
    event_free(t);
    return cond(arg);
}

static int is_done(void *arg) { return ((got *)arg)->done; }
static int has_body(void *arg) { return ((got *)arg)->nbody > 0; }
static int never(void *arg) { (void)arg; return 0; }

static void run_for(fx *f, int ms) { run_until(f, never, NULL, ms); }

static void fetch(fx *f, const hp_up_opts *o, got *g)
{
    start(f, o, g);
    assert_true(run_until(f, is_done, g, 5000));
    assert_int_equal(g->bad_order, 0);
}

/* ---- cases --------------------------------------------------------------- */

/* upstream_ok_body_and_status: a plain 200 gives one on_status with code
 * and content type, then the body, then HP_UP_OK; the count of active
 * transfers follows. */
static void upstream_ok_body_and_status(void **state)
{
    fx *f = *state;
    char url[128];
    got g = { 0 };
    url_for(f, "/ok", url, sizeof url);
    hp_up_opts o = opts(url);
    start(f, &o, &g);
    assert_int_equal(hp_upc_active(f->c), 1);
    assert_true(run_until(f, is_done, &g, 5000));
    assert_int_equal(g.bad_order, 0);
    assert_int_equal(g.end, HP_UP_OK);
    assert_int_equal(g.nstatus, 1);
    assert_int_equal(g.status, 200);
    assert_string_equal(g.ctype, "text/plain");
    assert_string_equal(g.body, "hello, world");
    assert_string_equal(g.detail, "");
    assert_int_equal(hp_upc_active(f->c), 0);
}

/* upstream_error_status_body_delivered: a 500 is a complete response: its
 * body comes through on_body and the end is HP_UP_OK. */
static void upstream_error_status_body_delivered(void **state)
{
    fx *f = *state;
    char url[128];
    got g = { 0 };
    url_for(f, "/e500", url, sizeof url);
    hp_up_opts o = opts(url);
    fetch(f, &o, &g);
    assert_int_equal(g.end, HP_UP_OK);
    assert_int_equal(g.status, 500);
    assert_string_equal(g.ctype, "application/json");
    assert_string_equal(g.body, "{\"error\":\"boom\"}");
}

/* upstream_empty_body_status_before_done: no body still means on_status
 * exactly once, before on_done. */
static void upstream_empty_body_status_before_done(void **state)
{
    fx *f = *state;
    char url[128];
    got g = { 0 };
    url_for(f, "/empty", url, sizeof url);
    hp_up_opts o = opts(url);
    fetch(f, &o, &g);
    assert_int_equal(g.end, HP_UP_OK);
    assert_int_equal(g.nstatus, 1);
    assert_int_equal(g.status, 204);
    assert_int_equal(g.nbody, 0);
}

/* upstream_post_sends_body_and_headers: method, extra headers and body
 * reach the server; no "Expect: 100-continue" is sent. */
static void upstream_post_sends_body_and_headers(void **state)
{
    fx *f = *state;
    char url[128];
    got g = { 0 };
    url_for(f, "/echo", url, sizeof url);
    const char *hdrs[] = { "X-Hp: yes", "Content-Type: application/json",
                           NULL };
    char big[2048];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    hp_up_opts o = opts(url);
    o.method = NULL; /* POST because there is a body */
    o.headers = hdrs;
    o.body = "{\"k\":1}";
    o.body_len = strlen(o.body);
    fetch(f, &o, &g);
    assert_int_equal(g.end, HP_UP_OK);
    assert_string_equal(g.body, "POST x=yes expect=- body={\"k\":1}");

    /* A body over 1 KiB is where curl would otherwise send Expect. */
    got g2 = { 0 };
    o.body = big;
    o.body_len = strlen(big);
    fetch(f, &o, &g2);
    assert_int_equal(g2.end, HP_UP_OK);
    assert_non_null(strstr(g2.body, "expect=-"));
}

/* upstream_streams_chunks: chunks sent 30 ms apart arrive as separate
 * on_body calls, the first long before the end. */
static void upstream_streams_chunks(void **state)
{
    fx *f = *state;
    char url[128];
    got g = { 0 };
    url_for(f, "/stream/5/30", url, sizeof url);
    hp_up_opts o = opts(url);
    o.first_byte_ms = 1000;
    o.idle_ms = 1000;
    fetch(f, &o, &g);
    assert_int_equal(g.end, HP_UP_OK);
    assert_string_equal(g.ctype, "text/event-stream");
    assert_string_equal(g.body,
                        "chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n");
    assert_true(g.nbody >= 5);
    assert_true(g.t_done - g.t_first_body >= 90);
}

static void expect_elapsed(int64_t ms, int64_t want)
{
    if (ms < want - 5 || ms > want + 400)
        fail_msg("elapsed %lld ms, want about %lld",
                 (long long)ms, (long long)want);
}

/* upstream_timeout_first_byte: no byte within first_byte_ms ends the
 * transfer with HP_UP_TIMEOUT_FIRST on time, without on_status. */
static void upstream_timeout_first_byte(void **state)
{
    fx *f = *state;
    char url[128];
    got g = { 0 };
    url_for(f, "/slow/3000", url, sizeof url);
    hp_up_opts o = opts(url);
    o.first_byte_ms = 150;
    o.idle_ms = 50; /* gaps only count after the first byte */
    fetch(f, &o, &g);
    assert_int_equal(g.end, HP_UP_TIMEOUT_FIRST);
    assert_int_equal(g.nstatus, 0);
    assert_non_null(strstr(g.detail, "150"));
    expect_elapsed(g.t_done - g.t_start, 150);
}

/* upstream_timeout_idle: one chunk and then silence ends with
 * HP_UP_TIMEOUT_IDLE idle_ms after that chunk. */
static void upstream_timeout_idle(void **state)
{
    fx *f = *state;
    char url[128];
    got g = { 0 };
    url_for(f, "/stall", url, sizeof url);
    hp_up_opts o = opts(url);
    o.first_byte_ms = 2000;
    o.idle_ms = 150;
    fetch(f, &o, &g);
    assert_int_equal(g.end, HP_UP_TIMEOUT_IDLE);
    assert_int_equal(g.nstatus, 1);
    assert_string_equal(g.body, "partial");
    assert_non_null(strstr(g.detail, "stalled 150 ms"));
    expect_elapsed(g.t_done - g.t_last_body, 150);
}

/* upstream_idle_rearms_after_first_byte: a short idle_ms is enforced even
 * when first_byte_ms is much longer. */
static void upstream_idle_rearms_after_first_byte(void **state)
{
    fx *f = *state;
    char url[128];
    got g = { 0 };
    url_for(f, "/stall", url, sizeof url);
    hp_up_opts o = opts(url);
    o.first_byte_ms = 4000;
    o.idle_ms = 100;
    o.total_ms = 0;
    fetch(f, &o, &g);
    assert_int_equal(g.end, HP_UP_TIMEOUT_IDLE);
    expect_elapsed(g.t_done - g.t_last_body, 100);
}

/* upstream_timeout_total: a stream that never stalls still ends at
 * total_ms with HP_UP_TIMEOUT_TOTAL. */
static void upstream_timeout_total(void **state)
{
    fx *f = *state;
    char url[128];
    got g = { 0 };
    url_for(f, "/stream/1000/20", url, sizeof url);
    hp_up_opts o = opts(url);
    o.idle_ms = 200;
    o.total_ms = 300;
    fetch(f, &o, &g);
    assert_int_equal(g.end, HP_UP_TIMEOUT_TOTAL);
    assert_true(g.nbody >= 3);
    expect_elapsed(g.t_done - g.t_start, 300);
}

/* upstream_timeout_connect: a listener whose queue is full drops the SYN,
 * so the connect hangs until connect_ms: HP_UP_TIMEOUT_CONNECT. */
static void upstream_timeout_connect(void **state)
{
    fx *f = *state;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(l, 0), 0);
    socklen_t sl = sizeof sa;
    getsockname(l, (struct sockaddr *)&sa, &sl);
    int fill[3];
    for (int i = 0; i < 3; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        (void)connect(fill[i], (struct sockaddr *)&sa, sizeof sa);
        struct pollfd p = { fill[i], POLLOUT, 0 };
        (void)poll(&p, 1, 50);
    }
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", ntohs(sa.sin_port));
    got g = { 0 };
    hp_up_opts o = opts(url);
    o.connect_ms = 150;
    o.first_byte_ms = 2000;
    fetch(f, &o, &g);
    for (int i = 0; i < 3; i++)
        close(fill[i]);
    close(l);
    assert_int_equal(g.end, HP_UP_TIMEOUT_CONNECT);
    assert_int_equal(g.nstatus, 0);
    expect_elapsed(g.t_done - g.t_start, 150);
}

/* upstream_cut_mid_body: the server closes inside a chunked body: the part
 * that came is delivered, then HP_UP_CUT. */
static void upstream_cut_mid_body(void **state)
{
    fx *f = *state;
    char url[128];
    got g = { 0 };
    url_for(f, "/cut", url, sizeof url);
    hp_up_opts o = opts(url);
    fetch(f, &o, &g);
    assert_int_equal(g.end, HP_UP_CUT);
    assert_int_equal(g.status, 200);
    assert_string_equal(g.body, "partial");
    assert_true(g.detail[0] != '\0');
}

/* upstream_connect_refused: nothing listens: HP_UP_CONNECT, no status. */
static void upstream_connect_refused(void **state)
{
    fx *f = *state;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t sl = sizeof sa;
    getsockname(s, (struct sockaddr *)&sa, &sl);
    close(s);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", ntohs(sa.sin_port));
    got g = { 0 };
    hp_up_opts o = opts(url);
    fetch(f, &o, &g);
    assert_int_equal(g.end, HP_UP_CONNECT);
    assert_int_equal(g.nstatus, 0);
    assert_int_equal(g.nbody, 0);
}

static int server_closed_one(void *arg)
{
    fx *f = arg;
    return f->nconn >= 1 && !f->recs[f->nconn - 1].open;
}

/* upstream_cancel_in_body_closes_connection: cancel from the first on_body
 * stops every callback, drops the active count at once, and the server
 * sees its connection closed well within a second. */
static void upstream_cancel_in_body_closes_connection(void **state)
{
    fx *f = *state;
    char url[128];
    got g = { 0 };
    g.cancel_in_body = 1;
    url_for(f, "/stream/200/20", url, sizeof url);
    hp_up_opts o = opts(url);
    start(f, &o, &g);
    assert_true(run_until(f, has_body, &g, 3000));
    assert_int_equal(hp_upc_active(f->c), 0);
    assert_true(run_until(f, server_closed_one, f, 2000));
    conn_rec *rec = &f->recs[f->nconn - 1];
    assert_true(rec->closed_at - g.t_cancel < 1000);
    run_for(f, 100); /* nothing more may arrive */
    assert_int_equal(g.nbody, 1);
    assert_int_equal(g.done, 0);
    assert_int_equal(g.bad_order, 0);
}

/* upstream_cancel_in_status: cancel from on_status: no body, no on_done,
 * connection closed. */
static void upstream_cancel_in_status(void **state)
{
    fx *f = *state;
    char url[128];
    got g = { 0 };
    g.cancel_in_status = 1;
    url_for(f, "/stream/200/20", url, sizeof url);
    hp_up_opts o = opts(url);
    start(f, &o, &g);
    assert_true(run_until(f, server_closed_one, f, 2000));
    run_for(f, 60);
    assert_int_equal(g.nstatus, 1);
    assert_int_equal(g.nbody, 0);
    assert_int_equal(g.done, 0);
    assert_int_equal(g.bad_order, 0);
}

/* upstream_cancel_from_loop_closes_connection: the gateway's usual case,
 * a cancel from outside any callback (client went away), closes the
 * upstream connection before hp_upreq_cancel returns. */
static void upstream_cancel_from_loop_closes_connection(void **state)
{
    fx *f = *state;
    char url[128];
    got g = { 0 };
    url_for(f, "/stall", url, sizeof url);
    hp_up_opts o = opts(url);
    start(f, &o, &g);
    assert_true(run_until(f, has_body, &g, 3000));
    g.t_cancel = now_ms();
    hp_upreq_cancel(g.r);
    assert_int_equal(hp_upc_active(f->c), 0);
    assert_true(run_until(f, server_closed_one, f, 1000));
    assert_true(f->recs[f->nconn - 1].closed_at - g.t_cancel < 1000);
    assert_int_equal(g.done, 0);
}

static void next_sequential(got *g);

static got seq_g;
static int seq_left, seq_ok;
static char seq_url[128];

static void next_sequential(got *g)
{
    if (g->end == HP_UP_OK && strcmp(g->body, "hello, world") == 0)
        seq_ok++;
    if (--seq_left <= 0)
        return;
    fx *f = g->f;
    memset(&seq_g, 0, sizeof seq_g);
    seq_g.then = next_sequential;
    hp_up_opts o = opts(seq_url);
    start(f, &o, &seq_g); /* from inside on_done */
}

static int seq_finished(void *arg)
{
    (void)arg;
    return seq_left <= 0;
}

/* upstream_sequential_reuse: 200 requests one after another, each started
 * from the previous on_done, share a handful of connections. */
static void upstream_sequential_reuse(void **state)
{
    fx *f = *state;
    url_for(f, "/ok", seq_url, sizeof seq_url);
    seq_left = 200;
    seq_ok = 0;
    memset(&seq_g, 0, sizeof seq_g);
    seq_g.then = next_sequential;
    hp_up_opts o = opts(seq_url);
    start(f, &o, &seq_g);
    assert_true(run_until(f, seq_finished, NULL, 8000));
    assert_int_equal(seq_ok, 200);
    assert_int_equal(f->nreq, 200);
    if (f->nconn > 3)
        fail_msg("%d connections for 200 sequential requests", f->nconn);
    assert_int_equal(hp_upc_active(f->c), 0);
}

static int all_done(void *arg)
{
    got *g = arg;
    for (int i = 0; i < 100; i++)
        if (!g[i].done)
            return 0;
    return 1;
}

/* upstream_concurrent_100: 100 streaming transfers at once all complete
 * with their full bodies. */
static void upstream_concurrent_100(void **state)
{
    fx *f = *state;
    char url[128];
    static got g[100];
    memset(g, 0, sizeof g);
    url_for(f, "/stream/3/10", url, sizeof url);
    hp_up_opts o = opts(url);
    for (int i = 0; i < 100; i++)
        start(f, &o, &g[i]);
    assert_int_equal(hp_upc_active(f->c), 100);
    assert_true(run_until(f, all_done, g, 8000));
    for (int i = 0; i < 100; i++) {
        assert_int_equal(g[i].bad_order, 0);
        assert_int_equal(g[i].end, HP_UP_OK);
        assert_string_equal(g[i].body, "chunk 0\nchunk 1\nchunk 2\n");
    }
    assert_int_equal(hp_upc_active(f->c), 0);
}

static got chained;

/* Start a second transfer from inside the first one's on_body. */
static void on_body_starts(hp_upreq *r, const char *d, size_t n, void *ud)
{
    got *g = ud;
    on_body(r, d, n, ud);
    if (g->nbody == 1) {
        char url[128];
        url_for(g->f, "/ok", url, sizeof url);
        hp_up_opts o = opts(url);
        hp_errbuf eb;
        chained.f = g->f;
        assert_int_equal(hp_upc_start(g->f->c, &o, &CBS, &chained,
                                      &chained.r, &eb), HP_OK);
        assert_int_equal(chained.done, 0);
    }
}

static int both_done(void *arg)
{
    got *g = arg;
    return g->done && chained.done;
}

/* upstream_start_from_body_callback: a transfer started while curl is on
 * the stack is queued and runs to completion. */
static void upstream_start_from_body_callback(void **state)
{
    fx *f = *state;
    char url[128];
    got g = { 0 };
    memset(&chained, 0, sizeof chained);
    url_for(f, "/stream/3/20", url, sizeof url);
    hp_up_opts o = opts(url);
    hp_up_cbs cbs = { on_status, on_body_starts, on_done };
    g.f = f;
    assert_int_equal(hp_upc_start(f->c, &o, &cbs, &g, &g.r, NULL), HP_OK);
    assert_true(run_until(f, both_done, &g, 5000));
    assert_int_equal(g.end, HP_UP_OK);
    assert_int_equal(chained.end, HP_UP_OK);
    assert_string_equal(chained.body, "hello, world");
    assert_int_equal(chained.bad_order, 0);
}

/* upstream_free_with_active_is_silent: freeing the client with transfers
 * in flight runs no callback and closes their connections. */
static void upstream_free_with_active_is_silent(void **state)
{
    fx *f = *state;
    char url[128];
    got g[3];
    memset(g, 0, sizeof g);
    url_for(f, "/stall", url, sizeof url);
    hp_up_opts o = opts(url);
    for (int i = 0; i < 3; i++)
        start(f, &o, &g[i]);
    assert_true(run_until(f, has_body, &g[2], 3000));
    hp_upc_free(f->c);
    f->c = NULL;
    run_for(f, 100);
    for (int i = 0; i < 3; i++)
        assert_int_equal(g[i].done, 0);
    assert_int_equal(f->nopen, 0);
}

/* upstream_bad_args: missing pieces are HP_ERR_INVALID with a message and
 * no callback; every end has a name. */
static void upstream_bad_args(void **state)
{
    fx *f = *state;
    got g = { 0 };
    hp_errbuf eb;
    hp_upreq *r = (hp_upreq *)&g;
    hp_up_opts o = opts(NULL);
    assert_int_equal(hp_upc_start(f->c, &o, &CBS, &g, &r, &eb),
                     HP_ERR_INVALID);
    assert_null(r);
    assert_true(eb.msg[0] != '\0');
    o.url = "http://127.0.0.1:1/";
    o.method = NULL;
    assert_int_equal(hp_upc_start(f->c, &o, &CBS, &g, NULL, &eb),
                     HP_ERR_INVALID);
    o.method = "GET";
    o.idle_ms = -1;
    assert_int_equal(hp_upc_start(f->c, &o, &CBS, &g, NULL, &eb),
                     HP_ERR_INVALID);
    o.idle_ms = 0;
    hp_up_cbs nodone = { on_status, on_body, NULL };
    assert_int_equal(hp_upc_start(f->c, &o, &nodone, &g, NULL, &eb),
                     HP_ERR_INVALID);
    assert_int_equal(hp_upc_start(NULL, &o, &CBS, &g, NULL, NULL),
                     HP_ERR_INVALID);
    assert_int_equal(hp_upc_active(f->c), 0);
    assert_int_equal(hp_upc_active(NULL), 0);
    hp_upreq_cancel(NULL);
    hp_upc_free(NULL);
    assert_int_equal(hp_upc_new(NULL, NULL, NULL), HP_ERR_INVALID);
    run_for(f, 20);
    assert_int_equal(g.done, 0);

    assert_string_equal(hp_up_end_name(HP_UP_OK), "ok");
    assert_string_equal(hp_up_end_name(HP_UP_CUT), "cut");
    assert_string_equal(hp_up_end_name(HP_UP_TIMEOUT_IDLE), "timeout_idle");
    for (int e = HP_UP_OK; e <= HP_UP_OTHER; e++)
        assert_non_null(hp_up_end_name((hp_up_end)e));
    assert_non_null(hp_up_end_name((hp_up_end)99));
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(upstream_ok_body_and_status, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(upstream_error_status_body_delivered,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            upstream_empty_body_status_before_done, setup, teardown),
        cmocka_unit_test_setup_teardown(upstream_post_sends_body_and_headers,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(upstream_streams_chunks, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(upstream_timeout_first_byte, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(upstream_timeout_idle, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            upstream_idle_rearms_after_first_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(upstream_timeout_total, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(upstream_timeout_connect, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(upstream_cut_mid_body, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(upstream_connect_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            upstream_cancel_in_body_closes_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(upstream_cancel_in_status, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            upstream_cancel_from_loop_closes_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(upstream_sequential_reuse, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(upstream_concurrent_100, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(upstream_start_from_body_callback,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(upstream_free_with_active_is_silent,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(upstream_bad_args, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
