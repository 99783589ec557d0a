/* test_keys.c: virtual keys, budgets and rate limits (src/gateway/keys.c).
 *
 * A key's secret works until it is revoked and nothing else does; the
 * database never holds a secret; budgets are never overspent however many
 * requests are in flight; RPM/TPM windows slide over 60 seconds; spend
 * survives a reopen and is shared between handles on one file. Each case
 * uses a fresh database in one temp dir. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "gateway/keys.h"

static char tmpdir[] = "/tmp/hp_keys_XXXXXX";
static int db_seq;

/* A fresh database path in the temp dir (static buffer). */
static const char *new_db(void)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/sub%d/keys.db", tmpdir, db_seq++);
    return path;
}

static hp_keys *open_ok(const char *path)
{
    hp_keys *k = NULL;
    hp_errbuf eb = {{0}};
    hp_err e = hp_keys_open(path, &k, &eb);
    if (e != HP_OK)
        fail_msg("open %s: %s", path, eb.msg);
    return k;
}

static hp_key_spec spec_none(void)
{
    hp_key_spec s = {.name = NULL, .budget_usd = -1, .budget_tokens = -1,
                     .rpm = 0, .tpm = 0, .routes = NULL};
    return s;
}

static void create_ok(hp_keys *k, const hp_key_spec *s,
                      char secret[HP_KEY_SECRET_MAX], char id[HP_KEY_ID_MAX])
{
    hp_errbuf eb = {{0}};
    hp_err e = hp_keys_create(k, s, secret, id, &eb);
    if (e != HP_OK)
        fail_msg("create: %s", eb.msg);
}

static void lookup_ok(hp_keys *k, const char *secret, hp_key_info *ki)
{
    hp_errbuf eb = {{0}};
    hp_err e = hp_keys_lookup(k, secret, ki, &eb);
    if (e != HP_OK)
        fail_msg("lookup: %s", eb.msg);
}

/* keys_create_lookup_revoke: a new key is found by its secret with its
 * spec, and stops working once revoked (revoking twice is fine). */
static void keys_create_lookup_revoke(void **state)
{
    (void)state;
    hp_keys *k = open_ok(new_db());
    hp_key_spec s = spec_none();
    s.name = "team a";
    s.budget_usd = 5.5;
    s.rpm = 60;
    s.tpm = 1000;
    s.routes = "chat, code";
    char secret[HP_KEY_SECRET_MAX], id[HP_KEY_ID_MAX];
    create_ok(k, &s, secret, id);
    assert_int_equal(strlen(id), 13);
    assert_int_equal(id[0], 'k');
    assert_true(!strncmp(secret, "hp-", 3));
    assert_true(!strncmp(secret + 3, id, 13));
    assert_int_equal(secret[16], '.');
    assert_int_equal(strlen(secret), 60);

    hp_key_info ki;
    lookup_ok(k, secret, &ki);
    assert_string_equal(ki.id, id);
    assert_string_equal(ki.name, "team a");
    assert_true(ki.budget_usd == 5.5);
    assert_true(ki.budget_tokens < 0);
    assert_int_equal(ki.rpm, 60);
    assert_int_equal(ki.tpm, 1000);
    assert_string_equal(ki.routes, "chat,code");
    assert_true(ki.spent_usd == 0);
    assert_int_equal(ki.spent_tokens, 0);

    hp_errbuf eb = {{0}};
    assert_int_equal(hp_keys_revoke(k, id, &eb), HP_OK);
    assert_int_equal(hp_keys_lookup(k, secret, &ki, &eb), HP_ERR_NOT_FOUND);
    assert_null(strstr(eb.msg, secret));
    assert_int_equal(hp_keys_revoke(k, id, &eb), HP_OK);
    assert_int_equal(hp_keys_revoke(k, "k000000000000", &eb),
                     HP_ERR_NOT_FOUND);
    assert_int_equal(hp_keys_revoke(k, "nonsense", &eb), HP_ERR_NOT_FOUND);
    assert_int_equal(hp_keys_revoke(k, "", &eb), HP_ERR_NOT_FOUND);
    hp_keys_close(k);
    hp_keys_close(NULL);
}

