/* hf_config.h: the facts a forward pass needs from a Hugging Face
 * config.json, parsed and checked into a flat struct.
 *
 * Covers the decoder-only families hotpath binds: llama, mistral, qwen2,
 * qwen3, gemma2, gemma3 (both the text-only "gemma3_text" file and the
 * multimodal "gemma3" file whose text fields sit in "text_config"), phi3.
 * The size keys (hidden_size, num_hidden_layers, num_attention_heads,
 * intermediate_size, vocab_size) are required; every other key defaults as
 * that architecture's transformers config class does, since save_pretrained
 * may leave default values out (gemma3's text_config is sparse that way,
 * so for gemma3 the size keys default too). Knows JSON and these key names;
 * nothing of tensors or files beyond reading one. Included by model/, cli/. */
#ifndef HP_HF_CONFIG_H
#define HP_HF_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

/* Layers above this are refused (the per-layer table is inline). */
#define HP_HF_MAX_LAYERS 256
#define HP_HF_MAX_EOS 8

typedef enum hp_hf_arch {
    HP_HF_LLAMA,
    HP_HF_MISTRAL,
    HP_HF_QWEN2,
    HP_HF_QWEN3,
    HP_HF_GEMMA2,
    HP_HF_GEMMA3,
    HP_HF_PHI3
} hp_hf_arch;

typedef enum hp_hf_rope_type {
    HP_HF_ROPE_NONE,   /* rope_scaling null / absent / "default" */
    HP_HF_ROPE_LINEAR, /* positions divided by factor */
    HP_HF_ROPE_LLAMA3  /* llama 3.1+ frequency-band scaling */
} hp_hf_rope_type;

typedef struct hp_hf_rope_scaling {
    hp_hf_rope_type type;
    float factor;          /* LINEAR, LLAMA3 */
    float low_freq_factor; /* LLAMA3 */
    float high_freq_factor;
    int original_max_pos;  /* LLAMA3: original_max_position_embeddings */
} hp_hf_rope_scaling;

typedef struct hp_hf_config {
    hp_hf_arch arch;
    char model_type[32];    /* as written ("gemma3_text"); from the arch
                               name when only architectures[] is given */
    char architecture[64];  /* architectures[0], "" when absent */
    char hidden_act[32];    /* "silu", "gelu_pytorch_tanh", ... */
    char torch_dtype[16];   /* "bfloat16" ("torch_dtype" or "dtype"), or "" */
    int hidden_size;
    int n_layers;
    int n_heads;
    int n_kv_heads;         /* default n_heads; n_heads % n_kv_heads == 0 */
    int head_dim;           /* default hidden_size / n_heads */
    int intermediate_size;
    int vocab_size;
    int max_pos;            /* max_position_embeddings */
    float rms_norm_eps;
    float rope_theta;       /* default 10000 (gemma3: 1e6) */
    float rope_local_theta; /* gemma3 sliding layers (rope_local_base_freq,
                               10000, no scaling); == rope_theta otherwise */
    float partial_rotary_factor; /* fraction of head_dim rotated, default 1 */
    hp_hf_rope_scaling rope_scaling;
    bool tie_word_embeddings;
    bool attention_bias;    /* q/k/v projections carry a bias (qwen2
                               always; others from "attention_bias") */
    bool qk_norm;           /* per-head RMSNorm on q and k (qwen3, gemma3) */
    int sliding_window;     /* tokens, 0 = none (qwen2 with
                               use_sliding_window false gives 0) */
    float query_pre_attn_scalar; /* gemma: scores scaled 1/sqrt(this);
                                    0 = use head_dim */
    float attn_logit_softcapping;  /* 0 = none */
    float final_logit_softcapping; /* 0 = none */
    int bos_id;             /* -1 when absent */
    int n_eos;
    int eos_ids[HP_HF_MAX_EOS]; /* eos_token_id, int or list */
    /* Per layer: 1 when the layer uses the sliding window (and, on gemma3,
     * the local rope base). All 0 when sliding_window is 0. */
    uint8_t layer_sliding[HP_HF_MAX_LAYERS];
} hp_hf_config;

/* Parse config JSON text (len bytes, need not be NUL-terminated). fname
 * names the file in messages. Errors: HP_ERR_FORMAT for invalid JSON, a
 * missing required key or a wrong type ("config.json: missing
 * hidden_size", "config.json: rope_theta: expected a number"), or values
 * that do not fit together (heads not a multiple of kv heads);
 * HP_ERR_UNSUPPORTED for an unknown model_type or rope_scaling type, named. */
hp_err hp_hf_config_parse(const char *json, size_t len, const char *fname,
                          hp_hf_config *out, hp_errbuf *eb);
/* Read and parse path: a config.json file or the directory holding one. */
hp_err hp_hf_config_load(const char *path, hp_hf_config *out, hp_errbuf *eb);

/* "llama", "qwen2", ... for an arch value; "?" if out of range. */
const char *hp_hf_arch_name(hp_hf_arch a);
/* True when id is one of the config's eos ids. */
bool hp_hf_config_is_eos(const hp_hf_config *c, int id);

#endif
