/* sampler.c: owns next-token selection for one sequence (hp_sampler_*).
 *
 * Pipeline (see sampler.h): logit_bias -> penalties -> top_k ->
 * temperature -> softmax -> top_p -> min_p -> draw. Greedy (temperature
 * <= 0) still applies bias and penalties, so a -100 bias bans a token and a
 * repeat penalty works under greedy decoding too, but it never touches the
 * RNG. Logprobs come from the raw logits, read before anything else.
 *
 * The caller's logits are never written: the pipeline works on a private
 * candidate array (one memcpy-sized pass over n_vocab, which is cheap next
 * to the forward pass that produced the logits). Knows nothing of tokens'
 * text, HTTP or the model. Included by nothing; exports sampler.h. */
#include "engine/sampler.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One candidate token. v is a logit until the softmax step and an
 * unnormalised probability after it; both orderings agree. */
typedef struct cand {
    float v;
    int32_t id;
} cand;

struct hp_sampler {
    hp_sampling p;          /* copy; p.logit_bias points at bias below */
    hp_logit_bias *bias;    /* owns: copy of the request's logit_bias */
    int n_vocab;
    uint64_t rng[4];        /* xoshiro256** state */
    cand *c;                /* owns: n_vocab scratch candidates */
    int32_t *count;         /* owns: n_vocab zeroed penalty counters */
};

/* ---- RNG: xoshiro256** seeded through splitmix64 ------------------------ */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t r = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

/* Uniform double in [0, 1) from the top 53 bits. */
static double rng_uniform(uint64_t *s)
{
    return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0);
}

static void rng_seed(uint64_t *s, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        s[i] = splitmix64(&x);
}

/* Seed for requests without one. The counter is the file's only mutable
 * static: it keeps two samplers created in the same clock tick apart, and
 * being atomic it needs no lock. */
static uint64_t unseeded_seed(void)
{
    static _Atomic uint64_t counter;
    struct timespec a = {0, 0}, b = {0, 0};
    clock_gettime(CLOCK_REALTIME, &a);
    clock_gettime(CLOCK_MONOTONIC, &b);
    uint64_t n = atomic_fetch_add(&counter, 1);
    uint64_t x = (uint64_t)a.tv_sec * 1000000007ull ^ (uint64_t)a.tv_nsec;
    x ^= ((uint64_t)b.tv_nsec << 21) ^ (uint64_t)b.tv_sec;
    x ^= n * 0xD1B54A32D192ED03ull;
    return splitmix64(&x);
}

/* ---- settings ----------------------------------------------------------- */

void hp_sampling_default(hp_sampling *p)
{
    if (!p)
        return;
    memset(p, 0, sizeof(*p));
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
    if (!p || n_vocab <= 0)
        return NULL;
    hp_sampler *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->p = *p;
    s->n_vocab = n_vocab;
    s->p.logit_bias = NULL;
    s->p.n_logit_bias = 0;
    if (p->logit_bias && p->n_logit_bias > 0) {
        s->bias = malloc((size_t)p->n_logit_bias * sizeof(*s->bias));
        if (!s->bias)
            goto fail;
        memcpy(s->bias, p->logit_bias,
               (size_t)p->n_logit_bias * sizeof(*s->bias));
        s->p.logit_bias = s->bias;
        s->p.n_logit_bias = p->n_logit_bias;
    }
    s->c = malloc((size_t)n_vocab * sizeof(*s->c));
    s->count = calloc((size_t)n_vocab, sizeof(*s->count));
    if (!s->c || !s->count)
        goto fail;
    rng_seed(s->rng, p->has_seed ? p->seed : unseeded_seed());
    return s;
fail:
    hp_sampler_free(s);
    return NULL;
}

void hp_sampler_free(hp_sampler *s)
{
    if (!s)
        return;
    free(s->bias);
    free(s->c);
    free(s->count);
    free(s);
}

/* ---- logprobs ----------------------------------------------------------- */

/* Strict "a ranks before b": higher value, then lower id. A total order, so
 * selections and sorts give the same set whatever the input order. */
static int better(float av, int32_t aid, float bv, int32_t bid)
{
    return av > bv || (av == bv && aid < bid);
}

/* NaN logits are treated as -inf everywhere: a broken logit must never be
 * chosen nor poison a sum. */
