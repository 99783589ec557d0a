/* gw_proxy.c: one request's exchange with its targets.
 *
 * The plan (route.c) lists targets in order. Each attempt builds the
 * upstream body (the client's, with the target's model name and
 * stream_options.include_usage forced on for OpenAI-compatible upstreams,
 * or the Anthropic translation), starts a transfer and follows it:
 *   - before the client has received a byte, a failure the route lists in
 *     fallback_on is retried on the same target (exponential backoff with
 *     jitter, `retries` times) and then handed to the next target;
 *   - once bytes were sent, a cut, a stall or a malformed line ends the
 *     stream with an in-band error event and no [DONE];
 *   - when the client disconnects, the transfer is cancelled at once,
 *     which closes its upstream connection.
 * Usage comes from the upstream when it reports it (cached prompt tokens
 * kept apart), else from hotpath's own count, marked estimated; the same
 * call gives the same accounting streamed or not. */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <math.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/gw_internal.h"
#include "server/http_err.h"

static void start_attempt(gwreq *r);

/* Why an attempt failed, as fallback_on names it. */
typedef enum fkind { F_STATUS, F_TIMEOUT, F_CONNECT, F_BROKEN } fkind;

/* ---- accounting ------------------------------------------------------------ */

static const hp_gwconf_target *cur_target(const gwreq *r)
{
    return r->pi < r->plan.n ? r->plan.t[r->pi] : NULL;
}

/* Completion tokens by hotpath's own count, from the completion object
 * (the non-streamed reply, or the streamed one assembled): message
 * content, tool-call arguments, or text. */
static int64_t completion_estimate(hp_gw *g, const json_t *obj)
{
    int64_t n = 0;
    size_t i, k;
    const json_t *ch, *tc;
    json_array_foreach(json_object_get(obj, "choices"), i, ch) {
        const json_t *msg = json_object_get(ch, "message");
        const json_t *t = msg ? json_object_get(msg, "content")
                              : json_object_get(ch, "text");
        if (json_is_string(t))
            n += hp_gw_count(g, json_string_value(t), json_string_length(t));
        json_array_foreach(json_object_get(msg, "tool_calls"), k, tc) {
            const json_t *a = json_object_get(json_object_get(tc, "function"),
                                              "arguments");
            if (json_is_string(a))
                n += hp_gw_count(g, json_string_value(a), json_string_length(a));
        }
    }
    return n;
}

static void take_usage(gwreq *r, const json_t *u)
{
    if (!json_is_object(u))
        return;
    const json_t *pt = json_object_get(u, "prompt_tokens");
    const json_t *ct = json_object_get(u, "completion_tokens");
    if (!json_is_integer(pt) && !json_is_integer(ct))
        return;
    r->prompt = json_integer_value(pt);
    r->completion = json_integer_value(ct);
    r->cached = json_integer_value(json_object_get(
        json_object_get(u, "prompt_tokens_details"), "cached_tokens"));
    r->have_usage = true;
}

/* The exchange ended without the upstream's usage (a cut, a stall, a
 * shutdown, a client that left): the upstream may still bill the prompt
 * and what it generated, so charge hotpath's own count of both, marked
 * estimated, and budgets err on the safe side. Nothing is charged when no
 * target was being tried. */
static void charge_estimate(gwreq *r)
{
    if (r->have_usage)
        return;
    json_t *obj = hp_chunk_asm_result(&r->casm);
    r->prompt = r->est_prompt;
    r->completion = obj ? completion_estimate(r->gw, obj) : r->n_tokens_sent;
    r->cached = 0;
    json_decref(obj);
    r->have_usage = r->usage_estimated = r->t0 > 0 && r->pi < r->plan.n;
}

