/* tok_hf.c: build an hp_vocab from a Hugging Face tokenizer.json (and an
 * optional tokenizer_config.json), the same object hp_vocab_load makes
 * from GGUF metadata.
 *
 * Understood: model.type "BPE" (vocab + merges as "a b" strings or [a, b]
 * pairs, ignore_merges, byte_fallback, unk_token) and "WordPiece" (its
 * "##" continuations are rewritten to the GGUF convention: word starts
 * get "▁", continuations lose "##"); added_tokens (special -> control,
 * others -> user-defined, always matched as text); normalizers NFC,
 * Replace(" " -> "▁"), Prepend("▁"), BertNormalizer, Sequence;
 * pre-tokenizers ByteLevel, Split (Regex or String, Isolated), Digits,
 * Punctuation, Metaspace, BertPreTokenizer, Sequence; post-processors
 * TemplateProcessing, BertProcessing, RobertaProcessing, ByteLevel for
 * BOS/EOS. Anything else is refused by name (HP_ERR_UNSUPPORTED), never
 * guessed. tokenizer_config.json may set add_bos_token, add_eos_token,
 * bos_token and eos_token. Owns nothing after loading: the JSON is freed. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model/tok_impl.h"

#define MAX_PATS 8

/* What the JSON sections decided, before the vocabulary exists. */
typedef struct hfspec {
    const char *pats[MAX_PATS]; /* borrows: JSON strings or literals */
    int npat;
    char *owned[MAX_PATS];      /* owns: escaped String patterns */
    int nowned;
    bool byte_level, nfc, metaspace, prepend, lowercase;
    bool wordpiece;
    const char *bos_text, *eos_text; /* borrows: from post_processor */
    int add_bos, add_eos;       /* -1 = unset */
} hfspec;

static const char *type_of(json_t *o)
{
    const char *t = json_string_value(json_object_get(o, "type"));
    return t ? t : "";
}

static hp_err add_pat(hfspec *s, const char *p, hp_errbuf *eb)
{
    if (s->npat == MAX_PATS)
        return hp_errf(eb, HP_ERR_UNSUPPORTED,
                       "pre_tokenizer: more than %d splits", MAX_PATS);
    s->pats[s->npat++] = p;
    return HP_OK;
}

/* The GPT-2 split ByteLevel(use_regex) stands for. */
#define HF_GPT2 \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+" \
    "|\\s+(?!\\S)|\\s+"

static hp_err pre_tok(hfspec *s, json_t *o, hp_errbuf *eb)
{
    const char *t = type_of(o);
    if (json_is_null(o) || !o)
        return HP_OK;
    if (!strcmp(t, "Sequence")) {
        json_t *a = json_object_get(o, "pretokenizers");
        size_t i;
        json_t *x;
        json_array_foreach(a, i, x) {
            hp_err err = pre_tok(s, x, eb);
            if (err != HP_OK)
                return err;
        }
        return HP_OK;
    }
    if (!strcmp(t, "ByteLevel")) {
        s->byte_level = true;
        json_t *ur = json_object_get(o, "use_regex");
        if (ur && !json_is_true(ur))
            return HP_OK;
        return add_pat(s, HF_GPT2, eb);
    }
    if (!strcmp(t, "Digits"))
        return add_pat(s, json_is_true(json_object_get(o, "individual_digits"))
                              ? "\\p{N}" : "\\p{N}+", eb);
    if (!strcmp(t, "Punctuation"))
        return add_pat(s, "[\\p{P}$+<=>^`|~]+", eb);
    if (!strcmp(t, "BertPreTokenizer") && s->wordpiece)
        return HP_OK; /* built into the WordPiece encoder */
    if (!strcmp(t, "Metaspace")) {
        /* Spaces become "▁"; the split on "▁" is left out because merges
         * of such vocabularies never cross a word start anyway. */
        const char *ps = json_string_value(json_object_get(o, "prepend_scheme"));
        s->metaspace = true;
        s->prepend = !ps || strcmp(ps, "never") != 0;
        return HP_OK;
    }
    if (!strcmp(t, "Split")) {
        json_t *pat = json_object_get(o, "pattern");
        const char *beh = json_string_value(json_object_get(o, "behavior"));
        const char *rx = json_string_value(json_object_get(pat, "Regex"));
        const char *str = json_string_value(json_object_get(pat, "String"));
        if (json_is_true(json_object_get(o, "invert")))
            return hp_errf(eb, HP_ERR_UNSUPPORTED,
                           "pre_tokenizer: inverted Split");
        /* Gemma splits on " " after its normalizer replaced every space:
         * nothing is left to split on. */
        if (str && !strcmp(str, " ") && s->metaspace)
            return HP_OK;
        if (!beh || strcmp(beh, "Isolated") != 0)
            return hp_errf(eb, HP_ERR_UNSUPPORTED,
                           "pre_tokenizer: Split behavior '%s'",
                           beh ? beh : "?");
        if (rx)
            return add_pat(s, rx, eb);
        if (str && s->nowned < MAX_PATS) {
            /* A literal: PCRE2's \Q...\E (no "\E" inside real patterns). */
            size_t l = strlen(str);
            char *q = malloc(l + 5);
            if (!q)
                return hp_errf(eb, HP_ERR_NOMEM, "out of memory");
            snprintf(q, l + 5, "\\Q%s\\E", str);
            s->owned[s->nowned++] = q;
            return add_pat(s, q, eb);
        }
        return hp_errf(eb, HP_ERR_FORMAT, "pre_tokenizer: Split pattern");
    }
    return hp_errf(eb, HP_ERR_UNSUPPORTED, "unsupported pre_tokenizer '%s'",
                   t);
}

