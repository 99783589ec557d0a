/* keys.c: virtual API keys in SQLite, their budgets and rate limits.
 *
 * Owns the `keys` table (and the `meta` row naming its schema version) of
 * the gateway's database, the salted hashing of secrets, and the in-memory
 * per-key state behind hp_keys_admit/hp_keys_settle: reserved worst cases
 * and the 60-second RPM/TPM windows. Included by gateway/ and
 * cli/cmd_keys.c (see keys.h for the contract). Knows nothing of HTTP,
 * routes beyond their names, or prices: callers pass USD amounts in.
 *
 * Secrets: "hp-" + id + "." + base64url(32 random bytes). Only
 * SHA-256(salt || secret) is stored, salt 16 random bytes per key. No
 * function writes a secret into an hp_errbuf or onto stderr; buffers that
 * held one are cleansed before they go out of scope.
 *
 * Money is reserved in integer nano-USD so that 33 reservations of 0.03
 * against 1.00 sum exactly (floating sums drift at the boundary). */
#include "gateway/keys.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sqlite3.h>

#define SCHEMA_VERSION 1
#define SALT_LEN 16
#define HASH_LEN 32
#define RAND_LEN 32     /* random bytes in a secret */
#define RAND_B64_LEN 43 /* base64url of 32 bytes, unpadded */
#define ID_HEX 12
#define SECRET_LEN (3 + 1 + ID_HEX + 1 + RAND_B64_LEN) /* "hp-" k.. "." .. */
#define WINDOW_S 60
#define BUSY_MS 2000
/* Caps keep the integer sums below INT64_MAX: three capped terms add up
 * to < 2^63. 1e18 nano-USD is a billion dollars. */
#define NANO_CAP 1000000000000000000LL
#define TOKEN_CAP (INT64_C(1) << 61)
#define BUDGET_USD_MAX 1e9

/* One second of a sliding window: what was admitted/settled in it. */
typedef struct win_bucket {
    int64_t sec;     /* the absolute second this bucket holds */
    int64_t reqs;    /* requests admitted in that second */
    int64_t tokens;  /* tokens settled in that second */
} win_bucket;

/* Per-key in-memory state; restarts with the process. */
typedef struct key_state {
    int64_t rowid;
    int64_t resv_nano;   /* USD reserved by requests in flight, nano-USD */
    int64_t resv_tokens; /* tokens reserved by requests in flight */
    win_bucket win[WINDOW_S]; /* indexed by sec mod 60 */
} key_state;

struct hp_keys {
    sqlite3 *db;            /* owns */
    char *path;             /* owns; for messages */
    sqlite3_stmt *st_insert; /* owns, each of these */
    sqlite3_stmt *st_lookup;
    sqlite3_stmt *st_list;
    sqlite3_stmt *st_revoke;
    sqlite3_stmt *st_settle;
    /* owns; sorted by rowid. Never shrinks: one entry per key used since
     * start, ~1.5 KB each, which is fine for thousands of keys. */
    key_state *states;
    size_t n_states, cap_states;
};

/* ---- small helpers ------------------------------------------------------ */

static int64_t usd_to_nano(double usd)
{
    if (!(usd > 0)) /* NaN and negatives count as nothing */
        return 0;
    if (usd >= (double)NANO_CAP / 1e9)
        return NANO_CAP;
    return (int64_t)llround(usd * 1e9);
}

static int64_t tok_clamp(int64_t t)
{
    return t < 0 ? 0 : (t > TOKEN_CAP ? TOKEN_CAP : t);
}

static void hex_encode(const unsigned char *b, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[b[i] >> 4];
        out[2 * i + 1] = hx[b[i] & 15];
    }
    out[2 * n] = '\0';
}

/* Unpadded base64url; out holds 4*ceil(n/3) + 1 bytes. */
static void b64url_encode(const unsigned char *b, size_t n, char *out)
{
    static const char al[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)b[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)b[i + 1] << 8;
        if (i + 2 < n)
            v |= b[i + 2];
        out[o++] = al[(v >> 18) & 63];
        out[o++] = al[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = al[(v >> 6) & 63];
        if (i + 2 < n)
            out[o++] = al[v & 63];
    }
    out[o] = '\0';
}

