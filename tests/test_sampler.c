/* test_sampler.c: spec for engine/sampler.c (greedy, seeds, distribution,
 * top_k/top_p/min_p, penalties, logit_bias, raw logprobs). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sampler.h"

/* Deterministic test-local generator for logits (not the sampler's RNG). */
static uint64_t tst_state = 12345;
static float tst_randf(void)
{
    tst_state = tst_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((tst_state >> 40) & 0xFFFFFF) / (float)0x1000000;
}

/* qsort comparator: floats descending. */
static int cmp(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x > y ? -1 : x < y ? 1 : 0;
}

static hp_sampler *mk(float temp, uint64_t seed, int n_vocab)
{
    hp_sampling p;
    hp_sampling_default(&p);
    p.temperature = temp;
    p.seed = seed;
    p.has_seed = true;
    hp_sampler *s = hp_sampler_new(&p, n_vocab);
    assert_non_null(s);
    return s;
}

static int32_t sample1(hp_sampler *s, const float *logits, int n)
{
    float *tmp = malloc((size_t)n * sizeof(float));
    assert_non_null(tmp);
    memcpy(tmp, logits, (size_t)n * sizeof(float));
    int32_t t = hp_sampler_sample(s, tmp, NULL, 0, NULL, 0);
    free(tmp);
    return t;
}

static void sampler_defaults(void **st)
{
    (void)st;
    hp_sampling p;
    hp_sampling_default(&p);
    assert_true(p.temperature == 1.0f);
    assert_int_equal(p.top_k, 0);
    assert_true(p.top_p == 1.0f);
    assert_true(p.min_p == 0.0f);
    assert_true(p.frequency_penalty == 0.0f);
    assert_true(p.presence_penalty == 0.0f);
    assert_true(p.repeat_penalty == 1.0f);
    assert_int_equal(p.repeat_last_n, 64);
    assert_false(p.has_seed);
    assert_null(p.logit_bias);
    assert_int_equal(p.n_logit_bias, 0);
    hp_sampler_free(NULL);
    assert_null(hp_sampler_new(NULL, 10));
    assert_null(hp_sampler_new(&p, 0));
}

static void sampler_greedy_argmax_lowest_id_on_ties(void **st)
{
    (void)st;
    hp_sampler *s = mk(0.0f, 1, 5);
    float l[5] = {0.5f, 2.0f, -1.0f, 2.0f, 1.9f};
    assert_int_equal(sample1(s, l, 5), 1);
    float l2[5] = {NAN, -INFINITY, 3.0f, NAN, 3.0f};
    assert_int_equal(sample1(s, l2, 5), 2);
    assert_int_equal(hp_sampler_sample(s, NULL, NULL, 0, NULL, 0), -1);
    hp_sampler_free(s);
}

static void sampler_same_seed_same_tokens(void **st)
{
    (void)st;
    enum { V = 1000, STEPS = 200 };
    float *l = malloc(V * sizeof(float));
    assert_non_null(l);
    int32_t a[STEPS], b[STEPS], c[STEPS];
    for (int run = 0; run < 3; run++) {
        hp_sampling p;
        hp_sampling_default(&p);
        p.temperature = 0.9f;
        p.top_p = 0.95f;
        p.top_k = 50;
        p.has_seed = true;
        p.seed = run == 2 ? 43 : 42;
        hp_sampler *s = hp_sampler_new(&p, V);
        assert_non_null(s);
        tst_state = 777;
        int32_t *out = run == 0 ? a : run == 1 ? b : c;
        for (int i = 0; i < STEPS; i++) {
            for (int j = 0; j < V; j++)
                l[j] = 3.0f * tst_randf();
            out[i] = hp_sampler_sample(s, l, out, i, NULL, 0);
        }
        hp_sampler_free(s);
    }
    assert_memory_equal(a, b, sizeof(a));
    assert_memory_not_equal(a, c, sizeof(a));
    free(l);
}

