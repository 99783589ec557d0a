/* jinja_eval.c: owns expression evaluation for the renderer: names,
 * literals, attribute and item access, slices, operators, filters, tests,
 * calls of functions, methods and macros.
 *
 * Semantics are @huggingface/jinja's, including its quirks that change
 * output: `x if c` without else is undefined when c is false, `~` and `+`
 * on an undefined value or none are errors, == is JavaScript's loose
 * equality and `in` on a list its strict one, and a macro sees the
 * variables of the scope it is called from. Knows nothing of statements
 * beyond a macro body's capture (jinja_render.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/jinja_int.h"

#define MAX_STEPS 5000000L
#define MAX_ARENA ((size_t)256 << 20)
#define MAX_CALL_DEPTH 24

static const jv UNDEF = {JV_UNDEF, {0}};

/* ---- expressions --------------------------------------------------------------- */


bool hp_jinja__tick(jctx *c, const jnode *n)
{
    if (++c->steps > MAX_STEPS ||
        ((c->steps & 1023) == 0 && hp_arena_used(c->a) > MAX_ARENA)) {
        if (c->err == HP_OK)
            c->err = hp_jinja__errat(c->eb, HP_ERR_RANGE, c->t->src,
                                     c->t->src_len, n ? n->pos : 0,
                                     "template runs too long");
        return false;
    }
    return c->err == HP_OK;
}

static jv mkint(int64_t i)
{
    return (jv){JV_INT, {.i = i}};
}

static jv mkflt(double f)
{
    return (jv){JV_FLOAT, {.f = f}};
}

static jv mkbool(bool b)
{
    return (jv){JV_BOOL, {.b = b}};
}

bool hp_jinja__eval_args(jctx *c, jnode *const *kids, int n, jscope *s,
                      cargs *a)
{
    memset(a, 0, sizeof *a);
    if (n == 0)
        return true;
    a->pos = hp_arena_alloc(c->a, (size_t)n * sizeof *a->pos);
    a->kwn = hp_arena_alloc(c->a, (size_t)n * sizeof *a->kwn);
    a->kwv = hp_arena_alloc(c->a, (size_t)n * sizeof *a->kwv);
    if (!a->pos || !a->kwn || !a->kwv)
        return hp_jinja__oom(c);
    for (int i = 0; i < n; i++)
        if (kids[i]->kind != N_KWARG) {
            a->pos[a->npos++] = hp_jinja__eval(c, kids[i], s);
            if (c->err != HP_OK)
                return false;
        }
    for (int i = 0; i < n; i++)
        if (kids[i]->kind == N_KWARG) {
            for (int k = 0; k < a->nkw; k++)
                if (!strcmp(a->kwn[k], kids[i]->name))
                    return hp_jinja__fail(c, kids[i], "keyword argument '%s' "
                                                      "given twice",
                                          kids[i]->name);
            a->kwn[a->nkw] = kids[i]->name;
            a->kwv[a->nkw++] = hp_jinja__eval(c, kids[i]->a, s);
            if (c->err != HP_OK)
                return false;
        }
    return true;
}

