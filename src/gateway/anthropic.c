/* anthropic.c: OpenAI chat completions <-> Anthropic Messages API
 * translation (see anthropic.h).
 *
 * Owns the mapping rules only: requests go OpenAI -> Anthropic, responses,
 * stream events and error bodies come back. Pure jansson in, jansson out:
 * no I/O, no clock, no knowledge of routes, keys or HTTP beyond a status
 * number. Sections: small helpers, request, response, errors, streaming. */
#include "gateway/anthropic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/gwjson.h"

/* ---- helpers ------------------------------------------------------------ */

/* The OpenAI usage object for Anthropic counters: cache reads and writes
 * are prompt tokens too, only billed differently, so prompt_tokens is the
 * sum and cached_tokens reports the reads. */
static json_t *usage_obj(int64_t in, int64_t cache_read, int64_t cache_create,
                         int64_t out)
{
    int64_t prompt = in + cache_read + cache_create;
    return json_pack("{s:I, s:I, s:I, s:{s:I}}",
                     "prompt_tokens", (json_int_t)prompt,
                     "completion_tokens", (json_int_t)out,
                     "total_tokens", (json_int_t)(prompt + out),
                     "prompt_tokens_details",
                     "cached_tokens", (json_int_t)cache_read);
}

/* ---- request: OpenAI -> Anthropic ------------------------------------- */

static json_t *text_block(const char *text, size_t len)
{
    return json_pack("{s:s, s:s%}", "type", "text", "text", text, len);
}

/* Append the text of an OpenAI message content (string, array of parts or
 * null) to blocks as Anthropic text blocks. Empty strings are skipped:
 * Anthropic refuses empty text blocks. Non-text parts are refused with the
 * field named, since silently dropping an image changes the question. */
static hp_err content_blocks(const json_t *content, const char *where,
                             json_t *blocks, hp_errbuf *eb)
{
    if (!content || json_is_null(content))
        return HP_OK;
    if (json_is_string(content)) {
        size_t n = json_string_length(content);
        if (n > 0 && !gwj_push(blocks, text_block(json_string_value(content), n)))
            return gwj_oom(eb);
        return HP_OK;
    }
    if (!json_is_array(content))
        return hp_errf(eb, HP_ERR_INVALID,
                       "%s: must be a string or an array of content parts",
                       where);
    size_t i;
    const json_t *part;
    json_array_foreach(content, i, part) {
        const char *type = gwj_str(part, "type");
        if (!type)
            return hp_errf(eb, HP_ERR_INVALID, "%s[%zu].type: required",
                           where, i);
        if (strcmp(type, "text") == 0) {
            const json_t *t = json_object_get(part, "text");
            if (!json_is_string(t))
                return hp_errf(eb, HP_ERR_INVALID,
                               "%s[%zu].text: must be a string", where, i);
            size_t n = json_string_length(t);
            if (n > 0 && !gwj_push(blocks, text_block(json_string_value(t), n)))
                return gwj_oom(eb);
        } else if (strcmp(type, "image_url") == 0 ||
                   strcmp(type, "input_image") == 0 ||
                   strcmp(type, "image") == 0) {
            return hp_errf(eb, HP_ERR_INVALID,
                           "%s: image parts are not supported for anthropic "
                           "upstreams", where);
        } else if (strcmp(type, "input_audio") == 0 ||
                   strcmp(type, "file") == 0) {
            return hp_errf(eb, HP_ERR_INVALID,
                           "%s: %s parts are not supported for anthropic "
                           "upstreams", where, type);
        } else if (strcmp(type, "refusal") == 0) {
            /* An assistant's earlier refusal is plain text to Anthropic. */
            const char *r = gwj_str(part, "refusal");
            if (r && *r && !gwj_push(blocks, text_block(r, strlen(r))))
                return gwj_oom(eb);
        } else {
            return hp_errf(eb, HP_ERR_INVALID,
                           "%s[%zu].type: unsupported content part type '%.40s'",
                           where, i, type);
        }
    }
    return HP_OK;
}

/* Assistant tool_calls -> tool_use blocks. arguments is a JSON string in
 * OpenAI and an object in Anthropic, so it is parsed here; a client that
 * sent broken JSON gets told which call. */
