/* test_chat.c: spec for engine/chat.c (format detection from real
 * templates, exact rendering per format, fallback, odd roles and content).
 * Expected strings are written out by hand from each model family's
 * published chat template. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/chat.h"

static const hp_chat_msg conv[] = {
    {"system", "You are terse."},
    {"user", "Hi!"},
    {"assistant", "Hello."},
    {"user", "What is 2+2?"},
};
#define N_CONV 4

static void check(hp_chat_format f, const hp_chat_msg *m, int n, bool gen,
                  const char *bos, const char *eos, const char *want)
{
    char *got = hp_chat_render(f, m, n, gen, bos, eos);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

/* ---- templates as published (tokenizer_config.json chat_template) ---- */

static const char *T_LLAMA3 =
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + "
    "'<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}"
    "{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";

static const char *T_CHATML =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + "
    "'\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
    "{% endif %}";

static const char *T_LLAMA2 =
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = "
    "messages[1:] %}{% set system_message = messages[0]['content'] %}"
    "{% else %}{% set loop_messages = messages %}{% set system_message = "
    "false %}{% endif %}{% for message in loop_messages %}"
    "{% if loop.index0 == 0 and system_message != false %}{% set content = "
    "'<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + "
    "message['content'] %}{% else %}{% set content = message['content'] %}"
    "{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' "
    "+ content.strip() + ' [/INST]' }}{% elif message['role'] == "
    "'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}"
    "{% endfor %}";

static const char *T_MISTRAL =
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == "
    "'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation "
    "roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + "
    "' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only "
    "user and assistant roles are supported!') }}{% endif %}{% endfor %}";

static const char *T_ZEPHYR =
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n"
    "{{ '<|user|>\\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'system' %}\n{{ '<|system|>\\n' + "
    "message['content'] + eos_token }}\n{% elif message['role'] == "
    "'assistant' %}\n{{ '<|assistant|>\\n'  + message['content'] + "
    "eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt "
    "%}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}";

static const char *T_PHI3 =
    "{% for message in messages %}{% if message['role'] == 'system' %}"
    "{{'<|system|>\\n' + message['content'] + '<|end|>\\n'}}{% elif "
    "message['role'] == 'user' %}{{'<|user|>\\n' + message['content'] + "
    "'<|end|>\\n'}}{% elif message['role'] == 'assistant' %}"
    "{{'<|assistant|>\\n' + message['content'] + '<|end|>\\n'}}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}"
    "{% else %}{{ eos_token }}{% endif %}";

static const char *T_GEMMA =
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}{% if (message['role'] == 'assistant') %}"
    "{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\\n' + message['content'] | "
    "trim + '<end_of_turn>\\n' }}{% endfor %}{% if add_generation_prompt %}"
    "{{'<start_of_turn>model\\n'}}{% endif %}";

static const char *T_ALPACA =
    "{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ '### Instruction:\\n' + message['content'] + '\\n\\n' }}{% else %}"
    "{{ '### Response:\\n' + message['content'] + '\\n\\n' }}{% endif %}"
    "{% endfor %}";

static void chat_detect_published_templates(void **st)
{
    (void)st;
    assert_int_equal(hp_chat_detect(T_LLAMA3), HP_CHAT_LLAMA3);
    assert_int_equal(hp_chat_detect(T_CHATML), HP_CHAT_CHATML);
    assert_int_equal(hp_chat_detect(T_LLAMA2), HP_CHAT_LLAMA2);
    assert_int_equal(hp_chat_detect(T_MISTRAL), HP_CHAT_MISTRAL);
    assert_int_equal(hp_chat_detect(T_ZEPHYR), HP_CHAT_ZEPHYR);
    assert_int_equal(hp_chat_detect(T_PHI3), HP_CHAT_PHI3);
    assert_int_equal(hp_chat_detect(T_GEMMA), HP_CHAT_GEMMA);
}

static void chat_detect_unknown_is_fallback(void **st)
{
    (void)st;
    assert_int_equal(hp_chat_detect(NULL), HP_CHAT_FALLBACK);
    assert_int_equal(hp_chat_detect(""), HP_CHAT_FALLBACK);
    assert_int_equal(hp_chat_detect(T_ALPACA), HP_CHAT_FALLBACK);
    assert_int_equal(hp_chat_detect("{{ messages }}"), HP_CHAT_FALLBACK);
}

