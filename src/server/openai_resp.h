/* openai_resp.h: builds OpenAI response bodies and SSE chunks from engine
 * events.
 *
 * One hp_oai_resp per HTTP request. Non-streamed, it accumulates each
 * choice's text, logprobs and finish reason and emits the whole
 * text_completion / chat.completion JSON at END. Streamed, every event
 * becomes zero or more `data: <json>\n\n` records (chat: a role delta per
 * choice first; content deltas; a final chunk per choice with an empty
 * delta and its finish_reason; an optional usage chunk with "choices": [];
 * then `data: [DONE]`). Knows JSON but nothing of HTTP or libevent.
 * Included by server/. */
#ifndef HP_OPENAI_RESP_H
#define HP_OPENAI_RESP_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/engine.h"
#include "model/vocab.h"
#include "server/openai_req.h"

/* A growing byte buffer the builder appends to. oom sticks once set. */
typedef struct hp_oai_out {
    char *data; /* owns */
    size_t len, cap;
    bool oom;
} hp_oai_out;

void hp_oai_out_append(hp_oai_out *o, const char *s, size_t n);
void hp_oai_out_clear(hp_oai_out *o); /* len = 0, keeps the memory */
void hp_oai_out_free(hp_oai_out *o);  /* frees data; o is reusable */

typedef struct hp_oai_resp_opts {
    hp_oai_kind kind;
    const char *model;    /* copied */
    int n;                /* choices */
    int logprobs;         /* -1: none; else top alternatives per token */
    bool stream;
    bool include_usage;
    const char *echo;     /* completions echo text (copied) or NULL */
    size_t echo_len;
    const hp_vocab *vocab; /* borrows: token strings for logprobs */
} hp_oai_resp_opts;

typedef struct hp_oai_resp hp_oai_resp;

/* NULL on out-of-memory. Picks the id ("cmpl-…"/"chatcmpl-…") and
 * created time. */
hp_oai_resp *hp_openai_resp_new(const hp_oai_resp_opts *o);
void hp_openai_resp_free(hp_oai_resp *r); /* accepts NULL */

/* Streamed: append the opening records (chat role deltas; completions
 * echo). Nothing when not streamed. */
void hp_openai_resp_begin(hp_oai_resp *r, hp_oai_out *out);

/* Feed one engine event. Streamed: append its SSE records. Not streamed:
 * accumulate, and on END append the whole JSON body. An ERROR event when
 * streamed appends an error record and [DONE]. Returns true once the
 * response is complete (END or ERROR). */
bool hp_openai_resp_event(hp_oai_resp *r, const hp_event *ev,
                          hp_oai_out *out);

/* The response id (for logs and tests). */
const char *hp_openai_resp_id(const hp_oai_resp *r);

/* OpenAI's finish_reason for f ("stop", "length"); cancelled reads as
 * "stop", NONE as NULL. */
const char *hp_openai_finish_reason(hp_finish f);

#endif
