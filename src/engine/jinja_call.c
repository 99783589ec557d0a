/* jinja_call.c: owns what templates call: string methods (s.strip(),
 * s.split()), dict methods (d.get(k), d.items()), the global functions
 * (raise_exception, range, namespace, strftime_now), and the string,
 * sorting and attribute-path helpers the filters share.
 *
 * Follows @huggingface/jinja 0.5.11, except that strip/lstrip/rstrip honour
 * a chars argument as Python does (the reference ignores it). Case mapping
 * is ASCII only. Results made of pieces of a string (strip, split) keep its
 * content marks; rewrites (upper, replace) mark the whole result if any
 * input was marked. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/jinja_int.h"

#define FAIL(...) hp_jinja__fail(c, at, __VA_ARGS__)

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

size_t hp_jinja__cp_len(const char *s, size_t i, size_t n)
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

size_t hp_jinja__cp_count(const jstr *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->len; i += hp_jinja__cp_len(s->p, i, s->len))
        n++;
    return n;
}

/* Whitespace JavaScript's trim() removes, at s[i]: byte length or 0. */
static size_t js_ws(const char *s, size_t i, size_t n)
{
    unsigned char ch = (unsigned char)s[i];
    if (ch == ' ' || (ch >= '\t' && ch <= '\r'))
        return 1;
    size_t w = hp_jinja__cp_len(s, i, n);
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
    for (size_t k = 0; k < chars->len; k += hp_jinja__cp_len(chars->p, k, chars->len)) {
        size_t cw = hp_jinja__cp_len(chars->p, k, chars->len);
        if (cw == w && !memcmp(chars->p + k, s + i, w))
            return true;
    }
    return false;
}

static size_t strip_left(const jstr *s, const jstr *chars)
{
    size_t i = 0;
    while (i < s->len) {
        size_t w = chars ? hp_jinja__cp_len(s->p, i, s->len) : js_ws(s->p, i, s->len);
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
        size_t w = hp_jinja__cp_len(s->p, b, s->len);
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

jv hp_jinja__strip(jctx *c, const jstr *s, const jstr *chars, bool l, bool r)
{
    size_t a = l ? strip_left(s, chars) : 0;
    size_t e = r ? strip_right(s, chars, a) : s->len;
    return mkstr(hp_jinja__substr(c->a, s, a, e));
}

jv hp_jinja__case_map(jctx *c, const jstr *s, int mode)
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
jv hp_jinja__replace(jctx *c, const jnode *at, const jstr *s, const jargs *a)
{
    const jv *o = hp_jinja__arg(a, 0, "old"), *n = hp_jinja__arg(a, 1, "new");
    const jv *cnt = hp_jinja__arg(a, 2, "count");
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
            size_t w = hp_jinja__cp_len(s->p, i, s->len);
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

static jv split(jctx *c, const jnode *at, const jstr *s, const jargs *a)
{
    const jv *sepv = hp_jinja__arg(a, 0, "sep"), *maxv = hp_jinja__arg(a, 1, "maxsplit");
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
                j += hp_jinja__cp_len(s->p, j, s->len);
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
            *res = mkint((int64_t)hp_jinja__cp_count(obj.u.s));
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

jv hp_jinja__dict_items(jctx *c, const jdict *d, int what)
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
        jv a = s->attr ? hp_jinja__attr_path(v[i], s->attr) : v[i];
        jv b = s->attr ? hp_jinja__attr_path(v[j], s->attr) : v[j];
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

jv hp_jinja__sorted(jctx *c, const jnode *at, const jlist *l, bool rev, bool cs,
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
    jargs a = {pos, npos, kwn, kwv, nkw};
    const char *n = m->name;
    *res = (jv){JV_UNDEF, {0}};
    if (m->self.k == JV_DICT) {
        const jdict *d = m->self.u.d;
        if (!strcmp(n, "get")) {
            const jv *k = hp_jinja__arg(&a, 0, "key"), *def = hp_jinja__arg(&a, 1, "default");
            if (!k || k->k != JV_STR)
                return FAIL("get() takes a string key");
            jv *v = hp_jinja__dict_get(d, k->u.s->p, k->u.s->len);
            *res = v ? *v : def ? *def : (jv){JV_NONE, {0}};
        } else if (!strcmp(n, "items") || !strcmp(n, "dictsort")) {
            *res = hp_jinja__dict_items(c, d, 0);
            if (n[0] == 'd' && res->k == JV_LIST) {
                jstr key0 = {"0", 1, NULL, 0};
                *res = hp_jinja__sorted(c, at, res->u.l, hp_jinja__arg_bool(&a, 2, "reverse", false),
                              hp_jinja__arg_bool(&a, 0, "case_sensitive", false), &key0);
            }
        } else {
            *res = hp_jinja__dict_items(c, d, n[0] == 'k' ? 1 : 2);
        }
        return c->err == HP_OK;
    }
    const jstr *s = m->self.u.s;
    const jv *a0 = hp_jinja__arg(&a, 0, NULL);
    if (!strcmp(n, "upper"))
        *res = hp_jinja__case_map(c, s, 0);
    else if (!strcmp(n, "lower"))
        *res = hp_jinja__case_map(c, s, 1);
    else if (!strcmp(n, "title"))
        *res = hp_jinja__case_map(c, s, 2);
    else if (!strcmp(n, "capitalize"))
        *res = hp_jinja__case_map(c, s, 3);
    else if (!strcmp(n, "strip") || !strcmp(n, "lstrip") ||
             !strcmp(n, "rstrip")) {
        if (a0 && a0->k != JV_STR && a0->k != JV_NONE)
            return FAIL("%s() takes a string of characters", n);
        const jstr *chars = a0 && a0->k == JV_STR ? a0->u.s : NULL;
        *res = hp_jinja__strip(c, s, chars, n[0] != 'r', n[0] != 'l');
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
        *res = hp_jinja__replace(c, at, s, &a);
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
jv hp_jinja__attr_path(jv item, const jstr *path)
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

/* ---- global functions --------------------------------------------------------------- */

static bool fn_range(jctx *c, const jnode *at, const jargs *a, jv *res)
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

static bool fn_namespace(jctx *c, const jnode *at, const jargs *a, jv *res)
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

static bool fn_strftime(jctx *c, const jnode *at, const jargs *a, jv *res)
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
    jargs a = {pos, npos, kwn, kwv, nkw};
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

