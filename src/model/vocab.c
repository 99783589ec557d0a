/* vocab.c: the tokenizer vocabulary (GGUF tokenizer.ggml.*) and the
 * SentencePiece BPE encoder/decoder over it; the public entry points
 * dispatch to the other families (tok_bpe.c for "gpt2", tok_wpiece.c for
 * "bert"; tok_hf.c builds the same object from tokenizer.json). The
 * struct layout lives in tok_impl.h.
 *
 * Owns: copies of every token text, score and type; a text -> id hash
 * table; the special-token matcher used when parse_special is set; the
 * SentencePiece merge loop. Borrows nothing after hp_vocab_load returns, so
 * the hp_gguf may be closed. Knows nothing of weights, HTTP or sampling.
 * Read-only after load, so one vocabulary serves many threads.
 *
 * The encoder follows SentencePiece's BPE as its public description and the
 * reference vectors in shared/vocab/ pin it down:
 *   1. spaces become U+2581 "▁", and "▁" is prepended (the dummy prefix,
 *      tokenizer.ggml.add_space_prefix) to a text segment that starts the
 *      text or follows a special token (what llama.cpp does, and what
 *      Llama-2's own prompt format relies on: "<s>[INST]" -> <s> "▁[INST]");
 *   2. the segment is split into UTF-8 characters (an ill-formed byte is a
 *      one-byte symbol of its own);
 *   3. the adjacent pair whose concatenation is a vocabulary piece with the
 *      highest score is merged, leftmost first on ties, until no pair
 *      merges (a binary heap with lazy deletion of stale pairs);
 *   4. each symbol becomes its id; a symbol that is no piece is emitted
 *      byte by byte as <0xNN> tokens (byte fallback), or as UNK when the
 *      vocabulary has no byte tokens.
 * As in SentencePiece, only normal, user-defined and unused tokens take
 * part in merges; control, unknown and byte tokens are reserved ids that
 * plain text can never produce (so the text "<0x0A>" or "</s>" is spelled
 * out, not turned into a byte or EOS token).
 *
 * Choices worth knowing (2024-era behaviour of the reference tools):
 *   - parse_special matches control, user-defined and unknown-type texts,
 *     leftmost-longest in one scan. llama.cpp instead tries tokens longest
 *     first over the whole text; the two differ only when two special texts
 *     overlap, which no shipped vocabulary does.
 *   - An UNKNOWN token decodes to " ⁇ " as SentencePiece does; a
 *     user-defined token decodes to its text verbatim.
 *   - hp_detokenize's skip_leading_space applies only to vocabularies with
 *     add_space_prefix, since only they add the space it removes. */
#include "model/vocab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/tok_impl.h"

/* Token texts longer than this are refused as corrupt; real vocabularies
 * stay under a few hundred bytes. */
#define MAX_TOKEN_TEXT (1u << 16)
#define MAX_EOG HP_TOK__MAX_EOG
#define WS HP_TOK__WS

/* ---- hash table -------------------------------------------------------- */

