/* forward.c: the llama forward pass over a batch of tokens from several
 * sequences, reading and writing each sequence's paged KV cache.
 *
 * Owns the runner's scratch (the KV pool is kvcache.c's). All tokens of a call share
 * one activation matrix, so each weight matrix is streamed once per call
 * (hp_matmul with nb = total tokens); attention runs per (token, head) over
 * that token's own sequence, in a fixed order. Together with hp_matmul's
 * per-element determinism this makes a sequence's logits bit-identical
 * alone or batched. Knows the model's math; nothing of sampling, requests
 * or scheduling (engine/). */
#include "model/forward.h"
#include "model/forward_arch.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ KV cache */

/* K (or V) row of layer l, position p of sequence s: positions live in
 * blocks of HP_KV_BLOCK rows (see kvcache.h). */
static float *k_row(hp_seq *s, int l, int p, int kv_dim)
{
    return hp_kv__block_k(s, l, p / HP_KV_BLOCK) +
           (size_t)(p % HP_KV_BLOCK) * (size_t)kv_dim;
}

static float *v_row(hp_seq *s, int l, int p, int kv_dim)
{
    return hp_kv__block_v(s, l, p / HP_KV_BLOCK) +
           (size_t)(p % HP_KV_BLOCK) * (size_t)kv_dim;
}

/* -------------------------------------------------------------- runner */

/* Where row t of the activation matrix comes from. */
typedef struct tok_ref {
    hp_seq *seq; /* borrows */
    int pos;     /* absolute position in seq */
} tok_ref;

struct hp_runner {
    const hp_model *m; /* borrows */
    hp_kctx *k;        /* owns */
    int max_tokens;
    int n_out_max;     /* logits rows per output matmul */
    /* Activations, one row per token of the call (T = max_tokens): */
    float *x;      /* owns: [T][n_embd] residual stream */
    float *xb;     /* owns: [T][n_embd] normed input of a block */
    float *q;      /* owns: [T][n_head*head_dim] */
    float *kk;     /* owns: [T][kv_dim] new keys */
    float *vv;     /* owns: [T][kv_dim] new values */
    float *att;    /* owns: [T][n_head*head_dim] attention output */
    float *proj;   /* owns: [T][n_embd] block output before the residual */
    float *hb;     /* owns: [T][n_ff] gate, then silu(gate)*up */
    float *hb2;    /* owns: [T][n_ff] up */
    hp_fa_rope *rope; /* owns: per-token RoPE tables (forward_arch.c) */
    tok_ref *refs; /* owns: [T] */
    float *out_x;  /* owns: [n_out_max][n_embd] rows that want logits */
    float *logits; /* owns: [n_out_max][n_vocab] */
    float *scores; /* owns: [n_threads][scores_cap] attention weights */
    size_t scores_cap; /* positions per thread in scores */
};

static float *falloc(size_t n)
{
    return malloc((n ? n : 1) * sizeof(float));
}

hp_runner *hp_runner_new(const hp_model *m, int max_tokens, int n_threads)
{
    if (!m || max_tokens <= 0)
        return NULL;
    hp_runner *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    const hp_hparams *hp = &m->hp;
    size_t T = (size_t)max_tokens, E = (size_t)hp->n_embd;
    size_t Q = (size_t)hp->n_head * (size_t)hp->head_dim;
    size_t KV = (size_t)hp->n_head_kv * (size_t)hp->head_dim;
    size_t F = (size_t)hp->n_ff;
    r->m = m;
    r->max_tokens = max_tokens;
    /* The output head is computed in chunks of n_out_max rows, so a long
     * prompt whose every token wants logits needs no T x n_vocab buffer. */
    r->n_out_max = max_tokens < 64 ? max_tokens : 64;
    r->k = hp_kctx_new(n_threads);
    r->x = falloc(T * E);
    r->xb = falloc(T * E);
    r->q = falloc(T * Q);
    r->kk = falloc(T * KV);
    r->vv = falloc(T * KV);
    r->att = falloc(T * Q);
    r->proj = falloc(T * E);
    r->hb = falloc(T * F);
    r->hb2 = falloc(T * F);
    r->rope = hp_fa__rope_new(m, max_tokens);
    r->refs = malloc(T * sizeof *r->refs);
    r->out_x = falloc((size_t)r->n_out_max * E);
    r->logits = falloc((size_t)r->n_out_max * (size_t)hp->n_vocab);
    if (!r->k || !r->x || !r->xb || !r->q || !r->kk || !r->vv || !r->att ||
        !r->proj || !r->hb || !r->hb2 || !r->rope ||
        !r->refs || !r->out_x || !r->logits) {
        hp_runner_free(r);
        return NULL;
    }
    return r;
}

