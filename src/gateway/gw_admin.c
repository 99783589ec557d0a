/* gw_admin.c: the admin API: keys and the usage ledger over HTTP.
 *
 *   GET    /admin/keys          every key (no secrets)
 *   POST   /admin/keys          create one; the only time its secret is shown
 *   DELETE /admin/keys/{id}     revoke
 *   GET    /admin/usage?limit=N the newest ledger rows
 * Every call needs `Authorization: Bearer <admin key>`, the key being read
 * from the environment variable the config names (HOTPATH_ADMIN_KEY by
 * default); without it the admin API is off (403). Comparisons are
 * constant-time; keys are never logged. */
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/gw_internal.h"
#include "server/http_err.h"

static void err(struct evhttp_request *req, int status, const char *param,
                const char *code, const char *msg)
{
    hp_http_err_send(req, status, NULL, param, code, msg, NULL, NULL);
}

static void send_obj(struct evhttp_request *req, int status, json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (s)
        hp_http_send_json(req, status, s, strlen(s));
    else
        err(req, 503, NULL, NULL, "out of memory");
    if (s)
        OPENSSL_cleanse(s, strlen(s)); /* may hold a new secret */
    free(s);
    json_decref(o);
}

static bool admin_ok(hp_gw *g, struct evhttp_request *req)
{
    if (!g->admin_key) {
        char msg[200];
        snprintf(msg, sizeof msg, "The admin API is off: start the gateway "
                 "with the admin key in %.60s", g->c->admin_key_env);
        hp_http_err_send(req, 403, "permission_error", NULL, "admin_disabled",
                         msg, NULL, NULL);
        return false;
    }
    const char *a = evhttp_find_header(evhttp_request_get_input_headers(req),
                                       "Authorization");
    const char *tok = a && !strncasecmp(a, "Bearer ", 7) ? a + 7 : NULL;
    size_t kl = strlen(g->admin_key);
    if (!tok || strlen(tok) != kl || CRYPTO_memcmp(tok, g->admin_key, kl)) {
        hp_http_err_send(req, 401, "invalid_request_error", NULL,
                         "invalid_admin_key", tok ? "Incorrect admin key"
                                                  : "Missing admin key",
                         "WWW-Authenticate", "Bearer");
        return false;
    }
    return true;
}

/* Read an optional numeric field into *out (dflt when absent or null).
 * Integer fields must be JSON integers: the value is converted to an int
 * type later, and converting an out-of-range double is undefined. */
static hp_err num_field(const json_t *b, const char *name, bool integer,
                        double lo, double hi, double dflt, double *out,
                        char *msg, size_t n)
{
    const json_t *v = json_object_get(b, name);
    *out = dflt;
    if (!v || json_is_null(v))
        return HP_OK;
    bool type_ok = integer ? json_is_integer(v) : json_is_number(v);
    double x = type_ok ? json_number_value(v) : 0;
    if (!type_ok || !(x >= lo && x <= hi)) {
        snprintf(msg, n, "'%s' must be %s from %g to %g", name,
                 integer ? "an integer" : "a number", lo, hi);
        return HP_ERR_INVALID;
    }
    *out = x;
    return HP_OK;
}