static bool is_b64url(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static bool is_lhex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* Does s look like a key id ("k" + 12 lowercase hex)? */
static bool id_valid(const char *s, size_t n)
{
    if (n != 1 + ID_HEX || s[0] != 'k')
        return false;
    for (size_t i = 1; i < n; i++)
        if (!is_lhex(s[i]))
            return false;
    return true;
}

/* SHA-256(salt || secret) into out[HASH_LEN]. */
static bool hash_secret(const unsigned char *salt, const char *secret,
                        size_t slen, unsigned char *out)
{
    unsigned char buf[SALT_LEN + SECRET_LEN];
    unsigned int mdlen = 0;
    if (slen > SECRET_LEN)
        return false;
    memcpy(buf, salt, SALT_LEN);
    memcpy(buf + SALT_LEN, secret, slen);
    int ok = EVP_Digest(buf, SALT_LEN + slen, out, &mdlen, EVP_sha256(),
                        NULL);
    OPENSSL_cleanse(buf, sizeof buf);
    return ok == 1 && mdlen == HASH_LEN;
}

static hp_err db_err(hp_keys *k, hp_errbuf *eb, const char *what)
{
    return hp_errf(eb, HP_ERR_IO, "%s: %s: %s", k->path, what,
                   sqlite3_errmsg(k->db));
}

/* Create each missing directory of path's parent, mode 0700 (the
 * database holds key hashes and spend; nobody else needs to list it). */
static bool make_parents(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n >= sizeof buf)
        return false;
    memcpy(buf, path, n + 1);
    char *slash = strrchr(buf, '/');
    if (!slash || slash == buf)
        return true;
    *slash = '\0';
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return false;
        *p = '/';
    }
    return mkdir(buf, 0700) == 0 || errno == EEXIST;
}

/* ---- open / close ------------------------------------------------------- */

const char *hp_keys_default_path(char *buf, size_t n)
{
    const char *xdg = getenv("XDG_DATA_HOME");
    const char *home = getenv("HOME");
    int w;
    /* The XDG spec says a relative XDG_DATA_HOME is invalid: ignore it. */
    if (xdg && xdg[0] == '/')
        w = snprintf(buf, n, "%s/hotpath/hotpath.db", xdg);
    else if (home && home[0])
        w = snprintf(buf, n, "%s/.local/share/hotpath/hotpath.db", home);
    else
        return NULL;
    if (w < 0 || (size_t)w >= n)
        return NULL;
    return buf;
}

static int exec(hp_keys *k, const char *sql)
{
    return sqlite3_exec(k->db, sql, NULL, NULL, NULL);
}

static hp_err prepare(hp_keys *k, const char *sql, sqlite3_stmt **st,
                      hp_errbuf *eb)
{
    if (sqlite3_prepare_v3(k->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st,
                           NULL) != SQLITE_OK)
        return db_err(k, eb, "prepare");
    return HP_OK;
}

/* Check or create the schema in one write transaction, so two processes
 * opening a fresh file at once do not both create it. A database that has
 * tables but no hotpath meta row is someone else's: refuse it. */
static hp_err schema(hp_keys *k, hp_errbuf *eb)
{
    hp_err e = HP_OK;
    sqlite3_stmt *st = NULL;
    int rc = exec(k, "BEGIN IMMEDIATE");
    if (rc == SQLITE_NOTADB || rc == SQLITE_CORRUPT)
        return hp_errf(eb, HP_ERR_IO, "%s: not a hotpath database (%s)",
                       k->path, sqlite3_errmsg(k->db));
    if (rc != SQLITE_OK)
        return db_err(k, eb, "begin");
    rc = sqlite3_prepare_v2(k->db,
        "SELECT (SELECT count(*) FROM sqlite_master"
        "  WHERE tbl_name NOT IN ('meta', 'requests')),"
        " (SELECT count(*) FROM sqlite_master WHERE type='table' AND"
        "  name='meta')", -1, &st, NULL);
    if (rc != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW) {
        e = hp_errf(eb, HP_ERR_IO, "%s: not a hotpath database (%s)",
                    k->path, sqlite3_errmsg(k->db));
        goto done;
    }
    /* Objects other than meta and the gateway ledger's `requests` table
     * (ledger.c, which may have opened the file first). */
    int64_t n_objects = sqlite3_column_int64(st, 0);
    int64_t has_meta = sqlite3_column_int64(st, 1);
    sqlite3_finalize(st);
    st = NULL;
    if (n_objects > 0 && !has_meta) {
        e = hp_errf(eb, HP_ERR_IO,
                    "%s: not a hotpath database (tables but no meta table)",
                    k->path);
        goto done;
    }
    if (!has_meta &&
        exec(k, "CREATE TABLE meta(key TEXT PRIMARY KEY, value)") !=
            SQLITE_OK) {
        e = db_err(k, eb, "create meta");
        goto done;
    }
    /* Other gateway tables (a usage ledger) may share the file and meta;
     * the `keys_schema` row is ours. */
    rc = sqlite3_prepare_v2(k->db,
        "SELECT value FROM meta WHERE key='keys_schema'", -1, &st, NULL);
    if (rc != SQLITE_OK) {
        e = hp_errf(eb, HP_ERR_IO, "%s: not a hotpath database (%s)",
                    k->path, sqlite3_errmsg(k->db));
        goto done;
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        int64_t v = sqlite3_column_int64(st, 0);
        if (v != SCHEMA_VERSION) {
            e = hp_errf(eb, HP_ERR_IO,
                        "%s: keys schema version %lld, this hotpath reads "
                        "version %d", k->path, (long long)v, SCHEMA_VERSION);
            goto done;
        }
    } else if (rc == SQLITE_DONE) {
        if (exec(k,
            "CREATE TABLE IF NOT EXISTS keys("
            " rowid INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, name TEXT,"
            " salt BLOB NOT NULL, hash BLOB NOT NULL,"
            " created INTEGER NOT NULL, revoked INTEGER NOT NULL DEFAULT 0,"
            " budget_usd REAL, budget_tokens INTEGER,"
            " rpm INTEGER NOT NULL DEFAULT 0, tpm INTEGER NOT NULL DEFAULT 0,"
            " routes TEXT NOT NULL DEFAULT '',"
            " spent_usd REAL NOT NULL DEFAULT 0,"
            " spent_tokens INTEGER NOT NULL DEFAULT 0);"
            "INSERT INTO meta(key, value) VALUES('keys_schema', 1);") !=
            SQLITE_OK) {
            e = db_err(k, eb, "create keys");
            goto done;
        }
    } else {
        e = db_err(k, eb, "read meta");
        goto done;
    }
done:
    sqlite3_finalize(st);
    if (e == HP_OK && exec(k, "COMMIT") != SQLITE_OK)
        e = db_err(k, eb, "commit");
    if (e != HP_OK)
        exec(k, "ROLLBACK");
    return e;
}

