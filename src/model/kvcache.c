/* kvcache.c: the paged KV pool, per-sequence block tables and the prefix
 * table (see kvcache.h).
 *
 * Block states: FREE (on the free stack), USED (ref > 0), CACHED (ref == 0
 * but registered in the prefix table; on the LRU list, evictable). A
 * registered block keeps its tokens and its parent's hash so a lookup
 * verifies the match instead of trusting a 64-bit hash alone. */
#include "model/kvcache.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct hp_kvpool {
    int n_layer;
    int kv_dim;            /* n_head_kv * head_dim */
    int n_blocks;
    bool prefix;
    float *data;           /* owns: n_blocks * n_layer * 2 * BLOCK * kv_dim */
    int *ref;              /* owns: per block */
    bool *hashed;          /* owns: registered in the prefix table */
    uint64_t *hash;        /* owns: chained hash of a registered block */
    uint64_t *parent;      /* owns: hash of the block before it (0: first) */
    int32_t *toks;         /* owns: n_blocks * BLOCK tokens of registered blocks */
    int *free_stack;       /* owns */
    int n_free;
    int *lru_prev, *lru_next; /* owns: LRU of CACHED blocks, head = oldest */
    int lru_head, lru_tail, n_lru;
    uint64_t *ht_key;      /* owns: open addressing, linear probing */
    int *ht_val;           /* owns: block id, -1 empty */
    int ht_cap;            /* power of two >= 2 * n_blocks */
    int n_used;
    atomic_uint_fast64_t q_tokens, hit_tokens;
};

struct hp_seq {
    hp_kvpool *p;   /* borrows */
    int *blocks;    /* owns: table of block ids */
    int n_blocks;
    int cap_blocks;
    int len;
    int max_len;
    uint64_t last_hash;           /* hash of the last full block, 0 if none */
    int32_t partial[HP_KV_BLOCK]; /* tokens of the block being filled */
};

/* ---- hashing ----------------------------------------------------------- */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static uint64_t block_hash(uint64_t parent, const int32_t *t)
{
    uint64_t h = mix64(parent ^ 0x9e3779b97f4a7c15ull);
    for (int i = 0; i < HP_KV_BLOCK; i++)
        h = mix64(h ^ (uint32_t)t[i]);
    return h ? h : 1; /* 0 means "no parent" */
}

/* ---- the prefix table (hash -> block) ------------------------------------ */

static int ht_find(const hp_kvpool *p, uint64_t key)
{
    int mask = p->ht_cap - 1;
    for (int i = (int)(key & (uint64_t)mask);; i = (i + 1) & mask) {
        if (p->ht_val[i] < 0)
            return -1;
        if (p->ht_key[i] == key)
            return i;
    }
}

static void ht_insert(hp_kvpool *p, uint64_t key, int blk)
{
    int mask = p->ht_cap - 1;
    int i = (int)(key & (uint64_t)mask);
    while (p->ht_val[i] >= 0)
        i = (i + 1) & mask;
    p->ht_key[i] = key;
    p->ht_val[i] = blk;
}

/* Remove slot i, shifting later entries of the probe run back so lookups
 * never stop early (no tombstones). */
static void ht_remove_slot(hp_kvpool *p, int i)
{
    int mask = p->ht_cap - 1;
    p->ht_val[i] = -1;
    for (int j = (i + 1) & mask; p->ht_val[j] >= 0; j = (j + 1) & mask) {
        int home = (int)(p->ht_key[j] & (uint64_t)mask);
        /* move j into the hole if its home is not in (i, j] cyclically */
        bool between = i <= j ? (home > i && home <= j)
                              : (home > i || home <= j);
        if (!between) {
            p->ht_key[i] = p->ht_key[j];
            p->ht_val[i] = p->ht_val[j];
            p->ht_val[j] = -1;
            i = j;
        }
    }
}

/* ---- LRU of cached blocks ------------------------------------------------- */

static void lru_push(hp_kvpool *p, int b)
{
    p->lru_prev[b] = p->lru_tail;
    p->lru_next[b] = -1;
    if (p->lru_tail >= 0)
        p->lru_next[p->lru_tail] = b;
    else
        p->lru_head = b;
    p->lru_tail = b;
    p->n_lru++;
}

static void lru_unlink(hp_kvpool *p, int b)
{
    if (p->lru_prev[b] >= 0)
        p->lru_next[p->lru_prev[b]] = p->lru_next[b];
    else
        p->lru_head = p->lru_next[b];
    if (p->lru_next[b] >= 0)
        p->lru_prev[p->lru_next[b]] = p->lru_prev[b];
    else
        p->lru_tail = p->lru_prev[b];
    p->n_lru--;
}

