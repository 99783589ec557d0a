/* http_err.c: owns the OpenAI error JSON and its delivery (hp_http_err_*).
 *
 * libevent answers some errors itself, before any handler runs: a chunked
 * body over evhttp_set_max_body_size (413), a malformed request line or
 * headers (400), an unknown Expect (417). (http_guard.c answers oversized
 * Content-Lengths, long URLs (414) and large headers (431) before libevent
 * does; the cases here stay in case a head slips past it.)
 * Those pages are HTML from evhttp_send_error, and libevent 2.1 has no hook
 * to replace them (evhttp_set_errorcb arrived in 2.2). So the connection's
 * output buffer gets a callback that recognises a complete libevent error
 * page (a "text/html" status response ending in "</BODY></HTML>\n"; the
 * server itself never sends HTML) and swaps it, before a byte reaches the
 * socket, for the same status with our JSON. The page is always the whole
 * buffer: libevent reads a new request only after the previous reply was
 * flushed. Knows nothing of models or requests. */
#include "server/http_err.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *hp_http_err_json(const char *message, const char *type,
                       const char *param, const char *code)
{
    json_t *e = json_object();
    json_t *o = json_object();
    if (!e || !o) {
        json_decref(e);
        json_decref(o);
        return NULL;
    }
    /* json_string refuses invalid UTF-8: fall back to a generic text */
    json_t *m = json_string(message ? message : "");
    json_object_set_new(e, "message", m ? m : json_string("invalid request"));
    json_object_set_new(e, "type", json_string(type ? type : "server_error"));
    json_object_set_new(e, "param", param && param[0] ? json_string(param)
                                                     : json_null());
    json_object_set_new(e, "code", code ? json_string(code) : json_null());
    json_object_set_new(o, "error", e);
    char *s = json_dumps(o, JSON_PRESERVE_ORDER | JSON_COMPACT);
    json_decref(o);
    return s;
}

const char *hp_http_err_type(int status)
{
    switch (status) {
    case 401:
        return "authentication_error";
    case 404:
        return "invalid_request_error";
    case 429:
        return "rate_limit_error";
    case 503:
        return "server_error";
    default:
        return status >= 500 ? "server_error" : "invalid_request_error";
    }
}

/* Phrases of RFC 9110 (413 and 422 under their RFC 7231/4918 names, which
 * clients and libevent still print), the WebDAV/RFC 6585 codes an upstream
 * may send through the gateway, and nginx's 499 for a client that left.
 * A status outside the table gets its class's generic phrase, never a
 * wrong specific one (the gateway relays upstream statuses verbatim). */
const char *hp_http_err_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 203:
        return "Non-Authoritative Information";
    case 204:
        return "No Content";
    case 205:
        return "Reset Content";
    case 206:
        return "Partial Content";
    case 300:
        return "Multiple Choices";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 402:
        return "Payment Required";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 407:
        return "Proxy Authentication Required";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Payload Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 417:
        return "Expectation Failed";
    case 421:
        return "Misdirected Request";
    case 422:
        return "Unprocessable Entity";
    case 423:
        return "Locked";
    case 424:
        return "Failed Dependency";
    case 425:
        return "Too Early";
    case 426:
        return "Upgrade Required";
    case 428:
        return "Precondition Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 451:
        return "Unavailable For Legal Reasons";
    case 499:
        return "Client Closed Request";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    case 507:
        return "Insufficient Storage";
    case 508:
        return "Loop Detected";
    case 511:
        return "Network Authentication Required";
    default:
        break;
    }
    if (status >= 500 && status <= 599)
        return "Server Error";
    if (status >= 400 && status <= 499)
        return "Client Error";
    if (status >= 300 && status <= 399)
        return "Redirection";
    if (status >= 200 && status <= 299)
        return "Success";
    return status >= 100 && status <= 199 ? "Informational" : "Unknown";
}

void hp_http_send_reply(struct evhttp_request *req, int status,
                        const char *reason, struct evbuffer *body)
{
    if (evhttp_request_get_command(req) != EVHTTP_REQ_HEAD) {
        evhttp_send_reply(req, status, reason, body);
        return;
    }
    /* libevent 2.1 writes a HEAD reply's body after the headers (and no
     * Content-Length), so the client reads it as the start of the next
     * response. Send GET's headers, with the length the body would have,
     * and drop the body, as evhttp_send_reply would drain it anyway. */
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    size_t len = body ? evbuffer_get_length(body) : 0;
    if (!evhttp_find_header(h, "Content-Length")) {
        char n[24];
        snprintf(n, sizeof n, "%zu", len);
        evhttp_add_header(h, "Content-Length", n);
    }
    if (body)
        evbuffer_drain(body, len);
    evhttp_send_reply(req, status, reason, NULL);
}

void hp_http_err_send(struct evhttp_request *req, int status,
                      const char *type, const char *param, const char *code,
                      const char *message, const char *extra_name,
                      const char *extra_value)
{
    char *json = hp_http_err_json(message, type ? type
                                                : hp_http_err_type(status),
                                  param, code);
    struct evbuffer *b = evbuffer_new();
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_remove_header(h, "Content-Type");
    evhttp_add_header(h, "Content-Type", "application/json");
    if (extra_name && extra_value)
        evhttp_add_header(h, extra_name, extra_value);
    if (b && json)
        evbuffer_add(b, json, strlen(json));
    hp_http_send_reply(req, status, hp_http_err_reason(status), b);
    if (b)
        evbuffer_free(b);
    free(json);
}