/* Open path; with create, make the file and its folders first. Without
 * it, a missing file is HP_ERR_NOT_FOUND and nothing is made: a read or a
 * revoke on a mistyped path must not leave an empty database behind. */
static hp_err keys_open(const char *path, bool create, hp_keys **out,
                        hp_errbuf *eb)
{
    hp_err e;
    if (!out)
        return hp_errf(eb, HP_ERR_INVALID, "keys: NULL argument");
    *out = NULL;
    if (!path || !path[0])
        return hp_errf(eb, HP_ERR_INVALID, "keys: empty database path");
    struct stat sb;
    if (!create && stat(path, &sb) != 0)
        return errno == ENOENT || errno == ENOTDIR
                   ? hp_errf(eb, HP_ERR_NOT_FOUND, "%s: no key database "
                             "there (keys create makes one)", path)
                   : hp_errf(eb, HP_ERR_IO, "%s: %s", path, strerror(errno));
    hp_keys *k = calloc(1, sizeof *k);
    if (!k)
        return hp_errf(eb, HP_ERR_NOMEM, "keys: out of memory");
    k->path = strdup(path);
    if (!k->path) {
        e = hp_errf(eb, HP_ERR_NOMEM, "keys: out of memory");
        goto fail;
    }
    if (create && !make_parents(path)) {
        e = hp_errf(eb, HP_ERR_IO, "%s: cannot create its directory: %s",
                    path, strerror(errno));
        goto fail;
    }
    /* Create the file ourselves so it starts 0600 (SQLite would use the
     * umask); the -wal and -shm files copy the database's mode. */
    int fd = open(path, O_RDWR | (create ? O_CREAT : 0) | O_CLOEXEC, 0600);
    if (fd < 0) {
        e = hp_errf(eb, HP_ERR_IO, "%s: %s", path, strerror(errno));
        goto fail;
    }
    close(fd);
    if (sqlite3_open_v2(path, &k->db,
                        SQLITE_OPEN_READWRITE |
                            (create ? SQLITE_OPEN_CREATE : 0),
                        NULL) != SQLITE_OK) {
        e = hp_errf(eb, HP_ERR_IO, "%s: %s", path,
                    k->db ? sqlite3_errmsg(k->db) : "cannot open");
        goto fail;
    }
    sqlite3_busy_timeout(k->db, BUSY_MS);
    /* journal_mode reads the header first, so a garbage file fails here. */
    int rc = exec(k, "PRAGMA journal_mode=WAL");
    if (rc != SQLITE_OK) {
        e = hp_errf(eb, HP_ERR_IO, "%s: not a hotpath database (%s)", path,
                    sqlite3_errmsg(k->db));
        goto fail;
    }
    /* NORMAL in WAL mode: a power cut may lose the last commits, never
     * corrupt the file; settles are frequent and small. */
    if (exec(k, "PRAGMA synchronous=NORMAL") != SQLITE_OK) {
        e = db_err(k, eb, "synchronous");
        goto fail;
    }
    e = schema(k, eb);
    if (e != HP_OK)
        goto fail;
    e = prepare(k,
        "INSERT INTO keys(id, name, salt, hash, created, revoked, budget_usd,"
        " budget_tokens, rpm, tpm, routes, spent_usd, spent_tokens)"
        " VALUES(?1, ?2, ?3, ?4, ?5, 0, ?6, ?7, ?8, ?9, ?10, 0, 0)",
        &k->st_insert, eb);
    if (e == HP_OK)
        e = prepare(k,
            "SELECT rowid, name, salt, hash, revoked, budget_usd,"
            " budget_tokens, rpm, tpm, routes, spent_usd, spent_tokens"
            " FROM keys WHERE id = ?1", &k->st_lookup, eb);
    if (e == HP_OK)
        e = prepare(k,
            "SELECT id, name, created, revoked, budget_usd, spent_usd,"
            " budget_tokens, spent_tokens, rpm, tpm, routes"
            " FROM keys ORDER BY rowid", &k->st_list, eb);
    if (e == HP_OK)
        e = prepare(k,
            "UPDATE keys SET revoked = CASE WHEN revoked = 0 THEN ?2"
            " ELSE revoked END WHERE id = ?1", &k->st_revoke, eb);
    if (e == HP_OK)
        e = prepare(k,
            "UPDATE keys SET spent_usd = spent_usd + ?2,"
            " spent_tokens = spent_tokens + ?3 WHERE rowid = ?1",
            &k->st_settle, eb);
    if (e != HP_OK)
        goto fail;
    *out = k;
    return HP_OK;
fail:
    hp_keys_close(k);
    return e;
}