/* ---- pool ----------------------------------------------------------------- */

uint64_t hp_kvpool_block_bytes(const hp_model *m)
{
    return (uint64_t)m->hp.n_layer * 2 * HP_KV_BLOCK *
           (uint64_t)(m->hp.n_head_kv * m->hp.head_dim) * sizeof(float);
}

hp_kvpool *hp_kvpool_new(const hp_model *m, int n_blocks, bool prefix_cache)
{
    if (n_blocks < 1)
        return NULL;
    hp_kvpool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->n_layer = m->hp.n_layer;
    p->kv_dim = m->hp.n_head_kv * m->hp.head_dim;
    p->n_blocks = n_blocks;
    p->prefix = prefix_cache;
    size_t nb = (size_t)n_blocks;
    p->data = malloc(hp_kvpool_block_bytes(m) * nb);
    p->ref = calloc(nb, sizeof(int));
    p->hashed = calloc(nb, sizeof(bool));
    p->hash = calloc(nb, sizeof(uint64_t));
    p->parent = calloc(nb, sizeof(uint64_t));
    p->toks = calloc(nb * HP_KV_BLOCK, sizeof(int32_t));
    p->free_stack = malloc(nb * sizeof(int));
    p->lru_prev = malloc(nb * sizeof(int));
    p->lru_next = malloc(nb * sizeof(int));
    p->ht_cap = 16;
    while (p->ht_cap < 2 * n_blocks)
        p->ht_cap *= 2;
    p->ht_key = calloc((size_t)p->ht_cap, sizeof(uint64_t));
    p->ht_val = malloc((size_t)p->ht_cap * sizeof(int));
    if (!p->data || !p->ref || !p->hashed || !p->hash || !p->parent ||
        !p->toks || !p->free_stack || !p->lru_prev || !p->lru_next ||
        !p->ht_key || !p->ht_val) {
        hp_kvpool_free(p);
        return NULL;
    }
    for (int i = 0; i < p->ht_cap; i++)
        p->ht_val[i] = -1;
    /* lowest ids on top so a small workload touches few pages */
    for (int i = 0; i < n_blocks; i++)
        p->free_stack[i] = n_blocks - 1 - i;
    p->n_free = n_blocks;
    p->lru_head = p->lru_tail = -1;
    atomic_init(&p->q_tokens, 0);
    atomic_init(&p->hit_tokens, 0);
    return p;
}

void hp_kvpool_free(hp_kvpool *p)
{
    if (!p)
        return;
    free(p->data);
    free(p->ref);
    free(p->hashed);
    free(p->hash);
    free(p->parent);
    free(p->toks);
    free(p->free_stack);
    free(p->lru_prev);
    free(p->lru_next);
    free(p->ht_key);
    free(p->ht_val);
    free(p);
}

void hp_kvpool_get_stats(const hp_kvpool *p, hp_kvpool_stats *st)
{
    st->blocks_total = p->n_blocks;
    st->blocks_used = p->n_used;
    st->blocks_cached = p->n_lru;
    st->prefix_queries = atomic_load_explicit(&p->q_tokens, memory_order_relaxed);
    st->prefix_hits = atomic_load_explicit(&p->hit_tokens, memory_order_relaxed);
}

int hp_kvpool_available(const hp_kvpool *p) { return p->n_free + p->n_lru; }

int hp_kv_blocks_for(int n) { return (n + HP_KV_BLOCK - 1) / HP_KV_BLOCK; }

/* Take one block for exclusive use: a free one, else evict the least
 * recently used cached one. -1 when none. */
static int block_take(hp_kvpool *p)
{
    int b;
    if (p->n_free > 0) {
        b = p->free_stack[--p->n_free];
    } else if (p->lru_head >= 0) {
        b = p->lru_head;
        lru_unlink(p, b);
        int slot = ht_find(p, p->hash[b]);
        if (slot >= 0 && p->ht_val[slot] == b)
            ht_remove_slot(p, slot);
        p->hashed[b] = false;
    } else {
        return -1;
    }
    p->ref[b] = 1;
    p->n_used++;
    return b;
}

static void block_release(hp_kvpool *p, int b)
{
    if (--p->ref[b] > 0)
        return;
    p->n_used--;
    if (p->hashed[b])
        lru_push(p, b); /* keep it: a later prompt may share this prefix */
    else
        p->free_stack[p->n_free++] = b;
}

