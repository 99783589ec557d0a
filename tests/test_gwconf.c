/* test_gwconf.c: the gateway config loader (src/gateway/config.c).
 *
 * The example parses into the right structs with the documented
 * defaults filled in; every class of bad config fails with an error that
 * names the file, the line and the key; mutated YAML never crashes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/config.h"

static char tmpdir[] = "/tmp/hp_gwconf_XXXXXX";
static int file_seq;

/* Write text to a fresh file in the temp dir; returns its path (static). */
static const char *write_conf(const char *text)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/c%d.yaml", tmpdir, file_seq++);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(text, 1, strlen(text), f);
    fclose(f);
    return path;
}

static const char *EXAMPLE =
    "listen: {host: 127.0.0.1, port: 8080}\n"
    "models:                       # served by the built-in runtime\n"
    "  - {name: local-small, path: models/small.gguf}\n"
    "upstreams:\n"
    "  - {name: lab, kind: openai, base_url: \"https://lab.example/v1\", api_key_env: LAB_API_KEY}\n"
    "  - {name: claude, kind: anthropic, base_url: \"https://anthropic.example\", api_key_env: ANTHROPIC_API_KEY}\n"
    "  - {name: gpu-pool, kind: openai, base_url: \"http://gpu-pool.internal:8000/v1\"}   # a vLLM cluster\n"
    "routes:\n"
    "  - model: chat                          # what clients send as \"model\"\n"
    "    targets:\n"
    "      - {upstream: lab, model: lab-model-mini, weight: 90}\n"
    "      - {local: local-small, weight: 10}\n"
    "    fallback: [{upstream: claude, model: claude-haiku}, {local: local-small}]\n"
    "    fallback_on: [429, 500, 502, 503, 504, timeout, connect]\n"
    "    retries: 2\n"
    "    timeouts: {connect_ms: 2000, first_token_ms: 10000, total_ms: 120000}\n"
    "    circuit: {failures: 5, cooldown_ms: 30000}\n"
    "prices:                                  # USD per million tokens\n"
    "  lab-model-mini: {input: 0.15, output: 0.60, cached_input: 0.075}\n"
    "runtime_cost_per_hour: 0.20\n"
    "database: hotpath.db\n"
    "cache: {max_mb: 256, ttl_s: 3600}\n";

/* gwconf_example_parses: the sketch loads into the structs it
 * describes, names resolved to indices. */
