/* cmd_bench.c: `hotpath bench`: load-test any OpenAI-compatible server
 * (hotpath, llama.cpp's llama-server, vLLM) and report latency and
 * throughput.
 *
 * Owns the command line, the progress line, the result table and the
 * --json file; the traffic itself is bench_run.c's. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/bench_run.h"
#include "cli/cli.h"

static void bench_usage(FILE *f)
{
    fprintf(f,
        "usage: hotpath bench --url URL --model NAME [options]\n\n"
        "Send synthetic completion requests to an OpenAI-compatible server and\n"
        "report latency (TTFT, ITL, TPOT, end-to-end) and throughput.\n\n"
        "options:\n"
        "      --url URL          server base URL, e.g. http://127.0.0.1:8080 (required)\n"
        "      --model NAME       \"model\" field of each request (required)\n"
        "      --concurrency N    closed loop: N clients, each sending its next\n"
        "                         request when the previous one ends (default 1)\n"
        "      --rate R           open loop: Poisson arrivals, R requests/s on\n"
        "                         average, regardless of completions (at most %d\n"
        "                         in flight); excludes --concurrency\n"
        "      --requests N       requests to send (default 100)\n"
        "      --prompt-tokens P  prompt length in tokens (default 128): P common\n"
        "                         English words, about one token each\n"
        "      --max-tokens M     max_tokens of each request (default 128); requests\n"
        "                         also send temperature 0 and ignore_eos\n"
        "      --shared-prefix T  first T prompt tokens identical across requests\n"
        "                         (default 0), to exercise prefix caching\n"
        "      --stream           stream replies (SSE); needed for TTFT, ITL, TPOT.\n"
        "                         Without it TTFT = end-to-end latency\n"
        "      --endpoint E       completions (default) or chat\n"
        "      --slo-ttft MS      goodput objective: TTFT <= MS\n"
        "      --slo-itl MS       goodput objective: a request meets it when the\n"
        "                         mean of its own inter-token gaps is <= MS\n"
        "                         (needs --stream)\n"
        "      --json FILE        also write the results as JSON to FILE\n"
        "      --seed S           seed for prompts and arrivals (default 1)\n"
        "      --timeout S        per-request timeout in seconds (default 600)\n"
        "      --api-key KEY      send 'Authorization: Bearer KEY'\n"
        "  -h, --help             this help\n\n"
        "Output tokens come from the reply's usage.completion_tokens (streams ask\n"
        "for it with stream_options.include_usage), else from the number of\n"
        "non-empty content chunks. ITL is every gap between successive content\n"
        "chunks of all requests; TPOT = (e2e - TTFT) / (output tokens - 1) per\n"
        "request. Goodput counts successful requests meeting every given SLO,\n"
        "per second. Errors (non-2xx, transport failures, timeouts) are counted\n"
        "and the run goes on.\n\n"
        "exit status: 0 run completed (even with some errors), 1 nothing\n"
        "succeeded or the server is unreachable, 2 bad arguments.\n",
        HP_BENCH_MAX_INFLIGHT);
}

/* Raised by SIGINT so the run stops and still reports; a signal handler
 * can only talk through a global. */
static volatile sig_atomic_t g_stop;

static void on_sigint(int sig)
{
    (void)sig;
    g_stop = 1;
}

/* ---- progress ------------------------------------------------------------- */

typedef struct progress_state {
    bool tty;
    double last_print;   /* elapsed at the last line */
    long last_done;
    double last_t;       /* elapsed at the last rate sample */
    double cur_rps;
    bool printed;
} progress_state;

static void on_progress(const hp_bench_progress *p, void *ud)
{
    progress_state *ps = ud;
    bool final = p->done >= p->total;
    if (p->elapsed_s - ps->last_t >= 1.0 || final) {
        double dt = p->elapsed_s - ps->last_t;
        if (dt > 0)
            ps->cur_rps = (double)(p->done - ps->last_done) / dt;
        ps->last_done = p->done;
        ps->last_t = p->elapsed_s;
    }
    double every = ps->tty ? 0.25 : 5.0;
    if (!final && p->elapsed_s - ps->last_print < every)
        return;
    if (final && !ps->tty)
        return;
    ps->last_print = p->elapsed_s;
    fprintf(stderr, "%s%ld/%ld done, %ld errors, %ld in flight, %.1f s, %.2f req/s%s",
            ps->tty ? "\r" : "", p->done, p->total, p->errors, p->inflight,
            p->elapsed_s, ps->cur_rps, ps->tty ? "   " : "\n");
    ps->printed = true;
    fflush(stderr);
}

/* ---- report --------------------------------------------------------------- */

