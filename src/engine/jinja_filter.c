/* jinja_filter.c: owns the template library: filters (x | trim), tests
 * (x is defined), string and dict methods (s.strip(), d.get(k)) and the
 * global functions (raise_exception, range, namespace, strftime_now).
 *
 * Behaviour follows @huggingface/jinja 0.5.11 (the reference the tests
 * compare with), with small supersets where it would throw and Python's
 * jinja2 would not: strip/lstrip/rstrip honour a chars argument as Python
 * does, `map` also takes a filter name, `list`/`first`/`length` accept
 * strings, `d` is `default`, `count` is `length`. Case mapping is ASCII
 * only. Strings keep their content marks where the result is made of
 * pieces of the input (trim, strip, split, join, indent, slices); other
 * rewrites mark the whole result if any input was marked. Knows nothing of
 * the syntax tree except for error positions. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/jinja_int.h"

#define FAIL(...) hp_jinja__fail(c, at, __VA_ARGS__)

static const char *const filters[] = {
    "safe", "tojson", "list", "first", "last", "length", "count", "reverse",
    "sort", "join", "string", "unique", "upper", "lower", "title",
    "capitalize", "trim", "indent", "int", "float", "abs", "items", "bool",
    "default", "d", "selectattr", "rejectattr", "map", "replace",
    "dictsort", "round", NULL};

static const char *const tests[] = {
    "boolean", "callable", "odd", "even", "false", "true", "none", "string",
    "number", "integer", "float", "iterable", "mapping", "sequence", "lower",
    "upper", "defined", "undefined", "equalto", "eq", NULL};

static bool in_list(const char *const *l, const char *s)
{
    for (; *l; l++)
        if (!strcmp(*l, s))
            return true;
    return false;
}

bool hp_jinja__filter_known(const char *name)
{
    return in_list(filters, name);
}

bool hp_jinja__test_known(const char *name)
{
    return in_list(tests, name);
}

/* ---- argument helpers ------------------------------------------------------ */

typedef struct args {
    const jv *pos;
    int npos;
    const char *const *kwn;
    const jv *kwv;
    int nkw;
} args;

/* Positional i, else keyword name, else NULL. */
static const jv *arg(const args *a, int i, const char *name)
{
    if (i >= 0 && i < a->npos)
        return &a->pos[i];
    for (int k = 0; name && k < a->nkw; k++)
        if (!strcmp(a->kwn[k], name))
            return &a->kwv[k];
    return NULL;
}

static bool arg_bool(const args *a, int i, const char *name, bool def)
{
    const jv *v = arg(a, i, name);
    return v ? hp_jinja__truthy(*v) : def;
}

static jv mkbool(bool b)
{
    return (jv){JV_BOOL, {.b = b}};
}

static jv mkint(int64_t i)
{
    return (jv){JV_INT, {.i = i}};
}

static jv mkstr(jstr *s)
{
    return (jv){s ? JV_STR : JV_UNDEF, {.s = s}};
}

/* A new string from bytes, marked whole if any source was marked. */
static jv derived(jctx *c, const char *p, size_t n, bool marked)
{
    jstr *s = hp_jinja__str(c->a, p, n, marked);
    if (!s)
        hp_jinja__oom(c);
    return mkstr(s);
}

/* ---- UTF-8 helpers ----------------------------------------------------------- */

static size_t cp_len(const char *s, size_t i, size_t n)
{
    unsigned char ch = (unsigned char)s[i];
    size_t w = ch >= 0xF0 ? 4 : ch >= 0xE0 ? 3 : ch >= 0xC0 ? 2 : 1;
    if (i + w > n)
        return 1;
    for (size_t k = 1; k < w; k++)
        if (((unsigned char)s[i + k] & 0xC0) != 0x80)
            return 1;
    return w;
}

static size_t cp_count(const jstr *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->len; i += cp_len(s->p, i, s->len))
        n++;
    return n;
}

/* Whitespace JavaScript's trim() removes, at s[i]: byte length or 0. */
static size_t js_ws(const char *s, size_t i, size_t n)
{
    unsigned char ch = (unsigned char)s[i];
    if (ch == ' ' || (ch >= '\t' && ch <= '\r'))
        return 1;
    size_t w = cp_len(s, i, n);
    if (w == 2 && ch == 0xC2 && (unsigned char)s[i + 1] == 0xA0)
        return 2;
    if (w == 3) {
        unsigned cp = ((ch & 15u) << 12) | ((s[i + 1] & 63u) << 6) |
                      (s[i + 2] & 63u);
        if (cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
            cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000 ||
            cp == 0xFEFF)
            return 3;
    }
    return 0;
}

/* Does the character at s[i] (width w) appear in chars? */
static bool in_chars(const char *s, size_t i, size_t w, const jstr *chars)
{
    for (size_t k = 0; k < chars->len; k += cp_len(chars->p, k, chars->len)) {
        size_t cw = cp_len(chars->p, k, chars->len);
        if (cw == w && !memcmp(chars->p + k, s + i, w))
            return true;
    }
    return false;
}

static size_t strip_left(const jstr *s, const jstr *chars)
{
    size_t i = 0;
    while (i < s->len) {
        size_t w = chars ? cp_len(s->p, i, s->len) : js_ws(s->p, i, s->len);
        if (!w || (chars && !in_chars(s->p, i, w, chars)))
            break;
        i += w;
    }
    return i;
}

static size_t strip_right(const jstr *s, const jstr *chars, size_t from)
{
    size_t e = s->len;
    while (e > from) {
        size_t b = e - 1;
        while (b > from && ((unsigned char)s->p[b] & 0xC0) == 0x80 &&
               e - b < 4)
            b--;
        size_t w = cp_len(s->p, b, s->len);
        if (b + w != e) {
            b = e - 1;
            w = 1;
        }
        bool hit = chars ? in_chars(s->p, b, w, chars)
                         : js_ws(s->p, b, s->len) == w;
        if (!hit)
            break;
        e = b;
    }
    return e;
}

