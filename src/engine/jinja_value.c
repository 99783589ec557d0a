/* jinja_value.c: owns the template interpreter's values: marked strings
 * and buffers (jstr, jbuf), lists, dicts, JSON in (jansson) and out
 * (tojson), printing, truthiness and equality.
 *
 * Printing and JSON follow @huggingface/jinja, which is JavaScript: numbers
 * print as JavaScript does (1e21, 0.1, but a float with no fraction prints
 * "2.0" in output and "2" in JSON and concatenation), booleans print
 * "true"/"false", and == is JavaScript's loose equality on plain values
 * (none == undefined) and identity on lists and dicts. Dicts keep insertion
 * order, so tojson writes keys as the request sent them. Knows nothing of
 * the syntax tree beyond error positions. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/jinja_int.h"

/* ---- jbuf ----------------------------------------------------------------- */

#define MAX_OUTPUT ((size_t)64 << 20) /* a render past this is runaway */

static bool buf_grow(jbuf *b, size_t n)
{
    if (b->oom)
        return false;
    if (b->len + n + 1 <= b->cap)
        return true;
    if (b->len + n > MAX_OUTPUT) {
        b->oom = true;
        return false;
    }
    size_t c = b->cap ? b->cap : 256;
    while (c < b->len + n + 1)
        c *= 2;
    char *q = realloc(b->p, c);
    if (!q) {
        b->oom = true;
        return false;
    }
    b->p = q;
    b->cap = c;
    return true;
}

static void mark(jbuf *b, size_t a, size_t e)
{
    if (a >= e || b->oom)
        return;
    if (b->nsp && b->sp[b->nsp - 1].b == a) {
        b->sp[b->nsp - 1].b = e;
        return;
    }
    if (b->nsp == b->spcap) {
        int nc = b->spcap ? b->spcap * 2 : 8;
        jspan *q = realloc(b->sp, (size_t)nc * sizeof *q);
        if (!q) {
            b->oom = true;
            return;
        }
        b->sp = q;
        b->spcap = nc;
    }
    b->sp[b->nsp++] = (jspan){a, e};
}

