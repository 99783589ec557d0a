/* ledger.c: the request ledger (ledger.h). */
#include "gateway/ledger.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rows held while the disk is slow; beyond this, rows are dropped. */
#define QUEUE_MAX 65536

struct hp_ledger {
    sqlite3 *db;          /* owns */
    sqlite3_stmt *ins;    /* owns */
    hp_ledger_row *q;     /* owns: rows not yet written */
    size_t n, cap;
    bool warned;          /* the drop message was printed */
};

static const char *schema =
    "CREATE TABLE IF NOT EXISTS requests ("
    " id INTEGER PRIMARY KEY, ts REAL NOT NULL, key_id TEXT, route TEXT,"
    " target TEXT, status INTEGER, prompt_tokens INTEGER,"
    " cached_tokens INTEGER, completion_tokens INTEGER,"
    " estimated INTEGER, stream INTEGER, cache_hit INTEGER, cost_usd REAL,"
    " ttft_ms REAL, e2e_ms REAL, request_id TEXT);"
    "CREATE INDEX IF NOT EXISTS requests_ts ON requests(ts);";

hp_err hp_ledger_open(const char *path, hp_ledger **out, hp_errbuf *eb)
{
    *out = NULL;
    hp_ledger *l = calloc(1, sizeof *l);
    if (!l)
        return hp_errf(eb, HP_ERR_NOMEM, "out of memory");
    if (sqlite3_open_v2(path, &l->db, SQLITE_OPEN_READWRITE |
                        SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK)
        goto fail;
    sqlite3_busy_timeout(l->db, 2000);
    if (sqlite3_exec(l->db, "PRAGMA journal_mode=WAL;"
                     "PRAGMA synchronous=NORMAL;", NULL, NULL, NULL) !=
            SQLITE_OK ||
        sqlite3_exec(l->db, schema, NULL, NULL, NULL) != SQLITE_OK)
        goto fail;
    /* files from before request ids: add the column (an error just means
     * it is there already) */
    sqlite3_exec(l->db, "ALTER TABLE requests ADD COLUMN request_id TEXT",
                 NULL, NULL, NULL);
    if (sqlite3_prepare_v2(l->db,
            "INSERT INTO requests (ts, key_id, route, target, status,"
            " prompt_tokens, cached_tokens, completion_tokens, estimated,"
            " stream, cache_hit, cost_usd, ttft_ms, e2e_ms, request_id)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", -1, &l->ins, NULL) !=
        SQLITE_OK)
        goto fail;
    *out = l;
    return HP_OK;
fail:;
    hp_err e = hp_errf(eb, HP_ERR_IO, "%s: cannot open the ledger: %s", path,
                       l->db ? sqlite3_errmsg(l->db) : "out of memory");
    sqlite3_close(l->db);
    free(l);
    return e;
}

void hp_ledger_close(hp_ledger *l)
{
    if (!l)
        return;
    hp_errbuf eb;
    if (hp_ledger_flush(l, &eb))
        fprintf(stderr, "hotpath: ledger: %s (%zu rows lost)\n", eb.msg, l->n);
    sqlite3_finalize(l->ins);
    sqlite3_close(l->db);
    free(l->q);
    free(l);
}

void hp_ledger_add(hp_ledger *l, const hp_ledger_row *row)
{
    if (!l || !row)
        return;
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 256;
        hp_ledger_row *nq = nc <= QUEUE_MAX ? realloc(l->q, nc * sizeof *nq)
                                            : NULL;
        if (!nq) {
            if (!l->warned)
                fprintf(stderr, "hotpath: ledger: queue full, dropping rows "
                        "until the database catches up\n");
            l->warned = true;
            return;
        }
        l->q = nq;
        l->cap = nc;
    }
    l->q[l->n++] = *row;
}

