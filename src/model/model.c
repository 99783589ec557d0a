/* model.c: loading a model from GGUF: hyperparameters from metadata,
 * weight views checked against them, and the vocabulary.
 *
 * Owns the hp_gguf mapping (weights are read in place) and small f32
 * copies of the norm vectors. Only architecture "llama" for now; anything
 * else, and any tensor type the kernels cannot compute with, is refused at
 * load by name so a bad file never reaches the forward pass. Knows nothing
 * of batching, the KV cache or sampling (forward.c, engine/). */
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Sanity ceilings on metadata: far above any real model, low enough that
 * products like n_layer * n_ctx * n_embd cannot overflow 64 bits. */
#define MAX_DIM (1 << 20)
#define MAX_LAYERS 4096

typedef struct loader {
    hp_model *m;
    const char *fname; /* borrows: basename for messages */
    hp_errbuf *eb;
    size_t n_copies, cap_copies; /* floats used/allocated in f32_copies */
} loader;

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Required positive integer key. */
static hp_err get_int(loader *L, const char *key, int *out, bool required,
                      int dflt)
{
    const hp_gguf *g = L->m->gguf;
    int64_t v;
    if (!hp_gguf_find(g, key)) {
        if (required)
            return hp_errf(L->eb, HP_ERR_FORMAT,
                           "%s: missing metadata key %s", L->fname, key);
        *out = dflt;
        return HP_OK;
    }
    if (!hp_gguf_get_i64(g, key, &v) || v <= 0 || v > MAX_DIM)
        return hp_errf(L->eb, HP_ERR_FORMAT,
                       "%s: metadata key %s: not an integer in 1..%d",
                       L->fname, key, MAX_DIM);
    *out = (int)v;
    return HP_OK;
}

static hp_err read_hparams(loader *L)
{
    hp_model *m = L->m;
    hp_hparams *hp = &m->hp;
    const hp_gguf *g = m->gguf;
    hp_str arch;
    if (!hp_gguf_get_str(g, "general.architecture", &arch))
        return hp_errf(L->eb, HP_ERR_FORMAT,
                       "%s: missing metadata key general.architecture",
                       L->fname);
    if (!hp_str_eq(arch, "llama")) {
        int n = arch.len > 24 ? 24 : (int)arch.len;
        return hp_errf(L->eb, HP_ERR_UNSUPPORTED,
                       "%s: unsupported architecture '%.*s'", L->fname, n,
                       arch.ptr);
    }
    snprintf(hp->arch, sizeof hp->arch, "llama");
    struct { const char *key; int *dst; bool required; } ints[] = {
        {"llama.embedding_length", &hp->n_embd, true},
        {"llama.block_count", &hp->n_layer, true},
        {"llama.attention.head_count", &hp->n_head, true},
        {"llama.feed_forward_length", &hp->n_ff, true},
        {"llama.context_length", &hp->n_ctx_train, true},
    };
    hp_err e;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        e = get_int(L, ints[i].key, ints[i].dst, ints[i].required, 0);
        if (e != HP_OK)
            return e;
    }
    e = get_int(L, "llama.attention.head_count_kv", &hp->n_head_kv, false,
                hp->n_head);
    if (e != HP_OK)
        return e;
    if (hp->n_layer > MAX_LAYERS)
        return hp_errf(L->eb, HP_ERR_FORMAT, "%s: llama.block_count %d is "
                       "absurd", L->fname, hp->n_layer);
    if (hp->n_embd % hp->n_head != 0)
        return hp_errf(L->eb, HP_ERR_FORMAT,
                       "%s: embedding_length %d not divisible by head_count "
                       "%d", L->fname, hp->n_embd, hp->n_head);
    if (hp->n_head % hp->n_head_kv != 0)
        return hp_errf(L->eb, HP_ERR_FORMAT,
                       "%s: head_count %d not divisible by head_count_kv %d",
                       L->fname, hp->n_head, hp->n_head_kv);
    hp->head_dim = hp->n_embd / hp->n_head;
    e = get_int(L, "llama.rope.dimension_count", &hp->rope_dim, false,
                hp->head_dim);
    if (e != HP_OK)
        return e;
    if (hp->rope_dim > hp->head_dim || hp->rope_dim % 2 != 0)
        return hp_errf(L->eb, HP_ERR_FORMAT,
                       "%s: rope.dimension_count %d must be even and <= "
                       "head dim %d", L->fname, hp->rope_dim, hp->head_dim);
    hp->rope_base = 10000.0f;
    if (hp_gguf_find(g, "llama.rope.freq_base") &&
        (!hp_gguf_get_f32(g, "llama.rope.freq_base", &hp->rope_base) ||
         !(hp->rope_base > 1.0f) || !isfinite(hp->rope_base)))
        return hp_errf(L->eb, HP_ERR_FORMAT,
                       "%s: llama.rope.freq_base must be a float > 1",
                       L->fname);
    if (!hp_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon",
                         &hp->norm_eps))
        return hp_errf(L->eb, HP_ERR_FORMAT,
                       "%s: missing float metadata key "
                       "llama.attention.layer_norm_rms_epsilon", L->fname);
    if (!(hp->norm_eps > 0.0f) || !isfinite(hp->norm_eps))
        return hp_errf(L->eb, HP_ERR_FORMAT,
                       "%s: llama.attention.layer_norm_rms_epsilon must be "
                       "positive", L->fname);
    /* Variants whose math this forward pass does not implement. */
    int64_t experts = 0;
    if (hp_gguf_get_i64(g, "llama.expert_count", &experts) && experts > 0)
        return hp_errf(L->eb, HP_ERR_UNSUPPORTED,
                       "%s: mixture-of-experts llama (expert_count %lld) "
                       "not supported", L->fname, (long long)experts);
    hp_str scal;
    if (hp_gguf_get_str(g, "llama.rope.scaling.type", &scal) &&
        !hp_str_eq(scal, "none"))
        return hp_errf(L->eb, HP_ERR_UNSUPPORTED,
                       "%s: rope scaling '%.*s' not supported", L->fname,
                       scal.len > 16 ? 16 : (int)scal.len, scal.ptr);
    return HP_OK;
}

