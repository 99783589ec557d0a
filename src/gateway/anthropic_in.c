/* anthropic_in.c: Messages API clients served through OpenAI-speaking
 * routes (see anthropic_in.h); the reverse of anthropic.c.
 *
 * Owns the mapping rules only: Messages requests become OpenAI chat
 * requests; chat.completion objects, chunk streams and OpenAI errors come
 * back as Messages shapes. Pure jansson in, jansson (or SSE text) out: no
 * I/O, no clock, nothing of routes or keys beyond an HTTP status number.
 * Sections: helpers, request, response, errors, streaming. */
#include "gateway/anthropic_in.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/gwjson.h"

/* ---- helpers ------------------------------------------------------------ */

/* Append / set a new reference; false on OOM (the reference is released
 * either way, as the jansson _new calls do). */
/* Copy src into a fixed buffer, cutting on a UTF-8 boundary so the result
 * stays a valid JSON string (jansson refuses broken UTF-8); a src that was
 * not UTF-8 to begin with keeps only its ASCII, with '?' for the rest. */
static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
            n--;
    }
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
    json_t *probe = json_stringn(dst, n);
    if (!probe) {
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)dst[i] >= 0x80)
                dst[i] = '?';
    }
    json_decref(probe);
}

/* A growable text buffer for joining blocks. */
typedef struct sbuf {
    char *p; /* owns */
    size_t len, cap;
    bool nomem;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->nomem)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->nomem = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* Join one more piece with a newline, as hotpath's own server (and vLLM)
 * join OpenAI text parts, so the target sees the same prompt either way. */
static void sb_join(sbuf *b, bool *first, const json_t *text)
{
    if (!*first)
        sb_add(b, "\n", 1);
    *first = false;
    sb_add(b, json_string_value(text), json_string_length(text));
}

static json_t *sb_json(sbuf *b)
{
    return b->nomem ? NULL : json_stringn(b->p ? b->p : "", b->len);
}

/* ---- request: Messages -> OpenAI ----------------------------------------- */

/* The refusal for a block kind OpenAI chat cannot carry. */
static hp_err refuse_block(const char *where, size_t j, const char *type,
                           hp_errbuf *eb)
{
    if (strcmp(type, "image") == 0 || strcmp(type, "document") == 0)
        return hp_errf(eb, HP_ERR_INVALID,
                       "%s[%zu].type: %s blocks are not supported", where, j,
                       type);
    return hp_errf(eb, HP_ERR_INVALID,
                   "%s[%zu].type: unsupported block type '%.40s'", where, j,
                   type);
}

/* Text of a content value (string or array of text blocks), joined into
 * one string. Used for system and tool_result content, where only text can
 * be said. *out: new reference. */
static hp_err text_only(const json_t *content, const char *where,
                        json_t **out, hp_errbuf *eb)
{
    *out = NULL;
    if (!content || json_is_null(content)) {
        *out = json_string("");
        return *out ? HP_OK : gwj_oom(eb);
    }
    if (json_is_string(content)) {
        *out = json_incref((json_t *)content);
        return HP_OK;
    }
    if (!json_is_array(content))
        return hp_errf(eb, HP_ERR_INVALID,
                       "%s: must be a string or an array of blocks", where);
    sbuf b = {0};
    bool first = true;
    size_t j;
    const json_t *blk;
    json_array_foreach(content, j, blk) {
        const char *type = gwj_str(blk, "type");
        const json_t *t = json_object_get(blk, "text");
        if (!type) {
            free(b.p);
            return hp_errf(eb, HP_ERR_INVALID, "%s[%zu].type: required",
                           where, j);
        }
        if (strcmp(type, "text") != 0) {
            free(b.p);
            return refuse_block(where, j, type, eb);
        }
        if (!json_is_string(t)) {
            free(b.p);
            return hp_errf(eb, HP_ERR_INVALID, "%s[%zu].text: must be a string",
                           where, j);
        }
        sb_join(&b, &first, t);
    }
    *out = sb_json(&b);
    free(b.p);
    return *out ? HP_OK : gwj_oom(eb);
}

/* A tool_use block -> one OpenAI tool call. input is an object in the
 * Messages API and a JSON string in OpenAI; anything but an object is
 * sent as {} (Anthropic itself requires an object). */