static void row(const char *name, const hp_bench_summary *s)
{
    if (!s->valid) {
        printf("  %-6s %10s %10s %10s %10s %8s\n", name, "-", "-", "-", "-",
               "0");
        return;
    }
    printf("  %-6s %10.2f %10.2f %10.2f %10.2f %8zu\n", name, s->mean, s->p50,
           s->p95, s->p99, s->n);
}

static json_t *summary_json(const hp_bench_summary *s)
{
    if (!s->valid)
        return json_pack("{s:n,s:n,s:n,s:n,s:i}", "mean", "p50", "p95", "p99",
                         "n", 0);
    return json_pack("{s:f,s:f,s:f,s:f,s:I}", "mean", s->mean, "p50", s->p50,
                     "p95", s->p95, "p99", s->p99, "n", (json_int_t)s->n);
}

static json_t *config_json(const hp_bench_config *c)
{
    json_t *o = json_pack(
        "{s:s,s:s,s:s,s:b,s:I,s:i,s:i,s:i,s:I,s:f}", "url", c->url, "model",
        c->model, "endpoint",
        c->endpoint == HP_BENCH_CHAT ? "chat" : "completions", "stream",
        c->stream, "requests", (json_int_t)c->requests, "prompt_tokens",
        c->prompt_tokens, "max_tokens", c->max_tokens, "shared_prefix",
        c->shared_prefix, "seed", (json_int_t)c->seed, "timeout_s",
        c->timeout_s);
    if (!o)
        return NULL;
    json_object_set_new(o, "concurrency", c->concurrency > 0
                                              ? json_integer(c->concurrency)
                                              : json_null());
    json_object_set_new(o, "rate", c->rate > 0 ? json_real(c->rate)
                                               : json_null());
    json_object_set_new(o, "slo_ttft_ms", c->slo_ttft_ms > 0
                                              ? json_real(c->slo_ttft_ms)
                                              : json_null());
    json_object_set_new(o, "slo_itl_ms", c->slo_itl_ms > 0
                                             ? json_real(c->slo_itl_ms)
                                             : json_null());
    return o;
}

