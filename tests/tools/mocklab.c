/* mocklab.c: a mock "model lab" HTTP server -- a fake upstream for the
 * gateway tests and the gateway overhead benchmark.
 *
 * Owns: the mock's CLI, its fault model and its stats. Speaks two wire
 * APIs over libevent's evhttp (single process, single thread, bound to
 * 127.0.0.1 only), with jansson for request parsing:
 *   OpenAI     POST /v1/chat/completions, POST /v1/completions
 *              (JSON, or SSE when "stream": true), GET /v1/models
 *   Anthropic  POST /v1/messages (JSON, or the named-event SSE sequence)
 *   control    GET /mock/stats, POST /mock/script, POST /mock/reset,
 *              GET /health
 * Replies are deterministic: the natural reply is --tokens words
 * "w1 w2 ... wN", one token each (" wI" after the first); max_tokens cuts
 * it ("length" / "max_tokens"), a stop sequence equal to a word "wJ" ends
 * it before that word. Prompt tokens are the whitespace-separated words in
 * all text content plus one. A streamed and a non-streamed answer to the
 * same request carry the same text and usage.
 *
 * Faults are picked by the request's model name ("fault-500",
 * "fault-cut-3", ...) or by a scripted queue (POST /mock/script) that
 * overrides the model name for the next requests in order. Timing uses
 * evtimers, never sleep, so thousands of requests progress together; a
 * client that closes mid-response is noticed (evhttp's close callback
 * once something was written, a read watch on the socket before that) and
 * counted in stats.client_closed.
 *
 * Knows nothing of hotpath: it links hotpath_core only because every tool
 * does. Per-request work is a JSON parse and a few printf calls; nothing
 * is logged per request (the gateway benchmark runs it at 2,000+ req/s). */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SCRIPT_CAP 4096      /* scripted fault queue entries */
#define MAX_NUM 100000000L   /* bound on every numeric CLI/fault value */

/* ---- configuration and state ------------------------------------------ */

typedef struct opts {
    int port;               /* 0: any free port */
    long ttft_ms, itl_ms;   /* first-byte delay, inter-token delay */
    long tokens;            /* natural reply length in words */
    const char *key;        /* borrows argv: required key, NULL: none */
    long cached;            /* --cached-tokens, -1: not reported */
    bool no_usage, quiet;
} opts;

typedef enum fkind {
    F_NONE, F_401, F_429, F_500, F_503, F_SLOW, F_CUT, F_STALL, F_MALFORMED
} fkind;

typedef struct fault {
    fkind kind;
    long k;                 /* ms for F_SLOW, chunk count for the others */
} fault;

typedef enum api { API_CHAT, API_COMPLETIONS, API_MESSAGES } api;
typedef enum reason { R_STOP, R_LENGTH, R_STOPSEQ } reason;
typedef enum phase { P_WAIT, P_STREAM, P_STALLED, P_CLOSING } phase;

struct resp;

typedef struct lab {
    opts o;
    struct event_base *base;    /* owns */
    struct evhttp *http;        /* owns */
    struct resp *active;        /* owns: responses in progress (list) */
    long n_active;
    unsigned long seq;          /* id counter */
    /* stats, cleared by /mock/reset */
    long requests, client_closed;
    json_t *by_model;           /* owns: {model: count} */
    json_t *last_request;       /* owns: last model request body or NULL */
    json_t *last_headers;       /* owns: {lower-case name: value} */
    /* scripted faults: ring buffer */
    fault script[SCRIPT_CAP];
    size_t s_head, s_len;
} lab;

/* One model response that waits on a timer or streams: per-request data,
 * freed when the response ends, is cut, or the client goes away. */
typedef struct resp {
    lab *lab;                       /* borrows */
    struct evhttp_request *req;     /* borrows: evhttp frees it */
    struct evhttp_connection *evcon;/* borrows */
    struct event *timer;            /* owns */
    struct event *watch;            /* owns: client-close watch, or NULL */
    struct evbuffer *buf;           /* owns: bytes for the next chunk */
    struct resp *prev, *next;       /* lab->active list */
    api api;
    bool stream, include_usage, started, fault_done;
    fault f;
    phase ph;
    long n, sent;                   /* words to produce, words sent */
    reason why;
    long prompt, cached;            /* cached: -1 when not reported */
    char *model;                    /* owns: JSON-encoded model string */
    char *stop_seq;                 /* owns: JSON-encoded, or NULL */
    char *pre;                      /* owns: OpenAI chunk prefix */
    char id[48];
    long created;
} resp;

/* ---- small helpers ---------------------------------------------------- */

/* Parse a non-negative decimal in [0, MAX_NUM]; false on anything else. */
static bool parse_num(const char *s, long *out)
{
    if (!s || !*s || !isdigit((unsigned char)*s))
        return false;
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < 0 || v > MAX_NUM)
        return false;
    *out = v;
    return true;
}

/* Fault names as used in the script queue ("500", "cut-3", "ok"); the
 * model-name form is the same with a "fault-" prefix. */