hp_err hp_keys_open(const char *path, hp_keys **out, hp_errbuf *eb)
{
    return keys_open(path, true, out, eb);
}

hp_err hp_keys_open_existing(const char *path, hp_keys **out, hp_errbuf *eb)
{
    return keys_open(path, false, out, eb);
}

void hp_keys_close(hp_keys *k)
{
    if (!k)
        return;
    sqlite3_finalize(k->st_insert);
    sqlite3_finalize(k->st_lookup);
    sqlite3_finalize(k->st_list);
    sqlite3_finalize(k->st_revoke);
    sqlite3_finalize(k->st_settle);
    sqlite3_close(k->db);
    free(k->states);
    free(k->path);
    free(k);
}

/* ---- create / list / revoke -------------------------------------------- */

/* Validate and normalize a route list: names split on ',', spaces around
 * them dropped, no empty names, no spaces or control bytes inside. */
static hp_err routes_normalize(const char *in, char *out, size_t n,
                               hp_errbuf *eb)
{
    size_t o = 0;
    out[0] = '\0';
    if (!in)
        return HP_OK;
    const char *p = in;
    while (*p == ' ')
        p++;
    if (!*p)
        return HP_OK;
    for (;;) {
        while (*p == ' ')
            p++;
        const char *s = p;
        while (*p && *p != ',' && *p != ' ') {
            if ((unsigned char)*p < 0x21 || *p == 0x7f)
                return hp_errf(eb, HP_ERR_INVALID,
                               "routes: control character in a name");
            p++;
        }
        size_t len = (size_t)(p - s);
        while (*p == ' ')
            p++;
        if (*p && *p != ',')
            return hp_errf(eb, HP_ERR_INVALID, "routes: space in a name");
        if (len == 0)
            return hp_errf(eb, HP_ERR_INVALID, "routes: empty route name");
        if (o + len + (o ? 1 : 0) + 1 > n)
            return hp_errf(eb, HP_ERR_INVALID,
                           "routes: longer than %zu bytes", n - 1);
        if (o)
            out[o++] = ',';
        memcpy(out + o, s, len);
        o += len;
        out[o] = '\0';
        if (!*p)
            return HP_OK;
        p++; /* the comma */
    }
}