static hp_err tool_call_of(const json_t *blk, const char *where, size_t j,
                           json_t *calls, hp_errbuf *eb)
{
    const char *id = gwj_str(blk, "id");
    const char *name = gwj_str(blk, "name");
    if (!id || !*id)
        return hp_errf(eb, HP_ERR_INVALID, "%s[%zu].id: required", where, j);
    if (!name || !*name)
        return hp_errf(eb, HP_ERR_INVALID, "%s[%zu].name: required", where, j);
    const json_t *input = json_object_get(blk, "input");
    char *args = json_is_object(input) ? json_dumps(input, JSON_COMPACT)
                                       : strdup("{}");
    json_t *c = args ? json_pack("{s:s, s:s, s:{s:s, s:s}}", "id", id, "type",
                                 "function", "function", "name", name,
                                 "arguments", args)
                     : NULL;
    free(args);
    return gwj_push(calls, c) ? HP_OK : gwj_oom(eb);
}

/* A tool_result block -> a role "tool" message appended to msgs. */
static hp_err tool_msg_of(const json_t *blk, const char *where, size_t j,
                          json_t *msgs, hp_errbuf *eb)
{
    const char *tid = gwj_str(blk, "tool_use_id");
    if (!tid || !*tid)
        return hp_errf(eb, HP_ERR_INVALID, "%s[%zu].tool_use_id: required",
                       where, j);
    char inner[96];
    snprintf(inner, sizeof inner, "%s[%zu].content", where, j);
    json_t *text = NULL;
    /* is_error has no OpenAI field; the result text is what the model
     * reads either way, and tools put the error there. */
    hp_err rc = text_only(json_object_get(blk, "content"), inner, &text, eb);
    if (rc != HP_OK)
        return rc;
    json_t *m = json_pack("{s:s, s:s, s:o}", "role", "tool", "tool_call_id",
                          tid, "content", text);
    return gwj_push(msgs, m) ? HP_OK : gwj_oom(eb);
}

/* One Messages turn -> OpenAI messages appended to msgs. User turns: the
 * tool_result blocks become tool messages first (OpenAI wants them right
 * after the assistant's calls), then the remaining text as a user message.
 * Assistant turns: joined text plus tool_calls in one message. */
static hp_err map_turn(const json_t *m, size_t i, json_t *msgs, hp_errbuf *eb)
{
    const char *role = gwj_str(m, "role");
    if (!role)
        return hp_errf(eb, HP_ERR_INVALID, "messages[%zu].role: required", i);
    bool user = strcmp(role, "user") == 0;
    if (!user && strcmp(role, "assistant") != 0)
        return hp_errf(eb, HP_ERR_INVALID,
                       "messages[%zu].role: must be 'user' or 'assistant'", i);
    const json_t *content = json_object_get(m, "content");
    if (json_is_string(content)) {
        json_t *om = json_pack("{s:s, s:O}", "role", role, "content", content);
        return gwj_push(msgs, om) ? HP_OK : gwj_oom(eb);
    }
    if (!json_is_array(content))
        return hp_errf(eb, HP_ERR_INVALID,
                       "messages[%zu].content: must be a string or an array "
                       "of blocks", i);
    char where[48];
    snprintf(where, sizeof where, "messages[%zu].content", i);
    sbuf b = {0};
    bool first = true;
    size_t n_results = 0;
    json_t *calls = json_array();
    hp_err rc = calls ? HP_OK : gwj_oom(eb);
    size_t j;
    const json_t *blk;
    json_array_foreach(content, j, blk) {
        if (rc != HP_OK)
            break;
        const char *type = gwj_str(blk, "type");
        if (!type) {
            rc = hp_errf(eb, HP_ERR_INVALID, "%s[%zu].type: required", where,
                         j);
        } else if (strcmp(type, "text") == 0) {
            const json_t *t = json_object_get(blk, "text");
            if (json_is_string(t))
                sb_join(&b, &first, t);
            else
                rc = hp_errf(eb, HP_ERR_INVALID,
                             "%s[%zu].text: must be a string", where, j);
        } else if (strcmp(type, "tool_use") == 0 && !user) {
            rc = tool_call_of(blk, where, j, calls, eb);
        } else if (strcmp(type, "tool_result") == 0 && user) {
            rc = tool_msg_of(blk, where, j, msgs, eb);
            n_results++;
        } else if (!user && (strcmp(type, "thinking") == 0 ||
                             strcmp(type, "redacted_thinking") == 0)) {
            /* Earlier reasoning, echoed back for Anthropic's benefit; an
             * OpenAI target has nowhere to take it. */
        } else if (strcmp(type, "tool_use") == 0 ||
                   strcmp(type, "tool_result") == 0) {
            rc = hp_errf(eb, HP_ERR_INVALID,
                         "%s[%zu].type: %s blocks are not allowed in %s turns",
                         where, j, type, role);
        } else {
            rc = refuse_block(where, j, type, eb);
        }
    }
    if (rc == HP_OK && b.nomem)
        rc = gwj_oom(eb);
    bool has_calls = json_array_size(calls) > 0;
    /* A user turn of only tool results adds no user message; any other
     * turn is kept, even empty, so the conversation keeps its shape. */
    if (rc == HP_OK && !(user && n_results > 0 && b.len == 0)) {
        json_t *om = json_pack("{s:s, s:o}", "role", role, "content",
                               b.len == 0 && has_calls ? json_null()
                                                       : sb_json(&b));
        if (!om || (has_calls && json_object_set(om, "tool_calls", calls))) {
            json_decref(om);
            rc = gwj_oom(eb);
        } else if (!gwj_push(msgs, om)) {
            rc = gwj_oom(eb);
        }
    }
    free(b.p);
    json_decref(calls);
    return rc;
}

