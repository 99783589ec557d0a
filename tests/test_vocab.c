/* test_vocab.c: the spec of model/vocab.c.
 *
 * vocab-1.x: the reference vectors of shared/vocab (llama-spm, phi-3) must
 *            match id for id, and decode(encode(x)) must give x back.
 * vocab-2.x: BOS, special tokens, byte fallback, decoding of pieces.
 * vocab-3.x: merge order and loader validation on tiny synthetic
 *            vocabularies written with gguf_write.
 * Shared material comes from $HOTPATH_SHARED; tests needing it skip when it
 * is absent. */
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

#include "model/gguf.h"
#include "model/gguf_write.h"
#include "model/vocab.h"

#define CASE_SEP "\n__ggml_vocab_test__\n"

/* ---- helpers ------------------------------------------------------------ */

/* $HOTPATH_SHARED/rel, or NULL (test skipped) when it is not there. */
static char *shared_path(const char *rel)
{
    const char *root = getenv("HOTPATH_SHARED");
    static char buf[4096];
    if (!root)
        return NULL;
    snprintf(buf, sizeof buf, "%s/%s", root, rel);
    if (access(buf, R_OK) != 0)
        return NULL;
    return buf;
}

static hp_err load_path(const char *path, hp_vocab **v, hp_errbuf *eb)
{
    hp_gguf *g = NULL;
    hp_err err = hp_gguf_open(path, &g, eb);
    if (err != HP_OK)
        return err;
    err = hp_vocab_load(g, v, eb);
    hp_gguf_close(g); /* the vocabulary must outlive the file */
    return err;
}

/* Load shared/rel or skip the test. */
static hp_vocab *load_shared(const char *rel)
{
    char *p = shared_path(rel);
    if (!p) {
        fprintf(stderr, "skipped: %s not found (HOTPATH_SHARED)\n", rel);
        skip();
    }
    hp_vocab *v = NULL;
    hp_errbuf eb = {{0}};
    hp_err err = load_path(p, &v, &eb);
    if (err != HP_OK)
        fprintf(stderr, "%s: %s\n", p, eb.msg);
    assert_int_equal(err, HP_OK);
    assert_non_null(v);
    return v;
}

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long len = ftell(f);
    assert_true(len >= 0);
    rewind(f);
    char *buf = malloc((size_t)len + 1);
    assert_non_null(buf);
    *n = fread(buf, 1, (size_t)len, f);
    assert_int_equal(*n, (size_t)len);
    buf[*n] = '\0';
    fclose(f);
    return buf;
}

/* Encode into a fresh array; *n receives the count. */
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

