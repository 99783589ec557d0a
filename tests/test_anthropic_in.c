/* test_anthropic_in.c: Messages API clients over OpenAI-speaking routes
 * (src/gateway/anthropic_in.c).
 *
 * Requests: system as a string or blocks, text blocks joined, a tool_use /
 * tool_result round, stop_sequences, tools and tool_choice, stream asking
 * for usage, and refusals that name the field. Responses: text, tool_use
 * with parsed (or unparseable) arguments, finish reasons, usage with
 * cached tokens. Streams: realistic OpenAI chunk sequences give exactly
 * the Messages event sequence, event by event. Errors: per status and for
 * garbage. Round trip: anthropic.c's forward mapping undoes this one.
 * Random input never crashes any of it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/anthropic.h"
#include "gateway/anthropic_in.h"

/* Parse a JSON literal of the test (must be valid). */
static json_t *J(const char *s)
{
    json_error_t err;
    json_t *v = json_loads(s, JSON_DECODE_ANY, &err);
    if (!v)
        fail_msg("bad test JSON: %s: %s", err.text, s);
    return v;
}

/* got equals the JSON text `expect` (key order ignored). Takes got. */
static void assert_json(json_t *got, const char *expect)
{
    json_t *e = J(expect);
    if (!json_equal(got, e)) {
        char *g = json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
        char *x = json_dumps(e, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
        fprintf(stderr, "got:    %s\nexpect: %s\n", g, x);
        free(g);
        free(x);
        fail_msg("JSON mismatch");
    }
    json_decref(e);
    json_decref(got);
}

static json_t *req_ok(const char *anth)
{
    json_t *in = J(anth);
    json_t *out = NULL;
    hp_errbuf eb = {{0}};
    if (hp_anth_in_request(in, &out, &eb) != HP_OK)
        fail_msg("request refused: %s", eb.msg);
    json_decref(in);
    return out;
}

/* Expect HP_ERR_INVALID with a message starting with prefix. */
static void req_bad(const char *anth, const char *prefix)
{
    json_t *in = J(anth);
    json_t *out = (json_t *)1;
    hp_errbuf eb = {{0}};
    assert_int_equal(hp_anth_in_request(in, &out, &eb), HP_ERR_INVALID);
    assert_null(out);
    if (strncmp(eb.msg, prefix, strlen(prefix)) != 0)
        fail_msg("error '%s' does not start with '%s'", eb.msg, prefix);
    json_decref(in);
}

#define HEAD "\"model\":\"m\",\"max_tokens\":64,"

/* ---- requests ------------------------------------------------------- */

/* ain_request_basic: a string system becomes the first system message;
 * sampling and stop_sequences carry over; top_k and metadata are dropped;
 * no stream fields unless streaming. */
static void ain_request_basic(void **state)
{
    (void)state;
    assert_json(req_ok("{" HEAD "\"system\":\"be brief\","
                       "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                       "\"temperature\":0.5,\"top_p\":0.9,\"top_k\":40,"
                       "\"stop_sequences\":[\"END\",\"##\"],"
                       "\"metadata\":{\"user_id\":\"u1\"},\"stream\":false}"),
                "{\"model\":\"m\",\"max_tokens\":64,\"messages\":["
                "{\"role\":\"system\",\"content\":\"be brief\"},"
                "{\"role\":\"user\",\"content\":\"hi\"}],"
                "\"temperature\":0.5,\"top_p\":0.9,\"stop\":[\"END\",\"##\"]}");
    /* Empty stop_sequences and a null system are simply absent. */
    assert_json(req_ok("{" HEAD "\"system\":null,\"stop_sequences\":[],"
                       "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"),
                "{\"model\":\"m\",\"max_tokens\":64,\"messages\":["
                "{\"role\":\"user\",\"content\":\"hi\"}]}");
}

/* ain_request_system_blocks: system text blocks are joined by newlines
 * (as hotpath's server joins text parts); cache_control is dropped. */
static void ain_request_system_blocks(void **state)
{
    (void)state;
    assert_json(req_ok("{" HEAD "\"system\":[{\"type\":\"text\",\"text\":\"one\"},"
                       "{\"type\":\"text\",\"text\":\"two\",\"cache_control\":"
                       "{\"type\":\"ephemeral\"}}],"
                       "\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}"),
                "{\"model\":\"m\",\"max_tokens\":64,\"messages\":["
                "{\"role\":\"system\",\"content\":\"one\\ntwo\"},"
                "{\"role\":\"user\",\"content\":\"q\"}]}");
    req_bad("{" HEAD "\"system\":[{\"type\":\"text\",\"text\":\"a\"},"
            "{\"type\":\"image\",\"source\":{}}],"
            "\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}",
            "system[1].type: image blocks are not supported");
    req_bad("{" HEAD "\"system\":5,"
            "\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}",
            "system: must be");
}

/* ain_request_text_blocks_joined: a turn's text blocks become one string
 * content; an empty block array is kept as an empty turn. */
static void ain_request_text_blocks_joined(void **state)
{
    (void)state;
    assert_json(req_ok("{" HEAD "\"messages\":[{\"role\":\"user\",\"content\":["
                       "{\"type\":\"text\",\"text\":\"<ctx>x</ctx>\"},"
                       "{\"type\":\"text\",\"text\":\"question\"}]},"
                       "{\"role\":\"assistant\",\"content\":["
                       "{\"type\":\"thinking\",\"thinking\":\"hm\",\"signature\":\"s\"},"
                       "{\"type\":\"text\",\"text\":\"ans\"},"
                       "{\"type\":\"text\",\"text\":\"wer\"}]},"
                       "{\"role\":\"user\",\"content\":[]}]}"),
                "{\"model\":\"m\",\"max_tokens\":64,\"messages\":["
                "{\"role\":\"user\",\"content\":\"<ctx>x</ctx>\\nquestion\"},"
                "{\"role\":\"assistant\",\"content\":\"ans\\nwer\"},"
                "{\"role\":\"user\",\"content\":\"\"}]}");
}

/* ain_request_tool_round: tool_use blocks become tool_calls with input
 * serialised; tool_result blocks become tool messages placed before the
 * user turn's remaining text; result blocks are joined. */
static void ain_request_tool_round(void **state)
{
    (void)state;
    json_t *r = req_ok(
        "{" HEAD "\"messages\":["
        "{\"role\":\"user\",\"content\":\"weather in Paris and Rome?\"},"
        "{\"role\":\"assistant\",\"content\":["
        "{\"type\":\"text\",\"text\":\"Checking.\"},"
        "{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"weather\","
        "\"input\":{\"city\":\"Paris\",\"units\":[\"c\"]}},"
        "{\"type\":\"tool_use\",\"id\":\"toolu_2\",\"name\":\"weather\","
        "\"input\":{\"city\":\"Rome\"}}]},"
        "{\"role\":\"user\",\"content\":["
        "{\"type\":\"text\",\"text\":\"thanks\"},"
        "{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_1\",\"content\":\"18C\"},"
        "{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_2\",\"is_error\":true,"
        "\"content\":[{\"type\":\"text\",\"text\":\"down\"},"
        "{\"type\":\"text\",\"text\":\"retry\"}]}]},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\","
        "\"id\":\"toolu_3\",\"name\":\"noargs\",\"input\":{}}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\","
        "\"tool_use_id\":\"toolu_3\"}]}]}");
    assert_json(r,
        "{\"model\":\"m\",\"max_tokens\":64,\"messages\":["
        "{\"role\":\"user\",\"content\":\"weather in Paris and Rome?\"},"
        "{\"role\":\"assistant\",\"content\":\"Checking.\",\"tool_calls\":["
        "{\"id\":\"toolu_1\",\"type\":\"function\",\"function\":{\"name\":"
        "\"weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\",\\\"units\\\":[\\\"c\\\"]}\"}},"
        "{\"id\":\"toolu_2\",\"type\":\"function\",\"function\":{\"name\":"
        "\"weather\",\"arguments\":\"{\\\"city\\\":\\\"Rome\\\"}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"toolu_1\",\"content\":\"18C\"},"
        "{\"role\":\"tool\",\"tool_call_id\":\"toolu_2\",\"content\":\"down\\nretry\"},"
        "{\"role\":\"user\",\"content\":\"thanks\"},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":["
        "{\"id\":\"toolu_3\",\"type\":\"function\",\"function\":{\"name\":"
        "\"noargs\",\"arguments\":\"{}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"toolu_3\",\"content\":\"\"}]}");
}

/* ain_request_tools: input_schema -> parameters (a missing schema is an
 * empty object schema); each tool_choice kind; disable_parallel_tool_use;
 * tool_choice without tools is dropped; server tools are refused. */
static void ain_request_tools(void **state)
{
    (void)state;
    const char *msgs = "\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],";
    char buf[1024];
    snprintf(buf, sizeof buf,
             "{" HEAD "%s\"tools\":[{\"name\":\"get\",\"description\":\"fetch\","
             "\"input_schema\":{\"type\":\"object\",\"properties\":{\"u\":"
             "{\"type\":\"string\"}},\"required\":[\"u\"]}},"
             "{\"name\":\"bare\",\"type\":\"custom\"}],"
             "\"tool_choice\":{\"type\":\"tool\",\"name\":\"get\","
             "\"disable_parallel_tool_use\":true}}", msgs);
    assert_json(req_ok(buf),
        "{\"model\":\"m\",\"max_tokens\":64,\"messages\":[{\"role\":\"user\","
        "\"content\":\"q\"}],\"tools\":["
        "{\"type\":\"function\",\"function\":{\"name\":\"get\",\"description\":"
        "\"fetch\",\"parameters\":{\"type\":\"object\",\"properties\":{\"u\":"
        "{\"type\":\"string\"}},\"required\":[\"u\"]}}},"
        "{\"type\":\"function\",\"function\":{\"name\":\"bare\",\"parameters\":"
        "{\"type\":\"object\",\"properties\":{}}}}],"
        "\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"get\"}},"
        "\"parallel_tool_calls\":false}");
    static const char *kinds[][2] = {{"auto", "\"auto\""},
                                     {"any", "\"required\""},
                                     {"none", "\"none\""}};
    for (int k = 0; k < 3; k++) {
        snprintf(buf, sizeof buf,
                 "{" HEAD "%s\"tools\":[{\"name\":\"t\",\"input_schema\":{}}],"
                 "\"tool_choice\":{\"type\":\"%s\"}}", msgs, kinds[k][0]);
        json_t *r = req_ok(buf);
        json_t *want = J(kinds[k][1]);
        assert_true(json_equal(json_object_get(r, "tool_choice"), want));
        json_decref(want);
        json_decref(r);
    }
    snprintf(buf, sizeof buf, "{" HEAD "%s\"tools\":[],"
             "\"tool_choice\":{\"type\":\"auto\"}}", msgs);
    assert_json(req_ok(buf), "{\"model\":\"m\",\"max_tokens\":64,\"messages\":"
                             "[{\"role\":\"user\",\"content\":\"q\"}]}");
    snprintf(buf, sizeof buf, "{" HEAD "%s\"tools\":[{\"type\":"
             "\"web_search_20250305\",\"name\":\"web_search\"}]}", msgs);
    req_bad(buf, "tools[0].type: 'web_search_20250305' tools are not supported");
    snprintf(buf, sizeof buf, "{" HEAD "%s\"tools\":[{\"input_schema\":{}}]}",
             msgs);
    req_bad(buf, "tools[0].name: required");
    snprintf(buf, sizeof buf, "{" HEAD "%s\"tools\":[{\"name\":\"t\"}],"
             "\"tool_choice\":{\"type\":\"tool\"}}", msgs);
    req_bad(buf, "tool_choice.name: required");
    snprintf(buf, sizeof buf, "{" HEAD "%s\"tools\":[{\"name\":\"t\"}],"
             "\"tool_choice\":{\"type\":\"sometimes\"}}", msgs);
    req_bad(buf, "tool_choice.type: unknown value 'sometimes'");
    snprintf(buf, sizeof buf, "{" HEAD "%s\"tools\":{}}", msgs);
    req_bad(buf, "tools: must be an array");
}

/* ain_request_max_tokens: the Messages API requires max_tokens; a missing
 * or non-positive value is refused by name. */
static void ain_request_max_tokens(void **state)
{
    (void)state;
    const char *m = "\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]";
    char buf[256];
    snprintf(buf, sizeof buf, "{\"model\":\"m\",%s}", m);
    req_bad(buf, "max_tokens: required");
    snprintf(buf, sizeof buf, "{\"model\":\"m\",\"max_tokens\":null,%s}", m);
    req_bad(buf, "max_tokens: required");
    snprintf(buf, sizeof buf, "{\"model\":\"m\",\"max_tokens\":0,%s}", m);
    req_bad(buf, "max_tokens: must be a positive integer");
    snprintf(buf, sizeof buf, "{\"model\":\"m\",\"max_tokens\":\"9\",%s}", m);
    req_bad(buf, "max_tokens: must be a positive integer");
}

/* ain_request_refusals: what OpenAI chat cannot carry is refused with the
 * field path, never silently dropped. */
static void ain_request_refusals(void **state)
{
    (void)state;
    req_bad("{" HEAD "\"messages\":[{\"role\":\"user\",\"content\":\"a\"},"
            "{\"role\":\"assistant\",\"content\":\"b\"},"
            "{\"role\":\"user\",\"content\":[{\"type\":\"image\",\"source\":"
            "{\"type\":\"base64\",\"media_type\":\"image/png\",\"data\":\"AA\"}}]}]}",
            "messages[2].content[0].type: image blocks are not supported");
    req_bad("{" HEAD "\"messages\":[{\"role\":\"user\",\"content\":["
            "{\"type\":\"text\",\"text\":\"see\"},{\"type\":\"document\"}]}]}",
            "messages[0].content[1].type: document blocks are not supported");
    req_bad("{" HEAD "\"messages\":[{\"role\":\"user\",\"content\":["
            "{\"type\":\"tool_result\",\"tool_use_id\":\"t\",\"content\":["
            "{\"type\":\"text\",\"text\":\"x\"},{\"type\":\"image\"}]}]}]}",
            "messages[0].content[0].content[1].type: image blocks are not "
            "supported");
    req_bad("{" HEAD "\"messages\":[{\"role\":\"user\",\"content\":["
            "{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"n\",\"input\":{}}]}]}",
            "messages[0].content[0].type: tool_use blocks are not allowed in "
            "user turns");
    req_bad("{" HEAD "\"messages\":[{\"role\":\"assistant\",\"content\":["
            "{\"type\":\"tool_use\",\"name\":\"n\",\"input\":{}}]}]}",
            "messages[0].content[0].id: required");
    req_bad("{" HEAD "\"messages\":[{\"role\":\"user\",\"content\":["
            "{\"type\":\"tool_result\",\"content\":\"x\"}]}]}",
            "messages[0].content[0].tool_use_id: required");
    req_bad("{" HEAD "\"messages\":[{\"role\":\"user\",\"content\":["
            "{\"type\":\"video\"}]}]}",
            "messages[0].content[0].type: unsupported block type 'video'");
    req_bad("{" HEAD "\"messages\":[{\"role\":\"user\",\"content\":["
            "{\"text\":\"x\"}]}]}", "messages[0].content[0].type: required");
    req_bad("{" HEAD "\"messages\":[{\"role\":\"system\",\"content\":\"s\"}]}",
            "messages[0].role: must be 'user' or 'assistant'");
    req_bad("{" HEAD "\"messages\":[{\"role\":\"user\"}]}",
            "messages[0].content: must be");
    req_bad("{" HEAD "\"messages\":[]}", "messages: must be a non-empty array");
    req_bad("{\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":"
            "\"q\"}]}", "model: required");
    req_bad("{" HEAD "\"temperature\":\"hot\",\"messages\":[{\"role\":\"user\","
            "\"content\":\"q\"}]}", "temperature: must be a number");
    req_bad("{" HEAD "\"stop_sequences\":[\"a\",1],\"messages\":[{\"role\":"
            "\"user\",\"content\":\"q\"}]}", "stop_sequences[1]: must be a string");
    req_bad("[1]", "body: must be a JSON object");
}

/* ain_request_stream: stream asks the target for usage, since every
 * Messages stream reports it. */
static void ain_request_stream(void **state)
{
    (void)state;
    assert_json(req_ok("{" HEAD "\"stream\":true,\"messages\":[{\"role\":"
                       "\"user\",\"content\":\"hi\"}]}"),
                "{\"model\":\"m\",\"max_tokens\":64,\"messages\":[{\"role\":"
                "\"user\",\"content\":\"hi\"}],\"stream\":true,"
                "\"stream_options\":{\"include_usage\":true}}");
}

/* ---- responses ------------------------------------------------------ */

static json_t *resp_ok(const char *oai, const char *model)
{
    json_t *in = J(oai);
    json_t *out = NULL;
    hp_errbuf eb = {{0}};
    if (hp_anth_in_response(in, model, &out, &eb) != HP_OK)
        fail_msg("response refused: %s", eb.msg);
    json_decref(in);
    return out;
}

/* ain_response_text: a plain completion; the model reported is the
 * client's; usage splits cached prompt tokens out. */
static void ain_response_text(void **state)
{
    (void)state;
    assert_json(resp_ok("{\"id\":\"chatcmpl-9\",\"object\":\"chat.completion\","
                        "\"created\":1,\"model\":\"upstream-x\",\"choices\":[{"
                        "\"index\":0,\"message\":{\"role\":\"assistant\","
                        "\"content\":\"Hello there\"},\"finish_reason\":\"stop\"}],"
                        "\"usage\":{\"prompt_tokens\":100,\"completion_tokens\":7,"
                        "\"total_tokens\":107,\"prompt_tokens_details\":"
                        "{\"cached_tokens\":64}}}", "claude-local"),
                "{\"id\":\"msg_chatcmpl-9\",\"type\":\"message\",\"role\":"
                "\"assistant\",\"model\":\"claude-local\",\"content\":[{\"type\":"
                "\"text\",\"text\":\"Hello there\"}],\"stop_reason\":\"end_turn\","
                "\"stop_sequence\":null,\"usage\":{\"input_tokens\":36,"
                "\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":64,"
                "\"output_tokens\":7}}");
    /* No usage, no id, no model given: zeros, a fixed id, upstream model. */
    assert_json(resp_ok("{\"model\":\"up\",\"choices\":[{\"message\":{\"content\":"
                        "\"\"},\"finish_reason\":\"length\"}]}", NULL),
                "{\"id\":\"msg_hotpath\",\"type\":\"message\",\"role\":"
                "\"assistant\",\"model\":\"up\",\"content\":[],\"stop_reason\":"
                "\"max_tokens\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":0,"
                "\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,"
                "\"output_tokens\":0}}");
}

/* ain_response_tool_use: text then tool_use blocks, input parsed from the
 * arguments string; unparseable or non-object arguments become {}. */
static void ain_response_tool_use(void **state)
{
    (void)state;
    json_t *r = resp_ok(
        "{\"id\":\"c1\",\"choices\":[{\"message\":{\"role\":\"assistant\","
        "\"content\":\"Let me look.\",\"tool_calls\":["
        "{\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"get\","
        "\"arguments\":\"{\\\"u\\\":\\\"x\\\",\\\"n\\\":[1,2]}\"}},"
        "{\"id\":\"call_b\",\"type\":\"function\",\"function\":{\"name\":\"get\","
        "\"arguments\":\"{\\\"u\\\":\"}},"
        "{\"id\":\"call_c\",\"type\":\"function\",\"function\":{\"name\":\"get\","
        "\"arguments\":\"[1]\"}},"
        "{\"type\":\"function\",\"function\":{\"name\":\"noid\"}}]},"
        "\"finish_reason\":\"tool_calls\"}],\"usage\":{\"prompt_tokens\":5,"
        "\"completion_tokens\":9}}", "m");
    assert_json(r,
        "{\"id\":\"msg_c1\",\"type\":\"message\",\"role\":\"assistant\","
        "\"model\":\"m\",\"content\":["
        "{\"type\":\"text\",\"text\":\"Let me look.\"},"
        "{\"type\":\"tool_use\",\"id\":\"call_a\",\"name\":\"get\",\"input\":"
        "{\"u\":\"x\",\"n\":[1,2]}},"
        "{\"type\":\"tool_use\",\"id\":\"call_b\",\"name\":\"get\",\"input\":{}},"
        "{\"type\":\"tool_use\",\"id\":\"call_c\",\"name\":\"get\",\"input\":{}},"
        "{\"type\":\"tool_use\",\"id\":\"toolu_3\",\"name\":\"noid\",\"input\":{}}],"
        "\"stop_reason\":\"tool_use\",\"stop_sequence\":null,\"usage\":{"
        "\"input_tokens\":5,\"cache_creation_input_tokens\":0,"
        "\"cache_read_input_tokens\":0,\"output_tokens\":9}}");
    /* A server that ends a tool call with "stop" still yields tool_use:
     * Messages clients run tools only on that stop reason. */
    r = resp_ok("{\"choices\":[{\"message\":{\"content\":null,\"tool_calls\":["
                "{\"id\":\"k\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},"
                "\"finish_reason\":\"stop\"}]}", "m");
    assert_string_equal(json_string_value(json_object_get(r, "stop_reason")),
                        "tool_use");
    json_decref(r);
}

/* ain_response_finish_reasons: each OpenAI finish_reason maps to its
 * stop_reason; null and unknown ones are end_turn. */
static void ain_response_finish_reasons(void **state)
{
    (void)state;
    static const char *map[][2] = {
        {"\"stop\"", "end_turn"},          {"\"length\"", "max_tokens"},
        {"\"tool_calls\"", "tool_use"},    {"\"function_call\"", "tool_use"},
        {"\"content_filter\"", "refusal"}, {"null", "end_turn"},
        {"\"eos\"", "end_turn"}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        char buf[256];
        snprintf(buf, sizeof buf, "{\"choices\":[{\"message\":{\"content\":"
                 "\"x\"},\"finish_reason\":%s}]}", map[i][0]);
        json_t *r = resp_ok(buf, "m");
        assert_string_equal(json_string_value(json_object_get(r, "stop_reason")),
                            map[i][1]);
        json_decref(r);
    }
}

/* ain_response_not_completion: what is not a chat.completion is a format
 * error and no result. */
static void ain_response_not_completion(void **state)
{
    (void)state;
    static const char *bad[] = {"[]", "{}", "{\"choices\":[]}",
                                "{\"choices\":[{\"delta\":{}}]}",
                                "{\"error\":{\"message\":\"x\"}}", "7"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *in = J(bad[i]);
        json_t *out = (json_t *)1;
        hp_errbuf eb = {{0}};
        assert_int_equal(hp_anth_in_response(in, "m", &out, &eb),
                         HP_ERR_FORMAT);
        assert_null(out);
        json_decref(in);
    }
}

/* ---- errors --------------------------------------------------------- */

static void err_is(int status, const char *body, const char *type,
                   const char *message)
{
    json_t *e = hp_anth_in_error(body, body ? strlen(body) : 0, status);
    char expect[512];
    snprintf(expect, sizeof expect,
             "{\"type\":\"error\",\"error\":{\"type\":\"%s\",\"message\":\"%s\"}}",
             type, message);
    assert_json(e, expect);
}

/* ain_error_bodies: OpenAI error bodies keep their message and get
 * Anthropic's type for the status; garbage says what came back. */
static void ain_error_bodies(void **state)
{
    (void)state;
    const char *oe = "{\"error\":{\"message\":\"bad thing\",\"type\":"
                     "\"invalid_request_error\",\"param\":null,\"code\":null}}";
    err_is(400, oe, "invalid_request_error", "bad thing");
    err_is(401, oe, "authentication_error", "bad thing");
    err_is(403, oe, "permission_error", "bad thing");
    err_is(404, oe, "not_found_error", "bad thing");
    err_is(413, oe, "request_too_large", "bad thing");
    err_is(429, oe, "rate_limit_error", "bad thing");
    err_is(503, oe, "overloaded_error", "bad thing");
    err_is(529, oe, "overloaded_error", "bad thing");
    err_is(500, oe, "api_error", "bad thing");
    err_is(502, "{\"error\":\"proxy says no\"}", "api_error", "proxy says no");
    err_is(502, "<html>Bad Gateway</html>", "api_error",
           "upstream error (HTTP 502): <html>Bad Gateway</html>");
    err_is(504, NULL, "api_error", "upstream error (HTTP 504)");
    err_is(500, "{\"error\":{\"message\":\"\"}}", "api_error",
           "upstream error (HTTP 500): {\\\"error\\\":{\\\"message\\\":\\\"\\\"}}");
    /* Binary garbage: no snippet, still a valid body. */
    const char bin[] = {(char)0xff, (char)0xfe, 0x01, (char)0x80};
    json_t *e = hp_anth_in_error(bin, sizeof bin, 418);
    assert_json(e, "{\"type\":\"error\",\"error\":{\"type\":\"api_error\","
                   "\"message\":\"upstream error (HTTP 418)\"}}");
}

/* ---- streaming ------------------------------------------------------ */

typedef struct sink {
    char *buf;
    size_t len;
    int writes;
} sink;

static void on_write(const char *text, size_t len, void *ud)
{
    sink *k = ud;
    k->buf = realloc(k->buf, k->len + len + 1);
    assert_non_null(k->buf);
    memcpy(k->buf + k->len, text, len);
    k->len += len;
    k->buf[k->len] = '\0';
    k->writes++;
}

static void drop_write(const char *text, size_t len, void *ud)
{
    (void)text;
    (void)len;
    (void)ud;
}

static void feed(hp_anth_out *s, sink *k, const char *chunk)
{
    json_t *c = J(chunk);
    hp_errbuf eb = {{0}};
    if (hp_anth_out_chunk(s, c, on_write, k, &eb) != HP_OK)
        fail_msg("chunk refused: %s: %s", eb.msg, chunk);
    json_decref(c);
}

/* The written text equals the expected events, compared one by one; each
 * event is written in one call and its data's type is its name. */
static void assert_events(sink *k, const char *const *expect, size_t n)
{
    const char *p = k->buf ? k->buf : "";
    for (size_t i = 0; i < n; i++) {
        const char *end = strstr(p, "\n\n");
        if (!end)
            fail_msg("event %zu missing; expected %s", i, expect[i]);
        size_t el = (size_t)(end - p);
        if (strlen(expect[i]) != el || memcmp(p, expect[i], el) != 0)
            fail_msg("event %zu:\n got:    %.*s\n expect: %s", i, (int)el, p,
                     expect[i]);
        const char *nl = memchr(p, '\n', el);
        assert_non_null(nl);
        assert_memory_equal(nl + 1, "data: ", 6);
        json_error_t jerr;
        json_t *d = json_loadb(nl + 7, (size_t)(end - nl - 7), 0, &jerr);
        assert_non_null(d);
        size_t nl_len = (size_t)(nl - p) - 7; /* after "event: " */
        const char *type = json_string_value(json_object_get(d, "type"));
        assert_non_null(type);
        assert_int_equal(strlen(type), nl_len);
        assert_memory_equal(type, p + 7, nl_len);
        json_decref(d);
        p = end + 2;
    }
    if (*p)
        fail_msg("extra text after the expected events: %s", p);
    assert_int_equal(k->writes, (int)n);
}

#define CH(delta, finish)                                                      \
    "{\"id\":\"chatcmpl-7\",\"object\":\"chat.completion.chunk\",\"created\":1,"  \
    "\"model\":\"up\",\"choices\":[{\"index\":0,\"delta\":" delta                \
    ",\"logprobs\":null,\"finish_reason\":" finish "}],\"usage\":null}"

#define MSG_START(in)                                                          \
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{"      \
    "\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":"    \
    "\"claude-local\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":"    \
    "null,\"usage\":{\"input_tokens\":" in ",\"output_tokens\":0}}}"
#define PING "event: ping\ndata: {\"type\":\"ping\"}"
#define STOP "event: message_stop\ndata: {\"type\":\"message_stop\"}"

/* ain_stream_full: role chunk, text deltas, a tool call split over
 * several chunks, a second call, the finish chunk and the usage chunk
 * (choices []) give exactly the Messages event sequence. */
static void ain_stream_full(void **state)
{
    (void)state;
    hp_anth_out s;
    sink k = {0};
    hp_anth_out_init(&s, "msg_1", "claude-local");
    feed(&s, &k, CH("{\"role\":\"assistant\",\"content\":\"\"}", "null"));
    feed(&s, &k, CH("{\"content\":\"Let me \"}", "null"));
    feed(&s, &k, CH("{\"content\":\"check \\\"x\\\".\"}", "null"));
    feed(&s, &k, CH("{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":"
                    "\"function\",\"function\":{\"name\":\"weather\","
                    "\"arguments\":\"\"}}]}", "null"));
    feed(&s, &k, CH("{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":"
                    "\"{\\\"city\\\":\"}}]}", "null"));
    feed(&s, &k, CH("{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":"
                    "\"\\\"Paris\\\"}\"}}]}", "null"));
    feed(&s, &k, CH("{\"tool_calls\":[{\"index\":1,\"id\":\"call_2\",\"type\":"
                    "\"function\",\"function\":{\"name\":\"time\",\"arguments\":"
                    "\"{}\"}}]}", "null"));
    feed(&s, &k, CH("{}", "\"tool_calls\""));
    feed(&s, &k, "{\"id\":\"chatcmpl-7\",\"object\":\"chat.completion.chunk\","
                 "\"created\":1,\"model\":\"up\",\"choices\":[],\"usage\":{"
                 "\"prompt_tokens\":120,\"completion_tokens\":31,"
                 "\"total_tokens\":151,\"prompt_tokens_details\":"
                 "{\"cached_tokens\":100}}}");
    hp_anth_out_finish(&s, on_write, &k);
    hp_anth_out_finish(&s, on_write, &k); /* idempotent */
    static const char *const expect[] = {
        MSG_START("0"),
        PING,
        "event: content_block_start\ndata: {\"type\":\"content_block_start\","
        "\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\","
        "\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Let me \"}}",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\","
        "\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":"
        "\"check \\\"x\\\".\"}}",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\","
        "\"index\":0}",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\","
        "\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"call_1\","
        "\"name\":\"weather\",\"input\":{}}}",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\","
        "\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":"
        "\"{\\\"city\\\":\"}}",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\","
        "\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":"
        "\"\\\"Paris\\\"}\"}}",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\","
        "\"index\":1}",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\","
        "\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"call_2\","
        "\"name\":\"time\",\"input\":{}}}",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\","
        "\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":"
        "\"{}\"}}",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\","
        "\"index\":2}",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{"
        "\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{"
        "\"output_tokens\":31,\"input_tokens\":20,\"cache_read_input_tokens\":100}}",
        STOP};
    assert_events(&k, expect, sizeof expect / sizeof expect[0]);
    assert_true(s.finished);
    free(k.buf);
}

/* ain_stream_text_only: one text block, finish "length" -> max_tokens;
 * an empty id and model are taken from the first chunk. */
static void ain_stream_text_only(void **state)
{
    (void)state;
    hp_anth_out s;
    sink k = {0};
    hp_anth_out_init(&s, NULL, "");
    feed(&s, &k, CH("{\"role\":\"assistant\"}", "null"));
    feed(&s, &k, CH("{\"content\":\"Bonjour\"}", "null"));
    feed(&s, &k, CH("{\"content\":\"\"}", "\"length\""));
    feed(&s, &k, "{\"id\":\"chatcmpl-7\",\"choices\":[],\"usage\":{"
                 "\"prompt_tokens\":3,\"completion_tokens\":1}}");
    hp_anth_out_finish(&s, on_write, &k);
    static const char *const expect[] = {
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{"
        "\"id\":\"msg_chatcmpl-7\",\"type\":\"message\",\"role\":\"assistant\","
        "\"model\":\"up\",\"content\":[],\"stop_reason\":null,"
        "\"stop_sequence\":null,\"usage\":{\"input_tokens\":0,"
        "\"output_tokens\":0}}}",
        PING,
        "event: content_block_start\ndata: {\"type\":\"content_block_start\","
        "\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\","
        "\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Bonjour\"}}",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\","
        "\"index\":0}",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{"
        "\"stop_reason\":\"max_tokens\",\"stop_sequence\":null},\"usage\":{"
        "\"output_tokens\":1,\"input_tokens\":3,\"cache_read_input_tokens\":0}}",
        STOP};
    assert_events(&k, expect, sizeof expect / sizeof expect[0]);
    free(k.buf);
}

/* ain_stream_finish_without_usage: no usage chunk: message_delta reports
 * output_tokens 0 and no input figures; an upstream that never sends a
 * finish_reason ends with end_turn. A usage-first upstream gets its input
 * count into message_start. An empty stream is still a whole message. */
static void ain_stream_finish_without_usage(void **state)
{
    (void)state;
    hp_anth_out s;
    sink k = {0};
    hp_anth_out_init(&s, "msg_1", "claude-local");
    feed(&s, &k, CH("{\"role\":\"assistant\",\"content\":\"ok\"}", "null"));
    hp_anth_out_finish(&s, on_write, &k);
    static const char *const expect[] = {
        MSG_START("0"),
        PING,
        "event: content_block_start\ndata: {\"type\":\"content_block_start\","
        "\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\","
        "\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"ok\"}}",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\","
        "\"index\":0}",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{"
        "\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{"
        "\"output_tokens\":0}}",
        STOP};
    assert_events(&k, expect, sizeof expect / sizeof expect[0]);
    free(k.buf);

    sink k2 = {0};
    hp_anth_out_init(&s, "msg_1", "claude-local");
    feed(&s, &k2, "{\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}],"
                  "\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":0}}");
    hp_anth_out_finish(&s, on_write, &k2);
    static const char *const expect2[] = {
        MSG_START("9"), PING,
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{"
        "\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{"
        "\"output_tokens\":0,\"input_tokens\":9,\"cache_read_input_tokens\":0}}",
        STOP};
    assert_events(&k2, expect2, sizeof expect2 / sizeof expect2[0]);
    free(k2.buf);

    sink k3 = {0};
    hp_anth_out_init(&s, "msg_1", "claude-local");
    hp_anth_out_finish(&s, on_write, &k3);
    static const char *const expect3[] = {
        MSG_START("0"), PING,
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{"
        "\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{"
        "\"output_tokens\":0}}",
        STOP};
    assert_events(&k3, expect3, sizeof expect3 / sizeof expect3[0]);
    free(k3.buf);
}

/* ain_stream_error_after_partial: a broken stream ends with one error
 * event and nothing else, even if finish is called afterwards; later
 * chunks are ignored. */
static void ain_stream_error_after_partial(void **state)
{
    (void)state;
    hp_anth_out s;
    sink k = {0};
    hp_anth_out_init(&s, "msg_1", "claude-local");
    feed(&s, &k, CH("{\"content\":\"par\"}", "null"));
    hp_anth_out_error(&s, "upstream closed the connection", on_write, &k);
    feed(&s, &k, CH("{\"content\":\"tial\"}", "null"));
    hp_anth_out_finish(&s, on_write, &k);
    hp_anth_out_error(&s, "again", on_write, &k);
    static const char *const expect[] = {
        MSG_START("0"),
        PING,
        "event: content_block_start\ndata: {\"type\":\"content_block_start\","
        "\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\","
        "\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"par\"}}",
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":"
        "\"api_error\",\"message\":\"upstream closed the connection\"}}"};
    assert_events(&k, expect, sizeof expect / sizeof expect[0]);
    free(k.buf);
}

/* ain_stream_bad_chunk: a chunk that is not an object with choices is a
 * format error and writes nothing. */
static void ain_stream_bad_chunk(void **state)
{
    (void)state;
    hp_anth_out s;
    sink k = {0};
    hp_anth_out_init(&s, "msg_1", "m");
    static const char *bad[] = {"[]", "{}", "{\"choices\":{}}", "\"x\"",
                                "{\"error\":{\"message\":\"boom\"}}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *c = J(bad[i]);
        hp_errbuf eb = {{0}};
        assert_int_equal(hp_anth_out_chunk(&s, c, on_write, &k, &eb),
                         HP_ERR_FORMAT);
        json_decref(c);
    }
    assert_int_equal(k.writes, 0);
    assert_false(s.started);
}

/* ---- round trip with anthropic.c ------------------------------------ */

/* ain_round_trip: hp_anth_request(hp_anth_in_request(x)) gives back x's
 * system, messages, tools, tool_choice and stop_sequences for requests in
 * the forms anthropic.c produces. */
static void ain_round_trip(void **state)
{
    (void)state;
    static const char *reqs[] = {
        "{\"model\":\"m\",\"max_tokens\":10,\"system\":\"sys\",\"messages\":["
        "{\"role\":\"user\",\"content\":\"hi\"}],\"stop_sequences\":[\"x\",\"y\"]}",

        "{\"model\":\"m\",\"max_tokens\":10,\"messages\":["
        "{\"role\":\"user\",\"content\":\"weather?\"},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":"
        "\"checking\"},{\"type\":\"tool_use\",\"id\":\"t1\",\"name\":\"w\","
        "\"input\":{\"c\":\"Paris\",\"d\":[1,{\"e\":null}]}}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\","
        "\"tool_use_id\":\"t1\",\"content\":\"18C\"},{\"type\":\"text\","
        "\"text\":\"thanks\"}]}],"
        "\"tools\":[{\"name\":\"w\",\"input_schema\":{\"type\":\"object\","
        "\"properties\":{\"c\":{\"type\":\"string\"}}},\"description\":\"wx\"}],"
        "\"tool_choice\":{\"type\":\"any\"}}",

        "{\"model\":\"m\",\"max_tokens\":10,\"system\":\"s\",\"messages\":["
        "{\"role\":\"user\",\"content\":\"a\"},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":"
        "\"t1\",\"name\":\"f\",\"input\":{}},{\"type\":\"tool_use\",\"id\":"
        "\"t2\",\"name\":\"g\",\"input\":{\"k\":1}}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\","
        "\"tool_use_id\":\"t1\",\"content\":\"r1\"},{\"type\":\"tool_result\","
        "\"tool_use_id\":\"t2\",\"content\":\"r2\"}]},"
        "{\"role\":\"assistant\",\"content\":\"done\"},"
        "{\"role\":\"user\",\"content\":\"ok\"}],"
        "\"tools\":[{\"name\":\"f\",\"input_schema\":{\"type\":\"object\"}},"
        "{\"name\":\"g\",\"input_schema\":{\"type\":\"object\"}}],"
        "\"tool_choice\":{\"type\":\"tool\",\"name\":\"g\"},"
        "\"stop_sequences\":[\"\\n\\n\"]}"};
    static const char *keys[] = {"system", "messages", "tools", "tool_choice",
                                 "stop_sequences", "max_tokens"};
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
        json_t *x = J(reqs[i]);
        json_t *oai = NULL, *back = NULL;
        hp_errbuf eb = {{0}};
        if (hp_anth_in_request(x, &oai, &eb) != HP_OK)
            fail_msg("in: %s", eb.msg);
        if (hp_anth_request(oai, "m", &back, &eb) != HP_OK)
            fail_msg("back: %s", eb.msg);
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
            json_t *a = json_object_get(x, keys[k]);
            json_t *b = json_object_get(back, keys[k]);
            if (!(a == NULL && b == NULL) && !json_equal(a, b)) {
                char *sa = json_dumps(a, JSON_COMPACT | JSON_ENCODE_ANY);
                char *sb = json_dumps(b, JSON_COMPACT | JSON_ENCODE_ANY);
                fprintf(stderr, "req %zu %s\n was: %s\n now: %s\n", i, keys[k],
                        sa ? sa : "(none)", sb ? sb : "(none)");
                free(sa);
                free(sb);
                fail_msg("round trip changed %s", keys[k]);
            }
        }
        json_decref(x);
        json_decref(oai);
        json_decref(back);
    }
}

/* ---- fuzz ----------------------------------------------------------- */

static uint32_t rnd(uint32_t *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 16;
}

/* Corrupt a copy of src: flip, delete or duplicate a few bytes. */
static size_t mutate(const char *src, char *dst, size_t cap, uint32_t *seed)
{
    size_t n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    int edits = 1 + (int)(rnd(seed) % 4);
    for (int e = 0; e < edits && n > 0; e++) {
        size_t at = rnd(seed) % n;
        switch (rnd(seed) % 3) {
        case 0:
            dst[at] = (char)rnd(seed);
            break;
        case 1:
            memmove(dst + at, dst + at + 1, n - at - 1);
            n--;
            break;
        default:
            if (n + 1 < cap) {
                memmove(dst + at + 1, dst + at, n - at);
                n++;
            }
        }
    }
    dst[n] = '\0';
    return n;
}

/* ain_fuzz_no_crash: mutated requests, responses, chunks and error
 * bodies, and raw random bytes, never crash or leak a partial result. */
static void ain_fuzz_no_crash(void **state)
{
    (void)state;
    const char *req_seed =
        "{\"model\":\"m\",\"max_tokens\":5,\"system\":[{\"type\":\"text\","
        "\"text\":\"s\"}],\"messages\":[{\"role\":\"user\",\"content\":\"a\"},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"b\"},"
        "{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\",\"input\":{\"x\":1}}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":"
        "\"t\",\"content\":[{\"type\":\"text\",\"text\":\"r\"}]}]}],"
        "\"tools\":[{\"name\":\"f\",\"input_schema\":{}}],\"tool_choice\":"
        "{\"type\":\"tool\",\"name\":\"f\"},\"stop_sequences\":[\"x\"],"
        "\"stream\":true,\"temperature\":0.2}";
    const char *resp_seed =
        "{\"id\":\"c\",\"choices\":[{\"message\":{\"content\":\"hi\",\"tool_calls\":"
        "[{\"id\":\"k\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":1}\"}}]},"
        "\"finish_reason\":\"tool_calls\"}],\"usage\":{\"prompt_tokens\":4,"
        "\"completion_tokens\":2,\"prompt_tokens_details\":{\"cached_tokens\":9}}}";
    static const char *chunks[] = {
        CH("{\"role\":\"assistant\",\"content\":\"\"}", "null"),
        CH("{\"content\":\"hé\"}", "null"),
        CH("{\"tool_calls\":[{\"index\":0,\"id\":\"c\",\"function\":{\"name\":"
           "\"f\",\"arguments\":\"{\\\"a\"}}]}", "null"),
        CH("{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\":1}\"}}]}",
           "\"tool_calls\""),
        "{\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}"};
    char buf[1024];
    uint32_t seed = 4242;
    for (int iter = 0; iter < 3000; iter++) {
        json_error_t jerr;
        hp_errbuf eb = {{0}};
        size_t n = mutate(req_seed, buf, sizeof buf, &seed);
        json_t *in = json_loadb(buf, n, JSON_DECODE_ANY, &jerr);
        json_t *out = NULL;
        hp_err rc = hp_anth_in_request(in, &out, &eb);
        assert_true((rc == HP_OK) == (out != NULL));
        json_t *back = NULL;
        if (out)
            (void)hp_anth_request(out, "m", &back, &eb);
        json_decref(back);
        json_decref(out);
        json_decref(in);

        n = mutate(resp_seed, buf, sizeof buf, &seed);
        in = json_loadb(buf, n, JSON_DECODE_ANY, &jerr);
        out = NULL;
        rc = hp_anth_in_response(in, rnd(&seed) % 2 ? "m" : NULL, &out, &eb);
        assert_true((rc == HP_OK) == (out != NULL));
        json_decref(out);
        json_decref(in);

        json_t *e = hp_anth_in_error(buf, n, (int)(rnd(&seed) % 600));
        assert_non_null(e);
        json_decref(e);

        hp_anth_out s;
        hp_anth_out_init(&s, rnd(&seed) % 2 ? "msg_x" : NULL, NULL);
        for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
            n = mutate(chunks[c], buf, sizeof buf, &seed);
            in = json_loadb(buf, n, JSON_DECODE_ANY, &jerr);
            (void)hp_anth_out_chunk(&s, in, drop_write, NULL, &eb);
            json_decref(in);
        }
        if (rnd(&seed) % 4 == 0)
            hp_anth_out_error(&s, buf, drop_write, NULL);
        hp_anth_out_finish(&s, drop_write, NULL);

        size_t rl = rnd(&seed) % 64;
        for (size_t i = 0; i < rl; i++)
            buf[i] = (char)rnd(&seed);
        e = hp_anth_in_error(buf, rl, 502);
        assert_non_null(e);
        json_decref(e);
    }
    /* Overlong id and model (multi-byte characters at the cut) still make
     * valid events. */
    char longs[400];
    for (size_t i = 0; i + 2 < sizeof longs; i += 2)
        memcpy(longs + i, "\xc3\xa9", 2);
    longs[sizeof longs - 1] = '\0';
    hp_anth_out s;
    sink k = {0};
    hp_anth_out_init(&s, longs, longs);
    hp_anth_out_finish(&s, on_write, &k);
    assert_non_null(k.buf);
    assert_non_null(strstr(k.buf, "event: message_stop"));
    free(k.buf);
    /* Not UTF-8 at all (starts mid-character): still valid events. */
    sink k2 = {0};
    hp_anth_out_init(&s, "msg_1", longs + 1);
    hp_anth_out_finish(&s, on_write, &k2);
    assert_non_null(k2.buf);
    assert_non_null(strstr(k2.buf, "event: message_stop"));
    free(k2.buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ain_request_basic),
        cmocka_unit_test(ain_request_system_blocks),
        cmocka_unit_test(ain_request_text_blocks_joined),
        cmocka_unit_test(ain_request_tool_round),
        cmocka_unit_test(ain_request_tools),
        cmocka_unit_test(ain_request_max_tokens),
        cmocka_unit_test(ain_request_refusals),
        cmocka_unit_test(ain_request_stream),
        cmocka_unit_test(ain_response_text),
        cmocka_unit_test(ain_response_tool_use),
        cmocka_unit_test(ain_response_finish_reasons),
        cmocka_unit_test(ain_response_not_completion),
        cmocka_unit_test(ain_error_bodies),
        cmocka_unit_test(ain_stream_full),
        cmocka_unit_test(ain_stream_text_only),
        cmocka_unit_test(ain_stream_finish_without_usage),
        cmocka_unit_test(ain_stream_error_after_partial),
        cmocka_unit_test(ain_stream_bad_chunk),
        cmocka_unit_test(ain_round_trip),
        cmocka_unit_test(ain_fuzz_no_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