void hp_gw_account(gwreq *r, int status, bool cache_hit)
{
    hp_gw *g = r->gw;
    const hp_gwconf *c = g->c;
    const char *route = r->route->model;
    const char *tname = r->target[0] ? r->target : "none";
    double now = hp_gw_now_ms();
    bool estimated = r->usage_estimated;
    if (!r->have_usage && !cache_hit && status == 200) {
        /* the upstream said nothing: count with our own tokenizer */
        json_t *obj = r->reply ? json_incref(r->reply)
                               : hp_chunk_asm_result(&r->casm);
        r->prompt = r->est_prompt;
        r->completion = obj ? completion_estimate(g, obj) : r->n_tokens_sent;
        r->cached = 0;
        json_decref(obj);
        estimated = true;
    }
    double cost = 0;
    const hp_gwconf_target *t = cache_hit ? NULL : cur_target(r);
    if (t && (r->have_usage || estimated)) {
        const char *name = t->local >= 0 ? c->models[t->local].name : t->model;
        const hp_gwconf_price *p = hp_gwconf_price_find(c, name);
        int64_t cached = r->cached < r->prompt ? r->cached : r->prompt;
        if (p)
            cost = ((double)(r->prompt - cached) * p->input +
                    (double)cached * p->cached_input +
                    (double)r->completion * p->output) / 1e6;
        else if (t->local >= 0 && c->runtime_cost_per_hour > 0) {
            int par = g->local_parallel[t->local] > 0
                          ? g->local_parallel[t->local] : 1;
            cost = c->runtime_cost_per_hour * ((now - r->t0) / 3.6e6) / par;
        }
    }
    char st[8];
    snprintf(st, sizeof st, "%d", status);
    hp_gwm_add(g->m, HP_GWM_REQUESTS, route, tname, st, 1);
    hp_gwm_observe(g->m, HP_GWM_E2E, route, tname, (now - r->t0) / 1e3);
    if (r->t_first > 0 && !cache_hit)
        hp_gwm_observe(g->m, HP_GWM_TTFT, route, tname,
                       (r->t_first - r->t0) / 1e3);
    if (!cache_hit) {
        hp_gwm_add(g->m, HP_GWM_TOKENS, route, tname, "prompt",
                   (double)r->prompt);
        hp_gwm_add(g->m, HP_GWM_TOKENS, route, tname, "cached",
                   (double)r->cached);
        hp_gwm_add(g->m, HP_GWM_TOKENS, route, tname, "completion",
                   (double)r->completion);
        hp_gwm_add(g->m, HP_GWM_COST, route, tname, NULL, cost);
        if (estimated)
            hp_gwm_add(g->m, HP_GWM_ESTIMATED, route, tname, NULL, 1);
    }
    hp_ledger_row row;
    memset(&row, 0, sizeof row);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    row.ts = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    snprintf(row.request_id, sizeof row.request_id, "%s", r->id);
    if (r->keyed)
        snprintf(row.key_id, sizeof row.key_id, "%s", r->ki.id);
    snprintf(row.route, sizeof row.route, "%s", route);
    snprintf(row.target, sizeof row.target, "%s", tname);
    row.status = status;
    row.prompt_tokens = r->prompt;
    row.cached_tokens = r->cached;
    row.completion_tokens = r->completion;
    row.estimated = estimated;
    row.stream = r->stream;
    row.cache_hit = cache_hit;
    row.cost_usd = cost;
    row.ttft_ms = r->t_first > 0 ? r->t_first - r->t0 : -1;
    row.e2e_ms = now - r->t0;
    hp_ledger_add(g->ledger, &row);
    if (r->keyed && r->resv.active)
        hp_keys_settle(g->keys, &r->resv, cost,
                       cache_hit ? 0 : r->prompt + r->completion, now / 1e3);
}

/* ---- replies to the client -------------------------------------------------- */

static void finish(gwreq *r, int status)
{
    if (r->finished)
        return;
    r->finished = true;
    hp_gw_account(r, status, false);
    hp_gw_req_free(r);
}

static void add_common_headers(gwreq *r)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
    evhttp_add_header(h, "x-hotpath-cache", "miss");
    evhttp_add_header(h, "x-hotpath-route", r->route->model);
    if (r->target[0])
        evhttp_add_header(h, "x-hotpath-target", r->target);
    evhttp_add_header(h, "x-request-id", r->id);
}

/* A complete error reply before anything was streamed. */
static void reply_error(gwreq *r, int status, const char *code,
                        const char *msg, int retry_after)
{
    if (r->req) {
        add_common_headers(r);
        char ra[16];
        snprintf(ra, sizeof ra, "%d", retry_after);
        hp_gw_error(r->req, r->anth_in, status, NULL, NULL, code, msg,
                    retry_after > 0 ? "Retry-After" : NULL,
                    retry_after > 0 ? ra : NULL);
        r->req = NULL;
    }
    finish(r, status);
}

static void stream_write(gwreq *r, const char *a, size_t alen, const char *b,
                         size_t blen)
{
    if (!r->req)
        return;
    struct evbuffer *buf = evbuffer_new();
    if (!buf)
        return;
    evbuffer_add(buf, a, alen);
    if (b)
        evbuffer_add(buf, b, blen);
    evhttp_send_reply_chunk(r->req, buf);
    evbuffer_free(buf);
}

static void aout_write(const char *text, size_t len, void *ud)
{
    stream_write(ud, text, len, NULL, 0);
}

/* Held chunks are kept as OpenAI SSE text; a Messages client gets them
 * through its translator. */
static void replay_held(gwreq *r)
{
    size_t n = evbuffer_get_length(r->ubody);
    char *t = malloc(n + 1);
    if (!t)
        return;
    evbuffer_remove(r->ubody, t, n);
    t[n] = '\0';
    for (char *p = t; (p = strstr(p, "data: ")) != NULL;) {
        p += 6;
        char *end = strstr(p, "\n\n");
        json_t *ch = json_loadb(p, end ? (size_t)(end - p) : strlen(p), 0,
                                NULL);
        hp_errbuf eb;
        if (ch)
            hp_anth_out_chunk(&r->aout, ch, aout_write, r, &eb);
        json_decref(ch);
        if (!end)
            break;
        p = end + 2;
    }
    free(t);
}