static bool parse_fault(const char *s, fault *f)
{
    static const struct { const char *name; fkind kind; } fixed[] = {
        { "ok", F_NONE }, { "401", F_401 }, { "429", F_429 },
        { "500", F_500 }, { "503", F_503 },
    };
    static const struct { const char *pfx; fkind kind; } counted[] = {
        { "slow-", F_SLOW }, { "cut-", F_CUT }, { "stall-", F_STALL },
        { "malformed-", F_MALFORMED },
    };
    f->k = 0;
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        if (strcmp(s, fixed[i].name) == 0) {
            f->kind = fixed[i].kind;
            return true;
        }
    }
    for (size_t i = 0; i < sizeof counted / sizeof counted[0]; i++) {
        size_t n = strlen(counted[i].pfx);
        if (strncmp(s, counted[i].pfx, n) == 0 && parse_num(s + n, &f->k)) {
            f->kind = counted[i].kind;
            return true;
        }
    }
    return false;
}

static long count_words(const char *s)
{
    long n = 0;
    bool in = false;
    for (; *s; s++) {
        bool sp = isspace((unsigned char)*s) != 0;
        if (!sp && !in)
            n++;
        in = !sp;
    }
    return n;
}

/* Words in a content value of either API: a string, an array of parts or
 * blocks, a part's "text" and a block's nested "content" (tool results);
 * a bare integer (a token id in a completions prompt) is one word. */
static long json_words(const json_t *v, int depth)
{
    if (!v || depth > 16)
        return 0;
    if (json_is_string(v))
        return count_words(json_string_value(v));
    if (json_is_integer(v))
        return 1;
    long n = 0;
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
            n += json_words(e, depth + 1);
    } else if (json_is_object(v)) {
        n += json_words(json_object_get(v, "text"), depth + 1);
        n += json_words(json_object_get(v, "content"), depth + 1);
    }
    return n;
}

/* A positive integer field, or -1 when absent or not an integer >= 0. */
static long int_field(const json_t *o, const char *name)
{
    json_t *v = json_object_get(o, name);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    json_int_t x = json_integer_value(v);
    return x > MAX_NUM ? MAX_NUM : (long)x;
}

/* JSON text of one string value (with quotes); caller frees. */
static char *json_quote(const char *s)
{
    json_t *j = json_string(s);
    if (!j)
        j = json_string("");    /* invalid UTF-8: jansson refuses it */
    char *out = json_dumps(j, JSON_ENCODE_ANY);
    json_decref(j);
    return out;
}

static void set_tcp_nodelay(struct evhttp_request *req)
{
    /* Token chunks are tiny and timed; Nagle plus delayed ACKs would add
     * up to 40 ms to each one and ruin TTFT/ITL measurements. */
    struct evhttp_connection *c = evhttp_request_get_connection(req);
    struct bufferevent *bev = c ? evhttp_connection_get_bufferevent(c) : NULL;
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    int one = 1;
    if (fd >= 0)
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Send a complete reply; body is copied. */
static void reply(struct evhttp_request *req, int code, const char *ctype,
                  const char *body, size_t len)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", ctype);
    evbuffer_add(evhttp_request_get_output_buffer(req), body, len);
    /* evhttp has no phrase for 429; clients print these, so be exact. */
    const char *phrase = code == 200   ? "OK"
                         : code == 400 ? "Bad Request"
                         : code == 401 ? "Unauthorized"
                         : code == 404 ? "Not Found"
                         : code == 405 ? "Method Not Allowed"
                         : code == 429 ? "Too Many Requests"
                         : code == 503 ? "Service Unavailable"
                                       : "Internal Server Error";
    evhttp_send_reply(req, code, phrase, NULL);
}

static void reply_json(struct evhttp_request *req, int code, json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (s)
        reply(req, code, "application/json", s, strlen(s));
    else
        reply(req, 500, "application/json", "{}", 2);
    free(s);
    json_decref(j);
}

/* An error in the shape of the API the client spoke. */
static void reply_error(struct evhttp_request *req, api a, int code,
                        const char *msg)
{
    json_t *j;
    if (a == API_MESSAGES) {
        const char *type = code == 400   ? "invalid_request_error"
                           : code == 401 ? "authentication_error"
                           : code == 404 ? "not_found_error"
                           : code == 429 ? "rate_limit_error"
                           : code == 503 ? "overloaded_error"
                                         : "api_error";
        j = json_pack("{s:s,s:{s:s,s:s}}", "type", "error", "error", "type",
                      type, "message", msg);
    } else {
        const char *type = code == 429   ? "requests"
                           : code >= 500 ? "server_error"
                                         : "invalid_request_error";
        const char *ecode = code == 401   ? "invalid_api_key"
                            : code == 429 ? "rate_limit_exceeded"
                                          : NULL;
        j = json_pack("{s:{s:s,s:s,s:n,s:s?}}", "error", "message", msg,
                      "type", type, "param", "code", ecode);
        if (j && !ecode)
            json_object_set_new(json_object_get(j, "error"), "code",
                                json_null());
    }
    if (code == 429)
        evhttp_add_header(evhttp_request_get_output_headers(req),
                          "Retry-After", "1");
    reply_json(req, code, j);
}

/* ---- responses in progress -------------------------------------------- */

