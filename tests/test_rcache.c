/* test_rcache.c: the spec of src/gateway/rcache.c.
 *
 * Keys ignore key order, whitespace and the fields that do not change the
 * answer, and differ for anything that does; only deterministic requests
 * are cacheable. The store keeps bodies until their TTL, never holds more
 * than its bound, and evicts the least recently used first. Replay gives
 * the exact SSE text a streamed request would have got, and assembling a
 * replay gives the body back. Random traffic never breaks the bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/rcache.h"

static json_t *parse(const char *s)
{
    json_error_t err;
    json_t *o = json_loads(s, JSON_ALLOW_NUL | JSON_DECODE_ANY, &err);
    if (!o)
        fprintf(stderr, "bad test JSON: %s: %s\n", err.text, s);
    assert_non_null(o);
    return o;
}

/* The key of request text s on route, asserting it is cacheable. */
static void key_of(const char *s, const char *route,
                   uint8_t key[HP_RCACHE_KEY_LEN])
{
    json_t *o = parse(s);
    assert_true(hp_rcache_key(o, route, key));
    json_decref(o);
}

static bool is_cacheable(const char *s)
{
    uint8_t key[HP_RCACHE_KEY_LEN];
    json_t *o = parse(s);
    bool r = hp_rcache_key(o, "chat", key);
    json_decref(o);
    return r;
}

static void mkkey(uint8_t key[HP_RCACHE_KEY_LEN], unsigned i)
{
    memset(key, 0, HP_RCACHE_KEY_LEN);
    memcpy(key, &i, sizeof i);
    key[31] = (uint8_t)(i * 7 + 1);
}

/* ---- keys -------------------------------------------------------------- */

#define BASE "\"model\":\"chat\",\"temperature\":0," \
             "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"

/* rcache_key_normalised: key order, whitespace, stream, stream_options,
 * user and metadata do not change the key. */
static void rcache_key_normalised(void **state)
{
    (void)state;
    uint8_t a[32], b[32];
    key_of("{" BASE ",\"max_tokens\":5}", "chat", a);
    key_of("{ \"max_tokens\" : 5,\n \"messages\":[{\"content\":\"hi\","
           "\"role\":\"user\"}], \"temperature\":0, \"model\":\"chat\"}",
           "chat", b);
    assert_memory_equal(a, b, 32);
    key_of("{" BASE ",\"max_tokens\":5,\"stream\":true,"
           "\"stream_options\":{\"include_usage\":true}}", "chat", b);
    assert_memory_equal(a, b, 32);
    key_of("{" BASE ",\"max_tokens\":5,\"user\":\"u1\","
           "\"metadata\":{\"x\":\"y\"}}", "chat", b);
    assert_memory_equal(a, b, 32);
    /* temperature 0.0 (a real) is also deterministic */
    assert_true(is_cacheable("{\"temperature\":0.0,\"messages\":[]}"));
}

/* rcache_key_distinguishes: messages, route and max_tokens change it. */
static void rcache_key_distinguishes(void **state)
{
    (void)state;
    uint8_t a[32], b[32];
    key_of("{" BASE ",\"max_tokens\":5}", "chat", a);
    key_of("{\"model\":\"chat\",\"temperature\":0,\"max_tokens\":5,"
           "\"messages\":[{\"role\":\"user\",\"content\":\"ho\"}]}",
           "chat", b);
    assert_memory_not_equal(a, b, 32);
    key_of("{" BASE ",\"max_tokens\":5}", "chat2", b);
    assert_memory_not_equal(a, b, 32);
    key_of("{" BASE ",\"max_tokens\":6}", "chat", b);
    assert_memory_not_equal(a, b, 32);
    key_of("{" BASE "}", "chat", b);
    assert_memory_not_equal(a, b, 32);
    /* the 0 byte after the route: "ab" + body never meets "a" + "b"... */
    key_of("{" BASE "}", "", a);
    key_of("{" BASE "}", NULL, b); /* NULL route reads as "" */
    assert_memory_equal(a, b, 32);
}

/* rcache_cacheable_rules: temperature 0 present, n absent or 1, no
 * logprobs asked; anything else (or a non-object) is not cacheable. */