/* keys_bad_secrets_not_found: wrong, tampered and malformed secrets all
 * get the same NOT_FOUND, and no message echoes what was sent. */
static void keys_bad_secrets_not_found(void **state)
{
    (void)state;
    hp_keys *k = open_ok(new_db());
    hp_key_spec s = spec_none();
    char secret[HP_KEY_SECRET_MAX], id[HP_KEY_ID_MAX];
    char other[HP_KEY_SECRET_MAX], oid[HP_KEY_ID_MAX];
    create_ok(k, &s, secret, id);
    create_ok(k, &s, other, oid);
    hp_key_info ki;
    hp_errbuf eb = {{0}};

    char bad[256];
    /* tampered: each position of the random part flipped in turn */
    for (size_t i = 17; i < strlen(secret); i++) {
        memcpy(bad, secret, strlen(secret) + 1);
        bad[i] = bad[i] == 'A' ? 'B' : 'A';
        assert_int_equal(hp_keys_lookup(k, bad, &ki, &eb), HP_ERR_NOT_FOUND);
        assert_null(strstr(eb.msg, bad));
        assert_null(strstr(eb.msg, "hp-"));
    }
    /* another key's random part under this id */
    snprintf(bad, sizeof bad, "hp-%s.%s", id, other + 17);
    assert_int_equal(hp_keys_lookup(k, bad, &ki, &eb), HP_ERR_NOT_FOUND);
    /* unknown id with a well-formed body */
    snprintf(bad, sizeof bad, "hp-k000000000000.%s", secret + 17);
    assert_int_equal(hp_keys_lookup(k, bad, &ki, &eb), HP_ERR_NOT_FOUND);
    /* malformed */
    const char *mal[] = {"", "hp-", "hp-.", "Bearer x", "hp-k1.abc",
                         "sk-whatever"};
    for (size_t i = 0; i < sizeof mal / sizeof mal[0]; i++)
        assert_int_equal(hp_keys_lookup(k, mal[i], &ki, &eb),
                         HP_ERR_NOT_FOUND);
    assert_int_equal(hp_keys_lookup(k, NULL, &ki, &eb), HP_ERR_NOT_FOUND);
    memcpy(bad, secret, strlen(secret) + 1);
    bad[strlen(bad) - 1] = '\0'; /* truncated */
    assert_int_equal(hp_keys_lookup(k, bad, &ki, &eb), HP_ERR_NOT_FOUND);
    snprintf(bad, sizeof bad, "%sA", secret); /* extended */
    assert_int_equal(hp_keys_lookup(k, bad, &ki, &eb), HP_ERR_NOT_FOUND);
    memcpy(bad, secret, strlen(secret) + 1);
    bad[4] = 'A'; /* uppercase id */
    assert_int_equal(hp_keys_lookup(k, bad, &ki, &eb), HP_ERR_NOT_FOUND);
    memcpy(bad, secret, strlen(secret) + 1);
    bad[30] = '='; /* outside base64url */
    assert_int_equal(hp_keys_lookup(k, bad, &ki, &eb), HP_ERR_NOT_FOUND);
    /* the real ones still work */
    lookup_ok(k, secret, &ki);
    lookup_ok(k, other, &ki);
    assert_string_equal(ki.id, oid);
    hp_keys_close(k);
}

/* Read a whole file into a malloc'd buffer. */
static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len + 1);
    *n = fread(b, 1, (size_t)len, f);
    fclose(f);
    return b;
}

static bool contains(const unsigned char *hay, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= n; i++)
        if (!memcmp(hay + i, needle, m))
            return true;
    return false;
}

/* keys_salted_hashes_no_secret_on_disk: each key has its own salt (two
 * hashes differ), and neither the secret nor its random part is in the
 * database or its WAL. */
