/* openai_req.c: owns request validation for the OpenAI endpoints
 * (hp_openai_req_*): JSON body -> hp_oai_req -> prompt tokens.
 *
 * Validation order follows the body's meaning, not its key order, so the
 * first error reported is stable: model, prompt/messages, then the
 * generation fields. jansson refuses NaN, Infinity, integers beyond 64 bits
 * and nesting deeper than 2048 levels, so garbage ends as a 400 here. Only
 * the parse scratch (json_t) is malloc'd; it is freed before returning.
 * Chat prompts are rendered with the model's Jinja chat template and
 * tokenized by segment, so request content never becomes control tokens.
 * The template is parsed per request (tens of microseconds for real
 * templates; `hotpath serve` has already refused one that does not parse).
 * Knows nothing of HTTP. */
#include "server/openai_req.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/jinja.h"
#include "model/model.h"

#define INVALID "invalid_request_error"

hp_err hp_openai_error_set(hp_oai_error *err, int status, const char *type,
                           const char *param, const char *code,
                           const char *fmt, ...)
{
    if (!err)
        return HP_ERR_INVALID;
    err->status = status;
    err->type = type ? type : INVALID;
    err->code = code;
    snprintf(err->param, sizeof err->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return HP_ERR_INVALID;
}

/* ---- field helpers: each returns HP_OK, or fills err ------------------- */

/* Absent and JSON null both mean "not given", as OpenAI treats them. */
static json_t *field(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_null(v) ? NULL : v;
}

static hp_err get_number(json_t *o, const char *key, double lo, bool lo_open,
                         double hi, double *out, bool *given,
                         hp_oai_error *err)
{
    json_t *v = field(o, key);
    if (given)
        *given = v != NULL;
    if (!v)
        return HP_OK;
    if (!json_is_number(v))
        return hp_openai_error_set(err, 400, INVALID, key, NULL,
                                   "'%s' must be a number", key);
    double d = json_number_value(v);
    if (!isfinite(d) || (lo_open ? d <= lo : d < lo) || d > hi)
        return hp_openai_error_set(err, 400, INVALID, key, NULL,
                                   "'%s' must be in %s%g, %g]; got %g", key,
                                   lo_open ? "(" : "[", lo, hi, d);
    *out = d;
    return HP_OK;
}

static hp_err get_int(json_t *o, const char *key, long long lo, long long hi,
                      long long *out, bool *given, hp_oai_error *err)
{
    json_t *v = field(o, key);
    if (given)
        *given = v != NULL;
    if (!v)
        return HP_OK;
    if (!json_is_integer(v))
        return hp_openai_error_set(err, 400, INVALID, key, NULL,
                                   "'%s' must be an integer", key);
    long long x = json_integer_value(v);
    if (x < lo || x > hi)
        return hp_openai_error_set(err, 400, INVALID, key, NULL,
                                   "'%s' must be in [%lld, %lld]; got %lld",
                                   key, lo, hi, x);
    *out = x;
    return HP_OK;
}

static hp_err get_bool(json_t *o, const char *key, bool *out, bool *given,
                       hp_oai_error *err)
{
    json_t *v = field(o, key);
    if (given)
        *given = v != NULL;
    if (!v)
        return HP_OK;
    if (!json_is_boolean(v))
        return hp_openai_error_set(err, 400, INVALID, key, NULL,
                                   "'%s' must be a boolean", key);
    *out = json_is_true(v);
    return HP_OK;
}

static char *dup_str(hp_arena *a, json_t *s)
{
    return hp_arena_strndup(a, json_string_value(s), json_string_length(s));
}

/* ---- prompt / messages -------------------------------------------------- */

static hp_err token_list(json_t *arr, const hp_oai_limits *lim, hp_arena *a,
                         hp_oai_req *out, hp_oai_error *err)
{
    size_t n = json_array_size(arr);
    if (n == 0)
        return hp_openai_error_set(err, 400, INVALID, "prompt", NULL,
                                   "'prompt' must not be an empty array");
    if (n > (size_t)1 << 24)
        return hp_openai_error_set(err, 400, INVALID, "prompt", NULL,
                                   "'prompt' has too many tokens");
    out->prompt_ids = hp_arena_alloc(a, n * sizeof(int32_t));
    if (!out->prompt_ids)
        return HP_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(arr, i);
        if (!json_is_integer(t) || json_integer_value(t) < 0 ||
            json_integer_value(t) >= lim->n_vocab)
            return hp_openai_error_set(
                err, 400, INVALID, "prompt", NULL,
                "'prompt' token ids must be integers in [0, %d]; "
                "element %zu is not",
                lim->n_vocab - 1, i);
        out->prompt_ids[i] = (int32_t)json_integer_value(t);
    }
    out->n_prompt_ids = (int)n;
    return HP_OK;
}

