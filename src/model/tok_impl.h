/* tok_impl.h: internal to the tokenizer files (vocab.c, tok_bpe.c,
 * tok_wpiece.c, tok_pretok.c, tok_hf.c); no other file includes it.
 *
 * Holds the layout of hp_vocab, so that every encoder reads the same token
 * table, and the hp_tok__ calls the files share: the text -> id hash, the
 * output cursor, the vocabulary builder used by both loaders (GGUF in
 * vocab.c, Hugging Face tokenizer.json in tok_hf.c), and the entry points
 * of each encoder family. Knows nothing of weights, HTTP or sampling. */
#ifndef HP_TOK_IMPL_H
#define HP_TOK_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/gguf.h"
#include "model/vocab.h"
#include "util/err.h"

/* At most this many end-of-generation ids are remembered. */
#define HP_TOK__MAX_EOG 8
/* SentencePiece's escaped space, U+2581 "▁" (also WordPiece word starts in
 * GGUF files and Metaspace BPE vocabularies). */
#define HP_TOK__WS "\xE2\x96\x81"

/* Encoder family (tokenizer.ggml.model). */
typedef enum hp_tok__kind {
    HP_TOK__SPM = 0, /* "llama": SentencePiece BPE over scores */
    HP_TOK__BPE,     /* "gpt2": merges by rank, pre-tokenizer regexes */
    HP_TOK__WPM      /* "bert": WordPiece, longest match first */
} hp_tok__kind;

typedef struct hp_tok__pretok hp_tok__pretok; /* tok_pretok.c */

/* Merge ranks keyed by the pair of token ids (open addressing). */
typedef struct hp_tok__merges {
    uint64_t *keys;   /* owns: (left << 32 | right) + 1, 0 = empty */
    int32_t *rank;    /* owns: index in the merges list (lower first) */
    int32_t *result;  /* owns: id of the merged token */
    uint32_t mask;    /* slot count - 1 */
    int32_t n;        /* merges stored */
} hp_tok__merges;

struct hp_vocab {
    hp_tok__kind kind;
    int32_t n;             /* number of tokens */
    char *text;            /* owns: all token texts, each NUL-terminated */
    uint32_t *off;         /* owns: [n] start of token i in text */
    uint32_t *len;         /* owns: [n] byte length of token i */
    float *score;          /* owns: [n] merge priority (higher first) */
    uint8_t *type;         /* owns: [n] HP_TOKTYPE_* */
    int32_t *slots;        /* owns: hash table of ids, -1 empty */
    uint32_t mask;         /* slot count - 1 (a power of two) */

    int32_t bos, eos, unk, pad; /* -1 when absent */
    bool add_bos, add_eos, add_space_prefix;
    int32_t byte_tok[256]; /* id of <0xNN>, -1 when absent */
    bool has_byte_tokens;
    /* SPM: no piece has "▁" after another character, so no merge crosses
     * the start of a word and words can be merged one at a time. */
    bool word_split;
    /* User-defined token texts are matched in plain text even without
     * parse_special (BPE and WordPiece, as the Hugging Face tokenizers do
     * for added tokens); SentencePiece keeps its historic behaviour. */
    bool match_user_defined;

    /* Special-token matcher: distinct lengths of control/user-defined/
     * unknown texts, longest first, and which bytes can start one. */
    uint32_t *spec_lens;   /* owns */
    int n_spec_lens;
    uint8_t spec_first[32]; /* bitmap over the first byte */

    int32_t eog[HP_TOK__MAX_EOG];
    int n_eog;

    /* ---- BPE (tok_bpe.c) ---- */
    hp_tok__merges merges;
    hp_tok__pretok *pre;   /* owns: pre-tokenizer, NULL = whole segment */
    bool byte_level;       /* GPT-2 byte-to-unicode mapping of pieces */
    bool byte_fallback;    /* non-byte-level: unknown chars as <0xNN> */
    bool ignore_merges;    /* a piece that is a token is emitted whole */
    bool nfc;              /* NFC-normalize segments first (Qwen) */
    bool metaspace;        /* spaces become "▁" before BPE (Gemma) */
    int32_t byte_id[256];  /* BPE: id of the byte-level char of byte b */

