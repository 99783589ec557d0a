/* textstream.c: owns the hold-back buffer between decoded token bytes and
 * the text deltas a client sees (hp_textstream_*).
 *
 * The buffer holds only bytes not yet released. On each push the held
 * bytes plus the new piece are searched for every stop string (a stop may
 * span several tokens and begin inside text held earlier); otherwise the
 * stream releases the longest prefix that (a) leaves held the longest
 * suffix that is still a proper prefix of some stop string and (b) does not
 * end inside an incomplete UTF-8 sequence. Released bytes go through
 * hp_utf8_sanitize. Because a release never cuts an incomplete sequence,
 * sanitizing piece by piece gives exactly the bytes that sanitizing the
 * whole text would: streamed and non-streamed output agree.
 *
 * Which stop wins: the one that completes first in the byte stream (the
 * earliest end), ties going to the earliest start. That is what a
 * token-by-token generator observes, so the result does not depend on how
 * the text was split into tokens. Knows nothing of tokens, JSON or HTTP.
 * Included by nothing; exports textstream.h. */
#include "engine/textstream.h"

#include <stdlib.h>
#include <string.h>

#include "util/utf8.h"

struct hp_textstream {
    char **stop;      /* owns: n_stop NUL-terminated copies, none empty */
    size_t *stop_len;
    int n_stop;
    char *buf;        /* owns: held (unreleased) raw bytes */
    size_t len, cap;
    char *out;        /* owns: this call's released, sanitized bytes */
    size_t out_cap;
    bool stopped;     /* a stop string was seen: everything after is dropped */
};

hp_textstream *hp_textstream_new(const char *const *stops, int n_stop)
{
    hp_textstream *ts = calloc(1, sizeof(*ts));
    if (!ts)
        return NULL;
    if (stops && n_stop > 0) {
        ts->stop = calloc((size_t)n_stop, sizeof(*ts->stop));
        ts->stop_len = calloc((size_t)n_stop, sizeof(*ts->stop_len));
        if (!ts->stop || !ts->stop_len)
            goto fail;
        for (int i = 0; i < n_stop; i++) {
            if (!stops[i] || !stops[i][0])
                continue; /* empty stops are ignored, as documented */
            size_t l = strlen(stops[i]);
            ts->stop[ts->n_stop] = malloc(l + 1);
            if (!ts->stop[ts->n_stop])
                goto fail;
            memcpy(ts->stop[ts->n_stop], stops[i], l + 1);
            ts->stop_len[ts->n_stop] = l;
            ts->n_stop++;
        }
    }
    return ts;
fail:
    hp_textstream_free(ts);
    return NULL;
}

void hp_textstream_free(hp_textstream *ts)
{
    if (!ts)
        return;
    if (ts->stop)
        for (int i = 0; i < ts->n_stop; i++)
            free(ts->stop[i]);
    free(ts->stop);
    free(ts->stop_len);
    free(ts->buf);
    free(ts->out);
    free(ts);
}

/* Grow *p to hold at least need bytes (doubling). false on OOM. */
static bool reserve(char **p, size_t *cap, size_t need)
{
    if (need <= *cap)
        return true;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    char *q = realloc(*p, c);
    if (!q)
        return false;
    *p = q;
    *cap = c;
    return true;
}

/* Sanitize buf[0..n) into ts->out and drop those bytes from buf. On OOM
 * the bytes are dropped rather than released unsanitized. */
static size_t release(hp_textstream *ts, size_t n)
{
    size_t w = 0;
    if (n == 0)
        return 0;
    if (reserve(&ts->out, &ts->out_cap, 3 * n))
        w = hp_utf8_sanitize(ts->buf, n, ts->out);
    memmove(ts->buf, ts->buf + n, ts->len - n);
    ts->len -= n;
    return w;
}

/* Earliest-completing stop occurrence in buf: its start, or -1. */
static long find_stop(const hp_textstream *ts)
{
    long best = -1;
    size_t best_end = 0;
    for (int i = 0; i < ts->n_stop; i++) {
        size_t sl = ts->stop_len[i];
        if (sl > ts->len)
            continue;
        const char *hit = memmem(ts->buf, ts->len, ts->stop[i], sl);
        if (!hit)
            continue;
        size_t pos = (size_t)(hit - ts->buf);
        size_t end = pos + sl;
        if (best < 0 || end < best_end ||
            (end == best_end && (long)pos < best)) {
            best = (long)pos;
            best_end = end;
        }
    }
    return best;
}

/* Length of the longest suffix of buf that is a proper prefix of some
 * stop string: those bytes might yet become a stop and must stay held. */
static size_t stop_prefix_tail(const hp_textstream *ts)
{
    size_t hold = 0;
    for (int i = 0; i < ts->n_stop; i++) {
        size_t sl = ts->stop_len[i];
        size_t k = sl - 1 < ts->len ? sl - 1 : ts->len;
        for (; k > hold; k--) {
            if (memcmp(ts->buf + ts->len - k, ts->stop[i], k) == 0) {
                hold = k;
                break;
            }
        }
    }
    return hold;
}

bool hp_textstream_push(hp_textstream *ts, const char *piece, size_t n,
                        const char **out, size_t *out_len)
{
    static const char empty[1] = "";
    const char *o = empty;
    size_t olen = 0;
    bool stop = false;
    if (!ts) {
        stop = true;
        goto done;
    }
    if (ts->stopped) {
        stop = true; /* generation should already have ended */
        goto done;
    }
    if (piece && n > 0) {
        if (!reserve(&ts->buf, &ts->cap, ts->len + n))
            goto done; /* OOM: this token's bytes are lost, nothing else */
        memcpy(ts->buf + ts->len, piece, n);
        ts->len += n;
    }
    long at = find_stop(ts);
    if (at >= 0) {
        /* Text before the stop is final, so an incomplete UTF-8 tail there
         * becomes U+FFFD like at finish(). */
        olen = release(ts, (size_t)at);
        ts->len = 0;
        ts->stopped = true;
        stop = true;
    } else {
        size_t keep = ts->len - stop_prefix_tail(ts);
        keep = hp_utf8_complete_prefix(ts->buf, keep);
        olen = release(ts, keep);
    }
    if (olen > 0)
        o = ts->out;
done:
    if (out)
        *out = o;
    if (out_len)
        *out_len = olen;
    return stop;
}

void hp_textstream_finish(hp_textstream *ts, const char **out,
                          size_t *out_len)
{
    static const char empty[1] = "";
    const char *o = empty;
    size_t olen = 0;
    if (ts && !ts->stopped) {
        olen = release(ts, ts->len);
        if (olen > 0)
            o = ts->out;
    }
    if (out)
        *out = o;
    if (out_len)
        *out_len = olen;
}
