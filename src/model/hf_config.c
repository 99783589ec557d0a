/* hf_config.c: config.json -> hp_hf_config, behind hf_config.h.
 *
 * Owns the key names and per-architecture defaults (taken from the
 * transformers config classes: what a missing key means there). Every value
 * is type- and range-checked here so the model binder can trust the
 * struct. Knows JSON; nothing of tensors. */
#include "model/hf_config.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* config.json files are a few KB; refuse anything absurd before reading. */
#define CONFIG_MAX_BYTES (4u * 1024u * 1024u)

/* What a missing key means, per architecture. */
typedef struct arch_defaults {
    const char *model_type;   /* canonical model_type */
    const char *arch_class;   /* architectures[0] spelling */
    const char *hidden_act;
    float eps, rope_theta;
    int max_pos;
    int head_dim;             /* 0 = hidden / heads */
    bool tie, bias, qk_norm;
    int sliding_window;       /* used when the key is absent */
} arch_defaults;

static const arch_defaults defaults[] = {
    [HP_HF_LLAMA] = {"llama", "LlamaForCausalLM", "silu", 1e-6f, 10000.0f,
                     2048, 0, false, false, false, 0},
    [HP_HF_MISTRAL] = {"mistral", "MistralForCausalLM", "silu", 1e-6f,
                       10000.0f, 4096 * 32, 0, false, false, false, 4096},
    [HP_HF_QWEN2] = {"qwen2", "Qwen2ForCausalLM", "silu", 1e-6f, 10000.0f,
                     32768, 0, false, true, false, 4096},
    [HP_HF_QWEN3] = {"qwen3", "Qwen3ForCausalLM", "silu", 1e-6f, 10000.0f,
                     32768, 128, false, false, true, 4096},
    [HP_HF_GEMMA2] = {"gemma2", "Gemma2ForCausalLM", "gelu_pytorch_tanh",
                      1e-6f, 10000.0f, 8192, 256, true, false, false, 4096},
    [HP_HF_GEMMA3] = {"gemma3_text", "Gemma3ForCausalLM", "gelu_pytorch_tanh",
                      1e-6f, 1000000.0f, 131072, 256, true, false, true, 4096},
    [HP_HF_PHI3] = {"phi3", "Phi3ForCausalLM", "silu", 1e-5f, 10000.0f, 4096,
                    0, false, false, false, 0},
};
#define N_ARCH ((int)(sizeof defaults / sizeof defaults[0]))

const char *hp_hf_arch_name(hp_hf_arch a)
{
    if ((int)a < 0 || (int)a >= N_ARCH)
        return "?";
    return defaults[a].model_type;
}

bool hp_hf_config_is_eos(const hp_hf_config *c, int id)
{
    for (int i = 0; c != NULL && i < c->n_eos; i++)
        if (c->eos_ids[i] == id)
            return true;
    return false;
}

/* Parsing context: the top object, the text_config (gemma3 multimodal)
 * looked up first, and the file name for messages. */
typedef struct ctx {
    json_t *top;
    json_t *text; /* NULL unless a text_config object is present */
    const char *fname;
    hp_errbuf *eb;
} ctx;

/* The value of key (text_config first); NULL when absent or null. */
static json_t *get(const ctx *c, const char *key)
{
    json_t *v = c->text ? json_object_get(c->text, key) : NULL;
    if (v == NULL)
        v = json_object_get(c->top, key);
    return json_is_null(v) ? NULL : v;
}

/* True when key is written, even as null (null means "none" for the
 * sliding window, unlike absence which means the class default). */
static bool present(const ctx *c, const char *key)
{
    return (c->text && json_object_get(c->text, key)) ||
           json_object_get(c->top, key);
}

static hp_err missing(const ctx *c, const char *key)
{
    return hp_errf(c->eb, HP_ERR_FORMAT, "%s: missing %s", c->fname, key);
}

/* Integer in [lo, hi]; *out keeps def when absent and !required. */
static hp_err get_int(const ctx *c, const char *key, bool required,
                      int64_t lo, int64_t hi, int *out)
{
    json_t *v = get(c, key);
    if (v == NULL)
        return required ? missing(c, key) : HP_OK;
    if (!json_is_integer(v))
        return hp_errf(c->eb, HP_ERR_FORMAT, "%s: %s: expected an integer",
                       c->fname, key);
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return hp_errf(c->eb, HP_ERR_FORMAT, "%s: %s: %lld out of range "
                       "[%lld, %lld]", c->fname, key, (long long)x,
                       (long long)lo, (long long)hi);
    *out = (int)x;
    return HP_OK;
}

