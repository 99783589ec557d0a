/* test_openai_req.c: spec of server/openai_req.c (request parsing and
 * validation). Each case states the behaviour it pins down. Cases that
 * need a vocabulary load stories260K from $HOTPATH_SHARED and skip without
 * it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "model/model.h"
#include "server/openai_req.h"

static const hp_oai_limits LIM = {.model_name = "tiny", .n_vocab = 512};

typedef struct fx {
    hp_arena *a;
    hp_oai_req r;
    hp_oai_error err;
} fx;

static hp_err parse(fx *f, hp_oai_kind kind, const char *body)
{
    hp_arena_free(f->a);
    f->a = hp_arena_new(0);
    memset(&f->err, 0, sizeof f->err);
    return hp_openai_req_parse(kind, body, strlen(body), &LIM, f->a, &f->r,
                               &f->err);
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    *state = f;
    return f ? 0 : -1;
}

static int teardown(void **state)
{
    fx *f = *state;
    hp_arena_free(f->a);
    free(f);
    return 0;
}

/* A rejected body names the field in param and (part of) the range. */
static void expect_400(fx *f, hp_oai_kind kind, const char *body,
                       const char *param, const char *fragment)
{
    hp_err e = parse(f, kind, body);
    if (e == HP_OK)
        fail_msg("accepted: %s", body);
    assert_int_equal(f->err.status, 400);
    assert_string_equal(f->err.type, "invalid_request_error");
    if (strcmp(f->err.param, param) != 0)
        fail_msg("%s: param '%s' != '%s'", body, f->err.param, param);
    if (fragment && !strstr(f->err.message, fragment))
        fail_msg("%s: message '%s' lacks '%s'", body, f->err.message,
                 fragment);
}

static void openai_req_defaults(void **state)
{
    fx *f = *state;
    assert_int_equal(parse(f, HP_OAI_COMPLETIONS, "{\"prompt\":\"hi\"}"),
                     HP_OK);
    assert_string_equal(f->r.model, "tiny");
    assert_string_equal(f->r.prompt, "hi");
    assert_int_equal(f->r.prompt_len, 2);
    assert_false(f->r.has_max_tokens);
    assert_int_equal(f->r.gen.n, 1);
    assert_false(f->r.stream);
    assert_int_equal(f->r.logprobs, -1);
    assert_int_equal(f->r.gen.top_logprobs, -1);
    assert_int_equal(f->r.gen.n_stop, 0);
}

static void openai_req_all_fields(void **state)
{
    fx *f = *state;
    const char *body =
        "{\"model\":\"tiny\",\"prompt\":[\"one\"],\"max_tokens\":7,"
        "\"temperature\":0.5,\"top_p\":0.9,\"top_k\":40,\"min_p\":0.05,"
        "\"frequency_penalty\":1.5,\"presence_penalty\":-1,"
        "\"repeat_penalty\":1.1,\"seed\":-1,\"stop\":[\"a\",\"bb\"],"
        "\"n\":3,\"stream\":true,\"stream_options\":{\"include_usage\":true},"
        "\"logprobs\":2,\"logit_bias\":{\"5\":-100,\"511\":2.5},"
        "\"user\":\"u\",\"unknown_extension\":{\"x\":[1]}}";
    assert_int_equal(parse(f, HP_OAI_COMPLETIONS, body), HP_OK);
    hp_gen_params *g = &f->r.gen;
    assert_string_equal(f->r.prompt, "one");
    assert_true(f->r.has_max_tokens);
    assert_int_equal(g->max_tokens, 7);
    assert_true(g->sampling.temperature == 0.5f);
    assert_true(g->sampling.top_p == 0.9f);
    assert_int_equal(g->sampling.top_k, 40);
    assert_true(g->sampling.min_p == 0.05f);
    assert_true(g->sampling.frequency_penalty == 1.5f);
    assert_true(g->sampling.presence_penalty == -1.0f);
    assert_true(g->sampling.repeat_penalty == 1.1f);
    assert_true(g->sampling.has_seed);
    assert_true(g->sampling.seed == UINT64_MAX);
    assert_int_equal(g->n_stop, 2);
    assert_string_equal(g->stop[1], "bb");
    assert_int_equal(g->n, 3);
    assert_true(f->r.stream);
    assert_true(f->r.include_usage);
    assert_int_equal(f->r.logprobs, 2);
    assert_int_equal(g->top_logprobs, 2);
    assert_int_equal(g->sampling.n_logit_bias, 2);
    assert_int_equal(g->sampling.logit_bias[1].token, 511);
    assert_true(g->sampling.logit_bias[1].bias == 2.5f);
}