hp_err hp_keys_create(hp_keys *k, const hp_key_spec *s,
                      char secret[HP_KEY_SECRET_MAX], char id[HP_KEY_ID_MAX],
                      hp_errbuf *eb)
{
    char routes[sizeof ((hp_key_info *)0)->routes];
    hp_err e;
    if (!k || !s || !secret || !id)
        return hp_errf(eb, HP_ERR_INVALID, "keys: NULL argument");
    secret[0] = '\0';
    id[0] = '\0';
    /* "" would list as "-", indistinguishable from no name: refuse it. */
    if (s->name && !s->name[0])
        return hp_errf(eb, HP_ERR_INVALID, "name: must be non-empty");
    if (s->name && strlen(s->name) >= sizeof ((hp_key_info *)0)->name)
        return hp_errf(eb, HP_ERR_INVALID, "name: longer than %zu bytes",
                       sizeof ((hp_key_info *)0)->name - 1);
    for (const char *p = s->name; p && *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return hp_errf(eb, HP_ERR_INVALID, "name: control character");
    if (isnan(s->budget_usd) || s->budget_usd > BUDGET_USD_MAX)
        return hp_errf(eb, HP_ERR_INVALID,
                       "budget_usd: must be a number up to %g", BUDGET_USD_MAX);
    if (s->budget_tokens > TOKEN_CAP)
        return hp_errf(eb, HP_ERR_INVALID, "budget_tokens: too large");
    if (s->rpm < 0)
        return hp_errf(eb, HP_ERR_INVALID, "rpm: must be >= 0 (0: no limit)");
    if (s->tpm < 0 || s->tpm > TOKEN_CAP)
        return hp_errf(eb, HP_ERR_INVALID,
                       "tpm: must be >= 0 (0: no limit)");
    e = routes_normalize(s->routes, routes, sizeof routes, eb);
    if (e != HP_OK)
        return e;

    unsigned char rnd[RAND_LEN], idb[ID_HEX / 2], salt[SALT_LEN];
    unsigned char hash[HASH_LEN];
    char body[RAND_B64_LEN + 1], sec[SECRET_LEN + 1], kid[1 + ID_HEX + 1];
    e = HP_OK;
    /* An id collision (1 in 2^48 per pair) only retries. */
    for (int attempt = 0;; attempt++) {
        if (RAND_bytes(rnd, sizeof rnd) != 1 ||
            RAND_bytes(idb, sizeof idb) != 1 ||
            RAND_bytes(salt, sizeof salt) != 1) {
            e = hp_errf(eb, HP_ERR_INTERNAL, "keys: no random bytes");
            break;
        }
        kid[0] = 'k';
        hex_encode(idb, sizeof idb, kid + 1);
        b64url_encode(rnd, sizeof rnd, body);
        snprintf(sec, sizeof sec, "hp-%s.%s", kid, body);
        if (!hash_secret(salt, sec, strlen(sec), hash)) {
            e = hp_errf(eb, HP_ERR_INTERNAL, "keys: SHA-256 failed");
            break;
        }
        sqlite3_stmt *st = k->st_insert;
        sqlite3_bind_text(st, 1, kid, -1, SQLITE_TRANSIENT);
        if (s->name)
            sqlite3_bind_text(st, 2, s->name, -1, SQLITE_TRANSIENT);
        else
            sqlite3_bind_null(st, 2);
        sqlite3_bind_blob(st, 3, salt, SALT_LEN, SQLITE_TRANSIENT);
        sqlite3_bind_blob(st, 4, hash, HASH_LEN, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 5, (int64_t)time(NULL));
        if (s->budget_usd >= 0)
            sqlite3_bind_double(st, 6, s->budget_usd);
        else
            sqlite3_bind_null(st, 6);
        if (s->budget_tokens >= 0)
            sqlite3_bind_int64(st, 7, s->budget_tokens);
        else
            sqlite3_bind_null(st, 7);
        sqlite3_bind_int(st, 8, s->rpm);
        sqlite3_bind_int64(st, 9, s->tpm);
        sqlite3_bind_text(st, 10, routes, -1, SQLITE_TRANSIENT);
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        if (rc == SQLITE_DONE)
            break;
        if (rc == SQLITE_CONSTRAINT && attempt < 4)
            continue;
        e = db_err(k, eb, "insert key");
        break;
    }
    if (e == HP_OK) {
        memcpy(secret, sec, strlen(sec) + 1);
        memcpy(id, kid, strlen(kid) + 1);
    }
    OPENSSL_cleanse(rnd, sizeof rnd);
    OPENSSL_cleanse(body, sizeof body);
    OPENSSL_cleanse(sec, sizeof sec);
    return e;
}

/* Append the names of a stored route list to a JSON array. */
static int routes_to_json(const char *routes, json_t *arr)
{
    const char *p = routes;
    while (p && *p) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        if (len && json_array_append_new(arr, json_stringn(p, len)) != 0)
            return -1;
        p = c ? c + 1 : NULL;
    }
    return 0;
}