static hp_err tool_use_blocks(const json_t *calls, size_t mi, json_t *blocks,
                              hp_errbuf *eb)
{
    if (!calls || json_is_null(calls))
        return HP_OK;
    if (!json_is_array(calls))
        return hp_errf(eb, HP_ERR_INVALID,
                       "messages[%zu].tool_calls: must be an array", mi);
    size_t j;
    const json_t *call;
    json_array_foreach(calls, j, call) {
        const char *id = gwj_str(call, "id");
        const json_t *fn = json_object_get(call, "function");
        const char *name = gwj_str(fn, "name");
        if (!id || !*id)
            return hp_errf(eb, HP_ERR_INVALID,
                           "messages[%zu].tool_calls[%zu].id: required", mi, j);
        if (!name || !*name)
            return hp_errf(eb, HP_ERR_INVALID,
                           "messages[%zu].tool_calls[%zu].function.name: "
                           "required", mi, j);
        const json_t *args = json_object_get(fn, "arguments");
        json_t *input = NULL;
        if (!args || json_is_null(args) ||
            (json_is_string(args) && json_string_length(args) == 0)) {
            input = json_object();
        } else if (json_is_string(args)) {
            json_error_t jerr;
            input = json_loadb(json_string_value(args),
                               json_string_length(args), JSON_DECODE_ANY,
                               &jerr);
            if (!json_is_object(input)) {
                json_decref(input);
                return hp_errf(eb, HP_ERR_INVALID,
                               "messages[%zu].tool_calls[%zu].function."
                               "arguments: not a JSON object", mi, j);
            }
        } else if (json_is_object(args)) {
            /* Lenient: some clients send the object itself. */
            input = json_deep_copy(args);
        } else {
            return hp_errf(eb, HP_ERR_INVALID,
                           "messages[%zu].tool_calls[%zu].function.arguments: "
                           "must be a JSON string", mi, j);
        }
        if (!input)
            return gwj_oom(eb);
        json_t *b = json_pack("{s:s, s:s, s:s, s:o}", "type", "tool_use",
                              "id", id, "name", name, "input", input);
        if (!gwj_push(blocks, b))
            return gwj_oom(eb);
    }
    return HP_OK;
}

/* A tool message -> one tool_result block. */
static hp_err tool_result_block(const json_t *msg, size_t mi, json_t *blocks,
                                hp_errbuf *eb)
{
    const char *tid = gwj_str(msg, "tool_call_id");
    if (!tid || !*tid)
        return hp_errf(eb, HP_ERR_INVALID,
                       "messages[%zu].tool_call_id: required", mi);
    const json_t *content = json_object_get(msg, "content");
    json_t *c;
    if (json_is_string(content)) {
        c = json_copy((json_t *)content);
    } else {
        char where[48];
        snprintf(where, sizeof where, "messages[%zu].content", mi);
        c = json_array();
        if (!c)
            return gwj_oom(eb);
        hp_err rc = content_blocks(content, where, c, eb);
        if (rc != HP_OK) {
            json_decref(c);
            return rc;
        }
    }
    json_t *b = json_pack("{s:s, s:s}", "type", "tool_result",
                          "tool_use_id", tid);
    /* An empty result is sent without content: Anthropic refuses empty
     * text blocks but accepts a bare tool_result. */
    bool empty = json_is_string(c) ? json_string_length(c) == 0
                                   : json_array_size(c) == 0;
    if (!c || !b || (!empty && json_object_set(b, "content", c) != 0)) {
        json_decref(c);
        json_decref(b);
        return gwj_oom(eb);
    }
    json_decref(c);
    return gwj_push(blocks, b) ? HP_OK : gwj_oom(eb);
}

/* Append blocks as a turn of `role`, merged into the previous turn when it
 * has the same role (Anthropic wants strict alternation). */
static hp_err add_turn(json_t *msgs, const char *role, json_t *blocks,
                       hp_errbuf *eb)
{
    size_t n = json_array_size(msgs);
    json_t *last = n ? json_array_get(msgs, n - 1) : NULL;
    if (last && strcmp(gwj_str(last, "role"), role) == 0)
        return json_array_extend(json_object_get(last, "content"), blocks) == 0
                   ? HP_OK : gwj_oom(eb);
    json_t *m = json_pack("{s:s, s:O}", "role", role, "content", blocks);
    return gwj_push(msgs, m) ? HP_OK : gwj_oom(eb);
}

/* Final touches on a merged turn: tool_result blocks first (Anthropic
 * requires them before any text in a user turn), and a lone text block
 * sent as a plain string, the shape most requests have. */
static hp_err finish_turn(json_t *m, hp_errbuf *eb)
{
    json_t *blocks = json_object_get(m, "content");
    size_t n = json_array_size(blocks);
    if (strcmp(gwj_str(m, "role"), "user") == 0) {
        json_t *sorted = json_array();
        if (!sorted)
            return gwj_oom(eb);
        for (int pass = 0; pass < 2; pass++) {
            for (size_t i = 0; i < n; i++) {
                json_t *b = json_array_get(blocks, i);
                bool tr = strcmp(gwj_str(b, "type"), "tool_result") == 0;
                if (tr == (pass == 0) && json_array_append(sorted, b) != 0) {
                    json_decref(sorted);
                    return gwj_oom(eb);
                }
            }
        }
        if (json_object_set_new(m, "content", sorted) != 0)
            return gwj_oom(eb);
        blocks = sorted;
    }
    json_t *b0 = json_array_get(blocks, 0);
    if (n == 1 && strcmp(gwj_str(b0, "type"), "text") == 0) {
        json_t *s = json_object_get(b0, "text");
        if (json_object_set(m, "content", s) != 0)
            return gwj_oom(eb);
    }
    return HP_OK;
}

