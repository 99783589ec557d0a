/* config.h: the gateway's YAML configuration as plain C structs.
 *
 * Owns parsing (libyaml) and validation of hotpath.yaml: listen address,
 * local models, upstreams, routes, prices, database and cache. Every error
 * names the file, the line and the key ("FILE:LINE: routes[0].retries: ...").
 * The structs are read-only after hp_gwconf_load and live in one arena that
 * hp_gwconf_free releases. Included by the CLI and, later, the gateway; it
 * knows nothing of HTTP, tensors or the engine. Secrets never appear here:
 * upstream keys are named by environment variable (api_key_env) only.
 * Keys, types and defaults are documented in docs/CONFIG.md. */
#ifndef HP_GATEWAY_CONFIG_H
#define HP_GATEWAY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

/* Default values (docs/CONFIG.md lists them with their keys). */
#define HP_GWCONF_DEFAULT_HOST "127.0.0.1"
#define HP_GWCONF_DEFAULT_PORT 8080
#define HP_GWCONF_DEFAULT_CONNECT_MS 5000
#define HP_GWCONF_DEFAULT_FIRST_TOKEN_MS 30000
#define HP_GWCONF_DEFAULT_TOTAL_MS 600000
#define HP_GWCONF_DEFAULT_CIRCUIT_FAILURES 5
#define HP_GWCONF_DEFAULT_CIRCUIT_COOLDOWN_MS 30000
#define HP_GWCONF_DEFAULT_CACHE_TTL_S 300
#define HP_GWCONF_DEFAULT_ADMIN_KEY_ENV "HOTPATH_ADMIN_KEY"
/* Config files are small; a bound keeps a wrong path (a model file, a
 * device) from being slurped into libyaml. */
#define HP_GWCONF_MAX_FILE_BYTES (4u << 20)

typedef enum hp_gwconf_kind {
    HP_GWCONF_OPENAI = 0, /* any OpenAI-compatible server */
    HP_GWCONF_ANTHROPIC   /* Anthropic Messages API */
} hp_gwconf_kind;

/* Timeouts in milliseconds. In a route, 0 means "not set here: use the
 * upstream's value" (see hp_gwconf_timeouts_for). */
typedef struct hp_gwconf_timeouts {
    int64_t connect_ms;     /* TCP+TLS connect */
    int64_t first_token_ms; /* request sent -> first body byte */
    int64_t total_ms;       /* whole exchange */
} hp_gwconf_timeouts;

/* A model served by the built-in runtime. 0 in an option = runtime default
 * (the same defaults as `hotpath serve`). */
typedef struct hp_gwconf_model {
    const char *name; /* arena; public name used by `local:` targets */
    const char *path; /* arena; GGUF file or HF folder, as written */
    int ctx_size;     /* 0 = model's own (at most 4096), else >= 16 */
    int parallel;     /* 0 = serve's default (4) */
    int threads;      /* 0 = all cores */
    int line;         /* 1-based line of the entry, for later messages */
} hp_gwconf_model;

typedef struct hp_gwconf_upstream {
    const char *name;        /* arena */
    hp_gwconf_kind kind;
    const char *base_url;    /* arena; http:// or https://, no trailing / */
    const char *api_key_env; /* arena; env var NAME or NULL (no auth) */
    hp_gwconf_timeouts timeouts; /* all > 0 (defaults filled in) */
    int line;
} hp_gwconf_upstream;

/* One place a request can go: an upstream model or a local model.
 * Exactly one of upstream / local is >= 0. */
typedef struct hp_gwconf_target {
    int upstream;      /* index into hp_gwconf.upstreams, or -1 */
    int local;         /* index into hp_gwconf.models, or -1 */
    const char *model; /* arena; model name sent upstream; NULL if local */
    uint32_t weight;   /* share of traffic; 0 for fallback entries */
    int line;
} hp_gwconf_target;

