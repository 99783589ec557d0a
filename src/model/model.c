/* model.c: loading a model from GGUF: hyperparameters from "<arch>.*"
 * metadata, weight views checked against them, and the vocabulary; plus
 * what both loaders share (architecture traits, owned buffers, checks).
 *
 * Owns the hp_gguf mapping (weights are read in place) and small f32
 * copies of the vectors (norms, biases). Architectures llama, mistral,
 * qwen2, qwen3, gemma2, gemma3, phi3; anything else, and any tensor type
 * the kernels cannot compute with, is refused at load by name so a bad
 * file never reaches the forward pass. Hugging Face folders are
 * model_hf.c's. Knows nothing of batching, the KV cache or sampling
 * (forward.c, engine/). */
#include "model/model_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Sanity ceilings on metadata: far above any real model, low enough that
 * products like n_layer * n_ctx * n_embd cannot overflow 64 bits. */
#define MAX_DIM (1 << 20)
#define MAX_LAYERS 4096

/* ------------------------------------------------ architecture traits */

static const hp_model__arch arches[] = {
    /* name     id               gguf rope     act            embd  bias
     * qk_norm post fused swa_pattern */
    {"llama", HP_ARCH_LLAMA, HP_ROPE_NORM, HP_ACT_SILU, false, false, false,
     false, false, 0},
    {"mistral", HP_ARCH_MISTRAL, HP_ROPE_NORM, HP_ACT_SILU, false, false,
     false, false, false, 0},
    {"qwen2", HP_ARCH_QWEN2, HP_ROPE_NEOX, HP_ACT_SILU, false, true, false,
     false, false, 0},
    {"qwen3", HP_ARCH_QWEN3, HP_ROPE_NEOX, HP_ACT_SILU, false, false, true,
     false, false, 0},
    {"gemma2", HP_ARCH_GEMMA2, HP_ROPE_NEOX, HP_ACT_GELU_TANH, true, false,
     false, true, false, 2},
    {"gemma3", HP_ARCH_GEMMA3, HP_ROPE_NEOX, HP_ACT_GELU_TANH, true, false,
     true, true, false, 6},
    {"phi3", HP_ARCH_PHI3, HP_ROPE_NEOX, HP_ACT_SILU, false, false, false,
     false, true, 0},
};
#define N_ARCHES (sizeof arches / sizeof arches[0])

const hp_model__arch *hp_model__arch_by_name(const char *name, size_t len)
{
    for (size_t i = 0; i < N_ARCHES; i++)
        if (strlen(arches[i].name) == len &&
            memcmp(arches[i].name, name, len) == 0)
            return &arches[i];
    return NULL;
}

const hp_model__arch *hp_model__arch_by_id(hp_arch id)
{
    for (size_t i = 0; i < N_ARCHES; i++)
        if (arches[i].id == id)
            return &arches[i];
    return NULL;
}

bool hp_model__own(hp_model *m, void *p)
{
    if (!p)
        return false;
    if (m->n_owned == m->cap_owned) {
        size_t cap = m->cap_owned ? 2 * m->cap_owned : 64;
        void **n = realloc(m->owned, cap * sizeof *n);
        if (!n) {
            free(p);
            return false;
        }
        m->owned = n;
        m->cap_owned = cap;
    }
    m->owned[m->n_owned++] = p;
    return true;
}

