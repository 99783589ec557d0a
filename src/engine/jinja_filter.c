/* jinja_filter.c: owns the template filters (x | trim) and tests
 * (x is defined), and the argument helpers the library shares.
 *
 * Behaviour follows @huggingface/jinja 0.5.11 (the reference the tests
 * compare with), with small supersets where it would throw and Python's
 * jinja2 would not: `map` also takes a filter name, `list`/`first`/
 * `length` accept strings, `d` is `default`, `count` is `length`. Strings
 * keep their content marks where the result is made of pieces of the input
 * (trim, join, indent); other rewrites mark the whole result if any input
 * was marked. The string helpers and methods are in jinja_call.c. Knows
 * nothing of the syntax tree except for error positions. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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


/* Positional i, else keyword name, else NULL. */
const jv *hp_jinja__arg(const jargs *a, int i, const char *name)
{
    if (i >= 0 && i < a->npos)
        return &a->pos[i];
    for (int k = 0; name && k < a->nkw; k++)
        if (!strcmp(a->kwn[k], name))
            return &a->kwv[k];
    return NULL;
}

bool hp_jinja__arg_bool(const jargs *a, int i, const char *name, bool def)
{
    const jv *v = hp_jinja__arg(a, i, name);
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
        size_t w = hp_jinja__cp_len(s->p, i, s->len);
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

static jv indent(jctx *c, const jstr *s, const jargs *a, const jnode *at)
{
    const jv *w = hp_jinja__arg(a, 0, "width");
    bool first = hp_jinja__arg_bool(a, 1, "first", false);
    bool blank = hp_jinja__arg_bool(a, 2, "blank", false);
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

static bool tojson(jctx *c, const jnode *at, jv v, const jargs *a, jv *res)
{
    jjson_opts o = {-1, false, false, true, NULL, NULL};
    const jv *ind = hp_jinja__arg(a, 0, "indent"), *sep = hp_jinja__arg(a, -1, "separators");
    if (ind && ind->k == JV_INT)
        o.indent = (int)(ind->u.i > 64 ? 64 : ind->u.i);
    else if (ind && ind->k != JV_NONE)
        return FAIL("tojson: indent must be a number");
    o.ensure_ascii = hp_jinja__arg_bool(a, -1, "ensure_ascii", false);
    o.sort_keys = hp_jinja__arg_bool(a, -1, "sort_keys", false);
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
                        const jargs *a, bool select, jv *res)
{
    const jv *attr = hp_jinja__arg(a, 0, NULL), *test = hp_jinja__arg(a, 1, NULL);
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
                       const jargs *a, jv *res)
{
    const jv *attr = hp_jinja__arg(a, -1, "attribute"), *def = hp_jinja__arg(a, -1, "default");
    const jv *fname = hp_jinja__arg(a, 0, NULL);
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
            x = hp_jinja__attr_path(l->v[i], path);
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
    jargs a = {pos, npos, kwn, kwv, nkw};
    const char *f = name;
    *res = (jv){JV_UNDEF, {0}};
    if (!strcmp(f, "safe")) {
        *res = v;
        return true;
    }
    if (!strcmp(f, "tojson"))
        return tojson(c, at, v, &a, res);
    if (!strcmp(f, "default") || !strcmp(f, "d")) {
        const jv *def = hp_jinja__arg(&a, 0, "default_value");
        bool boolean = hp_jinja__arg_bool(&a, 1, "boolean", false);
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
            *res = mkint((int64_t)hp_jinja__cp_count(v.u.s));
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
        const jv *def = hp_jinja__arg(&a, 0, "default");
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
        const jv *prec = hp_jinja__arg(&a, 0, "precision");
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
            const jv *attr = hp_jinja__arg(&a, 2, "attribute");
            jstr *path = attr && attr->k == JV_STR ? attr->u.s : NULL;
            *res = hp_jinja__sorted(c, at, l, hp_jinja__arg_bool(&a, 0, "reverse", false),
                          hp_jinja__arg_bool(&a, 1, "case_sensitive", false), path);
        } else if (!strcmp(f, "join")) {
            const jv *sep = hp_jinja__arg(&a, 0, "d");
            jstr empty = {"", 0, NULL, 0};
            if (sep && sep->k != JV_STR)
                return FAIL("join separator must be a string");
            const jv *attr = hp_jinja__arg(&a, 1, "attribute");
            if (attr && attr->k == JV_STR) {
                jv mapped = hp_jinja__mk_list(c, l->n);
                for (size_t i = 0; mapped.k == JV_LIST && i < l->n; i++)
                    hp_jinja__list_push(c, mapped.u.l,
                                        hp_jinja__attr_path(l->v[i], attr->u.s));
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
        const jv *a0 = hp_jinja__arg(&a, 0, "chars");
        if (!strcmp(f, "upper") || !strcmp(f, "lower") || !strcmp(f, "title") ||
            !strcmp(f, "capitalize")) {
            int mode = f[0] == 'u' ? 0 : f[0] == 'l' ? 1 : f[0] == 't' ? 2 : 3;
            *res = hp_jinja__case_map(c, s, mode);
        } else if (!strcmp(f, "trim")) {
            *res = hp_jinja__strip(c, s, a0 && a0->k == JV_STR ? a0->u.s : NULL, true,
                         true);
        } else if (!strcmp(f, "indent")) {
            *res = indent(c, s, &a, at);
        } else if (!strcmp(f, "replace")) {
            *res = hp_jinja__replace(c, at, s, &a);
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
            const jv *sep = hp_jinja__arg(&a, 0, "d");
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
            *res = hp_jinja__dict_items(c, v.u.d, 0);
            return c->err == HP_OK;
        }
        if (!strcmp(f, "list")) {
            *res = hp_jinja__dict_items(c, v.u.d, 1);
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