static void gwconf_example_parses(void **state)
{
    (void)state;
    hp_gwconf *c = NULL;
    hp_errbuf eb = {{0}};
    const char *path = write_conf(EXAMPLE);
    assert_int_equal(hp_gwconf_load(path, &c, &eb), HP_OK);
    assert_non_null(c);
    assert_string_equal(c->path, path);
    assert_string_equal(c->listen_host, "127.0.0.1");
    assert_int_equal(c->listen_port, 8080);

    assert_int_equal(c->n_models, 1);
    assert_string_equal(c->models[0].name, "local-small");
    assert_string_equal(c->models[0].path, "models/small.gguf");
    assert_int_equal(c->models[0].ctx_size, 0);
    assert_int_equal(c->models[0].line, 3);

    assert_int_equal(c->n_upstreams, 3);
    assert_string_equal(c->upstreams[0].name, "lab");
    assert_int_equal(c->upstreams[0].kind, HP_GWCONF_OPENAI);
    assert_string_equal(c->upstreams[0].base_url, "https://lab.example/v1");
    assert_string_equal(c->upstreams[0].api_key_env, "LAB_API_KEY");
    assert_int_equal(c->upstreams[1].kind, HP_GWCONF_ANTHROPIC);
    assert_string_equal(hp_gwconf_kind_name(c->upstreams[1].kind), "anthropic");
    assert_null(c->upstreams[2].api_key_env);
    assert_string_equal(c->upstreams[2].base_url, "http://gpu-pool.internal:8000/v1");
    assert_int_equal(c->upstreams[2].timeouts.connect_ms, HP_GWCONF_DEFAULT_CONNECT_MS);

    assert_int_equal(c->n_routes, 1);
    const hp_gwconf_route *r = hp_gwconf_route_find(c, "chat");
    assert_ptr_equal(r, &c->routes[0]);
    assert_int_equal(r->n_targets, 2);
    assert_int_equal(r->targets[0].upstream, 0);
    assert_int_equal(r->targets[0].local, -1);
    assert_string_equal(r->targets[0].model, "lab-model-mini");
    assert_int_equal(r->targets[0].weight, 90);
    assert_int_equal(r->targets[1].upstream, -1);
    assert_int_equal(r->targets[1].local, 0);
    assert_null(r->targets[1].model);
    assert_int_equal(r->targets[1].weight, 10);
    assert_int_equal(r->n_fallback, 2);
    assert_int_equal(r->fallback[0].upstream, 1);
    assert_string_equal(r->fallback[0].model, "claude-haiku");
    assert_int_equal(r->fallback[0].weight, 0);
    assert_int_equal(r->fallback[1].local, 0);
    assert_int_equal(r->n_fallback_codes, 5);
    int want[] = {429, 500, 502, 503, 504};
    for (int i = 0; i < 5; i++)
        assert_int_equal(r->fallback_codes[i], want[i]);
    assert_true(r->fallback_on_timeout);
    assert_true(r->fallback_on_connect);
    assert_int_equal(r->retries, 2);
    assert_int_equal(r->timeouts.connect_ms, 2000);
    assert_int_equal(r->timeouts.first_token_ms, 10000);
    assert_int_equal(r->timeouts.total_ms, 120000);
    assert_int_equal(r->circuit_failures, 5);
    assert_int_equal(r->circuit_cooldown_ms, 30000);

    assert_int_equal(c->n_prices, 1);
    const hp_gwconf_price *p = hp_gwconf_price_find(c, "lab-model-mini");
    assert_non_null(p);
    assert_true(p->input == 0.15 && p->output == 0.60 && p->cached_input == 0.075);
    assert_true(c->runtime_cost_per_hour == 0.20);
    assert_string_equal(c->database, "hotpath.db");
    assert_int_equal(c->cache_max_mb, 256);
    assert_int_equal(c->cache_ttl_s, 3600);

    assert_non_null(hp_gwconf_upstream_find(c, "gpu-pool"));
    assert_null(hp_gwconf_upstream_find(c, "nope"));
    assert_non_null(hp_gwconf_model_find(c, "local-small"));
    assert_null(hp_gwconf_route_find(c, "local-small"));
    hp_gwconf_free(c);
}

/* gwconf_defaults_filled: a minimal config gets the documented defaults,
 * and a route's unset timeouts inherit the upstream's. */
static void gwconf_defaults_filled(void **state)
{
    (void)state;
    const char *text =
        "upstreams:\n"
        "  - name: lab\n"
        "    kind: openai\n"
        "    base_url: https://lab.example/v1/\n"
        "    timeouts: {connect_ms: 1234}\n"
        "routes:\n"
        "  - model: chat\n"
        "    targets: [{upstream: lab, model: m}]\n"
        "    timeouts: {total_ms: 99000}\n"
        "prices:\n"
        "  m: {input: 1, output: 2}\n";
    hp_gwconf *c = NULL;
    hp_errbuf eb = {{0}};
    assert_int_equal(hp_gwconf_parse("mem", text, strlen(text), &c, &eb), HP_OK);
    assert_string_equal(c->listen_host, HP_GWCONF_DEFAULT_HOST);
    assert_int_equal(c->listen_port, HP_GWCONF_DEFAULT_PORT);
    assert_int_equal(c->n_models, 0);
    assert_string_equal(c->upstreams[0].base_url, "https://lab.example/v1");
    assert_int_equal(c->upstreams[0].timeouts.connect_ms, 1234);
    assert_int_equal(c->upstreams[0].timeouts.first_token_ms, HP_GWCONF_DEFAULT_FIRST_TOKEN_MS);
    const hp_gwconf_route *r = &c->routes[0];
    assert_int_equal(r->targets[0].weight, 1);
    assert_int_equal(r->n_fallback, 0);
    assert_int_equal(r->n_fallback_codes, 5);
    assert_true(r->fallback_on_timeout && r->fallback_on_connect);
    assert_int_equal(r->retries, 0);
    assert_int_equal(r->circuit_failures, HP_GWCONF_DEFAULT_CIRCUIT_FAILURES);
    assert_int_equal(r->circuit_cooldown_ms, HP_GWCONF_DEFAULT_CIRCUIT_COOLDOWN_MS);
    hp_gwconf_timeouts t = hp_gwconf_timeouts_for(c, r, &r->targets[0]);
    assert_int_equal(t.connect_ms, 1234);
    assert_int_equal(t.first_token_ms, HP_GWCONF_DEFAULT_FIRST_TOKEN_MS);
    assert_int_equal(t.total_ms, 99000);
    assert_true(c->prices[0].cached_input == 1.0);
    assert_null(c->database);
    assert_int_equal(c->cache_max_mb, 0);
    assert_int_equal(c->cache_ttl_s, HP_GWCONF_DEFAULT_CACHE_TTL_S);
    assert_true(c->runtime_cost_per_hour == 0.0);
    hp_gwconf_free(c);
    hp_gwconf_free(NULL);
}

