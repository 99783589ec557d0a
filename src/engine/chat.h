/* chat.h: builds a prompt string from chat messages.
 *
 * Recognises the common chat templates by their markers (ChatML, Llama 2,
 * Llama 3, Mistral [INST], Zephyr, Phi-3, Gemma) in the model's
 * tokenizer.chat_template and renders them in C. Anything else uses the
 * documented fallback (see docs/API.md):
 *     "<role>: <content>\n" per message, then "assistant:" when a
 *     generation prompt is asked for.
 * Included by server/ and cli/. */
#ifndef HP_CHAT_H
#define HP_CHAT_H

#include <stdbool.h>
#include <stddef.h>

typedef struct hp_chat_msg {
    const char *role;    /* borrows: "system", "user", "assistant", ... */
    const char *content; /* borrows */
} hp_chat_msg;

typedef enum hp_chat_format {
    HP_CHAT_FALLBACK = 0,
    HP_CHAT_CHATML,
    HP_CHAT_LLAMA2,
    HP_CHAT_LLAMA3,
    HP_CHAT_MISTRAL,
    HP_CHAT_ZEPHYR,
    HP_CHAT_PHI3,
    HP_CHAT_GEMMA
} hp_chat_format;

/* Detect the format of a Jinja template string (NULL -> FALLBACK). */
hp_chat_format hp_chat_detect(const char *tmpl);
const char *hp_chat_format_name(hp_chat_format f);

/* Render msgs into a newly malloc'd NUL-terminated string (caller frees).
 * bos/eos are the vocabulary's BOS/EOS texts (may be NULL) for formats
 * that write them literally. NULL on out-of-memory. The result is then
 * tokenized with parse_special = true and without adding another BOS when
 * it already starts with one. */
char *hp_chat_render(hp_chat_format f, const hp_chat_msg *msgs, int n,
                     bool add_generation_prompt, const char *bos,
                     const char *eos);

/* ---- appended: Jinja chat templates (engine/jinja.h) ----------------------
 * Models with a tokenizer.chat_template are rendered by the Jinja engine,
 * exactly as Hugging Face does; the hand-written formats above remain for
 * templates the engine cannot parse, and the fallback for models with no
 * template. */

#include <jansson.h>

#include "engine/jinja.h"
#include "util/err.h"

/* Render t for a chat request. messages: the request's JSON array as sent
 * (content a string, null or a list of parts; tool_calls; tool messages).
 * A content list made only of text parts is joined with "\n" into one
 * string unless the template reads parts itself
 * (hp_jinja_wants_content_parts). tools: JSON array or NULL (the template
 * sees none). bos/eos: token texts, or NULL to leave bos_token/eos_token
 * undefined. kwargs: extra variables (a JSON object) or NULL; they cannot
 * replace the variables above. Errors as hp_jinja_render. */
hp_err hp_chat_render_jinja(const hp_jinja *t, const json_t *messages,
                            const json_t *tools, bool add_generation_prompt,
                            const char *bos, const char *eos,
                            const json_t *kwargs, hp_jinja_out *out,
                            hp_errbuf *eb);

/* hp_chat_render for a template string: Jinja when tmpl parses, else the
 * detected hand-written format (hp_chat_detect). Returns a malloc'd string
 * (caller frees), or NULL with eb filled (the template raised, or OOM). */
char *hp_chat_render_template(const char *tmpl, const hp_chat_msg *msgs,
                              int n, bool add_generation_prompt,
                              const char *bos, const char *eos,
                              hp_errbuf *eb);

#endif
