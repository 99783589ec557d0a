/* config.c: load and validate the gateway's YAML config (see config.h).
 *
 * libyaml's document API builds a node tree with a start mark on every
 * node, so each check can name the line it fails on. The walk follows the
 * schema, never the tree's own shape, so its depth is fixed: an alias that
 * makes the tree cyclic (`&a [*a]`) only ever meets a type check. Every
 * mapping is checked first for non-scalar, duplicate and unknown keys; its
 * fields are then fetched by name. Names are resolved after all sections
 * are read, so sections may come in any order. Everything the result holds
 * lives in one arena. */
#include "gateway/config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "util/arena.h"

#define KEYLEN 192
#define MAX_TIMEOUT_MS 86400000LL /* a day: anything longer is a typo */

typedef struct ctx {
    yaml_document_t *doc; /* borrows */
    hp_arena *a;          /* borrows; the config's arena */
    const char *name;     /* borrows; file name for messages */
    hp_errbuf *eb;        /* borrows; may be NULL */
    hp_gwconf *c;         /* borrows; being filled */
} ctx;

/* ---- messages ---------------------------------------------------------- */

static void keyf(char *dst, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void keyf(char *dst, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vsnprintf(dst, n, fmt, ap);
    va_end(ap);
    if (r < 0)
        dst[0] = '\0';
}

static hp_err fail(ctx *x, const yaml_node_t *n, const char *key, hp_err code,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Every validation error goes through here, so all share the
 * "FILE:LINE: KEY: message" shape the CLI prints as is. */
static hp_err fail(ctx *x, const yaml_node_t *n, const char *key, hp_err code,
                   const char *fmt, ...)
{
    char msg[HP_ERRBUF_LEN];
    va_list ap;
    va_start(ap, fmt);
    int r = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (r < 0)
        msg[0] = '\0';
    unsigned long line = n ? (unsigned long)n->start_mark.line + 1 : 1;
    return hp_errf(x->eb, code, "%s:%lu: %s: %s", x->name, line, key, msg);
}

static const char *type_name(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_SCALAR_NODE: return "a scalar";
    case YAML_SEQUENCE_NODE: return "a list";
    case YAML_MAPPING_NODE: return "a mapping";
    case YAML_NO_NODE: break;
    }
    return "nothing";
}

/* ---- node access --------------------------------------------------------- */

static yaml_node_t *node(ctx *x, int id)
{
    return yaml_document_get_node(x->doc, id);
}

static const char *sval(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

/* A plain scalar YAML reads as null: `key:`, `key: ~`, `key: null`. */
static bool is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE ||
        n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = sval(n);
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") ||
           !strcmp(s, "Null") || !strcmp(s, "NULL");
}

static size_t seq_len(const yaml_node_t *n)
{
    return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

/* Check that n is a mapping whose keys are unique scalars drawn from
 * allowed (NULL-terminated; NULL list = any key, as in prices). A literal
 * api_key gets its own message: keys belong in the environment. */
static hp_err check_map(ctx *x, yaml_node_t *n, const char *path,
                        const char *const *allowed)
{
    if (n->type != YAML_MAPPING_NODE)
        return fail(x, n, path, HP_ERR_FORMAT, "expected a mapping, got %s",
                    type_name(n));
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
         p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node(x, p->key);
        if (!k || k->type != YAML_SCALAR_NODE)
            return fail(x, k ? k : n, path, HP_ERR_FORMAT,
                        "keys must be plain names");
        const char *kn = sval(k);
        char kp[KEYLEN];
        keyf(kp, sizeof kp, "%s%s%s", path, *path ? "." : "", kn);
        if (strlen(kn) != k->data.scalar.length || !*kn)
            return fail(x, k, kp, HP_ERR_FORMAT, "empty key or NUL byte in key");
        for (yaml_node_pair_t *q = n->data.mapping.pairs.start; q < p; q++) {
            yaml_node_t *k2 = node(x, q->key);
            if (!strcmp(sval(k2), kn))
                return fail(x, k, kp, HP_ERR_INVALID,
                            "duplicate key (first on line %lu)",
                            (unsigned long)k2->start_mark.line + 1);
        }
        if (!allowed)
            continue;
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = !strcmp(*a, kn);
        if (ok)
            continue;
        if (!strcmp(kn, "api_key"))
            return fail(x, k, kp, HP_ERR_INVALID,
                        "API keys must not be written in the config: name "
                        "an environment variable with api_key_env instead");
        if (!strcmp(kn, "weight"))
            return fail(x, k, kp, HP_ERR_FORMAT,
                        "unknown key (weight applies to targets, not to "
                        "fallback entries)");
        return fail(x, k, kp, HP_ERR_FORMAT, "unknown key");
    }
    return HP_OK;
}

/* Value of key in mapping n, or NULL. Safe on any node (callers fetch
 * before checking the error of check_map): a non-mapping has no keys. */
static yaml_node_t *map_get(ctx *x, yaml_node_t *n, const char *key)
{
    if (!n || n->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
         p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node(x, p->key);
        if (k && k->type == YAML_SCALAR_NODE && !strcmp(sval(k), key))
            return node(x, p->value);
    }
    return NULL;
}

/* ---- typed values -------------------------------------------------------- */

/* String value: copied into the arena. Empty strings are refused here, for
 * every key at once: each string key names something (a file, a model, an
 * upstream), and "" would only fail later and further from its line. */
static hp_err get_str(ctx *x, yaml_node_t *v, const char *key,
                      const char **out)
{
    if (v->type != YAML_SCALAR_NODE || is_null(v))
        return fail(x, v, key, HP_ERR_FORMAT, "expected a string, got %s",
                    is_null(v) ? "null" : type_name(v));
    if (!v->data.scalar.length)
        return fail(x, v, key, HP_ERR_FORMAT, "must be non-empty");
    if (strlen(sval(v)) != v->data.scalar.length)
        return fail(x, v, key, HP_ERR_FORMAT, "NUL byte in string");
    for (const char *s = sval(v); *s; s++)
        if ((unsigned char)*s < 0x20)
            return fail(x, v, key, HP_ERR_FORMAT, "control character in string");
    *out = hp_arena_strndup(x->a, sval(v), v->data.scalar.length);
    return *out ? HP_OK : hp_errf(x->eb, HP_ERR_NOMEM, "%s: out of memory", x->name);
}

static hp_err get_int(ctx *x, yaml_node_t *v, const char *key, int64_t lo,
                      int64_t hi, int64_t *out)
{
    if (v->type != YAML_SCALAR_NODE || is_null(v))
        return fail(x, v, key, HP_ERR_FORMAT, "expected an integer, got %s",
                    is_null(v) ? "null" : type_name(v));
    const char *s = sval(v);
    char *end = NULL;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (end == s || *end || isspace((unsigned char)*s))
        return fail(x, v, key, HP_ERR_FORMAT, "expected an integer, got '%.40s'", s);
    if (errno == ERANGE || n < lo || n > hi)
        return fail(x, v, key, HP_ERR_RANGE,
                    "%.40s is out of range (%lld..%lld)", s, (long long)lo,
                    (long long)hi);
    *out = n;
    return HP_OK;
}

static hp_err get_int32(ctx *x, yaml_node_t *v, const char *key, int64_t lo,
                        int64_t hi, int *out)
{
    int64_t n = 0;
    hp_err e = get_int(x, v, key, lo, hi, &n);
    if (!e)
        *out = (int)n;
    return e;
}

static hp_err get_num(ctx *x, yaml_node_t *v, const char *key, double lo,
                      double hi, double *out)
{
    if (v->type != YAML_SCALAR_NODE || is_null(v))
        return fail(x, v, key, HP_ERR_FORMAT, "expected a number, got %s",
                    is_null(v) ? "null" : type_name(v));
    const char *s = sval(v);
    char *end = NULL;
    errno = 0;
    double d = strtod(s, &end);
    if (end == s || *end || isspace((unsigned char)*s) || !isfinite(d))
        return fail(x, v, key, HP_ERR_FORMAT, "expected a number, got '%.40s'", s);
    if (d < lo || d > hi)
        return fail(x, v, key, HP_ERR_RANGE, "%.40s is out of range (%g..%g)",
                    s, lo, hi);
    *out = d;
    return HP_OK;
}

/* Required field: its value, or an error naming the missing key at the
 * line of the mapping that lacks it. */
static hp_err need(ctx *x, yaml_node_t *map, const char *path,
                   const char *key, yaml_node_t **out)
{
    *out = map_get(x, map, key);
    if (*out)
        return HP_OK;
    char kp[KEYLEN];
    keyf(kp, sizeof kp, "%s.%s", path, key);
    return fail(x, map, kp, HP_ERR_FORMAT, "missing (required)");
}

static void *alloc_n(ctx *x, size_t n, size_t size)
{
    return hp_arena_alloc(x->a, n ? n * size : 1);
}

/* ---- sections ------------------------------------------------------------ */

static hp_err parse_listen(ctx *x, yaml_node_t *n)
{
    static const char *const keys[] = {"host", "port", NULL};
    hp_err e = check_map(x, n, "listen", keys);
    yaml_node_t *v;
    v = map_get(x, n, "host");
    if (!e && v)
        e = get_str(x, v, "listen.host", &x->c->listen_host);
    v = map_get(x, n, "port");
    if (!e && v)
        e = get_int32(x, v, "listen.port", 0, 65535, &x->c->listen_port);
    return e;
}

static hp_err parse_timeouts(ctx *x, yaml_node_t *n, const char *path,
                             hp_gwconf_timeouts *t)
{
    static const char *const keys[] = {"connect_ms", "first_token_ms",
                                       "total_ms", NULL};
    hp_err e = check_map(x, n, path, keys);
    int64_t *dst[] = {&t->connect_ms, &t->first_token_ms, &t->total_ms};
    for (int i = 0; i < 3 && !e; i++) {
        yaml_node_t *v = map_get(x, n, keys[i]);
        char kp[KEYLEN];
        keyf(kp, sizeof kp, "%s.%s", path, keys[i]);
        if (v)
            e = get_int(x, v, kp, 1, MAX_TIMEOUT_MS, dst[i]);
    }
    if (!e && t->first_token_ms && t->total_ms &&
        t->first_token_ms > t->total_ms) {
        char kp[KEYLEN];
        keyf(kp, sizeof kp, "%s.first_token_ms", path);
        e = fail(x, map_get(x, n, "first_token_ms"), kp, HP_ERR_RANGE,
                 "%lld is longer than total_ms (%lld)",
                 (long long)t->first_token_ms, (long long)t->total_ms);
    }
    return e;
}

/* A names list must not repeat: name_of(i) gives entry i's name. */
static hp_err check_unique(ctx *x, yaml_node_t *seq, const char *sect,
                           const char *field, const char *const *names,
                           size_t n)
{
    for (size_t i = 1; i < n; i++)
        for (size_t j = 0; j < i; j++)
            if (!strcmp(names[i], names[j])) {
                yaml_node_t *item = node(x, seq->data.sequence.items.start[i]);
                yaml_node_t *first = node(x, seq->data.sequence.items.start[j]);
                char kp[KEYLEN];
                keyf(kp, sizeof kp, "%s[%zu].%s", sect, i, field);
                return fail(x, map_get(x, item, field), kp, HP_ERR_INVALID,
                            "duplicate %s '%.60s' (first on line %lu)", field,
                            names[i], (unsigned long)first->start_mark.line + 1);
            }
    return HP_OK;
}

static hp_err parse_models(ctx *x, yaml_node_t *n)
{
    static const char *const keys[] = {"name", "path", "ctx_size", "parallel",
                                       "threads", NULL};
    if (n->type != YAML_SEQUENCE_NODE)
        return fail(x, n, "models", HP_ERR_FORMAT, "expected a list, got %s",
                    type_name(n));
    size_t cnt = seq_len(n);
    hp_gwconf_model *m = alloc_n(x, cnt, sizeof *m);
    const char **names = alloc_n(x, cnt, sizeof *names);
    if (!m || !names)
        return hp_errf(x->eb, HP_ERR_NOMEM, "%s: out of memory", x->name);
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_t *it = node(x, n->data.sequence.items.start[i]), *v;
        char p[KEYLEN], kp[KEYLEN];
        keyf(p, sizeof p, "models[%zu]", i);
        hp_err e = check_map(x, it, p, keys);
        m[i].line = (int)it->start_mark.line + 1;
        if (!e)
            e = need(x, it, p, "name", &v);
        if (!e) {
            keyf(kp, sizeof kp, "%s.name", p);
            e = get_str(x, v, kp, &m[i].name);
        }
        if (!e)
            e = need(x, it, p, "path", &v);
        if (!e) {
            keyf(kp, sizeof kp, "%s.path", p);
            e = get_str(x, v, kp, &m[i].path);
        }
        v = map_get(x, it, "ctx_size");
        if (!e && v) {
            keyf(kp, sizeof kp, "%s.ctx_size", p);
            e = get_int32(x, v, kp, 0, 1 << 24, &m[i].ctx_size);
            if (!e && m[i].ctx_size > 0 && m[i].ctx_size < 16)
                e = fail(x, v, kp, HP_ERR_RANGE,
                         "%d is too small: give 0 (model's own) or at least 16",
                         m[i].ctx_size);
        }
        v = map_get(x, it, "parallel");
        if (!e && v) {
            keyf(kp, sizeof kp, "%s.parallel", p);
            e = get_int32(x, v, kp, 0, 4096, &m[i].parallel);
        }
        v = map_get(x, it, "threads");
        if (!e && v) {
            keyf(kp, sizeof kp, "%s.threads", p);
            e = get_int32(x, v, kp, 0, 4096, &m[i].threads);
        }
        if (e)
            return e;
        names[i] = m[i].name;
    }
    x->c->models = m;
    x->c->n_models = cnt;
    return check_unique(x, n, "models", "name", names, cnt);
}