static void keys_salted_hashes_no_secret_on_disk(void **state)
{
    (void)state;
    char path[256];
    snprintf(path, sizeof path, "%s", new_db());
    hp_keys *k = open_ok(path);
    hp_key_spec s = spec_none();
    char sa[HP_KEY_SECRET_MAX], ia[HP_KEY_ID_MAX];
    char sb[HP_KEY_SECRET_MAX], ib[HP_KEY_ID_MAX];
    create_ok(k, &s, sa, ia);
    create_ok(k, &s, sb, ib);
    assert_string_not_equal(ia, ib);
    assert_string_not_equal(sa, sb);
    hp_keys_close(k); /* checkpoints the WAL into the file */

    size_t n = 0;
    unsigned char *db = slurp(path, &n);
    assert_non_null(db);
    assert_true(n > 0);
    assert_true(contains(db, n, ia)); /* ids are public and stored */
    assert_false(contains(db, n, sa));
    assert_false(contains(db, n, sa + 17));
    assert_false(contains(db, n, sb + 17));
    free(db);
    char wal[300];
    snprintf(wal, sizeof wal, "%s-wal", path);
    db = slurp(wal, &n);
    if (db) {
        assert_false(contains(db, n, sa + 17));
        assert_false(contains(db, n, sb + 17));
        free(db);
    }

    /* The two hashes (and salts) differ: read them with SQLite itself. */
    sqlite3 *db3 = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open(path, &db3), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db3,
        "SELECT count(DISTINCT hash), count(DISTINCT salt), min(length(hash)),"
        " min(length(salt)) FROM keys", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 2);
    assert_int_equal(sqlite3_column_int(st, 1), 2);
    assert_int_equal(sqlite3_column_int(st, 2), 32);
    assert_int_equal(sqlite3_column_int(st, 3), 16);
    sqlite3_finalize(st);
    sqlite3_close(db3);
}

/* keys_routes_allow_list: an empty list allows every route; otherwise only
 * the names listed, matched exactly. */
static void keys_routes_allow_list(void **state)
{
    (void)state;
    hp_keys *k = open_ok(new_db());
    hp_key_spec s = spec_none();
    char secret[HP_KEY_SECRET_MAX], id[HP_KEY_ID_MAX];
    hp_key_info ki;
    create_ok(k, &s, secret, id);
    lookup_ok(k, secret, &ki);
    assert_true(hp_key_allows_route(&ki, "chat"));
    assert_true(hp_key_allows_route(&ki, "anything"));

    s.routes = "chat,code-large";
    create_ok(k, &s, secret, id);
    lookup_ok(k, secret, &ki);
    assert_true(hp_key_allows_route(&ki, "chat"));
    assert_true(hp_key_allows_route(&ki, "code-large"));
    assert_false(hp_key_allows_route(&ki, "code"));
    assert_false(hp_key_allows_route(&ki, "cha"));
    assert_false(hp_key_allows_route(&ki, "chat,code-large"));
    assert_false(hp_key_allows_route(&ki, ""));
    assert_false(hp_key_allows_route(&ki, NULL));
    assert_false(hp_key_allows_route(NULL, "chat"));

    hp_errbuf eb = {{0}};
    const char *bad[] = {"a,,b", ",a", "a,", "a b", "a,\tb"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s.routes = bad[i];
        assert_int_equal(hp_keys_create(k, &s, secret, id, &eb),
                         HP_ERR_INVALID);
        assert_non_null(strstr(eb.msg, "routes"));
    }
    hp_keys_close(k);
}

/* keys_bad_spec_invalid: negative rate limits, NaN budgets, over-long
 * names are refused with the field named. */
