/* serve_gateway.c: `hotpath serve --config FILE`: the hybrid gateway.
 *
 * Loads the config, starts every local model of its `models` section
 * (each an engine plus an hp_server on a free loopback port, on its own
 * thread), then runs the gateway in front of them, the upstreams and the
 * routes. Prints one line on stdout once listening:
 *     hotpath: gateway on http://HOST:PORT (N routes, M local models)
 * Everything else goes to stderr. SIGINT/SIGTERM stop the gateway, then
 * the local servers. */
#include <libgen.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/serve_gateway.h"
#include "engine/engine.h"
#include "gateway/gateway.h"
#include "gateway/keys.h"
#include "measure/metrics.h"
#include "model/model.h"
#include "server/server.h"

typedef struct local {
    hp_model *m;
    hp_engine *e;
    hp_metrics *met;
    hp_server *srv;
    pthread_t th;
    bool running;
    char url[96];
    char key[65];  /* the loopback server's bearer key (random per run) */
} local;

static void *run_local(void *arg)
{
    local *l = arg;
    hp_errbuf eb;
    if (hp_server_run(l->srv, &eb) != HP_OK)
        fprintf(stderr, "hotpath: local model: %s\n", eb.msg);
    return NULL;
}

/* A path from the config, relative to the config file's folder. */
static char *config_rel(const char *cfg_path, const char *p)
{
    if (!p)
        return NULL;
    if (p[0] == '/')
        return strdup(p);
    char *tmp = strdup(cfg_path);
    if (!tmp)
        return NULL;
    const char *dir = dirname(tmp);
    size_t n = strlen(dir) + strlen(p) + 2;
    char *out = malloc(n);
    if (out)
        snprintf(out, n, "%s/%s", dir, p);
    free(tmp);
    return out;
}

static int start_local(const hp_gwconf *c, size_t i, local *l)
{
    const hp_gwconf_model *cm = &c->models[i];
    hp_errbuf eb = {{0}};
    char *path = config_rel(c->path, cm->path);
    hp_model_opts mo = {0};
    if (!path || hp_model_load_opts(path, &mo, &l->m, &eb) != HP_OK) {
        fprintf(stderr, "hotpath serve: %s:%d: models[%zu] '%s': cannot load "
                "'%s': %s\n", c->path, cm->line, i, cm->name,
                path ? path : cm->path, path ? eb.msg : "out of memory");
        free(path);
        return 1;
    }
    free(path);
    hp_engine_opts eo;
    hp_engine_opts_default(&eo, l->m);
    if (cm->ctx_size > 0)
        eo.n_ctx = cm->ctx_size;
    if (cm->parallel > 0)
        eo.parallel = cm->parallel;
    if (cm->threads > 0)
        eo.n_threads = cm->threads;
    l->met = hp_metrics_new(cm->name);
    eo.metrics = l->met;
    if (!l->met || hp_engine_new(l->m, &eo, &l->e, &eb) != HP_OK) {
        fprintf(stderr, "hotpath serve: models[%zu] '%s': cannot start the "
                "engine: %s\n", i, cm->name, l->met ? eb.msg : "out of memory");
        return 1;
    }
    hp_server_opts so;
    hp_server_opts_default(&so);
    so.host = "127.0.0.1";
    so.port = 0;
    so.model_name = cm->name;
    so.metrics = l->met;
    so.no_signals = 1;
    /* The loopback port is reachable by any local user: a random key keeps
     * clients from bypassing the gateway's keys, budgets and ledger. */
    unsigned char rnd[32];
    if (RAND_bytes(rnd, sizeof rnd) != 1) {
        fprintf(stderr, "hotpath serve: no random bytes for a local key\n");
        return 1;
    }
    for (size_t k = 0; k < sizeof rnd; k++)
        snprintf(l->key + 2 * k, 3, "%02x", rnd[k]);
    OPENSSL_cleanse(rnd, sizeof rnd);
    so.api_key = l->key;
    if (hp_server_new(l->e, &so, &l->srv, &eb) != HP_OK) {
        fprintf(stderr, "hotpath serve: models[%zu] '%s': %s\n", i, cm->name,
                eb.msg);
        return 1;
    }
    snprintf(l->url, sizeof l->url, "http://127.0.0.1:%d/v1",
             hp_server_port(l->srv));
    if (pthread_create(&l->th, NULL, run_local, l) != 0) {
        fprintf(stderr, "hotpath serve: cannot start a thread\n");
        return 1;
    }
    l->running = true;
    fprintf(stderr, "hotpath: local model '%s' (%s) on %s\n", cm->name,
            cm->path, l->url);
    return 0;
}