void hp_jinja__buf_put(jbuf *b, const char *s, size_t n, bool content)
{
    if (n == 0 || !buf_grow(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    if (content)
        mark(b, b->len, b->len + n);
    b->len += n;
    b->p[b->len] = '\0';
}

void hp_jinja__buf_puts(jbuf *b, const char *s)
{
    hp_jinja__buf_put(b, s, strlen(s), false);
}

void hp_jinja__buf_put_str(jbuf *b, const jstr *s)
{
    if (!s || s->len == 0 || !buf_grow(b, s->len))
        return;
    size_t base = b->len;
    memcpy(b->p + base, s->p, s->len);
    for (int i = 0; i < s->nspans; i++)
        mark(b, base + s->spans[i].a, base + s->spans[i].b);
    b->len += s->len;
    b->p[b->len] = '\0';
}

void hp_jinja__buf_truncate(jbuf *b, size_t len)
{
    if (len >= b->len)
        return;
    b->len = len;
    if (b->p)
        b->p[len] = '\0';
    while (b->nsp && b->sp[b->nsp - 1].a >= len)
        b->nsp--;
    if (b->nsp && b->sp[b->nsp - 1].b > len)
        b->sp[b->nsp - 1].b = len;
}

void hp_jinja__buf_free(jbuf *b)
{
    free(b->p);
    free(b->sp);
    memset(b, 0, sizeof *b);
}

jstr *hp_jinja__buf_str(hp_arena *a, const jbuf *b)
{
    jstr *s = hp_arena_alloc(a, sizeof *s);
    char *p = s ? hp_arena_strndup(a, b->p ? b->p : "", b->len) : NULL;
    jspan *sp = b->nsp ? hp_arena_alloc(a, (size_t)b->nsp * sizeof *sp)
                       : NULL;
    if (!p || (b->nsp && !sp))
        return NULL;
    if (b->nsp)
        memcpy(sp, b->sp, (size_t)b->nsp * sizeof *sp);
    *s = (jstr){p, b->len, sp, b->nsp};
    return s;
}

/* ---- jstr ----------------------------------------------------------------- */

jstr *hp_jinja__str(hp_arena *a, const char *s, size_t n, bool content)
{
    jstr *r = hp_arena_alloc(a, sizeof *r);
    char *p = r ? hp_arena_strndup(a, s, n) : NULL;
    if (!p)
        return NULL;
    *r = (jstr){p, n, NULL, 0};
    if (content && n) {
        jspan *sp = hp_arena_alloc(a, sizeof *sp);
        if (!sp)
            return NULL;
        *sp = (jspan){0, n};
        r->spans = sp;
        r->nspans = 1;
    }
    return r;
}

jstr *hp_jinja__substr(hp_arena *a, const jstr *s, size_t from, size_t to)
{
    if (to > s->len)
        to = s->len;
    if (from > to)
        from = to;
    jstr *r = hp_jinja__str(a, s->p + from, to - from, false);
    if (!r || !s->nspans)
        return r;
    jspan *sp = hp_arena_alloc(a, (size_t)s->nspans * sizeof *sp);
    if (!sp)
        return NULL;
    int k = 0;
    for (int i = 0; i < s->nspans; i++) {
        size_t x = s->spans[i].a > from ? s->spans[i].a : from;
        size_t y = s->spans[i].b < to ? s->spans[i].b : to;
        if (x < y)
            sp[k++] = (jspan){x - from, y - from};
    }
    r->spans = sp;
    r->nspans = k;
    return r;
}

jstr *hp_jinja__strcat(hp_arena *a, const jstr *x, const jstr *y)
{
    jbuf b = {0};
    hp_jinja__buf_put_str(&b, x);
    hp_jinja__buf_put_str(&b, y);
    jstr *r = b.oom ? NULL : hp_jinja__buf_str(a, &b);
    hp_jinja__buf_free(&b);
    return r;
}

bool hp_jinja__str_marked(const jstr *s)
{
    return s && s->nspans > 0;
}

/* ---- values ------------------------------------------------------------------ */

jv hp_jinja__mk_str(jctx *c, const char *s, size_t n)
{
    jv v = {JV_STR, {.s = hp_jinja__str(c->a, s, n, false)}};
    if (!v.u.s) {
        hp_jinja__oom(c);
        v.k = JV_UNDEF;
    }
    return v;
}

jv hp_jinja__mk_list(jctx *c, size_t cap)
{
    jv v = {JV_LIST, {.l = hp_arena_alloc(c->a, sizeof(jlist))}};
    if (v.u.l && cap) {
        v.u.l->v = hp_arena_alloc(c->a, cap * sizeof(jv));
        v.u.l->cap = v.u.l->v ? cap : 0;
    }
    if (!v.u.l) {
        hp_jinja__oom(c);
        v.k = JV_UNDEF;
    }
    return v;
}

bool hp_jinja__list_push(jctx *c, jlist *l, jv v)
{
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 8;
        jv *q = hp_arena_alloc(c->a, nc * sizeof *q);
        if (!q)
            return hp_jinja__oom(c);
        if (l->n)
            memcpy(q, l->v, l->n * sizeof *q);
        l->v = q;
        l->cap = nc;
    }
    l->v[l->n++] = v;
    return true;
}

jv hp_jinja__mk_dict(jctx *c)
{
    jv v = {JV_DICT, {.d = hp_arena_alloc(c->a, sizeof(jdict))}};
    if (!v.u.d) {
        hp_jinja__oom(c);
        v.k = JV_UNDEF;
    }
    return v;
}

jv *hp_jinja__dict_get(const jdict *d, const char *k, size_t n)
{
    for (size_t i = 0; d && i < d->n; i++)
        if (d->keys[i]->len == n && !memcmp(d->keys[i]->p, k, n))
            return &d->vals[i];
    return NULL;
}

bool hp_jinja__dict_set(jctx *c, jdict *d, jstr *k, jv v)
{
    jv *old = hp_jinja__dict_get(d, k->p, k->len);
    if (old) {
        *old = v;
        return true;
    }
    if (d->n == d->cap) {
        size_t nc = d->cap ? d->cap * 2 : 8;
        jstr **nk = hp_arena_alloc(c->a, nc * sizeof *nk);
        jv *nv = hp_arena_alloc(c->a, nc * sizeof *nv);
        if (!nk || !nv)
            return hp_jinja__oom(c);
        if (d->n) {
            memcpy(nk, d->keys, d->n * sizeof *nk);
            memcpy(nv, d->vals, d->n * sizeof *nv);
        }
        d->keys = nk;
        d->vals = nv;
        d->cap = nc;
    }
    d->keys[d->n] = k;
    d->vals[d->n] = v;
    d->n++;
    return true;
}

bool hp_jinja__truthy(jv v)
{
    switch (v.k) {
    case JV_UNDEF:
    case JV_NONE:
        return false;
    case JV_BOOL:
        return v.u.b;
    case JV_INT:
        return v.u.i != 0;
    case JV_FLOAT:
        return v.u.f != 0 && !isnan(v.u.f);
    case JV_STR:
        return v.u.s->len > 0;
    case JV_LIST:
        return v.u.l->n > 0;
    case JV_DICT:
        return v.u.d->n > 0;
    case JV_NS:
    case JV_FUNC:
    case JV_MACRO:
    case JV_METHOD:
        return true;
    }
    return false;
}

static bool numeric(jv v, double *d)
{
    if (v.k == JV_INT)
        *d = (double)v.u.i;
    else if (v.k == JV_FLOAT)
        *d = v.u.f;
    else if (v.k == JV_BOOL)
        *d = v.u.b;
    else
        return false;
    return true;
}

/* JavaScript's Number(string): whitespace-trimmed decimal, "" is 0. */
static double js_number(const jstr *s)
{
    const char *p = s->p, *e = s->p + s->len;
    while (p < e && (*p == ' ' || (*p >= '\t' && *p <= '\r')))
        p++;
    while (e > p && (e[-1] == ' ' || (e[-1] >= '\t' && e[-1] <= '\r')))
        e--;
    if (p == e)
        return 0;
    char tmp[64];
    if ((size_t)(e - p) >= sizeof tmp)
        return NAN;
    memcpy(tmp, p, (size_t)(e - p));
    tmp[e - p] = '\0';
    char *end;
    double d = strtod(tmp, &end);
    return *end ? NAN : d;
}

bool hp_jinja__equal(jv x, jv y)
{
    bool xn = x.k == JV_UNDEF || x.k == JV_NONE;
    bool yn = y.k == JV_UNDEF || y.k == JV_NONE;
    if (xn || yn)
        return xn && yn;
    double a, b;
    if (x.k == JV_STR && y.k == JV_STR)
        return x.u.s->len == y.u.s->len &&
               !memcmp(x.u.s->p, y.u.s->p, x.u.s->len);
    if (numeric(x, &a) && numeric(y, &b))
        return a == b;
    if (numeric(x, &a) && y.k == JV_STR)
        return a == js_number(y.u.s);
    if (x.k == JV_STR && numeric(y, &b))
        return js_number(x.u.s) == b;
    if (x.k != y.k)
        return false;
    switch (x.k) {
    case JV_LIST:
        return x.u.l == y.u.l;
    case JV_DICT:
    case JV_NS:
        return x.u.d == y.u.d;
    case JV_FUNC:
        return x.u.fn == y.u.fn;
    default:
        return false;
    }
}

const char *hp_jinja__kind_name(jv v)
{
    switch (v.k) {
    case JV_UNDEF:
        return "undefined";
    case JV_NONE:
        return "none";
    case JV_BOOL:
        return "boolean";
    case JV_INT:
        return "integer";
    case JV_FLOAT:
        return "float";
    case JV_STR:
        return "string";
    case JV_LIST:
        return "list";
    case JV_DICT:
        return "dict";
    case JV_NS:
        return "namespace";
    case JV_FUNC:
    case JV_MACRO:
    case JV_METHOD:
        return "function";
    }
    return "value";
}

/* ---- JSON in ------------------------------------------------------------------- */

jv hp_jinja__from_json(jctx *c, const json_t *j, bool content)
{
    jv v = {JV_NONE, {0}};
    if (c->err != HP_OK)
        return v;
    if (++c->depth > 2100) {
        hp_jinja__fail(c, NULL, "input JSON nested too deeply");
        c->depth--;
        return v;
    }
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        v = hp_jinja__mk_dict(c);
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)j, key, val)
        {
            if (v.k != JV_DICT)
                break;
            jstr *k = hp_jinja__str(c->a, key, strlen(key), false);
            if (!k || !hp_jinja__dict_set(c, v.u.d, k,
                                          hp_jinja__from_json(c, val, content)))
                break;
        }
        break;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(j);
        v = hp_jinja__mk_list(c, n);
        for (size_t i = 0; v.k == JV_LIST && i < n; i++)
            if (!hp_jinja__list_push(c, v.u.l,
                                     hp_jinja__from_json(
                                         c, json_array_get(j, i), content)))
                break;
        break;
    }
    case JSON_STRING:
        v.k = JV_STR;
        v.u.s = hp_jinja__str(c->a, json_string_value(j), json_string_length(j),
                              content);
        if (!v.u.s) {
            hp_jinja__oom(c);
            v.k = JV_NONE;
        }
        break;
    case JSON_INTEGER:
        v.k = JV_INT;
        v.u.i = json_integer_value(j);
        break;
    case JSON_REAL: {
        double d = json_real_value(j);
        /* JavaScript has one number type: 2.0 is the integer 2 */
        if (d == floor(d) && fabs(d) < 9007199254740992.0) {
            v.k = JV_INT;
            v.u.i = (int64_t)d;
        } else {
            v.k = JV_FLOAT;
            v.u.f = d;
        }
        break;
    }
    case JSON_TRUE:
    case JSON_FALSE:
        v.k = JV_BOOL;
        v.u.b = json_is_true(j);
        break;
    case JSON_NULL:
        break;
    }
    c->depth--;
    return v;
}