/* FNV-1a: short keys, no allocation, good enough spread for token texts. */
static uint32_t hash_bytes(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

/* Slot holding the id whose text is s[0..n), or the empty slot where it
 * would go. Linear probing; the table is at most half full. */
static uint32_t find_slot(const hp_vocab *v, const char *s, size_t n)
{
    uint32_t i = hash_bytes(s, n) & v->mask;
    for (;;) {
        int32_t id = v->slots[i];
        if (id < 0)
            return i;
        if (v->len[id] == n && memcmp(v->text + v->off[id], s, n) == 0)
            return i;
        i = (i + 1) & v->mask;
    }
}

static int32_t lookup(const hp_vocab *v, const char *s, size_t n)
{
    return v->slots[find_slot(v, s, n)];
}

int32_t hp_tok__lookup(const hp_vocab *v, const char *s, size_t n)
{
    return lookup(v, s, n);
}

static bool is_special_type(uint8_t t)
{
    return t == HP_TOKTYPE_CONTROL || t == HP_TOKTYPE_USER_DEFINED ||
           t == HP_TOKTYPE_UNKNOWN;
}

/* Pieces plain text can turn into (SentencePiece keeps the others, i.e.
 * control, unknown and byte tokens, out of its piece table). */
static bool is_piece_type(uint8_t t)
{
    return t != HP_TOKTYPE_CONTROL && t != HP_TOKTYPE_UNKNOWN &&
           t != HP_TOKTYPE_BYTE;
}

/* Id of the mergeable piece s[0..n), or -1. */
static int32_t piece_id(const hp_vocab *v, const char *s, size_t n)
{
    int32_t id = lookup(v, s, n);
    if (id >= 0 && !is_piece_type(v->type[id]))
        return -1;
    return id;
}

/* ---- loading ----------------------------------------------------------- */

/* Read an optional token id key. GGUF writers store "none" as -1 or as
 * 0xFFFFFFFF (stories260K does for its padding id); both mean absent.
 * Any other value must name a token. */
static hp_err get_id(const hp_gguf *g, const char *key, int32_t n,
                     int32_t dflt, int32_t *out, hp_errbuf *eb)
{
    int64_t x;
    *out = dflt < n ? dflt : -1;
    if (!hp_gguf_find(g, key))
        return HP_OK;
    if (!hp_gguf_get_i64(g, key, &x))
        return hp_errf(eb, HP_ERR_FORMAT, "%s: not an integer", key);
    if (x == -1 || x == 0xFFFFFFFFll) {
        *out = -1;
        return HP_OK;
    }
    if (x < 0 || x >= n)
        return hp_errf(eb, HP_ERR_FORMAT,
                       "%s = %lld is outside the vocabulary (%d tokens)", key,
                       (long long)x, (int)n);
    *out = (int32_t)x;
    return HP_OK;
}

static hp_err get_flag(const hp_gguf *g, const char *key, bool dflt,
                       bool *out, hp_errbuf *eb)
{
    *out = dflt;
    if (!hp_gguf_find(g, key))
        return HP_OK;
    if (!hp_gguf_get_bool(g, key, out))
        return hp_errf(eb, HP_ERR_FORMAT, "%s: not a bool", key);
    return HP_OK;
}

/* Fill the lookup tables that depend on the texts and types: hash, byte
 * tokens, special-token matcher, end-of-generation set. One pass each. */
hp_err hp_tok__build_tables(hp_vocab *v, hp_errbuf *eb)
{
    uint32_t slots = 1;
    while (slots < (uint32_t)v->n * 2u)
        slots <<= 1;
    v->mask = slots - 1;
    v->slots = malloc(sizeof *v->slots * slots);
    if (!v->slots)
        return hp_errf(eb, HP_ERR_NOMEM, "vocabulary: out of memory");
    memset(v->slots, 0xFF, sizeof *v->slots * slots); /* all -1 */
    /* Later duplicates win, as in the reference loaders. */
    for (int32_t id = 0; id < v->n; id++)
        v->slots[find_slot(v, v->text + v->off[id], v->len[id])] = id;

    v->word_split = true;
    for (int32_t id = 0; id < v->n && v->word_split; id++) {
        const char *t = v->text + v->off[id];
        if (!is_piece_type(v->type[id]))
            continue;
        for (uint32_t i = 1; i + 3 <= v->len[id]; i++) {
            if (memcmp(t + i, WS, 3) == 0 &&
                (i < 3 || memcmp(t + i - 3, WS, 3) != 0)) {
                v->word_split = false;
                break;
            }
        }
    }

    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        int32_t id = lookup(v, name, 6);
        v->byte_tok[b] = id;
        if (id >= 0)
            v->has_byte_tokens = true;
    }

    /* Distinct special-text lengths, kept sorted descending by insertion;
     * there are few (dozens even for 256k vocabularies). */
    for (int32_t id = 0; id < v->n; id++) {
        uint32_t l = v->len[id];
        if (!is_special_type(v->type[id]) || l == 0)
            continue;
        unsigned char c0 = (unsigned char)v->text[v->off[id]];
        v->spec_first[c0 >> 3] |= (uint8_t)(1u << (c0 & 7));
        int k = 0;
        while (k < v->n_spec_lens && v->spec_lens[k] > l)
            k++;
        if (k < v->n_spec_lens && v->spec_lens[k] == l)
            continue;
        uint32_t *nl = realloc(v->spec_lens,
                               sizeof *nl * (size_t)(v->n_spec_lens + 1));
        if (!nl)
            return hp_errf(eb, HP_ERR_NOMEM, "vocabulary: out of memory");
        v->spec_lens = nl;
        memmove(nl + k + 1, nl + k, sizeof *nl * (size_t)(v->n_spec_lens - k));
        nl[k] = l;
        v->n_spec_lens++;
    }

    static const char *const eot_texts[] = {
        "<|eot_id|>", "<|eom_id|>", "<|end|>", "<|im_end|>",
        "<end_of_turn>", "<|endoftext|>", "</s>"};
    if (v->eos >= 0)
        v->eog[v->n_eog++] = v->eos;
    for (size_t i = 0; i < sizeof eot_texts / sizeof eot_texts[0]; i++) {
        int32_t id = lookup(v, eot_texts[i], strlen(eot_texts[i]));
        if (id < 0 || id == v->eos || v->type[id] != HP_TOKTYPE_CONTROL)
            continue;
        if (v->n_eog < MAX_EOG)
            v->eog[v->n_eog++] = id;
    }
    return HP_OK;
}

