/* test_sse.c: the incremental SSE parser (src/gateway/sse.c).
 *
 * The same stream gives the same events whatever its line endings and
 * however it is sliced; comments and unknown fields are skipped; data lines
 * join with \n; an oversize line is a format error; a callback can stop the
 * parse; a stream cut mid-event is visible through hp_sse_pending; random
 * bytes never crash it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/sse.h"

/* Collected events, flattened as "event|data\x1e" records for comparison. */
typedef struct rec {
    char *buf;
    size_t len, cap;
    int n;
    int stop_after; /* stop (return 1) on this event number; 0 = never */
} rec;

static void rec_add(rec *r, const char *s, size_t n)
{
    if (r->len + n + 1 > r->cap) {
        size_t nc = r->cap ? r->cap * 2 : 256;
        while (nc < r->len + n + 1)
            nc *= 2;
        r->buf = realloc(r->buf, nc);
        assert_non_null(r->buf);
        r->cap = nc;
    }
    memcpy(r->buf + r->len, s, n);
    r->len += n;
    r->buf[r->len] = '\0';
}

static int on_event(const char *event, const char *data, size_t len, void *ud)
{
    rec *r = ud;
    /* data is NUL-terminated and its length matches. */
    assert_int_equal(strlen(data), len);
    rec_add(r, event, strlen(event));
    rec_add(r, "|", 1);
    rec_add(r, data, len);
    rec_add(r, "\x1e", 1);
    r->n++;
    return r->stop_after && r->n == r->stop_after;
}

static void rec_free(rec *r)
{
    free(r->buf);
    memset(r, 0, sizeof *r);
}

/* Parse a whole buffer in one feed; returns the feed's result. */
static hp_err parse_all(const char *s, size_t len, rec *r, bool *pending)
{
    hp_sse p;
    hp_sse_init(&p, on_event, r);
    hp_err rc = hp_sse_feed(&p, s, len);
    if (pending)
        *pending = hp_sse_pending(&p);
    hp_sse_free(&p);
    return rc;
}

static const char *STREAM_LF =
    ": keep-alive comment\n"
    "event: message_start\n"
    "data: {\"type\":\"message_start\"}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"a\":1,\n"
    "data:  \"b\":2}\n"
    "id: 7\n"
    "retry: 100\n"
    "\n"
    "data\n"
    "\n"
    "data:no-space\n"
    "unknown: field\n"
    "\n"
    "event: ignored-no-data\n"
    "\n"
    "data: [DONE]\n"
    "\n";

static const char *EXPECT =
    "message_start|{\"type\":\"message_start\"}\x1e"
    "content_block_delta|{\"a\":1,\n \"b\":2}\x1e"
    "|\x1e"
    "|no-space\x1e"
    "|[DONE]\x1e";

/* Rewrite every \n of s into the terminator term (caller frees). */
static char *with_endings(const char *s, const char *term, size_t *out_len)
{
    size_t tl = strlen(term), n = 0;
    char *o = malloc(strlen(s) * tl + 1);
    assert_non_null(o);
    for (const char *c = s; *c; c++) {
        if (*c == '\n') {
            memcpy(o + n, term, tl);
            n += tl;
        } else {
            o[n++] = *c;
        }
    }
    o[n] = '\0';
    *out_len = n;
    return o;
}

/* sse_line_endings: \n, \r\n and \r give the same events. */
static void sse_line_endings(void **state)
{
    (void)state;
    const char *terms[] = {"\n", "\r\n", "\r"};
    for (size_t t = 0; t < 3; t++) {
        size_t len;
        char *s = with_endings(STREAM_LF, terms[t], &len);
        rec r = {0};
        bool pend = true;
        assert_int_equal(parse_all(s, len, &r, &pend), HP_OK);
        assert_string_equal(r.buf, EXPECT);
        assert_false(pend);
        rec_free(&r);
        free(s);
    }
}

/* sse_mixed_endings: one stream mixing all three terminators, including a
 * \r followed by \r (an empty line, i.e. end of event). */
static void sse_mixed_endings(void **state)
{
    (void)state;
    const char *s = "event: a\r\ndata: 1\r\rdata: 2\n\r\ndata: 3\r\n\n";
    rec r = {0};
    assert_int_equal(parse_all(s, strlen(s), &r, NULL), HP_OK);
    assert_string_equal(r.buf, "a|1\x1e|2\x1e|3\x1e");
    rec_free(&r);
}

/* sse_split_every_boundary: feeding the stream in two pieces at every byte
 * boundary, and byte by byte, gives the same events as one feed, for each
 * line ending style (this covers \r | \n split across feeds). */
