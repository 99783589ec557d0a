/* kvcache.h: paged KV cache with automatic prefix caching.
 *
 * The pool holds n_blocks blocks of HP_KV_BLOCK positions; each block has K
 * and V for every layer. A sequence (hp_seq) holds a table of block ids,
 * not a slab, so memory is committed as it grows and freed block by block.
 *
 * Prefix caching: when a block becomes full, its identity is the hash of
 * its tokens chained with the hash of the block before it (so a block only
 * matches at the same position after the same prefix). Full blocks are
 * registered in the pool's table. A new sequence first attaches every
 * cached block of its prompt's prefix (refcounted, shared read-only) and
 * prefills only the rest. Blocks no sequence uses stay cached and are
 * evicted least-recently-used when the pool needs room.
 *
 * Exact reuse is sound because the forward pass is batch-invariant: the K/V
 * of a position depends only on the tokens before it, not on how they were
 * chunked or batched when computed.
 *
 * Thread model: the pool and its sequences belong to the engine's
 * scheduler thread; forward passes run on that thread. Stats are readable
 * from any thread (relaxed). Included by model/forward.c and engine/. */
#ifndef HP_KVCACHE_H
#define HP_KVCACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "model/model.h"
#include "util/err.h"

#define HP_KV_BLOCK 16

typedef struct hp_kvpool hp_kvpool;
typedef struct hp_seq hp_seq;

/* A pool of n_blocks blocks for model m. prefix_cache false disables
 * registration and lookup (every block is private). NULL on OOM. */
hp_kvpool *hp_kvpool_new(const hp_model *m, int n_blocks, bool prefix_cache);
/* Free the pool; every sequence must have been freed first. Accepts NULL. */
void hp_kvpool_free(hp_kvpool *p);
/* Bytes one block takes (K and V, all layers). */
uint64_t hp_kvpool_block_bytes(const hp_model *m);

typedef struct hp_kvpool_stats {
    int blocks_total;
    int blocks_used;      /* referenced by at least one sequence */
    int blocks_cached;    /* unreferenced but holding a registered prefix */
    uint64_t prefix_queries; /* prompt tokens looked up */
    uint64_t prefix_hits;    /* prompt tokens found */
} hp_kvpool_stats;

void hp_kvpool_get_stats(const hp_kvpool *p, hp_kvpool_stats *st);

/* A new empty sequence that may grow to max_len positions. NULL on OOM
 * (no blocks are taken yet). */
hp_seq *hp_seq_new(hp_kvpool *p, int max_len);
/* Return the sequence's blocks to the pool (cached ones stay cached).
 * Accepts NULL. */
void hp_seq_free(hp_seq *s);
int hp_seq_len(const hp_seq *s); /* positions filled */
int hp_seq_max_len(const hp_seq *s);

/* Attach the longest cached prefix of tokens[0..n) to an EMPTY sequence.
 * Returns the positions now filled: a multiple of HP_KV_BLOCK and always
 * < n, so at least one token is left to evaluate (its logits are needed).
 * Counts n queried and the result as hits in the pool's stats. */
int hp_seq_attach_prefix(hp_seq *s, const int32_t *tokens, int n);

/* Make sure the blocks for n_new more positions exist, taking free blocks
 * or evicting unreferenced cached ones. HP_ERR_AGAIN when the pool cannot
 * supply them (the caller preempts someone and retries); HP_ERR_RANGE when
 * len + n_new > max_len. Nothing changes on failure. */
hp_err hp_seq_reserve(hp_seq *s, int n_new);

/* Blocks a sequence of n positions needs (for admission control). */
int hp_kv_blocks_for(int n_positions);
/* Blocks that could be handed out now (free + evictable). */
int hp_kvpool_available(const hp_kvpool *p);

/* ---- internal to model/ (forward.c) ----------------------------------- */

/* K (or V) rows of block `blk` (index in the sequence's table) for one
 * layer: HP_KV_BLOCK rows of n_head_kv*head_dim floats, position-major. */
float *hp_kv__block_k(hp_seq *s, int layer, int blk);
float *hp_kv__block_v(hp_seq *s, int layer, int blk);
/* Record that positions len..len+n-1 now hold tokens[0..n) (their K/V were
 * written); registers blocks that became full in the prefix table. The
 * blocks must have been reserved. */
void hp_kv__advance(hp_seq *s, const int32_t *tokens, int n);

#endif
