/* openai_resp.c: owns OpenAI response and SSE chunk JSON (hp_openai_resp_*).
 *
 * JSON is built with jansson in insertion order (JSON_PRESERVE_ORDER) so
 * bodies read like OpenAI's. Text from the engine is valid UTF-8 already;
 * token strings for logprobs are single-token pieces that may split a
 * character; those are written "bytes:\\xNN..." as OpenAI does (see
 * piece_str) while "bytes" keeps the raw bytes. Non-finite logprobs are
 * written as -9999.0, as OpenAI does, since JSON has no -Infinity. Knows nothing of HTTP. */
#include "server/openai_resp.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "util/utf8.h"

/* ---- output buffer ------------------------------------------------------ */

void hp_oai_out_append(hp_oai_out *o, const char *s, size_t n)
{
    if (o->oom)
        return;
    if (o->len + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 256;
        while (cap < o->len + n + 1)
            cap *= 2;
        char *p = realloc(o->data, cap);
        if (!p) {
            o->oom = true;
            return;
        }
        o->data = p;
        o->cap = cap;
    }
    memcpy(o->data + o->len, s, n);
    o->len += n;
    o->data[o->len] = '\0';
}

void hp_oai_out_clear(hp_oai_out *o)
{
    o->len = 0;
    o->oom = false;
}

void hp_oai_out_free(hp_oai_out *o)
{
    free(o->data);
    o->data = NULL;
    o->len = o->cap = 0;
    o->oom = false;
}

/* ---- state ---------------------------------------------------------------- */

typedef struct choice {
    hp_oai_out text;     /* non-streamed: accumulated text */
    json_t *lp;          /* non-streamed logprobs: chat {content:[]} or
                            completions {tokens, token_logprobs, ...} */
    size_t text_offset;  /* completions logprobs: bytes of text so far */
    hp_finish finish;
} choice;

struct hp_oai_resp {
    hp_oai_resp_opts o; /* model and echo are owned copies */
    char id[48];
    long long created;
    choice ch[HP_MAX_CHOICES];
};

const char *hp_openai_finish_reason(hp_finish f)
{
    switch (f) {
    case HP_FINISH_LENGTH:
        return "length";
    case HP_FINISH_STOP:
    case HP_FINISH_CANCELLED:
        return "stop";
    case HP_FINISH_NONE:
        return NULL;
    }
    return NULL;
}

/* A JSON string of s[0..n) even when s is not valid UTF-8. */
static json_t *jstr(const char *s, size_t n)
{
    if (hp_utf8_valid(s, n))
        return json_stringn(s, n);
    char *tmp = malloc(3 * n + 1);
    if (!tmp)
        return NULL;
    json_t *j = json_stringn(tmp, hp_utf8_sanitize(s, n, tmp));
    free(tmp);
    return j;
}

static json_t *jlogprob(float x)
{
    return json_real(isfinite(x) ? (double)x : -9999.0);
}

/* The "token" string of a piece. A piece that is not valid UTF-8 on its
 * own (a byte token, half a character) is written as OpenAI writes byte
 * tokens: "bytes:" then a backslash, 'x' and two hex digits per byte
 * (JSON "bytes:\\xe2\\x80"), so distinct pieces never share a string.
 * Sanitising would map them all to U+FFFD, and completions' top_logprobs,
 * keyed by token string, would keep only one of them. */
static json_t *piece_str(const hp_vocab *v, int32_t id, json_t **bytes)
{
    char buf[256];
    size_t n = hp_token_to_piece(v, id, buf, sizeof buf);
    if (n > sizeof buf)
        n = sizeof buf;
    if (bytes) {
        *bytes = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(*bytes, json_integer((unsigned char)buf[i]));
    }
    if (hp_utf8_valid(buf, n))
        return json_stringn(buf, n);
    char esc[sizeof "bytes:" + 4 * sizeof buf];
    size_t k = (size_t)snprintf(esc, sizeof esc, "bytes:");
    for (size_t i = 0; i < n; i++)
        k += (size_t)snprintf(esc + k, sizeof esc - k, "\\x%02x",
                              (unsigned char)buf[i]);
    return json_stringn(esc, k);
}

static size_t piece_len(const hp_vocab *v, int32_t id)
{
    char buf[256];
    return hp_token_to_piece(v, id, buf, sizeof buf);
}

