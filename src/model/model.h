/* model.h: a loaded model: hyperparameters, weight views and vocabulary.
 *
 * Weights are read in place from the mmapped GGUF (borrowed from hp_gguf,
 * which the model owns). Architecture "llama" with tensor types F32, F16,
 * BF16, Q8_0, Q4_0; anything else is refused at load with its name.
 * Hyperparameters come only from metadata ("llama.*" keys). Read-only after
 * load, so any number of threads may run forward passes on it.
 * Included by engine/, cli/, server/. */
#ifndef HP_MODEL_H
#define HP_MODEL_H

#include <stdint.h>

#include "kernels/kernels.h"
#include "model/gguf.h"
#include "model/vocab.h"
#include "util/err.h"

typedef struct hp_hparams {
    char arch[32];   /* "llama" */
    int n_vocab;     /* rows of token_embd */
    int n_embd;      /* hidden size */
    int n_layer;
    int n_head;
    int n_head_kv;   /* grouped-query attention: n_head % n_head_kv == 0 */
    int head_dim;    /* n_embd / n_head */
    int n_ff;        /* feed-forward hidden size */
    int n_ctx_train; /* llama.context_length */
    int rope_dim;    /* rotated dims per head (llama.rope.dimension_count) */
    float rope_base; /* llama.rope.freq_base, default 10000 */
    float norm_eps;  /* llama.attention.layer_norm_rms_epsilon */
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
} hp_model;

/* Load and validate. eb names the file and the problem (a missing tensor,
 * a shape that disagrees with the metadata, an unsupported arch or type). */
hp_err hp_model_load(const char *path, hp_model **out, hp_errbuf *eb);
void hp_model_free(hp_model *m); /* accepts NULL */

/* Bytes of weights read for one token (for bandwidth reporting). */
uint64_t hp_model_weight_bytes(const hp_model *m);

#endif