static void stream_start(gwreq *r)
{
    if (r->started || !r->req)
        return;
    r->started = true;
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
    evhttp_add_header(h, "Content-Type", "text/event-stream");
    evhttp_add_header(h, "Cache-Control", "no-cache");
    add_common_headers(r);
    evhttp_send_reply_start(r->req, 200, "OK");
    /* chunks held back before the commit (see forward_chunk) go first */
    if (r->ubody && evbuffer_get_length(r->ubody)) {
        if (r->anth_in)
            replay_held(r);
        else
            evhttp_send_reply_chunk(r->req, r->ubody);
    }
}

static void stream_end(gwreq *r, bool done)
{
    if (done && r->anth_in && !r->aout.have_usage) {
        /* a Messages reply always carries usage: when the upstream sent
         * none, give hotpath's own count (the ledger marks it estimated) */
        json_t *obj = hp_chunk_asm_result(&r->casm);
        r->aout.prompt = r->est_prompt;
        r->aout.completion = obj ? completion_estimate(r->gw, obj)
                                 : r->n_tokens_sent;
        r->aout.have_usage = true;
        json_decref(obj);
    }
    if (done && r->anth_in)
        hp_anth_out_finish(&r->aout, aout_write, r);
    else if (done)
        stream_write(r, "data: [DONE]\n\n", 14, NULL, 0);
    if (r->req) {
        struct evhttp_request *req = r->req;
        if (r->evcon)
            evhttp_connection_set_closecb(r->evcon, NULL, NULL);
        r->req = NULL;
        r->evcon = NULL;
        evhttp_send_reply_end(req);
    }
}

/* After bytes went out: an error event, and no [DONE]. */
static void stream_fail(gwreq *r, const char *reason, const char *detail)
{
    char msg[300];
    snprintf(msg, sizeof msg, "upstream %s failed mid-stream: %s", r->target,
             detail);
    hp_gwm_add(r->gw->m, HP_GWM_FAILURES, r->route->model, r->target, reason,
               1);
    hp_circuit_failure(r->plan.cb[r->pi], r->route, (int64_t)hp_gw_now_ms());
    charge_estimate(r); /* the client got tokens the upstream may bill */
    if (r->anth_in) {
        hp_anth_out_error(&r->aout, msg, aout_write, r);
        stream_end(r, false);
        finish(r, 502);
        return;
    }
    json_t *e = json_pack("{s:{s:s, s:s, s:n, s:s}}", "error", "message", msg,
                          "type", "server_error", "param", "code",
                          "upstream_error");
    char *s = e ? json_dumps(e, JSON_COMPACT) : NULL;
    json_decref(e);
    if (s) {
        stream_write(r, "data: ", 6, s, strlen(s));
        stream_write(r, "\n\n", 2, NULL, 0);
    }
    free(s);
    stream_end(r, false);
    finish(r, 502); /* the client saw 200, then a broken stream */
}

/* Forward one OpenAI chunk to the client. raw/raw_len: its text as the
 * upstream sent it, when unchanged (saves re-serialising). */
static void forward_chunk(gwreq *r, const json_t *ch, const char *raw,
                          size_t raw_len)
{
    /* time to first token and inter-token latency count chunks that carry
     * generated text or tool calls, not the role or usage chunks */
    const json_t *c0 = json_array_get(json_object_get(ch, "choices"), 0);
    const json_t *d = json_object_get(c0, "delta");
    const json_t *txt = d ? json_object_get(d, "content")
                          : json_object_get(c0, "text");
    bool token = (json_is_string(txt) && json_string_length(txt)) ||
                 json_object_get(d, "tool_calls");
    /* Commit to this target only at its first token (or finish/usage):
     * the role preamble is held back, so an upstream that sends it and
     * then cuts, stalls or garbles still falls back. In SSE mode ubody is
     * unused, so it holds those chunks (drained by each new attempt);
     * past 64 KiB of them the stream commits anyway. */
    const json_t *fr = json_object_get(c0, "finish_reason");
    if (!r->started && !token && !(fr && !json_is_null(fr)) &&
        !json_is_object(json_object_get(ch, "usage")) &&
        (!r->ubody || evbuffer_get_length(r->ubody) < 65536)) {
        char *h = raw ? NULL : json_dumps(ch, JSON_COMPACT);
        if (!r->ubody)
            r->ubody = evbuffer_new();
        if (r->ubody && (raw || h)) {
            evbuffer_add(r->ubody, "data: ", 6);
            evbuffer_add(r->ubody, raw ? raw : h, raw ? raw_len : strlen(h));
            evbuffer_add(r->ubody, "\n\n", 2);
        }
        free(h);
        return;
    }
    stream_start(r);
    if (token) {
        double now = hp_gw_now_ms();
        if (r->t_first <= 0)
            r->t_first = now;
        else
            hp_gwm_observe(r->gw->m, HP_GWM_ITL, r->route->model, r->target,
                           (now - r->t_last) / 1e3);
        r->t_last = now;
        r->n_tokens_sent++;
    }
    if (r->anth_in) {
        hp_errbuf eb;
        hp_anth_out_chunk(&r->aout, ch, aout_write, r, &eb);
        return;
    }
    char *s = NULL;
    if (!raw) {
        s = json_dumps(ch, JSON_COMPACT);
        if (!s)
            return;
        raw = s;
        raw_len = strlen(s);
    }
    stream_write(r, "data: ", 6, raw, raw_len);
    stream_write(r, "\n\n", 2, NULL, 0);
    free(s);
}

