/* ledger.c: the request ledger (ledger.h).
 *
 * A writer thread owns the inserts: the gateway's loop only appends rows
 * to a locked queue, because a transaction of a thousand rows takes
 * milliseconds, which on the loop would stall every request in flight. */
#include "gateway/ledger.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Rows held while the disk is slow; beyond this, rows are dropped. */
#define QUEUE_MAX 65536
/* The writer wakes this often, or when this many rows wait. */
#define WRITE_MS 200
#define WRITE_ROWS 512

struct hp_ledger {
    pthread_mutex_t db_mu; /* guards db and ins (writer vs readers) */
    sqlite3 *db;          /* owns */
    sqlite3_stmt *ins;    /* owns */
    pthread_mutex_t mu;   /* guards everything below */
    pthread_cond_t cv;
    hp_ledger_row *q;     /* owns: rows not yet written */
    size_t n, cap;
    bool warned;          /* the drop message was printed */
    bool stop;
    bool have_thread;
    pthread_t th;         /* the writer */
};

static void *writer(void *arg);

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
    pthread_mutex_init(&l->db_mu, NULL);
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    l->have_thread = pthread_create(&l->th, NULL, writer, l) == 0;
    *out = l; /* without a thread, hp_ledger_flush callers still write */
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
    if (l->have_thread) {
        pthread_mutex_lock(&l->mu);
        l->stop = true;
        pthread_cond_signal(&l->cv);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->th, NULL);
    }
    hp_errbuf eb;
    if (hp_ledger_flush(l, &eb))
        fprintf(stderr, "hotpath: ledger: %s (%zu rows lost)\n", eb.msg, l->n);
    sqlite3_finalize(l->ins);
    sqlite3_close(l->db);
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
    pthread_mutex_destroy(&l->db_mu);
    free(l->q);
    free(l);
}

void hp_ledger_add(hp_ledger *l, const hp_ledger_row *row)
{
    if (!l || !row)
        return;
    pthread_mutex_lock(&l->mu);
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 256;
        hp_ledger_row *nq = nc <= QUEUE_MAX ? realloc(l->q, nc * sizeof *nq)
                                            : NULL;
        if (!nq) {
            if (!l->warned)
                fprintf(stderr, "hotpath: ledger: queue full, dropping rows "
                        "until the database catches up\n");
            l->warned = true;
            pthread_mutex_unlock(&l->mu);
            return;
        }
        l->q = nq;
        l->cap = nc;
    }
    l->q[l->n++] = *row;
    if (l->n == WRITE_ROWS)
        pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

/* Insert rows in one transaction (db_mu held by the caller). */
static hp_err write_rows(hp_ledger *l, const hp_ledger_row *rows, size_t n,
                         hp_errbuf *eb)
{
    if (sqlite3_exec(l->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        return hp_errf(eb, HP_ERR_IO, "ledger: %s", sqlite3_errmsg(l->db));
    for (size_t i = 0; i < n; i++) {
        const hp_ledger_row *r = &rows[i];
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
    return HP_OK;
}

hp_err hp_ledger_flush(hp_ledger *l, hp_errbuf *eb)
{
    if (!l)
        return HP_OK;
    /* take the queue, write it without holding mu (adds go on) */
    pthread_mutex_lock(&l->db_mu);
    pthread_mutex_lock(&l->mu);
    hp_ledger_row *rows = l->q;
    size_t n = l->n;
    l->q = NULL;
    l->n = l->cap = 0;
    pthread_mutex_unlock(&l->mu);
    hp_err e = n ? write_rows(l, rows, n, eb) : HP_OK;
    pthread_mutex_unlock(&l->db_mu);
    if (e) {
        /* keep the rows for the next try, ahead of newer ones */
        pthread_mutex_lock(&l->mu);
        hp_ledger_row *nq = realloc(rows, (n + l->n) * sizeof *nq);
        if (nq) {
            if (l->n)
                memcpy(nq + n, l->q, l->n * sizeof *nq);
            free(l->q);
            l->q = nq;
            l->n += n;
            l->cap = l->n;
            rows = NULL;
        }
        pthread_mutex_unlock(&l->mu);
    } else {
        pthread_mutex_lock(&l->mu);
        l->warned = false;
        pthread_mutex_unlock(&l->mu);
    }
    free(rows);
    return e;
}

static void *writer(void *arg)
{
    hp_ledger *l = arg;
    pthread_mutex_lock(&l->mu);
    while (!l->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += WRITE_MS * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        while (!l->stop && l->n < WRITE_ROWS &&
               pthread_cond_timedwait(&l->cv, &l->mu, &ts) != ETIMEDOUT)
            ;
        if (l->stop)
            break;
        if (!l->n)
            continue;
        pthread_mutex_unlock(&l->mu);
        hp_errbuf eb;
        if (hp_ledger_flush(l, &eb))
            fprintf(stderr, "hotpath: %s\n", eb.msg);
        pthread_mutex_lock(&l->mu);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

hp_err hp_ledger_recent(hp_ledger *l, int limit, json_t **out, hp_errbuf *eb)
{
    *out = NULL;
    hp_err e = hp_ledger_flush(l, eb);
    if (e)
        return e;
    pthread_mutex_lock(&l->db_mu);
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(l->db,
            "SELECT ts, key_id, route, target, status, prompt_tokens,"
            " cached_tokens, completion_tokens, estimated, stream, cache_hit,"
            " cost_usd, ttft_ms, e2e_ms, request_id FROM requests"
            " ORDER BY id DESC"
            " LIMIT ?", -1, &s, NULL) != SQLITE_OK) {
        e = hp_errf(eb, HP_ERR_IO, "ledger: %s", sqlite3_errmsg(l->db));
        pthread_mutex_unlock(&l->db_mu);
        return e;
    }
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
    pthread_mutex_unlock(&l->db_mu);
    if (!arr)
        return hp_errf(eb, HP_ERR_NOMEM, "out of memory");
    *out = arr;
    return HP_OK;
}