/* ---- libevent error pages -> JSON -------------------------------------- */

static const char page_tail[] = "</BODY></HTML>\n";

static const char *page_message(int status, size_t max_body, char *buf,
                                size_t cap)
{
    switch (status) {
    case 413:
        snprintf(buf, cap,
                 "The request body is too large: the limit is %zu bytes",
                 max_body);
        return buf;
    case 400:
        return "Malformed HTTP request";
    case 414:
        return "The request URL is too long";
    case 417:
        return "Expectation failed: only 'Expect: 100-continue' is "
               "supported";
    case 431:
        return "The request headers are too large";
    case 501:
        return "HTTP method not implemented";
    default:
        snprintf(buf, cap, "HTTP error %d", status);
        return buf;
    }
}

static void rewrite_page(struct evbuffer *buf, char *buf_head, size_t len,
                         void *arg);

static void rewrite_cb(struct evbuffer *buf,
                       const struct evbuffer_cb_info *info, void *arg)
{
    const size_t tl = sizeof page_tail - 1;
    size_t len = evbuffer_get_length(buf);
    char buf_head[1024];
    /* libevent's pages are ~250 bytes; anything bigger is not one */
    if (info->n_added == 0 || len < tl + 16 || len >= sizeof buf_head)
        return;
    /* a socket bufferevent keeps its output's start frozen between
     * writes; thaw it for the look (and the swap), as http.c does */
    bool thawed = false;
    if (evbuffer_copyout(buf, buf_head, len) != (ev_ssize_t)len) {
        evbuffer_unfreeze(buf, 1);
        thawed = true;
    }
    rewrite_page(buf, buf_head, len, arg);
    if (thawed)
        evbuffer_freeze(buf, 1);
}

/* buf (thawed) holds len bytes; swap it if it is a libevent error page. */
static void rewrite_page(struct evbuffer *buf, char *buf_head, size_t len,
                         void *arg)
{
    const size_t tl = sizeof page_tail - 1;
    if (evbuffer_copyout(buf, buf_head, len) != (ev_ssize_t)len ||
        memcmp(buf_head + len - tl, page_tail, tl) != 0)
        return;
    size_t hn = len;
    buf_head[hn] = '\0';
    /* an interim "100 Continue" may still sit in front of the page when
     * the client sent Expect: 100-continue and the body arrived at once */
    static const char cont[] = " 100 Continue\r\n\r\n";
    size_t skip = 0;
    if (!strncmp(buf_head, "HTTP/1.", 7) && hn > 8 &&
        !strncmp(buf_head + 8, cont, sizeof cont - 1))
        skip = 8 + sizeof cont - 1;
    char *head = buf_head + skip;
    char *hdr_end = strstr(head, "\r\n\r\n");
    if (strncmp(head, "HTTP/1.", 7) != 0 || strlen(head) < 12 || !hdr_end)
        return;
    *hdr_end = '\0';
    if (!strstr(head, "Content-Type: text/html"))
        return;
    int status = (head[9] - '0') * 100 + (head[10] - '0') * 10 +
                 (head[11] - '0');
    if (status < 400 || status > 599)
        return;
    char msg[128];
    const size_t *max_body = arg;
    char *json = hp_http_err_json(
        page_message(status, max_body ? *max_body : 0, msg, sizeof msg),
        hp_http_err_type(status), NULL, NULL);
    if (!json)
        return; /* keep libevent's page rather than nothing */
    char version[9];
    memcpy(version, head, 8);
    version[8] = '\0';
    evbuffer_drain(buf, len);
    if (skip)
        evbuffer_add(buf, buf_head, skip);
    evbuffer_add_printf(buf,
                        "%s %d %s\r\nContent-Type: application/json\r\n"
                        "Connection: close\r\nContent-Length: %zu\r\n\r\n%s",
                        version, status, hp_http_err_reason(status),
                        strlen(json), json);
    free(json);
}

void hp_http_err_install_rewrite(struct bufferevent *bev,
                                 const size_t *max_body)
{
    evbuffer_add_cb(bufferevent_get_output(bev), rewrite_cb,
                    (void *)max_body);
}

void hp_http_send_json(struct evhttp_request *req, int status,
                       const char *body, size_t len)
{
    struct evbuffer *b = evbuffer_new();
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "application/json");
    if (b)
        evbuffer_add(b, body, len);
    hp_http_send_reply(req, status, hp_http_err_reason(status), b);
    if (b)
        evbuffer_free(b);
}

void hp_http_watch_close(struct evhttp_connection *evcon)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    bufferevent_data_cb rcb, wcb;
    bufferevent_event_cb ecb;
    void *cbarg;
    if (!bev)
        return;
    bufferevent_getcb(bev, &rcb, &wcb, &ecb, &cbarg);
    bufferevent_setcb(bev, NULL, wcb, ecb, cbarg);
    bufferevent_enable(bev, EV_READ);
}
