/* bench_run.c: the load-test driver behind `hotpath bench` (see
 * bench_run.h): request bodies, the libcurl multi loop, incremental SSE
 * parsing and per-request timing.
 *
 * Timing: every timestamp is taken from CLOCK_MONOTONIC in the write
 * callback that delivers the bytes, so TTFT includes connection setup on a
 * fresh connection (as a client sees it) and the chunk times carry the
 * granularity of the event loop (well under a millisecond when the loop is
 * idle). Connections are kept alive and reused through the multi handle's
 * connection cache. */
#include "cli/bench_run.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/bench_prompt.h"

/* Bodies kept for non-streamed replies and for error messages. */
#define MAX_BODY (64u << 20)
#define MAX_ERR_BODY (64u << 10)

typedef struct buf {
    char *p; /* owns */
    size_t len, cap;
} buf;

/* One request in flight. */
typedef struct xfer {
    CURL *easy;          /* owns */
    char *body;          /* owns: request JSON */
    buf resp;            /* non-streamed body, or an error body */
    buf line;            /* SSE: partial line not yet terminated */
    buf data;            /* SSE: data lines of the current event */
    long status;         /* HTTP status, once known (0 before) */
    double t_start, t_first, t_last;
    long n_chunks;       /* content chunks with non-empty text */
    long usage_out;      /* usage.completion_tokens, -1 if not sent */
    long usage_in;       /* usage.prompt_tokens, -1 if not sent */
    bool stream;         /* SSE reply expected */
    bool done_seen;      /* SSE [DONE] received */
    bool failed;         /* error object, bad JSON, or out of memory */
    char why[200];       /* reason when failed */
    hp_bench_samples gaps; /* inter-chunk gaps (ms) of this request */
    char curl_err[CURL_ERROR_SIZE];
    struct xfer *prev, *next; /* borrows: list of live transfers */
} xfer;

typedef struct run {
    const hp_bench_config *c;
    hp_bench_result *r;
    CURLM *multi;          /* owns */
    struct curl_slist *hdr; /* owns */
    char *url;             /* owns */
    long inflight;
    xfer *live;            /* owns: transfers in flight, linked */
} run;

/* The live list exists so an interrupted run can free what is in flight
 * (curl_multi_get_handles needs libcurl 8.4; Debian 12 has 7.88). */
static void link_xfer(run *rn, xfer *x)
{
    x->prev = NULL;
    x->next = rn->live;
    if (rn->live)
        rn->live->prev = x;
    rn->live = x;
}

static void unlink_xfer(run *rn, xfer *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        rn->live = x->next;
    if (x->next)
        x->next->prev = x->prev;
    x->prev = x->next = NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static bool buf_add(buf *b, const char *p, size_t n, size_t limit)
{
    if (n > limit || b->len > limit - n)
        return false;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np)
            return false;
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = 0;
    return true;
}

static void xfer_fail(xfer *x, const char *why)
{
    if (!x->failed)
        snprintf(x->why, sizeof x->why, "%s", why);
    x->failed = true;
}

static void xfer_free(xfer *x)
{
    if (!x)
        return;
    if (x->easy)
        curl_easy_cleanup(x->easy);
    free(x->body);
    free(x->resp.p);
    free(x->line.p);
    free(x->data.p);
    hp_bench_samples_free(&x->gaps);
    free(x);
}

char *hp_bench_endpoint_url(const hp_bench_config *c)
{
    size_t n = strlen(c->url);
    while (n > 0 && c->url[n - 1] == '/')
        n--;
    bool has_v1 = n >= 3 && !memcmp(c->url + n - 3, "/v1", 3);
    const char *tail = c->endpoint == HP_BENCH_CHAT ? "/chat/completions"
                                                    : "/completions";
    size_t len = n + 3 + strlen(tail) + 1;
    char *s = malloc(len);
    if (s)
        snprintf(s, len, "%.*s%s%s", (int)n, c->url, has_v1 ? "" : "/v1",
                 tail);
    return s;
}

/* ---- replies -------------------------------------------------------------- */

/* Read a usage object (either reply form) into x. */
static void take_usage(xfer *x, const json_t *obj)
{
    const json_t *u = json_object_get(obj, "usage");
    if (!json_is_object(u))
        return;
    const json_t *ct = json_object_get(u, "completion_tokens");
    const json_t *pt = json_object_get(u, "prompt_tokens");
    if (json_is_integer(ct))
        x->usage_out = (long)json_integer_value(ct);
    if (json_is_integer(pt))
        x->usage_in = (long)json_integer_value(pt);
}