/* The valid base most bad cases edit; line numbers below count from it. */
#define BASE_MODELS "models:\n  - {name: m1, path: a.gguf}\n"          /* 1-2 */
#define BASE_UPS "upstreams:\n  - {name: lab, kind: openai, base_url: \"https://lab.example/v1\", api_key_env: LAB_KEY}\n" /* 3-4 */
#define BASE_ROUTE_HEAD "routes:\n  - model: chat\n"                   /* 5-6 */

typedef struct bad_case {
    const char *name;
    const char *text;
    hp_err code;
    const char *where; /* expected ":LINE: KEY:" after the file name */
    const char *says;  /* expected words in the message */
} bad_case;

static const bad_case BAD[] = {
    {"unknown_top_key", BASE_MODELS BASE_UPS BASE_ROUTE_HEAD
     "    targets: [{local: m1}]\nlisten_on: 8080\n",
     HP_ERR_FORMAT, ":8: listen_on:", "unknown key"},
    {"unknown_nested_key", BASE_MODELS BASE_UPS BASE_ROUTE_HEAD
     "    targets: [{local: m1}]\n    retry: 3\n",
     HP_ERR_FORMAT, ":8: routes[0].retry:", "unknown key"},
    {"literal_api_key", BASE_MODELS
     "upstreams:\n  - name: lab\n    kind: openai\n    base_url: https://x.example\n    api_key: sk-secret-123\n"
     "routes:\n  - {model: chat, targets: [{local: m1}]}\n",
     HP_ERR_INVALID, ":7: upstreams[0].api_key:", "api_key_env"},
    {"api_key_env_holds_key", BASE_MODELS
     "upstreams:\n  - {name: lab, kind: openai, base_url: \"https://x.example\", api_key_env: sk-abc.def}\n"
     BASE_ROUTE_HEAD "    targets: [{local: m1}]\n",
     HP_ERR_INVALID, ":4: upstreams[0].api_key_env:", "environment variable"},
    {"port_wrong_type", "listen: {port: eighty}\n" BASE_MODELS
     "routes: [{model: chat, targets: [{local: m1}]}]\n",
     HP_ERR_FORMAT, ":1: listen.port:", "expected an integer"},
    {"port_out_of_range", "listen:\n  port: 70000\n" BASE_MODELS
     "routes: [{model: chat, targets: [{local: m1}]}]\n",
     HP_ERR_RANGE, ":2: listen.port:", "out of range"},
    {"negative_retries", BASE_MODELS BASE_UPS BASE_ROUTE_HEAD
     "    targets: [{local: m1}]\n    retries: -1\n",
     HP_ERR_RANGE, ":8: routes[0].retries:", "out of range"},
    {"negative_weight", BASE_MODELS BASE_UPS BASE_ROUTE_HEAD
     "    targets:\n      - {local: m1, weight: -5}\n",
     HP_ERR_RANGE, ":8: routes[0].targets[0].weight:", "out of range"},
    {"negative_price", BASE_MODELS BASE_UPS BASE_ROUTE_HEAD
     "    targets: [{local: m1}]\nprices:\n  x: {input: -0.1, output: 1}\n",
     HP_ERR_RANGE, ":9: prices.x.input:", "out of range"},
    {"zero_timeout", BASE_MODELS BASE_UPS BASE_ROUTE_HEAD
     "    targets: [{local: m1}]\n    timeouts: {connect_ms: 0}\n",
     HP_ERR_RANGE, ":8: routes[0].timeouts.connect_ms:", "out of range"},
    {"models_not_list", "models: {name: m1}\n"
     "routes: [{model: chat, targets: [{local: m1}]}]\n",
     HP_ERR_FORMAT, ":1: models:", "expected a list"},
    {"name_not_string", "models:\n  - {name: [a, b], path: x}\n"
     "routes: [{model: chat, targets: [{local: m1}]}]\n",
     HP_ERR_FORMAT, ":2: models[0].name:", "expected a string"},
    {"duplicate_model", BASE_MODELS "  - {name: m1, path: b.gguf}\n" BASE_UPS
     "routes: [{model: chat, targets: [{local: m1}]}]\n",
     HP_ERR_INVALID, ":3: models[1].name:", "duplicate name 'm1'"},
    {"duplicate_upstream", BASE_MODELS BASE_UPS
     "  - {name: lab, kind: anthropic, base_url: \"https://a.example\"}\n"
     "routes: [{model: chat, targets: [{local: m1}]}]\n",
     HP_ERR_INVALID, ":5: upstreams[1].name:", "duplicate name 'lab'"},
    {"duplicate_route", BASE_MODELS BASE_UPS BASE_ROUTE_HEAD
     "    targets: [{local: m1}]\n  - model: chat\n    targets: [{local: m1}]\n",
     HP_ERR_INVALID, ":8: routes[1].model:", "duplicate model 'chat'"},
    {"duplicate_key", BASE_MODELS BASE_UPS BASE_ROUTE_HEAD
     "    targets: [{local: m1}]\n    retries: 1\n    retries: 2\n",
     HP_ERR_INVALID, ":9: routes[0].retries:", "duplicate key"},
    {"unknown_upstream", BASE_MODELS BASE_UPS BASE_ROUTE_HEAD
     "    targets:\n      - {upstream: labb, model: x}\n",
     HP_ERR_NOT_FOUND, ":8: routes[0].targets[0].upstream:", "no upstream named 'labb'"},
    {"unknown_local", BASE_MODELS BASE_UPS BASE_ROUTE_HEAD
     "    targets: [{upstream: lab, model: x}]\n    fallback:\n      - {local: m2}\n",
     HP_ERR_NOT_FOUND, ":9: routes[0].fallback[0].local:", "no local model named 'm2'"},
    {"upstream_without_model", BASE_MODELS BASE_UPS BASE_ROUTE_HEAD
     "    targets:\n      - {upstream: lab}\n",
     HP_ERR_FORMAT, ":8: routes[0].targets[0].model:", "missing"},
    {"target_both_kinds", BASE_MODELS BASE_UPS BASE_ROUTE_HEAD
     "    targets:\n      - {upstream: lab, model: x, local: m1}\n",
     HP_ERR_FORMAT, ":8: routes[0].targets[0]:", "exactly one"},
    {"weights_all_zero", BASE_MODELS BASE_UPS BASE_ROUTE_HEAD
     "    targets:\n      - {local: m1, weight: 0}\n      - {upstream: lab, model: x, weight: 0}\n",
     HP_ERR_INVALID, ":8: routes[0].targets:", "all weights are 0"},
    {"weight_on_fallback", BASE_MODELS BASE_UPS BASE_ROUTE_HEAD
     "    targets: [{local: m1}]\n    fallback:\n      - {local: m1, weight: 3}\n",
     HP_ERR_FORMAT, ":9: routes[0].fallback[0].weight:", "unknown key"},
    {"base_url_scheme", BASE_MODELS
     "upstreams:\n  - {name: lab, kind: openai, base_url: \"ftp://lab.example\"}\n"
     BASE_ROUTE_HEAD "    targets: [{local: m1}]\n",
     HP_ERR_FORMAT, ":4: upstreams[0].base_url:", "http:// or https://"},
    {"base_url_no_host", BASE_MODELS
     "upstreams:\n  - {name: lab, kind: openai, base_url: \"https://\"}\n"
     BASE_ROUTE_HEAD "    targets: [{local: m1}]\n",
     HP_ERR_FORMAT, ":4: upstreams[0].base_url:", "http:// or https://"},
    {"bad_kind", BASE_MODELS
     "upstreams:\n  - name: lab\n    kind: gemini\n    base_url: https://x.example\n"
     "routes: [{model: chat, targets: [{local: m1}]}]\n",
     HP_ERR_FORMAT, ":5: upstreams[0].kind:", "openai or anthropic"},
    {"missing_kind", BASE_MODELS
     "upstreams:\n  - name: lab\n    base_url: https://x.example\n"
     "routes: [{model: chat, targets: [{local: m1}]}]\n",
     HP_ERR_FORMAT, ":4: upstreams[0].kind:", "missing"},
    {"routes_empty", BASE_MODELS "routes: []\n",
     HP_ERR_INVALID, ":3: routes:", "at least one route"},
    {"routes_missing", BASE_MODELS BASE_UPS,
     HP_ERR_INVALID, ":1: routes:", "at least one route"},
    {"targets_empty", BASE_MODELS BASE_ROUTE_HEAD "    targets: []\n",
     HP_ERR_INVALID, ":5: routes[0].targets:", "at least one target"},
    {"empty_file", "",
     HP_ERR_INVALID, ":1: routes:", "empty"},
    {"fallback_on_word", BASE_MODELS BASE_UPS BASE_ROUTE_HEAD
     "    targets: [{local: m1}]\n    fallback_on: [429, timeouts]\n",
     HP_ERR_FORMAT, ":8: routes[0].fallback_on[1]:", "'timeouts' is not an HTTP status"},
    {"fallback_on_2xx", BASE_MODELS BASE_UPS BASE_ROUTE_HEAD
     "    targets: [{local: m1}]\n    fallback_on:\n      - 200\n",
     HP_ERR_FORMAT, ":9: routes[0].fallback_on[0]:", "'200' is not an HTTP status"},
    {"first_token_past_total", BASE_MODELS BASE_UPS BASE_ROUTE_HEAD
     "    targets: [{local: m1}]\n    timeouts: {first_token_ms: 5000, total_ms: 1000}\n",
     HP_ERR_RANGE, ":8: routes[0].timeouts.first_token_ms:", "longer than total_ms"},
    {"ctx_size_tiny", "models:\n  - {name: m1, path: a.gguf, ctx_size: 8}\n"
     "routes: [{model: chat, targets: [{local: m1}]}]\n",
     HP_ERR_RANGE, ":2: models[0].ctx_size:", "too small"},
    {"cache_wrong_type", BASE_MODELS "routes: [{model: chat, targets: [{local: m1}]}]\n"
     "cache: 256\n",
     HP_ERR_FORMAT, ":4: cache:", "expected a mapping"},
    {"cost_not_number", BASE_MODELS "routes: [{model: chat, targets: [{local: m1}]}]\n"
     "runtime_cost_per_hour: cheap\n",
     HP_ERR_FORMAT, ":4: runtime_cost_per_hour:", "expected a number"},
    {"yaml_syntax", BASE_MODELS "routes: [{model: chat\n  targets: }\n",
     HP_ERR_FORMAT, ":4: yaml:", ""},
    {"two_documents", BASE_MODELS "routes: [{model: chat, targets: [{local: m1}]}]\n---\nlisten: {}\n",
     HP_ERR_FORMAT, ":4: ---:", "one YAML document"},
    {"root_not_mapping", "- a\n- b\n",
     HP_ERR_FORMAT, ":1: :", "expected a mapping"},
    /* Empty strings are refused for every key, at the key's line. */
    {"empty_upstream_name", BASE_MODELS
     "upstreams:\n  - {name: \"\", kind: openai, base_url: \"https://x.example\"}\n"
     BASE_ROUTE_HEAD "    targets: [{local: m1}]\n",
     HP_ERR_FORMAT, ":4: upstreams[0].name:", "must be non-empty"},
    {"empty_route_model", BASE_MODELS BASE_UPS
     "routes:\n  - model: ''\n    targets: [{local: m1}]\n",
     HP_ERR_FORMAT, ":6: routes[0].model:", "must be non-empty"},
    {"empty_target_upstream", BASE_MODELS BASE_UPS BASE_ROUTE_HEAD
     "    targets:\n      - {upstream: \"\", model: x}\n",
     HP_ERR_FORMAT, ":8: routes[0].targets[0].upstream:", "must be non-empty"},
    {"empty_target_model", BASE_MODELS BASE_UPS BASE_ROUTE_HEAD
     "    targets:\n      - {upstream: lab, model: \"\"}\n",
     HP_ERR_FORMAT, ":8: routes[0].targets[0].model:", "must be non-empty"},
    {"empty_database", BASE_MODELS BASE_UPS BASE_ROUTE_HEAD
     "    targets: [{local: m1}]\ndatabase: \"\"\n",
     HP_ERR_FORMAT, ":8: database:", "must be non-empty"},
    {"empty_model_path", "models:\n  - {name: m1, path: ''}\n"
     "routes: [{model: chat, targets: [{local: m1}]}]\n",
     HP_ERR_FORMAT, ":2: models[0].path:", "must be non-empty"},
    {"empty_listen_host", "listen: {host: \"\"}\n" BASE_MODELS
     "routes: [{model: chat, targets: [{local: m1}]}]\n",
     HP_ERR_FORMAT, ":1: listen.host:", "must be non-empty"},
    /* A pasted key that happens to be a valid C identifier. */
    {"api_key_env_holds_identifier_key", BASE_MODELS
     "upstreams:\n  - {name: lab, kind: openai, base_url: \"https://x.example\", "
     "api_key_env: gsk_8fJ2kLmN0pQrStUvWxYz1234567890AbCdEfGhIjKlMnOpQr}\n"
     BASE_ROUTE_HEAD "    targets: [{local: m1}]\n",
     HP_ERR_INVALID, ":4: upstreams[0].api_key_env:", "must name an environment variable"},
    {"api_key_env_too_long", BASE_MODELS
     "upstreams:\n  - {name: lab, kind: openai, base_url: \"https://x.example\", "
     "api_key_env: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA}\n"
     BASE_ROUTE_HEAD "    targets: [{local: m1}]\n",
     HP_ERR_INVALID, ":4: upstreams[0].api_key_env:", "at most 64 characters"},
    {"admin_key_env_holds_key", BASE_MODELS BASE_ROUTE_HEAD
     "    targets: [{local: m1}]\nauth: {admin_key_env: sk-abc-admin}\n",
     HP_ERR_INVALID, ":6: auth.admin_key_env:", "must name an environment variable"},
    {"base_url_user_pass", BASE_MODELS
     "upstreams:\n  - {name: lab, kind: openai, base_url: \"https://bob:sk-secret-9@x.example/v1\"}\n"
     BASE_ROUTE_HEAD "    targets: [{local: m1}]\n",
     HP_ERR_INVALID, ":4: upstreams[0].base_url:", "credentials in base_url are refused; use api_key_env"},
    {"base_url_user_only", BASE_MODELS
     "upstreams:\n  - {name: lab, kind: openai, base_url: \"http://sk-secret-7@x.example\"}\n"
     BASE_ROUTE_HEAD "    targets: [{local: m1}]\n",
     HP_ERR_INVALID, ":4: upstreams[0].base_url:", "credentials in base_url"},
    /* A route's written first_token_ms against the upstream's total. */
    {"route_first_token_past_upstream_total", BASE_MODELS
     "upstreams:\n  - {name: lab, kind: openai, base_url: \"https://x.example\", timeouts: {total_ms: 2000}}\n"
     BASE_ROUTE_HEAD "    targets: [{upstream: lab, model: x}]\n    timeouts:\n      first_token_ms: 5000\n",
     HP_ERR_RANGE, ":9: routes[0].timeouts.first_token_ms:", "longer than total_ms (2000) of upstream 'lab'"},
    {"upstream_first_token_past_total", BASE_MODELS
     "upstreams:\n  - {name: lab, kind: openai, base_url: \"https://x.example\", timeouts: {first_token_ms: 3000, total_ms: 2000}}\n"
     BASE_ROUTE_HEAD "    targets: [{local: m1}]\n",
     HP_ERR_RANGE, ":4: upstreams[0].timeouts.first_token_ms:", "longer than total_ms"},
};