/* ---- failures and the plan ------------------------------------------------ */

static bool code_listed(const hp_gwconf_route *rt, int status)
{
    for (size_t i = 0; i < rt->n_fallback_codes; i++)
        if (rt->fallback_codes[i] == status)
            return true;
    return false;
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    start_attempt(arg);
}

/* The final answer when every target failed. */
static void give_up(gwreq *r)
{
    if (r->last_status == 401 || r->last_status == 403) {
        /* the upstream refused hotpath's own key: not the client's fault,
         * and its message may quote part of that key */
        char msg[300];
        snprintf(msg, sizeof msg, "upstream %.150s refused the gateway's "
                 "credentials (HTTP %d): check its api_key_env",
                 r->target, r->last_status);
        reply_error(r, 502, "upstream_auth_failed", msg, 0);
        return;
    }
    if (r->last_body && r->last_status >= 400 && r->last_status < 600 &&
        r->req) {
        add_common_headers(r);
        if (r->last_retry_after > 0) {
            char ra[16];
            snprintf(ra, sizeof ra, "%d", r->last_retry_after);
            evhttp_add_header(evhttp_request_get_output_headers(r->req),
                              "Retry-After", ra);
        }
        hp_gw_send_error_body(r->req, r->anth_in, r->last_status,
                              r->last_body, r->last_body_len);
        r->req = NULL;
        finish(r, r->last_status);
        return;
    }
    char msg[400];
    snprintf(msg, sizeof msg, "every target of route '%s' failed; last: %s "
             "(%.150s)", r->route->model, r->target, r->last_detail);
    bool to = !strncmp(r->last_reason, "timeout", 7);
    reply_error(r, to ? 504 : 502, to ? "upstream_timeout"
                                      : "upstream_unavailable", msg, 0);
}

/* An attempt failed before the client got a byte. body: the upstream's
 * error body (already in OpenAI shape), kept for the final answer. */
static void attempt_failed(gwreq *r, fkind k, int status, const char *reason,
                           const char *detail, char *body, size_t body_len)
{
    hp_gw *g = r->gw;
    const hp_gwconf_route *rt = r->route;
    r->up = NULL;
    free(r->last_body);
    r->last_body = body;
    r->last_body_len = body_len;
    r->last_status = status;
    r->last_retry_after = k == F_STATUS ? r->up_retry_after : 0;
    snprintf(r->last_reason, sizeof r->last_reason, "%.30s", reason);
    snprintf(r->last_detail, sizeof r->last_detail, "%.150s", detail);
    bool eligible = k == F_STATUS    ? code_listed(rt, status)
                    : k == F_TIMEOUT ? rt->fallback_on_timeout
                    : k == F_CONNECT ? rt->fallback_on_connect
                                     : code_listed(rt, 502);
    hp_gwm_add(g->m, HP_GWM_FAILURES, rt->model, r->target, reason, 1);
    /* client errors other than 429 say nothing of the target's health */
    bool health = k != F_STATUS || status == 429 || status >= 500;
    if (health)
        hp_circuit_failure_wait(r->plan.cb[r->pi], rt,
                                (int64_t)hp_gw_now_ms(),
                                (int64_t)r->last_retry_after * 1000);
    else
        hp_circuit_release(r->plan.cb[r->pi]);
    if (!eligible || !r->req) {
        give_up(r);
        return;
    }
    if (r->attempt < rt->retries && !(health && r->plan.cb[r->pi] &&
                                      r->plan.cb[r->pi]->open)) {
        int64_t d = hp_routes_backoff_ms(g->routes, r->attempt);
        if (r->last_retry_after > 0 && r->last_retry_after * 1000 > d)
            d = r->last_retry_after * 1000 < 5000 ? r->last_retry_after * 1000
                                                  : 5000;
        r->attempt++;
        hp_gwm_add(g->m, HP_GWM_RETRIES, rt->model, r->target, NULL, 1);
        if (!r->retry_ev)
            r->retry_ev = evtimer_new(g->base, on_retry, r);
        struct timeval tv = {(time_t)(d / 1000), (suseconds_t)(d % 1000) * 1000};
        if (r->retry_ev && evtimer_add(r->retry_ev, &tv) == 0)
            return;
    }
    r->pi++;
    r->attempt = 0;
    if (r->pi >= r->plan.n) {
        r->pi = r->plan.n - 1; /* keep the last target for the record */
        give_up(r);
        return;
    }
    hp_gwm_add(g->m, HP_GWM_FALLBACKS, rt->model, r->target, NULL, 1);
    start_attempt(r);
}