/* Error object message, for the user. */
static void take_error(xfer *x, const json_t *obj)
{
    const json_t *e = json_object_get(obj, "error");
    const json_t *m = json_is_object(e) ? json_object_get(e, "message") : e;
    char why[200];
    snprintf(why, sizeof why, "error in reply: %s",
             json_is_string(m) ? json_string_value(m) : "(no message)");
    xfer_fail(x, why);
}

/* Text of choices[0] in either endpoint's form (completions "text", chat
 * "delta.content" when streaming, "message.content" when not); NULL if
 * none. */
static const char *choice_text(const json_t *obj)
{
    const json_t *ch = json_array_get(json_object_get(obj, "choices"), 0);
    if (!json_is_object(ch))
        return NULL;
    const json_t *t = json_object_get(ch, "text");
    if (json_is_string(t))
        return json_string_value(t);
    const json_t *d = json_object_get(ch, "delta");
    if (!json_is_object(d))
        d = json_object_get(ch, "message");
    t = json_object_get(d, "content");
    return json_is_string(t) ? json_string_value(t) : NULL;
}

/* One complete SSE event's data. */
static void sse_event(xfer *x, const char *data, size_t len)
{
    if (len == 6 && !memcmp(data, "[DONE]", 6)) {
        x->done_seen = true;
        return;
    }
    json_error_t je;
    json_t *obj = json_loadb(data, len, 0, &je);
    if (!json_is_object(obj)) {
        json_decref(obj);
        xfer_fail(x, "malformed JSON in an SSE event");
        return;
    }
    if (json_object_get(obj, "error")) {
        take_error(x, obj);
        json_decref(obj);
        return;
    }
    const char *text = choice_text(obj);
    if (text && *text) {
        double t = now_s();
        if (x->n_chunks == 0) {
            x->t_first = t;
        } else if (!hp_bench_samples_add(&x->gaps, (t - x->t_last) * 1e3)) {
            xfer_fail(x, "out of memory");
        }
        x->t_last = t;
        x->n_chunks++;
    }
    take_usage(x, obj);
    json_decref(obj);
}

/* One SSE line (without its terminator). A blank line ends the event;
 * "data:" lines accumulate; comments and other fields are ignored. */
static void sse_line(xfer *x, const char *p, size_t n)
{
    if (n > 0 && p[n - 1] == '\r')
        n--;
    if (n == 0) {
        if (x->data.len)
            sse_event(x, x->data.p, x->data.len);
        x->data.len = 0;
        return;
    }
    if (n >= 5 && !memcmp(p, "data:", 5)) {
        p += 5;
        n -= 5;
        if (n && *p == ' ') {
            p++;
            n--;
        }
        if ((x->data.len && !buf_add(&x->data, "\n", 1, MAX_BODY)) ||
            !buf_add(&x->data, p, n, MAX_BODY))
            xfer_fail(x, "SSE event too large");
    }
}

static void sse_feed(xfer *x, const char *p, size_t n)
{
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        if (!nl) {
            if (!buf_add(&x->line, p, n, MAX_BODY))
                xfer_fail(x, "SSE line too long");
            return;
        }
        size_t k = (size_t)(nl - p);
        if (x->line.len) {
            if (!buf_add(&x->line, p, k, MAX_BODY)) {
                xfer_fail(x, "SSE line too long");
                return;
            }
            sse_line(x, x->line.p, x->line.len);
            x->line.len = 0;
        } else {
            sse_line(x, p, k);
        }
        p += k + 1;
        n -= k + 1;
    }
}

static size_t on_data(char *p, size_t size, size_t nmemb, void *ud)
{
    xfer *x = ud;
    size_t n = size * nmemb;
    if (x->status == 0)
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
    bool ok_status = x->status >= 200 && x->status < 300;
    if (x->stream && ok_status) {
        sse_feed(x, p, n);
    } else if (!buf_add(&x->resp, p, n, ok_status ? MAX_BODY : MAX_ERR_BODY)) {
        /* Error bodies are only kept for the message: drop the rest. */
        if (ok_status)
            xfer_fail(x, "reply body too large");
    }
    return n;
}