hp_err hp_ledger_flush(hp_ledger *l, hp_errbuf *eb)
{
    if (!l || !l->n)
        return HP_OK;
    if (sqlite3_exec(l->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        return hp_errf(eb, HP_ERR_IO, "ledger: %s", sqlite3_errmsg(l->db));
    for (size_t i = 0; i < l->n; i++) {
        const hp_ledger_row *r = &l->q[i];
        sqlite3_stmt *s = l->ins;
        sqlite3_reset(s);
        sqlite3_bind_double(s, 1, r->ts);
        sqlite3_bind_text(s, 2, r->key_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 3, r->route, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 4, r->target, -1, SQLITE_STATIC);
        sqlite3_bind_int(s, 5, r->status);
        sqlite3_bind_int64(s, 6, r->prompt_tokens);
        sqlite3_bind_int64(s, 7, r->cached_tokens);
        sqlite3_bind_int64(s, 8, r->completion_tokens);
        sqlite3_bind_int(s, 9, r->estimated);
        sqlite3_bind_int(s, 10, r->stream);
        sqlite3_bind_int(s, 11, r->cache_hit);
        sqlite3_bind_double(s, 12, r->cost_usd);
        sqlite3_bind_double(s, 13, r->ttft_ms);
        sqlite3_bind_double(s, 14, r->e2e_ms);
        sqlite3_bind_text(s, 15, r->request_id, -1, SQLITE_STATIC);
        if (sqlite3_step(s) != SQLITE_DONE) {
            hp_err e = hp_errf(eb, HP_ERR_IO, "ledger: %s",
                               sqlite3_errmsg(l->db));
            sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
            return e;
        }
    }
    if (sqlite3_exec(l->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        hp_err e = hp_errf(eb, HP_ERR_IO, "ledger: %s", sqlite3_errmsg(l->db));
        sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
        return e;
    }
    l->n = 0;
    l->warned = false;
    return HP_OK;
}

hp_err hp_ledger_recent(hp_ledger *l, int limit, json_t **out, hp_errbuf *eb)
{
    *out = NULL;
    hp_err e = hp_ledger_flush(l, eb);
    if (e)
        return e;
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(l->db,
            "SELECT ts, key_id, route, target, status, prompt_tokens,"
            " cached_tokens, completion_tokens, estimated, stream, cache_hit,"
            " cost_usd, ttft_ms, e2e_ms, request_id FROM requests"
            " ORDER BY id DESC"
            " LIMIT ?", -1, &s, NULL) != SQLITE_OK)
        return hp_errf(eb, HP_ERR_IO, "ledger: %s", sqlite3_errmsg(l->db));
    sqlite3_bind_int(s, 1, limit > 0 ? limit : 100);
    json_t *arr = json_array();
    while (arr && sqlite3_step(s) == SQLITE_ROW) {
        const char *kid = (const char *)sqlite3_column_text(s, 1);
        const char *rid = (const char *)sqlite3_column_text(s, 14);
        double ttft = sqlite3_column_double(s, 12);
        json_t *o = json_pack(
            "{s:f, s:s?, s:s?, s:s, s:s, s:i, s:I, s:I, s:I, s:b, s:b, s:b,"
            " s:f, s:o, s:f}",
            "ts", sqlite3_column_double(s, 0),
            "request_id", rid && rid[0] ? rid : NULL,
            "key_id", kid && kid[0] ? kid : NULL,
            "route", (const char *)sqlite3_column_text(s, 2),
            "target", (const char *)sqlite3_column_text(s, 3),
            "status", sqlite3_column_int(s, 4),
            "prompt_tokens", (json_int_t)sqlite3_column_int64(s, 5),
            "cached_tokens", (json_int_t)sqlite3_column_int64(s, 6),
            "completion_tokens", (json_int_t)sqlite3_column_int64(s, 7),
            "estimated", sqlite3_column_int(s, 8),
            "stream", sqlite3_column_int(s, 9),
            "cache_hit", sqlite3_column_int(s, 10),
            "cost_usd", sqlite3_column_double(s, 11),
            "ttft_ms", ttft >= 0 ? json_real(ttft) : json_null(),
            "e2e_ms", sqlite3_column_double(s, 13));
        if (!o || json_array_append_new(arr, o)) {
            json_decref(arr);
            arr = NULL;
        }
    }
    sqlite3_finalize(s);
    if (!arr)
        return hp_errf(eb, HP_ERR_NOMEM, "out of memory");
    *out = arr;
    return HP_OK;
}
