/* test_anthropic.c: OpenAI <-> Anthropic Messages translation
 * (src/gateway/anthropic.c).
 *
 * Requests: system hoisting, role alternation, tools and tool results, stop,
 * max_tokens, and refusals that name the field. Responses: text, tool use,
 * usage with cache reads, finish reasons. Errors: Anthropic bodies and
 * garbage both come out in OpenAI's shape. Streams: a real-looking event
 * sequence, run through the SSE parser, gives exactly the expected chunks;
 * malformed data is a format error and an error event is HP_ERR_AGAIN.
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
#include "gateway/sse.h"

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

/* Translate request text; expect success and return the result. */
static json_t *req_ok(const char *oai)
{
    json_t *in = J(oai);
    json_t *out = NULL;
    hp_errbuf eb = {{0}};
    hp_err rc = hp_anth_request(in, "claude-x", &out, &eb);
    if (rc != HP_OK)
        fail_msg("request refused: %s", eb.msg);
    json_decref(in);
    return out;
}

/* Translate request text; expect HP_ERR_INVALID with msg starting with
 * `prefix`. */
static void req_bad(const char *oai, const char *prefix)
{
    json_t *in = J(oai);
    json_t *out = (json_t *)1;
    hp_errbuf eb = {{0}};
    assert_int_equal(hp_anth_request(in, "claude-x", &out, &eb), HP_ERR_INVALID);
    assert_null(out);
    if (strncmp(eb.msg, prefix, strlen(prefix)) != 0)
        fail_msg("error '%s' does not start with '%s'", eb.msg, prefix);
    json_decref(in);
}

/* ---- requests ------------------------------------------------------- */

/* anth_request_basic: a plain chat maps field by field; max_tokens gets
 * the default; a lone text turn is a plain string. */
static void anth_request_basic(void **state)
{
    (void)state;
    assert_json(req_ok("{\"model\":\"chat\",\"messages\":["
                       "{\"role\":\"system\",\"content\":\"Be brief.\"},"
                       "{\"role\":\"user\",\"content\":\"Hi\"}],"
                       "\"temperature\":0.5,\"top_p\":0.9,\"stream\":true,"
                       "\"stream_options\":{\"include_usage\":true},"
                       "\"presence_penalty\":0,\"seed\":3}"),
                "{\"model\":\"claude-x\",\"max_tokens\":4096,"
                "\"system\":\"Be brief.\","
                "\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],"
                "\"temperature\":0.5,\"top_p\":0.9,\"stream\":true}");
    /* stream false is simply not sent; temperature above 1 is clamped */
    assert_json(req_ok("{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],"
                       "\"stream\":false,\"temperature\":1.7}"),
                "{\"model\":\"claude-x\",\"max_tokens\":4096,"
                "\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],"
                "\"temperature\":1.0}");
}

/* anth_request_system_merge: system and developer messages, wherever they
 * are and whatever their shape, become the top-level system in order. */
static void anth_request_system_merge(void **state)
{
    (void)state;
    assert_json(req_ok("{\"messages\":["
                       "{\"role\":\"system\",\"content\":\"A\"},"
                       "{\"role\":\"developer\",\"content\":[{\"type\":\"text\",\"text\":\"B\"},"
                       "{\"type\":\"text\",\"text\":\"C\"}]},"
                       "{\"role\":\"user\",\"content\":\"q\"},"
                       "{\"role\":\"system\",\"content\":\"D\"}]}"),
                "{\"model\":\"claude-x\",\"max_tokens\":4096,"
                "\"system\":[{\"type\":\"text\",\"text\":\"A\"},"
                "{\"type\":\"text\",\"text\":\"B\"},{\"type\":\"text\",\"text\":\"C\"},"
                "{\"type\":\"text\",\"text\":\"D\"}],"
                "\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}");
}

/* anth_request_alternation_merge: consecutive same-role messages become
 * one turn with several blocks; empty messages vanish; a chat opening with
 * an assistant message gets a minimal user turn first. */
static void anth_request_alternation_merge(void **state)
{
    (void)state;
    assert_json(req_ok("{\"messages\":["
                       "{\"role\":\"user\",\"content\":\"a\"},"
                       "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"b\"}]},"
                       "{\"role\":\"assistant\",\"content\":\"c\"},"
                       "{\"role\":\"user\",\"content\":\"\"},"
                       "{\"role\":\"assistant\",\"content\":\"d\"},"
                       "{\"role\":\"user\",\"content\":\"e\"}]}"),
                "{\"model\":\"claude-x\",\"max_tokens\":4096,\"messages\":["
                "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
                "{\"type\":\"text\",\"text\":\"b\"}]},"
                "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"c\"},"
                "{\"type\":\"text\",\"text\":\"d\"}]},"
                "{\"role\":\"user\",\"content\":\"e\"}]}");
    assert_json(req_ok("{\"messages\":["
                       "{\"role\":\"system\",\"content\":\"s\"},"
                       "{\"role\":\"assistant\",\"content\":\"Hello! How can I help?\"},"
                       "{\"role\":\"user\",\"content\":\"q\"}]}"),
                "{\"model\":\"claude-x\",\"max_tokens\":4096,\"system\":\"s\","
                "\"messages\":[{\"role\":\"user\",\"content\":\".\"},"
                "{\"role\":\"assistant\",\"content\":\"Hello! How can I help?\"},"
                "{\"role\":\"user\",\"content\":\"q\"}]}");
}

