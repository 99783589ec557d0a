/* test_threadpool.c: hp_kctx_parallel runs every chunk of every job
 * exactly once, with that job's own argument, even when jobs of different
 * sizes follow each other back to back and a worker is slow. (A race
 * here once ran a chunk of the next, unpublished job with a stale
 * argument.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#include "kernels/kernels.h"

typedef struct job {
    uint32_t magic;          /* checked by every chunk: a stale arg fails */
    int n;
    _Atomic int hits[16];
} job;

static void chunk_fn(void *arg, int c, int ith)
{
    job *j = arg;
    (void)ith;
    assert_int_equal(j->magic, 0xC0FFEE);
    assert_true(c >= 0 && c < j->n);
    atomic_fetch_add(&j->hits[c], 1);
    if ((c & 3) == 1)
        sched_yield(); /* let the other thread fall behind now and then */
}

/* threadpool_each_chunk_once: 60k jobs of 1..16 chunks; each chunk ran
 * exactly once and saw its own job. */
static void threadpool_each_chunk_once(void **state)
{
    (void)state;
    hp_kctx *k = hp_kctx_new(2);
    assert_non_null(k);
    for (int it = 0; it < 60000; it++) {
        job j; /* on the stack, like the forward pass's job arguments */
        memset(&j, 0, sizeof j);
        j.magic = 0xC0FFEE;
        j.n = 1 + (int)((it * 2654435761u) >> 28) % 16;
        hp_kctx_parallel(k, j.n, chunk_fn, &j);
        for (int c = 0; c < j.n; c++)
            assert_int_equal(atomic_load(&j.hits[c]), 1);
        j.magic = 0; /* a late worker touching this frame would now fail */
    }
    hp_kctx_free(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(threadpool_each_chunk_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
