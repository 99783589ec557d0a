/* cmd_keys.c: `hotpath keys create|list|revoke`: manage the gateway's
 * virtual API keys.
 *
 * Works on the same SQLite file as a running gateway (WAL mode), so keys
 * created or revoked here take effect there at once. The database is
 * --db PATH, else the `database` key of --config FILE (relative to the
 * file's folder), else the default in the user's data directory. Only
 * create makes the database (and its folder); list and revoke refuse a
 * path where none exists rather than leave an empty one. A secret
 * is printed exactly once, by create, on stdout; nothing here ever writes
 * a secret or a command-line argument that could be one to stderr. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "gateway/config.h"
#include "gateway/keys.h"

#define DB_OPTS_HELP \
    "  --db PATH        key database (default: the config's `database`,\n" \
    "                   else $XDG_DATA_HOME/hotpath/hotpath.db or\n" \
    "                   ~/.local/share/hotpath/hotpath.db)\n" \
    "  --config FILE    take the database from this gateway config; a\n" \
    "                   relative path there is relative to FILE's folder\n" \
    "  -h, --help       this help\n"

static void keys_usage(FILE *f)
{
    fprintf(f,
        "usage: hotpath keys create [options]\n"
        "       hotpath keys list [--json] [--db PATH | --config FILE]\n"
        "       hotpath keys revoke ID [--db PATH | --config FILE]\n\n"
        "Manage the gateway's virtual API keys. Clients send a key's secret\n"
        "as 'Authorization: Bearer hp-...'; only a salted hash is stored, so\n"
        "the secret is shown once, by create. Changes apply to a running\n"
        "gateway at once. Only create makes the database; list and revoke\n"
        "fail on a path where there is none. Run 'hotpath keys ACTION\n"
        "--help' for options.\n\n"
        "exit status: 0 ok, 1 database error (none there included) or\n"
        "unknown key, 2 bad usage\n");
}

static void create_usage(FILE *f)
{
    fprintf(f,
        "usage: hotpath keys create [--name N] [--budget-usd X]\n"
        "         [--budget-tokens N] [--rpm N] [--tpm N] [--routes a,b]\n"
        "         [--db PATH | --config FILE]\n\n"
        "Create a key and print its id and secret. The secret cannot be\n"
        "shown again: store it now.\n\n"
        "options:\n"
        "  --name N           label shown by list (1 to 63 bytes)\n"
        "  --budget-usd X     lifetime spend limit in USD (default: none)\n"
        "  --budget-tokens N  lifetime limit on prompt + completion tokens\n"
        "  --rpm N            requests per minute (default 0: no limit)\n"
        "  --tpm N            tokens per minute (default 0: no limit)\n"
        "  --routes a,b       routes (client model names) the key may use\n"
        "                     (default: all); with --config each must be\n"
        "                     a route of that config, else unchecked\n"
        DB_OPTS_HELP);
}

static void list_usage(FILE *f)
{
    fprintf(f,
        "usage: hotpath keys list [--json] [--db PATH | --config FILE]\n\n"
        "List every key, revoked ones too, with its limits and spend.\n"
        "Secrets are never shown. The database must exist (keys create\n"
        "makes it).\n\n"
        "options:\n"
        "  --json           a JSON array instead of a table\n"
        DB_OPTS_HELP);
}

static void revoke_usage(FILE *f)
{
    fprintf(f,
        "usage: hotpath keys revoke ID [--db PATH | --config FILE]\n\n"
        "Revoke the key with id ID (as shown by list, e.g. k3f9a2c71d0e4);\n"
        "it stops working at once. Revoking twice is not an error. The\n"
        "database must exist.\n\n"
        "options:\n"
        DB_OPTS_HELP);
}

enum { OPT_DB = 256, OPT_CONFIG, OPT_NAME, OPT_BUDGET_USD, OPT_BUDGET_TOK,
       OPT_RPM, OPT_TPM, OPT_ROUTES, OPT_JSON };

/* Print "hotpath keys ACT: unknown option '--x'" naming only the option
 * (up to '='), never a value that might be a secret. */