static void rcache_cacheable_rules(void **state)
{
    (void)state;
    assert_true(is_cacheable("{" BASE "}"));
    assert_true(is_cacheable("{" BASE ",\"n\":1}"));
    assert_true(is_cacheable("{" BASE ",\"n\":null}"));
    assert_true(is_cacheable("{" BASE ",\"logprobs\":false}"));
    assert_true(is_cacheable("{" BASE ",\"logprobs\":null,"
                             "\"top_logprobs\":0}"));
    assert_false(is_cacheable("{\"messages\":[]}")); /* default is 1 */
    assert_false(is_cacheable("{\"temperature\":0.7,\"messages\":[]}"));
    assert_false(is_cacheable("{\"temperature\":null,\"messages\":[]}"));
    assert_false(is_cacheable("{\"temperature\":\"0\",\"messages\":[]}"));
    assert_false(is_cacheable("{" BASE ",\"n\":2}"));
    assert_false(is_cacheable("{" BASE ",\"n\":\"1\"}"));
    assert_false(is_cacheable("{" BASE ",\"logprobs\":true}"));
    assert_false(is_cacheable("{" BASE ",\"logprobs\":0}")); /* completions */
    assert_false(is_cacheable("{" BASE ",\"top_logprobs\":3}"));
    uint8_t key[32];
    json_t *arr = parse("[1]");
    assert_false(hp_rcache_key(arr, "chat", key));
    assert_false(hp_rcache_key(NULL, "chat", key));
    json_decref(arr);
}

/* ---- store ------------------------------------------------------------- */

/* rcache_put_get: a stored body comes back whole, NUL-terminated. */
static void rcache_put_get(void **state)
{
    (void)state;
    hp_rcache *c = hp_rcache_new(1 << 20, 1000);
    assert_non_null(c);
    uint8_t k1[32], k2[32];
    mkkey(k1, 1);
    mkkey(k2, 2);
    size_t len = 99;
    assert_null(hp_rcache_get(c, k1, 0, &len));
    assert_int_equal(len, 0);
    assert_int_equal(hp_rcache_put(c, k1, "{\"a\":1}", 7, 0), HP_OK);
    const char *v = hp_rcache_get(c, k1, 10, &len);
    assert_non_null(v);
    assert_int_equal(len, 7);
    assert_string_equal(v, "{\"a\":1}");
    assert_null(hp_rcache_get(c, k2, 10, &len));
    assert_int_equal(hp_rcache_count(c), 1);
    assert_true(hp_rcache_bytes(c) > 7);
    assert_int_equal(hp_rcache_put(NULL, k1, "x", 1, 0), HP_ERR_INVALID);
    assert_null(hp_rcache_get(NULL, k1, 0, &len));
    hp_rcache_free(c);
    hp_rcache_free(NULL);
}

/* rcache_ttl_expires: live for ttl ms from its creation, then dropped on
 * get (count and bytes fall back), while the pointer a get handed out
 * before stays readable until the next put. */
static void rcache_ttl_expires(void **state)
{
    (void)state;
    hp_rcache *c = hp_rcache_new(1 << 20, 1000);
    uint8_t k[32];
    mkkey(k, 5);
    assert_int_equal(hp_rcache_put(c, k, "body", 4, 5000), HP_OK);
    size_t len;
    const char *v = hp_rcache_get(c, k, 5999, &len);
    assert_non_null(v); /* a get does not extend the life */
    assert_null(hp_rcache_get(c, k, 6000, &len));
    assert_string_equal(v, "body");
    assert_int_equal(hp_rcache_count(c), 0);
    assert_int_equal(hp_rcache_bytes(c), 0);
    assert_null(hp_rcache_get(c, k, 6001, &len));
    hp_rcache_free(c); /* frees the parked entry too (ASan/valgrind) */
}

/* rcache_lru_evicts_oldest_use: filling past the bound drops the entry
 * used least recently; a get counts as a use. */
static void rcache_lru_evicts_oldest_use(void **state)
{
    (void)state;
    char body[100];
    memset(body, 'x', sizeof body);
    /* measure one entry's cost, then allow exactly three */
    hp_rcache *probe = hp_rcache_new(1 << 20, 0);
    uint8_t k[4][32];
    for (unsigned i = 0; i < 4; i++)
        mkkey(k[i], 10 + i);
    hp_rcache_put(probe, k[0], body, sizeof body, 0);
    size_t one = hp_rcache_bytes(probe);
    hp_rcache_free(probe);

    hp_rcache *c = hp_rcache_new(3 * one, 0); /* ttl 0: no expiry */
    for (unsigned i = 0; i < 3; i++)
        assert_int_equal(hp_rcache_put(c, k[i], body, sizeof body, i), 0);
    assert_int_equal(hp_rcache_bytes(c), 3 * one);
    size_t len;
    assert_non_null(hp_rcache_get(c, k[0], 10, &len)); /* 0 is now newest */
    assert_int_equal(hp_rcache_put(c, k[3], body, sizeof body, 11), HP_OK);
    assert_int_equal(hp_rcache_count(c), 3);
    assert_null(hp_rcache_get(c, k[1], 12, &len)); /* oldest use went */
    assert_non_null(hp_rcache_get(c, k[0], 12, &len));
    assert_non_null(hp_rcache_get(c, k[2], 12, &len));
    assert_non_null(hp_rcache_get(c, k[3], 12, &len));
    assert_true(hp_rcache_bytes(c) <= 3 * one);
    hp_rcache_free(c);
}