jv hp_jinja__call_macro(jctx *c, const jnode *at, const jmacro *m,
                     const cargs *a, jscope *callsite)
{
    const jnode *def = m->def;
    if (c->depth >= MAX_CALL_DEPTH) {
        hp_jinja__fail(c, at, "macro calls nested too deeply");
        return UNDEF;
    }
    jscope *s = hp_jinja__scope_new(c, def->kind == N_CALLBLOCK ? m->closure : callsite);
    if (!s)
        return UNDEF;
    if (m->caller.k != JV_UNDEF && !hp_jinja__scope_set(c, s, "caller", m->caller))
        return UNDEF;
    bool *used = a->nkw ? hp_arena_alloc(c->a, (size_t)a->nkw) : NULL;
    if (a->nkw && !used) {
        hp_jinja__oom(c);
        return UNDEF;
    }
    for (int i = 0; i < def->nparams; i++) {
        const jnode *p = def->params[i];
        jv v = UNDEF;
        bool have = false;
        if (i < a->npos) {
            v = a->pos[i];
            have = true;
        }
        for (int k = 0; !have && k < a->nkw; k++)
            if (!strcmp(a->kwn[k], p->name)) {
                v = a->kwv[k];
                used[k] = have = true;
            }
        if (!hp_jinja__scope_set(c, s, p->name, v))
            return UNDEF;
    }
    /* defaults see the other parameters, as in Jinja */
    for (int i = 0; i < def->nparams; i++) {
        const jnode *p = def->params[i];
        bool have = i < a->npos;
        for (int k = 0; !have && k < a->nkw; k++)
            have = !strcmp(a->kwn[k], p->name);
        if (!have && p->kind == N_KWARG) {
            jv v = hp_jinja__eval(c, p->a, s);
            if (c->err != HP_OK || !hp_jinja__scope_set(c, s, p->name, v))
                return UNDEF;
        }
    }
    jv kw = hp_jinja__mk_dict(c), va = hp_jinja__mk_list(c, 0);
    if (kw.k != JV_DICT || va.k != JV_LIST)
        return UNDEF;
    for (int k = 0; k < a->nkw; k++)
        if (!used[k]) {
            jstr *key = hp_jinja__str(c->a, a->kwn[k], strlen(a->kwn[k]), false);
            if (!key || !hp_jinja__dict_set(c, kw.u.d, key, a->kwv[k]))
                return UNDEF;
        }
    for (int i = def->nparams; i < a->npos; i++)
        hp_jinja__list_push(c, va.u.l, a->pos[i]);
    if (!hp_jinja__scope_set(c, s, "kwargs", kw) || !hp_jinja__scope_set(c, s, "varargs", va))
        return UNDEF;
    c->depth++;
    int st;
    jv r = hp_jinja__capture(c, def->kids, def->nkids, s, &st);
    c->depth--;
    if (st == ST_BREAK || st == ST_CONTINUE) {
        hp_jinja__fail(c, at, "break/continue outside a loop");
        return UNDEF;
    }
    return r;
}

static jv call(jctx *c, const jnode *n, jscope *s)
{
    cargs a;
    if (!hp_jinja__eval_args(c, n->kids, n->nkids, s, &a))
        return UNDEF;
    jv fn = hp_jinja__eval(c, n->a, s);
    if (c->err != HP_OK)
        return UNDEF;
    jv r = UNDEF;
    switch (fn.k) {
    case JV_FUNC:
        hp_jinja__call_builtin(c, n, fn.u.fn, a.pos, a.npos, a.kwn, a.kwv,
                               a.nkw, &r);
        return r;
    case JV_MACRO:
        return hp_jinja__call_macro(c, n, fn.u.m, &a, s);
    case JV_METHOD:
        hp_jinja__call_method(c, n, fn.u.bm, a.pos, a.npos, a.kwn, a.kwv,
                              a.nkw, &r);
        return r;
    default:
        if (n->a->kind == N_NAME)
            hp_jinja__fail(c, n, "'%s' is %s, not a function", n->a->name,
                           hp_jinja__kind_name(fn));
        else
            hp_jinja__fail(c, n, "cannot call %s, not a function",
                           hp_jinja__kind_name(fn));
        return UNDEF;
    }
}

/* Byte offsets of each code point start, plus the end. */
static size_t *cp_offsets(const jstr *s, size_t *count)
{
    size_t *o = malloc((s->len + 1) * sizeof *o), k = 0;
    if (!o)
        return NULL;
    for (size_t i = 0; i < s->len;) {
        o[k++] = i;
        unsigned char ch = (unsigned char)s->p[i];
        size_t w = ch >= 0xF0 ? 4 : ch >= 0xE0 ? 3 : ch >= 0xC0 ? 2 : 1;
        for (size_t q = 1; q < w; q++)
            if (i + q >= s->len || ((unsigned char)s->p[i + q] & 0xC0) != 0x80)
                w = 1;
        i += w;
    }
    o[k] = s->len;
    *count = k;
    return o;
}

static bool slice_bound(jctx *c, const jnode *n, jscope *s, bool *has,
                        int64_t *out)
{
    *has = false;
    if (!n)
        return true;
    jv v = hp_jinja__eval(c, n, s);
    if (c->err != HP_OK)
        return false;
    if (v.k == JV_UNDEF || v.k == JV_NONE)
        return true;
    if (v.k != JV_INT)
        return hp_jinja__fail(c, n, "slice indices must be integers");
    *has = true;
    *out = v.u.i;
    return true;
}

