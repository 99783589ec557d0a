/* openai_req.h: parses and validates OpenAI request bodies, and turns them
 * into engine inputs (prompt tokens and hp_gen_params).
 *
 * Follows the OpenAI API's field names, types and ranges, plus the common
 * llama.cpp/vLLM extensions (top_k, min_p, repeat_penalty, ignore_eos).
 * Unknown fields are ignored, as OpenAI does. Every rejection fills an
 * hp_oai_error naming the field (`param`) and the allowed range, so the
 * server can answer 400/404 with OpenAI's error JSON. Strings, arrays and
 * token lists live in the caller's arena. Knows nothing of HTTP or libevent.
 * Included by server/ and tests/test_openai_req.c. */
#ifndef HP_OPENAI_REQ_H
#define HP_OPENAI_REQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/chat.h"
#include "engine/engine.h"
#include "model/vocab.h"
#include "util/arena.h"
#include "util/err.h"

typedef enum hp_oai_kind {
    HP_OAI_COMPLETIONS = 0, /* POST /v1/completions */
    HP_OAI_CHAT             /* POST /v1/chat/completions */
} hp_oai_kind;

/* What the client did wrong, in OpenAI's error vocabulary. */
typedef struct hp_oai_error {
    int status;         /* HTTP status: 400, 404, ... */
    const char *type;   /* static: "invalid_request_error", ... */
    const char *code;   /* static or NULL: "model_not_found", ... */
    char param[64];     /* field name; "" means JSON null */
    char message[256];
} hp_oai_error;

/* Server facts the validation depends on. */
typedef struct hp_oai_limits {
    const char *model_name; /* borrows: the served model id */
    int n_vocab;            /* token ids and logit_bias keys must be below */
} hp_oai_limits;

/* A validated request. Pointers are into the arena given to parse. */
typedef struct hp_oai_req {
    hp_oai_kind kind;
    const char *model;       /* arena: served name when absent */
    /* completions: exactly one of text / ids */
    const char *prompt;      /* arena, NUL-terminated; NULL for ids */
    size_t prompt_len;
    int32_t *prompt_ids;     /* arena */
    int n_prompt_ids;
    /* chat */
    hp_chat_msg *msgs;       /* arena */
    int n_msgs;
    /* generation; stop[] and sampling.logit_bias point into the arena */
    hp_gen_params gen;
    bool has_max_tokens;     /* false: kind's default (16 / rest of ctx) */
    bool stream;
    bool include_usage;      /* stream_options.include_usage */
    bool echo;               /* completions: prepend the prompt */
    int logprobs;            /* -1: none; else top alternatives (0..20) */
    /* chat template inputs (appended): compact JSON text, arena, as the
     * client sent them; the template sees them as messages / tools /
     * extra variables (chat_template_kwargs) */
    const char *messages_json;
    const char *tools_json;           /* NULL: no tools */
    const char *template_kwargs_json; /* NULL: none */
} hp_oai_req;

/* Parse body[0..len) for an endpoint of kind. On success fills *out and
 * returns HP_OK; otherwise returns HP_ERR_INVALID (or HP_ERR_NOT_FOUND for
 * an unknown model, HP_ERR_NOMEM) with *err filled. Never crashes on
 * garbage. */
hp_err hp_openai_req_parse(hp_oai_kind kind, const char *body, size_t len,
                           const hp_oai_limits *lim, hp_arena *a,
                           hp_oai_req *out, hp_oai_error *err);

/* Build the prompt tokens for a parsed request: chat messages go through
 * the model's chat template (BOS only if the rendered text lacks it);
 * completion text is tokenized with the vocabulary's BOS rule and special
 * tokens as plain text; token-id prompts are used as given. A Jinja
 * template (engine/jinja.h) marks which text came from the request: the
 * template's own text has its special tokens parsed, request content never
 * does, so a user typing "<|im_end|>" gets those characters, not the
 * control token. A template the engine cannot parse falls back to the
 * hand-written formats of engine/chat.h. *ids is arena memory.
 * HP_ERR_INVALID (err filled, 400) for an empty prompt or when the template
 * raises (the template's message) or fails on the request's data. */
hp_err hp_openai_req_tokens(const hp_oai_req *r, const hp_model *m,
                            hp_arena *a, int32_t **ids, int *n_ids,
                            hp_oai_error *err);

/* Resolve max_tokens against the context: fills r->gen.max_tokens when the
 * client gave none (completions 16, chat the rest of the context) and
 * checks n_prompt + max_tokens <= n_ctx. HP_ERR_RANGE with OpenAI's
 * context_length_exceeded message (naming the three numbers) otherwise. */
hp_err hp_openai_req_fit_context(hp_oai_req *r, int n_prompt, int n_ctx,
                                 hp_oai_error *err);

/* Fill err (any of param/code may be NULL) and return HP_ERR_INVALID. */
hp_err hp_openai_error_set(hp_oai_error *err, int status, const char *type,
                           const char *param, const char *code,
                           const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

#endif
