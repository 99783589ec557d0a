/* bench_prompt.h: seeded random numbers and synthetic prompts for
 * `hotpath bench`.
 *
 * The server's tokenizer is unknown, so a prompt of P "tokens" is P words
 * drawn from a fixed list of short, common English words, each written
 * with a leading space: in every BPE and SentencePiece vocabulary we know
 * (Llama 2/3, SmolLM, Qwen, Mistral) each such word is a single token, so
 * the server sees P tokens plus its own BOS/template overhead. Included by
 * the bench files only; knows nothing of HTTP. */
#ifndef HP_BENCH_PROMPT_H
#define HP_BENCH_PROMPT_H

#include <stddef.h>
#include <stdint.h>

/* splitmix64 state: one per stream of numbers, never global. */
typedef struct hp_bench_rng {
    uint64_t s;
} hp_bench_rng;

void hp_bench_rng_seed(hp_bench_rng *r, uint64_t seed);
uint64_t hp_bench_rng_next(hp_bench_rng *r);
/* Uniform in [0, 1). */
double hp_bench_rng_unit(hp_bench_rng *r);
/* Exponential with the given mean (inter-arrival times of a Poisson
 * process of rate 1/mean). */
double hp_bench_rng_exp(hp_bench_rng *r, double mean);

/* Build the prompt of request `index`: the first `shared` words are the
 * same for every request of a run (drawn from seed), the remaining
 * `tokens - shared` words are drawn from (seed, index). Returns a
 * malloc'd NUL-terminated string the caller owns, or NULL on
 * out-of-memory. shared is clamped to tokens. */
char *hp_bench_prompt_make(uint64_t seed, uint64_t index, int tokens,
                           int shared);

/* The word list itself (without the leading space), so `hotpath synth`
 * can give its synthetic vocabulary one token per word: prompts then have
 * the intended length on synthetic models too. Returns the count. */
size_t hp_bench_words(const char *const **out);

#endif
