/* bench_prompt.c: seeded RNG and synthetic prompt text (see bench_prompt.h).
 *
 * The word list is ours: short lowercase words that are among the most
 * frequent in English text, which is why tokenizers give them one token
 * each with a leading space. Words that could merge with a neighbour (no
 * punctuation, no digits) are avoided. */
#include "cli/bench_prompt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const words[] = {
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "as",
    "was", "with", "be", "by", "on", "not", "he", "this", "are", "or",
    "his", "from", "at", "which", "but", "have", "an", "had", "they", "you",
    "were", "their", "one", "all", "we", "can", "her", "has", "there", "been",
    "if", "more", "when", "will", "would", "who", "so", "no", "she", "other",
    "its", "may", "these", "what", "them", "than", "some", "him", "time", "into",
    "only", "do", "could", "new", "about", "two", "first", "then", "also", "any",
    "like", "my", "made", "well", "over", "such", "our", "most", "me", "even",
    "way", "many", "must", "after", "did", "just", "those", "where", "through", "long",
    "years", "should", "people", "because", "each", "much", "before", "good", "very", "how",
    "great", "make", "still", "see", "own", "work", "last", "life", "being", "under",
    "never", "day", "same", "another", "know", "while", "might", "us", "old", "off",
    "come", "since", "go", "against", "came", "right", "used", "take", "three", "states",
    "himself", "few", "house", "use", "during", "without", "again", "place", "around", "however",
    "home", "small", "found", "thought", "went", "say", "part", "once", "general", "high",
    "upon", "school", "every", "does", "got", "united", "left", "number", "course", "war",
    "until", "always", "away", "something", "fact", "though", "water", "less", "public", "put",
    "think", "almost", "hand", "enough", "far", "took", "head", "yet", "government", "system",
    "better", "set", "told", "nothing", "night", "end", "why", "called", "both", "eyes",
    "find", "going", "look", "asked", "later", "knew", "point", "next", "program", "city",
    "business", "give", "group", "toward", "young", "days", "let", "room", "president", "side",
    "social", "given", "present", "several", "order", "national", "possible", "rather", "second", "face",
    "per", "among", "form", "important", "often", "things", "looked", "early", "white", "case",
    "john", "become", "large", "big", "need", "four", "within", "felt", "along", "children",
    "saw", "best", "church", "ever", "least", "power", "development", "light", "thing", "seemed",
};

#define N_WORDS (sizeof words / sizeof words[0])

size_t hp_bench_words(const char *const **out)
{
    *out = words;
    return N_WORDS;
}

void hp_bench_rng_seed(hp_bench_rng *r, uint64_t seed)
{
    r->s = seed;
}

uint64_t hp_bench_rng_next(hp_bench_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double hp_bench_rng_unit(hp_bench_rng *r)
{
    return (double)(hp_bench_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

double hp_bench_rng_exp(hp_bench_rng *r, double mean)
{
    /* 1 - u is in (0, 1], so the log is finite. */
    return -mean * log(1.0 - hp_bench_rng_unit(r));
}

/* Append n words drawn from r at p; returns the new end. */
static char *put_words(char *p, hp_bench_rng *r, int n)
{
    for (int i = 0; i < n; i++) {
        const char *w = words[hp_bench_rng_next(r) % N_WORDS];
        size_t len = strlen(w);
        *p++ = ' ';
        memcpy(p, w, len);
        p += len;
    }
    return p;
}

char *hp_bench_prompt_make(uint64_t seed, uint64_t index, int tokens,
                           int shared)
{
    if (tokens < 0)
        tokens = 0;
    if (shared > tokens)
        shared = tokens;
    if (shared < 0)
        shared = 0;
    size_t maxw = 0;
    for (size_t i = 0; i < N_WORDS; i++)
        if (strlen(words[i]) > maxw)
            maxw = strlen(words[i]);
    char *s = malloc((size_t)tokens * (maxw + 1) + 1);
    if (!s)
        return NULL;
    hp_bench_rng r;
    /* The shared prefix depends on the seed only; the tail mixes in the
     * request index through a second splitmix step so nearby indexes
     * give unrelated streams. */
    hp_bench_rng_seed(&r, seed ^ 0x5bd1e995a3c1b2d4ull);
    char *p = put_words(s, &r, shared);
    hp_bench_rng_seed(&r, seed);
    uint64_t mix = hp_bench_rng_next(&r) ^ (index * 0xd6e8feb86659fd93ull);
    hp_bench_rng_seed(&r, mix);
    p = put_words(p, &r, tokens - shared);
    *p = 0;
    return s;
}
