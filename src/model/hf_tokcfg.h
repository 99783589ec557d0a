/* hf_tokcfg.h: the few facts hotpath needs from a Hugging Face
 * tokenizer_config.json: the chat template and the bos/eos token strings.
 *
 * The vocabulary itself (tokenizer.json) is not read here. Knows JSON and
 * these key names only. Included by model/, cli/. */
#ifndef HP_HF_TOKCFG_H
#define HP_HF_TOKCFG_H

#include <stddef.h>

#include "util/err.h"

typedef struct hp_hf_tokcfg {
    char *chat_template; /* owns: NULL when none. A list of named templates
                            gives the one named "default" */
    char *bos_token;     /* owns: NULL when absent or null */
    char *eos_token;     /* owns */
    char *unk_token;     /* owns */
    char *pad_token;     /* owns */
    int add_bos_token;   /* 1, 0, or -1 when the key is absent */
    int add_eos_token;   /* likewise */
} hp_hf_tokcfg;

/* Parse tokenizer_config.json text. Token values may be a string, null, or
 * an AddedToken object {"content": ...}; chat_template a string, null, or
 * a list of {"name", "template"}. Any other type is HP_ERR_FORMAT naming
 * fname and the key. Big integers (model_max_length is often 1e30 written
 * as an integer) are tolerated. On success *out is owned by the caller. */
hp_err hp_hf_tokcfg_parse(const char *json, size_t len, const char *fname,
                          hp_hf_tokcfg **out, hp_errbuf *eb);
/* Read path: tokenizer_config.json, or a directory holding it. For a
 * directory without a chat_template in it, a chat_template.jinja (raw
 * text) or chat_template.json ({"chat_template": ...}) beside it is used,
 * as newer transformers save them there. HP_ERR_NOT_FOUND when there is no
 * tokenizer_config.json (callers treat the file as optional). */
hp_err hp_hf_tokcfg_load(const char *path, hp_hf_tokcfg **out,
                         hp_errbuf *eb);
/* Free. Accepts NULL. */
void hp_hf_tokcfg_free(hp_hf_tokcfg *t);

#endif