void hp_runner_free(hp_runner *r)
{
    if (!r)
        return;
    hp_kctx_free(r->k);
    free(r->x);
    free(r->xb);
    free(r->q);
    free(r->kk);
    free(r->vv);
    free(r->att);
    free(r->proj);
    free(r->hb);
    free(r->hb2);
    hp_fa__rope_free(r->rope);
    free(r->refs);
    free(r->out_x);
    free(r->logits);
    free(r->scores);
    free(r);
}

int hp_runner_max_tokens(const hp_runner *r)
{
    return r->max_tokens;
}

/* ------------------------------------------------------- model blocks */

static void matmul(hp_runner *r, const hp_weight *w, const float *x,
                   float *out, int nb)
{
    hp_matmul(r->k, w->type, w->data, x, out, (int)w->ne1, (int)w->ne0, nb);
}

/* Causal grouped-query attention of every new token over its sequence's
 * cache (positions 0..pos, which includes the new tokens stored before
 * this call). One (token, head) pair is one task, always reduced in the
 * same order by one thread, so results do not depend on batching or the
 * thread count. Tasks are dealt in small chunks: under the causal mask later
 * tokens cost more, and a contiguous split would leave one thread with
 * three quarters of a prompt's work. Chunks of tasks go to whichever
 * thread is free (ith only picks the scores scratch). */
typedef struct attn_job {
    hp_runner *r;
    int l, T;
} attn_job;

/* Tasks per chunk of the parallel job: claimed in order, so the heavy late
 * tokens of a prompt spread over the threads. */
#define ATTN_CHUNK 4

static void attention_chunk(void *arg, int c, int ith)
{
    const attn_job *j = arg;
    hp_runner *r = j->r;
    int l = j->l;
    const hp_hparams *hp = &r->m->hp;
    int H = hp->n_head, D = hp->head_dim, group = hp->n_head / hp->n_head_kv;
    int Qd = H * D, KVd = hp->n_head_kv * D;
    float scale = hp->attn_scale; /* 1/sqrt(D) unless the model says */
    int n_tasks = j->T * H;
    int t1 = (c + 1) * ATTN_CHUNK < n_tasks ? (c + 1) * ATTN_CHUNK : n_tasks;
    float *sc = r->scores + (size_t)ith * r->scores_cap;
    for (int task = c * ATTN_CHUNK; task < t1; task++) {
        int t = task / H, h = task % H;
        const tok_ref *tr = &r->refs[t];
        hp_seq *s = tr->seq;
        int g = h / group, n = tr->pos + 1;
        /* sliding-window layers see positions first..pos only */
        int first = hp_fa__attn_first(r->m, l, tr->pos);
        const float *q = r->q + (size_t)t * (size_t)Qd + (size_t)h * D;
        /* scores block by block (blocks hold HP_KV_BLOCK positions) */
        for (int p0 = first - first % HP_KV_BLOCK, blk = p0 / HP_KV_BLOCK;
             p0 < n; p0 += HP_KV_BLOCK, blk++) {
            int a = p0 < first ? first - p0 : 0;
            int m = n - p0 < HP_KV_BLOCK ? n - p0 : HP_KV_BLOCK;
            hp_attn_scores(q, hp_kv__block_k(s, l, blk) + (size_t)(a * KVd) +
                                  (size_t)g * D,
                           (size_t)KVd, m - a, D, scale, sc + p0 + a);
        }
        hp_fa__softcap(sc + first, n - first, hp->attn_softcap);
        hp_softmax(sc + first, n - first);
        float *o = r->att + (size_t)t * (size_t)Qd + (size_t)h * D;
        memset(o, 0, (size_t)D * sizeof(float));
        for (int p0 = first - first % HP_KV_BLOCK, blk = p0 / HP_KV_BLOCK;
             p0 < n; p0 += HP_KV_BLOCK, blk++) {
            int a = p0 < first ? first - p0 : 0;
            int m = n - p0 < HP_KV_BLOCK ? n - p0 : HP_KV_BLOCK;
            hp_attn_accum(o, sc + p0 + a,
                          hp_kv__block_v(s, l, blk) + (size_t)(a * KVd) +
                              (size_t)g * D,
                          (size_t)KVd, m - a, D);
        }
    }
}

static void attention(hp_runner *r, int l, int T)
{
    attn_job j = {r, l, T};
    int n_tasks = T * r->m->hp.n_head;
    hp_kctx_parallel(r->k, (n_tasks + ATTN_CHUNK - 1) / ATTN_CHUNK,
                     attention_chunk, &j);
}