static jv strip(jctx *c, const jstr *s, const jstr *chars, bool l, bool r)
{
    size_t a = l ? strip_left(s, chars) : 0;
    size_t e = r ? strip_right(s, chars, a) : s->len;
    return mkstr(hp_jinja__substr(c->a, s, a, e));
}

static jv case_map(jctx *c, const jstr *s, int mode)
{
    char *p = malloc(s->len + 1);
    if (!p) {
        hp_jinja__oom(c);
        return (jv){JV_UNDEF, {0}};
    }
    memcpy(p, s->p, s->len);
    for (size_t i = 0; i < s->len; i++) {
        char ch = p[i];
        bool word = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                    (ch >= '0' && ch <= '9') || ch == '_';
        bool prev_word = false;
        if (i > 0) {
            char q = s->p[i - 1];
            prev_word = (q >= 'a' && q <= 'z') || (q >= 'A' && q <= 'Z') ||
                        (q >= '0' && q <= '9') || q == '_';
        }
        bool up = mode == 0 || (mode == 2 && word && !prev_word) ||
                  (mode == 3 && i == 0);
        if (mode == 1 && ch >= 'A' && ch <= 'Z')
            p[i] = (char)(ch + 32);
        else if (up && ch >= 'a' && ch <= 'z')
            p[i] = (char)(ch - 32);
    }
    jv r = derived(c, p, s->len, hp_jinja__str_marked(s));
    free(p);
    return r;
}

/* Python's str.replace(old, new, count); marks the result whole. */
static jv replace(jctx *c, const jnode *at, const jstr *s, const args *a)
{
    const jv *o = arg(a, 0, "old"), *n = arg(a, 1, "new");
    const jv *cnt = arg(a, 2, "count");
    if (!o || !n || o->k != JV_STR || n->k != JV_STR) {
        FAIL("replace() needs two string arguments");
        return (jv){JV_UNDEF, {0}};
    }
    long long left = cnt && cnt->k == JV_INT && cnt->u.i >= 0 ? cnt->u.i : -1;
    const jstr *old = o->u.s, *nw = n->u.s;
    jbuf b = {0};
    size_t i = 0;
    if (old->len == 0) {
        /* Python inserts new between characters and at both ends */
        while (left != 0) {
            hp_jinja__buf_put(&b, nw->p, nw->len, false);
            if (left > 0)
                left--;
            if (i >= s->len)
                break;
            size_t w = cp_len(s->p, i, s->len);
            hp_jinja__buf_put(&b, s->p + i, w, false);
            i += w;
        }
    } else {
        while (i < s->len && left != 0) {
            const char *f = memmem(s->p + i, s->len - i, old->p, old->len);
            if (!f)
                break;
            hp_jinja__buf_put(&b, s->p + i, (size_t)(f - (s->p + i)), false);
            hp_jinja__buf_put(&b, nw->p, nw->len, false);
            i = (size_t)(f - s->p) + old->len;
            if (left > 0)
                left--;
        }
    }
    hp_jinja__buf_put(&b, s->p + i, s->len - i, false);
    jv r = (jv){JV_UNDEF, {0}};
    if (b.oom)
        hp_jinja__oom(c);
    else
        r = derived(c, b.p ? b.p : "", b.len,
                    hp_jinja__str_marked(s) || hp_jinja__str_marked(nw));
    hp_jinja__buf_free(&b);
    return r;
}

static jv split(jctx *c, const jnode *at, const jstr *s, const args *a)
{
    const jv *sepv = arg(a, 0, "sep"), *maxv = arg(a, 1, "maxsplit");
    long long max = maxv && maxv->k == JV_INT ? maxv->u.i : -1;
    jv out = hp_jinja__mk_list(c, 4);
    if (out.k != JV_LIST)
        return out;
    if (sepv && sepv->k != JV_NONE && sepv->k != JV_STR) {
        FAIL("split() separator must be a string or none");
        return (jv){JV_UNDEF, {0}};
    }
    if (!sepv || sepv->k == JV_NONE) {
        size_t i = strip_left(s, NULL);
        while (i < s->len) {
            size_t j = i, w;
            if (max >= 0 && (long long)out.u.l->n >= max) {
                hp_jinja__list_push(c, out.u.l,
                                    mkstr(hp_jinja__substr(c->a, s, i, s->len)));
                break;
            }
            while (j < s->len && !js_ws(s->p, j, s->len))
                j += cp_len(s->p, j, s->len);
            hp_jinja__list_push(c, out.u.l,
                                mkstr(hp_jinja__substr(c->a, s, i, j)));
            i = j;
            while (i < s->len && (w = js_ws(s->p, i, s->len)) > 0)
                i += w;
        }
        return out;
    }
    const jstr *sep = sepv->u.s;
    if (sep->len == 0) {
        FAIL("split(): empty separator");
        return (jv){JV_UNDEF, {0}};
    }
    size_t i = 0;
    for (;;) {
        const char *f = (max < 0 || (long long)out.u.l->n < max)
                            ? memmem(s->p + i, s->len - i, sep->p, sep->len)
                            : NULL;
        size_t e = f ? (size_t)(f - s->p) : s->len;
        if (!hp_jinja__list_push(c, out.u.l,
                                 mkstr(hp_jinja__substr(c->a, s, i, e))))
            break;
        if (!f)
            break;
        i = e + sep->len;
    }
    return out;
}

static bool starts_ends(jctx *c, const jnode *at, const jstr *s, jv pat,
                        bool end, bool *res)
{
    *res = false;
    const jv *pats = pat.k == JV_LIST ? pat.u.l->v : &pat;
    size_t np = pat.k == JV_LIST ? pat.u.l->n : 1;
    for (size_t i = 0; i < np; i++) {
        if (pats[i].k != JV_STR)
            return FAIL("%s() takes a string or a list of strings",
                        end ? "endswith" : "startswith");
        const jstr *p = pats[i].u.s;
        if (p->len <= s->len &&
            !memcmp(s->p + (end ? s->len - p->len : 0), p->p, p->len))
            *res = true;
    }
    return true;
}

/* ---- attributes and methods ---------------------------------------------------- */

