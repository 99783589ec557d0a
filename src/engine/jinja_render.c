/* jinja_render.c: owns template rendering (hp_jinja_render and the output
 * helpers): walks the syntax tree with scopes, evaluates expressions and
 * writes marked text.
 *
 * Semantics are @huggingface/jinja's, including its quirks that change
 * output: a for loop's `else` runs when no iteration finished (so also
 * when every one hit `continue`), output written in an iteration before
 * `break`/`continue` is dropped, sets inside a for loop stay in the loop,
 * macros see the caller's variables, `x if c` without else is undefined
 * when c is false, and `~`/`+` on an undefined value or none is an error.
 * Every value lives in one arena per render. Step, depth and output limits
 * turn a runaway template into HP_ERR_RANGE instead of a hang. Knows
 * nothing of tokens or HTTP. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/jinja_int.h"

#define MAX_STEPS 5000000L
#define MAX_ARENA ((size_t)256 << 20)
#define MAX_CALL_DEPTH 24

enum { ST_OK = 0, ST_BREAK = 1, ST_CONTINUE = 2, ST_ERR = -1 };

bool hp_jinja__fail(jctx *c, const jnode *n, const char *fmt, ...)
{
    if (c->err != HP_OK)
        return false;
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (n)
        c->err = hp_jinja__errat(c->eb, HP_ERR_INVALID, c->t->src,
                                 c->t->src_len, n->pos, "%s", what);
    else
        c->err = hp_errf(c->eb, HP_ERR_INVALID, "chat template: %s", what);
    return false;
}

bool hp_jinja__oom(jctx *c)
{
    if (c->err == HP_OK)
        c->err = hp_errf(c->eb, HP_ERR_NOMEM,
                         "chat template: out of memory (or output over "
                         "64 MiB)");
    return false;
}

static const jv UNDEF = {JV_UNDEF, {0}};

/* ---- scopes ------------------------------------------------------------------ */

static jscope *scope_new(jctx *c, jscope *parent)
{
    jscope *s = hp_arena_alloc(c->a, sizeof *s);
    if (!s) {
        hp_jinja__oom(c);
        return NULL;
    }
    s->parent = parent;
    return s;
}

static jv lookup(const jscope *s, const char *name)
{
    size_t n = strlen(name);
    for (; s; s = s->parent) {
        jv *v = hp_jinja__dict_get(s->vars, name, n);
        if (v)
            return *v;
    }
    return UNDEF;
}

static bool scope_set(jctx *c, jscope *s, const char *name, jv v)
{
    if (!s->vars) {
        s->vars = hp_arena_alloc(c->a, sizeof *s->vars);
        if (!s->vars)
            return hp_jinja__oom(c);
    }
    jv *old = hp_jinja__dict_get(s->vars, name, strlen(name));
    if (old) {
        *old = v;
        return true;
    }
    jstr *k = hp_jinja__str(c->a, name, strlen(name), false);
    if (!k)
        return hp_jinja__oom(c);
    return hp_jinja__dict_set(c, s->vars, k, v);
}

/* ---- expressions --------------------------------------------------------------- */

static jv eval(jctx *c, const jnode *n, jscope *s);
static int exec_block(jctx *c, jnode *const *kids, int n, jscope *s);

static bool tick(jctx *c, const jnode *n)
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

/* Evaluated call arguments: positional first, then keywords. */
typedef struct cargs {
    jv *pos;
    int npos;
    const char **kwn;
    jv *kwv;
    int nkw;
} cargs;

static bool eval_args(jctx *c, jnode *const *kids, int n, jscope *s,
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
            a->pos[a->npos++] = eval(c, kids[i], s);
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
            a->kwv[a->nkw++] = eval(c, kids[i]->a, s);
            if (c->err != HP_OK)
                return false;
        }
    return true;
}