/* Inherited timeouts (defaults, or an upstream's under a route) never
 * outlast a total_ms written at this level: `{total_ms: 1000}` alone must
 * neither fail nor wait 30 s. own: the values written here (0 = not
 * written); explicit conflicts are the loader's errors, not cut here. */
static void clamp_inherited(hp_gwconf_timeouts *t,
                            const hp_gwconf_timeouts *own)
{
    if (!own->total_ms)
        return;
    if (!own->connect_ms && t->connect_ms > t->total_ms)
        t->connect_ms = t->total_ms;
    if (!own->first_token_ms && t->first_token_ms > t->total_ms)
        t->first_token_ms = t->total_ms;
}

#define ENV_NAME_MAX 64
#define ENV_NAME_RULE "must name an environment variable (A-Z, 0-9, _; " \
                      "at most 64 characters), not hold a key"

/* [A-Z_][A-Z0-9_]*, at most ENV_NAME_MAX. Stricter than POSIX on purpose:
 * pasted keys (gsk_..., sk-...) mix cases, real variable names do not. */
static bool env_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (!n || n > ENV_NAME_MAX || isdigit((unsigned char)*s))
        return false;
    for (; *s; s++)
        if (!(*s >= 'A' && *s <= 'Z') && !isdigit((unsigned char)*s) &&
            *s != '_')
            return false;
    return true;
}

