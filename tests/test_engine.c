/* test_engine.c: the engine's scheduling contract, on the real stories260K
 * model: batched output equals solo output, choices are independent,
 * cancellation frees a sequence within a step, limits are enforced. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "model/model.h"

static hp_model *g_model;

typedef struct collect {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done, failed;
    char text[HP_MAX_CHOICES][4096];
    size_t len[HP_MAX_CHOICES];
    hp_finish finish[HP_MAX_CHOICES];
    int tokens;
    int prompt_tokens, completion_tokens;
    hp_request *self; /* for cancel-after-first-token */
    bool cancel_on_first;
} collect;

static void collect_init(collect *c)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
}

static void on_ev(const hp_event *ev, void *ud)
{
    collect *c = ud;
    pthread_mutex_lock(&c->mu);
    switch (ev->kind) {
    case HP_EV_TOKEN:
    case HP_EV_CHOICE_END: {
        size_t room = sizeof c->text[0] - 1 - c->len[ev->index];
        size_t n = ev->len < room ? ev->len : room;
        memcpy(c->text[ev->index] + c->len[ev->index], ev->text, n);
        c->len[ev->index] += n;
        if (ev->kind == HP_EV_TOKEN) {
            c->tokens++;
            if (c->cancel_on_first && c->self)
                hp_request_cancel(c->self);
        } else {
            c->finish[ev->index] = ev->finish;
        }
        break;
    }
    case HP_EV_END:
        c->prompt_tokens = ev->prompt_tokens;
        c->completion_tokens = ev->completion_tokens;
        c->done = true;
        break;
    case HP_EV_ERROR:
        c->failed = true;
        c->done = true;
        break;
    }
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void collect_wait(collect *c)
{
    pthread_mutex_lock(&c->mu);
    while (!c->done)
        pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
}

static int tokenize(const char *s, int32_t *ids, int cap)
{
    return hp_tokenize(g_model->vocab, s, strlen(s), true, false, ids, cap);
}

static hp_engine *engine_new_kv(int parallel, int batch, int max_queue,
                                int kv_blocks, bool prefix)
{
    hp_engine_opts o;
    hp_engine_opts_default(&o, g_model);
    o.kv_blocks = kv_blocks;
    o.prefix_cache = prefix;
    o.parallel = parallel;
    o.batch_tokens = batch;
    o.max_queue = max_queue;
    o.n_ctx = 512;
    hp_engine *e = NULL;
    hp_errbuf eb;
    assert_int_equal(hp_engine_new(g_model, &o, &e, &eb), HP_OK);
    return e;
}

static hp_engine *engine_new(int parallel, int batch, int max_queue)
{
    return engine_new_kv(parallel, batch, max_queue, 0, true);
}

/* Queue prompt for greedy generation of max_tokens tokens into c. */
static hp_request *submit_greedy(hp_engine *e, const char *prompt,
                                 int max_tokens, collect *c)
{
    int32_t ids[512];
    int n = tokenize(prompt, ids, 512);
    hp_gen_params p;
    hp_gen_params_default(&p);
    p.sampling.temperature = 0;
    p.max_tokens = max_tokens;
    collect_init(c);
    hp_request *r = NULL;
    hp_errbuf eb;
    assert_int_equal(hp_engine_submit(e, ids, n, &p, on_ev, c, &r, &eb), HP_OK);
    return r;
}

/* Submit prompt greedily and wait for the whole answer in c. */
static void run_one(hp_engine *e, const char *prompt, int max_tokens,
                    collect *c)
{
    hp_request *r = submit_greedy(e, prompt, max_tokens, c);
    collect_wait(c);
    hp_request_release(r);
}

/* Generate greedily for one prompt on its own engine, without the prefix
 * cache: the reference every other configuration must reproduce. */
static void solo(const char *prompt, int max_tokens, collect *out)
{
    hp_engine *e = engine_new_kv(1, 64, 4, 0, false);
    run_one(e, prompt, max_tokens, out);
    hp_engine_free(e);
}

/* got's first choice has exactly want's text. */
static void expect_same_text(const collect *got, const collect *want)
{
    assert_false(got->failed);
    assert_int_equal(got->len[0], want->len[0]);
    assert_memory_equal(got->text[0], want->text[0], want->len[0]);
}

static const char *prompts[8] = {
    "Once upon a time", "The cat", "Lily and Ben went to the park",
    "One day, a little", "Tom had a red ball", "The sun was",
    "There was a big dog", "She looked at the sky and",
};

/* engine_batch_equals_solo: 8 requests with different prompts, run
 * together (with a small token budget, so prefill is chunked and mixes
 * with decoding), each give exactly their solo text. */
static void engine_batch_equals_solo(void **state)
{
    (void)state;
    static collect want[8], got[8];
    for (int i = 0; i < 8; i++)
        solo(prompts[i], 40, &want[i]);
    hp_engine *e = engine_new(8, 7, 16);
    hp_request *r[8];
    for (int i = 0; i < 8; i++)
        r[i] = submit_greedy(e, prompts[i], 40, &got[i]);
    for (int i = 0; i < 8; i++) {
        collect_wait(&got[i]);
        expect_same_text(&got[i], &want[i]);
        assert_int_equal(got[i].finish[0], HP_FINISH_LENGTH);
        assert_int_equal(got[i].completion_tokens, 40);
        hp_request_release(r[i]);
    }
    hp_engine_free(e);
}

/* engine_golden_prompt1: the engine reproduces llama2.c's greedy text. */
static void engine_golden_prompt1(void **state)
{
    (void)state;
    const char *sh = getenv("HOTPATH_SHARED");
    char path[1024];
    snprintf(path, sizeof path, "%s/models/golden/stories260K_t0_n100_prompt1.txt", sh);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char gold[2048];
    size_t n = fread(gold, 1, sizeof gold - 1, f);
    fclose(f);
    gold[n] = 0;
    collect c;
    solo("Once upon a time", 96, &c);
    const char *want = gold + strlen("Once upon a time");
    size_t want_len = strlen(want) - 1; /* run.c's trailing newline */
    assert_int_equal(c.len[0], want_len);
    assert_memory_equal(c.text[0], want, want_len);
}

/* engine_choices_share_prompt: n = 3 at temperature 0 gives 3 equal
 * choices, each equal to the solo text; seeded sampling is reproducible. */
static void engine_choices_and_seed(void **state)
{
    (void)state;
    collect want;
    solo("The cat", 30, &want);
    hp_engine *e = engine_new(4, 64, 4);
    int32_t ids[64];
    int n = tokenize("The cat", ids, 64);
    hp_gen_params p;
    hp_gen_params_default(&p);
    p.sampling.temperature = 0;
    p.max_tokens = 30;
    p.n = 3;
    collect c;
    collect_init(&c);
    hp_request *r;
    hp_errbuf eb;
    assert_int_equal(hp_engine_submit(e, ids, n, &p, on_ev, &c, &r, &eb), HP_OK);
    collect_wait(&c);
    hp_request_release(r);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(c.len[i], want.len[0]);
        assert_memory_equal(c.text[i], want.text[0], want.len[0]);
    }
    assert_int_equal(c.completion_tokens, 90);

    /* seeded sampling twice: same text */
    static collect s1, s2;
    for (int k = 0; k < 2; k++) {
        collect *cc = k ? &s2 : &s1;
        hp_gen_params q;
        hp_gen_params_default(&q);
        q.sampling.temperature = 1.0f;
        q.sampling.has_seed = true;
        q.sampling.seed = 1234;
        q.max_tokens = 30;
        q.n = 2;
        collect_init(cc);
        assert_int_equal(hp_engine_submit(e, ids, n, &q, on_ev, cc, &r, &eb), HP_OK);
        collect_wait(cc);
        hp_request_release(r);
    }
    for (int i = 0; i < 2; i++) {
        assert_int_equal(s1.len[i], s2.len[i]);
        assert_memory_equal(s1.text[i], s2.text[i], s1.len[i]);
    }
    hp_engine_free(e);
}

