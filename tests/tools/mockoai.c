/* mockoai.c: a tiny mock OpenAI-compatible server for tests and for
 * benchmarking the benchmark: `hotpath bench` runs against it, and other
 * tests may use it as a fake upstream ("mock lab server").
 *
 * Single-threaded HTTP/1.1 over plain sockets and poll(), keep-alive,
 * bound to 127.0.0.1 only. Answers
 *   POST /v1/completions, POST /v1/chat/completions
 *        non-streamed (JSON with usage) or streamed (SSE over chunked
 *        encoding: one chunk per token, an optional usage chunk when
 *        stream_options.include_usage is true, then data: [DONE]);
 *   GET  /v1/models, GET /health.
 * Each reply produces max_tokens tokens (default --tokens). Timing is
 * driven by timers in the poll loop, never by sleeping, so any number of
 * connections progress together:
 *   --ttft-ms MS   delay before the first token (non-streamed: before the
 *                  reply, which comes after ttft + (n-1) * itl)
 *   --itl-ms MS    delay between tokens
 *   --fail-every N every Nth completion request gets HTTP 500
 * `--port 0` picks a free port; the chosen one is printed on stdout as
 * "listening on 127.0.0.1:PORT". Prints a request count on exit (SIGTERM,
 * SIGINT) to stderr. Knows nothing of hotpath's internals beyond jansson. */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 1024
#define MAX_REQ (8u << 20)

typedef struct opts {
    int port;
    double ttft_ms, itl_ms;
    long fail_every;
    long tokens;
    const char *model;
    bool quiet;
} opts;

typedef enum cstate { C_READ, C_WAIT, C_STREAM } cstate;

typedef struct conn {
    int fd;
    char *in;              /* owns: bytes read, not yet consumed */
    size_t in_len, in_cap;
    char *out;             /* owns: bytes to write */
    size_t out_len, out_off, out_cap;
    cstate st;
    double next_t;         /* when the next timed step is due */
    /* the request being answered */
    bool chat, stream, usage, close_after;
    long n, sent, prompt_tokens;
    char model[128];
} conn;

typedef struct server {
    opts o;
    int lfd;
    conn *c[MAX_CONNS];    /* owns */
    size_t nc;
    long n_requests, n_failed;
} server;

static volatile sig_atomic_t g_quit; /* set by SIGTERM/SIGINT */

static void on_quit(int sig)
{
    (void)sig;
    g_quit = 1;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static bool grow(char **p, size_t *cap, size_t need)
{
    if (need <= *cap)
        return true;
    size_t nc = *cap ? *cap : 4096;
    while (nc < need)
        nc *= 2;
    char *np = realloc(*p, nc);
    if (!np)
        return false;
    *p = np;
    *cap = nc;
    return true;
}

static bool out_add(conn *c, const char *s, size_t n)
{
    if (!grow(&c->out, &c->out_cap, c->out_len + n))
        return false;
    memcpy(c->out + c->out_len, s, n);
    c->out_len += n;
    return true;
}

static bool out_fmt(conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static bool out_fmt(conn *c, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    return n >= 0 && (size_t)n < sizeof tmp && out_add(c, tmp, (size_t)n);
}

/* Write as much as the socket takes; false when the peer is gone. */
static bool flush_out(conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                         MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return true;
            if (errno == EINTR)
                continue;
            return false;
        }
        c->out_off += (size_t)w;
    }
    c->out_off = c->out_len = 0;
    return true;
}

static void respond(conn *c, int status, const char *reason, const char *body)
{
    size_t n = strlen(body);
    out_fmt(c,
            "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
            "Content-Length: %zu\r\n%s\r\n",
            status, reason, n, c->close_after ? "Connection: close\r\n" : "");
    out_add(c, body, n);
}

static void respond_json(conn *c, int status, const char *reason, json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT);
    respond(c, status, reason, s ? s : "{}");
    free(s);
    json_decref(o);
}

static void respond_error(conn *c, int status, const char *reason,
                          const char *msg)
{
    respond_json(c, status, reason,
                 json_pack("{s:{s:s,s:s,s:i}}", "error", "message", msg,
                           "type", status >= 500 ? "server_error"
                                                 : "invalid_request_error",
                           "code", status));
}

/* Whitespace-separated words: the mock's notion of a token. */
static long count_words(const char *s)
{
    long n = 0;
    bool in = false;
    for (; s && *s; s++) {
        bool sp = *s == ' ' || *s == '\n' || *s == '\t' || *s == '\r';
        if (!sp && !in)
            n++;
        in = !sp;
    }
    return n;
}