static void sse_split_every_boundary(void **state)
{
    (void)state;
    const char *terms[] = {"\n", "\r\n", "\r"};
    for (size_t t = 0; t < 3; t++) {
        size_t len;
        char *s = with_endings(STREAM_LF, terms[t], &len);
        for (size_t cut = 0; cut <= len; cut++) {
            rec r = {0};
            hp_sse p;
            hp_sse_init(&p, on_event, &r);
            assert_int_equal(hp_sse_feed(&p, s, cut), HP_OK);
            assert_int_equal(hp_sse_feed(&p, s + cut, len - cut), HP_OK);
            assert_false(hp_sse_pending(&p));
            assert_string_equal(r.buf, EXPECT);
            hp_sse_free(&p);
            rec_free(&r);
        }
        rec r = {0};
        hp_sse p;
        hp_sse_init(&p, on_event, &r);
        for (size_t i = 0; i < len; i++)
            assert_int_equal(hp_sse_feed(&p, s + i, 1), HP_OK);
        assert_string_equal(r.buf, EXPECT);
        hp_sse_free(&p);
        rec_free(&r);
        free(s);
    }
}

/* sse_comments_only: comments and blank lines report nothing. */
static void sse_comments_only(void **state)
{
    (void)state;
    const char *s = ":\n: ping\n\n\n:x\r\n\r\n";
    rec r = {0};
    bool pend = true;
    assert_int_equal(parse_all(s, strlen(s), &r, &pend), HP_OK);
    assert_int_equal(r.n, 0);
    assert_false(pend);
    rec_free(&r);
}

/* sse_field_rules: only one leading space is dropped; a field without a
 * colon has an empty value; an empty data line still makes an event with
 * data ""; the last event: line wins. */
static void sse_field_rules(void **state)
{
    (void)state;
    const char *s = "data:   two spaces kept\n\n"
                    "data\ndata\n\n"
                    "event: x\nevent: y\ndata: v\n\n"
                    "data: a:b: c\n\n";
    rec r = {0};
    assert_int_equal(parse_all(s, strlen(s), &r, NULL), HP_OK);
    assert_string_equal(r.buf, "|  two spaces kept\x1e|\n\x1ey|v\x1e|a:b: c\x1e");
    rec_free(&r);
}

/* sse_event_name_resets: the event name applies to one event only. */
static void sse_event_name_resets(void **state)
{
    (void)state;
    const char *s = "event: ping\ndata: {}\n\ndata: plain\n\n";
    rec r = {0};
    assert_int_equal(parse_all(s, strlen(s), &r, NULL), HP_OK);
    assert_string_equal(r.buf, "ping|{}\x1e|plain\x1e");
    rec_free(&r);
}

/* sse_long_event_name_truncated: an over-long event name is cut, not an
 * error. */
static void sse_long_event_name_truncated(void **state)
{
    (void)state;
    char s[300];
    memcpy(s, "event: ", 7);
    memset(s + 7, 'e', 200);
    strcpy(s + 207, "\ndata: d\n\n");
    rec r = {0};
    assert_int_equal(parse_all(s, strlen(s), &r, NULL), HP_OK);
    assert_int_equal(r.n, 1);
    assert_int_equal(strchr(r.buf, '|') - r.buf, 63);
    rec_free(&r);
}

/* sse_done_is_data: OpenAI's [DONE] sentinel is just data to the parser. */
static void sse_done_is_data(void **state)
{
    (void)state;
    const char *s = "data: {\"x\":1}\n\ndata: [DONE]\n\n";
    rec r = {0};
    assert_int_equal(parse_all(s, strlen(s), &r, NULL), HP_OK);
    assert_string_equal(r.buf, "|{\"x\":1}\x1e|[DONE]\x1e");
    rec_free(&r);
}

/* sse_large_event_ok: a 1 MiB data line (under the limit) comes through. */
static void sse_large_event_ok(void **state)
{
    (void)state;
    size_t n = 1u << 20;
    char *s = malloc(n + 16);
    assert_non_null(s);
    memcpy(s, "data: ", 6);
    memset(s + 6, 'x', n);
    memcpy(s + 6 + n, "\n\n", 2);
    rec r = {0};
    hp_sse p;
    hp_sse_init(&p, on_event, &r);
    /* fed in uneven slices to exercise buffer growth across feeds */
    size_t total = n + 8, off = 0, step = 4097;
    while (off < total) {
        size_t k = total - off < step ? total - off : step;
        assert_int_equal(hp_sse_feed(&p, s + off, k), HP_OK);
        off += k;
    }
    assert_int_equal(r.n, 1);
    assert_int_equal(r.len, 1 + n + 1);
    hp_sse_free(&p);
    rec_free(&r);
    free(s);
}

/* sse_oversize_line: a line longer than HP_SSE_MAX_EVENT is HP_ERR_FORMAT,
 * whether it comes in one feed or many. */
static void sse_oversize_line(void **state)
{
    (void)state;
    size_t n = HP_SSE_MAX_EVENT + 10;
    char *s = malloc(n);
    assert_non_null(s);
    memcpy(s, "data: ", 6);
    memset(s + 6, 'y', n - 6);
    rec r = {0};
    assert_int_equal(parse_all(s, n, &r, NULL), HP_ERR_FORMAT);
    assert_int_equal(r.n, 0);

    hp_sse p;
    hp_sse_init(&p, on_event, &r);
    hp_err rc = HP_OK;
    for (size_t off = 0; off < n && rc == HP_OK; off += 65536)
        rc = hp_sse_feed(&p, s + off, n - off < 65536 ? n - off : 65536);
    assert_int_equal(rc, HP_ERR_FORMAT);
    hp_sse_free(&p);
    rec_free(&r);
    free(s);
}