static void openai_req_null_means_absent(void **state)
{
    fx *f = *state;
    assert_int_equal(parse(f, HP_OAI_COMPLETIONS,
                           "{\"prompt\":\"x\",\"model\":null,\"stop\":null,"
                           "\"max_tokens\":null,\"temperature\":null,"
                           "\"logit_bias\":null,\"seed\":null}"),
                     HP_OK);
    assert_false(f->r.has_max_tokens);
    assert_false(f->r.gen.sampling.has_seed);
}

static void openai_req_token_prompts(void **state)
{
    fx *f = *state;
    assert_int_equal(parse(f, HP_OAI_COMPLETIONS, "{\"prompt\":[1,403,511]}"),
                     HP_OK);
    assert_null(f->r.prompt);
    assert_int_equal(f->r.n_prompt_ids, 3);
    assert_int_equal(f->r.prompt_ids[2], 511);
    assert_int_equal(parse(f, HP_OAI_COMPLETIONS, "{\"prompt\":[[7,8]]}"),
                     HP_OK);
    assert_int_equal(f->r.n_prompt_ids, 2);
    expect_400(f, HP_OAI_COMPLETIONS, "{\"prompt\":[1,512]}", "prompt",
               "[0, 511]");
    expect_400(f, HP_OAI_COMPLETIONS, "{\"prompt\":[1.5]}", "prompt", NULL);
    expect_400(f, HP_OAI_COMPLETIONS, "{\"prompt\":[]}", "prompt", NULL);
    expect_400(f, HP_OAI_COMPLETIONS, "{\"prompt\":[\"a\",\"b\"]}", "prompt",
               "batch");
}

static void openai_req_messages(void **state)
{
    fx *f = *state;
    assert_int_equal(
        parse(f, HP_OAI_CHAT,
              "{\"messages\":[{\"role\":\"system\",\"content\":\"S\"},"
              "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":"
              "\"a\"},{\"type\":\"text\",\"text\":\"b\"}]},"
              "{\"role\":\"assistant\",\"content\":null}]}"),
        HP_OK);
    assert_int_equal(f->r.n_msgs, 3);
    assert_string_equal(f->r.msgs[0].role, "system");
    assert_string_equal(f->r.msgs[1].content, "a\nb");
    assert_string_equal(f->r.msgs[2].content, "");
    expect_400(f, HP_OAI_CHAT, "{\"messages\":[]}", "messages", "at least");
    expect_400(f, HP_OAI_CHAT, "{}", "messages", "required");
    expect_400(f, HP_OAI_CHAT, "{\"messages\":{}}", "messages", NULL);
    expect_400(f, HP_OAI_CHAT, "{\"messages\":[{\"role\":\"x\"}]}",
               "messages[0].role", NULL);
    expect_400(f, HP_OAI_CHAT,
               "{\"messages\":[{\"role\":\"user\",\"content\":"
               "[{\"type\":\"image_url\"}]}]}",
               "messages[0].content", "text");
}

static void openai_req_model(void **state)
{
    fx *f = *state;
    assert_int_equal(parse(f, HP_OAI_COMPLETIONS,
                           "{\"model\":\"gpt-4\",\"prompt\":\"x\"}"),
                     HP_ERR_NOT_FOUND);
    assert_int_equal(f->err.status, 404);
    assert_string_equal(f->err.code, "model_not_found");
    assert_string_equal(f->err.param, "model");
    expect_400(f, HP_OAI_COMPLETIONS, "{\"model\":1,\"prompt\":\"x\"}",
               "model", NULL);
}

/* openai_req_unsupported_fields: JSON mode, best_of > 1 and suffix are
 * refused rather than silently ignored; their defaults pass. */
static void openai_req_unsupported_fields(void **state)
{
    fx *f = *state;
    expect_400(f, HP_OAI_CHAT,
               "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
               "\"response_format\":{\"type\":\"json_object\"}}",
               "response_format", "not supported");
    expect_400(f, HP_OAI_CHAT,
               "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
               "\"response_format\":\"json\"}",
               "response_format", NULL);
    expect_400(f, HP_OAI_COMPLETIONS, "{\"prompt\":\"x\",\"best_of\":3}",
               "best_of", "not supported");
    expect_400(f, HP_OAI_COMPLETIONS, "{\"prompt\":\"x\",\"suffix\":\"end\"}",
               "suffix", "not supported");
    assert_int_equal(parse(f, HP_OAI_CHAT,
                           "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                           "\"response_format\":{\"type\":\"text\"}}"),
                     HP_OK);
    assert_int_equal(parse(f, HP_OAI_COMPLETIONS,
                           "{\"prompt\":\"x\",\"best_of\":1,\"suffix\":\"\"}"),
                     HP_OK);
}

