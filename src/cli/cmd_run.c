/* cmd_run.c: `hotpath run`: one completion on the command line, or a
 * prompt/generation speed benchmark with --bench.
 *
 * Generation goes through the same engine as the server, so what `run`
 * prints is what the API returns for the same settings. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/args.h"
#include "engine/engine.h"
#include "model/forward.h"
#include "model/model.h"

static void run_usage(FILE *f)
{
    fprintf(f,
        "usage: hotpath run -m MODEL -p PROMPT [options]\n"
        "       hotpath run -m MODEL --bench [-p N] [-n N] [options]\n\n"
        "Generate a completion of PROMPT and print it to stdout. Prompt and\n"
        "generation speed (tokens/s) go to stderr.\n\n"
        "options:\n"
        "  -m, --model PATH      GGUF model file or Hugging Face folder (required)\n"
        "      --quantize TYPE   q8_0 or q4_0: quantize a Hugging Face folder's\n"
        "                        matrices at load\n"
        "  -p, --prompt TEXT     prompt text (with --bench: prompt length in tokens, default 512)\n"
        "  -f, --file PATH       read the prompt from a file\n"
        "  -n, --n-predict N     tokens to generate (default 128; with --bench 128)\n"
        "      --temp T          temperature, 0 = greedy (default 0.8)\n"
        "      --top-k K         top-k sampling, 0 = off (default 40)\n"
        "      --top-p P         nucleus sampling (default 0.95)\n"
        "      --min-p P         min-p sampling (default 0.05)\n"
        "      --repeat-penalty R  (default 1.0 = off)\n"
        "  -s, --seed S          RNG seed (default: random)\n"
        "  -t, --threads K       threads (default: all cores)\n"
        "  -c, --ctx-size N      context size (default: model's, at most 4096)\n"
        "      --ignore-eos      keep generating past end-of-sequence\n"
        "      --bench           measure prompt processing and generation speed\n"
        "      --reps N          benchmark repetitions, median reported (default 3)\n"
        "  -h, --help            this help\n");
}

/* ---- generation through the engine -------------------------------------- */

typedef struct run_state {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    bool failed;
    char err[256];
    double t_start, t_first, t_end;
    int n_tokens;
    int prompt_tokens;
    hp_finish finish;
} run_state;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Runs on the engine thread: print text as it is released. */
static void on_event(const hp_event *ev, void *ud)
{
    run_state *st = ud;
    switch (ev->kind) {
    case HP_EV_TOKEN:
        if (st->n_tokens == 0)
            st->t_first = now_s();
        st->n_tokens++;
        fwrite(ev->text, 1, ev->len, stdout);
        fflush(stdout);
        break;
    case HP_EV_CHOICE_END:
        fwrite(ev->text, 1, ev->len, stdout);
        st->finish = ev->finish;
        break;
    case HP_EV_END:
    case HP_EV_ERROR:
        pthread_mutex_lock(&st->mu);
        st->t_end = now_s();
        if (ev->kind == HP_EV_ERROR) {
            st->failed = true;
            snprintf(st->err, sizeof st->err, "%s", ev->message);
        } else {
            st->prompt_tokens = ev->prompt_tokens;
        }
        st->done = true;
        pthread_cond_signal(&st->cv);
        pthread_mutex_unlock(&st->mu);
        break;
    }
}

static char *read_file(const char *path, size_t *len)
{
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        errno = EISDIR;
        return NULL;
    }
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf) {
        buf[n] = 0;
        *len = n;
    }
    return buf;
}