hp_err hp_keys_list(hp_keys *k, json_t **out, hp_errbuf *eb)
{
    if (!k || !out)
        return hp_errf(eb, HP_ERR_INVALID, "keys: NULL argument");
    *out = NULL;
    json_t *arr = json_array();
    if (!arr)
        return hp_errf(eb, HP_ERR_NOMEM, "keys: out of memory");
    sqlite3_stmt *st = k->st_list;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *o = json_object();
        json_t *routes = json_array();
        const char *name = (const char *)sqlite3_column_text(st, 1);
        if (!o || !routes ||
            json_array_append_new(arr, o) != 0) {
            json_decref(o);
            json_decref(routes);
            break;
        }
        json_object_set_new(o, "id", json_string(
            (const char *)sqlite3_column_text(st, 0)));
        json_object_set_new(o, "name", name ? json_string(name) : json_null());
        json_object_set_new(o, "created",
                            json_integer(sqlite3_column_int64(st, 2)));
        json_object_set_new(o, "revoked",
                            json_boolean(sqlite3_column_int64(st, 3) != 0));
        json_object_set_new(o, "budget_usd",
            sqlite3_column_type(st, 4) == SQLITE_NULL
                ? json_null() : json_real(sqlite3_column_double(st, 4)));
        json_object_set_new(o, "spent_usd",
                            json_real(sqlite3_column_double(st, 5)));
        json_object_set_new(o, "budget_tokens",
            sqlite3_column_type(st, 6) == SQLITE_NULL
                ? json_null() : json_integer(sqlite3_column_int64(st, 6)));
        json_object_set_new(o, "spent_tokens",
                            json_integer(sqlite3_column_int64(st, 7)));
        json_object_set_new(o, "rpm", json_integer(sqlite3_column_int64(st, 8)));
        json_object_set_new(o, "tpm", json_integer(sqlite3_column_int64(st, 9)));
        routes_to_json((const char *)sqlite3_column_text(st, 10), routes);
        json_object_set_new(o, "routes", routes);
    }
    hp_err e = HP_OK;
    if (rc == SQLITE_ROW)
        e = hp_errf(eb, HP_ERR_NOMEM, "keys: out of memory");
    else if (rc != SQLITE_DONE)
        e = db_err(k, eb, "list keys");
    sqlite3_reset(st);
    if (e != HP_OK) {
        json_decref(arr);
        return e;
    }
    *out = arr;
    return HP_OK;
}

hp_err hp_keys_revoke(hp_keys *k, const char *id, hp_errbuf *eb)
{
    if (!k)
        return hp_errf(eb, HP_ERR_INVALID, "keys: NULL argument");
    if (!id || !id_valid(id, strlen(id)))
        return hp_errf(eb, HP_ERR_NOT_FOUND, "no key with that id");
    sqlite3_stmt *st = k->st_revoke;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, (int64_t)time(NULL));
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE)
        return db_err(k, eb, "revoke");
    /* changes() counts matched rows, even when revoked was already set. */
    if (sqlite3_changes(k->db) == 0)
        return hp_errf(eb, HP_ERR_NOT_FOUND, "no key '%s'", id);
    return HP_OK;
}

/* ---- lookup ------------------------------------------------------------- */

static void copy_col(sqlite3_stmt *st, int col, char *dst, size_t n)
{
    const char *s = (const char *)sqlite3_column_text(st, col);
    snprintf(dst, n, "%s", s ? s : "");
}

hp_err hp_keys_lookup(hp_keys *k, const char *secret, hp_key_info *out,
                      hp_errbuf *eb)
{
    /* One message for every refusal so a caller cannot tell which. */
    static const char nf[] = "unknown, revoked or malformed key";
    static const unsigned char dummy_salt[SALT_LEN];
    if (!k || !out)
        return hp_errf(eb, HP_ERR_INVALID, "keys: NULL argument");
    size_t n = secret ? strnlen(secret, SECRET_LEN + 1) : 0;
    if (n != SECRET_LEN || memcmp(secret, "hp-", 3) != 0 ||
        !id_valid(secret + 3, 1 + ID_HEX) || secret[4 + ID_HEX] != '.')
        return hp_errf(eb, HP_ERR_NOT_FOUND, "%s", nf);
    for (size_t i = 5 + ID_HEX; i < SECRET_LEN; i++)
        if (!is_b64url(secret[i]))
            return hp_errf(eb, HP_ERR_NOT_FOUND, "%s", nf);
    /* 43 base64 chars carry 258 bits; the last char's 2 spare bits are
     * zero in every secret we issue. A variant would hash differently
     * anyway, so no special check is needed. */
    char kid[1 + ID_HEX + 1];
    memcpy(kid, secret + 3, 1 + ID_HEX);
    kid[1 + ID_HEX] = '\0';

    sqlite3_stmt *st = k->st_lookup;
    sqlite3_bind_text(st, 1, kid, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    hp_err e = HP_OK;
    unsigned char h[HASH_LEN];
    if (rc == SQLITE_ROW) {
        const void *salt = sqlite3_column_blob(st, 2);
        int salt_n = sqlite3_column_bytes(st, 2);
        const void *hash = sqlite3_column_blob(st, 3);
        int hash_n = sqlite3_column_bytes(st, 3);
        bool match = salt && hash && salt_n == SALT_LEN &&
                     hash_n == HASH_LEN &&
                     hash_secret(salt, secret, n, h) &&
                     CRYPTO_memcmp(h, hash, HASH_LEN) == 0;
        if (!match || sqlite3_column_int64(st, 4) != 0) {
            e = hp_errf(eb, HP_ERR_NOT_FOUND, "%s", nf);
        } else {
            memset(out, 0, sizeof *out);
            out->rowid = sqlite3_column_int64(st, 0);
            memcpy(out->id, kid, sizeof kid);
            copy_col(st, 1, out->name, sizeof out->name);
            out->budget_usd = sqlite3_column_type(st, 5) == SQLITE_NULL
                                  ? -1 : sqlite3_column_double(st, 5);
            out->budget_tokens = sqlite3_column_type(st, 6) == SQLITE_NULL
                                     ? -1 : sqlite3_column_int64(st, 6);
            out->rpm = sqlite3_column_int(st, 7);
            out->tpm = sqlite3_column_int64(st, 8);
            copy_col(st, 9, out->routes, sizeof out->routes);
            out->spent_usd = sqlite3_column_double(st, 10);
            out->spent_tokens = sqlite3_column_int64(st, 11);
        }
    } else if (rc == SQLITE_DONE) {
        /* Hash anyway so an unknown id costs what a wrong secret does. */
        hash_secret(dummy_salt, secret, n, h);
        e = hp_errf(eb, HP_ERR_NOT_FOUND, "%s", nf);
    } else {
        e = db_err(k, eb, "look up key");
    }
    /* Reset ends the read transaction: the next lookup sees new spend. */
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return e;
}

bool hp_key_allows_route(const hp_key_info *ki, const char *route)
{
    if (!ki)
        return false;
    if (!ki->routes[0])
        return true;
    if (!route || !route[0])
        return false;
    size_t rl = strlen(route);
    const char *p = ki->routes;
    while (p) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        if (len == rl && memcmp(p, route, rl) == 0)
            return true;
        p = c ? c + 1 : NULL;
    }
    return false;
}