/* One transformer block over all T tokens, in place on r->x. */
static void block(hp_runner *r, int l, int T)
{
    const hp_hparams *hp = &r->m->hp;
    const hp_layer *ly = &r->m->layers[l];
    int E = hp->n_embd, KVd = hp->n_head_kv * hp->head_dim;
    int F = hp->n_ff;

    /* xb = RMSNorm(x) * attn_norm */
    for (int t = 0; t < T; t++)
        hp_rmsnorm(r->xb + (size_t)t * E, r->x + (size_t)t * E,
                   ly->attn_norm, E, hp->norm_eps);
    /* q, k, v = xb Wq, xb Wk, xb Wv: each weight read once for all T, the
     * three in one parallel job */
    hp_matmul_op qkv[3] = {
        {ly->wq.type, ly->wq.data, r->q, (int)ly->wq.ne1},
        {ly->wk.type, ly->wk.data, r->kk, (int)ly->wk.ne1},
        {ly->wv.type, ly->wv.data, r->vv, (int)ly->wv.ne1},
    };
    hp_matmul_multi(r->k, qkv, 3, r->xb, E, T);
    /* biases, q/k norms and RoPE (per architecture, forward_arch.c);
     * then store k, v at each token's position */
    hp_fa__qkv(r->rope, r->m, l, r->q, r->kk, r->vv, T);
    for (int t = 0; t < T; t++) {
        hp_seq *s = r->refs[t].seq;
        int p = r->refs[t].pos;
        memcpy(k_row(s, l, p, KVd), r->kk + (size_t)t * KVd,
               (size_t)KVd * sizeof(float));
        memcpy(v_row(s, l, p, KVd), r->vv + (size_t)t * KVd,
               (size_t)KVd * sizeof(float));
    }
    /* att = softmax(q k^T / sqrt(head_dim)) v, per head and token */
    attention(r, l, T);
    /* x += att Wo */
    matmul(r, &ly->wo, r->att, r->proj, T);
    hp_fa__post_norm(ly->post_attn_norm, r->proj, E, T, hp->norm_eps);
    for (size_t i = 0; i < (size_t)T * E; i++)
        r->x[i] += r->proj[i];
    /* x += W_down(silu(xb W_gate) * (xb W_up)), xb = RMSNorm(x) * ffn_norm */
    for (int t = 0; t < T; t++)
        hp_rmsnorm(r->xb + (size_t)t * E, r->x + (size_t)t * E,
                   ly->ffn_norm, E, hp->norm_eps);
    hp_matmul_op gate_up[2] = {
        {ly->w_gate.type, ly->w_gate.data, r->hb, (int)ly->w_gate.ne1},
        {ly->w_up.type, ly->w_up.data, r->hb2, (int)ly->w_up.ne1},
    };
    hp_matmul_multi(r->k, gate_up, 2, r->xb, E, T);
    hp_fa__ffn_act(hp, r->hb, r->hb2, F, T); /* silu or gelu(tanh) */
    matmul(r, &ly->w_down, r->hb, r->proj, T);
    hp_fa__post_norm(ly->post_ffn_norm, r->proj, E, T, hp->norm_eps);
    for (size_t i = 0; i < (size_t)T * E; i++)
        r->x[i] += r->proj[i];
}

/* Final norm and output head for the last token of each item that wants
 * logits, n_out_max rows per matmul (rows are independent, so chunking
 * changes no value). */
static void head(hp_runner *r, hp_batch_item *items, int n_items,
                 const int *last_row)
{
    const hp_hparams *hp = &r->m->hp;
    int E = hp->n_embd, V = hp->n_vocab;
    int i = 0;
    while (i < n_items) {
        int rows = 0, idx[64]; /* n_out_max <= 64 (hp_runner_new) */
        for (; i < n_items && rows < r->n_out_max; i++) {
            if (!items[i].logits || items[i].n == 0)
                continue;
            hp_rmsnorm(r->out_x + (size_t)rows * E,
                       r->x + (size_t)last_row[i] * E, r->m->out_norm, E,
                       hp->norm_eps);
            idx[rows++] = i;
        }
        if (rows == 0)
            continue;
        matmul(r, &r->m->output, r->out_x, r->logits, rows);
        hp_fa__softcap(r->logits, rows * V, hp->final_softcap);
        for (int j = 0; j < rows; j++)
            memcpy(items[idx[j]].logits, r->logits + (size_t)j * V,
                   (size_t)V * sizeof(float));
    }
}

