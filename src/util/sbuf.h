/* sbuf.h: a growable, NUL-terminated text buffer for building output such
 * as the Prometheus exposition. Out of memory is sticky: later appends do
 * nothing and hp_sbuf_take reports it once, so callers check one place. */
#ifndef HP_SBUF_H
#define HP_SBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct hp_sbuf {
    char *p;    /* owns; NULL until the first append */
    size_t len; /* bytes written, without the NUL */
    size_t cap;
    bool oom;
} hp_sbuf;

/* Append printf-style text. */
void hp_sbuf_printf(hp_sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The text (malloc'd, caller frees; "" when nothing was appended), or NULL
 * if any append ran out of memory. Leaves b empty. */
char *hp_sbuf_take(hp_sbuf *b);

#endif