/* system + messages -> messages. */
static hp_err map_messages(const json_t *anth, json_t *out, hp_errbuf *eb)
{
    const json_t *msgs = json_object_get(anth, "messages");
    if (!json_is_array(msgs) || json_array_size(msgs) == 0)
        return hp_errf(eb, HP_ERR_INVALID,
                       "messages: must be a non-empty array");
    json_t *om = json_array();
    if (!om)
        return gwj_oom(eb);
    hp_err rc = HP_OK;
    const json_t *sys = json_object_get(anth, "system");
    if (sys && !json_is_null(sys)) {
        json_t *text = NULL;
        rc = text_only(sys, "system", &text, eb);
        if (rc == HP_OK && json_string_length(text) > 0 &&
            !gwj_push(om, json_pack("{s:s, s:O}", "role", "system", "content",
                                text)))
            rc = gwj_oom(eb);
        json_decref(text);
    }
    size_t i;
    const json_t *m;
    json_array_foreach(msgs, i, m) {
        if (rc != HP_OK)
            break;
        rc = map_turn(m, i, om, eb);
    }
    if (rc == HP_OK && json_object_set(out, "messages", om) != 0)
        rc = gwj_oom(eb);
    json_decref(om);
    return rc;
}

/* tools and tool_choice. Only client tools (name + input_schema) exist in
 * OpenAI; Anthropic's server tools (typed, e.g. web search) are refused
 * rather than silently dropped. */