/* Compare the ids of s with the expected list. */
static void expect_ids(const hp_vocab *v, const char *s, bool bos,
                       bool special, const int32_t *want, int nwant)
{
    int n;
    int32_t *ids = enc(v, s, strlen(s), bos, special, &n);
    if (n != nwant || memcmp(ids, want, sizeof *ids * (size_t)n) != 0) {
        fprintf(stderr, "encode \"%s\": got", s);
        for (int i = 0; i < n; i++)
            fprintf(stderr, " %d", (int)ids[i]);
        fprintf(stderr, ", want");
        for (int i = 0; i < nwant; i++)
            fprintf(stderr, " %d", (int)want[i]);
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

static bool contains(const int32_t *ids, int n, int32_t id)
{
    for (int i = 0; i < n; i++)
        if (ids[i] == id)
            return true;
    return false;
}

/* ---- vocab-1.x: reference vectors --------------------------------------- */

/* Every case of X.inp must give the line of X.out (format " id id ..."),
 * and decode(encode(x)) with the dummy prefix removed must give x. */
static void check_vectors(const char *name)
{
    char rel[256];
    snprintf(rel, sizeof rel, "vocab/%s.gguf", name);
    hp_vocab *v = load_shared(rel);

    size_t ni, no;
    snprintf(rel, sizeof rel, "vocab/%s.gguf.inp", name);
    char *inp = slurp(shared_path(rel), &ni);
    snprintf(rel, sizeof rel, "vocab/%s.gguf.out", name);
    char *outp = slurp(shared_path(rel), &no);

    char *line = outp;
    size_t pos = 0;
    int ncase = 0, failed = 0;
    while (pos < ni) {
        const char *hit = strstr(inp + pos, CASE_SEP);
        assert_non_null(hit); /* the file ends with a separator */
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

        char dec[8192];
        size_t dn = hp_detokenize(v, ids, n, true, dec, sizeof dec);
        if (dn != len || memcmp(dec, inp + pos, len) != 0) {
            fprintf(stderr, "%s case %d: decode(encode(x)) != x\n", name,
                    ncase);
            failed++;
        }
        free(ids);
        line = nl + 1;
        pos += len + strlen(CASE_SEP);
        ncase++;
    }
    assert_int_equal(ncase, 46);
    assert_int_equal(failed, 0);
    free(inp);
    free(outp);
    hp_vocab_free(v);
}

static void vocab_llama_spm_vectors(void **state)
{
    (void)state;
    check_vectors("ggml-vocab-llama-spm");
}

static void vocab_phi3_vectors(void **state)
{
    (void)state;
    check_vectors("ggml-vocab-phi-3");
}

/* vocab-1.3: the tiny real model's vocabulary (models/README.md). */
static void vocab_stories260k_prompt(void **state)
{
    (void)state;
    hp_vocab *v = load_shared("models/stories260K.gguf");
    assert_int_equal(hp_vocab_size(v), 512);
    assert_int_equal(hp_vocab_bos(v), 1);
    assert_int_equal(hp_vocab_eos(v), 2);
    assert_true(hp_vocab_add_bos(v));
    EXPECT(v, "Once upon a time", false, false, 403, 407, 261, 378);
    EXPECT(v, "Once upon a time", true, false, 1, 403, 407, 261, 378);
    hp_vocab_free(v);
}

/* vocab-1.4: every token's text maps back to its id (the hash table holds
 * all 32k entries), and accessors reject bad ids. */
static void vocab_find_every_token(void **state)
{
    (void)state;
    hp_vocab *v = load_shared("vocab/ggml-vocab-llama-spm.gguf");
    int32_t n = hp_vocab_size(v);
    assert_int_equal(n, 32000);
    for (int32_t id = 0; id < n; id++) {
        const char *t = hp_vocab_text(v, id);
        assert_non_null(t);
        assert_int_equal(hp_vocab_find(v, t, strlen(t)), id);
    }
    assert_null(hp_vocab_text(v, -1));
    assert_null(hp_vocab_text(v, n));
    assert_string_equal(hp_vocab_text(v, 1), "<s>");
    assert_int_equal(hp_vocab_find(v, "\xE2\x96\x81Hello", 8), 15043);
    assert_int_equal(hp_vocab_find(v, "no such token!", 14), -1);
    assert_int_equal(hp_vocab_find(v, "", 0), -1);
    hp_vocab_free(v);
}

/* ---- vocab-2.x: BOS, special tokens, bytes, decoding -------------------- */

/* vocab-2.1: BOS is added once, also when the text itself starts with it. */
static void vocab_bos_added_once(void **state)
{
    (void)state;
    hp_vocab *v = load_shared("vocab/ggml-vocab-llama-spm.gguf");
    EXPECT(v, "Hello world", true, false, 1, 15043, 3186);
    /* The empty text is no tokens, BOS alone with add_bos (no prefix). */
    assert_int_equal(hp_tokenize(v, "", 0, false, false, NULL, 0), 0);
    assert_int_equal(hp_tokenize(v, NULL, 0, false, false, NULL, 0), 0);
    EXPECT(v, "", true, false, 1);
    /* parse_special produced the BOS already: no second one. */
    EXPECT(v, "<s>hello", true, true, 1, 22172);
    EXPECT(v, "<s>", true, true, 1);
    /* Without parse_special "<s>" is text, so BOS is added in front. */
    int n;
    int32_t *ids = enc(v, "<s>hello", 8, true, false, &n);
    assert_true(n > 2);
    assert_int_equal(ids[0], 1);
    assert_false(contains(ids + 1, n - 1, 1));
    free(ids);
    hp_vocab_free(v);
}

/* vocab-2.2: control texts become ids only with parse_special. Each text
 * segment that starts the text or follows a special token gets the dummy
 * prefix (as llama.cpp does): "<s>hello" -> <s> "▁hello", not "hello". */
static void vocab_parse_special(void **state)
{
    (void)state;
    hp_vocab *v = load_shared("vocab/ggml-vocab-llama-spm.gguf");
    EXPECT(v, "<s>hello", false, true, 1, 22172);
    EXPECT(v, "hello</s>", false, true, 22172, 2);
    EXPECT(v, "hello</s>world", false, true, 22172, 2, 3186);
    int n;
    int32_t *ids = enc(v, "hello</s><s>", 12, false, false, &n);
    assert_false(contains(ids, n, 1));
    assert_false(contains(ids, n, 2));
    free(ids);
    /* Byte-token texts are never parsed: "<0x0A>" is not a newline. */
    ids = enc(v, "<0x0A>", 6, false, true, &n);
    assert_false(contains(ids, n, 13));
    free(ids);
    hp_vocab_free(v);

    v = load_shared("vocab/ggml-vocab-phi-3.gguf");
    const char *chat = "<|user|>\nHi<|end|>\n<|assistant|>";
    ids = enc(v, chat, strlen(chat), false, true, &n);
    assert_true(n >= 4);
    assert_int_equal(ids[0], 32010);
    assert_true(contains(ids, n, 32007));
    assert_int_equal(ids[n - 1], 32001);
    free(ids);
    ids = enc(v, chat, strlen(chat), false, false, &n);
    for (int i = 0; i < n; i++)
        assert_true(ids[i] < 32000);
    free(ids);
    hp_vocab_free(v);
}

/* vocab-2.3: characters with no piece fall back to <0xNN> byte tokens;
 * ill-formed UTF-8 is encoded byte by byte, never rejected. */
static void vocab_byte_fallback(void **state)
{
    (void)state;
    hp_vocab *v = load_shared("vocab/ggml-vocab-llama-spm.gguf");
    /* U+1F999 (llama emoji) has no piece: its four bytes. */
    EXPECT(v, "\xF0\x9F\xA6\x99", false, false, 29871, 243, 162, 169, 156);
    assert_int_equal(hp_vocab_find(v, "<0xFF>", 6), 258);
    EXPECT(v, "\xFF", false, false, 29871, 258);
    EXPECT(v, "a\xC3", false, false, 263, 198); /* truncated "é" */
    /* An ill-formed byte between valid text does not disturb it. */
    int n;
    int32_t *ids = enc(v, "Hello\x80world", 11, false, false, &n);
    assert_true(contains(ids, n, 3 + 0x80));
    char dec[64];
    size_t dn = hp_detokenize(v, ids, n, true, dec, sizeof dec);
    assert_int_equal(dn, 11);
    assert_memory_equal(dec, "Hello\x80world", 11);
    free(ids);
    hp_vocab_free(v);
}

/* vocab-2.4: pieces as they appear in text. */
static void vocab_token_to_piece(void **state)
{
    (void)state;
    hp_vocab *v = load_shared("vocab/ggml-vocab-llama-spm.gguf");
    char buf[32];
    assert_int_equal(hp_token_to_piece(v, 13, buf, sizeof buf), 1);
    assert_int_equal(buf[0], '\n'); /* <0x0A> */
    assert_int_equal(hp_token_to_piece(v, 258, buf, sizeof buf), 1);
    assert_int_equal((unsigned char)buf[0], 0xFF); /* <0xFF> */
    assert_int_equal(hp_token_to_piece(v, 15043, buf, sizeof buf), 6);
    assert_memory_equal(buf, " Hello", 6);
    assert_int_equal(hp_token_to_piece(v, 1, buf, sizeof buf), 0); /* BOS */
    assert_int_equal(hp_token_to_piece(v, 2, buf, sizeof buf), 0); /* EOS */
    /* UNK decodes as SentencePiece's " ⁇ ". */
    assert_int_equal(hp_token_to_piece(v, 0, buf, sizeof buf), 5);
    assert_memory_equal(buf, " \xE2\x81\x87 ", 5);
    /* A small buffer gets a prefix; the full length is returned. */
    memset(buf, '#', sizeof buf);
    assert_int_equal(hp_token_to_piece(v, 15043, buf, 3), 6);
    assert_memory_equal(buf, " He#", 4);
    assert_int_equal(hp_token_to_piece(v, -1, buf, sizeof buf), 0);
    assert_int_equal(hp_token_to_piece(v, 32000, buf, sizeof buf), 0);
    hp_vocab_free(v);
}

/* vocab-2.5: whole-sequence decoding drops BOS and one dummy-prefix space,
 * and truncates safely. */
static void vocab_detokenize(void **state)
{
    (void)state;
    hp_vocab *v = load_shared("vocab/ggml-vocab-llama-spm.gguf");
    const int32_t ids[] = {1, 15043, 3186};
    char buf[64];
    assert_int_equal(hp_detokenize(v, ids, 3, true, buf, sizeof buf), 11);
    assert_string_equal(buf, "Hello world");
    assert_int_equal(hp_detokenize(v, ids, 3, false, buf, sizeof buf), 12);
    assert_string_equal(buf, " Hello world");
    memset(buf, '#', sizeof buf);
    assert_int_equal(hp_detokenize(v, ids, 3, true, buf, 6), 11);
    assert_string_equal(buf, "Hello"); /* cap - 1 bytes and a NUL */
    assert_int_equal(hp_detokenize(v, ids, 0, true, buf, sizeof buf), 0);
    assert_string_equal(buf, "");
    hp_vocab_free(v);
}

/* vocab-2.6: end of generation is EOS plus EOT-style control tokens. */
static void vocab_end_of_generation(void **state)
{
    (void)state;
    hp_vocab *v = load_shared("vocab/ggml-vocab-llama-spm.gguf");
    assert_true(hp_vocab_is_eog(v, 2));
    assert_false(hp_vocab_is_eog(v, 1));
    assert_false(hp_vocab_is_eog(v, 15043));
    assert_false(hp_vocab_is_eog(v, -1));
    hp_vocab_free(v);

    v = load_shared("vocab/ggml-vocab-phi-3.gguf");
    assert_int_equal(hp_vocab_eos(v), 32000);
    assert_true(hp_vocab_is_eog(v, 32000)); /* <|endoftext|> = EOS */
    assert_true(hp_vocab_is_eog(v, 32007)); /* <|end|> */
    assert_false(hp_vocab_is_eog(v, 32010)); /* <|user|> */
    assert_false(hp_vocab_is_eog(v, 2)); /* "</s>" is user-defined here */
    hp_vocab_free(v);
}

/* vocab-2.7: output beyond cap is counted, never written. */
static void vocab_cap_respected(void **state)
{
    (void)state;
    hp_vocab *v = load_shared("vocab/ggml-vocab-llama-spm.gguf");
    int32_t ids[4] = {-7, -7, -7, -7};
    int n = hp_tokenize(v, "Hello, world!", 13, true, false, ids, 2);
    assert_int_equal(n, 5);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], 15043);
    assert_int_equal(ids[2], -7);
    assert_int_equal(hp_tokenize(v, "Hello", 5, true, false, NULL, 0), 2);
    hp_vocab_free(v);
}

