/* forward_arch.c: the per-architecture steps of the forward pass (see
 * forward_arch.h): RoPE with its variants, biases and q/k norms, the FFN
 * activations, post-norms, sliding windows and soft-capping.
 *
 * Owns the RoPE tables. Knows the model's math per architecture; nothing
 * of the KV cache layout, batching or threads (forward.c). */
#include "model/forward_arch.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct hp_fa_rope {
    int R;              /* rope_dim / 2 */
    int n_tables;       /* 1, or 2 when sliding layers have their own */
    double *inv_freq[2]; /* owns: [R] per table */
    float *cs[2];       /* owns: [max_tokens][R][2] cos, sin per table */
};

/* Frequency of pair i on full-attention layers: base^(-2i/d), then the
 * model's scaling. Computed in double so long positions stay accurate. */
static double freq_full(const hp_model *m, int i)
{
    const hp_hparams *hp = &m->hp;
    double f = pow((double)hp->rope_base, -2.0 * i / (double)hp->rope_dim);
    if (m->rope_freqs)
        return f / (double)m->rope_freqs[i];
    switch (hp->rope_scaling) {
    case HP_ROPE_SCALE_NONE:
        return f;
    case HP_ROPE_SCALE_LINEAR:
        return f / (double)hp->rope_factor;
    case HP_ROPE_SCALE_LLAMA3: {
        /* wavelengths shorter than orig/high are kept, longer than
         * orig/low are divided by factor, a linear blend in between */
        double wl = 2.0 * M_PI / f, orig = (double)hp->rope_orig_ctx;
        double lo = (double)hp->rope_low_freq, hi = (double)hp->rope_high_freq;
        double fac = (double)hp->rope_factor;
        if (wl < orig / hi)
            return f;
        if (wl > orig / lo)
            return f / fac;
        double s = (orig / wl - lo) / (hi - lo);
        return (1.0 - s) * f / fac + s * f;
    }
    }
    return f;
}

hp_fa_rope *hp_fa__rope_new(const hp_model *m, int max_tokens)
{
    hp_fa_rope *fr = calloc(1, sizeof *fr);
    if (!fr)
        return NULL;
    const hp_hparams *hp = &m->hp;
    fr->R = hp->rope_dim / 2;
    fr->n_tables = 1;
    for (int l = 0; l < hp->n_layer && hp->rope_swa_own; l++)
        if (m->layers[l].sliding)
            fr->n_tables = 2;
    size_t R = fr->R ? (size_t)fr->R : 1;
    for (int k = 0; k < fr->n_tables; k++) {
        fr->inv_freq[k] = malloc(R * sizeof(double));
        fr->cs[k] = malloc((size_t)max_tokens * R * 2 * sizeof(float));
        if (!fr->inv_freq[k] || !fr->cs[k]) {
            hp_fa__rope_free(fr);
            return NULL;
        }
    }
    for (int i = 0; i < fr->R; i++) {
        fr->inv_freq[0][i] = freq_full(m, i);
        if (fr->n_tables == 2) /* sliding layers: own base, no scaling */
            fr->inv_freq[1][i] = pow((double)hp->rope_base_swa,
                                     -2.0 * i / (double)hp->rope_dim);
    }
    return fr;
}

void hp_fa__rope_free(hp_fa_rope *fr)
{
    if (!fr)
        return;
    for (int k = 0; k < 2; k++) {
        free(fr->inv_freq[k]);
        free(fr->cs[k]);
    }
    free(fr);
}

void hp_fa__rope_set_pos(hp_fa_rope *fr, int t, int pos)
{
    for (int k = 0; k < fr->n_tables; k++) {
        float *cs = fr->cs[k] + (size_t)t * (size_t)fr->R * 2;
        for (int i = 0; i < fr->R; i++) {
            double a = (double)pos * fr->inv_freq[k][i];
            cs[2 * i] = (float)cos(a);
            cs[2 * i + 1] = (float)sin(a);
        }
    }
}