hp_err hp_tok__init_tokens(hp_vocab *v, int32_t n, const hp_str *strs,
                           hp_errbuf *eb)
{
    uint64_t total = 0;
    if (n <= 0 || n > 0x7FFFFFF)
        return hp_errf(eb, HP_ERR_FORMAT, "bad token count %d", (int)n);
    for (int32_t i = 0; i < n; i++) {
        if (strs[i].len > MAX_TOKEN_TEXT)
            return hp_errf(eb, HP_ERR_FORMAT,
                           "token %d: text of %llu bytes", (int)i,
                           (unsigned long long)strs[i].len);
        total += strs[i].len + 1;
    }
    if (total > 0xFFFFFFF0u)
        return hp_errf(eb, HP_ERR_FORMAT, "vocabulary texts too large");
    v->n = n;
    v->text = malloc((size_t)total);
    v->off = malloc(sizeof *v->off * (size_t)n);
    v->len = malloc(sizeof *v->len * (size_t)n);
    v->score = calloc((size_t)n, sizeof *v->score);
    v->type = malloc((size_t)n);
    if (!v->text || !v->off || !v->len || !v->score || !v->type)
        return hp_errf(eb, HP_ERR_NOMEM, "vocabulary: out of memory");
    uint32_t pos = 0;
    for (int32_t i = 0; i < n; i++) {
        v->off[i] = pos;
        v->len[i] = (uint32_t)strs[i].len;
        if (strs[i].len)
            memcpy(v->text + pos, strs[i].ptr, strs[i].len);
        pos += (uint32_t)strs[i].len;
        v->text[pos++] = '\0';
        v->type[i] = HP_TOKTYPE_NORMAL;
    }
    return HP_OK;
}

/* Read tokenizer.ggml.merges into the BPE merge table. */
static hp_err load_merges(const hp_gguf *g, hp_vocab *v, hp_errbuf *eb)
{
    const hp_gguf_kv *km = hp_gguf_find(g, "tokenizer.ggml.merges");
    if (!km)
        return hp_errf(eb, HP_ERR_FORMAT, "tokenizer.ggml.merges missing");
    if (km->type != HP_GGUF_ARRAY || km->arr_type != HP_GGUF_STRING ||
        km->arr_n > 0x7FFFFFF)
        return hp_errf(eb, HP_ERR_FORMAT,
                       "tokenizer.ggml.merges: not a string array");
    hp_str *ms = malloc(sizeof *ms * (size_t)(km->arr_n ? km->arr_n : 1));
    if (!ms)
        return hp_errf(eb, HP_ERR_NOMEM, "vocabulary: out of memory");
    hp_err err;
    if (!hp_gguf_arr_strs(km, ms))
        err = hp_errf(eb, HP_ERR_FORMAT, "tokenizer.ggml.merges unreadable");
    else
        err = hp_tok__bpe_init(v, ms, NULL, (int32_t)km->arr_n, eb);
    free(ms);
    return err;
}