static size_t count_tokens(void *ud, const char *text, size_t len)
{
    const hp_vocab *v = ud;
    int32_t one;
    int n = hp_tokenize(v, text, len, false, false, &one, 1);
    return n > 0 ? (size_t)n : (len + 3) / 4;
}

int hp_serve_gateway(const char *config_path, const char *host, int port,
                     size_t max_body)
{
    hp_errbuf eb = {{0}};
    hp_gwconf *c = NULL;
    if (hp_gwconf_load(config_path, &c, &eb) != HP_OK) {
        fprintf(stderr, "hotpath serve: %s\n", eb.msg);
        return 2;
    }
    int rc = 1;
    local *locs = calloc(c->n_models + 1, sizeof *locs);
    const char **urls = calloc(c->n_models + 1, sizeof *urls);
    const char **keys = calloc(c->n_models + 1, sizeof *keys);
    int *par = calloc(c->n_models + 1, sizeof *par);
    char *db = NULL;
    hp_gw *g = NULL;
    if (!locs || !urls || !par || !keys)
        goto done;
    char dflt[1024];
    if (c->database)
        db = config_rel(c->path, c->database);
    else if (hp_keys_default_path(dflt, sizeof dflt))
        db = strdup(dflt);
    if (!db) {
        fprintf(stderr, "hotpath serve: %s: no `database` set and no data "
                "directory ($XDG_DATA_HOME or $HOME) to put one in\n",
                c->path);
        goto done;
    }
    /* missing upstream keys fail now, before models take time to load
     * (hp_gw_new checks again and keeps the values) */
    for (size_t i = 0; i < c->n_upstreams; i++) {
        const char *env = c->upstreams[i].api_key_env;
        if (env && !(getenv(env) && getenv(env)[0])) {
            fprintf(stderr, "hotpath serve: %s:%d: upstreams[%zu].api_key_env: "
                    "'%s' needs its API key in the environment variable %s, "
                    "which is not set\n", c->path, c->upstreams[i].line, i,
                    c->upstreams[i].name, env);
            goto done;
        }
    }
    for (size_t i = 0; i < c->n_models; i++) {
        if (start_local(c, i, &locs[i]) != 0)
            goto done;
        urls[i] = locs[i].url;
        keys[i] = locs[i].key;
        par[i] = hp_engine_options(locs[i].e)->parallel;
    }
    hp_gw_opts o = {
        .host = host, .port = port, .local_urls = urls,
        .local_parallel = par, .local_keys = keys, .db_path = db,
        .max_body = max_body,
        .count = c->n_models ? count_tokens : NULL,
        .count_ud = c->n_models ? locs[0].m->vocab : NULL};
    if (hp_gw_new(c, &o, &g, &eb) != HP_OK) {
        fprintf(stderr, "hotpath serve: %s\n", eb.msg);
        goto done;
    }
    if (!c->require_keys)
        fprintf(stderr, "hotpath: auth.require_keys is off: any client may "
                "use every route\n");
    const char *h = host ? host : c->listen_host;
    bool v6 = strchr(h, ':') != NULL;
    printf("hotpath: gateway on http://%s%s%s:%d (%zu routes, %zu local "
           "models)\n", v6 ? "[" : "", h, v6 ? "]" : "", hp_gw_port(g),
           c->n_routes, c->n_models);
    fflush(stdout);
    hp_gw_run(g, &eb);
    fprintf(stderr, "hotpath: stopped\n");
    rc = 0;
done:
    hp_gw_free(g);
    for (size_t i = 0; locs && i < c->n_models; i++) {
        local *l = &locs[i];
        if (l->running) {
            hp_server_stop(l->srv);
            pthread_join(l->th, NULL);
        }
        hp_server_free(l->srv);
        hp_engine_free(l->e);
        hp_metrics_free(l->met);
        hp_model_free(l->m);
        OPENSSL_cleanse(l->key, sizeof l->key);
    }
    free(locs);
    free(keys);
    free(urls);
    free(par);
    free(db);
    hp_gwconf_free(c);
    return rc;
}