static void openai_req_ranges(void **state)
{
    fx *f = *state;
    static const struct {
        const char *body, *param, *fragment;
    } cases[] = {
        {"{\"prompt\":\"x\",\"max_tokens\":0}", "max_tokens", "[1, "},
        {"{\"prompt\":\"x\",\"max_tokens\":\"5\"}", "max_tokens", "integer"},
        {"{\"prompt\":\"x\",\"temperature\":2.01}", "temperature", "[0, 2]"},
        {"{\"prompt\":\"x\",\"top_p\":0}", "top_p", "(0, 1]"},
        {"{\"prompt\":\"x\",\"top_k\":-2}", "top_k", NULL},
        {"{\"prompt\":\"x\",\"min_p\":-0.1}", "min_p", "[0, 1]"},
        {"{\"prompt\":\"x\",\"frequency_penalty\":3}", "frequency_penalty",
         "[-2, 2]"},
        {"{\"prompt\":\"x\",\"presence_penalty\":\"1\"}", "presence_penalty",
         "number"},
        {"{\"prompt\":\"x\",\"repeat_penalty\":0}", "repeat_penalty", NULL},
        {"{\"prompt\":\"x\",\"n\":17}", "n", "[1, 16]"},
        {"{\"prompt\":\"x\",\"stop\":[1]}", "stop", NULL},
        {"{\"prompt\":\"x\",\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", "stop",
         "4"},
        {"{\"prompt\":\"x\",\"logprobs\":6}", "logprobs", "[0, 5]"},
        {"{\"prompt\":\"x\",\"logit_bias\":{\"1\":100.5}}", "logit_bias",
         "[-100, 100]"},
        {"{\"prompt\":\"x\",\"logit_bias\":{\"512\":1}}", "logit_bias",
         "[0, 511]"},
        {"{\"prompt\":\"x\",\"logit_bias\":{\"+1\":1}}", "logit_bias", NULL},
        {"{\"prompt\":\"x\",\"stream\":0}", "stream", "boolean"},
        {"{\"prompt\":\"x\",\"stream_options\":{}}", "stream_options",
         "stream"},
        {"{\"prompt\":\"x\",\"echo\":true,\"logprobs\":0}", "echo", NULL},
        {"{\"prompt\":\"x\",\"seed\":1.5}", "seed", "integer"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_400(f, HP_OAI_COMPLETIONS, cases[i].body, cases[i].param,
                   cases[i].fragment);
    expect_400(f, HP_OAI_CHAT,
               "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
               "\"top_logprobs\":2}",
               "top_logprobs", "logprobs");
    expect_400(f, HP_OAI_CHAT,
               "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
               "\"logprobs\":true,\"top_logprobs\":21}",
               "top_logprobs", "[0, 20]");
}

static void openai_req_malformed_bodies(void **state)
{
    fx *f = *state;
    static const char *bodies[] = {
        "", "{", "[1,2]", "\"x\"", "42", "null", "{\"prompt\":NaN}",
        "{\"prompt\":\"x\",\"max_tokens\":1e999}",
        "{\"prompt\":\"x\",\"max_tokens\":99999999999999999999999}",
        "{\"prompt\":\"x\"} trailing", "{'prompt':'x'}",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        hp_err e = parse(f, HP_OAI_COMPLETIONS, bodies[i]);
        if (e == HP_OK)
            fail_msg("accepted: %s", bodies[i]);
        assert_int_equal(f->err.status, 400);
        assert_true(f->err.message[0] != '\0');
    }
}

/* Random bytes, deep nesting and mutated valid bodies never crash and
 * never fail with anything but a client error. */
static void openai_req_fuzz(void **state)
{
    fx *f = *state;
    uint64_t x = 0x9E3779B97F4A7C15ull;
    char buf[512];
    static const char seed[] =
        "{\"prompt\":[1,2],\"messages\":[{\"role\":\"user\",\"content\":"
        "\"x\"}],\"stop\":[\"a\"],\"logit_bias\":{\"5\":1},\"n\":2}";
    for (int it = 0; it < 3000; it++) {
        size_t n;
        if (it % 2) {
            n = sizeof seed - 1;
            memcpy(buf, seed, n);
            for (int k = 0; k < 3; k++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                buf[x % n] = (char)(x >> 32);
            }
        } else {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            n = x % sizeof buf;
            for (size_t k = 0; k < n; k++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                buf[k] = (char)x;
            }
        }
        hp_arena_free(f->a);
        f->a = hp_arena_new(0);
        hp_err e = hp_openai_req_parse(it % 3 ? HP_OAI_COMPLETIONS
                                              : HP_OAI_CHAT,
                                       buf, n, &LIM, f->a, &f->r, &f->err);
        if (e != HP_OK)
            assert_in_range(f->err.status, 400, 499);
    }
    size_t depth = 100000;
    char *deep = malloc(depth + 1);
    assert_non_null(deep);
    memset(deep, '[', depth);
    deep[depth] = '\0';
    assert_int_not_equal(parse(f, HP_OAI_COMPLETIONS, deep), HP_OK);
    free(deep);
}

static void openai_req_fit_context(void **state)
{
    fx *f = *state;
    assert_int_equal(parse(f, HP_OAI_COMPLETIONS, "{\"prompt\":\"x\"}"),
                     HP_OK);
    assert_int_equal(hp_openai_req_fit_context(&f->r, 10, 2048, &f->err),
                     HP_OK);
    assert_int_equal(f->r.gen.max_tokens, 16); /* OpenAI's default */
    assert_int_equal(parse(f, HP_OAI_CHAT,
                           "{\"messages\":[{\"role\":\"user\",\"content\":"
                           "\"x\"}]}"),
                     HP_OK);
    assert_int_equal(hp_openai_req_fit_context(&f->r, 48, 2048, &f->err),
                     HP_OK);
    assert_int_equal(f->r.gen.max_tokens, 2000); /* the rest of the ctx */
    assert_int_equal(parse(f, HP_OAI_CHAT,
                           "{\"messages\":[{\"role\":\"user\",\"content\":"
                           "\"x\"}],\"max_tokens\":100}"),
                     HP_OK);
    assert_int_equal(hp_openai_req_fit_context(&f->r, 2000, 2048, &f->err),
                     HP_ERR_RANGE);
    assert_string_equal(f->err.code, "context_length_exceeded");
    assert_non_null(strstr(f->err.message,
                           "maximum context length is 2048 tokens. However, "
                           "you requested 2100 tokens (2000 in the messages, "
                           "100 in the completion)"));
}

static void openai_req_tokens_real_vocab(void **state)
{
    fx *f = *state;
    const char *shared = getenv("HOTPATH_SHARED");
    char path[1024];
    snprintf(path, sizeof path, "%s/models/stories260K.gguf",
             shared ? shared : "../shared");
    FILE *fp = fopen(path, "rb");
    if (!fp)
        skip();
    fclose(fp);
    hp_model *m = NULL;
    hp_errbuf eb;
    assert_int_equal(hp_model_load(path, &m, &eb), HP_OK);
    hp_oai_limits lim = {.model_name = "tiny",
                         .n_vocab = hp_vocab_size(m->vocab)};
    int32_t *ids;
    int n;
    hp_arena_free(f->a);
    f->a = hp_arena_new(0);
    const char *b = "{\"prompt\":\"Once upon a time\"}";
    assert_int_equal(hp_openai_req_parse(HP_OAI_COMPLETIONS, b, strlen(b),
                                         &lim, f->a, &f->r, &f->err),
                     HP_OK);
    assert_int_equal(hp_openai_req_tokens(&f->r, m, f->a, &ids, &n, &f->err),
                     HP_OK);
    /* BOS, then the README's ids for "Once upon a time" */
    static const int32_t want[] = {1, 403, 407, 261, 378};
    assert_int_equal(n, 5);
    assert_memory_equal(ids, want, sizeof want);
    /* special-token text in a completion prompt stays plain text */
    b = "{\"prompt\":\"<s>\"}";
    assert_int_equal(hp_openai_req_parse(HP_OAI_COMPLETIONS, b, strlen(b),
                                         &lim, f->a, &f->r, &f->err),
                     HP_OK);
    assert_int_equal(hp_openai_req_tokens(&f->r, m, f->a, &ids, &n, &f->err),
                     HP_OK);
    assert_true(n > 2);
    assert_int_equal(ids[0], 1);
    for (int i = 1; i < n; i++)
        assert_int_not_equal(ids[i], 1);
    /* chat: fallback template, exactly one BOS */
    b = "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}";
    assert_int_equal(hp_openai_req_parse(HP_OAI_CHAT, b, strlen(b), &lim,
                                         f->a, &f->r, &f->err),
                     HP_OK);
    assert_int_equal(hp_openai_req_tokens(&f->r, m, f->a, &ids, &n, &f->err),
                     HP_OK);
    assert_true(n > 3);
    assert_int_equal(ids[0], 1);
    assert_int_not_equal(ids[1], 1);
    hp_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(openai_req_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(openai_req_all_fields, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(openai_req_null_means_absent, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(openai_req_token_prompts, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(openai_req_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(openai_req_model, setup, teardown),
        cmocka_unit_test_setup_teardown(openai_req_ranges, setup, teardown),
        cmocka_unit_test_setup_teardown(openai_req_unsupported_fields, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(openai_req_malformed_bodies, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(openai_req_fuzz, setup, teardown),
        cmocka_unit_test_setup_teardown(openai_req_fit_context, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(openai_req_tokens_real_vocab, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