static void resp_free(resp *r)
{
    lab *L = r->lab;
    if (r->prev)
        r->prev->next = r->next;
    else
        L->active = r->next;
    if (r->next)
        r->next->prev = r->prev;
    L->n_active--;
    if (r->timer)
        event_free(r->timer);
    if (r->watch)
        event_free(r->watch);
    if (r->buf)
        evbuffer_free(r->buf);
    free(r->model);
    free(r->stop_seq);
    free(r->pre);
    free(r);
}

static void unwatch(resp *r)
{
    if (r->watch) {
        event_free(r->watch);
        r->watch = NULL;
    }
}

/* Drop the connection now: used for cuts and for clients seen leaving.
 * evhttp_connection_free frees the request still queued on it. */
static void resp_abort(resp *r, bool client_closed)
{
    struct evhttp_connection *evcon = r->evcon;
    evhttp_connection_set_closecb(evcon, NULL, NULL);
    if (client_closed)
        r->lab->client_closed++;
    resp_free(r);
    evhttp_connection_free(evcon);
}

/* The response is complete: stop watching and free our side. */
static void resp_done(resp *r)
{
    evhttp_connection_set_closecb(r->evcon, NULL, NULL);
    resp_free(r);
}

/* evhttp noticed the connection go (a read EOF or a write error once
 * something was sent). On EOF it detaches a request the user has not
 * finished, so the request is then ours to free. */
static void on_conn_close(struct evhttp_connection *evcon, void *arg)
{
    resp *r = arg;
    struct evhttp_request *req = r->req;
    (void)evcon;
    r->lab->client_closed++;
    resp_free(r);
    if (evhttp_request_get_connection(req) == NULL)
        evhttp_request_free(req);
}

/* Before the first byte goes out evhttp does not read the socket, so a
 * client that gives up during the delay is seen only by this watch. */
static void on_watch(evutil_socket_t fd, short what, void *arg)
{
    resp *r = arg;
    char c;
    (void)what;
    ssize_t k = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR)) {
        resp_abort(r, true);
        return;
    }
    if (k > 0)
        unwatch(r);     /* pipelined bytes: cannot tell; stop polling */
}

static void on_drained_close(struct evhttp_connection *evcon, void *arg)
{
    resp *r = arg;
    (void)evcon;
    /* Called from inside evhttp's write callback; close on the next loop
     * pass instead of freeing the connection under its feet. */
    r->ph = P_CLOSING;
    event_active(r->timer, EV_TIMEOUT, 1);
}

/* Send what is in r->buf, then close the connection once it is written. */
static void cut_after_flush(resp *r)
{
    unwatch(r);
    if (evbuffer_get_length(r->buf) == 0) {
        r->ph = P_CLOSING;
        event_active(r->timer, EV_TIMEOUT, 1);
        return;
    }
    evhttp_send_reply_chunk_with_cb(r->req, r->buf, on_drained_close, r);
}

/* ---- reply bodies ------------------------------------------------------ */

static void add_word(struct evbuffer *b, long i)
{
    if (i == 0)
        evbuffer_add(b, "w1", 2);
    else
        evbuffer_add_printf(b, " w%ld", i + 1);
}

static void add_text(struct evbuffer *b, long n)
{
    for (long i = 0; i < n; i++)
        add_word(b, i);
}

static const char *reason_str(const resp *r)
{
    if (r->api == API_MESSAGES)
        return r->why == R_LENGTH    ? "max_tokens"
               : r->why == R_STOPSEQ ? "stop_sequence"
                                     : "end_turn";
    return r->why == R_LENGTH ? "length" : "stop";
}

static void add_openai_usage(const resp *r, struct evbuffer *b)
{
    evbuffer_add_printf(b,
                        "\"usage\":{\"prompt_tokens\":%ld,"
                        "\"completion_tokens\":%ld,\"total_tokens\":%ld",
                        r->prompt, r->n, r->prompt + r->n);
    if (r->cached >= 0)
        evbuffer_add_printf(b,
                            ",\"prompt_tokens_details\":{\"cached_tokens\":%ld}",
                            r->cached);
    evbuffer_add(b, "}", 1);
}

/* Anthropic usage: input_tokens excludes what was read from cache. */
static void add_anthropic_usage(const resp *r, struct evbuffer *b, long out)
{
    long c = r->cached > 0 ? r->cached : 0;
    evbuffer_add_printf(b,
                        "\"usage\":{\"input_tokens\":%ld,\"output_tokens\":%ld,"
                        "\"cache_read_input_tokens\":%ld,"
                        "\"cache_creation_input_tokens\":0}",
                        r->prompt - c, out, c);
}