hp_oai_resp *hp_openai_resp_new(const hp_oai_resp_opts *o)
{
    hp_oai_resp *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->o = *o;
    if (r->o.n < 1 || r->o.n > HP_MAX_CHOICES)
        r->o.n = 1;
    r->o.model = strdup(o->model ? o->model : "");
    r->o.echo = NULL;
    if (o->echo) {
        char *e = malloc(o->echo_len + 1);
        if (e) {
            memcpy(e, o->echo, o->echo_len);
            e[o->echo_len] = '\0';
        }
        r->o.echo = e;
    }
    if (!r->o.model || (o->echo && !r->o.echo)) {
        hp_openai_resp_free(r);
        return NULL;
    }
    unsigned char rnd[12] = {0};
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        memcpy(rnd, &ts, sizeof rnd < sizeof ts ? sizeof rnd : sizeof ts);
    }
    int k = snprintf(r->id, sizeof r->id, "%s",
                     o->kind == HP_OAI_CHAT ? "chatcmpl-" : "cmpl-");
    for (size_t i = 0; i < sizeof rnd; i++)
        k += snprintf(r->id + k, sizeof r->id - (size_t)k, "%02x", rnd[i]);
    r->created = (long long)time(NULL);
    for (int i = 0; i < r->o.n; i++)
        r->ch[i].text_offset = r->o.echo ? r->o.echo_len : 0;
    return r;
}

void hp_openai_resp_free(hp_oai_resp *r)
{
    if (!r)
        return;
    for (int i = 0; i < HP_MAX_CHOICES; i++) {
        hp_oai_out_free(&r->ch[i].text);
        json_decref(r->ch[i].lp);
    }
    free((char *)r->o.model);
    free((char *)r->o.echo);
    free(r);
}

const char *hp_openai_resp_id(const hp_oai_resp *r)
{
    return r->id;
}

/* ---- logprobs --------------------------------------------------------- */

/* Chat: {token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]} */
static json_t *chat_lp_entry(const hp_oai_resp *r, const hp_token_logprob *lp)
{
    json_t *bytes = NULL;
    json_t *e = json_object();
    json_object_set_new(e, "token", piece_str(r->o.vocab, lp->token, &bytes));
    json_object_set_new(e, "logprob", jlogprob(lp->logprob));
    json_object_set_new(e, "bytes", bytes);
    json_t *top = json_array();
    int nt = lp->n_top < r->o.logprobs ? lp->n_top : r->o.logprobs;
    for (int i = 0; i < nt; i++) {
        json_t *tb = NULL;
        json_t *t = json_object();
        json_object_set_new(t, "token",
                            piece_str(r->o.vocab, lp->top_token[i], &tb));
        json_object_set_new(t, "logprob", jlogprob(lp->top_logprob[i]));
        json_object_set_new(t, "bytes", tb);
        json_array_append_new(top, t);
    }
    json_object_set_new(e, "top_logprobs", top);
    return e;
}

static json_t *cmpl_lp_new(void)
{
    json_t *o = json_object();
    json_object_set_new(o, "tokens", json_array());
    json_object_set_new(o, "token_logprobs", json_array());
    json_object_set_new(o, "top_logprobs", json_array());
    json_object_set_new(o, "text_offset", json_array());
    return o;
}

/* Completions: append one token to the four parallel arrays. */
static void cmpl_lp_add(const hp_oai_resp *r, json_t *o, choice *c,
                        const hp_token_logprob *lp)
{
    json_array_append_new(json_object_get(o, "tokens"),
                          piece_str(r->o.vocab, lp->token, NULL));
    json_array_append_new(json_object_get(o, "token_logprobs"),
                          jlogprob(lp->logprob));
    json_t *top = json_object();
    int nt = lp->n_top < r->o.logprobs ? lp->n_top : r->o.logprobs;
    for (int i = 0; i < nt; i++) {
        json_t *k = piece_str(r->o.vocab, lp->top_token[i], NULL);
        if (k && !json_object_get(top, json_string_value(k)))
            json_object_set_new(top, json_string_value(k),
                                jlogprob(lp->top_logprob[i]));
        json_decref(k);
    }
    json_array_append_new(json_object_get(o, "top_logprobs"), top);
    json_array_append_new(json_object_get(o, "text_offset"),
                          json_integer((json_int_t)c->text_offset));
    c->text_offset += piece_len(r->o.vocab, lp->token);
}

/* ---- chunks ------------------------------------------------------------ */

static json_t *chunk_head(const hp_oai_resp *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(r->id));
    json_object_set_new(o, "object", json_string(r->o.kind == HP_OAI_CHAT
                                                     ? "chat.completion.chunk"
                                                     : "text_completion"));
    json_object_set_new(o, "created", json_integer(r->created));
    json_object_set_new(o, "model", json_string(r->o.model));
    return o;
}

