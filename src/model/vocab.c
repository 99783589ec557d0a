/* vocab.c: placeholder so the library links; the real tokenizer follows. */
#include "model/vocab.h"

#include <stdlib.h>

struct hp_vocab {
    int32_t n;
};

hp_err hp_vocab_load(const hp_gguf *g, hp_vocab **out, hp_errbuf *eb)
{
    (void)g;
    *out = NULL;
    return hp_errf(eb, HP_ERR_UNSUPPORTED, "vocab: not implemented yet");
}

void hp_vocab_free(hp_vocab *v) { free(v); }
int32_t hp_vocab_size(const hp_vocab *v) { return v ? v->n : 0; }
int32_t hp_vocab_bos(const hp_vocab *v) { (void)v; return -1; }
int32_t hp_vocab_eos(const hp_vocab *v) { (void)v; return -1; }
bool hp_vocab_is_eog(const hp_vocab *v, int32_t id) { (void)v; (void)id; return false; }
bool hp_vocab_add_bos(const hp_vocab *v) { (void)v; return true; }
const char *hp_vocab_text(const hp_vocab *v, int32_t id) { (void)v; (void)id; return NULL; }
int32_t hp_vocab_find(const hp_vocab *v, const char *s, size_t len)
{
    (void)v; (void)s; (void)len;
    return -1;
}

int hp_tokenize(const hp_vocab *v, const char *text, size_t len, bool add_bos,
                bool parse_special, int32_t *out, int cap)
{
    (void)v; (void)text; (void)len; (void)add_bos; (void)parse_special;
    (void)out; (void)cap;
    return 0;
}

size_t hp_token_to_piece(const hp_vocab *v, int32_t id, char *buf, size_t cap)
{
    (void)v; (void)id; (void)buf; (void)cap;
    return 0;
}

size_t hp_detokenize(const hp_vocab *v, const int32_t *ids, int n,
                     bool skip_leading_space, char *buf, size_t cap)
{
    (void)v; (void)ids; (void)n; (void)skip_leading_space;
    if (cap > 0)
        buf[0] = '\0';
    return 0;
}