/* messages -> system + messages. */
static hp_err map_messages(const json_t *oai, json_t *out, hp_errbuf *eb)
{
    const json_t *msgs = json_object_get(oai, "messages");
    if (!json_is_array(msgs) || json_array_size(msgs) == 0)
        return hp_errf(eb, HP_ERR_INVALID,
                       "messages: must be a non-empty array");
    json_t *system = json_array();
    json_t *turns = json_array();
    json_t *blocks = NULL;
    hp_err rc = HP_OK;
    if (!system || !turns) {
        rc = gwj_oom(eb);
        goto fail;
    }
    size_t i;
    const json_t *msg;
    json_array_foreach(msgs, i, msg) {
        const char *role = gwj_str(msg, "role");
        char where[48];
        snprintf(where, sizeof where, "messages[%zu].content", i);
        if (!role) {
            rc = hp_errf(eb, HP_ERR_INVALID, "messages[%zu].role: required", i);
            goto fail;
        }
        const json_t *content = json_object_get(msg, "content");
        if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0) {
            rc = content_blocks(content, where, system, eb);
            if (rc != HP_OK)
                goto fail;
            continue;
        }
        blocks = json_array();
        if (!blocks) {
            rc = gwj_oom(eb);
            goto fail;
        }
        const char *arole = "user";
        if (strcmp(role, "user") == 0) {
            arole = "user";
            rc = content_blocks(content, where, blocks, eb);
        } else if (strcmp(role, "assistant") == 0) {
            arole = "assistant";
            rc = content_blocks(content, where, blocks, eb);
            if (rc == HP_OK)
                rc = tool_use_blocks(json_object_get(msg, "tool_calls"), i,
                                     blocks, eb);
        } else if (strcmp(role, "tool") == 0) {
            arole = "user";
            rc = tool_result_block(msg, i, blocks, eb);
        } else {
            rc = hp_errf(eb, HP_ERR_INVALID,
                         "messages[%zu].role: '%.40s' is not supported for "
                         "anthropic upstreams", i, role);
        }
        /* A turn with nothing in it (content "" or null, no tool calls) is
         * dropped: Anthropic refuses empty content, and merging takes care
         * of the neighbours it separated. */
        if (rc == HP_OK && json_array_size(blocks) > 0)
            rc = add_turn(turns, arole, blocks, eb);
        json_decref(blocks);
        blocks = NULL;
        if (rc != HP_OK)
            goto fail;
    }
    if (json_array_size(turns) == 0) {
        rc = hp_errf(eb, HP_ERR_INVALID,
                     "messages: no user or assistant content to send");
        goto fail;
    }
    /* Anthropic conversations start with a user turn. A chat that opens
     * with an assistant greeting gets a minimal user turn in front rather
     * than a refusal: the greeting is kept and the model sees no new
     * instruction. */
    if (strcmp(gwj_str(json_array_get(turns, 0), "role"), "user") != 0) {
        json_t *u = json_pack("{s:s, s:[{s:s, s:s}]}", "role", "user",
                              "content", "type", "text", "text", ".");
        if (!u || json_array_insert_new(turns, 0, u) != 0) {
            rc = gwj_oom(eb);
            goto fail;
        }
    }
    for (i = 0; i < json_array_size(turns); i++) {
        rc = finish_turn(json_array_get(turns, i), eb);
        if (rc != HP_OK)
            goto fail;
    }
    size_t ns = json_array_size(system);
    if (ns == 1) {
        if (!gwj_set(out, "system", json_incref(json_object_get(
                                    json_array_get(system, 0), "text")))) {
            rc = gwj_oom(eb);
            goto fail;
        }
    } else if (ns > 1) {
        /* Several system pieces stay separate text blocks: no separator to
         * invent, and Anthropic reads them in order. */
        if (json_object_set(out, "system", system) != 0) {
            rc = gwj_oom(eb);
            goto fail;
        }
    }
    if (json_object_set(out, "messages", turns) != 0)
        rc = gwj_oom(eb);
fail:
    json_decref(blocks);
    json_decref(system);
    json_decref(turns);
    return rc;
}

/* tools and tool_choice. "none" drops the tools: the model then cannot
 * call one, which is what the client asked for. */