static hp_err parse_prompt(json_t *o, const hp_oai_limits *lim, hp_arena *a,
                           hp_oai_req *out, hp_oai_error *err)
{
    json_t *p = field(o, "prompt");
    if (!p)
        return hp_openai_error_set(err, 400, INVALID, "prompt", NULL,
                                   "'prompt' is required");
    if (json_is_array(p) && json_array_size(p) == 1 &&
        (json_is_string(json_array_get(p, 0)) ||
         json_is_array(json_array_get(p, 0))))
        p = json_array_get(p, 0); /* a batch of one: ["text"] or [[ids]] */
    if (json_is_string(p)) {
        out->prompt = dup_str(a, p);
        out->prompt_len = json_string_length(p);
        return out->prompt ? HP_OK : HP_ERR_NOMEM;
    }
    if (json_is_array(p)) {
        json_t *first = json_array_get(p, 0);
        if (json_is_string(first) || json_is_array(first))
            return hp_openai_error_set(
                err, 400, INVALID, "prompt", NULL,
                "'prompt' batches of more than one prompt are not "
                "supported; send one request per prompt");
        return token_list(p, lim, a, out, err);
    }
    return hp_openai_error_set(err, 400, INVALID, "prompt", NULL,
                               "'prompt' must be a string, an array of one "
                               "string, or an array of token ids");
}

static bool known_role(const char *r)
{
    static const char *const roles[] = {"system", "user", "assistant",
                                        "tool", "developer", "function"};
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
        if (!strcmp(r, roles[i]))
            return true;
    return false;
}

/* content: a string, null (assistant turns with tool calls), or an array
 * of {type:"text", text} parts joined by newlines (as vLLM joins them). */
static hp_err msg_content(json_t *c, size_t i, hp_arena *a, const char **out,
                          hp_oai_error *err)
{
    char param[48];
    snprintf(param, sizeof param, "messages[%zu].content", i);
    if (!c || json_is_null(c)) {
        *out = "";
        return HP_OK;
    }
    if (json_is_string(c)) {
        *out = dup_str(a, c);
        return *out ? HP_OK : HP_ERR_NOMEM;
    }
    if (!json_is_array(c))
        return hp_openai_error_set(err, 400, INVALID, param, NULL,
                                   "'%s' must be a string or an array of "
                                   "text parts", param);
    size_t total = 1, np = json_array_size(c);
    for (size_t k = 0; k < np; k++) {
        json_t *part = json_array_get(c, k);
        json_t *type = json_object_get(part, "type");
        json_t *text = json_object_get(part, "text");
        if (!json_is_object(part) || !json_is_string(type) ||
            strcmp(json_string_value(type), "text") != 0 ||
            !json_is_string(text))
            return hp_openai_error_set(
                err, 400, INVALID, param, NULL,
                "'%s[%zu]' must be {\"type\": \"text\", \"text\": string}; "
                "only text content is supported",
                param, k);
        total += json_string_length(text) + 1;
    }
    char *s = hp_arena_alloc(a, total);
    if (!s)
        return HP_ERR_NOMEM;
    size_t len = 0;
    for (size_t k = 0; k < np; k++) {
        json_t *text = json_object_get(json_array_get(c, k), "text");
        if (k > 0)
            s[len++] = '\n';
        memcpy(s + len, json_string_value(text), json_string_length(text));
        len += json_string_length(text);
    }
    s[len] = '\0';
    *out = s;
    return HP_OK;
}

/* Compact JSON text of j in the arena (NULL on OOM). */
static const char *dump_json(hp_arena *a, const json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    const char *r = s ? hp_arena_strndup(a, s, strlen(s)) : NULL;
    free(s);
    return r;
}