static int generate(hp_model *m, const hp_engine_opts *eo, const char *prompt,
                    size_t prompt_len, const hp_gen_params *gp)
{
    hp_errbuf eb = {{0}};
    int cap = (int)prompt_len + 8;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)cap);
    if (!ids) {
        fprintf(stderr, "hotpath run: out of memory\n");
        return 1;
    }
    int n = hp_tokenize(m->vocab, prompt, prompt_len,
                        hp_vocab_add_bos(m->vocab), false, ids, cap);
    if (n < 0 || n > cap) {
        fprintf(stderr, "hotpath run: tokenizing the prompt failed\n");
        free(ids);
        return 1;
    }
    hp_engine *e = NULL;
    if (hp_engine_new(m, eo, &e, &eb) != HP_OK) {
        fprintf(stderr, "hotpath run: %s\n", eb.msg);
        free(ids);
        return 1;
    }
    run_state st = {.mu = PTHREAD_MUTEX_INITIALIZER,
                    .cv = PTHREAD_COND_INITIALIZER};
    st.t_start = now_s();
    hp_request *req = NULL;
    if (hp_engine_submit(e, ids, n, gp, on_event, &st, &req, &eb) != HP_OK) {
        fprintf(stderr, "hotpath run: %s\n", eb.msg);
        hp_engine_free(e);
        free(ids);
        return 1;
    }
    pthread_mutex_lock(&st.mu);
    while (!st.done)
        pthread_cond_wait(&st.cv, &st.mu);
    pthread_mutex_unlock(&st.mu);
    hp_request_release(req);
    hp_engine_free(e);
    free(ids);
    fputc('\n', stdout);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "hotpath run: writing the output failed: %s\n",
                strerror(errno));
        return 1;
    }
    if (st.failed) {
        fprintf(stderr, "hotpath run: %s\n", st.err);
        return 1;
    }
    double t_pp = st.t_first - st.t_start;
    double t_tg = st.t_end - st.t_first;
    fprintf(stderr,
            "\nprompt: %d tokens in %.3f s (%.1f tokens/s)\n"
            "generation: %d tokens in %.3f s (%.1f tokens/s), finish: %s\n",
            st.prompt_tokens, t_pp, t_pp > 0 ? st.prompt_tokens / t_pp : 0.0,
            st.n_tokens, t_tg,
            st.n_tokens > 1 && t_tg > 0 ? (st.n_tokens - 1) / t_tg : 0.0,
            hp_finish_name(st.finish) ? hp_finish_name(st.finish) : "-");
    return 0;
}