hp_err hp_vocab_load(const hp_gguf *g, hp_vocab **out, hp_errbuf *eb)
{
    hp_str model;
    hp_str *strs = NULL;
    hp_vocab *v = NULL;
    hp_err err;
    hp_tok__kind kind;

    *out = NULL;
    if (!hp_gguf_get_str(g, "tokenizer.ggml.model", &model))
        return hp_errf(eb, HP_ERR_FORMAT,
                       "no tokenizer: tokenizer.ggml.model missing");
    if (hp_str_eq(model, "llama")) {
        kind = HP_TOK__SPM;
    } else if (hp_str_eq(model, "gpt2")) {
        kind = HP_TOK__BPE;
    } else if (hp_str_eq(model, "bert")) {
        kind = HP_TOK__WPM;
    } else {
        int ml = model.len > 64 ? 64 : (int)model.len;
        return hp_errf(eb, HP_ERR_UNSUPPORTED,
                       "unsupported tokenizer model '%.*s'", ml, model.ptr);
    }

    const hp_gguf_kv *ktok = hp_gguf_find(g, "tokenizer.ggml.tokens");
    if (!ktok || ktok->type != HP_GGUF_ARRAY ||
        ktok->arr_type != HP_GGUF_STRING)
        return hp_errf(eb, HP_ERR_FORMAT,
                       "tokenizer.ggml.tokens missing or not a string array");
    if (ktok->arr_n == 0 || ktok->arr_n > 0x7FFFFFF)
        return hp_errf(eb, HP_ERR_FORMAT,
                       "tokenizer.ggml.tokens: bad token count %llu",
                       (unsigned long long)ktok->arr_n);
    int32_t n = (int32_t)ktok->arr_n;

    const hp_gguf_kv *ksc = hp_gguf_find(g, "tokenizer.ggml.scores");
    if (ksc && (ksc->type != HP_GGUF_ARRAY ||
                ksc->arr_type != HP_GGUF_FLOAT32 || ksc->arr_n != ktok->arr_n))
        return hp_errf(eb, HP_ERR_FORMAT,
                       "tokenizer.ggml.scores: expected %d float32 values",
                       (int)n);
    const hp_gguf_kv *kty = hp_gguf_find(g, "tokenizer.ggml.token_type");
    if (kty && (kty->type != HP_GGUF_ARRAY ||
                kty->arr_type == HP_GGUF_STRING ||
                kty->arr_type == HP_GGUF_ARRAY ||
                kty->arr_type == HP_GGUF_BOOL ||
                kty->arr_type == HP_GGUF_FLOAT32 ||
                kty->arr_type == HP_GGUF_FLOAT64 ||
                kty->arr_n != ktok->arr_n))
        return hp_errf(eb, HP_ERR_FORMAT,
                       "tokenizer.ggml.token_type: expected %d integers",
                       (int)n);

    strs = malloc(sizeof *strs * (size_t)n);
    v = calloc(1, sizeof *v);
    if (!strs || !v)
        goto nomem;
    v->kind = kind;
    if (!hp_gguf_arr_strs(ktok, strs)) {
        err = hp_errf(eb, HP_ERR_FORMAT, "tokenizer.ggml.tokens unreadable");
        goto fail;
    }
    err = hp_tok__init_tokens(v, n, strs, eb);
    if (err != HP_OK)
        goto fail;
    free(strs);
    strs = NULL;
    for (int32_t i = 0; i < n; i++) {
        v->score[i] = ksc ? hp_gguf_arr_f32(ksc, (uint64_t)i) : 0.0f;
        int64_t t = kty ? hp_gguf_arr_int(kty, (uint64_t)i)
                        : HP_TOKTYPE_NORMAL;
        /* Unknown type values are treated as normal text pieces. */
        v->type[i] = (t >= HP_TOKTYPE_NORMAL && t <= HP_TOKTYPE_BYTE)
                         ? (uint8_t)t
                         : (uint8_t)HP_TOKTYPE_NORMAL;
    }

    /* SentencePiece's conventional ids apply when the keys are absent;
     * the other families have no conventional ids. WordPiece's BOS/EOS
     * are [CLS]/[SEP], and it adds both by default. */
    bool spm = kind == HP_TOK__SPM, wpm = kind == HP_TOK__WPM;
    err = get_id(g, "tokenizer.ggml.bos_token_id", n, spm ? 1 : -1,
                 &v->bos, eb);
    if (err == HP_OK)
        err = get_id(g, "tokenizer.ggml.eos_token_id", n, spm ? 2 : -1,
                     &v->eos, eb);
    if (err == HP_OK)
        err = get_id(g, "tokenizer.ggml.unknown_token_id", n, spm ? 0 : -1,
                     &v->unk, eb);
    if (err == HP_OK)
        err = get_id(g, "tokenizer.ggml.padding_token_id", n, -1, &v->pad,
                     eb);
    if (err == HP_OK && wpm && v->bos < 0)
        err = get_id(g, "tokenizer.ggml.cls_token_id", n, -1, &v->bos, eb);
    if (err == HP_OK && wpm && v->eos < 0)
        err = get_id(g, "tokenizer.ggml.seperator_token_id", n, -1, &v->eos,
                     eb);
    if (err == HP_OK)
        err = get_flag(g, "tokenizer.ggml.add_bos_token", spm || wpm,
                       &v->add_bos, eb);
    if (err == HP_OK)
        err = get_flag(g, "tokenizer.ggml.add_eos_token", wpm, &v->add_eos,
                       eb);
    if (err == HP_OK)
        err = get_flag(g, "tokenizer.ggml.add_space_prefix", spm,
                       &v->add_space_prefix, eb);
    if (err != HP_OK)
        goto fail;
    /* The hash comes first: merges and casing are resolved through it. */
    err = hp_tok__build_tables(v, eb);
    if (err != HP_OK)
        goto fail;

    if (kind == HP_TOK__BPE) {
        hp_str pre = {0};
        v->match_user_defined = true;
        v->byte_level = true;
        err = load_merges(g, v, eb);
        if (err == HP_OK) {
            bool has_pre = hp_gguf_get_str(g, "tokenizer.ggml.pre", &pre);
            err = hp_tok__pretok_named(has_pre ? pre.ptr : NULL,
                                       has_pre ? pre.len : 0, &v->pre, eb);
            /* Llama 3's tokenizer.json sets ignore_merges. */
            v->ignore_merges = has_pre && (hp_str_eq(pre, "llama-bpe") ||
                                           hp_str_eq(pre, "llama3") ||
                                           hp_str_eq(pre, "llama-v3"));
        }
        if (err != HP_OK)
            goto fail;
    } else if (kind == HP_TOK__WPM) {
        v->match_user_defined = true;
        hp_tok__wpm_init(v);
    }
    *out = v;
    return HP_OK;

nomem:
    err = hp_errf(eb, HP_ERR_NOMEM, "vocabulary: out of memory");
fail:
    free(strs);
    hp_vocab_free(v);
    return err;
}

