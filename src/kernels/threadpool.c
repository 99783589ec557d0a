/* threadpool.c: the persistent worker threads behind one hp_kctx. Owns the
 * threads, the job slot and the spin-then-sleep wait; knows nothing of
 * matrices. Used by matmul.c (hp_matmul, hp_kctx_parallel).
 *
 * Why not OpenMP: a decode step of a 30-layer model runs ~240 parallel
 * jobs per token. On this 2-core VM a GOMP region cost microseconds when
 * quiet and collapsed under load (a niced compile on both cores took the
 * 135M model from 37 tok/s on 1 thread to 5 tok/s on 2, measured
 * 2026-12-03), because a worker that has gone to sleep in the kernel
 * must be rescheduled for every region. Here a job is one generation
 * counter bump that spinning workers see within ~100 ns; workers spin for
 * a while (SPIN_NS) after their last job, then sleep on a futex, so an idle
 * server does not burn the cores.
 *
 * Determinism: the pool only says which thread (ith of nth) runs a call;
 * callers split work so that values never depend on it. */
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "kernels/kern_impl.h"

/* How long an idle worker spins before it sleeps in the kernel: longer
 * than the gap between jobs of one forward pass and between decode steps
 * (sampling, detokenizing), short enough not to hog a core when idle. */
#define SPIN_NS 3000000LL

/* Chunk index of a state whose slot is being rewritten: nothing to claim. */
#define CLOSED 0xFFFFFFFFu

struct hp_kern__pool {
    int nth;                 /* threads including the caller */
    pthread_t *th;           /* owns: nth - 1 workers */
    int started;             /* workers actually created */
    /* Job slot. The caller first closes the state (new generation, chunk
     * CLOSED), then writes the slot, then opens the state: a worker that
     * reads the slot while it is being rewritten can never claim a chunk
     * with it, because its CAS expects the old state (seqlock pattern).
     * Without the closing step a late worker saw the old generation still
     * open-looking (all chunks claimed, but a larger n_chunks already
     * written), claimed a chunk of a job not yet published and ran it
     * with a stale argument. */
    _Atomic(hp_kern__job_fn) fn;
    _Atomic(void *) arg;
    _Atomic int n_chunks;
    /* (generation << 32) | next unclaimed chunk. A chunk is claimed by a
     * CAS that also checks the generation, so a worker that wakes late
     * can never claim a chunk of a job that is over. */
    _Alignas(64) _Atomic uint64_t state;
    _Alignas(64) _Atomic int done;      /* chunks finished this job */
    _Alignas(64) _Atomic unsigned gen;  /* futex word: bumped per job */
    _Atomic int sleeping;               /* workers in futex_wait */
    _Atomic int stop;
};

typedef struct worker_arg {
    hp_kern__pool *p;
    int ith;
} worker_arg;

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void futex_wait(_Atomic unsigned *addr, unsigned val)
{
    syscall(SYS_futex, (unsigned *)addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL,
            0);
}

static void futex_wake_all(_Atomic unsigned *addr)
{
    syscall(SYS_futex, (unsigned *)addr, FUTEX_WAKE_PRIVATE, 0x7fffffff, NULL,
            NULL, 0);
}

/* Wait until the job generation differs from seen: spin, then sleep. */
static void wait_job(hp_kern__pool *p, unsigned seen)
{
    long long t0 = 0;
    for (int i = 0;; i++) {
        if (atomic_load_explicit(&p->gen, memory_order_acquire) != seen)
            return;
        cpu_relax();
        if ((i & 255) != 255)
            continue;
        if (t0 == 0) {
            t0 = now_ns();
        } else if (now_ns() - t0 > SPIN_NS) {
            atomic_fetch_add(&p->sleeping, 1);
            /* seq_cst pairs with the caller's store of gen then load of
             * sleeping: either it sees us sleeping or we see the new gen. */
            if (atomic_load(&p->gen) == seen)
                futex_wait(&p->gen, seen);
            atomic_fetch_sub(&p->sleeping, 1);
            t0 = 0;
        }
    }
}

/* Claim and run chunks of generation g until none is left or the job
 * changed. */