/* Python slicing, as @huggingface/jinja's slice() computes it. */
static jv slice(jctx *c, const jnode *n, jv obj, jscope *s)
{
    bool hs, he, hp;
    int64_t st = 0, en = 0, step = 1;
    if (obj.k != JV_LIST && obj.k != JV_STR) {
        hp_jinja__fail(c, n, "cannot slice %s", hp_jinja__kind_name(obj));
        return UNDEF;
    }
    if (!slice_bound(c, n->a, s, &hs, &st) || !slice_bound(c, n->b, s, &he, &en) ||
        !slice_bound(c, n->c, s, &hp, &step))
        return UNDEF;
    if (!hp)
        step = 1;
    if (step == 0) {
        hp_jinja__fail(c, n, "slice step cannot be zero");
        return UNDEF;
    }
    size_t len = 0, *offs = NULL;
    if (obj.k == JV_LIST) {
        len = obj.u.l->n;
    } else if (!(offs = cp_offsets(obj.u.s, &len))) {
        hp_jinja__oom(c);
        return UNDEF;
    }
    int64_t L = (int64_t)len;
    if (step > 0) {
        st = !hs ? 0 : st < 0 ? (L + st > 0 ? L + st : 0) : (st < L ? st : L);
        en = !he ? L : en < 0 ? (L + en > 0 ? L + en : 0) : (en < L ? en : L);
    } else {
        st = !hs ? L - 1 : st < 0 ? (L + st > -1 ? L + st : -1)
                         : (st < L - 1 ? st : L - 1);
        en = !he ? -1 : en < -1 ? (L + en > -1 ? L + en : -1)
                      : (en < L - 1 ? en : L - 1);
    }
    jv r = UNDEF;
    if (obj.k == JV_LIST) {
        r = hp_jinja__mk_list(c, 0);
        for (int64_t i = st; r.k == JV_LIST && (step > 0 ? i < en : i > en);
             i += step)
            hp_jinja__list_push(c, r.u.l, obj.u.l->v[i]);
    } else if (step == 1) {
        r.k = JV_STR;
        r.u.s = hp_jinja__substr(c->a, obj.u.s, offs[st], offs[en > st ? en : st]);
        if (!r.u.s) {
            r.k = JV_UNDEF;
            hp_jinja__oom(c);
        }
    } else {
        jbuf b = {0};
        for (int64_t i = st; step > 0 ? i < en : i > en; i += step) {
            jstr *ch = hp_jinja__substr(c->a, obj.u.s, offs[i], offs[i + 1]);
            if (!ch)
                break;
            hp_jinja__buf_put_str(&b, ch);
        }
        r.u.s = b.oom ? NULL : hp_jinja__buf_str(c->a, &b);
        r.k = r.u.s ? JV_STR : JV_UNDEF;
        if (!r.u.s)
            hp_jinja__oom(c);
        hp_jinja__buf_free(&b);
    }
    free(offs);
    return r;
}

static jv member(jctx *c, const jnode *n, jscope *s)
{
    jv obj = hp_jinja__eval(c, n->a, s);
    if (c->err != HP_OK)
        return UNDEF;
    jv prop;
    if (n->flag) {
        if (n->b->kind == N_SLICE)
            return slice(c, n->b, obj, s);
        prop = hp_jinja__eval(c, n->b, s);
        if (c->err != HP_OK)
            return UNDEF;
    } else if (n->b->kind == N_INT) {
        prop = mkint(n->b->i);
    } else {
        prop = (jv){JV_STR, {.s = NULL}};
        prop.u.s = hp_jinja__str(c->a, n->b->name, strlen(n->b->name), false);
        if (!prop.u.s) {
            hp_jinja__oom(c);
            return UNDEF;
        }
    }
    jv r = UNDEF;
    if (obj.k == JV_DICT || obj.k == JV_NS) {
        if (prop.k != JV_STR) {
            hp_jinja__fail(c, n, "dict keys are strings, not %s",
                           hp_jinja__kind_name(prop));
            return UNDEF;
        }
        jv *v = hp_jinja__dict_get(obj.u.d, prop.u.s->p, prop.u.s->len);
        if (v)
            return *v;
        if (obj.k == JV_DICT)
            hp_jinja__attr(c, obj, prop.u.s->p, &r);
        return r;
    }
    if (obj.k == JV_LIST || obj.k == JV_STR) {
        if (prop.k == JV_INT) {
            size_t len = 0, *offs = NULL;
            if (obj.k == JV_LIST)
                len = obj.u.l->n;
            else if (!(offs = cp_offsets(obj.u.s, &len))) {
                hp_jinja__oom(c);
                return UNDEF;
            }
            int64_t i = prop.u.i < 0 ? (int64_t)len + prop.u.i : prop.u.i;
            if (i >= 0 && i < (int64_t)len) {
                if (obj.k == JV_LIST) {
                    r = obj.u.l->v[i];
                } else {
                    r.k = JV_STR;
                    r.u.s = hp_jinja__substr(c->a, obj.u.s, offs[i], offs[i + 1]);
                    if (!r.u.s) {
                        r.k = JV_UNDEF;
                        hp_jinja__oom(c);
                    }
                }
            }
            free(offs);
            return r;
        }
        if (prop.k == JV_STR) {
            hp_jinja__attr(c, obj, prop.u.s->p, &r);
            return r;
        }
        hp_jinja__fail(c, n, "cannot index %s with %s", hp_jinja__kind_name(obj),
                       hp_jinja__kind_name(prop));
        return UNDEF;
    }
    if (prop.k != JV_STR)
        hp_jinja__fail(c, n, "cannot index %s with %s", hp_jinja__kind_name(obj),
                       hp_jinja__kind_name(prop));
    return UNDEF; /* attributes of none/undefined/numbers are undefined */
}