static bool assign(jctx *c, const jnode *target, jv v, jscope *s)
{
    if (target->kind == N_NAME)
        return scope_set(c, s, target->name, v);
    if (v.k != JV_LIST)
        return hp_jinja__fail(c, target, "cannot unpack %s",
                              hp_jinja__kind_name(v));
    if ((size_t)target->nkids != v.u.l->n)
        return hp_jinja__fail(c, target, "too %s values to unpack "
                                         "(expected %d, got %zu)",
                              (size_t)target->nkids > v.u.l->n ? "few" : "many",
                              target->nkids, v.u.l->n);
    for (int i = 0; i < target->nkids; i++)
        if (!scope_set(c, s, target->kids[i]->name, v.u.l->v[i]))
            return false;
    return true;
}

/* Capture the output of a block as a string value. */
static jv capture(jctx *c, jnode *const *kids, int n, jscope *s, int *st)
{
    jbuf buf = {0}, *saved = c->out;
    c->out = &buf;
    *st = exec_block(c, kids, n, s);
    c->out = saved;
    jv r = UNDEF;
    if (buf.oom)
        hp_jinja__oom(c);
    else if (c->err == HP_OK) {
        r.k = JV_STR;
        r.u.s = hp_jinja__buf_str(c->a, &buf);
        if (!r.u.s) {
            r.k = JV_UNDEF;
            hp_jinja__oom(c);
        }
    }
    hp_jinja__buf_free(&buf);
    return r;
}

/* Call a macro (or a call block's caller) with evaluated arguments.
 * callsite: the scope of the call, which the macro body can see. */
