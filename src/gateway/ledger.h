/* ledger.h: the gateway's request ledger in SQLite.
 *
 * One row per answered request: time, key id, route, target, status,
 * prompt / cached / completion tokens, whether those were estimated,
 * cost in USD, time to first token and end-to-end latency. Rows are
 * queued in memory and a writer thread inserts them in one transaction
 * every 200 ms (or 512 rows), and at close, so the hot path never waits
 * for the disk. Shares the database file with keys.c (WAL mode). Calls
 * may come from any one thread; the writer is internal. Never stores
 * request or response bodies, or secrets. */
#ifndef HP_GATEWAY_LEDGER_H
#define HP_GATEWAY_LEDGER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

typedef struct hp_ledger hp_ledger;

typedef struct hp_ledger_row {
    double ts;              /* unix seconds */
    char request_id[48];    /* the x-request-id the client saw */
    char key_id[32];        /* "" when no key */
    char route[128];
    char target[192];
    int status;             /* HTTP status sent to the client */
    int64_t prompt_tokens;  /* includes cached */
    int64_t cached_tokens;
    int64_t completion_tokens;
    bool estimated;         /* counted by hotpath: the upstream sent none */
    bool stream;
    bool cache_hit;
    double cost_usd;
    double ttft_ms;         /* -1 when no token was sent */
    double e2e_ms;
} hp_ledger_row;

/* Open (creating the table). HP_ERR_IO naming the path. */
hp_err hp_ledger_open(const char *path, hp_ledger **out, hp_errbuf *eb);
/* Flush and close. Accepts NULL. */
void hp_ledger_close(hp_ledger *l);

/* Queue one row (copied). Drops it, with one message on stderr, when the
 * queue is over its bound because the disk cannot keep up. */
void hp_ledger_add(hp_ledger *l, const hp_ledger_row *row);

/* Write queued rows in one transaction. HP_ERR_IO on a database error
 * (rows are kept for the next try). */
hp_err hp_ledger_flush(hp_ledger *l, hp_errbuf *eb);

/* The newest `limit` rows (newest first) as a JSON array of objects with
 * the row's fields, after flushing. New reference in *out. */
hp_err hp_ledger_recent(hp_ledger *l, int limit, json_t **out, hp_errbuf *eb);

#endif