/* vocab-2.8: a ~2,000-token prompt encodes in about a millisecond (the
 * bound is loose for a shared machine; it catches quadratic work). */
static void vocab_encode_is_fast(void **state)
{
    (void)state;
    hp_vocab *v = load_shared("vocab/ggml-vocab-llama-spm.gguf");
    const char *para = "The quick brown fox jumps over the lazy dog, and "
                       "then it naps under a tree near 12 rivers. ";
    size_t pl = strlen(para), len = 0;
    char *text = malloc(pl * 100 + 1);
    assert_non_null(text);
    for (int i = 0; i < 100; i++, len += pl)
        memcpy(text + len, para, pl);
    int32_t *ids = malloc(sizeof *ids * 8192);
    assert_non_null(ids);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int n = 0;
    for (int r = 0; r < 10; r++)
        n = hp_tokenize(v, text, len, true, true, ids, 8192);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = ((double)(t1.tv_sec - t0.tv_sec) * 1e3 +
                 (double)(t1.tv_nsec - t0.tv_nsec) / 1e6) / 10;
    fprintf(stderr, "encode: %d tokens in %.3f ms\n", n, ms);
    assert_true(n > 1500 && n < 8192);
    assert_true(ms < 50.0);
    free(ids);
    free(text);
    hp_vocab_free(v);
}

