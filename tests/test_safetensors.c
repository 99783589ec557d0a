/* test_safetensors.c: the safetensors reader and the load-time converter.
 *
 * st-1.x  valid files load: a hand-made single file (bytes, shapes, types,
 *         metadata, lookup, iteration order, hp_st_get checks), and
 *         mksafetensors sets (single, sharded via directory and index path)
 *         give back the seeded values
 * st-2.x  corrupt single files: each gives the right hp_err and a message
 *         naming the file and, where there is one, the tensor
 * st-3.x  corrupt sharded sets: missing shard, tensor not in its shard,
 *         duplicate names across shards, unsafe shard names
 * st-4.x  truncation at every header byte and inside the data fails
 *         cleanly naming the file; random header bytes never crash
 * st-5.x  hp_st_tensor_to equals hp_quant_row_ref row by row (q8_0, q4_0),
 *         widens exactly to f32, refuses bad rows and types */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "model/safetensors.h"

static char g_dir[64];

static const char *tmp_path(const char *name)
{
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

static int setup_dir(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/hp_test_st_XXXXXX");
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

/* ------------------------------------------------------------ helpers */

/* Write u64 hlen, header bytes, then data bytes (data may be NULL: the
 * pattern byte i = i * 7 + 1). */
static void write_raw(const char *path, uint64_t hlen, const char *hdr,
                      size_t hdr_n, const void *data, size_t data_n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(&hlen, 8, 1, f), 1);
    if (hdr_n)
        assert_int_equal(fwrite(hdr, 1, hdr_n, f), hdr_n);
    for (size_t i = 0; i < data_n; i++) {
        unsigned char c = data ? ((const unsigned char *)data)[i]
                               : (unsigned char)(i * 7 + 1);
        fputc(c, f);
    }
    assert_int_equal(fclose(f), 0);
}

static void write_st(const char *path, const char *hdr, size_t data_n)
{
    write_raw(path, strlen(hdr), hdr, strlen(hdr), NULL, data_n);
}

static void spit(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static void expect_open(const char *path, hp_err code, const char *n1,
                        const char *n2)
{
    hp_errbuf eb = {{0}};
    hp_st *st = (hp_st *)1;
    hp_err e = hp_st_open(path, &st, &eb);
    if (e != code || (n1 && !strstr(eb.msg, n1)) || (n2 && !strstr(eb.msg, n2)))
        print_error("open %s: got %d '%s', want %d with '%s' '%s'\n", path,
                    e, eb.msg, code, n1 ? n1 : "", n2 ? n2 : "");
    assert_int_equal(e, code);
    assert_null(st);
    if (n1)
        assert_non_null(strstr(eb.msg, n1));
    if (n2)
        assert_non_null(strstr(eb.msg, n2));
}

static const char *tools(void)
{
    const char *t = getenv("HOTPATH_TOOLS");
    return t && *t ? t : NULL;
}

static int run_tool(const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s/mksafetensors' %s", tools(), args);
    return system(cmd);
}

/* The tool's value stream (see mksafetensors.c). */
static uint64_t next_u64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static float next_val(uint64_t *s)
{
    uint64_t r = next_u64(s);
    return (float)((int64_t)(r >> 40) - (1 << 23)) / (float)(1 << 23);
}

/* ------------------------------------------------------------- st-1.x */

#define VALID_HDR                                                          \
    "{\"__metadata__\":{\"format\":\"pt\"},"                               \
    "\"b\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[24,32]},"   \
    "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"   \
    "\"c\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[32,40]},"     \
    "\"z\":{\"dtype\":\"F16\",\"shape\":[0,5],\"data_offsets\":[40,40]}}"

/* st-1.1: a hand-made file loads with the right shapes, types, bytes. */
static void st_valid_single_file(void **state)
{
    (void)state;
    const char *p = tmp_path("valid.safetensors");
    write_st(p, VALID_HDR, 40);
    hp_errbuf eb = {{0}};
    hp_st *st = NULL;
    assert_int_equal(hp_st_open(p, &st, &eb), HP_OK);
    assert_int_equal(hp_st_count(st), 4);
    assert_int_equal(hp_st_n_files(st), 1);
    assert_string_equal(hp_st_file(st, 0), "valid.safetensors");
    assert_null(hp_st_file(st, 1));
    assert_string_equal(hp_st_metadata(st, "format"), "pt");
    assert_null(hp_st_metadata(st, "nope"));
    /* iteration is file order: a, b, c, then the empty z at the end */
    assert_string_equal(hp_st_at(st, 0)->name, "a");
    assert_string_equal(hp_st_at(st, 1)->name, "b");
    assert_string_equal(hp_st_at(st, 2)->name, "c");
    assert_string_equal(hp_st_at(st, 3)->name, "z");
    assert_null(hp_st_at(st, 4));

    const hp_st_tensor *a = hp_st_find(st, "a");
    assert_non_null(a);
    assert_int_equal(a->type, HP_DT_F32);
    assert_int_equal(a->st_type, HP_ST_F32);
    assert_int_equal(a->ndims, 2);
    assert_int_equal(a->shape[0], 2);
    assert_int_equal(a->shape[1], 3);
    assert_int_equal(a->n_elems, 6);
    assert_int_equal(a->nbytes, 24);
    assert_string_equal(a->file, "valid.safetensors");
    const unsigned char *d = a->data;
    for (int i = 0; i < 24; i++)
        assert_int_equal(d[i], (unsigned char)(i * 7 + 1));
    const hp_st_tensor *b = hp_st_find(st, "b");
    assert_int_equal(b->type, HP_DT_BF16);
    d = b->data;
    for (int i = 0; i < 8; i++)
        assert_int_equal(d[i], (unsigned char)((24 + i) * 7 + 1));
    const hp_st_tensor *c = hp_st_find(st, "c");
    assert_int_equal(c->type, HP_DT_COUNT);
    assert_int_equal(c->ndims, 0);
    assert_int_equal(c->n_elems, 1);
    assert_string_equal(hp_st_dtype_name(c->st_type), "I64");
    assert_int_equal(hp_st_find(st, "z")->n_elems, 0);
    assert_null(hp_st_find(st, "d"));
    assert_null(hp_st_find(st, "__metadata__"));

    /* hp_st_get: shape check, wildcard, missing, unsupported dtype */
    const hp_st_tensor *t = NULL;
    int64_t want[2] = {2, 3}, wild[2] = {-1, 3}, bad[2] = {3, 2};
    assert_int_equal(hp_st_get(st, "a", 2, want, &t, &eb), HP_OK);
    assert_ptr_equal(t, a);
    assert_int_equal(hp_st_get(st, "a", 2, wild, &t, &eb), HP_OK);
    assert_int_equal(hp_st_get(st, "a", 2, bad, &t, &eb), HP_ERR_FORMAT);
    assert_null(t);
    assert_non_null(strstr(eb.msg, "tensor a: shape [2, 3], expected [3, 2]"));
    assert_int_equal(hp_st_get(st, "a", 1, want, &t, &eb), HP_ERR_FORMAT);
    assert_int_equal(hp_st_get(st, "q", 0, NULL, &t, &eb), HP_ERR_NOT_FOUND);
    assert_string_equal(eb.msg, "valid.safetensors: tensor q: missing");
    assert_int_equal(hp_st_get(st, "c", 0, NULL, &t, &eb),
                     HP_ERR_UNSUPPORTED);
    assert_non_null(strstr(eb.msg, "I64"));
    hp_st_close(st);
    hp_st_close(NULL);

    /* a directory holding model.safetensors opens the same file */
    const char *dir = tmp_path("single_dir");
    assert_int_equal(mkdir(dir, 0755), 0);
    char mp[300];
    snprintf(mp, sizeof mp, "%s/model.safetensors", dir);
    write_st(mp, VALID_HDR, 40);
    assert_int_equal(hp_st_open(dir, &st, &eb), HP_OK);
    assert_int_equal(hp_st_count(st), 4);
    assert_string_equal(hp_st_file(st, 0), "model.safetensors");
    hp_st_close(st);
}

/* Check every tensor of the tool's set against the regenerated stream. */
static void check_tool_values(const hp_st *st, const char *const *names,
                              int n, uint64_t seed)
{
    uint64_t rng = seed;
    for (int k = 0; k < n; k++) {
        const hp_st_tensor *t = hp_st_find(st, names[k]);
        assert_non_null(t);
        float *f = NULL;
        hp_errbuf eb;
        assert_int_equal(hp_st_tensor_to(t, HP_DT_F32, (void **)&f, &eb),
                         HP_OK);
        for (int64_t i = 0; i < t->n_elems; i++) {
            float v = next_val(&rng);
            if (t->type == HP_DT_F16)
                v = hp_f16_to_f32(hp_f32_to_f16(v));
            else if (t->type == HP_DT_BF16)
                v = hp_bf16_to_f32(hp_f32_to_bf16(v));
            assert_true(f[i] == v);
        }
        free(f);
    }
}

/* st-1.2: mksafetensors single files and sharded sets round-trip. */
static void st_tool_sets_roundtrip(void **state)
{
    (void)state;
    if (tools() == NULL)
        skip();
    static const char *const names[] = {
        "model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
        "model.layers.0.input_layernorm.weight", "model.norm.weight",
        "lm_head.weight"};
    const char *specs = "model.embed_tokens.weight=BF16[10,64] "
                        "model.layers.0.self_attn.q_proj.weight=F16[64,64] "
                        "model.layers.0.input_layernorm.weight=F32[64] "
                        "model.norm.weight=BF16[64] "
                        "lm_head.weight=F32[10,64]";
    char args[1024];
    hp_errbuf eb = {{0}};
    hp_st *st = NULL;

    snprintf(args, sizeof args, "--seed 42 '%s' %s",
             tmp_path("tool.safetensors"), specs);
    assert_int_equal(run_tool(args), 0);
    assert_int_equal(hp_st_open(tmp_path("tool.safetensors"), &st, &eb),
                     HP_OK);
    assert_int_equal(hp_st_count(st), 5);
    check_tool_values(st, names, 5, 42);
    hp_st_close(st);

    snprintf(args, sizeof args, "--seed 7 --shards 3 '%s' %s",
             tmp_path("sharded"), specs);
    assert_int_equal(run_tool(args), 0);
    assert_int_equal(hp_st_open(tmp_path("sharded"), &st, &eb), HP_OK);
    assert_int_equal(hp_st_count(st), 5);
    assert_int_equal(hp_st_n_files(st), 3);
    assert_string_equal(hp_st_file(st, 0), "model-00001-of-00003.safetensors");
    assert_string_equal(hp_st_file(st, 2), "model-00003-of-00003.safetensors");
    assert_string_equal(hp_st_find(st, "lm_head.weight")->file,
                        "model-00003-of-00003.safetensors");
    check_tool_values(st, names, 5, 7);
    hp_st_close(st);

    /* the index file itself is accepted too */
    assert_int_equal(hp_st_open(tmp_path("sharded/model.safetensors."
                                         "index.json"), &st, &eb), HP_OK);
    assert_int_equal(hp_st_count(st), 5);
    hp_st_close(st);
}

/* ------------------------------------------------------------- st-2.x */

#define T_A(off) "\"model.layers.3.self_attn.q_proj.weight\":{\"dtype\":" \
                 "\"F32\",\"shape\":[2,4],\"data_offsets\":" off "}"

/* st-2.1: header length and header text problems. */
static void st_bad_headers(void **state)
{
    (void)state;
    const char *p = tmp_path("bad.safetensors");
    const char *h = "{" T_A("[0,32]") "}";
    size_t hn = strlen(h);

    write_raw(p, hn + 100, h, hn, NULL, 32); /* header length past EOF */
    expect_open(p, HP_ERR_FORMAT, "bad.safetensors: header length",
                "past end of file");
    write_raw(p, (uint64_t)HP_ST_MAX_HEADER + 1, h, hn, NULL, 32);
    expect_open(p, HP_ERR_TOO_LARGE, "bad.safetensors", "cap");
    write_raw(p, UINT64_MAX, h, hn, NULL, 32);
    expect_open(p, HP_ERR_TOO_LARGE, "bad.safetensors", NULL);
    write_raw(p, 0, NULL, 0, NULL, 0);
    expect_open(p, HP_ERR_FORMAT, "bad.safetensors", "not a JSON object");
    write_raw(p, 3, "abc", 3, NULL, 0);
    expect_open(p, HP_ERR_FORMAT, "bad.safetensors", "not a JSON object");
    write_st(p, "{\"a\": nope}", 0);
    expect_open(p, HP_ERR_FORMAT, "bad.safetensors", "not valid JSON");
    write_st(p, "{\"a\":1} []", 0);
    expect_open(p, HP_ERR_FORMAT, "bad.safetensors", "not valid JSON");
    write_st(p, "[1,2]", 0);
    expect_open(p, HP_ERR_FORMAT, "bad.safetensors", "not a JSON object");
    write_st(p, "{" T_A("[0,32]") "," T_A("[0,32]") "}", 32);
    expect_open(p, HP_ERR_FORMAT, "bad.safetensors", "duplicate");
    write_st(p, "{\"__metadata__\":[1]}", 0);
    expect_open(p, HP_ERR_FORMAT, "bad.safetensors", "__metadata__");
    write_st(p, "{\"__metadata__\":{\"x\":1}}", 0);
    expect_open(p, HP_ERR_FORMAT, "bad.safetensors", "__metadata__ value x");
    FILE *f = fopen(p, "wb");
    fputs("abc", f);
    fclose(f);
    expect_open(p, HP_ERR_FORMAT, "bad.safetensors", "too small");
    expect_open(tmp_path("absent.safetensors"), HP_ERR_NOT_FOUND,
                "absent.safetensors", NULL);
    expect_open(g_dir, HP_ERR_NOT_FOUND, "model.safetensors", NULL);

    /* padding spaces after the object are fine, and an empty header too */
    write_st(p, "{" T_A("[0,32]") "}       ", 32);
    hp_st *st = NULL;
    hp_errbuf eb;
    assert_int_equal(hp_st_open(p, &st, &eb), HP_OK);
    hp_st_close(st);
    write_st(p, "{}", 0);
    assert_int_equal(hp_st_open(p, &st, &eb), HP_OK);
    assert_int_equal(hp_st_count(st), 0);
    hp_st_close(st);
}

/* st-2.2: tensor entries: dtype, shape, offsets, overlap. */
static void st_bad_tensor_entries(void **state)
{
    (void)state;
    static const struct {
        const char *hdr;
        size_t data;
        hp_err code;
        const char *needle;
    } cases[] = {
        {"{\"t\":{\"dtype\":\"F7\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
         HP_ERR_UNSUPPORTED, "tensor t: unknown dtype \"F7\""},
        {"{\"t\":{\"dtype\":3,\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
         HP_ERR_FORMAT, "tensor t: dtype"},
        {"{\"t\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, HP_ERR_FORMAT,
         "tensor t: dtype"},
        {"{\"t\":[1]}", 8, HP_ERR_FORMAT, "tensor t: entry is not an object"},
        {"{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8,
         HP_ERR_FORMAT, "tensor t: shape"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}",
         8, HP_ERR_FORMAT, "tensor t: shape[0]"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}",
         8, HP_ERR_FORMAT, "tensor t: shape[0]"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],"
         "\"data_offsets\":[0,4]}}", 4, HP_ERR_FORMAT, "9 dimensions"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
         "\"data_offsets\":[0,8]}}", 8, HP_ERR_FORMAT, "overflows"},
        {"{\"t\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],"
         "\"data_offsets\":[0,8]}}", 8, HP_ERR_FORMAT, "overflows"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}",
         8, HP_ERR_FORMAT, "tensor t: data_offsets [0, 8] hold 8 bytes but "
         "F32 shape needs 12"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,9]}}",
         8, HP_ERR_FORMAT, "not [begin, end]"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":\"0\"}}",
         8, HP_ERR_FORMAT, "not [begin, end]"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}",
         8, HP_ERR_FORMAT, "out of order"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}",
         8, HP_ERR_FORMAT, "out of order"},
        {"{" T_A("[0,32]") "}", 31, HP_ERR_FORMAT,
         "tensor model.layers.3.self_attn.q_proj.weight: data_offsets "
         "[0, 32] past end of data (size 31)"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":"
         "[9223372036854775800,9223372036854775807]}}", 8, HP_ERR_FORMAT,
         "past end"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"u\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
         12, HP_ERR_FORMAT, "tensor u: data_offsets [4, 12] overlap tensor t"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"u\":{\"dtype\":\"I8\",\"shape\":[8],\"data_offsets\":[0,8]}}",
         12, HP_ERR_FORMAT, "overlap"},
    };
    const char *p = tmp_path("entries.safetensors");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_st(p, cases[i].hdr, cases[i].data);
        expect_open(p, cases[i].code, "entries.safetensors: ",
                    cases[i].needle);
    }
    /* an empty tensor inside another's range is no overlap */
    write_st(p, "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":"
                "[0,8]},\"e\":{\"dtype\":\"F32\",\"shape\":[0],"
                "\"data_offsets\":[4,4]}}", 8);
    hp_st *st = NULL;
    hp_errbuf eb;
    assert_int_equal(hp_st_open(p, &st, &eb), HP_OK);
    hp_st_close(st);
}