/* True when the authority of url (after the scheme's pre bytes) holds
 * userinfo ("user:pass@" or "user@"). */
static bool url_has_userinfo(const char *url, size_t pre)
{
    size_t end = pre + strcspn(url + pre, "/?#");
    const char *at = memchr(url + pre, '@', end - pre);
    return at != NULL;
}

static hp_err parse_upstream(ctx *x, yaml_node_t *it, const char *p,
                             hp_gwconf_upstream *u)
{
    static const char *const keys[] = {"name", "kind", "base_url",
                                       "api_key_env", "timeouts", NULL};
    char kp[KEYLEN];
    yaml_node_t *v;
    const char *s = NULL;
    u->line = (int)it->start_mark.line + 1;
    hp_err e = check_map(x, it, p, keys);
    if (!e)
        e = need(x, it, p, "name", &v);
    if (!e) {
        keyf(kp, sizeof kp, "%s.name", p);
        e = get_str(x, v, kp, &u->name);
    }
    if (!e)
        e = need(x, it, p, "kind", &v);
    if (!e) {
        keyf(kp, sizeof kp, "%s.kind", p);
        e = get_str(x, v, kp, &s);
        if (!e && !strcmp(s, "openai"))
            u->kind = HP_GWCONF_OPENAI;
        else if (!e && !strcmp(s, "anthropic"))
            u->kind = HP_GWCONF_ANTHROPIC;
        else if (!e)
            e = fail(x, v, kp, HP_ERR_FORMAT,
                     "'%.40s' is not a kind: use openai or anthropic", s);
    }
    if (!e)
        e = need(x, it, p, "base_url", &v);
    if (!e) {
        keyf(kp, sizeof kp, "%s.base_url", p);
        e = get_str(x, v, kp, &s);
        size_t pre = 0;
        if (!e && !strncasecmp(s, "http://", 7))
            pre = 7;
        else if (!e && !strncasecmp(s, "https://", 8))
            pre = 8;
        /* Checked before the messages below, which echo the URL. */
        if (!e && url_has_userinfo(s, pre))
            e = fail(x, v, kp, HP_ERR_INVALID,
                     "credentials in base_url are refused; use api_key_env");
        if (!e && (!pre || !s[pre] || s[pre] == '/' || strpbrk(s, " \t")))
            e = fail(x, v, kp, HP_ERR_FORMAT,
                     "'%.60s' is not an http:// or https:// URL", s);
        if (!e) {
            /* Drop trailing slashes so paths join as base_url + "/chat/...". */
            size_t len = strlen(s);
            while (len > pre + 1 && s[len - 1] == '/')
                len--;
            u->base_url = hp_arena_strndup(x->a, s, len);
            if (!u->base_url)
                e = hp_errf(x->eb, HP_ERR_NOMEM, "%s: out of memory", x->name);
        }
    }
    v = map_get(x, it, "api_key_env");
    if (!e && v) {
        keyf(kp, sizeof kp, "%s.api_key_env", p);
        e = get_str(x, v, kp, &u->api_key_env);
        /* A value that is not a variable name is most likely the key
         * itself pasted in: refuse it without echoing it. */
        if (!e && !env_name_ok(u->api_key_env))
            e = fail(x, v, kp, HP_ERR_INVALID, ENV_NAME_RULE);
    }
    u->timeouts.connect_ms = HP_GWCONF_DEFAULT_CONNECT_MS;
    u->timeouts.first_token_ms = HP_GWCONF_DEFAULT_FIRST_TOKEN_MS;
    u->timeouts.total_ms = HP_GWCONF_DEFAULT_TOTAL_MS;
    v = map_get(x, it, "timeouts");
    if (!e && v) {
        hp_gwconf_timeouts t = {0, 0, 0};
        keyf(kp, sizeof kp, "%s.timeouts", p);
        e = parse_timeouts(x, v, kp, &t);
        if (!e && t.connect_ms)
            u->timeouts.connect_ms = t.connect_ms;
        if (!e && t.first_token_ms)
            u->timeouts.first_token_ms = t.first_token_ms;
        if (!e && t.total_ms)
            u->timeouts.total_ms = t.total_ms;
        if (!e)
            clamp_inherited(&u->timeouts, &t);
        if (!e && u->timeouts.first_token_ms > u->timeouts.total_ms)
            e = fail(x, v, kp, HP_ERR_RANGE,
                     "first_token_ms (%lld) is longer than total_ms (%lld)",
                     (long long)u->timeouts.first_token_ms,
                     (long long)u->timeouts.total_ms);
    }
    return e;
}