/* JavaScript's === on plain values; identity on lists and dicts. */
static bool strict_eq(jv x, jv y)
{
    bool xn = x.k == JV_INT || x.k == JV_FLOAT;
    bool yn = y.k == JV_INT || y.k == JV_FLOAT;
    if (xn && yn)
        return hp_jinja__equal(x, y);
    if (x.k != y.k)
        return false;
    return x.k == JV_NONE || x.k == JV_UNDEF || hp_jinja__equal(x, y);
}

/* value.toString() as `~` and string `+` use it (2.0 -> "2"). */
static jstr *concat_str(jctx *c, jv v, const jnode *at)
{
    if (v.k == JV_FLOAT) {
        char num[64];
        hp_jinja__fmt_num(v.u.f, num, sizeof num);
        jstr *s = hp_jinja__str(c->a, num, strlen(num), false);
        if (!s)
            hp_jinja__oom(c);
        return s;
    }
    return hp_jinja__to_str(c, v, at);
}

static jv concat(jctx *c, const jnode *n, jv l, jv r)
{
    jstr *a = concat_str(c, l, n), *b = a ? concat_str(c, r, n) : NULL;
    if (!a || !b)
        return UNDEF;
    jstr *s = hp_jinja__strcat(c->a, a, b);
    if (!s) {
        hp_jinja__oom(c);
        return UNDEF;
    }
    return (jv){JV_STR, {.s = s}};
}

static bool as_num(jv v, double *d, bool bools)
{
    if (v.k == JV_INT)
        *d = (double)v.u.i;
    else if (v.k == JV_FLOAT)
        *d = v.u.f;
    else if (bools && v.k == JV_BOOL)
        *d = v.u.b;
    else
        return false;
    return true;
}

static jv arith(jctx *c, const jnode *n, jv l, jv r, bool *done)
{
    double a, b;
    *done = true;
    bool fl = l.k == JV_FLOAT || r.k == JV_FLOAT;
    if (n->op == OP_POW && as_num(l, &a, true) && as_num(r, &b, true)) {
        if (a == 0 && b < 0) {
            hp_jinja__fail(c, n, "0 cannot be raised to a negative power");
            return UNDEF;
        }
        double p = pow(a, b);
        if (!isfinite(p)) {
            hp_jinja__fail(c, n, "power result is not a finite number");
            return UNDEF;
        }
        return fl || b < 0 ? mkflt(p) : mkint((int64_t)p);
    }
    if (!as_num(l, &a, false) || !as_num(r, &b, false)) {
        *done = false;
        return UNDEF;
    }
    bool ints = !fl;
    switch (n->op) {
    case OP_ADD:
        return ints ? mkint((int64_t)((uint64_t)l.u.i + (uint64_t)r.u.i))
                    : mkflt(a + b);
    case OP_SUB:
        return ints ? mkint((int64_t)((uint64_t)l.u.i - (uint64_t)r.u.i))
                    : mkflt(a - b);
    case OP_MUL:
        return ints ? mkint((int64_t)((uint64_t)l.u.i * (uint64_t)r.u.i))
                    : mkflt(a * b);
    case OP_DIV:
        return mkflt(a / b);
    case OP_FDIV:
    case OP_MOD:
        if (ints && r.u.i == 0) {
            hp_jinja__fail(c, n, "integer division or modulo by zero");
            return UNDEF;
        }
        if (n->op == OP_FDIV)
            return ints ? mkint((int64_t)floor(a / b)) : mkflt(floor(a / b));
        if (ints)
            return mkint(r.u.i == -1 ? 0 : l.u.i % r.u.i);
        return mkflt(fmod(a, b));
    case OP_LT:
        return mkbool(a < b);
    case OP_GT:
        return mkbool(a > b);
    case OP_LE:
        return mkbool(a <= b);
    case OP_GE:
        return mkbool(a >= b);
    }
    *done = false;
    return UNDEF;
}