static json_t *usage_obj(const conn *c)
{
    return json_pack("{s:I,s:I,s:I}", "prompt_tokens",
                     (json_int_t)c->prompt_tokens, "completion_tokens",
                     (json_int_t)c->n, "total_tokens",
                     (json_int_t)(c->prompt_tokens + c->n));
}

/* One SSE event as one HTTP chunk. */
static void send_event(conn *c, json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    const char *data = s ? s : "[DONE]";
    size_t n = strlen(data) + 8; /* "data: " + "\n\n" */
    out_fmt(c, "%zx\r\ndata: ", n);
    out_add(c, data, strlen(data));
    out_add(c, "\n\n\r\n", 4);
    free(s);
}

/* The streamed chunk carrying token i (0-based) of n. */
static json_t *token_chunk(const conn *c, long i)
{
    char text[32];
    snprintf(text, sizeof text, " tok%ld", i);
    json_t *fin = i == c->n - 1 ? json_string("length") : json_null();
    if (c->chat)
        return json_pack("{s:s,s:s,s:i,s:s,s:[{s:i,s:{s:s},s:o}]}", "id",
                         "chatcmpl-mock", "object", "chat.completion.chunk",
                         "created", 0, "model", c->model, "choices", "index",
                         0, "delta", "content", text, "finish_reason", fin);
    return json_pack("{s:s,s:s,s:i,s:s,s:[{s:i,s:s,s:n,s:o}]}", "id",
                     "cmpl-mock", "object", "text_completion", "created", 0,
                     "model", c->model, "choices", "index", 0, "text", text,
                     "logprobs", "finish_reason", fin);
}

static void finish_request(conn *c)
{
    c->st = C_READ;
}

/* Timed step of the request being answered. */
static void step(server *sv, conn *c)
{
    if (c->st == C_WAIT) {
        size_t cap = (size_t)c->n * 12 + 1, len = 0;
        char *text = malloc(cap);
        if (text) {
            text[0] = 0;
            for (long i = 0; i < c->n; i++)
                len += (size_t)snprintf(text + len, cap - len, " tok%ld", i);
        }
        json_t *o;
        if (c->chat)
            o = json_pack("{s:s,s:s,s:i,s:s,s:[{s:i,s:{s:s,s:s},s:s}],s:o}",
                          "id", "chatcmpl-mock", "object", "chat.completion",
                          "created", 0, "model", c->model, "choices", "index",
                          0, "message", "role", "assistant", "content",
                          text ? text : "", "finish_reason", "length",
                          "usage", usage_obj(c));
        else
            o = json_pack("{s:s,s:s,s:i,s:s,s:[{s:i,s:s,s:n,s:s}],s:o}",
                          "id", "cmpl-mock", "object", "text_completion",
                          "created", 0, "model", c->model, "choices", "index",
                          0, "text", text ? text : "", "logprobs",
                          "finish_reason", "length", "usage", usage_obj(c));
        free(text);
        respond_json(c, 200, "OK", o);
        finish_request(c);
        return;
    }
    /* C_STREAM: one token per step, then usage and [DONE]. */
    if (c->sent < c->n) {
        send_event(c, token_chunk(c, c->sent));
        c->sent++;
        c->next_t += sv->o.itl_ms;
        if (c->sent < c->n)
            return;
    }
    if (c->usage) {
        json_t *u = json_pack("{s:s,s:s,s:i,s:s,s:[],s:o}", "id", "cmpl-mock",
                              "object",
                              c->chat ? "chat.completion.chunk"
                                      : "text_completion",
                              "created", 0, "model", c->model, "choices",
                              "usage", usage_obj(c));
        send_event(c, u);
    }
    send_event(c, NULL);
    out_add(c, "0\r\n\r\n", 5);
    finish_request(c);
}