static hp_err parse_upstreams(ctx *x, yaml_node_t *n)
{
    if (n->type != YAML_SEQUENCE_NODE)
        return fail(x, n, "upstreams", HP_ERR_FORMAT,
                    "expected a list, got %s", type_name(n));
    size_t cnt = seq_len(n);
    hp_gwconf_upstream *u = alloc_n(x, cnt, sizeof *u);
    const char **names = alloc_n(x, cnt, sizeof *names);
    if (!u || !names)
        return hp_errf(x->eb, HP_ERR_NOMEM, "%s: out of memory", x->name);
    for (size_t i = 0; i < cnt; i++) {
        char p[KEYLEN];
        keyf(p, sizeof p, "upstreams[%zu]", i);
        hp_err e = parse_upstream(x, node(x, n->data.sequence.items.start[i]),
                                  p, &u[i]);
        if (e)
            return e;
        names[i] = u[i].name;
    }
    x->c->upstreams = u;
    x->c->n_upstreams = cnt;
    return check_unique(x, n, "upstreams", "name", names, cnt);
}

/* One target or fallback entry; names are resolved against the models and
 * upstreams already read. */
static hp_err parse_target(ctx *x, yaml_node_t *it, const char *p,
                           bool weighted, hp_gwconf_target *t)
{
    static const char *const wkeys[] = {"upstream", "model", "local",
                                        "weight", NULL};
    static const char *const fkeys[] = {"upstream", "model", "local", NULL};
    char kp[KEYLEN];
    const char *name = NULL;
    t->upstream = t->local = -1;
    t->line = (int)it->start_mark.line + 1;
    hp_err e = check_map(x, it, p, weighted ? wkeys : fkeys);
    if (e)
        return e;
    yaml_node_t *up = map_get(x, it, "upstream"), *lo = map_get(x, it, "local");
    yaml_node_t *mo = map_get(x, it, "model"), *w = map_get(x, it, "weight");
    if ((up && lo) || (!up && !lo))
        return fail(x, it, p, HP_ERR_FORMAT,
                    "give exactly one of upstream (with model) or local");
    if (up) {
        keyf(kp, sizeof kp, "%s.upstream", p);
        e = get_str(x, up, kp, &name);
        for (size_t i = 0; !e && i < x->c->n_upstreams && t->upstream < 0; i++)
            if (!strcmp(x->c->upstreams[i].name, name))
                t->upstream = (int)i;
        if (!e && t->upstream < 0)
            e = fail(x, up, kp, HP_ERR_NOT_FOUND,
                     "no upstream named '%.60s' in upstreams", name);
        if (!e && !mo)
            e = need(x, it, p, "model", &mo);
        keyf(kp, sizeof kp, "%s.model", p);
        if (!e)
            e = get_str(x, mo, kp, &t->model);
    } else {
        keyf(kp, sizeof kp, "%s.local", p);
        e = get_str(x, lo, kp, &name);
        for (size_t i = 0; !e && i < x->c->n_models && t->local < 0; i++)
            if (!strcmp(x->c->models[i].name, name))
                t->local = (int)i;
        if (!e && t->local < 0)
            e = fail(x, lo, kp, HP_ERR_NOT_FOUND,
                     "no local model named '%.60s' in models", name);
        keyf(kp, sizeof kp, "%s.model", p);
        if (!e && mo)
            e = fail(x, mo, kp, HP_ERR_FORMAT,
                     "a local target takes no model: local names it");
    }
    t->weight = weighted ? 1 : 0;
    if (!e && w) {
        int64_t wv = 0;
        keyf(kp, sizeof kp, "%s.weight", p);
        e = get_int(x, w, kp, 0, 1000000, &wv);
        t->weight = (uint32_t)wv;
    }
    return e;
}