hp_err hp_vocab_open(const char *path, hp_vocab **out, hp_errbuf *eb)
{
    char magic[4] = {0};
    *out = NULL;
    if (!path)
        return hp_errf(eb, HP_ERR_INVALID, "no vocabulary path");
    FILE *f = fopen(path, "rb");
    bool gguf = f && fread(magic, 1, 4, f) == 4 && !memcmp(magic, "GGUF", 4);
    if (f)
        fclose(f);
    if (!gguf)
        return hp_vocab_load_hf(path, NULL, out, eb);
    hp_gguf *g = NULL;
    hp_err err = hp_gguf_open(path, &g, eb);
    if (err != HP_OK)
        return err;
    err = hp_vocab_load(g, out, eb);
    hp_gguf_close(g); /* the vocabulary keeps its own copies */
    if (err != HP_OK) {
        /* Vocabulary errors do not name the file; add it. */
        char msg[HP_ERRBUF_LEN];
        snprintf(msg, sizeof msg, "%s", eb ? eb->msg : "");
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        if (eb && !strstr(msg, base))
            hp_errf(eb, err, "%s: %s", path, msg);
    }
    return err;
}

void hp_vocab_free(hp_vocab *v)
{
    if (!v)
        return;
    free(v->text);
    free(v->off);
    free(v->len);
    free(v->score);
    free(v->type);
    free(v->slots);
    free(v->spec_lens);
    hp_tok__bpe_free(v);
    hp_tok__pretok_free(v->pre);
    free(v);
}

/* ---- accessors --------------------------------------------------------- */

int32_t hp_vocab_size(const hp_vocab *v) { return v ? v->n : 0; }
int32_t hp_vocab_bos(const hp_vocab *v) { return v ? v->bos : -1; }
int32_t hp_vocab_eos(const hp_vocab *v) { return v ? v->eos : -1; }
bool hp_vocab_add_bos(const hp_vocab *v) { return v ? v->add_bos : false; }
bool hp_vocab_add_eos(const hp_vocab *v) { return v ? v->add_eos : false; }

bool hp_vocab_is_eog(const hp_vocab *v, int32_t id)
{
    if (!v || id < 0)
        return false;
    for (int i = 0; i < v->n_eog; i++)
        if (v->eog[i] == id)
            return true;
    return false;
}

const char *hp_vocab_text(const hp_vocab *v, int32_t id)
{
    if (!v || id < 0 || id >= v->n)
        return NULL;
    return v->text + v->off[id];
}

int32_t hp_vocab_find(const hp_vocab *v, const char *s, size_t len)
{
    if (!v || (!s && len))
        return -1;
    return lookup(v, s ? s : "", len);
}

/* ---- encoding ---------------------------------------------------------- */

typedef hp_tok__out emitter;
#define emit hp_tok__emit

/* A run of raw text, or one special token matched in the input. */
typedef struct fragment {
    size_t start, len; /* raw text span of the input */
    int32_t id;        /* special token id, or -1 for raw text */
} fragment;

typedef struct symbol {
    int prev, next;    /* neighbours in the live list, -1 at the ends */
    uint32_t start;    /* byte offset into the escaped segment */
    uint32_t len;      /* 0 once merged into its left neighbour */
} symbol;

typedef struct bigram {
    float score;
    int left, right;   /* symbol indexes */
    uint32_t len;      /* combined length when queued, to spot stale pairs */
} bigram;

/* Working memory for one segment; sized for the longest segment. */
typedef struct session {
    char *buf;         /* owns: escaped segment text */
    symbol *sym;       /* owns */
    bigram *heap;      /* owns */
    int heap_n;
} session;

