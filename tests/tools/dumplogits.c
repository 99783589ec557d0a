/* dumplogits.c: run the forward pass over given token ids and print what
 * the reference tests compare.
 *
 *   dumplogits [--threads N] MODEL.gguf TOKENS...
 *       all tokens as one prompt; prints the last token's logits, one
 *       float per line (%.9g)
 *   dumplogits --incremental MODEL.gguf TOKENS...
 *       the same, feeding tokens one call at a time
 *   dumplogits --greedy N MODEL.gguf TOKENS...
 *       prompt, then N greedy (argmax) tokens; prints their ids on one line
 *   dumplogits --batch-check MODEL.gguf TOKENS...
 *       checks that the prompt's logits, and those of 4 greedy decode steps,
 *       are bit-identical when the sequence is evaluated alone and when
 *       batched with another sequence (in both orders, prompt and decode
 *       mixed); prints "batch-invariant" and exits 0, or the first
 *       difference and exits 1
 *   --quantize q8_0|q4_0 (with any of the above)
 *       quantize a Hugging Face folder's matrices at load
 *   MODEL may be a GGUF file or a Hugging Face folder. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/forward.h"

typedef struct ctx {
    hp_model *m;
    hp_runner *r;
    hp_kvpool *pool;
    int V;
} ctx;

static int die(const char *what, hp_err e, const hp_errbuf *eb)
{
    fprintf(stderr, "dumplogits: %s: %s: %s\n", what, hp_strerror(e),
            eb ? eb->msg : "");
    return 1;
}

static int argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

/* Feed toks to seq, n_per_call at a time (0 = all at once), leaving the
 * last logits in out. */
static hp_err feed(ctx *c, hp_seq *s, const int32_t *toks, int n,
                   int n_per_call, float *out, hp_errbuf *eb)
{
    int step = n_per_call > 0 ? n_per_call : n;
    for (int i = 0; i < n; i += step) {
        int k = n - i < step ? n - i : step;
        hp_batch_item it = {s, toks + i, k, out};
        hp_err e = hp_forward(c->r, &it, 1, eb);
        if (e != HP_OK)
            return e;
    }
    return HP_OK;
}

static int same(const float *a, const float *b, int n, const char *what)
{
    if (memcmp(a, b, (size_t)n * sizeof(float)) == 0)
        return 1;
    for (int i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0) {
            printf("MISMATCH %s: logit %d: %.9g vs %.9g\n", what, i, a[i],
                   b[i]);
            break;
        }
    return 0;
}

/* Solo run of the prompt and 4 greedy steps, then the same batched with a
 * second sequence (other tokens, other length), in both item orders. */