/* rcache_oversized_not_stored: a body bigger than the whole bound is
 * refused quietly (HP_OK) and evicts nothing. */
static void rcache_oversized_not_stored(void **state)
{
    (void)state;
    hp_rcache *c = hp_rcache_new(1000, 1000);
    uint8_t k1[32], k2[32];
    mkkey(k1, 1);
    mkkey(k2, 2);
    assert_int_equal(hp_rcache_put(c, k1, "small", 5, 0), HP_OK);
    char big[1000];
    memset(big, 'b', sizeof big);
    assert_int_equal(hp_rcache_put(c, k2, big, sizeof big, 0), HP_OK);
    size_t len;
    assert_null(hp_rcache_get(c, k2, 1, &len));
    assert_non_null(hp_rcache_get(c, k1, 1, &len));
    assert_int_equal(hp_rcache_count(c), 1);
    /* a zero bound stores nothing at all */
    hp_rcache *z = hp_rcache_new(0, 1000);
    assert_int_equal(hp_rcache_put(z, k1, "", 0, 0), HP_OK);
    assert_int_equal(hp_rcache_count(z), 0);
    hp_rcache_free(z);
    hp_rcache_free(c);
}

/* rcache_replace: a second put under a key replaces the body (and its
 * bytes); an oversized replacement removes the old body too. */
static void rcache_replace(void **state)
{
    (void)state;
    hp_rcache *c = hp_rcache_new(1000, 1000);
    uint8_t k[32];
    mkkey(k, 3);
    hp_rcache_put(c, k, "first", 5, 0);
    size_t b5 = hp_rcache_bytes(c);
    hp_rcache_put(c, k, "second!", 7, 1);
    size_t len;
    const char *v = hp_rcache_get(c, k, 2, &len);
    assert_non_null(v);
    assert_string_equal(v, "second!");
    assert_int_equal(hp_rcache_count(c), 1);
    assert_int_equal(hp_rcache_bytes(c), b5 + 2);
    char big[2000];
    memset(big, 'b', sizeof big);
    hp_rcache_put(c, k, big, sizeof big, 3);
    assert_null(hp_rcache_get(c, k, 4, &len));
    assert_int_equal(hp_rcache_bytes(c), 0);
    hp_rcache_free(c);
}

/* rcache_random_traffic_bounded: thousands of random puts and gets of
 * random sizes under a small bound never exceed it, and a hit always
 * returns the body last put under that key. */
static void rcache_random_traffic_bounded(void **state)
{
    (void)state;
    enum { KEYS = 64, MAX_BYTES = 4000 };
    hp_rcache *c = hp_rcache_new(MAX_BYTES, 500);
    static char last[KEYS][700];
    static size_t last_len[KEYS];
    char body[700];
    uint32_t seed = 12345;
    for (int step = 0; step < 5000; step++) {
        seed = seed * 1664525u + 1013904223u;
        unsigned ki = (seed >> 8) % KEYS;
        uint8_t k[32];
        mkkey(k, ki);
        int64_t now = step;
        size_t len;
        if ((seed >> 20) & 1) {
            size_t n = (seed >> 4) % sizeof body;
            for (size_t i = 0; i < n; i++)
                body[i] = (char)('a' + (step + i) % 26);
            assert_int_equal(hp_rcache_put(c, k, body, n, now), HP_OK);
            memcpy(last[ki], body, n);
            last_len[ki] = n;
        } else {
            const char *v = hp_rcache_get(c, k, now, &len);
            if (v) {
                assert_int_equal(len, last_len[ki]);
                assert_memory_equal(v, last[ki], len);
            }
        }
        assert_true(hp_rcache_bytes(c) <= MAX_BYTES);
        assert_true(hp_rcache_count(c) <= KEYS);
        assert_true(hp_rcache_bytes(c) >= hp_rcache_count(c) * 32);
    }
    /* many keys under a roomy bound: the table grows, all still found */
    hp_rcache *big = hp_rcache_new(1 << 24, 0);
    for (unsigned i = 0; i < 3000; i++) {
        uint8_t k[32];
        mkkey(k, i);
        assert_int_equal(hp_rcache_put(big, k, "v", 1, 0), HP_OK);
    }
    for (unsigned i = 0; i < 3000; i++) {
        uint8_t k[32];
        size_t len;
        mkkey(k, i);
        assert_non_null(hp_rcache_get(big, k, 1, &len));
    }
    hp_rcache_free(big);
    hp_rcache_free(c);
}