static int bad_option(const char *act, int c, char **argv,
                      const struct option *opts)
{
    const char *arg = argv[optind - 1];
    int len = (int)strcspn(arg, "=");
    bool known = false;
    for (const struct option *o = opts; o->name && arg[0] == '-' &&
                                        arg[1] == '-'; o++)
        if ((int)strlen(o->name) == len - 2 &&
            !strncmp(o->name, arg + 2, (size_t)len - 2))
            known = true;
    if (c == ':')
        fprintf(stderr, "hotpath keys %s: option '%.*s' needs a value\n",
                act, len, arg);
    else if (known && arg[len] == '=')
        fprintf(stderr, "hotpath keys %s: option '%.*s' takes no value\n",
                act, len, arg);
    else if (optopt && optopt < 256 && arg[0] == '-' && arg[1] != '-')
        fprintf(stderr, "hotpath keys %s: unknown option '-%c'\n", act,
                optopt);
    else
        fprintf(stderr, "hotpath keys %s: unknown option '%.*s'\n", act,
                len, arg);
    return 2;
}

/* Find the database path into buf. 0 ok; else the exit status (message
 * printed). With conf non-NULL, *conf receives the loaded --config (NULL
 * without one; free with hp_gwconf_free). */
static int resolve_db(const char *act, const char *db, const char *config,
                      char *buf, size_t n, hp_gwconf **conf)
{
    if (conf)
        *conf = NULL;
    if (db && config) {
        fprintf(stderr, "hotpath keys %s: give --db or --config, not both\n",
                act);
        return 2;
    }
    if (db) {
        if (!db[0]) {
            fprintf(stderr, "hotpath keys %s: --db: empty path\n", act);
            return 2;
        }
        if ((size_t)snprintf(buf, n, "%s", db) >= n) {
            fprintf(stderr, "hotpath keys %s: --db: path too long\n", act);
            return 2;
        }
        return 0;
    }
    const char *from_conf = NULL;
    hp_gwconf *c = NULL;
    if (config) {
        hp_errbuf eb = {{0}};
        if (hp_gwconf_load(config, &c, &eb) != HP_OK) {
            fprintf(stderr, "%s\n", eb.msg);
            return 1;
        }
        from_conf = c->database;
    }
    int rc = 0;
    if (from_conf && from_conf[0] == '/') {
        if ((size_t)snprintf(buf, n, "%s", from_conf) >= n)
            rc = 1;
    } else if (from_conf) {
        const char *slash = strrchr(config, '/');
        int dirlen = slash ? (int)(slash - config) : 0;
        int w = slash ? snprintf(buf, n, "%.*s/%s", dirlen, config, from_conf)
                      : snprintf(buf, n, "%s", from_conf);
        if (w < 0 || (size_t)w >= n)
            rc = 1;
    } else if (!hp_keys_default_path(buf, n)) {
        fprintf(stderr, "hotpath keys %s: no default database (set "
                "XDG_DATA_HOME or HOME, or pass --db)\n", act);
        rc = 1;
    }
    if (rc == 1 && from_conf)
        fprintf(stderr, "hotpath keys %s: database path too long\n", act);
    if (conf && !rc)
        *conf = c;
    else
        hp_gwconf_free(c);
    return rc;
}

/* Open the key database at path; only create makes a missing one. */
static hp_keys *open_db(const char *act, const char *path, bool create)
{
    hp_keys *k = NULL;
    hp_errbuf eb = {{0}};
    hp_err e = create ? hp_keys_open(path, &k, &eb)
                      : hp_keys_open_existing(path, &k, &eb);
    if (e != HP_OK)
        fprintf(stderr, "hotpath keys %s: %s\n", act, eb.msg);
    return k;
}

/* With a config, every name in the --routes list must be one of its
 * routes, as POST /admin/keys requires. Names are not echoed (see the
 * top of the file); empty names are left to hp_keys_create. 0 or 2. */