/* ---- vocab-3.x: synthetic vocabularies ---------------------------------- */

typedef struct tiny {
    const char *model;      /* tokenizer.ggml.model, NULL to omit */
    int n_scores;           /* scores written, -1 = as many as tokens */
    int64_t bos;            /* bos_token_id, -2 to omit */
    bool no_space_prefix;
    bool no_byte_tokens;
} tiny;

/* Tokens of the synthetic vocabulary (scores chosen so merge order is
 * visible): "ab" and "bc" tie at -1, "abc" is reached only via "ab". */
static const char *const tiny_tok[] = {
    "<unk>", "<s>", "</s>", "\xE2\x96\x81", "a", "b", "c",
    "ab", "bc", "abc", "<0x41>", "<0xC3>", "x"};
static const float tiny_score[] = {0, 0, 0, -5, -10, -10, -10,
                                   -1, -1, -2, 0, 0, -10};
static const int32_t tiny_type[] = {2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 6, 6, 1};
#define TINY_N 13

static hp_err load_tiny(const tiny *t, hp_vocab **v, hp_errbuf *eb)
{
    char path[] = "/tmp/hp_test_vocab_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    hp_gguf_writer *w = hp_gguf_writer_new();
    assert_non_null(w);
    int n = t->no_byte_tokens ? TINY_N - 3 : TINY_N;
    if (t->model)
        assert_int_equal(hp_gguf_writer_str(w, "tokenizer.ggml.model",
                                            t->model), HP_OK);
    assert_int_equal(hp_gguf_writer_arr_str(w, "tokenizer.ggml.tokens",
                                            tiny_tok, NULL, (uint64_t)n),
                     HP_OK);
    assert_int_equal(hp_gguf_writer_arr_f32(w, "tokenizer.ggml.scores",
                                            tiny_score,
                                            (uint64_t)(t->n_scores < 0
                                                ? n : t->n_scores)), HP_OK);
    assert_int_equal(hp_gguf_writer_arr_i32(w, "tokenizer.ggml.token_type",
                                            tiny_type, (uint64_t)n), HP_OK);
    if (t->bos != -2)
        assert_int_equal(hp_gguf_writer_u32(w, "tokenizer.ggml.bos_token_id",
                                            (uint32_t)t->bos), HP_OK);
    if (t->no_space_prefix)
        assert_int_equal(hp_gguf_writer_bool(w,
                             "tokenizer.ggml.add_space_prefix", false), HP_OK);
    assert_int_equal(hp_gguf_writer_save(w, path, eb), HP_OK);
    hp_gguf_writer_free(w);
    *v = NULL;
    hp_err err = load_path(path, v, eb);
    unlink(path);
    return err;
}