hp_err hp_model__check_hparams(const hp_hparams *hp, const char *fname,
                               hp_errbuf *eb)
{
    if (hp->n_head % hp->n_head_kv != 0)
        return hp_errf(eb, HP_ERR_FORMAT,
                       "%s: head_count %d not divisible by head_count_kv %d",
                       fname, hp->n_head, hp->n_head_kv);
    if (hp->head_dim <= 0 || hp->head_dim > MAX_DIM / 4)
        return hp_errf(eb, HP_ERR_FORMAT, "%s: bad head dim %d", fname,
                       hp->head_dim);
    if (hp->rope_dim > hp->head_dim || hp->rope_dim % 2 != 0)
        return hp_errf(eb, HP_ERR_FORMAT,
                       "%s: rope dimension %d must be even and <= head dim "
                       "%d", fname, hp->rope_dim, hp->head_dim);
    if ((int64_t)hp->n_head * hp->head_dim > MAX_DIM)
        return hp_errf(eb, HP_ERR_FORMAT, "%s: %d heads of %d: too wide",
                       fname, hp->n_head, hp->head_dim);
    if (!(hp->attn_scale > 0.0f) || !isfinite(hp->attn_scale) ||
        !(hp->embd_scale > 0.0f) || !isfinite(hp->embd_scale) ||
        !(hp->attn_softcap >= 0.0f) || !isfinite(hp->attn_softcap) ||
        !(hp->final_softcap >= 0.0f) || !isfinite(hp->final_softcap))
        return hp_errf(eb, HP_ERR_FORMAT, "%s: bad attention scale or "
                       "softcap", fname);
    if (hp->rope_scaling == HP_ROPE_SCALE_LLAMA3 &&
        (!(hp->rope_factor >= 1.0f) || !(hp->rope_low_freq > 0.0f) ||
         !(hp->rope_high_freq > hp->rope_low_freq) || hp->rope_orig_ctx <= 0))
        return hp_errf(eb, HP_ERR_FORMAT, "%s: llama3 rope scaling needs "
                       "factor >= 1, 0 < low_freq_factor < high_freq_factor "
                       "and an original context length", fname);
    if (hp->rope_scaling == HP_ROPE_SCALE_LINEAR &&
        (!(hp->rope_factor > 0.0f) || !isfinite(hp->rope_factor)))
        return hp_errf(eb, HP_ERR_FORMAT, "%s: linear rope scaling needs a "
                       "factor > 0", fname);
    if (!(hp->rope_base_swa > 1.0f) || !isfinite(hp->rope_base_swa))
        return hp_errf(eb, HP_ERR_FORMAT, "%s: bad sliding-layer rope base",
                       fname);
    if (hp->sliding_window < 0)
        return hp_errf(eb, HP_ERR_FORMAT, "%s: negative sliding window",
                       fname);
    return HP_OK;
}

/* ----------------------------------------------------------- GGUF */

typedef struct loader {
    hp_model *m;
    const hp_model__arch *arch;
    const char *fname; /* borrows: basename for messages */
    hp_errbuf *eb;
} loader;

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* "<arch>.<suffix>" into buf. */
static const char *akey(const loader *L, const char *suffix, char *buf,
                        size_t cap)
{
    snprintf(buf, cap, "%s.%s", L->arch->name, suffix);
    return buf;
}