static void chat_format_names(void **st)
{
    (void)st;
    assert_string_equal(hp_chat_format_name(HP_CHAT_FALLBACK), "fallback");
    assert_string_equal(hp_chat_format_name(HP_CHAT_CHATML), "chatml");
    assert_string_equal(hp_chat_format_name(HP_CHAT_LLAMA2), "llama2");
    assert_string_equal(hp_chat_format_name(HP_CHAT_LLAMA3), "llama3");
    assert_string_equal(hp_chat_format_name(HP_CHAT_MISTRAL), "mistral");
    assert_string_equal(hp_chat_format_name(HP_CHAT_ZEPHYR), "zephyr");
    assert_string_equal(hp_chat_format_name(HP_CHAT_PHI3), "phi3");
    assert_string_equal(hp_chat_format_name(HP_CHAT_GEMMA), "gemma");
    assert_non_null(hp_chat_format_name((hp_chat_format)99));
}

static void chat_render_fallback(void **st)
{
    (void)st;
    check(HP_CHAT_FALLBACK, conv, N_CONV, true, "<s>", "</s>",
          "system: You are terse.\nuser: Hi!\nassistant: Hello.\n"
          "user: What is 2+2?\nassistant:");
    check(HP_CHAT_FALLBACK, conv, N_CONV, false, NULL, NULL,
          "system: You are terse.\nuser: Hi!\nassistant: Hello.\n"
          "user: What is 2+2?\n");
    /* An unknown enum value renders the fallback too. */
    check((hp_chat_format)42, conv + 1, 1, true, NULL, NULL,
          "user: Hi!\nassistant:");
}

static void chat_render_chatml(void **st)
{
    (void)st;
    check(HP_CHAT_CHATML, conv, N_CONV, true, "<s>", "</s>",
          "<|im_start|>system\nYou are terse.<|im_end|>\n"
          "<|im_start|>user\nHi!<|im_end|>\n"
          "<|im_start|>assistant\nHello.<|im_end|>\n"
          "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
          "<|im_start|>assistant\n");
}

static void chat_render_llama3(void **st)
{
    (void)st;
    check(HP_CHAT_LLAMA3, conv, N_CONV, true, "<|begin_of_text|>",
          "<|eot_id|>",
          "<|begin_of_text|>"
          "<|start_header_id|>system<|end_header_id|>\n\nYou are terse."
          "<|eot_id|>"
          "<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>"
          "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>"
          "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?"
          "<|eot_id|>"
          "<|start_header_id|>assistant<|end_header_id|>\n\n");
    /* Content is trimmed (the template pipes it through | trim). */
    const hp_chat_msg m[] = {{"user", "  \n padded \t\n"}};
    check(HP_CHAT_LLAMA3, m, 1, false, NULL, NULL,
          "<|start_header_id|>user<|end_header_id|>\n\npadded<|eot_id|>");
}

static void chat_render_llama2(void **st)
{
    (void)st;
    check(HP_CHAT_LLAMA2, conv, N_CONV, true, "<s>", "</s>",
          "<s>[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nHi! [/INST]"
          " Hello. </s>"
          "<s>[INST] What is 2+2? [/INST]");
    /* Without a system prompt. */
    check(HP_CHAT_LLAMA2, conv + 1, 3, true, "<s>", "</s>",
          "<s>[INST] Hi! [/INST] Hello. </s><s>[INST] What is 2+2? [/INST]");
}

static void chat_render_mistral(void **st)
{
    (void)st;
    check(HP_CHAT_MISTRAL, conv, N_CONV, true, "<s>", "</s>",
          "<s>[INST] You are terse.\n\nHi! [/INST]Hello.</s>"
          "[INST] What is 2+2? [/INST]");
    check(HP_CHAT_MISTRAL, conv + 1, 3, true, "<s>", "</s>",
          "<s>[INST] Hi! [/INST]Hello.</s>[INST] What is 2+2? [/INST]");
}