typedef struct hp_gwconf_route {
    const char *model;          /* arena; what clients send as "model" */
    hp_gwconf_target *targets;  /* arena; n_targets >= 1, weights sum > 0 */
    size_t n_targets;
    hp_gwconf_target *fallback; /* arena; tried in order; may be empty */
    size_t n_fallback;
    int *fallback_codes;        /* arena; HTTP statuses 400..599 */
    size_t n_fallback_codes;
    bool fallback_on_timeout;   /* a connect/first-token/total timeout */
    bool fallback_on_connect;   /* connect refused / DNS / TLS failure */
    int retries;                /* per target, before moving on; 0..10 */
    hp_gwconf_timeouts timeouts;/* 0 fields inherit the upstream's */
    int circuit_failures;       /* consecutive failures to open; 0 = off */
    int64_t circuit_cooldown_ms;/* open -> half-open delay */
    int line;
} hp_gwconf_route;

/* USD per million tokens for one upstream model. */
typedef struct hp_gwconf_price {
    const char *model;   /* arena */
    double input;
    double output;
    double cached_input; /* defaults to input when not given */
} hp_gwconf_price;

typedef struct hp_gwconf {
    const char *path;          /* arena; file it was loaded from */
    const char *listen_host;   /* arena */
    int listen_port;           /* 0..65535; 0 = any free port */
    hp_gwconf_model *models;   /* arena */
    size_t n_models;
    hp_gwconf_upstream *upstreams; /* arena */
    size_t n_upstreams;
    hp_gwconf_route *routes;   /* arena; n_routes >= 1 */
    size_t n_routes;
    hp_gwconf_price *prices;   /* arena */
    size_t n_prices;
    double runtime_cost_per_hour; /* USD; 0 = local requests cost nothing */
    const char *database;      /* arena; NULL = default in the data dir */
    uint32_t cache_max_mb;     /* 0 = response cache off */
    int64_t cache_ttl_s;
    bool require_keys;         /* auth.require_keys: clients need a key */
    const char *admin_key_env; /* auth.admin_key_env: env var holding the
                                  admin key for /admin/ endpoints */
    struct hp_arena *_arena;   /* owns every string and array above */
} hp_gwconf;

/* Parse and validate the YAML file at path. On success *out owns a new
 * config (free with hp_gwconf_free). On failure *out is NULL and eb (if
 * non-NULL) holds "PATH:LINE: KEY: message" (or "PATH: message" when no
 * line applies, e.g. an unreadable file). Returns HP_ERR_IO (unreadable),
 * HP_ERR_FORMAT (YAML syntax, unknown key, wrong type, bad value),
 * HP_ERR_RANGE (number out of range), HP_ERR_NOT_FOUND (target naming an
 * unknown upstream or model), HP_ERR_INVALID (duplicate names, a literal
 * api_key, an api_key_env / admin_key_env that is not a variable name,
 * credentials in a base_url, all-zero weights, empty routes) or
 * HP_ERR_NOMEM. Values of secret-bearing keys are never echoed in eb. */
hp_err hp_gwconf_load(const char *path, hp_gwconf **out, hp_errbuf *eb);

/* Same as hp_gwconf_load, from text already in memory (len bytes, need not
 * be NUL-terminated); name stands in for the path in messages. Lets tests
 * and fuzzers skip the file system. */
hp_err hp_gwconf_parse(const char *name, const char *text, size_t len,
                       hp_gwconf **out, hp_errbuf *eb);

/* Release a config and everything in it. Accepts NULL. */
void hp_gwconf_free(hp_gwconf *c);

/* Look-ups by name; NULL when absent. Linear: configs hold tens of names. */
const hp_gwconf_upstream *hp_gwconf_upstream_find(const hp_gwconf *c,
                                                  const char *name);
const hp_gwconf_model *hp_gwconf_model_find(const hp_gwconf *c,
                                            const char *name);
const hp_gwconf_route *hp_gwconf_route_find(const hp_gwconf *c,
                                            const char *model);
const hp_gwconf_price *hp_gwconf_price_find(const hp_gwconf *c,
                                            const char *model);

/* The timeouts that apply to target t of route r: the route's values where
 * set, else the upstream's; for a local target, the route's values where
 * set, else the defaults. When the route sets total_ms, an inherited
 * connect_ms or first_token_ms longer than it is cut to total_ms. */
hp_gwconf_timeouts hp_gwconf_timeouts_for(const hp_gwconf *c,
                                          const hp_gwconf_route *r,
                                          const hp_gwconf_target *t);

/* "openai" or "anthropic". Never NULL. */
const char *hp_gwconf_kind_name(hp_gwconf_kind k);

#endif
