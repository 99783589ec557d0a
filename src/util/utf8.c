/* utf8.c: UTF-8 validation, hold-back of incomplete tails, and U+FFFD
 * repair, for streaming tokenizer output as text.
 *
 * Owns the one decoder all three helpers share (scan_seq). It follows the
 * well-formed byte sequence table of the Unicode Standard (ch. 3, table
 * 3-7), so overlongs, surrogates (ED A0..BF) and code points above U+10FFFF
 * are invalid, and repair replaces each "maximal subpart" of an ill-formed
 * sequence with one U+FFFD, as the W3C/WHATWG encoders do. Knows nothing of
 * tokens or JSON. Included by engine/ and server/ through util/utf8.h. */
#include "util/utf8.h"

#include <string.h>

enum scan_result {
    SEQ_OK,        /* a complete, well-formed sequence */
    SEQ_INVALID,   /* ill-formed: *len is its maximal subpart (>= 1) */
    SEQ_TRUNCATED  /* well-formed so far, but s ends before it completes */
};

/* Decode the sequence starting at s[0] (n >= 1). *len receives the bytes
 * consumed: the whole sequence, the maximal subpart of an ill-formed one,
 * or the valid prefix of a truncated one. */
static enum scan_result scan_seq(const unsigned char *s, size_t n, size_t *len)
{
    unsigned char c = s[0];
    size_t need;                  /* continuation bytes required */
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the 2nd byte */

    if (c < 0x80) {
        *len = 1;
        return SEQ_OK;
    }
    if (c < 0xC2 || c > 0xF4) { /* stray continuation, overlong lead, >F4 */
        *len = 1;
        return SEQ_INVALID;
    }
    if (c < 0xE0) {
        need = 1;
    } else if (c < 0xF0) {
        need = 2;
        if (c == 0xE0)
            lo = 0xA0; /* below is overlong */
        else if (c == 0xED)
            hi = 0x9F; /* above is a UTF-16 surrogate */
    } else {
        need = 3;
        if (c == 0xF0)
            lo = 0x90; /* below is overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* above is past U+10FFFF */
    }
    for (size_t i = 1; i <= need; i++) {
        if (i >= n) {
            *len = i;
            return SEQ_TRUNCATED;
        }
        unsigned char b = s[i];
        unsigned char l = i == 1 ? lo : 0x80;
        unsigned char h = i == 1 ? hi : 0xBF;
        if (b < l || b > h) {
            *len = i; /* the lead and the valid continuations so far */
            return SEQ_INVALID;
        }
    }
    *len = need + 1;
    return SEQ_OK;
}

size_t hp_utf8_complete_prefix(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    /* Only the last sequence can be incomplete, and a sequence is at most 4
     * bytes, so look back at most 3 bytes for its lead byte. */
    for (size_t k = 1; k <= 3 && k <= n; k++) {
        size_t p = n - k;
        if ((u[p] & 0xC0) == 0x80)
            continue; /* continuation byte: the lead is further back */
        size_t len;
        if (scan_seq(u + p, k, &len) == SEQ_TRUNCATED)
            return p;
        return n;
    }
    return n;
}

size_t hp_utf8_sanitize(const char *s, size_t n, char *dst)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, w = 0;
    while (i < n) {
        size_t len;
        if (scan_seq(u + i, n - i, &len) == SEQ_OK) {
            memcpy(dst + w, s + i, len);
            w += len;
        } else {
            /* One U+FFFD per maximal subpart; a truncated tail is final
             * here, so it is one ill-formed subpart too. */
            memcpy(dst + w, "\xEF\xBF\xBD", 3);
            w += 3;
        }
        i += len;
    }
    return w;
}

bool hp_utf8_valid(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        size_t len;
        if (scan_seq(u + i, n - i, &len) != SEQ_OK)
            return false;
        i += len;
    }
    return true;
}
