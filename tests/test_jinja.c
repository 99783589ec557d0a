/* test_jinja.c: spec for engine/jinja*.c, the chat-template interpreter.
 *
 * Each case states one behaviour: a construct and its output, whitespace
 * control as @huggingface/jinja applies it (trim_blocks, lstrip_blocks,
 * "-" markers), errors found at parse time with line and column,
 * runtime errors with the template's own message, content marks kept
 * through filters and concatenation, and no crash on random bytes. The
 * byte-for-byte comparison with the reference on real templates is
 * tests/node/chat_template.test.mjs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/chat.h"
#include "engine/jinja.h"

/* Render tmpl with the JSON context ctx ("{}" if NULL); returns a malloc'd
 * string, or NULL with eb filled. */
static char *render_eb(const char *tmpl, const char *ctx, hp_errbuf *eb)
{
    hp_jinja *t = NULL;
    if (hp_jinja_parse(tmpl, strlen(tmpl), &t, eb) != HP_OK)
        return NULL;
    json_error_t je;
    json_t *c = json_loads(ctx ? ctx : "{}", 0, &je);
    assert_non_null(c);
    hp_jinja_out out = {0};
    char *s = NULL;
    if (hp_jinja_render(t, c, &out, eb) == HP_OK)
        s = hp_jinja_out_join(&out, NULL);
    hp_jinja_out_free(&out);
    json_decref(c);
    hp_jinja_free(t);
    return s;
}

static void check(const char *tmpl, const char *ctx, const char *want)
{
    hp_errbuf eb = {{0}};
    char *got = render_eb(tmpl, ctx, &eb);
    if (!got)
        fail_msg("template %s failed: %s", tmpl, eb.msg);
    if (strcmp(got, want) != 0)
        fail_msg("template %s\n got: [%s]\nwant: [%s]", tmpl, got, want);
    free(got);
}

static void check_parse_error(const char *tmpl, const char *want_sub)
{
    hp_jinja *t = NULL;
    hp_errbuf eb = {{0}};
    assert_int_equal(hp_jinja_parse(tmpl, strlen(tmpl), &t, &eb),
                     HP_ERR_FORMAT);
    assert_null(t);
    if (!strstr(eb.msg, want_sub))
        fail_msg("error [%s] lacks [%s]", eb.msg, want_sub);
}

static void check_render_error(const char *tmpl, const char *ctx,
                               const char *want_sub)
{
    hp_errbuf eb = {{0}};
    char *got = render_eb(tmpl, ctx, &eb);
    if (got)
        fail_msg("template %s rendered [%s], expected an error", tmpl, got);
    if (!strstr(eb.msg, want_sub))
        fail_msg("error [%s] lacks [%s]", eb.msg, want_sub);
}

/* ---- expressions ------------------------------------------------------------ */

static void jinja_literals_print_like_javascript(void **state)
{
    (void)state;
    check("{{ 1 }}|{{ -2 }}|{{ 1.5 }}|{{ 2.0 }}|{{ true }}|{{ False }}|"
          "{{ none }}|{{ None }}|{{ 'a\\'b\\n' }}|{{ \"x\" 'y' }}",
          NULL, "1|-2|1.5|2.0|true|false|||a'b\n|xy");
    check("{{ [1, 'a', none] }}|{{ {'k': 1, 'b': [true]} }}", NULL,
          "[1, \"a\", null]|{\"k\": 1, \"b\": [true]}");
    check("{{ 0.1 + 0.2 }}|{{ 10 / 4 }}|{{ 7 // 2 }}|{{ 7 % 3 }}|{{ 2 ** 10 }}"
          "|{{ 3 * 1.0 }}",
          NULL, "0.30000000000000004|2.5|3|1|1024|3.0");
}

static void jinja_operators(void **state)
{
    (void)state;
    check("{{ 'a' + 'b' }}{{ 'n' ~ 1 ~ 2.0 }}{{ 'x' + 3 }}", NULL, "abn12x3");
    check("{{ 1 < 2 and 2 <= 2 and 3 > 2 and 3 >= 3 and 1 != 2 }}", NULL,
          "true");
    check("{{ 'b' in 'abc' }}{{ 'z' not in 'abc' }}{{ 2 in [1, 2] }}"
          "{{ 'k' in {'k': 1} }}{{ 'q' in undefined_thing }}",
          NULL, "truetruetruetruefalse");
    check("{{ none or 'd' }}|{{ 'a' and 'b' }}|{{ not [] }}|{{ [] or 0 }}",
          NULL, "d|b|true|0");
    check("{{ 'y' if 1 > 2 else 'n' }}{{ 'a' if x else 'b' if y else 'c' }}",
          "{\"y\": 1}", "nb");
    check("{{ [1] + [2] }}{{ -x }}{{ +x }}", "{\"x\": 3}", "[1, 2]-33");
    check("{{ none == undefined_thing }}{{ 1 == 1.0 }}{{ '1' == 1 }}", NULL,
          "truetruetrue");
}