/* anth_request_tools: function tools become name/description/input_schema;
 * each tool_choice spelling maps; "none" drops the tools; parallel tool
 * calls off is carried. */
static void anth_request_tools(void **state)
{
    (void)state;
    const char *base =
        "{\"messages\":[{\"role\":\"user\",\"content\":\"w?\"}],"
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
        "\"description\":\"Weather now\",\"parameters\":{\"type\":\"object\","
        "\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}}},"
        "{\"type\":\"function\",\"function\":{\"name\":\"noargs\"}}]%s}";
    const char *tools_out =
        "\"tools\":[{\"name\":\"get_weather\",\"description\":\"Weather now\","
        "\"input_schema\":{\"type\":\"object\",\"properties\":{\"city\":"
        "{\"type\":\"string\"}},\"required\":[\"city\"]}},"
        "{\"name\":\"noargs\",\"input_schema\":{\"type\":\"object\",\"properties\":{}}}]";
    const struct {
        const char *extra, *choice;
    } cases[] = {
        {"", NULL},
        {",\"tool_choice\":\"auto\"", "{\"type\":\"auto\"}"},
        {",\"tool_choice\":\"required\"", "{\"type\":\"any\"}"},
        {",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"noargs\"}}",
         "{\"type\":\"tool\",\"name\":\"noargs\"}"},
        {",\"parallel_tool_calls\":false",
         "{\"type\":\"auto\",\"disable_parallel_tool_use\":true}"},
        {",\"tool_choice\":\"required\",\"parallel_tool_calls\":false",
         "{\"type\":\"any\",\"disable_parallel_tool_use\":true}"},
    };
    char in[2048], want[2048];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(in, sizeof in, base, cases[i].extra);
        if (cases[i].choice)
            snprintf(want, sizeof want,
                     "{\"model\":\"claude-x\",\"max_tokens\":4096,\"messages\":"
                     "[{\"role\":\"user\",\"content\":\"w?\"}],%s,"
                     "\"tool_choice\":%s}", tools_out, cases[i].choice);
        else
            snprintf(want, sizeof want,
                     "{\"model\":\"claude-x\",\"max_tokens\":4096,\"messages\":"
                     "[{\"role\":\"user\",\"content\":\"w?\"}],%s}", tools_out);
        assert_json(req_ok(in), want);
    }
    snprintf(in, sizeof in, base, ",\"tool_choice\":\"none\"");
    assert_json(req_ok(in), "{\"model\":\"claude-x\",\"max_tokens\":4096,"
                            "\"messages\":[{\"role\":\"user\",\"content\":\"w?\"}]}");
    snprintf(in, sizeof in, base, ",\"tool_choice\":\"sometimes\"");
    req_bad(in, "tool_choice:");
    req_bad("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
            "\"tools\":[{\"type\":\"code_interpreter\"}]}", "tools[0].type:");
    req_bad("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
            "\"tools\":[{\"type\":\"function\",\"function\":{}}]}",
            "tools[0].function.name:");
}

/* anth_request_tool_results: assistant tool_calls become tool_use blocks
 * with parsed input; tool messages become one user turn of tool_result
 * blocks, placed before any text of that turn. */