static int check_routes(const hp_gwconf *c, const char *routes,
                        const char *config)
{
    size_t i = 0;
    for (const char *p = routes; c && p && *p; i++) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        while (len && *p == ' ') {
            p++;
            len--;
        }
        while (len && p[len - 1] == ' ')
            len--;
        char name[256];
        bool found = !len;
        if (len && len < sizeof name) {
            memcpy(name, p, len);
            name[len] = '\0';
            found = hp_gwconf_route_find(c, name) != NULL;
        }
        if (!found) {
            fprintf(stderr, "hotpath keys create: routes[%zu]: not a route "
                    "of this gateway (%s)\n", i, config);
            return 2;
        }
        if (!comma)
            break;
        p = comma + 1;
    }
    return 0;
}

static int keys_create(int argc, char **argv)
{
    static const struct option opts[] = {
        {"name", required_argument, NULL, OPT_NAME},
        {"budget-usd", required_argument, NULL, OPT_BUDGET_USD},
        {"budget-tokens", required_argument, NULL, OPT_BUDGET_TOK},
        {"rpm", required_argument, NULL, OPT_RPM},
        {"tpm", required_argument, NULL, OPT_TPM},
        {"routes", required_argument, NULL, OPT_ROUTES},
        {"db", required_argument, NULL, OPT_DB},
        {"config", required_argument, NULL, OPT_CONFIG},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    hp_key_spec s = {.name = NULL, .budget_usd = -1, .budget_tokens = -1,
                     .rpm = 0, .tpm = 0, .routes = NULL};
    const char *db = NULL, *config = NULL;
    optind = 0; /* full getopt reset */
    opterr = 0;
    for (;;) {
        int c = getopt_long(argc, argv, ":h", opts, NULL);
        if (c == -1)
            break;
        long v;
        double d;
        switch (c) {
        case 'h':
            create_usage(stdout);
            return 0;
        case OPT_NAME:
            if (!optarg[0]) {
                fprintf(stderr, "hotpath keys create: --name: must be "
                        "non-empty (leave it out for no name)\n");
                return 2;
            }
            s.name = optarg;
            break;
        case OPT_BUDGET_USD:
            if (!hp_arg_double(optarg, 0, 1e9, &d)) {
                fprintf(stderr, "hotpath keys create: --budget-usd: expected "
                        "a number from 0 to 1e9\n");
                return 2;
            }
            s.budget_usd = d;
            break;
        case OPT_BUDGET_TOK:
        case OPT_TPM:
            if (!hp_arg_long(optarg, 0, LONG_MAX, &v)) {
                fprintf(stderr, "hotpath keys create: --%s: expected a "
                        "whole number >= 0\n", hp_arg_name(opts, c));
                return 2;
            }
            if (c == OPT_TPM)
                s.tpm = v;
            else
                s.budget_tokens = v;
            break;
        case OPT_RPM:
            if (!hp_arg_long(optarg, 0, INT_MAX, &v)) {
                fprintf(stderr, "hotpath keys create: --rpm: expected a "
                        "whole number >= 0\n");
                return 2;
            }
            s.rpm = (int)v;
            break;
        case OPT_ROUTES:
            s.routes = optarg;
            break;
        case OPT_DB:
            db = optarg;
            break;
        case OPT_CONFIG:
            config = optarg;
            break;
        default:
            return bad_option("create", c, argv, opts);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "hotpath keys create: unexpected argument (see "
                "'hotpath keys create --help')\n");
        return 2;
    }
    char path[4096];
    hp_gwconf *conf = NULL;
    int rc = resolve_db("create", db, config, path, sizeof path, &conf);
    if (rc)
        return rc;
    /* checked before the database is opened, so a refusal creates nothing */
    rc = check_routes(conf, s.routes, config);
    hp_gwconf_free(conf);
    if (rc)
        return rc;
    hp_keys *k = open_db("create", path, true);
    if (!k)
        return 1;
    char secret[HP_KEY_SECRET_MAX], id[HP_KEY_ID_MAX];
    hp_errbuf eb = {{0}};
    hp_err e = hp_keys_create(k, &s, secret, id, &eb);
    hp_keys_close(k);
    if (e == HP_ERR_INVALID) {
        fprintf(stderr, "hotpath keys create: %s\n", eb.msg);
        return 2;
    }
    if (e != HP_OK) {
        fprintf(stderr, "hotpath keys create: %s\n", eb.msg);
        return 1;
    }
    printf("id: %s\nsecret: %s\n", id, secret);
    fflush(stdout);
    OPENSSL_cleanse(secret, sizeof secret);
    fprintf(stderr, "hotpath keys: store the secret now; it cannot be shown "
            "again (only its hash is kept in %s)\n", path);
    return 0;
}

/* "spent/budget" with "-" for no budget. */
static void fmt_pair_usd(char *buf, size_t n, json_t *spent, json_t *budget)
{
    if (json_is_number(budget))
        snprintf(buf, n, "%.6g/%.6g", json_number_value(spent),
                 json_number_value(budget));
    else
        snprintf(buf, n, "%.6g/-", json_number_value(spent));
}

static void fmt_pair_int(char *buf, size_t n, json_t *a, json_t *b,
                         bool a_zero_is_none)
{
    char x[24], y[24];
    if (a_zero_is_none && json_integer_value(a) == 0)
        snprintf(x, sizeof x, "-");
    else
        snprintf(x, sizeof x, "%lld", (long long)json_integer_value(a));
    if (!json_is_integer(b) || (a_zero_is_none && json_integer_value(b) == 0))
        snprintf(y, sizeof y, "-");
    else
        snprintf(y, sizeof y, "%lld", (long long)json_integer_value(b));
    snprintf(buf, n, "%s/%s", x, y);
}

static void print_table(json_t *arr)
{
    printf("%-14s %-16s %-16s %-7s %-22s %-20s %-14s %s\n", "ID", "NAME",
           "CREATED (UTC)", "REVOKED", "USD SPENT/BUDGET",
           "TOKENS SPENT/BUDGET", "RPM/TPM", "ROUTES");
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o) {
        const char *name = json_string_value(json_object_get(o, "name"));
        time_t t = (time_t)json_integer_value(json_object_get(o, "created"));
        struct tm tm;
        char created[32] = "-";
        if (gmtime_r(&t, &tm))
            strftime(created, sizeof created, "%Y-%m-%d %H:%M", &tm);
        char usd[48], tok[48], rate[48], routes[600] = "(all)";
        fmt_pair_usd(usd, sizeof usd, json_object_get(o, "spent_usd"),
                     json_object_get(o, "budget_usd"));
        fmt_pair_int(tok, sizeof tok, json_object_get(o, "spent_tokens"),
                     json_object_get(o, "budget_tokens"), false);
        fmt_pair_int(rate, sizeof rate, json_object_get(o, "rpm"),
                     json_object_get(o, "tpm"), true);
        size_t j, len = 0;
        json_t *r;
        json_array_foreach(json_object_get(o, "routes"), j, r) {
            int w = snprintf(routes + len, sizeof routes - len, "%s%s",
                             j ? "," : "", json_string_value(r));
            if (w < 0 || (size_t)w >= sizeof routes - len)
                break;
            len += (size_t)w;
        }
        printf("%-14s %-16s %-16s %-7s %-22s %-20s %-14s %s\n",
               json_string_value(json_object_get(o, "id")),
               name && name[0] ? name : "-", created,
               json_is_true(json_object_get(o, "revoked")) ? "yes" : "no",
               usd, tok, rate, routes);
    }
}

