/* forward_arch.h: internal to model/: the per-architecture steps of the
 * forward pass, called from forward.c at a few fixed points: RoPE tables
 * (two bases, scaling), the q/k/v fix-ups after the projections (biases,
 * per-head q/k norms, RoPE in either pair layout), the FFN activation,
 * the optional post-norms, attention windows and soft-capping.
 *
 * Every function works token by token (row by row), so a value never
 * depends on which other tokens share the batch (the batch invariance
 * forward.h promises). Included by forward.c only. */
#ifndef HP_FORWARD_ARCH_H
#define HP_FORWARD_ARCH_H

#include "model/model.h"

/* Per-runner RoPE state: inverse frequencies and per-token cos/sin for
 * the full-attention layers and, when they differ, the sliding layers. */
typedef struct hp_fa_rope hp_fa_rope;

/* Tables for up to max_tokens tokens per call. NULL on OOM. */
hp_fa_rope *hp_fa__rope_new(const hp_model *m, int max_tokens);
void hp_fa__rope_free(hp_fa_rope *fr); /* accepts NULL */
/* Token row t of this call sits at absolute position pos. */
void hp_fa__rope_set_pos(hp_fa_rope *fr, int t, int pos);

/* After the q/k/v projections of layer l for T tokens (rows of
 * n_head*head_dim, resp. n_head_kv*head_dim floats): add biases, apply the
 * per-head q/k norms, rotate q and k. */
void hp_fa__qkv(const hp_fa_rope *fr, const hp_model *m, int l, float *q,
                float *k, float *v, int T);

/* hb[t] = act(hb[t]) * up[t] over T rows of n floats (SiLU or GeLU-tanh). */
void hp_fa__ffn_act(const hp_hparams *hp, float *hb, const float *up, int n,
                    int T);

/* x[t] = RMSNorm(x[t]) * w over T rows of n floats; nothing if w NULL. */
void hp_fa__post_norm(const float *w, float *x, int n, int T, float eps);

/* First cached position a token at pos attends to in layer l (0 unless
 * the layer slides). */
int hp_fa__attn_first(const hp_model *m, int l, int pos);

/* x[i] = cap * tanh(x[i] / cap) for i < n; nothing if cap == 0. */
void hp_fa__softcap(float *x, int n, float cap);

#endif