/* ---- upstream callbacks ---------------------------------------------------- */

static void emit_anth_chunk(json_t *chunk, void *ud)
{
    gwreq *r = ud;
    if (r->req)
        forward_chunk(r, chunk, NULL, 0);
    hp_chunk_asm_add(&r->casm, chunk);
    json_decref(chunk);
}

/* One SSE event of a streamed 200 reply. Returns non-zero to stop. */
static int on_event(const char *event, const char *data, size_t len, void *ud)
{
    gwreq *r = ud;
    if (r->done_seen)
        return 0;
    if (r->kind == HP_GWCONF_ANTHROPIC) {
        hp_errbuf eb;
        hp_err e = hp_anth_stream_event(&r->as, event, data, len,
                                        emit_anth_chunk, r, &eb);
        if (e) {
            snprintf(r->last_detail, sizeof r->last_detail, "%.150s", eb.msg);
            snprintf(r->last_reason, sizeof r->last_reason, "%s",
                     e == HP_ERR_AGAIN ? "error_event" : "malformed");
            return 1;
        }
        if (r->as.done) {
            r->done_seen = true;
            json_t *u = hp_anth_stream_usage(&r->as);
            take_usage(r, u);
            json_decref(u);
        }
        return 0;
    }
    if (len == 6 && !memcmp(data, "[DONE]", 6)) {
        r->done_seen = true;
        return 0;
    }
    json_t *ch = json_loadb(data, len, 0, NULL);
    if (!json_is_object(ch) || json_object_get(ch, "error")) {
        snprintf(r->last_reason, sizeof r->last_reason, "%s",
                 ch ? "error_event" : "malformed");
        snprintf(r->last_detail, sizeof r->last_detail, "%s",
                 ch ? "the upstream sent an error event"
                    : "the upstream sent a line that is not JSON");
        json_decref(ch);
        return 1;
    }
    json_t *u = json_object_get(ch, "usage");
    bool has_usage = json_is_object(u);
    if (has_usage)
        take_usage(r, u);
    hp_chunk_asm_add(&r->casm, ch);
    if (!has_usage && u && !r->include_usage) {
        /* "usage": null appears only when usage was asked for */
        json_object_del(ch, "usage");
        forward_chunk(r, ch, NULL, 0);
    } else if (has_usage && !r->include_usage) {
        /* hotpath asked for usage; the client did not: strip it */
        if (!json_array_size(json_object_get(ch, "choices"))) {
            json_decref(ch);
            return 0;
        }
        json_object_del(ch, "usage");
        forward_chunk(r, ch, NULL, 0);
    } else {
        forward_chunk(r, ch, data, len);
    }
    json_decref(ch);
    return 0;
}

static void on_status(hp_upreq *u, int status, const char *ctype, void *ud)
{
    gwreq *r = ud;
    r->up_status = status;
    r->up_retry_after = hp_upreq_retry_after(u);
    if (status == 200 && r->stream && (!ctype || strstr(ctype,
                                                        "event-stream"))) {
        hp_sse_init(&r->sse, on_event, r);
        r->sse_on = true;
    }
}

/* Bytes written for the client that its connection has not sent yet. */
static size_t client_backlog(const gwreq *r)
{
    struct evhttp_connection *ec =
        r->req ? evhttp_request_get_connection(r->req) : NULL;
    struct bufferevent *bev = ec ? evhttp_connection_get_bufferevent(ec)
                                 : NULL;
    return bev ? evbuffer_get_length(bufferevent_get_output(bev)) : 0;
}

static const struct timeval drain_poll = {0, 5000};

/* While the upstream is held: resume it once the client has taken most of
 * its backlog. A poll, not a write callback, so nothing of evhttp's own
 * connection callbacks is borrowed; 5 ms is far below any token gap. */
static void on_drain(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gwreq *r = arg;
    if (!r->up || r->finished)
        return;
    if (r->req && client_backlog(r) > HP_GW_BACKLOG_LOW) {
        evtimer_add(r->drain_ev, &drain_poll);
        return;
    }
    hp_upreq_resume(r->up); /* may deliver bytes, even finish and free r */
}

/* A client that reads slower than the upstream writes: stop reading the
 * upstream until it catches up, instead of buffering the stream. */
static void check_backlog(gwreq *r)
{
    if (!r->up || !r->started || client_backlog(r) <= HP_GW_BACKLOG_HIGH)
        return;
    if (!r->drain_ev)
        r->drain_ev = evtimer_new(r->gw->base, on_drain, r);
    if (!r->drain_ev || evtimer_add(r->drain_ev, &drain_poll) != 0)
        return;
    hp_upreq_hold(r->up);
}

