/* engine.h: runs generation requests against one loaded model.
 *
 * One scheduler thread owns the forward pass. At every step it admits
 * waiting requests (up to `parallel` running sequences), evaluates one
 * batch holding the prompt chunks of new sequences and the next token of
 * every decoding sequence, samples, and emits events. Finished and
 * cancelled sequences leave at the end of the step. Requests never see each
 * other's state.
 *
 * Events are delivered on the scheduler thread through the request's
 * callback; the callback must not block (the server queues and wakes its
 * event loop). Knows nothing of HTTP or JSON. Included by server/, cli/. */
#ifndef HP_ENGINE_H
#define HP_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/sampler.h"
#include "engine/textstream.h"
#include "model/model.h"
#include "util/err.h"

#define HP_MAX_CHOICES 16

struct hp_metrics;

typedef struct hp_engine_opts {
    int n_ctx;        /* max positions per sequence (prompt + output) */
    int n_threads;    /* <= 0: all cores */
    int parallel;     /* max running sequences (choices count each) */
    int batch_tokens; /* max tokens per forward step (prefill chunking) */
    int max_queue;    /* waiting requests beyond which submit says AGAIN */
    int kv_blocks;    /* KV pool size in blocks of HP_KV_BLOCK positions;
                         <= 0: enough for n_ctx * parallel */
    bool prefix_cache; /* reuse cached prompt blocks (default true) */
    struct hp_metrics *metrics; /* borrows: latency/token metrics, or NULL */
} hp_engine_opts;

void hp_engine_opts_default(hp_engine_opts *o, const hp_model *m);

typedef enum hp_finish {
    HP_FINISH_NONE = 0,
    HP_FINISH_STOP,     /* EOS/EOG token or stop string */
    HP_FINISH_LENGTH,   /* max_tokens or context full */
    HP_FINISH_CANCELLED /* hp_request_cancel */
} hp_finish;

/* "stop", "length", "cancelled", or NULL for NONE. */
const char *hp_finish_name(hp_finish f);

typedef struct hp_gen_params {
    hp_sampling sampling;
    int max_tokens;                 /* >= 1 */
    const char *stop[HP_MAX_STOP];  /* copied at submit */
    int n_stop;
    int n;                          /* choices, 1..HP_MAX_CHOICES */
    int top_logprobs;               /* -1: no logprobs; 0..20: with them */
    bool ignore_eos;
} hp_gen_params;

void hp_gen_params_default(hp_gen_params *p);

typedef enum hp_event_kind {
    HP_EV_TOKEN,      /* one sampled token of choice `index` */
    HP_EV_CHOICE_END, /* choice `index` finished with `finish` */
    HP_EV_END,        /* all choices finished; usage is final. Last event. */
    HP_EV_ERROR       /* the request failed; `message` says why. Last event. */
} hp_event_kind;

typedef struct hp_event {
    hp_event_kind kind;
    int index;                   /* choice */
    const char *text;            /* TOKEN: released text (valid UTF-8,
                                    maybe empty); CHOICE_END: text released
                                    at the end (maybe empty) */
    size_t len;
    int32_t token;               /* TOKEN */
    const hp_token_logprob *lp;  /* TOKEN: when top_logprobs >= 0 */
    hp_finish finish;            /* CHOICE_END */
    int prompt_tokens;           /* END */
    int completion_tokens;       /* END: summed over choices */
    const char *message;         /* ERROR */
} hp_event;

/* Called on the scheduler thread. Pointers in ev are valid only during the
 * call. Must not call back into the engine except hp_request_cancel. */
typedef void (*hp_event_cb)(const hp_event *ev, void *ud);

typedef struct hp_engine hp_engine;
typedef struct hp_request hp_request;

/* Start the scheduler thread. The model is borrowed and must outlive it. */
hp_err hp_engine_new(hp_model *m, const hp_engine_opts *o, hp_engine **out,
                     hp_errbuf *eb);
/* Cancel everything, join the thread, free. Accepts NULL. */
void hp_engine_free(hp_engine *e);
const hp_model *hp_engine_model(const hp_engine *e);
const hp_engine_opts *hp_engine_options(const hp_engine *e);

/* Queue a request for prompt[0..n_prompt) (copied). On success *out holds
 * a reference the caller must drop with hp_request_release; events then
 * arrive until END or ERROR. HP_ERR_AGAIN when the queue is full;
 * HP_ERR_RANGE when n_prompt + max_tokens > n_ctx, or when the request
 * could not fit the whole KV pool (eb names the numbers). A failed submit
 * never calls cb. When the pool runs out mid-generation, the newest
 * running request is preempted (its blocks freed) and later resumed by
 * recomputing its tokens; its output is unaffected. */
hp_err hp_engine_submit(hp_engine *e, const int32_t *prompt, int n_prompt,
                        const hp_gen_params *p, hp_event_cb cb, void *ud,
                        hp_request **out, hp_errbuf *eb);
/* Ask the engine to stop this request; it frees its sequences within one
 * step and then delivers END (with CHOICE_END finish CANCELLED for unfinished
 * choices). Safe from any thread, any number of times. */
void hp_request_cancel(hp_request *r);
/* Drop the caller's reference. Accepts NULL. */
void hp_request_release(hp_request *r);

/* Counters for /health and /metrics (snapshot, any thread). */
typedef struct hp_engine_stats {
    int running;  /* sequences in the batch */
    int waiting;  /* requests queued (preempted ones included) */
    uint64_t prompt_tokens_total;     /* prompt tokens evaluated */
    uint64_t generation_tokens_total;
    int kv_blocks_used;
    int kv_blocks_total;
    uint64_t prefix_queries; /* prompt tokens looked up in the cache */
    uint64_t prefix_hits;    /* prompt tokens found there */
    uint64_t preemptions;
} hp_engine_stats;

void hp_engine_get_stats(hp_engine *e, hp_engine_stats *st);

#endif