static jv binop(jctx *c, const jnode *n, jscope *s)
{
    jv l = hp_jinja__eval(c, n->a, s);
    if (c->err != HP_OK)
        return UNDEF;
    if (n->op == OP_AND)
        return hp_jinja__truthy(l) ? hp_jinja__eval(c, n->b, s) : l;
    if (n->op == OP_OR)
        return hp_jinja__truthy(l) ? l : hp_jinja__eval(c, n->b, s);
    jv r = hp_jinja__eval(c, n->b, s);
    if (c->err != HP_OK)
        return UNDEF;
    int op = n->op;
    if (op == OP_EQ || op == OP_NE)
        return mkbool(hp_jinja__equal(l, r) == (op == OP_EQ));
    if (l.k == JV_UNDEF || r.k == JV_UNDEF) {
        if (r.k == JV_UNDEF && (op == OP_IN || op == OP_NOTIN))
            return mkbool(op == OP_NOTIN);
        hp_jinja__fail(c, n, "cannot use this operator on an undefined value");
        return UNDEF;
    }
    if (l.k == JV_NONE || r.k == JV_NONE) {
        hp_jinja__fail(c, n, "cannot use this operator on none");
        return UNDEF;
    }
    if (op == OP_CAT)
        return concat(c, n, l, r);
    bool done;
    jv x = arith(c, n, l, r, &done);
    if (done || c->err != HP_OK)
        return x;
    if (l.k == JV_LIST && r.k == JV_LIST && op == OP_ADD) {
        jv out = hp_jinja__mk_list(c, l.u.l->n + r.u.l->n);
        for (size_t i = 0; out.k == JV_LIST && i < l.u.l->n; i++)
            hp_jinja__list_push(c, out.u.l, l.u.l->v[i]);
        for (size_t i = 0; out.k == JV_LIST && i < r.u.l->n; i++)
            hp_jinja__list_push(c, out.u.l, r.u.l->v[i]);
        return out;
    }
    if (r.k == JV_LIST && (op == OP_IN || op == OP_NOTIN)) {
        bool found = false;
        for (size_t i = 0; !found && i < r.u.l->n; i++)
            found = strict_eq(r.u.l->v[i], l);
        return mkbool(found == (op == OP_IN));
    }
    if ((l.k == JV_STR || r.k == JV_STR) && op == OP_ADD)
        return concat(c, n, l, r);
    if (l.k == JV_STR && r.k == JV_STR) {
        const jstr *a = l.u.s, *b = r.u.s;
        if (op == OP_IN || op == OP_NOTIN) {
            bool f = a->len == 0 || memmem(b->p, b->len, a->p, a->len) != NULL;
            return mkbool(f == (op == OP_IN));
        }
        if (op >= OP_LT && op <= OP_GE) {
            size_t m = a->len < b->len ? a->len : b->len;
            int cmp = memcmp(a->p, b->p, m);
            if (!cmp)
                cmp = (a->len > b->len) - (a->len < b->len);
            return mkbool(op == OP_LT ? cmp < 0 : op == OP_GT ? cmp > 0
                          : op == OP_LE ? cmp <= 0 : cmp >= 0);
        }
    }
    if (l.k == JV_STR && r.k == JV_DICT && (op == OP_IN || op == OP_NOTIN)) {
        bool f = hp_jinja__dict_get(r.u.d, l.u.s->p, l.u.s->len) != NULL;
        return mkbool(f == (op == OP_IN));
    }
    hp_jinja__fail(c, n, "unsupported operands: %s and %s",
                   hp_jinja__kind_name(l), hp_jinja__kind_name(r));
    return UNDEF;
}