static hp_err map_tools(const json_t *oai, json_t *out, hp_errbuf *eb)
{
    const json_t *tools = json_object_get(oai, "tools");
    const json_t *choice = json_object_get(oai, "tool_choice");
    if (!tools || json_is_null(tools))
        return HP_OK;
    if (!json_is_array(tools))
        return hp_errf(eb, HP_ERR_INVALID, "tools: must be an array");
    if (json_array_size(tools) == 0)
        return HP_OK;
    if (json_is_string(choice) && strcmp(json_string_value(choice), "none") == 0)
        return HP_OK;

    json_t *atools = json_array();
    if (!atools)
        return gwj_oom(eb);
    size_t i;
    const json_t *t;
    json_array_foreach(tools, i, t) {
        const char *type = gwj_str(t, "type");
        if (type && strcmp(type, "function") != 0) {
            json_decref(atools);
            return hp_errf(eb, HP_ERR_INVALID,
                           "tools[%zu].type: only function tools are "
                           "supported for anthropic upstreams", i);
        }
        const json_t *fn = json_object_get(t, "function");
        const char *name = gwj_str(fn, "name");
        if (!name || !*name) {
            json_decref(atools);
            return hp_errf(eb, HP_ERR_INVALID,
                           "tools[%zu].function.name: required", i);
        }
        const json_t *params = json_object_get(fn, "parameters");
        json_t *schema = json_is_object(params)
                             ? json_deep_copy(params)
                             : json_pack("{s:s, s:{}}", "type", "object",
                                         "properties");
        json_t *at = json_pack("{s:s, s:o}", "name", name, "input_schema",
                               schema);
        const char *desc = gwj_str(fn, "description");
        if (!at || (desc && !gwj_set(at, "description", json_string(desc))) ||
            !gwj_push(atools, at)) {
            json_decref(atools);
            return gwj_oom(eb);
        }
    }
    if (!gwj_set(out, "tools", atools))
        return gwj_oom(eb);

    json_t *tc = NULL;
    if (json_is_string(choice)) {
        const char *c = json_string_value(choice);
        if (strcmp(c, "auto") == 0)
            tc = json_pack("{s:s}", "type", "auto");
        else if (strcmp(c, "required") == 0)
            tc = json_pack("{s:s}", "type", "any");
        else
            return hp_errf(eb, HP_ERR_INVALID,
                           "tool_choice: unknown value '%.40s'", c);
    } else if (json_is_object(choice)) {
        const char *name = gwj_str(json_object_get(choice, "function"),
                                     "name");
        if (!name || !*name)
            return hp_errf(eb, HP_ERR_INVALID,
                           "tool_choice.function.name: required");
        tc = json_pack("{s:s, s:s}", "type", "tool", "name", name);
    } else if (choice && !json_is_null(choice)) {
        return hp_errf(eb, HP_ERR_INVALID,
                       "tool_choice: must be a string or an object");
    }
    if (json_is_false(json_object_get(oai, "parallel_tool_calls"))) {
        if (!tc)
            tc = json_pack("{s:s}", "type", "auto");
        if (tc && json_object_set_new(tc, "disable_parallel_tool_use",
                                      json_true()) != 0) {
            json_decref(tc);
            return gwj_oom(eb);
        }
    }
    if (tc && !gwj_set(out, "tool_choice", tc))
        return gwj_oom(eb);
    return HP_OK;
}

/* max_tokens, sampling, stop, stream, and the fields refused outright. */
static hp_err map_params(const json_t *oai, json_t *out, hp_errbuf *eb)
{
    const json_t *n = json_object_get(oai, "n");
    if (n && !json_is_null(n)) {
        if (!json_is_integer(n) || json_integer_value(n) < 1)
            return hp_errf(eb, HP_ERR_INVALID, "n: must be a positive integer");
        if (json_integer_value(n) > 1)
            return hp_errf(eb, HP_ERR_INVALID,
                           "n: only one choice is supported for anthropic "
                           "upstreams");
    }
    if (json_is_true(json_object_get(oai, "logprobs")))
        return hp_errf(eb, HP_ERR_INVALID,
                       "logprobs: not supported for anthropic upstreams");
    const json_t *rf = json_object_get(oai, "response_format");
    if (json_is_object(rf)) {
        const char *type = gwj_str(rf, "type");
        if (type && strcmp(type, "text") != 0)
            return hp_errf(eb, HP_ERR_INVALID,
                           "response_format: type '%.40s' is not supported "
                           "for anthropic upstreams", type);
    }

    /* max_completion_tokens is OpenAI's newer name and wins when both are
     * given; Anthropic requires a value, so a default fills the gap. */
    json_int_t max_tokens = HP_ANTH_DEFAULT_MAX_TOKENS;
    const char *keys[] = {"max_tokens", "max_completion_tokens"};
    for (int k = 0; k < 2; k++) {
        const json_t *v = json_object_get(oai, keys[k]);
        if (!v || json_is_null(v))
            continue;
        if (!json_is_integer(v) || json_integer_value(v) < 1)
            return hp_errf(eb, HP_ERR_INVALID, "%s: must be a positive integer",
                           keys[k]);
        max_tokens = json_integer_value(v);
    }
    if (!gwj_set(out, "max_tokens", json_integer(max_tokens)))
        return gwj_oom(eb);

    const json_t *temp = json_object_get(oai, "temperature");
    if (temp && !json_is_null(temp)) {
        if (!json_is_number(temp) || json_number_value(temp) < 0)
            return hp_errf(eb, HP_ERR_INVALID,
                           "temperature: must be a number >= 0");
        /* OpenAI allows up to 2, Anthropic up to 1: clamp instead of
         * failing, the closest behaviour available. */
        double t = json_number_value(temp);
        if (!gwj_set(out, "temperature", json_real(t > 1.0 ? 1.0 : t)))
            return gwj_oom(eb);
    }
    const json_t *top_p = json_object_get(oai, "top_p");
    if (top_p && !json_is_null(top_p)) {
        double p = json_number_value(top_p);
        if (!json_is_number(top_p) || p < 0 || p > 1)
            return hp_errf(eb, HP_ERR_INVALID,
                           "top_p: must be a number in [0, 1]");
        if (!gwj_set(out, "top_p", json_real(p)))
            return gwj_oom(eb);
    }

    const json_t *stop = json_object_get(oai, "stop");
    if (stop && !json_is_null(stop)) {
        json_t *seqs = json_array();
        if (!seqs)
            return gwj_oom(eb);
        if (json_is_string(stop)) {
            if (json_string_length(stop) > 0 &&
                json_array_append(seqs, (json_t *)stop) != 0) {
                json_decref(seqs);
                return gwj_oom(eb);
            }
        } else if (json_is_array(stop)) {
            size_t i;
            const json_t *s;
            json_array_foreach(stop, i, s) {
                if (!json_is_string(s)) {
                    json_decref(seqs);
                    return hp_errf(eb, HP_ERR_INVALID,
                                   "stop[%zu]: must be a string", i);
                }
                if (json_string_length(s) > 0 &&
                    json_array_append(seqs, (json_t *)s) != 0) {
                    json_decref(seqs);
                    return gwj_oom(eb);
                }
            }
        } else {
            json_decref(seqs);
            return hp_errf(eb, HP_ERR_INVALID,
                           "stop: must be a string or an array of strings");
        }
        if (json_array_size(seqs) == 0)
            json_decref(seqs);
        else if (!gwj_set(out, "stop_sequences", seqs))
            return gwj_oom(eb);
    }
    if (json_is_true(json_object_get(oai, "stream")) &&
        !gwj_set(out, "stream", json_true()))
        return gwj_oom(eb);
    return HP_OK;
}