/* True when a should be merged before b: higher score, then leftmost. */
static bool bigram_before(const bigram *a, const bigram *b)
{
    if (a->score != b->score)
        return a->score > b->score;
    return a->left < b->left;
}

static void heap_push(session *s, bigram b)
{
    int i = s->heap_n++;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!bigram_before(&b, &s->heap[p]))
            break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = b;
}

static bigram heap_pop(session *s)
{
    bigram top = s->heap[0];
    bigram last = s->heap[--s->heap_n];
    int i = 0, n = s->heap_n;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && bigram_before(&s->heap[c + 1], &s->heap[c]))
            c++;
        if (!bigram_before(&s->heap[c], &last))
            break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n > 0)
        s->heap[i] = last;
    return top;
}

/* Queue the pair (left, right) if their concatenation is a piece. */
static void try_pair(const hp_vocab *v, session *s, int left, int right)
{
    if (left < 0 || right < 0)
        return;
    const symbol *l = &s->sym[left], *r = &s->sym[right];
    uint32_t n = l->len + r->len;
    int32_t id = piece_id(v, s->buf + l->start, n);
    if (id < 0)
        return;
    bigram b = {v->score[id], left, right, n};
    heap_push(s, b);
}

/* Length of the UTF-8 character at s[0..n), or 1 for an ill-formed byte,
 * which then becomes a symbol of its own and falls back to <0xNN>. */
uint32_t hp_tok__char_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    uint32_t need;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        need = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        need = 3;
    else if (c >= 0xF0 && c <= 0xF4)
        need = 4;
    else
        return 1;
    if (need > n)
        return 1;
    for (uint32_t i = 1; i < need; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 1;
    /* Overlongs, surrogates and > U+10FFFF are spelled as bytes. */
    if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] > 0x9F) ||
        (c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] > 0x8F))
        return 1;
    return need;
}

