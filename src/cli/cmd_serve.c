/* cmd_serve.c: `hotpath serve`: load a model, start the engine and serve
 * the OpenAI-compatible HTTP API until SIGINT/SIGTERM.
 *
 * Prints exactly one line on stdout once listening, naming the real port
 * (so `--port 0` can be used by tests and scripts):
 *     hotpath: serving MODEL as NAME on http://HOST:PORT
 * Everything else goes to stderr. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/serve_gateway.h"
#include "engine/engine.h"
#include "engine/jinja.h"
#include "measure/metrics.h"
#include "model/kvcache.h"
#include "model/model.h"
#include "server/server.h"

/* Smallest --ctx-size accepted (one KV block). */
#define HP_SERVE_MIN_CTX 16

static void serve_usage(FILE *f)
{
    fprintf(f,
        "usage: hotpath serve -m MODEL [options]\n"
        "       hotpath serve --config FILE [--host HOST] [--port N] [--max-body BYTES]\n\n"
        "Serve MODEL over an OpenAI-compatible HTTP API:\n"
        "  POST /v1/completions, POST /v1/chat/completions, GET /v1/models,\n"
        "  GET /health, GET /metrics (Prometheus; the /v1 prefix is optional).\n\n"
        "options:\n"
        "  -m, --model PATH        GGUF model file or Hugging Face folder (required\n"
        "                          unless --config)\n"
        "      --config FILE       run the hybrid gateway of this YAML file: routes\n"
        "                          over local models, runtimes and labs, keys,\n"
        "                          budgets and a response cache (docs/CONFIG.md)\n"
        "      --quantize TYPE     q8_0 or q4_0: quantize a Hugging Face folder's\n"
        "                          matrices at load\n"
        "      --host HOST         address to bind (default 127.0.0.1)\n"
        "      --port N            port (default 8080; 0 picks a free one)\n"
        "  -c, --ctx-size N        context size per sequence (default: model's, at most 4096)\n"
        "  -t, --threads K         threads for the forward pass (default: all cores)\n"
        "      --parallel N        max sequences decoded together (default 4)\n"
        "      --batch-tokens N    max tokens per forward step; long prompts are\n"
        "                          prefilled in chunks of this size (default 128)\n"
        "      --kv-memory MIB     KV-cache pool size in MiB (default: ctx-size x parallel)\n"
        "      --no-prefix-cache   do not reuse the KV blocks of earlier prompts\n"
        "      --max-queue N       waiting requests before answering 429 (default 64, 0 = no limit)\n"
        "      --max-body BYTES    request body limit (default 8388608 = 8 MiB)\n"
        "      --model-name NAME   model id clients must send (default: the model's name)\n"
        "      --chat-template FILE  Jinja chat template to use instead of the model's\n"
        "      --timeout S         connection read/write timeout in seconds (default 600)\n"
        "      --api-key KEY       require 'Authorization: Bearer KEY' on every request\n"
        "                          but GET /health and /metrics (a flag shows in `ps`:\n"
        "                          prefer HOTPATH_API_KEY)\n"
        "  -h, --help              this help\n\n"
        "environment:\n"
        "  HOTPATH_API_KEY         the API key when --api-key is not given\n");
}

/* Install --chat-template FILE as the model's template, then parse the
 * template once so a broken one stops the server now (naming line and
 * column) rather than failing every chat request. */
static int use_chat_template(hp_model *m, const char *model_path,
                             const char *tmpl_path)
{
    if (tmpl_path) {
        FILE *f = fopen(tmpl_path, "rb");
        char *buf = NULL;
        long n = -1;
        if (f && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
            fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) &&
            fread(buf, 1, (size_t)n, f) == (size_t)n) {
            buf[n] = '\0';
            free(m->chat_template);
            m->chat_template = buf;
            buf = NULL;
        } else {
            n = -1;
        }
        free(buf);
        if (f)
            fclose(f);
        if (n < 0) {
            fprintf(stderr, "hotpath serve: cannot read --chat-template '%s'\n",
                    tmpl_path);
            return 1;
        }
    }
    if (!m->chat_template || !m->chat_template[0])
        return 0;
    hp_jinja *t = NULL;
    hp_errbuf eb = {{0}};
    if (hp_jinja_parse(m->chat_template, strlen(m->chat_template), &t, &eb) !=
        HP_OK) {
        fprintf(stderr, "hotpath serve: the chat template of '%s' cannot be "
                "used: %s\n", tmpl_path ? tmpl_path : model_path, eb.msg);
        return 1;
    }
    hp_jinja_free(t);
    return 0;
}