static jv call_macro(jctx *c, const jnode *at, const jmacro *m,
                     const cargs *a, jscope *callsite)
{
    const jnode *def = m->def;
    if (c->depth >= MAX_CALL_DEPTH) {
        hp_jinja__fail(c, at, "macro calls nested too deeply");
        return UNDEF;
    }
    jscope *s = scope_new(c, def->kind == N_CALLBLOCK ? m->closure : callsite);
    if (!s)
        return UNDEF;
    if (m->caller.k != JV_UNDEF && !scope_set(c, s, "caller", m->caller))
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
        if (!scope_set(c, s, p->name, v))
            return UNDEF;
    }
    /* defaults see the other parameters, as in Jinja */
    for (int i = 0; i < def->nparams; i++) {
        const jnode *p = def->params[i];
        bool have = i < a->npos;
        for (int k = 0; !have && k < a->nkw; k++)
            have = !strcmp(a->kwn[k], p->name);
        if (!have && p->kind == N_KWARG) {
            jv v = eval(c, p->a, s);
            if (c->err != HP_OK || !scope_set(c, s, p->name, v))
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
    if (!scope_set(c, s, "kwargs", kw) || !scope_set(c, s, "varargs", va))
        return UNDEF;
    c->depth++;
    int st;
    jv r = capture(c, def->kids, def->nkids, s, &st);
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
    if (!eval_args(c, n->kids, n->nkids, s, &a))
        return UNDEF;
    jv fn = eval(c, n->a, s);
    if (c->err != HP_OK)
        return UNDEF;
    jv r = UNDEF;
    switch (fn.k) {
    case JV_FUNC:
        hp_jinja__call_builtin(c, n, fn.u.fn, a.pos, a.npos, a.kwn, a.kwv,
                               a.nkw, &r);
        return r;
    case JV_MACRO:
        return call_macro(c, n, fn.u.m, &a, s);
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
    jv v = eval(c, n, s);
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
    jv obj = eval(c, n->a, s);
    if (c->err != HP_OK)
        return UNDEF;
    jv prop;
    if (n->flag) {
        if (n->b->kind == N_SLICE)
            return slice(c, n->b, obj, s);
        prop = eval(c, n->b, s);
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
    jv l = eval(c, n->a, s);
    if (c->err != HP_OK)
        return UNDEF;
    if (n->op == OP_AND)
        return hp_jinja__truthy(l) ? eval(c, n->b, s) : l;
    if (n->op == OP_OR)
        return hp_jinja__truthy(l) ? l : eval(c, n->b, s);
    jv r = eval(c, n->b, s);
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
static jv filter(jctx *c, const jnode *n, jscope *s, const jv *operand)
{
    jv v;
    if (n->a)
        v = n->a->kind == N_FILTER && operand ? filter(c, n->a, s, operand)
                                              : eval(c, n->a, s);
    else
        v = operand ? *operand : UNDEF;
    if (c->err != HP_OK)
        return UNDEF;
    cargs a;
    if (!eval_args(c, n->kids, n->nkids, s, &a))
        return UNDEF;
    jv r = UNDEF;
    hp_jinja__filter(c, n, n->name, v, a.pos, a.npos, a.kwn, a.kwv, a.nkw, &r);
    return r;
}

static jv eval(jctx *c, const jnode *n, jscope *s)
{
    if (!tick(c, n))
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
        return lookup(s, n->name);
    case N_LIST:
    case N_TUPLE: {
        jv l = hp_jinja__mk_list(c, (size_t)n->nkids);
        for (int i = 0; l.k == JV_LIST && i < n->nkids; i++) {
            jv x = eval(c, n->kids[i], s);
            if (c->err != HP_OK)
                return UNDEF;
            hp_jinja__list_push(c, l.u.l, x);
        }
        return l;
    }
    case N_DICT: {
        jv d = hp_jinja__mk_dict(c);
        for (int i = 0; d.k == JV_DICT && i + 1 < n->nkids; i += 2) {
            jv k = eval(c, n->kids[i], s);
            if (c->err != HP_OK)
                return UNDEF;
            if (k.k != JV_STR) {
                hp_jinja__fail(c, n->kids[i], "dict keys must be strings");
                return UNDEF;
            }
            jv v = eval(c, n->kids[i + 1], s);
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
        jv v = eval(c, n->a, s);
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
        return filter(c, n, s, NULL);
    case N_TEST: {
        jv v = eval(c, n->a, s);
        bool r = false;
        if (c->err != HP_OK ||
            !hp_jinja__test(c, n, n->name, v, NULL, 0, &r))
            return UNDEF;
        return mkbool(r != n->flag);
    }
    case N_SELECT: {
        jv cond = eval(c, n->b, s);
        if (c->err != HP_OK || !hp_jinja__truthy(cond))
            return UNDEF;
        return eval(c, n->a, s);
    }
    case N_TERNARY: {
        jv cond = eval(c, n->a, s);
        if (c->err != HP_OK)
            return UNDEF;
        return eval(c, hp_jinja__truthy(cond) ? n->b : n->c, s);
    }
    default:
        hp_jinja__fail(c, n, "this is not an expression");
        return UNDEF;
    }
}

/* ---- statements ---------------------------------------------------------------- */

/* The loop variable; one dict per loop, updated in place per iteration. */
static jv loop_info(jctx *c, jv d, size_t i, size_t n, const jv *items)
{
    static const char *const keys[] = {"index", "index0", "revindex",
                                       "revindex0", "first", "last", "length",
                                       "previtem", "nextitem"};
    jv vals[9] = {mkint((int64_t)i + 1), mkint((int64_t)i),
                  mkint((int64_t)(n - i)), mkint((int64_t)(n - i - 1)),
                  mkbool(i == 0), mkbool(i + 1 == n), mkint((int64_t)n),
                  i > 0 ? items[i - 1] : UNDEF,
                  i + 1 < n ? items[i + 1] : UNDEF};
    if (d.k == JV_DICT) {
        memcpy(d.u.d->vals, vals, sizeof vals);
        return d;
    }
    d = hp_jinja__mk_dict(c);
    for (int k = 0; d.k == JV_DICT && k < 9; k++) {
        jstr *key = hp_jinja__str(c->a, keys[k], strlen(keys[k]), false);
        if (!key || !hp_jinja__dict_set(c, d.u.d, key, vals[k])) {
            hp_jinja__oom(c);
            return UNDEF;
        }
    }
    return d;
}

static int exec_for(jctx *c, const jnode *n, jscope *outer)
{
    jscope *s = scope_new(c, outer);
    if (!s)
        return ST_ERR;
    jv it = eval(c, n->b, s);
    if (c->err != HP_OK)
        return ST_ERR;
    jv all;
    if (it.k == JV_LIST) {
        all = it;
    } else if (it.k == JV_DICT) {
        all = hp_jinja__mk_list(c, it.u.d->n);
        for (size_t i = 0; all.k == JV_LIST && i < it.u.d->n; i++)
            hp_jinja__list_push(c, all.u.l, (jv){JV_STR, {.s = it.u.d->keys[i]}});
    } else if (it.k == JV_STR) {
        all = hp_jinja__mk_list(c, 0);
        jv chars;
        if (all.k == JV_LIST && hp_jinja__filter(c, n, "list", it, NULL, 0,
                                                 NULL, NULL, 0, &chars))
            all = chars;
    } else {
        hp_jinja__fail(c, n->b, "cannot loop over %s", hp_jinja__kind_name(it));
        return ST_ERR;
    }
    if (c->err != HP_OK)
        return ST_ERR;
    const jlist *src = all.u.l;
    jv sel = all;
    if (n->c) {
        sel = hp_jinja__mk_list(c, src->n);
        for (size_t i = 0; sel.k == JV_LIST && i < src->n; i++) {
            jscope *ls = scope_new(c, s);
            if (!ls || !assign(c, n->a, src->v[i], ls))
                return ST_ERR;
            jv ok = eval(c, n->c, ls);
            if (c->err != HP_OK)
                return ST_ERR;
            if (hp_jinja__truthy(ok))
                hp_jinja__list_push(c, sel.u.l, src->v[i]);
        }
        if (c->err != HP_OK)
            return ST_ERR;
    }
    const jlist *items = sel.u.l;
    bool none_done = true;
    jv loop = UNDEF;
    for (size_t i = 0; i < items->n; i++) {
        loop = loop_info(c, loop, i, items->n, items->v);
        if (c->err != HP_OK || !scope_set(c, s, "loop", loop) ||
            !assign(c, n->a, items->v[i], s))
            return ST_ERR;
        size_t mark = c->out->len;
        int st = exec_block(c, n->kids, n->nkids, s);
        if (st == ST_ERR)
            return ST_ERR;
        if (st == ST_CONTINUE || st == ST_BREAK) {
            /* the reference drops what this iteration wrote so far */
            hp_jinja__buf_truncate(c->out, mark);
            if (st == ST_BREAK)
                break;
            continue;
        }
        none_done = false;
    }
    if (none_done)
        return exec_block(c, n->kids2, n->nkids2, s) == ST_ERR ? ST_ERR : ST_OK;
    return ST_OK;
}

static int exec_set(jctx *c, const jnode *n, jscope *s)
{
    jv v;
    if (n->b) {
        v = eval(c, n->b, s);
    } else {
        int st;
        v = capture(c, n->kids, n->nkids, s, &st);
        if (st == ST_BREAK || st == ST_CONTINUE)
            return st;
    }
    if (c->err != HP_OK)
        return ST_ERR;
    const jnode *t = n->a;
    if (t->kind == N_MEMBER) {
        jv obj = eval(c, t->a, s);
        if (c->err != HP_OK)
            return ST_ERR;
        if (obj.k != JV_NS) {
            hp_jinja__fail(c, t, "can only set attributes of a namespace(), "
                                 "not of %s", hp_jinja__kind_name(obj));
            return ST_ERR;
        }
        jstr *k = hp_jinja__str(c->a, t->b->name, strlen(t->b->name), false);
        if (!k || !hp_jinja__dict_set(c, obj.u.d, k, v))
            return hp_jinja__oom(c), ST_ERR;
        return ST_OK;
    }
    return assign(c, t, v, s) ? ST_OK : ST_ERR;
}

static int exec_callblock(jctx *c, const jnode *n, jscope *s)
{
    jmacro *caller = hp_arena_alloc(c->a, sizeof *caller);
    jmacro *m = hp_arena_alloc(c->a, sizeof *m);
    if (!caller || !m)
        return hp_jinja__oom(c), ST_ERR;
    caller->def = n;
    caller->closure = s;
    cargs a;
    if (!eval_args(c, n->a->kids, n->a->nkids, s, &a))
        return ST_ERR;
    jv fn = eval(c, n->a->a, s);
    if (c->err != HP_OK)
        return ST_ERR;
    if (fn.k != JV_MACRO) {
        hp_jinja__fail(c, n, "{%% call %%} needs a macro, got %s",
                       hp_jinja__kind_name(fn));
        return ST_ERR;
    }
    *m = *fn.u.m;
    m->caller = (jv){JV_MACRO, {.m = caller}};
    jv r = call_macro(c, n, m, &a, s);
    if (c->err != HP_OK)
        return ST_ERR;
    return hp_jinja__write_value(c, c->out, r, n) ? ST_OK : ST_ERR;
}

static int exec_one(jctx *c, const jnode *n, jscope *s)
{
    if (!tick(c, n))
        return ST_ERR;
    switch (n->kind) {
    case N_TEXT:
        hp_jinja__buf_put_str(c->out, n->str);
        return c->out->oom ? (hp_jinja__oom(c), ST_ERR) : ST_OK;
    case N_COMMENT:
        return ST_OK;
    case N_IF: {
        jv cond = eval(c, n->a, s);
        if (c->err != HP_OK)
            return ST_ERR;
        return hp_jinja__truthy(cond) ? exec_block(c, n->kids, n->nkids, s)
                                      : exec_block(c, n->kids2, n->nkids2, s);
    }
    case N_FOR:
        return exec_for(c, n, s);
    case N_SET:
        return exec_set(c, n, s);
    case N_MACRO: {
        jmacro *m = hp_arena_alloc(c->a, sizeof *m);
        if (!m)
            return hp_jinja__oom(c), ST_ERR;
        m->def = n;
        return scope_set(c, s, n->name, (jv){JV_MACRO, {.m = m}}) ? ST_OK
                                                                 : ST_ERR;
    }
    case N_CALLBLOCK:
        return exec_callblock(c, n, s);
    case N_FILTERBLOCK: {
        int st;
        jv body = capture(c, n->kids, n->nkids, s, &st);
        if (c->err != HP_OK)
            return ST_ERR;
        if (st != ST_OK)
            return st;
        jv r = filter(c, n->a, s, &body);
        if (c->err != HP_OK)
            return ST_ERR;
        return hp_jinja__write_value(c, c->out, r, n) ? ST_OK : ST_ERR;
    }
    case N_BREAK:
        return ST_BREAK;
    case N_CONTINUE:
        return ST_CONTINUE;
    default: {
        jv v = eval(c, n, s);
        if (c->err != HP_OK || !hp_jinja__write_value(c, c->out, v, n))
            return ST_ERR;
        return c->out->oom ? (hp_jinja__oom(c), ST_ERR) : ST_OK;
    }
    }
}

static int exec_block(jctx *c, jnode *const *kids, int n, jscope *s)
{
    for (int i = 0; i < n; i++) {
        int st = exec_one(c, kids[i], s);
        if (st != ST_OK)
            return c->err != HP_OK ? ST_ERR : st;
    }
    return c->err != HP_OK ? ST_ERR : ST_OK;
}

/* ---- public -------------------------------------------------------------------- */

/* messages: each message's "role" is markup; every other string is
 * request content. */
static jv messages_value(jctx *c, const json_t *m)
{
    if (!json_is_array(m))
        return hp_jinja__from_json(c, m, true);
    jv l = hp_jinja__mk_list(c, json_array_size(m));
    for (size_t i = 0; l.k == JV_LIST && i < json_array_size(m); i++) {
        json_t *msg = json_array_get(m, i);
        if (!json_is_object(msg)) {
            hp_jinja__list_push(c, l.u.l, hp_jinja__from_json(c, msg, true));
            continue;
        }
        jv d = hp_jinja__mk_dict(c);
        const char *key;
        json_t *val;
        json_object_foreach(msg, key, val)
        {
            jstr *k = hp_jinja__str(c->a, key, strlen(key), false);
            if (d.k != JV_DICT || !k)
                return hp_jinja__oom(c), UNDEF;
            jv v = hp_jinja__from_json(c, val, strcmp(key, "role") != 0);
            if (!hp_jinja__dict_set(c, d.u.d, k, v))
                return UNDEF;
        }
        hp_jinja__list_push(c, l.u.l, d);
    }
    return l;
}

static hp_err make_out(jctx *c, const jbuf *b, hp_jinja_out *out)
{
    out->buf = malloc(b->len + 1);
    out->segs = malloc(((size_t)b->nsp * 2 + 2) * sizeof *out->segs);
    if (!out->buf || !out->segs) {
        hp_jinja_out_free(out);
        return hp_errf(c->eb, HP_ERR_NOMEM, "chat template: out of memory");
    }
    if (b->len)
        memcpy(out->buf, b->p, b->len);
    out->buf[b->len] = '\0';
    out->len = b->len;
    size_t at = 0;
    for (int i = 0; i <= b->nsp; i++) {
        size_t a = i < b->nsp ? b->sp[i].a : b->len;
        if (a > at)
            out->segs[out->n_segs++] = (hp_jinja_seg){out->buf + at, a - at,
                                                      false};
        if (i < b->nsp) {
            out->segs[out->n_segs++] = (hp_jinja_seg){
                out->buf + a, b->sp[i].b - a, true};
            at = b->sp[i].b;
        }
    }
    return HP_OK;
}

hp_err hp_jinja_render(const hp_jinja *t, const json_t *context,
                       hp_jinja_out *out, hp_errbuf *eb)
{
    memset(out, 0, sizeof *out);
    if (!t)
        return hp_errf(eb, HP_ERR_INVALID, "chat template: no template");
    if (eb)
        eb->msg[0] = '\0';
    jbuf root = {0};
    jctx c = {hp_arena_new(0), t, eb, HP_OK, &root, 0, 0};
    if (!c.a)
        return hp_errf(eb, HP_ERR_NOMEM, "chat template: out of memory");
    jscope *g = scope_new(&c, NULL);
    static const struct {
        const char *name;
        jv v;
    } globals[] = {
        {"true", {JV_BOOL, {.b = true}}},   {"false", {JV_BOOL, {.b = false}}},
        {"none", {JV_NONE, {0}}},           {"True", {JV_BOOL, {.b = true}}},
        {"False", {JV_BOOL, {.b = false}}}, {"None", {JV_NONE, {0}}},
        {"raise_exception", {JV_FUNC, {.fn = JF_RAISE}}},
        {"range", {JV_FUNC, {.fn = JF_RANGE}}},
        {"namespace", {JV_FUNC, {.fn = JF_NAMESPACE}}},
        {"strftime_now", {JV_FUNC, {.fn = JF_STRFTIME}}},
    };
    for (size_t i = 0; g && i < sizeof globals / sizeof globals[0]; i++)
        scope_set(&c, g, globals[i].name, globals[i].v);
    if (g && json_is_object(context)) {
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)context, key, val)
        {
            jv v = !strcmp(key, "messages") ? messages_value(&c, val)
                   : hp_jinja__from_json(&c, val, !strcmp(key, "tools"));
            if (c.err != HP_OK || !scope_set(&c, g, key, v))
                break;
        }
    }
    if (g && c.err == HP_OK) {
        int st = exec_block(&c, t->body, t->nbody, g);
        if (st == ST_BREAK || st == ST_CONTINUE)
            hp_jinja__fail(&c, NULL, "break/continue outside a loop");
    }
    if (c.err == HP_OK && root.oom)
        hp_jinja__oom(&c);
    hp_err e = c.err;
    if (e == HP_OK)
        e = make_out(&c, &root, out);
    hp_jinja__buf_free(&root);
    hp_arena_free(c.a);
    return e;
}

void hp_jinja_out_free(hp_jinja_out *o)
{
    if (!o)
        return;
    free(o->segs);
    free(o->buf);
    memset(o, 0, sizeof *o);
}

char *hp_jinja_out_join(const hp_jinja_out *o, size_t *len)
{
    char *s = malloc(o->len + 1);
    if (!s)
        return NULL;
    if (o->len)
        memcpy(s, o->buf, o->len);
    s[o->len] = '\0';
    if (len)
        *len = o->len;
    return s;
}
