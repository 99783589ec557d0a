/* model_hf.c: loading a model from a Hugging Face folder without
 * conversion: config.json (hf_config), *.safetensors (safetensors.h),
 * tokenizer.json (vocab.h) and tokenizer_config.json (hf_tokcfg.h).
 *
 * Owns the binding of HF tensor names to hp_layer fields per architecture.
 * Matrices stay in the mapping when their type is F32/F16/BF16 and the
 * data is aligned to the element; otherwise (or with quantize) they are
 * converted into buffers the model owns. Vectors (norms, biases) are
 * always f32 copies; gemma's (1 + w) norms get their 1 added here, so the
 * forward pass uses every norm as plain w, as it does for GGUF files
 * (whose converter adds the 1). HF q/k projections are not permuted, so
 * RoPE is always the rotate-halves (NEOX) form. Included by nobody:
 * reached through hp_model_load_opts (model.c). */
#include "model/hf_config.h"
#include "model/hf_tokcfg.h"
#include "model/model_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct hfl {
    hp_model *m;
    const hp_hf_config *c;
    const hp_model__arch *arch;
    const char *prefix; /* "model." or "language_model.model." */
    hp_dtype quantize;  /* 0, HP_DT_Q8_0, HP_DT_Q4_0 */
    hp_errbuf *eb;
} hfl;