static void keys_bad_spec_invalid(void **state)
{
    (void)state;
    hp_keys *k = open_ok(new_db());
    char secret[HP_KEY_SECRET_MAX], id[HP_KEY_ID_MAX];
    hp_errbuf eb = {{0}};
    hp_key_spec s = spec_none();
    s.rpm = -1;
    assert_int_equal(hp_keys_create(k, &s, secret, id, &eb), HP_ERR_INVALID);
    assert_non_null(strstr(eb.msg, "rpm"));
    s = spec_none();
    s.tpm = -5;
    assert_int_equal(hp_keys_create(k, &s, secret, id, &eb), HP_ERR_INVALID);
    assert_non_null(strstr(eb.msg, "tpm"));
    s = spec_none();
    s.budget_usd = 0.0 / 0.0;
    assert_int_equal(hp_keys_create(k, &s, secret, id, &eb), HP_ERR_INVALID);
    assert_non_null(strstr(eb.msg, "budget_usd"));
    s = spec_none();
    char longname[100];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    s.name = longname;
    assert_int_equal(hp_keys_create(k, &s, secret, id, &eb), HP_ERR_INVALID);
    assert_non_null(strstr(eb.msg, "name"));
    s = spec_none();
    s.name = "";
    assert_int_equal(hp_keys_create(k, &s, secret, id, &eb), HP_ERR_INVALID);
    assert_non_null(strstr(eb.msg, "name: must be non-empty"));
    hp_keys_close(k);
}

/* keys_open_existing_creates_nothing: without a database there,
 * hp_keys_open_existing is NOT_FOUND naming the path and leaves neither
 * the file nor its folder; once hp_keys_open made it, it opens. */
static void keys_open_existing_creates_nothing(void **state)
{
    (void)state;
    const char *path = new_db();
    char dir[256];
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = '\0';
    hp_keys *k = (hp_keys *)1;
    hp_errbuf eb = {{0}};
    assert_int_equal(hp_keys_open_existing(path, &k, &eb), HP_ERR_NOT_FOUND);
    assert_null(k);
    assert_non_null(strstr(eb.msg, path));
    assert_int_equal(access(dir, F_OK), -1);
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(hp_keys_open_existing(path, &k, &eb), HP_ERR_NOT_FOUND);
    assert_int_equal(access(path, F_OK), -1);
    hp_keys_close(open_ok(path));
    assert_int_equal(hp_keys_open_existing(path, &k, &eb), HP_OK);
    assert_non_null(k);
    hp_keys_close(k);
    assert_int_equal(hp_keys_open_existing(tmpdir, &k, &eb), HP_ERR_IO);
    assert_int_equal(hp_keys_open_existing("", &k, &eb), HP_ERR_INVALID);
}

/* keys_budget_usd_never_overspent: 50 requests of worst 0.03 USD in flight
 * against 1.00 USD: exactly 33 admitted; settling them for less frees
 * room for more. */
static void keys_budget_usd_never_overspent(void **state)
{
    (void)state;
    hp_keys *k = open_ok(new_db());
    hp_key_spec s = spec_none();
    s.budget_usd = 1.00;
    char secret[HP_KEY_SECRET_MAX], id[HP_KEY_ID_MAX];
    create_ok(k, &s, secret, id);
    hp_key_info ki;
    lookup_ok(k, secret, &ki);

    hp_key_resv r[50];
    int admitted = 0, retry = 0;
    hp_errbuf eb = {{0}};
    for (int i = 0; i < 50; i++) {
        hp_err e = hp_keys_admit(k, &ki, 0.03, 100, 10.0, &r[i], &retry, &eb);
        if (e == HP_OK) {
            admitted++;
            assert_true(r[i].active);
        } else {
            assert_int_equal(e, HP_ERR_AGAIN);
            assert_false(r[i].active);
            assert_true(retry >= 1);
            assert_non_null(strstr(eb.msg, "budget"));
            assert_non_null(strstr(eb.msg, "budget: 1 USD"));
            assert_non_null(strstr(eb.msg, "reserv"));
        }
    }
    assert_int_equal(admitted, 33);

    /* Settle each for 0.01: 0.33 spent, room for 22 more at worst 0.03. */
    for (int i = 0; i < 33; i++) {
        hp_keys_settle(k, &r[i], 0.01, 50, 11.0);
        assert_false(r[i].active);
        hp_keys_settle(k, &r[i], 0.01, 50, 11.0); /* inactive: no-op */
    }
    lookup_ok(k, secret, &ki); /* spent re-read from the database */
    assert_true(ki.spent_usd > 0.3299 && ki.spent_usd < 0.3301);
    assert_int_equal(ki.spent_tokens, 33 * 50);
    admitted = 0;
    for (int i = 0; i < 50; i++)
        if (hp_keys_admit(k, &ki, 0.03, 100, 12.0, &r[i], &retry, &eb) ==
            HP_OK)
            admitted++;
    assert_int_equal(admitted, 22);
    hp_keys_close(k); /* drops the reservations */
}