/* tools (an array of objects) and chat_template_kwargs (an object) are
 * kept as JSON for the chat template. */
static hp_err parse_template_inputs(json_t *o, hp_arena *a, hp_oai_req *out,
                                    hp_oai_error *err)
{
    json_t *tools = field(o, "tools");
    if (tools) {
        bool ok = json_is_array(tools);
        for (size_t i = 0; ok && i < json_array_size(tools); i++)
            ok = json_is_object(json_array_get(tools, i));
        if (!ok)
            return hp_openai_error_set(err, 400, INVALID, "tools", NULL,
                                       "'tools' must be an array of tool "
                                       "objects");
        if (!(out->tools_json = dump_json(a, tools)))
            return HP_ERR_NOMEM;
    }
    json_t *kw = field(o, "chat_template_kwargs");
    if (kw) {
        if (!json_is_object(kw))
            return hp_openai_error_set(err, 400, INVALID,
                                       "chat_template_kwargs", NULL,
                                       "'chat_template_kwargs' must be an "
                                       "object");
        if (!(out->template_kwargs_json = dump_json(a, kw)))
            return HP_ERR_NOMEM;
    }
    return HP_OK;
}

static hp_err parse_messages(json_t *o, hp_arena *a, hp_oai_req *out,
                             hp_oai_error *err)
{
    json_t *m = field(o, "messages");
    if (!m)
        return hp_openai_error_set(err, 400, INVALID, "messages", NULL,
                                   "'messages' is required");
    if (!json_is_array(m))
        return hp_openai_error_set(err, 400, INVALID, "messages", NULL,
                                   "'messages' must be an array");
    size_t n = json_array_size(m);
    if (n == 0)
        return hp_openai_error_set(err, 400, INVALID, "messages", NULL,
                                   "'messages' must contain at least one "
                                   "message");
    if (n > 100000)
        return hp_openai_error_set(err, 400, INVALID, "messages", NULL,
                                   "'messages' has too many messages");
    out->msgs = hp_arena_alloc(a, n * sizeof *out->msgs);
    if (!out->msgs)
        return HP_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        json_t *msg = json_array_get(m, i);
        char param[48];
        if (!json_is_object(msg)) {
            snprintf(param, sizeof param, "messages[%zu]", i);
            return hp_openai_error_set(err, 400, INVALID, param, NULL,
                                       "'%s' must be an object with 'role' "
                                       "and 'content'", param);
        }
        json_t *role = json_object_get(msg, "role");
        snprintf(param, sizeof param, "messages[%zu].role", i);
        if (!json_is_string(role) || !known_role(json_string_value(role)))
            return hp_openai_error_set(
                err, 400, INVALID, param, NULL,
                "'%s' must be one of system, user, assistant, tool, "
                "developer", param);
        out->msgs[i].role = dup_str(a, role);
        hp_err e = msg_content(json_object_get(msg, "content"), i, a,
                               &out->msgs[i].content, err);
        if (e != HP_OK)
            return e;
        if (!out->msgs[i].role)
            return HP_ERR_NOMEM;
    }
    out->n_msgs = (int)n;
    if (!(out->messages_json = dump_json(a, m)))
        return HP_ERR_NOMEM;
    return parse_template_inputs(o, a, out, err);
}

/* ---- generation fields -------------------------------------------------- */

static hp_err parse_stop(json_t *o, hp_arena *a, hp_gen_params *g,
                         hp_oai_error *err)
{
    json_t *s = field(o, "stop");
    if (!s)
        return HP_OK;
    if (json_is_string(s)) {
        g->stop[0] = dup_str(a, s);
        g->n_stop = 1;
        return g->stop[0] ? HP_OK : HP_ERR_NOMEM;
    }
    if (!json_is_array(s) || json_array_size(s) > HP_MAX_STOP)
        return hp_openai_error_set(err, 400, INVALID, "stop", NULL,
                                   "'stop' must be a string or an array of "
                                   "at most %d strings", HP_MAX_STOP);
    for (size_t i = 0; i < json_array_size(s); i++) {
        json_t *e = json_array_get(s, i);
        if (!json_is_string(e))
            return hp_openai_error_set(err, 400, INVALID, "stop", NULL,
                                       "'stop' must be a string or an array "
                                       "of at most %d strings", HP_MAX_STOP);
        g->stop[i] = dup_str(a, e);
        if (!g->stop[i])
            return HP_ERR_NOMEM;
    }
    g->n_stop = (int)json_array_size(s);
    return HP_OK;
}