static const char *const str_methods[] = {
    "upper", "lower", "strip", "title", "capitalize", "rstrip", "lstrip",
    "startswith", "endswith", "split", "replace", NULL};
static const char *const dict_methods[] = {"get", "items", "keys", "values",
                                           "dictsort", NULL};

bool hp_jinja__attr(jctx *c, jv obj, const char *name, jv *res)
{
    *res = (jv){JV_UNDEF, {0}};
    const char *const *tab = NULL;
    if (obj.k == JV_STR) {
        if (!strcmp(name, "length")) {
            *res = mkint((int64_t)cp_count(obj.u.s));
            return true;
        }
        tab = str_methods;
    } else if (obj.k == JV_LIST) {
        if (!strcmp(name, "length"))
            *res = mkint((int64_t)obj.u.l->n);
        return true;
    } else if (obj.k == JV_DICT) {
        tab = dict_methods;
    }
    for (; tab && *tab; tab++)
        if (!strcmp(*tab, name)) {
            jmethod *m = hp_arena_alloc(c->a, sizeof *m);
            if (!m)
                return hp_jinja__oom(c);
            m->self = obj;
            m->name = *tab;
            *res = (jv){JV_METHOD, {.bm = m}};
            break;
        }
    return true;
}

static jv dict_items(jctx *c, const jdict *d, int what)
{
    jv out = hp_jinja__mk_list(c, d->n);
    for (size_t i = 0; out.k == JV_LIST && i < d->n; i++) {
        jv item;
        if (what == 0) {
            item = hp_jinja__mk_list(c, 2);
            if (item.k != JV_LIST)
                break;
            hp_jinja__list_push(c, item.u.l, mkstr(d->keys[i]));
            hp_jinja__list_push(c, item.u.l, d->vals[i]);
        } else {
            item = what == 1 ? mkstr(d->keys[i]) : d->vals[i];
        }
        hp_jinja__list_push(c, out.u.l, item);
    }
    return out;
}

static int compare(jctx *c, const jnode *at, jv x, jv y, bool cs, bool *ok);

typedef struct sort_ctx {
    jctx *c;
    const jnode *at;
    bool cs, rev, ok;
    const jstr *attr;
} sort_ctx;

static jv attr_path(jv item, const jstr *path);

/* Stable merge sort (qsort has no context argument in C11). */
static void msort(jv *v, jv *tmp, size_t n, sort_ctx *s)
{
    if (n < 2)
        return;
    size_t h = n / 2;
    msort(v, tmp, h, s);
    msort(v + h, tmp, n - h, s);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) {
        jv a = s->attr ? attr_path(v[i], s->attr) : v[i];
        jv b = s->attr ? attr_path(v[j], s->attr) : v[j];
        int r = compare(s->c, s->at, a, b, s->cs, &s->ok);
        if (s->rev)
            r = -r;
        tmp[k++] = r <= 0 ? v[i++] : v[j++];
    }
    while (i < h)
        tmp[k++] = v[i++];
    while (j < n)
        tmp[k++] = v[j++];
    memcpy(v, tmp, n * sizeof *v);
}

static jv sorted(jctx *c, const jnode *at, const jlist *l, bool rev, bool cs,
                 const jstr *attr)
{
    jv out = hp_jinja__mk_list(c, l->n);
    jv *tmp = malloc((l->n + 1) * sizeof *tmp);
    if (out.k != JV_LIST || !tmp) {
        free(tmp);
        hp_jinja__oom(c);
        return (jv){JV_UNDEF, {0}};
    }
    memcpy(out.u.l->v, l->v, l->n * sizeof *tmp);
    out.u.l->n = l->n;
    sort_ctx s = {c, at, cs, rev, true, attr};
    msort(out.u.l->v, tmp, l->n, &s);
    free(tmp);
    return s.ok ? out : (jv){JV_UNDEF, {0}};
}

bool hp_jinja__call_method(jctx *c, const jnode *at, const jmethod *m,
                           const jv *pos, int npos, const char *const *kwn,
                           const jv *kwv, int nkw, jv *res)
{
    args a = {pos, npos, kwn, kwv, nkw};
    const char *n = m->name;
    *res = (jv){JV_UNDEF, {0}};
    if (m->self.k == JV_DICT) {
        const jdict *d = m->self.u.d;
        if (!strcmp(n, "get")) {
            const jv *k = arg(&a, 0, "key"), *def = arg(&a, 1, "default");
            if (!k || k->k != JV_STR)
                return FAIL("get() takes a string key");
            jv *v = hp_jinja__dict_get(d, k->u.s->p, k->u.s->len);
            *res = v ? *v : def ? *def : (jv){JV_NONE, {0}};
        } else if (!strcmp(n, "items") || !strcmp(n, "dictsort")) {
            *res = dict_items(c, d, 0);
            if (n[0] == 'd' && res->k == JV_LIST) {
                jstr key0 = {"0", 1, NULL, 0};
                *res = sorted(c, at, res->u.l, arg_bool(&a, 2, "reverse", false),
                              arg_bool(&a, 0, "case_sensitive", false), &key0);
            }
        } else {
            *res = dict_items(c, d, n[0] == 'k' ? 1 : 2);
        }
        return c->err == HP_OK;
    }
    const jstr *s = m->self.u.s;
    const jv *a0 = arg(&a, 0, NULL);
    if (!strcmp(n, "upper"))
        *res = case_map(c, s, 0);
    else if (!strcmp(n, "lower"))
        *res = case_map(c, s, 1);
    else if (!strcmp(n, "title"))
        *res = case_map(c, s, 2);
    else if (!strcmp(n, "capitalize"))
        *res = case_map(c, s, 3);
    else if (!strcmp(n, "strip") || !strcmp(n, "lstrip") ||
             !strcmp(n, "rstrip")) {
        if (a0 && a0->k != JV_STR && a0->k != JV_NONE)
            return FAIL("%s() takes a string of characters", n);
        const jstr *chars = a0 && a0->k == JV_STR ? a0->u.s : NULL;
        *res = strip(c, s, chars, n[0] != 'r', n[0] != 'l');
    } else if (!strcmp(n, "startswith") || !strcmp(n, "endswith")) {
        bool r;
        if (!a0)
            return FAIL("%s() needs an argument", n);
        if (!starts_ends(c, at, s, *a0, n[0] == 'e', &r))
            return false;
        *res = mkbool(r);
    } else if (!strcmp(n, "split")) {
        *res = split(c, at, s, &a);
    } else if (!strcmp(n, "replace")) {
        *res = replace(c, at, s, &a);
    }
    return c->err == HP_OK;
}