static hp_err bind_arch(hfl *H)
{
    static const struct { hp_hf_arch hf; hp_arch a; } map[] = {
        {HP_HF_LLAMA, HP_ARCH_LLAMA},   {HP_HF_MISTRAL, HP_ARCH_MISTRAL},
        {HP_HF_QWEN2, HP_ARCH_QWEN2},   {HP_HF_QWEN3, HP_ARCH_QWEN3},
        {HP_HF_GEMMA2, HP_ARCH_GEMMA2}, {HP_HF_GEMMA3, HP_ARCH_GEMMA3},
        {HP_HF_PHI3, HP_ARCH_PHI3},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (map[i].hf == H->c->arch)
            H->arch = hp_model__arch_by_id(map[i].a);
    if (!H->arch)
        return hp_errf(H->eb, HP_ERR_UNSUPPORTED, "config.json: "
                       "architecture %s not supported",
                       hp_hf_arch_name(H->c->arch));
    return HP_OK;
}

/* hp_hparams from config.json. */
static hp_err bind_hparams(hfl *H)
{
    const hp_hf_config *c = H->c;
    hp_hparams *hp = &H->m->hp;
    snprintf(hp->arch, sizeof hp->arch, "%s", H->arch->name);
    hp->arch_id = H->arch->id;
    hp->n_embd = c->hidden_size;
    hp->n_layer = c->n_layers;
    hp->n_head = c->n_heads;
    hp->n_head_kv = c->n_kv_heads;
    hp->head_dim = c->head_dim;
    hp->n_ff = c->intermediate_size;
    hp->n_ctx_train = c->max_pos;
    int rd = (int)((float)c->head_dim * c->partial_rotary_factor);
    hp->rope_dim = rd - rd % 2;
    hp->rope_base = c->rope_theta;
    hp->norm_eps = c->rms_norm_eps;
    hp->rope_mode = HP_ROPE_NEOX;
    if (strcmp(c->hidden_act, "silu") == 0 ||
        strcmp(c->hidden_act, "swish") == 0)
        hp->act = HP_ACT_SILU;
    else if (strcmp(c->hidden_act, "gelu_pytorch_tanh") == 0 ||
             strcmp(c->hidden_act, "gelu_tanh") == 0 ||
             strcmp(c->hidden_act, "gelu_new") == 0)
        hp->act = HP_ACT_GELU_TANH;
    else
        return hp_errf(H->eb, HP_ERR_UNSUPPORTED, "config.json: hidden_act "
                       "'%s' not supported (silu, gelu_pytorch_tanh are)",
                       c->hidden_act);
    hp->rope_factor = 1.0f;
    switch (c->rope_scaling.type) {
    case HP_HF_ROPE_NONE: hp->rope_scaling = HP_ROPE_SCALE_NONE; break;
    case HP_HF_ROPE_LINEAR: hp->rope_scaling = HP_ROPE_SCALE_LINEAR; break;
    case HP_HF_ROPE_LLAMA3: hp->rope_scaling = HP_ROPE_SCALE_LLAMA3; break;
    }
    if (hp->rope_scaling != HP_ROPE_SCALE_NONE)
        hp->rope_factor = c->rope_scaling.factor;
    hp->rope_low_freq = c->rope_scaling.low_freq_factor;
    hp->rope_high_freq = c->rope_scaling.high_freq_factor;
    hp->rope_orig_ctx = c->rope_scaling.original_max_pos;
    hp->rope_swa_own = hp->arch_id == HP_ARCH_GEMMA3;
    hp->rope_base_swa = c->rope_local_theta;
    hp->embd_scale = H->arch->embd_scale ? sqrtf((float)hp->n_embd) : 1.0f;
    float qpas = c->query_pre_attn_scalar > 0 ? c->query_pre_attn_scalar
                                              : (float)c->head_dim;
    hp->attn_scale = 1.0f / sqrtf(qpas);
    hp->attn_softcap = c->attn_logit_softcapping;
    hp->final_softcap = c->final_logit_softcapping;
    hp->sliding_window = c->sliding_window;
    return HP_OK;
}

/* A matrix [rows, cols] (HF order) as a weight, in place when possible. */
static hp_err bind_matrix(hfl *H, const char *name, int64_t rows,
                          int64_t cols, hp_weight *w)
{
    const hp_st_tensor *t;
    int64_t shape[2] = {rows, cols};
    hp_err e = hp_st_get(H->m->st, name, 2, shape, &t, H->eb);
    if (e != HP_OK)
        return e;
    hp_dtype to = t->type;
    if (H->quantize && cols % 32 == 0)
        to = H->quantize;
    w->ne0 = cols;
    w->ne1 = rows;
    w->type = to;
    if (to == t->type && (uintptr_t)t->data % (uintptr_t)t->elem_size == 0) {
        w->data = t->data;
        return HP_OK;
    }
    void *buf = NULL;
    e = hp_st_tensor_to(t, to, &buf, H->eb);
    if (e != HP_OK)
        return e;
    if (!hp_model__own(H->m, buf))
        return hp_errf(H->eb, HP_ERR_NOMEM, "%s: out of memory", name);
    w->data = buf;
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

/* A vector of n as an owned f32 copy; gemma norms get (1 + w). Optional
 * and absent: *out NULL. */
static hp_err bind_vec(hfl *H, const char *name, int64_t n, bool required,
                       bool is_norm, const float **out)
{
    *out = NULL;
    if (!required && !hp_st_find(H->m->st, name))
        return HP_OK;
    const hp_st_tensor *t;
    hp_err e = hp_st_get(H->m->st, name, 1, &n, &t, H->eb);
    if (e != HP_OK)
        return e;
    void *buf = NULL;
    if ((e = hp_st_tensor_to(t, HP_DT_F32, &buf, H->eb)) != HP_OK)
        return e;
    if (!hp_model__own(H->m, buf))
        return hp_errf(H->eb, HP_ERR_NOMEM, "%s: out of memory", name);
    float *v = buf;
    if (is_norm && H->arch->embd_scale) /* gemma family */
        for (int64_t i = 0; i < n; i++)
            v[i] += 1.0f;
    *out = v;
    return HP_OK;
}

static hp_err bind_layer(hfl *H, int l)
{
    const hp_hparams *hp = &H->m->hp;
    const hp_model__arch *a = H->arch;
    hp_layer *ly = &H->m->layers[l];
    int64_t E = hp->n_embd, Q = (int64_t)hp->n_head * hp->head_dim;
    int64_t KV = (int64_t)hp->n_head_kv * hp->head_dim, F = hp->n_ff;
    int64_t HD = hp->head_dim;
    bool gemma = a->post_norms, bias = a->qkv_bias || H->c->attention_bias;
    char nm[160];
    hp_err e;
#define NM(s) (snprintf(nm, sizeof nm, "%slayers.%d.%s", H->prefix, l, s), nm)
    ly->sliding = H->c->layer_sliding[l] != 0;
    if ((e = bind_vec(H, NM("input_layernorm.weight"), E, true, true,
                      &ly->attn_norm)) != HP_OK)
        return e;
    if (a->fused) {
        hp_weight qkv;
        if ((e = bind_matrix(H, NM("self_attn.qkv_proj.weight"), Q + 2 * KV,
                             E, &qkv)) != HP_OK)
            return e;
        ly->wq = rows_of(&qkv, 0, Q);
        ly->wk = rows_of(&qkv, Q, KV);
        ly->wv = rows_of(&qkv, Q + KV, KV);
    } else if ((e = bind_matrix(H, NM("self_attn.q_proj.weight"), Q, E,
                                &ly->wq)) != HP_OK ||
               (e = bind_matrix(H, NM("self_attn.k_proj.weight"), KV, E,
                                &ly->wk)) != HP_OK ||
               (e = bind_matrix(H, NM("self_attn.v_proj.weight"), KV, E,
                                &ly->wv)) != HP_OK) {
        return e;
    }
    if (bias &&
        ((e = bind_vec(H, NM("self_attn.q_proj.bias"), Q, true, false,
                       &ly->bq)) != HP_OK ||
         (e = bind_vec(H, NM("self_attn.k_proj.bias"), KV, true, false,
                       &ly->bk)) != HP_OK ||
         (e = bind_vec(H, NM("self_attn.v_proj.bias"), KV, true, false,
                       &ly->bv)) != HP_OK))
        return e;
    if (H->c->qk_norm &&
        ((e = bind_vec(H, NM("self_attn.q_norm.weight"), HD, true, true,
                       &ly->q_norm)) != HP_OK ||
         (e = bind_vec(H, NM("self_attn.k_norm.weight"), HD, true, true,
                       &ly->k_norm)) != HP_OK))
        return e;
    if ((e = bind_matrix(H, NM("self_attn.o_proj.weight"), E, Q, &ly->wo)) !=
        HP_OK)
        return e;
    if (gemma) {
        if ((e = bind_vec(H, NM("post_attention_layernorm.weight"), E, true,
                          true, &ly->post_attn_norm)) != HP_OK ||
            (e = bind_vec(H, NM("pre_feedforward_layernorm.weight"), E, true,
                          true, &ly->ffn_norm)) != HP_OK ||
            (e = bind_vec(H, NM("post_feedforward_layernorm.weight"), E,
                          true, true, &ly->post_ffn_norm)) != HP_OK)
            return e;
    } else if ((e = bind_vec(H, NM("post_attention_layernorm.weight"), E,
                             true, true, &ly->ffn_norm)) != HP_OK) {
        return e;
    }
    if (a->fused) {
        hp_weight gu; /* gate rows, then up rows */
        if ((e = bind_matrix(H, NM("mlp.gate_up_proj.weight"), 2 * F, E,
                             &gu)) != HP_OK)
            return e;
        ly->w_gate = rows_of(&gu, 0, F);
        ly->w_up = rows_of(&gu, F, F);
    } else if ((e = bind_matrix(H, NM("mlp.gate_proj.weight"), F, E,
                                &ly->w_gate)) != HP_OK ||
               (e = bind_matrix(H, NM("mlp.up_proj.weight"), F, E,
                                &ly->w_up)) != HP_OK) {
        return e;
    }
#undef NM
    snprintf(nm, sizeof nm, "%slayers.%d.mlp.down_proj.weight", H->prefix, l);
    return bind_matrix(H, nm, E, F, &ly->w_down);
}

static hp_err bind_tensors(hfl *H)
{
    hp_model *m = H->m;
    hp_hparams *hp = &m->hp;
    char nm[160];
    /* gemma3's multimodal checkpoints nest the language model, under one
     * of two spellings depending on the transformers version */
    static const char *const prefixes[][2] = {
        {"model.", "lm_head.weight"},
        {"language_model.model.", "language_model.lm_head.weight"},
        {"model.language_model.", "lm_head.weight"},
    };
    const char *head = prefixes[0][1];
    H->prefix = prefixes[0][0];
    for (size_t i = 1; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        snprintf(nm, sizeof nm, "%sembed_tokens.weight", prefixes[i][0]);
        if (!hp_st_find(m->st, "model.embed_tokens.weight") &&
            hp_st_find(m->st, nm)) {
            H->prefix = prefixes[i][0];
            head = prefixes[i][1];
        }
    }
    snprintf(nm, sizeof nm, "%sembed_tokens.weight", H->prefix);
    const hp_st_tensor *te = hp_st_find(m->st, nm);
    if (te && te->ndims == 2 && te->shape[0] > 0 &&
        te->shape[0] <= INT32_MAX / 2)
        hp->n_vocab = (int)te->shape[0];
    else
        hp->n_vocab = H->c->vocab_size;
    hp_err e = bind_matrix(H, nm, hp->n_vocab, hp->n_embd, &m->tok_embd);
    if (e != HP_OK)
        return e;
    snprintf(nm, sizeof nm, "%snorm.weight", H->prefix);
    if ((e = bind_vec(H, nm, hp->n_embd, true, true, &m->out_norm)) != HP_OK)
        return e;
    if (!H->c->tie_word_embeddings || hp_st_find(m->st, head)) {
        if ((e = bind_matrix(H, head, hp->n_vocab, hp->n_embd,
                             &m->output)) != HP_OK)
            return e;
    } else {
        m->output = m->tok_embd;
    }
    for (int l = 0; l < hp->n_layer; l++)
        if ((e = bind_layer(H, l)) != HP_OK)
            return e;
    return HP_OK;
}

hp_err hp_model__load_hf(hp_model *m, const char *dir,
                         const hp_model_opts *o, hp_errbuf *eb)
{
    hp_hf_config *c = calloc(1, sizeof *c); /* ~300 bytes + layer table */
    if (!c)
        return hp_errf(eb, HP_ERR_NOMEM, "out of memory");
    hfl H = {m, c, NULL, "model.", o->quantize, eb};
    hp_err e = hp_hf_config_load(dir, c, eb);
    if (e == HP_OK)
        e = bind_arch(&H);
    if (e == HP_OK)
        e = bind_hparams(&H);
    if (e == HP_OK)
        e = hp_model__check_hparams(&m->hp, "config.json", eb);
    if (e == HP_OK) {
        m->layers = calloc((size_t)m->hp.n_layer, sizeof *m->layers);
        if (!m->layers)
            e = hp_errf(eb, HP_ERR_NOMEM, "out of memory");
    }
    if (e == HP_OK)
        e = hp_st_open(dir, &m->st, eb);
    if (e == HP_OK)
        e = bind_tensors(&H);
    if (e == HP_OK)
        e = hp_vocab_load_hf(dir, NULL, &m->vocab, eb);
    hp_hf_tokcfg *tc = NULL;
    if (e == HP_OK) {
        hp_errbuf teb = {{0}};
        hp_err te = hp_hf_tokcfg_load(dir, &tc, &teb);
        if (te == HP_OK && tc->chat_template) {
            m->chat_template = strdup(tc->chat_template);
            if (!m->chat_template)
                e = hp_errf(eb, HP_ERR_NOMEM, "out of memory");
        } else if (te != HP_OK && te != HP_ERR_NOT_FOUND) {
            e = hp_errf(eb, te, "%s", teb.msg);
        }
    }
    hp_hf_tokcfg_free(tc);
    if (e == HP_OK) {
        /* name: the folder's basename */
        size_t n = strlen(dir);
        while (n > 1 && dir[n - 1] == '/')
            n--;
        size_t b = n;
        while (b > 0 && dir[b - 1] != '/')
            b--;
        m->name = strndup(dir + b, n - b);
        if (!m->name)
            e = hp_errf(eb, HP_ERR_NOMEM, "out of memory");
    }
    free(c);
    return e;
}
