/* err.h: hotpath's one error vocabulary.
 *
 * Every fallible function returns an hp_err. Codes are only appended, never
 * renumbered. HP_AGAIN and HP_DECLINED are not failures. Human-readable
 * detail goes into a caller-supplied hp_errbuf (256 bytes), never to stderr:
 * only a subcommand's entry point prints. Included by every layer. */
#ifndef HP_ERR_H
#define HP_ERR_H

#include <stddef.h>

typedef enum hp_err {
    HP_OK = 0,
    HP_ERR_NOMEM,       /* allocation failed */
    HP_ERR_IO,          /* open/read/mmap/socket failed */
    HP_ERR_FORMAT,      /* malformed or corrupt input (file, JSON, header) */
    HP_ERR_UNSUPPORTED, /* well-formed but not supported (arch, dtype) */
    HP_ERR_INVALID,     /* bad argument or request field */
    HP_ERR_RANGE,       /* value out of range (context overflow, limits) */
    HP_ERR_NOT_FOUND,   /* unknown model, key, route */
    HP_ERR_TOO_LARGE,   /* body or input over a configured limit */
    HP_ERR_CANCELLED,   /* client went away or request cancelled */
    HP_ERR_AGAIN,       /* not a failure: try later (queue full) */
    HP_ERR_DECLINED,    /* not a failure: handler does not apply */
    HP_ERR_INTERNAL     /* a bug: invariant broken */
} hp_err;

#define HP_ERRBUF_LEN 256

/* Caller-owned detail buffer. msg is always NUL-terminated (empty if unset). */
typedef struct hp_errbuf {
    char msg[HP_ERRBUF_LEN];
} hp_errbuf;

/* Format detail into eb (if non-NULL) and return code, so callers can write
 * `return hp_errf(eb, HP_ERR_FORMAT, "tensor %s: offset past end", name);` */
hp_err hp_errf(hp_errbuf *eb, hp_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Static English name of a code ("format error", ...). Never NULL. */
const char *hp_strerror(hp_err code);

#endif
