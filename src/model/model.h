/* model.h: a loaded model: hyperparameters, weight views and vocabulary.
 *
 * Two sources: a GGUF file (weights read in place from the mapping the
 * model owns; hyperparameters only from "<arch>.*" metadata) or a Hugging
 * Face folder (config.json, tokenizer.json, *.safetensors; BF16/F16/F32
 * matrices read in place, or converted/quantized at load). Architectures
 * llama, mistral, qwen2, qwen3, gemma2, gemma3, phi3; matrices F32, F16,
 * BF16, Q8_0, Q4_0; anything else is refused at load with its name. The
 * per-architecture differences are data here (flags, optional tensors) so
 * the forward pass stays one code path. Read-only after load, so any
 * number of threads may run forward passes on it.
 * Included by engine/, cli/, server/. */
#ifndef HP_MODEL_H
#define HP_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"
#include "model/gguf.h"
#include "model/safetensors.h"
#include "model/vocab.h"
#include "util/err.h"

/* Architectures (hp_hparams.arch_id). */
typedef enum hp_arch {
    HP_ARCH_LLAMA,
    HP_ARCH_MISTRAL,
    HP_ARCH_QWEN2,
    HP_ARCH_QWEN3,
    HP_ARCH_GEMMA2,
    HP_ARCH_GEMMA3,
    HP_ARCH_PHI3
} hp_arch;

/* Which dims RoPE rotates together. NORM: adjacent pairs (2i, 2i+1), the
 * layout llama.cpp's converter permutes llama/mistral q/k into. NEOX:
 * halves (i, i + rope_dim/2), Hugging Face's rotate_half (every HF
 * checkpoint, and GGUF qwen2/qwen3/gemma/phi3). */
typedef enum hp_rope_mode { HP_ROPE_NORM, HP_ROPE_NEOX } hp_rope_mode;

/* RoPE frequency scaling on full-attention layers. */
typedef enum hp_rope_scaling {
    HP_ROPE_SCALE_NONE,
    HP_ROPE_SCALE_LINEAR, /* every frequency divided by rope_factor */
    HP_ROPE_SCALE_LLAMA3  /* llama 3.1 bands: low frequencies / factor,
                             high kept, a smooth blend between */
} hp_rope_scaling;

/* Gated FFN activation: act(x W_gate) * (x W_up). */
typedef enum hp_act { HP_ACT_SILU, HP_ACT_GELU_TANH } hp_act;

typedef struct hp_hparams {
    char arch[32];   /* "llama", "qwen2", ... */
    int n_vocab;     /* rows of token_embd */
    int n_embd;      /* hidden size */
    int n_layer;
    int n_head;
    int n_head_kv;   /* grouped-query attention: n_head % n_head_kv == 0 */
    int head_dim;    /* <arch>.attention.key_length, else n_embd / n_head */
    int n_ff;        /* feed-forward hidden size */
    int n_ctx_train; /* llama.context_length */
    int rope_dim;    /* rotated dims per head (llama.rope.dimension_count) */
    float rope_base; /* llama.rope.freq_base, default 10000 */
    float norm_eps;  /* llama.attention.layer_norm_rms_epsilon */
    /* ---- appended: model portability ---- */
    hp_arch arch_id;
    hp_rope_mode rope_mode;
    hp_rope_scaling rope_scaling; /* NONE also when rope_freqs is used */
    float rope_factor;            /* LINEAR, LLAMA3 */
    float rope_low_freq, rope_high_freq; /* LLAMA3 band factors (1, 4) */
    int rope_orig_ctx;            /* LLAMA3 original context length */
    bool rope_swa_own;            /* sliding layers use rope_base_swa and
                                     no scaling (gemma3 local layers) */
    float rope_base_swa;
    hp_act act;
    float embd_scale;    /* token embeddings times this (gemma: sqrt(E)) */
    float attn_scale;    /* attention scores times this: 1/sqrt(head_dim),
                            gemma 1/sqrt(query_pre_attn_scalar) */
    float attn_softcap;  /* scores -> c*tanh(s/c) before softmax; 0 none */
    float final_softcap; /* logits -> c*tanh(l/c); 0 none */
    int sliding_window;  /* tokens a sliding layer sees (its own included);
                            0 none. Which layers: hp_layer.sliding */
} hp_hparams;