/* ---- requests ------------------------------------------------------------- */

/* The JSON body of request `index`. temperature 0 and ignore_eos make the
 * output run to max_tokens on llama.cpp, vLLM and hotpath, so every
 * request does the same amount of decoding. */
static char *make_body(const hp_bench_config *c, long index)
{
    char *prompt = hp_bench_prompt_make(c->seed, (uint64_t)index,
                                        c->prompt_tokens, c->shared_prefix);
    if (!prompt)
        return NULL;
    json_t *o = json_object();
    json_object_set_new(o, "model", json_string(c->model));
    if (c->endpoint == HP_BENCH_CHAT) {
        json_t *msg = json_object();
        json_object_set_new(msg, "role", json_string("user"));
        json_object_set_new(msg, "content", json_string(prompt));
        json_t *msgs = json_array();
        json_array_append_new(msgs, msg);
        json_object_set_new(o, "messages", msgs);
    } else {
        json_object_set_new(o, "prompt", json_string(prompt));
    }
    free(prompt);
    json_object_set_new(o, "max_tokens", json_integer(c->max_tokens));
    json_object_set_new(o, "temperature", json_real(0.0));
    json_object_set_new(o, "ignore_eos", json_true());
    json_object_set_new(o, "stream", json_boolean(c->stream));
    if (c->stream) {
        json_t *so = json_object();
        json_object_set_new(so, "include_usage", json_true());
        json_object_set_new(o, "stream_options", so);
    }
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s; /* jansson allocates with malloc by default */
}

static hp_err start_one(run *rn, long index, hp_errbuf *eb)
{
    const hp_bench_config *c = rn->c;
    xfer *x = calloc(1, sizeof *x);
    if (!x)
        return hp_errf(eb, HP_ERR_NOMEM, "out of memory");
    x->usage_out = x->usage_in = -1;
    x->stream = c->stream;
    x->body = make_body(c, index);
    x->easy = curl_easy_init();
    if (!x->body || !x->easy) {
        xfer_free(x);
        return hp_errf(eb, HP_ERR_NOMEM, "out of memory");
    }
    CURL *e = x->easy;
    long tmo = (long)(c->timeout_s * 1e3);
    curl_easy_setopt(e, CURLOPT_URL, rn->url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, rn->hdr);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(x->body));
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->curl_err);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, tmo);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, tmo < 10000 ? tmo : 10000L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "hotpath-bench/0.1");
    x->t_start = now_s();
    if (curl_multi_add_handle(rn->multi, e) != CURLM_OK) {
        xfer_free(x);
        return hp_errf(eb, HP_ERR_INTERNAL, "curl_multi_add_handle failed");
    }
    link_xfer(rn, x);
    rn->inflight++;
    rn->r->sent++;
    return HP_OK;
}