/* ---- --bench: forward-pass speed, as llama-bench measures it ------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int bench(hp_model *m, int n_prompt, int n_gen, int threads, int reps)
{
    hp_errbuf eb = {{0}};
    int n_ctx = n_prompt + n_gen + 1;
    hp_runner *r = hp_runner_new(m, n_prompt > 0 ? n_prompt : 1, threads);
    /* prefix caching off: every repetition must compute everything */
    hp_kvpool *pool = hp_kvpool_new(m, hp_kv_blocks_for(n_ctx), false);
    hp_seq *s = pool ? hp_seq_new(pool, n_ctx) : NULL;
    float *logits = malloc(sizeof(float) * (size_t)m->hp.n_vocab);
    int32_t *toks = malloc(sizeof(int32_t) * (size_t)(n_prompt + 1));
    if (!r || !pool || !s || !logits || !toks) {
        fprintf(stderr, "hotpath run --bench: out of memory\n");
        return 1;
    }
    /* token ids do not change the cost; spread them over the vocabulary */
    for (int i = 0; i < n_prompt + 1; i++)
        toks[i] = (int32_t)((i * 7919u + 3u) % (unsigned)m->hp.n_vocab);
    double *pp = calloc((size_t)reps, sizeof(double));
    double *tg = calloc((size_t)reps, sizeof(double));
    if (!pp || !tg)
        return 1;
    char th[16];
    snprintf(th, sizeof th, "%d", threads);
    fprintf(stderr, "bench: %s, %s threads, kernels %s, pp %d, tg %d, %d reps\n",
            m->name, threads > 0 ? th : "all", hp_kernels_impl(), n_prompt,
            n_gen, reps);
    for (int rep = -1; rep < reps; rep++) { /* rep -1 warms caches */
        hp_seq_free(s);
        s = hp_seq_new(pool, n_ctx);
        if (!s)
            return 1;
        double t0 = now_s();
        if (n_prompt > 0) {
            hp_batch_item it = {s, toks, n_prompt, logits};
            if (hp_forward(r, &it, 1, &eb) != HP_OK) {
                fprintf(stderr, "hotpath run --bench: %s\n", eb.msg);
                return 1;
            }
        }
        double t1 = now_s();
        hp_seq_free(s);
        s = hp_seq_new(pool, n_ctx);
        if (!s)
            return 1;
        int32_t tok = toks[0];
        for (int i = 0; i < n_gen; i++) {
            hp_batch_item it = {s, &tok, 1, logits};
            if (hp_forward(r, &it, 1, &eb) != HP_OK) {
                fprintf(stderr, "hotpath run --bench: %s\n", eb.msg);
                return 1;
            }
        }
        double t2 = now_s();
        if (rep >= 0) {
            pp[rep] = n_prompt > 0 ? n_prompt / (t1 - t0) : 0;
            tg[rep] = n_gen > 0 ? n_gen / (t2 - t1) : 0;
            fprintf(stderr, "  rep %d: pp %.2f t/s, tg %.2f t/s\n", rep,
                    pp[rep], tg[rep]);
        }
    }
    qsort(pp, (size_t)reps, sizeof(double), cmp_double);
    qsort(tg, (size_t)reps, sizeof(double), cmp_double);
    double gb = (double)hp_model_weight_bytes(m) / 1e9;
    printf("model: %s\nweights: %.3f GB\nkernels: %s\n", m->name, gb,
           hp_kernels_impl());
    printf("pp%d: %.2f tokens/s (median of %d)\n", n_prompt, pp[reps / 2],
           reps);
    printf("tg%d: %.2f tokens/s (median of %d), %.2f GB/s of weights\n",
           n_gen, tg[reps / 2], reps, tg[reps / 2] * gb);
    free(pp);
    free(tg);
    free(toks);
    free(logits);
    hp_seq_free(s);
    hp_kvpool_free(pool);
    hp_runner_free(r);
    return 0;
}

/* ---- entry -------------------------------------------------------------- */