/* engine_cancel_frees_slot: with one slot, a cancelled 256-token request
 * ends promptly as CANCELLED and the next request then runs. */
static void engine_cancel_frees_slot(void **state)
{
    (void)state;
    hp_engine *e = engine_new(1, 64, 4);
    int32_t ids[64];
    int n = tokenize("Once upon a time", ids, 64);
    hp_gen_params p;
    hp_gen_params_default(&p);
    p.sampling.temperature = 0;
    p.max_tokens = 256;
    p.ignore_eos = true;
    collect a, b;
    collect_init(&a);
    collect_init(&b);
    hp_request *ra, *rb;
    hp_errbuf eb;
    pthread_mutex_lock(&a.mu); /* hold events until self is set */
    assert_int_equal(hp_engine_submit(e, ids, n, &p, on_ev, &a, &ra, &eb), HP_OK);
    a.self = ra;
    a.cancel_on_first = true;
    pthread_mutex_unlock(&a.mu);
    p.max_tokens = 5;
    assert_int_equal(hp_engine_submit(e, ids, n, &p, on_ev, &b, &rb, &eb), HP_OK);
    collect_wait(&a);
    collect_wait(&b);
    assert_int_equal(a.finish[0], HP_FINISH_CANCELLED);
    assert_true(a.tokens < 10);
    assert_int_equal(b.finish[0], HP_FINISH_LENGTH);
    assert_int_equal(b.completion_tokens, 5);
    hp_request_release(ra);
    hp_request_release(rb);
    hp_engine_free(e);
}

