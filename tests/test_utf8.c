/* test_utf8.c: the spec of util/utf8.c.
 *
 * Validity follows the Unicode well-formed byte sequence table; repair puts
 * one U+FFFD per maximal subpart (Unicode ch. 3 "U+FFFD substitution of
 * maximal subparts", the W3C/WHATWG decoder behaviour); hold-back keeps only
 * a tail that is valid so far but incomplete. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "util/utf8.h"

#define FFFD "\xEF\xBF\xBD"

static bool valid(const char *s) { return hp_utf8_valid(s, strlen(s)); }

/* Sanitize s[0..n) and compare with the expected C string. */
static void check_sanitize(const char *s, size_t n, const char *want)
{
    char out[256];
    assert_true(n * 3 <= sizeof out);
    size_t w = hp_utf8_sanitize(s, n, out);
    if (w != strlen(want) || memcmp(out, want, w) != 0) {
        fprintf(stderr, "sanitize mismatch: got %zu bytes, want %zu\n", w,
                strlen(want));
        fail();
    }
    assert_true(hp_utf8_valid(out, w)); /* repaired text is always valid */
}
#define SANITIZE(lit, want) check_sanitize(lit, sizeof lit - 1, want)

static size_t prefix(const char *lit, size_t n)
{
    return hp_utf8_complete_prefix(lit, n);
}
#define PREFIX(lit) prefix(lit, sizeof lit - 1)

/* utf8-1.x: every well-formed length and the boundary code points. */
static void utf8_valid_accepts_boundaries(void **state)
{
    (void)state;
    assert_true(hp_utf8_valid("", 0));
    assert_true(valid("plain ascii"));
    assert_true(valid("\x7F"));                 /* U+007F */
    assert_true(valid("\xC2\x80"));             /* U+0080 */
    assert_true(valid("\xDF\xBF"));             /* U+07FF */
    assert_true(valid("\xE0\xA0\x80"));         /* U+0800 */
    assert_true(valid("\xED\x9F\xBF"));         /* U+D7FF */
    assert_true(valid("\xEE\x80\x80"));         /* U+E000 */
    assert_true(valid("\xEF\xBF\xBF"));         /* U+FFFF */
    assert_true(valid("\xF0\x90\x80\x80"));     /* U+10000 */
    assert_true(valid("\xF4\x8F\xBF\xBF"));     /* U+10FFFF */
    assert_true(valid("F\xC3\xBChrer \xE2\x96\x81 \xF0\x9F\x98\x80"));
    assert_true(hp_utf8_valid("a\0b", 3)); /* NUL is a character */
}

/* utf8-2.x: overlongs, surrogates, > U+10FFFF, stray and truncated. */
static void utf8_valid_rejects_ill_formed(void **state)
{
    (void)state;
    assert_false(valid("\x80"));                 /* stray continuation */
    assert_false(valid("a\xBF"));
    assert_false(valid("\xC0\x80"));             /* overlong NUL */
    assert_false(valid("\xC1\xBF"));             /* overlong U+007F */
    assert_false(valid("\xE0\x80\x80"));         /* overlong 3-byte */
    assert_false(valid("\xE0\x9F\xBF"));
    assert_false(valid("\xF0\x80\x80\x80"));     /* overlong 4-byte */
    assert_false(valid("\xF0\x8F\xBF\xBF"));
    assert_false(valid("\xED\xA0\x80"));         /* U+D800 surrogate */
    assert_false(valid("\xED\xBF\xBF"));         /* U+DFFF surrogate */
    assert_false(valid("\xF4\x90\x80\x80"));     /* U+110000 */
    assert_false(valid("\xF5\x80\x80\x80"));
    assert_false(valid("\xFE"));
    assert_false(valid("\xFF"));
    assert_false(valid("\xE2\x82"));             /* truncated at end */
    assert_false(valid("\xE2\x82" "A"));         /* truncated in middle */
    assert_false(valid("\xF0\x9F\x98"));
}

/* utf8-3.x: valid text is copied unchanged. */
static void utf8_sanitize_keeps_valid_text(void **state)
{
    (void)state;
    SANITIZE("", "");
    SANITIZE("hello", "hello");
    SANITIZE("\xE2\x96\x81x\xF0\x9F\x98\x80", "\xE2\x96\x81x\xF0\x9F\x98\x80");
    SANITIZE("\xF4\x8F\xBF\xBF", "\xF4\x8F\xBF\xBF");
}

/* utf8-4.1: the Unicode Standard's own example (table 3-8):
 * 61 F1 80 80 E1 80 C2 62 80 63 80 BF 64 -> a FFFD FFFD FFFD b FFFD c FFFD
 * FFFD d. */
static void utf8_sanitize_unicode_example(void **state)
{
    (void)state;
    SANITIZE("\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64",
             "a" FFFD FFFD FFFD "b" FFFD "c" FFFD FFFD "d");
}