static hp_err map_tools(const json_t *anth, json_t *out, hp_errbuf *eb)
{
    const json_t *tools = json_object_get(anth, "tools");
    if (!tools || json_is_null(tools))
        return HP_OK;
    if (!json_is_array(tools))
        return hp_errf(eb, HP_ERR_INVALID, "tools: must be an array");
    if (json_array_size(tools) == 0)
        return HP_OK;
    json_t *otools = json_array();
    if (!otools)
        return gwj_oom(eb);
    size_t i;
    const json_t *t;
    json_array_foreach(tools, i, t) {
        const char *type = gwj_str(t, "type");
        const char *name = gwj_str(t, "name");
        if (type && strcmp(type, "custom") != 0) {
            json_decref(otools);
            return hp_errf(eb, HP_ERR_INVALID,
                           "tools[%zu].type: '%.60s' tools are not supported",
                           i, type);
        }
        if (!name || !*name) {
            json_decref(otools);
            return hp_errf(eb, HP_ERR_INVALID, "tools[%zu].name: required", i);
        }
        const json_t *schema = json_object_get(t, "input_schema");
        json_t *params = json_is_object(schema)
                             ? json_deep_copy(schema)
                             : json_pack("{s:s, s:{}}", "type", "object",
                                         "properties");
        json_t *fn = json_pack("{s:s}", "name", name);
        const char *desc = gwj_str(t, "description");
        if (!fn || (desc && !gwj_set(fn, "description", json_string(desc))) ||
            !gwj_set(fn, "parameters", params) ||
            !gwj_push(otools, json_pack("{s:s, s:O}", "type", "function",
                                    "function", fn))) {
            json_decref(fn);
            json_decref(otools);
            return gwj_oom(eb);
        }
        json_decref(fn);
    }
    if (!gwj_set(out, "tools", otools))
        return gwj_oom(eb);

    const json_t *choice = json_object_get(anth, "tool_choice");
    if (!choice || json_is_null(choice))
        return HP_OK;
    const char *ct = gwj_str(choice, "type");
    if (!json_is_object(choice) || !ct)
        return hp_errf(eb, HP_ERR_INVALID, "tool_choice.type: required");
    json_t *tc = NULL;
    if (strcmp(ct, "auto") == 0) {
        tc = json_string("auto");
    } else if (strcmp(ct, "any") == 0) {
        tc = json_string("required");
    } else if (strcmp(ct, "none") == 0) {
        tc = json_string("none");
    } else if (strcmp(ct, "tool") == 0) {
        const char *name = gwj_str(choice, "name");
        if (!name || !*name)
            return hp_errf(eb, HP_ERR_INVALID, "tool_choice.name: required");
        tc = json_pack("{s:s, s:{s:s}}", "type", "function", "function",
                       "name", name);
    } else {
        return hp_errf(eb, HP_ERR_INVALID,
                       "tool_choice.type: unknown value '%.40s'", ct);
    }
    if (!gwj_set(out, "tool_choice", tc))
        return gwj_oom(eb);
    if (json_is_true(json_object_get(choice, "disable_parallel_tool_use")) &&
        !gwj_set(out, "parallel_tool_calls", json_false()))
        return gwj_oom(eb);
    return HP_OK;
}

/* A number field carried over when present; HP_ERR_INVALID otherwise. */
static hp_err copy_number(const json_t *anth, const char *key, json_t *out,
                          hp_errbuf *eb)
{
    const json_t *v = json_object_get(anth, key);
    if (!v || json_is_null(v))
        return HP_OK;
    if (!json_is_number(v) || json_number_value(v) < 0)
        return hp_errf(eb, HP_ERR_INVALID, "%s: must be a number >= 0", key);
    return json_object_set(out, key, (json_t *)v) == 0 ? HP_OK : gwj_oom(eb);
}

/* max_tokens, sampling, stop_sequences, stream. */
static hp_err map_params(const json_t *anth, json_t *out, hp_errbuf *eb)
{
    const json_t *mt = json_object_get(anth, "max_tokens");
    if (!mt || json_is_null(mt))
        return hp_errf(eb, HP_ERR_INVALID, "max_tokens: required");
    if (!json_is_integer(mt) || json_integer_value(mt) < 1)
        return hp_errf(eb, HP_ERR_INVALID,
                       "max_tokens: must be a positive integer");
    if (json_object_set(out, "max_tokens", (json_t *)mt) != 0)
        return gwj_oom(eb);
    hp_err rc = copy_number(anth, "temperature", out, eb);
    if (rc == HP_OK)
        rc = copy_number(anth, "top_p", out, eb);
    if (rc != HP_OK)
        return rc;
    /* top_k has no OpenAI field; dropping it only widens sampling. */
    const json_t *stop = json_object_get(anth, "stop_sequences");
    if (stop && !json_is_null(stop)) {
        if (!json_is_array(stop))
            return hp_errf(eb, HP_ERR_INVALID,
                           "stop_sequences: must be an array of strings");
        size_t i;
        const json_t *s;
        json_array_foreach(stop, i, s) {
            if (!json_is_string(s))
                return hp_errf(eb, HP_ERR_INVALID,
                               "stop_sequences[%zu]: must be a string", i);
        }
        if (json_array_size(stop) > 0 &&
            !gwj_set(out, "stop", json_deep_copy(stop)))
            return gwj_oom(eb);
    }
    /* The Messages stream always ends with usage; OpenAI only sends it
     * when asked. */
    if (json_is_true(json_object_get(anth, "stream")) &&
        (!gwj_set(out, "stream", json_true()) ||
         !gwj_set(out, "stream_options", json_pack("{s:b}", "include_usage", 1))))
        return gwj_oom(eb);
    return HP_OK;
}