static void on_body(hp_upreq *u, const char *data, size_t len, void *ud)
{
    gwreq *r = ud;
    if (r->sse_on) {
        hp_err e = hp_sse_feed(&r->sse, data, len);
        if (r->finished)
            return;
        if (e == HP_OK) {
            check_backlog(r);
            return;
        }
        if (e == HP_ERR_FORMAT) {
            snprintf(r->last_reason, sizeof r->last_reason, "malformed");
            snprintf(r->last_detail, sizeof r->last_detail,
                     "an event longer than the limit");
        }
        hp_upreq_cancel(u);
        r->up = NULL;
        if (r->started) {
            stream_fail(r, r->last_reason, r->last_detail);
        } else {
            /* nothing sent yet: a broken stream is one more failure */
            attempt_failed(r, F_BROKEN, 502, r->last_reason, r->last_detail,
                           NULL, 0);
        }
        return;
    }
    if (!r->ubody)
        r->ubody = evbuffer_new();
    if (!r->ubody || evbuffer_get_length(r->ubody) + len >
                         HP_GW_MAX_UPSTREAM_BODY) {
        hp_upreq_cancel(u);
        r->up = NULL;
        attempt_failed(r, F_BROKEN, 502, "too_large",
                       "the upstream reply is larger than 16 MiB", NULL, 0);
        return;
    }
    evbuffer_add(r->ubody, data, len);
}

/* A complete, buffered reply (non-streamed, or an error status). */
static void buffered_done(gwreq *r)
{
    size_t n = r->ubody ? evbuffer_get_length(r->ubody) : 0;
    const char *b = n ? (const char *)evbuffer_pullup(r->ubody, -1) : "";
    int st = r->up_status;
    if (st != 200) {
        char *eb = NULL;
        size_t el = 0;
        json_t *e = NULL;
        if (r->kind == HP_GWCONF_ANTHROPIC) {
            e = hp_anth_error(b, n, st);
        } else {
            e = json_loadb(b, n, 0, NULL);
            if (!json_is_object(json_object_get(e, "error"))) {
                json_decref(e);
                char msg[200];
                snprintf(msg, sizeof msg, "upstream %.150s answered HTTP %d",
                         r->target, st);
                e = json_pack("{s:{s:s, s:s, s:n, s:n}}", "error", "message",
                              msg, "type", hp_http_err_type(st), "param",
                              "code");
            }
        }
        eb = e ? json_dumps(e, JSON_COMPACT) : NULL;
        el = eb ? strlen(eb) : 0;
        json_decref(e);
        char reason[16], detail[64];
        snprintf(reason, sizeof reason, "http_%d", st);
        snprintf(detail, sizeof detail, "HTTP %d", st);
        if (st < 400 || st > 599)
            st = 502; /* 1xx/2xx/3xx other than 200: not a usable reply */
        attempt_failed(r, F_STATUS, st, reason, detail, eb, el);
        return;
    }
    json_t *obj = json_loadb(b, n, 0, NULL);
    if (obj && r->kind == HP_GWCONF_ANTHROPIC) {
        json_t *t = NULL;
        hp_errbuf eb;
        if (hp_anth_response(obj, r->id, r->created, cur_target(r)->model, &t,
                             &eb) != HP_OK)
            t = NULL;
        json_decref(obj);
        obj = t;
    }
    if (!json_is_object(obj) || r->stream) {
        json_decref(obj);
        attempt_failed(r, F_BROKEN, 502, "malformed",
                       r->stream ? "the upstream did not stream"
                                 : "the upstream reply is not JSON",
                       NULL, 0);
        return;
    }
    take_usage(r, json_object_get(obj, "usage"));
    hp_circuit_success(r->plan.cb[r->pi]);
    r->t_first = hp_gw_now_ms();
    /* An OpenAI-compatible reply goes out as the upstream wrote it: parsing
     * was needed for usage, re-serialising is not. */
    bool raw = r->kind == HP_GWCONF_OPENAI;
    char *s = raw ? strndup(b, n) : json_dumps(obj, JSON_COMPACT);
    char *out = s;
    if (s && r->anth_in) {
        json_t *a = NULL;
        hp_errbuf eb;
        if (!r->have_usage) /* see stream_end: Messages replies need usage */
            json_object_set_new(obj, "usage", json_pack(
                "{s:I, s:I}", "prompt_tokens", (json_int_t)r->est_prompt,
                "completion_tokens",
                (json_int_t)completion_estimate(r->gw, obj)));
        out = hp_anth_in_response(obj, r->route->model, &a, &eb) == HP_OK
                  ? json_dumps(a, JSON_COMPACT) : NULL;
        json_decref(a);
    }
    if (out && r->req) {
        add_common_headers(r);
        hp_http_send_json(r->req, 200, out, strlen(out));
        if (r->evcon)
            evhttp_connection_set_closecb(r->evcon, NULL, NULL);
        r->req = NULL;
        r->evcon = NULL;
        if (r->cacheable)
            hp_rcache_put(r->gw->cache, r->ckey, s, strlen(s),
                          (int64_t)hp_gw_now_ms());
    }
    bool sent = out && !r->req;
    if (out != s)
        free(out);
    free(s);
    r->reply = obj; /* the estimated count reads the text from here */
    if (!sent && r->req) {
        reply_error(r, 502, "upstream_error", "the upstream's reply could "
                    "not be translated", 0);
        return;
    }
    finish(r, 200);
}

