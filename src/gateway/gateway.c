/* gateway.c: the gateway's server: lifecycle, endpoints, and the steps a
 * request passes before it is proxied: JSON and route checks, the virtual
 * key (401/403), its limits and budget (429), and the response cache.
 * The exchange with targets lives in gw_proxy.c, the admin API in
 * gw_admin.c. */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/thread.h>
#include <malloc.h>
#include <math.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/gw_internal.h"
#include "server/http_err.h"
#include "server/http_guard.h"

/* Grace period for running requests when the gateway stops. */
#define STOP_GRACE_S 5

double hp_gw_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int64_t hp_gw_count(hp_gw *g, const char *text, size_t len)
{
    if (!len)
        return 0;
    if (g->count)
        return (int64_t)g->count(g->count_ud, text, len);
    return (int64_t)((len + 3) / 4);
}

void hp_gw_send_error_body(struct evhttp_request *req, bool anth, int status,
                           const char *body, size_t len)
{
    if (!anth) {
        hp_http_send_json(req, status, body, len);
        return;
    }
    json_t *a = hp_anth_in_error(body, len, status);
    char *s = a ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
    if (s)
        hp_http_send_json(req, status, s, strlen(s));
    else
        hp_http_send_json(req, status, body, len);
    free(s);
}

void hp_gw_error(struct evhttp_request *req, bool anth, int status,
                 const char *type, const char *param, const char *code,
                 const char *msg, const char *extra_name,
                 const char *extra_value)
{
    if (!anth) {
        hp_http_err_send(req, status, type, param, code, msg, extra_name,
                         extra_value);
        return;
    }
    char *body = hp_http_err_json(msg, type ? type : hp_http_err_type(status),
                                  param, code);
    if (extra_name && extra_value)
        evhttp_add_header(evhttp_request_get_output_headers(req), extra_name,
                          extra_value);
    hp_gw_send_error_body(req, true, status, body ? body : "",
                          body ? strlen(body) : 0);
    free(body);
}

/* ---- request records ----------------------------------------------------- */

static void finish_stop(hp_gw *g)
{
    struct timeval tv = {0, 200 * 1000};
    event_base_loopexit(g->base, &tv);
}

void hp_gw_req_free(gwreq *r)
{
    hp_gw *g = r->gw;
    if (r->prev)
        r->prev->next = r->next;
    else if (g->reqs == r)
        g->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    g->n_reqs--;
    if (r->evcon)
        evhttp_connection_set_closecb(r->evcon, NULL, NULL);
    if (r->up)
        hp_upreq_cancel(r->up);
    if (r->retry_ev)
        event_free(r->retry_ev);
    if (r->drain_ev)
        event_free(r->drain_ev);
    if (r->ubody)
        evbuffer_free(r->ubody);
    if (r->sse_on)
        hp_sse_free(&r->sse);
    hp_chunk_asm_free(&r->casm);
    json_decref(r->reply);
    if (r->keyed && r->resv.active)
        hp_keys_settle(g->keys, &r->resv, 0, 0, hp_gw_now_ms() / 1e3);
    for (int i = r->pi; i < r->plan.n; i++)
        hp_circuit_release(r->plan.cb[i]); /* probes never sent */
    free(r->last_body);
    json_decref(r->body);
    bool big = r->body_len > (1u << 20);
    free(r);
    if (big)
        malloc_trim(0); /* give a large request's parse memory back */
    if (g->stopping && g->n_reqs == 0)
        finish_stop(g);
}

/* The client closed its connection. */
static void on_conn_close(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    gwreq *r = arg;
    struct evhttp_request *req = r->req;
    r->req = NULL;
    r->evcon = NULL;
    /* see server.c: an unfinished request on a failed connection is ours */
    if (req && evhttp_request_get_connection(req) == NULL)
        evhttp_request_free(req);
    hp_gw_proxy_client_gone(r);
}

/* ---- checks before proxying ----------------------------------------------- */

static void err(struct evhttp_request *req, int status, const char *param,
                const char *code, const char *msg)
{
    hp_http_err_send(req, status, NULL, param, code, msg, NULL, NULL);
}

/* err() in the dialect of the endpoint (Messages API clients get
 * Anthropic's error shape). */
static void derr(struct evhttp_request *req, bool anth, int status,
                 const char *param, const char *code, const char *msg)
{
    hp_gw_error(req, anth, status, NULL, param, code, msg, NULL, NULL);
}

/* The bearer token of the request (or, for Anthropic SDK clients, the
 * x-api-key header), or NULL. */