hp_err hp_anth_in_request(const json_t *anth, json_t **out, hp_errbuf *eb)
{
    *out = NULL;
    if (!json_is_object(anth))
        return hp_errf(eb, HP_ERR_INVALID, "body: must be a JSON object");
    const char *model = gwj_str(anth, "model");
    if (!model || !*model)
        return hp_errf(eb, HP_ERR_INVALID, "model: required");
    json_t *r = json_pack("{s:s}", "model", model);
    if (!r)
        return gwj_oom(eb);
    hp_err rc = map_messages(anth, r, eb);
    if (rc == HP_OK)
        rc = map_params(anth, r, eb);
    if (rc == HP_OK)
        rc = map_tools(anth, r, eb);
    if (rc != HP_OK) {
        json_decref(r);
        return rc;
    }
    *out = r;
    return HP_OK;
}

/* ---- response: OpenAI -> Messages ----------------------------------------- */

/* Anthropic stop_reason for an OpenAI finish_reason (static string). The
 * inverse of hp_anth_finish_reason; which stop sequence ended the reply is
 * not reported by OpenAI, so "stop" is always end_turn. */
static const char *stop_reason(const char *finish)
{
    if (!finish)
        return "end_turn";
    if (strcmp(finish, "length") == 0)
        return "max_tokens";
    if (strcmp(finish, "tool_calls") == 0 ||
        strcmp(finish, "function_call") == 0)
        return "tool_use";
    if (strcmp(finish, "content_filter") == 0)
        return "refusal";
    return "end_turn";
}

/* Messages usage from OpenAI counters: cached prompt tokens are reported
 * apart, as Anthropic counts cache reads outside input_tokens. */
static json_t *usage_of(int64_t prompt, int64_t cached, int64_t completion)
{
    if (cached < 0 || cached > prompt)
        cached = cached < 0 ? 0 : prompt;
    return json_pack("{s:I, s:I, s:I, s:I}", "input_tokens",
                     (json_int_t)(prompt - cached),
                     "cache_creation_input_tokens", (json_int_t)0,
                     "cache_read_input_tokens", (json_int_t)cached,
                     "output_tokens", (json_int_t)completion);
}

static int64_t cached_of(const json_t *usage)
{
    return gwj_int(json_object_get(usage, "prompt_tokens_details"),
                     "cached_tokens", 0);
}

/* tool_calls -> tool_use blocks appended to content. Arguments that do
 * not parse to an object become {}: the client's SDK wants an object and
 * the tool will then say what is missing. */
static bool tool_blocks(const json_t *calls, json_t *content)
{
    size_t i;
    const json_t *c;
    json_array_foreach(calls, i, c) {
        const json_t *fn = json_object_get(c, "function");
        const char *id = gwj_str(c, "id");
        const char *name = gwj_str(fn, "name");
        const json_t *args = json_object_get(fn, "arguments");
        json_t *input = NULL;
        if (json_is_string(args)) {
            json_error_t jerr;
            input = json_loadb(json_string_value(args),
                               json_string_length(args), JSON_DECODE_ANY,
                               &jerr);
        } else if (json_is_object(args)) {
            input = json_deep_copy(args);
        }
        if (!json_is_object(input)) {
            json_decref(input);
            input = json_object();
        }
        char gen[32];
        snprintf(gen, sizeof gen, "toolu_%zu", i);
        if (!gwj_push(content, json_pack("{s:s, s:s, s:s, s:o}", "type",
                                     "tool_use", "id", id && *id ? id : gen,
                                     "name", name ? name : "", "input",
                                     input)))
            return false;
    }
    return true;
}