static void emit(const hp_oai_resp *r, json_t *chunk, hp_oai_out *out,
                 bool with_usage_null)
{
    if (with_usage_null && r->o.include_usage)
        json_object_set_new(chunk, "usage", json_null());
    char *s = json_dumps(chunk, JSON_PRESERVE_ORDER | JSON_COMPACT);
    json_decref(chunk);
    if (!s) {
        out->oom = true;
        return;
    }
    hp_oai_out_append(out, "data: ", 6);
    hp_oai_out_append(out, s, strlen(s));
    hp_oai_out_append(out, "\n\n", 2);
    free(s);
}

/* One choice delta. text may be NULL (chat: empty delta {}); role adds
 * "role":"assistant"; lp (nullable) is this chunk's logprobs object. */
static void emit_delta(hp_oai_resp *r, int index, const char *text,
                       size_t len, bool role, json_t *lp, hp_finish finish,
                       hp_oai_out *out)
{
    json_t *o = chunk_head(r);
    json_t *c = json_object();
    json_object_set_new(c, "index", json_integer(index));
    if (r->o.kind == HP_OAI_CHAT) {
        json_t *d = json_object();
        if (role)
            json_object_set_new(d, "role", json_string("assistant"));
        if (text)
            json_object_set_new(d, "content", jstr(text, len));
        json_object_set_new(c, "delta", d);
    } else {
        json_object_set_new(c, "text", jstr(text ? text : "", len));
    }
    json_object_set_new(c, "logprobs", lp ? lp : json_null());
    const char *fr = hp_openai_finish_reason(finish);
    json_object_set_new(c, "finish_reason", fr ? json_string(fr)
                                               : json_null());
    json_t *arr = json_array();
    json_array_append_new(arr, c);
    json_object_set_new(o, "choices", arr);
    emit(r, o, out, true);
}

void hp_openai_resp_begin(hp_oai_resp *r, hp_oai_out *out)
{
    if (!r->o.stream)
        return;
    for (int i = 0; i < r->o.n; i++) {
        if (r->o.kind == HP_OAI_CHAT)
            emit_delta(r, i, "", 0, true, NULL, HP_FINISH_NONE, out);
        else if (r->o.echo && r->o.echo_len > 0)
            emit_delta(r, i, r->o.echo, r->o.echo_len, false, NULL,
                       HP_FINISH_NONE, out);
    }
}

static json_t *usage_obj(const hp_event *ev)
{
    json_t *u = json_object();
    json_object_set_new(u, "prompt_tokens", json_integer(ev->prompt_tokens));
    json_object_set_new(u, "completion_tokens",
                        json_integer(ev->completion_tokens));
    json_object_set_new(u, "total_tokens",
                        json_integer((json_int_t)ev->prompt_tokens +
                                     ev->completion_tokens));
    return u;
}

static void stream_token(hp_oai_resp *r, const hp_event *ev, hp_oai_out *out)
{
    choice *c = &r->ch[ev->index];
    json_t *lp = NULL;
    if (ev->lp && r->o.logprobs >= 0) {
        if (r->o.kind == HP_OAI_CHAT) {
            lp = json_object();
            json_t *content = json_array();
            json_array_append_new(content, chat_lp_entry(r, ev->lp));
            json_object_set_new(lp, "content", content);
        } else {
            lp = cmpl_lp_new();
            cmpl_lp_add(r, lp, c, ev->lp);
        }
    }
    if (ev->len == 0 && !lp)
        return; /* nothing released yet (held-back UTF-8 or stop prefix) */
    emit_delta(r, ev->index, ev->text ? ev->text : "", ev->len, false, lp,
               HP_FINISH_NONE, out);
}

static void stream_end(hp_oai_resp *r, const hp_event *ev, hp_oai_out *out)
{
    if (r->o.include_usage) {
        json_t *o = chunk_head(r);
        json_object_set_new(o, "choices", json_array());
        json_object_set_new(o, "usage", usage_obj(ev));
        emit(r, o, out, false);
    }
    hp_oai_out_append(out, "data: [DONE]\n\n", 14);
}

static void collect_token(hp_oai_resp *r, const hp_event *ev)
{
    choice *c = &r->ch[ev->index];
    if (ev->len)
        hp_oai_out_append(&c->text, ev->text, ev->len);
    if (!ev->lp || r->o.logprobs < 0)
        return;
    if (r->o.kind == HP_OAI_CHAT) {
        if (!c->lp) {
            c->lp = json_object();
            json_object_set_new(c->lp, "content", json_array());
        }
        json_array_append_new(json_object_get(c->lp, "content"),
                              chat_lp_entry(r, ev->lp));
    } else {
        if (!c->lp)
            c->lp = cmpl_lp_new();
        cmpl_lp_add(r, c->lp, c, ev->lp);
    }
}

