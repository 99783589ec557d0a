/* rcache.c: the gateway's exact-match response cache (see rcache.h), the
 * replay of a cached completion as an SSE stream, and the assembler that
 * turns a streamed reply back into the completion object.
 *
 * Store: a chained hash table indexed by the first 8 bytes of the SHA-256
 * key (already uniform, so no second hash), plus one LRU doubly linked
 * list, most recent at the head. Each entry is one allocation holding its
 * key and body; it costs sizeof(entry) + body + 1 bytes against the bound,
 * the bucket array is not counted (it is a few pointers per entry).
 * An entry found expired by a get is unlinked and its bytes released at
 * once, but its memory is only freed at the next put or free, so every
 * pointer a get handed out stays valid "until the next put or free" as the
 * header promises.
 *
 * Replay and assembly are inverses on the fields both know (id, object,
 * created, model, system_fingerprint, choices with role, content, refusal,
 * tool_calls, logprobs and finish_reason, usage): replaying a body and
 * assembling the chunks gives the body back (tests/test_rcache.c).
 * Other fields of the body are not replayed.
 *
 * Knows JSON and SHA-256; nothing of HTTP, the loop, or the engine.
 * Included by the gateway only. */
#include "gateway/rcache.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

/* Bounds that keep a hostile stream from making the assembler search or
 * sort huge arrays: OpenAI caps n at 128. */
#define MAX_CHOICES 256
#define MAX_TOOL_CALLS 256

/* ---- store ------------------------------------------------------------- */

typedef struct entry {
    struct entry *hnext;      /* bucket chain (or graveyard list) */
    struct entry *prev, *next; /* LRU list; prev is more recent */
    int64_t expires_ms;       /* first instant it is no longer live */
    size_t len;               /* body bytes, without the NUL */
    size_t cost;              /* bytes counted against the bound */
    uint8_t key[HP_RCACHE_KEY_LEN];
    char body[];              /* len bytes + NUL */
} entry;

struct hp_rcache {
    entry **buckets;  /* owns the array; entries owned through the LRU */
    size_t nbuckets;  /* power of two */
    entry *head;      /* most recently used */
    entry *tail;      /* least recently used: evicted first */
    entry *grave;     /* owns: expired entries awaiting free (see top) */
    size_t count;
    size_t bytes;
    size_t max_bytes;
    int64_t ttl_ms;   /* <= 0: entries never expire */
};

static size_t key_hash(const uint8_t *key)
{
    uint64_t h;
    memcpy(&h, key, sizeof h);
    return (size_t)h;
}

hp_rcache *hp_rcache_new(size_t max_bytes, int64_t ttl_ms)
{
    hp_rcache *c = calloc(1, sizeof *c);
    if (!c)
        goto fail;
    c->nbuckets = 64;
    c->buckets = calloc(c->nbuckets, sizeof *c->buckets);
    if (!c->buckets)
        goto fail;
    c->max_bytes = max_bytes;
    c->ttl_ms = ttl_ms;
    return c;
fail:
    free(c);
    return NULL;
}

static void free_grave(hp_rcache *c)
{
    while (c->grave) {
        entry *e = c->grave;
        c->grave = e->hnext;
        free(e);
    }
}

void hp_rcache_free(hp_rcache *c)
{
    if (!c)
        return;
    free_grave(c);
    entry *e = c->head;
    while (e) {
        entry *n = e->next;
        free(e);
        e = n;
    }
    free(c->buckets);
    free(c);
}

size_t hp_rcache_count(const hp_rcache *c) { return c ? c->count : 0; }
size_t hp_rcache_bytes(const hp_rcache *c) { return c ? c->bytes : 0; }

static entry **find_slot(hp_rcache *c, const uint8_t *key)
{
    entry **p = &c->buckets[key_hash(key) & (c->nbuckets - 1)];
    while (*p && memcmp((*p)->key, key, HP_RCACHE_KEY_LEN) != 0)
        p = &(*p)->hnext;
    return p;
}

static void lru_unlink(hp_rcache *c, entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_front(hp_rcache *c, entry *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head)
        c->head->prev = e;
    c->head = e;
    if (!c->tail)
        c->tail = e;
}

/* Take e out of the table and the list and release its bytes; the caller
 * frees it or parks it in the graveyard. */
static void detach(hp_rcache *c, entry *e)
{
    entry **p = find_slot(c, e->key);
    if (*p == e)
        *p = e->hnext;
    e->hnext = NULL;
    lru_unlink(c, e);
    c->count--;
    c->bytes -= e->cost;
}