/* utf8-4.2: one U+FFFD per maximal subpart. */
static void utf8_sanitize_maximal_subparts(void **state)
{
    (void)state;
    SANITIZE("\x80", FFFD);
    SANITIZE("\x80\x80\x80", FFFD FFFD FFFD); /* each stray byte */
    SANITIZE("\xC0\x80", FFFD FFFD);          /* C0 is never a lead */
    SANITIZE("\xC1\xBF", FFFD FFFD);
    /* E0 80: 80 cannot follow E0, so E0 alone is the subpart. */
    SANITIZE("\xE0\x80\x80", FFFD FFFD FFFD);
    SANITIZE("\xED\xA0\x80", FFFD FFFD FFFD); /* surrogate */
    SANITIZE("\xF0\x80\x80\x80", FFFD FFFD FFFD FFFD);
    SANITIZE("\xF4\x90\x80\x80", FFFD FFFD FFFD FFFD); /* > U+10FFFF */
    SANITIZE("\xF5\x80", FFFD FFFD);
    SANITIZE("\xFF" "a", FFFD "a");
    /* A valid prefix cut short is one subpart. */
    SANITIZE("\xE2\x82" "A", FFFD "A");
    SANITIZE("\xF0\x9F\x98" "A", FFFD "A");
    SANITIZE("\xF0\x9F" "\xE2\x82\xAC", FFFD "\xE2\x82\xAC");
    SANITIZE("\xC3" "\xC3\xA9", FFFD "\xC3\xA9");
}

/* utf8-4.3: a truncated tail is final text here, so it is replaced. */
static void utf8_sanitize_truncated_tail(void **state)
{
    (void)state;
    SANITIZE("ab\xE2\x82", "ab" FFFD);
    SANITIZE("ab\xF0\x9F\x98", "ab" FFFD);
    SANITIZE("ab\xC3", "ab" FFFD);
}

/* utf8-4.4: the worst case needs exactly 3 bytes per input byte. */
static void utf8_sanitize_worst_case_fits(void **state)
{
    (void)state;
    char in[64], out[3 * 64];
    memset(in, 0x80, sizeof in);
    assert_int_equal(hp_utf8_sanitize(in, sizeof in, out), 3 * sizeof in);
    assert_true(hp_utf8_valid(out, sizeof out));
}

/* utf8-5.x: hold back only an incomplete but so far valid tail. */
static void utf8_prefix_holds_incomplete_tail(void **state)
{
    (void)state;
    assert_int_equal(PREFIX(""), 0);
    assert_int_equal(PREFIX("abc"), 3);
    assert_int_equal(PREFIX("a\xC3"), 1);
    assert_int_equal(PREFIX("a\xE2"), 1);
    assert_int_equal(PREFIX("a\xE2\x82"), 1);
    assert_int_equal(PREFIX("a\xF0"), 1);
    assert_int_equal(PREFIX("a\xF0\x9F"), 1);
    assert_int_equal(PREFIX("a\xF0\x9F\x98"), 1); /* 3 bytes held */
    assert_int_equal(PREFIX("\xF0\x9F\x98"), 0);
    assert_int_equal(PREFIX("\xE2\x82\xAC\xE2"), 3);
}

static void utf8_prefix_passes_complete_text(void **state)
{
    (void)state;
    assert_int_equal(PREFIX("\xC3\xA9"), 2);
    assert_int_equal(PREFIX("a\xE2\x82\xAC"), 4);
    assert_int_equal(PREFIX("a\xF0\x9F\x98\x80"), 5);
    assert_int_equal(PREFIX("\xF4\x8F\xBF\xBF"), 4);
}

/* utf8-5.3: bytes that can never complete are released (sanitize will
 * replace them), so a stream never stalls on garbage. */
static void utf8_prefix_releases_invalid_tail(void **state)
{
    (void)state;
    assert_int_equal(PREFIX("a\x80"), 2);          /* stray */
    assert_int_equal(PREFIX("a\xC0"), 2);          /* never a lead */
    assert_int_equal(PREFIX("a\xF5"), 2);
    assert_int_equal(PREFIX("a\xE0\x80"), 3);      /* overlong so far */
    assert_int_equal(PREFIX("a\xED\xA0"), 3);      /* surrogate so far */
    assert_int_equal(PREFIX("a\xF4\x90"), 3);      /* > U+10FFFF so far */
    assert_int_equal(PREFIX("a\xF0\x9F\x98\x80\x80"), 6);
    assert_int_equal(PREFIX("a\xE2" "b"), 3);      /* already broken */
    assert_int_equal(PREFIX("\x80\x80\x80\x80"), 4);
}

/* utf8-6.1: feeding an emoji byte by byte releases it only when whole. */
static void utf8_prefix_streams_bytewise(void **state)
{
    (void)state;
    const char *s = "x\xF0\x9F\x98\x80y";
    size_t want[] = {1, 1, 1, 1, 5, 6};
    for (size_t n = 1; n <= 6; n++)
        assert_int_equal(hp_utf8_complete_prefix(s, n), want[n - 1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(utf8_valid_accepts_boundaries),
        cmocka_unit_test(utf8_valid_rejects_ill_formed),
        cmocka_unit_test(utf8_sanitize_keeps_valid_text),
        cmocka_unit_test(utf8_sanitize_unicode_example),
        cmocka_unit_test(utf8_sanitize_maximal_subparts),
        cmocka_unit_test(utf8_sanitize_truncated_tail),
        cmocka_unit_test(utf8_sanitize_worst_case_fits),
        cmocka_unit_test(utf8_prefix_holds_incomplete_tail),
        cmocka_unit_test(utf8_prefix_passes_complete_text),
        cmocka_unit_test(utf8_prefix_releases_invalid_tail),
        cmocka_unit_test(utf8_prefix_streams_bytewise),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