/* ---- comparisons and attribute paths --------------------------------------------- */

static int compare(jctx *c, const jnode *at, jv x, jv y, bool cs, bool *ok)
{
    double a, b;
    bool xn = x.k == JV_INT || x.k == JV_FLOAT || x.k == JV_BOOL;
    bool yn = y.k == JV_INT || y.k == JV_FLOAT || y.k == JV_BOOL;
    if ((x.k == JV_NONE && y.k == JV_NONE) ||
        (x.k == JV_UNDEF && y.k == JV_UNDEF))
        return 0;
    if (xn && yn) {
        a = x.k == JV_INT ? (double)x.u.i : x.k == JV_FLOAT ? x.u.f : x.u.b;
        b = y.k == JV_INT ? (double)y.u.i : y.k == JV_FLOAT ? y.u.f : y.u.b;
        return a < b ? -1 : a > b;
    }
    if (x.k == JV_STR && y.k == JV_STR) {
        const jstr *p = x.u.s, *q = y.u.s;
        size_t n = p->len < q->len ? p->len : q->len;
        for (size_t i = 0; i < n; i++) {
            unsigned char u = (unsigned char)p->p[i], v = (unsigned char)q->p[i];
            if (!cs) {
                u = (u >= 'A' && u <= 'Z') ? (unsigned char)(u + 32) : u;
                v = (v >= 'A' && v <= 'Z') ? (unsigned char)(v + 32) : v;
            }
            if (u != v)
                return u < v ? -1 : 1;
        }
        return (p->len > q->len) - (p->len < q->len);
    }
    if (*ok)
        *ok = FAIL("cannot compare %s with %s", hp_jinja__kind_name(x),
                   hp_jinja__kind_name(y));
    return 0;
}

/* item.a.b (dict keys, list indices), undefined when missing. */
static jv attr_path(jv item, const jstr *path)
{
    size_t i = 0;
    while (i <= path->len) {
        const char *dot = memchr(path->p + i, '.', path->len - i);
        size_t e = dot ? (size_t)(dot - path->p) : path->len;
        if (item.k == JV_DICT || item.k == JV_NS) {
            jv *v = hp_jinja__dict_get(item.u.d, path->p + i, e - i);
            if (!v)
                return (jv){JV_UNDEF, {0}};
            item = *v;
        } else if (item.k == JV_LIST) {
            char num[24];
            size_t k = e - i < sizeof num - 1 ? e - i : sizeof num - 1;
            memcpy(num, path->p + i, k);
            num[k] = '\0';
            char *end;
            long long idx = strtoll(num, &end, 10);
            if (end == num || idx < 0 || (size_t)idx >= item.u.l->n)
                return (jv){JV_UNDEF, {0}};
            item = item.u.l->v[idx];
        } else {
            return (jv){JV_UNDEF, {0}};
        }
        if (!dot)
            break;
        i = e + 1;
    }
    return item;
}

/* ---- tests ------------------------------------------------------------------------ */

bool hp_jinja__test(jctx *c, const jnode *at, const char *name, jv v,
                    const jv *targs, int nargs, bool *res)
{
    const char *t = name;
    if (!strcmp(t, "boolean"))
        *res = v.k == JV_BOOL;
    else if (!strcmp(t, "callable"))
        *res = v.k == JV_FUNC || v.k == JV_MACRO || v.k == JV_METHOD;
    else if (!strcmp(t, "odd") || !strcmp(t, "even")) {
        if (v.k != JV_INT)
            return FAIL("cannot test '%s' on %s", t, hp_jinja__kind_name(v));
        *res = (v.u.i % 2 != 0) == (t[0] == 'o');
    } else if (!strcmp(t, "false"))
        *res = v.k == JV_BOOL && !v.u.b;
    else if (!strcmp(t, "true"))
        *res = v.k == JV_BOOL && v.u.b;
    else if (!strcmp(t, "none"))
        *res = v.k == JV_NONE;
    else if (!strcmp(t, "string"))
        *res = v.k == JV_STR;
    else if (!strcmp(t, "number"))
        *res = v.k == JV_INT || v.k == JV_FLOAT;
    else if (!strcmp(t, "integer"))
        *res = v.k == JV_INT;
    else if (!strcmp(t, "float"))
        *res = v.k == JV_FLOAT;
    else if (!strcmp(t, "iterable"))
        *res = v.k == JV_LIST || v.k == JV_STR;
    else if (!strcmp(t, "mapping"))
        *res = v.k == JV_DICT;
    else if (!strcmp(t, "sequence"))
        *res = v.k == JV_LIST || v.k == JV_DICT || v.k == JV_STR;
    else if (!strcmp(t, "lower") || !strcmp(t, "upper")) {
        *res = v.k == JV_STR;
        for (size_t i = 0; *res && i < v.u.s->len; i++) {
            char ch = v.u.s->p[i];
            if (t[0] == 'l' ? (ch >= 'A' && ch <= 'Z') : (ch >= 'a' && ch <= 'z'))
                *res = false;
        }
    } else if (!strcmp(t, "defined"))
        *res = v.k != JV_UNDEF;
    else if (!strcmp(t, "undefined"))
        *res = v.k == JV_UNDEF;
    else if (!strcmp(t, "equalto") || !strcmp(t, "eq")) {
        jv o = nargs > 0 ? targs[0] : (jv){JV_UNDEF, {0}};
        bool num_v = v.k == JV_INT || v.k == JV_FLOAT;
        bool num_o = o.k == JV_INT || o.k == JV_FLOAT;
        *res = (num_v && num_o) || v.k == o.k ? hp_jinja__equal(v, o) : false;
    } else
        return FAIL("unknown test '%s'", t);
    return true;
}