static void chat_render_zephyr(void **st)
{
    (void)st;
    check(HP_CHAT_ZEPHYR, conv, N_CONV, true, "<s>", "</s>",
          "<|system|>\nYou are terse.</s>\n"
          "<|user|>\nHi!</s>\n"
          "<|assistant|>\nHello.</s>\n"
          "<|user|>\nWhat is 2+2?</s>\n"
          "<|assistant|>\n");
}

static void chat_render_phi3(void **st)
{
    (void)st;
    check(HP_CHAT_PHI3, conv, N_CONV, true, "<s>", "<|endoftext|>",
          "<|system|>\nYou are terse.<|end|>\n"
          "<|user|>\nHi!<|end|>\n"
          "<|assistant|>\nHello.<|end|>\n"
          "<|user|>\nWhat is 2+2?<|end|>\n"
          "<|assistant|>\n");
    /* Without a generation prompt the template ends with eos_token. */
    check(HP_CHAT_PHI3, conv + 1, 1, false, "<s>", "<|endoftext|>",
          "<|user|>\nHi!<|end|>\n<|endoftext|>");
}

static void chat_render_gemma(void **st)
{
    (void)st;
    check(HP_CHAT_GEMMA, conv, N_CONV, true, "<bos>", "<eos>",
          "<bos><start_of_turn>user\nYou are terse.\n\nHi!<end_of_turn>\n"
          "<start_of_turn>model\nHello.<end_of_turn>\n"
          "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n"
          "<start_of_turn>model\n");
    check(HP_CHAT_GEMMA, conv + 1, 1, false, "<bos>", "<eos>",
          "<bos><start_of_turn>user\nHi!<end_of_turn>\n");
}

static void chat_special_characters_verbatim(void **st)
{
    (void)st;
    /* Quotes, braces, Jinja syntax, backslashes, other formats' markers
     * and UTF-8 pass through untouched: rendering is not templating. */
    const char *c = "He said \"{{ x }}\" {% if %} \\n <|im_end|> [INST] "
                    "caf\xC3\xA9 \xF0\x9F\x98\x80 100%";
    const hp_chat_msg m[] = {{"user", c}};
    char want[512];
    snprintf(want, sizeof(want), "<|im_start|>user\n%s<|im_end|>\n"
             "<|im_start|>assistant\n", c);
    check(HP_CHAT_CHATML, m, 1, true, NULL, NULL, want);
    snprintf(want, sizeof(want), "user: %s\nassistant:", c);
    check(HP_CHAT_FALLBACK, m, 1, true, NULL, NULL, want);
    /* Embedded newlines survive (only the ends are trimmed). */
    const hp_chat_msg m2[] = {{"user", "line1\n\nline2"}};
    check(HP_CHAT_GEMMA, m2, 1, true, "", "",
          "<start_of_turn>user\nline1\n\nline2<end_of_turn>\n"
          "<start_of_turn>model\n");
}

static void chat_odd_roles_and_nulls_do_not_crash(void **st)
{
    (void)st;
    const hp_chat_msg m[] = {
        {"system", "S"},      {"user", "U"},     {"assistant", "A"},
        {"tool", "T-result"}, {NULL, NULL},      {"system", "late"},
        {"function", NULL},   {"user", "again"},
    };
    for (int f = HP_CHAT_FALLBACK; f <= HP_CHAT_GEMMA; f++) {
        for (int gen = 0; gen < 2; gen++) {
            char *s = hp_chat_render((hp_chat_format)f, m, 8, gen, NULL,
                                     NULL);
            assert_non_null(s);
            assert_non_null(strstr(s, "T-result")); /* content not lost */
            assert_non_null(strstr(s, "again"));
            free(s);
        }
        /* Zero messages, NULL array, negative count. */
        char *s = hp_chat_render((hp_chat_format)f, NULL, 3, true, "B", "E");
        assert_non_null(s);
        free(s);
        s = hp_chat_render((hp_chat_format)f, m, -1, false, "B", "E");
        assert_non_null(s);
        free(s);
        /* Only a system message: it is kept. */
        s = hp_chat_render((hp_chat_format)f, m, 1, true, NULL, NULL);
        assert_non_null(s);
        assert_non_null(strstr(s, "S"));
        free(s);
    }
    /* Formats without a tool role show it as a user turn. */
    const hp_chat_msg t[] = {{"tool", "42"}};
    check(HP_CHAT_MISTRAL, t, 1, true, "<s>", "</s>", "<s>[INST] 42 [/INST]");
    check(HP_CHAT_GEMMA, t, 1, false, "", "",
          "<start_of_turn>user\n42<end_of_turn>\n");
    check(HP_CHAT_PHI3, t, 1, true, "", "", "<|user|>\n42<|end|>\n"
                                            "<|assistant|>\n");
    /* ChatML and Llama 3 keep the role name. */
    check(HP_CHAT_CHATML, t, 1, false, "", "", "<|im_start|>tool\n42"
                                               "<|im_end|>\n");
    /* Llama 2 with a system prompt but no user turn yet. */
    check(HP_CHAT_LLAMA2, conv, 1, true, "<s>", "</s>",
          "<s>[INST] <<SYS>>\nYou are terse.\n<</SYS>> [/INST]");
}