/* Double the bucket array. Failing is harmless: chains just get longer. */
static void grow(hp_rcache *c)
{
    size_t nb = c->nbuckets * 2;
    entry **b = calloc(nb, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < c->nbuckets; i++) {
        entry *e = c->buckets[i];
        while (e) {
            entry *n = e->hnext;
            size_t j = key_hash(e->key) & (nb - 1);
            e->hnext = b[j];
            b[j] = e;
            e = n;
        }
    }
    free(c->buckets);
    c->buckets = b;
    c->nbuckets = nb;
}

hp_err hp_rcache_put(hp_rcache *c, const uint8_t key[HP_RCACHE_KEY_LEN],
                     const char *body, size_t len, int64_t now_ms)
{
    if (!c || !key || (!body && len))
        return HP_ERR_INVALID;
    free_grave(c);
    /* The old value goes even when the new one is not stored: after a put
     * a get never returns a body older than the one just offered. */
    entry *old = *find_slot(c, key);
    if (old) {
        detach(c, old);
        free(old);
    }
    if (len > c->max_bytes || c->max_bytes - len < sizeof(entry) + 1)
        return HP_OK; /* larger than the whole bound: not stored */
    size_t cost = sizeof(entry) + len + 1;
    while (c->tail && c->max_bytes - c->bytes < cost) {
        entry *v = c->tail;
        detach(c, v);
        free(v);
    }
    entry *e = malloc(cost);
    if (!e)
        return HP_ERR_NOMEM;
    memcpy(e->key, key, HP_RCACHE_KEY_LEN);
    if (len)
        memcpy(e->body, body, len);
    e->body[len] = '\0';
    e->len = len;
    e->cost = cost;
    if (c->ttl_ms <= 0 || now_ms > INT64_MAX - c->ttl_ms)
        e->expires_ms = INT64_MAX;
    else
        e->expires_ms = now_ms + c->ttl_ms;
    if (c->count >= c->nbuckets)
        grow(c);
    entry **slot = &c->buckets[key_hash(key) & (c->nbuckets - 1)];
    e->hnext = *slot;
    *slot = e;
    lru_push_front(c, e);
    c->count++;
    c->bytes += cost;
    return HP_OK;
}

const char *hp_rcache_get(hp_rcache *c, const uint8_t key[HP_RCACHE_KEY_LEN],
                          int64_t now_ms, size_t *len)
{
    if (len)
        *len = 0;
    if (!c || !key)
        return NULL;
    entry *e = *find_slot(c, key);
    if (!e)
        return NULL;
    if (now_ms >= e->expires_ms) {
        detach(c, e);
        e->hnext = c->grave;
        c->grave = e;
        return NULL;
    }
    lru_unlink(c, e);
    lru_push_front(c, e);
    if (len)
        *len = e->len;
    return e->body;
}

/* ---- key --------------------------------------------------------------- */

/* Logprobs are refused, as the header says: with temperature 0 they would
 * be deterministic and replay/assembly do carry them, but a cached answer
 * would then differ from a live one whenever an upstream reports them
 * differently between its streamed and whole forms, and they are rare
 * enough not to be worth that risk. logprobs false/null and top_logprobs
 * 0/null do not ask for anything and stay cacheable. Completions'
 * logprobs is an integer where 0 already asks (the sampled token's). */
static bool cacheable(const json_t *req)
{
    const json_t *t = json_object_get(req, "temperature");
    if (!json_is_number(t) || json_number_value(t) != 0.0)
        return false;
    const json_t *n = json_object_get(req, "n");
    if (n && !json_is_null(n) &&
        !(json_is_number(n) && json_number_value(n) == 1.0))
        return false;
    const json_t *lp = json_object_get(req, "logprobs");
    if (json_is_true(lp) || json_is_number(lp))
        return false;
    const json_t *top = json_object_get(req, "top_logprobs");
    if (json_is_number(top) && json_number_value(top) != 0.0)
        return false;
    return true;
}