/* ---- admission and settlement ------------------------------------------ */

/* The state for rowid, created (zeroed) when create is set. NULL when
 * absent or out of memory. Binary search over the sorted array. */
static key_state *state_get(hp_keys *k, int64_t rowid, bool create)
{
    size_t lo = 0, hi = k->n_states;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (k->states[mid].rowid < rowid)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < k->n_states && k->states[lo].rowid == rowid)
        return &k->states[lo];
    if (!create)
        return NULL;
    if (k->n_states == k->cap_states) {
        size_t cap = k->cap_states ? k->cap_states * 2 : 8;
        key_state *ns = realloc(k->states, cap * sizeof *ns);
        if (!ns)
            return NULL;
        k->states = ns;
        k->cap_states = cap;
    }
    memmove(&k->states[lo + 1], &k->states[lo],
            (k->n_states - lo) * sizeof *k->states);
    k->n_states++;
    key_state *s = &k->states[lo];
    memset(s, 0, sizeof *s);
    s->rowid = rowid;
    for (int i = 0; i < WINDOW_S; i++)
        s->win[i].sec = INT64_MIN; /* empty */
    return s;
}

static size_t win_idx(int64_t sec)
{
    return (size_t)(((sec % WINDOW_S) + WINDOW_S) % WINDOW_S);
}

static win_bucket *win_at(key_state *s, int64_t sec)
{
    win_bucket *b = &s->win[win_idx(sec)];
    if (b->sec != sec) {
        b->sec = sec;
        b->reqs = 0;
        b->tokens = 0;
    }
    return b;
}

/* Sum a window field over the 60 seconds ending at now_sec. If it is
 * `base + sum >= limit`, *wait gets the seconds until enough old buckets
 * expire to bring it under limit (60 when expiry alone cannot). */
static int64_t win_used(const key_state *s, int64_t now_sec, bool tokens,
                        int64_t base, int64_t limit, int *wait)
{
    int64_t sum = 0;
    for (int d = 0; d < WINDOW_S; d++) {
        int64_t sec = now_sec - (WINDOW_S - 1) + d;
        const win_bucket *b = &s->win[win_idx(sec)];
        if (b->sec == sec)
            sum += tokens ? b->tokens : b->reqs;
    }
    *wait = WINDOW_S;
    int64_t left = base + sum;
    /* Oldest first: the bucket of second sec leaves at sec + 60. */
    for (int d = 0; d < WINDOW_S && left >= limit; d++) {
        int64_t sec = now_sec - (WINDOW_S - 1) + d;
        const win_bucket *b = &s->win[win_idx(sec)];
        if (b->sec == sec)
            left -= tokens ? b->tokens : b->reqs;
        if (left < limit)
            *wait = d + 1;
    }
    return base + sum;
}