/* Keys are decimal token ids ("50256"), values biases in [-100, 100]. */
static hp_err parse_logit_bias(json_t *o, const hp_oai_limits *lim,
                               hp_arena *a, hp_sampling *sp,
                               hp_oai_error *err)
{
    json_t *b = field(o, "logit_bias");
    if (!b)
        return HP_OK;
    if (!json_is_object(b))
        return hp_openai_error_set(err, 400, INVALID, "logit_bias", NULL,
                                   "'logit_bias' must be an object mapping "
                                   "token ids to numbers in [-100, 100]");
    size_t n = json_object_size(b);
    if (n == 0)
        return HP_OK;
    hp_logit_bias *lb = hp_arena_alloc(a, n * sizeof *lb);
    if (!lb)
        return HP_ERR_NOMEM;
    const char *key;
    json_t *val;
    int k = 0;
    json_object_foreach(b, key, val)
    {
        char *end = NULL;
        errno = 0;
        long id = strtol(key, &end, 10);
        if (!key[0] || *end || errno || id < 0 || id >= lim->n_vocab ||
            key[0] == '+' || key[0] == '-' || key[0] == ' ')
            return hp_openai_error_set(
                err, 400, INVALID, "logit_bias", NULL,
                "'logit_bias' keys must be token ids in [0, %d]; got \"%.40s\"",
                lim->n_vocab - 1, key);
        if (!json_is_number(val) || json_number_value(val) < -100 ||
            json_number_value(val) > 100)
            return hp_openai_error_set(
                err, 400, INVALID, "logit_bias", NULL,
                "'logit_bias' values must be numbers in [-100, 100] "
                "(token %ld)", id);
        lb[k].token = (int32_t)id;
        lb[k].bias = (float)json_number_value(val);
        k++;
    }
    sp->logit_bias = lb;
    sp->n_logit_bias = k;
    return HP_OK;
}

static hp_err parse_logprobs(hp_oai_kind kind, json_t *o, hp_oai_req *out,
                             hp_oai_error *err)
{
    hp_err e;
    if (kind == HP_OAI_COMPLETIONS) {
        long long lp = -1;
        e = get_int(o, "logprobs", 0, 5, &lp, NULL, err);
        if (e == HP_OK)
            out->logprobs = (int)lp;
        return e;
    }
    bool want = false, has_top = false;
    long long top = 0;
    e = get_bool(o, "logprobs", &want, NULL, err);
    if (e == HP_OK)
        e = get_int(o, "top_logprobs", 0, HP_MAX_TOP_LOGPROBS, &top,
                    &has_top, err);
    if (e != HP_OK)
        return e;
    if (has_top && !want)
        return hp_openai_error_set(err, 400, INVALID, "top_logprobs", NULL,
                                   "'top_logprobs' requires 'logprobs' to "
                                   "be true");
    out->logprobs = want ? (int)top : -1;
    return HP_OK;
}

static hp_err parse_sampling(json_t *o, const hp_oai_limits *lim,
                             hp_arena *a, hp_sampling *sp, hp_oai_error *err)
{
    double d;
    long long x;
    bool given;
    hp_err e;
    e = get_number(o, "temperature", 0, false, 2, &d, &given, err);
    if (e != HP_OK)
        return e;
    if (given)
        sp->temperature = (float)d;
    e = get_number(o, "top_p", 0, true, 1, &d, &given, err);
    if (e != HP_OK)
        return e;
    if (given)
        sp->top_p = (float)d;
    e = get_int(o, "top_k", -1, 1 << 30, &x, &given, err);
    if (e != HP_OK)
        return e;
    if (given)
        sp->top_k = (int)x;
    e = get_number(o, "min_p", 0, false, 1, &d, &given, err);
    if (e != HP_OK)
        return e;
    if (given)
        sp->min_p = (float)d;
    e = get_number(o, "frequency_penalty", -2, false, 2, &d, &given, err);
    if (e != HP_OK)
        return e;
    if (given)
        sp->frequency_penalty = (float)d;
    e = get_number(o, "presence_penalty", -2, false, 2, &d, &given, err);
    if (e != HP_OK)
        return e;
    if (given)
        sp->presence_penalty = (float)d;
    e = get_number(o, "repeat_penalty", 0, true, 1e9, &d, &given, err);
    if (e != HP_OK)
        return e;
    if (given)
        sp->repeat_penalty = (float)d;
    json_t *seed = field(o, "seed");
    if (seed) {
        if (!json_is_integer(seed))
            return hp_openai_error_set(err, 400, INVALID, "seed", NULL,
                                       "'seed' must be an integer");
        sp->seed = (uint64_t)json_integer_value(seed);
        sp->has_seed = true;
    }
    return parse_logit_bias(o, lim, a, sp, err);
}