static int keys_list(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, OPT_JSON},
        {"db", required_argument, NULL, OPT_DB},
        {"config", required_argument, NULL, OPT_CONFIG},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *db = NULL, *config = NULL;
    bool as_json = false;
    optind = 0;
    opterr = 0;
    for (;;) {
        int c = getopt_long(argc, argv, ":h", opts, NULL);
        if (c == -1)
            break;
        switch (c) {
        case 'h':
            list_usage(stdout);
            return 0;
        case OPT_JSON:
            as_json = true;
            break;
        case OPT_DB:
            db = optarg;
            break;
        case OPT_CONFIG:
            config = optarg;
            break;
        default:
            return bad_option("list", c, argv, opts);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "hotpath keys list: unexpected argument (see "
                "'hotpath keys list --help')\n");
        return 2;
    }
    char path[4096];
    int rc = resolve_db("list", db, config, path, sizeof path, NULL);
    if (rc)
        return rc;
    hp_keys *k = open_db("list", path, false);
    if (!k)
        return 1;
    json_t *arr = NULL;
    hp_errbuf eb = {{0}};
    hp_err e = hp_keys_list(k, &arr, &eb);
    hp_keys_close(k);
    if (e != HP_OK) {
        fprintf(stderr, "hotpath keys list: %s\n", eb.msg);
        return 1;
    }
    if (as_json) {
        json_dumpf(arr, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
    } else {
        print_table(arr);
    }
    json_decref(arr);
    return 0;
}

