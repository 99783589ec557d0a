/* jinja_lex.c: owns template tokenizing (hp_jinja__lex) and the error
 * position helper (hp_jinja__errat).
 *
 * Follows @huggingface/jinja's lexer step for step, because whitespace is
 * where renderers differ: first its preprocessing (drop one trailing
 * newline; lstrip_blocks removes spaces and tabs between a line start and
 * "{%", "{#" or "{-"; trim_blocks removes the newline after "%}", "#}" or
 * "-}"; the transformers-only {% generation %} tags are cut out), then
 * "{%-" / "{{-" / "{#-" trim the text before them and "-%}" / "-}}" / "-#}"
 * skip the whitespace after. Those rewrites run over the raw text,
 * string literals included, exactly as the reference does. A position map
 * from the rewritten text back to the source keeps line/column right.
 * Knows nothing of the syntax tree. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/jinja_int.h"

hp_err hp_jinja__errat(hp_errbuf *eb, hp_err code, const char *src,
                       size_t len, size_t pos, const char *fmt, ...)
{
    if (!eb)
        return code;
    int line = 1, col = 1;
    for (size_t i = 0; i < pos && i < len; i++) {
        if (src[i] == '\n') {
            line++;
            col = 1;
        } else if (((unsigned char)src[i] & 0xC0) != 0x80) {
            col++;
        }
    }
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(eb->msg, sizeof eb->msg, "chat template: line %d, column %d: %s",
             line, col, what);
    return code;
}

/* ---- rewritten text with a position map ---------------------------------- */

typedef struct ptext {
    char *s;
    size_t *pos; /* pos[i]: source offset of s[i]; pos[n] = source length */
    size_t n;
} ptext;

static bool pt_alloc(ptext *t, size_t cap)
{
    t->s = malloc(cap + 1);
    t->pos = malloc((cap + 1) * sizeof *t->pos);
    t->n = 0;
    return t->s && t->pos;
}

static void pt_free(ptext *t)
{
    free(t->s);
    free(t->pos);
}

static void pt_push(ptext *t, char ch, size_t pos)
{
    t->s[t->n] = ch;
    t->pos[t->n] = pos;
    t->n++;
}

static void pt_end(ptext *t, size_t srclen)
{
    t->s[t->n] = '\0';
    t->pos[t->n] = srclen;
}

/* Length of the JavaScript whitespace character (\s) at s[i], or 0. */
static size_t ws_at(const char *s, size_t i, size_t n)
{
    unsigned char c = (unsigned char)s[i];
    if (c == ' ' || (c >= '\t' && c <= '\r'))
        return 1;
    if (c == 0xC2 && i + 1 < n && (unsigned char)s[i + 1] == 0xA0)
        return 2;
    if (c == 0xE1 && i + 2 < n && (unsigned char)s[i + 1] == 0x9A &&
        (unsigned char)s[i + 2] == 0x80)
        return 3;
    if (c == 0xE2 && i + 2 < n) {
        unsigned char d = (unsigned char)s[i + 1], e = (unsigned char)s[i + 2];
        if (d == 0x80 && (e <= 0x8A || e == 0xA8 || e == 0xA9 || e == 0xAF))
            return 3;
        if (d == 0x81 && e == 0x9F)
            return 3;
    }
    if (c == 0xE3 && i + 2 < n && (unsigned char)s[i + 1] == 0x80 &&
        (unsigned char)s[i + 2] == 0x80)
        return 3;
    if (c == 0xEF && i + 2 < n && (unsigned char)s[i + 1] == 0xBB &&
        (unsigned char)s[i + 2] == 0xBF)
        return 3;
    return 0;
}

/* Bytes of whitespace that end s[0..n) (JavaScript trimEnd). */
static size_t ws_tail(const char *s, size_t n)
{
    size_t k = n;
    while (k > 0) {
        size_t back = 1;
        while (back < 3 && back < k &&
               ((unsigned char)s[k - back] & 0xC0) == 0x80)
            back++;
        size_t w = ws_at(s, k - back, n);
        if (w != back)
            break;
        k -= back;
    }
    return n - k;
}

