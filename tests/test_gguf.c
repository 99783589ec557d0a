/* test_gguf.c: the GGUF reader, the writer and the model loader's checks.
 *
 * gguf-1.x  a valid file round-trips through the writer and reader
 * gguf-2.x  truncation at every header byte and inside tensor data fails
 *           cleanly with a message naming the file
 * gguf-3.x  hand-made corrupt headers: each gives the right hp_err and a
 *           message naming the file and the item
 * model-x   the loader accepts a valid llama and refuses an unsupported
 *           architecture, a wrong shape, a missing tensor, a q2_K matrix */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "model/gguf_write.h"
#include "model/model.h"

static char g_dir[64];

static const char *tmp_path(const char *name)
{
    static char buf[128];
    snprintf(buf, sizeof buf, "%s/%s", g_dir, name);
    return buf;
}

static int setup_dir(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/hp_test_gguf_XXXXXX");
    hp_kernels_init();
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ------------------------------------------------- fixture: tiny llama */

typedef struct variant {
    const char *arch;       /* default "llama" */
    const char *skip;       /* tensor name to leave out */
    const char *bad_shape;  /* tensor written with ne1 halved */
    int q4k_down;           /* ffn_down as q2_K (n_ff 256): uncomputable */
} variant;

enum { E = 32, HEADS = 2, KVH = 1, VOCAB = 262 };

static void add_vocab(hp_gguf_writer *w)
{
    char *toks[VOCAB];
    float scores[VOCAB];
    int32_t types[VOCAB];
    for (int i = 0; i < VOCAB; i++) {
        toks[i] = malloc(16);
        scores[i] = 0.0f;
        types[i] = 1;
        if (i == 0) {
            snprintf(toks[i], 16, "<unk>");
            types[i] = 2;
        } else if (i < 3) {
            snprintf(toks[i], 16, i == 1 ? "<s>" : "</s>");
            types[i] = 3;
        } else if (i < 259) {
            snprintf(toks[i], 16, "<0x%02X>", i - 3);
            types[i] = 6;
        } else {
            snprintf(toks[i], 16, "\xe2\x96\x81%c", 'a' + (i - 259));
            scores[i] = -(float)i;
        }
    }
    assert_int_equal(hp_gguf_writer_str(w, "tokenizer.ggml.model", "llama"),
                     HP_OK);
    assert_int_equal(hp_gguf_writer_arr_str(w, "tokenizer.ggml.tokens",
                                            (const char *const *)toks, NULL,
                                            VOCAB), HP_OK);
    assert_int_equal(hp_gguf_writer_arr_f32(w, "tokenizer.ggml.scores",
                                            scores, VOCAB), HP_OK);
    assert_int_equal(hp_gguf_writer_arr_i32(w, "tokenizer.ggml.token_type",
                                            types, VOCAB), HP_OK);
    assert_int_equal(hp_gguf_writer_u32(w, "tokenizer.ggml.bos_token_id", 1),
                     HP_OK);
    assert_int_equal(hp_gguf_writer_u32(w, "tokenizer.ggml.eos_token_id", 2),
                     HP_OK);
    for (int i = 0; i < VOCAB; i++)
        free(toks[i]);
}

static void add_t(hp_gguf_writer *w, const variant *v, const char *name,
                  int64_t ne0, int64_t ne1)
{
    if (v->skip && strcmp(v->skip, name) == 0)
        return;
    if (v->bad_shape && strcmp(v->bad_shape, name) == 0)
        ne1 /= 2;
    int64_t ne[2] = {ne0, ne1};
    size_t n = (size_t)ne0 * (size_t)(ne1 ? ne1 : 1);
    float *d = malloc(n * sizeof *d);
    for (size_t i = 0; i < n; i++)
        d[i] = ne1 ? (float)((i * 7919) % 17) / 17.0f - 0.5f : 1.0f;
    hp_dtype t = HP_DT_F32;
    if (v->q4k_down && strstr(name, "ffn_down")) {
        void *raw = calloc(1, (size_t)hp_dtype_row_bytes(HP_DT_Q2_K, ne0) *
                                  (size_t)ne1);
        assert_int_equal(hp_gguf_writer_tensor(w, name, HP_DT_Q2_K, 2, ne,
                                               raw), HP_OK);
        free(raw);
    } else {
        assert_int_equal(hp_gguf_writer_tensor_f32(w, name, t, ne1 ? 2 : 1,
                                                   ne, d), HP_OK);
    }
    free(d);
}

/* Write a one-layer llama (E 32, 2 heads, 1 kv head) per the variant. */
static void write_model(const char *path, const variant *v)
{
    int F = v->q4k_down ? 256 : 64, KV = KVH * (E / HEADS);
    const char *arch = v->arch ? v->arch : "llama";
    char k[96];
    hp_gguf_writer *w = hp_gguf_writer_new();
    assert_non_null(w);
    assert_int_equal(hp_gguf_writer_str(w, "general.architecture", arch),
                     HP_OK);
    struct { const char *key; uint32_t val; } ints[] = {
        {"context_length", 64}, {"embedding_length", E}, {"block_count", 1},
        {"feed_forward_length", (uint32_t)F}, {"attention.head_count", HEADS},
        {"attention.head_count_kv", KVH}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        snprintf(k, sizeof k, "%s.%s", arch, ints[i].key);
        assert_int_equal(hp_gguf_writer_u32(w, k, ints[i].val), HP_OK);
    }
    snprintf(k, sizeof k, "%s.attention.layer_norm_rms_epsilon", arch);
    assert_int_equal(hp_gguf_writer_f32(w, k, 1e-5f), HP_OK);
    add_vocab(w);
    add_t(w, v, "token_embd.weight", E, VOCAB);
    add_t(w, v, "output_norm.weight", E, 0);
    add_t(w, v, "blk.0.attn_norm.weight", E, 0);
    add_t(w, v, "blk.0.attn_q.weight", E, E);
    add_t(w, v, "blk.0.attn_k.weight", E, KV);
    add_t(w, v, "blk.0.attn_v.weight", E, KV);
    add_t(w, v, "blk.0.attn_output.weight", E, E);
    add_t(w, v, "blk.0.ffn_norm.weight", E, 0);
    add_t(w, v, "blk.0.ffn_gate.weight", E, F);
    add_t(w, v, "blk.0.ffn_up.weight", E, F);
    add_t(w, v, "blk.0.ffn_down.weight", F, E);
    hp_errbuf eb = {{0}};
    assert_int_equal(hp_gguf_writer_save(w, path, &eb), HP_OK);
    hp_gguf_writer_free(w);
}

static uint8_t *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*n);
    assert_int_equal(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

static void spit(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

/* ------------------------------------------------ gguf-1: valid files */

/* gguf-1.1: every writer value type reads back exactly, in order. */
static void gguf_writer_roundtrip(void **state)
{
    (void)state;
    const char *p = tmp_path("rt.gguf");
    hp_gguf_writer *w = hp_gguf_writer_new();
    const char *strs[3] = {"a", "b\0c", ""};
    uint64_t lens[3] = {1, 3, 0};
    float fv[3] = {1.5f, -2.0f, 3.25f};
    int32_t iv[2] = {-7, 9};
    assert_int_equal(hp_gguf_writer_u32(w, "k.u32", 4000000000u), HP_OK);
    assert_int_equal(hp_gguf_writer_i32(w, "k.i32", -5), HP_OK);
    assert_int_equal(hp_gguf_writer_f32(w, "k.f32", 0.25f), HP_OK);
    assert_int_equal(hp_gguf_writer_bool(w, "k.bool", true), HP_OK);
    assert_int_equal(hp_gguf_writer_str(w, "k.str", "hello"), HP_OK);
    assert_int_equal(hp_gguf_writer_arr_str(w, "k.as", strs, lens, 3), HP_OK);
    assert_int_equal(hp_gguf_writer_arr_f32(w, "k.af", fv, 3), HP_OK);
    assert_int_equal(hp_gguf_writer_arr_i32(w, "k.ai", iv, 2), HP_OK);
    int64_t ne[2] = {32, 3};
    float data[96];
    for (int i = 0; i < 96; i++)
        data[i] = (float)i * 0.5f - 20.0f;
    assert_int_equal(hp_gguf_writer_tensor_f32(w, "t.q8", HP_DT_Q8_0, 2, ne,
                                               data), HP_OK);
    assert_int_equal(hp_gguf_writer_tensor(w, "t.f32", HP_DT_F32, 2, ne,
                                           data), HP_OK);
    hp_errbuf eb = {{0}};
    assert_int_equal(hp_gguf_writer_save(w, p, &eb), HP_OK);
    hp_gguf_writer_free(w);

    hp_gguf *g;
    assert_int_equal(hp_gguf_open(p, &g, &eb), HP_OK);
    assert_int_equal(g->version, 3);
    assert_int_equal(g->alignment, 32);
    assert_true(hp_str_eq(g->kv[0].key, "k.u32"));
    uint32_t u;
    int64_t i64;
    float f;
    bool b;
    hp_str s;
    assert_true(hp_gguf_get_u32(g, "k.u32", &u));
    assert_int_equal(u, 4000000000u);
    assert_true(hp_gguf_get_i64(g, "k.i32", &i64));
    assert_int_equal(i64, -5);
    assert_false(hp_gguf_get_u32(g, "k.i32", &u)); /* negative */
    assert_true(hp_gguf_get_f32(g, "k.f32", &f));
    assert_true(f == 0.25f);
    assert_true(hp_gguf_get_bool(g, "k.bool", &b) && b);
    assert_true(hp_gguf_get_str(g, "k.str", &s) && hp_str_eq(s, "hello"));
    assert_false(hp_gguf_get_str(g, "k.u32", &s)); /* wrong type */
    assert_false(hp_gguf_get_u32(g, "absent", &u));
    const hp_gguf_kv *kv = hp_gguf_find(g, "k.as");
    hp_str out[3];
    assert_true(kv && hp_gguf_arr_strs(kv, out));
    assert_int_equal(out[1].len, 3);
    assert_memory_equal(out[1].ptr, "b\0c", 3);
    assert_int_equal(out[2].len, 0);
    kv = hp_gguf_find(g, "k.af");
    assert_true(hp_gguf_arr_f32(kv, 2) == 3.25f);
    assert_false(hp_gguf_arr_strs(kv, out));
    kv = hp_gguf_find(g, "k.ai");
    assert_int_equal(hp_gguf_arr_int(kv, 0), -7);
    const hp_gguf_tensor *t = hp_gguf_tensor_find(g, "t.f32");
    assert_non_null(t);
    assert_int_equal(t->ne[1], 3);
    assert_memory_equal(t->data, data, sizeof data);
    t = hp_gguf_tensor_find(g, "t.q8");
    assert_int_equal(t->type, HP_DT_Q8_0);
    assert_int_equal(t->nbytes, 3 * 34);
    assert_int_equal((uintptr_t)t->data % 32, 0);
    float back[32];
    hp_dequant_row_ref(HP_DT_Q8_0, t->data, back, 32);
    assert_true(back[31] > -5.0f && back[31] < -4.0f);

    /* gguf-1.2: copy_kvs carries a prefix's keys to another file. */
    w = hp_gguf_writer_new();
    assert_int_equal(hp_gguf_writer_copy_kvs(w, g, "k.a"), HP_OK);
    const char *p2 = tmp_path("rt2.gguf");
    assert_int_equal(hp_gguf_writer_save(w, p2, &eb), HP_OK);
    hp_gguf_writer_free(w);
    hp_gguf *g2;
    assert_int_equal(hp_gguf_open(p2, &g2, &eb), HP_OK);
    assert_int_equal(g2->n_kv, 4); /* k.as, k.af, k.ai + alignment */
    kv = hp_gguf_find(g2, "k.as");
    assert_true(kv && hp_gguf_arr_strs(kv, out));
    assert_memory_equal(out[1].ptr, "b\0c", 3);
    assert_null(hp_gguf_find(g2, "k.u32"));
    hp_gguf_close(g2);
    hp_gguf_close(g);
    hp_gguf_close(NULL);
}

/* ------------------------------------------------- gguf-2: truncation */

/* gguf-2.1: a file cut at any byte of its header, or inside its tensor
 * data, is refused with a format error naming the file; never a crash. */
static void gguf_truncated_everywhere(void **state)
{
    (void)state;
    const char *p = tmp_path("full.gguf");
    variant v = {0};
    write_model(p, &v);
    size_t n;
    uint8_t *b = slurp(p, &n);
    hp_gguf *g;
    hp_errbuf eb = {{0}};
    assert_int_equal(hp_gguf_open(p, &g, &eb), HP_OK);
    size_t hdr = (size_t)(g->data_base - (const uint8_t *)g->map);
    hp_gguf_close(g);
    const char *cut = tmp_path("cut.gguf");
    spit(cut, b, n);
    /* Shrinking one file in place is far cheaper than writing thousands. */
    for (size_t len = n - 1; len != (size_t)-1; len--) {
        /* Every header byte; then every 97th byte of the data. */
        if (len > hdr && (len - hdr) % 97 != 0)
            continue;
        assert_int_equal(truncate(cut, (off_t)len), 0);
        eb.msg[0] = '\0';
        hp_err e = hp_gguf_open(cut, &g, &eb);
        assert_null(g);
        if (e != HP_ERR_FORMAT)
            fail_msg("cut at %zu: %s (%s)", len, hp_strerror(e), eb.msg);
        if (!strstr(eb.msg, "cut.gguf"))
            fail_msg("cut at %zu: message lacks the file: %s", len, eb.msg);
    }
    /* gguf-2.2: the messages say where. */
    spit(cut, b, n - 1);
    assert_int_equal(hp_gguf_open(cut, &g, &eb), HP_ERR_FORMAT);
    assert_non_null(strstr(eb.msg, "blk.0.ffn_down.weight: offset past end"));
    spit(cut, b, 1000); /* inside the token list */
    assert_int_equal(hp_gguf_open(cut, &g, &eb), HP_ERR_FORMAT);
    if (!strstr(eb.msg, "truncated in metadata key"))
        fail_msg("%s", eb.msg);
    assert_non_null(strstr(eb.msg, "(tokenizer.ggml.tokens)"));
    spit(cut, b, 100); /* counts that cannot fit are refused up front */
    assert_int_equal(hp_gguf_open(cut, &g, &eb), HP_ERR_FORMAT);
    assert_non_null(strstr(eb.msg, "cannot fit"));
    free(b);
}

/* --------------------------------------------- gguf-3: corrupt headers */

typedef struct bb {
    uint8_t d[4096];
    size_t n;
} bb;

static void b_u32(bb *b, uint32_t v)
{
    memcpy(b->d + b->n, &v, 4);
    b->n += 4;
}

static void b_u64(bb *b, uint64_t v)
{
    memcpy(b->d + b->n, &v, 8);
    b->n += 8;
}

static void b_str(bb *b, const char *s)
{
    b_u64(b, strlen(s));
    memcpy(b->d + b->n, s, strlen(s));
    b->n += strlen(s);
}

static void b_hdr(bb *b, uint32_t version, uint64_t nt, uint64_t nkv)
{
    b->n = 0;
    memcpy(b->d, "GGUF", 4);
    b->n = 4;
    b_u32(b, version);
    b_u64(b, nt);
    b_u64(b, nkv);
}

/* One tensor info: name, dims, type, offset. */
static void b_tinfo(bb *b, const char *name, uint32_t nd, const uint64_t *ne,
                    uint32_t type, uint64_t off)
{
    b_str(b, name);
    b_u32(b, nd);
    for (uint32_t i = 0; i < nd; i++)
        b_u64(b, ne[i]);
    b_u32(b, type);
    b_u64(b, off);
}

/* Pad to 32 and append n zero bytes of tensor data. */
static void b_data(bb *b, size_t n)
{
    while (b->n % 32)
        b->d[b->n++] = 0;
    memset(b->d + b->n, 0, n);
    b->n += n;
}

/* Open the crafted bytes; expect code and every needle in the message. */
static void expect(const bb *b, hp_err code, const char *n1, const char *n2)
{
    const char *p = tmp_path("bad.gguf");
    spit(p, b->d, b->n);
    hp_gguf *g = (hp_gguf *)1;
    hp_errbuf eb = {{0}};
    hp_err e = hp_gguf_open(p, &g, &eb);
    assert_null(g);
    if (e != code || !strstr(eb.msg, "bad.gguf") ||
        (n1 && !strstr(eb.msg, n1)) || (n2 && !strstr(eb.msg, n2)))
        fail_msg("got %s: '%s'; want %s with '%s' '%s'", hp_strerror(e),
                 eb.msg, hp_strerror(code), n1 ? n1 : "", n2 ? n2 : "");
}

static void gguf_bad_magic_and_version(void **state)
{
    (void)state;
    bb b;
    b_hdr(&b, 3, 0, 0);
    memcpy(b.d, "GGML", 4);
    expect(&b, HP_ERR_FORMAT, "magic", NULL);
    b_hdr(&b, 1, 0, 0);
    expect(&b, HP_ERR_UNSUPPORTED, "version 1", NULL);
    b_hdr(&b, 4, 0, 0);
    expect(&b, HP_ERR_UNSUPPORTED, "version 4", NULL);
    b.n = 6; /* short file still says bad magic, not just truncated */
    memcpy(b.d, "PK\3\4", 4);
    expect(&b, HP_ERR_FORMAT, "magic", NULL);
    b_hdr(&b, 2, 0, 0); /* v2 with nothing in it is fine */
    const char *p = tmp_path("v2.gguf");
    spit(p, b.d, b.n);
    hp_gguf *g;
    hp_errbuf eb;
    assert_int_equal(hp_gguf_open(p, &g, &eb), HP_OK);
    assert_int_equal(g->version, 2);
    hp_gguf_close(g);
}

static void gguf_bad_counts_and_strings(void **state)
{
    (void)state;
    bb b;
    b_hdr(&b, 3, 0, 1000000);
    expect(&b, HP_ERR_FORMAT, "metadata count", "cannot fit");
    b_hdr(&b, 3, UINT64_MAX, 0);
    expect(&b, HP_ERR_FORMAT, "tensor count", "cannot fit");
    /* key length past the end */
    b_hdr(&b, 3, 0, 2);
    b_str(&b, "ok.key");
    b_u32(&b, HP_GGUF_UINT8);
    b.d[b.n++] = 1;
    b_u64(&b, 1ull << 40);
    b_u64(&b, 0);
    expect(&b, HP_ERR_FORMAT, "metadata key 1", "key length");
    /* string value length past the end */
    b_hdr(&b, 3, 0, 1);
    b_str(&b, "general.name");
    b_u32(&b, HP_GGUF_STRING);
    b_u64(&b, UINT64_MAX - 3);
    b_u64(&b, 0);
    expect(&b, HP_ERR_FORMAT, "general.name", "string length");
    /* absurd array count */
    b_hdr(&b, 3, 0, 1);
    b_str(&b, "tokenizer.ggml.tokens");
    b_u32(&b, HP_GGUF_ARRAY);
    b_u32(&b, HP_GGUF_STRING);
    b_u64(&b, 1ull << 62);
    b_u64(&b, 0);
    expect(&b, HP_ERR_FORMAT, "tokenizer.ggml.tokens", "array count");
    b_hdr(&b, 3, 0, 1);
    b_str(&b, "k");
    b_u32(&b, HP_GGUF_ARRAY);
    b_u32(&b, HP_GGUF_UINT64);
    b_u64(&b, 1ull << 61); /* n * 8 would overflow 64 bits */
    b_u64(&b, 0);
    expect(&b, HP_ERR_FORMAT, "array count", NULL);
    /* unknown value and element types */
    b_hdr(&b, 3, 0, 1);
    b_str(&b, "k.weird");
    b_u32(&b, 13);
    b_u64(&b, 0);
    expect(&b, HP_ERR_FORMAT, "k.weird", "value type 13");
    b_hdr(&b, 3, 0, 1);
    b_str(&b, "k.weird");
    b_u32(&b, HP_GGUF_ARRAY);
    b_u32(&b, 77);
    b_u64(&b, 1);
    b_u64(&b, 0);
    expect(&b, HP_ERR_FORMAT, "k.weird", "element type 77");
    /* alignment not a power of two */
    b_hdr(&b, 3, 0, 1);
    b_str(&b, "general.alignment");
    b_u32(&b, HP_GGUF_UINT32);
    b_u32(&b, 24);
    expect(&b, HP_ERR_FORMAT, "general.alignment", "power of two");
}

/* gguf-3.3: nested arrays are skipped safely; getters just decline. */
static void gguf_nested_array_skipped(void **state)
{
    (void)state;
    bb b;
    b_hdr(&b, 3, 0, 2);
    b_str(&b, "k.nested");
    b_u32(&b, HP_GGUF_ARRAY);
    b_u32(&b, HP_GGUF_ARRAY);
    b_u64(&b, 2);
    b_u32(&b, HP_GGUF_INT32); /* [ [5], ["x"] ] */
    b_u64(&b, 1);
    b_u32(&b, 5);
    b_u32(&b, HP_GGUF_STRING);
    b_u64(&b, 1);
    b_str(&b, "x");
    b_str(&b, "k.after");
    b_u32(&b, HP_GGUF_UINT32);
    b_u32(&b, 42);
    const char *p = tmp_path("nested.gguf");
    spit(p, b.d, b.n);
    hp_gguf *g;
    hp_errbuf eb;
    assert_int_equal(hp_gguf_open(p, &g, &eb), HP_OK);
    uint32_t u;
    assert_true(hp_gguf_get_u32(g, "k.after", &u));
    assert_int_equal(u, 42);
    hp_str s;
    assert_false(hp_gguf_arr_strs(hp_gguf_find(g, "k.nested"), &s));
    /* the writer can copy it */
    hp_gguf_writer *w = hp_gguf_writer_new();
    assert_int_equal(hp_gguf_writer_copy_kvs(w, g, NULL), HP_OK);
    assert_int_equal(hp_gguf_writer_save(w, tmp_path("n2.gguf"), &eb), HP_OK);
    hp_gguf_writer_free(w);
    hp_gguf_close(g);
    assert_int_equal(hp_gguf_open(tmp_path("n2.gguf"), &g, &eb), HP_OK);
    assert_true(hp_gguf_get_u32(g, "k.after", &u));
    hp_gguf_close(g);
}

static void gguf_bad_tensor_infos(void **state)
{
    (void)state;
    bb b;
    uint64_t ne[5] = {32, 2, 1, 1, 1};
    /* unknown type: unsupported, naming the number */
    b_hdr(&b, 3, 1, 0);
    b_tinfo(&b, "blk.3.attn_q.weight", 2, ne, 99, 0);
    b_data(&b, 256);
    expect(&b, HP_ERR_UNSUPPORTED, "blk.3.attn_q.weight", "type 99");
    /* misaligned offset */
    b_hdr(&b, 3, 1, 0);
    b_tinfo(&b, "t.mis", 2, ne, HP_DT_F32, 4);
    b_data(&b, 512);
    expect(&b, HP_ERR_FORMAT, "t.mis", "aligned");
    /* offset out of range */
    b_hdr(&b, 3, 1, 0);
    b_tinfo(&b, "blk.3.attn_q.weight", 2, ne, HP_DT_F32, 1ull << 40);
    b_data(&b, 256);
    expect(&b, HP_ERR_FORMAT, "blk.3.attn_q.weight",
           "offset past end of file");
    /* data one byte short */
    b_hdr(&b, 3, 1, 0);
    b_tinfo(&b, "t.short", 2, ne, HP_DT_F32, 0);
    b_data(&b, 255);
    expect(&b, HP_ERR_FORMAT, "t.short", "offset past end of file");
    /* zero dimension */
    uint64_t z[2] = {32, 0};
    b_hdr(&b, 3, 1, 0);
    b_tinfo(&b, "t.zero", 2, z, HP_DT_F32, 0);
    b_data(&b, 32);
    expect(&b, HP_ERR_FORMAT, "t.zero", "dimension 1 is zero");
    /* dims whose product overflows */
    uint64_t big[3] = {1ull << 32, 1ull << 32, 1ull << 32};
    b_hdr(&b, 3, 1, 0);
    b_tinfo(&b, "t.huge", 3, big, HP_DT_F32, 0);
    b_data(&b, 32);
    expect(&b, HP_ERR_FORMAT, "t.huge", "overflow");
    /* too many dims */
    b_hdr(&b, 3, 1, 0);
    b_tinfo(&b, "t.5d", 5, ne, HP_DT_F32, 0);
    b_data(&b, 256);
    expect(&b, HP_ERR_FORMAT, "t.5d", "5 dimensions");
    /* row not a multiple of the block */
    uint64_t odd[2] = {33, 2};
    b_hdr(&b, 3, 1, 0);
    b_tinfo(&b, "t.odd", 2, odd, HP_DT_Q8_0, 0);
    b_data(&b, 256);
    expect(&b, HP_ERR_FORMAT, "t.odd", "multiple");
    /* a 256-element block type (q4_K) parses fine */
    uint64_t k4[2] = {256, 1};
    b_hdr(&b, 3, 1, 0);
    b_tinfo(&b, "t.q4k", 2, k4, HP_DT_Q4_K, 0);
    b_data(&b, 144);
    const char *p = tmp_path("q4k.gguf");
    spit(p, b.d, b.n);
    hp_gguf *g;
    hp_errbuf eb;
    assert_int_equal(hp_gguf_open(p, &g, &eb), HP_OK);
    assert_int_equal(hp_gguf_tensor_find(g, "t.q4k")->nbytes, 144);
    hp_gguf_close(g);
}

static void gguf_missing_file(void **state)
{
    (void)state;
    hp_gguf *g;
    hp_errbuf eb;
    assert_int_equal(hp_gguf_open(tmp_path("nope.gguf"), &g, &eb), HP_ERR_IO);
    assert_non_null(strstr(eb.msg, "nope.gguf"));
    assert_int_equal(hp_gguf_open(g_dir, &g, &eb), HP_ERR_IO);
}

/* ------------------------------------------------------ model loader */

static void load_expect(const variant *v, hp_err code, const char *needle)
{
    const char *p = tmp_path("m.gguf");
    write_model(p, v);
    hp_model *m = (hp_model *)1;
    hp_errbuf eb = {{0}};
    hp_err e = hp_model_load(p, &m, &eb);
    if (e != code || (needle && !strstr(eb.msg, needle)) ||
        (code != HP_OK && !strstr(eb.msg, "m.gguf")))
        fail_msg("got %s '%s', want %s '%s'", hp_strerror(e), eb.msg,
                 hp_strerror(code), needle ? needle : "");
    if (code == HP_OK) {
        assert_non_null(m);
        assert_string_equal(m->name, "m");
        assert_int_equal(m->hp.n_vocab, VOCAB);
        assert_int_equal(m->hp.head_dim, E / HEADS);
        assert_int_equal(m->hp.rope_dim, E / HEADS);
        assert_true(m->hp.rope_base == 10000.0f);
        assert_true(m->output.data == m->tok_embd.data); /* tied */
        assert_true(hp_model_weight_bytes(m) > 0);
        hp_model_free(m);
    } else {
        assert_null(m);
    }
}

static void model_loads_valid(void **state)
{
    (void)state;
    variant v = {0};
    load_expect(&v, HP_OK, NULL);
    hp_model_free(NULL);
}

static void model_refuses_bad_files(void **state)
{
    (void)state;
    variant v = {.arch = "gpt2"};
    load_expect(&v, HP_ERR_UNSUPPORTED, "unsupported architecture 'gpt2'");
    v = (variant){.bad_shape = "blk.0.attn_k.weight"};
    load_expect(&v, HP_ERR_FORMAT,
                "tensor blk.0.attn_k.weight: shape [32,8] but metadata "
                "implies [32,16]");
    v = (variant){.skip = "blk.0.ffn_up.weight"};
    load_expect(&v, HP_ERR_FORMAT, "missing tensor blk.0.ffn_up.weight");
    v = (variant){.skip = "output_norm.weight"};
    load_expect(&v, HP_ERR_FORMAT, "missing tensor output_norm.weight");
    v = (variant){.q4k_down = 1};
    load_expect(&v, HP_ERR_UNSUPPORTED, "blk.0.ffn_down.weight: type q2_K");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(gguf_writer_roundtrip),
        cmocka_unit_test(gguf_truncated_everywhere),
        cmocka_unit_test(gguf_bad_magic_and_version),
        cmocka_unit_test(gguf_bad_counts_and_strings),
        cmocka_unit_test(gguf_nested_array_skipped),
        cmocka_unit_test(gguf_bad_tensor_infos),
        cmocka_unit_test(gguf_missing_file),
        cmocka_unit_test(model_loads_valid),
        cmocka_unit_test(model_refuses_bad_files),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