hp_err hp_anth_request(const json_t *oai, const char *model, json_t **out,
                       hp_errbuf *eb)
{
    *out = NULL;
    if (!json_is_object(oai))
        return hp_errf(eb, HP_ERR_INVALID, "body: must be a JSON object");
    if (!model || !*model)
        return hp_errf(eb, HP_ERR_INVALID, "model: required");
    json_t *r = json_pack("{s:s}", "model", model);
    if (!r)
        return gwj_oom(eb);
    hp_err rc = map_params(oai, r, eb);
    if (rc == HP_OK)
        rc = map_messages(oai, r, eb);
    if (rc == HP_OK)
        rc = map_tools(oai, r, eb);
    if (rc != HP_OK) {
        json_decref(r);
        return rc;
    }
    *out = r;
    return HP_OK;
}

/* ---- response: Anthropic -> OpenAI ------------------------------------ */

const char *hp_anth_finish_reason(const char *stop_reason)
{
    if (!stop_reason)
        return "stop";
    if (strcmp(stop_reason, "max_tokens") == 0 ||
        strcmp(stop_reason, "model_context_window_exceeded") == 0)
        return "length";
    if (strcmp(stop_reason, "tool_use") == 0)
        return "tool_calls";
    if (strcmp(stop_reason, "refusal") == 0)
        return "content_filter";
    /* end_turn, stop_sequence, pause_turn and anything newer. */
    return "stop";
}

