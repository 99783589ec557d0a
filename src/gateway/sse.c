/* sse.c: the incremental server-sent-events parser (see sse.h).
 *
 * Owns the line and data buffers of one hp_sse; knows nothing of HTTP,
 * JSON or what the events mean. Bytes are scanned once: runs of ordinary
 * bytes are copied into the line buffer in bulk, and each line terminator
 * hands the finished line to process_line(). A \r\n pair split across two
 * feeds is handled by last_cr, so any slicing of the same stream yields the
 * same events. No BOM handling: upstream APIs never send one, and a stray
 * BOM only turns the first field into an unknown (ignored) one. */
#include "gateway/sse.h"

#include <stdlib.h>
#include <string.h>

void hp_sse_init(hp_sse *p, hp_sse_cb cb, void *ud)
{
    memset(p, 0, sizeof *p);
    p->cb = cb;
    p->ud = ud;
}

/* Make room for `need` bytes (plus a NUL) in *buf. Doubling keeps appends
 * amortised O(1); the caller has already checked need against the cap. */
static hp_err reserve(char **buf, size_t *cap, size_t need)
{
    if (need + 1 <= *cap)
        return HP_OK;
    size_t ncap = *cap ? *cap : 256;
    while (ncap < need + 1)
        ncap *= 2;
    char *nb = realloc(*buf, ncap);
    if (!nb)
        return HP_ERR_NOMEM;
    *buf = nb;
    *cap = ncap;
    return HP_OK;
}

/* End of an event: report it when it carried data, then reset. */
static hp_err dispatch(hp_sse *p)
{
    hp_err rc = HP_OK;
    if (p->has_data) {
        /* data can be NULL only if no byte was ever reserved, which cannot
         * happen once has_data is set (reserve runs first). */
        p->data[p->data_len] = '\0';
        if (p->cb && p->cb(p->event, p->data, p->data_len, p->ud) != 0)
            rc = HP_ERR_CANCELLED;
    }
    p->data_len = 0;
    p->has_data = false;
    p->event[0] = '\0';
    return rc;
}

/* One complete line (without its terminator). */
static hp_err process_line(hp_sse *p, const char *line, size_t len)
{
    if (len == 0)
        return dispatch(p);
    if (line[0] == ':')
        return HP_OK; /* comment (keep-alives) */

    const char *colon = memchr(line, ':', len);
    size_t flen = colon ? (size_t)(colon - line) : len;
    const char *val = colon ? colon + 1 : line + len;
    size_t vlen = colon ? len - flen - 1 : 0;
    if (vlen > 0 && val[0] == ' ') {
        val++;
        vlen--;
    }

    if (flen == 4 && memcmp(line, "data", 4) == 0) {
        size_t add = vlen + (p->has_data ? 1 : 0);
        if (p->data_len + add > HP_SSE_MAX_EVENT)
            return HP_ERR_FORMAT;
        if (reserve(&p->data, &p->data_cap, p->data_len + add) != HP_OK)
            return HP_ERR_NOMEM;
        if (p->has_data)
            p->data[p->data_len++] = '\n';
        memcpy(p->data + p->data_len, val, vlen);
        p->data_len += vlen;
        p->has_data = true;
    } else if (flen == 5 && memcmp(line, "event", 5) == 0) {
        /* Event names are short identifiers; a longer one is truncated
         * rather than failing the stream (it matches nothing we know). */
        size_t n = vlen < sizeof p->event - 1 ? vlen : sizeof p->event - 1;
        memcpy(p->event, val, n);
        p->event[n] = '\0';
    }
    /* id, retry and unknown fields: ignored (no reconnection here). */
    return HP_OK;
}

hp_err hp_sse_feed(hp_sse *p, const char *buf, size_t len)
{
    size_t i = 0;
    while (i < len) {
        char c = buf[i];
        if (p->last_cr) {
            p->last_cr = false;
            if (c == '\n') {
                i++;
                continue;
            }
        }
        if (c == '\r' || c == '\n') {
            p->last_cr = (c == '\r');
            i++;
            hp_err rc = process_line(p, p->line ? p->line : "", p->line_len);
            p->line_len = 0;
            if (rc != HP_OK)
                return rc;
            continue;
        }
        /* A run of ordinary bytes up to the next terminator or the end. */
        size_t j = i;
        while (j < len && buf[j] != '\r' && buf[j] != '\n')
            j++;
        size_t run = j - i;
        if (p->line_len + run > HP_SSE_MAX_EVENT)
            return HP_ERR_FORMAT;
        if (reserve(&p->line, &p->line_cap, p->line_len + run) != HP_OK)
            return HP_ERR_NOMEM;
        memcpy(p->line + p->line_len, buf + i, run);
        p->line_len += run;
        i = j;
    }
    return HP_OK;
}

bool hp_sse_pending(const hp_sse *p)
{
    return p->line_len > 0 || p->has_data || p->event[0] != '\0';
}

void hp_sse_free(hp_sse *p)
{
    if (!p)
        return;
    free(p->line);
    free(p->data);
    p->line = p->data = NULL;
    p->line_len = p->line_cap = p->data_len = p->data_cap = 0;
    p->has_data = false;
    p->event[0] = '\0';
}