/* ---- sequences ------------------------------------------------------------ */

hp_seq *hp_seq_new(hp_kvpool *p, int max_len)
{
    if (max_len < 1)
        return NULL;
    hp_seq *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->p = p;
    s->max_len = max_len;
    s->cap_blocks = hp_kv_blocks_for(max_len);
    s->blocks = malloc(sizeof(int) * (size_t)s->cap_blocks);
    if (!s->blocks) {
        free(s);
        return NULL;
    }
    return s;
}

void hp_seq_free(hp_seq *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->n_blocks; i++)
        block_release(s->p, s->blocks[i]);
    free(s->blocks);
    free(s);
}

int hp_seq_len(const hp_seq *s) { return s->len; }
int hp_seq_max_len(const hp_seq *s) { return s->max_len; }

int hp_seq_attach_prefix(hp_seq *s, const int32_t *tokens, int n)
{
    hp_kvpool *p = s->p;
    if (s->len != 0 || n <= 0)
        return 0;
    atomic_fetch_add_explicit(&p->q_tokens, (uint64_t)n, memory_order_relaxed);
    if (!p->prefix)
        return 0;
    uint64_t h = 0;
    /* attach block b only if a token after it remains to evaluate */
    for (int b = 0; (b + 1) * HP_KV_BLOCK <= n - 1 && b < s->cap_blocks; b++) {
        const int32_t *t = tokens + b * HP_KV_BLOCK;
        uint64_t hb = block_hash(h, t);
        int slot = ht_find(p, hb);
        if (slot < 0)
            break;
        int blk = p->ht_val[slot];
        if (p->parent[blk] != h ||
            memcmp(p->toks + (size_t)blk * HP_KV_BLOCK, t,
                   sizeof(int32_t) * HP_KV_BLOCK) != 0)
            break; /* a 64-bit collision: treat as a miss */
        if (p->ref[blk] == 0) {
            lru_unlink(p, blk);
            p->n_used++;
        }
        p->ref[blk]++;
        s->blocks[s->n_blocks++] = blk;
        s->len += HP_KV_BLOCK;
        h = hb;
    }
    s->last_hash = h;
    atomic_fetch_add_explicit(&p->hit_tokens, (uint64_t)s->len,
                              memory_order_relaxed);
    return s->len;
}

hp_err hp_seq_reserve(hp_seq *s, int n_new)
{
    if (n_new < 0 || s->len + n_new > s->max_len)
        return HP_ERR_RANGE;
    int need = hp_kv_blocks_for(s->len + n_new) - s->n_blocks;
    if (need <= 0)
        return HP_OK;
    if (need > hp_kvpool_available(s->p))
        return HP_ERR_AGAIN;
    for (int i = 0; i < need; i++)
        s->blocks[s->n_blocks++] = block_take(s->p);
    return HP_OK;
}

float *hp_kv__block_k(hp_seq *s, int layer, int blk)
{
    hp_kvpool *p = s->p;
    size_t per = (size_t)HP_KV_BLOCK * (size_t)p->kv_dim;
    size_t b = (size_t)s->blocks[blk];
    return p->data + ((b * (size_t)p->n_layer + (size_t)layer) * 2) * per;
}

float *hp_kv__block_v(hp_seq *s, int layer, int blk)
{
    size_t per = (size_t)HP_KV_BLOCK * (size_t)s->p->kv_dim;
    return hp_kv__block_k(s, layer, blk) + per;
}

void hp_kv__advance(hp_seq *s, const int32_t *tokens, int n)
{
    hp_kvpool *p = s->p;
    for (int i = 0; i < n; i++) {
        s->partial[s->len % HP_KV_BLOCK] = tokens[i];
        s->len++;
        if (s->len % HP_KV_BLOCK)
            continue;
        /* a block just filled: give it its identity */
        int bi = s->len / HP_KV_BLOCK - 1;
        uint64_t h = block_hash(s->last_hash, s->partial);
        int blk = s->blocks[bi];
        if (p->prefix && !p->hashed[blk] && ht_find(p, h) < 0) {
            p->hashed[blk] = true;
            p->hash[blk] = h;
            p->parent[blk] = s->last_hash;
            memcpy(p->toks + (size_t)blk * HP_KV_BLOCK, s->partial,
                   sizeof s->partial);
            ht_insert(p, h, blk);
        }
        s->last_hash = h;
    }
}
