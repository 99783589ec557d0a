/* textstream.c: placeholder (real implementation in progress by sampler). */
#include "engine/textstream.h"

#include <stdlib.h>
#include <string.h>

struct hp_textstream {
    char *out;
    size_t cap;
};

hp_textstream *hp_textstream_new(const char *const *stops, int n_stop)
{
    (void)stops;
    (void)n_stop;
    return calloc(1, sizeof(hp_textstream));
}

void hp_textstream_free(hp_textstream *ts)
{
    if (!ts)
        return;
    free(ts->out);
    free(ts);
}

bool hp_textstream_push(hp_textstream *ts, const char *piece, size_t n,
                        const char **out, size_t *out_len)
{
    if (n + 1 > ts->cap) {
        char *p = realloc(ts->out, n + 1);
        if (!p) {
            *out = "";
            *out_len = 0;
            return false;
        }
        ts->out = p;
        ts->cap = n + 1;
    }
    if (n)
        memcpy(ts->out, piece, n);
    *out = ts->out;
    *out_len = n;
    return false;
}

void hp_textstream_finish(hp_textstream *ts, const char **out,
                          size_t *out_len)
{
    (void)ts;
    *out = "";
    *out_len = 0;
}