static void anth_request_tool_results(void **state)
{
    (void)state;
    assert_json(
        req_ok("{\"messages\":["
               "{\"role\":\"user\",\"content\":\"weather in Paris and Rome?\"},"
               "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":["
               "{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
               "\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}},"
               "{\"id\":\"call_2\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
               "\"arguments\":\"\"}}]},"
               "{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"18C\"},"
               "{\"role\":\"user\",\"content\":\"and be quick\"},"
               "{\"role\":\"tool\",\"tool_call_id\":\"call_2\",\"content\":"
               "[{\"type\":\"text\",\"text\":\"21C\"}]},"
               "{\"role\":\"assistant\",\"content\":\"Let me\",\"tool_calls\":["
               "{\"id\":\"call_3\",\"type\":\"function\",\"function\":{\"name\":\"noop\","
               "\"arguments\":\"{}\"}}]},"
               "{\"role\":\"tool\",\"tool_call_id\":\"call_3\",\"content\":\"\"}]}"),
        "{\"model\":\"claude-x\",\"max_tokens\":4096,\"messages\":["
        "{\"role\":\"user\",\"content\":\"weather in Paris and Rome?\"},"
        "{\"role\":\"assistant\",\"content\":["
        "{\"type\":\"tool_use\",\"id\":\"call_1\",\"name\":\"get_weather\",\"input\":{\"city\":\"Paris\"}},"
        "{\"type\":\"tool_use\",\"id\":\"call_2\",\"name\":\"get_weather\",\"input\":{}}]},"
        "{\"role\":\"user\",\"content\":["
        "{\"type\":\"tool_result\",\"tool_use_id\":\"call_1\",\"content\":\"18C\"},"
        "{\"type\":\"tool_result\",\"tool_use_id\":\"call_2\",\"content\":"
        "[{\"type\":\"text\",\"text\":\"21C\"}]},"
        "{\"type\":\"text\",\"text\":\"and be quick\"}]},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"Let me\"},"
        "{\"type\":\"tool_use\",\"id\":\"call_3\",\"name\":\"noop\",\"input\":{}}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"call_3\"}]}]}");
}

/* anth_request_bad_tool_calls: unparseable or non-object arguments, and a
 * missing id or tool_call_id, are refused naming the field. */
static void anth_request_bad_tool_calls(void **state)
{
    (void)state;
    req_bad("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},"
            "{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c\",\"type\":\"function\","
            "\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":\"}}]}]}",
            "messages[1].tool_calls[0].function.arguments:");
    req_bad("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},"
            "{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c\",\"type\":\"function\","
            "\"function\":{\"name\":\"f\",\"arguments\":\"[1,2]\"}}]}]}",
            "messages[1].tool_calls[0].function.arguments:");
    req_bad("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},"
            "{\"role\":\"assistant\",\"tool_calls\":[{\"type\":\"function\","
            "\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}]}",
            "messages[1].tool_calls[0].id:");
    req_bad("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},"
            "{\"role\":\"tool\",\"content\":\"r\"}]}",
            "messages[1].tool_call_id:");
}

/* anth_request_stop: a string and an array both become stop_sequences;
 * empty strings are dropped; a non-string entry is refused. */
static void anth_request_stop(void **state)
{
    (void)state;
    assert_json(req_ok("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                       "\"stop\":\"END\"}"),
                "{\"model\":\"claude-x\",\"max_tokens\":4096,\"messages\":"
                "[{\"role\":\"user\",\"content\":\"x\"}],\"stop_sequences\":[\"END\"]}");
    assert_json(req_ok("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                       "\"stop\":[\"a\",\"\",\"b\"]}"),
                "{\"model\":\"claude-x\",\"max_tokens\":4096,\"messages\":"
                "[{\"role\":\"user\",\"content\":\"x\"}],\"stop_sequences\":[\"a\",\"b\"]}");
    assert_json(req_ok("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                       "\"stop\":null}"),
                "{\"model\":\"claude-x\",\"max_tokens\":4096,\"messages\":"
                "[{\"role\":\"user\",\"content\":\"x\"}]}");
    req_bad("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
            "\"stop\":[\"a\",3]}", "stop[1]:");
    req_bad("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
            "\"stop\":5}", "stop:");
}

/* anth_request_max_tokens: default, max_tokens, max_completion_tokens
 * (wins over max_tokens), and bad values naming the field. */
static void anth_request_max_tokens(void **state)
{
    (void)state;
    const char *m = "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]";
    char in[256];
    const struct {
        const char *extra;
        json_int_t want;
    } cases[] = {
        {"", HP_ANTH_DEFAULT_MAX_TOKENS},
        {",\"max_tokens\":null", HP_ANTH_DEFAULT_MAX_TOKENS},
        {",\"max_tokens\":100", 100},
        {",\"max_completion_tokens\":50", 50},
        {",\"max_tokens\":100,\"max_completion_tokens\":50", 50},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(in, sizeof in, "{%s%s}", m, cases[i].extra);
        json_t *out = req_ok(in);
        assert_int_equal(json_integer_value(json_object_get(out, "max_tokens")),
                         cases[i].want);
        json_decref(out);
    }
    snprintf(in, sizeof in, "{%s,\"max_tokens\":0}", m);
    req_bad(in, "max_tokens:");
    snprintf(in, sizeof in, "{%s,\"max_completion_tokens\":\"9\"}", m);
    req_bad(in, "max_completion_tokens:");
}

/* anth_request_refusals: n > 1, image/audio parts, logprobs, JSON mode,
 * unknown roles and broken bodies are refused with the field named. */
static void anth_request_refusals(void **state)
{
    (void)state;
    req_bad("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":2}", "n:");
    json_t *ok = req_ok("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":1}");
    json_decref(ok);
    req_bad("{\"messages\":[{\"role\":\"system\",\"content\":\"s\"},"
            "{\"role\":\"user\",\"content\":\"a\"},"
            "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"look\"},"
            "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,AA\"}}]}]}",
            "messages[2].content: image parts are not supported for anthropic upstreams");
    req_bad("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_audio\"}]}]}",
            "messages[0].content: input_audio parts");
    req_bad("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"video\"}]}]}",
            "messages[0].content[0].type:");
    req_bad("{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"x\"}]}]}",
            "messages[0].content[0].type:");
    req_bad("{\"messages\":[{\"role\":\"user\",\"content\":7}]}",
            "messages[0].content:");
    req_bad("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logprobs\":true}",
            "logprobs:");
    req_bad("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
            "\"response_format\":{\"type\":\"json_object\"}}", "response_format:");
    req_bad("{\"messages\":[{\"role\":\"function\",\"content\":\"x\"}]}",
            "messages[0].role:");
    req_bad("{\"messages\":[{\"content\":\"x\"}]}", "messages[0].role:");
    req_bad("{\"messages\":[]}", "messages:");
    req_bad("{\"messages\":[{\"role\":\"system\",\"content\":\"only\"}]}", "messages:");
    req_bad("{}", "messages:");
    req_bad("[1]", "body:");
    req_bad("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
            "\"temperature\":-1}", "temperature:");
    req_bad("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
            "\"top_p\":2}", "top_p:");
}

/* ---- responses ------------------------------------------------------ */

/* anth_response_text: text blocks join; usage counts cache reads and
 * writes as prompt tokens and reports reads as cached. */
static void anth_response_text(void **state)
{
    (void)state;
    json_t *a = J("{\"id\":\"msg_01\",\"type\":\"message\",\"role\":\"assistant\","
                  "\"model\":\"claude-x\",\"content\":[{\"type\":\"text\",\"text\":\"Hello\"},"
                  "{\"type\":\"text\",\"text\":\", world\"}],\"stop_reason\":\"end_turn\","
                  "\"stop_sequence\":null,\"usage\":{\"input_tokens\":10,"
                  "\"cache_read_input_tokens\":100,\"cache_creation_input_tokens\":5,"
                  "\"output_tokens\":7}}");
    json_t *out = NULL;
    hp_errbuf eb = {{0}};
    assert_int_equal(hp_anth_response(a, "chatcmpl-1", 1700000000, "chat", &out, &eb),
                     HP_OK);
    assert_json(out,
                "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"created\":1700000000,"
                "\"model\":\"chat\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                "\"content\":\"Hello, world\"},\"logprobs\":null,\"finish_reason\":\"stop\"}],"
                "\"usage\":{\"prompt_tokens\":115,\"completion_tokens\":7,\"total_tokens\":122,"
                "\"prompt_tokens_details\":{\"cached_tokens\":100}}}");
    json_decref(a);
}

/* anth_response_tool_use: tool_use blocks become tool_calls with the input
 * serialized as the arguments string; no text gives content null. */
static void anth_response_tool_use(void **state)
{
    (void)state;
    json_t *a = J("{\"id\":\"msg_02\",\"type\":\"message\",\"role\":\"assistant\","
                  "\"content\":[{\"type\":\"thinking\",\"thinking\":\"hmm\",\"signature\":\"s\"},"
                  "{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"get_weather\","
                  "\"input\":{\"city\":\"Paris\",\"days\":2}}],\"stop_reason\":\"tool_use\","
                  "\"usage\":{\"input_tokens\":20,\"output_tokens\":9}}");
    json_t *out = NULL;
    hp_errbuf eb = {{0}};
    assert_int_equal(hp_anth_response(a, "c2", 5, "chat", &out, &eb), HP_OK);
    json_t *msg = json_object_get(json_array_get(json_object_get(out, "choices"), 0),
                                  "message");
    const char *args = json_string_value(json_object_get(json_object_get(
        json_array_get(json_object_get(msg, "tool_calls"), 0), "function"),
        "arguments"));
    assert_non_null(args);
    assert_json(J(args), "{\"city\":\"Paris\",\"days\":2}");
    assert_json(out,
                "{\"id\":\"c2\",\"object\":\"chat.completion\",\"created\":5,\"model\":\"chat\","
                "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":null,"
                "\"tool_calls\":[{\"id\":\"toolu_1\",\"type\":\"function\",\"function\":"
                "{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\",\\\"days\\\":2}\"}}]},"
                "\"logprobs\":null,\"finish_reason\":\"tool_calls\"}],"
                "\"usage\":{\"prompt_tokens\":20,\"completion_tokens\":9,\"total_tokens\":29,"
                "\"prompt_tokens_details\":{\"cached_tokens\":0}}}");
    json_decref(a);
}

/* anth_response_not_message: anything but a message object is a format
 * error. */
static void anth_response_not_message(void **state)
{
    (void)state;
    const char *bad[] = {"[]", "{\"type\":\"error\",\"error\":{}}",
                         "{\"type\":\"message\"}", "{\"content\":\"x\"}", "3",
                         "{\"type\":\"message\",\"content\":[{\"type\":\"tool_use\"}]}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *a = J(bad[i]);
        json_t *out = (json_t *)1;
        hp_errbuf eb = {{0}};
        assert_int_equal(hp_anth_response(a, "x", 0, "m", &out, &eb), HP_ERR_FORMAT);
        assert_null(out);
        assert_true(eb.msg[0] != '\0');
        json_decref(a);
    }
}

/* anth_finish_reason_map: every documented stop_reason, NULL and unknown. */
static void anth_finish_reason_map(void **state)
{
    (void)state;
    assert_string_equal(hp_anth_finish_reason("end_turn"), "stop");
    assert_string_equal(hp_anth_finish_reason("stop_sequence"), "stop");
    assert_string_equal(hp_anth_finish_reason("max_tokens"), "length");
    assert_string_equal(hp_anth_finish_reason("tool_use"), "tool_calls");
    assert_string_equal(hp_anth_finish_reason("refusal"), "content_filter");
    assert_string_equal(hp_anth_finish_reason("pause_turn"), "stop");
    assert_string_equal(hp_anth_finish_reason(NULL), "stop");
    assert_string_equal(hp_anth_finish_reason("something_new"), "stop");
}

/* ---- errors --------------------------------------------------------- */

static void error_case(const char *body, int status, const char *expect)
{
    json_t *e = hp_anth_error(body, body ? strlen(body) : 0, status);
    assert_non_null(e);
    assert_json(e, expect);
}

/* anth_error_bodies: Anthropic error JSON keeps its message and maps its
 * type; garbage and empty bodies give a generic error naming the status. */
static void anth_error_bodies(void **state)
{
    (void)state;
    error_case("{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\","
               "\"message\":\"max_tokens: too big\"}}", 400,
               "{\"error\":{\"message\":\"max_tokens: too big\",\"type\":"
               "\"invalid_request_error\",\"param\":null,\"code\":\"invalid_request_error\"}}");
    error_case("{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
               "\"message\":\"Overloaded\"}}", 529,
               "{\"error\":{\"message\":\"Overloaded\",\"type\":\"server_error\","
               "\"param\":null,\"code\":\"overloaded_error\"}}");
    error_case("{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\","
               "\"message\":\"slow down\"}}", 429,
               "{\"error\":{\"message\":\"slow down\",\"type\":\"rate_limit_error\","
               "\"param\":null,\"code\":\"rate_limit_error\"}}");
    error_case("{\"error\":\"bad gateway\"}", 502,
               "{\"error\":{\"message\":\"bad gateway\",\"type\":\"server_error\","
               "\"param\":null,\"code\":null}}");
    error_case("<html>502 Bad Gateway</html>", 502,
               "{\"error\":{\"message\":\"anthropic upstream error (HTTP 502): "
               "<html>502 Bad Gateway</html>\",\"type\":\"server_error\","
               "\"param\":null,\"code\":null}}");
    error_case("", 401,
               "{\"error\":{\"message\":\"anthropic upstream error (HTTP 401)\","
               "\"type\":\"authentication_error\",\"param\":null,\"code\":null}}");
    error_case(NULL, 0,
               "{\"error\":{\"message\":\"anthropic upstream error (HTTP 0)\","
               "\"type\":\"server_error\",\"param\":null,\"code\":null}}");
    error_case("\xff\xfe\x01 binary", 503,
               "{\"error\":{\"message\":\"anthropic upstream error (HTTP 503)\","
               "\"type\":\"server_error\",\"param\":null,\"code\":null}}");
    /* A long body is cut, and a cut inside a UTF-8 character backs off. */
    char big[400];
    memset(big, 'a', sizeof big);
    memcpy(big + 159, "\xc3\xa9", 2); /* é straddles the 160-byte cut */
    json_t *e = hp_anth_error(big, sizeof big, 500);
    const char *m = json_string_value(
        json_object_get(json_object_get(e, "error"), "message"));
    assert_non_null(m);
    assert_int_equal(strlen(m), strlen("anthropic upstream error (HTTP 500): ") + 159);
    json_decref(e);
}

/* ---- streaming ------------------------------------------------------ */

/* Emitted chunks, in order. */
typedef struct sink {
    json_t *chunks;
    hp_anth_stream *st;
    hp_err rc;
    hp_errbuf eb;
} sink;

static void on_chunk(json_t *chunk, void *ud)
{
    sink *k = ud;
    json_array_append_new(k->chunks, chunk);
}

static void drop_chunk(json_t *chunk, void *ud)
{
    (void)ud;
    json_decref(chunk);
}

static int on_sse(const char *event, const char *data, size_t len, void *ud)
{
    sink *k = ud;
    k->rc = hp_anth_stream_event(k->st, event, data, len, on_chunk, k, &k->eb);
    return k->rc != HP_OK;
}

static const char *STREAM =
    "event: message_start\r\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\","
    "\"role\":\"assistant\",\"content\":[],\"model\":\"claude-x\",\"stop_reason\":null,"
    "\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"cache_read_input_tokens\":100,"
    "\"cache_creation_input_tokens\":0,\"output_tokens\":1}}}\r\n\r\n"
    "event: content_block_start\r\n"
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":"
    "{\"type\":\"text\",\"text\":\"\"}}\r\n\r\n"
    "event: ping\r\ndata: {\"type\": \"ping\"}\r\n\r\n"
    "event: content_block_delta\r\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
    "{\"type\":\"text_delta\",\"text\":\"Let me check\"}}\r\n\r\n"
    "event: content_block_delta\r\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
    "{\"type\":\"text_delta\",\"text\":\" the weather.\"}}\r\n\r\n"
    "event: content_block_stop\r\n"
    "data: {\"type\":\"content_block_stop\",\"index\":0}\r\n\r\n"
    "event: content_block_start\r\n"
    "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":"
    "{\"type\":\"tool_use\",\"id\":\"toolu_01\",\"name\":\"get_weather\",\"input\":{}}}\r\n\r\n"
    "event: content_block_delta\r\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":"
    "{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\r\n\r\n"
    "event: content_block_delta\r\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":"
    "{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \"}}\r\n\r\n"
    "event: content_block_delta\r\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":"
    "{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"Paris\\\"}\"}}\r\n\r\n"
    "event: content_block_stop\r\n"
    "data: {\"type\":\"content_block_stop\",\"index\":1}\r\n\r\n"
    "event: content_block_start\r\n"
    "data: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":"
    "{\"type\":\"tool_use\",\"id\":\"toolu_02\",\"name\":\"get_time\",\"input\":{}}}\r\n\r\n"
    "event: content_block_delta\r\n"
    "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":"
    "{\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}}\r\n\r\n"
    "event: content_block_stop\r\n"
    "data: {\"type\":\"content_block_stop\",\"index\":2}\r\n\r\n"
    "event: message_delta\r\n"
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\","
    "\"stop_sequence\":null},\"usage\":{\"output_tokens\":42}}\r\n\r\n"
    "event: message_stop\r\n"
    "data: {\"type\":\"message_stop\"}\r\n\r\n";

#define HEAD "{\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\"," \
             "\"created\":1700000001,\"model\":\"chat\","
#define CH(delta, fin) HEAD "\"choices\":[{\"index\":0,\"delta\":" delta \
                       ",\"logprobs\":null,\"finish_reason\":" fin "}]}"

static const char *EXPECT_CHUNKS[] = {
    CH("{\"role\":\"assistant\",\"content\":\"\"}", "null"),
    CH("{\"content\":\"Let me check\"}", "null"),
    CH("{\"content\":\" the weather.\"}", "null"),
    CH("{\"tool_calls\":[{\"index\":0,\"id\":\"toolu_01\",\"type\":\"function\","
       "\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]}", "null"),
    CH("{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"city\\\": \"}}]}",
       "null"),
    CH("{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"Paris\\\"}\"}}]}",
       "null"),
    CH("{\"tool_calls\":[{\"index\":1,\"id\":\"toolu_02\",\"type\":\"function\","
       "\"function\":{\"name\":\"get_time\",\"arguments\":\"\"}}]}", "null"),
    CH("{\"tool_calls\":[{\"index\":1,\"function\":{\"arguments\":\"{}\"}}]}", "null"),
    CH("{}", "\"tool_calls\""),
    HEAD "\"choices\":[],\"usage\":{\"prompt_tokens\":125,\"completion_tokens\":42,"
         "\"total_tokens\":167,\"prompt_tokens_details\":{\"cached_tokens\":100}}}",
};

/* Run STREAM (or another) through the SSE parser into a translator. */
static void run_stream(const char *text, bool include_usage, sink *k,
                       hp_anth_stream *st)
{
    hp_anth_stream_init(st, "chatcmpl-9", 1700000001, "chat", include_usage);
    memset(k, 0, sizeof *k);
    k->chunks = json_array();
    k->st = st;
    hp_sse p;
    hp_sse_init(&p, on_sse, k);
    hp_err rc = hp_sse_feed(&p, text, strlen(text));
    assert_false(hp_sse_pending(&p));
    hp_sse_free(&p);
    if (rc != HP_OK)
        assert_int_equal(rc, HP_ERR_CANCELLED);
}

/* anth_stream_text_and_tools: the whole event sequence gives exactly the
 * expected chunks: role, text, two tool calls with streamed arguments,
 * finish_reason, then the usage chunk with cache reads. */
static void anth_stream_text_and_tools(void **state)
{
    (void)state;
    sink k;
    hp_anth_stream st;
    run_stream(STREAM, true, &k, &st);
    assert_int_equal(k.rc, HP_OK);
    size_t n = sizeof EXPECT_CHUNKS / sizeof EXPECT_CHUNKS[0];
    assert_int_equal(json_array_size(k.chunks), n);
    for (size_t i = 0; i < n; i++)
        assert_json(json_incref(json_array_get(k.chunks, i)), EXPECT_CHUNKS[i]);
    assert_true(st.done);
    assert_string_equal(st.finish, "tool_calls");
    assert_json(hp_anth_stream_usage(&st),
                "{\"prompt_tokens\":125,\"completion_tokens\":42,\"total_tokens\":167,"
                "\"prompt_tokens_details\":{\"cached_tokens\":100}}");
    /* Events after message_stop change nothing. */
    const char *late = "{\"type\":\"content_block_delta\",\"index\":0,"
                       "\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}";
    assert_int_equal(hp_anth_stream_event(&st, "content_block_delta", late,
                                          strlen(late), on_chunk, &k, &k.eb),
                     HP_OK);
    assert_int_equal(json_array_size(k.chunks), n);
    json_decref(k.chunks);
}

/* anth_stream_without_usage: include_usage off drops only the last chunk;
 * events without an `event:` line are typed by their data. */
static void anth_stream_without_usage(void **state)
{
    (void)state;
    /* Strip every "event: ..." line: the data's "type" names the event. */
    char *s = strdup(STREAM), *w = s;
    for (const char *r = STREAM; *r;) {
        const char *eol = strstr(r, "\r\n");
        size_t l = (size_t)(eol - r) + 2;
        if (strncmp(r, "event:", 6) != 0) {
            memmove(w, r, l);
            w += l;
        }
        r += l;
    }
    *w = '\0';
    sink k;
    hp_anth_stream st;
    run_stream(s, false, &k, &st);
    assert_int_equal(k.rc, HP_OK);
    size_t n = sizeof EXPECT_CHUNKS / sizeof EXPECT_CHUNKS[0] - 1;
    assert_int_equal(json_array_size(k.chunks), n);
    for (size_t i = 0; i < n; i++)
        assert_json(json_incref(json_array_get(k.chunks, i)), EXPECT_CHUNKS[i]);
    json_decref(k.chunks);
    free(s);
}

/* anth_stream_finish_reasons: message_delta's stop_reason maps; a stream
 * ending without message_delta still gets a "stop" finish chunk. */
static void anth_stream_finish_reasons(void **state)
{
    (void)state;
    const char *reasons[][2] = {{"end_turn", "stop"}, {"max_tokens", "length"},
                                {"stop_sequence", "stop"},
                                {"refusal", "content_filter"}};
    for (size_t i = 0; i < 4; i++) {
        char text[512];
        snprintf(text, sizeof text,
                 "event: message_start\ndata: {\"type\":\"message_start\",\"message\":"
                 "{\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n"
                 "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":"
                 "{\"stop_reason\":\"%s\"},\"usage\":{\"output_tokens\":4}}\n\n"
                 "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
                 reasons[i][0]);
        sink k;
        hp_anth_stream st;
        run_stream(text, false, &k, &st);
        assert_int_equal(k.rc, HP_OK);
        assert_int_equal(json_array_size(k.chunks), 2);
        json_t *ch = json_array_get(json_object_get(json_array_get(k.chunks, 1),
                                                    "choices"), 0);
        assert_string_equal(json_string_value(json_object_get(ch, "finish_reason")),
                            reasons[i][1]);
        json_decref(k.chunks);
    }
    sink k;
    hp_anth_stream st;
    run_stream("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n", true,
               &k, &st);
    assert_int_equal(json_array_size(k.chunks), 3);
    assert_json(json_incref(json_array_get(k.chunks, 0)),
                CH("{\"role\":\"assistant\",\"content\":\"\"}", "null"));
    assert_json(json_incref(json_array_get(k.chunks, 1)), CH("{}", "\"stop\""));
    json_decref(k.chunks);
}

/* anth_stream_malformed: data that is not the JSON its event promises is
 * HP_ERR_FORMAT, and nothing is emitted for it. */
static void anth_stream_malformed(void **state)
{
    (void)state;
    const char *cases[][2] = {
        {"message_start", "not json"},
        {"message_start", "[1,2]"},
        {"message_start", "{\"type\":\"message_start\"}"},
        {"message_start", "{\"type\":\"message_stop\"}"},
        {"content_block_start", "{\"type\":\"content_block_start\",\"index\":0}"},
        {"content_block_start", "{\"type\":\"content_block_start\",\"content_block\":"
                                "{\"type\":\"tool_use\",\"name\":\"f\"}}"},
        {"content_block_delta", "{\"type\":\"content_block_delta\",\"delta\":{}}"},
        {"content_block_delta", "{\"type\":\"content_block_delta\",\"delta\":"
                                "{\"type\":\"text_delta\",\"text\":5}}"},
        {"content_block_delta", "{\"type\":\"content_block_delta\",\"delta\":"
                                "{\"type\":\"input_json_delta\",\"partial_json\":\"{\"}}"},
        {"message_delta", "{\"type\":\"message_delta\"}"},
        {"", "{\"index\":0}"},
        {"ping", "{\"type\":\"ping\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hp_anth_stream st;
        hp_anth_stream_init(&st, "c", 1, "m", true);
        sink k = {0};
        k.chunks = json_array();
        hp_errbuf eb = {{0}};
        hp_err rc = hp_anth_stream_event(&st, cases[i][0], cases[i][1],
                                         strlen(cases[i][1]), on_chunk, &k, &eb);
        if (rc != HP_ERR_FORMAT)
            fail_msg("case %zu: got %d", i, (int)rc);
        assert_true(eb.msg[0] != '\0');
        assert_int_equal(json_array_size(k.chunks), 0);
        json_decref(k.chunks);
    }
}

/* anth_stream_error_event: an error event is HP_ERR_AGAIN with the
 * upstream's type and message in eb, even when its data is garbage. */
static void anth_stream_error_event(void **state)
{
    (void)state;
    const char *text =
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{}}\n\n"
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
        "\"message\":\"Overloaded\"}}\n\n"
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    sink k;
    hp_anth_stream st;
    run_stream(text, true, &k, &st);
    assert_int_equal(k.rc, HP_ERR_AGAIN);
    assert_non_null(strstr(k.eb.msg, "overloaded_error"));
    assert_non_null(strstr(k.eb.msg, "Overloaded"));
    assert_int_equal(json_array_size(k.chunks), 1); /* stopped at the error */
    assert_false(st.done);
    json_decref(k.chunks);

    hp_errbuf eb = {{0}};
    assert_int_equal(hp_anth_stream_event(&st, "error", "}{", 2, drop_chunk, NULL, &eb),
                     HP_ERR_AGAIN);
    assert_true(eb.msg[0] != '\0');
    /* Without an event line the data's type says it is an error. */
    const char *bare = "{\"type\":\"error\",\"error\":{\"type\":\"api_error\","
                       "\"message\":\"boom\"}}";
    assert_int_equal(hp_anth_stream_event(&st, "", bare, strlen(bare), drop_chunk,
                                          NULL, &eb),
                     HP_ERR_AGAIN);
    assert_non_null(strstr(eb.msg, "boom"));
}

/* anth_stream_unknown_events: new event and block kinds (thinking) are
 * skipped without output. */
static void anth_stream_unknown_events(void **state)
{
    (void)state;
    const char *text =
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,"
        "\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n"
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
        "\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"hmm\"}}\n\n"
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
        "event: brand_new\ndata: {\"type\":\"brand_new\",\"x\":1}\n\n";
    sink k;
    hp_anth_stream st;
    run_stream(text, true, &k, &st);
    assert_int_equal(k.rc, HP_OK);
    assert_int_equal(json_array_size(k.chunks), 0);
    json_decref(k.chunks);
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

/* anth_fuzz_no_crash: mutated requests, responses, events and error
 * bodies, and raw random bytes, never crash or leak a partial result. */
static void anth_fuzz_no_crash(void **state)
{
    (void)state;
    const char *req_seed =
        "{\"messages\":[{\"role\":\"system\",\"content\":\"s\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"}]},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c\","
        "\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"x\\\":1}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"c\",\"content\":\"r\"}],"
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{}}}],"
        "\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"f\"}},"
        "\"stop\":[\"x\"],\"max_tokens\":5,\"n\":1,\"temperature\":0.2}";
    const char *resp_seed =
        "{\"type\":\"message\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"},"
        "{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\",\"input\":{\"a\":[1]}}],"
        "\"stop_reason\":\"tool_use\",\"usage\":{\"input_tokens\":1,\"output_tokens\":2}}";
    char buf[1024];
    uint32_t seed = 777;
    for (int iter = 0; iter < 4000; iter++) {
        json_error_t jerr;
        hp_errbuf eb = {{0}};
        size_t n = mutate(req_seed, buf, sizeof buf, &seed);
        json_t *in = json_loadb(buf, n, JSON_DECODE_ANY, &jerr);
        json_t *out = NULL;
        hp_err rc = hp_anth_request(in, "m", &out, &eb);
        assert_true((rc == HP_OK) == (out != NULL));
        json_decref(out);
        json_decref(in);

        n = mutate(resp_seed, buf, sizeof buf, &seed);
        in = json_loadb(buf, n, JSON_DECODE_ANY, &jerr);
        out = NULL;
        rc = hp_anth_response(in, "i", 1, "m", &out, &eb);
        assert_true((rc == HP_OK) == (out != NULL));
        json_decref(out);
        json_decref(in);

        json_t *e = hp_anth_error(buf, n, 500);
        assert_non_null(e);
        json_decref(e);

        /* Mutated stream: each event to a fresh-ish translator. */
        hp_anth_stream st;
        hp_anth_stream_init(&st, "i", 1, "m", true);
        n = mutate(STREAM, buf, sizeof buf, &seed);
        sink k = {0};
        k.chunks = json_array();
        k.st = &st;
        hp_sse p;
        hp_sse_init(&p, on_sse, &k);
        (void)hp_sse_feed(&p, buf, n);
        hp_sse_free(&p);
        json_decref(k.chunks);

        /* Raw random bytes as event data under each event name. */
        static const char *names[] = {"message_start", "content_block_start",
                                      "content_block_delta", "content_block_stop",
                                      "message_delta", "message_stop", "ping",
                                      "error", "", "zzz"};
        size_t rl = rnd(&seed) % 64;
        for (size_t i = 0; i < rl; i++)
            buf[i] = (char)rnd(&seed);
        (void)hp_anth_stream_event(&st, names[rnd(&seed) % 10], buf, rl,
                                   drop_chunk, NULL, &eb);
        e = hp_anth_error(buf, rl, (int)(rnd(&seed) % 600));
        assert_non_null(e);
        json_decref(e);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(anth_request_basic),
        cmocka_unit_test(anth_request_system_merge),
        cmocka_unit_test(anth_request_alternation_merge),
        cmocka_unit_test(anth_request_tools),
        cmocka_unit_test(anth_request_tool_results),
        cmocka_unit_test(anth_request_bad_tool_calls),
        cmocka_unit_test(anth_request_stop),
        cmocka_unit_test(anth_request_max_tokens),
        cmocka_unit_test(anth_request_refusals),
        cmocka_unit_test(anth_response_text),
        cmocka_unit_test(anth_response_tool_use),
        cmocka_unit_test(anth_response_not_message),
        cmocka_unit_test(anth_finish_reason_map),
        cmocka_unit_test(anth_error_bodies),
        cmocka_unit_test(anth_stream_text_and_tools),
        cmocka_unit_test(anth_stream_without_usage),
        cmocka_unit_test(anth_stream_finish_reasons),
        cmocka_unit_test(anth_stream_malformed),
        cmocka_unit_test(anth_stream_error_event),
        cmocka_unit_test(anth_stream_unknown_events),
        cmocka_unit_test(anth_fuzz_no_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