static void whole_body(hp_oai_resp *r, const hp_event *ev, hp_oai_out *out)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(r->id));
    json_object_set_new(o, "object", json_string(r->o.kind == HP_OAI_CHAT
                                                     ? "chat.completion"
                                                     : "text_completion"));
    json_object_set_new(o, "created", json_integer(r->created));
    json_object_set_new(o, "model", json_string(r->o.model));
    json_t *arr = json_array();
    for (int i = 0; i < r->o.n; i++) {
        choice *c = &r->ch[i];
        json_t *ch = json_object();
        json_object_set_new(ch, "index", json_integer(i));
        json_t *text;
        if (r->o.kind == HP_OAI_COMPLETIONS && r->o.echo) {
            hp_oai_out full = {0};
            hp_oai_out_append(&full, r->o.echo, r->o.echo_len);
            hp_oai_out_append(&full, c->text.data ? c->text.data : "",
                              c->text.len);
            text = jstr(full.data ? full.data : "", full.len);
            hp_oai_out_free(&full);
        } else {
            text = jstr(c->text.data ? c->text.data : "", c->text.len);
        }
        if (r->o.kind == HP_OAI_CHAT) {
            json_t *m = json_object();
            json_object_set_new(m, "role", json_string("assistant"));
            json_object_set_new(m, "content", text);
            json_object_set_new(ch, "message", m);
        } else {
            json_object_set_new(ch, "text", text);
        }
        json_t *lp = c->lp;
        if (!lp && r->o.logprobs >= 0) /* asked, but no tokens came */
            lp = r->o.kind == HP_OAI_CHAT ? json_pack("{s:[]}", "content")
                                          : cmpl_lp_new();
        c->lp = NULL;
        json_object_set_new(ch, "logprobs", lp ? lp : json_null());
        const char *fr = hp_openai_finish_reason(c->finish);
        json_object_set_new(ch, "finish_reason",
                            json_string(fr ? fr : "stop"));
        json_array_append_new(arr, ch);
    }
    json_object_set_new(o, "choices", arr);
    json_object_set_new(o, "usage", usage_obj(ev));
    char *s = json_dumps(o, JSON_PRESERVE_ORDER | JSON_COMPACT);
    json_decref(o);
    if (!s) {
        out->oom = true;
        return;
    }
    hp_oai_out_append(out, s, strlen(s));
    free(s);
}

bool hp_openai_resp_event(hp_oai_resp *r, const hp_event *ev,
                          hp_oai_out *out)
{
    bool valid_index = ev->index >= 0 && ev->index < r->o.n;
    switch (ev->kind) {
    case HP_EV_TOKEN:
        if (!valid_index)
            return false;
        if (r->o.stream)
            stream_token(r, ev, out);
        else
            collect_token(r, ev);
        return false;
    case HP_EV_CHOICE_END:
        if (!valid_index)
            return false;
        r->ch[ev->index].finish = ev->finish;
        if (r->o.stream) {
            if (ev->len > 0)
                emit_delta(r, ev->index, ev->text, ev->len, false, NULL,
                           HP_FINISH_NONE, out);
            emit_delta(r, ev->index, NULL, 0, false, NULL,
                       ev->finish != HP_FINISH_NONE ? ev->finish
                                                    : HP_FINISH_STOP,
                       out);
        } else if (ev->len > 0) {
            hp_oai_out_append(&r->ch[ev->index].text, ev->text, ev->len);
        }
        return false;
    case HP_EV_END:
        if (r->o.stream)
            stream_end(r, ev, out);
        else
            whole_body(r, ev, out);
        return true;
    case HP_EV_ERROR:
        if (r->o.stream) {
            char *e = NULL;
            json_t *o = json_pack("{s:{s:s,s:s,s:n,s:n}}", "error", "message",
                                  ev->message ? ev->message : "error", "type",
                                  "server_error", "param", "code");
            if (o)
                e = json_dumps(o, JSON_PRESERVE_ORDER | JSON_COMPACT);
            json_decref(o);
            if (e) {
                hp_oai_out_append(out, "data: ", 6);
                hp_oai_out_append(out, e, strlen(e));
                hp_oai_out_append(out, "\n\n", 2);
                free(e);
            }
            hp_oai_out_append(out, "data: [DONE]\n\n", 14);
        }
        return true;
    }
    return false;
}