/* Positive integer key "<arch>.suffix"; dflt when absent and optional. */
static hp_err get_int(loader *L, const char *suffix, int *out, bool required,
                      int dflt)
{
    const hp_gguf *g = L->m->gguf;
    char key[96];
    akey(L, suffix, key, sizeof key);
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

/* Float key "<arch>.suffix" that must be finite and > lo; dflt if absent. */
static hp_err get_flt(loader *L, const char *suffix, float *out, float lo,
                      float dflt)
{
    char key[96];
    akey(L, suffix, key, sizeof key);
    *out = dflt;
    if (!hp_gguf_find(L->m->gguf, key))
        return HP_OK;
    if (!hp_gguf_get_f32(L->m->gguf, key, out) || !(*out > lo) ||
        !isfinite(*out))
        return hp_errf(L->eb, HP_ERR_FORMAT,
                       "%s: metadata key %s must be a float > %g", L->fname,
                       key, (double)lo);
    return HP_OK;
}

/* RoPE scaling metadata: none, linear, llama3; anything else refused. */
static hp_err read_rope_scaling(loader *L)
{
    hp_hparams *hp = &L->m->hp;
    char key[96];
    hp_str scal;
    hp->rope_scaling = HP_ROPE_SCALE_NONE;
    hp->rope_factor = 1.0f;
    if (!hp_gguf_get_str(L->m->gguf,
                         akey(L, "rope.scaling.type", key, sizeof key),
                         &scal) ||
        hp_str_eq(scal, "none"))
        return HP_OK;
    hp_err e;
    if (hp_str_eq(scal, "linear")) {
        hp->rope_scaling = HP_ROPE_SCALE_LINEAR;
        return get_flt(L, "rope.scaling.factor", &hp->rope_factor, 0.0f,
                       1.0f);
    }
    if (hp_str_eq(scal, "llama3")) {
        hp->rope_scaling = HP_ROPE_SCALE_LLAMA3;
        if ((e = get_flt(L, "rope.scaling.factor", &hp->rope_factor, 0.0f,
                         8.0f)) != HP_OK ||
            (e = get_flt(L, "rope.scaling.low_freq_factor",
                         &hp->rope_low_freq, 0.0f, 1.0f)) != HP_OK ||
            (e = get_flt(L, "rope.scaling.high_freq_factor",
                         &hp->rope_high_freq, 0.0f, 4.0f)) != HP_OK)
            return e;
        return get_int(L, "rope.scaling.original_context_length",
                       &hp->rope_orig_ctx, true, 0);
    }
    return hp_errf(L->eb, HP_ERR_UNSUPPORTED,
                   "%s: rope scaling '%.*s' not supported (linear, llama3 "
                   "are)", L->fname, scal.len > 16 ? 16 : (int)scal.len,
                   scal.ptr);
}

/* Sliding window size and which layers use it. */
static hp_err read_window(loader *L)
{
    hp_model *m = L->m;
    hp_hparams *hp = &m->hp;
    char key[96];
    hp_err e = get_int(L, "attention.sliding_window", &hp->sliding_window,
                       false, 0);
    if (e != HP_OK || hp->sliding_window == 0)
        return e;
    int pattern = L->arch->swa_pattern;
    const hp_gguf_kv *kv = hp_gguf_find(
        m->gguf, akey(L, "attention.sliding_window_pattern", key, sizeof key));
    if (kv && kv->type == HP_GGUF_ARRAY) {
        /* one flag per layer (true = sliding) */
        if (kv->arr_n != (uint64_t)hp->n_layer ||
            (kv->arr_type != HP_GGUF_BOOL && kv->arr_type != HP_GGUF_INT32 &&
             kv->arr_type != HP_GGUF_UINT8))
            return hp_errf(L->eb, HP_ERR_FORMAT, "%s: %s: expected %d flags",
                           L->fname, key, hp->n_layer);
        for (int l = 0; l < hp->n_layer; l++)
            m->layers[l].sliding =
                kv->arr_type == HP_GGUF_BOOL
                    ? kv->data[l] != 0
                    : hp_gguf_arr_int(kv, (uint64_t)l) != 0;
        return HP_OK;
    }
    if (kv && (e = get_int(L, "attention.sliding_window_pattern", &pattern,
                           true, 0)) != HP_OK)
        return e;
    for (int l = 0; l < hp->n_layer; l++)
        m->layers[l].sliding = pattern <= 1 || l % pattern < pattern - 1;
    return HP_OK;
}

static hp_err read_hparams(loader *L)
{
    hp_model *m = L->m;
    hp_hparams *hp = &m->hp;
    const hp_gguf *g = m->gguf;
    hp_str arch;
    char key[96];
    if (!hp_gguf_get_str(g, "general.architecture", &arch))
        return hp_errf(L->eb, HP_ERR_FORMAT,
                       "%s: missing metadata key general.architecture",
                       L->fname);
    L->arch = hp_model__arch_by_name(arch.ptr, arch.len);
    if (!L->arch) {
        int n = arch.len > 24 ? 24 : (int)arch.len;
        return hp_errf(L->eb, HP_ERR_UNSUPPORTED,
                       "%s: unsupported architecture '%.*s' (llama, "
                       "mistral, qwen2, qwen3, gemma2, gemma3, phi3 are)",
                       L->fname, n, arch.ptr);
    }
    snprintf(hp->arch, sizeof hp->arch, "%s", L->arch->name);
    hp->arch_id = L->arch->id;
    hp->rope_mode = L->arch->gguf_rope;
    hp->act = L->arch->act;
    struct { const char *key; int *dst; } ints[] = {
        {"embedding_length", &hp->n_embd},
        {"block_count", &hp->n_layer},
        {"attention.head_count", &hp->n_head},
        {"feed_forward_length", &hp->n_ff},
        {"context_length", &hp->n_ctx_train},
    };
    hp_err e;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        e = get_int(L, ints[i].key, ints[i].dst, true, 0);
        if (e != HP_OK)
            return e;
    }
    if ((e = get_int(L, "attention.head_count_kv", &hp->n_head_kv, false,
                     hp->n_head)) != HP_OK)
        return e;
    if (hp->n_layer > MAX_LAYERS)
        return hp_errf(L->eb, HP_ERR_FORMAT, "%s: %s.block_count %d is "
                       "absurd", L->fname, hp->arch, hp->n_layer);
    /* head dim: attention.key_length (qwen3, gemma), else n_embd/n_head */
    int kl = 0, vl = 0;
    if ((e = get_int(L, "attention.key_length", &kl, false, 0)) != HP_OK ||
        (e = get_int(L, "attention.value_length", &vl, false, kl)) != HP_OK)
        return e;
    if (kl == 0 && hp->n_embd % hp->n_head != 0)
        return hp_errf(L->eb, HP_ERR_FORMAT,
                       "%s: embedding_length %d not divisible by head_count "
                       "%d", L->fname, hp->n_embd, hp->n_head);
    hp->head_dim = kl ? kl : hp->n_embd / hp->n_head;
    if (vl != 0 && vl != hp->head_dim)
        return hp_errf(L->eb, HP_ERR_UNSUPPORTED, "%s: value_length %d != "
                       "key_length %d not supported", L->fname, vl,
                       hp->head_dim);
    if ((e = get_int(L, "rope.dimension_count", &hp->rope_dim, false,
                     hp->head_dim)) != HP_OK ||
        (e = get_flt(L, "rope.freq_base", &hp->rope_base, 1.0f,
                     10000.0f)) != HP_OK)
        return e;
    if (!hp_gguf_get_f32(g, akey(L, "attention.layer_norm_rms_epsilon", key,
                                 sizeof key), &hp->norm_eps))
        return hp_errf(L->eb, HP_ERR_FORMAT,
                       "%s: missing float metadata key %s", L->fname, key);
    if (!(hp->norm_eps > 0.0f) || !isfinite(hp->norm_eps))
        return hp_errf(L->eb, HP_ERR_FORMAT, "%s: %s must be positive",
                       L->fname, key);
    /* Variants whose math this forward pass does not implement. */
    int64_t experts = 0;
    if (hp_gguf_get_i64(g, akey(L, "expert_count", key, sizeof key),
                        &experts) && experts > 0)
        return hp_errf(L->eb, HP_ERR_UNSUPPORTED,
                       "%s: mixture-of-experts %s (expert_count %lld) "
                       "not supported", L->fname, hp->arch,
                       (long long)experts);
    if ((e = read_rope_scaling(L)) != HP_OK)
        return e;
    /* gemma3's local layers: their own base (llama.cpp writes
     * rope.freq_base_swa when it differs; 10000 otherwise), no scaling */
    hp->rope_swa_own = hp->arch_id == HP_ARCH_GEMMA3;
    if ((e = get_flt(L, "rope.freq_base_swa", &hp->rope_base_swa, 1.0f,
                     hp->rope_swa_own ? 10000.0f : hp->rope_base)) != HP_OK)
        return e;
    hp->embd_scale = L->arch->embd_scale ? sqrtf((float)hp->n_embd) : 1.0f;
    /* Query scaling. GGUF carries no query_pre_attn_scalar: gemma uses
     * head_dim except the 27B models (46-layer gemma2, 62-layer gemma3),
     * whose configs set it to n_embd / n_head; attention.scale overrides. */
    float qpas = (float)hp->head_dim;
    if ((hp->arch_id == HP_ARCH_GEMMA2 && hp->n_layer == 46) ||
        (hp->arch_id == HP_ARCH_GEMMA3 && hp->n_layer == 62))
        qpas = (float)hp->n_embd / (float)hp->n_head;
    if ((e = get_flt(L, "attention.scale", &hp->attn_scale, 0.0f,
                     1.0f / sqrtf(qpas))) != HP_OK ||
        (e = get_flt(L, "attn_logit_softcapping", &hp->attn_softcap, 0.0f,
                     0.0f)) != HP_OK ||
        (e = get_flt(L, "final_logit_softcapping", &hp->final_softcap, 0.0f,
                     0.0f)) != HP_OK)
        return e;
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

/* Rows [r0, r0 + n) of a matrix as a view (fused phi3 tensors). */
static hp_weight rows_of(const hp_weight *w, int64_t r0, int64_t n)
{
    hp_weight v = *w;
    v.ne1 = n;
    v.data = (const char *)w->data +
             (size_t)r0 * (size_t)hp_dtype_row_bytes(w->type, w->ne0);
    return v;
}

/* A vector of n floats (norm, bias), converted to an owned f32 copy
 * (always copied: tiny, and independent of the file's alignment). When
 * optional and absent, *out is NULL. */
static hp_err load_vec(loader *L, const char *name, int64_t n, bool required,
                       const float **out)
{
    *out = NULL;
    if (!required && !hp_gguf_tensor_find(L->m->gguf, name))
        return HP_OK;
    const hp_gguf_tensor *t;
    hp_err e = find_shaped(L, name, n, 0, &t);
    if (e != HP_OK)
        return e;
    if (t->type != HP_DT_F32 && t->type != HP_DT_F16 &&
        t->type != HP_DT_BF16)
        return hp_errf(L->eb, HP_ERR_UNSUPPORTED,
                       "%s: tensor %s: type %s not supported for a vector "
                       "(f32, f16, bf16 are)", L->fname, name,
                       hp_dtype_name(t->type));
    float *dst = malloc((size_t)n * sizeof(float));
    if (!hp_model__own(L->m, dst))
        return hp_errf(L->eb, HP_ERR_NOMEM, "%s: out of memory", L->fname);
    hp_dequant_row_ref(t->type, t->data, dst, n);
    *out = dst;
    return HP_OK;
}

/* blk.<l>.<suffix>.<kind> */
static const char *bname(char *buf, size_t cap, int l, const char *suffix,
                         const char *kind)
{
    snprintf(buf, cap, "blk.%d.%s.%s", l, suffix, kind);
    return buf;
}

static hp_err load_layer(loader *L, int l)
{
    hp_model *m = L->m;
    const hp_hparams *hp = &m->hp;
    const hp_model__arch *a = L->arch;
    hp_layer *ly = &m->layers[l];
    int64_t E = hp->n_embd, Q = (int64_t)hp->n_head * hp->head_dim;
    int64_t KV = (int64_t)hp->n_head_kv * hp->head_dim, F = hp->n_ff;
    int64_t HD = hp->head_dim;
    char nm[96];
    hp_err e;
#define NM(s) bname(nm, sizeof nm, l, s, "weight")
#define NB(s) bname(nm, sizeof nm, l, s, "bias")
    if ((e = load_vec(L, NM("attn_norm"), E, true, &ly->attn_norm)) != HP_OK)
        return e;
    if (a->fused && hp_gguf_tensor_find(m->gguf, NM("attn_qkv"))) {
        hp_weight qkv;
        if ((e = load_matrix(L, NM("attn_qkv"), E, Q + 2 * KV, &qkv)) !=
            HP_OK)
            return e;
        ly->wq = rows_of(&qkv, 0, Q);
        ly->wk = rows_of(&qkv, Q, KV);
        ly->wv = rows_of(&qkv, Q + KV, KV);
    } else if ((e = load_matrix(L, NM("attn_q"), E, Q, &ly->wq)) != HP_OK ||
               (e = load_matrix(L, NM("attn_k"), E, KV, &ly->wk)) != HP_OK ||
               (e = load_matrix(L, NM("attn_v"), E, KV, &ly->wv)) != HP_OK) {
        return e;
    }
    if ((e = load_vec(L, NB("attn_q"), Q, a->qkv_bias, &ly->bq)) != HP_OK ||
        (e = load_vec(L, NB("attn_k"), KV, a->qkv_bias, &ly->bk)) != HP_OK ||
        (e = load_vec(L, NB("attn_v"), KV, a->qkv_bias, &ly->bv)) != HP_OK ||
        (e = load_vec(L, NM("attn_q_norm"), HD, a->qk_norm, &ly->q_norm)) !=
            HP_OK ||
        (e = load_vec(L, NM("attn_k_norm"), HD, a->qk_norm, &ly->k_norm)) !=
            HP_OK ||
        (e = load_matrix(L, NM("attn_output"), Q, E, &ly->wo)) != HP_OK ||
        (e = load_vec(L, NM("post_attention_norm"), E, a->post_norms,
                      &ly->post_attn_norm)) != HP_OK ||
        (e = load_vec(L, NM("ffn_norm"), E, true, &ly->ffn_norm)) != HP_OK)
        return e;
    if (a->fused && !hp_gguf_tensor_find(m->gguf, NM("ffn_gate"))) {
        /* phi3: ffn_up holds gate rows then up rows */
        hp_weight gu;
        if ((e = load_matrix(L, NM("ffn_up"), E, 2 * F, &gu)) != HP_OK)
            return e;
        ly->w_gate = rows_of(&gu, 0, F);
        ly->w_up = rows_of(&gu, F, F);
    } else if ((e = load_matrix(L, NM("ffn_gate"), E, F, &ly->w_gate)) !=
                   HP_OK ||
               (e = load_matrix(L, NM("ffn_up"), E, F, &ly->w_up)) != HP_OK) {
        return e;
    }
    if ((e = load_matrix(L, NM("ffn_down"), F, E, &ly->w_down)) != HP_OK ||
        (e = load_vec(L, NM("post_ffw_norm"), E, a->post_norms,
                      &ly->post_ffn_norm)) != HP_OK)
        return e;
#undef NM
#undef NB
    return HP_OK;
}

static hp_err load_tensors(loader *L)
{
    hp_model *m = L->m;
    const hp_hparams *hp = &m->hp;
    int64_t E = hp->n_embd;
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
    e = load_vec(L, "output_norm.weight", E, true, &m->out_norm);
    if (e != HP_OK)
        return e;
    if (hp_gguf_tensor_find(m->gguf, "output.weight")) {
        e = load_matrix(L, "output.weight", E, V, &m->output);
        if (e != HP_OK)
            return e;
    } else {
        m->output = m->tok_embd; /* tied embeddings */
    }
    if (hp_gguf_tensor_find(m->gguf, "rope_factors_long.weight"))
        return hp_errf(L->eb, HP_ERR_UNSUPPORTED, "%s: longrope scaling "
                       "(rope_factors_long.weight) not supported", L->fname);
    /* llama 3.1+ conversions carry the scaling as per-frequency divisors;
     * they replace any rope.scaling metadata (never both at once). */
    e = load_vec(L, "rope_freqs.weight", hp->rope_dim / 2, false,
                 &m->rope_freqs);
    if (e != HP_OK)
        return e;
    if (m->rope_freqs) {
        m->hp.rope_scaling = HP_ROPE_SCALE_NONE;
        for (int i = 0; i < hp->rope_dim / 2; i++)
            if (!(m->rope_freqs[i] > 0.0f) || !isfinite(m->rope_freqs[i]))
                return hp_errf(L->eb, HP_ERR_FORMAT, "%s: rope_freqs.weight"
                               "[%d] is not a positive number", L->fname, i);
    }
    for (int l = 0; l < hp->n_layer; l++)
        if ((e = load_layer(L, l)) != HP_OK)
            return e;
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

static hp_err load_gguf(hp_model *m, const char *path, hp_errbuf *eb)
{
    loader L = {m, NULL, base_name(path), eb};
    hp_err e = hp_gguf_open(path, &m->gguf, eb);
    if (e != HP_OK)
        return e;
    e = read_hparams(&L);
    if (e != HP_OK)
        return e;
    m->layers = calloc((size_t)m->hp.n_layer, sizeof *m->layers);
    if (!m->layers)
        return hp_errf(eb, HP_ERR_NOMEM, "%s: out of memory", L.fname);
    if ((e = read_window(&L)) != HP_OK ||
        (e = hp_model__check_hparams(&m->hp, L.fname, eb)) != HP_OK ||
        (e = load_tensors(&L)) != HP_OK)
        return e;
    /* Vocabulary last: weight problems are reported even when the file's
     * tokenizer is also broken, and are the likelier mistake. */
    e = hp_vocab_load(m->gguf, &m->vocab, eb);
    if (e != HP_OK)
        return e;
    hp_str s;
    if (hp_gguf_get_str(m->gguf, "general.name", &s) && s.len > 0) {
        m->name = dup_str(s);
    } else {
        size_t n = strlen(L.fname);
        if (n > 5 && strcmp(L.fname + n - 5, ".gguf") == 0)
            n -= 5;
        m->name = strndup(L.fname, n);
    }
    if (!m->name)
        return hp_errf(eb, HP_ERR_NOMEM, "out of memory");
    if (hp_gguf_get_str(m->gguf, "tokenizer.chat_template", &s)) {
        m->chat_template = dup_str(s);
        if (!m->chat_template)
            return hp_errf(eb, HP_ERR_NOMEM, "out of memory");
    }
    return HP_OK;
}

bool hp_model_parse_quantize(const char *s, hp_dtype *out)
{
    if (s && strcmp(s, "q8_0") == 0) {
        *out = HP_DT_Q8_0;
        return true;
    }
    if (s && strcmp(s, "q4_0") == 0) {
        *out = HP_DT_Q4_0;
        return true;
    }
    return false;
}

hp_err hp_model_load_opts(const char *path, const hp_model_opts *o,
                          hp_model **out, hp_errbuf *eb)
{
    *out = NULL;
    hp_model_opts none = {0};
    if (!o)
        o = &none;
    if (o->quantize != 0 && o->quantize != HP_DT_Q8_0 &&
        o->quantize != HP_DT_Q4_0)
        return hp_errf(eb, HP_ERR_INVALID, "quantize: only q8_0 and q4_0");
    hp_model *m = calloc(1, sizeof *m);
    if (!m)
        return hp_errf(eb, HP_ERR_NOMEM, "out of memory");
    m->path = strdup(path);
    hp_err e;
    struct stat sb;
    if (!m->path)
        e = hp_errf(eb, HP_ERR_NOMEM, "out of memory");
    else if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        e = hp_model__load_hf(m, path, o, eb);
    else
        e = load_gguf(m, path, eb);
    if (e == HP_OK && hp_vocab_size(m->vocab) > m->hp.n_vocab)
        e = hp_errf(eb, HP_ERR_FORMAT,
                    "%s: vocabulary has %d tokens but the embedding has "
                    "%d rows", base_name(path), (int)hp_vocab_size(m->vocab),
                    m->hp.n_vocab);
    if (e != HP_OK) {
        hp_model_free(m);
        return e;
    }
    *out = m;
    return HP_OK;
}

hp_err hp_model_load(const char *path, hp_model **out, hp_errbuf *eb)
{
    return hp_model_load_opts(path, NULL, out, eb);
}

void hp_model_free(hp_model *m)
{
    if (!m)
        return;
    hp_vocab_free(m->vocab);
    hp_gguf_close(m->gguf);
    hp_st_close(m->st);
    for (size_t i = 0; i < m->n_owned; i++)
        free(m->owned[i]);
    free(m->owned);
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
