/* chat.c: owns prompt rendering for chat messages (hp_chat_*).
 *
 * Detects a chat format from marker strings in the model's Jinja template
 * and renders it with hand-written C that follows each model family's
 * published template. Differences from the Jinja originals, all chosen so
 * that a valid request never fails:
 *   - templates that raise on unsupported roles or on non-alternating
 *     turns (Llama 2, Mistral, Gemma) render every role other than
 *     "assistant" (and a leading "system") as a user turn;
 *   - Zephyr and Phi-3 templates silently drop unknown roles; here they
 *     become user turns so no content is lost;
 *   - a system prompt in formats without a system role is merged into the
 *     first user turn: Llama 2 wraps it in <<SYS>>, Mistral and Gemma
 *     prepend it plus a blank line (as Mistral v0.3 and Gemma 3 do);
 *   - a system prompt with no turn to merge into becomes a turn of its own.
 * NULL roles or contents count as empty strings. Templates the Jinja engine
 * parses (engine/jinja.h) are rendered by it instead (hp_chat_render_jinja,
 * hp_chat_render_template), with the request's JSON messages as the
 * template's context. Knows nothing of tokens or HTTP. Exports chat.h;
 * included by nothing. */
#include "engine/chat.h"

#include <stdlib.h>
#include <string.h>

/* ---- string builder ------------------------------------------------------ */

typedef struct sb {
    char *s; /* owns */
    size_t len, cap;
    bool oom;
} sb;

