/* engine.c: the scheduler thread that runs every request's sequences in
 * shared forward steps (see engine.h).
 *
 * Lifecycle of a request: WAITING in the queue -> admitted (sequences,
 * samplers and text streams allocated) -> PREFILL in chunks under the
 * per-step token budget -> DECODE one token per step per choice -> END.
 * Only the scheduler thread touches a request's run state; other threads
 * touch only the queue (under the lock), the cancel flag and refcount. */
#include "engine/engine.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/forward.h"
#include "util/utf8.h"

typedef enum req_state { REQ_WAITING, REQ_PREFILL, REQ_DECODE } req_state;

typedef struct choice {
    hp_seq *seq;          /* owns */
    hp_sampler *smp;      /* owns */
    hp_textstream *ts;    /* owns */
    float *logits;        /* owns: n_vocab */
    int32_t *gen;         /* owns: generated ids (for penalties) */
    int n_gen;
    int32_t next;         /* token to feed at the next decode step */
    bool done;
} choice;

struct hp_request {
    atomic_int refs;
    atomic_bool cancel;
    hp_engine *e;          /* borrows */
    int32_t *prompt;       /* owns */
    int n_prompt;
    hp_gen_params p;       /* stop[] point into stop_buf */
    char *stop_buf[HP_MAX_STOP]; /* owns */
    hp_logit_bias *bias;   /* owns: copy of p.sampling.logit_bias */
    hp_event_cb cb;
    void *ud;
    /* scheduler-thread state */
    req_state state;
    int n_prefilled;       /* prompt tokens evaluated into choice 0 */
    choice ch[HP_MAX_CHOICES];
    struct hp_request *next; /* queue / active list link */
};

struct hp_engine {
    hp_model *model;       /* borrows */
    hp_engine_opts o;
    hp_runner *runner;     /* owns; used by the scheduler thread only */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    hp_request *wait_head, *wait_tail; /* under mu */
    int n_waiting;                     /* under mu */
    hp_request *active;    /* scheduler thread only */
    atomic_int running;    /* sequences in flight, for stats */
    atomic_uint_fast64_t prompt_tokens, gen_tokens;
    atomic_uint_fast64_t seed_counter;
};

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
    o->n_ctx = m && m->hp.n_ctx_train > 0 && m->hp.n_ctx_train < 4096
                   ? m->hp.n_ctx_train
                   : 4096;
    o->n_threads = 0;
    o->parallel = 4;
    o->batch_tokens = 512;
    o->max_queue = 64;
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
    free(c->gen);
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

static void emit_token(hp_request *r, int idx, const char *text, size_t len,
                       int32_t tok, const hp_token_logprob *lp)
{
    hp_event ev = {.kind = HP_EV_TOKEN, .index = idx, .text = text,
                   .len = len, .token = tok, .lp = lp};
    r->cb(&ev, r->ud);
}

static void emit_choice_end(hp_request *r, int idx, hp_finish f,
                            const char *text, size_t len)
{
    hp_event ev = {.kind = HP_EV_CHOICE_END, .index = idx, .finish = f,
                   .text = text ? text : "", .len = len};
    r->cb(&ev, r->ud);
}

static void emit_end(hp_request *r)
{
    int total = 0;
    for (int i = 0; i < r->p.n; i++)
        total += r->ch[i].n_gen;
    hp_event ev = {.kind = HP_EV_END, .prompt_tokens = r->n_prompt,
                   .completion_tokens = total, .text = ""};
    r->cb(&ev, r->ud);
}

static void emit_error(hp_request *r, const char *msg)
{
    hp_event ev = {.kind = HP_EV_ERROR, .message = msg, .text = ""};
    r->cb(&ev, r->ud);
}

/* ---- admission ----------------------------------------------------------- */

/* Allocate a request's run state. False on out-of-memory. */
static bool req_admit(hp_engine *e, hp_request *r)
{
    const hp_model *m = e->model;
    int cap = r->n_prompt + r->p.max_tokens;
    for (int i = 0; i < r->p.n; i++) {
        choice *c = &r->ch[i];
        hp_sampling s = r->p.sampling;
        /* each choice draws its own stream: seed + index keeps a seeded
         * request reproducible while choices differ */
        if (s.has_seed)
            s.seed += (uint64_t)i * 0x9E3779B97F4A7C15ull;
        else {
            s.seed = (uint64_t)time(NULL) ^
                     (atomic_fetch_add(&e->seed_counter, 1) * 0x9E3779B97F4A7C15ull);
            s.has_seed = true;
        }
        c->seq = hp_seq_new(m, cap);
        c->smp = hp_sampler_new(&s, m->hp.n_vocab);
        c->ts = hp_textstream_new(r->p.stop, r->p.n_stop);
        c->logits = malloc(sizeof(float) * (size_t)m->hp.n_vocab);
        c->gen = malloc(sizeof(int32_t) * (size_t)r->p.max_tokens);
        if (!c->seq || !c->smp || !c->ts || !c->logits || !c->gen)
            return false;
    }
    r->state = REQ_PREFILL;
    r->n_prefilled = 0;
    return true;
}