bool hp_rcache_key(const json_t *req, const char *route,
                   uint8_t key[HP_RCACHE_KEY_LEN])
{
    if (!json_is_object(req) || !key || !cacheable(req))
        return false;
    if (!route)
        route = "";
    json_t *norm = json_deep_copy(req);
    if (!norm)
        return false;
    /* Fields that change only the transport or the bookkeeping, never the
     * answer. */
    json_object_del(norm, "stream");
    json_object_del(norm, "stream_options");
    json_object_del(norm, "user");
    json_object_del(norm, "metadata");
    char *s = json_dumps(norm, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(norm);
    if (!s)
        return false;
    size_t rl = strlen(route), sl = strlen(s);
    unsigned char *buf = malloc(rl + 1 + sl);
    bool ok = false;
    if (buf) {
        memcpy(buf, route, rl);
        buf[rl] = 0; /* so route "ab"+"{..." never equals "a"+"b{..." */
        memcpy(buf + rl + 1, s, sl);
        unsigned int outl = 0;
        ok = EVP_Digest(buf, rl + 1 + sl, key, &outl, EVP_sha256(), NULL) ==
                 1 &&
             outl == HP_RCACHE_KEY_LEN;
    }
    free(buf);
    free(s);
    return ok;
}

/* ---- replay ------------------------------------------------------------ */

typedef struct sbuf {
    char *p; /* owns */
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->cap - b->len <= n) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap - b->len <= n)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* Append chunk (stolen) as one "data: ...\n\n" event. */
static void emit(sbuf *b, json_t *chunk)
{
    char *s = chunk ? json_dumps(chunk, JSON_PRESERVE_ORDER | JSON_COMPACT)
                    : NULL;
    json_decref(chunk);
    if (!s) {
        b->oom = true;
        return;
    }
    sb_put(b, "data: ", 6);
    sb_put(b, s, strlen(s));
    sb_put(b, "\n\n", 2);
    free(s);
}

/* json_object_set_new that records any failure (a NULL value from an OOM
 * constructor included) in b, so an OOM drops the whole replay instead of
 * sending a chunk with a field missing. */
static void set(json_t *o, const char *k, json_t *v, sbuf *b)
{
    if (!v || json_object_set_new(o, k, v) != 0)
        b->oom = true;
}

/* The fields every chunk repeats, copied from the body. */
static json_t *chunk_head(const json_t *body, bool chat, sbuf *b)
{
    json_t *o = json_object();
    if (!o) {
        b->oom = true;
        return NULL;
    }
    json_t *v = json_object_get(body, "id");
    if (v)
        set(o, "id", json_deep_copy(v), b);
    set(o, "object",
        json_string(chat ? "chat.completion.chunk" : "text_completion"), b);
    v = json_object_get(body, "created");
    if (v)
        set(o, "created", json_deep_copy(v), b);
    v = json_object_get(body, "model");
    if (v)
        set(o, "model", json_deep_copy(v), b);
    v = json_object_get(body, "system_fingerprint");
    if (v)
        set(o, "system_fingerprint", json_deep_copy(v), b);
    return o;
}

/* One chunk for one choice: {index, delta|text, logprobs, finish_reason}.
 * delta/text and lp are stolen; fr borrowed (NULL -> null). */
static void emit_choice(sbuf *b, const json_t *body, bool chat, bool usage,
                        json_int_t index, json_t *payload, json_t *lp,
                        const json_t *fr)
{
    json_t *o = chunk_head(body, chat, b);
    json_t *c = json_object();
    json_t *arr = json_array();
    if (!o || !c || !arr) {
        b->oom = true;
        json_decref(o);
        json_decref(c);
        json_decref(arr);
        json_decref(payload);
        json_decref(lp);
        return;
    }
    set(c, "index", json_integer(index), b);
    set(c, chat ? "delta" : "text", payload, b);
    set(c, "logprobs", lp ? lp : json_null(), b);
    set(c, "finish_reason", fr ? json_deep_copy(fr) : json_null(), b);
    if (json_array_append_new(arr, c) != 0)
        b->oom = true;
    set(o, "choices", arr, b);
    if (usage)
        set(o, "usage", json_null(), b);
    emit(b, o);
}

/* A tool_calls array as deltas: each call with its position as index. */
static json_t *tool_call_deltas(const json_t *calls, sbuf *b)
{
    json_t *arr = json_array();
    size_t i;
    const json_t *tc;
    if (!arr) {
        b->oom = true;
        return NULL;
    }
    json_array_foreach(calls, i, tc) {
        json_t *d = json_deep_copy(tc);
        if (!json_is_object(d)) {
            json_decref(d);
            continue;
        }
        /* index first, as OpenAI sends it */
        json_t *o = json_object();
        set(o, "index", json_integer((json_int_t)i), b);
        if (json_object_update(o, d) != 0)
            b->oom = true;
        json_decref(d);
        if (json_array_append_new(arr, o) != 0)
            b->oom = true;
    }
    return arr;
}