/* vocab-3.1: highest score merges first; ties go to the leftmost pair. */
static void vocab_merge_order(void **state)
{
    (void)state;
    tiny t = {"llama", -1, 1, true, false};
    hp_vocab *v;
    hp_errbuf eb = {{0}};
    assert_int_equal(load_tiny(&t, &v, &eb), HP_OK);
    EXPECT(v, "abc", false, false, 9);      /* a+b (left tie) then ab+c */
    EXPECT(v, "bc", false, false, 8);
    EXPECT(v, "abab", false, false, 7, 7);
    EXPECT(v, "cab", false, false, 6, 7);
    EXPECT(v, "bcab", false, false, 8, 7);
    /* Without the dummy prefix a space is still "▁". */
    EXPECT(v, "a b", false, false, 4, 3, 5);
    /* Byte fallback: 'A' has <0x41>; 'Z' has no byte token, so UNK. */
    EXPECT(v, "A", false, false, 10);
    EXPECT(v, "Z", false, false, 0);
    hp_vocab_free(v);

    /* With no byte tokens at all, an unknown character is one UNK. */
    t.no_byte_tokens = true;
    assert_int_equal(load_tiny(&t, &v, &eb), HP_OK);
    EXPECT(v, "a\xC3\xA9", false, false, 4, 0);
    hp_vocab_free(v);
}