/* keys_budget_tokens_never_overspent: the same for a token budget. */
static void keys_budget_tokens_never_overspent(void **state)
{
    (void)state;
    hp_keys *k = open_ok(new_db());
    hp_key_spec s = spec_none();
    s.budget_tokens = 1000;
    char secret[HP_KEY_SECRET_MAX], id[HP_KEY_ID_MAX];
    create_ok(k, &s, secret, id);
    hp_key_info ki;
    lookup_ok(k, secret, &ki);
    hp_key_resv r[20];
    int admitted = 0, retry = 0;
    hp_errbuf eb = {{0}};
    for (int i = 0; i < 20; i++)
        if (hp_keys_admit(k, &ki, 0, 300, 1.0, &r[i], &retry, &eb) == HP_OK)
            admitted++;
    assert_int_equal(admitted, 3);
    assert_non_null(strstr(eb.msg, "1000 tokens"));
    assert_true(retry >= 1);
    for (int i = 0; i < 3; i++)
        hp_keys_settle(k, &r[i], 0, 100, 2.0);
    lookup_ok(k, secret, &ki);
    assert_int_equal(ki.spent_tokens, 300);
    admitted = 0;
    for (int i = 0; i < 20; i++)
        if (hp_keys_admit(k, &ki, 0, 300, 3.0, &r[i], &retry, &eb) == HP_OK)
            admitted++;
    assert_int_equal(admitted, 2); /* 300 + 2*300 = 900 <= 1000 */
    hp_keys_close(k);
}

/* keys_rpm_window: rpm=5 admits five, refuses the sixth with a retry
 * hint, and admits again once the minute has passed. */
static void keys_rpm_window(void **state)
{
    (void)state;
    hp_keys *k = open_ok(new_db());
    hp_key_spec s = spec_none();
    s.rpm = 5;
    char secret[HP_KEY_SECRET_MAX], id[HP_KEY_ID_MAX];
    create_ok(k, &s, secret, id);
    hp_key_info ki;
    lookup_ok(k, secret, &ki);
    hp_key_resv r;
    int retry = 0;
    hp_errbuf eb = {{0}};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(hp_keys_admit(k, &ki, 0, 0, 100.0 + i, &r, &retry,
                                       &eb), HP_OK);
        hp_keys_settle(k, &r, 0, 0, 100.0 + i);
    }
    assert_int_equal(hp_keys_admit(k, &ki, 0, 0, 104.5, &r, &retry, &eb),
                     HP_ERR_AGAIN);
    assert_false(r.active);
    assert_true(retry >= 1);
    assert_int_equal(retry, 56); /* the request at 100 leaves at 160 */
    assert_non_null(strstr(eb.msg, "rate limit: 5 requests per minute"));
    /* 60 s later the window is empty again: five more, then refused. */
    for (int i = 0; i < 5; i++)
        assert_int_equal(hp_keys_admit(k, &ki, 0, 0, 164.5, &r, &retry, &eb),
                         HP_OK);
    assert_int_equal(hp_keys_admit(k, &ki, 0, 0, 165.0, &r, &retry, &eb),
                     HP_ERR_AGAIN);
    assert_int_equal(retry, 59); /* all five leave at 224 */
    hp_keys_close(k);
}

/* keys_tpm_window: settled tokens plus in-flight reservations count
 * against tpm; the window frees a minute after the settle. */