static bool matrix_type_ok(hp_dtype t)
{
    return t == HP_DT_F32 || t == HP_DT_F16 || t == HP_DT_BF16 ||
           t == HP_DT_Q8_0 || t == HP_DT_Q4_0 || t == HP_DT_Q4_1 ||
           t == HP_DT_Q5_0 || t == HP_DT_Q5_1 || t == HP_DT_Q4_K ||
           t == HP_DT_Q5_K || t == HP_DT_Q6_K;
}

/* Find a tensor and check its shape is [ne0] (ne1 == 0) or [ne0, ne1]. */
static hp_err find_shaped(loader *L, const char *name, int64_t ne0,
                          int64_t ne1, const hp_gguf_tensor **out)
{
    const hp_gguf_tensor *t = hp_gguf_tensor_find(L->m->gguf, name);
    *out = t;
    if (!t)
        return hp_errf(L->eb, HP_ERR_FORMAT, "%s: missing tensor %s",
                       L->fname, name);
    bool ok = t->ne[2] == 1 && t->ne[3] == 1 && t->ne[0] == ne0 &&
              t->ne[1] == (ne1 ? ne1 : 1) && t->n_dims <= (ne1 ? 2u : 1u);
    if (!ok) {
        char have[96], want[48];
        if (t->n_dims == 1)
            snprintf(have, sizeof have, "[%lld]", (long long)t->ne[0]);
        else
            snprintf(have, sizeof have, "[%lld,%lld%s]",
                     (long long)t->ne[0], (long long)t->ne[1],
                     t->n_dims > 2 ? ",..." : "");
        if (ne1)
            snprintf(want, sizeof want, "[%lld,%lld]", (long long)ne0,
                     (long long)ne1);
        else
            snprintf(want, sizeof want, "[%lld]", (long long)ne0);
        return hp_errf(L->eb, HP_ERR_FORMAT,
                       "%s: tensor %s: shape %s but metadata implies %s",
                       L->fname, name, have, want);
    }
    return HP_OK;
}