static int req_live_choices(const hp_request *r)
{
    int n = 0;
    for (int i = 0; i < r->p.n; i++)
        n += !r->ch[i].done;
    return n;
}

/* Finish one choice: release held text and report why it ended. The
 * sequence's memory goes back at once, not when the whole request ends. */
static void choice_finish(hp_request *r, int idx, hp_finish f)
{
    choice *c = &r->ch[idx];
    const char *txt = "";
    size_t len = 0;
    if (f != HP_FINISH_CANCELLED) /* nobody reads a cancelled tail */
        hp_textstream_finish(c->ts, &txt, &len);
    c->done = true;
    hp_seq_free(c->seq);
    c->seq = NULL;
    emit_choice_end(r, idx, f, txt, len);
}

/* Sample the next token of choice idx from its logits and emit it. */
static void choice_step(hp_engine *e, hp_request *r, int idx)
{
    const hp_model *m = e->model;
    choice *c = &r->ch[idx];
    hp_token_logprob lp;
    bool want_lp = r->p.top_logprobs >= 0;
    int32_t tok = hp_sampler_sample(c->smp, c->logits, c->gen, c->n_gen,
                                    want_lp ? &lp : NULL,
                                    want_lp ? r->p.top_logprobs : 0);
    c->gen[c->n_gen++] = tok;
    atomic_fetch_add(&e->gen_tokens, 1);
    if (!r->p.ignore_eos && hp_vocab_is_eog(m->vocab, tok)) {
        choice_finish(r, idx, HP_FINISH_STOP);
        return;
    }
    char piece[256];
    size_t n = hp_token_to_piece(m->vocab, tok, piece, sizeof piece);
    if (n > sizeof piece)
        n = sizeof piece; /* no real token is this long; never overrun */
    const char *out;
    size_t out_len;
    bool stopped = hp_textstream_push(c->ts, piece, n, &out, &out_len);
    emit_token(r, idx, out, out_len, tok, want_lp ? &lp : NULL);
    if (stopped) {
        c->done = true;
        hp_seq_free(c->seq);
        c->seq = NULL;
        emit_choice_end(r, idx, HP_FINISH_STOP, "", 0);
    } else if (c->n_gen >= r->p.max_tokens) {
        choice_finish(r, idx, HP_FINISH_LENGTH);
    } else {
        c->next = tok;
    }
}

/* ---- the scheduler -------------------------------------------------------- */

static void active_remove(hp_engine *e, hp_request *r)
{
    hp_request **pp = &e->active;
    while (*pp && *pp != r)
        pp = &(*pp)->next;
    if (*pp)
        *pp = r->next;
    r->next = NULL;
}

static int active_seqs(const hp_engine *e)
{
    int n = 0;
    for (const hp_request *r = e->active; r; r = r->next)
        n += r->state == REQ_PREFILL ? r->p.n : req_live_choices(r);
    return n;
}

/* End a request that is in the active list: deliver END, drop the
 * engine's reference. */
static void req_retire(hp_engine *e, hp_request *r)
{
    active_remove(e, r);
    emit_end(r);
    for (int i = 0; i < r->p.n; i++)
        choice_clear(&r->ch[i]);
    hp_request_release(r);
}

static void req_fail(hp_engine *e, hp_request *r, const char *msg)
{
    active_remove(e, r);
    emit_error(r, msg);
    for (int i = 0; i < r->p.n; i++)
        choice_clear(&r->ch[i]);
    hp_request_release(r);
}

/* Move queued requests into the active list while sequences are free.
 * Called with mu held. */
static void admit_waiting(hp_engine *e, hp_request **admitted)
{
    int seqs = active_seqs(e);
    while (e->wait_head && seqs + e->wait_head->p.n <= e->o.parallel) {
        hp_request *r = e->wait_head;
        e->wait_head = r->next;
        if (!e->wait_head)
            e->wait_tail = NULL;
        e->n_waiting--;
        r->next = *admitted;
        *admitted = r;
        seqs += r->p.n;
    }
}

