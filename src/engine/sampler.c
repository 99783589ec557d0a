/* sampler.c: placeholder (real implementation in progress by sampler). */
#include "engine/sampler.h"

#include <stdlib.h>

struct hp_sampler {
    int n_vocab;
};

void hp_sampling_default(hp_sampling *p)
{
    p->temperature = 1.0f;
    p->top_k = 0;
    p->top_p = 1.0f;
    p->min_p = 0.0f;
    p->frequency_penalty = 0.0f;
    p->presence_penalty = 0.0f;
    p->repeat_penalty = 1.0f;
    p->repeat_last_n = 64;
    p->seed = 0;
    p->has_seed = false;
    p->logit_bias = NULL;
    p->n_logit_bias = 0;
}

hp_sampler *hp_sampler_new(const hp_sampling *p, int n_vocab)
{
    (void)p;
    hp_sampler *s = calloc(1, sizeof(*s));
    if (s)
        s->n_vocab = n_vocab;
    return s;
}

void hp_sampler_free(hp_sampler *s)
{
    free(s);
}

int32_t hp_sampler_sample(hp_sampler *s, float *logits,
                          const int32_t *history, int n_history,
                          hp_token_logprob *lp, int n_top)
{
    (void)history;
    (void)n_history;
    (void)n_top;
    int32_t best = 0;
    for (int i = 1; i < s->n_vocab; i++)
        if (logits[i] > logits[best])
            best = i;
    if (lp) {
        lp->token = best;
        lp->logprob = 0.0f;
        lp->n_top = 0;
    }
    return best;
}