static void keys_tpm_window(void **state)
{
    (void)state;
    hp_keys *k = open_ok(new_db());
    hp_key_spec s = spec_none();
    s.tpm = 1000;
    char secret[HP_KEY_SECRET_MAX], id[HP_KEY_ID_MAX];
    create_ok(k, &s, secret, id);
    hp_key_info ki;
    lookup_ok(k, secret, &ki);
    hp_key_resv a, b, c;
    int retry = 0;
    hp_errbuf eb = {{0}};
    assert_int_equal(hp_keys_admit(k, &ki, 0, 600, 0.0, &a, &retry, &eb),
                     HP_OK);
    assert_int_equal(hp_keys_admit(k, &ki, 0, 600, 0.0, &b, &retry, &eb),
                     HP_OK); /* 600 used < 1000 */
    assert_int_equal(hp_keys_admit(k, &ki, 0, 10, 0.0, &c, &retry, &eb),
                     HP_ERR_AGAIN); /* 1200 reserved */
    assert_true(retry >= 1);
    assert_non_null(strstr(eb.msg, "tokens per minute"));
    hp_keys_settle(k, &a, 0, 300, 5.0);
    hp_keys_settle(k, &b, 0, 400, 6.0);
    /* 700 settled in the window, nothing reserved: one more fits. */
    assert_int_equal(hp_keys_admit(k, &ki, 0, 500, 7.0, &c, &retry, &eb),
                     HP_OK);
    hp_keys_settle(k, &c, 0, 500, 8.0); /* 1200 in the window */
    assert_int_equal(hp_keys_admit(k, &ki, 0, 1, 9.0, &a, &retry, &eb),
                     HP_ERR_AGAIN);
    /* 300 leaves at 65 -> 900 < 1000: wait 65 - 9 = 56 s. */
    assert_int_equal(retry, 56);
    assert_int_equal(hp_keys_admit(k, &ki, 0, 1, 65.0, &a, &retry, &eb),
                     HP_OK);
    hp_keys_settle(k, &a, 0, 0, 65.0);
    assert_int_equal(hp_keys_admit(k, &ki, 0, 1, 70.0, &a, &retry, &eb),
                     HP_OK);
    hp_keys_close(k);
}

/* keys_list_json_shape: every key, revoked ones too, with the documented
 * fields and no secret or hash. */
static void keys_list_json_shape(void **state)
{
    (void)state;
    hp_keys *k = open_ok(new_db());
    hp_key_spec s = spec_none();
    char sa[HP_KEY_SECRET_MAX], ia[HP_KEY_ID_MAX];
    char sb[HP_KEY_SECRET_MAX], ib[HP_KEY_ID_MAX];
    create_ok(k, &s, sa, ia);
    s.name = "b";
    s.budget_usd = 2.5;
    s.budget_tokens = 900;
    s.rpm = 7;
    s.tpm = 8000;
    s.routes = "x,y";
    create_ok(k, &s, sb, ib);
    hp_errbuf eb = {{0}};
    assert_int_equal(hp_keys_revoke(k, ia, &eb), HP_OK);
    json_t *arr = NULL;
    assert_int_equal(hp_keys_list(k, &arr, &eb), HP_OK);
    assert_true(json_is_array(arr));
    assert_int_equal(json_array_size(arr), 2);

    json_t *a = json_array_get(arr, 0), *b = json_array_get(arr, 1);
    assert_string_equal(json_string_value(json_object_get(a, "id")), ia);
    assert_true(json_is_null(json_object_get(a, "name")));
    assert_true(json_is_true(json_object_get(a, "revoked")));
    assert_true(json_is_null(json_object_get(a, "budget_usd")));
    assert_true(json_is_null(json_object_get(a, "budget_tokens")));
    assert_int_equal(json_array_size(json_object_get(a, "routes")), 0);
    assert_true(json_integer_value(json_object_get(a, "created")) >
                1600000000);

    assert_string_equal(json_string_value(json_object_get(b, "id")), ib);
    assert_string_equal(json_string_value(json_object_get(b, "name")), "b");
    assert_true(json_is_false(json_object_get(b, "revoked")));
    assert_true(json_number_value(json_object_get(b, "budget_usd")) == 2.5);
    assert_true(json_number_value(json_object_get(b, "spent_usd")) == 0);
    assert_int_equal(json_integer_value(json_object_get(b, "budget_tokens")),
                     900);
    assert_int_equal(json_integer_value(json_object_get(b, "spent_tokens")),
                     0);
    assert_int_equal(json_integer_value(json_object_get(b, "rpm")), 7);
    assert_int_equal(json_integer_value(json_object_get(b, "tpm")), 8000);
    json_t *routes = json_object_get(b, "routes");
    assert_int_equal(json_array_size(routes), 2);
    assert_string_equal(json_string_value(json_array_get(routes, 1)), "y");
    assert_int_equal(json_object_size(b), 11);
    assert_null(json_object_get(b, "hash"));
    assert_null(json_object_get(b, "salt"));

    char *text = json_dumps(arr, 0);
    assert_null(strstr(text, sa + 17));
    assert_null(strstr(text, sb + 17));
    free(text);
    json_decref(arr);
    hp_keys_close(k);
}