/* One step: build the batch, run it, sample. */
static void step(hp_engine *e)
{
    const hp_model *m = e->model;
    int budget = hp_runner_max_tokens(e->runner);
    hp_batch_item items[256];
    hp_request *owner[256];
    int n_items = 0;

    /* decoding sequences first: each needs exactly one token, and keeping
     * them moving bounds inter-token latency while prompts arrive */
    for (hp_request *r = e->active; r; r = r->next) {
        if (r->state != REQ_DECODE)
            continue;
        for (int i = 0; i < r->p.n && budget > 0 && n_items < 256; i++) {
            choice *c = &r->ch[i];
            if (c->done)
                continue;
            items[n_items] = (hp_batch_item){c->seq, &c->next, 1, c->logits};
            owner[n_items++] = r;
            budget--;
        }
    }
    /* then prompt chunks, oldest admitted first, under the token budget */
    for (hp_request *r = e->active; r && budget > 0 && n_items < 256;
         r = r->next) {
        if (r->state != REQ_PREFILL)
            continue;
        int left = r->n_prompt - r->n_prefilled;
        int chunk = left < budget ? left : budget;
        bool last = chunk == left;
        items[n_items] = (hp_batch_item){r->ch[0].seq,
                                         r->prompt + r->n_prefilled, chunk,
                                         last ? r->ch[0].logits : NULL};
        owner[n_items++] = r;
        budget -= chunk;
    }
    if (n_items == 0)
        return;

    hp_errbuf eb = {{0}};
    hp_err err = hp_forward(e->runner, items, n_items, &eb);
    if (err != HP_OK) {
        /* should not happen (sizes are checked at submit); fail the
         * requests in this batch rather than the process */
        for (int i = 0; i < n_items; i++) {
            hp_request *r = owner[i];
            if (r && (r->state == REQ_PREFILL || r->state == REQ_DECODE)) {
                for (int j = i + 1; j < n_items; j++)
                    if (owner[j] == r)
                        owner[j] = NULL;
                req_fail(e, r, eb.msg[0] ? eb.msg : hp_strerror(err));
            }
        }
        return;
    }

    for (int i = 0; i < n_items; i++) {
        hp_request *r = owner[i];
        if (r->state == REQ_PREFILL) {
            r->n_prefilled += items[i].n;
            atomic_fetch_add(&e->prompt_tokens, (uint64_t)items[i].n);
            if (r->n_prefilled < r->n_prompt)
                continue;
            /* prompt done: every other choice starts from a copy of choice
             * 0's cache and logits, so the prompt is evaluated once */
            for (int k = 1; k < r->p.n; k++) {
                hp_seq_copy(r->ch[k].seq, r->ch[0].seq, r->n_prompt);
                memcpy(r->ch[k].logits, r->ch[0].logits,
                       sizeof(float) * (size_t)m->hp.n_vocab);
            }
            r->state = REQ_DECODE;
            for (int k = 0; k < r->p.n; k++)
                choice_step(e, r, k);
        } else {
            /* items of one request are consecutive; find which choice */
            for (int k = 0; k < r->p.n; k++)
                if (!r->ch[k].done && r->ch[k].seq == items[i].seq)
                    choice_step(e, r, k);
        }
    }
}

/* Drop cancelled requests and those whose choices are all done. */
static void reap(hp_engine *e)
{
    hp_request *r = e->active;
    while (r) {
        hp_request *next = r->next;
        if (atomic_load(&r->cancel)) {
            for (int i = 0; i < r->p.n; i++)
                if (!r->ch[i].done)
                    choice_finish(r, i, HP_FINISH_CANCELLED);
        }
        if (r->state == REQ_DECODE || atomic_load(&r->cancel)) {
            if (req_live_choices(r) == 0)
                req_retire(e, r);
        }
        r = next;
    }
    atomic_store(&e->running, active_seqs(e));
}

static void *scheduler_main(void *arg)
{
    hp_engine *e = arg;
    for (;;) {
        hp_request *admitted = NULL;
        pthread_mutex_lock(&e->mu);
        while (!e->stop && !e->active && !e->wait_head)
            pthread_cond_wait(&e->cv, &e->mu);
        if (e->stop) {
            pthread_mutex_unlock(&e->mu);
            break;
        }
        admit_waiting(e, &admitted);
        pthread_mutex_unlock(&e->mu);

        /* allocate outside the lock; keep admission order (FIFO) */
        hp_request *rev = NULL;
        while (admitted) {
            hp_request *n = admitted->next;
            admitted->next = rev;
            rev = admitted;
            admitted = n;
        }
        while (rev) {
            hp_request *r = rev;
            rev = r->next;
            r->next = NULL;
            hp_request **tail = &e->active;
            while (*tail)
                tail = &(*tail)->next;
            *tail = r;
            if (!req_admit(e, r))
                req_fail(e, r, "out of memory allocating the sequence");
        }
        reap(e);
        step(e);
        reap(e);
    }
    /* shutdown: fail what is left */
    while (e->active)
        req_fail(e, e->active, "server shutting down");
    pthread_mutex_lock(&e->mu);
    while (e->wait_head) {
        hp_request *r = e->wait_head;
        e->wait_head = r->next;
        emit_error(r, "server shutting down");
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
    if (e->o.parallel > 256)
        e->o.parallel = 256; /* one batch item per sequence, see step() */
    e->runner = hp_runner_new(m, e->o.batch_tokens, e->o.n_threads);
    if (!e->runner) {
        free(e);
        return hp_errf(eb, HP_ERR_NOMEM,
                       "out of memory for a %d-token batch", o->batch_tokens);
    }
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    if (pthread_create(&e->thread, NULL, scheduler_main, e) != 0) {
        hp_runner_free(e->runner);
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
    r->e = e;
    r->cb = cb;
    r->ud = ud;
    r->state = REQ_WAITING;
    atomic_init(&r->refs, 2); /* the engine's and the caller's */
    atomic_init(&r->cancel, false);

    pthread_mutex_lock(&e->mu);
    if (e->n_waiting >= e->o.max_queue && e->o.max_queue > 0) {
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
}