static hp_err parse_targets(ctx *x, yaml_node_t *n, const char *p,
                            bool weighted, hp_gwconf_target **out,
                            size_t *n_out)
{
    if (n->type != YAML_SEQUENCE_NODE)
        return fail(x, n, p, HP_ERR_FORMAT, "expected a list, got %s",
                    type_name(n));
    size_t cnt = seq_len(n);
    if (weighted && !cnt)
        return fail(x, n, p, HP_ERR_INVALID, "a route needs at least one target");
    hp_gwconf_target *t = alloc_n(x, cnt, sizeof *t);
    if (!t)
        return hp_errf(x->eb, HP_ERR_NOMEM, "%s: out of memory", x->name);
    uint64_t sum = 0;
    for (size_t i = 0; i < cnt; i++) {
        char ip[KEYLEN];
        keyf(ip, sizeof ip, "%s[%zu]", p, i);
        hp_err e = parse_target(x, node(x, n->data.sequence.items.start[i]),
                                ip, weighted, &t[i]);
        if (e)
            return e;
        sum += t[i].weight;
    }
    if (weighted && sum == 0)
        return fail(x, n, p, HP_ERR_INVALID,
                    "all weights are 0: at least one target needs weight > 0");
    *out = t;
    *n_out = cnt;
    return HP_OK;
}

static hp_err parse_fallback_on(ctx *x, yaml_node_t *n, const char *p,
                                hp_gwconf_route *r)
{
    if (n->type != YAML_SEQUENCE_NODE)
        return fail(x, n, p, HP_ERR_FORMAT, "expected a list, got %s",
                    type_name(n));
    size_t cnt = seq_len(n);
    r->fallback_codes = alloc_n(x, cnt, sizeof *r->fallback_codes);
    if (!r->fallback_codes)
        return hp_errf(x->eb, HP_ERR_NOMEM, "%s: out of memory", x->name);
    r->n_fallback_codes = 0;
    r->fallback_on_timeout = r->fallback_on_connect = false;
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_t *v = node(x, n->data.sequence.items.start[i]);
        char kp[KEYLEN];
        keyf(kp, sizeof kp, "%s[%zu]", p, i);
        if (v->type != YAML_SCALAR_NODE)
            return fail(x, v, kp, HP_ERR_FORMAT,
                        "expected an HTTP status or timeout/connect, got %s",
                        type_name(v));
        const char *s = sval(v);
        if (!strcmp(s, "timeout")) {
            r->fallback_on_timeout = true;
            continue;
        }
        if (!strcmp(s, "connect")) {
            r->fallback_on_connect = true;
            continue;
        }
        char *end = NULL;
        long code = strtol(s, &end, 10);
        if (end == s || *end || code < 400 || code > 599)
            return fail(x, v, kp, HP_ERR_FORMAT,
                        "'%.40s' is not an HTTP status 400-599, timeout or "
                        "connect", s);
        r->fallback_codes[r->n_fallback_codes++] = (int)code;
    }
    return HP_OK;
}

/* A route's own first_token_ms must fit in the total_ms each of its
 * targets inherits (the upstream's, or the default for a local target):
 * unlike an inherited value, a written one is never cut silently. */
static hp_err check_inherited_total(ctx *x, yaml_node_t *tn, const char *path,
                                    const hp_gwconf_route *r)
{
    for (size_t i = 0; i < r->n_targets + r->n_fallback; i++) {
        const hp_gwconf_target *t = i < r->n_targets
                                        ? &r->targets[i]
                                        : &r->fallback[i - r->n_targets];
        hp_gwconf_timeouts to = hp_gwconf_timeouts_for(x->c, r, t);
        if (to.first_token_ms <= to.total_ms)
            continue;
        char kp[KEYLEN];
        keyf(kp, sizeof kp, "%s.first_token_ms", path);
        if (t->upstream >= 0)
            return fail(x, map_get(x, tn, "first_token_ms"), kp, HP_ERR_RANGE,
                        "%lld is longer than total_ms (%lld) of upstream "
                        "'%.60s'; set total_ms here too",
                        (long long)to.first_token_ms, (long long)to.total_ms,
                        x->c->upstreams[t->upstream].name);
        return fail(x, map_get(x, tn, "first_token_ms"), kp, HP_ERR_RANGE,
                    "%lld is longer than the default total_ms (%lld); set "
                    "total_ms here too",
                    (long long)to.first_token_ms, (long long)to.total_ms);
    }
    return HP_OK;
}