/* ------------------------------------------------------------- st-3.x */

static const char *shard_hdr(const char *a, const char *b)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "{\"%s\":{\"dtype\":\"F32\",\"shape\":[2],"
             "\"data_offsets\":[0,8]},\"%s\":{\"dtype\":\"F16\",\"shape\":"
             "[4],\"data_offsets\":[8,16]}}", a, b);
    return buf;
}

/* A fresh sharded dir with two shards and the given index text. */
static const char *make_set(const char *name, const char *index)
{
    const char *dir = tmp_path(name);
    char p[300];
    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(p, sizeof p, "%s/s1.safetensors", dir);
    write_st(p, shard_hdr("w.a", "w.b"), 16);
    snprintf(p, sizeof p, "%s/s2.safetensors", dir);
    write_st(p, shard_hdr("w.c", "w.d"), 16);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    spit(p, index);
    return dir;
}

#define IDX(body) "{\"metadata\":{\"total_size\":32},\"weight_map\":{" body "}}"
#define GOOD4 "\"w.a\":\"s1.safetensors\",\"w.b\":\"s1.safetensors\"," \
              "\"w.c\":\"s2.safetensors\",\"w.d\":\"s2.safetensors\""

/* st-3.1: index problems are refused naming the index and the tensor. */
static void st_bad_sharded_sets(void **state)
{
    (void)state;
    hp_st *st = NULL;
    hp_errbuf eb;
    assert_int_equal(hp_st_open(make_set("ok", IDX(GOOD4)), &st, &eb), HP_OK);
    assert_int_equal(hp_st_count(st), 4);
    assert_int_equal(hp_st_find(st, "w.d")->type, HP_DT_F16);
    /* a set's lookups are reported against its index */
    assert_int_equal(hp_st_get(st, "w.x", 0, NULL, NULL, &eb),
                     HP_ERR_NOT_FOUND);
    assert_string_equal(eb.msg, "model.safetensors.index.json: tensor w.x: "
                                "missing");
    hp_st_close(st);

    expect_open(make_set("missing_shard", IDX(GOOD4 ",\"w.e\":\"s3."
                                              "safetensors\"")),
                HP_ERR_NOT_FOUND, "s3.safetensors", "cannot open");
    expect_open(make_set("missing_tensor", IDX(GOOD4 ",\"w.e\":\"s2."
                                               "safetensors\"")),
                HP_ERR_NOT_FOUND, "model.safetensors.index.json: tensor w.e",
                "not in shard s2.safetensors");
    expect_open(make_set("wrong_shard", IDX("\"w.a\":\"s2.safetensors\","
                                               "\"w.c\":\"s1.safetensors\"")),
                HP_ERR_FORMAT, "tensor w.a: listed in s2.safetensors",
                "stored in s1.safetensors");
    expect_open(make_set("unsafe", IDX("\"w.a\":\"../s1.safetensors\"")),
                HP_ERR_FORMAT, "tensor w.a: shard is not a plain file name",
                NULL);
    expect_open(make_set("abs", IDX("\"w.a\":\"/etc/passwd\"")),
                HP_ERR_FORMAT, "plain file name", NULL);
    expect_open(make_set("num", IDX("\"w.a\":3")), HP_ERR_FORMAT,
                "plain file name", NULL);
    expect_open(make_set("nomap", "{\"metadata\":{}}"), HP_ERR_FORMAT,
                "model.safetensors.index.json: weight_map", NULL);
    expect_open(make_set("empty", IDX("")), HP_ERR_FORMAT, "weight_map",
                NULL);
    expect_open(make_set("notjson", "{\"weight_map\":"), HP_ERR_FORMAT,
                "model.safetensors.index.json: not valid JSON", NULL);

    /* the same tensor name in two shards */
    const char *dir = make_set("dup", IDX(GOOD4));
    char p[300];
    snprintf(p, sizeof p, "%s/s2.safetensors", dir);
    write_st(p, shard_hdr("w.c", "w.a"), 16);
    expect_open(dir, HP_ERR_FORMAT, "tensor w.a: also in", NULL);

    /* a corrupt shard is named in the message */
    dir = make_set("corrupt", IDX(GOOD4));
    snprintf(p, sizeof p, "%s/s2.safetensors", dir);
    write_st(p, shard_hdr("w.c", "w.d"), 15);
    expect_open(dir, HP_ERR_FORMAT, "s2.safetensors: tensor w.d", "past end");
}

