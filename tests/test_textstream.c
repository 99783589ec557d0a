/* test_textstream.c: spec for engine/textstream.c (stop strings across
 * tokens, stop-prefix hold-back, UTF-8 hold-back and repair, and streamed
 * output equal to one-shot output for any split). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "engine/textstream.h"
#include "util/utf8.h"

/* Collected output of a stream: all deltas concatenated. */
typedef struct acc {
    char buf[8192];
    size_t len;
    int n_deltas;
    bool stopped;
} acc;

static void take(acc *a, const char *o, size_t n)
{
    assert_non_null(o);
    /* Every delta on its own is valid UTF-8. */
    assert_true(hp_utf8_valid(o, n));
    assert_true(a->len + n <= sizeof(a->buf));
    memcpy(a->buf + a->len, o, n);
    a->len += n;
    a->n_deltas++;
}

/* Push pieces (NULL-terminated list), then finish unless stopped. */
static void run(const char *const *stops, int n_stop, const char *const *pieces,
                acc *a)
{
    memset(a, 0, sizeof(*a));
    hp_textstream *ts = hp_textstream_new(stops, n_stop);
    assert_non_null(ts);
    const char *o;
    size_t n;
    for (int i = 0; pieces[i] && !a->stopped; i++) {
        a->stopped = hp_textstream_push(ts, pieces[i], strlen(pieces[i]), &o, &n);
        take(a, o, n);
    }
    if (!a->stopped) {
        hp_textstream_finish(ts, &o, &n);
        take(a, o, n);
    }
    hp_textstream_free(ts);
}

static void assert_out(const acc *a, const char *want)
{
    assert_int_equal(a->len, strlen(want));
    assert_memory_equal(a->buf, want, a->len);
}

static void textstream_no_stops_passes_through(void **st)
{
    (void)st;
    const char *p[] = {"Hello", ", ", "world", NULL};
    acc a;
    run(NULL, 0, p, &a);
    assert_out(&a, "Hello, world");
    assert_false(a.stopped);
    hp_textstream_free(NULL);
}

static void textstream_stop_across_tokens(void **st)
{
    (void)st;
    const char *stops[] = {"###"};
    const char *p[] = {"one #", "#", "# two", NULL};
    acc a;
    run(stops, 1, p, &a);
    assert_true(a.stopped);
    assert_out(&a, "one ");
}

static void textstream_stop_at_very_start(void **st)
{
    (void)st;
    const char *stops[] = {"</s>"};
    const char *p[] = {"</s>", "after", NULL};
    acc a;
    run(stops, 1, p, &a);
    assert_true(a.stopped);
    assert_out(&a, "");
    const char *p2[] = {"<", "/", "s", ">", "x", NULL};
    run(stops, 1, p2, &a);
    assert_true(a.stopped);
    assert_out(&a, "");
}

static void textstream_stop_inside_one_token(void **st)
{
    (void)st;
    const char *stops[] = {"STOP"};
    const char *p[] = {"abc", "xSTOPy", NULL};
    acc a;
    run(stops, 1, p, &a);
    assert_true(a.stopped);
    assert_out(&a, "abcx");
}

static void textstream_prefix_never_released_early(void **st)
{
    (void)st;
    /* "ab" could start "abc": nothing of it may leave until "x" shows it
     * is not a stop. */
    const char *stops[] = {"abc"};
    hp_textstream *ts = hp_textstream_new(stops, 1);
    const char *o;
    size_t n;
    assert_false(hp_textstream_push(ts, "za", 2, &o, &n));
    assert_int_equal(n, 1);
    assert_memory_equal(o, "z", 1);
    assert_false(hp_textstream_push(ts, "b", 1, &o, &n));
    assert_int_equal(n, 0);
    assert_false(hp_textstream_push(ts, "x", 1, &o, &n));
    assert_int_equal(n, 3);
    assert_memory_equal(o, "abx", 3);
    /* Held prefix released at finish. */
    assert_false(hp_textstream_push(ts, "ab", 2, &o, &n));
    assert_int_equal(n, 0);
    hp_textstream_finish(ts, &o, &n);
    assert_int_equal(n, 2);
    assert_memory_equal(o, "ab", 2);
    hp_textstream_free(ts);
}