    /* ---- WordPiece (tok_wpiece.c) ---- */
    bool lowercase;        /* uncased vocabulary: lowercase, strip accents */
    int max_word_chars;    /* longer words become [UNK] */
};

/* ---- vocab.c: shared tables ---- */

/* Id whose stored text is exactly s[0..n), or -1. */
int32_t hp_tok__lookup(const hp_vocab *v, const char *s, size_t n);

/* Allocate the token table for n texts, copying them; types default to
 * normal and scores to 0. On failure v is left for hp_vocab_free. */
hp_err hp_tok__init_tokens(hp_vocab *v, int32_t n, const hp_str *texts,
                           hp_errbuf *eb);

/* Build hash, byte tokens, special matcher and EOG set after texts and
 * types are final. */
hp_err hp_tok__build_tables(hp_vocab *v, hp_errbuf *eb);

/* Output cursor: counts every id, stores those that fit. */
typedef struct hp_tok__out {
    int32_t *out; /* borrows */
    int cap;
    int n;
} hp_tok__out;

static inline void hp_tok__emit(hp_tok__out *e, int32_t id)
{
    if (e->n < e->cap)
        e->out[e->n] = id;
    e->n++;
}

/* Length of the UTF-8 character at s[0..n), or 1 for an ill-formed byte. */
uint32_t hp_tok__char_len(const unsigned char *s, size_t n);

/* Code point of the well-formed character s[0..l) (l from char_len), or
 * -1 when l == 1 and s[0] >= 0x80. */
int32_t hp_tok__decode_cp(const unsigned char *s, uint32_t l);

/* Append the UTF-8 form of cp to dst; returns bytes written (1..4). */
int hp_tok__encode_cp(int32_t cp, char *dst);

/* ---- tok_pretok.c: pre-tokenizer regexes ---- */

/* A piece of text: [start, start + len) of the segment. */
typedef struct hp_tok__span {
    size_t start, len;
} hp_tok__span;

/* Compile a sequence of Split(Isolated) regexes (PCRE2, UTF + UCP). */
hp_err hp_tok__pretok_new(const char *const *patterns, int n,
                          hp_tok__pretok **out, hp_errbuf *eb);
/* The sequence named by tokenizer.ggml.pre (NULL/"default" = GPT-2).
 * HP_ERR_UNSUPPORTED for unknown names. */
hp_err hp_tok__pretok_named(const char *name, size_t name_len,
                            hp_tok__pretok **out, hp_errbuf *eb);
void hp_tok__pretok_free(hp_tok__pretok *p); /* accepts NULL */

/* Split text[0..len) into pieces (gaps between matches are pieces too).
 * *spans is grown with realloc (caller frees). Returns the count, -1 on
 * out of memory. A NULL p gives the whole text as one piece. */
long hp_tok__pretok_split(const hp_tok__pretok *p, const char *text,
                          size_t len, hp_tok__span **spans, size_t *cap);

/* ---- tok_bpe.c ---- */

/* Fill v->merges from "left right" strings (or separate left/right arrays
 * when right is non-NULL); rank = index. Merges naming unknown tokens are
 * skipped, as the reference loaders do. Sets byte_id from the token table. */
hp_err hp_tok__bpe_init(hp_vocab *v, const hp_str *merges,
                        const hp_str *right, int32_t n, hp_errbuf *eb);
void hp_tok__bpe_free(hp_vocab *v);
/* Encode one raw segment (no special tokens in it). Returns false on OOM. */
bool hp_tok__bpe_encode(const hp_vocab *v, const char *text, size_t len,
                        hp_tok__out *e);
/* Surface bytes of a normal BPE token (byte-level unmapped). */
size_t hp_tok__bpe_piece(const hp_vocab *v, int32_t id, char *buf,
                         size_t cap);

/* ---- tok_wpiece.c ---- */

/* Set WordPiece defaults (casing from the vocabulary). */
void hp_tok__wpm_init(hp_vocab *v);
bool hp_tok__wpm_encode(const hp_vocab *v, const char *text, size_t len,
                        hp_tok__out *e);
/* Surface bytes of a WordPiece token: " word" for a word start, "piece"
 * for a continuation. */
size_t hp_tok__wpm_piece(const hp_vocab *v, int32_t id, char *buf,
                         size_t cap);

#endif