/* OpenAI fields whose meaning this server cannot honour. Ignoring them
 * would answer a JSON-mode or best-of request with something else and call
 * it a success, so they are refused (400) unless they ask for the default
 * behaviour. */
static hp_err refuse_unsupported(json_t *o, hp_oai_error *err)
{
    json_t *rf = field(o, "response_format");
    if (rf) {
        json_t *t = json_is_object(rf) ? field(rf, "type") : NULL;
        if (!t || !json_is_string(t) || strcmp(json_string_value(t), "text"))
            return hp_openai_error_set(
                err, 400, INVALID, "response_format", NULL,
                "'response_format' other than {\"type\": \"text\"} is not "
                "supported (no JSON mode or json_schema yet)");
    }
    json_t *bo = field(o, "best_of");
    if (bo && !(json_is_integer(bo) && json_integer_value(bo) == 1))
        return hp_openai_error_set(err, 400, INVALID, "best_of", NULL,
                                   "'best_of' other than 1 is not supported");
    json_t *sx = field(o, "suffix");
    if (sx && !(json_is_string(sx) && json_string_length(sx) == 0))
        return hp_openai_error_set(err, 400, INVALID, "suffix", NULL,
                                   "'suffix' (insertion) is not supported");
    return HP_OK;
}

static hp_err parse_gen(hp_oai_kind kind, json_t *o, const hp_oai_limits *lim,
                        hp_arena *a, hp_oai_req *out, hp_oai_error *err)
{
    hp_gen_params *g = &out->gen;
    long long x;
    bool given;
    hp_err e = refuse_unsupported(o, err);
    if (e != HP_OK)
        return e;
    e = get_int(o, "max_tokens", 1, 1 << 30, &x, &given, err);
    if (e != HP_OK)
        return e;
    if (given) {
        g->max_tokens = (int)x;
        out->has_max_tokens = true;
    }
    e = get_int(o, "max_completion_tokens", 1, 1 << 30, &x, &given, err);
    if (e != HP_OK)
        return e;
    if (given) {
        g->max_tokens = (int)x;
        out->has_max_tokens = true;
    }
    e = get_int(o, "n", 1, HP_MAX_CHOICES, &x, &given, err);
    if (e != HP_OK)
        return e;
    if (given)
        g->n = (int)x;
    e = parse_sampling(o, lim, a, &g->sampling, err);
    if (e != HP_OK)
        return e;
    e = parse_stop(o, a, g, err);
    if (e != HP_OK)
        return e;
    e = get_bool(o, "ignore_eos", &g->ignore_eos, NULL, err);
    if (e != HP_OK)
        return e;
    e = get_bool(o, "stream", &out->stream, NULL, err);
    if (e != HP_OK)
        return e;
    json_t *so = field(o, "stream_options");
    if (so) {
        if (!json_is_object(so))
            return hp_openai_error_set(err, 400, INVALID, "stream_options",
                                       NULL, "'stream_options' must be an "
                                             "object");
        if (!out->stream)
            return hp_openai_error_set(err, 400, INVALID, "stream_options",
                                       NULL, "'stream_options' is only "
                                             "allowed when 'stream' is true");
        json_t *iu = field(so, "include_usage");
        if (iu && !json_is_boolean(iu))
            return hp_openai_error_set(err, 400, INVALID,
                                       "stream_options.include_usage", NULL,
                                       "'stream_options.include_usage' must "
                                       "be a boolean");
        out->include_usage = iu && json_is_true(iu);
    }
    e = parse_logprobs(kind, o, out, err);
    if (e != HP_OK)
        return e;
    g->top_logprobs = out->logprobs;
    if (kind == HP_OAI_COMPLETIONS) {
        e = get_bool(o, "echo", &out->echo, NULL, err);
        if (e != HP_OK)
            return e;
        if (out->echo && out->logprobs >= 0)
            return hp_openai_error_set(err, 400, INVALID, "echo", NULL,
                                       "'echo' together with 'logprobs' is "
                                       "not supported (prompt logprobs are "
                                       "not computed)");
    }
    return HP_OK;
}