/* gwconf_bad_cases_name_line_and_key: each bad config fails with its code
 * and "FILE:LINE: KEY: message", and leaves *out NULL. */
static void gwconf_bad_cases_name_line_and_key(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        const bad_case *b = &BAD[i];
        const char *path = write_conf(b->text);
        hp_gwconf *c = (hp_gwconf *)(uintptr_t)1;
        hp_errbuf eb = {{0}};
        hp_err e = hp_gwconf_load(path, &c, &eb);
        char want[300];
        snprintf(want, sizeof want, "%s%s", path, b->where);
        int ok = e == b->code && !c && !strncmp(eb.msg, want, strlen(want)) &&
                 strstr(eb.msg, b->says);
        if (!ok)
            print_error("case %s: got code %d msg '%s'; want code %d '%s' ... '%s'\n",
                        b->name, e, eb.msg, b->code, want, b->says);
        assert_true(ok);
        /* Secrets never echo: the literal key is not in the message. */
        assert_null(strstr(eb.msg, "sk-secret"));
        assert_null(strstr(eb.msg, "sk-abc"));
        assert_null(strstr(eb.msg, "gsk_8fJ2"));
        assert_null(strstr(eb.msg, "bob"));
    }
}

/* gwconf_timeout_defaults_fit_total: a default (or, in a route, an
 * inherited) connect_ms / first_token_ms longer than a written total_ms is
 * cut to it; written values stay as written. */