static void textstream_overlapping_stop_prefixes(void **st)
{
    (void)st;
    acc a;
    /* "ab" vs "abc": "ab" completes first and wins. */
    const char *s1[] = {"abc", "ab"};
    const char *p1[] = {"xa", "b", "c", NULL};
    run(s1, 2, p1, &a);
    assert_true(a.stopped);
    assert_out(&a, "x");
    /* "aab" inside "aaab": the stop begins one byte into the held run. */
    const char *s2[] = {"aab"};
    const char *p2[] = {"a", "a", "a", "b", "c", NULL};
    run(s2, 1, p2, &a);
    assert_true(a.stopped);
    assert_out(&a, "a");
    const char *p3[] = {"aaab", NULL};
    run(s2, 1, p3, &a);
    assert_out(&a, "a");
    /* Longer stop completing first wins over a shorter one starting
     * later in the same piece. */
    const char *s3[] = {"bcd", "xy"};
    const char *p4[] = {"abcdxy", NULL};
    run(s3, 2, p4, &a);
    assert_out(&a, "a");
    /* Empty and NULL stops are ignored. */
    const char *s4[] = {"", NULL, "Z"};
    const char *p5[] = {"abZc", NULL};
    run(s4, 3, p5, &a);
    assert_true(a.stopped);
    assert_out(&a, "ab");
}

static void textstream_push_after_stop_is_empty(void **st)
{
    (void)st;
    const char *stops[] = {"."};
    hp_textstream *ts = hp_textstream_new(stops, 1);
    const char *o;
    size_t n;
    assert_true(hp_textstream_push(ts, "a.b", 3, &o, &n));
    assert_int_equal(n, 1);
    assert_true(hp_textstream_push(ts, "c", 1, &o, &n));
    assert_int_equal(n, 0);
    hp_textstream_finish(ts, &o, &n);
    assert_int_equal(n, 0);
    hp_textstream_free(ts);
}

static void textstream_utf8_split_over_tokens(void **st)
{
    (void)st;
    /* U+20AC (3 bytes) and U+1F600 (4 bytes) split byte by byte: no delta
     * carries a replacement character. */
    const char *p[] = {"\xE2", "\x82", "\xAC", "\xF0", "\x9F\x98", "\x80",
                       "!", NULL};
    acc a;
    run(NULL, 0, p, &a);
    assert_out(&a, "\xE2\x82\xAC\xF0\x9F\x98\x80!");
    assert_null(memmem(a.buf, a.len, "\xEF\xBF\xBD", 3));
    /* Same with a stop string present whose prefix is held meanwhile. */
    const char *stops[] = {"\xF0\x9F\x98\x81"}; /* U+1F601 */
    run(stops, 1, p, &a);
    assert_false(a.stopped);
    assert_out(&a, "\xE2\x82\xAC\xF0\x9F\x98\x80!");
    const char *p2[] = {"x\xF0", "\x9F", "\x98", "\x81", "y", NULL};
    run(stops, 1, p2, &a);
    assert_true(a.stopped);
    assert_out(&a, "x");
}

static void textstream_invalid_bytes_become_fffd(void **st)
{
    (void)st;
    acc a;
    const char *p[] = {"a\xFF", "b", "\xC3", NULL}; /* bad byte; cut tail */
    run(NULL, 0, p, &a);
    assert_out(&a, "a\xEF\xBF\xBD" "b\xEF\xBF\xBD");
    /* A lead byte followed by ASCII is invalid once the ASCII arrives. */
    const char *p2[] = {"\xE2", "A", NULL};
    run(NULL, 0, p2, &a);
    assert_out(&a, "\xEF\xBF\xBD" "A");
    /* Text cut short by a stop: the dangling lead byte is repaired. */
    const char *stops[] = {"END"};
    const char *p3[] = {"\xE2\x82", "END", NULL};
    run(stops, 1, p3, &a);
    assert_true(a.stopped);
    assert_out(&a, "\xEF\xBF\xBD");
}

/* ---- property: any split gives the one-shot result ------------------- */

static uint64_t rs = 0x5EED;
static uint32_t rnd(uint32_t m)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (uint32_t)(rs % m);
}

/* Random text drawn from an alphabet that makes stop hits, near misses,
 * multi-byte characters and invalid bytes all common. */
static size_t rand_text(char *t, size_t max)
{
    static const char *atoms[] = {
        "a", "b", "c", "ab", " ", "\n", "\xC3\xA9", "\xE2\x82\xAC",
        "\xF0\x9F\x98\x80", "\xFF", "\xE2\x82", "\x80", "\xED\xA0\x80",
        "\xF4\x90\x80\x80", "<", "/s>", "</"};
    size_t n = 0;
    size_t want = rnd((uint32_t)max / 2);
    while (n < want) {
        const char *x = atoms[rnd(sizeof(atoms) / sizeof(atoms[0]))];
        size_t l = strlen(x);
        if (n + l > max)
            break;
        memcpy(t + n, x, l);
        n += l;
    }
    return n;
}