static void sampler_distribution_matches_softmax(void **st)
{
    (void)st;
    hp_sampler *s = mk(1.0f, 7, 3);
    const float l[3] = {1.0f, 2.0f, 0.5f};
    double z = exp(1.0) + exp(2.0) + exp(0.5);
    int cnt[3] = {0, 0, 0};
    enum { N = 20000 };
    for (int i = 0; i < N; i++) {
        int32_t t = sample1(s, l, 3);
        assert_true(t >= 0 && t < 3);
        cnt[t]++;
    }
    for (int k = 0; k < 3; k++) {
        double want = exp((double)l[k]) / z;
        double got = (double)cnt[k] / N;
        assert_true(fabs(got - want) < 0.02);
    }
    hp_sampler_free(s);
}

static void sampler_temperature_sharpens(void **st)
{
    (void)st;
    /* At T = 0.5 the distribution is softmax(2 * logits). */
    hp_sampler *s = mk(0.5f, 9, 2);
    const float l[2] = {0.0f, 1.0f};
    int hits = 0;
    enum { N = 20000 };
    for (int i = 0; i < N; i++)
        hits += sample1(s, l, 2) == 1;
    double want = exp(2.0) / (1.0 + exp(2.0));
    assert_true(fabs((double)hits / N - want) < 0.02);
    hp_sampler_free(s);
}

static void sampler_top_k_one_is_greedy(void **st)
{
    (void)st;
    enum { V = 5000 };
    float *l = malloc(V * sizeof(float));
    assert_non_null(l);
    hp_sampling p;
    hp_sampling_default(&p);
    p.top_k = 1;
    p.has_seed = true;
    p.seed = 3;
    hp_sampler *s = hp_sampler_new(&p, V);
    hp_sampler *g = mk(0.0f, 0, V);
    for (int it = 0; it < 50; it++) {
        for (int j = 0; j < V; j++)
            l[j] = tst_randf() * 10.0f;
        assert_int_equal(sample1(s, l, V), sample1(g, l, V));
    }
    hp_sampler_free(s);
    hp_sampler_free(g);
    free(l);
}

static void sampler_top_k_limits_support(void **st)
{
    (void)st;
    /* With top_k = 3 only the three best tokens ever come out, and all
     * three do. */
    enum { V = 100 };
    float l[V];
    for (int j = 0; j < V; j++)
        l[j] = (float)(j % 10) * 0.01f;
    l[17] = 5.0f;
    l[42] = 5.1f;
    l[99] = 4.9f;
    hp_sampling p;
    hp_sampling_default(&p);
    p.top_k = 3;
    p.has_seed = true;
    p.seed = 5;
    hp_sampler *s = hp_sampler_new(&p, V);
    int seen[V] = {0};
    for (int i = 0; i < 3000; i++)
        seen[sample1(s, l, V)]++;
    for (int j = 0; j < V; j++) {
        if (j == 17 || j == 42 || j == 99)
            assert_true(seen[j] > 0);
        else
            assert_int_equal(seen[j], 0);
    }
    hp_sampler_free(s);
}

static void sampler_top_p_small_is_greedy(void **st)
{
    (void)st;
    enum { V = 20000 };
    float *l = malloc(V * sizeof(float));
    assert_non_null(l);
    hp_sampling p;
    hp_sampling_default(&p);
    p.top_p = 1e-5f; /* below the best token's probability */
    p.has_seed = true;
    p.seed = 11;
    hp_sampler *s = hp_sampler_new(&p, V);
    hp_sampler *g = mk(0.0f, 0, V);
    for (int it = 0; it < 20; it++) {
        for (int j = 0; j < V; j++)
            l[j] = tst_randf() * 4.0f;
        assert_int_equal(sample1(s, l, V), sample1(g, l, V));
    }
    hp_sampler_free(s);
    hp_sampler_free(g);
    free(l);
}

