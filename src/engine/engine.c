/* engine.c: the scheduler thread that runs every request's sequences in
 * shared forward steps (see engine.h).
 *
 * Each choice of a request is one sequence with its own token list
 * (prompt + generated). At every step a sequence is fed the tokens it
 * knows but has not evaluated yet: a whole prompt (in chunks under the
 * step's token budget), one sampled token while decoding, or, after a
 * preemption, everything again (mostly found in the prefix cache). When a
 * sequence has evaluated all its tokens, the logits of the last one give
 * the next token. One rule serves prefill, decode and resume.
 *
 * Only the scheduler thread touches run state; other threads touch the
 * queue (under the lock), the cancel flag and the refcount. */
#include "engine/engine.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "measure/metrics.h"
#include "model/forward.h"
#include "model/kvcache.h"

#define MAX_ITEMS 256

typedef struct choice {
    hp_seq *seq;          /* owns; NULL while waiting or preempted */
    hp_sampler *smp;      /* owns */
    hp_textstream *ts;    /* owns */
    float *logits;        /* owns: n_vocab */
    int32_t *toks;        /* owns: prompt then generated ids */
    int n_toks;
    int n_gen;
    double t_last;        /* time of the last token (inter-token latency) */
    bool done;
} choice;

struct hp_request {
    atomic_int refs;
    atomic_bool cancel;
    int32_t *prompt;       /* owns */
    int n_prompt;
    hp_gen_params p;       /* stop[] point into stop_buf */
    char *stop_buf[HP_MAX_STOP]; /* owns */
    hp_logit_bias *bias;   /* owns: copy of p.sampling.logit_bias */
    hp_event_cb cb;
    void *ud;
    double t_submit;
    /* scheduler-thread state */
    bool started;          /* run state allocated */
    bool first_token_seen;
    choice ch[HP_MAX_CHOICES];
    struct hp_request *next; /* queue / active list link */
};