static hp_err load_matrix(loader *L, const char *name, int64_t ne0,
                          int64_t ne1, hp_weight *w)
{
    const hp_gguf_tensor *t;
    hp_err e = find_shaped(L, name, ne0, ne1, &t);
    if (e != HP_OK)
        return e;
    if (!matrix_type_ok(t->type) || !hp_dtype_supported(t->type))
        return hp_errf(L->eb, HP_ERR_UNSUPPORTED,
                       "%s: tensor %s: type %s not supported (f32, f16, "
                       "bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_K, q5_K, "
                       "q6_K are)", L->fname, name,
                       hp_dtype_name(t->type));
    /* Kernels load float elements directly; a file with general.alignment
     * below the element size could hand them a misaligned pointer. */
    uintptr_t a = (uintptr_t)t->data;
    if ((t->type == HP_DT_F32 && a % 4) ||
        ((t->type == HP_DT_F16 || t->type == HP_DT_BF16) && a % 2))
        return hp_errf(L->eb, HP_ERR_UNSUPPORTED,
                       "%s: tensor %s: data misaligned for %s", L->fname,
                       name, hp_dtype_name(t->type));
    w->type = t->type;
    w->ne0 = t->ne[0];
    w->ne1 = t->ne[1];
    w->data = t->data;
    return HP_OK;
}

/* A norm vector of n_embd, converted to an f32 copy in m->f32_copies
 * (always copied: tiny, and independent of the file's alignment). */
static hp_err load_norm(loader *L, const char *name, const float **out)
{
    const hp_gguf_tensor *t;
    hp_err e = find_shaped(L, name, L->m->hp.n_embd, 0, &t);
    if (e != HP_OK)
        return e;
    if (t->type != HP_DT_F32 && t->type != HP_DT_F16 &&
        t->type != HP_DT_BF16)
        return hp_errf(L->eb, HP_ERR_UNSUPPORTED,
                       "%s: tensor %s: type %s not supported for a norm "
                       "(f32, f16, bf16 are)", L->fname, name,
                       hp_dtype_name(t->type));
    size_t n = (size_t)L->m->hp.n_embd;
    if (L->n_copies + n > L->cap_copies)
        return hp_errf(L->eb, HP_ERR_INTERNAL, "%s: norm copies overflow",
                       L->fname);
    float *dst = L->m->f32_copies + L->n_copies;
    hp_dequant_row_ref(t->type, t->data, dst, (int64_t)n);
    L->n_copies += n;
    *out = dst;
    return HP_OK;
}

static hp_err load_tensors(loader *L)
{
    hp_model *m = L->m;
    const hp_hparams *hp = &m->hp;
    int64_t E = hp->n_embd, Q = (int64_t)hp->n_head * hp->head_dim;
    int64_t KV = (int64_t)hp->n_head_kv * hp->head_dim, F = hp->n_ff;
    const hp_gguf_tensor *te =
        hp_gguf_tensor_find(m->gguf, "token_embd.weight");
    if (!te)
        return hp_errf(L->eb, HP_ERR_FORMAT,
                       "%s: missing tensor token_embd.weight", L->fname);
    if (te->ne[1] <= 0 || te->ne[1] > INT32_MAX / 2)
        return hp_errf(L->eb, HP_ERR_FORMAT,
                       "%s: tensor token_embd.weight: bad vocabulary size",
                       L->fname);
    m->hp.n_vocab = (int)te->ne[1];
    int64_t V = m->hp.n_vocab;
    hp_err e = load_matrix(L, "token_embd.weight", E, V, &m->tok_embd);
    if (e != HP_OK)
        return e;
    L->cap_copies = (size_t)E * (2 * (size_t)hp->n_layer + 1);
    m->f32_copies = malloc(L->cap_copies * sizeof(float));
    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->f32_copies || !m->layers)
        return hp_errf(L->eb, HP_ERR_NOMEM, "%s: out of memory", L->fname);
    e = load_norm(L, "output_norm.weight", &m->out_norm);
    if (e != HP_OK)
        return e;
    if (hp_gguf_tensor_find(m->gguf, "output.weight")) {
        e = load_matrix(L, "output.weight", E, V, &m->output);
        if (e != HP_OK)
            return e;
    } else {
        m->output = m->tok_embd; /* tied embeddings */
    }
    for (int l = 0; l < hp->n_layer; l++) {
        hp_layer *ly = &m->layers[l];
        /* Per-layer tensors in file-name order; norm entries have ne1 0. */
        struct {
            const char *suffix;
            int64_t ne0, ne1;
            hp_weight *w;
            const float **norm;
        } parts[] = {
            {"attn_norm", E, 0, NULL, &ly->attn_norm},
            {"attn_q", E, Q, &ly->wq, NULL},
            {"attn_k", E, KV, &ly->wk, NULL},
            {"attn_v", E, KV, &ly->wv, NULL},
            {"attn_output", Q, E, &ly->wo, NULL},
            {"ffn_norm", E, 0, NULL, &ly->ffn_norm},
            {"ffn_gate", E, F, &ly->w_gate, NULL},
            {"ffn_up", E, F, &ly->w_up, NULL},
            {"ffn_down", F, E, &ly->w_down, NULL},
        };
        for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
            char nm[64];
            snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, parts[i].suffix);
            if (parts[i].norm)
                e = load_norm(L, nm, parts[i].norm);
            else
                e = load_matrix(L, nm, parts[i].ne0, parts[i].ne1,
                                parts[i].w);
            if (e != HP_OK)
                return e;
        }
    }
    return HP_OK;
}