/* keys_reopen_keeps_spend: settled spend is in the file, not in memory. */
static void keys_reopen_keeps_spend(void **state)
{
    (void)state;
    char path[256];
    snprintf(path, sizeof path, "%s", new_db());
    hp_keys *k = open_ok(path);
    hp_key_spec s = spec_none();
    s.budget_usd = 1;
    char secret[HP_KEY_SECRET_MAX], id[HP_KEY_ID_MAX];
    create_ok(k, &s, secret, id);
    hp_key_info ki;
    lookup_ok(k, secret, &ki);
    hp_key_resv r;
    int retry;
    hp_errbuf eb = {{0}};
    assert_int_equal(hp_keys_admit(k, &ki, 0.5, 10, 1, &r, &retry, &eb),
                     HP_OK);
    hp_keys_settle(k, &r, 0.25, 7, 2);
    hp_keys_close(k);

    k = open_ok(path);
    lookup_ok(k, secret, &ki);
    assert_true(ki.spent_usd == 0.25);
    assert_int_equal(ki.spent_tokens, 7);
    hp_keys_close(k);
}

/* keys_two_handles_share_spend: a settle through one handle is seen by a
 * lookup through another (how `hotpath keys` and the gateway share it). */
static void keys_two_handles_share_spend(void **state)
{
    (void)state;
    char path[256];
    snprintf(path, sizeof path, "%s", new_db());
    hp_keys *a = open_ok(path);
    hp_keys *b = open_ok(path);
    hp_key_spec s = spec_none();
    s.budget_usd = 1;
    char secret[HP_KEY_SECRET_MAX], id[HP_KEY_ID_MAX];
    create_ok(a, &s, secret, id);
    hp_key_info ka, kb;
    lookup_ok(b, secret, &kb); /* created in a, visible in b */
    lookup_ok(a, secret, &ka);
    hp_key_resv r;
    int retry;
    hp_errbuf eb = {{0}};
    assert_int_equal(hp_keys_admit(a, &ka, 0.9, 0, 1, &r, &retry, &eb), HP_OK);
    hp_keys_settle(a, &r, 0.75, 0, 2);
    lookup_ok(b, secret, &kb);
    assert_true(kb.spent_usd == 0.75);
    /* b knows nothing of a's reservations but sees its spend. */
    assert_int_equal(hp_keys_admit(b, &kb, 0.3, 0, 3, &r, &retry, &eb),
                     HP_ERR_AGAIN);
    assert_int_equal(hp_keys_admit(b, &kb, 0.25, 0, 3, &r, &retry, &eb),
                     HP_OK);
    hp_keys_settle(b, &r, 0.05, 0, 4);
    lookup_ok(a, secret, &ka);
    assert_true(ka.spent_usd > 0.7999 && ka.spent_usd < 0.8001);
    /* Revoked through b: a stops accepting at once. */
    assert_int_equal(hp_keys_revoke(b, id, &eb), HP_OK);
    assert_int_equal(hp_keys_lookup(a, secret, &ka, &eb), HP_ERR_NOT_FOUND);
    hp_keys_close(a);
    hp_keys_close(b);
}

/* keys_garbage_file_io: a file that is not SQLite, or an SQLite database
 * that is not hotpath's, is HP_ERR_IO naming the path. */