static json_t *null_if_absent(const json_t *v)
{
    return v && !json_is_null(v) ? json_deep_copy(v) : NULL;
}

static void replay_chat_choice(sbuf *b, const json_t *body, bool usage,
                               json_int_t index, const json_t *ch)
{
    const json_t *m = json_object_get(ch, "message");
    const json_t *role = json_object_get(m, "role");
    const json_t *content = json_object_get(m, "content");
    const json_t *refusal = json_object_get(m, "refusal");
    const json_t *calls = json_object_get(m, "tool_calls");

    /* The role chunk: content "" when the message has text (even empty),
     * null when it has none, so assembly gives back null or "". */
    json_t *d = json_object();
    set(d, "role", json_string(json_is_string(role) ? json_string_value(role)
                                                    : "assistant"), b);
    set(d, "content", json_is_string(content) ? json_string("") : json_null(),
        b);
    emit_choice(b, body, true, usage, index, d, NULL, NULL);

    /* The content chunk, only when it carries something. */
    d = json_object();
    bool any = false;
    if (json_is_string(content) && json_string_length(content) > 0) {
        set(d, "content", json_deep_copy(content), b);
        any = true;
    }
    if (json_is_string(refusal)) {
        set(d, "refusal", json_deep_copy(refusal), b);
        any = true;
    }
    if (json_is_array(calls) && json_array_size(calls) > 0) {
        set(d, "tool_calls", tool_call_deltas(calls, b), b);
        any = true;
    }
    json_t *lp = null_if_absent(json_object_get(ch, "logprobs"));
    if (any || lp)
        emit_choice(b, body, true, usage, index, d, lp, NULL);
    else
        json_decref(d);

    emit_choice(b, body, true, usage, index, json_object(), NULL,
                json_object_get(ch, "finish_reason"));
}

char *hp_rcache_replay_sse(const char *body, size_t len, bool include_usage,
                           size_t *out_len)
{
    if (out_len)
        *out_len = 0;
    if (!body)
        return NULL;
    json_t *o = json_loadb(body, len, JSON_ALLOW_NUL, NULL);
    const char *kind = json_string_value(json_object_get(o, "object"));
    const json_t *choices = json_object_get(o, "choices");
    bool chat = kind && strcmp(kind, "chat.completion") == 0;
    bool text = kind && strcmp(kind, "text_completion") == 0;
    if (!json_is_object(o) || (!chat && !text) || !json_is_array(choices)) {
        json_decref(o);
        return NULL;
    }
    size_t i;
    const json_t *ch;
    json_array_foreach(choices, i, ch) {
        if (!json_is_object(ch) ||
            (chat && !json_is_object(json_object_get(ch, "message"))) ||
            (text && !json_is_string(json_object_get(ch, "text")))) {
            json_decref(o);
            return NULL;
        }
    }

    sbuf b = {0};
    json_array_foreach(choices, i, ch) {
        const json_t *ix = json_object_get(ch, "index");
        json_int_t index =
            json_is_integer(ix) ? json_integer_value(ix) : (json_int_t)i;
        if (chat)
            replay_chat_choice(&b, o, include_usage, index, ch);
        else
            emit_choice(&b, o, false, include_usage, index,
                        json_deep_copy(json_object_get(ch, "text")),
                        null_if_absent(json_object_get(ch, "logprobs")),
                        json_object_get(ch, "finish_reason"));
    }
    const json_t *usage = json_object_get(o, "usage");
    if (include_usage && json_is_object(usage)) {
        json_t *u = chunk_head(o, chat, &b);
        if (u) {
            set(u, "choices", json_array(), &b);
            set(u, "usage", json_deep_copy(usage), &b);
            emit(&b, u);
        }
    }
    sb_put(&b, "data: [DONE]\n\n", 14);
    json_decref(o);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    if (out_len)
        *out_len = b.len;
    return b.p;
}