static bool is_line_start(const ptext *t, size_t i)
{
    if (i == 0)
        return true;
    char p = t->s[i - 1];
    if (p == '\n' || p == '\r')
        return true;
    return i >= 3 && (unsigned char)t->s[i - 3] == 0xE2 &&
           (unsigned char)t->s[i - 2] == 0x80 &&
           ((unsigned char)p == 0xA8 || (unsigned char)p == 0xA9);
}

/* lstrip_blocks: /^[ \t]*({[#%-])/gm -> "$1". */
static void pass_lstrip(const ptext *in, ptext *out)
{
    size_t i = 0;
    while (i < in->n) {
        if (is_line_start(in, i)) {
            size_t j = i;
            while (j < in->n && (in->s[j] == ' ' || in->s[j] == '\t'))
                j++;
            if (j > i && j + 1 < in->n && in->s[j] == '{' &&
                (in->s[j + 1] == '#' || in->s[j + 1] == '%' ||
                 in->s[j + 1] == '-'))
                i = j;
        }
        pt_push(out, in->s[i], in->pos[i]);
        i++;
    }
}

/* trim_blocks: /([#%-]})\n/g -> "$1". */
static void pass_trim(const ptext *in, ptext *out)
{
    size_t i = 0;
    while (i < in->n) {
        if (i + 2 < in->n && in->s[i + 1] == '}' && in->s[i + 2] == '\n' &&
            (in->s[i] == '#' || in->s[i] == '%' || in->s[i] == '-')) {
            pt_push(out, in->s[i], in->pos[i]);
            pt_push(out, '}', in->pos[i + 1]);
            i += 3;
            continue;
        }
        pt_push(out, in->s[i], in->pos[i]);
        i++;
    }
}