static void jinja_member_and_slices(void **state)
{
    (void)state;
    const char *ctx = "{\"m\": {\"role\": \"user\", \"list\": [1, 2, 3, 4]},"
                      " \"s\": \"héllo\"}";
    check("{{ m.role }}{{ m['role'] }}{{ m.list[0] }}{{ m.list[-1] }}"
          "{{ m.missing }}{{ m.list.length }}",
          ctx, "useruser144");
    check("{{ m.list[1:] }}{{ m.list[:2] }}{{ m.list[::-1] }}{{ m.list[1:3] }}"
          "{{ m.list[::2] }}",
          ctx, "[2, 3, 4][1, 2][4, 3, 2, 1][2, 3][1, 3]");
    check("{{ s[1:] }}|{{ s[::-1] }}|{{ s[1] }}|{{ s|length }}", ctx,
          "éllo|olléh|é|5");
    check("{{ none.attr }}{{ undefined_thing.attr }}", NULL, "");
}

static void jinja_string_methods(void **state)
{
    (void)state;
    check("{{ '  a b  '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ ' a'.lstrip() }}"
          "|{{ 'a\\n\\n'.rstrip('\\n') }}|{{ 'ab'.upper() }}|{{ 'AB'.lower() }}"
          "|{{ 'hello world'.title() }}|{{ 'hi'.capitalize() }}",
          NULL, "a b|a|a|a|AB|ab|Hello World|Hi");
    check("{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|"
          "{{ 'a,b,c'.split(',', 1) }}",
          NULL, "[\"a\", \"b\", \"\", \"c\"]|[\"a\", \"b\"]|[\"a\", \"b,c\"]");
    check("{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith(('x', 'c')) }}"
          "{{ 'aaa'.replace('a', 'b', 2) }}",
          NULL, "truetruebba");
    check("{{ '<think>x</think>\\n\\nok'.split('</think>')[-1].lstrip('\\n') }}",
          NULL, "ok");
}

static void jinja_dict_methods(void **state)
{
    (void)state;
    const char *ctx = "{\"d\": {\"b\": 1, \"a\": 2}}";
    check("{{ d.get('a') }}{{ d.get('z', 9) }}{{ d.get('z') }}"
          "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}"
          "{{ d.keys() }}{{ d.values() }}",
          ctx, "29b=1;a=2;[\"b\", \"a\"][1, 2]");
    check("{% for k in d %}{{ k }}{% endfor %}{{ d|length }}"
          "{% for k, v in d|items %}{{ v }}{% endfor %}",
          ctx, "ba212");
}

static void jinja_filters(void **state)
{
    (void)state;
    check("{{ '  x  '|trim }}|{{ 'ab'|upper }}|{{ [3, 1, 2]|sort }}|"
          "{{ [1, 2]|first }}{{ [1, 2]|last }}|{{ [1, 2]|reverse }}|"
          "{{ ['a', 'b']|join(', ') }}|{{ [1, 1, 2]|unique }}|{{ 3|string }}|"
          "{{ '42'|int + 1 }}|{{ '2.5'|float }}|{{ -3|abs }}|{{ 'x'|safe }}",
          NULL, "x|AB|[1, 2, 3]|12|[2, 1]|a, b|[1, 2]|3|43|2.5|3|x");
    check("{{ x|default('d') }}{{ ''|default('e', true) }}{{ 0|d('z') }}",
          NULL, "de0");
    check("{{ 'a\\nb\\n\\nc'|indent(2) }}|{{ 'a\\nb'|indent(2, true) }}", NULL,
          "a\n  b\n\n  c|  a\n  b");
    check("{{ 'abcb'|replace('b', 'X') }}|{{ 'abc'|list }}|{{ 'héllo'|length }}",
          NULL, "aXcX|[\"a\", \"b\", \"c\"]|5");
    const char *ms = "{\"ms\": [{\"role\": \"user\", \"n\": 1},"
                     " {\"role\": \"system\", \"n\": 2},"
                     " {\"role\": \"user\", \"n\": 3, \"x\": false}]}";
    check("{{ ms|selectattr('role', 'equalto', 'user')|map(attribute='n')"
          "|list }}|{{ ms|rejectattr('role', 'eq', 'user')|length }}|"
          "{{ ms|selectattr('x', 'defined')|length }}|"
          "{{ ms|map(attribute='zz', default='-')|join }}|"
          "{{ ms|sort(attribute='n', reverse=true)|map(attribute='n')|list }}",
          ms, "[1, 3]|1|1|---|[3, 2, 1]");
    check("{{ ['A', 'b']|map('lower')|join }}", NULL, "ab");
}