static const char *bearer(struct evhttp_request *req)
{
    const char *x = evhttp_find_header(evhttp_request_get_input_headers(req),
                                       "x-api-key");
    if (x && *x)
        return x;
    const char *a = evhttp_find_header(evhttp_request_get_input_headers(req),
                                       "Authorization");
    if (!a || strncasecmp(a, "Bearer ", 7) != 0)
        return NULL;
    a += 7;
    while (*a == ' ')
        a++;
    return *a ? a : NULL;
}

/* Text the prompt is made of: message contents (strings and text parts)
 * or the completion prompt, for hotpath's own token count. */
static int64_t prompt_estimate(hp_gw *g, const json_t *body, bool chat)
{
    int64_t n = 0;
    if (!chat) {
        const json_t *p = json_object_get(body, "prompt");
        if (json_is_string(p))
            return hp_gw_count(g, json_string_value(p), json_string_length(p));
        size_t i;
        const json_t *v;
        json_array_foreach(p, i, v)
            if (json_is_string(v))
                n += hp_gw_count(g, json_string_value(v), json_string_length(v));
        return n;
    }
    size_t i, k;
    const json_t *m, *part;
    json_array_foreach(json_object_get(body, "messages"), i, m) {
        const json_t *c = json_object_get(m, "content");
        if (json_is_string(c))
            n += hp_gw_count(g, json_string_value(c), json_string_length(c));
        json_array_foreach(c, k, part) {
            const json_t *t = json_object_get(part, "text");
            if (json_is_string(t))
                n += hp_gw_count(g, json_string_value(t),
                                 json_string_length(t));
        }
        n += 4; /* role and separators, as chat templates add */
    }
    return n;
}

/* Worst-case cost of one target for a request of prompt_tokens (upper
 * bound) and max_out completion tokens. */
static double worst_cost(hp_gw *g, const hp_gwconf_route *rt,
                         const hp_gwconf_target *t, int64_t prompt_tokens,
                         int64_t max_out)
{
    const hp_gwconf *c = g->c;
    const char *name = t->local >= 0 ? c->models[t->local].name : t->model;
    const hp_gwconf_price *p = hp_gwconf_price_find(c, name);
    if (p)
        return ((double)prompt_tokens * fmax(p->input, p->cached_input) +
                (double)max_out * p->output) / 1e6;
    if (t->local >= 0 && c->runtime_cost_per_hour > 0) {
        hp_gwconf_timeouts to = hp_gwconf_timeouts_for(c, rt, t);
        int par = g->local_parallel && g->local_parallel[t->local] > 0
                      ? g->local_parallel[t->local] : 1;
        return c->runtime_cost_per_hour * ((double)to.total_ms / 3.6e6) / par;
    }
    return 0;
}

/* Reserve the request's worst case on its key. false: answered (429). */
static bool admit_key(hp_gw *g, gwreq *r, size_t body_len)
{
    const hp_gwconf_route *rt = r->route;
    int64_t max_out = (r->max_tokens > 0 ? r->max_tokens
                                         : HP_GW_DEFAULT_MAX_TOKENS) *
                      r->n_choices;
    /* The body's byte length bounds its prompt tokens: a token of a
     * byte-level vocabulary covers at least one byte, and the JSON around
     * the text is longer than any template's markup. */
    int64_t prompt_ub = (int64_t)body_len;
    double worst = 0;
    for (size_t i = 0; i < rt->n_targets; i++)
        worst = fmax(worst, worst_cost(g, rt, &rt->targets[i], prompt_ub,
                                       max_out));
    for (size_t i = 0; i < rt->n_fallback; i++)
        worst = fmax(worst, worst_cost(g, rt, &rt->fallback[i], prompt_ub,
                                       max_out));
    /* A worst case over the whole budget can never pass: say so, and how
     * to fix it, instead of a 429 that waiting cannot cure. */
    const hp_key_info *ki = &r->ki;
    char msg[400] = "";
    if (ki->budget_tokens >= 0 && prompt_ub + max_out > ki->budget_tokens)
        snprintf(msg, sizeof msg, "This request may use up to %lld tokens "
                 "(%lld for the prompt, bounded by the body's size, plus "
                 "max_tokens %lld x n %lld%s), more than this key's whole "
                 "budget of %lld tokens: lower max_tokens",
                 (long long)(prompt_ub + max_out), (long long)prompt_ub,
                 (long long)(max_out / r->n_choices), (long long)r->n_choices,
                 r->max_tokens > 0 ? "" : ", the default when none is set",
                 (long long)ki->budget_tokens);
    else if (ki->budget_usd >= 0 && worst > ki->budget_usd)
        snprintf(msg, sizeof msg, "This request may cost up to %.6g USD "
                 "(its prompt bound, max_tokens x n, or the local runtime's "
                 "share for the route's total timeout), more than this key's "
                 "whole budget of %.6g USD: lower max_tokens",
                 worst, ki->budget_usd);
    if (msg[0]) {
        hp_gw_error(r->req, r->anth_in, 400, NULL, "max_tokens",
                    "request_exceeds_budget", msg, NULL, NULL);
        return false;
    }
    int retry = 1;
    hp_errbuf eb;
    hp_err e = hp_keys_admit(g->keys, &r->ki, worst, prompt_ub + max_out,
                             hp_gw_now_ms() / 1e3, &r->resv, &retry, &eb);
    if (e == HP_OK)
        return true;
    char ra[16];
    snprintf(ra, sizeof ra, "%d", retry > 0 ? retry : 1);
    bool budget = strstr(eb.msg, "budget") != NULL;
    hp_gw_error(r->req, r->anth_in, 429, budget ? "insufficient_quota" : NULL,
                NULL, budget ? "budget_exceeded" : "rate_limit_exceeded",
                e == HP_ERR_AGAIN ? eb.msg : "key limits unavailable",
                "Retry-After", ra);
    return false;
}