int hp_cmd_serve(int argc, char **argv)
{
    enum { O_HOST = 1000, O_PORT, O_PARALLEL, O_MAXQ, O_MAXBODY, O_NAME,
           O_TIMEOUT, O_BATCH, O_KVMEM, O_NOPREFIX, O_QUANT, O_TMPL,
           O_CONFIG, O_APIKEY };
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},
        {"host", required_argument, NULL, O_HOST},
        {"port", required_argument, NULL, O_PORT},
        {"ctx-size", required_argument, NULL, 'c'},
        {"threads", required_argument, NULL, 't'},
        {"parallel", required_argument, NULL, O_PARALLEL},
        {"max-queue", required_argument, NULL, O_MAXQ},
        {"max-body", required_argument, NULL, O_MAXBODY},
        {"model-name", required_argument, NULL, O_NAME},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"batch-tokens", required_argument, NULL, O_BATCH},
        {"kv-memory", required_argument, NULL, O_KVMEM},
        {"no-prefix-cache", no_argument, NULL, O_NOPREFIX},
        {"quantize", required_argument, NULL, O_QUANT},
        {"chat-template", required_argument, NULL, O_TMPL},
        {"config", required_argument, NULL, O_CONFIG},
        {"api-key", required_argument, NULL, O_APIKEY},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *model_path = NULL, *tmpl_path = NULL, *config_path = NULL;
    bool host_set = false, port_set = false, other_set = false;
    hp_server_opts so;
    hp_server_opts_default(&so);
    long ctx = 0, threads = 0, parallel = 0, maxq = -1, v = 0;
    long batch = 0, kv_mib = 0;
    bool no_prefix = false;
    hp_model_opts mopts = {0};
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "m:c:t:h", opts, NULL)) != -1) {
        bool ok = true;
        switch (c) {
        case 'm':
            model_path = optarg;
            break;
        case O_HOST:
            so.host = optarg;
            break;
        case O_PORT:
            ok = hp_arg_long(optarg, 0, 65535, &v);
            so.port = (int)v;
            break;
        case 'c':
            ok = hp_arg_long(optarg, 1, 1 << 24, &ctx);
            break;
        case 't':
            ok = hp_arg_long(optarg, 1, 4096, &threads);
            break;
        case O_PARALLEL:
            ok = hp_arg_long(optarg, 1, 4096, &parallel);
            break;
        case O_MAXQ:
            ok = hp_arg_long(optarg, 0, 1 << 20, &maxq);
            break;
        case O_MAXBODY:
            ok = hp_arg_long(optarg, 64, 1L << 32, &v);
            so.max_body = (size_t)v;
            break;
        case O_NAME:
            so.model_name = optarg;
            ok = optarg[0] != '\0';
            break;
        case O_TIMEOUT:
            ok = hp_arg_long(optarg, 1, 86400, &v);
            so.timeout_s = (int)v;
            break;
        case O_BATCH:
            ok = hp_arg_long(optarg, 1, 1 << 16, &batch);
            break;
        case O_KVMEM:
            ok = hp_arg_long(optarg, 1, 1L << 30, &kv_mib);
            break;
        case O_NOPREFIX:
            no_prefix = true;
            break;
        case O_QUANT:
            ok = hp_model_parse_quantize(optarg, &mopts.quantize);
            break;
        case O_TMPL:
            tmpl_path = optarg;
            break;
        case O_CONFIG:
            /* the last one would win silently: refuse the ambiguity */
            if (config_path) {
                fprintf(stderr, "hotpath serve: --config given more than "
                        "once ('%s', then '%s'); give one config file\n",
                        config_path, optarg);
                return 2;
            }
            config_path = optarg;
            break;
        case O_APIKEY:
            so.api_key = optarg;
            ok = optarg[0] != '\0';
            break;
        case 'h':
            serve_usage(stdout);
            return 0;
        default:
            fprintf(stderr, "hotpath serve: unknown or incomplete option '%s'\n\n",
                    argv[optind - 1]);
            serve_usage(stderr);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "hotpath serve: invalid value '%s' for %s\n",
                    optarg, hp_arg_name(opts, c));
            return 2;
        }
        if (c == O_HOST)
            host_set = true;
        else if (c == O_PORT)
            port_set = true;
        else if (c != O_CONFIG && c != O_MAXBODY)
            other_set = true;
    }
    /* the environment keeps the key out of `ps`; the flag wins */
    const char *env_key = getenv("HOTPATH_API_KEY");
    if (env_key && config_path) {
        fprintf(stderr, "hotpath serve: HOTPATH_API_KEY is ignored with "
                "--config (the gateway's keys are set in the config)\n");
    } else if (!so.api_key && env_key && !env_key[0]) {
        fprintf(stderr, "hotpath serve: HOTPATH_API_KEY is set but empty: "
                "give a key or unset it\n");
        return 2;
    } else if (!so.api_key) {
        so.api_key = env_key;
    }
    if (config_path) {
        if (optind < argc) {
            fprintf(stderr, "hotpath serve: unexpected argument '%s'\n",
                    argv[optind]);
            return 2;
        }
        if (other_set) {
            /* model options belong in the config's models section */
            fprintf(stderr, "hotpath serve: with --config only --host, --port "
                    "and --max-body may be given; put model options in the "
                    "config's `models` section\n");
            return 2;
        }
        return hp_serve_gateway(config_path, host_set ? so.host : NULL,
                                port_set ? so.port : -1,
                                so.max_body != (8u << 20) ? so.max_body : 0);
    }
    if (optind < argc) {
        fprintf(stderr, "hotpath serve: unexpected argument '%s'\n",
                argv[optind]);
        return 2;
    }
    if (!model_path) {
        fprintf(stderr, "hotpath serve: -m MODEL is required\n\n");
        serve_usage(stderr);
        return 2;
    }
    if (ctx > 0 && ctx < HP_SERVE_MIN_CTX) {
        /* a prompt of a few tokens plus any output would not fit */
        fprintf(stderr, "hotpath serve: --ctx-size %ld is too small: give at "
                "least %d positions\n", ctx, HP_SERVE_MIN_CTX);
        return 2;
    }

    hp_errbuf eb = {{0}};
    hp_model *m = NULL;
    hp_engine *e = NULL;
    hp_server *srv = NULL;
    hp_metrics *met = NULL;
    int rc = 1;
    if (hp_model_load_opts(model_path, &mopts, &m, &eb) != HP_OK) {
        fprintf(stderr, "hotpath serve: cannot load model '%s': %s\n",
                model_path, eb.msg);
        return 1;
    }
    if (use_chat_template(m, model_path, tmpl_path) != 0) {
        hp_model_free(m);
        return 1;
    }
    hp_engine_opts eo;
    hp_engine_opts_default(&eo, m);
    if (ctx > 0)
        eo.n_ctx = (int)ctx;
    if (ctx > 0 && m->hp.n_ctx_train > 0 && ctx > m->hp.n_ctx_train)
        /* allowed, as llama.cpp allows it: positions past the trained
         * length usually degrade the output */
        fprintf(stderr, "hotpath serve: warning: --ctx-size %ld exceeds the "
                "model's trained context of %d; output past %d positions "
                "may degrade\n", ctx, m->hp.n_ctx_train, m->hp.n_ctx_train);
    if (threads > 0)
        eo.n_threads = (int)threads;
    if (parallel > 0)
        eo.parallel = (int)parallel;
    if (maxq >= 0)
        eo.max_queue = (int)maxq;
    if (batch > 0)
        eo.batch_tokens = (int)batch;
    if (no_prefix)
        eo.prefix_cache = false;
    if (kv_mib > 0) {
        uint64_t blocks = (uint64_t)kv_mib * 1048576u / hp_kvpool_block_bytes(m);
        if (blocks < 1 || blocks > (1u << 30)) {
            fprintf(stderr, "hotpath serve: --kv-memory %ld MiB holds %llu "
                    "KV blocks of %llu bytes; give at least one block\n",
                    kv_mib, (unsigned long long)blocks,
                    (unsigned long long)hp_kvpool_block_bytes(m));
            hp_model_free(m);
            return 2;
        }
        eo.kv_blocks = (int)blocks;
    }
    met = hp_metrics_new(so.model_name ? so.model_name : m->name);
    if (!met) {
        fprintf(stderr, "hotpath serve: out of memory\n");
        goto done;
    }
    eo.metrics = met;
    so.metrics = met;
    if (hp_engine_new(m, &eo, &e, &eb) != HP_OK) {
        fprintf(stderr, "hotpath serve: cannot start the engine: %s\n",
                eb.msg);
        goto done;
    }
    if (hp_server_new(e, &so, &srv, &eb) != HP_OK) {
        fprintf(stderr, "hotpath serve: %s\n", eb.msg);
        goto done;
    }
    bool v6 = strchr(so.host, ':') != NULL; /* URLs bracket IPv6 */
    printf("hotpath: serving %s as %s on http://%s%s%s:%d\n", model_path,
           hp_server_model_name(srv), v6 ? "[" : "", so.host, v6 ? "]" : "",
           hp_server_port(srv));
    fflush(stdout);
    if (hp_server_run(srv, &eb) != HP_OK) {
        fprintf(stderr, "hotpath serve: %s\n", eb.msg);
        goto done;
    }
    fprintf(stderr, "hotpath: stopped\n");
    rc = 0;
done:
    hp_server_free(srv);
    hp_engine_free(e);
    hp_metrics_free(met);
    hp_model_free(m);
    return rc;
}