/* Key ids are "k" + 12 lowercase hex; anything else is refused without
 * being echoed, since a pasted secret must not land on stderr. */
static bool looks_like_id(const char *s)
{
    if (strlen(s) != 13 || s[0] != 'k')
        return false;
    for (int i = 1; i < 13; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static int keys_revoke(int argc, char **argv)
{
    static const struct option opts[] = {
        {"db", required_argument, NULL, OPT_DB},
        {"config", required_argument, NULL, OPT_CONFIG},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *db = NULL, *config = NULL;
    optind = 0;
    opterr = 0;
    for (;;) {
        int c = getopt_long(argc, argv, ":h", opts, NULL);
        if (c == -1)
            break;
        switch (c) {
        case 'h':
            revoke_usage(stdout);
            return 0;
        case OPT_DB:
            db = optarg;
            break;
        case OPT_CONFIG:
            config = optarg;
            break;
        default:
            return bad_option("revoke", c, argv, opts);
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "hotpath keys revoke: missing key ID (see "
                "'hotpath keys list')\n");
        return 2;
    }
    if (argc - optind > 1) {
        fprintf(stderr, "hotpath keys revoke: one key ID at a time\n");
        return 2;
    }
    const char *id = argv[optind];
    if (!looks_like_id(id)) {
        fprintf(stderr, "hotpath keys revoke: not a key id (ids look like "
                "k3f9a2c71d0e4; pass the id, not the secret)\n");
        return 2;
    }
    char path[4096];
    int rc = resolve_db("revoke", db, config, path, sizeof path, NULL);
    if (rc)
        return rc;
    hp_keys *k = open_db("revoke", path, false);
    if (!k)
        return 1;
    hp_errbuf eb = {{0}};
    hp_err e = hp_keys_revoke(k, id, &eb);
    hp_keys_close(k);
    if (e != HP_OK) {
        fprintf(stderr, "hotpath keys revoke: %s\n", eb.msg);
        return 1;
    }
    printf("revoked %s\n", id);
    return 0;
}

int hp_cmd_keys(int argc, char **argv)
{
    if (argc < 2) {
        keys_usage(stderr);
        return 2;
    }
    const char *act = argv[1];
    if (!strcmp(act, "--help") || !strcmp(act, "-h") || !strcmp(act, "help")) {
        keys_usage(stdout);
        return 0;
    }
    /* Each action sees argv[0] = its own name, like a subcommand. */
    if (!strcmp(act, "create"))
        return keys_create(argc - 1, argv + 1);
    if (!strcmp(act, "list"))
        return keys_list(argc - 1, argv + 1);
    if (!strcmp(act, "revoke"))
        return keys_revoke(argc - 1, argv + 1);
    fprintf(stderr, "hotpath keys: unknown action (expected create, list "
            "or revoke; see 'hotpath keys --help')\n");
    return 2;
}