static void buf_write(const char *t, size_t n, void *ud)
{
    evbuffer_add(ud, t, n);
}

static int replay_event(const char *event, const char *data, size_t len,
                        void *ud)
{
    (void)event;
    gwreq *r = ud;
    json_t *ch = len == 6 && !memcmp(data, "[DONE]", 6)
                     ? NULL : json_loadb(data, len, 0, NULL);
    hp_errbuf eb;
    if (ch)
        hp_anth_out_chunk(&r->aout, ch, buf_write, r->ubody, &eb);
    json_decref(ch);
    return 0;
}

/* A cache hit for a Messages client: the stored OpenAI completion as a
 * Messages object, or replayed through the stream translator. */
static bool serve_cached_anth(gwreq *r, const char *hit, size_t len)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
    if (!r->stream) {
        json_t *obj = json_loadb(hit, len, 0, NULL), *a = NULL;
        hp_errbuf eb;
        if (!obj || hp_anth_in_response(obj, r->route->model, &a, &eb)) {
            json_decref(obj);
            return false;
        }
        json_decref(obj);
        char *s = json_dumps(a, JSON_COMPACT);
        json_decref(a);
        if (!s)
            return false;
        hp_http_send_json(r->req, 200, s, strlen(s));
        free(s);
        return true;
    }
    size_t n = 0;
    char *sse = hp_rcache_replay_sse(hit, len, true, &n);
    r->ubody = sse ? evbuffer_new() : NULL;
    if (!r->ubody) {
        free(sse);
        return false;
    }
    hp_sse p;
    hp_sse_init(&p, replay_event, r);
    hp_sse_feed(&p, sse, n);
    hp_sse_free(&p);
    free(sse);
    hp_anth_out_finish(&r->aout, buf_write, r->ubody);
    evhttp_add_header(h, "Content-Type", "text/event-stream");
    evhttp_add_header(h, "Cache-Control", "no-cache");
    hp_http_send_reply(r->req, 200, "OK", r->ubody);
    return true;
}

/* Serve a cache hit; true when answered. */
static bool serve_cached(hp_gw *g, gwreq *r)
{
    size_t len = 0;
    const char *hit = hp_rcache_get(g->cache, r->ckey, (int64_t)hp_gw_now_ms(),
                                    &len);
    if (!hit) {
        hp_gwm_add(g->m, HP_GWM_CACHE, r->route->model, NULL, "miss", 1);
        return false;
    }
    hp_gwm_add(g->m, HP_GWM_CACHE, r->route->model, NULL, "hit", 1);
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
    evhttp_add_header(h, "x-hotpath-cache", "hit");
    evhttp_add_header(h, "x-hotpath-route", r->route->model);
    evhttp_add_header(h, "x-hotpath-target", "cache");
    evhttp_add_header(h, "x-request-id", r->id);
    json_t *obj = json_loadb(hit, len, 0, NULL);
    json_t *u = json_object_get(obj, "usage");
    r->prompt = json_integer_value(json_object_get(u, "prompt_tokens"));
    r->completion = json_integer_value(json_object_get(u, "completion_tokens"));
    r->have_usage = true;
    json_decref(obj);
    snprintf(r->target, sizeof r->target, "cache");
    if (r->anth_in) {
        if (!serve_cached_anth(r, hit, len))
            return false;
    } else if (r->stream) {
        size_t n = 0;
        char *sse = hp_rcache_replay_sse(hit, len, r->include_usage, &n);
        if (!sse)
            return false;
        evhttp_add_header(h, "Content-Type", "text/event-stream");
        evhttp_add_header(h, "Cache-Control", "no-cache");
        struct evbuffer *b = evbuffer_new();
        if (b)
            evbuffer_add(b, sse, n);
        hp_http_send_reply(r->req, 200, "OK", b);
        if (b)
            evbuffer_free(b);
        free(sse);
    } else {
        hp_http_send_json(r->req, 200, hit, len);
    }
    r->req = NULL;
    hp_gw_account(r, 200, true);
    return true;
}