/* ---- filters ----------------------------------------------------------------------- */

static jv str_chars(jctx *c, const jstr *s)
{
    jv out = hp_jinja__mk_list(c, s->len);
    for (size_t i = 0; out.k == JV_LIST && i < s->len;) {
        size_t w = cp_len(s->p, i, s->len);
        hp_jinja__list_push(c, out.u.l, mkstr(hp_jinja__substr(c->a, s, i, i + w)));
        i += w;
    }
    return out;
}

/* join: JavaScript's Array#join of plain values (none -> ""). */
static jv join(jctx *c, const jnode *at, const jlist *l, const jstr *sep)
{
    jbuf b = {0};
    for (size_t i = 0; i < l->n; i++) {
        if (i)
            hp_jinja__buf_put_str(&b, sep);
        jv x = l->v[i];
        if (x.k == JV_NONE || x.k == JV_UNDEF)
            continue;
        if (x.k == JV_FLOAT) {
            char num[64];
            hp_jinja__fmt_num(x.u.f, num, sizeof num);
            hp_jinja__buf_puts(&b, num);
            continue;
        }
        if (!hp_jinja__write_value(c, &b, x, at))
            break;
    }
    jv r = (jv){JV_UNDEF, {0}};
    if (b.oom)
        hp_jinja__oom(c);
    else if (c->err == HP_OK)
        r = mkstr(hp_jinja__buf_str(c->a, &b));
    hp_jinja__buf_free(&b);
    if (c->err == HP_OK && r.k == JV_UNDEF)
        hp_jinja__oom(c);
    return r;
}

static jv indent(jctx *c, const jstr *s, const args *a, const jnode *at)
{
    const jv *w = arg(a, 0, "width");
    bool first = arg_bool(a, 1, "first", false);
    bool blank = arg_bool(a, 2, "blank", false);
    jbuf pad = {0};
    if (w && w->k == JV_STR)
        hp_jinja__buf_put_str(&pad, w->u.s);
    else if (w && w->k != JV_INT)
        return FAIL("indent width must be a number"), (jv){JV_UNDEF, {0}};
    else
        for (long long i = 0; i < (w ? w->u.i : 4) && i < 4096; i++)
            hp_jinja__buf_put(&pad, " ", 1, false);
    jbuf b = {0};
    size_t i = 0;
    bool line0 = true;
    for (;;) {
        const char *nl = memchr(s->p + i, '\n', s->len - i);
        size_t e = nl ? (size_t)(nl - s->p) : s->len;
        if (!((!first && line0) || (!blank && e == i)))
            hp_jinja__buf_put(&b, pad.p ? pad.p : "", pad.len, false);
        jstr *piece = hp_jinja__substr(c->a, s, i, nl ? e + 1 : e);
        if (!piece)
            break;
        hp_jinja__buf_put_str(&b, piece);
        line0 = false;
        if (!nl)
            break;
        i = e + 1;
    }
    jv r = b.oom ? (jv){JV_UNDEF, {0}} : mkstr(hp_jinja__buf_str(c->a, &b));
    if (r.k == JV_UNDEF)
        hp_jinja__oom(c);
    hp_jinja__buf_free(&b);
    hp_jinja__buf_free(&pad);
    return r;
}

/* JavaScript's parseInt(s, 10) / parseFloat(s). */
static bool parse_num(const jstr *s, bool is_float, double *out)
{
    char tmp[128];
    size_t i = 0;
    while (i < s->len && (s->p[i] == ' ' || (s->p[i] >= '\t' && s->p[i] <= '\r')))
        i++;
    size_t n = s->len - i < sizeof tmp - 1 ? s->len - i : sizeof tmp - 1;
    memcpy(tmp, s->p + i, n);
    tmp[n] = '\0';
    char *end;
    if (is_float) {
        *out = strtod(tmp, &end);
    } else {
        long long v = strtoll(tmp, &end, 10);
        *out = (double)v;
    }
    return end != tmp;
}

static bool tojson(jctx *c, const jnode *at, jv v, const args *a, jv *res)
{
    jjson_opts o = {-1, false, false, true, NULL, NULL};
    const jv *ind = arg(a, 0, "indent"), *sep = arg(a, -1, "separators");
    if (ind && ind->k == JV_INT)
        o.indent = (int)(ind->u.i > 64 ? 64 : ind->u.i);
    else if (ind && ind->k != JV_NONE)
        return FAIL("tojson: indent must be a number");
    o.ensure_ascii = arg_bool(a, -1, "ensure_ascii", false);
    o.sort_keys = arg_bool(a, -1, "sort_keys", false);
    if (sep && sep->k == JV_LIST && sep->u.l->n == 2 &&
        sep->u.l->v[0].k == JV_STR && sep->u.l->v[1].k == JV_STR) {
        o.item_sep = sep->u.l->v[0].u.s->p;
        o.key_sep = sep->u.l->v[1].u.s->p;
    } else if (sep && sep->k != JV_NONE) {
        return FAIL("tojson: separators must be two strings");
    }
    jbuf b = {0};
    bool ok = hp_jinja__to_json(c, &b, v, &o, 0, at);
    if (ok && b.oom)
        ok = hp_jinja__oom(c);
    if (ok) {
        *res = mkstr(hp_jinja__buf_str(c->a, &b));
        if (res->k == JV_UNDEF)
            ok = hp_jinja__oom(c);
    }
    hp_jinja__buf_free(&b);
    return ok;
}

