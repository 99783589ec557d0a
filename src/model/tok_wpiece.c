/* tok_wpiece.c: WordPiece (tokenizer.ggml.model = "bert"), as BERT and
 * BGE embedders use it.
 *
 * Encoding a raw segment follows BERT's public description (the
 * BertNormalizer + BertPreTokenizer + WordPiece of tokenizer.json):
 *   1. clean: NUL, U+FFFD and control characters (Unicode C*, except tab,
 *      CR, LF) are dropped; whitespace (those three, space, Zs) separates
 *      words;
 *   2. every CJK ideograph is a word of its own;
 *   3. uncased vocabularies lowercase and strip accents (NFD, then drop
 *      nonspacing marks), through utf8proc;
 *   4. every punctuation character (ASCII punctuation or Unicode P*) is a
 *      word of its own;
 *   5. each word is cut greedily into the longest vocabulary pieces from
 *      the left; a word with more than max_word_chars characters, or with
 *      any part no piece covers, becomes [UNK] as a whole.
 * GGUF files store word-start pieces with a "▁" prefix and continuations
 * bare (BERT's "##" removed); this file uses that convention and the HF
 * loader converts to it. WordPiece is lossy: decoding gives the normalized
 * words joined by single spaces (continuations glued), not the input. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "model/tok_impl.h"

void hp_tok__wpm_init(hp_vocab *v)
{
    v->max_word_chars = 100;
    /* Uncased vocabularies (bert-base-uncased, BGE) have no capitals. */
    v->lowercase = hp_tok__lookup(v, HP_TOK__WS "A", 4) < 0 &&
                   hp_tok__lookup(v, HP_TOK__WS "a", 4) >= 0;
}

static bool is_cjk(int32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static bool is_punct(int32_t c)
{
    if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) ||
        (c >= 91 && c <= 96) || (c >= 123 && c <= 126))
        return true;
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_PC: case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS: case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
        return true;
    default:
        return false;
    }
}

static bool is_space(int32_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
           utf8proc_category(c) == UTF8PROC_CATEGORY_ZS;
}

static bool is_control(int32_t c)
{
    if (c == '\t' || c == '\n' || c == '\r')
        return false;
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS: case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CN:
        return true;
    default:
        return false;
    }
}

/* A word being collected: "▁" then its bytes, with char offsets. */
typedef struct word {
    char *buf;          /* owns: 3 + bytes */
    uint32_t *cut;      /* owns: byte offset (after "▁") of each char */
    size_t n;           /* bytes after the prefix */
    int nch;            /* characters */
} word;

/* Step 5 for the collected word. */
static void piece_word(const hp_vocab *v, word *w, hp_tok__out *e)
{
    if (w->nch == 0)
        return;
    int first = e->n;
    if (w->nch > v->max_word_chars)
        goto unk;
    w->cut[w->nch] = (uint32_t)w->n;
    for (int a = 0; a < w->nch;) {
        int32_t id = -1;
        int b;
        for (b = w->nch; b > a; b--) {
            uint32_t s = w->cut[a], l = w->cut[b] - s;
            /* Word starts carry the "▁" in front (3 bytes before s). */
            if (a == 0)
                id = hp_tok__lookup(v, w->buf, 3 + l);
            else
                id = hp_tok__lookup(v, w->buf + 3 + s, l);
            if (id >= 0 && v->type[id] != HP_TOKTYPE_CONTROL)
                break;
            id = -1;
        }
        if (id < 0)
            goto unk;
        hp_tok__emit(e, id);
        a = b;
    }
    goto reset;
unk:
    e->n = first; /* drop pieces already emitted for this word */
    if (v->unk >= 0)
        hp_tok__emit(e, v->unk);
reset:
    w->n = 0;
    w->nch = 0;
}

/* Append code point c to the word. */
static void add_cp(word *w, int32_t c)
{
    w->cut[w->nch++] = (uint32_t)w->n;
    w->n += (size_t)hp_tok__encode_cp(c, w->buf + 3 + w->n);
}

bool hp_tok__wpm_encode(const hp_vocab *v, const char *text, size_t len,
                        hp_tok__out *e)
{
    /* Decomposing can grow a character into a few code points; room for
     * four per input byte (4 bytes each) is above any real expansion, and
     * the loop below flushes the word rather than overrun. */
    word w = {0};
    size_t room = len * 4 + 8;
    w.buf = malloc(3 + room * 4);
    w.cut = malloc(sizeof *w.cut * (room + 1));
    if (!w.buf || !w.cut) {
        free(w.buf);
        free(w.cut);
        return false;
    }
    memcpy(w.buf, HP_TOK__WS, 3);
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < len;) {
        uint32_t cl = hp_tok__char_len(s + i, len - i);
        int32_t c = hp_tok__decode_cp(s + i, cl);
        i += cl;
        if (c < 0) {
            /* Ill-formed byte: part of the word, which then finds no
             * piece and becomes [UNK]. */
            w.cut[w.nch++] = (uint32_t)w.n;
            w.buf[3 + w.n++] = (char)s[i - 1];
            continue;
        }
        if (c == 0 || c == 0xFFFD || is_control(c))
            continue;
        if (is_space(c)) {
            piece_word(v, &w, e);
            continue;
        }
        if (is_cjk(c)) {
            piece_word(v, &w, e);
            add_cp(&w, c);
            piece_word(v, &w, e);
            continue;
        }
        utf8proc_int32_t d[18];
        int nd = 1;
        d[0] = c;
        if (v->lowercase) {
            int bound = 0;
            utf8proc_ssize_t r = utf8proc_decompose_char(
                c, d, 18, UTF8PROC_DECOMPOSE, &bound);
            nd = (r > 0 && r <= 18) ? (int)r : 1;
            if (r <= 0 || r > 18)
                d[0] = c;
        }
        for (int k = 0; k < nd; k++) {
            int32_t x = d[k];
            if (v->lowercase) {
                if (utf8proc_category(x) == UTF8PROC_CATEGORY_MN)
                    continue;
                x = utf8proc_tolower(x);
            }
            if (w.n + 8 > room * 4 || w.nch + 2 > (int)room)
                piece_word(v, &w, e); /* cannot happen; stay in bounds */
            if (is_punct(x)) {
                piece_word(v, &w, e);
                add_cp(&w, x);
                piece_word(v, &w, e);
            } else {
                add_cp(&w, x);
            }
        }
    }
    piece_word(v, &w, e);
    free(w.buf);
    free(w.cut);
    return true;
}

size_t hp_tok__wpm_piece(const hp_vocab *v, int32_t id, char *buf,
                         size_t cap)
{
    const char *t = v->text + v->off[id];
    uint32_t n = v->len[id];
    size_t w = 0;
    const char *src = t;
    size_t sl = n;
    if (n >= 3 && memcmp(t, HP_TOK__WS, 3) == 0) {
        /* Word start: a space, then the word. */
        if (cap > 0)
            buf[0] = ' ';
        w = 1;
        src = t + 3;
        sl = n - 3;
    }
    if (w < cap)
        memcpy(buf + w, src, cap - w < sl ? cap - w : sl);
    return w + sl;
}
