/* textstream.h: turns sampled tokens into safe text deltas for one choice.
 *
 * Holds back (1) an incomplete UTF-8 sequence until it completes, and (2)
 * any tail that could still be the start of a stop string, until it is
 * known not to be one. When a stop string appears, the text ends just
 * before it. Invalid UTF-8 becomes U+FFFD as it is released, so every delta
 * is valid UTF-8 and the concatenated deltas of a stream equal the
 * non-streamed text byte for byte (the non-streamed path is the same
 * stream, concatenated). Included by engine/. */
#ifndef HP_TEXTSTREAM_H
#define HP_TEXTSTREAM_H

#include <stdbool.h>
#include <stddef.h>

#define HP_MAX_STOP 4

typedef struct hp_textstream hp_textstream;

/* stops[0..n_stop) are borrowed only during the call (copied). Empty stop
 * strings are ignored. NULL on out-of-memory. */
hp_textstream *hp_textstream_new(const char *const *stops, int n_stop);
void hp_textstream_free(hp_textstream *ts); /* accepts NULL */

/* Feed the bytes of one token. Appends releasable text to *out (a growing
 * buffer the stream owns; valid until the next call) and sets *out_len.
 * Returns true when a stop string was found: generation must end, and the
 * released text never includes the stop string. */
bool hp_textstream_push(hp_textstream *ts, const char *piece, size_t n,
                        const char **out, size_t *out_len);

/* End of generation (EOS or length): release everything held back (partial
 * stop prefixes, and an incomplete UTF-8 tail as U+FFFD). */
void hp_textstream_finish(hp_textstream *ts, const char **out,
                          size_t *out_len);

#endif