static void sampler_top_p_nucleus(void **st)
{
    (void)st;
    /* probs 0.5, 0.3, 0.15, 0.05: top_p 0.75 keeps the first two (mass 0.8
     * is the smallest prefix reaching 0.75), renormalised to 5/8, 3/8. */
    const float l[4] = {logf(0.15f), logf(0.5f), logf(0.05f), logf(0.3f)};
    hp_sampling p;
    hp_sampling_default(&p);
    p.top_p = 0.75f;
    p.has_seed = true;
    p.seed = 99;
    hp_sampler *s = hp_sampler_new(&p, 4);
    int cnt[4] = {0};
    enum { N = 20000 };
    for (int i = 0; i < N; i++)
        cnt[sample1(s, l, 4)]++;
    assert_int_equal(cnt[0], 0);
    assert_int_equal(cnt[2], 0);
    assert_true(fabs((double)cnt[1] / N - 0.625) < 0.02);
    assert_true(fabs((double)cnt[3] / N - 0.375) < 0.02);
    hp_sampler_free(s);
}

static void sampler_top_p_large_vocab_keeps_nucleus(void **st)
{
    (void)st;
    /* A 128k vocabulary with a flat tail: the nucleus spans more than the
     * first sort chunk, exercising the grow-and-sort path. Every sampled
     * token must lie inside the exact nucleus computed by a full sort. */
    enum { V = 128 * 1024 };
    float *l = malloc(V * sizeof(float));
    float *sorted = malloc(V * sizeof(float));
    assert_non_null(l);
    assert_non_null(sorted);
    tst_state = 4242;
    for (int j = 0; j < V; j++)
        l[j] = tst_randf() * 2.0f;
    double z = 0.0;
    for (int j = 0; j < V; j++)
        z += exp((double)l[j]);
    memcpy(sorted, l, V * sizeof(float));
    /* Threshold logit: walk a descending order until mass >= 0.3. */
    qsort(sorted, V, sizeof(float), cmp);
    double acc = 0.0;
    float thresh = sorted[0];
    for (int j = 0; j < V; j++) {
        acc += exp((double)sorted[j]) / z;
        thresh = sorted[j];
        if (acc >= 0.3)
            break;
    }
    hp_sampling p;
    hp_sampling_default(&p);
    p.top_p = 0.3f;
    p.has_seed = true;
    p.seed = 1;
    hp_sampler *s = hp_sampler_new(&p, V);
    for (int i = 0; i < 50; i++) {
        int32_t t = sample1(s, l, V);
        assert_true(l[t] >= thresh);
    }
    hp_sampler_free(s);
    free(l);
    free(sorted);
}

static void sampler_min_p_filters(void **st)
{
    (void)st;
    /* probs 0.6, 0.3, 0.1: min_p 0.4 keeps p >= 0.24 -> tokens 0, 1 in
     * ratio 2:1; token 2 never appears. */
    const float l[3] = {logf(0.6f), logf(0.3f), logf(0.1f)};
    hp_sampling p;
    hp_sampling_default(&p);
    p.min_p = 0.4f;
    p.has_seed = true;
    p.seed = 2;
    hp_sampler *s = hp_sampler_new(&p, 3);
    int cnt[3] = {0};
    enum { N = 20000 };
    for (int i = 0; i < N; i++)
        cnt[sample1(s, l, 3)]++;
    assert_int_equal(cnt[2], 0);
    assert_true(fabs((double)cnt[0] / N - 2.0 / 3.0) < 0.02);
    hp_sampler_free(s);
}

static void sampler_logit_bias_forces_and_bans(void **st)
{
    (void)st;
    const float l[4] = {5.0f, 1.0f, 0.0f, -1.0f};
    hp_logit_bias b[3] = {{3, 100.0f}, {77, 5.0f}, {-4, 5.0f}};
    hp_sampling p;
    hp_sampling_default(&p);
    p.logit_bias = b;
    p.n_logit_bias = 3;
    p.has_seed = true;
    p.seed = 8;
    hp_sampler *s = hp_sampler_new(&p, 4);
    b[0].token = 0; /* the sampler copied the array */
    for (int i = 0; i < 200; i++)
        assert_int_equal(sample1(s, l, 4), 3);
    hp_sampler_free(s);

    hp_logit_bias ban = {0, -100.0f};
    p.logit_bias = &ban;
    p.n_logit_bias = 1;
    s = hp_sampler_new(&p, 4);
    for (int i = 0; i < 500; i++)
        assert_int_not_equal(sample1(s, l, 4), 0);
    hp_sampler_free(s);
    /* Greedy honours the bias too. */
    p.temperature = 0.0f;
    s = hp_sampler_new(&p, 4);
    assert_int_equal(sample1(s, l, 4), 1);
    hp_sampler_free(s);
}