/* A complete request: route it. */
static void handle(server *sv, conn *c, const char *method, const char *path,
                   const char *body, size_t blen)
{
    if (!strcmp(method, "GET") && !strcmp(path, "/health")) {
        respond(c, 200, "OK", "{\"status\":\"ok\"}");
        return;
    }
    if (!strcmp(method, "GET") && !strcmp(path, "/v1/models")) {
        respond_json(c, 200, "OK",
                     json_pack("{s:s,s:[{s:s,s:s,s:s}]}", "object", "list",
                               "data", "id", sv->o.model, "object", "model",
                               "owned_by", "mockoai"));
        return;
    }
    bool chat = !strcmp(path, "/v1/chat/completions");
    if (!chat && strcmp(path, "/v1/completions")) {
        respond_error(c, 404, "Not Found", "no such route");
        return;
    }
    if (strcmp(method, "POST")) {
        respond_error(c, 405, "Method Not Allowed", "use POST");
        return;
    }
    json_error_t je;
    json_t *req = json_loadb(body, blen, 0, &je);
    if (!json_is_object(req)) {
        json_decref(req);
        respond_error(c, 400, "Bad Request", "body is not a JSON object");
        return;
    }
    sv->n_requests++;
    if (sv->o.fail_every > 0 && sv->n_requests % sv->o.fail_every == 0) {
        sv->n_failed++;
        json_decref(req);
        respond_error(c, 500, "Internal Server Error", "mock failure");
        return;
    }
    const json_t *mt = json_object_get(req, "max_tokens");
    c->n = json_is_integer(mt) ? (long)json_integer_value(mt) : sv->o.tokens;
    if (c->n < 1 || c->n > 1000000) {
        json_decref(req);
        respond_error(c, 400, "Bad Request", "max_tokens out of range");
        return;
    }
    c->chat = chat;
    c->stream = json_is_true(json_object_get(req, "stream"));
    c->usage = json_is_true(json_object_get(
        json_object_get(req, "stream_options"), "include_usage"));
    const json_t *m = json_object_get(req, "model");
    snprintf(c->model, sizeof c->model, "%s",
             json_is_string(m) ? json_string_value(m) : sv->o.model);
    c->prompt_tokens = 0;
    if (chat) {
        size_t i;
        json_t *msg;
        json_array_foreach(json_object_get(req, "messages"), i, msg)
            c->prompt_tokens +=
                count_words(json_string_value(json_object_get(msg, "content")));
    } else {
        c->prompt_tokens =
            count_words(json_string_value(json_object_get(req, "prompt")));
    }
    json_decref(req);
    c->sent = 0;
    if (c->stream) {
        out_fmt(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                   "Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n"
                   "%s\r\n",
                c->close_after ? "Connection: close\r\n" : "");
        c->st = C_STREAM;
        c->next_t = now_ms() + sv->o.ttft_ms;
    } else {
        c->st = C_WAIT;
        c->next_t = now_ms() + sv->o.ttft_ms +
                    sv->o.itl_ms * (double)(c->n - 1);
    }
}

/* Parse and answer every complete request buffered on c while it is idle.
 * Returns false when the connection must close (malformed request). */
static bool process_input(server *sv, conn *c)
{
    while (c->st == C_READ) {
        if (!grow(&c->in, &c->in_cap, c->in_len + 1))
            return false;
        c->in[c->in_len] = 0;
        char *end = strstr(c->in, "\r\n\r\n");
        if (!end)
            return c->in_len < 65536;
        size_t hlen = (size_t)(end - c->in) + 4;
        char method[16], path[256];
        if (sscanf(c->in, "%15s %255s", method, path) != 2)
            return false;
        size_t clen = 0;
        c->close_after = false;
        for (char *l = strstr(c->in, "\r\n"); l && l < end; l = strstr(l + 2, "\r\n")) {
            char *h = l + 2;
            if (!strncasecmp(h, "Content-Length:", 15))
                clen = strtoul(h + 15, NULL, 10);
            else if (!strncasecmp(h, "Connection:", 11)) {
                char val[64];
                size_t k = strcspn(h + 11, "\r");
                snprintf(val, sizeof val, "%.*s", (int)k, h + 11);
                c->close_after = strcasestr(val, "close") != NULL;
            }
        }
        if (clen > MAX_REQ)
            return false;
        if (c->in_len < hlen + clen)
            return true; /* body not complete yet */
        handle(sv, c, method, path, c->in + hlen, clen);
        memmove(c->in, c->in + hlen + clen, c->in_len - hlen - clen);
        c->in_len -= hlen + clen;
    }
    return true;
}

static void conn_close(server *sv, size_t i)
{
    conn *c = sv->c[i];
    close(c->fd);
    free(c->in);
    free(c->out);
    free(c);
    sv->c[i] = sv->c[--sv->nc];
}