hp_err hp_anth_in_response(const json_t *oai, const char *model, json_t **out,
                           hp_errbuf *eb)
{
    *out = NULL;
    const json_t *choice = json_array_get(json_object_get(oai, "choices"), 0);
    const json_t *msg = json_object_get(choice, "message");
    if (!json_is_object(oai) || !json_is_object(msg))
        return hp_errf(eb, HP_ERR_FORMAT,
                       "openai response: not a chat.completion");
    json_t *content = json_array();
    if (!content)
        return gwj_oom(eb);
    const json_t *text = json_object_get(msg, "content");
    if (!json_is_string(text) || json_string_length(text) == 0)
        text = json_object_get(msg, "refusal");
    if (json_is_string(text) && json_string_length(text) > 0 &&
        !gwj_push(content, json_pack("{s:s, s:O}", "type", "text", "text", text))) {
        json_decref(content);
        return gwj_oom(eb);
    }
    const json_t *calls = json_object_get(msg, "tool_calls");
    if (!tool_blocks(calls, content)) {
        json_decref(content);
        return gwj_oom(eb);
    }
    const char *reason = stop_reason(gwj_str(choice, "finish_reason"));
    /* Some OpenAI-compatible servers finish a tool call with "stop"; the
     * Messages client runs tools only on tool_use. */
    if (json_array_size(calls) > 0 && strcmp(reason, "end_turn") == 0)
        reason = "tool_use";
    const json_t *u = json_object_get(oai, "usage");
    const char *cid = gwj_str(oai, "id");
    char id[128];
    snprintf(id, sizeof id, "msg_%.100s", cid && *cid ? cid : "hotpath");
    if (!model)
        model = gwj_str(oai, "model");
    json_t *r = json_pack(
        "{s:s, s:s, s:s, s:s, s:o, s:s, s:n, s:o}", "id", id, "type", "message", "role", "assistant", "model",
        model ? model : "", "content", content, "stop_reason", reason,
        "stop_sequence", "usage",
        usage_of(gwj_int(u, "prompt_tokens", 0), cached_of(u),
                 gwj_int(u, "completion_tokens", 0)));
    if (!r)
        return gwj_oom(eb);
    *out = r;
    return HP_OK;
}

/* ---- errors ----------------------------------------------------------- */

static const char *error_type(int status)
{
    switch (status) {
    case 400:
        return "invalid_request_error";
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 404:
        return "not_found_error";
    case 413:
        return "request_too_large";
    case 429:
        return "rate_limit_error";
    case 503:
    case 529:
        return "overloaded_error";
    default:
        return "api_error";
    }
}

json_t *hp_anth_in_error(const char *body, size_t len, int status)
{
    json_t *doc = NULL;
    if (body && len) {
        json_error_t jerr;
        doc = json_loadb(body, len, 0, &jerr);
    }
    const json_t *err = json_object_get(doc, "error");
    const char *msg = NULL;
    if (json_is_object(err))
        msg = gwj_str(err, "message");
    else if (json_is_string(err))
        msg = json_string_value(err); /* {"error": "text"} from proxies */
    json_t *jmsg = msg && *msg ? json_string(msg) : NULL;
    if (!jmsg) {
        /* Not an error document: say what came back, with a short piece of
         * the body when it is text, cut on a UTF-8 boundary. */
        char head[64];
        snprintf(head, sizeof head, "upstream error (HTTP %d)", status);
        size_t n = len < 160 ? len : 160;
        json_t *snip = NULL;
        for (int back = 0; body && n > 0 && !snip && back < 4; back++, n--)
            snip = json_stringn(body, n);
        char *full = NULL;
        if (snip && asprintf(&full, "%s: %s", head,
                             json_string_value(snip)) >= 0) {
            jmsg = json_string(full);
            free(full);
        }
        json_decref(snip);
        if (!jmsg)
            jmsg = json_string(head);
    }
    json_decref(doc);
    return json_pack("{s:s, s:{s:s, s:o}}", "type", "error", "error", "type",
                     error_type(status), "message", jmsg);
}

/* ---- streaming -------------------------------------------------------- */

/* Write one event: "event: NAME\ndata: {json}\n\n". Takes data. Events are
 * dropped on OOM: the stream is then short, which the client sees as a
 * broken stream, the honest outcome. */