static bool select_attr(jctx *c, const jnode *at, const jlist *l,
                        const args *a, bool select, jv *res)
{
    const jv *attr = arg(a, 0, NULL), *test = arg(a, 1, NULL);
    if (!attr || attr->k != JV_STR || (test && test->k != JV_STR))
        return FAIL("%s takes string arguments",
                    select ? "selectattr" : "rejectattr");
    if (test && !hp_jinja__test_known(test->u.s->p))
        return FAIL("unknown test '%.60s'", test->u.s->p);
    *res = hp_jinja__mk_list(c, l->n);
    for (size_t i = 0; res->k == JV_LIST && i < l->n; i++) {
        jv item = l->v[i];
        if (item.k != JV_DICT && item.k != JV_NS)
            return FAIL("%s can only be applied to a list of dicts",
                        select ? "selectattr" : "rejectattr");
        jv *x = hp_jinja__dict_get(item.u.d, attr->u.s->p, attr->u.s->len);
        bool r = false;
        if (x && test) {
            if (!hp_jinja__test(c, at, test->u.s->p, *x, a->pos + 2,
                                a->npos > 2 ? a->npos - 2 : 0, &r))
                return false;
        } else if (x) {
            r = hp_jinja__truthy(*x);
        }
        if (r == select)
            hp_jinja__list_push(c, res->u.l, item);
    }
    return c->err == HP_OK;
}

static bool map_filter(jctx *c, const jnode *at, const jlist *l,
                       const args *a, jv *res)
{
    const jv *attr = arg(a, -1, "attribute"), *def = arg(a, -1, "default");
    const jv *fname = arg(a, 0, NULL);
    if (!attr && (!fname || fname->k != JV_STR ||
                  !hp_jinja__filter_known(fname->u.s->p)))
        return FAIL("map needs attribute= or a filter name");
    if (attr && attr->k != JV_STR && attr->k != JV_INT)
        return FAIL("map: attribute must be a string");
    *res = hp_jinja__mk_list(c, l->n);
    for (size_t i = 0; res->k == JV_LIST && i < l->n; i++) {
        jv x;
        if (attr) {
            jstr *path = attr->k == JV_STR ? attr->u.s : NULL;
            char num[24];
            jstr tmp;
            if (!path) {
                snprintf(num, sizeof num, "%lld", (long long)attr->u.i);
                tmp = (jstr){num, strlen(num), NULL, 0};
                path = &tmp;
            }
            x = attr_path(l->v[i], path);
            if (x.k == JV_UNDEF && def)
                x = *def;
        } else if (!hp_jinja__filter(c, at, fname->u.s->p, l->v[i],
                                     a->pos + 1, a->npos - 1, a->kwn, a->kwv,
                                     a->nkw, &x)) {
            return false;
        }
        hp_jinja__list_push(c, res->u.l, x);
    }
    return c->err == HP_OK;
}