/* Finite number > 0 (integer or real); keeps def when absent. */
static hp_err get_pos(const ctx *c, json_t *obj, const char *key,
                      bool required, float *out)
{
    json_t *v = obj ? json_object_get(obj, key) : get(c, key);
    if (json_is_null(v))
        v = NULL;
    if (v == NULL)
        return required ? missing(c, key) : HP_OK;
    if (!json_is_number(v))
        return hp_errf(c->eb, HP_ERR_FORMAT, "%s: %s: expected a number",
                       c->fname, key);
    double x = json_number_value(v);
    if (!isfinite(x) || x <= 0 || x > 1e30)
        return hp_errf(c->eb, HP_ERR_FORMAT, "%s: %s: %g out of range",
                       c->fname, key, x);
    *out = (float)x;
    return HP_OK;
}

static hp_err get_bool(const ctx *c, const char *key, bool *out)
{
    json_t *v = get(c, key);
    if (v == NULL)
        return HP_OK;
    if (!json_is_boolean(v))
        return hp_errf(c->eb, HP_ERR_FORMAT, "%s: %s: expected true or false",
                       c->fname, key);
    *out = json_is_true(v);
    return HP_OK;
}

static hp_err get_str(const ctx *c, const char *key, char *buf, size_t cap)
{
    json_t *v = get(c, key);
    if (v == NULL)
        return HP_OK;
    if (!json_is_string(v))
        return hp_errf(c->eb, HP_ERR_FORMAT, "%s: %s: expected a string",
                       c->fname, key);
    if (json_string_length(v) >= cap)
        return hp_errf(c->eb, HP_ERR_FORMAT, "%s: %s: longer than %zu bytes",
                       c->fname, key, cap - 1);
    snprintf(buf, cap, "%s", json_string_value(v));
    return HP_OK;
}

/* Token ids: an integer or a list of integers; first HP_HF_MAX_EOS kept. */
static hp_err get_ids(const ctx *c, const char *key, int *ids, int cap,
                      int *n)
{
    json_t *v = get(c, key);
    *n = 0;
    if (v == NULL)
        return HP_OK;
    size_t len = json_is_array(v) ? json_array_size(v) : 1;
    for (size_t i = 0; i < len; i++) {
        json_t *x = json_is_array(v) ? json_array_get(v, i) : v;
        if (!json_is_integer(x) || json_integer_value(x) < 0 ||
            json_integer_value(x) > INT32_MAX)
            return hp_errf(c->eb, HP_ERR_FORMAT, "%s: %s: expected a token "
                           "id or a list of them", c->fname, key);
        if (*n < cap)
            ids[(*n)++] = (int)json_integer_value(x);
    }
    return HP_OK;
}