static bool emit(hp_anth_out_write w, void *ud, const char *name, json_t *data)
{
    if (!data)
        return false;
    char *txt = json_dumps(data, JSON_COMPACT);
    json_decref(data);
    char *ev = NULL;
    int n = txt ? asprintf(&ev, "event: %s\ndata: %s\n\n", name, txt) : -1;
    free(txt);
    if (n < 0)
        return false;
    w(ev, (size_t)n, ud);
    free(ev);
    return true;
}

void hp_anth_out_init(hp_anth_out *s, const char *id, const char *model)
{
    memset(s, 0, sizeof *s);
    copy_str(s->id, sizeof s->id, id);
    copy_str(s->model, sizeof s->model, model);
    s->block = -1;
    s->tool_index = -1;
}

/* message_start and ping, once. An empty id or model is taken from the
 * first chunk ("msg_" + its id). */
static bool start(hp_anth_out *s, const json_t *chunk, hp_anth_out_write w,
                  void *ud)
{
    if (s->started)
        return true;
    s->started = true;
    if (!s->id[0]) {
        const char *cid = gwj_str(chunk, "id");
        char id[sizeof s->id];
        snprintf(id, sizeof id, "msg_%.80s", cid && *cid ? cid : "hotpath");
        copy_str(s->id, sizeof s->id, id);
    }
    if (!s->model[0])
        copy_str(s->model, sizeof s->model, gwj_str(chunk, "model"));
    int64_t in = s->have_usage ? s->prompt - s->cached : 0;
    json_t *m = json_pack(
        "{s:s, s:{s:s, s:s, s:s, s:s, s:[], s:n, s:n, s:{s:I, s:I}}}", "type",
        "message_start", "message", "id", s->id, "type", "message", "role",
        "assistant", "model", s->model, "content", "stop_reason",
        "stop_sequence", "usage", "input_tokens", (json_int_t)in,
        "output_tokens", (json_int_t)0);
    return emit(w, ud, "message_start", m) &&
           emit(w, ud, "ping", json_pack("{s:s}", "type", "ping"));
}

static bool close_block(hp_anth_out *s, hp_anth_out_write w, void *ud)
{
    if (s->block < 0)
        return true;
    int b = s->block;
    s->block = -1;
    s->block_is_tool = false;
    return emit(w, ud, "content_block_stop",
                json_pack("{s:s, s:i}", "type", "content_block_stop", "index",
                          b));
}

/* Open a block (closing the one open); cb is the content_block (taken). */
static bool open_block(hp_anth_out *s, bool tool, json_t *cb,
                       hp_anth_out_write w, void *ud)
{
    if (!close_block(s, w, ud)) {
        json_decref(cb);
        return false;
    }
    s->block = s->next_block++;
    s->block_is_tool = tool;
    return emit(w, ud, "content_block_start",
                json_pack("{s:s, s:i, s:o}", "type", "content_block_start",
                          "index", s->block, "content_block", cb));
}

static bool text_delta(hp_anth_out *s, const json_t *text, hp_anth_out_write w,
                       void *ud)
{
    if (json_string_length(text) == 0)
        return true;
    if ((s->block < 0 || s->block_is_tool) &&
        !open_block(s, false, json_pack("{s:s, s:s}", "type", "text", "text",
                                        ""), w, ud))
        return false;
    return emit(w, ud, "content_block_delta",
                json_pack("{s:s, s:i, s:{s:s, s:O}}", "type",
                          "content_block_delta", "index", s->block, "delta",
                          "type", "text_delta", "text", text));
}

/* One tool_calls entry. A call whose OpenAI index differs from the open
 * tool block's starts a new tool_use block (OpenAI streams calls one after
 * another, the first fragment carrying id and name); the rest of the
 * fragments are input_json_delta. tool_index keeps the last call's index
 * after its block closes, so tool_index >= 0 also says "a tool was called". */