struct hp_engine {
    hp_model *model;       /* borrows */
    hp_engine_opts o;
    hp_runner *runner;     /* owns; scheduler thread only */
    hp_kvpool *pool;       /* owns; scheduler thread only */
    struct plan *plan;     /* owns: the step's batch, scheduler thread only */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    hp_request *wait_head, *wait_tail; /* under mu */
    int n_waiting;                     /* under mu */
    hp_request *active;    /* scheduler thread only; admission order */
    atomic_int running;
    atomic_int kv_used;
    atomic_uint_fast64_t prompt_tokens, gen_tokens, preemptions;
    atomic_uint_fast64_t pc_queries, pc_hits;
    atomic_uint_fast64_t seed_counter;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

const char *hp_finish_name(hp_finish f)
{
    switch (f) {
    case HP_FINISH_NONE: return NULL;
    case HP_FINISH_STOP: return "stop";
    case HP_FINISH_LENGTH: return "length";
    case HP_FINISH_CANCELLED: return "cancelled";
    }
    return NULL;
}

void hp_engine_opts_default(hp_engine_opts *o, const hp_model *m)
{
    memset(o, 0, sizeof *o);
    o->n_ctx = m && m->hp.n_ctx_train > 0 && m->hp.n_ctx_train < 4096
                   ? m->hp.n_ctx_train
                   : 4096;
    o->n_threads = 0;
    o->parallel = 4;
    o->batch_tokens = 128; /* bounds a decode step: see BENCHMARKS.md */
    o->max_queue = 64;
    o->kv_blocks = 0;
    o->prefix_cache = true;
}

void hp_gen_params_default(hp_gen_params *p)
{
    memset(p, 0, sizeof *p);
    hp_sampling_default(&p->sampling);
    p->max_tokens = 16;
    p->n = 1;
    p->top_logprobs = -1;
}

/* ---- request lifetime ------------------------------------------------- */

static void choice_clear(choice *c)
{
    hp_seq_free(c->seq);
    hp_sampler_free(c->smp);
    hp_textstream_free(c->ts);
    free(c->logits);
    free(c->toks);
    memset(c, 0, sizeof *c);
}

static void req_free(hp_request *r)
{
    for (int i = 0; i < HP_MAX_CHOICES; i++)
        choice_clear(&r->ch[i]);
    for (int i = 0; i < HP_MAX_STOP; i++)
        free(r->stop_buf[i]);
    free(r->bias);
    free(r->prompt);
    free(r);
}

void hp_request_release(hp_request *r)
{
    if (r && atomic_fetch_sub(&r->refs, 1) == 1)
        req_free(r);
}

void hp_request_cancel(hp_request *r)
{
    if (r)
        atomic_store(&r->cancel, true);
}

/* ---- events ------------------------------------------------------------ */

static void emit(hp_request *r, const hp_event *ev) { r->cb(ev, r->ud); }

static void emit_end(hp_engine *e, hp_request *r)
{
    int total = 0;
    for (int i = 0; i < r->p.n; i++)
        total += r->ch[i].n_gen;
    hp_metrics_observe(e->o.metrics, HP_M_E2E, now_s() - r->t_submit);
    hp_metrics_add_tokens(e->o.metrics, (uint64_t)r->n_prompt,
                          (uint64_t)total);
    hp_event ev = {.kind = HP_EV_END, .prompt_tokens = r->n_prompt,
                   .completion_tokens = total, .text = ""};
    emit(r, &ev);
}

/* ---- run state ------------------------------------------------------------ */

/* Allocate samplers, streams and token lists (not sequences: those come
 * when a choice is scheduled). False on out-of-memory. */
static bool req_start(hp_engine *e, hp_request *r)
{
    const hp_model *m = e->model;
    int cap = r->n_prompt + r->p.max_tokens;
    for (int i = 0; i < r->p.n; i++) {
        choice *c = &r->ch[i];
        hp_sampling s = r->p.sampling;
        /* each choice draws its own stream: seed + index keeps a seeded
         * request reproducible while its choices differ */
        if (s.has_seed) {
            s.seed += (uint64_t)i * 0x9E3779B97F4A7C15ull;
        } else {
            s.seed = (uint64_t)time(NULL) ^
                     (atomic_fetch_add(&e->seed_counter, 1) *
                      0x9E3779B97F4A7C15ull);
            s.has_seed = true;
        }
        c->smp = hp_sampler_new(&s, m->hp.n_vocab);
        c->ts = hp_textstream_new(r->p.stop, r->p.n_stop);
        c->logits = malloc(sizeof(float) * (size_t)m->hp.n_vocab);
        c->toks = malloc(sizeof(int32_t) * (size_t)cap);
        if (!c->smp || !c->ts || !c->logits || !c->toks)
            return false;
        memcpy(c->toks, r->prompt, sizeof(int32_t) * (size_t)r->n_prompt);
        c->n_toks = r->n_prompt;
    }
    r->started = true;
    hp_metrics_observe(e->o.metrics, HP_M_QUEUE, now_s() - r->t_submit);
    return true;
}

static int live_choices(const hp_request *r)
{
    int n = 0;
    for (int i = 0; i < r->p.n; i++)
        n += !r->ch[i].done;
    return n;
}

/* Finish one choice: release held text (unless cancelled) and return its
 * blocks at once rather than when the whole request ends. */
static void choice_finish(hp_engine *e, hp_request *r, int idx, hp_finish f)
{
    choice *c = &r->ch[idx];
    const char *txt = "";
    size_t len = 0;
    if (f != HP_FINISH_CANCELLED)
        hp_textstream_finish(c->ts, &txt, &len);
    c->done = true;
    hp_seq_free(c->seq);
    c->seq = NULL;
    hp_metrics_request_finished(e->o.metrics, hp_finish_name(f));
    hp_event ev = {.kind = HP_EV_CHOICE_END, .index = idx, .finish = f,
                   .text = txt, .len = len};
    emit(r, &ev);
}

/* All of choice idx's tokens are evaluated: sample the next one, emit it,
 * and decide whether the choice goes on. */
static void choice_sample(hp_engine *e, hp_request *r, int idx)
{
    const hp_model *m = e->model;
    choice *c = &r->ch[idx];
    hp_token_logprob lp;
    bool want_lp = r->p.top_logprobs >= 0;
    const int32_t *gen = c->toks + r->n_prompt;
    int32_t tok = hp_sampler_sample(c->smp, c->logits, gen, c->n_gen,
                                    want_lp ? &lp : NULL,
                                    want_lp ? r->p.top_logprobs : 0);
    double t = now_s();
    if (!r->first_token_seen) {
        r->first_token_seen = true;
        hp_metrics_observe(e->o.metrics, HP_M_TTFT, t - r->t_submit);
    } else if (c->n_gen > 0) {
        hp_metrics_observe(e->o.metrics, HP_M_ITL, t - c->t_last);
    }
    c->t_last = t;
    c->toks[c->n_toks++] = tok;
    c->n_gen++;
    atomic_fetch_add(&e->gen_tokens, 1);
    if (!r->p.ignore_eos && hp_vocab_is_eog(m->vocab, tok)) {
        choice_finish(e, r, idx, HP_FINISH_STOP);
        return;
    }
    char piece[256];
    size_t n = hp_token_to_piece(m->vocab, tok, piece, sizeof piece);
    if (n > sizeof piece)
        n = sizeof piece; /* no real token is this long; never overrun */
    const char *out;
    size_t out_len;
    bool stopped = hp_textstream_push(c->ts, piece, n, &out, &out_len);
    hp_event ev = {.kind = HP_EV_TOKEN, .index = idx, .text = out,
                   .len = out_len, .token = tok, .lp = want_lp ? &lp : NULL};
    emit(r, &ev);
    if (stopped) {
        /* the stop string and anything held with it are dropped */
        c->done = true;
        hp_seq_free(c->seq);
        c->seq = NULL;
        hp_metrics_request_finished(e->o.metrics, "stop");
        hp_event end = {.kind = HP_EV_CHOICE_END, .index = idx,
                        .finish = HP_FINISH_STOP, .text = "", .len = 0};
        emit(r, &end);
    } else if (c->n_gen >= r->p.max_tokens) {
        choice_finish(e, r, idx, HP_FINISH_LENGTH);
    }
}

/* ---- active list ---------------------------------------------------------- */

static void active_remove(hp_engine *e, hp_request *r)
{
    hp_request **pp = &e->active;
    while (*pp && *pp != r)
        pp = &(*pp)->next;
    if (*pp)
        *pp = r->next;
    r->next = NULL;
}

static void active_append(hp_engine *e, hp_request *r)
{
    hp_request **tail = &e->active;
    while (*tail)
        tail = &(*tail)->next;
    r->next = NULL;
    *tail = r;
}

static int active_seqs(const hp_engine *e)
{
    int n = 0;
    for (const hp_request *r = e->active; r; r = r->next)
        n += live_choices(r);
    return n;
}

/* End a request in the active list: deliver END, drop the engine's ref. */
static void req_retire(hp_engine *e, hp_request *r)
{
    active_remove(e, r);
    emit_end(e, r);
    for (int i = 0; i < r->p.n; i++)
        choice_clear(&r->ch[i]);
    hp_request_release(r);
}

static void req_fail(hp_engine *e, hp_request *r, const char *msg)
{
    active_remove(e, r);
    for (int i = 0; i < r->p.n; i++)
        if (!r->ch[i].done)
            hp_metrics_request_finished(e->o.metrics, "error");
    hp_event ev = {.kind = HP_EV_ERROR, .message = msg, .text = ""};
    emit(r, &ev);
    for (int i = 0; i < r->p.n; i++)
        choice_clear(&r->ch[i]);
    hp_request_release(r);
}

/* The newest admitted request that holds KV blocks, or NULL. */
static hp_request *newest_holder(hp_engine *e)
{
    hp_request *victim = NULL;
    for (hp_request *r = e->active; r; r = r->next)
        for (int i = 0; i < r->p.n; i++)
            if (r->ch[i].seq)
                victim = r;
    return victim;
}

/* Free a running request's blocks and put it back at the head of the
 * queue; it resumes later by recomputing its tokens (mostly found in the
 * prefix cache), so its output does not change. */
static void preempt(hp_engine *e, hp_request *victim)
{
    for (int i = 0; i < victim->p.n; i++) {
        hp_seq_free(victim->ch[i].seq);
        victim->ch[i].seq = NULL;
    }
    active_remove(e, victim);
    pthread_mutex_lock(&e->mu);
    victim->next = e->wait_head;
    e->wait_head = victim;
    if (!e->wait_tail)
        e->wait_tail = victim;
    e->n_waiting++;
    pthread_mutex_unlock(&e->mu);
    atomic_fetch_add(&e->preemptions, 1);
}

/* Give choice idx a sequence, attaching any cached prefix of its tokens.
 * Choices after the first wait until the first has evaluated the prompt,
 * so they find it in the prefix cache instead of recomputing it. */
static bool choice_ensure_seq(hp_engine *e, hp_request *r, int idx)
{
    choice *c = &r->ch[idx];
    if (c->seq)
        return true;
    if (idx > 0 && !r->ch[0].done &&
        (!r->ch[0].seq || hp_seq_len(r->ch[0].seq) < r->n_prompt))
        return false;
    c->seq = hp_seq_new(e->pool, r->n_prompt + r->p.max_tokens);
    if (!c->seq)
        return false;
    int hit = hp_seq_attach_prefix(c->seq, c->toks, c->n_toks);
    if (idx == 0)
        hp_metrics_prefix_cache(e->o.metrics, (uint64_t)c->n_toks,
                                (uint64_t)hit);
    return true;
}

/* ---- one scheduler step ----------------------------------------------- */

typedef struct plan {
    hp_batch_item items[MAX_ITEMS];
    hp_request *owner[MAX_ITEMS];
    int choice[MAX_ITEMS];
    int n;
    int budget;
} plan;

/* Try to add choice idx's pending tokens (at most the budget) to the
 * batch, reserving their KV blocks, preempting newer requests if the pool
 * is full. Returns false if this request itself had to be preempted or
 * failed (then stop planning it). */
static bool plan_choice(hp_engine *e, plan *pl, hp_request *r, int idx)
{
    choice *c = &r->ch[idx];
    if (c->done || pl->n >= MAX_ITEMS || pl->budget <= 0)
        return true;
    if (!choice_ensure_seq(e, r, idx))
        return true;
    int have = hp_seq_len(c->seq);
    int pending = c->n_toks - have;
    if (pending <= 0)
        return true;
    int chunk = pending < pl->budget ? pending : pl->budget;
    for (;;) {
        hp_err err = hp_seq_reserve(c->seq, chunk);
        if (err == HP_OK)
            break;
        hp_request *victim = err == HP_ERR_AGAIN ? newest_holder(e) : NULL;
        if (victim && victim != r) {
            preempt(e, victim);
            continue;
        }
        if (victim == r) {
            /* r is the newest holder: it yields unless it is alone (then
             * the pool, sized at submit for its whole length, has room) */
            bool others = false;
            for (hp_request *o = e->active; o; o = o->next)
                for (int i = 0; o != r && i < o->p.n; i++)
                    others |= o->ch[i].seq != NULL;
            if (others) {
                preempt(e, r);
                return false;
            }
        }
        req_fail(e, r, "the KV cache is too small for this request");
        return false;
    }
    bool last = chunk == pending;
    pl->items[pl->n] = (hp_batch_item){c->seq, c->toks + have, chunk,
                                       last ? c->logits : NULL};
    pl->owner[pl->n] = r;
    pl->choice[pl->n] = idx;
    pl->n++;
    pl->budget -= chunk;
    return true;
}

static void step(hp_engine *e)
{
    plan *pl = e->plan;
    pl->n = 0;
    pl->budget = hp_runner_max_tokens(e->runner);

    /* Decoding sequences first (one token each): keeping them moving
     * bounds inter-token latency while long prompts arrive. Then prompt
     * chunks, oldest request first, under the remaining token budget. */
    for (int pass = 0; pass < 2; pass++) {
        hp_request *r = e->active;
        while (r) {
            hp_request *next = r->next;
            for (int i = 0; i < r->p.n; i++) {
                choice *c = &r->ch[i];
                if (c->done)
                    continue;
                int have = c->seq ? hp_seq_len(c->seq) : 0;
                bool decoding = c->seq && c->n_toks - have == 1;
                if ((pass == 0) != decoding)
                    continue;
                if (!plan_choice(e, pl, r, i))
                    break; /* r was preempted or failed */
            }
            r = next;
        }
    }
    if (pl->n == 0)
        return;

    /* planning may have preempted a request after some of its items were
     * added; drop items whose sequence is gone */
    int w = 0;
    for (int i = 0; i < pl->n; i++) {
        choice *c = &pl->owner[i]->ch[pl->choice[i]];
        if (c->seq != pl->items[i].seq)
            continue;
        pl->items[w] = pl->items[i];
        pl->owner[w] = pl->owner[i];
        pl->choice[w] = pl->choice[i];
        w++;
    }
    pl->n = w;

    hp_errbuf eb = {{0}};
    hp_err err = hp_forward(e->runner, pl->items, pl->n, &eb);
    if (err != HP_OK) {
        /* sizes were checked when planning; fail this batch's requests
         * rather than the process */
        for (int i = 0; i < pl->n; i++) {
            hp_request *r = pl->owner[i];
            if (!r)
                continue;
            for (int j = i + 1; j < pl->n; j++)
                if (pl->owner[j] == r)
                    pl->owner[j] = NULL;
            req_fail(e, r, eb.msg[0] ? eb.msg : hp_strerror(err));
        }
        return;
    }
    for (int i = 0; i < pl->n; i++) {
        hp_request *r = pl->owner[i];
        choice *c = &r->ch[pl->choice[i]];
        if (c->n_toks - pl->items[i].n <= r->n_prompt)
            atomic_fetch_add(&e->prompt_tokens, (uint64_t)pl->items[i].n);
        if (pl->items[i].logits)
            choice_sample(e, r, pl->choice[i]);
    }
}

/* Drop cancelled requests and those whose choices are all done. */
static void reap(hp_engine *e)
{
    hp_request *r = e->active;
    while (r) {
        hp_request *next = r->next;
        if (atomic_load(&r->cancel))
            for (int i = 0; i < r->p.n; i++)
                if (!r->ch[i].done)
                    choice_finish(e, r, i, HP_FINISH_CANCELLED);
        if (live_choices(r) == 0)
            req_retire(e, r);
        r = next;
    }
    hp_kvpool_stats st;
    hp_kvpool_get_stats(e->pool, &st);
    atomic_store(&e->running, active_seqs(e));
    atomic_store(&e->kv_used, st.blocks_used);
    atomic_store(&e->pc_queries, st.prefix_queries);
    atomic_store(&e->pc_hits, st.prefix_hits);
}

/* Move queued requests into the active list while sequences and KV blocks
 * are free. Called with mu held; returns them in FIFO order. */
static hp_request *admit_waiting(hp_engine *e)
{
    int seqs = active_seqs(e);
    int blocks = hp_kvpool_available(e->pool);
    hp_request *head = NULL, **tail = &head;
    while (e->wait_head) {
        hp_request *r = e->wait_head;
        int need_blocks = hp_kv_blocks_for(r->n_prompt + 1);
        if (seqs + live_choices(r) > e->o.parallel)
            break;
        /* a lone request is always admitted: preemption makes room */
        if (need_blocks > blocks && (e->active || head))
            break;
        e->wait_head = r->next;
        if (!e->wait_head)
            e->wait_tail = NULL;
        e->n_waiting--;
        r->next = NULL;
        *tail = r;
        tail = &r->next;
        seqs += live_choices(r);
        blocks -= need_blocks;
    }
    return head;
}

static void *scheduler_main(void *arg)
{
    hp_engine *e = arg;
    for (;;) {
        pthread_mutex_lock(&e->mu);
        while (!e->stop && !e->active && !e->wait_head)
            pthread_cond_wait(&e->cv, &e->mu);
        if (e->stop) {
            pthread_mutex_unlock(&e->mu);
            break;
        }
        hp_request *admitted = admit_waiting(e);
        pthread_mutex_unlock(&e->mu);
        while (admitted) {
            hp_request *r = admitted;
            admitted = r->next;
            active_append(e, r);
            if (!r->started && !req_start(e, r))
                req_fail(e, r, "out of memory starting the request");
        }
        reap(e);
        step(e);
        reap(e);
    }
    while (e->active)
        req_fail(e, e->active, "server shutting down");
    pthread_mutex_lock(&e->mu);
    while (e->wait_head) {
        hp_request *r = e->wait_head;
        e->wait_head = r->next;
        hp_event ev = {.kind = HP_EV_ERROR, .message = "server shutting down",
                       .text = ""};
        emit(r, &ev);
        hp_request_release(r);
    }
    e->wait_tail = NULL;
    e->n_waiting = 0;
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

/* ---- public API ------------------------------------------------------------ */

hp_err hp_engine_new(hp_model *m, const hp_engine_opts *o, hp_engine **out,
                     hp_errbuf *eb)
{
    *out = NULL;
    if (o->n_ctx < 1 || o->parallel < 1 || o->batch_tokens < 1 ||
        o->max_queue < 0)
        return hp_errf(eb, HP_ERR_INVALID,
                       "engine options out of range (ctx %d, parallel %d, "
                       "batch %d, queue %d)",
                       o->n_ctx, o->parallel, o->batch_tokens, o->max_queue);
    hp_engine *e = calloc(1, sizeof *e);
    if (!e)
        return hp_errf(eb, HP_ERR_NOMEM, "out of memory");
    e->model = m;
    e->o = *o;
    if (e->o.parallel > MAX_ITEMS)
        e->o.parallel = MAX_ITEMS; /* one batch item per sequence */
    int blocks = e->o.kv_blocks;
    if (blocks <= 0)
        blocks = hp_kv_blocks_for(e->o.n_ctx) * e->o.parallel;
    e->o.kv_blocks = blocks;
    e->runner = hp_runner_new(m, e->o.batch_tokens, e->o.n_threads);
    e->pool = hp_kvpool_new(m, blocks, e->o.prefix_cache);
    e->plan = malloc(sizeof *e->plan);
    if (!e->runner || !e->pool || !e->plan) {
        hp_runner_free(e->runner);
        hp_kvpool_free(e->pool);
        free(e->plan);
        free(e);
        return hp_errf(eb, HP_ERR_NOMEM,
                       "out of memory for a %d-token batch and %d KV blocks "
                       "(%.1f MiB)",
                       o->batch_tokens, blocks,
                       (double)hp_kvpool_block_bytes(m) * blocks / 1048576.0);
    }
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    if (pthread_create(&e->thread, NULL, scheduler_main, e) != 0) {
        hp_runner_free(e->runner);
        hp_kvpool_free(e->pool);
        free(e->plan);
        free(e);
        return hp_errf(eb, HP_ERR_INTERNAL, "cannot start scheduler thread");
    }
    *out = e;
    return HP_OK;
}

void hp_engine_free(hp_engine *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&e->mu);
    e->stop = true;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->thread, NULL);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    hp_runner_free(e->runner);
    hp_kvpool_free(e->pool);
    free(e->plan);
    free(e);
}