hp_err hp_openai_req_parse(hp_oai_kind kind, const char *body, size_t len,
                           const hp_oai_limits *lim, hp_arena *a,
                           hp_oai_req *out, hp_oai_error *err)
{
    memset(out, 0, sizeof *out);
    out->kind = kind;
    out->logprobs = -1;
    hp_gen_params_default(&out->gen);
    out->gen.max_tokens = kind == HP_OAI_COMPLETIONS ? 16 : 0;
    out->gen.top_logprobs = -1;

    json_error_t je;
    json_t *o = json_loadb(body ? body : "", len, JSON_DECODE_ANY, &je);
    if (!o)
        return hp_openai_error_set(err, 400, INVALID, NULL, NULL,
                                   "We could not parse the JSON body of your "
                                   "request: %s (line %d, column %d)",
                                   je.text, je.line, je.column);
    hp_err e = HP_OK;
    if (!json_is_object(o)) {
        e = hp_openai_error_set(err, 400, INVALID, NULL, NULL,
                                "The request body must be a JSON object");
        goto done;
    }
    json_t *model = field(o, "model");
    if (model && !json_is_string(model)) {
        e = hp_openai_error_set(err, 400, INVALID, "model", NULL,
                                "'model' must be a string");
        goto done;
    }
    if (model && strcmp(json_string_value(model), lim->model_name) != 0) {
        hp_openai_error_set(err, 404, INVALID, "model", "model_not_found",
                            "The model '%.100s' does not exist; this server "
                            "serves '%.100s'",
                            json_string_value(model), lim->model_name);
        e = HP_ERR_NOT_FOUND;
        goto done;
    }
    out->model = hp_arena_strndup(a, lim->model_name, strlen(lim->model_name));
    if (!out->model) {
        e = HP_ERR_NOMEM;
        goto done;
    }
    e = kind == HP_OAI_COMPLETIONS ? parse_prompt(o, lim, a, out, err)
                                   : parse_messages(o, a, out, err);
    if (e == HP_OK)
        e = parse_gen(kind, o, lim, a, out, err);
done:
    if (e == HP_ERR_NOMEM)
        hp_openai_error_set(err, 500, "server_error", NULL, NULL,
                            "out of memory while parsing the request");
    json_decref(o);
    return e;
}

/* ---- prompt tokens ------------------------------------------------------- */

static hp_err tokenize(const hp_vocab *v, const char *text, size_t len,
                       bool add_bos, bool special, hp_arena *a,
                       int32_t **ids, int *n_ids)
{
    int cap = (int)(len < (1u << 28) ? len : (1u << 28)) + 8;
    int32_t *buf = hp_arena_alloc(a, (size_t)cap * sizeof *buf);
    if (!buf)
        return HP_ERR_NOMEM;
    int n = hp_tokenize(v, text, len, add_bos, special, buf, cap);
    if (n > cap) {
        cap = n;
        buf = hp_arena_alloc(a, (size_t)cap * sizeof *buf);
        if (!buf)
            return HP_ERR_NOMEM;
        n = hp_tokenize(v, text, len, add_bos, special, buf, cap);
    }
    if (n < 0)
        return HP_ERR_NOMEM;
    *ids = buf;
    *n_ids = n;
    return HP_OK;
}

/* True if text holds a special token's text, i.e. tokenizing it with
 * special-token parsing differs from tokenizing it as plain text. */