/* ---- assembler --------------------------------------------------------- *
 *
 * a->obj holds the state, not the result: strings arrive as arrays of
 * pieces (appending to a jansson string would copy it each time, O(n^2)
 * over a long reply) and are joined by hp_chunk_asm_result. Shape:
 *   {object?, id?, created?, model?, system_fingerprint?, usage?,
 *    choices: [{index, role?, content?: [..], refusal?: [..],
 *               tool_calls?: [{index, id?, type?, name?, args: [..]}],
 *               text?: [..], logprobs?, finish_reason?}]}
 * Each chunk is checked whole before any of it is applied, so a bad chunk
 * changes nothing. */

void hp_chunk_asm_init(hp_chunk_asm *a)
{
    if (!a)
        return;
    a->obj = NULL;
    a->chat = false;
    a->bad = false;
}

void hp_chunk_asm_free(hp_chunk_asm *a)
{
    if (!a)
        return;
    json_decref(a->obj);
    a->obj = NULL;
}

static bool opt_string(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return !v || json_is_null(v) || json_is_string(v);
}

static bool opt_object(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return !v || json_is_null(v) || json_is_object(v);
}

/* An optional integer index in [0, max). */
static bool opt_index(const json_t *o, json_int_t max)
{
    const json_t *v = json_object_get(o, "index");
    if (!v)
        return true;
    return json_is_integer(v) && json_integer_value(v) >= 0 &&
           json_integer_value(v) < max;
}

static bool tool_calls_ok(const json_t *calls)
{
    if (!calls || json_is_null(calls))
        return true;
    if (!json_is_array(calls))
        return false;
    size_t i;
    const json_t *tc;
    json_array_foreach(calls, i, tc) {
        if (!json_is_object(tc) || !opt_index(tc, MAX_TOOL_CALLS) ||
            !opt_string(tc, "id") || !opt_string(tc, "type") ||
            !opt_object(tc, "function"))
            return false;
        const json_t *f = json_object_get(tc, "function");
        if (!opt_string(f, "name") || !opt_string(f, "arguments"))
            return false;
    }
    return true;
}

/* Kind of one choice: 1 chat, 0 text, -1 malformed. hint is the chunk's
 * object (-1 when it named none, as Azure's filter chunks do). */
static int choice_kind(const json_t *c, int hint)
{
    if (!json_is_object(c) || !opt_index(c, MAX_CHOICES) ||
        !opt_string(c, "finish_reason") || !opt_object(c, "logprobs"))
        return -1;
    int k = hint;
    if (k < 0)
        k = json_object_get(c, "delta") ? 1
            : json_object_get(c, "text") ? 0 : -1;
    if (k == 1) {
        const json_t *d = json_object_get(c, "delta");
        if (!(opt_object(c, "delta") && opt_string(d, "role") &&
              opt_string(d, "content") && opt_string(d, "refusal") &&
              tool_calls_ok(json_object_get(d, "tool_calls"))))
            return -1;
    } else if (k == 0) {
        if (!opt_string(c, "text"))
            return -1;
    }
    return k;
}

/* Check a chunk; *kind gets 1 chat, 0 text, -1 unknown (no choices). */
static bool chunk_ok(const hp_chunk_asm *a, const json_t *chunk, int *kind)
{
    if (!json_is_object(chunk) || !opt_object(chunk, "usage"))
        return false;
    const json_t *obj = json_object_get(chunk, "object");
    const char *s = json_string_value(obj);
    int hint;
    if (s && strcmp(s, "chat.completion.chunk") == 0)
        hint = 1;
    else if (s && strcmp(s, "text_completion") == 0)
        hint = 0;
    else if (!obj || json_is_null(obj) || (s && !*s))
        hint = -1;
    else
        return false; /* "error" and friends */
    const json_t *choices = json_object_get(chunk, "choices");
    if (!choices || json_is_null(choices)) {
        /* only a usage-carrying chunk may drop choices */
        if (!json_is_object(json_object_get(chunk, "usage")))
            return false;
    } else if (!json_is_array(choices)) {
        return false;
    }
    size_t i;
    const json_t *c;
    int k = hint;
    json_array_foreach(choices, i, c) {
        int ck = choice_kind(c, k);
        if (ck < 0 || (k >= 0 && ck != k))
            return false;
        k = ck;
    }
    if (a->obj && json_object_get(a->obj, "object") && k >= 0 &&
        k != (a->chat ? 1 : 0))
        return false; /* the stream switched kinds */
    *kind = k;
    return true;
}

/* Pieces shorter than this are merged into the next one: a stream sends
 * one token per chunk, and a jansson string per token costs ~15x its
 * text in memory. */
#define PIECE_MERGE 256

