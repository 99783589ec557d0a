/* http_err.h: OpenAI-style error responses over evhttp.
 *
 * Every error the server answers has the body
 *     {"error": {"message", "type", "param", "code"}}
 * with Content-Type application/json, including the ones libevent
 * generates itself (413 for an oversized body, 400 for a malformed request
 * line): hp_http_err_install_rewrite() turns libevent's HTML error pages
 * into that JSON on the connection's way out. Included by server/. */
#ifndef HP_HTTP_ERR_H
#define HP_HTTP_ERR_H

#include <stddef.h>

struct bufferevent;
struct evhttp_request;

/* The JSON body, malloc'd (caller frees); NULL on out-of-memory. param and
 * code may be NULL (JSON null). */
char *hp_http_err_json(const char *message, const char *type,
                       const char *param, const char *code);

/* OpenAI's error type for a status ("invalid_request_error",
 * "not_found_error", "server_error", ...). Never NULL. */
const char *hp_http_err_type(int status);

/* Reason phrase for a status line ("Bad Request"). Never NULL. */
const char *hp_http_err_reason(int status);

/* Send a complete reply on req, as evhttp_send_reply, body NULL for none.
 * Every complete reply of the server and the gateway goes through here:
 * for a HEAD request it sends the headers a GET would get, Content-Length
 * included, and no body. */
struct evbuffer;
void hp_http_send_reply(struct evhttp_request *req, int status,
                        const char *reason, struct evbuffer *body);

/* Send a complete error reply on req. type NULL picks it from status.
 * extra_name/extra_value add one header (Allow, Retry-After) if non-NULL. */
void hp_http_err_send(struct evhttp_request *req, int status,
                      const char *type, const char *param, const char *code,
                      const char *message, const char *extra_name,
                      const char *extra_value);

/* Send a complete JSON reply: Content-Type application/json, the status's
 * standard reason phrase. */
void hp_http_send_json(struct evhttp_request *req, int status,
                       const char *body, size_t len);

/* While a reply is being prepared (nothing written yet), listen for the
 * client's EOF without consuming its data, as evhttp does itself while
 * writing, so the connection's close callback fires if the client goes
 * away. */
struct evhttp_connection;
void hp_http_watch_close(struct evhttp_connection *evcon);

/* Watch bev's output and replace libevent's own HTML error pages
 * (evhttp_send_error) with the JSON shape above. Call from the evhttp
 * bufferevent callback for each new connection. max_body (borrowed, must
 * outlive the connection) is quoted in the 413 message. */
void hp_http_err_install_rewrite(struct bufferevent *bev,
                                 const size_t *max_body);

#endif