static int parse_args(int argc, char **argv, opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (!strcmp(a, "--quiet")) {
            o->quiet = true;
            continue;
        }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: mockoai [--port N] [--ttft-ms MS] [--itl-ms MS] "
                   "[--fail-every N] [--tokens N] [--model NAME] [--quiet]\n");
            exit(0);
        }
        if (!v) {
            fprintf(stderr, "mockoai: %s needs a value\n", a);
            return 2;
        }
        errno = 0;
        double d = strtod(v, &end);
        bool num = !errno && end != v && !*end && d >= 0;
        if (!strcmp(a, "--model")) {
            o->model = v;
        } else if (!num) {
            fprintf(stderr, "mockoai: %s '%s': expected a number >= 0\n", a, v);
            return 2;
        } else if (!strcmp(a, "--port") && d <= 65535) {
            o->port = (int)d;
        } else if (!strcmp(a, "--ttft-ms")) {
            o->ttft_ms = d;
        } else if (!strcmp(a, "--itl-ms")) {
            o->itl_ms = d;
        } else if (!strcmp(a, "--fail-every")) {
            o->fail_every = (long)d;
        } else if (!strcmp(a, "--tokens") && d >= 1) {
            o->tokens = (long)d;
        } else {
            fprintf(stderr, "mockoai: bad option %s %s\n", a, v);
            return 2;
        }
        i++;
    }
    return 0;
}

int main(int argc, char **argv)
{
    server sv = {.o = {.tokens = 16, .model = "mock"}};
    int rc = parse_args(argc, argv, &sv.o);
    if (rc)
        return rc;
    struct sigaction sa = {0};
    sa.sa_handler = on_quit;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    sv.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(sv.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_port = htons((uint16_t)sv.o.port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sin;
    if (sv.lfd < 0 || bind(sv.lfd, (struct sockaddr *)&sin, sizeof sin) < 0 ||
        listen(sv.lfd, 512) < 0 ||
        getsockname(sv.lfd, (struct sockaddr *)&sin, &sl) < 0) {
        fprintf(stderr, "mockoai: cannot listen on 127.0.0.1:%d: %s\n",
                sv.o.port, strerror(errno));
        return 1;
    }
    printf("listening on 127.0.0.1:%d\n", ntohs(sin.sin_port));
    fflush(stdout);

    struct pollfd pfd[MAX_CONNS + 1];
    while (!g_quit) {
        double t = now_ms(), wait = 1000;
        for (size_t i = 0; i < sv.nc; i++)
            if (sv.c[i]->st != C_READ && sv.c[i]->next_t - t < wait)
                wait = sv.c[i]->next_t - t;
        pfd[0] = (struct pollfd){.fd = sv.lfd,
                                 .events = sv.nc < MAX_CONNS ? POLLIN : 0};
        for (size_t i = 0; i < sv.nc; i++)
            pfd[i + 1] = (struct pollfd){
                .fd = sv.c[i]->fd,
                .events = (short)(POLLIN |
                                  (sv.c[i]->out_len ? POLLOUT : 0))};
        size_t npoll = sv.nc + 1;
        int ms = wait > 0 ? (int)(wait + 0.999) : 0;
        if (poll(pfd, npoll, ms) < 0 && errno != EINTR)
            break;
        /* Existing connections first (indexes match pfd until a close). */
        for (size_t i = npoll - 1; i >= 1; i--) {
            conn *c = sv.c[i - 1];
            bool dead = pfd[i].revents & (POLLERR | POLLNVAL);
            if (!dead && (pfd[i].revents & (POLLIN | POLLHUP))) {
                if (!grow(&c->in, &c->in_cap, c->in_len + 65536)) {
                    dead = true;
                } else {
                    ssize_t r = recv(c->fd, c->in + c->in_len, 65536, 0);
                    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
                        dead = true;
                    else if (r > 0)
                        c->in_len += (size_t)r;
                }
            }
            double tn = now_ms();
            while (!dead && c->st != C_READ && c->next_t <= tn)
                step(&sv, c);
            if (!dead && !process_input(&sv, c))
                dead = true;
            if (!dead && !flush_out(c))
                dead = true;
            if (!dead && c->st == C_READ && !c->out_len && c->close_after)
                dead = true;
            if (dead)
                conn_close(&sv, i - 1);
        }
        if (pfd[0].revents & POLLIN) {
            for (;;) {
                int fd = accept4(sv.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0)
                    break;
                if (sv.nc >= MAX_CONNS) {
                    close(fd);
                    break;
                }
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                conn *c = calloc(1, sizeof *c);
                if (!c) {
                    close(fd);
                    break;
                }
                c->fd = fd;
                c->st = C_READ;
                sv.c[sv.nc++] = c;
            }
        }
    }
    while (sv.nc)
        conn_close(&sv, sv.nc - 1);
    close(sv.lfd);
    if (!sv.o.quiet)
        fprintf(stderr, "mockoai: %ld completion requests, %ld failed on purpose\n",
                sv.n_requests, sv.n_failed);
    return 0;
}