static hp_err has_special(const hp_vocab *v, const char *text, size_t len,
                          hp_arena *a, bool *yes)
{
    int32_t *x, *y;
    int nx, ny;
    hp_err e = tokenize(v, text, len, false, true, a, &x, &nx);
    if (e == HP_OK)
        e = tokenize(v, text, len, false, false, a, &y, &ny);
    if (e == HP_OK)
        *yes = nx != ny || memcmp(x, y, (size_t)nx * sizeof *x) != 0;
    return e;
}

static hp_err append_ids(hp_arena *a, int32_t **ids, int *n, int *cap,
                         const int32_t *add, int n_add)
{
    if (*n + n_add > *cap) {
        int nc = (*n + n_add) * 2 + 16;
        int32_t *q = hp_arena_alloc(a, (size_t)nc * sizeof *q);
        if (!q)
            return HP_ERR_NOMEM;
        if (*n)
            memcpy(q, *ids, (size_t)*n * sizeof *q);
        *ids = q;
        *cap = nc;
    }
    memcpy(*ids + *n, add, (size_t)n_add * sizeof *add);
    *n += n_add;
    return HP_OK;
}

/* Tokenize rendered segments. Markup and content that holds no special
 * token text are tokenized together with special tokens parsed, so the
 * usual prompt gets exactly the tokens of the whole text (as Hugging Face
 * tokenizes it); only content that would otherwise turn into control
 * tokens is cut out and tokenized as plain text on its own. */
static hp_err tokenize_segments(const hp_vocab *v, const hp_jinja_out *o,
                                bool add_bos, hp_arena *a, int32_t **ids,
                                int *n_ids)
{
    int n = 0, cap = 0;
    int32_t *all = NULL;
    bool *isolate = hp_arena_alloc(a, (size_t)o->n_segs + 1);
    if (!isolate)
        return HP_ERR_NOMEM;
    for (int i = 0; i < o->n_segs; i++)
        if (o->segs[i].content) {
            hp_err e = has_special(v, o->segs[i].text, o->segs[i].len, a,
                                   &isolate[i]);
            if (e != HP_OK)
                return e;
        }
    for (int i = 0; i < o->n_segs;) {
        int j = i + 1;
        if (!isolate[i])
            while (j < o->n_segs && !isolate[j])
                j++;
        const char *start = o->segs[i].text;
        size_t len = (size_t)(o->segs[j - 1].text + o->segs[j - 1].len - start);
        int32_t *piece;
        int np;
        hp_err e = tokenize(v, start, len, add_bos && i == 0, !isolate[i], a,
                            &piece, &np);
        if (e == HP_OK)
            e = append_ids(a, &all, &n, &cap, piece, np);
        if (e != HP_OK)
            return e;
        i = j;
    }
    *ids = all;
    *n_ids = n;
    return HP_OK;
}

/* Render r's messages with the model's Jinja template and tokenize them.
 * HP_ERR_DECLINED when the template does not parse (use the hand-written
 * formats). */
static hp_err jinja_tokens(const hp_oai_req *r, const hp_model *m,
                           const char *bos_text, const char *eos_text,
                           hp_arena *a, int32_t **ids, int *n_ids,
                           hp_oai_error *err)
{
    const hp_vocab *v = m->vocab;
    hp_jinja *t = NULL;
    hp_errbuf eb = {{0}};
    if (hp_jinja_parse(m->chat_template, strlen(m->chat_template), &t, &eb) !=
        HP_OK)
        return HP_ERR_DECLINED;
    json_t *msgs = json_loads(r->messages_json, JSON_DECODE_ANY, NULL);
    json_t *tools = r->tools_json ? json_loads(r->tools_json, 0, NULL) : NULL;
    json_t *kw = r->template_kwargs_json
                     ? json_loads(r->template_kwargs_json, 0, NULL) : NULL;
    hp_jinja_out out = {0};
    hp_err e = HP_ERR_NOMEM;
    if (msgs && (tools || !r->tools_json) && (kw || !r->template_kwargs_json))
        e = hp_chat_render_jinja(t, msgs, tools, true, bos_text, eos_text, kw,
                                 &out, &eb);
    if (e == HP_OK) {
        bool has_bos = bos_text && bos_text[0] &&
                       !strncmp(out.buf, bos_text, strlen(bos_text));
        e = tokenize_segments(v, &out, hp_vocab_add_bos(v) && !has_bos, a,
                              ids, n_ids);
    } else if (e != HP_ERR_NOMEM) {
        /* raise_exception or a type error on this request's data */
        hp_openai_error_set(err, 400, INVALID, "messages", NULL, "%s",
                            eb.msg);
        e = HP_ERR_INVALID;
    }
    hp_jinja_out_free(&out);
    json_decref(msgs);
    json_decref(tools);
    json_decref(kw);
    hp_jinja_free(t);
    return e;
}