static void run_chunks(hp_kern__pool *p, uint32_t g, int ith)
{
    uint64_t st = atomic_load_explicit(&p->state, memory_order_acquire);
    for (;;) {
        if ((uint32_t)(st >> 32) != g)
            return;
        /* Read before the CAS: if the CAS succeeds the state was still
         * (g, c) and open, and the slot could not have been rewritten in
         * between (the rewrite starts by closing the state). */
        uint32_t c = (uint32_t)st;
        if (c == CLOSED)
            return;
        hp_kern__job_fn fn = atomic_load_explicit(&p->fn, memory_order_relaxed);
        void *arg = atomic_load_explicit(&p->arg, memory_order_relaxed);
        int n = atomic_load_explicit(&p->n_chunks, memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        if (c >= (uint32_t)n)
            return;
        if (!atomic_compare_exchange_weak_explicit(
                &p->state, &st, st + 1, memory_order_acq_rel,
                memory_order_acquire))
            continue;
        fn(arg, (int)c, ith);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
        st = atomic_load_explicit(&p->state, memory_order_acquire);
    }
}

static void *worker_main(void *v)
{
    worker_arg wa = *(worker_arg *)v;
    free(v);
    hp_kern__pool *p = wa.p;
    unsigned seen = 0;
    for (;;) {
        wait_job(p, seen);
        if (atomic_load(&p->stop))
            return NULL;
        seen = atomic_load_explicit(&p->gen, memory_order_acquire);
        run_chunks(p, seen, wa.ith);
    }
}

hp_kern__pool *hp_kern__pool_new(int nth)
{
    hp_kern__pool *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->nth = nth < 1 ? 1 : nth;
    if (p->nth > 1) {
        p->th = calloc((size_t)p->nth - 1, sizeof(pthread_t));
        if (p->th == NULL) {
            free(p);
            return NULL;
        }
    }
    for (int i = 1; i < p->nth; i++) {
        worker_arg *wa = malloc(sizeof(*wa));
        if (wa == NULL)
            break;
        wa->p = p;
        wa->ith = i;
        if (pthread_create(&p->th[i - 1], NULL, worker_main, wa) != 0) {
            free(wa);
            break;
        }
        p->started++;
    }
    /* Fewer threads than asked (resource limits): run with what started. */
    p->nth = p->started + 1;
    return p;
}

void hp_kern__pool_free(hp_kern__pool *p)
{
    if (p == NULL)
        return;
    if (p->started > 0) {
        atomic_store(&p->stop, 1);
        atomic_fetch_add(&p->gen, 1);
        futex_wake_all(&p->gen);
        for (int i = 0; i < p->started; i++)
            pthread_join(p->th[i], NULL);
    }
    free(p->th);
    free(p);
}

int hp_kern__pool_threads(const hp_kern__pool *p)
{
    return p ? p->nth : 1;
}

void hp_kern__pool_run(hp_kern__pool *p, int n_chunks, hp_kern__job_fn fn,
                       void *arg)
{
    if (n_chunks <= 0)
        return;
    if (p == NULL || p->started == 0 || n_chunks == 1) {
        for (int c = 0; c < n_chunks; c++)
            fn(arg, c, 0);
        return;
    }
    uint32_t g = (uint32_t)(atomic_load_explicit(&p->state,
                                                 memory_order_relaxed) >> 32) + 1;
    /* close, rewrite the slot, open (see the struct) */
    atomic_store(&p->state, ((uint64_t)g << 32) | CLOSED);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&p->fn, fn, memory_order_relaxed);
    atomic_store_explicit(&p->arg, arg, memory_order_relaxed);
    atomic_store_explicit(&p->n_chunks, n_chunks, memory_order_relaxed);
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    atomic_store_explicit(&p->state, (uint64_t)g << 32, memory_order_release);
    atomic_store(&p->gen, g); /* seq_cst: then look for sleepers */
    if (atomic_load(&p->sleeping) > 0)
        futex_wake_all(&p->gen);
    run_chunks(p, g, 0);
    /* Every chunk is claimed; wait for those still running elsewhere.
     * Yield now and then so an oversubscribed core can run the late
     * worker. */
    for (int i = 0;
         atomic_load_explicit(&p->done, memory_order_acquire) != n_chunks;
         i++) {
        cpu_relax();
        if ((i & 1023) == 1023)
            sched_yield();
    }
}