/* ---- printing --------------------------------------------------------------------- */

void hp_jinja__fmt_num(double d, char *buf, size_t cap)
{
    if (isnan(d)) {
        snprintf(buf, cap, "NaN");
        return;
    }
    if (isinf(d)) {
        snprintf(buf, cap, d < 0 ? "-Infinity" : "Infinity");
        return;
    }
    if (d == 0) {
        snprintf(buf, cap, "0");
        return;
    }
    char e[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(e, sizeof e, "%.*e", prec - 1, d);
        if (strtod(e, NULL) == d)
            break;
    }
    /* e: [-]D[.DDD]e[+-]XX */
    char digits[24];
    int k = 0, exp10;
    const char *q = e;
    bool neg = *q == '-';
    if (neg)
        q++;
    for (; *q && *q != 'e'; q++)
        if (*q != '.')
            digits[k++] = *q;
    exp10 = atoi(q + 1);
    while (k > 1 && digits[k - 1] == '0')
        k--;
    digits[k] = '\0';
    int n = exp10 + 1;
    char out[64];
    int o = 0;
    if (neg)
        out[o++] = '-';
    if (k <= n && n <= 21) {
        memcpy(out + o, digits, (size_t)k);
        o += k;
        for (int i = 0; i < n - k; i++)
            out[o++] = '0';
    } else if (0 < n && n <= 21) {
        memcpy(out + o, digits, (size_t)n);
        o += n;
        out[o++] = '.';
        memcpy(out + o, digits + n, (size_t)(k - n));
        o += k - n;
    } else if (-6 < n && n <= 0) {
        out[o++] = '0';
        out[o++] = '.';
        for (int i = 0; i < -n; i++)
            out[o++] = '0';
        memcpy(out + o, digits, (size_t)k);
        o += k;
    } else {
        out[o++] = digits[0];
        if (k > 1) {
            out[o++] = '.';
            memcpy(out + o, digits + 1, (size_t)(k - 1));
            o += k - 1;
        }
        o += snprintf(out + o, sizeof out - (size_t)o, "e%c%d",
                      n - 1 >= 0 ? '+' : '-', abs(n - 1));
    }
    out[o] = '\0';
    snprintf(buf, cap, "%s", out);
}