hp_err hp_keys_admit(hp_keys *k, const hp_key_info *ki, double worst_usd,
                     int64_t worst_tokens, double now_s, hp_key_resv *r,
                     int *retry_after_s, hp_errbuf *eb)
{
    if (r)
        memset(r, 0, sizeof *r);
    if (retry_after_s)
        *retry_after_s = 0;
    if (!k || !ki || !r || !retry_after_s)
        return hp_errf(eb, HP_ERR_INVALID, "keys: NULL argument");
    if (isnan(worst_usd) || worst_usd < 0 || worst_tokens < 0 ||
        !isfinite(now_s) || fabs(now_s) > 1e15)
        return hp_errf(eb, HP_ERR_INVALID,
                       "keys: negative worst case or bad clock");
    key_state *s = state_get(k, ki->rowid, true);
    if (!s)
        return hp_errf(eb, HP_ERR_NOMEM, "keys: out of memory");
    int64_t wn = usd_to_nano(worst_usd);
    int64_t wt = tok_clamp(worst_tokens);
    int64_t now_sec = (int64_t)floor(now_s);

    /* Budgets first: they do not free up by waiting a few seconds. */
    if (ki->budget_usd >= 0) {
        int64_t used = usd_to_nano(ki->spent_usd) + s->resv_nano;
        if (used + wn > usd_to_nano(ki->budget_usd)) {
            *retry_after_s = WINDOW_S;
            return hp_errf(eb, HP_ERR_AGAIN,
                "budget: %.6g USD, %.6g spent or reserved, this request "
                "may cost up to %.6g (in-flight requests hold reservations "
                "until they finish)",
                ki->budget_usd, (double)used / 1e9, (double)wn / 1e9);
        }
    }
    if (ki->budget_tokens >= 0) {
        int64_t used = tok_clamp(ki->spent_tokens) + s->resv_tokens;
        if (used + wt > ki->budget_tokens) {
            *retry_after_s = WINDOW_S;
            return hp_errf(eb, HP_ERR_AGAIN,
                "budget: %lld tokens, %lld spent or reserved, this request "
                "may use up to %lld (in-flight requests hold reservations "
                "until they finish)",
                (long long)ki->budget_tokens, (long long)used, (long long)wt);
        }
    }
    int wait;
    if (ki->rpm > 0 && win_used(s, now_sec, false, 0, ki->rpm, &wait) >=
                           ki->rpm) {
        *retry_after_s = wait;
        return hp_errf(eb, HP_ERR_AGAIN,
                       "rate limit: %d requests per minute", ki->rpm);
    }
    if (ki->tpm > 0) {
        int64_t used = win_used(s, now_sec, true, s->resv_tokens, ki->tpm,
                                &wait);
        if (used >= ki->tpm) {
            *retry_after_s = wait;
            return hp_errf(eb, HP_ERR_AGAIN,
                "rate limit: %lld tokens per minute, %lld used or "
                "reserved", (long long)ki->tpm, (long long)used);
        }
    }
    /* Admitted: count the request and hold its worst case. Saturating so
     * absurd worst cases with no budget cannot overflow the sums. */
    win_at(s, now_sec)->reqs++;
    s->resv_nano = s->resv_nano + wn > NANO_CAP ? NANO_CAP : s->resv_nano + wn;
    s->resv_tokens = s->resv_tokens + wt > TOKEN_CAP ? TOKEN_CAP
                                                     : s->resv_tokens + wt;
    r->rowid = ki->rowid;
    r->usd = worst_usd;
    r->tokens = worst_tokens;
    r->active = true;
    return HP_OK;
}

void hp_keys_settle(hp_keys *k, hp_key_resv *r, double usd, int64_t tokens,
                    double now_s)
{
    if (!k || !r || !r->active)
        return;
    r->active = false;
    if (!(usd > 0) || !isfinite(usd)) /* NaN, inf and negatives: nothing */
        usd = 0;
    tokens = tok_clamp(tokens);
    key_state *s = state_get(k, r->rowid, false);
    if (s) {
        int64_t wn = usd_to_nano(r->usd), wt = tok_clamp(r->tokens);
        s->resv_nano = s->resv_nano > wn ? s->resv_nano - wn : 0;
        s->resv_tokens = s->resv_tokens > wt ? s->resv_tokens - wt : 0;
        if (isfinite(now_s) && fabs(now_s) <= 1e15) {
            win_bucket *b = win_at(s, (int64_t)floor(now_s));
            b->tokens = b->tokens + tokens > TOKEN_CAP ? TOKEN_CAP
                                                       : b->tokens + tokens;
        }
    }
    if (usd == 0 && tokens == 0)
        return;
    sqlite3_stmt *st = k->st_settle;
    sqlite3_bind_int64(st, 1, r->rowid);
    sqlite3_bind_double(st, 2, usd);
    sqlite3_bind_int64(st, 3, tokens);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE) /* the contract: report, keep serving */
        fprintf(stderr,
                "hotpath: %s: recording spend of key row %lld failed: %s\n",
                k->path, (long long)r->rowid, sqlite3_errmsg(k->db));
}