static float clean(float x)
{
    return isnan(x) ? -INFINITY : x;
}

/* log p of logit x given the log-sum-exp; -inf where undefined. */
static float raw_logprob(float x, double lse)
{
    x = clean(x);
    if (isinf(lse) || isinf(x))
        return (x == INFINITY && lse == INFINITY) ? 0.0f : -INFINITY;
    return (float)((double)x - lse);
}

/* log-sum-exp of the raw logits (double accumulator) and the n_top best
 * tokens by insertion into a small sorted array: O(n_vocab) in practice,
 * since after the first few tokens most fail the threshold test. */
static double raw_lse_and_top(const float *logits, int n, hp_token_logprob *lp,
                              int n_top)
{
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) {
        float x = clean(logits[i]);
        if (x > mx)
            mx = x;
    }
    int k = 0;
    for (int i = 0; i < n; i++) {
        float x = clean(logits[i]);
        if (k == n_top && (n_top == 0 || !better(x, i, lp->top_logprob[k - 1],
                                                 lp->top_token[k - 1])))
            continue;
        int j = k < n_top ? k++ : k - 1;
        while (j > 0 && better(x, i, lp->top_logprob[j - 1],
                               lp->top_token[j - 1])) {
            lp->top_logprob[j] = lp->top_logprob[j - 1];
            lp->top_token[j] = lp->top_token[j - 1];
            j--;
        }
        lp->top_logprob[j] = x;
        lp->top_token[j] = i;
    }
    lp->n_top = k;
    double lse;
    if (isinf(mx)) {
        lse = mx; /* all -inf, or some +inf: no finite normaliser */
    } else {
        double sum = 0.0;
        for (int i = 0; i < n; i++)
            sum += (double)expf(clean(logits[i]) - mx);
        lse = (double)mx + log(sum);
    }
    for (int j = 0; j < k; j++)
        lp->top_logprob[j] = raw_logprob(lp->top_logprob[j], lse);
    return lse;
}

/* ---- candidate selection ------------------------------------------------ */

static int cand_cmp(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (better(x->v, x->id, y->v, y->id))
        return -1;
    if (better(y->v, y->id, x->v, x->id))
        return 1;
    return 0;
}

static void cswap(cand *a, cand *b)
{
    cand t = *a;
    *a = *b;
    *b = t;
}

/* Rearrange a[0..n) so that a[0..m) hold its m best (unordered):
 * Hoare-style quickselect with a median-of-three pivot, O(n) expected. */
static void select_best(cand *a, int n, int m)
{
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (cand_cmp(&a[mid], &a[lo]) < 0)
            cswap(&a[mid], &a[lo]);
        if (cand_cmp(&a[hi], &a[lo]) < 0)
            cswap(&a[hi], &a[lo]);
        if (cand_cmp(&a[hi], &a[mid]) < 0)
            cswap(&a[hi], &a[mid]);
        cand piv = a[mid];
        int i = lo, j = hi;
        while (i <= j) {
            while (cand_cmp(&a[i], &piv) < 0)
                i++;
            while (cand_cmp(&piv, &a[j]) < 0)
                j--;
            if (i <= j) {
                cswap(&a[i], &a[j]);
                i++;
                j--;
            }
        }
        /* now a[lo..j] <= piv <= a[i..hi] in rank, j < i */
        if (m - 1 <= j)
            hi = j;
        else if (m - 1 >= i)
            lo = i;
        else
            return;
    }
}

/* Candidate list being narrowed; a[0..sorted) is sorted best-first and
 * every element after it ranks below all of them. */
typedef struct cset {
    cand *a;
    int n;
    int sorted;
} cset;

/* Extend the sorted prefix to at least m elements. Selecting then sorting
 * only what is needed keeps top_k at O(n + k log k) instead of a full
 * O(n log n) sort of a 256k vocabulary. */
static void ensure_sorted(cset *cs, int m)
{
    if (m > cs->n)
        m = cs->n;
    if (m <= cs->sorted)
        return;
    cand *rest = cs->a + cs->sorted;
    int nrest = cs->n - cs->sorted;
    int want = m - cs->sorted;
    if (want < nrest)
        select_best(rest, nrest, want);
    qsort(rest, (size_t)want, sizeof(*rest), cand_cmp);
    cs->sorted = m;
}

