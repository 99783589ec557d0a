/* test_kvcache.c: the paged KV pool and its prefix cache. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "model/kvcache.h"

/* The pool only reads the shape from the model. */
static hp_model fake_model(void)
{
    hp_model m;
    memset(&m, 0, sizeof m);
    m.hp.n_layer = 2;
    m.hp.n_head_kv = 1;
    m.hp.head_dim = 4;
    return m;
}

/* Fill n positions with tokens t[], writing K = token id so reuse can be
 * checked by content. */
static void fill(hp_seq *s, const int32_t *t, int n)
{
    assert_int_equal(hp_seq_reserve(s, n), HP_OK);
    for (int i = 0; i < n; i++) {
        int pos = hp_seq_len(s) + i;
        for (int l = 0; l < 2; l++) {
            float *k = hp_kv__block_k(s, l, pos / HP_KV_BLOCK) +
                       (pos % HP_KV_BLOCK) * 4;
            for (int d = 0; d < 4; d++)
                k[d] = (float)t[i];
        }
    }
    hp_kv__advance(s, t, n);
}

static void seq_tokens(int32_t *t, int n, int base)
{
    for (int i = 0; i < n; i++)
        t[i] = base + i;
}

/* kvcache_attach_reuses_full_blocks: a second sequence with the same
 * prompt attaches every full block but always leaves a token to evaluate,
 * and sees the first one's K values. */
static void kvcache_attach_reuses_full_blocks(void **state)
{
    (void)state;
    hp_model m = fake_model();
    hp_kvpool *p = hp_kvpool_new(&m, 16, true);
    int32_t t[64];
    seq_tokens(t, 64, 100);
    hp_seq *a = hp_seq_new(p, 64);
    fill(a, t, 40);
    hp_seq_free(a); /* its two full blocks stay cached */
    hp_kvpool_stats st;
    hp_kvpool_get_stats(p, &st);
    assert_int_equal(st.blocks_used, 0);
    assert_int_equal(st.blocks_cached, 2);

    hp_seq *b = hp_seq_new(p, 64);
    assert_int_equal(hp_seq_attach_prefix(b, t, 40), 32);
    assert_int_equal(hp_seq_len(b), 32);
    float *k = hp_kv__block_k(b, 1, 1) + 15 * 4; /* position 31 */
    assert_true(k[0] == (float)t[31]);
    hp_seq_free(b);

    hp_seq *c = hp_seq_new(p, 64);
    assert_int_equal(hp_seq_attach_prefix(c, t, 32), 16); /* leave one */
    hp_seq_free(c);
    hp_seq *d = hp_seq_new(p, 64);
    assert_int_equal(hp_seq_attach_prefix(d, t, 33), 32);
    hp_seq_free(d);
    hp_kvpool_get_stats(p, &st);
    assert_int_equal(st.prefix_queries, 40 + 32 + 33);
    assert_int_equal(st.prefix_hits, 32 + 16 + 32);
    hp_kvpool_free(p);
}

/* kvcache_prefix_must_match_from_start: a block is reused only after the
 * same prefix: the same 16 tokens at block 1 behind a different block 0
 * do not match. */
static void kvcache_prefix_must_match_from_start(void **state)
{
    (void)state;
    hp_model m = fake_model();
    hp_kvpool *p = hp_kvpool_new(&m, 16, true);
    int32_t t[48], u[48];
    seq_tokens(t, 48, 1);
    memcpy(u, t, sizeof t);
    u[0] = 999;
    hp_seq *a = hp_seq_new(p, 48);
    fill(a, t, 48);
    hp_seq *b = hp_seq_new(p, 48);
    assert_int_equal(hp_seq_attach_prefix(b, u, 48), 0);
    hp_seq_free(a);
    hp_seq_free(b);
    hp_kvpool_free(p);
}

/* kvcache_shared_blocks_refcounted: two live sequences share blocks; the
 * blocks stay used until both are freed. */