/* FloatValue.toString: whole numbers keep one decimal ("2.0"). */
static void fmt_float(double d, char *buf, size_t cap)
{
    if (d == 0 && signbit(d))
        snprintf(buf, cap, "-0.0");
    else if (isfinite(d) && d == floor(d) && fabs(d) < 1e21)
        snprintf(buf, cap, "%.1f", d);
    else
        hp_jinja__fmt_num(d, buf, cap);
}

bool hp_jinja__write_value(jctx *c, jbuf *b, jv v, const jnode *at)
{
    char num[64];
    switch (v.k) {
    case JV_UNDEF:
    case JV_NONE:
        return true;
    case JV_BOOL:
        hp_jinja__buf_puts(b, v.u.b ? "true" : "false");
        return true;
    case JV_INT:
        snprintf(num, sizeof num, "%lld", (long long)v.u.i);
        hp_jinja__buf_puts(b, num);
        return true;
    case JV_FLOAT:
        fmt_float(v.u.f, num, sizeof num);
        hp_jinja__buf_puts(b, num);
        return true;
    case JV_STR:
        hp_jinja__buf_put_str(b, v.u.s);
        return true;
    case JV_LIST:
    case JV_DICT:
    case JV_NS: {
        jjson_opts o = {-1, false, false, false, NULL, NULL};
        return hp_jinja__to_json(c, b, v, &o, 0, at);
    }
    case JV_FUNC:
    case JV_MACRO:
    case JV_METHOD:
        hp_jinja__buf_puts(b, "<function>");
        return true;
    }
    return true;
}