/* ---- replay ------------------------------------------------------------ */

static const char *SMALL =
    "{\"id\":\"c1\",\"object\":\"chat.completion\",\"created\":7,"
    "\"model\":\"m\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
    "\"assistant\",\"content\":\"Hi\"},\"logprobs\":null,"
    "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":1,"
    "\"completion_tokens\":2,\"total_tokens\":3}}";

#define HEAD "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\"," \
             "\"created\":7,\"model\":\"m\","

static void check_replay(const char *body, bool usage, const char *want)
{
    size_t len = 0;
    char *s = hp_rcache_replay_sse(body, strlen(body), usage, &len);
    assert_non_null(s);
    if (strcmp(s, want) != 0)
        fprintf(stderr, "got:\n%s\nwant:\n%s\n", s, want);
    assert_string_equal(s, want);
    assert_int_equal(len, strlen(want));
    free(s);
}

/* rcache_replay_exact: role chunk, content chunk, finish chunk, [DONE]. */
static void rcache_replay_exact(void **state)
{
    (void)state;
    check_replay(SMALL, false,
        HEAD "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
        "\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n"
        HEAD "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},"
        "\"logprobs\":null,\"finish_reason\":null}]}\n\n"
        HEAD "\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,"
        "\"finish_reason\":\"stop\"}]}\n\n"
        "data: [DONE]\n\n");
}

/* rcache_replay_exact_usage: with include_usage every chunk says
 * "usage":null (as OpenAI does) and a choices-less usage chunk comes
 * last. */
static void rcache_replay_exact_usage(void **state)
{
    (void)state;
    check_replay(SMALL, true,
        HEAD "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
        "\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}],"
        "\"usage\":null}\n\n"
        HEAD "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},"
        "\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n"
        HEAD "\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,"
        "\"finish_reason\":\"stop\"}],\"usage\":null}\n\n"
        HEAD "\"choices\":[],\"usage\":{\"prompt_tokens\":1,"
        "\"completion_tokens\":2,\"total_tokens\":3}}\n\n"
        "data: [DONE]\n\n");
}

/* rcache_replay_text_completion: one text_completion chunk per choice. */
static void rcache_replay_text_completion(void **state)
{
    (void)state;
    check_replay(
        "{\"id\":\"t\",\"object\":\"text_completion\",\"created\":1,"
        "\"model\":\"m\",\"choices\":[{\"index\":0,\"text\":\"ab\","
        "\"logprobs\":null,\"finish_reason\":\"length\"}]}", false,
        "data: {\"id\":\"t\",\"object\":\"text_completion\",\"created\":1,"
        "\"model\":\"m\",\"choices\":[{\"index\":0,\"text\":\"ab\","
        "\"logprobs\":null,\"finish_reason\":\"length\"}]}\n\n"
        "data: [DONE]\n\n");
}

/* rcache_replay_refuses_non_completion: anything but a completion object
 * (bad JSON, an error body, wrong choice shapes) gives NULL. */
static void rcache_replay_refuses_non_completion(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "{", "[]", "{\"error\":{\"message\":\"x\"}}",
        "{\"object\":\"chat.completion\"}",
        "{\"object\":\"chat.completion\",\"choices\":[1]}",
        "{\"object\":\"chat.completion\",\"choices\":[{\"text\":\"a\"}]}",
        "{\"object\":\"text_completion\",\"choices\":[{\"message\":{}}]}",
        "{\"object\":\"list\",\"choices\":[]}",
    };
    size_t len = 5;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_null(hp_rcache_replay_sse(bad[i], strlen(bad[i]), true, &len));
    assert_int_equal(len, 0);
    assert_null(hp_rcache_replay_sse(NULL, 3, true, &len));
}