/* ------------------------------------------------------------- st-4.x */

/* st-4.1: every cut of a valid file fails cleanly naming the file. */
static void st_truncated_everywhere(void **state)
{
    (void)state;
    const char *full = tmp_path("full.safetensors");
    const char *cut = tmp_path("cut.safetensors");
    write_st(full, VALID_HDR, 40);
    FILE *f = fopen(full, "rb");
    unsigned char buf[1024];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    assert_true(n > 48);
    for (size_t len = 0; len < n; len++) {
        f = fopen(cut, "wb");
        fwrite(buf, 1, len, f);
        fclose(f);
        hp_errbuf eb = {{0}};
        hp_st *st = (hp_st *)1;
        hp_err e = hp_st_open(cut, &st, &eb);
        assert_int_not_equal(e, HP_OK);
        assert_null(st);
        assert_non_null(strstr(eb.msg, "cut.safetensors"));
    }
}

/* st-4.2: random header bytes and random mutations of a valid file never
 * crash; failures always name the file. */
static void st_fuzz_headers(void **state)
{
    (void)state;
    const char *p = tmp_path("fuzz.safetensors");
    const char *alphabet = "{}[]\":,0123456789-eE.FIU816BLO dtypeshapdfs_";
    uint64_t rng = 12345;
    unsigned char buf[512];
    size_t vn = strlen(VALID_HDR);
    for (int it = 0; it < 1500; it++) {
        size_t hn;
        if (it % 2 == 0) { /* mutate the valid header */
            hn = vn;
            memcpy(buf, VALID_HDR, vn);
            int flips = 1 + (int)(next_u64(&rng) % 4);
            for (int k = 0; k < flips; k++) {
                size_t at = next_u64(&rng) % hn;
                uint64_t r = next_u64(&rng);
                buf[at] = (r & 1) ? (unsigned char)(r >> 8)
                                  : (unsigned char)alphabet[(r >> 8) % 45];
            }
        } else { /* random bytes from the JSON-ish alphabet or raw */
            hn = 1 + next_u64(&rng) % 200;
            for (size_t i = 0; i < hn; i++) {
                uint64_t r = next_u64(&rng);
                buf[i] = (it % 4 == 1) ? (unsigned char)alphabet[r % 45]
                                       : (unsigned char)r;
            }
            buf[0] = '{';
        }
        uint64_t hl = hn;
        if (it % 7 == 3)
            hl = next_u64(&rng) % 1024;
        write_raw(p, hl, (const char *)buf, hn, NULL, 40);
        hp_errbuf eb = {{0}};
        hp_st *st = NULL;
        hp_err e = hp_st_open(p, &st, &eb);
        if (e == HP_OK) {
            for (size_t i = 0; i < hp_st_count(st); i++) {
                const hp_st_tensor *t = hp_st_at(st, i);
                assert_ptr_equal(hp_st_find(st, t->name), t);
                /* every byte of every tensor is readable */
                volatile unsigned char s = 0;
                for (uint64_t b = 0; b < t->nbytes; b++)
                    s ^= ((const unsigned char *)t->data)[b];
                (void)s;
            }
            hp_st_close(st);
        } else {
            assert_null(st);
            assert_non_null(strstr(eb.msg, "fuzz.safetensors"));
        }
    }
}