static void note_error(hp_bench_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Count a failed request; keep the first message (truncated) for the user. */
static void note_error(hp_bench_result *r, const char *fmt, ...)
{
    r->errors++;
    if (r->first_error[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->first_error, sizeof r->first_error, fmt, ap);
    va_end(ap);
}

/* Account for one finished transfer. Returns true when it shows the
 * server cannot be reached at all (connection refused or name not
 * resolved before anything succeeded), which ends the run. */
static bool finish_one(run *rn, xfer *x, CURLcode cc)
{
    hp_bench_result *r = rn->r;
    const hp_bench_config *c = rn->c;
    double t_end = now_s();
    if (x->status == 0)
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
    if (cc != CURLE_OK) {
        const char *msg = x->curl_err[0] ? x->curl_err : curl_easy_strerror(cc);
        if (cc == CURLE_OPERATION_TIMEDOUT)
            r->err_timeout++;
        else
            r->err_transport++;
        note_error(r, "transport: %s", msg);
        return r->ok == 0 && (cc == CURLE_COULDNT_CONNECT ||
                              cc == CURLE_COULDNT_RESOLVE_HOST ||
                              cc == CURLE_COULDNT_RESOLVE_PROXY);
    }
    if (x->status < 200 || x->status >= 300) {
        r->err_http++;
        note_error(r, "HTTP %ld: %.200s", x->status, x->resp.p ? x->resp.p : "");
        return false;
    }
    if (x->stream) {
        if (x->line.len) /* a last line without its newline */
            sse_line(x, x->line.p, x->line.len);
        if (x->data.len) /* an event without its blank line */
            sse_line(x, "", 0);
        if (!x->failed && !x->done_seen)
            xfer_fail(x, "stream ended without data: [DONE]");
    } else if (!x->failed) {
        json_error_t je;
        json_t *obj = x->resp.p ? json_loadb(x->resp.p, x->resp.len, 0, &je)
                                : NULL;
        if (!json_is_object(obj)) {
            xfer_fail(x, "reply is not a JSON object");
        } else if (json_object_get(obj, "error")) {
            take_error(x, obj);
        } else {
            const char *text = choice_text(obj);
            x->n_chunks = text && *text ? 1 : 0;
            take_usage(x, obj);
        }
        json_decref(obj);
    }
    if (x->failed) {
        if (strstr(x->why, "error in reply"))
            r->err_http++;
        else
            r->err_transport++;
        note_error(r, "%s", x->why);
        return false;
    }
    double e2e = (t_end - x->t_start) * 1e3;
    double ttft = x->stream && x->n_chunks ? (x->t_first - x->t_start) * 1e3
                                           : e2e;
    long out = x->usage_out >= 0 ? x->usage_out : x->n_chunks;
    bool ok = hp_bench_samples_add(&r->e2e, e2e) &&
              hp_bench_samples_add(&r->ttft, ttft);
    if (ok && x->stream && out > 1)
        ok = hp_bench_samples_add(&r->tpot, (e2e - ttft) / (double)(out - 1));
    double gap_sum = 0;
    for (size_t i = 0; ok && i < x->gaps.n; i++) {
        gap_sum += x->gaps.v[i];
        ok = hp_bench_samples_add(&r->itl, x->gaps.v[i]);
    }
    if (!ok) {
        note_error(r, "local: out of memory");
        return false;
    }
    double itl_mean = x->gaps.n ? gap_sum / (double)x->gaps.n : 0;
    r->ok++;
    r->output_tokens += out;
    if (x->usage_in > 0)
        r->input_tokens += x->usage_in;
    if ((c->slo_ttft_ms <= 0 || ttft <= c->slo_ttft_ms) &&
        (c->slo_itl_ms <= 0 || itl_mean <= c->slo_itl_ms))
        r->good++;
    return false;
}

/* Drain finished transfers. Returns true when the server is unreachable. */
static bool reap(run *rn)
{
    CURLMsg *m;
    int left;
    bool unreachable = false;
    while ((m = curl_multi_info_read(rn->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *e = m->easy_handle;
        CURLcode cc = m->data.result;
        char *priv = NULL;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
        xfer *x = (xfer *)priv;
        curl_multi_remove_handle(rn->multi, e);
        unlink_xfer(rn, x);
        rn->inflight--;
        if (finish_one(rn, x, cc))
            unreachable = true;
        xfer_free(x);
    }
    return unreachable;
}

/* ---- the loop ------------------------------------------------------------- */

void hp_bench_result_free(hp_bench_result *r)
{
    if (!r)
        return;
    hp_bench_samples_free(&r->ttft);
    hp_bench_samples_free(&r->itl);
    hp_bench_samples_free(&r->tpot);
    hp_bench_samples_free(&r->e2e);
}

/* Abandon every transfer still in flight (interrupt or fatal error). */
static void abandon_all(run *rn)
{
    while (rn->live) {
        xfer *x = rn->live;
        curl_multi_remove_handle(rn->multi, x->easy);
        unlink_xfer(rn, x);
        xfer_free(x);
        rn->inflight--;
    }
}

hp_err hp_bench_run(const hp_bench_config *c, hp_bench_progress_fn fn,
                    void *ud, const volatile sig_atomic_t *stop,
                    hp_bench_result *out, hp_errbuf *eb)
{
    memset(out, 0, sizeof *out);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return hp_errf(eb, HP_ERR_INTERNAL, "curl_global_init failed");
    hp_err err = HP_OK;
    double t0 = now_s();
    run rn = {.c = c, .r = out};
    rn.url = hp_bench_endpoint_url(c);
    rn.multi = curl_multi_init();
    rn.hdr = curl_slist_append(NULL, "Content-Type: application/json");
    /* No "Expect: 100-continue" round trip for large prompts. */
    rn.hdr = rn.hdr ? curl_slist_append(rn.hdr, "Expect:") : NULL;
    if (rn.hdr && c->api_key) {
        size_t n = strlen(c->api_key) + 32;
        char *h = malloc(n);
        if (h) {
            snprintf(h, n, "Authorization: Bearer %s", c->api_key);
            struct curl_slist *nh = curl_slist_append(rn.hdr, h);
            free(h);
            if (!nh) {
                curl_slist_free_all(rn.hdr);
                rn.hdr = NULL;
            } else {
                rn.hdr = nh;
            }
        } else {
            curl_slist_free_all(rn.hdr);
            rn.hdr = NULL;
        }
    }
    if (!rn.url || !rn.multi || !rn.hdr) {
        err = hp_errf(eb, HP_ERR_NOMEM, "out of memory");
        goto fail;
    }
    long cache = c->concurrency > 0 ? c->concurrency : 64;
    curl_multi_setopt(rn.multi, CURLMOPT_MAXCONNECTS, cache + 4);

    hp_bench_rng arr;
    hp_bench_rng_seed(&arr, c->seed ^ 0xa5a5a5a5deadbeefull);
    t0 = now_s();
    double next_arrival = 0, last_prog = t0;
    double t_last_done = t0;
    bool held = false; /* current arrival already counted as delayed */
    while (out->ok + out->errors < c->requests) {
        if (stop && *stop) {
            out->interrupted = true;
            break;
        }
        /* Launch what is due. */
        if (c->concurrency > 0) {
            while (rn.inflight < c->concurrency && out->sent < c->requests) {
                err = start_one(&rn, out->sent, eb);
                if (err != HP_OK)
                    goto fail;
            }
        } else {
            double t = now_s() - t0;
            while (out->sent < c->requests && t >= next_arrival) {
                if (rn.inflight >= HP_BENCH_MAX_INFLIGHT) {
                    if (!held)
                        out->delayed++;
                    held = true;
                    break;
                }
                held = false;
                err = start_one(&rn, out->sent, eb);
                if (err != HP_OK)
                    goto fail;
                next_arrival += hp_bench_rng_exp(&arr, 1.0 / c->rate);
            }
        }
        int running = 0;
        if (curl_multi_perform(rn.multi, &running) != CURLM_OK) {
            err = hp_errf(eb, HP_ERR_INTERNAL, "curl_multi_perform failed");
            goto fail;
        }
        long before = out->ok + out->errors;
        if (reap(&rn)) {
            err = hp_errf(eb, HP_ERR_IO, "cannot reach %s: %s", rn.url,
                          out->first_error);
            goto fail;
        }
        double t = now_s();
        if (out->ok + out->errors != before)
            t_last_done = t;
        if (fn && t - last_prog >= 0.25) {
            hp_bench_progress p = {out->ok + out->errors, c->requests,
                                   out->errors, rn.inflight, t - t0};
            fn(&p, ud);
            last_prog = t;
        }
        if (out->ok + out->errors >= c->requests)
            break;
        /* Sleep until socket activity, curl's own timers, the next
         * arrival or the next progress tick, whichever comes first. */
        double wait = 0.25;
        if (c->concurrency <= 0 && out->sent < c->requests &&
            rn.inflight < HP_BENCH_MAX_INFLIGHT) {
            double due = next_arrival - (t - t0);
            if (due < wait)
                wait = due > 0 ? due : 0;
        }
        if (c->concurrency > 0 && rn.inflight < c->concurrency &&
            out->sent < c->requests)
            wait = 0;
        int ms = (int)(wait * 1e3 + 0.999);
        if (ms > 0 && curl_multi_poll(rn.multi, NULL, 0, ms, NULL) != CURLM_OK) {
            err = hp_errf(eb, HP_ERR_INTERNAL, "curl_multi_poll failed");
            goto fail;
        }
    }
    out->duration_s = t_last_done - t0;
    if (fn) {
        hp_bench_progress p = {out->ok + out->errors, c->requests,
                               out->errors, rn.inflight, now_s() - t0};
        fn(&p, ud);
    }
fail:
    if (rn.multi) {
        abandon_all(&rn);
        curl_multi_cleanup(rn.multi);
    }
    curl_slist_free_all(rn.hdr);
    free(rn.url);
    curl_global_cleanup();
    return err;
}
