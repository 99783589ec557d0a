/* http_guard.h: checks each HTTP request head before libevent parses it.
 *
 * libevent 2.1 reads a request's headers and then its body with no hook in
 * between (evhttp_set_newreqcb and server-side header callbacks arrived in
 * 2.2), and it answers an oversized Content-Length only after draining the
 * whole body (lingering close), so a client that sends just the headers
 * hears nothing until the timeout. The guard sits on each connection's
 * input buffer, holds bytes back from libevent until a request head is
 * complete, and checks it: Content-Length (valid, not conflicting, within
 * the body limit), Transfer-Encoding, URL and header sizes. A bad head is
 * replaced by a synthetic request for HP_HTTP_GUARD_PATH, which the server
 * answers with the error JSON at once; the connection then closes after a
 * short lingering drain, so the client gets to read the answer. Included by
 * server/server.c. Knows HTTP framing; nothing of models or JSON. */
#ifndef HP_HTTP_GUARD_H
#define HP_HTTP_GUARD_H

#include <stddef.h>

struct bufferevent;
struct event_base;
struct evkeyvalq;

/* Longest request target (URL) accepted, in bytes: longer is 414. */
#define HP_HTTP_MAX_URL 8192
/* Largest header block (after the request line) accepted: larger is 431. */
#define HP_HTTP_MAX_HEADERS 65536

/* The path of the synthetic request that carries a rejection; the status
 * and message travel in the headers named below. A client may send it
 * itself: it then gets the error it asked for, nothing more. */
#define HP_HTTP_GUARD_PATH "/.hotpath/reject"
#define HP_HTTP_GUARD_STATUS "X-Hotpath-Status"
#define HP_HTTP_GUARD_MESSAGE "X-Hotpath-Message"

typedef struct hp_http_guard_set hp_http_guard_set;

/* A set of guards for one server's connections. max_body is borrowed and
 * must outlive the set. NULL on out-of-memory. */
hp_http_guard_set *hp_http_guard_set_new(struct event_base *base,
                                         const size_t *max_body);

/* Guard a new connection's bufferevent (call from the evhttp bufferevent
 * callback, before libevent uses it). Takes a reference on bev so the
 * socket stays open for the lingering drain after libevent frees it.
 * Returns 0, or -1 on out-of-memory (bev is then unguarded). */
int hp_http_guard_attach(hp_http_guard_set *gs, struct bufferevent *bev);

/* The status (400, 413, 414, 431, 501) and message a synthetic rejection
 * request carries in headers h; 0 when the headers do not name one. */
int hp_http_guard_rejection(const struct evkeyvalq *h, const char **message);

/* Drop every guard and the references they hold (closing their sockets).
 * Call after evhttp_free and before event_base_free. Accepts NULL. */
void hp_http_guard_set_free(hp_http_guard_set *gs);

#endif
