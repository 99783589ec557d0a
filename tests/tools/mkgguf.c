/* mkgguf.c: write a random-weight llama GGUF fixture with a small valid
 * SentencePiece vocabulary, for the forward-pass reference tests.
 *
 *   mkgguf -o OUT.gguf --type TYPE | --mix q4_k_m [--hidden 64]
 *          [--layers 2] [--heads 4] [--kv-heads 2] [--ffn 96]
 *          [--vocab-size 300] [--ctx 128] [--rope-dim N] [--seed S]
 *          [--tied] [--arch NAME]
 *   TYPE: f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q4_k q5_k q6_k (the K
 *   types need --hidden and --ffn multiples of 256).
 *   --mix q4_k_m: as llama.cpp's Q4_K_M mix, Q4_K for most matrices and
 *   Q6_K for attn_v, ffn_down and output (the embedding when --tied).
 *
 * Weights are Gaussian at a scale that keeps activations O(1) (matrices
 * ~0.5/sqrt(fan_in), norms near 1), so logits are spread out and a wrong
 * forward pass shows. Matrices use --type; norm vectors stay f32. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/gguf_write.h"

/* splitmix64: small, seedable, no global state. */
static uint64_t next_u64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double uniform01(uint64_t *s)
{
    return ((double)(next_u64(s) >> 11) + 0.5) / 9007199254740992.0;
}