/* Append string piece s (borrowed) to the pieces array at o[k]. */
static bool add_piece(json_t *o, const char *k, const json_t *s)
{
    if (!json_is_string(s))
        return true;
    json_t *arr = json_object_get(o, k);
    if (!arr) {
        arr = json_array();
        if (!arr || json_object_set_new(o, k, arr) != 0)
            return false;
    }
    size_t n = json_array_size(arr);
    json_t *last = n ? json_array_get(arr, n - 1) : NULL;
    size_t ll = json_string_length(last), sl = json_string_length(s);
    if (last && ll < PIECE_MERGE && sl < PIECE_MERGE) {
        char buf[2 * PIECE_MERGE];
        memcpy(buf, json_string_value(last), ll);
        memcpy(buf + ll, json_string_value(s), sl);
        /* both are whole UTF-8 (jansson checked them), so is the join */
        return json_string_setn_nocheck(last, buf, ll + sl) == 0;
    }
    return json_array_append_new(arr, json_deep_copy(s)) == 0;
}

/* o[k] = copy of v when o has no usable k yet ("first one wins"). */
static bool set_first(json_t *o, const char *k, const json_t *v)
{
    if (!v || json_is_null(v) || json_object_get(o, k))
        return true;
    if (json_is_string(v) && json_string_length(v) == 0)
        return true; /* Azure's filter chunk: "" is no value */
    if (json_is_integer(v) && json_integer_value(v) == 0 &&
        strcmp(k, "created") == 0)
        return true;
    return json_object_set_new(o, k, json_deep_copy(v)) == 0;
}

/* The element of arr whose "index" is ix, created when absent. */
static json_t *by_index(json_t *arr, json_int_t ix)
{
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e) {
        if (json_integer_value(json_object_get(e, "index")) == ix)
            return e;
    }
    e = json_object();
    if (!e || json_object_set_new(e, "index", json_integer(ix)) != 0 ||
        json_array_append_new(arr, e) != 0)
        return NULL;
    return e;
}

/* Logprobs come as objects of arrays (chat {content: [..]}, completions
 * {tokens: [..], token_logprobs: [..], ...}): arrays are concatenated key
 * by key, anything else replaced. */
static bool merge_logprobs(json_t *ch, const json_t *lp)
{
    if (!json_is_object(lp))
        return true;
    json_t *acc = json_object_get(ch, "logprobs");
    if (!acc) {
        acc = json_object();
        if (!acc || json_object_set_new(ch, "logprobs", acc) != 0)
            return false;
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)lp, k, v) {
        json_t *have = json_object_get(acc, k);
        if (json_is_array(have) && json_is_array(v)) {
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e) {
                if (json_array_append_new(have, json_deep_copy(e)) != 0)
                    return false;
            }
        } else if (json_object_set_new(acc, k, json_deep_copy(v)) != 0) {
            return false;
        }
    }
    return true;
}

static bool apply_tool_calls(json_t *ch, const json_t *calls)
{
    if (!json_is_array(calls))
        return true;
    json_t *acc = json_object_get(ch, "tool_calls");
    if (!acc) {
        acc = json_array();
        if (!acc || json_object_set_new(ch, "tool_calls", acc) != 0)
            return false;
    }
    size_t i;
    const json_t *tc;
    json_array_foreach(calls, i, tc) {
        const json_t *ix = json_object_get(tc, "index");
        const json_t *id = json_object_get(tc, "id");
        json_int_t k;
        if (json_is_integer(ix)) {
            k = json_integer_value(ix);
        } else {
            /* No index (some servers): a new id starts a call, anything
             * else continues the last one. */
            size_t n = json_array_size(acc);
            json_t *last = n ? json_array_get(acc, n - 1) : NULL;
            const json_t *lid = json_object_get(last, "id");
            k = last ? json_integer_value(json_object_get(last, "index")) : 0;
            if (last && json_is_string(id) &&
                !(json_is_string(lid) && json_equal(id, lid)))
                k++;
        }
        if (k >= MAX_TOOL_CALLS)
            return false;
        json_t *e = by_index(acc, k);
        const json_t *f = json_object_get(tc, "function");
        if (!e || !set_first(e, "id", id) ||
            !set_first(e, "type", json_object_get(tc, "type")) ||
            !set_first(e, "name", json_object_get(f, "name")) ||
            !add_piece(e, "args", json_object_get(f, "arguments")))
            return false;
    }
    return true;
}