hp_err hp_openai_req_tokens(const hp_oai_req *r, const hp_model *m,
                            hp_arena *a, int32_t **ids, int *n_ids,
                            hp_oai_error *err)
{
    const hp_vocab *v = m->vocab;
    hp_err e = HP_ERR_DECLINED;
    if (r->kind == HP_OAI_CHAT && m->chat_template && m->chat_template[0] &&
        r->messages_json) {
        int32_t bos = hp_vocab_bos(v), eos = hp_vocab_eos(v);
        e = jinja_tokens(r, m, bos >= 0 ? hp_vocab_text(v, bos) : NULL,
                         eos >= 0 ? hp_vocab_text(v, eos) : NULL, a, ids,
                         n_ids, err);
        if (e == HP_ERR_INVALID)
            return e;
    }
    if (e != HP_ERR_DECLINED) {
        /* rendered by the Jinja template (or out of memory) */
    } else if (r->kind == HP_OAI_CHAT) {
        int32_t bos = hp_vocab_bos(v), eos = hp_vocab_eos(v);
        const char *bos_text = bos >= 0 ? hp_vocab_text(v, bos) : NULL;
        const char *eos_text = eos >= 0 ? hp_vocab_text(v, eos) : NULL;
        char *text = hp_chat_render(hp_chat_detect(m->chat_template),
                                    r->msgs, r->n_msgs, true, bos_text,
                                    eos_text);
        if (!text)
            return HP_ERR_NOMEM;
        bool has_bos = bos_text && bos_text[0] &&
                       !strncmp(text, bos_text, strlen(bos_text));
        e = tokenize(v, text, strlen(text), hp_vocab_add_bos(v) && !has_bos,
                     true, a, ids, n_ids);
        free(text);
    } else if (r->prompt_ids) {
        *ids = r->prompt_ids;
        *n_ids = r->n_prompt_ids;
        e = HP_OK;
    } else {
        e = tokenize(v, r->prompt, r->prompt_len, hp_vocab_add_bos(v), false,
                     a, ids, n_ids);
    }
    if (e == HP_OK && *n_ids == 0)
        return hp_openai_error_set(err, 400, INVALID,
                                   r->kind == HP_OAI_CHAT ? "messages"
                                                          : "prompt",
                                   NULL, "The prompt is empty");
    if (e == HP_ERR_NOMEM)
        hp_openai_error_set(err, 500, "server_error", NULL, NULL,
                            "out of memory while tokenizing");
    return e;
}

hp_err hp_openai_req_fit_context(hp_oai_req *r, int n_prompt, int n_ctx,
                                 hp_oai_error *err)
{
    long long want = r->has_max_tokens ? r->gen.max_tokens : 0;
    if (!r->has_max_tokens) {
        if (r->kind == HP_OAI_COMPLETIONS)
            want = 16;
        else
            want = n_ctx - n_prompt > 0 ? n_ctx - n_prompt : 1;
    }
    if ((long long)n_prompt + want > n_ctx) {
        hp_openai_error_set(
            err, 400, INVALID,
            r->kind == HP_OAI_CHAT ? "messages" : "prompt",
            "context_length_exceeded",
            "This model's maximum context length is %d tokens. However, you "
            "requested %lld tokens (%d in the %s, %lld in the completion). "
            "Please reduce the length of the %s or completion.",
            n_ctx, (long long)n_prompt + want, n_prompt,
            r->kind == HP_OAI_CHAT ? "messages" : "prompt", want,
            r->kind == HP_OAI_CHAT ? "messages" : "prompt");
        return HP_ERR_RANGE;
    }
    r->gen.max_tokens = (int)want;
    return HP_OK;
}