/* Rotate each head's pairs by the token's angles; dims past rope_dim are
 * left as they are. NORM pairs (2i, 2i+1), NEOX pairs (i, i + R). */
static void rope(float *x, int n_heads, int head_dim, const float *cs, int R,
                 hp_rope_mode mode)
{
    int stride = mode == HP_ROPE_NEOX ? 1 : 2; /* index step of pair i */
    int off = mode == HP_ROPE_NEOX ? R : 1;    /* second member of a pair */
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * (size_t)head_dim;
        for (int i = 0; i < R; i++) {
            float c = cs[2 * i], s = cs[2 * i + 1];
            float a = v[stride * i], b = v[stride * i + off];
            v[stride * i] = a * c - b * s;
            v[stride * i + off] = a * s + b * c;
        }
    }
}

static void add_bias(float *x, const float *b, int n)
{
    for (int i = 0; i < n; i++)
        x[i] += b[i];
}

void hp_fa__qkv(const hp_fa_rope *fr, const hp_model *m, int l, float *q,
                float *k, float *v, int T)
{
    const hp_hparams *hp = &m->hp;
    const hp_layer *ly = &m->layers[l];
    int D = hp->head_dim, Qd = hp->n_head * D, KVd = hp->n_head_kv * D;
    int tab = fr->n_tables == 2 && ly->sliding ? 1 : 0;
    for (int t = 0; t < T; t++) {
        float *qt = q + (size_t)t * Qd, *kt = k + (size_t)t * KVd;
        if (ly->bq) {
            add_bias(qt, ly->bq, Qd);
            add_bias(kt, ly->bk, KVd);
            add_bias(v + (size_t)t * KVd, ly->bv, KVd);
        }
        if (ly->q_norm) {
            for (int h = 0; h < hp->n_head; h++)
                hp_rmsnorm(qt + (size_t)h * D, qt + (size_t)h * D,
                           ly->q_norm, D, hp->norm_eps);
            for (int h = 0; h < hp->n_head_kv; h++)
                hp_rmsnorm(kt + (size_t)h * D, kt + (size_t)h * D,
                           ly->k_norm, D, hp->norm_eps);
        }
        const float *cs = fr->cs[tab] + (size_t)t * (size_t)fr->R * 2;
        rope(qt, hp->n_head, D, cs, fr->R, hp->rope_mode);
        rope(kt, hp->n_head_kv, D, cs, fr->R, hp->rope_mode);
    }
}

/* GeLU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
static float gelu_tanh(float x)
{
    const float k = 0.7978845608028654f; /* sqrt(2/pi) */
    return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
}

void hp_fa__ffn_act(const hp_hparams *hp, float *hb, const float *up, int n,
                    int T)
{
    for (int t = 0; t < T; t++) {
        float *g = hb + (size_t)t * n;
        const float *u = up + (size_t)t * n;
        if (hp->act == HP_ACT_SILU) {
            hp_silu_mul(g, g, u, n);
        } else {
            for (int i = 0; i < n; i++)
                g[i] = gelu_tanh(g[i]) * u[i];
        }
    }
}

void hp_fa__post_norm(const float *w, float *x, int n, int T, float eps)
{
    if (!w)
        return;
    for (int t = 0; t < T; t++)
        hp_rmsnorm(x + (size_t)t * n, x + (size_t)t * n, w, n, eps);
}

int hp_fa__attn_first(const hp_model *m, int l, int pos)
{
    int w = m->hp.sliding_window;
    if (w <= 0 || !m->layers[l].sliding || pos < w)
        return 0;
    return pos - w + 1; /* the window holds w positions, pos included */
}

void hp_fa__softcap(float *x, int n, float cap)
{
    if (cap <= 0.0f)
        return;
    for (int i = 0; i < n; i++)
        x[i] = cap * tanhf(x[i] / cap);
}