/* A 2-D weight view: ne0 columns (contiguous), ne1 rows. */
typedef struct hp_weight {
    hp_dtype type;
    int64_t ne0, ne1;
    const void *data; /* borrows: mapping */
} hp_weight;

typedef struct hp_layer {
    const float *attn_norm; /* [n_embd] */
    hp_weight wq;           /* [n_embd] -> [n_head*head_dim] */
    hp_weight wk;           /* [n_embd] -> [n_head_kv*head_dim] */
    hp_weight wv;           /* [n_embd] -> [n_head_kv*head_dim] */
    hp_weight wo;           /* [n_head*head_dim] -> [n_embd] */
    const float *ffn_norm;  /* [n_embd] */
    hp_weight w_gate;       /* [n_embd] -> [n_ff] */
    hp_weight w_up;         /* [n_embd] -> [n_ff] */
    hp_weight w_down;       /* [n_ff] -> [n_embd] */
    /* ---- appended: optional per-architecture parts (NULL = absent) ---- */
    const float *bq, *bk, *bv;   /* [n_head*head_dim], [kv], [kv] (qwen2) */
    const float *q_norm, *k_norm; /* [head_dim], per-head RMSNorm before
                                     RoPE (qwen3, gemma3) */
    const float *post_attn_norm; /* [n_embd] on the attention output */
    const float *post_ffn_norm;  /* [n_embd] on the FFN output (gemma) */
    bool sliding;                /* sliding-window layer */
} hp_layer;

typedef struct hp_model {
    char *path;         /* owns */
    char *name;         /* owns: general.name, else file basename w/o .gguf */
    hp_gguf *gguf;      /* owns */
    hp_vocab *vocab;    /* owns */
    char *chat_template; /* owns: tokenizer.chat_template or NULL */
    hp_hparams hp;
    hp_weight tok_embd;  /* [n_vocab rows of n_embd] */
    const float *out_norm; /* [n_embd] */
    hp_weight output;    /* [n_embd] -> [n_vocab]; == tok_embd when tied */
    hp_layer *layers;    /* owns: array of n_layer */
    float *f32_copies;   /* owns: norm vectors converted from F16/BF16 */
    /* ---- appended: model portability ---- */
    const float *rope_freqs; /* [rope_dim/2] frequency divisors
                                (rope_freqs.weight, llama 3.1 GGUF) or NULL */
    hp_st *st;           /* owns: Hugging Face checkpoint, or NULL (GGUF) */
    void **owned;        /* owns: buffers weights point into (norm copies,
                            converted or quantized matrices) */
    size_t n_owned, cap_owned;
} hp_model;

/* Options for hp_model_load_opts. Zero-initialize for defaults. */
typedef struct hp_model_opts {
    /* 0: keep file types. HP_DT_Q8_0 or HP_DT_Q4_0: quantize every 2-D
     * matrix of a Hugging Face folder at load (rows not a multiple of 32
     * stay as they are). GGUF files are used as stored. */
    hp_dtype quantize;
} hp_model_opts;

/* Load and validate. eb names the file and the problem (a missing tensor,
 * a shape that disagrees with the metadata, an unsupported arch or type). */
hp_err hp_model_load(const char *path, hp_model **out, hp_errbuf *eb);
void hp_model_free(hp_model *m); /* accepts NULL */

/* Like hp_model_load, with options (o may be NULL). path may be a GGUF
 * file or a Hugging Face folder holding config.json, tokenizer.json
 * (tokenizer_config.json optional) and model.safetensors or a sharded set
 * with its index. */
hp_err hp_model_load_opts(const char *path, const hp_model_opts *o,
                          hp_model **out, hp_errbuf *eb);
/* "q8_0" -> HP_DT_Q8_0, "q4_0" -> HP_DT_Q4_0 (for --quantize flags);
 * false for anything else. */
bool hp_model_parse_quantize(const char *s, hp_dtype *out);

/* Bytes of weights read for one token (for bandwidth reporting). */
uint64_t hp_model_weight_bytes(const hp_model *m);

#endif