/* engine_stop_string: output ends before the stop string. */
static void engine_stop_string(void **state)
{
    (void)state;
    collect want;
    solo("Once upon a time", 96, &want);
    const char *cut = strstr(want.text[0], "Lily");
    assert_non_null(cut);
    hp_engine *e = engine_new(1, 64, 4);
    int32_t ids[64];
    int n = tokenize("Once upon a time", ids, 64);
    hp_gen_params p;
    hp_gen_params_default(&p);
    p.sampling.temperature = 0;
    p.max_tokens = 96;
    p.stop[0] = "Lily";
    p.n_stop = 1;
    collect c;
    collect_init(&c);
    hp_request *r;
    hp_errbuf eb;
    assert_int_equal(hp_engine_submit(e, ids, n, &p, on_ev, &c, &r, &eb), HP_OK);
    collect_wait(&c);
    hp_request_release(r);
    size_t want_len = (size_t)(cut - want.text[0]);
    assert_int_equal(c.len[0], want_len);
    assert_memory_equal(c.text[0], want.text[0], want_len);
    assert_int_equal(c.finish[0], HP_FINISH_STOP);
    hp_engine_free(e);
}

/* engine_limits: context overflow is RANGE naming the numbers; an empty
 * prompt and bad token ids are INVALID; a full queue is AGAIN. */
static void engine_limits(void **state)
{
    (void)state;
    hp_engine *e = engine_new(1, 64, 1);
    int32_t ids[8] = {1, 403, 407};
    hp_gen_params p;
    hp_gen_params_default(&p);
    p.max_tokens = 510;
    hp_request *r = NULL;
    hp_errbuf eb;
    assert_int_equal(hp_engine_submit(e, ids, 3, &p, on_ev, NULL, &r, &eb), HP_ERR_RANGE);
    assert_non_null(strstr(eb.msg, "512"));
    assert_non_null(strstr(eb.msg, "513"));
    assert_null(r);
    p.max_tokens = 4;
    assert_int_equal(hp_engine_submit(e, ids, 0, &p, on_ev, NULL, &r, &eb), HP_ERR_INVALID);
    int32_t bad[2] = {1, 100000};
    assert_int_equal(hp_engine_submit(e, bad, 2, &p, on_ev, NULL, &r, &eb), HP_ERR_INVALID);
    hp_engine_free(e);
}

static const char *long_prefix =
    "Once upon a time, there was a little girl named Lily. She loved to "
    "play outside in the park. One day, she saw a big, red ball. She "
    "wanted to play with it, but it was too high. Lily's mom said, ";

/* engine_prefix_cache_same_output: requests sharing a long prefix reuse
 * its KV blocks and still give exactly the text computed without cache. */
