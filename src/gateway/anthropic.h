/* anthropic.h: translation between OpenAI chat completions and Anthropic's
 * Messages API, so a client speaking OpenAI can be routed to an Anthropic
 * upstream without noticing.
 *
 * Pure functions over jansson values: no I/O, no clock (callers pass ids
 * and times). Requests go OpenAI -> Anthropic; responses, streamed events
 * and errors come back Anthropic -> OpenAI, covering text, tool calls,
 * stop reasons and usage (cache reads reported as cached prompt tokens).
 * Included by gateway/. */
#ifndef HP_GATEWAY_ANTHROPIC_H
#define HP_GATEWAY_ANTHROPIC_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

/* max_tokens is required by Anthropic; used when the client set none. */
#define HP_ANTH_DEFAULT_MAX_TOKENS 4096
/* The anthropic-version header value hotpath speaks. */
#define HP_ANTH_VERSION "2023-06-01"

/* Build the Messages API body for an OpenAI chat request `oai` (the parsed
 * client body), addressed to upstream model `model`. system/developer
 * messages become the top-level "system"; user/assistant/tool messages and
 * string or text-part content are mapped; consecutive same-role messages
 * are merged as Anthropic requires; max_tokens / max_completion_tokens,
 * temperature, top_p, stop (-> stop_sequences), stream, tools and
 * tool_choice are carried. On success *out is a new reference.
 * HP_ERR_INVALID with eb naming the field (e.g. "messages[2].content:
 * image parts are not supported for anthropic upstreams") for what cannot
 * be expressed; n > 1 is refused. */
hp_err hp_anth_request(const json_t *oai, const char *model, json_t **out,
                       hp_errbuf *eb);

/* Turn a non-streamed Messages API response into an OpenAI
 * chat.completion object with `id`, `created` and `model` as given (the
 * gateway passes the target's model name, not the route's). usage: prompt_tokens =
 * input + cache_read + cache_creation input tokens, completion_tokens =
 * output_tokens, prompt_tokens_details.cached_tokens = cache_read.
 * HP_ERR_FORMAT when `anth` is not a message object. */
hp_err hp_anth_response(const json_t *anth, const char *id, int64_t created,
                        const char *model, json_t **out, hp_errbuf *eb);

/* OpenAI finish_reason for an Anthropic stop_reason: end_turn and
 * stop_sequence -> "stop", max_tokens -> "length", tool_use ->
 * "tool_calls", refusal -> "content_filter"; NULL/unknown -> "stop". */
const char *hp_anth_finish_reason(const char *stop_reason);

/* Map an Anthropic error body ({"type":"error","error":{"type","message"}})
 * to an OpenAI error body ({"error":{"message","type","param","code"}}).
 * Anything unparseable gives a generic upstream error. New reference;
 * NULL only on OOM. */
json_t *hp_anth_error(const char *body, size_t len, int status);

/* Streaming: one translator per response. Feed it each SSE event of the
 * Anthropic stream; it emits OpenAI chat.completion.chunk objects. */
typedef struct hp_anth_stream {
    char id[96];
    char model[128];
    int64_t created;
    bool include_usage;   /* emit the final usage chunk (choices: []) */
    bool started;         /* role chunk sent */
    bool done;            /* message_stop seen */
    int64_t input_tokens, cache_read, cache_creation, output_tokens;
    const char *finish;   /* static string once message_delta gave one */
    int tool_index;       /* OpenAI tool_calls index of the open tool block */
    int n_tools;
} hp_anth_stream;

/* Called once per OpenAI chunk; the callee takes the reference. */
typedef void (*hp_anth_emit)(json_t *chunk, void *ud);

void hp_anth_stream_init(hp_anth_stream *s, const char *id, int64_t created,
                         const char *model, bool include_usage);

/* Translate one event (SSE event name and data). message_start -> the
 * role chunk; content_block_delta text -> a content chunk; tool_use blocks
 * -> tool_calls chunks; message_delta -> the finish_reason chunk;
 * message_stop -> the usage chunk when include_usage, and done; ping is
 * ignored. An `error` event returns HP_ERR_AGAIN with eb holding the
 * upstream's message (the caller ends the stream with an in-band error).
 * HP_ERR_FORMAT when data is not the JSON the event name promises. */
hp_err hp_anth_stream_event(hp_anth_stream *s, const char *event,
                            const char *data, size_t len, hp_anth_emit emit,
                            void *ud, hp_errbuf *eb);

/* The usage seen so far as an OpenAI usage object (new reference). */
json_t *hp_anth_stream_usage(const hp_anth_stream *s);

#endif