static void stream(const char *const *stops, int n_stop, const char *t,
                   size_t n, const size_t *cuts, int n_cuts, acc *a)
{
    memset(a, 0, sizeof(*a));
    hp_textstream *ts = hp_textstream_new(stops, n_stop);
    assert_non_null(ts);
    const char *o;
    size_t ol;
    size_t prev = 0;
    for (int i = 0; i <= n_cuts && !a->stopped; i++) {
        size_t end = i < n_cuts ? cuts[i] : n;
        a->stopped = hp_textstream_push(ts, t + prev, end - prev, &o, &ol);
        take(a, o, ol);
        prev = end;
    }
    if (!a->stopped) {
        hp_textstream_finish(ts, &o, &ol);
        take(a, o, ol);
    }
    hp_textstream_free(ts);
}

static void textstream_random_splits_equal_one_shot(void **st)
{
    (void)st;
    static const char *stopsets[][3] = {
        {"</s>", NULL, NULL},
        {"ab", "abc", NULL},
        {"aab", "\xE2\x82\xAC" "a", "b c"},
        {"\xF0\x9F\x98\x80\xF0\x9F\x98\x80", "\n\n", NULL},
    };
    char t[256];
    int n_hits = 0;
    for (int iter = 0; iter < 4000; iter++) {
        size_t n = rand_text(t, sizeof(t));
        int set = (int)rnd(5); /* 4 = no stops */
        int n_stop = 0;
        const char *const *stops = NULL;
        if (set < 4) {
            stops = stopsets[set];
            while (n_stop < 3 && stopsets[set][n_stop])
                n_stop++;
        }
        acc one, many;
        stream(stops, n_stop, t, n, NULL, 0, &one);
        /* The one-shot text is the sanitized text before the first stop. */
        size_t cuts[64];
        int n_cuts = 0;
        size_t pos = 0;
        while (n_cuts < 64 && n > 0) {
            pos += 1 + rnd(4);
            if (pos >= n)
                break;
            cuts[n_cuts++] = pos;
        }
        stream(stops, n_stop, t, n, cuts, n_cuts, &many);
        assert_int_equal(one.stopped, many.stopped);
        assert_int_equal(one.len, many.len);
        assert_memory_equal(one.buf, many.buf, one.len);
        /* Reference: the output is sanitize(text up to the first stop to
         * complete, ties to the longest), found by brute force. */
        size_t cut = n;
        bool hit = false;
        for (size_t e = 1; e <= n && !hit; e++) {
            for (int k = 0; k < n_stop; k++) {
                size_t sl = strlen(stops[k]);
                if (sl == 0 || sl > e || memcmp(t + e - sl, stops[k], sl))
                    continue;
                if (!hit || e - sl < cut)
                    cut = e - sl;
                hit = true;
            }
        }
        assert_int_equal(one.stopped, hit);
        char want[768];
        size_t wl = hp_utf8_sanitize(t, cut, want);
        assert_int_equal(wl, one.len);
        assert_memory_equal(want, one.buf, wl);
        n_hits += hit;
    }
    /* The alphabet must make stops common, or the test proves little. */
    assert_true(n_hits > 1000);
}

static void textstream_bad_arguments(void **st)
{
    (void)st;
    const char *o = NULL;
    size_t n = 99;
    assert_true(hp_textstream_push(NULL, "x", 1, &o, &n));
    assert_int_equal(n, 0);
    hp_textstream_finish(NULL, &o, &n);
    assert_int_equal(n, 0);
    hp_textstream *ts = hp_textstream_new(NULL, 3);
    assert_non_null(ts);
    assert_false(hp_textstream_push(ts, NULL, 5, &o, &n));
    assert_int_equal(n, 0);
    assert_false(hp_textstream_push(ts, "", 0, &o, &n));
    assert_int_equal(n, 0);
    hp_textstream_free(ts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(textstream_no_stops_passes_through),
        cmocka_unit_test(textstream_stop_across_tokens),
        cmocka_unit_test(textstream_stop_at_very_start),
        cmocka_unit_test(textstream_stop_inside_one_token),
        cmocka_unit_test(textstream_prefix_never_released_early),
        cmocka_unit_test(textstream_overlapping_stop_prefixes),
        cmocka_unit_test(textstream_push_after_stop_is_empty),
        cmocka_unit_test(textstream_utf8_split_over_tokens),
        cmocka_unit_test(textstream_invalid_bytes_become_fffd),
        cmocka_unit_test(textstream_random_splits_equal_one_shot),
        cmocka_unit_test(textstream_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