static void engine_prefix_cache_same_output(void **state)
{
    (void)state;
    char a[512], b[512];
    snprintf(a, sizeof a, "%s\"Lily, let's go", long_prefix);
    snprintf(b, sizeof b, "%s\"Look at the dog", long_prefix);
    collect want_a, want_b, got_a, got_b;
    solo(a, 40, &want_a);
    solo(b, 40, &want_b);
    hp_engine *e = engine_new_kv(2, 64, 4, 0, true);
    run_one(e, a, 40, &got_a);
    hp_engine_stats st0;
    hp_engine_get_stats(e, &st0);
    run_one(e, b, 40, &got_b);
    hp_engine_stats st;
    hp_engine_get_stats(e, &st);
    assert_true(st.prefix_hits - st0.prefix_hits >= 48);
    assert_int_equal(got_a.len[0], want_a.len[0]);
    assert_memory_equal(got_a.text[0], want_a.text[0], want_a.len[0]);
    assert_int_equal(got_b.len[0], want_b.len[0]);
    assert_memory_equal(got_b.text[0], want_b.text[0], want_b.len[0]);
    /* the same request again: all but the last partial block is cached */
    collect again;
    run_one(e, b, 40, &again);
    assert_memory_equal(again.text[0], want_b.text[0], want_b.len[0]);
    hp_engine_free(e);
}

/* engine_preemption_same_output: a KV pool too small for all running
 * requests forces preemption; every request still completes with its
 * solo text. */
static void engine_preemption_same_output(void **state)
{
    (void)state;
    static collect want[4], got[4];
    for (int i = 0; i < 4; i++)
        solo(prompts[i], 60, &want[i]);
    /* each request needs about 5 blocks by its end; 10 fit two */
    hp_engine *e = engine_new_kv(4, 64, 16, 10, true);
    hp_request *r[4];
    for (int i = 0; i < 4; i++)
        r[i] = submit_greedy(e, prompts[i], 60, &got[i]);
    for (int i = 0; i < 4; i++) {
        collect_wait(&got[i]);
        expect_same_text(&got[i], &want[i]);
        hp_request_release(r[i]);
    }
    hp_engine_stats st;
    hp_engine_get_stats(e, &st);
    assert_true(st.preemptions > 0);
    assert_int_equal(st.kv_blocks_total, 10);
    hp_engine_free(e);
}

/* engine_queue_full_is_again: beyond max_queue waiting requests, submit
 * says AGAIN and calls nothing. */
static void engine_queue_full_is_again(void **state)
{
    (void)state;
    hp_engine *e = engine_new(1, 64, 1);
    int32_t ids[64];
    int n = tokenize("Once upon a time", ids, 64);
    hp_gen_params p;
    hp_gen_params_default(&p);
    p.sampling.temperature = 0;
    p.max_tokens = 200;
    p.ignore_eos = true;
    static collect c[8];
    hp_request *r[8];
    int again = 0, ok = 0;
    for (int i = 0; i < 8; i++) {
        collect_init(&c[i]);
        hp_errbuf eb;
        hp_err err = hp_engine_submit(e, ids, n, &p, on_ev, &c[i], &r[i], &eb);
        if (err == HP_ERR_AGAIN) {
            again++;
            assert_null(r[i]);
        } else {
            assert_int_equal(err, HP_OK);
            ok++;
        }
    }
    assert_true(again >= 5); /* one running, one waiting at most (+ races) */
    for (int i = 0; i < 8; i++)
        if (r[i]) {
            hp_request_cancel(r[i]);
            collect_wait(&c[i]);
            hp_request_release(r[i]);
        }
    assert_true(ok >= 1);
    hp_engine_free(e);
}

int main(void)
{
    const char *sh = getenv("HOTPATH_SHARED");
    char path[1024];
    snprintf(path, sizeof path, "%s/models/stories260K.gguf", sh ? sh : "../shared");
    hp_kernels_init();
    hp_errbuf eb;
    if (hp_model_load(path, &g_model, &eb) != HP_OK) {
        printf("skipped: %s\n", eb.msg);
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(engine_golden_prompt1),
        cmocka_unit_test(engine_batch_equals_solo),
        cmocka_unit_test(engine_choices_and_seed),
        cmocka_unit_test(engine_cancel_frees_slot),
        cmocka_unit_test(engine_stop_string),
        cmocka_unit_test(engine_limits),
        cmocka_unit_test(engine_prefix_cache_same_output),
        cmocka_unit_test(engine_preemption_same_output),
        cmocka_unit_test(engine_queue_full_is_again),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    hp_model_free(g_model);
    return rc;
}