static void on_done(hp_upreq *u, hp_up_end end, const char *detail, void *ud)
{
    (void)u;
    gwreq *r = ud;
    r->up = NULL;
    if (r->finished)
        return;
    if (r->sse_on) {
        if (end == HP_UP_OK && hp_sse_pending(&r->sse))
            hp_sse_feed(&r->sse, "\n\n", 2); /* a last event, unterminated */
        if (r->done_seen) {
            hp_circuit_success(r->plan.cb[r->pi]);
            if (!r->started)
                stream_start(r);
            stream_end(r, true);
            json_t *obj = hp_chunk_asm_result(&r->casm);
            if (obj && r->cacheable && !r->casm.bad) {
                char *s = json_dumps(obj, JSON_COMPACT);
                if (s)
                    hp_rcache_put(r->gw->cache, r->ckey, s, strlen(s),
                                  (int64_t)hp_gw_now_ms());
                free(s);
            }
            json_decref(obj);
            finish(r, 200);
            return;
        }
        const char *why = end == HP_UP_OK ? "the stream ended without [DONE]"
                                          : detail;
        const char *reason = end == HP_UP_OK ? "cut" : hp_up_end_name(end);
        if (r->started) {
            stream_fail(r, end == HP_UP_TIMEOUT_IDLE ? "stall" : reason, why);
            return;
        }
        fkind k = end == HP_UP_CONNECT ? F_CONNECT
                  : (end == HP_UP_TIMEOUT_CONNECT || end == HP_UP_TIMEOUT_FIRST ||
                     end == HP_UP_TIMEOUT_IDLE || end == HP_UP_TIMEOUT_TOTAL)
                      ? F_TIMEOUT : F_BROKEN;
        attempt_failed(r, k, k == F_TIMEOUT ? 504 : 502, reason, why, NULL, 0);
        return;
    }
    if (end == HP_UP_OK) {
        buffered_done(r);
        return;
    }
    fkind k = end == HP_UP_CONNECT ? F_CONNECT
              : (end == HP_UP_TIMEOUT_CONNECT || end == HP_UP_TIMEOUT_FIRST ||
                 end == HP_UP_TIMEOUT_IDLE || end == HP_UP_TIMEOUT_TOTAL)
                  ? F_TIMEOUT : F_BROKEN;
    attempt_failed(r, k, k == F_TIMEOUT ? 504 : 502, hp_up_end_name(end),
                   detail, NULL, 0);
}

static const hp_up_cbs up_cbs = {on_status, on_body, on_done};

/* ---- attempts -------------------------------------------------------------- */

/* The body for target t: the client's with the target's model, usage
 * forced on for streams; or the Anthropic translation. NULL + eb on a
 * request the target cannot express. */
static char *upstream_body(gwreq *r, const hp_gwconf_target *t,
                           hp_errbuf *eb)
{
    const hp_gwconf *c = r->gw->c;
    const char *model = t->local >= 0 ? c->models[t->local].name : t->model;
    json_t *b = NULL;
    if (r->kind == HP_GWCONF_ANTHROPIC) {
        if (!r->chat) {
            hp_errf(eb, HP_ERR_INVALID, "/v1/completions cannot be sent to "
                    "an anthropic upstream; use /v1/chat/completions");
            return NULL;
        }
        if (hp_anth_request(r->body, model, &b, eb) != HP_OK)
            return NULL;
    } else {
        /* the client's body is edited in place (model, stream_options):
         * every attempt sets what it needs, and nothing else reads those
         * fields after the door; only a budget's max_tokens, which must
         * not follow the request to a local target, needs a copy */
        bool inject = r->keyed && !r->max_tokens && t->local < 0 &&
                      (r->ki.budget_usd >= 0 || r->ki.budget_tokens >= 0);
        b = inject ? json_deep_copy(r->body) : json_incref(r->body);
        if (!b)
            return NULL;
        json_object_set_new(b, "model", json_string(model));
        if (r->stream) {
            json_t *so = json_object_get(b, "stream_options");
            if (!json_is_object(so)) {
                so = json_object();
                json_object_set_new(b, "stream_options", so);
            }
            json_object_set_new(so, "include_usage", json_true());
        }
        /* a budget is only safe if the worst case is bounded */
        if (inject)
            json_object_set_new(b, "max_tokens",
                                json_integer(HP_GW_DEFAULT_MAX_TOKENS));
    }
    char *s = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    return s;
}