hp_err hp_anth_response(const json_t *anth, const char *id, int64_t created,
                        const char *model, json_t **out, hp_errbuf *eb)
{
    *out = NULL;
    const char *type = gwj_str(anth, "type");
    const json_t *content = json_object_get(anth, "content");
    if (!json_is_object(anth) || (type && strcmp(type, "message") != 0) ||
        !json_is_array(content))
        return hp_errf(eb, HP_ERR_FORMAT,
                       "anthropic response: not a message object");

    /* Text blocks are concatenated as-is: Anthropic splits one answer into
     * several blocks (around citations or tool calls), not paragraphs. */
    size_t tlen = 0;
    bool any_text = false;
    size_t i;
    const json_t *b;
    json_array_foreach(content, i, b) {
        const char *bt = gwj_str(b, "type");
        if (bt && strcmp(bt, "text") == 0) {
            any_text = true;
            tlen += json_string_length(json_object_get(b, "text"));
        }
    }
    char *text = malloc(tlen + 1);
    json_t *calls = json_array();
    json_t *msg = NULL;
    hp_err rc = HP_OK;
    if (!text || !calls) {
        rc = gwj_oom(eb);
        goto fail;
    }
    size_t off = 0;
    json_array_foreach(content, i, b) {
        const char *bt = gwj_str(b, "type");
        if (!bt)
            continue;
        if (strcmp(bt, "text") == 0) {
            const json_t *t = json_object_get(b, "text");
            size_t n = json_string_length(t);
            if (n)
                memcpy(text + off, json_string_value(t), n);
            off += n;
        } else if (strcmp(bt, "tool_use") == 0) {
            const char *tid = gwj_str(b, "id");
            const char *name = gwj_str(b, "name");
            if (!tid || !name) {
                rc = hp_errf(eb, HP_ERR_FORMAT,
                             "anthropic response: content[%zu]: tool_use "
                             "without id or name", i);
                goto fail;
            }
            const json_t *input = json_object_get(b, "input");
            char *args = input ? json_dumps(input, JSON_COMPACT |
                                                       JSON_ENCODE_ANY)
                               : strdup("{}");
            json_t *c = args ? json_pack("{s:s, s:s, s:{s:s, s:s}}",
                                         "id", tid, "type", "function",
                                         "function", "name", name,
                                         "arguments", args)
                             : NULL;
            free(args);
            if (!gwj_push(calls, c)) {
                rc = gwj_oom(eb);
                goto fail;
            }
        }
        /* thinking and other block kinds have no OpenAI equivalent. */
    }
    text[off] = '\0';

    msg = json_pack("{s:s, s:o}", "role", "assistant", "content",
                    any_text ? json_stringn(text, off) : json_null());
    if (!msg || (json_array_size(calls) > 0 &&
                 json_object_set(msg, "tool_calls", calls) != 0)) {
        rc = gwj_oom(eb);
        goto fail;
    }
    const json_t *u = json_object_get(anth, "usage");
    json_t *usage = usage_obj(gwj_int(u, "input_tokens", 0),
                              gwj_int(u, "cache_read_input_tokens", 0),
                              gwj_int(u, "cache_creation_input_tokens", 0),
                              gwj_int(u, "output_tokens", 0));
    json_t *r = json_pack(
        "{s:s, s:s, s:I, s:s, s:[{s:i, s:O, s:n, s:s}], s:o}",
        "id", id ? id : "", "object", "chat.completion",
        "created", (json_int_t)created, "model", model ? model : "",
        "choices", "index", 0, "message", msg, "logprobs",
        "finish_reason", hp_anth_finish_reason(gwj_str(anth, "stop_reason")),
        "usage", usage);
    if (!r) {
        rc = gwj_oom(eb);
        goto fail;
    }
    *out = r;
fail:
    free(text);
    json_decref(calls);
    json_decref(msg);
    return rc;
}

/* ---- errors ----------------------------------------------------------- */

/* OpenAI error type for an Anthropic one. OpenAI clients branch on a few
 * types; the Anthropic name is kept in `code` so nothing is lost. */
static const char *error_type(const char *atype, int status)
{
    if (atype) {
        if (strcmp(atype, "invalid_request_error") == 0 ||
            strcmp(atype, "request_too_large") == 0)
            return "invalid_request_error";
        if (strcmp(atype, "authentication_error") == 0 ||
            strcmp(atype, "permission_error") == 0 ||
            strcmp(atype, "not_found_error") == 0 ||
            strcmp(atype, "rate_limit_error") == 0)
            return atype;
        if (strcmp(atype, "api_error") == 0 ||
            strcmp(atype, "overloaded_error") == 0)
            return "server_error";
    }
    if (status == 429)
        return "rate_limit_error";
    if (status == 401)
        return "authentication_error";
    if (status >= 400 && status < 500)
        return "invalid_request_error";
    return "server_error";
}

json_t *hp_anth_error(const char *body, size_t len, int status)
{
    json_t *doc = NULL;
    if (body && len) {
        json_error_t jerr;
        doc = json_loadb(body, len, 0, &jerr);
    }
    const json_t *err = json_object_get(doc, "error");
    const char *msg = NULL, *atype = NULL;
    if (json_is_object(err)) {
        msg = gwj_str(err, "message");
        atype = gwj_str(err, "type");
    } else if (json_is_string(err)) {
        msg = json_string_value(err); /* {"error": "text"} from proxies */
    }
    json_t *jmsg = NULL;
    if (msg && *msg) {
        jmsg = json_string(msg);
    } else {
        /* Not an error document: say what came back, with a short piece
         * of the body when it is text, cut on a UTF-8 boundary. */
        char head[256];
        int hl = snprintf(head, sizeof head,
                          "anthropic upstream error (HTTP %d)", status);
        size_t n = len < 160 ? len : 160;
        json_t *snip = NULL;
        /* json_stringn refuses invalid UTF-8: retry a few bytes shorter in
         * case the cut split a character, then give up (binary body). */
        for (int back = 0; body && n > 0 && !snip && back < 4; back++, n--)
            snip = json_stringn(body, n);
        if (snip && hl > 0) {
            char *full = NULL;
            if (asprintf(&full, "%s: %s", head, json_string_value(snip)) >= 0) {
                jmsg = json_string(full);
                free(full);
            }
        }
        json_decref(snip);
        if (!jmsg)
            jmsg = json_string(head);
    }
    json_t *r = json_pack("{s:{s:o, s:s, s:n, s:o}}", "error", "message", jmsg,
                          "type", error_type(atype, status), "param", "code",
                          atype ? json_string(atype) : json_null());
    json_decref(doc);
    return r;
}