/* Make room for per-thread attention weights over cap positions. */
static bool reserve_scores(hp_runner *r, size_t cap)
{
    if (cap <= r->scores_cap)
        return true;
    size_t nth = (size_t)hp_kctx_threads(r->k);
    float *p = malloc(nth * cap * sizeof(float));
    if (!p)
        return false;
    free(r->scores);
    r->scores = p;
    r->scores_cap = cap;
    return true;
}

hp_err hp_forward(hp_runner *r, hp_batch_item *items, int n_items,
                  hp_errbuf *eb)
{
    if (!r || (n_items > 0 && !items) || n_items < 0)
        return hp_errf(eb, HP_ERR_INVALID, "forward: bad arguments");
    const hp_hparams *hp = &r->m->hp;
    /* Validate everything first: on any error nothing changes. */
    long total = 0;
    int max_pos = 0;
    for (int i = 0; i < n_items; i++) {
        const hp_batch_item *it = &items[i];
        if (!it->seq || it->n < 0 || (it->n > 0 && !it->tokens))
            return hp_errf(eb, HP_ERR_INVALID, "forward: item %d malformed",
                           i);
        if (it->n == 0 && it->logits)
            return hp_errf(eb, HP_ERR_INVALID,
                           "forward: item %d: logits asked for no tokens", i);
        for (int j = 0; j < i; j++)
            if (items[j].seq == it->seq)
                return hp_errf(eb, HP_ERR_INVALID,
                               "forward: items %d and %d share a sequence",
                               j, i);
        total += it->n;
        if (total > r->max_tokens)
            return hp_errf(eb, HP_ERR_RANGE,
                           "forward: batch over %d tokens", r->max_tokens);
        int len = hp_seq_len(it->seq);
        if (it->n > hp_seq_max_len(it->seq) - len)
            return hp_errf(eb, HP_ERR_RANGE,
                           "forward: item %d: context full (%d + %d > %d)",
                           i, len, it->n, hp_seq_max_len(it->seq));
        for (int j = 0; j < it->n; j++)
            if (it->tokens[j] < 0 || it->tokens[j] >= hp->n_vocab)
                return hp_errf(eb, HP_ERR_INVALID,
                               "forward: item %d: token id %d out of range "
                               "(vocabulary %d)", i, (int)it->tokens[j],
                               hp->n_vocab);
        if (len + it->n > max_pos)
            max_pos = len + it->n;
    }
    /* Blocks for the new positions: the engine reserves them ahead (it
     * decides whom to preempt); other callers get them here. A reserve
     * that succeeds and is then unused costs nothing but early blocks. */
    for (int i = 0; i < n_items; i++) {
        hp_err e = hp_seq_reserve(items[i].seq, items[i].n);
        if (e != HP_OK)
            return hp_errf(eb, e, "forward: item %d: %s", i,
                           e == HP_ERR_AGAIN ? "KV cache pool exhausted"
                                             : "context full");
    }
    if (!reserve_scores(r, (size_t)max_pos))
        return hp_errf(eb, HP_ERR_NOMEM, "forward: out of memory");
    int T = (int)total;
    if (T == 0)
        return HP_OK;

    /* Lay out rows: items' tokens back to back; remember each item's last
     * row for the output head. */
    int last_row_stack[64];
    int *last_row = n_items <= 64 ? last_row_stack
                                  : malloc((size_t)n_items * sizeof(int));
    if (!last_row)
        return hp_errf(eb, HP_ERR_NOMEM, "forward: out of memory");
    int row = 0;
    for (int i = 0; i < n_items; i++) {
        hp_batch_item *it = &items[i];
        for (int j = 0; j < it->n; j++, row++) {
            r->refs[row].seq = it->seq;
            r->refs[row].pos = hp_seq_len(it->seq) + j;
            float *x = r->x + (size_t)row * (size_t)hp->n_embd;
            hp_get_row(r->m->tok_embd.type, r->m->tok_embd.data,
                       it->tokens[j], hp->n_embd, x);
            if (hp->embd_scale != 1.0f) /* gemma: sqrt(n_embd) */
                for (int d = 0; d < hp->n_embd; d++)
                    x[d] *= hp->embd_scale;
            hp_fa__rope_set_pos(r->rope, row, r->refs[row].pos);
        }
        last_row[i] = row - 1;
    }
    for (int l = 0; l < hp->n_layer; l++)
        block(r, l, T);
    head(r, items, n_items, last_row);
    for (int i = 0; i < n_items; i++)
        hp_kv__advance(items[i].seq, items[i].tokens, items[i].n);
    if (last_row != last_row_stack)
        free(last_row);
    return HP_OK;
}