static hp_err normalizer(hfspec *s, json_t *o, hp_errbuf *eb)
{
    const char *t = type_of(o);
    if (!o || json_is_null(o))
        return HP_OK;
    if (!strcmp(t, "Sequence")) {
        size_t i;
        json_t *x;
        json_array_foreach(json_object_get(o, "normalizers"), i, x) {
            hp_err err = normalizer(s, x, eb);
            if (err != HP_OK)
                return err;
        }
        return HP_OK;
    }
    if (!strcmp(t, "NFC")) {
        s->nfc = true;
        return HP_OK;
    }
    if (!strcmp(t, "Replace")) {
        const char *from = json_string_value(
            json_object_get(json_object_get(o, "pattern"), "String"));
        const char *to = json_string_value(json_object_get(o, "content"));
        if (from && to && !strcmp(from, " ") && !strcmp(to, HP_TOK__WS)) {
            s->metaspace = true;
            return HP_OK;
        }
        return hp_errf(eb, HP_ERR_UNSUPPORTED,
                       "normalizer Replace other than ' ' -> U+2581");
    }
    if (!strcmp(t, "Prepend")) {
        const char *p = json_string_value(json_object_get(o, "prepend"));
        if (p && !strcmp(p, HP_TOK__WS)) {
            s->prepend = true;
            return HP_OK;
        }
        return hp_errf(eb, HP_ERR_UNSUPPORTED, "normalizer Prepend");
    }
    if (!strcmp(t, "BertNormalizer") && s->wordpiece) {
        s->lowercase = json_is_true(json_object_get(o, "lowercase"));
        return HP_OK;
    }
    return hp_errf(eb, HP_ERR_UNSUPPORTED, "unsupported normalizer '%s'", t);
}

/* BOS/EOS that the post-processor puts around a single sequence. */
static void post_proc(hfspec *s, json_t *o)
{
    const char *t = type_of(o);
    if (!strcmp(t, "Sequence")) {
        size_t i;
        json_t *x;
        json_array_foreach(json_object_get(o, "processors"), i, x)
            post_proc(s, x);
    } else if (!strcmp(t, "TemplateProcessing")) {
        json_t *single = json_object_get(o, "single");
        size_t n = json_array_size(single);
        for (size_t i = 0; i < n; i++) {
            json_t *sp = json_object_get(json_array_get(single, i),
                                         "SpecialToken");
            const char *id = json_string_value(json_object_get(sp, "id"));
            if (!id)
                continue;
            if (i == 0) {
                s->bos_text = id;
                s->add_bos = 1;
            } else {
                s->eos_text = id;
                s->add_eos = 1;
            }
        }
        if (n > 0 && s->add_bos < 0)
            s->add_bos = 0;
        if (n > 0 && s->add_eos < 0)
            s->add_eos = 0;
    } else if (!strcmp(t, "BertProcessing") ||
               !strcmp(t, "RobertaProcessing")) {
        s->bos_text = json_string_value(
            json_array_get(json_object_get(o, "cls"), 0));
        s->eos_text = json_string_value(
            json_array_get(json_object_get(o, "sep"), 0));
        s->add_bos = s->add_eos = 1;
    }
}

/* A token value of tokenizer_config.json: "text" or {"content": "text"}. */
static const char *cfg_token(json_t *cfg, const char *key)
{
    json_t *x = json_object_get(cfg, key);
    if (json_is_object(x))
        x = json_object_get(x, "content");
    return json_string_value(x);
}