/* The whole non-streamed body into b. */
static void build_body(const resp *r, struct evbuffer *b)
{
    bool usage = !r->lab->o.no_usage;
    if (r->api == API_MESSAGES) {
        evbuffer_add_printf(b,
                            "{\"id\":\"%s\",\"type\":\"message\",\"role\":"
                            "\"assistant\",\"model\":%s,\"content\":[{\"type\":"
                            "\"text\",\"text\":\"",
                            r->id, r->model);
        add_text(b, r->n);
        evbuffer_add_printf(b, "\"}],\"stop_reason\":\"%s\",\"stop_sequence\":%s",
                            reason_str(r), r->stop_seq ? r->stop_seq : "null");
        if (usage) {
            evbuffer_add(b, ",", 1);
            add_anthropic_usage(r, b, r->n);
        }
        evbuffer_add(b, "}", 1);
        return;
    }
    bool chat = r->api == API_CHAT;
    evbuffer_add_printf(b,
                        "{\"id\":\"%s\",\"object\":\"%s\",\"created\":%ld,"
                        "\"model\":%s,\"choices\":[{\"index\":0,",
                        r->id, chat ? "chat.completion" : "text_completion",
                        r->created, r->model);
    evbuffer_add_printf(b, chat ? "\"message\":{\"role\":\"assistant\","
                                  "\"content\":\""
                                : "\"text\":\"");
    add_text(b, r->n);
    evbuffer_add_printf(b, "\"%s,\"logprobs\":null,\"finish_reason\":\"%s\"}]",
                        chat ? "}" : "", reason_str(r));
    if (usage) {
        evbuffer_add(b, ",", 1);
        add_openai_usage(r, b);
    }
    evbuffer_add(b, "}", 1);
}

static void add_event(struct evbuffer *b, const char *name, const char *fmt,
                      ...) __attribute__((format(printf, 3, 4)));

/* One Anthropic SSE event: `event: NAME` then the data line. */
static void add_event(struct evbuffer *b, const char *name, const char *fmt,
                      ...)
{
    va_list ap;
    evbuffer_add_printf(b, "event: %s\ndata: ", name);
    va_start(ap, fmt);
    evbuffer_add_vprintf(b, fmt, ap);
    va_end(ap);
    evbuffer_add(b, "\n\n", 2);
}

static void stream_preamble(resp *r)
{
    struct evbuffer *b = r->buf;
    if (r->api == API_MESSAGES) {
        evbuffer_add_printf(b,
                            "event: message_start\ndata: {\"type\":"
                            "\"message_start\",\"message\":{\"id\":\"%s\","
                            "\"type\":\"message\",\"role\":\"assistant\","
                            "\"model\":%s,\"content\":[],\"stop_reason\":null,"
                            "\"stop_sequence\":null",
                            r->id, r->model);
        if (!r->lab->o.no_usage) {
            evbuffer_add(b, ",", 1);
            add_anthropic_usage(r, b, 1);
        }
        evbuffer_add(b, "}}\n\n", 4);
        add_event(b, "content_block_start",
                  "{\"type\":\"content_block_start\",\"index\":0,"
                  "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}");
        add_event(b, "ping", "{\"type\":\"ping\"}");
    } else if (r->api == API_CHAT) {
        evbuffer_add_printf(b,
                            "%s\"choices\":[{\"index\":0,\"delta\":{\"role\":"
                            "\"assistant\",\"content\":\"\"},\"logprobs\":null,"
                            "\"finish_reason\":null}]}\n\n",
                            r->pre);
    }
}

static void stream_token(resp *r, long i)
{
    struct evbuffer *b = r->buf;
    const char *sp = i ? " " : "";
    if (r->api == API_MESSAGES)
        add_event(b, "content_block_delta",
                  "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
                  "{\"type\":\"text_delta\",\"text\":\"%sw%ld\"}}",
                  sp, i + 1);
    else if (r->api == API_CHAT)
        evbuffer_add_printf(b,
                            "%s\"choices\":[{\"index\":0,\"delta\":{\"content\":"
                            "\"%sw%ld\"},\"logprobs\":null,\"finish_reason\":"
                            "null}]}\n\n",
                            r->pre, sp, i + 1);
    else
        evbuffer_add_printf(b,
                            "%s\"choices\":[{\"text\":\"%sw%ld\",\"index\":0,"
                            "\"logprobs\":null,\"finish_reason\":null}]}\n\n",
                            r->pre, sp, i + 1);
}

static void stream_tail(resp *r)
{
    struct evbuffer *b = r->buf;
    bool usage = !r->lab->o.no_usage;
    if (r->api == API_MESSAGES) {
        add_event(b, "content_block_stop",
                  "{\"type\":\"content_block_stop\",\"index\":0}");
        evbuffer_add_printf(b,
                            "event: message_delta\ndata: {\"type\":"
                            "\"message_delta\",\"delta\":{\"stop_reason\":"
                            "\"%s\",\"stop_sequence\":%s}",
                            reason_str(r), r->stop_seq ? r->stop_seq : "null");
        if (usage)
            evbuffer_add_printf(b, ",\"usage\":{\"output_tokens\":%ld}", r->n);
        evbuffer_add(b, "}\n\n", 3);
        add_event(b, "message_stop", "{\"type\":\"message_stop\"}");
        return;
    }
    if (r->api == API_CHAT)
        evbuffer_add_printf(b,
                            "%s\"choices\":[{\"index\":0,\"delta\":{},"
                            "\"logprobs\":null,\"finish_reason\":\"%s\"}]}\n\n",
                            r->pre, reason_str(r));
    else
        evbuffer_add_printf(b,
                            "%s\"choices\":[{\"text\":\"\",\"index\":0,"
                            "\"logprobs\":null,\"finish_reason\":\"%s\"}]}\n\n",
                            r->pre, reason_str(r));
    if (usage && r->include_usage) {
        evbuffer_add_printf(b, "%s\"choices\":[],", r->pre);
        add_openai_usage(r, b);
        evbuffer_add(b, "}\n\n", 3);
    }
    evbuffer_add(b, "data: [DONE]\n\n", 14);
}