jstr *hp_jinja__to_str(jctx *c, jv v, const jnode *at)
{
    if (v.k == JV_STR)
        return v.u.s;
    jbuf b = {0};
    jstr *s = NULL;
    if (v.k == JV_NONE) {
        hp_jinja__buf_puts(&b, "None");
    } else if (v.k == JV_UNDEF) {
        /* prints as the empty string */
    } else if (v.k == JV_FLOAT) {
        char num[64];
        fmt_float(v.u.f, num, sizeof num);
        hp_jinja__buf_puts(&b, num);
    } else if (!hp_jinja__write_value(c, &b, v, at)) {
        hp_jinja__buf_free(&b);
        return NULL;
    }
    if (b.oom)
        hp_jinja__oom(c);
    else if (!(s = hp_jinja__buf_str(c->a, &b)))
        hp_jinja__oom(c);
    hp_jinja__buf_free(&b);
    return s;
}

/* ---- JSON out ---------------------------------------------------------------------- */

static void json_str_out(jbuf *b, const char *s, size_t n, bool ascii,
                        bool content)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = b->len;
    hp_jinja__buf_put(b, "\"", 1, false);
    for (size_t i = 0; i < n;) {
        unsigned char ch = (unsigned char)s[i];
        char esc[16];
        if (ch == '"' || ch == '\\') {
            esc[0] = '\\';
            esc[1] = (char)ch;
            hp_jinja__buf_put(b, esc, 2, false);
            i++;
        } else if (ch < 0x20) {
            const char *short_esc = ch == '\b' ? "\\b" : ch == '\f' ? "\\f"
                                    : ch == '\n' ? "\\n" : ch == '\r' ? "\\r"
                                    : ch == '\t' ? "\\t" : NULL;
            if (short_esc) {
                hp_jinja__buf_put(b, short_esc, 2, false);
            } else {
                snprintf(esc, sizeof esc, "\\u00%c%c", hex[ch >> 4],
                         hex[ch & 15]);
                hp_jinja__buf_put(b, esc, 6, false);
            }
            i++;
        } else if (ascii && ch >= 0x7F) {
            unsigned cp = ch;
            size_t w = 1;
            if (ch >= 0xF0 && i + 3 < n + 0) {
                cp = ((ch & 7u) << 18) | ((s[i + 1] & 63u) << 12) |
                     ((s[i + 2] & 63u) << 6) | (s[i + 3] & 63u);
                w = 4;
            } else if (ch >= 0xE0 && i + 2 < n) {
                cp = ((ch & 15u) << 12) | ((s[i + 1] & 63u) << 6) |
                     (s[i + 2] & 63u);
                w = 3;
            } else if (ch >= 0xC0 && i + 1 < n) {
                cp = ((ch & 31u) << 6) | (s[i + 1] & 63u);
                w = 2;
            }
            if (cp >= 0x10000) {
                unsigned v = cp - 0x10000;
                snprintf(esc, sizeof esc, "\\u%04x\\u%04x", 0xD800 + (v >> 10),
                         0xDC00 + (v & 0x3FF));
                hp_jinja__buf_put(b, esc, 12, false);
            } else {
                snprintf(esc, sizeof esc, "\\u%04x", cp);
                hp_jinja__buf_put(b, esc, 6, false);
            }
            i += w;
        } else {
            size_t j = i;
            while (j < n && (unsigned char)s[j] >= 0x20 && s[j] != '"' &&
                   s[j] != '\\' && !(ascii && (unsigned char)s[j] >= 0x7F))
                j++;
            hp_jinja__buf_put(b, s + i, j - i, false);
            i = j;
        }
    }
    hp_jinja__buf_put(b, "\"", 1, false);
    if (content)
        mark(b, start, b->len);
}