static char *dup_str(hp_str s)
{
    char *p = malloc((size_t)s.len + 1);
    if (p) {
        memcpy(p, s.ptr, (size_t)s.len);
        p[s.len] = '\0';
    }
    return p;
}

hp_err hp_model_load(const char *path, hp_model **out, hp_errbuf *eb)
{
    *out = NULL;
    hp_model *m = calloc(1, sizeof *m);
    if (!m)
        return hp_errf(eb, HP_ERR_NOMEM, "out of memory");
    loader L = {m, base_name(path), eb, 0, 0};
    hp_err e = hp_gguf_open(path, &m->gguf, eb);
    if (e != HP_OK)
        goto fail;
    m->path = strdup(path);
    if (!m->path) {
        e = hp_errf(eb, HP_ERR_NOMEM, "out of memory");
        goto fail;
    }
    e = read_hparams(&L);
    if (e == HP_OK)
        e = load_tensors(&L);
    if (e != HP_OK)
        goto fail;
    /* Vocabulary last: weight problems are reported even when the file's
     * tokenizer is also broken, and are the likelier mistake. */
    e = hp_vocab_load(m->gguf, &m->vocab, eb);
    if (e != HP_OK)
        goto fail;
    if (hp_vocab_size(m->vocab) > m->hp.n_vocab) {
        e = hp_errf(eb, HP_ERR_FORMAT,
                    "%s: vocabulary has %d tokens but token_embd.weight has "
                    "%d rows", L.fname, (int)hp_vocab_size(m->vocab),
                    m->hp.n_vocab);
        goto fail;
    }
    hp_str s;
    if (hp_gguf_get_str(m->gguf, "general.name", &s) && s.len > 0) {
        m->name = dup_str(s);
    } else {
        size_t n = strlen(L.fname);
        if (n > 5 && strcmp(L.fname + n - 5, ".gguf") == 0)
            n -= 5;
        m->name = strndup(L.fname, n);
    }
    if (hp_gguf_get_str(m->gguf, "tokenizer.chat_template", &s)) {
        m->chat_template = dup_str(s);
        if (!m->chat_template) {
            e = hp_errf(eb, HP_ERR_NOMEM, "out of memory");
            goto fail;
        }
    }
    if (!m->name) {
        e = hp_errf(eb, HP_ERR_NOMEM, "out of memory");
        goto fail;
    }
    *out = m;
    return HP_OK;
fail:
    hp_model_free(m);
    return e;
}

void hp_model_free(hp_model *m)
{
    if (!m)
        return;
    hp_vocab_free(m->vocab);
    hp_gguf_close(m->gguf);
    free(m->layers);
    free(m->f32_copies);
    free(m->chat_template);
    free(m->name);
    free(m->path);
    free(m);
}

static uint64_t wbytes(const hp_weight *w)
{
    return (uint64_t)hp_dtype_row_bytes(w->type, w->ne0) * (uint64_t)w->ne1;
}

uint64_t hp_model_weight_bytes(const hp_model *m)
{
    /* Every matrix is streamed once per step; the embedding contributes
     * one row (its full size only when tied, via the output head). */
    uint64_t b = wbytes(&m->output);
    b += (uint64_t)hp_dtype_row_bytes(m->tok_embd.type, m->tok_embd.ne0);
    for (int l = 0; l < m->hp.n_layer; l++) {
        const hp_layer *ly = &m->layers[l];
        b += wbytes(&ly->wq) + wbytes(&ly->wk) + wbytes(&ly->wv) +
             wbytes(&ly->wo) + wbytes(&ly->w_gate) + wbytes(&ly->w_up) +
             wbytes(&ly->w_down);
    }
    return b;
}
