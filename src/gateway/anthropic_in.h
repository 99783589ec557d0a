/* anthropic_in.h: the other direction of the Anthropic translation:
 * clients that speak the Messages API (POST /v1/messages, e.g. the
 * Anthropic SDK) served by any route, whatever its targets speak.
 *
 * The gateway turns the client's Messages request into an OpenAI chat
 * request at the door (so routing, caching and accounting see one
 * shape), and turns what comes back (an OpenAI chat.completion, a stream
 * of chat.completion.chunk objects, or an OpenAI error) into the Messages
 * API's shapes: message objects, the named SSE event sequence, and error
 * bodies. Pure functions over jansson values; no I/O, no clock.
 * Included by gateway/. */
#ifndef HP_GATEWAY_ANTHROPIC_IN_H
#define HP_GATEWAY_ANTHROPIC_IN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

/* Messages request -> OpenAI chat request. system (string or text blocks)
 * becomes the first system message; user/assistant turns with string or
 * block content map to messages (text blocks joined; tool_use blocks ->
 * assistant tool_calls with arguments serialised; tool_result blocks ->
 * role "tool" messages, placed before the user turn's remaining text);
 * max_tokens (required: HP_ERR_INVALID naming it when absent or < 1),
 * temperature, top_p, top_k is dropped, stop_sequences -> stop, stream
 * (and stream_options.include_usage when streaming, since the Messages
 * stream always reports usage), tools (input_schema -> parameters) and
 * tool_choice (auto/any/tool/none). metadata is dropped. HP_ERR_INVALID
 * with eb naming the field ("messages[1].content[0].type: image blocks
 * are not supported") for what cannot be expressed. *out: new reference. */
hp_err hp_anth_in_request(const json_t *anth, json_t **out, hp_errbuf *eb);

/* OpenAI chat.completion -> Messages response object: id "msg_" + the
 * completion's id, content blocks (text, then tool_use with input parsed
 * from arguments; unparseable arguments become {} ), stop_reason from
 * finish_reason (stop -> end_turn, or stop_sequence when the reply was
 * ended by one of the request's stop sequences is not knowable: end_turn;
 * length -> max_tokens; tool_calls -> tool_use; content_filter -> refusal),
 * usage input_tokens = prompt - cached, cache_read_input_tokens = cached,
 * cache_creation_input_tokens 0, output_tokens = completion. model: the
 * name to report (the client's). HP_ERR_FORMAT for a non-completion. */
hp_err hp_anth_in_response(const json_t *oai, const char *model, json_t **out,
                           hp_errbuf *eb);

/* An OpenAI error body ({"error":{message,type,...}}) or any text ->
 * {"type":"error","error":{"type","message"}} with Anthropic's type for
 * the HTTP status (400 invalid_request_error, 401 authentication_error,
 * 403 permission_error, 404 not_found_error, 413 request_too_large,
 * 429 rate_limit_error, 529/503 overloaded_error, else api_error).
 * New reference; NULL only on OOM. */
json_t *hp_anth_in_error(const char *body, size_t len, int status);

/* Streaming: OpenAI chunks in, Messages SSE events out. The text written
 * for each event is "event: NAME\ndata: {json}\n\n". */
typedef struct hp_anth_out {
    char id[96];
    char model[128];
    bool started;       /* message_start sent */
    int block;          /* index of the open content block, -1 none */
    bool block_is_tool;
    int tool_index;     /* OpenAI tool_calls index of the open block */
    int next_block;     /* index the next block gets */
    const char *stop;   /* Anthropic stop_reason once known (static) */
    int64_t prompt, cached, completion;
    bool have_usage;
    bool finished;      /* message_stop written */
} hp_anth_out;

/* Called with each piece of SSE text to send (len bytes, not
 * NUL-terminated; valid during the call). */
typedef void (*hp_anth_out_write)(const char *text, size_t len, void *ud);

void hp_anth_out_init(hp_anth_out *s, const char *id, const char *model);

/* Feed one OpenAI chunk: the first one yields message_start (usage so far:
 * input_tokens 0 unless known) and ping; text deltas open a text block and
 * yield content_block_delta text_delta; tool_calls open a tool_use block
 * (closing any open block) and yield input_json_delta; finish_reason is
 * remembered; a usage object is remembered. Nothing of the end is written
 * here: call hp_anth_out_finish. HP_ERR_FORMAT for a chunk that is not an
 * object with a choices array. */
hp_err hp_anth_out_chunk(hp_anth_out *s, const json_t *chunk,
                         hp_anth_out_write w, void *ud, hp_errbuf *eb);

/* The stream ended properly: close the open block, write message_delta
 * (stop_reason, usage.output_tokens and, when known, input/cache figures)
 * and message_stop. */
void hp_anth_out_finish(hp_anth_out *s, hp_anth_out_write w, void *ud);

/* The stream broke after events were sent: write an `error` event with
 * Anthropic's shape (type api_error, the message) and nothing else. */
void hp_anth_out_error(hp_anth_out *s, const char *message,
                       hp_anth_out_write w, void *ud);

#endif