static void pad(jbuf *b, int indent, int depth)
{
    hp_jinja__buf_put(b, "\n", 1, false);
    for (int i = 0; i < indent * depth; i++)
        hp_jinja__buf_put(b, " ", 1, false);
}

static int cmp_keys(const void *x, const void *y)
{
    const jstr *a = *(jstr *const *)x, *b = *(jstr *const *)y;
    int r = memcmp(a->p, b->p, a->len < b->len ? a->len : b->len);
    return r ? r : (a->len > b->len) - (a->len < b->len);
}

bool hp_jinja__to_json(jctx *c, jbuf *b, jv v, const jjson_opts *o,
                       int depth, const jnode *at)
{
    char num[64];
    if (depth > 200)
        return hp_jinja__fail(c, at, "tojson: value nested too deeply "
                                     "(a namespace that contains itself?)");
    bool ind = o->indent > 0;
    const char *isep = o->item_sep ? o->item_sep : ind ? "," : ", ";
    const char *ksep = o->key_sep ? o->key_sep : ": ";
    switch (v.k) {
    case JV_UNDEF:
        hp_jinja__buf_puts(b, o->undef_null ? "null" : "undefined");
        return true;
    case JV_NONE:
        hp_jinja__buf_puts(b, "null");
        return true;
    case JV_BOOL:
        hp_jinja__buf_puts(b, v.u.b ? "true" : "false");
        return true;
    case JV_INT:
        snprintf(num, sizeof num, "%lld", (long long)v.u.i);
        hp_jinja__buf_puts(b, num);
        return true;
    case JV_FLOAT:
        if (!isfinite(v.u.f))
            snprintf(num, sizeof num, "null");
        else
            hp_jinja__fmt_num(v.u.f, num, sizeof num);
        hp_jinja__buf_puts(b, num);
        return true;
    case JV_STR:
        json_str_out(b, v.u.s->p, v.u.s->len, o->ensure_ascii,
                    v.u.s->nspans > 0);
        return true;
    case JV_LIST: {
        const jlist *l = v.u.l;
        hp_jinja__buf_puts(b, "[");
        for (size_t i = 0; i < l->n; i++) {
            if (i)
                hp_jinja__buf_puts(b, isep);
            if (ind)
                pad(b, o->indent, depth + 1);
            if (!hp_jinja__to_json(c, b, l->v[i], o, depth + 1, at))
                return false;
        }
        if (ind && l->n)
            pad(b, o->indent, depth);
        hp_jinja__buf_puts(b, "]");
        return true;
    }
    case JV_DICT:
    case JV_NS: {
        const jdict *d = v.u.d;
        size_t *order = malloc((d->n + 1) * sizeof *order);
        jstr **keys = malloc((d->n + 1) * sizeof *keys);
        if (!order || !keys) {
            free(order);
            free(keys);
            return hp_jinja__oom(c);
        }
        for (size_t i = 0; i < d->n; i++)
            keys[i] = d->keys[i];
        if (o->sort_keys)
            qsort(keys, d->n, sizeof *keys, cmp_keys);
        hp_jinja__buf_puts(b, "{");
        bool ok = true;
        for (size_t i = 0; ok && i < d->n; i++) {
            if (i)
                hp_jinja__buf_puts(b, isep);
            if (ind)
                pad(b, o->indent, depth + 1);
            json_str_out(b, keys[i]->p, keys[i]->len, o->ensure_ascii,
                        keys[i]->nspans > 0);
            hp_jinja__buf_puts(b, ksep);
            ok = hp_jinja__to_json(
                c, b, *hp_jinja__dict_get(d, keys[i]->p, keys[i]->len), o,
                depth + 1, at);
        }
        free(order);
        free(keys);
        if (!ok)
            return false;
        if (ind && d->n)
            pad(b, o->indent, depth);
        hp_jinja__buf_puts(b, "}");
        return true;
    }
    case JV_FUNC:
    case JV_MACRO:
    case JV_METHOD:
        return hp_jinja__fail(c, at, "cannot convert a function to JSON");
    }
    return true;
}