/* ---- assembler --------------------------------------------------------- */

/* Feed the replay of body to an assembler event by event, as the gateway
 * would after its SSE parser; returns the result (new reference). */
static json_t *assemble_replay(const char *body, bool usage)
{
    size_t len;
    char *s = hp_rcache_replay_sse(body, strlen(body), usage, &len);
    assert_non_null(s);
    hp_chunk_asm a;
    hp_chunk_asm_init(&a);
    char *p = s;
    int events = 0;
    while (*p) {
        assert_memory_equal(p, "data: ", 6);
        p += 6;
        char *end = strstr(p, "\n\n");
        assert_non_null(end);
        *end = '\0';
        if (strcmp(p, "[DONE]") != 0) {
            json_t *chunk = parse(p);
            hp_chunk_asm_add(&a, chunk);
            json_decref(chunk);
            events++;
        }
        p = end + 2;
    }
    assert_true(events >= 1);
    assert_false(a.bad);
    json_t *r = hp_chunk_asm_result(&a);
    hp_chunk_asm_free(&a);
    free(s);
    return r;
}

static void check_round_trip(const char *body)
{
    json_t *want = parse(body);
    json_t *got = assemble_replay(body, true);
    assert_non_null(got);
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, JSON_COMPACT);
        fprintf(stderr, "round trip differs:\n got %s\nwant %s\n", g, body);
        free(g);
    }
    assert_true(json_equal(got, want));
    json_decref(got);
    json_decref(want);
}

/* rcache_round_trip: assemble(replay(body)) == body for bodies with usage:
 * one choice, two choices, tool calls (with and without text), empty and
 * NUL-holding content, a refusal, logprobs, text completions. */
static void rcache_round_trip(void **state)
{
    (void)state;
    check_round_trip(SMALL);
    check_round_trip(
        "{\"id\":\"c2\",\"object\":\"chat.completion\",\"created\":9,"
        "\"model\":\"m\",\"system_fingerprint\":\"fp\",\"choices\":["
        "{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
        "\"one \\u00e9\\u0000 two\"},\"logprobs\":null,"
        "\"finish_reason\":\"stop\"},"
        "{\"index\":1,\"message\":{\"role\":\"assistant\",\"content\":\"\"},"
        "\"logprobs\":null,\"finish_reason\":\"length\"}],"
        "\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":5,"
        "\"total_tokens\":9}}");
    check_round_trip(
        "{\"id\":\"c3\",\"object\":\"chat.completion\",\"created\":9,"
        "\"model\":\"m\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
        "\"assistant\",\"content\":null,\"tool_calls\":["
        "{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":"
        "\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Oslo\\\"}\"}},"
        "{\"id\":\"call_2\",\"type\":\"function\",\"function\":{\"name\":"
        "\"time\",\"arguments\":\"{}\"}}]},\"logprobs\":null,"
        "\"finish_reason\":\"tool_calls\"}],\"usage\":{\"prompt_tokens\":1,"
        "\"completion_tokens\":1,\"total_tokens\":2}}");
    check_round_trip(
        "{\"id\":\"c4\",\"object\":\"chat.completion\",\"created\":9,"
        "\"model\":\"m\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
        "\"assistant\",\"content\":\"Let me check.\",\"tool_calls\":["
        "{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":"
        "\"f\",\"arguments\":\"{}\"}}]},\"logprobs\":{\"content\":["
        "{\"token\":\"Let\",\"logprob\":-0.5,\"bytes\":[76,101,116],"
        "\"top_logprobs\":[]}]},\"finish_reason\":\"tool_calls\"},"
        "{\"index\":1,\"message\":{\"role\":\"assistant\",\"content\":null,"
        "\"refusal\":\"no\"},\"logprobs\":null,\"finish_reason\":\"stop\"}],"
        "\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1,"
        "\"total_tokens\":2}}");
    check_round_trip(
        "{\"id\":\"t1\",\"object\":\"text_completion\",\"created\":3,"
        "\"model\":\"m\",\"choices\":[{\"index\":0,\"text\":\"Once upon\","
        "\"logprobs\":null,\"finish_reason\":\"length\"},{\"index\":1,"
        "\"text\":\"\",\"logprobs\":{\"tokens\":[\"a\"],\"token_logprobs\":"
        "[-1.5],\"top_logprobs\":[{\"a\":-1.5}],\"text_offset\":[0]},"
        "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":2,"
        "\"completion_tokens\":3,\"total_tokens\":5}}");
}