static void kvcache_shared_blocks_refcounted(void **state)
{
    (void)state;
    hp_model m = fake_model();
    hp_kvpool *p = hp_kvpool_new(&m, 8, true);
    int32_t t[40];
    seq_tokens(t, 40, 7);
    hp_seq *a = hp_seq_new(p, 40);
    fill(a, t, 33); /* 3 blocks, 2 full */
    hp_seq *b = hp_seq_new(p, 40);
    assert_int_equal(hp_seq_attach_prefix(b, t, 40), 32);
    fill(b, t + 32, 2); /* b's own third block */
    hp_kvpool_stats st;
    hp_kvpool_get_stats(p, &st);
    assert_int_equal(st.blocks_used, 4);
    hp_seq_free(a);
    hp_kvpool_get_stats(p, &st);
    assert_int_equal(st.blocks_used, 3); /* 2 shared + b's own */
    hp_seq_free(b);
    hp_kvpool_get_stats(p, &st);
    assert_int_equal(st.blocks_used, 0);
    assert_int_equal(st.blocks_cached, 2);
    assert_int_equal(hp_kvpool_available(p), 8);
    hp_kvpool_free(p);
}

/* kvcache_lru_eviction: when the pool is full, the least recently used
 * cached blocks are evicted first. */
static void kvcache_lru_eviction(void **state)
{
    (void)state;
    hp_model m = fake_model();
    hp_kvpool *p = hp_kvpool_new(&m, 4, true);
    int32_t a_t[17], b_t[17], c_t[33];
    seq_tokens(a_t, 17, 1000);
    seq_tokens(b_t, 17, 2000);
    seq_tokens(c_t, 33, 3000);
    hp_seq *a = hp_seq_new(p, 64);
    fill(a, a_t, 16);
    hp_seq_free(a); /* cached, older */
    hp_seq *b = hp_seq_new(p, 64);
    fill(b, b_t, 16);
    hp_seq_free(b); /* cached, newer */
    hp_seq *c = hp_seq_new(p, 64);
    fill(c, c_t, 33); /* needs 3 blocks: 2 free + evicts a's block */
    hp_seq *x = hp_seq_new(p, 64);
    assert_int_equal(hp_seq_attach_prefix(x, a_t, 17), 0);
    hp_seq_free(x);
    hp_seq *y = hp_seq_new(p, 64);
    assert_int_equal(hp_seq_attach_prefix(y, b_t, 17), 16);
    hp_seq_free(y);
    hp_seq_free(c);
    hp_kvpool_free(p);
}

/* kvcache_reserve_limits: a reserve the pool cannot supply is AGAIN and
 * changes nothing; past max_len is RANGE. */
static void kvcache_reserve_limits(void **state)
{
    (void)state;
    hp_model m = fake_model();
    hp_kvpool *p = hp_kvpool_new(&m, 2, true);
    hp_seq *s = hp_seq_new(p, 100);
    assert_int_equal(hp_seq_reserve(s, 40), HP_ERR_AGAIN);
    assert_int_equal(hp_kvpool_available(p), 2);
    assert_int_equal(hp_seq_reserve(s, 101), HP_ERR_RANGE);
    assert_int_equal(hp_seq_reserve(s, 32), HP_OK);
    assert_int_equal(hp_kvpool_available(p), 0);
    assert_int_equal(hp_seq_reserve(s, 32), HP_OK); /* already there */
    hp_seq_free(s);
    assert_int_equal(hp_kvpool_available(p), 2);
    assert_int_equal(hp_kv_blocks_for(0), 0);
    assert_int_equal(hp_kv_blocks_for(16), 1);
    assert_int_equal(hp_kv_blocks_for(17), 2);
    hp_kvpool_free(p);
}

/* kvcache_disabled_never_reuses: with prefix caching off, nothing is
 * attached and freed blocks go straight back to the free list. */
static void kvcache_disabled_never_reuses(void **state)
{
    (void)state;
    hp_model m = fake_model();
    hp_kvpool *p = hp_kvpool_new(&m, 4, false);
    int32_t t[40];
    seq_tokens(t, 40, 5);
    hp_seq *a = hp_seq_new(p, 40);
    fill(a, t, 40);
    hp_seq_free(a);
    hp_seq *b = hp_seq_new(p, 40);
    assert_int_equal(hp_seq_attach_prefix(b, t, 40), 0);
    hp_kvpool_stats st;
    hp_kvpool_get_stats(p, &st);
    assert_int_equal(st.blocks_cached, 0);
    hp_seq_free(b);
    hp_kvpool_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(kvcache_attach_reuses_full_blocks),
        cmocka_unit_test(kvcache_prefix_must_match_from_start),
        cmocka_unit_test(kvcache_shared_blocks_refcounted),
        cmocka_unit_test(kvcache_lru_eviction),
        cmocka_unit_test(kvcache_reserve_limits),
        cmocka_unit_test(kvcache_disabled_never_reuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