const hp_model *hp_engine_model(const hp_engine *e) { return e->model; }
const hp_engine_opts *hp_engine_options(const hp_engine *e) { return &e->o; }

hp_err hp_engine_submit(hp_engine *e, const int32_t *prompt, int n_prompt,
                        const hp_gen_params *p, hp_event_cb cb, void *ud,
                        hp_request **out, hp_errbuf *eb)
{
    *out = NULL;
    if (n_prompt < 1)
        return hp_errf(eb, HP_ERR_INVALID, "the prompt is empty");
    if (p->max_tokens < 1)
        return hp_errf(eb, HP_ERR_INVALID, "max_tokens must be at least 1");
    if (p->n < 1 || p->n > HP_MAX_CHOICES)
        return hp_errf(eb, HP_ERR_INVALID, "n must be between 1 and %d",
                       HP_MAX_CHOICES);
    if (p->n > e->o.parallel)
        return hp_errf(eb, HP_ERR_INVALID,
                       "n = %d exceeds the server's --parallel %d", p->n,
                       e->o.parallel);
    if (p->n_stop < 0 || p->n_stop > HP_MAX_STOP)
        return hp_errf(eb, HP_ERR_INVALID, "at most %d stop strings",
                       HP_MAX_STOP);
    if ((long)n_prompt + p->max_tokens > e->o.n_ctx)
        return hp_errf(eb, HP_ERR_RANGE,
                       "This model's maximum context length is %d tokens. "
                       "However, you requested %ld tokens (%d in the prompt, "
                       "%d in the completion).",
                       e->o.n_ctx, (long)n_prompt + p->max_tokens, n_prompt,
                       p->max_tokens);
    if (hp_kv_blocks_for(n_prompt + p->max_tokens) > e->o.kv_blocks)
        return hp_errf(eb, HP_ERR_RANGE,
                       "%d prompt + %d completion tokens do not fit the KV "
                       "cache (%d positions)",
                       n_prompt, p->max_tokens, e->o.kv_blocks * HP_KV_BLOCK);
    int32_t nv = e->model->hp.n_vocab;
    for (int i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= nv)
            return hp_errf(eb, HP_ERR_INVALID,
                           "token id %d at prompt position %d is outside the "
                           "vocabulary (0..%d)",
                           prompt[i], i, nv - 1);

    hp_request *r = calloc(1, sizeof *r);
    if (!r)
        return hp_errf(eb, HP_ERR_NOMEM, "out of memory");
    r->p = *p;
    r->prompt = malloc(sizeof(int32_t) * (size_t)n_prompt);
    if (!r->prompt)
        goto nomem;
    memcpy(r->prompt, prompt, sizeof(int32_t) * (size_t)n_prompt);
    r->n_prompt = n_prompt;
    for (int i = 0; i < p->n_stop; i++) {
        r->stop_buf[i] = strdup(p->stop[i] ? p->stop[i] : "");
        if (!r->stop_buf[i])
            goto nomem;
        r->p.stop[i] = r->stop_buf[i];
    }
    if (p->sampling.n_logit_bias > 0) {
        size_t nb = sizeof(hp_logit_bias) * (size_t)p->sampling.n_logit_bias;
        r->bias = malloc(nb);
        if (!r->bias)
            goto nomem;
        memcpy(r->bias, p->sampling.logit_bias, nb);
        r->p.sampling.logit_bias = r->bias;
    }
    r->cb = cb;
    r->ud = ud;
    r->t_submit = now_s();
    atomic_init(&r->refs, 2); /* the engine's and the caller's */
    atomic_init(&r->cancel, false);

    pthread_mutex_lock(&e->mu);
    if (e->o.max_queue > 0 && e->n_waiting >= e->o.max_queue) {
        pthread_mutex_unlock(&e->mu);
        req_free(r);
        return hp_errf(eb, HP_ERR_AGAIN,
                       "the server is busy: %d requests are waiting",
                       e->o.max_queue);
    }
    if (e->wait_tail)
        e->wait_tail->next = r;
    else
        e->wait_head = r;
    e->wait_tail = r;
    e->n_waiting++;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    *out = r;
    return HP_OK;
nomem:
    req_free(r);
    return hp_errf(eb, HP_ERR_NOMEM, "out of memory");
}

void hp_engine_get_stats(hp_engine *e, hp_engine_stats *st)
{
    pthread_mutex_lock(&e->mu);
    st->waiting = e->n_waiting;
    pthread_mutex_unlock(&e->mu);
    st->running = atomic_load(&e->running);
    st->prompt_tokens_total = atomic_load(&e->prompt_tokens);
    st->generation_tokens_total = atomic_load(&e->gen_tokens);
    st->kv_blocks_used = atomic_load(&e->kv_used);
    st->kv_blocks_total = e->o.kv_blocks;
    st->prefix_queries = atomic_load(&e->pc_queries);
    st->prefix_hits = atomic_load(&e->pc_hits);
    st->preemptions = atomic_load(&e->preemptions);
}