static float gauss(uint64_t *s)
{
    double u = uniform01(s), v = uniform01(s);
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

typedef struct opts {
    const char *out, *arch;
    hp_dtype type;
    int mix; /* 1: q4_k_m */
    int hidden, layers, heads, kv_heads, ffn, vocab, ctx, rope_dim;
    uint64_t seed;
    int tied;
} opts;

static int parse_int(const char *s, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v <= 0 || v > (1 << 24))
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_type(const char *s, hp_dtype *t)
{
    static const struct { const char *n; hp_dtype t; } tab[] = {
        {"f32", HP_DT_F32}, {"f16", HP_DT_F16}, {"bf16", HP_DT_BF16},
        {"q8_0", HP_DT_Q8_0}, {"q4_0", HP_DT_Q4_0}, {"q4_1", HP_DT_Q4_1},
        {"q5_0", HP_DT_Q5_0}, {"q5_1", HP_DT_Q5_1}, {"q4_k", HP_DT_Q4_K},
        {"q5_k", HP_DT_Q5_K}, {"q6_k", HP_DT_Q6_K}};
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (strcmp(s, tab[i].n) == 0) {
            *t = tab[i].t;
            return 0;
        }
    return -1;
}

static int usage(void)
{
    fprintf(stderr, "usage: mkgguf -o OUT.gguf --type f32|f16|bf16|q8_0|q4_0|"
                    "q4_1|q5_0|q5_1|q4_k|q5_k|q6_k | --mix q4_k_m "
                    "[--hidden N --layers N --heads N --kv-heads N --ffn N "
                    "--vocab-size N --ctx N --rope-dim N --seed S --tied "
                    "--arch NAME]\n");
    return 2;
}

static int parse_args(int argc, char **argv, opts *o)
{
    *o = (opts){NULL, "llama", HP_DT_F32, 0, 64, 2, 4, 2, 96, 300, 128, 0, 1, 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int *ip = NULL;
        if (strcmp(a, "--tied") == 0) {
            o->tied = 1;
            continue;
        }
        if (!v)
            return -1;
        i++;
        if (strcmp(a, "-o") == 0) {
            o->out = v;
        } else if (strcmp(a, "--arch") == 0) {
            o->arch = v;
        } else if (strcmp(a, "--type") == 0) {
            if (parse_type(v, &o->type) != 0)
                return -1;
        } else if (strcmp(a, "--mix") == 0) {
            if (strcmp(v, "q4_k_m") != 0)
                return -1;
            o->mix = 1;
        } else if (strcmp(a, "--seed") == 0) {
            o->seed = strtoull(v, NULL, 10);
        } else if (strcmp(a, "--hidden") == 0) {
            ip = &o->hidden;
        } else if (strcmp(a, "--layers") == 0) {
            ip = &o->layers;
        } else if (strcmp(a, "--heads") == 0) {
            ip = &o->heads;
        } else if (strcmp(a, "--kv-heads") == 0) {
            ip = &o->kv_heads;
        } else if (strcmp(a, "--ffn") == 0) {
            ip = &o->ffn;
        } else if (strcmp(a, "--vocab-size") == 0) {
            ip = &o->vocab;
        } else if (strcmp(a, "--ctx") == 0) {
            ip = &o->ctx;
        } else if (strcmp(a, "--rope-dim") == 0) {
            ip = &o->rope_dim;
        } else {
            return -1;
        }
        if (ip && parse_int(v, ip) != 0)
            return -1;
    }
    if (!o->out || o->vocab < 259 + 1 || o->hidden % o->heads != 0)
        return -1;
    int64_t be = o->mix ? 256 : hp_dtype_block_elems(o->type);
    if (o->hidden % be != 0 || o->ffn % be != 0) {
        fprintf(stderr, "mkgguf: --hidden and --ffn must be multiples of "
                        "%lld for this type\n", (long long)be);
        return -1;
    }
    return 0;
}

/* The SentencePiece vocabulary: <unk>, <s>, </s>, 256 byte tokens, then
 * distinct pieces ("▁a", "b", "▁ab", ...) up to n. */
static hp_err add_vocab(hp_gguf_writer *w, int n)
{
    char **toks = calloc((size_t)n, sizeof *toks);
    float *scores = calloc((size_t)n, sizeof *scores);
    int32_t *types = calloc((size_t)n, sizeof *types);
    hp_err e = HP_ERR_NOMEM;
    if (!toks || !scores || !types)
        goto out;
    for (int i = 0; i < n; i++) {
        toks[i] = malloc(32);
        if (!toks[i])
            goto out;
        if (i == 0) {
            snprintf(toks[i], 32, "<unk>");
            types[i] = 2;
        } else if (i == 1 || i == 2) {
            snprintf(toks[i], 32, i == 1 ? "<s>" : "</s>");
            types[i] = 3;
        } else if (i < 259) {
            snprintf(toks[i], 32, "<0x%02X>", i - 3);
            types[i] = 6;
        } else {
            /* k -> letters in base 26, alternately with the "▁" prefix. */
            int k = (i - 259) / 2;
            char word[16];
            int wl = 0;
            do {
                word[wl++] = (char)('a' + k % 26);
                k = k / 26 - 1;
            } while (k >= 0 && wl < 15);
            word[wl] = '\0';
            snprintf(toks[i], 32, "%s%s", (i - 259) % 2 ? "" : "\xe2\x96\x81",
                     word);
            types[i] = 1;
            scores[i] = -(float)(i - 259) * 0.25f;
        }
    }
    e = hp_gguf_writer_str(w, "tokenizer.ggml.model", "llama");
    if (e == HP_OK)
        e = hp_gguf_writer_arr_str(w, "tokenizer.ggml.tokens",
                                   (const char *const *)toks, NULL,
                                   (uint64_t)n);
    if (e == HP_OK)
        e = hp_gguf_writer_arr_f32(w, "tokenizer.ggml.scores", scores,
                                   (uint64_t)n);
    if (e == HP_OK)
        e = hp_gguf_writer_arr_i32(w, "tokenizer.ggml.token_type", types,
                                   (uint64_t)n);
    if (e == HP_OK)
        e = hp_gguf_writer_u32(w, "tokenizer.ggml.bos_token_id", 1);
    if (e == HP_OK)
        e = hp_gguf_writer_u32(w, "tokenizer.ggml.eos_token_id", 2);
    if (e == HP_OK)
        e = hp_gguf_writer_u32(w, "tokenizer.ggml.unknown_token_id", 0);
out:
    for (int i = 0; toks && i < n; i++)
        free(toks[i]);
    free(toks);
    free(scores);
    free(types);
    return e;
}

/* One random tensor [ne0, ne1] (ne1 == 0: vector) of type t. Vectors are
 * norms: 1 + 0.1 * N(0,1). */
static hp_err add_rand(hp_gguf_writer *w, uint64_t *rng, const char *name,
                       hp_dtype t, int64_t ne0, int64_t ne1, float std)
{
    int64_t ne[2] = {ne0, ne1};
    size_t n = (size_t)ne0 * (size_t)(ne1 ? ne1 : 1);
    float *d = malloc(n * sizeof *d);
    if (!d)
        return HP_ERR_NOMEM;
    for (size_t i = 0; i < n; i++)
        d[i] = ne1 ? std * gauss(rng) : 1.0f + 0.1f * gauss(rng);
    hp_err e = hp_gguf_writer_tensor_f32(w, name, ne1 ? t : HP_DT_F32,
                                         ne1 ? 2 : 1, ne, d);
    free(d);
    return e;
}

/* The type of matrix `part` ("attn_v", "output", "token_embd", ...). */
static hp_dtype matrix_type(const opts *o, const char *part)
{
    if (!o->mix)
        return o->type;
    bool q6 = strcmp(part, "attn_v") == 0 || strcmp(part, "ffn_down") == 0 ||
              strcmp(part, "output") == 0 ||
              (strcmp(part, "token_embd") == 0 && o->tied);
    return q6 ? HP_DT_Q6_K : HP_DT_Q4_K;
}

static hp_err build(hp_gguf_writer *w, const opts *o)
{
    uint64_t rng = o->seed;
    int E = o->hidden, hd = o->hidden / o->heads;
    int KV = o->kv_heads * hd, F = o->ffn, V = o->vocab;
    hp_err e = hp_gguf_writer_str(w, "general.architecture", o->arch);
    char key[96];
#define KEY(s) (snprintf(key, sizeof key, "%s.%s", o->arch, s), key)
    if (e == HP_OK)
        e = hp_gguf_writer_str(w, "general.name", "mkgguf-random");
    if (e == HP_OK)
        e = hp_gguf_writer_u32(w, KEY("context_length"), (uint32_t)o->ctx);
    if (e == HP_OK)
        e = hp_gguf_writer_u32(w, KEY("embedding_length"), (uint32_t)E);
    if (e == HP_OK)
        e = hp_gguf_writer_u32(w, KEY("block_count"), (uint32_t)o->layers);
    if (e == HP_OK)
        e = hp_gguf_writer_u32(w, KEY("feed_forward_length"), (uint32_t)F);
    if (e == HP_OK)
        e = hp_gguf_writer_u32(w, KEY("attention.head_count"),
                               (uint32_t)o->heads);
    if (e == HP_OK)
        e = hp_gguf_writer_u32(w, KEY("attention.head_count_kv"),
                               (uint32_t)o->kv_heads);
    if (e == HP_OK && o->rope_dim)
        e = hp_gguf_writer_u32(w, KEY("rope.dimension_count"),
                               (uint32_t)o->rope_dim);
    if (e == HP_OK)
        e = hp_gguf_writer_f32(w, KEY("rope.freq_base"), 10000.0f);
    if (e == HP_OK)
        e = hp_gguf_writer_f32(w, KEY("attention.layer_norm_rms_epsilon"),
                               1e-5f);
#undef KEY
    if (e == HP_OK)
        e = add_vocab(w, V);
    float se = 1.0f, sE = 0.5f / sqrtf((float)E), sF = 0.5f / sqrtf((float)F);
    if (e == HP_OK)
        e = add_rand(w, &rng, "token_embd.weight",
                     matrix_type(o, "token_embd"), E, V, se);
    if (e == HP_OK)
        e = add_rand(w, &rng, "output_norm.weight", o->type, E, 0, 0);
    if (e == HP_OK && !o->tied)
        e = add_rand(w, &rng, "output.weight", matrix_type(o, "output"), E,
                     V, 2.0f * sE);
    for (int l = 0; l < o->layers && e == HP_OK; l++) {
        struct { const char *s; int ne0, ne1; float sd; } parts[] = {
            {"attn_norm", E, 0, 0}, {"attn_q", E, E, 2.0f * sE},
            {"attn_k", E, KV, 2.0f * sE}, {"attn_v", E, KV, 2.0f * sE},
            {"attn_output", E, E, sE}, {"ffn_norm", E, 0, 0},
            {"ffn_gate", E, F, 2.0f * sE}, {"ffn_up", E, F, 2.0f * sE},
            {"ffn_down", F, E, sF}};
        for (size_t i = 0; i < sizeof parts / sizeof parts[0] && e == HP_OK;
             i++) {
            char nm[64];
            snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, parts[i].s);
            e = add_rand(w, &rng, nm, matrix_type(o, parts[i].s),
                         parts[i].ne0, parts[i].ne1, parts[i].sd);
        }
    }
    return e;
}

int main(int argc, char **argv)
{
    opts o;
    if (parse_args(argc, argv, &o) != 0)
        return usage();
    hp_kernels_init();
    hp_gguf_writer *w = hp_gguf_writer_new();
    if (!w) {
        fprintf(stderr, "mkgguf: out of memory\n");
        return 1;
    }
    hp_errbuf eb = {{0}};
    hp_err e = build(w, &o);
    if (e == HP_OK)
        e = hp_gguf_writer_save(w, o.out, &eb);
    else
        snprintf(eb.msg, sizeof eb.msg, "building the model");
    hp_gguf_writer_free(w);
    if (e != HP_OK) {
        fprintf(stderr, "mkgguf: %s: %s\n", hp_strerror(e), eb.msg);
        return 1;
    }
    return 0;
}
