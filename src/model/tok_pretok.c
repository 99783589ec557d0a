/* tok_pretok.c: pre-tokenizers of byte-level BPE vocabularies, as
 * sequences of PCRE2 regexes.
 *
 * Owns the compiled patterns. Each pattern acts as a Hugging Face
 * Split(behavior = Isolated): every match becomes a piece and so does every
 * gap between matches, and each later pattern only sees the pieces the
 * earlier ones made (a lookahead such as \s+(?!\S) stops at the end of its
 * piece). Hugging Face's Digits and Punctuation pre-tokenizers are written
 * as the equivalent Split patterns. Patterns are compiled with UTF + UCP so
 * that \s, \p{L} and friends are Unicode-aware as in Oniguruma, and with
 * MATCH_INVALID_UTF so ill-formed bytes never match (they fall into gaps
 * and stay pieces of their own; byte-level BPE spells them out).
 *
 * The patterns are written from the pre_tokenizer sections of the models'
 * public tokenizer.json files (2024-era): GPT-2's ByteLevel regex, the
 * cl100k-style regex of Llama 3 / DBRX, Qwen2's single-digit variant, the
 * DeepSeek splits, Falcon's punctuation + three-digit groups, StarCoder's
 * individual digits, Mistral's Tekken. Thread-safe after creation (match data is per
 * call). Knows nothing of vocabularies. */
#define PCRE2_CODE_UNIT_WIDTH 8

#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "model/tok_impl.h"

#define MAX_PATTERNS 8

struct hp_tok__pretok {
    pcre2_code *code[MAX_PATTERNS]; /* owns */
    int n;
};

/* ---- the patterns ------------------------------------------------------ */

/* GPT-2's ByteLevel(use_regex = true) split. */
#define PAT_GPT2 \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+" \
    "|\\s+(?!\\S)|\\s+"
/* Llama 3 / DBRX (tiktoken cl100k): digits in groups of up to three. */
#define PAT_LLAMA3 \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+" \
    "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+" \
    "|\\s+(?!\\S)|\\s+"
/* Qwen2: as Llama 3 but one digit per piece. */
#define PAT_QWEN2 \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+" \
    "|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+" \
    "|\\s+(?!\\S)|\\s+"
/* Mistral Tekken: case-aware words. */
#define PAT_TEKKEN \
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*" \
    "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+" \
    "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+" \
    "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*" \
    "|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+" \
    "|\\s+(?!\\S)|\\s+"
/* Digits(individual_digits = true). */
#define PAT_DIGIT "\\p{N}"
/* Punctuation(contiguous): Unicode P* plus the ASCII punctuation that
 * Unicode files under symbols. */
#define PAT_PUNCT "[\\p{P}$+<=>^`|~]+"
/* CJK ideographs and Hangul (DeepSeek LLM/Coder). */
#define PAT_DS_CJK "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+"
/* DeepSeek LLM: cased letters of many scripts (an explicit list in the
 * tokenizer.json), then ASCII/full-width punctuation. */
#define PAT_DS_LETTERS \
    "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}" \
    "\\x{1BC}-\\x{1BF}\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}" \
    "\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}\\x{388}-\\x{38A}" \
    "\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}" \
    "\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}" \
    "\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}" \
    "\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}" \
    "\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}" \
    "\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}" \
    "\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}" \
    "\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}" \
    "\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}" \
    "\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}" \
    "\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}" \
    "\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}" \
    "\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}" \
    "\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}" \
    "\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}" \
    "\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}" \
    "\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}" \
    "\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}" \
    "\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}" \
    "\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}]+"
#define PAT_DS_PUNCT \
    "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}" \
    "\\x{3000}-\\x{3002}]+"
/* DeepSeek V3: digits by three, kana and CJK, then words. */
#define PAT_DS3_CJK "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+"
#define PAT_DS3_MAIN \
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+" \
    "|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+" \
    "| ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

typedef struct named {
    const char *names; /* '|'-separated tokenizer.ggml.pre values */
    const char *pats[MAX_PATTERNS];
} named;

static const named TABLE[] = {
    {"default|gpt-2|gpt2|mpt|olmo|jais|roberta-bpe|gpt-neox|gptneox",
     {PAT_GPT2}},
    {"llama-bpe|llama3|llama-v3|dbrx|smaug-bpe|smaug", {PAT_LLAMA3}},
    {"qwen2|deepseek-r1-qwen|qwen3|megrez", {PAT_QWEN2}},
    {"starcoder|refact|smollm|command-r|codeshell|exaone|minerva",
     {PAT_DIGIT, PAT_GPT2}},
    {"falcon", {PAT_PUNCT, PAT_GPT2, "[0-9][0-9][0-9]"}},
    {"deepseek-llm",
     {"[\\r\\n]", PAT_DS_LETTERS, PAT_DS_PUNCT, "\\s+$", PAT_DS_CJK,
      PAT_DIGIT}},
    {"deepseek-coder",
     {"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", PAT_DS_CJK, PAT_DIGIT}},
    {"deepseek-v3", {"\\p{N}{1,3}", PAT_DS3_CJK, PAT_DS3_MAIN}},
    {"tekken", {PAT_TEKKEN}},
};