static void sampler_penalties(void **st)
{
    (void)st;
    const float l[3] = {2.0f, 1.9f, -1.0f};
    int32_t hist[4] = {0, 0, 0, 2};
    hp_sampling p;
    hp_sampling_default(&p);
    p.temperature = 0.0f;

    /* repeat_penalty 1.1: 2.0 -> 1.818 < 1.9, applied once per token
     * although token 0 occurs three times. */
    p.repeat_penalty = 1.1f;
    hp_sampler *s = hp_sampler_new(&p, 3);
    float t[3];
    memcpy(t, l, sizeof(t));
    assert_int_equal(hp_sampler_sample(s, t, hist, 4, NULL, 0), 1);
    /* Out of the window: repeat_last_n 1 sees only token 2. */
    hp_sampler_free(s);
    p.repeat_last_n = 1;
    s = hp_sampler_new(&p, 3);
    memcpy(t, l, sizeof(t));
    assert_int_equal(hp_sampler_sample(s, t, hist, 4, NULL, 0), 0);
    hp_sampler_free(s);

    /* Negative logits are multiplied: -1 * 3 = -3 for token 2. */
    const float neg[3] = {-2.0f, -2.5f, -1.0f};
    p.repeat_last_n = 64;
    p.repeat_penalty = 3.0f;
    s = hp_sampler_new(&p, 3);
    memcpy(t, neg, sizeof(t));
    int32_t h2[1] = {2};
    assert_int_equal(hp_sampler_sample(s, t, h2, 1, NULL, 0), 0);
    hp_sampler_free(s);

    /* frequency 0.05 * 3 = 0.15 > 0.1 gap; 0.05 * 1 would not be enough. */
    p.repeat_penalty = 1.0f;
    p.frequency_penalty = 0.05f;
    s = hp_sampler_new(&p, 3);
    memcpy(t, l, sizeof(t));
    assert_int_equal(hp_sampler_sample(s, t, hist, 4, NULL, 0), 1);
    memcpy(t, l, sizeof(t));
    assert_int_equal(hp_sampler_sample(s, t, hist + 2, 2, NULL, 0), 0);
    hp_sampler_free(s);

    /* presence 0.2 subtracts once regardless of count. */
    p.frequency_penalty = 0.0f;
    p.presence_penalty = 0.2f;
    s = hp_sampler_new(&p, 3);
    memcpy(t, l, sizeof(t));
    assert_int_equal(hp_sampler_sample(s, t, hist + 2, 2, NULL, 0), 1);
    /* Counters reset between calls: no history, no penalty. */
    memcpy(t, l, sizeof(t));
    assert_int_equal(hp_sampler_sample(s, t, NULL, 0, NULL, 0), 0);
    /* Out-of-range history ids are ignored. */
    int32_t bad[3] = {-5, 3, 1000000};
    memcpy(t, l, sizeof(t));
    assert_int_equal(hp_sampler_sample(s, t, bad, 3, NULL, 0), 0);
    hp_sampler_free(s);
}