static hp_err parse_route(ctx *x, yaml_node_t *it, const char *p,
                          hp_gwconf_route *r)
{
    static const char *const keys[] = {"model", "targets", "fallback",
                                       "fallback_on", "retries", "timeouts",
                                       "circuit", NULL};
    static const int default_codes[] = {429, 500, 502, 503, 504};
    char kp[KEYLEN];
    yaml_node_t *v;
    r->line = (int)it->start_mark.line + 1;
    r->circuit_failures = HP_GWCONF_DEFAULT_CIRCUIT_FAILURES;
    r->circuit_cooldown_ms = HP_GWCONF_DEFAULT_CIRCUIT_COOLDOWN_MS;
    hp_err e = check_map(x, it, p, keys);
    if (!e)
        e = need(x, it, p, "model", &v);
    if (!e) {
        keyf(kp, sizeof kp, "%s.model", p);
        e = get_str(x, v, kp, &r->model);
    }
    if (!e)
        e = need(x, it, p, "targets", &v);
    if (!e) {
        keyf(kp, sizeof kp, "%s.targets", p);
        e = parse_targets(x, v, kp, true, &r->targets, &r->n_targets);
    }
    v = map_get(x, it, "fallback");
    if (!e && v) {
        keyf(kp, sizeof kp, "%s.fallback", p);
        e = parse_targets(x, v, kp, false, &r->fallback, &r->n_fallback);
    }
    v = map_get(x, it, "fallback_on");
    if (!e && v) {
        keyf(kp, sizeof kp, "%s.fallback_on", p);
        e = parse_fallback_on(x, v, kp, r);
    } else if (!e) {
        size_t nc = sizeof default_codes / sizeof default_codes[0];
        r->fallback_codes = alloc_n(x, nc, sizeof *r->fallback_codes);
        if (!r->fallback_codes)
            return hp_errf(x->eb, HP_ERR_NOMEM, "%s: out of memory", x->name);
        memcpy(r->fallback_codes, default_codes, sizeof default_codes);
        r->n_fallback_codes = nc;
        r->fallback_on_timeout = r->fallback_on_connect = true;
    }
    v = map_get(x, it, "retries");
    if (!e && v) {
        keyf(kp, sizeof kp, "%s.retries", p);
        e = get_int32(x, v, kp, 0, 10, &r->retries);
    }
    v = map_get(x, it, "timeouts");
    if (!e && v) {
        keyf(kp, sizeof kp, "%s.timeouts", p);
        e = parse_timeouts(x, v, kp, &r->timeouts);
        if (!e && r->timeouts.first_token_ms && !r->timeouts.total_ms)
            e = check_inherited_total(x, v, kp, r);
    }
    v = map_get(x, it, "circuit");
    if (!e && v) {
        static const char *const ckeys[] = {"failures", "cooldown_ms", NULL};
        yaml_node_t *cv;
        keyf(kp, sizeof kp, "%s.circuit", p);
        e = check_map(x, v, kp, ckeys);
        cv = map_get(x, v, "failures");
        if (!e && cv) {
            keyf(kp, sizeof kp, "%s.circuit.failures", p);
            e = get_int32(x, cv, kp, 0, 1000, &r->circuit_failures);
        }
        cv = map_get(x, v, "cooldown_ms");
        if (!e && cv) {
            keyf(kp, sizeof kp, "%s.circuit.cooldown_ms", p);
            e = get_int(x, cv, kp, 1, MAX_TIMEOUT_MS, &r->circuit_cooldown_ms);
        }
    }
    return e;
}

static hp_err parse_routes(ctx *x, yaml_node_t *n)
{
    if (n->type != YAML_SEQUENCE_NODE)
        return fail(x, n, "routes", HP_ERR_FORMAT, "expected a list, got %s",
                    is_null(n) ? "null" : type_name(n));
    size_t cnt = seq_len(n);
    if (!cnt)
        return fail(x, n, "routes", HP_ERR_INVALID,
                    "empty: a config needs at least one route");
    hp_gwconf_route *r = alloc_n(x, cnt, sizeof *r);
    const char **names = alloc_n(x, cnt, sizeof *names);
    if (!r || !names)
        return hp_errf(x->eb, HP_ERR_NOMEM, "%s: out of memory", x->name);
    for (size_t i = 0; i < cnt; i++) {
        char p[KEYLEN];
        keyf(p, sizeof p, "routes[%zu]", i);
        hp_err e = parse_route(x, node(x, n->data.sequence.items.start[i]),
                               p, &r[i]);
        if (e)
            return e;
        names[i] = r[i].model;
    }
    x->c->routes = r;
    x->c->n_routes = cnt;
    return check_unique(x, n, "routes", "model", names, cnt);
}

static hp_err parse_prices(ctx *x, yaml_node_t *n)
{
    static const char *const keys[] = {"input", "output", "cached_input", NULL};
    hp_err e = check_map(x, n, "prices", NULL);
    if (e)
        return e;
    size_t cnt = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    hp_gwconf_price *pr = alloc_n(x, cnt, sizeof *pr);
    if (!pr)
        return hp_errf(x->eb, HP_ERR_NOMEM, "%s: out of memory", x->name);
    for (size_t i = 0; i < cnt && !e; i++) {
        yaml_node_pair_t *pp = &n->data.mapping.pairs.start[i];
        yaml_node_t *k = node(x, pp->key), *v = node(x, pp->value), *f;
        char p[KEYLEN], kp[KEYLEN];
        keyf(p, sizeof p, "prices.%s", sval(k));
        pr[i].model = hp_arena_strndup(x->a, sval(k), k->data.scalar.length);
        if (!pr[i].model)
            return hp_errf(x->eb, HP_ERR_NOMEM, "%s: out of memory", x->name);
        e = check_map(x, v, p, keys);
        if (!e)
            e = need(x, v, p, "input", &f);
        if (!e) {
            keyf(kp, sizeof kp, "%s.input", p);
            e = get_num(x, f, kp, 0, 1e6, &pr[i].input);
        }
        if (!e)
            e = need(x, v, p, "output", &f);
        if (!e) {
            keyf(kp, sizeof kp, "%s.output", p);
            e = get_num(x, f, kp, 0, 1e6, &pr[i].output);
        }
        pr[i].cached_input = pr[i].input;
        f = map_get(x, v, "cached_input");
        if (!e && f) {
            keyf(kp, sizeof kp, "%s.cached_input", p);
            e = get_num(x, f, kp, 0, 1e6, &pr[i].cached_input);
        }
    }
    x->c->prices = pr;
    x->c->n_prices = cnt;
    return e;
}