/* The client's virtual key, when the config requires one. false: answered
 * (401). Checked before anything else, so a client without a key learns
 * nothing, not even which routes exist. */
static bool check_key(hp_gw *g, struct evhttp_request *req, bool anth,
                      hp_key_info *ki)
{
    if (!g->c->require_keys)
        return true;
    const char *tok = bearer(req);
    hp_errbuf eb;
    if (tok && hp_keys_lookup(g->keys, tok, ki, &eb) == HP_OK)
        return true;
    hp_gw_error(req, anth, 401, "invalid_request_error", NULL,
                "invalid_api_key", tok ? "Incorrect API key provided"
                                       : "Missing API key: send it as "
                                         "'Authorization: Bearer KEY'",
                "WWW-Authenticate", "Bearer");
    return false;
}

/* kind: 0 /v1/completions, 1 /v1/chat/completions, 2 /v1/messages (the
 * Anthropic Messages API, turned into a chat request at the door). */
static void handle_generate(hp_gw *g, struct evhttp_request *req, int kind)
{
    bool anth = kind == 2, chat = kind != 0;
    hp_key_info ki;
    if (!check_key(g, req, anth, &ki))
        return;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *raw = (const char *)evbuffer_pullup(in, -1);
    json_error_t je;
    json_t *body = raw ? json_loadb(raw, len, 0, &je) : NULL;
    if (!body || !json_is_object(body)) {
        char msg[300];
        if (body)
            snprintf(msg, sizeof msg, "The request body must be a JSON object");
        else if (!len)
            snprintf(msg, sizeof msg, "The request body is empty: send a "
                     "JSON object");
        else
            snprintf(msg, sizeof msg, "We could not parse the JSON body of "
                     "your request: %s (line %d, column %d)",
                     strstr(je.text, "JSON_ALLOW_NUL") ? "NUL byte in a string"
                                                       : je.text,
                     je.line, je.column);
        json_decref(body);
        derr(req, anth, 400, NULL, "invalid_json", msg);
        return;
    }
    {
        const json_t *arr = json_object_get(body, chat ? "messages" : "prompt");
        if (json_is_array(arr) && json_array_size(arr) > HP_GW_MAX_MESSAGES) {
            char msg[160];
            snprintf(msg, sizeof msg, "too many %s: %zu, at most %d",
                     chat ? "messages" : "prompts", json_array_size(arr),
                     HP_GW_MAX_MESSAGES);
            json_decref(body);
            derr(req, anth, 400, chat ? "messages" : "prompt", "invalid_value",
                 msg);
            return;
        }
    }
    if (anth) {
        json_t *oai = NULL;
        hp_errbuf eb;
        if (hp_anth_in_request(body, &oai, &eb) != HP_OK) {
            json_decref(body);
            derr(req, true, 400, NULL, "invalid_request", eb.msg);
            return;
        }
        json_decref(body);
        body = oai;
    }
    const json_t *model = json_object_get(body, "model");
    if (!json_is_string(model) || !json_string_length(model)) {
        json_decref(body);
        derr(req, anth, 400, "model", "missing_model",
            "'model' is required: the name of a route (see GET /v1/models)");
        return;
    }
    const json_t *st = json_object_get(body, "stream");
    if (st && !json_is_boolean(st) && !json_is_null(st)) {
        json_decref(body);
        derr(req, anth, 400, "stream", "invalid_type", "'stream' must be a boolean");
        return;
    }
    if (chat && !json_is_array(json_object_get(body, "messages"))) {
        json_decref(body);
        derr(req, anth, 400, "messages", "invalid_type",
            "'messages' is required and must be an array");
        return;
    }
    if (!chat && !json_object_get(body, "prompt")) {
        json_decref(body);
        derr(req, anth, 400, "prompt", "missing_prompt", "'prompt' is required");
        return;
    }
    const json_t *mt = json_object_get(body, "max_completion_tokens");
    if (!mt || json_is_null(mt))
        mt = json_object_get(body, "max_tokens");
    if (mt && !json_is_null(mt) &&
        (!json_is_integer(mt) || json_integer_value(mt) < 1 ||
         json_integer_value(mt) > HP_GW_MAX_TOKENS_LIMIT)) {
        const char *param = json_object_get(body, "max_completion_tokens")
                                ? "max_completion_tokens" : "max_tokens";
        char msg[160];
        snprintf(msg, sizeof msg, "%s must be an integer from 1 to %d", param,
                 HP_GW_MAX_TOKENS_LIMIT);
        json_decref(body);
        derr(req, anth, 400, param, "invalid_value", msg);
        return;
    }
    /* n (and best_of): each choice is a completion to pay for */
    int64_t n_choices = 1;
    static const char *const nfields[] = {"n", "best_of"};
    for (int k = 0; k < 2; k++) {
        const json_t *nv = json_object_get(body, nfields[k]);
        if (!nv || json_is_null(nv))
            continue;
        if (!json_is_integer(nv) || json_integer_value(nv) < 1 ||
            json_integer_value(nv) > HP_GW_MAX_CHOICES) {
            char msg[160];
            snprintf(msg, sizeof msg, "%s must be an integer from 1 to %d",
                     nfields[k], HP_GW_MAX_CHOICES);
            json_decref(body);
            derr(req, anth, 400, nfields[k], "invalid_value", msg);
            return;
        }
        if (json_integer_value(nv) > n_choices)
            n_choices = json_integer_value(nv);
    }
    const hp_gwconf_route *rt = hp_gwconf_route_find(g->c,
                                                     json_string_value(model));
    if (!rt) {
        char msg[300];
        snprintf(msg, sizeof msg, "The model '%.200s' does not exist: it "
                 "names no route (see GET /v1/models)",
                 json_string_value(model));
        json_decref(body);
        derr(req, anth, 404, "model", "model_not_found", msg);
        return;
    }

    gwreq *r = calloc(1, sizeof *r);
    if (!r) {
        json_decref(body);
        derr(req, anth, 503, NULL, NULL, "out of memory");
        return;
    }
    r->gw = g;
    r->req = req;
    r->body = body;
    r->chat = chat;
    r->anth_in = anth;
    r->route = rt;
    r->stream = json_is_true(st);
    r->include_usage = r->stream && json_is_true(json_object_get(
        json_object_get(body, "stream_options"), "include_usage"));
    r->max_tokens = mt && json_is_integer(mt) ? json_integer_value(mt) : 0;
    r->n_choices = n_choices;
    r->body_len = len;
    r->t0 = hp_gw_now_ms();
    r->created = (int64_t)time(NULL);
    snprintf(r->id, sizeof r->id, "chatcmpl-hp%llx%06llx",
             (unsigned long long)time(NULL), (unsigned long long)++g->next_id);
    hp_chunk_asm_init(&r->casm);
    if (anth) /* the client's own model name goes back in the replies */
        hp_anth_out_init(&r->aout, NULL, rt->model);
    r->next = g->reqs;
    if (g->reqs)
        g->reqs->prev = r;
    g->reqs = r;
    g->n_reqs++;

    /* a key, when the config asks for one */
    if (g->c->require_keys) {
        r->ki = ki;
        if (!hp_key_allows_route(&r->ki, rt->model)) {
            char msg[300];
            snprintf(msg, sizeof msg, "This key may not use the model '%.200s'",
                     rt->model);
            hp_gw_error(req, anth, 403, "permission_error", "model",
                        "model_not_allowed", msg, NULL, NULL);
            r->req = NULL;
            hp_gw_req_free(r);
            return;
        }
        r->keyed = true;
        if (!admit_key(g, r, len)) {
            r->req = NULL;
            hp_gw_req_free(r);
            return;
        }
    }
    r->est_prompt = prompt_estimate(g, body, chat);

    r->evcon = evhttp_request_get_connection(req);
    if (r->evcon) {
        evhttp_connection_set_closecb(r->evcon, on_conn_close, r);
        hp_http_watch_close(r->evcon);
    }
    r->cacheable = g->cache && hp_rcache_key(body, rt->model, r->ckey);
    if (r->cacheable && serve_cached(g, r)) {
        hp_gw_req_free(r);
        return;
    }
    hp_gw_proxy_start(r);
}