static bool arch_from(const char *s, hp_hf_arch *a)
{
    static const struct { const char *name; hp_hf_arch a; } tab[] = {
        {"llama", HP_HF_LLAMA},
        {"LlamaForCausalLM", HP_HF_LLAMA},
        {"mistral", HP_HF_MISTRAL},
        {"MistralForCausalLM", HP_HF_MISTRAL},
        {"qwen2", HP_HF_QWEN2},
        {"Qwen2ForCausalLM", HP_HF_QWEN2},
        {"qwen3", HP_HF_QWEN3},
        {"Qwen3ForCausalLM", HP_HF_QWEN3},
        {"gemma2", HP_HF_GEMMA2},
        {"Gemma2ForCausalLM", HP_HF_GEMMA2},
        {"gemma3", HP_HF_GEMMA3},
        {"gemma3_text", HP_HF_GEMMA3},
        {"Gemma3ForCausalLM", HP_HF_GEMMA3},
        {"Gemma3ForConditionalGeneration", HP_HF_GEMMA3},
        {"phi3", HP_HF_PHI3},
        {"Phi3ForCausalLM", HP_HF_PHI3},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (strcmp(tab[i].name, s) == 0) {
            *a = tab[i].a;
            return true;
        }
    return false;
}

static hp_err parse_arch(ctx *c, hp_hf_config *o)
{
    json_t *mt = json_object_get(c->top, "model_type");
    json_t *ar = json_object_get(c->top, "architectures");
    if (mt != NULL && !json_is_string(mt))
        return hp_errf(c->eb, HP_ERR_FORMAT, "%s: model_type: expected a "
                       "string", c->fname);
    if (ar != NULL && !json_is_null(ar) &&
        (!json_is_array(ar) || (json_array_size(ar) > 0 &&
                                !json_is_string(json_array_get(ar, 0)))))
        return hp_errf(c->eb, HP_ERR_FORMAT, "%s: architectures: expected a "
                       "list of strings", c->fname);
    const char *a0 = json_string_value(json_array_get(ar, 0));
    if (a0 != NULL)
        snprintf(o->architecture, sizeof o->architecture, "%s", a0);
    const char *name = mt ? json_string_value(mt) : a0;
    if (name == NULL)
        return missing(c, "model_type");
    if (!arch_from(name, &o->arch))
        return hp_errf(c->eb, HP_ERR_UNSUPPORTED, "%s: model_type \"%.64s\" "
                       "not supported (llama, mistral, qwen2, qwen3, gemma2, "
                       "gemma3, phi3)", c->fname, name);
    snprintf(o->model_type, sizeof o->model_type, "%s",
             mt ? json_string_value(mt) : defaults[o->arch].model_type);
    /* gemma3 (multimodal) keeps the language model's keys in text_config;
     * the vision tower's are ignored. */
    json_t *tc = json_object_get(c->top, "text_config");
    if (tc != NULL && !json_is_null(tc)) {
        if (!json_is_object(tc))
            return hp_errf(c->eb, HP_ERR_FORMAT, "%s: text_config: expected "
                           "an object", c->fname);
        c->text = tc;
    }
    return HP_OK;
}

/* rope_scaling (or transformers 5's rope_parameters): null, "default",
 * "linear" {factor}, "llama3" {factor, low/high_freq_factor,
 * original_max_position_embeddings}. */
static hp_err parse_rope(const ctx *c, hp_hf_config *o)
{
    json_t *rs = get(c, "rope_scaling");
    json_t *rp = get(c, "rope_parameters");
    hp_err e;
    if (rp != NULL && json_is_object(rp)) {
        e = get_pos(c, rp, "rope_theta", false, &o->rope_theta);
        if (e != HP_OK)
            return e;
        if (rs == NULL)
            rs = rp;
    }
    if (rs == NULL)
        return HP_OK;
    if (!json_is_object(rs))
        return hp_errf(c->eb, HP_ERR_FORMAT, "%s: rope_scaling: expected an "
                       "object or null", c->fname);
    json_t *t = json_object_get(rs, "rope_type");
    if (t == NULL)
        t = json_object_get(rs, "type");
    if (!json_is_string(t))
        return hp_errf(c->eb, HP_ERR_FORMAT, "%s: rope_scaling: rope_type "
                       "missing or not a string", c->fname);
    const char *ty = json_string_value(t);
    hp_hf_rope_scaling *s = &o->rope_scaling;
    if (strcmp(ty, "default") == 0)
        return HP_OK;
    if (strcmp(ty, "linear") == 0) {
        s->type = HP_HF_ROPE_LINEAR;
        return get_pos(c, rs, "factor", true, &s->factor);
    }
    if (strcmp(ty, "llama3") != 0)
        return hp_errf(c->eb, HP_ERR_UNSUPPORTED, "%s: rope_scaling type "
                       "\"%.32s\" not supported (linear, llama3)", c->fname,
                       ty);
    s->type = HP_HF_ROPE_LLAMA3;
    float omp = 0;
    if ((e = get_pos(c, rs, "factor", true, &s->factor)) != HP_OK ||
        (e = get_pos(c, rs, "low_freq_factor", true,
                     &s->low_freq_factor)) != HP_OK ||
        (e = get_pos(c, rs, "high_freq_factor", true,
                     &s->high_freq_factor)) != HP_OK ||
        (e = get_pos(c, rs, "original_max_position_embeddings", true,
                     &omp)) != HP_OK)
        return e;
    if (omp > (float)INT32_MAX || omp != floorf(omp))
        return hp_errf(c->eb, HP_ERR_FORMAT, "%s: rope_scaling: "
                       "original_max_position_embeddings is not an integer",
                       c->fname);
    if (s->high_freq_factor <= s->low_freq_factor)
        return hp_errf(c->eb, HP_ERR_FORMAT, "%s: rope_scaling: "
                       "high_freq_factor must exceed low_freq_factor",
                       c->fname);
    s->original_max_pos = (int)omp;
    return HP_OK;
}

/* Which layers use the sliding window, per family. */
static hp_err parse_layers(const ctx *c, hp_hf_config *o, int pattern,
                           int max_window_layers)
{
    memset(o->layer_sliding, 0, sizeof o->layer_sliding);
    if (o->sliding_window == 0)
        return HP_OK;
    json_t *lt = get(c, "layer_types");
    if (lt != NULL) {
        if (!json_is_array(lt) || json_array_size(lt) != (size_t)o->n_layers)
            return hp_errf(c->eb, HP_ERR_FORMAT, "%s: layer_types: expected "
                           "a list of %d strings", c->fname, o->n_layers);
        for (int i = 0; i < o->n_layers; i++) {
            const char *s = json_string_value(json_array_get(lt, (size_t)i));
            if (s == NULL || (strcmp(s, "sliding_attention") != 0 &&
                              strcmp(s, "full_attention") != 0))
                return hp_errf(c->eb, HP_ERR_FORMAT, "%s: layer_types[%d]: "
                               "expected \"sliding_attention\" or "
                               "\"full_attention\"", c->fname, i);
            o->layer_sliding[i] = strcmp(s, "sliding_attention") == 0;
        }
        return HP_OK;
    }
    for (int i = 0; i < o->n_layers; i++) {
        switch (o->arch) {
        case HP_HF_GEMMA2: o->layer_sliding[i] = i % 2 == 0; break;
        case HP_HF_GEMMA3: o->layer_sliding[i] = (i + 1) % pattern != 0;
            break;
        case HP_HF_QWEN2:
        case HP_HF_QWEN3: o->layer_sliding[i] = i >= max_window_layers;
            break;
        default: o->layer_sliding[i] = 1; break;
        }
    }
    return HP_OK;
}

/* Defaults for o's arch, then the size keys and their consistency. */
static hp_err parse_sizes(const ctx *c, hp_hf_config *o)
{
    const arch_defaults *d = &defaults[o->arch];
    bool gemma3 = o->arch == HP_HF_GEMMA3;
    hp_err e;
    snprintf(o->hidden_act, sizeof o->hidden_act, "%s", d->hidden_act);
    o->rms_norm_eps = d->eps;
    o->rope_theta = d->rope_theta;
    o->max_pos = d->max_pos;
    o->tie_word_embeddings = d->tie;
    o->attention_bias = d->bias;
    o->qk_norm = d->qk_norm;
    o->partial_rotary_factor = 1.0f;
    o->bos_id = -1;
    if (gemma3) {
        /* Gemma3TextConfig defaults: the multimodal file's text_config
         * writes only what differs from them. */
        o->vocab_size = 262208;
        o->hidden_size = 2304;
        o->intermediate_size = 9216;
        o->n_layers = 26;
        o->n_heads = 8;
        o->n_kv_heads = 4;
    }
    if ((e = get_int(c, "hidden_size", !gemma3, 1, 1 << 20,
                     &o->hidden_size)) != HP_OK ||
        (e = get_int(c, "num_hidden_layers", !gemma3, 1, HP_HF_MAX_LAYERS,
                     &o->n_layers)) != HP_OK ||
        (e = get_int(c, "num_attention_heads", !gemma3, 1, 4096,
                     &o->n_heads)) != HP_OK ||
        (e = get_int(c, "intermediate_size", !gemma3, 1, 1 << 22,
                     &o->intermediate_size)) != HP_OK ||
        (e = get_int(c, "vocab_size", !gemma3, 1, 1 << 24,
                     &o->vocab_size)) != HP_OK)
        return e;
    if (!gemma3)
        o->n_kv_heads = o->n_heads;
    o->head_dim = d->head_dim;
    if (o->head_dim == 0 && o->hidden_size % o->n_heads == 0)
        o->head_dim = o->hidden_size / o->n_heads;
    if ((e = get_int(c, "num_key_value_heads", false, 1, 4096,
                     &o->n_kv_heads)) != HP_OK ||
        (e = get_int(c, "head_dim", false, 1, 1 << 14, &o->head_dim)) !=
            HP_OK ||
        (e = get_int(c, "max_position_embeddings", false, 1, INT32_MAX,
                     &o->max_pos)) != HP_OK)
        return e;
    if (o->head_dim == 0)
        return hp_errf(c->eb, HP_ERR_FORMAT, "%s: hidden_size %d not a "
                       "multiple of num_attention_heads %d and no head_dim",
                       c->fname, o->hidden_size, o->n_heads);
    if (o->n_heads % o->n_kv_heads != 0)
        return hp_errf(c->eb, HP_ERR_FORMAT, "%s: num_attention_heads %d not "
                       "a multiple of num_key_value_heads %d", c->fname,
                       o->n_heads, o->n_kv_heads);
    if (o->head_dim % 2 != 0)
        return hp_errf(c->eb, HP_ERR_FORMAT, "%s: head_dim %d is odd (RoPE "
                       "rotates pairs)", c->fname, o->head_dim);
    return HP_OK;
}

/* Norm, RoPE, activation, dtype, tying, biases. */
static hp_err parse_misc(const ctx *c, hp_hf_config *o)
{
    bool gemma3 = o->arch == HP_HF_GEMMA3;
    hp_err e;
    if ((e = get_pos(c, NULL, "rms_norm_eps", false, &o->rms_norm_eps)) !=
            HP_OK ||
        (e = get_pos(c, NULL, "rope_theta", false, &o->rope_theta)) != HP_OK)
        return e;
    o->rope_local_theta = gemma3 ? 10000.0f : o->rope_theta;
    if (gemma3 && (e = get_pos(c, NULL, "rope_local_base_freq", false,
                               &o->rope_local_theta)) != HP_OK)
        return e;
    if ((e = get_pos(c, NULL, "partial_rotary_factor", false,
                     &o->partial_rotary_factor)) != HP_OK)
        return e;
    if (o->partial_rotary_factor > 1.0f)
        return hp_errf(c->eb, HP_ERR_FORMAT, "%s: partial_rotary_factor %g "
                       "above 1", c->fname, o->partial_rotary_factor);
    if ((e = parse_rope(c, o)) != HP_OK ||
        (e = get_str(c, "hidden_act", o->hidden_act,
                     sizeof o->hidden_act)) != HP_OK ||
        /* gemma writes hidden_activation (the one it reads) beside
         * hidden_act */
        (e = get_str(c, "hidden_activation", o->hidden_act,
                     sizeof o->hidden_act)) != HP_OK ||
        (e = get_str(c, "dtype", o->torch_dtype, sizeof o->torch_dtype)) !=
            HP_OK ||
        (e = get_str(c, "torch_dtype", o->torch_dtype,
                     sizeof o->torch_dtype)) != HP_OK ||
        (e = get_bool(c, "tie_word_embeddings", &o->tie_word_embeddings)) !=
            HP_OK)
        return e;
    /* qwen2's q/k/v biases are unconditional */
    if (o->arch != HP_HF_QWEN2 &&
        (e = get_bool(c, "attention_bias", &o->attention_bias)) != HP_OK)
        return e;
    int nb = 0;
    if ((e = get_ids(c, "bos_token_id", &o->bos_id, 1, &nb)) != HP_OK ||
        (e = get_ids(c, "eos_token_id", o->eos_ids, HP_HF_MAX_EOS,
                     &o->n_eos)) != HP_OK)
        return e;
    if (nb == 0)
        o->bos_id = -1;
    return HP_OK;
}

/* Sliding window, gemma's attention scale and softcaps. */
static hp_err parse_attention(const ctx *c, hp_hf_config *o)
{
    const arch_defaults *d = &defaults[o->arch];
    hp_err e;
    /* absent = class default, null = none */
    o->sliding_window = present(c, "sliding_window") ? 0 : d->sliding_window;
    if ((e = get_int(c, "sliding_window", false, 0, INT32_MAX,
                     &o->sliding_window)) != HP_OK)
        return e;
    int max_window_layers = 28, pattern = 6;
    if (o->arch == HP_HF_QWEN2 || o->arch == HP_HF_QWEN3) {
        bool use = false;
        if ((e = get_bool(c, "use_sliding_window", &use)) != HP_OK ||
            (e = get_int(c, "max_window_layers", false, 0, INT32_MAX,
                         &max_window_layers)) != HP_OK)
            return e;
        if (!use)
            o->sliding_window = 0;
    }
    if (o->arch == HP_HF_GEMMA3 &&
        (e = get_int(c, "sliding_window_pattern", false, 1, 1024,
                     &pattern)) != HP_OK)
        return e;
    if ((e = parse_layers(c, o, pattern, max_window_layers)) != HP_OK)
        return e;
    if (o->arch == HP_HF_GEMMA2 || o->arch == HP_HF_GEMMA3)
        o->query_pre_attn_scalar = 256;
    if (o->arch == HP_HF_GEMMA2) {
        o->attn_logit_softcapping = 50.0f;
        o->final_logit_softcapping = 30.0f;
    }
    /* written as null: no softcapping */
    if (present(c, "attn_logit_softcapping"))
        o->attn_logit_softcapping = 0;
    if (present(c, "final_logit_softcapping"))
        o->final_logit_softcapping = 0;
    if ((e = get_pos(c, NULL, "query_pre_attn_scalar", false,
                     &o->query_pre_attn_scalar)) != HP_OK ||
        (e = get_pos(c, NULL, "attn_logit_softcapping", false,
                     &o->attn_logit_softcapping)) != HP_OK ||
        (e = get_pos(c, NULL, "final_logit_softcapping", false,
                     &o->final_logit_softcapping)) != HP_OK)
        return e;
    return HP_OK;
}

hp_err hp_hf_config_parse(const char *json, size_t len, const char *fname,
                          hp_hf_config *out, hp_errbuf *eb)
{
    if (fname == NULL)
        fname = "config.json";
    if (json == NULL || out == NULL)
        return hp_errf(eb, HP_ERR_INVALID, "%s: no input", fname);
    memset(out, 0, sizeof *out);
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL)
        return hp_errf(eb, HP_ERR_FORMAT, "%s: not valid JSON: %s (line %d)",
                       fname, je.text, je.line);
    hp_err e;
    ctx c = {.top = root, .fname = fname, .eb = eb};
    if (!json_is_object(root))
        e = hp_errf(eb, HP_ERR_FORMAT, "%s: not a JSON object", fname);
    else if ((e = parse_arch(&c, out)) == HP_OK &&
             (e = parse_sizes(&c, out)) == HP_OK &&
             (e = parse_misc(&c, out)) == HP_OK)
        e = parse_attention(&c, out);
    json_decref(root);
    if (e != HP_OK)
        memset(out, 0, sizeof *out);
    return e;
}