static int32_t find_text(const hp_vocab *v, const char *s)
{
    return s ? hp_tok__lookup(v, s, strlen(s)) : -1;
}

/* path, or path/tokenizer.json when path is a folder. */
static char *json_path(const char *path, const char *name)
{
    struct stat st;
    size_t l = strlen(path) + strlen(name) + 2;
    char *p = malloc(l);
    if (!p)
        return NULL;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        snprintf(p, l, "%s/%s", path, name);
    else
        snprintf(p, l, "%s", path);
    return p;
}

/* Token texts, ids and types from model.vocab and added_tokens. */
static hp_err build_tokens(hp_vocab *v, json_t *model, json_t *added,
                           const hfspec *s, char **wp_buf, hp_errbuf *eb)
{
    json_t *vocab = json_object_get(model, "vocab");
    if (!json_is_object(vocab))
        return hp_errf(eb, HP_ERR_FORMAT, "model.vocab is not an object");
    int64_t maxid = -1;
    const char *key;
    json_t *val;
    json_object_foreach(vocab, key, val) {
        if (!json_is_integer(val) || json_integer_value(val) < 0 ||
            json_integer_value(val) >= 0x7FFFFFF)
            return hp_errf(eb, HP_ERR_FORMAT, "model.vocab['%.40s']: bad id",
                           key);
        if (json_integer_value(val) > maxid)
            maxid = json_integer_value(val);
    }
    size_t i;
    json_t *at;
    json_array_foreach(added, i, at) {
        json_t *id = json_object_get(at, "id");
        if (!json_is_integer(id) || json_integer_value(id) < 0 ||
            json_integer_value(id) >= 0x7FFFFFF ||
            !json_is_string(json_object_get(at, "content")))
            return hp_errf(eb, HP_ERR_FORMAT, "added_tokens[%zu]: bad entry",
                           i);
        if (json_integer_value(id) > maxid)
            maxid = json_integer_value(id);
    }
    if (maxid < 0)
        return hp_errf(eb, HP_ERR_FORMAT, "empty vocabulary");
    int32_t n = (int32_t)(maxid + 1);
    hp_str *strs = calloc((size_t)n, sizeof *strs);
    bool *is_added = calloc((size_t)n, 1);
    if (!strs || !is_added) {
        free(strs);
        free(is_added);
        return hp_errf(eb, HP_ERR_NOMEM, "out of memory");
    }
    json_object_foreach(vocab, key, val) {
        int32_t id = (int32_t)json_integer_value(val);
        strs[id] = (hp_str){key, strlen(key)};
    }
    json_array_foreach(added, i, at) {
        int32_t id = (int32_t)json_integer_value(json_object_get(at, "id"));
        json_t *c = json_object_get(at, "content");
        strs[id] = (hp_str){json_string_value(c), json_string_length(c)};
        is_added[id] = true;
    }
    if (s->wordpiece) {
        /* GGUF convention: "▁word" starts, bare continuations. */
        size_t total = 0;
        for (int32_t k = 0; k < n; k++)
            total += strs[k].len + 3;
        char *b = malloc(total + 1);
        if (!b) {
            free(strs);
            free(is_added);
            return hp_errf(eb, HP_ERR_NOMEM, "out of memory");
        }
        *wp_buf = b;
        for (int32_t k = 0; k < n; k++) {
            if (is_added[k] || strs[k].len == 0)
                continue;
            char *d = b;
            if (strs[k].len > 2 && !memcmp(strs[k].ptr, "##", 2)) {
                memcpy(b, strs[k].ptr + 2, strs[k].len - 2);
                b += strs[k].len - 2;
            } else {
                memcpy(b, HP_TOK__WS, 3);
                memcpy(b + 3, strs[k].ptr, strs[k].len);
                b += strs[k].len + 3;
            }
            strs[k] = (hp_str){d, (size_t)(b - d)};
        }
    }
    hp_err err = hp_tok__init_tokens(v, n, strs, eb);
    if (err == HP_OK) {
        for (int32_t k = 0; k < n; k++) {
            if (!strs[k].ptr)
                v->type[k] = HP_TOKTYPE_UNUSED; /* a hole in the ids */
        }
        json_array_foreach(added, i, at) {
            int32_t id = (int32_t)json_integer_value(json_object_get(at, "id"));
            v->type[id] = json_is_true(json_object_get(at, "special"))
                              ? HP_TOKTYPE_CONTROL
                              : HP_TOKTYPE_USER_DEFINED;
        }
    }
    free(strs);
    free(is_added);
    return err;
}