/* ------------------------------------------------------------- st-5.x */

/* A file with one tensor of the given type and shape, values from the
 * tool's stream; returns the opened checkpoint. */
static hp_st *one_tensor(const char *type, int64_t rows, int64_t cols,
                         const hp_st_tensor **t)
{
    int es = strcmp(type, "F32") == 0 ? 4 : 2;
    size_t nb = (size_t)(rows * cols * es);
    unsigned char *data = malloc(nb + 1);
    assert_non_null(data);
    uint64_t rng = 99;
    for (int64_t i = 0; i < rows * cols; i++) {
        float v = next_val(&rng) * 3.0f;
        uint16_t h = strcmp(type, "F16") == 0 ? hp_f32_to_f16(v)
                                              : hp_f32_to_bf16(v);
        if (es == 4)
            memcpy(data + i * 4, &v, 4);
        else
            memcpy(data + i * 2, &h, 2);
    }
    char hdr[256];
    /* a 1-byte pad tensor first leaves the data unaligned on purpose */
    snprintf(hdr, sizeof hdr, "{\"pad\":{\"dtype\":\"U8\",\"shape\":[1],"
             "\"data_offsets\":[0,1]},\"w\":{\"dtype\":\"%s\",\"shape\":"
             "[%lld,%lld],\"data_offsets\":[1,%zu]}}", type, (long long)rows,
             (long long)cols, nb + 1);
    unsigned char *all = malloc(nb + 1);
    all[0] = 0xAB;
    memcpy(all + 1, data, nb);
    const char *p = tmp_path("conv.safetensors");
    write_raw(p, strlen(hdr), hdr, strlen(hdr), all, nb + 1);
    free(all);
    free(data);
    hp_st *st = NULL;
    hp_errbuf eb;
    assert_int_equal(hp_st_open(p, &st, &eb), HP_OK);
    *t = hp_st_find(st, "w");
    assert_non_null(*t);
    return st;
}