/* Apply a filter node; operand overrides the node's own (filter blocks). */
jv hp_jinja__eval_filter(jctx *c, const jnode *n, jscope *s, const jv *operand)
{
    jv v;
    if (n->a)
        v = n->a->kind == N_FILTER && operand ? hp_jinja__eval_filter(c, n->a, s, operand)
                                              : hp_jinja__eval(c, n->a, s);
    else
        v = operand ? *operand : UNDEF;
    if (c->err != HP_OK)
        return UNDEF;
    cargs a;
    if (!hp_jinja__eval_args(c, n->kids, n->nkids, s, &a))
        return UNDEF;
    jv r = UNDEF;
    hp_jinja__filter(c, n, n->name, v, a.pos, a.npos, a.kwn, a.kwv, a.nkw, &r);
    return r;
}

jv hp_jinja__eval(jctx *c, const jnode *n, jscope *s)
{
    if (!hp_jinja__tick(c, n))
        return UNDEF;
    switch (n->kind) {
    case N_STR:
    case N_TEXT:
        return (jv){JV_STR, {.s = n->str}};
    case N_INT:
        return mkint(n->i);
    case N_FLOAT:
        return mkflt(n->f);
    case N_NAME:
        return hp_jinja__lookup(s, n->name);
    case N_LIST:
    case N_TUPLE: {
        jv l = hp_jinja__mk_list(c, (size_t)n->nkids);
        for (int i = 0; l.k == JV_LIST && i < n->nkids; i++) {
            jv x = hp_jinja__eval(c, n->kids[i], s);
            if (c->err != HP_OK)
                return UNDEF;
            hp_jinja__list_push(c, l.u.l, x);
        }
        return l;
    }
    case N_DICT: {
        jv d = hp_jinja__mk_dict(c);
        for (int i = 0; d.k == JV_DICT && i + 1 < n->nkids; i += 2) {
            jv k = hp_jinja__eval(c, n->kids[i], s);
            if (c->err != HP_OK)
                return UNDEF;
            if (k.k != JV_STR) {
                hp_jinja__fail(c, n->kids[i], "dict keys must be strings");
                return UNDEF;
            }
            jv v = hp_jinja__eval(c, n->kids[i + 1], s);
            if (c->err != HP_OK || !hp_jinja__dict_set(c, d.u.d, k.u.s, v))
                return UNDEF;
        }
        return d;
    }
    case N_MEMBER:
        return member(c, n, s);
    case N_CALL:
        return call(c, n, s);
    case N_BINOP:
        return binop(c, n, s);
    case N_UNARY: {
        jv v = hp_jinja__eval(c, n->a, s);
        if (c->err != HP_OK)
            return UNDEF;
        if (n->op == OP_NOT)
            return mkbool(!hp_jinja__truthy(v));
        int sign = n->op == OP_NEG ? -1 : 1;
        if (v.k == JV_INT || v.k == JV_BOOL)
            return mkint(sign * (v.k == JV_INT ? v.u.i : v.u.b));
        if (v.k == JV_FLOAT)
            return mkflt(sign * v.u.f);
        hp_jinja__fail(c, n, "unary %c needs a number, got %s",
                       sign < 0 ? '-' : '+', hp_jinja__kind_name(v));
        return UNDEF;
    }
    case N_FILTER:
        return hp_jinja__eval_filter(c, n, s, NULL);
    case N_TEST: {
        jv v = hp_jinja__eval(c, n->a, s);
        bool r = false;
        if (c->err != HP_OK ||
            !hp_jinja__test(c, n, n->name, v, NULL, 0, &r))
            return UNDEF;
        return mkbool(r != n->flag);
    }
    case N_SELECT: {
        jv cond = hp_jinja__eval(c, n->b, s);
        if (c->err != HP_OK || !hp_jinja__truthy(cond))
            return UNDEF;
        return hp_jinja__eval(c, n->a, s);
    }
    case N_TERNARY: {
        jv cond = hp_jinja__eval(c, n->a, s);
        if (c->err != HP_OK)
            return UNDEF;
        return hp_jinja__eval(c, hp_jinja__truthy(cond) ? n->b : n->c, s);
    }
    default:
        hp_jinja__fail(c, n, "this is not an expression");
        return UNDEF;
    }
}