static bool write_json(const char *path, const hp_bench_config *c,
                       const hp_bench_result *r, const hp_bench_summary sm[4])
{
    double d = r->duration_s > 0 ? r->duration_s : 0;
    json_t *o = json_object();
    json_object_set_new(o, "config", config_json(c));
    json_object_set_new(o, "requests", json_integer(r->sent));
    json_object_set_new(o, "completed", json_integer(r->ok));
    json_object_set_new(o, "errors", json_integer(r->errors));
    json_object_set_new(o, "errors_http", json_integer(r->err_http));
    json_object_set_new(o, "errors_transport", json_integer(r->err_transport));
    json_object_set_new(o, "errors_timeout", json_integer(r->err_timeout));
    json_object_set_new(o, "interrupted", json_boolean(r->interrupted));
    json_object_set_new(o, "delayed_arrivals", json_integer(r->delayed));
    json_object_set_new(o, "duration_s", json_real(d));
    json_object_set_new(o, "input_tokens", json_integer(r->input_tokens));
    json_object_set_new(o, "output_tokens", json_integer(r->output_tokens));
    json_object_set_new(o, "request_throughput",
                        json_real(d > 0 ? (double)r->ok / d : 0));
    json_object_set_new(o, "output_throughput",
                        json_real(d > 0 ? (double)r->output_tokens / d : 0));
    json_object_set_new(o, "goodput",
                        json_real(d > 0 ? (double)r->good / d : 0));
    json_object_set_new(o, "good_requests", json_integer(r->good));
    static const char *const keys[4] = {"ttft_ms", "itl_ms", "tpot_ms",
                                        "e2e_ms"};
    for (int i = 0; i < 4; i++)
        json_object_set_new(o, keys[i], summary_json(&sm[i]));
    json_object_set_new(o, "first_error",
                        r->first_error[0] ? json_string(r->first_error)
                                          : json_null());
    int rc = json_dump_file(o, path, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(o);
    return rc == 0;
}

static void print_report(const hp_bench_config *c, const hp_bench_result *r,
                         const hp_bench_summary sm[4])
{
    double d = r->duration_s;
    printf("\nhotpath bench: %s, model %s, %s%s, ", c->url, c->model,
           c->endpoint == HP_BENCH_CHAT ? "chat" : "completions",
           c->stream ? " (stream)" : "");
    if (c->concurrency > 0)
        printf("concurrency %d\n", c->concurrency);
    else
        printf("rate %.3g req/s\n", c->rate);
    printf("  requests     %ld sent, %ld ok, %ld errors (http %ld, transport "
           "%ld, timeout %ld)%s\n",
           r->sent, r->ok, r->errors, r->err_http, r->err_transport,
           r->err_timeout, r->interrupted ? ", interrupted" : "");
    printf("  duration     %.3f s\n", d);
    printf("  throughput   %.3f req/s, %.1f output tok/s (%lld output, %lld "
           "input tokens)\n",
           d > 0 ? (double)r->ok / d : 0,
           d > 0 ? (double)r->output_tokens / d : 0, r->output_tokens,
           r->input_tokens);
    printf("  goodput      %.3f req/s (%ld requests", d > 0 ? (double)r->good / d : 0,
           r->good);
    if (c->slo_ttft_ms > 0)
        printf(", TTFT <= %g ms", c->slo_ttft_ms);
    if (c->slo_itl_ms > 0)
        printf(", mean ITL <= %g ms", c->slo_itl_ms);
    printf(")\n");
    if (r->delayed)
        printf("  note         %ld arrivals waited for the %d in-flight cap\n",
               r->delayed, HP_BENCH_MAX_INFLIGHT);
    printf("\n  %-6s %10s %10s %10s %10s %8s\n", "ms", "mean", "p50", "p95",
           "p99", "samples");
    row("TTFT", &sm[0]);
    row("ITL", &sm[1]);
    row("TPOT", &sm[2]);
    row("E2E", &sm[3]);
    fflush(stdout);
}

/* ---- arguments ------------------------------------------------------------ */

enum {
    OPT_URL = 256, OPT_MODEL, OPT_CONC, OPT_RATE, OPT_REQS, OPT_PTOK,
    OPT_MTOK, OPT_SHARED, OPT_STREAM, OPT_ENDPOINT, OPT_SLO_TTFT,
    OPT_SLO_ITL, OPT_JSON, OPT_SEED, OPT_TIMEOUT, OPT_KEY
};

static const struct option bench_opts[] = {
    {"url", required_argument, 0, OPT_URL},
    {"model", required_argument, 0, OPT_MODEL},
    {"concurrency", required_argument, 0, OPT_CONC},
    {"rate", required_argument, 0, OPT_RATE},
    {"requests", required_argument, 0, OPT_REQS},
    {"prompt-tokens", required_argument, 0, OPT_PTOK},
    {"max-tokens", required_argument, 0, OPT_MTOK},
    {"shared-prefix", required_argument, 0, OPT_SHARED},
    {"stream", no_argument, 0, OPT_STREAM},
    {"endpoint", required_argument, 0, OPT_ENDPOINT},
    {"slo-ttft", required_argument, 0, OPT_SLO_TTFT},
    {"slo-itl", required_argument, 0, OPT_SLO_ITL},
    {"json", required_argument, 0, OPT_JSON},
    {"seed", required_argument, 0, OPT_SEED},
    {"timeout", required_argument, 0, OPT_TIMEOUT},
    {"api-key", required_argument, 0, OPT_KEY},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print one argument error and return exit status 2. */
static int bad(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "hotpath bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see 'hotpath bench --help')\n");
    va_end(ap);
    return 2;
}

/* Parse argv into c; returns 0, or the exit status to stop with. */
static int parse_args(int argc, char **argv, hp_bench_config *c,
                      const char **json_path)
{
    long v;
    double d;
    unsigned long long u;
    bool have_conc = false;
    opterr = 0;
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, ":h", bench_opts, NULL)) != -1) {
        const char *name = hp_arg_name(bench_opts, ch);
        switch (ch) {
        case 'h':
            bench_usage(stdout);
            return -1;
        case OPT_URL:
            if (strncmp(optarg, "http://", 7) && strncmp(optarg, "https://", 8))
                return bad("--url '%s': expected http://host:port", optarg);
            c->url = optarg;
            break;
        case OPT_MODEL:
            if (!*optarg)
                return bad("--model must not be empty");
            c->model = optarg;
            break;
        case OPT_CONC:
            if (!hp_arg_long(optarg, 1, 100000, &v))
                return bad("--concurrency '%s': expected an integer in 1..100000", optarg);
            c->concurrency = (int)v;
            have_conc = true;
            break;
        case OPT_RATE:
            if (!hp_arg_double(optarg, 1e-6, 1e6, &d))
                return bad("--rate '%s': expected requests/s, > 0 and <= 1e6", optarg);
            c->rate = d;
            break;
        case OPT_REQS:
            if (!hp_arg_long(optarg, 1, 100000000, &v))
                return bad("--requests '%s': expected an integer in 1..1e8", optarg);
            c->requests = v;
            break;
        case OPT_PTOK:
        case OPT_MTOK:
        case OPT_SHARED:
            if (!hp_arg_long(optarg, ch == OPT_MTOK ? 1 : 0, 1000000, &v))
                return bad("--%s '%s': expected an integer in %d..1000000",
                           name, optarg, ch == OPT_MTOK ? 1 : 0);
            if (ch == OPT_PTOK)
                c->prompt_tokens = (int)v;
            else if (ch == OPT_MTOK)
                c->max_tokens = (int)v;
            else
                c->shared_prefix = (int)v;
            break;
        case OPT_STREAM:
            c->stream = true;
            break;
        case OPT_ENDPOINT:
            if (!strcmp(optarg, "completions"))
                c->endpoint = HP_BENCH_COMPLETIONS;
            else if (!strcmp(optarg, "chat"))
                c->endpoint = HP_BENCH_CHAT;
            else
                return bad("--endpoint '%s': expected completions or chat", optarg);
            break;
        case OPT_SLO_TTFT:
        case OPT_SLO_ITL:
            if (!hp_arg_double(optarg, 1e-3, 1e9, &d))
                return bad("--%s '%s': expected milliseconds > 0", name, optarg);
            if (ch == OPT_SLO_TTFT)
                c->slo_ttft_ms = d;
            else
                c->slo_itl_ms = d;
            break;
        case OPT_JSON:
            if (!*optarg)
                return bad("--json needs a file name");
            *json_path = optarg;
            break;
        case OPT_SEED:
            if (!hp_arg_u64(optarg, &u))
                return bad("--seed '%s': expected a non-negative integer", optarg);
            c->seed = u;
            break;
        case OPT_TIMEOUT:
            if (!hp_arg_double(optarg, 0.001, 86400, &d))
                return bad("--timeout '%s': expected seconds in (0, 86400]", optarg);
            c->timeout_s = d;
            break;
        case OPT_KEY:
            if (!*optarg || strpbrk(optarg, "\r\n"))
                return bad("--api-key: empty or contains a newline");
            c->api_key = optarg;
            break;
        case ':':
            return bad("%s needs a value", argv[optind - 1]);
        default:
            return bad("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return bad("unexpected argument '%s'", argv[optind]);
    if (!c->url)
        return bad("--url is required");
    if (!c->model)
        return bad("--model is required");
    if (have_conc && c->rate > 0)
        return bad("--concurrency and --rate exclude each other");
    if (c->rate <= 0 && c->concurrency <= 0)
        c->concurrency = 1;
    if (c->shared_prefix > c->prompt_tokens)
        return bad("--shared-prefix is longer than --prompt-tokens");
    if (c->slo_itl_ms > 0 && !c->stream)
        return bad("--slo-itl needs --stream (ITL is only measured on "
                   "streams)");
    return 0;
}

int hp_cmd_bench(int argc, char **argv)
{
    hp_bench_config c = {
        .endpoint = HP_BENCH_COMPLETIONS,
        .requests = 100,
        .prompt_tokens = 128,
        .max_tokens = 128,
        .seed = 1,
        .timeout_s = 600,
    };
    const char *json_path = NULL;
    int st = parse_args(argc, argv, &c, &json_path);
    if (st < 0)
        return 0;
    if (st > 0)
        return st;
    /* Check the JSON path before a long run, not after. */
    bool json_created = false;
    if (json_path) {
        json_created = access(json_path, F_OK) != 0;
        FILE *f = fopen(json_path, "a");
        if (!f) {
            fprintf(stderr, "hotpath bench: --json %s: %s\n", json_path,
                    strerror(errno));
            return 2;
        }
        fclose(f);
    }

    struct sigaction sa = {0}, old_int;
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    g_stop = 0;

    progress_state ps = {.tty = isatty(STDERR_FILENO) == 1};
    hp_bench_result r;
    hp_errbuf eb = {{0}};
    hp_err e = hp_bench_run(&c, on_progress, &ps, &g_stop, &r, &eb);
    sigaction(SIGINT, &old_int, NULL);
    if (ps.printed && ps.tty)
        fputc('\n', stderr);
    if (e != HP_OK) {
        fprintf(stderr, "hotpath bench: %s\n", eb.msg);
        if (json_created) /* leave no empty file behind */
            unlink(json_path);
        hp_bench_result_free(&r);
        return 1;
    }
    hp_bench_summary sm[4] = {
        hp_bench_samples_summary(&r.ttft), hp_bench_samples_summary(&r.itl),
        hp_bench_samples_summary(&r.tpot), hp_bench_samples_summary(&r.e2e)};
    print_report(&c, &r, sm);
    int rc = 0;
    if (json_path && !write_json(json_path, &c, &r, sm)) {
        fprintf(stderr, "hotpath bench: cannot write %s\n", json_path);
        rc = 1;
    }
    if (r.first_error[0])
        fprintf(stderr, "hotpath bench: first error: %s\n", r.first_error);
    if (r.ok == 0) {
        fprintf(stderr, "hotpath bench: no request to %s succeeded\n", c.url);
        rc = 1;
    }
    hp_bench_result_free(&r);
    return rc;
}