/* ---- timing: the response state machine ------------------------------- */

static bool at_fault_point(const resp *r)
{
    if (r->fault_done)
        return false;
    if (r->f.kind != F_CUT && r->f.kind != F_STALL &&
        r->f.kind != F_MALFORMED)
        return false;
    return r->sent == (r->f.k < r->n ? r->f.k : r->n);
}

static void arm_timer(resp *r, long ms)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    evtimer_add(r->timer, &tv);
}

/* Emit stream events until the next timed step, a fault, or the end. */
static void stream_step(resp *r)
{
    if (!r->started) {
        unwatch(r);   /* evhttp watches for close from the first write */
        struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
        evhttp_add_header(h, "Content-Type", "text/event-stream");
        evhttp_add_header(h, "Cache-Control", "no-cache");
        evhttp_send_reply_start(r->req, 200, "OK");
        r->started = true;
        r->ph = P_STREAM;
        stream_preamble(r);
    }
    for (;;) {
        if (at_fault_point(r)) {
            r->fault_done = true;
            if (r->f.kind == F_CUT) {
                cut_after_flush(r);
                return;
            }
            if (r->f.kind == F_STALL) {
                evhttp_send_reply_chunk(r->req, r->buf);
                r->ph = P_STALLED;  /* until the client closes */
                return;
            }
            evbuffer_add(r->buf, "data: {not json\n\n", 17);
        }
        if (r->sent < r->n) {
            stream_token(r, r->sent);
            r->sent++;
            if (r->lab->o.itl_ms > 0 && r->sent < r->n && !at_fault_point(r)) {
                evhttp_send_reply_chunk(r->req, r->buf);
                arm_timer(r, r->lab->o.itl_ms);
                return;
            }
            continue;
        }
        stream_tail(r);
        evhttp_send_reply_chunk(r->req, r->buf);
        struct evhttp_request *req = r->req;
        resp_done(r);
        evhttp_send_reply_end(req);
        return;
    }
}

/* The whole non-streamed reply, after its delay. */
static void answer_once(resp *r)
{
    if (r->f.kind == F_STALL) {
        r->ph = P_STALLED;  /* never answer; the watch sees the client go */
        return;
    }
    unwatch(r);
    struct evhttp_request *req = r->req;
    if (r->f.kind == F_MALFORMED) {
        resp_done(r);
        reply(req, 200, "application/json", "{not json", 9);
        return;
    }
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "application/json");
    build_body(r, r->buf);
    size_t len = evbuffer_get_length(r->buf);
    if (r->f.kind == F_CUT) {
        /* Promise the whole body, send its first half, then close. */
        char cl[32];
        snprintf(cl, sizeof cl, "%zu", len);
        evhttp_add_header(h, "Content-Length", cl);
        evhttp_send_reply_start(req, 200, "OK");
        r->started = true;
        struct evbuffer *half = evbuffer_new();
        if (half) {
            evbuffer_remove_buffer(r->buf, half, len / 2);
            evbuffer_free(r->buf);
            r->buf = half;
        }
        cut_after_flush(r);
        return;
    }
    evbuffer_add_buffer(evhttp_request_get_output_buffer(req), r->buf);
    resp_done(r);
    evhttp_send_reply(req, 200, "OK", NULL);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    resp *r = arg;
    (void)fd;
    (void)what;
    if (r->ph == P_CLOSING) {
        resp_abort(r, false);
        return;
    }
    if (r->stream)
        stream_step(r);
    else
        answer_once(r);
}

/* ---- model requests ---------------------------------------------------- */

static bool key_ok(const lab *L, struct evkeyvalq *h, bool bearer, bool xkey)
{
    const char *v;
    if (!L->o.key)
        return true;
    if (xkey) {
        v = evhttp_find_header(h, "x-api-key");
        if (v && strcmp(v, L->o.key) == 0)
            return true;
    }
    if (bearer) {
        v = evhttp_find_header(h, "Authorization");
        if (v && strncmp(v, "Bearer ", 7) == 0 && strcmp(v + 7, L->o.key) == 0)
            return true;
    }
    return false;
}

/* Count the request and keep its body and headers for /mock/stats. The
 * key headers are kept verbatim (tests check what the gateway sent) but
 * never printed. */
static void record(lab *L, struct evhttp_request *req, json_t *body,
                   const char *model)
{
    L->requests++;
    json_t *c = json_object_get(L->by_model, model);
    json_object_set_new(L->by_model, model,
                        json_integer(c ? json_integer_value(c) + 1 : 1));
    json_decref(L->last_request);
    L->last_request = body ? json_incref(body) : NULL;
    json_t *hj = json_object();
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    for (struct evkeyval *kv = h->tqh_first; kv && hj; kv = kv->next.tqe_next) {
        char name[128];
        size_t i = 0;
        for (; kv->key[i] && i + 1 < sizeof name; i++)
            name[i] = (char)tolower((unsigned char)kv->key[i]);
        name[i] = '\0';
        json_object_set_new(hj, name, json_string(kv->value));
    }
    if (hj) {
        json_decref(L->last_headers);
        L->last_headers = hj;
    }
}