/* Merges: strings "a b" or pairs ["a", "b"]. */
static hp_err build_merges(hp_vocab *v, json_t *model, hp_errbuf *eb)
{
    json_t *m = json_object_get(model, "merges");
    size_t n = json_array_size(m);
    if (n > 0x7FFFFFF)
        return hp_errf(eb, HP_ERR_FORMAT, "model.merges too long");
    hp_str *l = malloc(sizeof *l * (n + 1)), *r = malloc(sizeof *r * (n + 1));
    hp_err err = HP_OK;
    bool pairs = n > 0 && json_is_array(json_array_get(m, 0));
    if (!l || !r) {
        err = hp_errf(eb, HP_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *x = json_array_get(m, i);
        json_t *a = pairs ? json_array_get(x, 0) : x;
        json_t *b = pairs ? json_array_get(x, 1) : NULL;
        if (!json_is_string(a) || (pairs && !json_is_string(b))) {
            err = hp_errf(eb, HP_ERR_FORMAT, "model.merges[%zu]: bad entry",
                          i);
            goto done;
        }
        l[i] = (hp_str){json_string_value(a), json_string_length(a)};
        if (pairs)
            r[i] = (hp_str){json_string_value(b), json_string_length(b)};
    }
    err = hp_tok__bpe_init(v, l, pairs ? r : NULL, (int32_t)n, eb);
done:
    free(l);
    free(r);
    return err;
}

hp_err hp_vocab_load_hf(const char *tokenizer_json_path,
                        const char *tokenizer_config_path, hp_vocab **out,
                        hp_errbuf *eb)
{
    hfspec s = {.add_bos = -1, .add_eos = -1};
    json_t *root = NULL, *cfg = NULL;
    hp_vocab *v = NULL;
    char *wp_buf = NULL;
    char *tpath = NULL, *cpath = NULL;
    hp_err err;
    json_error_t je;

    *out = NULL;
    if (!tokenizer_json_path)
        return hp_errf(eb, HP_ERR_INVALID, "no tokenizer.json path");
    tpath = json_path(tokenizer_json_path, "tokenizer.json");
    if (!tpath)
        return hp_errf(eb, HP_ERR_NOMEM, "out of memory");
    root = json_load_file(tpath, 0, &je);
    if (!root) {
        FILE *f = fopen(tpath, "rb");
        if (!f)
            err = hp_errf(eb, HP_ERR_IO, "%s: %s", tpath, strerror(errno));
        else
            err = hp_errf(eb, HP_ERR_FORMAT, "%s: line %d: %s", tpath,
                          je.line, je.text);
        if (f)
            fclose(f);
        goto fail;
    }
    if (tokenizer_config_path) {
        cpath = json_path(tokenizer_config_path, "tokenizer_config.json");
    } else if (strcmp(tpath, tokenizer_json_path) != 0) {
        /* A folder was given: its tokenizer_config.json is optional. */
        cpath = json_path(tokenizer_json_path, "tokenizer_config.json");
        FILE *f = cpath ? fopen(cpath, "rb") : NULL;
        if (f)
            fclose(f);
        else {
            free(cpath);
            cpath = NULL;
        }
    }
    if (cpath) {
        /* model_max_length is often 1e30 written as an integer. */
        cfg = json_load_file(cpath, JSON_DECODE_INT_AS_REAL, &je);
        if (!cfg) {
            err = hp_errf(eb, HP_ERR_FORMAT, "%s: line %d: %s", cpath,
                          je.line, je.text);
            goto fail;
        }
    }

    json_t *model = json_object_get(root, "model");
    const char *mt = type_of(model);
    if (!strcmp(mt, "WordPiece")) {
        s.wordpiece = true;
    } else if (strcmp(mt, "BPE") != 0) {
        err = hp_errf(eb, HP_ERR_UNSUPPORTED,
                      "%s: unsupported model.type '%.40s'", tpath,
                      mt[0] ? mt : "(none)");
        goto fail;
    }
    const char *csp = json_string_value(
        json_object_get(model, "continuing_subword_prefix"));
    if (!s.wordpiece && csp && csp[0]) {
        err = hp_errf(eb, HP_ERR_UNSUPPORTED,
                      "BPE continuing_subword_prefix '%.20s'", csp);
        goto fail;
    }
    err = normalizer(&s, json_object_get(root, "normalizer"), eb);
    if (err == HP_OK)
        err = pre_tok(&s, json_object_get(root, "pre_tokenizer"), eb);
    if (err != HP_OK)
        goto fail;
    post_proc(&s, json_object_get(root, "post_processor"));

    v = calloc(1, sizeof *v);
    if (!v) {
        err = hp_errf(eb, HP_ERR_NOMEM, "out of memory");
        goto fail;
    }
    v->kind = s.wordpiece ? HP_TOK__WPM : HP_TOK__BPE;
    v->bos = v->eos = v->unk = v->pad = -1;
    v->match_user_defined = true;
    err = build_tokens(v, model, json_object_get(root, "added_tokens"), &s,
                       &wp_buf, eb);
    if (err != HP_OK)
        goto fail;
    bool byte_fallback = json_is_true(json_object_get(model, "byte_fallback"));
    if (byte_fallback) {
        for (int32_t k = 0; k < v->n; k++) {
            const char *t = v->text + v->off[k];
            if (v->len[k] == 6 && !memcmp(t, "<0x", 3) && t[5] == '>')
                v->type[k] = HP_TOKTYPE_BYTE;
        }
    }
    err = hp_tok__build_tables(v, eb);
    if (err != HP_OK)
        goto fail;

    v->byte_level = s.byte_level;
    v->byte_fallback = byte_fallback;
    v->nfc = s.nfc;
    v->metaspace = s.metaspace;
    v->add_space_prefix = s.metaspace && s.prepend;
    v->ignore_merges = json_is_true(json_object_get(model, "ignore_merges"));
    v->unk = find_text(v, json_string_value(json_object_get(model,
                                                            "unk_token")));
    if (s.wordpiece) {
        hp_tok__wpm_init(v);
        v->lowercase = s.lowercase;
        json_t *mx = json_object_get(model, "max_input_chars_per_word");
        if (json_is_integer(mx) && json_integer_value(mx) > 0)
            v->max_word_chars = (int)json_integer_value(mx);
        /* The unk text was looked up before the "▁" rewrite. */
        const char *ut = json_string_value(json_object_get(model,
                                                           "unk_token"));
        if (v->unk < 0)
            v->unk = find_text(v, ut);
    } else {
        err = build_merges(v, model, eb);
        if (err == HP_OK)
            err = hp_tok__pretok_new(s.pats, s.npat, &v->pre, eb);
        if (err != HP_OK)
            goto fail;
    }

    /* BOS/EOS: tokenizer_config.json wins over the post-processor. */
    const char *bt = s.bos_text, *et = s.eos_text;
    if (cfg && json_object_get(cfg, "bos_token"))
        bt = cfg_token(cfg, "bos_token");
    if (cfg && cfg_token(cfg, "eos_token"))
        et = cfg_token(cfg, "eos_token");
    v->bos = find_text(v, bt);
    v->eos = find_text(v, et);
    if (cfg && cfg_token(cfg, "pad_token"))
        v->pad = find_text(v, cfg_token(cfg, "pad_token"));
    json_t *ab = cfg ? json_object_get(cfg, "add_bos_token") : NULL;
    json_t *ae = cfg ? json_object_get(cfg, "add_eos_token") : NULL;
    if (json_is_boolean(ab))
        v->add_bos = json_is_true(ab);
    else if (s.add_bos >= 0)
        v->add_bos = s.add_bos == 1;
    else
        /* Families that always start with BOS (Llama 3's tokenizer.json
         * may carry only a ByteLevel post-processor). */
        v->add_bos = v->bos >= 0 &&
                     (find_text(v, "<|begin_of_text|>") == v->bos ||
                      find_text(v, "<s>") == v->bos ||
                      find_text(v, "<bos>") == v->bos);
    if (json_is_boolean(ae))
        v->add_eos = json_is_true(ae);
    else
        v->add_eos = s.add_eos == 1;
    /* The EOG set was built before EOS was known. */
    if (v->eos >= 0 && !hp_vocab_is_eog(v, v->eos) &&
        v->n_eog < HP_TOK__MAX_EOG) {
        memmove(v->eog + 1, v->eog, sizeof v->eog[0] * (size_t)v->n_eog);
        v->eog[0] = v->eos;
        v->n_eog++;
    }

    *out = v;
    v = NULL;
    err = HP_OK;
fail:
    hp_vocab_free(v);
    for (int i = 0; i < s.nowned; i++)
        free(s.owned[i]);
    free(wp_buf);
    free(tpath);
    free(cpath);
    json_decref(root);
    json_decref(cfg);
    return err;
}