static void gwconf_timeout_defaults_fit_total(void **state)
{
    (void)state;
    static const char *text =
        "models:\n  - {name: m1, path: a.gguf}\n"
        "upstreams:\n"
        "  - {name: a, kind: openai, base_url: \"https://a.example\", timeouts: {total_ms: 1000}}\n"
        "  - {name: b, kind: openai, base_url: \"https://b.example\", timeouts: {connect_ms: 200, total_ms: 1500}}\n"
        "  - {name: c, kind: openai, base_url: \"https://c.example\", timeouts: {first_token_ms: 20000}}\n"
        "routes:\n"
        "  - model: short\n"
        "    targets: [{upstream: c, model: x}, {local: m1}]\n"
        "    timeouts: {total_ms: 1000}\n"
        "  - model: mixed\n"
        "    targets: [{upstream: c, model: x}]\n"
        "    timeouts: {first_token_ms: 700, total_ms: 1000}\n"
        "  - model: plain\n"
        "    targets: [{upstream: b, model: x}]\n";
    hp_gwconf *c = NULL;
    hp_errbuf eb = {{0}};
    hp_err e = hp_gwconf_parse("t", text, strlen(text), &c, &eb);
    if (e)
        print_error("%s\n", eb.msg);
    assert_int_equal(e, HP_OK);
    const hp_gwconf_upstream *a = &c->upstreams[0], *b = &c->upstreams[1];
    assert_int_equal(a->timeouts.connect_ms, 1000);
    assert_int_equal(a->timeouts.first_token_ms, 1000);
    assert_int_equal(a->timeouts.total_ms, 1000);
    assert_int_equal(b->timeouts.connect_ms, 200);
    assert_int_equal(b->timeouts.first_token_ms, 1500);
    assert_int_equal(c->upstreams[2].timeouts.first_token_ms, 20000);
    assert_int_equal(c->upstreams[2].timeouts.total_ms, HP_GWCONF_DEFAULT_TOTAL_MS);
    for (size_t i = 0; i < 2; i++) { /* upstream c, then the local model */
        const hp_gwconf_route *r = &c->routes[0];
        hp_gwconf_timeouts t = hp_gwconf_timeouts_for(c, r, &r->targets[i]);
        assert_int_equal(t.connect_ms, 1000);
        assert_int_equal(t.first_token_ms, 1000);
        assert_int_equal(t.total_ms, 1000);
    }
    const hp_gwconf_route *r = &c->routes[1];
    hp_gwconf_timeouts t = hp_gwconf_timeouts_for(c, r, &r->targets[0]);
    assert_int_equal(t.connect_ms, 1000);
    assert_int_equal(t.first_token_ms, 700);
    r = &c->routes[2];
    t = hp_gwconf_timeouts_for(c, r, &r->targets[0]);
    assert_int_equal(t.connect_ms, 200);
    assert_int_equal(t.first_token_ms, 1500);
    assert_int_equal(t.total_ms, 1500);
    hp_gwconf_free(c);
}