static void keys_garbage_file_io(void **state)
{
    (void)state;
    char path[256];
    snprintf(path, sizeof path, "%s/garbage.db", tmpdir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    for (int i = 0; i < 4096; i++)
        fputc((i * 7919) & 0xff, f);
    fclose(f);
    hp_keys *k = (hp_keys *)1;
    hp_errbuf eb = {{0}};
    assert_int_equal(hp_keys_open(path, &k, &eb), HP_ERR_IO);
    assert_null(k);
    assert_non_null(strstr(eb.msg, path));

    snprintf(path, sizeof path, "%s/short.db", tmpdir);
    f = fopen(path, "wb");
    fputs("hello, not a database\n", f);
    fclose(f);
    assert_int_equal(hp_keys_open(path, &k, &eb), HP_ERR_IO);
    assert_non_null(strstr(eb.msg, path));

    /* Someone else's SQLite database. */
    snprintf(path, sizeof path, "%s/other.db", tmpdir);
    sqlite3 *db3 = NULL;
    assert_int_equal(sqlite3_open(path, &db3), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db3, "CREATE TABLE t(x); INSERT INTO t "
                                  "VALUES(1);", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db3);
    assert_int_equal(hp_keys_open(path, &k, &eb), HP_ERR_IO);
    assert_non_null(strstr(eb.msg, path));
    assert_non_null(strstr(eb.msg, "not a hotpath database"));

    /* The gateway ledger's table alone is hotpath's: keys join it. */
    snprintf(path, sizeof path, "%s/ledger.db", tmpdir);
    assert_int_equal(sqlite3_open(path, &db3), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db3, "CREATE TABLE requests(id INTEGER "
                                  "PRIMARY KEY, ts REAL); CREATE INDEX "
                                  "requests_ts ON requests(ts);", NULL, NULL,
                                  NULL), SQLITE_OK);
    sqlite3_close(db3);
    k = open_ok(path);
    hp_keys_close(k);
    k = open_ok(path); /* and reopens */
    hp_keys_close(k);

    /* A directory where the file should be. */
    assert_int_equal(hp_keys_open(tmpdir, &k, &eb), HP_ERR_IO);
    assert_int_equal(hp_keys_open("", &k, &eb), HP_ERR_INVALID);
}

/* keys_default_path: XDG_DATA_HOME wins, then HOME; neither: NULL. */
static void keys_default_path(void **state)
{
    (void)state;
    char buf[256];
    const char *oh = getenv("HOME"), *ox = getenv("XDG_DATA_HOME");
    char *sh = oh ? strdup(oh) : NULL, *sx = ox ? strdup(ox) : NULL;
    setenv("XDG_DATA_HOME", "/x/data", 1);
    setenv("HOME", "/home/u", 1);
    assert_string_equal(hp_keys_default_path(buf, sizeof buf),
                        "/x/data/hotpath/hotpath.db");
    unsetenv("XDG_DATA_HOME");
    assert_string_equal(hp_keys_default_path(buf, sizeof buf),
                        "/home/u/.local/share/hotpath/hotpath.db");
    assert_null(hp_keys_default_path(buf, 10));
    unsetenv("HOME");
    assert_null(hp_keys_default_path(buf, sizeof buf));
    if (sh)
        setenv("HOME", sh, 1);
    if (sx)
        setenv("XDG_DATA_HOME", sx, 1);
    free(sh);
    free(sx);
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
        cmocka_unit_test(keys_create_lookup_revoke),
        cmocka_unit_test(keys_bad_secrets_not_found),
        cmocka_unit_test(keys_salted_hashes_no_secret_on_disk),
        cmocka_unit_test(keys_routes_allow_list),
        cmocka_unit_test(keys_bad_spec_invalid),
        cmocka_unit_test(keys_open_existing_creates_nothing),
        cmocka_unit_test(keys_budget_usd_never_overspent),
        cmocka_unit_test(keys_budget_tokens_never_overspent),
        cmocka_unit_test(keys_rpm_window),
        cmocka_unit_test(keys_tpm_window),
        cmocka_unit_test(keys_list_json_shape),
        cmocka_unit_test(keys_reopen_keeps_spend),
        cmocka_unit_test(keys_two_handles_share_spend),
        cmocka_unit_test(keys_garbage_file_io),
        cmocka_unit_test(keys_default_path),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