static fault pick_fault(lab *L, const char *model)
{
    fault f = { F_NONE, 0 };
    if (L->s_len > 0) {
        f = L->script[L->s_head];
        L->s_head = (L->s_head + 1) % SCRIPT_CAP;
        L->s_len--;
    } else if (strncmp(model, "fault-", 6) == 0 && !parse_fault(model + 6, &f)) {
        f.kind = F_NONE;
    }
    return f;
}

/* The earliest stop sequence "wJ" among the first n words, else -1. */
static long stop_at(const json_t *stop, long n, const char **which)
{
    long best = -1;
    size_t cnt = json_is_array(stop) ? json_array_size(stop) : 1;
    for (size_t i = 0; i < cnt; i++) {
        const json_t *s = json_is_array(stop) ? json_array_get(stop, i) : stop;
        const char *v = json_string_value(s);
        long j;
        if (v && v[0] == 'w' && parse_num(v + 1, &j) && j >= 1 && j <= n &&
            (best < 0 || j - 1 < best)) {
            best = j - 1;
            *which = v;
        }
    }
    return best;
}

static char *chunk_prefix(const resp *r)
{
    const char *obj = r->api == API_CHAT ? "chat.completion.chunk"
                                         : "text_completion";
    const char *fmt = "data: {\"id\":\"%s\",\"object\":\"%s\",\"created\":%ld,"
                      "\"model\":%s,";
    int len = snprintf(NULL, 0, fmt, r->id, obj, r->created, r->model);
    char *p = len >= 0 ? malloc((size_t)len + 1) : NULL;
    if (p)
        snprintf(p, (size_t)len + 1, fmt, r->id, obj, r->created, r->model);
    return p;
}

/* Plan the reply (length, reason, usage) and start its timer. */
static void start_reply(lab *L, struct evhttp_request *req, api a,
                        json_t *body, const char *model, fault f)
{
    resp *r = calloc(1, sizeof *r);
    if (!r) {
        reply_error(req, a, 500, "out of memory (mock)");
        return;
    }
    r->lab = L;
    r->req = req;
    r->evcon = evhttp_request_get_connection(req);
    r->api = a;
    r->f = f;
    r->created = (long)time(NULL);
    r->next = L->active;
    if (L->active)
        L->active->prev = r;
    L->active = r;
    L->n_active++;

    if (a == API_MESSAGES)
        r->prompt = json_words(json_object_get(body, "system"), 0) +
                    json_words(json_object_get(body, "messages"), 0);
    else if (a == API_CHAT)
        r->prompt = json_words(json_object_get(body, "messages"), 0);
    else
        r->prompt = json_words(json_object_get(body, "prompt"), 0);
    r->prompt += 1;
    long limit = int_field(body, "max_tokens");
    if (a == API_CHAT && int_field(body, "max_completion_tokens") >= 0)
        limit = int_field(body, "max_completion_tokens");
    r->n = L->o.tokens;
    r->why = R_STOP;
    if (limit >= 0 && limit < r->n) {
        r->n = limit;
        r->why = R_LENGTH;
    }
    const char *which = NULL;
    long j = stop_at(json_object_get(body, a == API_MESSAGES ? "stop_sequences"
                                                             : "stop"),
                     r->n, &which);
    if (j >= 0) {
        r->n = j;
        r->why = R_STOPSEQ;
        r->stop_seq = json_quote(which);
    }
    r->cached = L->o.cached < 0 ? -1
                : L->o.cached < r->prompt ? L->o.cached : r->prompt;
    r->stream = json_is_true(json_object_get(body, "stream"));
    r->include_usage = json_is_true(json_object_get(
        json_object_get(body, "stream_options"), "include_usage"));
    snprintf(r->id, sizeof r->id, "%s%lu",
             a == API_MESSAGES ? "msg_mock" : a == API_CHAT ? "chatcmpl-mock"
                                                            : "cmpl-mock",
             ++L->seq);
    r->model = json_quote(model);
    r->pre = a == API_MESSAGES ? NULL : chunk_prefix(r);
    r->timer = evtimer_new(L->base, on_timer, r);
    r->buf = evbuffer_new();
    struct bufferevent *bev = r->evcon ? evhttp_connection_get_bufferevent(r->evcon)
                                       : NULL;
    if (bev)
        r->watch = event_new(L->base, bufferevent_getfd(bev),
                             EV_READ | EV_PERSIST, on_watch, r);
    if (!r->model || (a != API_MESSAGES && !r->pre) || !r->timer || !r->buf ||
        !r->evcon || !r->watch) {
        resp_free(r);
        reply_error(req, a, 500, "out of memory (mock)");
        return;
    }
    event_add(r->watch, NULL);
    evhttp_connection_set_closecb(r->evcon, on_conn_close, r);

    long first = f.kind == F_SLOW ? f.k : L->o.ttft_ms;
    if (!r->stream && r->n > 1)
        first += (r->n - 1) * L->o.itl_ms;  /* the whole generation */
    arm_timer(r, first);
}