/* gwconf_io_errors: a missing file is an I/O error naming the path. */
static void gwconf_io_errors(void **state)
{
    (void)state;
    hp_gwconf *c = NULL;
    hp_errbuf eb = {{0}};
    char path[300];
    snprintf(path, sizeof path, "%s/absent.yaml", tmpdir);
    assert_int_equal(hp_gwconf_load(path, &c, &eb), HP_ERR_IO);
    assert_null(c);
    assert_non_null(strstr(eb.msg, path));
    assert_int_equal(hp_gwconf_load(tmpdir, &c, &eb) != HP_OK, 1);
    assert_int_equal(hp_gwconf_load(NULL, &c, &eb), HP_ERR_INVALID);
    assert_int_equal(hp_gwconf_parse("x", NULL, 0, &c, NULL), HP_ERR_INVALID);
}

/* gwconf_aliases_bounded: YAML aliases, even a self-referencing one, meet
 * only type checks: the walk follows the schema, not the tree. */
static void gwconf_aliases_bounded(void **state)
{
    (void)state;
    const char *texts[] = {
        "listen: &a {host: *a}\nroutes: []\n",
        "models: &m [*m]\nroutes: []\n",
        "models:\n  - &x {name: m1, path: a}\nroutes: [{model: c, targets: [{local: m1}]}]\ncache: *x\n",
    };
    for (size_t i = 0; i < 3; i++) {
        hp_gwconf *c = NULL;
        hp_errbuf eb = {{0}};
        assert_int_not_equal(hp_gwconf_parse("a", texts[i], strlen(texts[i]), &c, &eb), HP_OK);
        assert_null(c);
    }
}