/* Top-p: the length of the shortest best-first prefix whose mass reaches
 * target, with that prefix moved to a[0..len) (unordered). A weighted
 * quickselect: partition around a pivot, then continue only on the side
 * that holds the boundary, so it is O(n) expected even when the nucleus is
 * most of a 256k vocabulary (a full sort there costs ~10x more). The set is
 * exactly what sorting and accumulating would keep. */
static int nucleus(cand *a, int n, double target)
{
    if (!(target > 0.0)) {
        int best = 0;
        for (int i = 1; i < n; i++)
            if (better(a[i].v, a[i].id, a[best].v, a[best].id))
                best = i;
        cswap(&a[0], &a[best]);
        return 1;
    }
    /* Invariant: a[0..lo) rank above everything in a[lo..hi) and their
     * mass acc is still below target; the boundary lies in (lo, hi]. */
    int lo = 0, hi = n;
    double acc = 0.0;
    while (hi - lo > 1) {
        int mid = lo + (hi - lo) / 2, last = hi - 1;
        if (cand_cmp(&a[mid], &a[lo]) < 0)
            cswap(&a[mid], &a[lo]);
        if (cand_cmp(&a[last], &a[lo]) < 0)
            cswap(&a[last], &a[lo]);
        if (cand_cmp(&a[mid], &a[last]) < 0)
            cswap(&a[mid], &a[last]); /* median now at last */
        cand piv = a[last];
        int st = lo;
        double m = 0.0;
        for (int i = lo; i < last; i++) {
            if (better(a[i].v, a[i].id, piv.v, piv.id)) {
                cswap(&a[i], &a[st]);
                m += a[st].v;
                st++;
            }
        }
        cswap(&a[st], &a[last]);
        if (acc + m >= target) {
            hi = st; /* st > lo here, since acc < target */
        } else {
            acc += m + a[st].v;
            if (acc >= target)
                return st + 1;
            lo = st + 1;
        }
    }
    return hi;
}

static bool penalties_on(const hp_sampling *p)
{
    return (p->repeat_penalty != 1.0f && p->repeat_penalty > 0.0f) ||
           p->frequency_penalty != 0.0f || p->presence_penalty != 0.0f;
}

/* True when bias or penalties could change some logit this call. */
static bool adjusts(const hp_sampling *p, const int32_t *history,
                    int n_history)
{
    return p->n_logit_bias > 0 ||
           (history && n_history > 0 && p->repeat_last_n != 0 &&
            penalties_on(p));
}

/* Bias and penalties, applied on the candidate array while it is still in
 * token order (c[i].id == i). */
static void adjust_logits(hp_sampler *s, cand *c, const int32_t *history,
                          int n_history)
{
    const hp_sampling *p = &s->p;
    int n = s->n_vocab;
    for (int i = 0; i < p->n_logit_bias; i++) {
        int32_t t = p->logit_bias[i].token;
        if (t >= 0 && t < n && !isnan(p->logit_bias[i].bias))
            c[t].v += p->logit_bias[i].bias;
    }
    bool rep = p->repeat_penalty != 1.0f && p->repeat_penalty > 0.0f;
    if (!history || n_history <= 0 || p->repeat_last_n == 0 ||
        !penalties_on(p))
        return;
    /* repeat_last_n < 0 means the whole history (llama.cpp uses -1 for
     * "context size"). */
    int win = p->repeat_last_n < 0 || p->repeat_last_n > n_history
                  ? n_history
                  : p->repeat_last_n;
    const int32_t *h = history + (n_history - win);
    for (int i = 0; i < win; i++)
        if (h[i] >= 0 && h[i] < n)
            s->count[h[i]]++;
    /* Second pass applies each distinct token once and zeroes its counter,
     * so the counters are clean for the next call without an O(n) memset. */
    for (int i = 0; i < win; i++) {
        int32_t t = h[i];
        if (t < 0 || t >= n || s->count[t] == 0)
            continue;
        float v = c[t].v;
        if (rep)
            v = v > 0.0f ? v / p->repeat_penalty : v * p->repeat_penalty;
        v -= (float)s->count[t] * p->frequency_penalty;
        v -= p->presence_penalty;
        c[t].v = v;
        s->count[t] = 0;
    }
}