/* ---- streaming -------------------------------------------------------- */

void hp_anth_stream_init(hp_anth_stream *s, const char *id, int64_t created,
                         const char *model, bool include_usage)
{
    memset(s, 0, sizeof *s);
    snprintf(s->id, sizeof s->id, "%s", id ? id : "");
    snprintf(s->model, sizeof s->model, "%s", model ? model : "");
    s->created = created;
    s->include_usage = include_usage;
    s->tool_index = -1;
}

json_t *hp_anth_stream_usage(const hp_anth_stream *s)
{
    return usage_obj(s->input_tokens, s->cache_read, s->cache_creation,
                     s->output_tokens);
}

/* One chat.completion.chunk with choice 0 carrying delta (stolen) and
 * finish (NULL -> null), handed to emit. */
static hp_err emit_chunk(hp_anth_stream *s, json_t *delta, const char *finish,
                         hp_anth_emit emit, void *ud, hp_errbuf *eb)
{
    if (!delta)
        return gwj_oom(eb);
    json_t *c = json_pack(
        "{s:s, s:s, s:I, s:s, s:[{s:i, s:o, s:n, s:s?}]}", "id", s->id,
        "object", "chat.completion.chunk", "created", (json_int_t)s->created,
        "model", s->model, "choices", "index", 0, "delta", delta, "logprobs",
        "finish_reason", finish);
    if (!c)
        return gwj_oom(eb);
    emit(c, ud);
    return HP_OK;
}

/* The role chunk comes first, even if an upstream skipped message_start. */
static hp_err ensure_started(hp_anth_stream *s, hp_anth_emit emit, void *ud,
                             hp_errbuf *eb)
{
    if (s->started)
        return HP_OK;
    s->started = true;
    return emit_chunk(s, json_pack("{s:s, s:s}", "role", "assistant",
                                   "content", ""),
                      NULL, emit, ud, eb);
}

static hp_err text_chunk(hp_anth_stream *s, const json_t *text,
                         hp_anth_emit emit, void *ud, hp_errbuf *eb)
{
    if (json_string_length(text) == 0)
        return HP_OK;
    hp_err rc = ensure_started(s, emit, ud, eb);
    if (rc != HP_OK)
        return rc;
    return emit_chunk(s, json_pack("{s:O}", "content", text), NULL, emit, ud,
                      eb);
}

/* Take whatever usage counters an event carries (message_start has them
 * all; message_delta has output_tokens and, in newer API versions,
 * cumulative input counts too). */
static void take_usage(hp_anth_stream *s, const json_t *u)
{
    s->input_tokens = gwj_int(u, "input_tokens", s->input_tokens);
    s->cache_read = gwj_int(u, "cache_read_input_tokens", s->cache_read);
    s->cache_creation = gwj_int(u, "cache_creation_input_tokens",
                                  s->cache_creation);
    s->output_tokens = gwj_int(u, "output_tokens", s->output_tokens);
}

static hp_err on_block_start(hp_anth_stream *s, const json_t *ev,
                             hp_anth_emit emit, void *ud, hp_errbuf *eb)
{
    const json_t *cb = json_object_get(ev, "content_block");
    const char *type = gwj_str(cb, "type");
    if (!type)
        return hp_errf(eb, HP_ERR_FORMAT,
                       "content_block_start: no content_block.type");
    if (strcmp(type, "text") == 0)
        return text_chunk(s, json_object_get(cb, "text"), emit, ud, eb);
    if (strcmp(type, "tool_use") != 0)
        return HP_OK; /* thinking, server tools: nothing to show */
    const char *id = gwj_str(cb, "id");
    const char *name = gwj_str(cb, "name");
    if (!id || !name)
        return hp_errf(eb, HP_ERR_FORMAT,
                       "content_block_start: tool_use without id or name");
    hp_err rc = ensure_started(s, emit, ud, eb);
    if (rc != HP_OK)
        return rc;
    s->tool_index = s->n_tools++;
    json_t *d = json_pack("{s:[{s:i, s:s, s:s, s:{s:s, s:s}}]}", "tool_calls",
                          "index", s->tool_index, "id", id, "type", "function",
                          "function", "name", name, "arguments", "");
    return emit_chunk(s, d, NULL, emit, ud, eb);
}