static void add_text(hp_chunk_asm *a, const char *s)
{
    json_t *o = parse(s);
    hp_chunk_asm_add(a, o);
    json_decref(o);
}

/* rcache_asm_streamed_deltas: a stream as upstreams send it: content in
 * many pieces, tool-call arguments split, choices interleaved and out of
 * order, an Azure-style filter chunk first, usage in the last chunk. */
static void rcache_asm_streamed_deltas(void **state)
{
    (void)state;
    hp_chunk_asm a;
    hp_chunk_asm_init(&a);
    add_text(&a, "{\"id\":\"\",\"object\":\"\",\"created\":0,\"model\":\"\","
                 "\"choices\":[],\"prompt_filter_results\":[]}");
    add_text(&a, "{\"id\":\"x\",\"object\":\"chat.completion.chunk\","
                 "\"created\":5,\"model\":\"m\",\"choices\":[{\"index\":1,"
                 "\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}");
    add_text(&a, "{\"id\":\"x\",\"object\":\"chat.completion.chunk\","
                 "\"created\":6,\"model\":\"m2\",\"choices\":[{\"index\":0,"
                 "\"delta\":{\"role\":\"assistant\",\"content\":null,"
                 "\"tool_calls\":[{\"index\":0,\"id\":\"call_9\",\"type\":"
                 "\"function\",\"function\":{\"name\":\"f\",\"arguments\":"
                 "\"\"}}]},\"finish_reason\":null}]}");
    add_text(&a, "{\"object\":\"chat.completion.chunk\",\"choices\":["
                 "{\"index\":1,\"delta\":{\"content\":\"Hel\"}},"
                 "{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
                 "\"function\":{\"arguments\":\"{\\\"a\\\":\"}}]}}]}");
    add_text(&a, "{\"object\":\"chat.completion.chunk\",\"choices\":["
                 "{\"index\":1,\"delta\":{\"content\":\"lo\"}},"
                 "{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
                 "\"function\":{\"arguments\":\"1}\"}}]}}]}");
    add_text(&a, "{\"object\":\"chat.completion.chunk\",\"choices\":["
                 "{\"index\":1,\"delta\":{},\"finish_reason\":\"stop\"},"
                 "{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\""
                 "}],\"usage\":null}");
    add_text(&a, "{\"object\":\"chat.completion.chunk\",\"choices\":[],"
                 "\"usage\":{\"total_tokens\":4}}");
    assert_false(a.bad);
    assert_true(a.chat);
    json_t *r = hp_chunk_asm_result(&a);
    json_t *want = parse(
        "{\"id\":\"x\",\"object\":\"chat.completion\",\"created\":5,"
        "\"model\":\"m\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
        "\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call_9\","
        "\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":"
        "\"{\\\"a\\\":1}\"}}]},\"logprobs\":null,\"finish_reason\":"
        "\"tool_calls\"},{\"index\":1,\"message\":{\"role\":\"assistant\","
        "\"content\":\"Hello\"},\"logprobs\":null,\"finish_reason\":"
        "\"stop\"}],\"usage\":{\"total_tokens\":4}}");
    assert_non_null(r);
    assert_true(json_equal(r, want));
    json_decref(r);
    json_decref(want);
    hp_chunk_asm_free(&a);
}

/* rcache_asm_tool_calls_without_index: for servers that omit the tool
 * call index, a new id starts a call and a delta without id continues the
 * last one. */
static void rcache_asm_tool_calls_without_index(void **state)
{
    (void)state;
    hp_chunk_asm a;
    hp_chunk_asm_init(&a);
    add_text(&a, "{\"object\":\"chat.completion.chunk\",\"choices\":[{"
                 "\"delta\":{\"tool_calls\":[{\"id\":\"a\",\"function\":{"
                 "\"name\":\"f\",\"arguments\":\"{\"}}]}}]}");
    add_text(&a, "{\"object\":\"chat.completion.chunk\",\"choices\":[{"
                 "\"delta\":{\"tool_calls\":[{\"function\":{"
                 "\"arguments\":\"}\"}}]}}]}");
    add_text(&a, "{\"object\":\"chat.completion.chunk\",\"choices\":[{"
                 "\"delta\":{\"tool_calls\":[{\"id\":\"b\",\"function\":{"
                 "\"name\":\"g\",\"arguments\":\"[]\"}}]},"
                 "\"finish_reason\":\"tool_calls\"}]}");
    json_t *r = hp_chunk_asm_result(&a);
    json_t *want = parse(
        "{\"object\":\"chat.completion\",\"choices\":[{\"index\":0,"
        "\"message\":{\"role\":\"assistant\",\"content\":null,"
        "\"tool_calls\":[{\"id\":\"a\",\"type\":\"function\",\"function\":"
        "{\"name\":\"f\",\"arguments\":\"{}\"}},{\"id\":\"b\",\"type\":"
        "\"function\",\"function\":{\"name\":\"g\",\"arguments\":\"[]\"}}]},"
        "\"logprobs\":null,\"finish_reason\":\"tool_calls\"}]}");
    assert_non_null(r);
    assert_true(json_equal(r, want));
    json_decref(r);
    json_decref(want);
    hp_chunk_asm_free(&a);
}