bool hp_jinja__filter(jctx *c, const jnode *at, const char *name, jv v,
                      const jv *pos, int npos, const char *const *kwn,
                      const jv *kwv, int nkw, jv *res)
{
    args a = {pos, npos, kwn, kwv, nkw};
    const char *f = name;
    *res = (jv){JV_UNDEF, {0}};
    if (!strcmp(f, "safe")) {
        *res = v;
        return true;
    }
    if (!strcmp(f, "tojson"))
        return tojson(c, at, v, &a, res);
    if (!strcmp(f, "default") || !strcmp(f, "d")) {
        const jv *def = arg(&a, 0, "default_value");
        bool boolean = arg_bool(&a, 1, "boolean", false);
        if (v.k == JV_UNDEF || (boolean && !hp_jinja__truthy(v)))
            *res = def ? *def : hp_jinja__mk_str(c, "", 0);
        else
            *res = v;
        return c->err == HP_OK;
    }
    if (!strcmp(f, "length") || !strcmp(f, "count")) {
        if (v.k == JV_LIST)
            *res = mkint((int64_t)v.u.l->n);
        else if (v.k == JV_STR)
            *res = mkint((int64_t)cp_count(v.u.s));
        else if (v.k == JV_DICT)
            *res = mkint((int64_t)v.u.d->n);
        else
            goto bad_type;
        return true;
    }
    if (!strcmp(f, "string")) {
        if (v.k == JV_LIST) {
            jjson_opts o = {-1, false, false, false, NULL, NULL};
            jbuf b = {0};
            bool ok = hp_jinja__to_json(c, &b, v, &o, 0, at);
            if (ok)
                *res = mkstr(hp_jinja__buf_str(c->a, &b));
            hp_jinja__buf_free(&b);
            if (ok && res->k == JV_UNDEF)
                return hp_jinja__oom(c);
            return ok;
        }
        *res = mkstr(hp_jinja__to_str(c, v, at));
        return c->err == HP_OK;
    }
    if (!strcmp(f, "int") || !strcmp(f, "float")) {
        bool fl = f[0] == 'f';
        const jv *def = arg(&a, 0, "default");
        double d;
        if (v.k == JV_STR) {
            if (!parse_num(v.u.s, fl, &d)) {
                *res = def ? *def : fl ? (jv){JV_FLOAT, {.f = 0}} : mkint(0);
                return true;
            }
        } else if (v.k == JV_INT) {
            d = (double)v.u.i;
        } else if (v.k == JV_FLOAT) {
            d = v.u.f;
        } else if (v.k == JV_BOOL) {
            d = v.u.b;
        } else {
            goto bad_type;
        }
        if (fl)
            *res = (jv){JV_FLOAT, {.f = d}};
        else
            *res = v.k == JV_INT ? v : mkint((int64_t)floor(d));
        return true;
    }
    if (!strcmp(f, "abs") || !strcmp(f, "round")) {
        if (v.k == JV_INT) {
            *res = f[0] == 'a' ? mkint(v.u.i < 0 ? -v.u.i : v.u.i) : v;
            return true;
        }
        if (v.k != JV_FLOAT)
            goto bad_type;
        if (f[0] == 'a') {
            *res = (jv){JV_FLOAT, {.f = fabs(v.u.f)}};
            return true;
        }
        const jv *prec = arg(&a, 0, "precision");
        double p = pow(10, prec && prec->k == JV_INT ? (double)prec->u.i : 0);
        *res = (jv){JV_FLOAT, {.f = round(v.u.f * p) / p}};
        return true;
    }
    if (!strcmp(f, "bool")) {
        *res = mkbool(hp_jinja__truthy(v));
        return true;
    }
    if (v.k == JV_LIST) {
        const jlist *l = v.u.l;
        if (!strcmp(f, "list")) {
            *res = v;
        } else if (!strcmp(f, "first") || !strcmp(f, "last")) {
            if (l->n)
                *res = l->v[f[0] == 'f' ? 0 : l->n - 1];
        } else if (!strcmp(f, "reverse")) {
            *res = hp_jinja__mk_list(c, l->n);
            for (size_t i = 0; res->k == JV_LIST && i < l->n; i++)
                hp_jinja__list_push(c, res->u.l, l->v[l->n - 1 - i]);
        } else if (!strcmp(f, "sort")) {
            const jv *attr = arg(&a, 2, "attribute");
            jstr *path = attr && attr->k == JV_STR ? attr->u.s : NULL;
            *res = sorted(c, at, l, arg_bool(&a, 0, "reverse", false),
                          arg_bool(&a, 1, "case_sensitive", false), path);
        } else if (!strcmp(f, "join")) {
            const jv *sep = arg(&a, 0, "d");
            jstr empty = {"", 0, NULL, 0};
            if (sep && sep->k != JV_STR)
                return FAIL("join separator must be a string");
            const jv *attr = arg(&a, 1, "attribute");
            if (attr && attr->k == JV_STR) {
                jv mapped = hp_jinja__mk_list(c, l->n);
                for (size_t i = 0; mapped.k == JV_LIST && i < l->n; i++)
                    hp_jinja__list_push(c, mapped.u.l,
                                        attr_path(l->v[i], attr->u.s));
                if (mapped.k != JV_LIST)
                    return false;
                l = mapped.u.l;
            }
            *res = join(c, at, l, sep ? sep->u.s : &empty);
        } else if (!strcmp(f, "unique")) {
            *res = hp_jinja__mk_list(c, l->n);
            for (size_t i = 0; res->k == JV_LIST && i < l->n; i++) {
                bool seen = false;
                for (size_t k = 0; k < res->u.l->n && !seen; k++)
                    seen = res->u.l->v[k].k == l->v[i].k &&
                           hp_jinja__equal(res->u.l->v[k], l->v[i]);
                if (!seen)
                    hp_jinja__list_push(c, res->u.l, l->v[i]);
            }
        } else if (!strcmp(f, "selectattr") || !strcmp(f, "rejectattr")) {
            return select_attr(c, at, l, &a, f[0] == 's', res);
        } else if (!strcmp(f, "map")) {
            return map_filter(c, at, l, &a, res);
        } else {
            goto bad_type;
        }
        return c->err == HP_OK;
    }
    if (v.k == JV_STR) {
        const jstr *s = v.u.s;
        const jv *a0 = arg(&a, 0, "chars");
        if (!strcmp(f, "upper") || !strcmp(f, "lower") || !strcmp(f, "title") ||
            !strcmp(f, "capitalize")) {
            int mode = f[0] == 'u' ? 0 : f[0] == 'l' ? 1 : f[0] == 't' ? 2 : 3;
            *res = case_map(c, s, mode);
        } else if (!strcmp(f, "trim")) {
            *res = strip(c, s, a0 && a0->k == JV_STR ? a0->u.s : NULL, true,
                         true);
        } else if (!strcmp(f, "indent")) {
            *res = indent(c, s, &a, at);
        } else if (!strcmp(f, "replace")) {
            *res = replace(c, at, s, &a);
        } else if (!strcmp(f, "list")) {
            *res = str_chars(c, s);
        } else if (!strcmp(f, "first") || !strcmp(f, "last")) {
            jv chars = str_chars(c, s);
            if (chars.k == JV_LIST && chars.u.l->n)
                *res = chars.u.l->v[f[0] == 'f' ? 0 : chars.u.l->n - 1];
        } else if (!strcmp(f, "reverse")) {
            jv chars = str_chars(c, s);
            if (chars.k != JV_LIST)
                return false;
            jbuf b = {0};
            for (size_t i = chars.u.l->n; i-- > 0;)
                hp_jinja__buf_put_str(&b, chars.u.l->v[i].u.s);
            *res = b.oom ? (jv){JV_UNDEF, {0}}
                         : mkstr(hp_jinja__buf_str(c->a, &b));
            hp_jinja__buf_free(&b);
            if (res->k == JV_UNDEF)
                return hp_jinja__oom(c);
        } else if (!strcmp(f, "join")) {
            const jv *sep = arg(&a, 0, "d");
            jstr empty = {"", 0, NULL, 0};
            jv chars = str_chars(c, s);
            if (chars.k != JV_LIST)
                return false;
            if (sep && sep->k != JV_STR)
                return FAIL("join separator must be a string");
            *res = join(c, at, chars.u.l, sep ? sep->u.s : &empty);
        } else {
            goto bad_type;
        }
        return c->err == HP_OK;
    }
    if (v.k == JV_DICT) {
        if (!strcmp(f, "items")) {
            *res = dict_items(c, v.u.d, 0);
            return c->err == HP_OK;
        }
        if (!strcmp(f, "list")) {
            *res = dict_items(c, v.u.d, 1);
            return c->err == HP_OK;
        }
        if (!strcmp(f, "dictsort")) {
            jmethod m = {v, "dictsort"};
            return hp_jinja__call_method(c, at, &m, pos, npos, kwn, kwv, nkw,
                                         res);
        }
    }
bad_type:
    return FAIL("cannot apply filter '%s' to %s", f, hp_jinja__kind_name(v));
}

/* ---- global functions --------------------------------------------------------------- */