hp_err hp_hf_config_load(const char *path, hp_hf_config *out, hp_errbuf *eb)
{
    if (path == NULL || out == NULL)
        return hp_errf(eb, HP_ERR_INVALID, "no config path");
    char buf[4096];
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        snprintf(buf, sizeof buf, "%s/config.json", path);
        path = buf;
    }
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return hp_errf(eb, errno == ENOENT ? HP_ERR_NOT_FOUND : HP_ERR_IO,
                       "%s: cannot open: %s", base, strerror(errno));
    char *text = malloc(CONFIG_MAX_BYTES + 1);
    if (text == NULL) {
        fclose(f);
        return hp_errf(eb, HP_ERR_NOMEM, "%s: out of memory", base);
    }
    size_t n = fread(text, 1, CONFIG_MAX_BYTES + 1, f);
    bool err = ferror(f);
    fclose(f);
    hp_err e;
    if (err)
        e = hp_errf(eb, HP_ERR_IO, "%s: read failed", base);
    else if (n > CONFIG_MAX_BYTES)
        e = hp_errf(eb, HP_ERR_TOO_LARGE, "%s: over %u bytes", base,
                    CONFIG_MAX_BYTES);
    else
        e = hp_hf_config_parse(text, n, base, out, eb);
    free(text);
    return e;
}