/* rcache_asm_malformed_sets_bad: a chunk of the wrong shape marks the
 * assembler bad, is ignored, and the result is NULL; so is a stream that
 * switches kinds, and an assembler that saw no chunk. */
static void rcache_asm_malformed_sets_bad(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "[]", "\"data\"", "{\"error\":{\"message\":\"overloaded\"}}",
        "{\"object\":\"chat.completion.chunk\",\"choices\":{}}",
        "{\"object\":\"chat.completion.chunk\",\"choices\":[3]}",
        "{\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":"
        "\"0\",\"delta\":{}}]}",
        "{\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":-1,"
        "\"delta\":{}}]}",
        "{\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
        "\"delta\":{\"content\":5}}]}",
        "{\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
        "\"delta\":[]}]}",
        "{\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
        "\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":"
        "\"f\"}]}}]}",
        "{\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
        "\"delta\":{}}],\"usage\":5}",
        "{\"object\":\"text_completion\",\"choices\":[{\"index\":0,"
        "\"text\":[]}]}",
        "{\"object\":\"error\",\"choices\":[]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        hp_chunk_asm a;
        hp_chunk_asm_init(&a);
        add_text(&a, "{\"id\":\"x\",\"object\":\"chat.completion.chunk\","
                     "\"choices\":[{\"index\":0,\"delta\":{\"content\":"
                     "\"a\"}}]}");
        assert_false(a.bad);
        add_text(&a, bad[i]);
        if (!a.bad)
            fprintf(stderr, "accepted: %s\n", bad[i]);
        assert_true(a.bad);
        assert_null(hp_chunk_asm_result(&a));
        hp_chunk_asm_free(&a);
    }
    hp_chunk_asm a;
    hp_chunk_asm_init(&a);
    assert_null(hp_chunk_asm_result(&a));
    add_text(&a, "{\"object\":\"chat.completion.chunk\",\"choices\":["
                 "{\"index\":0,\"delta\":{\"content\":\"a\"}}]}");
    add_text(&a, "{\"object\":\"text_completion\",\"choices\":["
                 "{\"index\":0,\"text\":\"a\"}]}");
    assert_true(a.bad);
    hp_chunk_asm_add(&a, NULL);
    hp_chunk_asm_free(&a);
    hp_chunk_asm_free(&a); /* twice is harmless */
    hp_chunk_asm_init(&a);
    hp_chunk_asm_add(&a, NULL);
    assert_true(a.bad);
    hp_chunk_asm_free(&a);
}

/* ---- fuzz -------------------------------------------------------------- */

static uint32_t fz_seed = 777;

static uint32_t fz_next(void)
{
    fz_seed = fz_seed * 1664525u + 1013904223u;
    return fz_seed >> 8;
}

static json_t *fz_value(void)
{
    switch (fz_next() % 10) {
    case 0: return json_null();
    case 1: return json_true();
    case 2: return json_integer(7);
    case 3: return json_integer(-1);
    case 4: return json_real(0.5);
    case 5: return json_string("s");
    case 6: return json_array();
    case 7: return json_object();
    case 8: return json_pack("[i]", 1);
    default: return json_pack("{s:i}", "index", 100000);
    }
}

/* Replace (or delete) one node of the tree below o, picked by walking a
 * random path; returns false when nothing was changed. */