static bool apply_choice(hp_chunk_asm *a, json_t *choices, const json_t *c)
{
    const json_t *ix = json_object_get(c, "index");
    json_t *ch = by_index(choices, json_is_integer(ix)
                                       ? json_integer_value(ix) : 0);
    if (!ch)
        return false;
    const json_t *fr = json_object_get(c, "finish_reason");
    if (json_is_string(fr) &&
        json_object_set_new(ch, "finish_reason", json_deep_copy(fr)) != 0)
        return false;
    if (!merge_logprobs(ch, json_object_get(c, "logprobs")))
        return false;
    if (!a->chat)
        return add_piece(ch, "text", json_object_get(c, "text"));
    const json_t *d = json_object_get(c, "delta");
    return set_first(ch, "role", json_object_get(d, "role")) &&
           add_piece(ch, "content", json_object_get(d, "content")) &&
           add_piece(ch, "refusal", json_object_get(d, "refusal")) &&
           apply_tool_calls(ch, json_object_get(d, "tool_calls"));
}

void hp_chunk_asm_add(hp_chunk_asm *a, const json_t *chunk)
{
    if (!a || a->bad)
        return;
    int kind = -1;
    if (!chunk_ok(a, chunk, &kind)) {
        a->bad = true;
        return;
    }
    if (!a->obj) {
        a->obj = json_object();
        if (!a->obj || json_object_set_new(a->obj, "choices",
                                           json_array()) != 0)
            goto oom;
    }
    json_t *o = a->obj;
    if (kind >= 0 && !json_object_get(o, "object")) {
        a->chat = kind == 1;
        if (json_object_set_new(o, "object",
                                json_string(a->chat ? "chat.completion"
                                                    : "text_completion")))
            goto oom;
    }
    if (!set_first(o, "id", json_object_get(chunk, "id")) ||
        !set_first(o, "created", json_object_get(chunk, "created")) ||
        !set_first(o, "model", json_object_get(chunk, "model")) ||
        !set_first(o, "system_fingerprint",
                   json_object_get(chunk, "system_fingerprint")))
        goto oom;
    const json_t *u = json_object_get(chunk, "usage");
    if (json_is_object(u) &&
        json_object_set_new(o, "usage", json_deep_copy(u)) != 0)
        goto oom;
    json_t *choices = json_object_get(o, "choices");
    size_t i;
    const json_t *c;
    json_array_foreach(json_object_get(chunk, "choices"), i, c) {
        if (!apply_choice(a, choices, c))
            goto oom;
    }
    return;
oom:
    /* Out of memory half-way: the state cannot be trusted any more. */
    a->bad = true;
}

/* Join a pieces array into one string; NULL on OOM. */
static json_t *join(const json_t *pieces)
{
    size_t n = 0, i;
    const json_t *p;
    json_array_foreach(pieces, i, p) n += json_string_length(p);
    char *s = malloc(n + 1);
    if (!s)
        return NULL;
    size_t off = 0;
    json_array_foreach(pieces, i, p) {
        memcpy(s + off, json_string_value(p), json_string_length(p));
        off += json_string_length(p);
    }
    s[n] = '\0';
    json_t *r = json_stringn(s, n);
    free(s);
    return r;
}

static int cmp_index(const void *x, const void *y)
{
    json_int_t a = json_integer_value(
        json_object_get(*(json_t *const *)x, "index"));
    json_int_t b = json_integer_value(
        json_object_get(*(json_t *const *)y, "index"));
    return (a > b) - (a < b);
}

/* The elements of arr sorted by "index" into a fresh array (borrowed
 * pointers); NULL on OOM. *n gets the count. */
static json_t **sorted(const json_t *arr, size_t *n)
{
    *n = json_array_size(arr);
    json_t **v = malloc((*n ? *n : 1) * sizeof *v);
    if (!v)
        return NULL;
    for (size_t i = 0; i < *n; i++)
        v[i] = json_array_get(arr, i);
    qsort(v, *n, sizeof *v, cmp_index);
    return v;
}

static json_t *copy_or_null(const json_t *v)
{
    return v ? json_deep_copy(v) : json_null();
}

