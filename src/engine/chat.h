/* chat.h: builds a prompt string from chat messages.
 *
 * Recognises the common chat templates by their markers (ChatML, Llama 2,
 * Llama 3, Mistral [INST], Zephyr, Phi-3, Gemma) in the model's
 * tokenizer.chat_template and renders them in C. Anything else uses the
 * documented fallback (see docs/API.md):
 *     "<role>: <content>\n" per message, then "assistant:" when a
 *     generation prompt is asked for.
 * A full Jinja engine comes later. Included by server/ and cli/. */
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

#endif
