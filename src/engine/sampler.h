/* sampler.h: turns logits into the next token.
 *
 * Greedy when temperature == 0; otherwise the processing order is
 * logit_bias -> penalties (repeat, frequency, presence) -> top_k ->
 * temperature -> softmax -> top_p -> min_p -> draw (as llama.cpp orders its
 * default chain). The RNG lives in the sampler, seeded per request, so the
 * same request with the same seed gives the same output. Logprobs are
 * reported from the model's raw distribution (log-softmax of the logits
 * before any sampling transform), as vLLM does by default.
 * Included by engine/. Not thread-safe: one sampler per sequence. */
#ifndef HP_SAMPLER_H
#define HP_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>

typedef struct hp_logit_bias {
    int32_t token;
    float bias; /* added to the logit; -100 effectively bans, +100 forces */
} hp_logit_bias;

/* Request-level sampling settings, OpenAI/llama.cpp names and defaults. */
typedef struct hp_sampling {
    float temperature;       /* 0 = greedy; default 1.0 */
    int top_k;               /* <= 0 disables */
    float top_p;             /* 1.0 disables */
    float min_p;             /* 0 disables */
    float frequency_penalty; /* OpenAI: -2..2, 0 disables */
    float presence_penalty;  /* OpenAI: -2..2, 0 disables */
    float repeat_penalty;    /* llama.cpp: 1.0 disables */
    int repeat_last_n;       /* window for the three penalties; default 64 */
    uint64_t seed;           /* used when has_seed */
    bool has_seed;           /* false: seeded from time and a counter */
    const hp_logit_bias *logit_bias; /* borrows */
    int n_logit_bias;
} hp_sampling;

/* Fill p with the defaults named above. */
void hp_sampling_default(hp_sampling *p);

#define HP_MAX_TOP_LOGPROBS 20

/* Logprob information for one sampled token. */
typedef struct hp_token_logprob {
    int32_t token;
    float logprob;
    int n_top;                          /* <= HP_MAX_TOP_LOGPROBS */
    int32_t top_token[HP_MAX_TOP_LOGPROBS];
    float top_logprob[HP_MAX_TOP_LOGPROBS]; /* descending */
} hp_token_logprob;

typedef struct hp_sampler hp_sampler;

/* Copies p (and its logit_bias array). NULL on out-of-memory. */
hp_sampler *hp_sampler_new(const hp_sampling *p, int n_vocab);
void hp_sampler_free(hp_sampler *s); /* accepts NULL */

/* Choose the next token. logits (n_vocab) may be modified. history holds
 * the tokens generated so far for penalties (OpenAI penalties count
 * generated tokens; llama.cpp's repeat penalty also sees the prompt: pass
 * what the caller wants penalised). If lp is non-NULL it receives the
 * logprob of the chosen token and the n_top (<= HP_MAX_TOP_LOGPROBS) most
 * likely tokens. */
int32_t hp_sampler_sample(hp_sampler *s, float *logits,
                          const int32_t *history, int n_history,
                          hp_token_logprob *lp, int n_top);

#endif