static bool fn_range(jctx *c, const jnode *at, const args *a, jv *res)
{
    int64_t v[3] = {0, 0, 1};
    if (a->npos < 1 || a->npos > 3)
        return FAIL("range() takes 1 to 3 integers");
    for (int i = 0; i < a->npos; i++) {
        if (a->pos[i].k != JV_INT && a->pos[i].k != JV_BOOL)
            return FAIL("range() takes integers");
        v[a->npos == 1 ? 1 : i] = a->pos[i].k == JV_INT ? a->pos[i].u.i
                                                        : a->pos[i].u.b;
    }
    if (v[2] == 0)
        return FAIL("range() step must not be zero");
    *res = hp_jinja__mk_list(c, 0);
    for (int64_t i = v[0]; res->k == JV_LIST && (v[2] > 0 ? i < v[1] : i > v[1]);
         i += v[2]) {
        if (res->u.l->n >= 100000)
            return FAIL("range() longer than 100000");
        hp_jinja__list_push(c, res->u.l, mkint(i));
    }
    return c->err == HP_OK;
}

static bool fn_namespace(jctx *c, const jnode *at, const args *a, jv *res)
{
    *res = hp_jinja__mk_dict(c);
    if (res->k != JV_DICT)
        return false;
    res->k = JV_NS;
    if (a->npos > 1)
        return FAIL("namespace() takes at most one positional argument");
    if (a->npos == 1) {
        jv src = a->pos[0];
        if (src.k == JV_DICT) {
            for (size_t i = 0; i < src.u.d->n; i++)
                hp_jinja__dict_set(c, res->u.d, src.u.d->keys[i],
                                   src.u.d->vals[i]);
        } else if (src.k == JV_LIST) {
            for (size_t i = 0; i < src.u.l->n; i++) {
                jv p = src.u.l->v[i];
                if (p.k != JV_LIST || p.u.l->n != 2 || p.u.l->v[0].k != JV_STR)
                    return FAIL("namespace() expects [key, value] pairs");
                hp_jinja__dict_set(c, res->u.d, p.u.l->v[0].u.s, p.u.l->v[1]);
            }
        } else {
            return FAIL("namespace() argument must be a dict");
        }
    }
    for (int i = 0; i < a->nkw; i++) {
        jstr *k = hp_jinja__str(c->a, a->kwn[i], strlen(a->kwn[i]), false);
        if (!k || !hp_jinja__dict_set(c, res->u.d, k, a->kwv[i]))
            return hp_jinja__oom(c);
    }
    return c->err == HP_OK;
}

static bool fn_strftime(jctx *c, const jnode *at, const args *a, jv *res)
{
    static const char *const mon[] = {"January", "February", "March", "April",
                                      "May", "June", "July", "August",
                                      "September", "October", "November",
                                      "December"};
    if (a->npos < 1 || a->pos[0].k != JV_STR)
        return FAIL("strftime_now() takes a format string");
    struct tm tm = {0};
    const char *fixed = getenv("HOTPATH_NOW");
    int y, mo, d, h = 0, mi = 0;
    if (fixed && sscanf(fixed, "%d-%d-%d", &y, &mo, &d) == 3 && mo >= 1 &&
        mo <= 12 && d >= 1 && d <= 31) {
        const char *t = strchr(fixed, 'T');
        if (t)
            sscanf(t + 1, "%d:%d", &h, &mi);
        tm.tm_year = y - 1900;
        tm.tm_mon = mo - 1;
        tm.tm_mday = d;
        tm.tm_hour = h;
        tm.tm_min = mi;
    } else {
        time_t now = time(NULL);
        localtime_r(&now, &tm);
    }
    const jstr *fmt = a->pos[0].u.s;
    jbuf b = {0};
    char tmp[32];
    for (size_t i = 0; i < fmt->len; i++) {
        if (fmt->p[i] != '%' || i + 1 >= fmt->len) {
            hp_jinja__buf_put(&b, fmt->p + i, 1, false);
            continue;
        }
        char k = fmt->p[++i];
        tmp[0] = '\0';
        switch (k) {
        case 'Y':
            snprintf(tmp, sizeof tmp, "%d", tm.tm_year + 1900);
            break;
        case 'm':
            snprintf(tmp, sizeof tmp, "%02d", tm.tm_mon + 1);
            break;
        case 'd':
            snprintf(tmp, sizeof tmp, "%02d", tm.tm_mday);
            break;
        case 'b':
            snprintf(tmp, sizeof tmp, "%.3s", mon[tm.tm_mon % 12]);
            break;
        case 'B':
            snprintf(tmp, sizeof tmp, "%s", mon[tm.tm_mon % 12]);
            break;
        case 'H':
            snprintf(tmp, sizeof tmp, "%02d", tm.tm_hour);
            break;
        case 'M':
            snprintf(tmp, sizeof tmp, "%02d", tm.tm_min);
            break;
        case '%':
            snprintf(tmp, sizeof tmp, "%%");
            break;
        default:
            snprintf(tmp, sizeof tmp, "%%%c", k);
            break;
        }
        hp_jinja__buf_puts(&b, tmp);
    }
    *res = b.oom ? (jv){JV_UNDEF, {0}} : mkstr(hp_jinja__buf_str(c->a, &b));
    hp_jinja__buf_free(&b);
    return res->k == JV_STR ? true : hp_jinja__oom(c);
}

bool hp_jinja__call_builtin(jctx *c, const jnode *at, int fn, const jv *pos,
                            int npos, const char *const *kwn, const jv *kwv,
                            int nkw, jv *res)
{
    args a = {pos, npos, kwn, kwv, nkw};
    *res = (jv){JV_UNDEF, {0}};
    switch (fn) {
    case JF_RAISE: {
        /* the template's own words become the error, as HF raises them */
        jbuf b = {0};
        for (int i = 0; i < npos; i++) {
            if (i)
                hp_jinja__buf_puts(&b, ",");
            hp_jinja__write_value(c, &b, pos[i], at);
        }
        if (c->err == HP_OK) {
            c->err = HP_ERR_INVALID;
            if (c->eb)
                snprintf(c->eb->msg, sizeof c->eb->msg, "%s",
                         b.p ? b.p : "raise_exception() called");
        }
        hp_jinja__buf_free(&b);
        return false;
    }
    case JF_RANGE:
        return fn_range(c, at, &a, res);
    case JF_NAMESPACE:
        return fn_namespace(c, at, &a, res);
    case JF_STRFTIME:
        return fn_strftime(c, at, &a, res);
    }
    return FAIL("unknown function");
}