static void jinja_tojson_matches_reference(void **state)
{
    (void)state;
    const char *ctx = "{\"t\": {\"name\": \"f\", \"z\": 1.5, \"a\": [1, 2.0, "
                      "{}], \"s\": \"Zürich \\\"q\\\"\\n\\u0001\", "
                      "\"n\": null, \"b\": true, \"e\": []}}";
    check("{{ t|tojson }}", ctx,
          "{\"name\": \"f\", \"z\": 1.5, \"a\": [1, 2, {}], "
          "\"s\": \"Zürich \\\"q\\\"\\n\\u0001\", \"n\": null, \"b\": true, "
          "\"e\": []}");
    check("{{ t.a|tojson(indent=2) }}", ctx, "[\n  1,\n  2,\n  {}\n]");
    check("{{ {'k': [1]}|tojson(indent=2) }}", NULL,
          "{\n  \"k\": [\n    1\n  ]\n}");
    check("{{ t.s|tojson(ensure_ascii=true) }}", ctx,
          "\"Z\\u00fcrich \\\"q\\\"\\n\\u0001\"");
    check("{{ {'b': 1, 'a': 2}|tojson(sort_keys=true) }}", NULL,
          "{\"a\": 2, \"b\": 1}");
    check("{{ {'b': 1, 'a': 2}|tojson(separators=(',', ':')) }}", NULL,
          "{\"b\":1,\"a\":2}");
}

static void jinja_tests(void **state)
{
    (void)state;
    check("{{ x is defined }}{{ y is undefined }}{{ n is none }}"
          "{{ n is not none }}{{ s is string }}{{ d is mapping }}"
          "{{ l is iterable }}{{ s is iterable }}{{ d is iterable }}"
          "{{ 3 is odd }}{{ 4 is even }}{{ 1 is number }}{{ 1.5 is float }}"
          "{{ 1 is integer }}{{ true is boolean }}{{ b is true }}"
          "{{ 'ab' is lower }}{{ 'AB' is upper }}{{ range is callable }}",
          "{\"x\": 1, \"n\": null, \"s\": \"a\", \"d\": {}, \"l\": [],"
          " \"b\": true}",
          "truetruetruefalsetruetruetruetruefalsetruetruetruetruetrue"
          "truetruetruetruetrue");
}

/* ---- statements ---------------------------------------------------------- */

static void jinja_for_loop_variables(void **state)
{
    (void)state;
    check("{% for x in xs %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}"
          "{{ loop.last }}{{ loop.length }}{{ loop.revindex }}{{ x }};"
          "{% endfor %}",
          "{\"xs\": [\"a\", \"b\"]}",
          "10truefalse22a;21falsetrue21b;");
    check("{% for x in xs if x > 1 %}{{ x }}{{ loop.length }}{% endfor %}",
          "{\"xs\": [1, 2, 3]}", "2232");
    check("{% for x in [] %}a{% else %}empty{% endfor %}", NULL, "empty");
    check("{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }}{% endfor %}", NULL,
          "37");
    check("{% for x in range(5) %}{% if x == 1 %}{% continue %}{% endif %}"
          "{% if x == 3 %}{% break %}{% endif %}{{ x }}{% endfor %}",
          NULL, "02");
    check("{% for x in range(1, 7, 2) %}{{ x }}{% endfor %}"
          "{% for x in range(3, 0, -1) %}{{ x }}{% endfor %}",
          NULL, "135321");
    check("{% for x in xs %}{{ loop.previtem }}>{{ loop.nextitem }} "
          "{% endfor %}",
          "{\"xs\": [1, 2, 3]}", ">2 1>3 2> ");
}