/* The Jinja engine renders the published templates exactly as the
 * hand-written formats do on an alternating conversation (where both
 * follow the template; see chat.c for where the hand-written ones differ). */
static void chat_template_jinja_agrees_with_handwritten(void **st)
{
    (void)st;
    static const hp_chat_msg alt[] = {
        {"user", "Hi!"}, {"assistant", " Hello. "}, {"user", "What is 2+2?"}};
    const char *tmpls[] = {T_LLAMA3, T_CHATML, T_LLAMA2, T_MISTRAL,
                           T_ZEPHYR, T_PHI3, T_GEMMA};
    for (size_t i = 0; i < sizeof tmpls / sizeof tmpls[0]; i++) {
        for (int gen = 0; gen < 2; gen++) {
            hp_errbuf eb = {{0}};
            char *j = hp_chat_render_template(tmpls[i], alt, 3, gen, "<s>",
                                              "</s>", &eb);
            char *h = hp_chat_render(hp_chat_detect(tmpls[i]), alt, 3, gen,
                                     "<s>", "</s>");
            if (!j)
                fail_msg("template %zu: %s", i, eb.msg);
            if (strcmp(j, h) != 0)
                fail_msg("template %zu gen %d\njinja: [%s]\nhand:  [%s]", i,
                         gen, j, h);
            free(j);
            free(h);
        }
    }
}

/* A template that raises makes hp_chat_render_template fail with its
 * message; one that does not parse falls back to the detected format. */
static void chat_template_raise_and_unparsable(void **st)
{
    (void)st;
    hp_errbuf eb = {{0}};
    static const hp_chat_msg sys[] = {{"system", "S"}, {"user", "U"}};
    assert_null(hp_chat_render_template(T_GEMMA, sys, 2, true, "", "", &eb));
    assert_string_equal(eb.msg, "System role not supported");
    char *s = hp_chat_render_template("<|im_start|>{{ x | nope }}", sys, 2,
                                      true, NULL, NULL, &eb);
    assert_non_null(s);
    assert_string_equal(s, "<|im_start|>system\nS<|im_end|>\n<|im_start|>"
                           "user\nU<|im_end|>\n<|im_start|>assistant\n");
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(chat_detect_published_templates),
        cmocka_unit_test(chat_detect_unknown_is_fallback),
        cmocka_unit_test(chat_format_names),
        cmocka_unit_test(chat_render_fallback),
        cmocka_unit_test(chat_render_chatml),
        cmocka_unit_test(chat_render_llama3),
        cmocka_unit_test(chat_render_llama2),
        cmocka_unit_test(chat_render_mistral),
        cmocka_unit_test(chat_render_zephyr),
        cmocka_unit_test(chat_render_phi3),
        cmocka_unit_test(chat_render_gemma),
        cmocka_unit_test(chat_special_characters_verbatim),
        cmocka_unit_test(chat_odd_roles_and_nulls_do_not_crash),
        cmocka_unit_test(chat_template_jinja_agrees_with_handwritten),
        cmocka_unit_test(chat_template_raise_and_unparsable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