static bool fz_mutate(json_t *o)
{
    for (int depth = 0; depth < 8; depth++) {
        size_t n = json_is_object(o) ? json_object_size(o)
                   : json_is_array(o) ? json_array_size(o) : 0;
        if (n == 0)
            return false;
        size_t pick = fz_next() % n;
        json_t *child;
        const char *key = NULL;
        if (json_is_object(o)) {
            void *it = json_object_iter(o);
            for (size_t i = 0; i < pick; i++)
                it = json_object_iter_next(o, it);
            key = json_object_iter_key(it);
            child = json_object_iter_value(it);
        } else {
            child = json_array_get(o, pick);
        }
        bool descend = (json_is_object(child) || json_is_array(child)) &&
                       fz_next() % 3 != 0;
        if (descend) {
            o = child;
            continue;
        }
        bool del = fz_next() % 4 == 0;
        if (key && del)
            json_object_del(o, key);
        else if (key)
            json_object_set_new(o, key, fz_value());
        else if (del)
            json_array_remove(o, pick);
        else
            json_array_set_new(o, pick, fz_value());
        return true;
    }
    return false;
}

static const char *FZ_BODY =
    "{\"id\":\"c4\",\"object\":\"chat.completion\",\"created\":9,"
    "\"model\":\"m\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
    "\"assistant\",\"content\":\"Let me check.\",\"tool_calls\":["
    "{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":"
    "\"f\",\"arguments\":\"{}\"}}]},\"logprobs\":{\"content\":[1]},"
    "\"finish_reason\":\"tool_calls\"},{\"index\":1,\"message\":{"
    "\"role\":\"assistant\",\"content\":\"x\"},\"logprobs\":null,"
    "\"finish_reason\":\"stop\"}],\"usage\":{\"total_tokens\":2}}";

/* rcache_fuzz_never_crashes: randomly damaged bodies replay or give NULL,
 * and streams of randomly damaged chunks assemble or go bad, never crash
 * (run under ASan to make this mean something). */
static void rcache_fuzz_never_crashes(void **state)
{
    (void)state;
    size_t len;
    char *sse = hp_rcache_replay_sse(FZ_BODY, strlen(FZ_BODY), true, &len);
    assert_non_null(sse);
    /* split the replay into chunk objects */
    json_t *chunks = json_array();
    for (char *p = sse; *p;) {
        char *end = strstr(p, "\n\n");
        *end = '\0';
        if (strcmp(p + 6, "[DONE]") != 0)
            json_array_append_new(chunks, parse(p + 6));
        p = end + 2;
    }
    free(sse);
    for (int iter = 0; iter < 2000; iter++) {
        json_t *body = parse(FZ_BODY);
        int muts = 1 + (int)(fz_next() % 3);
        for (int m = 0; m < muts; m++)
            fz_mutate(body);
        char *text = json_dumps(body, JSON_COMPACT);
        char *out = hp_rcache_replay_sse(text, strlen(text),
                                         fz_next() % 2, &len);
        free(out);
        free(text);
        json_decref(body);

        hp_chunk_asm a;
        hp_chunk_asm_init(&a);
        size_t i;
        json_t *c;
        json_array_foreach(chunks, i, c) {
            json_t *d = json_deep_copy(c);
            if (fz_next() % 3 == 0)
                fz_mutate(d);
            hp_chunk_asm_add(&a, d);
            json_decref(d);
        }
        json_t *r = hp_chunk_asm_result(&a);
        assert_true(r == NULL || json_is_object(r));
        assert_true(!a.bad || r == NULL);
        json_decref(r);
        hp_chunk_asm_free(&a);
    }
    json_decref(chunks);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rcache_key_normalised),
        cmocka_unit_test(rcache_key_distinguishes),
        cmocka_unit_test(rcache_cacheable_rules),
        cmocka_unit_test(rcache_put_get),
        cmocka_unit_test(rcache_ttl_expires),
        cmocka_unit_test(rcache_lru_evicts_oldest_use),
        cmocka_unit_test(rcache_oversized_not_stored),
        cmocka_unit_test(rcache_replace),
        cmocka_unit_test(rcache_random_traffic_bounded),
        cmocka_unit_test(rcache_replay_exact),
        cmocka_unit_test(rcache_replay_exact_usage),
        cmocka_unit_test(rcache_replay_text_completion),
        cmocka_unit_test(rcache_replay_refuses_non_completion),
        cmocka_unit_test(rcache_round_trip),
        cmocka_unit_test(rcache_asm_streamed_deltas),
        cmocka_unit_test(rcache_asm_tool_calls_without_index),
        cmocka_unit_test(rcache_asm_malformed_sets_bad),
        cmocka_unit_test(rcache_fuzz_never_crashes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