static void handle_model(lab *L, struct evhttp_request *req, api a)
{
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        reply_error(req, a, 405, "use POST (mock)");
        return;
    }
    set_tcp_nodelay(req);
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    json_t *body = NULL;
    if (len > 0) {
        json_error_t je;
        body = json_loadb((const char *)evbuffer_pullup(in, -1), len, 0, &je);
    }
    const char *model = json_string_value(json_object_get(body, "model"));
    if (!model)
        model = "";
    record(L, req, body, model);

    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    if (!key_ok(L, h, a != API_MESSAGES, a == API_MESSAGES)) {
        reply_error(req, a, 401, a == API_MESSAGES ? "invalid x-api-key (mock)"
                                 : "Incorrect API key provided (mock)");
    } else if (!json_is_object(body)) {
        reply_error(req, a, 400, "request body is not a JSON object (mock)");
    } else if (a == API_MESSAGES && int_field(body, "max_tokens") < 1) {
        reply_error(req, a, 400, "max_tokens: Field required (mock)");
    } else {
        fault f = pick_fault(L, model);
        switch (f.kind) {
        case F_401:
            reply_error(req, a, 401, a == API_MESSAGES
                                         ? "invalid x-api-key (mock fault)"
                                         : "Incorrect API key provided (mock fault)");
            break;
        case F_429:
            reply_error(req, a, 429, "Rate limit reached (mock fault)");
            break;
        case F_500:
            reply_error(req, a, 500, "Internal server error (mock fault)");
            break;
        case F_503:
            reply_error(req, a, 503, "Overloaded (mock fault)");
            break;
        case F_NONE:
        case F_SLOW:
        case F_CUT:
        case F_STALL:
        case F_MALFORMED:
            start_reply(L, req, a, body, model, f);
            break;
        }
    }
    json_decref(body);
}

/* ---- control endpoints ------------------------------------------------- */

static void handle_stats(lab *L, struct evhttp_request *req)
{
    reply_json(req, 200,
               json_pack("{s:I,s:O,s:I,s:I,s:O,s:O,s:I}", "requests",
                         (json_int_t)L->requests, "by_model", L->by_model,
                         "active", (json_int_t)L->n_active, "client_closed",
                         (json_int_t)L->client_closed, "last_request",
                         L->last_request ? L->last_request : json_null(),
                         "last_headers", L->last_headers, "script_left",
                         (json_int_t)L->s_len));
}

static void handle_script(lab *L, struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    json_error_t je;
    json_t *body = len ? json_loadb((const char *)evbuffer_pullup(in, -1),
                                    len, 0, &je)
                       : NULL;
    json_t *arr = json_object_get(body, "faults");
    size_t n = json_array_size(arr);
    fault tmp[SCRIPT_CAP];
    const char *bad = NULL;
    if (!json_is_array(arr) || n > SCRIPT_CAP)
        bad = "want {\"faults\": [names]} with at most 4096 entries";
    for (size_t i = 0; !bad && i < n; i++) {
        const char *s = json_string_value(json_array_get(arr, i));
        if (!s || !parse_fault(s, &tmp[i]))
            bad = "unknown fault name (want ok, 401, 429, 500, 503, slow-MS, "
                  "cut-K, stall-K, malformed-K)";
    }
    json_decref(body);
    if (bad) {
        reply_error(req, API_CHAT, 400, bad);
        return;
    }
    /* A script replaces whatever was left of the previous one. */
    memcpy(L->script, tmp, n * sizeof tmp[0]);
    L->s_head = 0;
    L->s_len = n;
    reply_json(req, 200, json_pack("{s:I}", "queued", (json_int_t)n));
}

static void reset_stats(lab *L)
{
    L->s_head = L->s_len = 0;
    L->requests = L->client_closed = 0;
    json_object_clear(L->by_model);
    json_decref(L->last_request);
    L->last_request = NULL;
    json_object_clear(L->last_headers);
}

static void handle_models(lab *L, struct evhttp_request *req)
{
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    bool anthropic = evhttp_find_header(h, "anthropic-version") != NULL;
    if (!key_ok(L, h, true, true)) {
        reply_error(req, anthropic ? API_MESSAGES : API_CHAT, 401,
                    "Incorrect API key provided (mock)");
        return;
    }
    if (anthropic)
        reply_json(req, 200,
                   json_pack("{s:[{s:s,s:s,s:s,s:s}],s:b,s:s,s:s}", "data",
                             "type", "model", "id", "mock-model",
                             "display_name", "Mock Model", "created_at",
                             "2024-01-01T00:00:00Z", "has_more", 0,
                             "first_id", "mock-model", "last_id",
                             "mock-model"));
    else
        reply_json(req, 200,
                   json_pack("{s:s,s:[{s:s,s:s,s:i,s:s}]}", "object", "list",
                             "data", "id", "mock-model", "object", "model",
                             "created", 0, "owned_by", "mocklab"));
}

static void on_request(struct evhttp_request *req, void *arg)
{
    lab *L = arg;
    const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
    const char *path = u ? evhttp_uri_get_path(u) : NULL;
    if (!path)
        path = "";
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    if (strcmp(path, "/v1/chat/completions") == 0)
        handle_model(L, req, API_CHAT);
    else if (strcmp(path, "/v1/completions") == 0)
        handle_model(L, req, API_COMPLETIONS);
    else if (strcmp(path, "/v1/messages") == 0)
        handle_model(L, req, API_MESSAGES);
    else if (strcmp(path, "/v1/models") == 0 && m == EVHTTP_REQ_GET)
        handle_models(L, req);
    else if (strcmp(path, "/mock/stats") == 0 && m == EVHTTP_REQ_GET)
        handle_stats(L, req);
    else if (strcmp(path, "/mock/script") == 0 && m == EVHTTP_REQ_POST)
        handle_script(L, req);
    else if (strcmp(path, "/mock/reset") == 0 && m == EVHTTP_REQ_POST) {
        reset_stats(L);
        reply_json(req, 200, json_pack("{s:b}", "ok", 1));
    } else if (strcmp(path, "/health") == 0 && m == EVHTTP_REQ_GET)
        reply_json(req, 200, json_pack("{s:s}", "status", "ok"));
    else
        reply_error(req, API_CHAT, 404, "no such endpoint (mock)");
}