static void jinja_if_elif_else(void **state)
{
    (void)state;
    const char *t = "{% if x == 1 %}one{% elif x == 2 %}two{% elif x == 3 %}"
                    "three{% else %}many{% endif %}";
    check(t, "{\"x\": 1}", "one");
    check(t, "{\"x\": 2}", "two");
    check(t, "{\"x\": 3}", "three");
    check(t, "{\"x\": 9}", "many");
}

static void jinja_set_and_scopes(void **state)
{
    (void)state;
    check("{% set a = 1 %}{% set b, c = [2, 3] %}{{ a }}{{ b }}{{ c }}", NULL,
          "123");
    check("{% set x = 'out' %}{% for i in [1] %}{% set x = 'in' %}{{ x }}"
          "{% endfor %}{{ x }}",
          NULL, "inout");
    check("{% set ns = namespace(n=0, s='') %}{% for i in [1, 2, 3] %}"
          "{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}",
          NULL, "6");
    check("{% set blk %}a{{ 1 + 1 }}b{% endset %}[{{ blk }}]", NULL, "[a2b]");
    check("{% if true %}{% set y = 5 %}{% endif %}{{ y }}", NULL, "5");
}

static void jinja_macros_and_call(void **state)
{
    (void)state;
    check("{% macro greet(name, p='Hi') %}{{ p }} {{ name }}{% endmacro %}"
          "{{ greet('a') }}|{{ greet('b', p='Yo') }}|{{ greet(name='c') }}",
          NULL, "Hi a|Yo b|Hi c");
    check("{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>"
          "{% endmacro %}{% call wrap('b') %}bold{% endcall %}",
          NULL, "<b>bold</b>");
    check("{% macro m() %}{{ kwargs.x }}{{ varargs }}{% endmacro %}"
          "{{ m(1, 2, x=3) }}",
          NULL, "3[1, 2]");
    check("{% filter upper %}abc{{ 'd' }}{% endfilter %}", NULL, "ABCD");
    check("{# a comment #}x{#- trims -#}  y", NULL, "xy");
}

static void jinja_strftime_now_reads_hotpath_now(void **state)
{
    (void)state;
    setenv("HOTPATH_NOW", "2024-07-26T09:05", 1);
    check("{{ strftime_now('%d %b %Y %H:%M %B %%') }}", NULL,
          "26 Jul 2024 09:05 July %");
    unsetenv("HOTPATH_NOW");
}

/* ---- whitespace ---------------------------------------------------------- */

static void jinja_whitespace_control(void **state)
{
    (void)state;
    /* trim_blocks: the newline after a block tag goes */
    check("{% if true %}\nA\n{% endif %}\nB", NULL, "A\nB");
    /* lstrip_blocks: spaces before a block tag on its line go */
    check("x\n    {% if true %}y{% endif %}", NULL, "x\ny");
    /* but not before an expression */
    check("x\n    {{ 'y' }}", NULL, "x\n    y");
    check("a   {%- if true -%}   b   {%- endif -%}   c", NULL, "abc");
    check("a  {{- 'b' -}}  c", NULL, "abc");
    /* one trailing newline of the template is dropped, as Jinja does */
    check("a\n", NULL, "a");
    check("a\n\n", NULL, "a\n");
    check("{%- for x in [1, 2] %}\n  {{- x }}\n{%- endfor %}", NULL, "12");
}

/* ---- errors -------------------------------------------------------------- */

static void jinja_parse_errors_name_line_and_column(void **state)
{
    (void)state;
    check_parse_error("a\nb\n{{ x | foo }}",
                      "chat template: line 3, column 8: unknown filter 'foo'");
    check_parse_error("{% if x is frob %}{% endif %}",
                      "line 1, column 12: unknown test 'frob'");
    check_parse_error("{% frob %}", "line 1, column 4: unknown statement 'frob'");
    check_parse_error("{% if x %}", "missing {% endif %}");
    check_parse_error("{% for x in y %}{% endif %}",
                      "line 1, column 20: unexpected {% endif %}");
    check_parse_error("{{ 'abc }}", "unterminated string");
    check_parse_error("{{ x ? y }}", "unexpected character '?'");
    check_parse_error("{{ (1 }}", "expected ')'");
    check_parse_error("{# open", "missing end of comment");
    check_parse_error("{{ f(a=1, 2) }}", "positional argument follows");
    check_parse_error("{% set 1 = 2 %}", "cannot assign");
}