static hp_err parse_cache(ctx *x, yaml_node_t *n)
{
    static const char *const keys[] = {"max_mb", "ttl_s", NULL};
    hp_err e = check_map(x, n, "cache", keys);
    yaml_node_t *v;
    int64_t t = 0;
    v = map_get(x, n, "max_mb");
    if (!e && v) {
        e = get_int(x, v, "cache.max_mb", 0, 1 << 20, &t);
        x->c->cache_max_mb = (uint32_t)t;
    }
    v = map_get(x, n, "ttl_s");
    if (!e && v)
        e = get_int(x, v, "cache.ttl_s", 1, 31536000, &x->c->cache_ttl_s);
    return e;
}

static hp_err get_bool(ctx *x, yaml_node_t *v, const char *key, bool *out)
{
    const char *t = v->type == YAML_SCALAR_NODE ? sval(v) : NULL;
    if (t && (!strcmp(t, "true") || !strcmp(t, "yes") || !strcmp(t, "on"))) {
        *out = true;
        return HP_OK;
    }
    if (t && (!strcmp(t, "false") || !strcmp(t, "no") || !strcmp(t, "off"))) {
        *out = false;
        return HP_OK;
    }
    return fail(x, v, key, HP_ERR_FORMAT, "expected true or false, got %s",
                t ? t : type_name(v));
}

static hp_err parse_auth(ctx *x, yaml_node_t *n)
{
    static const char *const keys[] = {"require_keys", "admin_key_env", NULL};
    hp_err e = check_map(x, n, "auth", keys);
    yaml_node_t *v = map_get(x, n, "require_keys");
    if (!e && v)
        e = get_bool(x, v, "auth.require_keys", &x->c->require_keys);
    v = map_get(x, n, "admin_key_env");
    if (!e && v) {
        e = get_str(x, v, "auth.admin_key_env", &x->c->admin_key_env);
        /* Same rule and same silence as api_key_env: the value may be the
         * admin key itself, pasted in. */
        if (!e && !env_name_ok(x->c->admin_key_env))
            e = fail(x, v, "auth.admin_key_env", HP_ERR_INVALID, ENV_NAME_RULE);
    }
    return e;
}

/* The root: sections are fetched by name and read in dependency order
 * (models and upstreams before the routes that name them). */
static hp_err parse_root(ctx *x, yaml_node_t *root)
{
    static const char *const keys[] = {
        "listen", "models", "upstreams", "routes", "prices",
        "runtime_cost_per_hour", "database", "cache", "auth", NULL};
    hp_err e = check_map(x, root, "", keys);
    yaml_node_t *v;
    v = map_get(x, root, "listen");
    if (!e && v)
        e = parse_listen(x, v);
    v = map_get(x, root, "models");
    if (!e && v && !is_null(v))
        e = parse_models(x, v);
    v = map_get(x, root, "upstreams");
    if (!e && v && !is_null(v))
        e = parse_upstreams(x, v);
    if (!e) {
        v = map_get(x, root, "routes");
        if (v)
            e = parse_routes(x, v);
        else
            e = fail(x, root, "routes", HP_ERR_INVALID,
                     "missing: a config needs at least one route");
    }
    v = map_get(x, root, "prices");
    if (!e && v && !is_null(v))
        e = parse_prices(x, v);
    v = map_get(x, root, "runtime_cost_per_hour");
    if (!e && v)
        e = get_num(x, v, "runtime_cost_per_hour", 0, 1e6,
                    &x->c->runtime_cost_per_hour);
    v = map_get(x, root, "database");
    if (!e && v)
        e = get_str(x, v, "database", &x->c->database);
    v = map_get(x, root, "cache");
    if (!e && v)
        e = parse_cache(x, v);
    v = map_get(x, root, "auth");
    if (!e && v && !is_null(v))
        e = parse_auth(x, v);
    return e;
}

/* ---- public -------------------------------------------------------------- */