static bool ascii_ws(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* If s[i..] is {%-? (end)?generation -?%}, its end and strip flags. */
static bool gen_tag(const ptext *t, size_t i, size_t *end, bool *l, bool *r)
{
    const char *s = t->s;
    size_t n = t->n;
    if (i + 1 >= n || s[i] != '{' || s[i + 1] != '%')
        return false;
    size_t j = i + 2;
    *l = j < n && s[j] == '-';
    if (*l)
        j++;
    while (j < n && ascii_ws(s[j]))
        j++;
    if (j + 3 <= n && !memcmp(s + j, "end", 3) &&
        !(j + 10 <= n && !memcmp(s + j, "generation", 10)))
        j += 3;
    if (j + 10 > n || memcmp(s + j, "generation", 10) != 0)
        return false;
    j += 10;
    while (j < n && ascii_ws(s[j]))
        j++;
    *r = j < n && s[j] == '-';
    if (*r)
        j++;
    if (j + 2 > n || s[j] != '%' || s[j + 1] != '}')
        return false;
    *end = j + 2;
    return true;
}

/* Cut out {% generation %} / {% endgeneration %}, honouring -. */
static void pass_generation(const ptext *in, ptext *out)
{
    size_t i = 0, floor = 0; /* output before floor belongs to a match */
    while (i < in->n) {
        size_t end;
        bool l, r;
        if (in->s[i] == '{' && gen_tag(in, i, &end, &l, &r)) {
            if (l)
                while (out->n > floor && ascii_ws(out->s[out->n - 1]))
                    out->n--;
            i = end;
            if (r)
                while (i < in->n && ascii_ws(in->s[i]))
                    i++;
            else
                while (i < in->n && ascii_ws(in->s[i]))
                    pt_push(out, in->s[i], in->pos[i]), i++;
            floor = out->n;
            continue;
        }
        pt_push(out, in->s[i], in->pos[i]);
        i++;
    }
}

/* ---- tokens -------------------------------------------------------------- */

typedef struct lexer {
    hp_arena *a;
    const char *src; /* original, for error positions */
    size_t srclen;
    const ptext *t;
    size_t cur;
    jtok *toks;
    int n, cap;
    hp_errbuf *eb;
    hp_err err;
} lexer;

static bool lfail(lexer *L, size_t at, const char *fmt, const char *arg)
{
    if (L->err == HP_OK) {
        size_t p = at <= L->t->n ? L->t->pos[at] : L->srclen;
        L->err = hp_jinja__errat(L->eb, HP_ERR_FORMAT, L->src, L->srclen, p,
                                 fmt, arg);
    }
    return false;
}

static bool push(lexer *L, jtt type, const char *v, size_t len, size_t at)
{
    if (L->n == L->cap) {
        int nc = L->cap ? L->cap * 2 : 256;
        jtok *q = realloc(L->toks, (size_t)nc * sizeof *q);
        if (!q) {
            L->err = HP_ERR_NOMEM;
            return false;
        }
        L->toks = q;
        L->cap = nc;
    }
    char *copy = hp_arena_strndup(L->a, v, len);
    if (!copy) {
        L->err = HP_ERR_NOMEM;
        return false;
    }
    L->toks[L->n++] = (jtok){type, copy, len, L->t->pos[at]};
    return true;
}

static jtt last_type(const lexer *L)
{
    return L->n ? L->toks[L->n - 1].t : T_EOF;
}

/* "{%-" and friends: trim the Text token before (trimEnd). */
static void strip_trailing(lexer *L)
{
    if (L->n && L->toks[L->n - 1].t == T_TEXT) {
        jtok *k = &L->toks[L->n - 1];
        k->len -= ws_tail(k->v, k->len);
        ((char *)k->v)[k->len] = '\0';
        if (k->len == 0)
            L->n--;
    }
}

static void skip_ws(lexer *L)
{
    size_t w;
    while (L->cur < L->t->n && (w = ws_at(L->t->s, L->cur, L->t->n)) > 0)
        L->cur += w;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_word(char c)
{
    return is_digit(c) || c == '_' || (c >= 'a' && c <= 'z') ||
           (c >= 'A' && c <= 'Z');
}

static void put_utf8(char *o, size_t *k, unsigned cp)
{
    if (cp < 0x80) {
        o[(*k)++] = (char)cp;
    } else if (cp < 0x800) {
        o[(*k)++] = (char)(0xC0 | (cp >> 6));
        o[(*k)++] = (char)(0x80 | (cp & 0x3F));
    } else {
        o[(*k)++] = (char)(0xE0 | (cp >> 12));
        o[(*k)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[(*k)++] = (char)(0x80 | (cp & 0x3F));
    }
}

/* The reference's consumeWhile for string bodies: escapes decoded, and
 * reaching the end of input is an error. Stops before quote. */
static bool lex_string(lexer *L, char quote)
{
    const ptext *t = L->t;
    size_t start = L->cur - 1;
    char *o = malloc(t->n - L->cur + 1);
    size_t k = 0;
    if (!o) {
        L->err = HP_ERR_NOMEM;
        return false;
    }
    while (L->cur < t->n && t->s[L->cur] != quote) {
        if (t->s[L->cur] == '\\') {
            L->cur++;
            if (L->cur >= t->n) {
                free(o);
                return lfail(L, start, "unterminated string%s", "");
            }
            char e = t->s[L->cur++];
            if (e == 'x' || e == 'u') {
                size_t w = e == 'x' ? 2 : 4;
                unsigned cp = 0;
                for (size_t q = 0; q < w; q++) {
                    char h = L->cur + q < t->n ? t->s[L->cur + q] : 0;
                    int d = is_digit(h) ? h - '0'
                            : (h >= 'a' && h <= 'f') ? h - 'a' + 10
                            : (h >= 'A' && h <= 'F') ? h - 'A' + 10 : -1;
                    if (d < 0) {
                        free(o);
                        return lfail(L, L->cur - 2,
                                     "invalid hexadecimal escape \\%s", "x/u");
                    }
                    cp = cp * 16 + (unsigned)d;
                }
                L->cur += w;
                put_utf8(o, &k, cp);
                continue;
            }
            static const char from[] = "ntrbfv'\"\\", to[] = "\n\t\r\b\f\v'\"\\";
            const char *f = strchr(from, e);
            if (!e || !f) {
                char s[2] = {e, 0};
                free(o);
                return lfail(L, L->cur - 2, "unexpected escaped character: %s",
                             s);
            }
            o[k++] = to[f - from];
            continue;
        }
        o[k++] = t->s[L->cur++];
        if (L->cur >= t->n) {
            free(o);
            return lfail(L, start, "unterminated string%s", "");
        }
    }
    if (L->cur >= t->n) {
        free(o);
        return lfail(L, start, "unterminated string%s", "");
    }
    bool ok = push(L, T_STR, o, k, start);
    free(o);
    L->cur++; /* closing quote */
    return ok;
}

/* Digits (the reference errors when they run to the end of input). */
static bool lex_digits(lexer *L)
{
    while (L->cur < L->t->n && is_digit(L->t->s[L->cur])) {
        L->cur++;
        if (L->cur >= L->t->n)
            return lfail(L, L->cur - 1, "unexpected end of template%s", "");
    }
    return true;
}

static const struct {
    const char *seq;
    jtt t;
} table[] = {
    {"{%", T_OPEN_STMT}, {"%}", T_CLOSE_STMT}, {"{{", T_OPEN_EXPR},
    {"}}", T_CLOSE_EXPR}, {"(", T_LPAREN}, {")", T_RPAREN}, {"{", T_LBRACE},
    {"}", T_RBRACE}, {"[", T_LBRACKET}, {"]", T_RBRACKET}, {",", T_COMMA},
    {".", T_DOT}, {":", T_COLON}, {"|", T_PIPE}, {"<=", T_CMP},
    {">=", T_CMP}, {"==", T_CMP}, {"!=", T_CMP}, {"<", T_CMP}, {">", T_CMP},
    {"+", T_ADD}, {"-", T_ADD}, {"~", T_ADD}, {"**", T_POW}, {"*", T_MUL},
    {"//", T_MUL}, {"/", T_MUL}, {"%", T_MUL}, {"=", T_EQUALS},
};

static bool lex_one(lexer *L, int *curly)
{
    const ptext *t = L->t;
    const char *s = t->s;
    size_t n = t->n;
    jtt lt = last_type(L);
    if (lt == T_EOF || lt == T_CLOSE_STMT || lt == T_CLOSE_EXPR ||
        lt == T_COMMENT) {
        size_t st = L->cur;
        while (L->cur < n &&
               !(s[L->cur] == '{' && L->cur + 1 < n &&
                 (s[L->cur + 1] == '%' || s[L->cur + 1] == '{' ||
                  s[L->cur + 1] == '#')))
            L->cur++;
        if (L->cur > st)
            return push(L, T_TEXT, s + st, L->cur - st, st);
    }
    if (s[L->cur] == '{' && L->cur + 1 < n && s[L->cur + 1] == '#') {
        size_t st = L->cur;
        L->cur += 2;
        bool before = L->cur < n && s[L->cur] == '-';
        if (before)
            L->cur++;
        size_t cst = L->cur;
        while (L->cur >= n || s[L->cur] != '#' || L->cur + 1 >= n ||
               s[L->cur + 1] != '}') {
            if (L->cur + 2 >= n)
                return lfail(L, st, "missing end of comment tag '#}'%s", "");
            L->cur++;
        }
        size_t clen = L->cur - cst;
        bool after = clen > 0 && s[L->cur - 1] == '-';
        if (before)
            strip_trailing(L);
        if (!push(L, T_COMMENT, s + cst, clen - (after ? 1 : 0), st))
            return false;
        L->cur += 2;
        if (after)
            skip_ws(L);
        return true;
    }
    if (L->cur + 2 < n + 0 && s[L->cur] == '{' &&
        (s[L->cur + 1] == '%' || s[L->cur + 1] == '{') && s[L->cur + 2] == '-') {
        strip_trailing(L);
        bool stmt = s[L->cur + 1] == '%';
        if (!push(L, stmt ? T_OPEN_STMT : T_OPEN_EXPR, stmt ? "{%" : "{{", 2,
                  L->cur))
            return false;
        if (!stmt)
            *curly = 0;
        L->cur += 3;
        return true;
    }
    skip_ws(L);
    if (L->cur >= n)
        return true;
    if (L->cur + 2 < n + 0 && s[L->cur] == '-' &&
        (s[L->cur + 1] == '%' || s[L->cur + 1] == '}') && s[L->cur + 2] == '}') {
        bool stmt = s[L->cur + 1] == '%';
        if (!push(L, stmt ? T_CLOSE_STMT : T_CLOSE_EXPR, stmt ? "%}" : "}}",
                  2, L->cur))
            return false;
        L->cur += 3;
        skip_ws(L);
        return true;
    }
    char ch = s[L->cur];
    if (ch == '-' || ch == '+') {
        lt = last_type(L);
        if (lt == T_TEXT || lt == T_EOF) {
            char m[2] = {ch, 0};
            return lfail(L, L->cur, "unexpected character '%s'", m);
        }
        if (lt != T_NAME && lt != T_NUM && lt != T_STR && lt != T_RPAREN &&
            lt != T_RBRACKET) {
            size_t st = L->cur++;
            if (!lex_digits(L))
                return false;
            if (L->cur > st + 1 && L->cur + 1 < n && s[L->cur] == '.' &&
                is_digit(s[L->cur + 1])) {
                L->cur++;
                if (!lex_digits(L))
                    return false;
            }
            return push(L, L->cur > st + 1 ? T_NUM : T_UNARY, s + st,
                        L->cur - st, st);
        }
    }
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        size_t sl = strlen(table[i].seq);
        if (table[i].t == T_CLOSE_EXPR && *curly > 0)
            continue;
        if (L->cur + sl <= n && !memcmp(s + L->cur, table[i].seq, sl)) {
            if (!push(L, table[i].t, table[i].seq, sl, L->cur))
                return false;
            if (table[i].t == T_OPEN_EXPR)
                *curly = 0;
            else if (table[i].t == T_LBRACE)
                (*curly)++;
            else if (table[i].t == T_RBRACE)
                (*curly)--;
            L->cur += sl;
            return true;
        }
    }
    if (ch == '\'' || ch == '"') {
        L->cur++;
        return lex_string(L, ch);
    }
    if (is_digit(ch)) {
        size_t st = L->cur;
        if (!lex_digits(L))
            return false;
        if (last_type(L) != T_DOT && L->cur + 1 < n && s[L->cur] == '.' &&
            is_digit(s[L->cur + 1])) {
            L->cur++;
            if (!lex_digits(L))
                return false;
        }
        return push(L, T_NUM, s + st, L->cur - st, st);
    }
    if (is_word(ch)) {
        size_t st = L->cur;
        while (L->cur < n && is_word(s[L->cur])) {
            L->cur++;
            if (L->cur >= n)
                return lfail(L, st, "unexpected end of template%s", "");
        }
        return push(L, T_NAME, s + st, L->cur - st, st);
    }
    char m[8];
    if ((unsigned char)ch < 0x20 || (unsigned char)ch >= 0x7F)
        snprintf(m, sizeof m, "\\x%02X", (unsigned char)ch);
    else
        snprintf(m, sizeof m, "%c", ch);
    return lfail(L, L->cur, "unexpected character '%s'", m);
}

hp_err hp_jinja__lex(hp_arena *a, const char *src, size_t len, jtok **toks,
                     int *ntoks, hp_errbuf *eb)
{
    ptext p0 = {0}, p1 = {0}, p2 = {0}, p3 = {0};
    lexer L = {a, src, len, NULL, 0, NULL, 0, 0, eb, HP_OK};
    *toks = NULL;
    *ntoks = 0;
    if (!pt_alloc(&p0, len) || !pt_alloc(&p1, len) || !pt_alloc(&p2, len) ||
        !pt_alloc(&p3, len)) {
        L.err = HP_ERR_NOMEM;
        goto done;
    }
    size_t n = len;
    if (n > 0 && src[n - 1] == '\n')
        n--;
    for (size_t i = 0; i < n; i++)
        pt_push(&p0, src[i], i);
    pt_end(&p0, len);
    pass_lstrip(&p0, &p1);
    pt_end(&p1, len);
    pass_trim(&p1, &p2);
    pt_end(&p2, len);
    pass_generation(&p2, &p3);
    pt_end(&p3, len);
    L.t = &p3;
    int curly = 0;
    while (L.cur < p3.n && L.err == HP_OK)
        lex_one(&L, &curly);
    if (L.err == HP_OK && !push(&L, T_EOF, "", 0, p3.n))
        L.err = HP_ERR_NOMEM;
done:
    pt_free(&p0);
    pt_free(&p1);
    pt_free(&p2);
    pt_free(&p3);
    if (L.err != HP_OK) {
        free(L.toks);
        if (L.err == HP_ERR_NOMEM && eb)
            snprintf(eb->msg, sizeof eb->msg, "chat template: out of memory");
        return L.err;
    }
    *toks = L.toks;
    *ntoks = L.n;
    return HP_OK;
}