static void jinja_runtime_errors(void **state)
{
    (void)state;
    check_render_error("{{ raise_exception('Roles must alternate') }}", NULL,
                       "Roles must alternate");
    hp_errbuf eb = {{0}};
    assert_null(render_eb("{{ raise_exception('Exact message') }}", NULL, &eb));
    assert_string_equal(eb.msg, "Exact message");
    check_render_error("{{ x|trim }}", "{\"x\": null}",
                       "cannot apply filter 'trim' to none");
    check_render_error("\n{{ 'a' + none }}", NULL, "line 2, column 8");
    check_render_error("{{ foo() }}", NULL, "'foo' is undefined");
    check_render_error("{% set d = {} %}{% set d.x = 1 %}", NULL,
                       "namespace");
    check_render_error("{{ 1 // 0 }}", NULL, "by zero");
    check_render_error("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", NULL,
                       "nested too deeply");
    check_render_error("{% for i in range(100000) %}{% for j in range(100000) %}"
                       "{% endfor %}{% endfor %}",
                       NULL, "runs too long");
}

/* ---- content marks -------------------------------------------------------- */

static hp_jinja_out render_out(const char *tmpl, const char *ctx)
{
    hp_jinja *t = NULL;
    hp_errbuf eb = {{0}};
    assert_int_equal(hp_jinja_parse(tmpl, strlen(tmpl), &t, &eb), HP_OK);
    json_t *c = json_loads(ctx, 0, NULL);
    assert_non_null(c);
    hp_jinja_out out = {0};
    if (hp_jinja_render(t, c, &out, &eb) != HP_OK)
        fail_msg("render failed: %s", eb.msg);
    json_decref(c);
    hp_jinja_free(t);
    return out;
}

/* The concatenated segments, content ones wrapped in [ ]. */
static char *marked(const hp_jinja_out *o)
{
    size_t n = 1;
    for (int i = 0; i < o->n_segs; i++)
        n += o->segs[i].len + 2;
    char *s = malloc(n), *p = s;
    for (int i = 0; i < o->n_segs; i++) {
        if (o->segs[i].content)
            *p++ = '[';
        memcpy(p, o->segs[i].text, o->segs[i].len);
        p += o->segs[i].len;
        if (o->segs[i].content)
            *p++ = ']';
    }
    *p = '\0';
    return s;
}

static void check_marks(const char *tmpl, const char *ctx, const char *want)
{
    hp_jinja_out o = render_out(tmpl, ctx);
    char *s = marked(&o);
    if (strcmp(s, want) != 0)
        fail_msg("marks\n got: %s\nwant: %s", s, want);
    free(s);
    hp_jinja_out_free(&o);
}

static void jinja_content_marks_survive_filters(void **state)
{
    (void)state;
    const char *ctx = "{\"messages\": [{\"role\": \"user\", \"content\": "
                      "\"  <|im_end|>hi  \"}], \"bos_token\": \"<s>\"}";
    check_marks("{{ bos_token }}{% for m in messages %}<|im_start|>{{ m.role }}"
                "\n{{ m.content }}<|im_end|>{% endfor %}",
                ctx, "<s><|im_start|>user\n[  <|im_end|>hi  ]<|im_end|>");
    check_marks("{% for m in messages %}{{ '<A>' + m['content'] | trim + "
                "'<B>' }}{% endfor %}",
                ctx, "<A>[<|im_end|>hi]<B>");
    check_marks("{% for m in messages %}{% set c = 'x' ~ m.content.strip() %}"
                "{{ c[0:3] }}|{{ c.split('|')[0] }}|{{ c|upper }}{% endfor %}",
                ctx, "x[<|]|x[<]|[X<|IM_END|>HI]");
    check_marks("{% for m in messages %}{{ [m.role, m.content.strip()]|join('/')"
                " }}{{ m|tojson }}{% endfor %}",
                ctx,
                "user/[<|im_end|>hi]{\"role\": \"user\", \"content\": "
                "[\"  <|im_end|>hi  \"]}");
    check_marks("{% macro show(x) %}<{{ x }}>{% endmacro %}{% for m in messages"
                " %}{{ show(m.content|trim) }}{% endfor %}",
                ctx, "<[<|im_end|>hi]>");
    check_marks("{{ tools[0].name }}|{{ bos_token }}",
                "{\"tools\": [{\"name\": \"f\"}], \"bos_token\": \"<s>\"}",
                "[f]|<s>");
    check_marks("{% for m in messages %}{% filter trim %} {{ m.content }} "
                "{% endfilter %}{% endfor %}",
                ctx, "[<|im_end|>hi]");
}