static int batch_check(ctx *c, const int32_t *toks, int n, hp_errbuf *eb)
{
    enum { STEPS = 4 };
    int V = c->V;
    float *solo = malloc((size_t)V * (STEPS + 1) * sizeof(float));
    float *got = malloc((size_t)V * sizeof(float));
    float *other = malloc((size_t)V * sizeof(float));
    int32_t next[STEPS];
    int ok = 1;
    hp_seq *a = hp_seq_new(c->pool, n + STEPS + 16);
    hp_seq *b = hp_seq_new(c->pool, n + STEPS + 16);
    if (!solo || !got || !other || !a || !b)
        return die("batch-check", HP_ERR_NOMEM, NULL);
    /* solo */
    hp_err e = feed(c, a, toks, n, 0, solo, eb);
    for (int s = 0; e == HP_OK && s < STEPS; s++) {
        next[s] = argmax(solo + (size_t)V * s, V);
        e = feed(c, a, &next[s], 1, 0, solo + (size_t)V * (s + 1), eb);
    }
    if (e != HP_OK)
        return die("batch-check solo", e, eb);
    /* The other sequence: the prompt reversed plus a few more tokens. */
    int nb = n + 3;
    int32_t *otoks = malloc((size_t)nb * sizeof *otoks);
    if (!otoks)
        return die("batch-check", HP_ERR_NOMEM, NULL);
    for (int i = 0; i < nb; i++)
        otoks[i] = i < n ? toks[n - 1 - i] : (int32_t)((7 * i + 3) % V);
    for (int order = 0; order < 2 && ok; order++) {
        /* fresh sequences: the pool has prefix caching off, so nothing
         * computed above is reused */
        hp_seq_free(a);
        hp_seq_free(b);
        a = hp_seq_new(c->pool, n + STEPS + 16);
        b = hp_seq_new(c->pool, n + STEPS + 16);
        if (!a || !b)
            return die("batch-check", HP_ERR_NOMEM, NULL);
        /* Prompt of a batched with the first 2 tokens of b. */
        hp_batch_item it[2] = {{a, toks, n, got}, {b, otoks, 2, other}};
        if (order) {
            hp_batch_item t = it[0];
            it[0] = it[1];
            it[1] = t;
        }
        e = hp_forward(c->r, it, 2, eb);
        if (e != HP_OK)
            return die("batch-check batched", e, eb);
        ok = same(solo, got, V, "prompt batched");
        /* Decode steps of a batched with b's remaining prompt, chunked. */
        int bpos = 2;
        for (int s = 0; s < STEPS && ok; s++) {
            int k = bpos < nb ? (nb - bpos < 2 ? nb - bpos : 2) : 1;
            const int32_t *bt = bpos < nb ? otoks + bpos : &next[0];
            hp_batch_item d[2] = {{a, &next[s], 1, got}, {b, bt, k, other}};
            if (order) {
                hp_batch_item t = d[0];
                d[0] = d[1];
                d[1] = t;
            }
            e = hp_forward(c->r, d, 2, eb);
            if (e != HP_OK)
                return die("batch-check decode", e, eb);
            bpos += k;
            ok = same(solo + (size_t)V * (s + 1), got, V, "decode batched");
        }
    }
    if (ok)
        printf("batch-invariant\n");
    free(otoks);
    hp_seq_free(a);
    hp_seq_free(b);
    free(solo);
    free(got);
    free(other);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    int incremental = 0, greedy = -1, check = 0, threads = 0, i = 1;
    hp_model_opts mo = {0};
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--incremental") == 0) {
            incremental = 1;
        } else if (strcmp(argv[i], "--batch-check") == 0) {
            check = 1;
        } else if (strcmp(argv[i], "--greedy") == 0 && i + 1 < argc) {
            greedy = (int)strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--quantize") == 0 && i + 1 < argc) {
            if (!hp_model_parse_quantize(argv[++i], &mo.quantize)) {
                fprintf(stderr, "dumplogits: --quantize q8_0|q4_0\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            threads = (int)strtol(argv[++i], NULL, 10);
        } else {
            break;
        }
    }
    if (argc - i < 2) {
        fprintf(stderr, "usage: dumplogits [--incremental | --greedy N | "
                        "--batch-check] [--threads N] MODEL.gguf TOKENS...\n");
        return 2;
    }
    const char *path = argv[i++];
    int n = argc - i;
    int32_t *toks = malloc((size_t)n * sizeof *toks);
    if (!toks)
        return die("tokens", HP_ERR_NOMEM, NULL);
    for (int j = 0; j < n; j++) {
        char *end;
        long v = strtol(argv[i + j], &end, 10);
        if (*end != '\0' || v < 0 || v > INT32_MAX) {
            fprintf(stderr, "dumplogits: bad token id '%s'\n", argv[i + j]);
            return 2;
        }
        toks[j] = (int32_t)v;
    }
    hp_kernels_init();
    hp_errbuf eb = {{0}};
    ctx c = {0};
    hp_err e = hp_model_load_opts(path, &mo, &c.m, &eb);
    if (e != HP_OK)
        return die("load", e, &eb);
    c.V = c.m->hp.n_vocab;
    int max_tok = n > 16 ? n + 16 : 32;
    c.r = hp_runner_new(c.m, max_tok, threads);
    int cap = n + (greedy > 0 ? greedy : 0) + 16;
    /* room for the main sequence and batch-check's two */
    c.pool = hp_kvpool_new(c.m, 3 * hp_kv_blocks_for(cap + 32), false);
    hp_seq *s = c.pool ? hp_seq_new(c.pool, cap) : NULL;
    float *logits = malloc((size_t)c.V * sizeof(float));
    if (!c.r || !s || !logits)
        return die("setup", HP_ERR_NOMEM, NULL);
    int rc = 0;
    if (check) {
        rc = batch_check(&c, toks, n, &eb);
    } else {
        e = feed(&c, s, toks, n, incremental ? 1 : 0, logits, &eb);
        if (e != HP_OK)
            return die("forward", e, &eb);
        if (greedy >= 0) {
            for (int g = 0; g < greedy; g++) {
                int32_t t = argmax(logits, c.V);
                printf("%s%d", g ? " " : "", (int)t);
                e = feed(&c, s, &t, 1, 0, logits, &eb);
                if (e != HP_OK)
                    return die("forward", e, &eb);
            }
            printf("\n");
        } else {
            for (int v = 0; v < c.V; v++)
                printf("%.9g\n", logits[v]);
        }
    }
    free(logits);
    free(toks);
    hp_seq_free(s);
    hp_kvpool_free(c.pool);
    hp_runner_free(c.r);
    hp_model_free(c.m);
    return rc;
}