/* ---- sampling ----------------------------------------------------------- */

int32_t hp_sampler_sample(hp_sampler *s, float *logits,
                          const int32_t *history, int n_history,
                          hp_token_logprob *lp, int n_top)
{
    if (!s || !logits)
        return -1;
    const hp_sampling *p = &s->p;
    int n = s->n_vocab;
    cand *c = s->c;

    int32_t tok;
    double lse = 0.0;
    if (lp) {
        if (n_top < 0)
            n_top = 0;
        if (n_top > HP_MAX_TOP_LOGPROBS)
            n_top = HP_MAX_TOP_LOGPROBS;
        if (n_top > n)
            n_top = n;
        lse = raw_lse_and_top(logits, n, lp, n_top);
    }

    bool greedy = !(p->temperature > 0.0f);
    if (greedy && !adjusts(p, history, n_history)) {
        /* Fast path: plain argmax on the caller's logits, no copy. */
        int best = 0;
        for (int i = 1; i < n; i++)
            if (clean(logits[i]) > clean(logits[best]))
                best = i;
        tok = best;
        goto done;
    }
    for (int i = 0; i < n; i++) {
        c[i].v = clean(logits[i]);
        c[i].id = i;
    }
    adjust_logits(s, c, history, n_history);

    if (greedy) {
        /* Greedy: plain argmax, lowest id on ties, no RNG. */
        int best = 0;
        for (int i = 1; i < n; i++)
            if (clean(c[i].v) > clean(c[best].v))
                best = i;
        tok = best;
        goto done;
    }

    /* Drop -inf (banned or broken) tokens; keeps every later step finite. */
    cset cs = {c, 0, 0};
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) {
        float v = clean(c[i].v);
        if (v == -INFINITY)
            continue;
        c[cs.n].v = v;
        c[cs.n].id = c[i].id;
        if (v > mx)
            mx = v;
        cs.n++;
    }
    if (cs.n == 0) {
        tok = 0; /* every logit -inf/NaN: nothing sensible to draw */
        goto done;
    }

    if (p->top_k > 0 && p->top_k < cs.n) {
        ensure_sorted(&cs, p->top_k);
        cs.n = p->top_k;
        mx = c[0].v;
    }
    if (mx == INFINITY) {
        /* +inf dominates everything: first such candidate wins. */
        int best = 0;
        for (int i = 1; i < cs.n; i++)
            if (better(c[i].v, c[i].id, c[best].v, c[best].id))
                best = i;
        tok = c[best].id;
        goto done;
    }

    /* Temperature and softmax in one pass: w = exp((v - max) / T), so the
     * best candidate has weight 1 (what min_p compares against). */
    double temp = (double)p->temperature;
    double sum = 0.0;
    for (int i = 0; i < cs.n; i++) {
        float w = (float)exp(((double)c[i].v - (double)mx) / temp);
        c[i].v = w;
        sum += w;
    }

    if (p->top_p < 1.0f)
        cs.n = nucleus(c, cs.n, (double)p->top_p * sum);

    if (p->min_p > 0.0f) {
        /* p >= min_p * p_max  <=>  w >= min_p, since w_max == 1. Stable
         * compaction; the best token always survives for min_p <= 1. */
        int m = 0;
        for (int i = 0; i < cs.n; i++)
            if (c[i].v >= p->min_p)
                c[m++] = c[i];
        if (m == 0) {
            int best = 0;
            for (int i = 1; i < cs.n; i++)
                if (better(c[i].v, c[i].id, c[best].v, c[best].id))
                    best = i;
            c[0] = c[best];
            m = 1;
        }
        cs.n = m;
    }

    /* Renormalise over the survivors and draw. */
    sum = 0.0;
    for (int i = 0; i < cs.n; i++)
        sum += c[i].v;
    double u = rng_uniform(s->rng) * sum;
    double acc = 0.0;
    tok = c[cs.n - 1].id;
    for (int i = 0; i < cs.n; i++) {
        acc += c[i].v;
        if (u < acc) {
            tok = c[i].id;
            break;
        }
    }

done:
    if (lp) {
        lp->token = tok;
        lp->logprob = raw_logprob(logits[tok], lse);
    }
    return tok;
}