hp_err hp_gwconf_parse(const char *name, const char *text, size_t len,
                       hp_gwconf **out, hp_errbuf *eb)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    bool have_parser = false, have_doc = false;
    hp_err e = HP_OK;
    hp_arena *a = NULL;
    hp_gwconf *c = NULL;

    *out = NULL;
    if (!name)
        name = "<config>";
    if (!text && len)
        return hp_errf(eb, HP_ERR_INVALID, "%s: no text", name);
    a = hp_arena_new(0);
    c = a ? hp_arena_alloc(a, sizeof *c) : NULL;
    if (!c) {
        e = hp_errf(eb, HP_ERR_NOMEM, "%s: out of memory", name);
        goto fail;
    }
    c->_arena = a;
    c->path = hp_arena_strndup(a, name, strlen(name));
    c->listen_host = HP_GWCONF_DEFAULT_HOST;
    c->listen_port = HP_GWCONF_DEFAULT_PORT;
    c->cache_ttl_s = HP_GWCONF_DEFAULT_CACHE_TTL_S;
    c->admin_key_env = HP_GWCONF_DEFAULT_ADMIN_KEY_ENV;

    if (!yaml_parser_initialize(&parser)) {
        e = hp_errf(eb, HP_ERR_NOMEM, "%s: out of memory", name);
        goto fail;
    }
    have_parser = true;
    yaml_parser_set_input_string(&parser, (const unsigned char *)(text ? text : ""), len);
    if (!yaml_parser_load(&parser, &doc)) {
        e = hp_errf(eb, HP_ERR_FORMAT, "%s:%lu: yaml: %s%s%s", name,
                    (unsigned long)parser.problem_mark.line + 1,
                    parser.problem ? parser.problem : "syntax error",
                    parser.context ? " " : "",
                    parser.context ? parser.context : "");
        goto fail;
    }
    have_doc = true;
    ctx x = {&doc, a, name, eb, c};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) {
        e = hp_errf(eb, HP_ERR_INVALID,
                    "%s:1: routes: missing: the config is empty", name);
        goto fail;
    }
    e = parse_root(&x, root);
    if (e)
        goto fail;
    /* A second document would be silently ignored: refuse it instead. */
    yaml_document_t extra;
    if (!yaml_parser_load(&parser, &extra)) {
        e = hp_errf(eb, HP_ERR_FORMAT, "%s:%lu: yaml: %s", name,
                    (unsigned long)parser.problem_mark.line + 1,
                    parser.problem ? parser.problem : "syntax error");
        goto fail;
    }
    bool more = yaml_document_get_root_node(&extra) != NULL;
    unsigned long line = (unsigned long)extra.start_mark.line + 1;
    yaml_document_delete(&extra);
    if (more) {
        e = hp_errf(eb, HP_ERR_FORMAT,
                    "%s:%lu: ---: a config holds one YAML document", name, line);
        goto fail;
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    *out = c;
    return HP_OK;

fail:
    if (have_doc)
        yaml_document_delete(&doc);
    if (have_parser)
        yaml_parser_delete(&parser);
    hp_arena_free(a);
    return e;
}

hp_err hp_gwconf_load(const char *path, hp_gwconf **out, hp_errbuf *eb)
{
    *out = NULL;
    if (!path)
        return hp_errf(eb, HP_ERR_INVALID, "config: no path given");
    FILE *f = fopen(path, "rb");
    if (!f)
        return hp_errf(eb, HP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = HP_GWCONF_MAX_FILE_BYTES + 1;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return hp_errf(eb, HP_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t n = fread(buf, 1, cap, f);
    bool bad = ferror(f) != 0;
    fclose(f);
    hp_err e;
    if (bad)
        e = hp_errf(eb, HP_ERR_IO, "%s: read error", path);
    else if (n > HP_GWCONF_MAX_FILE_BYTES)
        e = hp_errf(eb, HP_ERR_TOO_LARGE, "%s: larger than %u bytes: not a config",
                    path, HP_GWCONF_MAX_FILE_BYTES);
    else
        e = hp_gwconf_parse(path, buf, n, out, eb);
    free(buf);
    return e;
}

void hp_gwconf_free(hp_gwconf *c)
{
    if (c)
        hp_arena_free(c->_arena);
}

const hp_gwconf_upstream *hp_gwconf_upstream_find(const hp_gwconf *c,
                                                  const char *name)
{
    for (size_t i = 0; c && name && i < c->n_upstreams; i++)
        if (!strcmp(c->upstreams[i].name, name))
            return &c->upstreams[i];
    return NULL;
}

const hp_gwconf_model *hp_gwconf_model_find(const hp_gwconf *c,
                                            const char *name)
{
    for (size_t i = 0; c && name && i < c->n_models; i++)
        if (!strcmp(c->models[i].name, name))
            return &c->models[i];
    return NULL;
}

const hp_gwconf_route *hp_gwconf_route_find(const hp_gwconf *c,
                                            const char *model)
{
    for (size_t i = 0; c && model && i < c->n_routes; i++)
        if (!strcmp(c->routes[i].model, model))
            return &c->routes[i];
    return NULL;
}

const hp_gwconf_price *hp_gwconf_price_find(const hp_gwconf *c,
                                            const char *model)
{
    for (size_t i = 0; c && model && i < c->n_prices; i++)
        if (!strcmp(c->prices[i].model, model))
            return &c->prices[i];
    return NULL;
}

hp_gwconf_timeouts hp_gwconf_timeouts_for(const hp_gwconf *c,
                                          const hp_gwconf_route *r,
                                          const hp_gwconf_target *t)
{
    hp_gwconf_timeouts base = {HP_GWCONF_DEFAULT_CONNECT_MS,
                               HP_GWCONF_DEFAULT_FIRST_TOKEN_MS,
                               HP_GWCONF_DEFAULT_TOTAL_MS};
    if (c && t && t->upstream >= 0 && (size_t)t->upstream < c->n_upstreams)
        base = c->upstreams[t->upstream].timeouts;
    if (r && r->timeouts.connect_ms)
        base.connect_ms = r->timeouts.connect_ms;
    if (r && r->timeouts.first_token_ms)
        base.first_token_ms = r->timeouts.first_token_ms;
    if (r && r->timeouts.total_ms)
        base.total_ms = r->timeouts.total_ms;
    if (r)
        clamp_inherited(&base, &r->timeouts);
    return base;
}

const char *hp_gwconf_kind_name(hp_gwconf_kind k)
{
    switch (k) {
    case HP_GWCONF_OPENAI: return "openai";
    case HP_GWCONF_ANTHROPIC: return "anthropic";
    }
    return "openai";
}
