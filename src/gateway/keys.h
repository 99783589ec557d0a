/* keys.h: virtual API keys, their budgets and their rate limits.
 *
 * Keys live in SQLite (one file, WAL mode, so `hotpath keys` in another
 * process and a running gateway share it). Only a salted SHA-256 of each
 * key's secret is stored; the secret is returned once, by hp_keys_create.
 * A secret reads "hp-<id>.<random>": the id finds the row, the salted hash
 * proves the rest, compared in constant time.
 *
 * Budgets (USD and tokens) are never overspent, even with many requests in
 * flight: hp_keys_admit reserves the request's worst case in memory next
 * to the spent total read from the database, and hp_keys_settle replaces
 * the reservation with the real spend. RPM/TPM windows are kept in memory
 * (they restart with the process). All calls are made from one thread (the
 * gateway's loop); the struct is not locked. Secrets never reach a log or
 * an error message. Included by gateway/ and cli/cmd_keys.c. */
#ifndef HP_GATEWAY_KEYS_H
#define HP_GATEWAY_KEYS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define HP_KEY_SECRET_MAX 96 /* buffer for a secret, NUL included */
#define HP_KEY_ID_MAX 32     /* buffer for an id such as "k3f9a2c71d0e4" */

typedef struct hp_keys hp_keys;

/* What a new key may do. */
typedef struct hp_key_spec {
    const char *name;      /* label shown by list; NULL or non-empty */
    double budget_usd;     /* < 0: no USD budget */
    int64_t budget_tokens; /* < 0: no token budget (prompt + completion) */
    int rpm;               /* requests per minute; 0: no limit */
    int64_t tpm;           /* tokens per minute; 0: no limit */
    const char *routes;    /* comma-separated route names; NULL or "" =
                              every route */
} hp_key_spec;

/* A key as the gateway needs it per request. */
typedef struct hp_key_info {
    int64_t rowid;
    char id[HP_KEY_ID_MAX];
    char name[64];
    double budget_usd;     /* < 0: none */
    int64_t budget_tokens; /* < 0: none */
    int rpm;
    int64_t tpm;
    char routes[512];      /* "" = every route */
    double spent_usd;      /* settled so far (from the database) */
    int64_t spent_tokens;
} hp_key_info;

/* A reservation made by hp_keys_admit; settle it exactly once. */
typedef struct hp_key_resv {
    int64_t rowid;
    double usd;
    int64_t tokens;
    bool active;
} hp_key_resv;

/* The default database path: $XDG_DATA_HOME/hotpath/hotpath.db, else
 * $HOME/.local/share/hotpath/hotpath.db (directories created on open).
 * Writes into buf; returns buf, or NULL when neither variable is set or
 * buf is too small. */
const char *hp_keys_default_path(char *buf, size_t n);

/* Open (creating file, parent directory and schema as needed). HP_ERR_IO
 * with eb naming the path when it cannot be opened or is not a hotpath
 * database. */
hp_err hp_keys_open(const char *path, hp_keys **out, hp_errbuf *eb);

/* Open a database that must already exist, creating nothing: for reads
 * and changes to existing keys (keys list, keys revoke). HP_ERR_NOT_FOUND,
 * eb naming the path, when there is no file; otherwise as hp_keys_open. */
hp_err hp_keys_open_existing(const char *path, hp_keys **out, hp_errbuf *eb);

/* Close. Reservations still active are dropped. Accepts NULL. */
void hp_keys_close(hp_keys *k);

/* Create a key. secret receives the full secret (shown once), id its
 * public id. HP_ERR_INVALID for a bad spec (eb names the field), an empty
 * name included. */
hp_err hp_keys_create(hp_keys *k, const hp_key_spec *s,
                      char secret[HP_KEY_SECRET_MAX], char id[HP_KEY_ID_MAX],
                      hp_errbuf *eb);

/* Every key (revoked ones too) as a JSON array of objects: id, name,
 * created (unix seconds), revoked (bool), budget_usd, spent_usd,
 * budget_tokens, spent_tokens, rpm, tpm, routes (array of names; empty =
 * all). No secrets or hashes. *out is a new reference. */
hp_err hp_keys_list(hp_keys *k, json_t **out, hp_errbuf *eb);

/* Revoke by id: the key stops working at once. HP_ERR_NOT_FOUND for an
 * unknown id. Revoking twice is HP_OK. */
hp_err hp_keys_revoke(hp_keys *k, const char *id, hp_errbuf *eb);

/* Find the live key for a secret (the bearer token as sent). HP_OK fills
 * *out; HP_ERR_NOT_FOUND for a malformed, unknown, wrong or revoked
 * secret (one answer for all, so callers cannot probe). */
hp_err hp_keys_lookup(hp_keys *k, const char *secret, hp_key_info *out,
                      hp_errbuf *eb);

/* May this key use the route named `route`? */
bool hp_key_allows_route(const hp_key_info *ki, const char *route);

/* Admit one request whose worst case is worst_usd / worst_tokens, at time
 * now_s (seconds, monotonic). HP_OK: the worst case is reserved in *r.
 * HP_ERR_AGAIN: a limit is reached; *retry_after_s says when trying again
 * may help (>= 1) and eb says which limit ("rate limit: 60 requests per
 * minute", "budget: 1.00 USD, 0.98 spent or reserved"). A budget is
 * refused when spent + reserved + worst would exceed it. */
hp_err hp_keys_admit(hp_keys *k, const hp_key_info *ki, double worst_usd,
                     int64_t worst_tokens, double now_s, hp_key_resv *r,
                     int *retry_after_s, hp_errbuf *eb);

/* Replace reservation r by the real spend (added to the database and to
 * the TPM window). r becomes inactive; settling an inactive one is a
 * no-op. A database failure is reported on stderr without the key's
 * secret and does not stop the gateway. */
void hp_keys_settle(hp_keys *k, hp_key_resv *r, double usd, int64_t tokens,
                    double now_s);

#endif