static void sb_putn(sb *b, const char *s, size_t n)
{
    if (b->oom || n == 0)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 256;
        while (c < b->len + n + 1)
            c *= 2;
        char *q = realloc(b->s, c);
        if (!q) {
            b->oom = true;
            return;
        }
        b->s = q;
        b->cap = c;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_put(sb *b, const char *s)
{
    if (s)
        sb_putn(b, s, strlen(s));
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
           c == '\f';
}

/* Append s without leading and trailing ASCII whitespace (Jinja's trim,
 * Python's strip() on ASCII text). */
static void sb_put_trim(sb *b, const char *s)
{
    if (!s)
        return;
    size_t n = strlen(s);
    size_t i = 0;
    while (i < n && is_space(s[i]))
        i++;
    while (n > i && is_space(s[n - 1]))
        n--;
    sb_putn(b, s + i, n - i);
}

/* ---- helpers ------------------------------------------------------------- */

static const char *str(const char *s)
{
    return s ? s : "";
}

static bool role_is(const hp_chat_msg *m, const char *r)
{
    return m->role && strcmp(m->role, r) == 0;
}

/* Index of the first message after a leading system message, and that
 * system message's content (or NULL). */
static int split_system(const hp_chat_msg *msgs, int n, const char **sys)
{
    *sys = NULL;
    if (n > 0 && role_is(&msgs[0], "system")) {
        *sys = str(msgs[0].content);
        return 1;
    }
    return 0;
}

/* ---- detection ----------------------------------------------------------- */

hp_chat_format hp_chat_detect(const char *tmpl)
{
    if (!tmpl || !tmpl[0])
        return HP_CHAT_FALLBACK;
    if (strstr(tmpl, "<|im_start|>"))
        return HP_CHAT_CHATML;
    if (strstr(tmpl, "<|start_header_id|>"))
        return HP_CHAT_LLAMA3;
    if (strstr(tmpl, "<start_of_turn>"))
        return HP_CHAT_GEMMA;
    if (strstr(tmpl, "[INST]"))
        return strstr(tmpl, "<<SYS>>") ? HP_CHAT_LLAMA2 : HP_CHAT_MISTRAL;
    /* Zephyr and Phi-3 share <|user|>; Phi-3 closes turns with <|end|>,
     * Zephyr with eos_token (</s>). */
    if (strstr(tmpl, "<|user|>"))
        return strstr(tmpl, "<|end|>") ? HP_CHAT_PHI3 : HP_CHAT_ZEPHYR;
    return HP_CHAT_FALLBACK;
}

const char *hp_chat_format_name(hp_chat_format f)
{
    switch (f) {
    case HP_CHAT_FALLBACK:
        return "fallback";
    case HP_CHAT_CHATML:
        return "chatml";
    case HP_CHAT_LLAMA2:
        return "llama2";
    case HP_CHAT_LLAMA3:
        return "llama3";
    case HP_CHAT_MISTRAL:
        return "mistral";
    case HP_CHAT_ZEPHYR:
        return "zephyr";
    case HP_CHAT_PHI3:
        return "phi3";
    case HP_CHAT_GEMMA:
        return "gemma";
    }
    return "fallback";
}

/* ---- renderers ----------------------------------------------------------- */

/* "<role>: <content>\n" per message, then "assistant:" (docs/API.md). */
static void render_fallback(sb *b, const hp_chat_msg *m, int n, bool gen)
{
    for (int i = 0; i < n; i++) {
        sb_put(b, str(m[i].role));
        sb_put(b, ": ");
        sb_put(b, str(m[i].content));
        sb_put(b, "\n");
    }
    if (gen)
        sb_put(b, "assistant:");
}

/* <|im_start|>role\ncontent<|im_end|>\n ... <|im_start|>assistant\n */
static void render_chatml(sb *b, const hp_chat_msg *m, int n, bool gen)
{
    for (int i = 0; i < n; i++) {
        sb_put(b, "<|im_start|>");
        sb_put(b, str(m[i].role));
        sb_put(b, "\n");
        sb_put(b, str(m[i].content));
        sb_put(b, "<|im_end|>\n");
    }
    if (gen)
        sb_put(b, "<|im_start|>assistant\n");
}

/* bos, then <|start_header_id|>role<|end_header_id|>\n\ncontent|trim
 * <|eot_id|> per message (Meta Llama 3 Instruct). */
static void render_llama3(sb *b, const hp_chat_msg *m, int n, bool gen,
                          const char *bos)
{
    if (n > 0)
        sb_put(b, bos); /* the template writes bos_token before message 0 */
    for (int i = 0; i < n; i++) {
        sb_put(b, "<|start_header_id|>");
        sb_put(b, str(m[i].role));
        sb_put(b, "<|end_header_id|>\n\n");
        sb_put_trim(b, m[i].content);
        sb_put(b, "<|eot_id|>");
    }
    if (gen)
        sb_put(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

/* One Llama 2 user turn: bos[INST] strip(<<SYS>>..<</SYS>>\n\n + text)
 * [/INST]. */
static void llama2_user(sb *b, const char *sys, const char *text,
                        const char *bos)
{
    sb tmp = {NULL, 0, 0, false};
    if (sys) {
        sb_put(&tmp, "<<SYS>>\n");
        sb_put(&tmp, sys);
        sb_put(&tmp, "\n<</SYS>>\n\n");
    }
    sb_put(&tmp, text);
    if (tmp.oom)
        b->oom = true;
    sb_put(b, bos);
    sb_put(b, "[INST] ");
    sb_put_trim(b, tmp.s ? tmp.s : "");
    sb_put(b, " [/INST]");
    free(tmp.s);
}

/* Meta Llama 2 chat: no generation prompt (the [/INST] is one). */
static void render_llama2(sb *b, const hp_chat_msg *m, int n,
                          const char *bos, const char *eos)
{
    const char *sys;
    int i = split_system(m, n, &sys);
    for (; i < n; i++) {
        if (role_is(&m[i], "assistant")) {
            if (sys) {
                llama2_user(b, sys, "", bos);
                sys = NULL;
            }
            sb_put(b, " ");
            sb_put_trim(b, m[i].content);
            sb_put(b, " ");
            sb_put(b, eos);
        } else {
            llama2_user(b, sys, str(m[i].content), bos);
            sys = NULL;
        }
    }
    if (sys)
        llama2_user(b, sys, "", bos);
}

/* Mistral Instruct v0.1/v0.2: bos[INST] text [/INST]answer</s>... */
static void render_mistral(sb *b, const hp_chat_msg *m, int n,
                           const char *bos, const char *eos)
{
    const char *sys;
    int i = split_system(m, n, &sys);
    sb_put(b, bos);
    for (; i < n; i++) {
        if (role_is(&m[i], "assistant")) {
            if (sys) {
                sb_put(b, "[INST] ");
                sb_put(b, sys);
                sb_put(b, " [/INST]");
                sys = NULL;
            }
            sb_put(b, str(m[i].content));
            sb_put(b, eos);
        } else {
            sb_put(b, "[INST] ");
            if (sys) {
                sb_put(b, sys);
                sb_put(b, "\n\n");
                sys = NULL;
            }
            sb_put(b, str(m[i].content));
            sb_put(b, " [/INST]");
        }
    }
    if (sys) {
        sb_put(b, "[INST] ");
        sb_put(b, sys);
        sb_put(b, " [/INST]");
    }
}

/* Zephyr (<|role|>\ncontent + eos + \n) and Phi-3 (same with <|end|>):
 * both know system, user and assistant. */
static void render_tagged(sb *b, const hp_chat_msg *m, int n, bool gen,
                          const char *end)
{
    for (int i = 0; i < n; i++) {
        const char *r = "user";
        if (role_is(&m[i], "system") || role_is(&m[i], "assistant"))
            r = m[i].role;
        sb_put(b, "<|");
        sb_put(b, r);
        sb_put(b, "|>\n");
        sb_put(b, str(m[i].content));
        sb_put(b, end);
        sb_put(b, "\n");
    }
    if (gen)
        sb_put(b, "<|assistant|>\n");
}

/* Gemma: bos<start_of_turn>user\ntext<end_of_turn>\n, assistant is
 * "model"; the system prompt prefixes the first turn (Gemma 3). */
static void render_gemma(sb *b, const hp_chat_msg *m, int n, bool gen,
                         const char *bos)
{
    const char *sys;
    int i = split_system(m, n, &sys);
    sb_put(b, bos);
    if (sys && i == n) {
        sb_put(b, "<start_of_turn>user\n");
        sb_put(b, sys);
        sb_put(b, "<end_of_turn>\n");
    }
    for (; i < n; i++) {
        sb_put(b, "<start_of_turn>");
        sb_put(b, role_is(&m[i], "assistant") ? "model" : "user");
        sb_put(b, "\n");
        if (sys) {
            sb_put(b, sys);
            sb_put(b, "\n\n");
            sys = NULL;
        }
        sb_put_trim(b, m[i].content);
        sb_put(b, "<end_of_turn>\n");
    }
    if (gen)
        sb_put(b, "<start_of_turn>model\n");
}

char *hp_chat_render(hp_chat_format f, const hp_chat_msg *msgs, int n,
                     bool add_generation_prompt, const char *bos,
                     const char *eos)
{
    sb b = {NULL, 0, 0, false};
    bool gen = add_generation_prompt;
    if (!msgs || n < 0)
        n = 0;
    bos = str(bos);
    eos = str(eos);
    switch (f) {
    case HP_CHAT_CHATML:
        render_chatml(&b, msgs, n, gen);
        break;
    case HP_CHAT_LLAMA2:
        render_llama2(&b, msgs, n, bos, eos);
        break;
    case HP_CHAT_LLAMA3:
        render_llama3(&b, msgs, n, gen, bos);
        break;
    case HP_CHAT_MISTRAL:
        render_mistral(&b, msgs, n, bos, eos);
        break;
    case HP_CHAT_ZEPHYR:
        render_tagged(&b, msgs, n, gen, eos);
        break;
    case HP_CHAT_PHI3:
        render_tagged(&b, msgs, n, gen, "<|end|>");
        if (!gen)
            sb_put(&b, eos);
        break;
    case HP_CHAT_GEMMA:
        render_gemma(&b, msgs, n, gen, bos);
        break;
    case HP_CHAT_FALLBACK:
    default:
        render_fallback(&b, msgs, n, gen);
        break;
    }
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    if (!b.s)
        return calloc(1, 1); /* empty prompt */
    return b.s;
}

/* ---- Jinja templates --------------------------------------------------------- */

/* A content list of only {"type": "text", "text": s} parts, joined by
 * newlines (as the request parser flattens them), or NULL. */
static json_t *joined_text_parts(const json_t *content)
{
    size_t n = json_array_size(content);
    sb b = {NULL, 0, 0, false};
    for (size_t i = 0; i < n; i++) {
        json_t *part = json_array_get(content, i);
        json_t *type = json_object_get(part, "type");
        json_t *text = json_object_get(part, "text");
        if (!json_is_string(type) || strcmp(json_string_value(type), "text") ||
            !json_is_string(text)) {
            free(b.s);
            return NULL;
        }
        if (i)
            sb_putn(&b, "\n", 1);
        sb_putn(&b, json_string_value(text), json_string_length(text));
    }
    json_t *s = b.oom ? NULL : json_stringn(b.s ? b.s : "", b.len);
    free(b.s);
    return s;
}

hp_err hp_chat_render_jinja(const hp_jinja *t, const json_t *messages,
                            const json_t *tools, bool add_generation_prompt,
                            const char *bos, const char *eos,
                            const json_t *kwargs, hp_jinja_out *out,
                            hp_errbuf *eb)
{
    json_t *ctx = json_object();
    json_t *msgs = messages ? json_deep_copy(messages) : json_array();
    bool ok = ctx && msgs;
    if (ok && !hp_jinja_wants_content_parts(t)) {
        for (size_t i = 0; i < json_array_size(msgs); i++) {
            json_t *m = json_array_get(msgs, i);
            json_t *c = json_object_get(m, "content");
            json_t *s = json_is_array(c) ? joined_text_parts(c) : NULL;
            if (s)
                json_object_set_new(m, "content", s);
        }
    }
    if (ok && json_is_object(kwargs))
        ok = json_object_update(ctx, (json_t *)kwargs) == 0;
    ok = ok && json_object_set(ctx, "messages", msgs) == 0 &&
         json_object_set_new(ctx, "tools",
                             tools ? json_deep_copy(tools) : json_null()) == 0 &&
         json_object_set_new(ctx, "add_generation_prompt",
                             json_boolean(add_generation_prompt)) == 0;
    if (ok && bos)
        ok = json_object_set_new(ctx, "bos_token", json_string(bos)) == 0;
    if (ok && eos)
        ok = json_object_set_new(ctx, "eos_token", json_string(eos)) == 0;
    hp_err e = ok ? hp_jinja_render(t, ctx, out, eb)
                  : hp_errf(eb, HP_ERR_NOMEM, "chat template: out of memory");
    json_decref(msgs);
    json_decref(ctx);
    return e;
}

char *hp_chat_render_template(const char *tmpl, const hp_chat_msg *msgs,
                              int n, bool add_generation_prompt,
                              const char *bos, const char *eos,
                              hp_errbuf *eb)
{
    hp_jinja *t = NULL;
    hp_errbuf perr = {{0}};
    if (!tmpl || !tmpl[0] ||
        hp_jinja_parse(tmpl, strlen(tmpl), &t, &perr) != HP_OK) {
        char *s = hp_chat_render(hp_chat_detect(tmpl), msgs, n,
                                 add_generation_prompt, bos, eos);
        if (!s)
            hp_errf(eb, HP_ERR_NOMEM, "out of memory");
        return s;
    }
    json_t *arr = json_array();
    for (int i = 0; arr && msgs && i < n; i++)
        json_array_append_new(arr, json_pack("{s:s, s:s}", "role",
                                             str(msgs[i].role), "content",
                                             str(msgs[i].content)));
    hp_jinja_out out = {0};
    char *s = NULL;
    if (arr && hp_chat_render_jinja(t, arr, NULL, add_generation_prompt, bos,
                                    eos, NULL, &out, eb) == HP_OK) {
        s = hp_jinja_out_join(&out, NULL);
        if (!s)
            hp_errf(eb, HP_ERR_NOMEM, "out of memory");
    } else if (!arr) {
        hp_errf(eb, HP_ERR_NOMEM, "out of memory");
    }
    hp_jinja_out_free(&out);
    json_decref(arr);
    hp_jinja_free(t);
    return s;
}