/* ---- compile ----------------------------------------------------------- */

hp_err hp_tok__pretok_new(const char *const *patterns, int n,
                          hp_tok__pretok **out, hp_errbuf *eb)
{
    *out = NULL;
    if (n < 0 || n > MAX_PATTERNS)
        return hp_errf(eb, HP_ERR_UNSUPPORTED,
                       "pre-tokenizer: %d patterns (at most %d)", n,
                       MAX_PATTERNS);
    hp_tok__pretok *p = calloc(1, sizeof *p);
    if (!p)
        return hp_errf(eb, HP_ERR_NOMEM, "pre-tokenizer: out of memory");
    for (int i = 0; i < n; i++) {
        int ec;
        PCRE2_SIZE at;
        p->code[i] = pcre2_compile((PCRE2_SPTR)patterns[i],
                                   PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP |
                                       PCRE2_MATCH_INVALID_UTF,
                                   &ec, &at, NULL);
        if (!p->code[i]) {
            PCRE2_UCHAR msg[120];
            pcre2_get_error_message(ec, msg, sizeof msg);
            hp_tok__pretok_free(p);
            return hp_errf(eb, HP_ERR_UNSUPPORTED,
                           "pre-tokenizer regex %d: %s at offset %zu", i,
                           (const char *)msg, (size_t)at);
        }
        p->n = i + 1;
        /* JIT is an optimisation only: without it matching is slower. */
        (void)pcre2_jit_compile(p->code[i], PCRE2_JIT_COMPLETE);
    }
    *out = p;
    return HP_OK;
}

/* True if the '|'-separated list has name[0..nl). */
static bool in_list(const char *list, const char *name, size_t nl)
{
    const char *s = list;
    for (;;) {
        const char *e = strchr(s, '|');
        size_t l = e ? (size_t)(e - s) : strlen(s);
        if (l == nl && memcmp(s, name, nl) == 0)
            return true;
        if (!e)
            return false;
        s = e + 1;
    }
}

hp_err hp_tok__pretok_named(const char *name, size_t nl,
                            hp_tok__pretok **out, hp_errbuf *eb)
{
    if (!name || nl == 0) {
        name = "default";
        nl = 7;
    }
    for (size_t t = 0; t < sizeof TABLE / sizeof TABLE[0]; t++) {
        if (!in_list(TABLE[t].names, name, nl))
            continue;
        int n = 0;
        while (n < MAX_PATTERNS && TABLE[t].pats[n])
            n++;
        return hp_tok__pretok_new(TABLE[t].pats, n, out, eb);
    }
    *out = NULL;
    return hp_errf(eb, HP_ERR_UNSUPPORTED,
                   "unsupported pre-tokenizer tokenizer.ggml.pre = '%.*s'",
                   (int)(nl > 64 ? 64 : nl), name);
}

void hp_tok__pretok_free(hp_tok__pretok *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n; i++)
        pcre2_code_free(p->code[i]);
    free(p);
}

/* ---- split ------------------------------------------------------------- */

/* Append a span, growing the array. */
static bool push(hp_tok__span **sp, size_t *cap, size_t *n, size_t start,
                 size_t len)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        hp_tok__span *ns = realloc(*sp, sizeof *ns * nc);
        if (!ns)
            return false;
        *sp = ns;
        *cap = nc;
    }
    (*sp)[(*n)++] = (hp_tok__span){start, len};
    return true;
}

long hp_tok__pretok_split(const hp_tok__pretok *p, const char *text,
                          size_t len, hp_tok__span **spans, size_t *cap)
{
    size_t n = 0;
    if (len == 0)
        return 0;
    if (!push(spans, cap, &n, 0, len))
        return -1;
    if (!p || p->n == 0)
        return 1;
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    if (!md)
        return -1;
    long rc = -1;
    for (int k = 0; k < p->n; k++) {
        /* New pieces go after the old ones, then move to the front. */
        size_t old = n;
        for (size_t i = 0; i < old; i++) {
            size_t st = (*spans)[i].start, sl = (*spans)[i].len;
            const char *sub = text + st;
            size_t off = 0, last = 0;
            while (off <= sl) {
                int r = pcre2_match(p->code[k], (PCRE2_SPTR)sub, sl, off, 0,
                                    md, NULL);
                if (r < 0)
                    break; /* no match (or a matching limit): stop here */
                PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
                size_t ms = ov[0], me = ov[1];
                if (ms > last && !push(spans, cap, &n, st + last, ms - last))
                    goto done;
                if (me > ms && !push(spans, cap, &n, st + ms, me - ms))
                    goto done;
                if (me > last)
                    last = me;
                if (me > ms) {
                    off = me;
                } else {
                    /* Empty match: step over one character. */
                    if (me >= sl)
                        break;
                    off = me + hp_tok__char_len(
                                   (const unsigned char *)sub + me, sl - me);
                }
            }
            if (last < sl && !push(spans, cap, &n, st + last, sl - last))
                goto done;
        }
        memmove(*spans, *spans + old, sizeof **spans * (n - old));
        n -= old;
    }
    rc = (long)n;
done:
    pcre2_match_data_free(md);
    return rc;
}