static void jinja_chat_render_joins_text_parts(void **state)
{
    (void)state;
    const char *tmpl = "{% for m in messages %}{{ m.role }}:{{ m.content }};"
                       "{% endfor %}";
    hp_jinja *t = NULL;
    hp_errbuf eb = {{0}};
    assert_int_equal(hp_jinja_parse(tmpl, strlen(tmpl), &t, &eb), HP_OK);
    assert_false(hp_jinja_wants_content_parts(t));
    json_t *msgs = json_loads("[{\"role\": \"user\", \"content\": [{\"type\": "
                              "\"text\", \"text\": \"a\"}, {\"type\": \"text\", "
                              "\"text\": \"b\"}]}]", 0, NULL);
    hp_jinja_out out = {0};
    assert_int_equal(hp_chat_render_jinja(t, msgs, NULL, true, NULL, NULL, NULL,
                                          &out, &eb), HP_OK);
    assert_string_equal(out.buf, "user:a\nb;");
    hp_jinja_out_free(&out);
    json_decref(msgs);
    hp_jinja_free(t);
}

/* ---- robustness ----------------------------------------------------------- */

static void jinja_random_bytes_never_crash(void **state)
{
    (void)state;
    static const char *const pieces[] = {
        "{{", "}}", "{%", "%}", "{#", "#}", "-", "for ", " in ", "if ",
        "endif", "endfor", "x", "messages", "'", "\"", "(", ")", "[", "]",
        "|", "trim", ".", ":", ",", "=", "set ", "macro ", "1", "\\", "\n",
        " ", "loop", "+", "~", "not ", "is ", "none", "{", "}", "else",
        "raise_exception", "namespace(", "tojson", "**", "*"};
    const size_t np = sizeof pieces / sizeof pieces[0];
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    char buf[512];
    const char *ctx = "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}],"
                      " \"x\": [1, 2], \"add_generation_prompt\": true}";
    json_t *c = json_loads(ctx, 0, NULL);
    int parsed = 0;
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = 0;
        int n = (int)(rng % 24) + 1;
        for (int k = 0; k < n; k++) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            if (rng % 5 == 0) {
                buf[len++] = (char)(rng >> 24); /* a raw byte */
            } else {
                const char *p = pieces[(rng >> 8) % np];
                size_t pl = strlen(p);
                if (len + pl >= sizeof buf)
                    break;
                memcpy(buf + len, p, pl);
                len += pl;
            }
        }
        hp_jinja *t = NULL;
        hp_errbuf eb = {{0}};
        if (hp_jinja_parse(buf, len, &t, &eb) == HP_OK) {
            parsed++;
            hp_jinja_out out = {0};
            hp_jinja_render(t, c, &out, &eb);
            hp_jinja_out_free(&out);
            hp_jinja_free(t);
        } else {
            assert_non_null(strstr(eb.msg, "chat template"));
        }
    }
    assert_true(parsed > 100);
    json_decref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(jinja_literals_print_like_javascript),
        cmocka_unit_test(jinja_operators),
        cmocka_unit_test(jinja_member_and_slices),
        cmocka_unit_test(jinja_string_methods),
        cmocka_unit_test(jinja_dict_methods),
        cmocka_unit_test(jinja_filters),
        cmocka_unit_test(jinja_tojson_matches_reference),
        cmocka_unit_test(jinja_tests),
        cmocka_unit_test(jinja_for_loop_variables),
        cmocka_unit_test(jinja_if_elif_else),
        cmocka_unit_test(jinja_set_and_scopes),
        cmocka_unit_test(jinja_macros_and_call),
        cmocka_unit_test(jinja_strftime_now_reads_hotpath_now),
        cmocka_unit_test(jinja_whitespace_control),
        cmocka_unit_test(jinja_parse_errors_name_line_and_column),
        cmocka_unit_test(jinja_runtime_errors),
        cmocka_unit_test(jinja_content_marks_survive_filters),
        cmocka_unit_test(jinja_chat_render_joins_text_parts),
        cmocka_unit_test(jinja_random_bytes_never_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