/* ---- small endpoints ------------------------------------------------------- */

static json_t *model_object(const hp_gwconf_route *rt)
{
    return json_pack("{s:s, s:s, s:I, s:s}", "id", rt->model, "object",
                     "model", "created", (json_int_t)0, "owned_by", "hotpath");
}

/* GET /v1/models: every route; or /v1/models/{id} (the SDK's
 * models.retrieve()) when id (still URL-encoded) is non-NULL: that route's
 * entry of the list, or 404 model_not_found as plain serve answers. */
static void handle_models(hp_gw *g, struct evhttp_request *req,
                          const char *id)
{
    json_t *o;
    if (id) {
        char *dec = evhttp_uridecode(id, 0, NULL);
        const hp_gwconf_route *rt = dec ? hp_gwconf_route_find(g->c, dec)
                                        : NULL;
        if (!rt) {
            char msg[300];
            snprintf(msg, sizeof msg, "The model '%.200s' does not exist: it "
                     "names no route (see GET /v1/models)", dec ? dec : id);
            free(dec);
            err(req, 404, "model", "model_not_found", msg);
            return;
        }
        free(dec);
        o = model_object(rt);
    } else {
        json_t *data = json_array();
        for (size_t i = 0; i < g->c->n_routes; i++)
            json_array_append_new(data, model_object(&g->c->routes[i]));
        o = json_pack("{s:s, s:o}", "object", "list", "data", data);
    }
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (s)
        hp_http_send_json(req, 200, s, strlen(s));
    else
        err(req, 503, NULL, NULL, "out of memory");
    free(s);
    json_decref(o);
}

