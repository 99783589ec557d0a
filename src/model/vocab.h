/* vocab.h: tokenizer vocabulary loaded from GGUF metadata, with encode and
 * decode.
 *
 * Supports tokenizer.ggml.model = "llama" (SentencePiece with byte
 * fallback). Tokens, scores and types come from tokenizer.ggml.* keys; the
 * vocabulary copies what it needs, so it outlives the hp_gguf it came from.
 * Knows nothing of weights, HTTP or sampling. Included by model/, engine/,
 * cli/. Thread-safe after load (read-only). */
#ifndef HP_VOCAB_H
#define HP_VOCAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/gguf.h"
#include "util/err.h"

typedef struct hp_vocab hp_vocab;

/* Token types as GGUF stores them (tokenizer.ggml.token_type). */
enum {
    HP_TOKTYPE_NORMAL = 1,
    HP_TOKTYPE_UNKNOWN = 2,
    HP_TOKTYPE_CONTROL = 3,
    HP_TOKTYPE_USER_DEFINED = 4,
    HP_TOKTYPE_UNUSED = 5,
    HP_TOKTYPE_BYTE = 6
};

/* Load from g. Unsupported tokenizer.ggml.model values are refused by name
 * (HP_ERR_UNSUPPORTED). Works on vocabulary-only files. */
hp_err hp_vocab_load(const hp_gguf *g, hp_vocab **out, hp_errbuf *eb);
void hp_vocab_free(hp_vocab *v); /* accepts NULL */

int32_t hp_vocab_size(const hp_vocab *v);
int32_t hp_vocab_bos(const hp_vocab *v); /* -1 if none */
int32_t hp_vocab_eos(const hp_vocab *v); /* -1 if none */
/* True if the id ends generation (EOS, or EOT-style control tokens). */
bool hp_vocab_is_eog(const hp_vocab *v, int32_t id);
/* tokenizer.ggml.add_bos_token, defaulting as SentencePiece does (true). */
bool hp_vocab_add_bos(const hp_vocab *v);
/* Token text as stored (e.g. "▁the", "<0x0A>"); NULL if id out of range. */
const char *hp_vocab_text(const hp_vocab *v, int32_t id);
/* Id of the token whose stored text is exactly s, or -1. */
int32_t hp_vocab_find(const hp_vocab *v, const char *s, size_t len);

/* Encode text[0..len). add_bos prepends BOS (once, when the vocabulary has
 * one). parse_special makes control-token texts (e.g. "<s>") inside text
 * become their ids; otherwise they are plain text. Writes at most cap ids to
 * out and returns the total count; if that exceeds cap, call again with a
 * bigger buffer. Returns -1 only on out-of-memory. Invalid UTF-8 is handled
 * byte-wise (byte fallback), never rejected. */
int hp_tokenize(const hp_vocab *v, const char *text, size_t len, bool add_bos,
                bool parse_special, int32_t *out, int cap);

/* Bytes of token id as it appears in decoded text: "▁" becomes a space,
 * <0xNN> becomes the byte NN, control tokens (BOS/EOS) become nothing.
 * Writes at most cap bytes and returns the full length (may be > cap).
 * The bytes may be a partial UTF-8 sequence. */
size_t hp_token_to_piece(const hp_vocab *v, int32_t id, char *buf, size_t cap);

/* Decode a whole sequence into buf (NUL-terminated when cap > 0); returns
 * the full length. If skip_leading_space, the single space SentencePiece's
 * dummy prefix adds before the first token is removed, as tokenizers do when
 * detokenizing a whole prompt. */
size_t hp_detokenize(const hp_vocab *v, const int32_t *ids, int n,
                     bool skip_leading_space, char *buf, size_t cap);

/* ---- appended: more tokenizer families (model portability) ----------
 * Besides "llama", hp_vocab_load now accepts tokenizer.ggml.model "gpt2"
 * (byte-level BPE with tokenizer.ggml.merges and the pre-tokenizer named
 * by tokenizer.ggml.pre) and "bert" (WordPiece). In those families
 * user-defined tokens are matched in plain text even without
 * parse_special (as Hugging Face does for added tokens); control tokens
 * only with it. hp_tokenize's add_bos adds what the family's template adds
 * around a text: BOS first (once), and EOS last when
 * tokenizer.ggml.add_eos_token says so (BERT: [CLS] ... [SEP]). */

/* Load a Hugging Face tokenizer.json (model BPE or WordPiece, with its
 * normalizer, pre-tokenizer, added tokens and post-processor) into the
 * same vocabulary object. tokenizer_json_path may be a folder holding
 * tokenizer.json (its tokenizer_config.json is then read too, if
 * present). tokenizer_config_path, optional (NULL), supplies add_bos_token,
 * add_eos_token, bos_token and eos_token. Unsupported components are
 * refused by name (HP_ERR_UNSUPPORTED). */
hp_err hp_vocab_load_hf(const char *tokenizer_json_path,
                        const char *tokenizer_config_path, hp_vocab **out,
                        hp_errbuf *eb);

/* Load from a file path: a GGUF file (by its magic), otherwise a
 * tokenizer.json or a folder holding one (hp_vocab_load_hf). Errors name
 * the file. */
hp_err hp_vocab_open(const char *path, hp_vocab **out, hp_errbuf *eb);

/* tokenizer.ggml.add_eos_token (false when absent, true for WordPiece). */
bool hp_vocab_add_eos(const hp_vocab *v);

#endif