int hp_cmd_run(int argc, char **argv)
{
    enum { O_TEMP = 1000, O_TOPK, O_TOPP, O_MINP, O_REP, O_BENCH, O_REPS,
           O_IGNEOS, O_QUANT };
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},
        {"prompt", required_argument, 0, 'p'},
        {"file", required_argument, 0, 'f'},
        {"n-predict", required_argument, 0, 'n'},
        {"seed", required_argument, 0, 's'},
        {"threads", required_argument, 0, 't'},
        {"ctx-size", required_argument, 0, 'c'},
        {"temp", required_argument, 0, O_TEMP},
        {"top-k", required_argument, 0, O_TOPK},
        {"top-p", required_argument, 0, O_TOPP},
        {"min-p", required_argument, 0, O_MINP},
        {"repeat-penalty", required_argument, 0, O_REP},
        {"bench", no_argument, 0, O_BENCH},
        {"reps", required_argument, 0, O_REPS},
        {"ignore-eos", no_argument, 0, O_IGNEOS},
        {"quantize", required_argument, 0, O_QUANT},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *model = NULL, *prompt = NULL, *file = NULL;
    long n_predict = -1, threads = 0, ctx = 0, reps = 3, top_k = 40;
    double temp = 0.8, top_p = 0.95, min_p = 0.05, rep_pen = 1.0;
    bool do_bench = false, ignore_eos = false, has_seed = false;
    unsigned long long seed = 0;
    hp_model_opts mopts = {0};
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "m:p:f:n:s:t:c:h", opts, NULL)) != -1) {
        bool ok = true;
        switch (c) {
        case 'm': model = optarg; break;
        case 'p': prompt = optarg; break;
        case 'f': file = optarg; break;
        case 'n': ok = hp_arg_long(optarg, 0, 1 << 20, &n_predict); break;
        case 's': ok = hp_arg_u64(optarg, &seed); has_seed = ok; break;
        case 't': ok = hp_arg_long(optarg, 1, 1024, &threads); break;
        case 'c': ok = hp_arg_long(optarg, 1, 1 << 20, &ctx); break;
        case O_TEMP: ok = hp_arg_double(optarg, 0, 100, &temp); break;
        case O_TOPK: ok = hp_arg_long(optarg, 0, 1 << 24, &top_k); break;
        case O_TOPP: ok = hp_arg_double(optarg, 0, 1, &top_p); break;
        case O_MINP: ok = hp_arg_double(optarg, 0, 1, &min_p); break;
        case O_REP: ok = hp_arg_double(optarg, 0.0001, 100, &rep_pen); break;
        case O_BENCH: do_bench = true; break;
        case O_REPS: ok = hp_arg_long(optarg, 1, 1000, &reps); break;
        case O_IGNEOS: ignore_eos = true; break;
        case O_QUANT: ok = hp_model_parse_quantize(optarg, &mopts.quantize);
            break;
        case 'h': run_usage(stdout); return 0;
        default:
            fprintf(stderr, "hotpath run: unknown or incomplete option '%s'\n",
                    argv[optind - 1]);
            run_usage(stderr);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "hotpath run: invalid value '%s' for --%s\n",
                    optarg, hp_arg_name(opts, c));
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "hotpath run: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!model) {
        fprintf(stderr, "hotpath run: -m MODEL is required\n");
        run_usage(stderr);
        return 2;
    }
    if (prompt && file) {
        fprintf(stderr, "hotpath run: give -p TEXT or -f FILE, not both\n");
        return 2;
    }
    if (!do_bench && !prompt && !file) {
        fprintf(stderr, "hotpath run: give a prompt with -p TEXT or -f FILE\n");
        return 2;
    }

    hp_kernels_init();
    hp_errbuf eb = {{0}};
    hp_model *m = NULL;
    if (hp_model_load_opts(model, &mopts, &m, &eb) != HP_OK) {
        fprintf(stderr, "hotpath run: %s\n", eb.msg);
        return 1;
    }
    int rc;
    if (do_bench) {
        long np = 512;
        if (prompt && !hp_arg_long(prompt, 0, 1 << 16, &np)) {
            fprintf(stderr, "hotpath run --bench: -p takes a token count\n");
            hp_model_free(m);
            return 2;
        }
        rc = bench(m, (int)np, n_predict < 0 ? 128 : (int)n_predict,
                   (int)threads, (int)reps);
        hp_model_free(m);
        return rc;
    }

    char *text = NULL;
    size_t text_len = 0;
    if (file) {
        text = read_file(file, &text_len);
        if (!text) {
            fprintf(stderr, "hotpath run: cannot read %s: %s\n", file,
                    strerror(errno));
            hp_model_free(m);
            return 1;
        }
    }
    hp_engine_opts eo;
    hp_engine_opts_default(&eo, m);
    if (ctx > 0)
        eo.n_ctx = (int)ctx;
    eo.n_threads = (int)threads;
    eo.parallel = 1;
    hp_gen_params gp;
    hp_gen_params_default(&gp);
    gp.sampling.temperature = (float)temp;
    gp.sampling.top_k = (int)top_k;
    gp.sampling.top_p = (float)top_p;
    gp.sampling.min_p = (float)min_p;
    gp.sampling.repeat_penalty = (float)rep_pen;
    gp.sampling.has_seed = has_seed;
    gp.sampling.seed = seed;
    gp.ignore_eos = ignore_eos;
    const char *ptext = text ? text : prompt;
    size_t plen = text ? text_len : strlen(prompt);
    if (n_predict < 0)
        n_predict = 128;
    if (n_predict == 0) {
        fprintf(stderr, "hotpath run: -n must be at least 1\n");
        free(text);
        hp_model_free(m);
        return 2;
    }
    gp.max_tokens = (int)n_predict;
    rc = generate(m, &eo, ptext, plen, &gp);
    free(text);
    hp_model_free(m);
    return rc;
}