int32_t hp_tok__decode_cp(const unsigned char *s, uint32_t l)
{
    switch (l) {
    case 1:
        return s[0] < 0x80 ? s[0] : -1;
    case 2:
        return ((s[0] & 0x1F) << 6) | (s[1] & 0x3F);
    case 3:
        return ((s[0] & 0x0F) << 12) | ((s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    default:
        return ((s[0] & 0x07) << 18) | ((s[1] & 0x3F) << 12) |
               ((s[2] & 0x3F) << 6) | (s[3] & 0x3F);
    }
}

int hp_tok__encode_cp(int32_t cp, char *d)
{
    if (cp < 0x80) {
        d[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        d[0] = (char)(0xC0 | (cp >> 6));
        d[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        d[0] = (char)(0xE0 | (cp >> 12));
        d[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        d[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    d[0] = (char)(0xF0 | (cp >> 18));
    d[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    d[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    d[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Emit a symbol that is no piece: its bytes as byte tokens, else UNK. */
static void emit_bytes(const hp_vocab *v, emitter *e, const char *s,
                       uint32_t n)
{
    if (!v->has_byte_tokens) {
        if (v->unk >= 0)
            emit(e, v->unk);
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        int32_t id = v->byte_tok[(unsigned char)s[i]];
        if (id < 0)
            id = v->unk;
        if (id >= 0)
            emit(e, id);
    }
}

/* Steps 3 and 4 for the symbols [a, b) of s, which no merge crosses. */
static void encode_word(const hp_vocab *v, session *s, int a, int b,
                        emitter *e)
{
    s->sym[a].prev = -1;
    s->sym[b - 1].next = -1;

    /* Step 3: merge best pairs. Each merge queues at most two new pairs,
     * so the heap never holds more than 3 * (b - a) entries. */
    s->heap_n = 0;
    for (int i = a + 1; i < b; i++)
        try_pair(v, s, i - 1, i);
    while (s->heap_n > 0) {
        bigram g = heap_pop(s);
        symbol *l = &s->sym[g.left], *r = &s->sym[g.right];
        if (l->len == 0 || r->len == 0 || l->len + r->len != g.len)
            continue; /* stale: one side merged elsewhere since */
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0)
            s->sym[r->next].prev = g.left;
        try_pair(v, s, l->prev, g.left);
        try_pair(v, s, g.left, l->next);
    }

    /* Step 4: symbols to ids. */
    for (int i = a; i != -1; i = s->sym[i].next) {
        const symbol *sy = &s->sym[i];
        int32_t id = piece_id(v, s->buf + sy->start, sy->len);
        if (id >= 0)
            emit(e, id);
        else
            emit_bytes(v, e, s->buf + sy->start, sy->len);
    }
}

static bool is_ws(const session *s, int i)
{
    return s->sym[i].len == 3 && memcmp(s->buf + s->sym[i].start, WS, 3) == 0;
}

/* Encode one raw-text segment with SentencePiece BPE. */
static void encode_segment(const hp_vocab *v, session *s, const char *text,
                           size_t len, bool dummy_prefix, emitter *e)
{
    uint32_t n = 0;

    /* Step 1: escape spaces, add the dummy prefix. */
    if (dummy_prefix) {
        memcpy(s->buf, WS, 3);
        n = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(s->buf + n, WS, 3);
            n += 3;
        } else {
            s->buf[n++] = text[i];
        }
    }
    if (n == 0)
        return;

    /* Step 2: one symbol per character. */
    int nsym = 0;
    for (uint32_t i = 0; i < n;) {
        uint32_t cl = hp_tok__char_len((const unsigned char *)s->buf + i, n - i);
        s->sym[nsym] = (symbol){nsym - 1, nsym + 1, i, cl};
        nsym++;
        i += cl;
    }

    /* Steps 3-4 word by word when the vocabulary allows it: the result is
     * the same (no candidate pair spans two words), but each heap stays
     * small, which keeps long prompts linear and in cache. A word starts
     * at a "▁" that follows another character. */
    int a = 0;
    for (int i = 1; i < nsym && v->word_split; i++) {
        if (is_ws(s, i) && !is_ws(s, i - 1)) {
            encode_word(v, s, a, i, e);
            a = i;
        }
    }
    encode_word(v, s, a, nsym, e);
}

/* Special token whose text starts at text[i], longest first; -1 if none. */
static int32_t match_special(const hp_vocab *v, const char *text, size_t len,
                             size_t i, bool parse_special)
{
    unsigned char c = (unsigned char)text[i];
    if (!(v->spec_first[c >> 3] & (1u << (c & 7))))
        return -1;
    for (int k = 0; k < v->n_spec_lens; k++) {
        uint32_t l = v->spec_lens[k];
        if (l > len - i)
            continue;
        int32_t id = lookup(v, text + i, l);
        if (id < 0 || !is_special_type(v->type[id]))
            continue;
        /* Without parse_special only user-defined texts may match, and
         * only in families that treat them as added text. */
        if (parse_special || (v->match_user_defined &&
                              v->type[id] == HP_TOKTYPE_USER_DEFINED))
            return id;
    }
    return -1;
}

/* Split text into raw runs and special tokens. Leftmost-longest matching
 * in one scan; the frags array has room for len + 1 entries. */
static int partition(const hp_vocab *v, const char *text, size_t len,
                     bool parse_special, fragment *frags)
{
    int nf = 0;
    size_t run = 0; /* start of the current raw run */
    if ((parse_special || v->match_user_defined) && v->n_spec_lens > 0) {
        for (size_t i = 0; i < len;) {
            int32_t id = match_special(v, text, len, i, parse_special);
            if (id < 0) {
                i++;
                continue;
            }
            if (i > run)
                frags[nf++] = (fragment){run, i - run, -1};
            frags[nf++] = (fragment){i, v->len[id], id};
            i += v->len[id];
            run = i;
        }
    }
    if (len > run)
        frags[nf++] = (fragment){run, len - run, -1};
    return nf;
}

int hp_tokenize(const hp_vocab *v, const char *text, size_t len, bool add_bos,
                bool parse_special, int32_t *out, int cap)
{
    emitter e = {out, out ? (cap > 0 ? cap : 0) : 0, 0};
    if (!v || (!text && len))
        return 0;
    if (len > (size_t)0x7FFFFFF0 / 3)
        return -1; /* escaped text would overflow the 32-bit offsets */

    bool spm = v->kind == HP_TOK__SPM;
    fragment *frags = malloc(sizeof *frags * (len + 1));
    session s = {0};
    if (spm) {
        s.buf = malloc(3 * len + 3);
        s.sym = malloc(sizeof *s.sym * (len + 1));
        s.heap = malloc(sizeof *s.heap * (3 * len + 3));
    }
    int rc = -1;
    if (!frags || (spm && (!s.buf || !s.sym || !s.heap)))
        goto done;

    int nf = partition(v, text, len, parse_special, frags);
    if (add_bos && v->bos >= 0 && !(nf > 0 && frags[0].id == v->bos))
        emit(&e, v->bos);
    bool after_special = true; /* the text start counts as a boundary */
    for (int f = 0; f < nf; f++) {
        const char *seg = text + frags[f].start;
        if (frags[f].id >= 0) {
            emit(&e, frags[f].id);
            after_special = true;
            continue;
        }
        if (v->kind == HP_TOK__BPE) {
            if (!hp_tok__bpe_encode(v, seg, frags[f].len, &e))
                goto done;
        } else if (v->kind == HP_TOK__WPM) {
            if (!hp_tok__wpm_encode(v, seg, frags[f].len, &e))
                goto done;
        } else {
            encode_segment(v, &s, seg, frags[f].len,
                           v->add_space_prefix && after_special, &e);
        }
        after_special = false;
    }
    /* EOS follows only where the family's template adds it (BERT's
     * [SEP]), and only once. */
    if (add_bos && v->add_eos && v->eos >= 0 &&
        !(nf > 0 && frags[nf - 1].id == v->eos))
        emit(&e, v->eos);
    rc = e.n;
done:
    free(frags);
    free(s.buf);
    free(s.sym);
    free(s.heap);
    return rc;
}

/* ---- decoding ---------------------------------------------------------- */

/* Copy src[0..n) to buf at *w, within cap; *w counts every byte. */
static void put(char *buf, size_t cap, size_t *w, const char *src, size_t n)
{
    if (*w < cap) {
        size_t k = cap - *w < n ? cap - *w : n;
        memcpy(buf + *w, src, k);
    }
    *w += n;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decoded surface of an UNKNOWN token: SentencePiece's " ⁇ " (U+2047),
 * so an unknown id stays visible in text instead of vanishing. */
#define UNK_SURFACE " \xE2\x81\x87 "

size_t hp_token_to_piece(const hp_vocab *v, int32_t id, char *buf, size_t cap)
{
    size_t w = 0;
    if (!v || id < 0 || id >= v->n)
        return 0;
    const char *t = v->text + v->off[id];
    uint32_t n = v->len[id];
    switch (v->type[id]) {
    case HP_TOKTYPE_CONTROL:
        return 0;
    case HP_TOKTYPE_UNKNOWN:
        put(buf, cap, &w, UNK_SURFACE, sizeof UNK_SURFACE - 1);
        return w;
    case HP_TOKTYPE_BYTE:
        if (n == 6 && t[0] == '<' && t[1] == '0' && t[2] == 'x' &&
            t[5] == '>' && hexval(t[3]) >= 0 && hexval(t[4]) >= 0) {
            char b = (char)(hexval(t[3]) * 16 + hexval(t[4]));
            put(buf, cap, &w, &b, 1);
            return w;
        }
        break; /* malformed byte token: show its text */
    case HP_TOKTYPE_USER_DEFINED:
        /* Added verbatim by the model's authors: no "▁" unescaping. */
        put(buf, cap, &w, t, n);
        return w;
    default:
        break;
    }
    if (v->kind == HP_TOK__BPE)
        return hp_tok__bpe_piece(v, id, buf, cap);
    if (v->kind == HP_TOK__WPM)
        return hp_tok__wpm_piece(v, id, buf, cap);
    for (uint32_t i = 0; i < n;) {
        if (i + 3 <= n && memcmp(t + i, WS, 3) == 0) {
            put(buf, cap, &w, " ", 1);
            i += 3;
        } else {
            put(buf, cap, &w, t + i, 1);
            i++;
        }
    }
    return w;
}

size_t hp_detokenize(const hp_vocab *v, const int32_t *ids, int n,
                     bool skip_leading_space, char *buf, size_t cap)
{
    size_t w = 0;
    /* Room for the NUL: pieces are written within cap - 1. */
    size_t room = cap > 0 ? cap - 1 : 0;
    /* Only a vocabulary that adds a dummy prefix has one to remove;
     * WordPiece pieces of word starts all carry one. */
    bool strip = skip_leading_space && v &&
                 (v->add_space_prefix || v->kind == HP_TOK__WPM);
    for (int i = 0; v && ids && i < n; i++) {
        char tmp[64];
        size_t pn = hp_token_to_piece(v, ids[i], tmp, sizeof tmp);
        const char *p = tmp;
        char *big = NULL;
        if (pn > sizeof tmp) {
            big = malloc(pn);
            if (!big)
                break; /* out of memory: return what fits so far */
            hp_token_to_piece(v, ids[i], big, pn);
            p = big;
        }
        if (strip && pn > 0) {
            /* The first token with any text carries the dummy prefix. */
            strip = false;
            if (p[0] == ' ') {
                p++;
                pn--;
            }
        }
        put(buf, room, &w, p, pn);
        free(big);
    }
    if (cap > 0)
        buf[w < room ? w : room] = '\0';
    return w;
}