static void handle_metrics(hp_gw *g, struct evhttp_request *req)
{
    /* gauges are read now rather than tracked on every change */
    char name[192];
    for (size_t i = 0; i < g->c->n_routes; i++) {
        const hp_gwconf_route *rt = &g->c->routes[i];
        int busy = 0;
        for (const gwreq *r = g->reqs; r; r = r->next)
            busy += r->route == rt;
        hp_gwm_set(g->m, HP_GWM_IN_FLIGHT, rt->model, NULL, busy);
        for (size_t k = 0; k < rt->n_targets + rt->n_fallback; k++) {
            const hp_gwconf_target *t = k < rt->n_targets
                ? &rt->targets[k] : &rt->fallback[k - rt->n_targets];
            hp_circuit *cb = hp_routes_circuit(g->routes, rt, t);
            hp_target_name(g->c, t, name, sizeof name);
            hp_gwm_set(g->m, HP_GWM_CIRCUIT_OPEN, rt->model, name,
                       cb && cb->open ? 1 : 0);
        }
    }
    char *text = hp_gwm_render(g->m);
    if (!text) {
        err(req, 503, NULL, NULL, "out of memory");
        return;
    }
    struct evbuffer *b = evbuffer_new();
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4");
    if (b)
        evbuffer_add(b, text, strlen(text));
    hp_http_send_reply(req, 200, "OK", b);
    if (b)
        evbuffer_free(b);
    free(text);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    hp_gw *g = arg;
    const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
    const char *path = u ? evhttp_uri_get_path(u) : NULL;
    if (!path || !path[0])
        path = "/";
    char norm[256];
    snprintf(norm, sizeof norm, "%s", path);
    size_t pl = strlen(norm);
    while (pl > 1 && norm[pl - 1] == '/')
        norm[--pl] = '\0';
    const char *p = norm;
    if (!strncmp(p, "/v1/", 4))
        p += 3;
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    if (!strcmp(norm, HP_HTTP_GUARD_PATH)) {
        const char *msg = NULL;
        int st = hp_http_guard_rejection(evhttp_request_get_input_headers(req),
                                         &msg);
        if (st) {
            hp_http_err_send(req, st, NULL, NULL, NULL, msg, NULL, NULL);
            return;
        }
    }
    if (!strncmp(norm, "/admin", 6) && (norm[6] == '/' || !norm[6])) {
        hp_gw_admin(g, req, norm + 6);
        return;
    }
    bool post = m == EVHTTP_REQ_POST;
    bool get = m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD;
    const char *allow = NULL;
    if (!strcmp(p, "/chat/completions") || !strcmp(p, "/completions") ||
        !strcmp(p, "/messages")) {
        int kind = p[1] == 'm' ? 2 : p[1] == 'c' && p[2] == 'h' ? 1 : 0;
        if (post) {
            if (g->stopping)
                derr(req, kind == 2, 503, NULL, NULL,
                     "The gateway is shutting down");
            else
                handle_generate(g, req, kind);
            return;
        }
        allow = "POST";
    } else if (!strcmp(p, "/models") || !strncmp(p, "/models/", 8) ||
               !strcmp(p, "/health") || !strcmp(p, "/metrics")) {
        if (get) {
            hp_key_info ki;
            if (p[1] == 'm' && p[2] == 'o') {
                if (check_key(g, req, false, &ki))
                    handle_models(g, req, p[7] ? p + 8 : NULL);
            }
            else if (p[1] == 'h')
                hp_http_send_json(req, 200, "{\"status\":\"ok\"}", 15);
            else
                handle_metrics(g, req);
            return;
        }
        allow = "GET, HEAD";
    }
    /* The Anthropic SDK also calls /v1/messages/count_tokens and
     * /v1/messages/batches, which the gateway does not serve: it gets
     * Anthropic's error shape there too, as on /v1/messages itself. */
    bool anth = !strcmp(p, "/messages") || !strncmp(p, "/messages/", 10);
    if (allow) {
        char msg[200];
        snprintf(msg, sizeof msg, "Method not allowed for %.100s; allowed: %s",
                 path, allow);
        hp_gw_error(req, anth, 405, "invalid_request_error", NULL,
                    "method_not_allowed", msg, "Allow", allow);
        return;
    }
    char msg[200];
    snprintf(msg, sizeof msg, "Unknown request URL: %.100s", path);
    hp_gw_error(req, anth, 404, "invalid_request_error", NULL, "unknown_url",
                msg, NULL, NULL);
}