static void sampler_logprobs_from_raw_logits(void **st)
{
    (void)st;
    enum { V = 300 };
    float l[V], raw[V];
    tst_state = 31337;
    for (int j = 0; j < V; j++)
        raw[j] = tst_randf() * 8.0f - 4.0f;
    raw[10] = raw[11] = 6.0f; /* tie: lower id first */
    double mx = -1e30, z = 0.0;
    for (int j = 0; j < V; j++)
        mx = raw[j] > mx ? raw[j] : mx;
    for (int j = 0; j < V; j++)
        z += exp((double)raw[j] - mx);
    double lse = mx + log(z);

    hp_logit_bias b = {5, 50.0f};
    hp_sampling p;
    hp_sampling_default(&p);
    p.temperature = 0.7f;
    p.logit_bias = &b; /* forces 5 but must not change reported logprobs */
    p.n_logit_bias = 1;
    p.has_seed = true;
    p.seed = 4;
    hp_sampler *s = hp_sampler_new(&p, V);
    hp_token_logprob lp;
    memcpy(l, raw, sizeof(l));
    int32_t tok = hp_sampler_sample(s, l, NULL, 0, &lp, 5);
    assert_int_equal(tok, 5);
    assert_int_equal(lp.token, 5);
    assert_true(fabs(lp.logprob - (raw[5] - lse)) < 1e-5);
    assert_int_equal(lp.n_top, 5);
    assert_int_equal(lp.top_token[0], 10);
    assert_int_equal(lp.top_token[1], 11);
    for (int k = 0; k < lp.n_top; k++) {
        int32_t id = lp.top_token[k];
        assert_true(fabs(lp.top_logprob[k] - (raw[id] - lse)) < 1e-5);
        if (k > 0)
            assert_true(lp.top_logprob[k] <= lp.top_logprob[k - 1]);
        /* No token outside the list beats the last one listed. */
        for (int j = 0; j < V; j++) {
            int listed = 0;
            for (int q = 0; q < lp.n_top; q++)
                listed |= lp.top_token[q] == j;
            if (!listed)
                assert_true(raw[j] <= raw[lp.top_token[lp.n_top - 1]]);
        }
    }
    /* n_top is clamped to HP_MAX_TOP_LOGPROBS; 0 gives just the token. */
    memcpy(l, raw, sizeof(l));
    hp_sampler_sample(s, l, NULL, 0, &lp, 1000);
    assert_int_equal(lp.n_top, HP_MAX_TOP_LOGPROBS);
    memcpy(l, raw, sizeof(l));
    hp_sampler_sample(s, l, NULL, 0, &lp, 0);
    assert_int_equal(lp.n_top, 0);
    assert_true(fabs(lp.logprob - (raw[5] - lse)) < 1e-5);
    hp_sampler_free(s);
}

static void sampler_large_vocab_top_k_fast(void **st)
{
    (void)st;
    /* 256k vocabulary, 200 steps with top_k 40: the partial selection keeps
     * this well under a second; the result is still inside the top 40. */
    enum { V = 256 * 1024 };
    float *l = malloc(V * sizeof(float));
    float *srt = malloc(V * sizeof(float));
    assert_non_null(l);
    assert_non_null(srt);
    tst_state = 99;
    for (int j = 0; j < V; j++)
        l[j] = tst_randf() * 20.0f;
    memcpy(srt, l, V * sizeof(float));
    qsort(srt, V, sizeof(float), cmp);
    hp_sampling p;
    hp_sampling_default(&p);
    p.top_k = 40;
    p.has_seed = true;
    p.seed = 6;
    hp_sampler *s = hp_sampler_new(&p, V);
    hp_token_logprob lp;
    for (int i = 0; i < 200; i++) {
        int32_t t = hp_sampler_sample(s, l, NULL, 0, &lp, 20);
        assert_true(l[t] >= srt[39]);
        assert_true(lp.top_logprob[0] >= lp.top_logprob[19]);
    }
    hp_sampler_free(s);
    free(l);
    free(srt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sampler_defaults),
        cmocka_unit_test(sampler_greedy_argmax_lowest_id_on_ties),
        cmocka_unit_test(sampler_same_seed_same_tokens),
        cmocka_unit_test(sampler_distribution_matches_softmax),
        cmocka_unit_test(sampler_temperature_sharpens),
        cmocka_unit_test(sampler_top_k_one_is_greedy),
        cmocka_unit_test(sampler_top_k_limits_support),
        cmocka_unit_test(sampler_top_p_small_is_greedy),
        cmocka_unit_test(sampler_top_p_nucleus),
        cmocka_unit_test(sampler_top_p_large_vocab_keeps_nucleus),
        cmocka_unit_test(sampler_min_p_filters),
        cmocka_unit_test(sampler_logit_bias_forces_and_bans),
        cmocka_unit_test(sampler_penalties),
        cmocka_unit_test(sampler_logprobs_from_raw_logits),
        cmocka_unit_test(sampler_large_vocab_top_k_fast),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