static bool tool_delta(hp_anth_out *s, const json_t *tc, size_t pos,
                       hp_anth_out_write w, void *ud)
{
    int idx = (int)gwj_int(tc, "index", (int64_t)pos);
    const json_t *fn = json_object_get(tc, "function");
    if (!(s->block >= 0 && s->block_is_tool && idx == s->tool_index)) {
        const char *id = gwj_str(tc, "id");
        const char *name = gwj_str(fn, "name");
        char gen[32];
        snprintf(gen, sizeof gen, "toolu_%d", s->next_block);
        json_t *cb = json_pack("{s:s, s:s, s:s, s:{}}", "type", "tool_use",
                               "id", id && *id ? id : gen, "name",
                               name ? name : "", "input");
        s->tool_index = idx;
        if (!open_block(s, true, cb, w, ud))
            return false;
    }
    const json_t *args = json_object_get(fn, "arguments");
    if (json_string_length(args) == 0)
        return true;
    return emit(w, ud, "content_block_delta",
                json_pack("{s:s, s:i, s:{s:s, s:O}}", "type",
                          "content_block_delta", "index", s->block, "delta",
                          "type", "input_json_delta", "partial_json", args));
}

hp_err hp_anth_out_chunk(hp_anth_out *s, const json_t *chunk,
                         hp_anth_out_write w, void *ud, hp_errbuf *eb)
{
    const json_t *choices = json_object_get(chunk, "choices");
    if (!json_is_object(chunk) || !json_is_array(choices))
        return hp_errf(eb, HP_ERR_FORMAT,
                       "openai chunk: not an object with a choices array");
    if (s->finished)
        return HP_OK;
    const json_t *u = json_object_get(chunk, "usage");
    if (json_is_object(u)) {
        s->prompt = gwj_int(u, "prompt_tokens", s->prompt);
        s->completion = gwj_int(u, "completion_tokens", s->completion);
        s->cached = cached_of(u);
        s->have_usage = true;
    }
    if (!start(s, chunk, w, ud))
        return gwj_oom(eb);
    size_t i;
    const json_t *c;
    json_array_foreach(choices, i, c) {
        /* One message per stream: choices other than 0 (n > 1) have no
         * place in it. */
        if (gwj_int(c, "index", 0) != 0)
            continue;
        const json_t *d = json_object_get(c, "delta");
        const json_t *text = json_object_get(d, "content");
        if (!json_is_string(text))
            text = json_object_get(d, "refusal");
        if (json_is_string(text) && !text_delta(s, text, w, ud))
            return gwj_oom(eb);
        const json_t *calls = json_object_get(d, "tool_calls");
        size_t k;
        const json_t *tc;
        json_array_foreach(calls, k, tc) {
            if (json_is_object(tc) && !tool_delta(s, tc, k, w, ud))
                return gwj_oom(eb);
        }
        const char *fr = gwj_str(c, "finish_reason");
        if (fr)
            s->stop = stop_reason(fr);
    }
    return HP_OK;
}

void hp_anth_out_finish(hp_anth_out *s, hp_anth_out_write w, void *ud)
{
    if (s->finished)
        return;
    s->finished = true;
    if (!start(s, NULL, w, ud) || !close_block(s, w, ud))
        return;
    const char *reason = s->stop ? s->stop : "end_turn";
    if (s->tool_index >= 0 && strcmp(reason, "end_turn") == 0)
        reason = "tool_use"; /* as in hp_anth_in_response */
    json_t *usage = json_pack("{s:I}", "output_tokens",
                              (json_int_t)s->completion);
    if (usage && s->have_usage) {
        int64_t cached = s->cached < 0 ? 0 : s->cached;
        if (cached > s->prompt)
            cached = s->prompt;
        if (!gwj_set(usage, "input_tokens", json_integer(s->prompt - cached)) ||
            !gwj_set(usage, "cache_read_input_tokens", json_integer(cached))) {
            json_decref(usage);
            return;
        }
    }
    if (!usage)
        return;
    json_t *md = json_pack("{s:s, s:{s:s, s:n}, s:o}", "type", "message_delta",
                           "delta", "stop_reason", reason, "stop_sequence",
                           "usage", usage);
    if (emit(w, ud, "message_delta", md))
        emit(w, ud, "message_stop", json_pack("{s:s}", "type", "message_stop"));
}

void hp_anth_out_error(hp_anth_out *s, const char *message,
                       hp_anth_out_write w, void *ud)
{
    if (s->finished)
        return;
    s->finished = true;
    json_t *m = json_string(message && *message ? message : "stream failed");
    if (!m)
        m = json_string("stream failed"); /* message was not UTF-8 */
    emit(w, ud, "error",
         json_pack("{s:s, s:{s:s, s:o}}", "type", "error", "error", "type",
                   "api_error", "message", m));
}