static void start_attempt(gwreq *r)
{
    hp_gw *g = r->gw;
    const hp_gwconf *c = g->c;
    const hp_gwconf_target *t = r->plan.t[r->pi];
    hp_target_name(c, t, r->target, sizeof r->target);
    r->up_status = 0;
    r->up_retry_after = 0;
    if (r->ubody)
        evbuffer_drain(r->ubody, evbuffer_get_length(r->ubody));
    if (r->sse_on) {
        hp_sse_free(&r->sse);
        r->sse_on = false;
    }
    hp_chunk_asm_free(&r->casm);
    hp_chunk_asm_init(&r->casm);
    r->have_usage = false;
    r->done_seen = false;
    const hp_gwconf_upstream *up = t->upstream >= 0 ? &c->upstreams[t->upstream]
                                                    : NULL;
    r->kind = up ? up->kind : HP_GWCONF_OPENAI;
    if (r->kind == HP_GWCONF_ANTHROPIC)
        hp_anth_stream_init(&r->as, r->id, r->created, t->model,
                            r->include_usage);
    hp_errbuf eb;
    char *body = upstream_body(r, t, &eb);
    if (!body) {
        /* the request cannot go to this target: a client error */
        hp_circuit_release(r->plan.cb[r->pi]);
        reply_error(r, 400, "unsupported_for_target", eb.msg, 0);
        return;
    }
    const char *base = up ? up->base_url : g->local_urls[t->local];
    char url[1024];
    if (r->kind == HP_GWCONF_ANTHROPIC) {
        size_t bl = strlen(base);
        bool v1 = bl >= 3 && !strcmp(base + bl - 3, "/v1");
        snprintf(url, sizeof url, "%s%s", base, v1 ? "/messages"
                                                   : "/v1/messages");
    } else {
        snprintf(url, sizeof url, "%s%s", base, r->chat ? "/chat/completions"
                                                       : "/completions");
    }
    char auth[600] = "";
    const char *key = up ? g->up_keys[t->upstream] : g->local_keys[t->local];
    const char *hdrs[6];
    int nh = 0;
    hdrs[nh++] = "Content-Type: application/json";
    if (r->stream)
        hdrs[nh++] = "Accept: text/event-stream";
    if (r->kind == HP_GWCONF_ANTHROPIC) {
        hdrs[nh++] = "anthropic-version: " HP_ANTH_VERSION;
        if (key) {
            snprintf(auth, sizeof auth, "x-api-key: %s", key);
            hdrs[nh++] = auth;
        }
    } else if (key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
        hdrs[nh++] = auth;
    }
    hdrs[nh] = NULL;
    hp_gwconf_timeouts to = hp_gwconf_timeouts_for(c, r->route, t);
    hp_up_opts o = {
        .method = "POST", .url = url, .headers = hdrs, .body = body,
        .body_len = strlen(body), .connect_ms = to.connect_ms,
        .first_byte_ms = to.first_token_ms, .idle_ms = to.first_token_ms,
        .total_ms = to.total_ms};
    hp_err e = hp_upc_start(g->upc, &o, &up_cbs, r, &r->up, &eb);
    OPENSSL_cleanse(auth, sizeof auth);
    free(body);
    if (e) {
        r->up = NULL;
        attempt_failed(r, F_CONNECT, 502, "start", eb.msg, NULL, 0);
    }
}

void hp_gw_proxy_start(gwreq *r)
{
    hp_routes_plan(r->gw->routes, r->route, (int64_t)hp_gw_now_ms(),
                   &r->plan);
    if (r->plan.n == 0) {
        char msg[300];
        snprintf(msg, sizeof msg, "every target of route '%s' is unavailable "
                 "(circuit breakers open); try again later", r->route->model);
        int ra = (int)((r->plan.retry_after_ms + 999) / 1000);
        reply_error(r, 503, "circuit_open", msg, ra > 0 ? ra : 1);
        return;
    }
    r->pi = 0;
    r->attempt = 0;
    start_attempt(r);
}

void hp_gw_proxy_abort(gwreq *r, const char *why)
{
    if (r->up) {
        hp_upreq_cancel(r->up);
        r->up = NULL;
    }
    if (r->retry_ev)
        evtimer_del(r->retry_ev);
    charge_estimate(r);
    if (r->started) {
        stream_fail(r, "shutdown", why);
        return;
    }
    reply_error(r, 503, "shutting_down", why, 0);
}

void hp_gw_proxy_client_gone(gwreq *r)
{
    if (r->up) {
        hp_upreq_cancel(r->up);
        r->up = NULL;
    }
    if (r->retry_ev)
        evtimer_del(r->retry_ev);
    if (r->plan.n && r->pi < r->plan.n)
        hp_circuit_release(r->plan.cb[r->pi]);
    charge_estimate(r); /* the upstream may bill even an unread prompt */
    finish(r, 499);
}