static json_t *result_tool_calls(const json_t *acc, bool *ok)
{
    size_t n;
    json_t **v = sorted(acc, &n);
    json_t *arr = json_array();
    if (!v || !arr) {
        *ok = false;
        free(v);
        return arr;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *tc = json_object(), *f = json_object();
        const json_t *type = json_object_get(v[i], "type");
        const json_t *name = json_object_get(v[i], "name");
        const json_t *args = json_object_get(v[i], "args");
        if (!tc || !f) {
            json_decref(tc);
            json_decref(f);
            *ok = false;
            break;
        }
        if (json_object_get(v[i], "id"))
            *ok &= json_object_set_new(tc, "id", json_deep_copy(
                       json_object_get(v[i], "id"))) == 0;
        *ok &= json_object_set_new(tc, "type", type ? json_deep_copy(type)
                                   : json_string("function")) == 0;
        *ok &= json_object_set_new(f, "name", name ? json_deep_copy(name)
                                   : json_string("")) == 0;
        *ok &= json_object_set_new(f, "arguments", args ? join(args)
                                   : json_string("")) == 0;
        *ok &= json_object_set_new(tc, "function", f) == 0;
        *ok &= json_array_append_new(arr, tc) == 0;
    }
    free(v);
    return arr;
}

static json_t *result_choice(const hp_chunk_asm *a, const json_t *ch,
                             bool *ok)
{
    json_t *r = json_object();
    if (!r) {
        *ok = false;
        return NULL;
    }
    *ok &= json_object_set_new(r, "index", json_deep_copy(
               json_object_get(ch, "index"))) == 0;
    if (a->chat) {
        json_t *m = json_object();
        const json_t *role = json_object_get(ch, "role");
        const json_t *content = json_object_get(ch, "content");
        const json_t *refusal = json_object_get(ch, "refusal");
        const json_t *calls = json_object_get(ch, "tool_calls");
        json_t *text = content ? join(content) : json_null();
        /* OpenAI's whole form: content null when the reply is only tool
         * calls, even if a server streamed content "" first. */
        if (calls && json_string_length(text) == 0) {
            json_decref(text);
            text = json_null();
        }
        if (!m) {
            json_decref(text);
            *ok = false;
            return r;
        }
        *ok &= json_object_set_new(m, "role", role ? json_deep_copy(role)
                                   : json_string("assistant")) == 0;
        *ok &= json_object_set_new(m, "content", text) == 0;
        if (refusal)
            *ok &= json_object_set_new(m, "refusal", join(refusal)) == 0;
        if (calls)
            *ok &= json_object_set_new(m, "tool_calls",
                                       result_tool_calls(calls, ok)) == 0;
        *ok &= json_object_set_new(r, "message", m) == 0;
    } else {
        const json_t *text = json_object_get(ch, "text");
        *ok &= json_object_set_new(r, "text", text ? join(text)
                                   : json_string("")) == 0;
    }
    *ok &= json_object_set_new(r, "logprobs", copy_or_null(
               json_object_get(ch, "logprobs"))) == 0;
    *ok &= json_object_set_new(r, "finish_reason", copy_or_null(
               json_object_get(ch, "finish_reason"))) == 0;
    return r;
}

json_t *hp_chunk_asm_result(const hp_chunk_asm *a)
{
    if (!a || a->bad || !a->obj)
        return NULL;
    const json_t *o = a->obj;
    if (!json_object_get(o, "object"))
        return NULL; /* only usage or filter chunks: no completion */
    json_t *r = json_object();
    if (!r)
        return NULL;
    bool ok = true;
    static const char *const head[] = {"id", "object", "created", "model"};
    for (size_t i = 0; i < sizeof head / sizeof *head; i++) {
        const json_t *v = json_object_get(o, head[i]);
        if (v)
            ok &= json_object_set_new(r, head[i], json_deep_copy(v)) == 0;
    }
    size_t n;
    json_t **v = sorted(json_object_get(o, "choices"), &n);
    json_t *arr = json_array();
    ok &= v && arr;
    for (size_t i = 0; ok && i < n; i++)
        ok &= json_array_append_new(arr, result_choice(a, v[i], &ok)) == 0;
    free(v);
    ok &= json_object_set_new(r, "choices", arr) == 0;
    const json_t *u = json_object_get(o, "usage");
    if (u)
        ok &= json_object_set_new(r, "usage", json_deep_copy(u)) == 0;
    const json_t *fp = json_object_get(o, "system_fingerprint");
    if (fp)
        ok &= json_object_set_new(r, "system_fingerprint",
                                  json_deep_copy(fp)) == 0;
    if (!ok) {
        json_decref(r);
        return NULL;
    }
    return r;
}