/* ---- lifecycle ------------------------------------------------------------- */

static struct bufferevent *on_new_conn(struct event_base *base, void *arg)
{
    hp_gw *g = arg;
    struct bufferevent *bev =
        bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (bev) {
        hp_http_err_install_rewrite(bev, &g->max_body);
        if (g->guards)
            hp_http_guard_attach(g->guards, bev);
    }
    return bev;
}

static void on_grace_over(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    hp_gw *g = arg;
    /* end what is left properly: an error event (or a 503) for each, its
     * usage accounted, then a moment for those bytes to leave */
    while (g->reqs)
        hp_gw_proxy_abort(g->reqs, "the gateway is shutting down");
    finish_stop(g);
}

static void begin_stop(hp_gw *g)
{
    if (g->stopping)
        return;
    g->stopping = true;
    if (g->sock) {
        evhttp_del_accept_socket(g->http, g->sock);
        g->sock = NULL;
    }
    if (g->n_reqs == 0) {
        finish_stop(g);
        return;
    }
    struct timeval tv = {STOP_GRACE_S, 0};
    g->grace_ev = evtimer_new(g->base, on_grace_over, g);
    if (g->grace_ev)
        evtimer_add(g->grace_ev, &tv);
    else
        event_base_loopbreak(g->base);
}

static void on_stop_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    begin_stop(arg);
}

/* Read one secret from the environment into a private copy. */
static char *env_secret(const char *name)
{
    const char *v = name ? getenv(name) : NULL;
    return v && v[0] ? strdup(v) : NULL;
}