static void create_key(hp_gw *g, struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    json_t *b = len ? json_loadb((const char *)evbuffer_pullup(in, -1), len, 0,
                                 NULL)
                    : json_object();
    if (!json_is_object(b)) {
        json_decref(b);
        err(req, 400, NULL, "invalid_json", "The body must be a JSON object");
        return;
    }
    char msg[200] = "";
    /* an unknown field is refused, as in the config: a misspelt
     * "budget" must not create a key without a budget */
    static const char *const known[] = {"name", "budget_usd", "budget_tokens",
                                        "rpm", "tpm", "routes", NULL};
    const char *fk;
    json_t *fv;
    json_object_foreach(b, fk, fv) {
        size_t j = 0;
        while (known[j] && strcmp(known[j], fk))
            j++;
        if (!known[j]) {
            snprintf(msg, sizeof msg, "'%.60s' is not a key field (known: "
                     "name, budget_usd, budget_tokens, rpm, tpm, routes)", fk);
            err(req, 400, fk, "unknown_parameter", msg);
            json_decref(b);
            return;
        }
    }
    /* integer fields are bounded so the casts below are defined */
    static const struct {
        const char *name;
        bool integer;
        double hi, dflt;
    } nums[4] = {{"budget_usd", false, 1e9, -1},
                 {"budget_tokens", true, 1e15, -1},
                 {"rpm", true, 1e9, 0},
                 {"tpm", true, 1e15, 0}};
    double val[4];
    for (size_t j = 0; j < sizeof nums / sizeof nums[0]; j++) {
        if (num_field(b, nums[j].name, nums[j].integer, 0, nums[j].hi,
                      nums[j].dflt, &val[j], msg, sizeof msg)) {
            err(req, 400, nums[j].name, "invalid_value", msg);
            json_decref(b);
            return;
        }
    }
    double usd = val[0], tok = val[1], rpm = val[2], tpm = val[3];
    const json_t *nm = json_object_get(b, "name");
    const json_t *routes = json_object_get(b, "routes");
    if (nm && !json_is_string(nm) && !json_is_null(nm)) {
        json_decref(b);
        err(req, 400, "name", "invalid_type", "'name' must be a string");
        return;
    }
    /* as `keys create --name ''`: a key has a real name or none */
    if (json_is_string(nm) && !json_string_length(nm)) {
        json_decref(b);
        err(req, 400, "name", "invalid_value", "'name' must be non-empty "
            "(leave it out for no name)");
        return;
    }
    char rlist[512] = "";
    size_t rl = 0, i;
    const json_t *v;
    if (routes && !json_is_array(routes) && !json_is_null(routes)) {
        json_decref(b);
        err(req, 400, "routes", "invalid_type",
            "'routes' must be an array of route names");
        return;
    }
    json_array_foreach(routes, i, v) {
        if (!json_is_string(v) || !hp_gwconf_route_find(g->c,
                                                        json_string_value(v))) {
            snprintf(msg, sizeof msg, "routes[%zu]: not a route of this "
                     "gateway", i);
            json_decref(b);
            err(req, 400, "routes", "invalid_value", msg);
            return;
        }
        int k = snprintf(rlist + rl, sizeof rlist - rl, "%s%s", rl ? "," : "",
                         json_string_value(v));
        if (k < 0 || (size_t)k >= sizeof rlist - rl) {
            json_decref(b);
            err(req, 400, "routes", "invalid_value", "'routes' is too long");
            return;
        }
        rl += (size_t)k;
    }
    hp_key_spec spec = {
        .name = json_is_string(nm) ? json_string_value(nm) : NULL,
        .budget_usd = usd, .budget_tokens = (int64_t)tok, .rpm = (int)rpm,
        .tpm = (int64_t)tpm, .routes = rlist};
    char secret[HP_KEY_SECRET_MAX], id[HP_KEY_ID_MAX];
    hp_errbuf eb;
    hp_err e = hp_keys_create(g->keys, &spec, secret, id, &eb);
    if (e) {
        json_decref(b);
        err(req, e == HP_ERR_INVALID ? 400 : 503, NULL, NULL, eb.msg);
        return;
    }
    /* spec.name borrows from b: release b only after the reply is packed */
    json_t *o = json_pack("{s:s, s:s, s:s?}", "id", id, "secret", secret,
                          "name", spec.name);
    json_decref(b);
    OPENSSL_cleanse(secret, sizeof secret);
    send_obj(req, 201, o);
}

void hp_gw_admin(hp_gw *g, struct evhttp_request *req, const char *path)
{
    if (!admin_ok(g, req))
        return;
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    hp_errbuf eb;
    if (!strcmp(path, "/keys")) {
        if (m == EVHTTP_REQ_GET) {
            json_t *arr = NULL;
            if (hp_keys_list(g->keys, &arr, &eb)) {
                err(req, 503, NULL, NULL, eb.msg);
                return;
            }
            send_obj(req, 200, json_pack("{s:s, s:o}", "object", "list",
                                         "data", arr));
            return;
        }
        if (m == EVHTTP_REQ_POST) {
            create_key(g, req);
            return;
        }
        hp_http_err_send(req, 405, "invalid_request_error", NULL,
                         "method_not_allowed", "allowed: GET, POST", "Allow",
                         "GET, POST");
        return;
    }
    if (!strncmp(path, "/keys/", 6) && path[6]) {
        if (m != EVHTTP_REQ_DELETE) {
            hp_http_err_send(req, 405, "invalid_request_error", NULL,
                             "method_not_allowed", "allowed: DELETE", "Allow",
                             "DELETE");
            return;
        }
        hp_err e = hp_keys_revoke(g->keys, path + 6, &eb);
        if (e == HP_ERR_NOT_FOUND) {
            err(req, 404, "id", "key_not_found", "No key has this id");
            return;
        }
        if (e) {
            err(req, 503, NULL, NULL, eb.msg);
            return;
        }
        send_obj(req, 200, json_pack("{s:s, s:b}", "id", path + 6, "revoked",
                                     1));
        return;
    }
    if (!strcmp(path, "/usage")) {
        if (m != EVHTTP_REQ_GET) {
            hp_http_err_send(req, 405, "invalid_request_error", NULL,
                             "method_not_allowed", "allowed: GET", "Allow",
                             "GET");
            return;
        }
        int limit = 100;
        struct evkeyvalq q;
        const char *query = evhttp_uri_get_query(
            evhttp_request_get_evhttp_uri(req));
        if (query && evhttp_parse_query_str(query, &q) == 0) {
            const char *l = evhttp_find_header(&q, "limit");
            if (l) {
                char *end = NULL;
                long v = strtol(l, &end, 10);
                if (!*l || *end || v < 1 || v > 100000) {
                    evhttp_clear_headers(&q);
                    err(req, 400, "limit", "invalid_value",
                        "'limit' must be an integer from 1 to 100000");
                    return;
                }
                limit = (int)v;
            }
            evhttp_clear_headers(&q);
        }
        json_t *arr = NULL;
        if (hp_ledger_recent(g->ledger, limit, &arr, &eb)) {
            err(req, 503, NULL, NULL, eb.msg);
            return;
        }
        send_obj(req, 200, json_pack("{s:s, s:o}", "object", "list", "data",
                                     arr));
        return;
    }
    err(req, 404, NULL, "unknown_url", "Unknown admin URL");
}
