/* forward.h: the transformer forward pass over a batch of tokens that may
 * belong to several sequences, and the per-sequence KV cache.
 *
 * Each matmul reads a weight matrix once for all tokens in the batch (this
 * is where batched CPU throughput comes from); attention runs per token
 * over its own sequence's paged cache (kvcache.h). The reduction order of every output value
 * is the same whether a token is evaluated alone or in a batch, so greedy
 * output does not depend on batching. Included by engine/ and tests. */
#ifndef HP_FORWARD_H
#define HP_FORWARD_H

#include <stdbool.h>
#include <stdint.h>

#include "kernels/kernels.h"
#include "model/kvcache.h"
#include "model/model.h"
#include "util/err.h"

/* Scratch for forward passes of up to max_tokens tokens per call, plus the
 * kernel context (threads). One runner per thread that calls hp_forward. */
typedef struct hp_runner hp_runner;

hp_runner *hp_runner_new(const hp_model *m, int max_tokens, int n_threads);
void hp_runner_free(hp_runner *r); /* accepts NULL */
int hp_runner_max_tokens(const hp_runner *r);

/* One entry per sequence in a batch: append tokens[0..n) at positions
 * len..len+n-1 of seq. If logits is non-NULL, the logits of the last of
 * these tokens (n_vocab floats) are written there. */
typedef struct hp_batch_item {
    hp_seq *seq;            /* borrows */
    const int32_t *tokens;  /* borrows */
    int n;
    float *logits;          /* borrows: n_vocab floats, or NULL */
} hp_batch_item;

/* Evaluate a batch. The sum of n over items must be <= max_tokens, and each
 * seq must have room (len + n <= max_len), else HP_ERR_RANGE and nothing
 * changes. Token ids must be < n_vocab (HP_ERR_INVALID otherwise). Blocks
 * for the new positions are reserved if the caller has not done so;
 * HP_ERR_AGAIN when the pool cannot supply them. */
hp_err hp_forward(hp_runner *r, hp_batch_item *items, int n_items,
                  hp_errbuf *eb);

#endif
