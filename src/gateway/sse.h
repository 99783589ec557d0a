/* sse.h: an incremental server-sent-events parser.
 *
 * Feeds arbitrary byte slices (as they come off the network) and calls back
 * once per complete event with its `event:` name and joined `data:` lines,
 * per the WHATWG EventSource rules: lines end in \n, \r\n or \r; a blank
 * line ends an event; lines starting with ':' are comments; several data
 * lines join with \n; a field without ':' has an empty value; one leading
 * space after ':' is dropped. Events without data are not reported.
 * Used for OpenAI and Anthropic upstream streams. Owns only its buffers. */
#ifndef HP_GATEWAY_SSE_H
#define HP_GATEWAY_SSE_H

#include <stdbool.h>
#include <stddef.h>

#include "util/err.h"

/* Longest line or event accepted; beyond it the stream is malformed. */
#define HP_SSE_MAX_EVENT (4u << 20)

/* One complete event. event is "" when the event had no `event:` field;
 * data is NUL-terminated (data_len excludes the NUL). Both are only valid
 * during the call. Return 0 to go on, non-zero to stop: hp_sse_feed then
 * returns HP_ERR_CANCELLED and ignores the rest of its input. */
typedef int (*hp_sse_cb)(const char *event, const char *data,
                         size_t data_len, void *ud);

typedef struct hp_sse {
    hp_sse_cb cb;
    void *ud;
    char *line;  /* owns: the current, unterminated line */
    size_t line_len, line_cap;
    char *data;  /* owns: data lines of the current event */
    size_t data_len, data_cap;
    char event[64];
    bool has_data;
    bool last_cr; /* previous byte was \r (a following \n is skipped) */
} hp_sse;

/* Set up a parser (no allocation yet). */
void hp_sse_init(hp_sse *p, hp_sse_cb cb, void *ud);

/* Parse len bytes. HP_OK; HP_ERR_FORMAT when a line or event exceeds
 * HP_SSE_MAX_EVENT; HP_ERR_NOMEM; HP_ERR_CANCELLED when the callback asked
 * to stop. After an error the parser must not be fed again. */
hp_err hp_sse_feed(hp_sse *p, const char *buf, size_t len);

/* True when bytes of an unfinished line or event are buffered: at the end
 * of a stream this means it was cut mid-event. */
bool hp_sse_pending(const hp_sse *p);

/* Release the buffers (the struct itself is the caller's). */
void hp_sse_free(hp_sse *p);

#endif