static hp_err on_block_delta(hp_anth_stream *s, const json_t *ev,
                             hp_anth_emit emit, void *ud, hp_errbuf *eb)
{
    const json_t *d = json_object_get(ev, "delta");
    const char *type = gwj_str(d, "type");
    if (!type)
        return hp_errf(eb, HP_ERR_FORMAT, "content_block_delta: no delta.type");
    if (strcmp(type, "text_delta") == 0) {
        const json_t *t = json_object_get(d, "text");
        if (!json_is_string(t))
            return hp_errf(eb, HP_ERR_FORMAT,
                           "content_block_delta: text_delta without text");
        return text_chunk(s, t, emit, ud, eb);
    }
    if (strcmp(type, "input_json_delta") == 0) {
        const json_t *pj = json_object_get(d, "partial_json");
        if (!json_is_string(pj))
            return hp_errf(eb, HP_ERR_FORMAT,
                           "content_block_delta: input_json_delta without "
                           "partial_json");
        if (s->tool_index < 0)
            return hp_errf(eb, HP_ERR_FORMAT,
                           "content_block_delta: input_json_delta outside a "
                           "tool_use block");
        if (json_string_length(pj) == 0)
            return HP_OK;
        json_t *dd = json_pack("{s:[{s:i, s:{s:O}}]}", "tool_calls", "index",
                               s->tool_index, "function", "arguments", pj);
        return emit_chunk(s, dd, NULL, emit, ud, eb);
    }
    return HP_OK; /* thinking_delta, signature_delta, citations_delta */
}

/* An upstream error event: its type and message go to eb. */
static hp_err stream_error(const json_t *doc, hp_errbuf *eb)
{
    const json_t *err = json_object_get(doc, "error");
    const char *type = gwj_str(err, "type");
    const char *msg = gwj_str(err, "message");
    return hp_errf(eb, HP_ERR_AGAIN, "anthropic stream error (%.40s): %.180s",
                   type ? type : "unknown", msg ? msg : "no message");
}

hp_err hp_anth_stream_event(hp_anth_stream *s, const char *event,
                            const char *data, size_t len, hp_anth_emit emit,
                            void *ud, hp_errbuf *eb)
{
    json_error_t jerr;
    json_t *ev = data ? json_loadb(data, len, 0, &jerr) : NULL;
    /* An error event ends the stream whatever its data looks like. */
    if (event && strcmp(event, "error") == 0) {
        hp_err rc = stream_error(ev, eb);
        json_decref(ev);
        return rc;
    }
    if (!json_is_object(ev)) {
        json_decref(ev);
        return hp_errf(eb, HP_ERR_FORMAT,
                       "anthropic event '%.40s': data is not a JSON object",
                       event ? event : "");
    }
    const char *type = gwj_str(ev, "type");
    const char *name = event && *event ? event : type;
    hp_err rc = HP_OK;
    if (!name || (type && strcmp(type, name) != 0)) {
        rc = hp_errf(eb, HP_ERR_FORMAT,
                     "anthropic event '%.40s': data type '%.40s' differs",
                     name ? name : "", type ? type : "");
    } else if (strcmp(name, "error") == 0) {
        rc = stream_error(ev, eb); /* typed by data only, no event line */
    } else if (s->done || strcmp(name, "ping") == 0) {
        rc = HP_OK;
    } else if (strcmp(name, "message_start") == 0) {
        const json_t *m = json_object_get(ev, "message");
        if (!json_is_object(m)) {
            rc = hp_errf(eb, HP_ERR_FORMAT, "message_start: no message");
        } else {
            take_usage(s, json_object_get(m, "usage"));
            rc = ensure_started(s, emit, ud, eb);
        }
    } else if (strcmp(name, "content_block_start") == 0) {
        rc = on_block_start(s, ev, emit, ud, eb);
    } else if (strcmp(name, "content_block_delta") == 0) {
        rc = on_block_delta(s, ev, emit, ud, eb);
    } else if (strcmp(name, "content_block_stop") == 0) {
        s->tool_index = -1;
    } else if (strcmp(name, "message_delta") == 0) {
        const json_t *d = json_object_get(ev, "delta");
        if (!json_is_object(d)) {
            rc = hp_errf(eb, HP_ERR_FORMAT, "message_delta: no delta");
        } else {
            take_usage(s, json_object_get(ev, "usage"));
            s->finish = hp_anth_finish_reason(gwj_str(d, "stop_reason"));
            rc = ensure_started(s, emit, ud, eb);
            if (rc == HP_OK)
                rc = emit_chunk(s, json_object(), s->finish, emit, ud, eb);
        }
    } else if (strcmp(name, "message_stop") == 0) {
        /* A stream that ends without message_delta still owes the client a
         * finish_reason. */
        if (!s->finish) {
            s->finish = "stop";
            rc = ensure_started(s, emit, ud, eb);
            if (rc == HP_OK)
                rc = emit_chunk(s, json_object(), s->finish, emit, ud, eb);
        }
        s->done = true;
        if (rc == HP_OK && s->include_usage) {
            json_t *c = json_pack("{s:s, s:s, s:I, s:s, s:[], s:o}", "id",
                                  s->id, "object", "chat.completion.chunk",
                                  "created", (json_int_t)s->created, "model",
                                  s->model, "choices", "usage",
                                  hp_anth_stream_usage(s));
            if (c)
                emit(c, ud);
            else
                rc = gwj_oom(eb);
        }
    }
    /* Unknown event kinds are skipped: Anthropic documents that new ones
     * may appear. */
    json_decref(ev);
    return rc;
}