/* ---- main -------------------------------------------------------------- */

static void usage(FILE *f)
{
    fputs("usage: mocklab [--port N (0 = free port)] [--ttft-ms MS] "
          "[--itl-ms MS]\n"
          "               [--tokens N (default words per reply, 8)] "
          "[--require-key KEY]\n"
          "               [--cached-tokens N] [--no-usage] [--quiet] "
          "[--help]\n"
          "Mock OpenAI + Anthropic upstream on 127.0.0.1; faults by model "
          "name fault-{401,429,500,503,slow-MS,cut-K,stall-K,malformed-K}\n"
          "or POST /mock/script; GET /mock/stats, POST /mock/reset.\n",
          f);
}

static int parse_args(int argc, char **argv, opts *o)
{
    *o = (opts){ .port = 0, .tokens = 8, .cached = -1 };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        long *dst = NULL;
        long port = 0;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 1;
        } else if (strcmp(a, "--quiet") == 0) {
            o->quiet = true;
            continue;
        } else if (strcmp(a, "--no-usage") == 0) {
            o->no_usage = true;
            continue;
        } else if (strcmp(a, "--require-key") == 0 && i + 1 < argc) {
            o->key = argv[++i];
            continue;
        } else if (strcmp(a, "--port") == 0) {
            dst = &port;
        } else if (strcmp(a, "--ttft-ms") == 0) {
            dst = &o->ttft_ms;
        } else if (strcmp(a, "--itl-ms") == 0) {
            dst = &o->itl_ms;
        } else if (strcmp(a, "--tokens") == 0) {
            dst = &o->tokens;
        } else if (strcmp(a, "--cached-tokens") == 0) {
            dst = &o->cached;
        }
        if (!dst || i + 1 >= argc || !parse_num(argv[i + 1], dst) ||
            port > 65535) {
            fprintf(stderr, "mocklab: bad argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
        i++;
        if (dst == &port)
            o->port = (int)port;
    }
    return 0;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    event_base_loopexit(arg, NULL);
}

/* Listen on 127.0.0.1:port with a deep backlog (benchmarks open many
 * connections at once); returns the fd or -1. */
static evutil_socket_t listen_local(int port, int *bound)
{
    evutil_socket_t fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    struct sockaddr_in sa = { .sin_family = AF_INET,
                              .sin_port = htons((uint16_t)port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        listen(fd, 1024) < 0 || evutil_make_socket_nonblocking(fd) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
        close(fd);
        return -1;
    }
    *bound = ntohs(sa.sin_port);
    return fd;
}

int main(int argc, char **argv)
{
    static lab L;   /* static: the script ring is 64 KiB */
    int rc = parse_args(argc, argv, &L.o);
    if (rc)
        return rc == 1 ? 0 : rc;
    signal(SIGPIPE, SIG_IGN);
    L.by_model = json_object();
    L.last_headers = json_object();
    L.base = event_base_new();
    L.http = L.base ? evhttp_new(L.base) : NULL;
    int port = 0;
    evutil_socket_t fd = L.http ? listen_local(L.o.port, &port) : -1;
    if (fd < 0 || !L.by_model || !L.last_headers ||
        !evhttp_accept_socket_with_handle(L.http, fd)) {
        fprintf(stderr, "mocklab: cannot listen on 127.0.0.1:%d: %s\n",
                L.o.port, strerror(errno));
        return 1;
    }
    evhttp_set_gencb(L.http, on_request, &L);
    struct event *sterm = evsignal_new(L.base, SIGTERM, on_signal, L.base);
    struct event *sint = evsignal_new(L.base, SIGINT, on_signal, L.base);
    if (!sterm || !sint || evsignal_add(sterm, NULL) || evsignal_add(sint, NULL)) {
        fprintf(stderr, "mocklab: cannot install signal handlers\n");
        return 1;
    }
    printf("listening on 127.0.0.1:%d\n", port);
    fflush(stdout);

    event_base_dispatch(L.base);

    if (!L.o.quiet)
        fprintf(stderr, "mocklab: %ld model requests, %ld client closes\n",
                L.requests, L.client_closed);
    /* Responses still in progress: drop our side; evhttp_free closes the
     * connections and frees their requests. */
    while (L.active) {
        evhttp_connection_set_closecb(L.active->evcon, NULL, NULL);
        resp_free(L.active);
    }
    evhttp_free(L.http);
    event_free(sterm);
    event_free(sint);
    event_base_free(L.base);
    json_decref(L.by_model);
    json_decref(L.last_request);
    json_decref(L.last_headers);
    return 0;
}