/* gwconf_fuzz_never_crashes: every prefix of the example and thousands of
 * byte-mutated copies load or fail cleanly, with a message on failure. */
static void gwconf_fuzz_never_crashes(void **state)
{
    (void)state;
    size_t n = strlen(EXAMPLE);
    char *buf = malloc(n + 64);
    assert_non_null(buf);
    for (size_t len = 0; len <= n; len++) {
        hp_gwconf *c = NULL;
        hp_errbuf eb = {{0}};
        if (hp_gwconf_parse("p", EXAMPLE, len, &c, &eb) == HP_OK)
            hp_gwconf_free(c);
        else
            assert_true(eb.msg[0] != '\0');
    }
    static const char alphabet[] = "{}[],:-#&*!|>'\"%@` \n\t0123456789aZ\\~.-";
    uint64_t s = 0x9E3779B97F4A7C15ull;
    int ok = 0;
    for (int iter = 0; iter < 4000; iter++) {
        memcpy(buf, EXAMPLE, n);
        size_t len = n;
        int edits = 1 + iter % 4;
        for (int k = 0; k < edits; k++) {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            size_t at = (size_t)(s >> 8) % len;
            char ch = alphabet[(s >> 40) % (sizeof alphabet - 1)];
            switch (s % 3) {
            case 0: buf[at] = ch; break;                       /* replace */
            case 1: memmove(buf + at, buf + at + 1, len - at - 1); len--; break;
            default:                                            /* insert */
                if (len < n + 60) {
                    memmove(buf + at + 1, buf + at, len - at);
                    buf[at] = ch;
                    len++;
                }
            }
        }
        hp_gwconf *c = NULL;
        hp_errbuf eb = {{0}};
        if (hp_gwconf_parse("f", buf, len, &c, &eb) == HP_OK) {
            ok++;
            assert_true(c->n_routes >= 1 && c->routes[0].n_targets >= 1);
            hp_gwconf_free(c);
        } else {
            assert_null(c);
            assert_true(eb.msg[0] == 'f');
        }
    }
    /* Some mutations land in comments or values and stay valid. */
    assert_true(ok > 0);
    free(buf);
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(gwconf_example_parses),
        cmocka_unit_test(gwconf_defaults_filled),
        cmocka_unit_test(gwconf_bad_cases_name_line_and_key),
        cmocka_unit_test(gwconf_timeout_defaults_fit_total),
        cmocka_unit_test(gwconf_io_errors),
        cmocka_unit_test(gwconf_aliases_bounded),
        cmocka_unit_test(gwconf_fuzz_never_crashes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