/* sse_oversize_event: many short data lines adding up past the limit are
 * HP_ERR_FORMAT too (the event, not just the line, is bounded). */
static void sse_oversize_event(void **state)
{
    (void)state;
    size_t line = 1024 * 1024; /* 1 MiB per data line, 5 lines */
    char *s = malloc(line + 8);
    assert_non_null(s);
    memcpy(s, "data: ", 6);
    memset(s + 6, 'z', line);
    s[6 + line] = '\n';
    rec r = {0};
    hp_sse p;
    hp_sse_init(&p, on_event, &r);
    hp_err rc = HP_OK;
    for (int k = 0; k < 5 && rc == HP_OK; k++)
        rc = hp_sse_feed(&p, s, line + 7);
    assert_int_equal(rc, HP_ERR_FORMAT);
    assert_int_equal(r.n, 0);
    hp_sse_free(&p);
    rec_free(&r);
    free(s);
}

/* sse_callback_stop: a non-zero return stops the feed with
 * HP_ERR_CANCELLED and the rest of the input is not reported. */
static void sse_callback_stop(void **state)
{
    (void)state;
    const char *s = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
    rec r = {0};
    r.stop_after = 2;
    assert_int_equal(parse_all(s, strlen(s), &r, NULL), HP_ERR_CANCELLED);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.buf, "|1\x1e|2\x1e");
    rec_free(&r);
}

/* sse_pending_after_cut: a stream cut mid-line or mid-event is pending;
 * one ending on a blank line is not. */
static void sse_pending_after_cut(void **state)
{
    (void)state;
    const struct {
        const char *s;
        bool pending;
    } cases[] = {
        {"data: {\"partial", true},   /* mid-line */
        {"data: complete line\n", true}, /* line done, event not ended */
        {"event: x\n", true},         /* event name only, no blank line */
        {"data: x\n\n", false},
        {"data: x\r\n\r\n", false},
        {": comment\n", false},
        {"", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rec r = {0};
        bool pend = !cases[i].pending;
        assert_int_equal(parse_all(cases[i].s, strlen(cases[i].s), &r, &pend),
                         HP_OK);
        assert_int_equal(pend, cases[i].pending);
        rec_free(&r);
    }
}

/* sse_free_twice_and_unused: free on a never-fed parser and twice is safe. */
static void sse_free_twice_and_unused(void **state)
{
    (void)state;
    hp_sse p;
    hp_sse_init(&p, on_event, NULL);
    assert_false(hp_sse_pending(&p));
    hp_sse_free(&p);
    hp_sse_free(&p);
    hp_sse_free(NULL);
}

static int count_cb(const char *e, const char *d, size_t n, void *ud)
{
    (void)e;
    /* Touch every byte so a sanitizer would see bad lengths. */
    unsigned sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += (unsigned char)d[i];
    *(unsigned *)ud += sum + 1;
    return 0;
}

/* sse_fuzz_random_bytes: random bytes biased towards the interesting
 * characters, in random slices, never crash and only fail with FORMAT. */
static void sse_fuzz_random_bytes(void **state)
{
    (void)state;
    uint32_t seed = 12345;
    const char alpha[] = "data:event: \r\n\n:x{}";
    char buf[512];
    for (int iter = 0; iter < 3000; iter++) {
        unsigned acc = 0;
        hp_sse p;
        hp_sse_init(&p, count_cb, &acc);
        for (int f = 0; f < 4; f++) {
            seed = seed * 1103515245u + 12345u;
            size_t n = (seed >> 16) % sizeof buf;
            for (size_t i = 0; i < n; i++) {
                seed = seed * 1103515245u + 12345u;
                uint32_t v = seed >> 16;
                buf[i] = (v & 1) ? alpha[(v >> 1) % (sizeof alpha - 1)]
                                 : (char)(v >> 3);
            }
            assert_int_equal(hp_sse_feed(&p, buf, n), HP_OK);
        }
        (void)hp_sse_pending(&p);
        hp_sse_free(&p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sse_line_endings),
        cmocka_unit_test(sse_mixed_endings),
        cmocka_unit_test(sse_split_every_boundary),
        cmocka_unit_test(sse_comments_only),
        cmocka_unit_test(sse_field_rules),
        cmocka_unit_test(sse_event_name_resets),
        cmocka_unit_test(sse_long_event_name_truncated),
        cmocka_unit_test(sse_done_is_data),
        cmocka_unit_test(sse_large_event_ok),
        cmocka_unit_test(sse_oversize_line),
        cmocka_unit_test(sse_oversize_event),
        cmocka_unit_test(sse_callback_stop),
        cmocka_unit_test(sse_pending_after_cut),
        cmocka_unit_test(sse_free_twice_and_unused),
        cmocka_unit_test(sse_fuzz_random_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