/* vocab-3.2: unknown tokenizer models are refused by name; a "gpt2"
 * vocabulary without merges is malformed. (The gpt2 and bert families
 * themselves are specified in test_vocab_bpe.c.) */
static void vocab_refuses_other_models(void **state)
{
    (void)state;
    tiny t = {"rwkv", -1, 1, false, false};
    hp_vocab *v = (hp_vocab *)1;
    hp_errbuf eb = {{0}};
    assert_int_equal(load_tiny(&t, &v, &eb), HP_ERR_UNSUPPORTED);
    assert_null(v);
    assert_non_null(strstr(eb.msg, "unsupported tokenizer model 'rwkv'"));

    t.model = "gpt2";
    memset(&eb, 0, sizeof eb);
    assert_int_equal(load_tiny(&t, &v, &eb), HP_ERR_FORMAT);
    assert_null(v);
    assert_non_null(strstr(eb.msg, "tokenizer.ggml.merges"));
}

/* vocab-3.3: malformed metadata is refused with a message naming the key. */
static void vocab_rejects_bad_metadata(void **state)
{
    (void)state;
    hp_vocab *v;
    hp_errbuf eb = {{0}};

    tiny t = {NULL, -1, 1, false, false};
    assert_int_equal(load_tiny(&t, &v, &eb), HP_ERR_FORMAT);
    assert_non_null(strstr(eb.msg, "tokenizer.ggml.model"));

    t = (tiny){"llama", 5, 1, false, false};
    assert_int_equal(load_tiny(&t, &v, &eb), HP_ERR_FORMAT);
    assert_non_null(strstr(eb.msg, "tokenizer.ggml.scores"));

    t = (tiny){"llama", -1, 99, false, false};
    assert_int_equal(load_tiny(&t, &v, &eb), HP_ERR_FORMAT);
    assert_non_null(strstr(eb.msg, "bos_token_id"));
    assert_null(v);

    /* 0xFFFFFFFF is how writers say "no such token". */
    t = (tiny){"llama", -1, 0xFFFFFFFFll, false, false};
    assert_int_equal(load_tiny(&t, &v, &eb), HP_OK);
    assert_int_equal(hp_vocab_bos(v), -1);
    EXPECT(v, "ab", true, false, 3, 7); /* no BOS to add */
    hp_vocab_free(v);

    hp_vocab_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(vocab_llama_spm_vectors),
        cmocka_unit_test(vocab_phi3_vectors),
        cmocka_unit_test(vocab_stories260k_prompt),
        cmocka_unit_test(vocab_find_every_token),
        cmocka_unit_test(vocab_bos_added_once),
        cmocka_unit_test(vocab_parse_special),
        cmocka_unit_test(vocab_byte_fallback),
        cmocka_unit_test(vocab_token_to_piece),
        cmocka_unit_test(vocab_detokenize),
        cmocka_unit_test(vocab_end_of_generation),
        cmocka_unit_test(vocab_cap_respected),
        cmocka_unit_test(vocab_encode_is_fast),
        cmocka_unit_test(vocab_merge_order),
        cmocka_unit_test(vocab_refuses_other_models),
        cmocka_unit_test(vocab_rejects_bad_metadata),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
