/* jinja.h: a Jinja2-subset interpreter for Hugging Face chat templates.
 *
 * Renders a model's tokenizer.chat_template the way transformers does
 * (trim_blocks and lstrip_blocks on), following @huggingface/jinja 0.5.11
 * where Python's jinja2 and it differ (booleans print as "true", tojson
 * keeps non-ASCII text, ...). Templates are parsed once (hp_jinja_parse);
 * every construct the interpreter does not know (a statement, a filter, a
 * test) is refused there with a line and column, so a bad template fails
 * when the model loads, never at request time. Rendering takes a JSON
 * context (jansson) and returns the text as segments marked by origin:
 * strings taken from the request (anything under "messages" except each
 * message's "role", and anything under "tools") are "content" and stay
 * marked through concatenation, trim, split, slicing and join, so the
 * server can tokenize them as plain text and a user cannot inject control
 * tokens. Other filters that rewrite a content string mark the whole result.
 *
 * Thread-safe after parse: one hp_jinja may render on many threads.
 * Knows nothing of tokens, models or HTTP. Included by engine/chat.c,
 * server/ and cli/. */
#ifndef HP_JINJA_H
#define HP_JINJA_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "util/err.h"

typedef struct hp_jinja hp_jinja;

/* One piece of rendered text. content: it came from request data. */
typedef struct hp_jinja_seg {
    const char *text; /* borrows: into hp_jinja_out.buf */
    size_t len;
    bool content;
} hp_jinja_seg;

/* Rendered text: buf holds every segment back to back (NUL-terminated). */
typedef struct hp_jinja_out {
    hp_jinja_seg *segs; /* owns */
    int n_segs;
    char *buf;          /* owns: the joined text */
    size_t len;
} hp_jinja_out;

/* Parse src[0..len). On failure returns HP_ERR_FORMAT (or HP_ERR_NOMEM)
 * with eb holding "chat template: line L, column C: what". */
hp_err hp_jinja_parse(const char *src, size_t len, hp_jinja **out,
                      hp_errbuf *eb);
void hp_jinja_free(hp_jinja *t); /* accepts NULL */

/* Render t with the variables of context (a JSON object: messages, tools,
 * add_generation_prompt, bos_token, eos_token, any other kwargs). JSON
 * numbers with no fraction become integers, as in JavaScript. The global
 * functions raise_exception, namespace, range and strftime_now are always
 * there; strftime_now reads the clock, or $HOTPATH_NOW ("YYYY-MM-DD" or
 * "YYYY-MM-DDTHH:MM") when set, so tests are deterministic.
 * Errors: HP_ERR_INVALID with eb holding the template's own message for
 * raise_exception, or "chat template: line L, column C: what" for a type
 * error; HP_ERR_RANGE when the template runs away (output, depth or step
 * limits); HP_ERR_NOMEM. On failure *out is empty. */
hp_err hp_jinja_render(const hp_jinja *t, const json_t *context,
                       hp_jinja_out *out, hp_errbuf *eb);
void hp_jinja_out_free(hp_jinja_out *o); /* accepts NULL; zeroes *o */

/* The rendered text as one new malloc'd NUL-terminated string (what HF's
 * render returns); *len (may be NULL) gets its length. NULL on OOM. */
char *hp_jinja_out_join(const hp_jinja_out *o, size_t *len);

/* True if the template looks at content parts itself ("text" / "type"
 * keys), so list-valued message content should be passed as is rather
 * than joined into one string. */
bool hp_jinja_wants_content_parts(const hp_jinja *t);

#endif