static void check_conv(const char *type, int64_t rows, int64_t cols,
                       hp_dtype to)
{
    const hp_st_tensor *t;
    hp_st *st = one_tensor(type, rows, cols, &t);
    hp_errbuf eb;
    void *out = NULL;
    assert_int_equal(hp_st_tensor_to(t, to, &out, &eb), HP_OK);
    int64_t rb = hp_dtype_row_bytes(to, cols);
    int es = t->elem_size;
    float *row = malloc((size_t)cols * sizeof *row);
    unsigned char *raw = malloc((size_t)(cols * es));
    unsigned char *want = malloc((size_t)rb);
    for (int64_t r = 0; r < rows; r++) {
        memcpy(raw, (const unsigned char *)t->data + r * cols * es,
               (size_t)(cols * es));
        if (t->type == HP_DT_F32)
            memcpy(row, raw, (size_t)cols * 4);
        else
            hp_dequant_row_ref(t->type, raw, row, cols);
        if (to == HP_DT_F32)
            memcpy(want, row, (size_t)rb);
        else
            hp_quant_row_ref(to, row, want, cols);
        assert_memory_equal((unsigned char *)out + r * rb, want, (size_t)rb);
    }
    free(row);
    free(raw);
    free(want);
    free(out);
    hp_st_close(st);
}