static void free_secret(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

hp_err hp_gw_new(const hp_gwconf *c, const hp_gw_opts *o, hp_gw **out,
                 hp_errbuf *eb)
{
    *out = NULL;
    if (evthread_use_pthreads() != 0)
        return hp_errf(eb, HP_ERR_INTERNAL, "libevent: no pthreads support");
    hp_gw *g = calloc(1, sizeof *g);
    if (!g)
        return hp_errf(eb, HP_ERR_NOMEM, "out of memory");
    g->c = c;
    g->max_body = o->max_body ? o->max_body : 8u << 20;
    g->count = o->count;
    g->count_ud = o->count_ud;
    hp_err e = HP_ERR_NOMEM;
    g->local_urls = calloc(c->n_models + 1, sizeof *g->local_urls);
    g->local_parallel = calloc(c->n_models + 1, sizeof *g->local_parallel);
    g->up_keys = calloc(c->n_upstreams + 1, sizeof *g->up_keys);
    g->local_keys = calloc(c->n_models + 1, sizeof *g->local_keys);
    if (!g->local_urls || !g->local_parallel || !g->up_keys || !g->local_keys)
        goto fail;
    for (size_t i = 0; i < c->n_models; i++) {
        if (!o->local_urls || !o->local_urls[i]) {
            e = hp_errf(eb, HP_ERR_INVALID, "local model '%s' is not running",
                        c->models[i].name);
            goto fail;
        }
        g->local_urls[i] = strdup(o->local_urls[i]);
        if (!g->local_urls[i])
            goto fail;
        g->local_parallel[i] = o->local_parallel ? o->local_parallel[i] : 1;
        if (o->local_keys && o->local_keys[i] &&
            !(g->local_keys[i] = strdup(o->local_keys[i])))
            goto fail;
    }
    for (size_t i = 0; i < c->n_upstreams; i++) {
        const char *env = c->upstreams[i].api_key_env;
        if (!env)
            continue;
        g->up_keys[i] = env_secret(env);
        if (!g->up_keys[i]) {
            e = hp_errf(eb, HP_ERR_INVALID, "%s:%d: upstreams[%zu].api_key_env: "
                        "'%s' needs its API key in the environment variable "
                        "%s, which is not set", c->path, c->upstreams[i].line,
                        i, c->upstreams[i].name, env);
            goto fail;
        }
    }
    g->admin_key = env_secret(c->admin_key_env);

    struct event_config *cfg = event_config_new();
    if (cfg) {
        struct timeval max_iv = {0, 5000};
        event_config_set_max_dispatch_interval(cfg, &max_iv, 16, 0);
        /* batch epoll_ctl changes per loop pass: curl and evhttp toggle
         * the same sockets' interest several times per request */
        event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
        g->base = event_base_new_with_config(cfg);
        event_config_free(cfg);
    }
    if (!g->base)
        g->base = event_base_new();
    if (!g->base)
        goto fail;
    if ((e = hp_upc_new(g->base, &g->upc, eb)))
        goto fail;
    e = HP_ERR_NOMEM;
    g->routes = hp_routes_new(c, 0);
    g->m = hp_gwm_new();
    if (!g->routes || !g->m)
        goto fail;
    if (c->cache_max_mb) {
        g->cache = hp_rcache_new((size_t)c->cache_max_mb << 20,
                                 c->cache_ttl_s * 1000);
        if (!g->cache)
            goto fail;
    }
    if ((e = hp_keys_open(o->db_path, &g->keys, eb)))
        goto fail;
    if ((e = hp_ledger_open(o->db_path, &g->ledger, eb)))
        goto fail;

    e = HP_ERR_NOMEM;
    g->http = evhttp_new(g->base);
    if (!g->http)
        goto fail;
    evhttp_set_max_body_size(g->http, (ev_ssize_t)g->max_body);
    evhttp_set_timeout(g->http, 600);
    evhttp_set_allowed_methods(g->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
                               EVHTTP_REQ_HEAD | EVHTTP_REQ_DELETE |
                               EVHTTP_REQ_PUT | EVHTTP_REQ_PATCH |
                               EVHTTP_REQ_OPTIONS);
    evhttp_set_gencb(g->http, on_request, g);
    g->guards = hp_http_guard_set_new(g->base, &g->max_body);
    evhttp_set_bevcb(g->http, on_new_conn, g);
    const char *host = o->host ? o->host : c->listen_host;
    int port = o->port >= 0 ? o->port : c->listen_port;
    g->sock = evhttp_bind_socket_with_handle(g->http, host, (uint16_t)port);
    if (!g->sock) {
        e = hp_errf(eb, HP_ERR_IO, "cannot listen on %s:%d (address in use "
                    "or not available)", host, port);
        goto fail;
    }
    {
        evutil_socket_t fd = evhttp_bound_socket_get_fd(g->sock);
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
            g->port = ntohs(ss.ss_family == AF_INET6
                                ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                : ((struct sockaddr_in *)&ss)->sin_port);
    }
    g->sig_int = evsignal_new(g->base, SIGINT, on_stop_event, g);
    g->sig_term = evsignal_new(g->base, SIGTERM, on_stop_event, g);
    g->stop_ev = event_new(g->base, -1, 0, on_stop_event, g);
    if (!g->sig_int || !g->sig_term || !g->stop_ev)
        goto fail;
    *out = g;
    return HP_OK;
fail:
    if (e == HP_ERR_NOMEM)
        hp_errf(eb, HP_ERR_NOMEM, "out of memory");
    hp_gw_free(g);
    return e;
}

int hp_gw_port(const hp_gw *g)
{
    return g->port;
}

hp_err hp_gw_run(hp_gw *g, hp_errbuf *eb)
{
    (void)eb;
    signal(SIGPIPE, SIG_IGN); /* a client gone mid-write is not fatal */
    evsignal_add(g->sig_int, NULL);
    evsignal_add(g->sig_term, NULL);
    event_base_dispatch(g->base);
    return HP_OK;
}

void hp_gw_stop(hp_gw *g)
{
    if (g && g->stop_ev)
        event_active(g->stop_ev, 0, 1);
}

void hp_gw_free(hp_gw *g)
{
    if (!g)
        return;
    while (g->reqs) {
        gwreq *r = g->reqs;
        r->req = NULL; /* evhttp_free below frees requests */
        hp_gw_req_free(r);
    }
    if (g->http)
        evhttp_free(g->http);
    hp_http_guard_set_free(g->guards);
    hp_upc_free(g->upc);
    hp_ledger_close(g->ledger);
    hp_keys_close(g->keys);
    hp_rcache_free(g->cache);
    hp_gwm_free(g->m);
    hp_routes_free(g->routes);
    struct event *evs[] = {g->sig_int, g->sig_term, g->stop_ev, g->grace_ev};
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
        if (evs[i])
            event_free(evs[i]);
    if (g->base)
        event_base_free(g->base);
    if (g->local_urls)
        for (size_t i = 0; i < g->c->n_models; i++)
            free(g->local_urls[i]);
    if (g->up_keys)
        for (size_t i = 0; i < g->c->n_upstreams; i++)
            free_secret(g->up_keys[i]);
    if (g->local_keys)
        for (size_t i = 0; i < g->c->n_models; i++)
            free_secret(g->local_keys[i]);
    free(g->local_keys);
    free_secret(g->admin_key);
    free(g->local_urls);
    free(g->local_parallel);
    free(g->up_keys);
    free(g);
}