/* st-5.1: conversion equals the reference quantizer row by row, single
 * and multi-threaded (the big case crosses the threading threshold). */
static void st_convert_matches_ref(void **state)
{
    (void)state;
    check_conv("BF16", 4, 64, HP_DT_Q8_0);
    check_conv("F16", 3, 96, HP_DT_Q4_0);
    check_conv("F32", 5, 32, HP_DT_Q8_0);
    check_conv("BF16", 2, 7, HP_DT_F32);
    check_conv("F16", 2, 7, HP_DT_F32);
    check_conv("BF16", 600, 512, HP_DT_Q4_0);
    check_conv("F16", 513, 512, HP_DT_Q8_0);

    /* bf16 -> f16 and back to f32 goes through the scalar conversions */
    const hp_st_tensor *t;
    hp_st *st = one_tensor("BF16", 2, 8, &t);
    hp_errbuf eb;
    uint16_t *h = NULL;
    float *f = NULL;
    assert_int_equal(hp_st_tensor_to(t, HP_DT_F16, (void **)&h, &eb), HP_OK);
    assert_int_equal(hp_st_tensor_to(t, HP_DT_F32, (void **)&f, &eb), HP_OK);
    for (int i = 0; i < 16; i++)
        assert_int_equal(h[i], hp_f32_to_f16(f[i]));
    free(h);
    free(f);

    /* rows not a multiple of the block, unsupported targets */
    void *out = (void *)1;
    assert_int_equal(hp_st_tensor_to(t, HP_DT_Q8_0, &out, &eb),
                     HP_ERR_INVALID);
    assert_null(out);
    assert_non_null(strstr(eb.msg, "conv.safetensors: tensor w: row length "
                                   "8 is not a multiple of 32"));
    assert_int_equal(hp_st_tensor_to(t, HP_DT_Q4_K, &out, &eb),
                     HP_ERR_UNSUPPORTED);
    assert_int_equal(hp_st_tensor_to(hp_st_find(st, "pad"), HP_DT_F32, &out,
                                     &eb), HP_ERR_UNSUPPORTED);
    assert_non_null(strstr(eb.msg, "tensor pad: dtype U8 not supported"));
    assert_int_equal(hp_st_tensor_to(NULL, HP_DT_F32, &out, &eb),
                     HP_ERR_INVALID);
    hp_st_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(st_valid_single_file),
        cmocka_unit_test(st_tool_sets_roundtrip),
        cmocka_unit_test(st_bad_headers),
        cmocka_unit_test(st_bad_tensor_entries),
        cmocka_unit_test(st_bad_sharded_sets),
        cmocka_unit_test(st_truncated_everywhere),
        cmocka_unit_test(st_fuzz_headers),
        cmocka_unit_test(st_convert_matches_ref),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
