/* jinja_render.c: owns template rendering (hp_jinja_render and the output
 * helpers): runs statements with scopes and writes marked text;
 * expressions are jinja_eval.c's.
 *
 * Semantics are @huggingface/jinja's, including its quirks that change
 * output: a for loop's `else` runs when no iteration finished (so also
 * when every one hit `continue`), output written in an iteration before
 * `break`/`continue` is dropped, and sets inside a for loop stay in the
 * loop.
 * Every value lives in one arena per render. Step, depth and output limits
 * turn a runaway template into HP_ERR_RANGE instead of a hang. Knows
 * nothing of tokens or HTTP. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/jinja_int.h"

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

static jv mkint(int64_t i)
{
    return (jv){JV_INT, {.i = i}};
}

static jv mkbool(bool b)
{
    return (jv){JV_BOOL, {.b = b}};
}

/* ---- scopes ------------------------------------------------------------------ */

jscope *hp_jinja__scope_new(jctx *c, jscope *parent)
{
    jscope *s = hp_arena_alloc(c->a, sizeof *s);
    if (!s) {
        hp_jinja__oom(c);
        return NULL;
    }
    s->parent = parent;
    return s;
}

jv hp_jinja__lookup(const jscope *s, const char *name)
{
    size_t n = strlen(name);
    for (; s; s = s->parent) {
        jv *v = hp_jinja__dict_get(s->vars, name, n);
        if (v)
            return *v;
    }
    return UNDEF;
}

bool hp_jinja__scope_set(jctx *c, jscope *s, const char *name, jv v)
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

static bool assign(jctx *c, const jnode *target, jv v, jscope *s)
{
    if (target->kind == N_NAME)
        return hp_jinja__scope_set(c, s, target->name, v);
    if (v.k != JV_LIST)
        return hp_jinja__fail(c, target, "cannot unpack %s",
                              hp_jinja__kind_name(v));
    if ((size_t)target->nkids != v.u.l->n)
        return hp_jinja__fail(c, target, "too %s values to unpack "
                                         "(expected %d, got %zu)",
                              (size_t)target->nkids > v.u.l->n ? "few" : "many",
                              target->nkids, v.u.l->n);
    for (int i = 0; i < target->nkids; i++)
        if (!hp_jinja__scope_set(c, s, target->kids[i]->name, v.u.l->v[i]))
            return false;
    return true;
}

/* Capture the output of a block as a string value. */
jv hp_jinja__capture(jctx *c, jnode *const *kids, int n, jscope *s, int *st)
{
    jbuf buf = {0}, *saved = c->out;
    c->out = &buf;
    *st = hp_jinja__exec_block(c, kids, n, s);
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
    jscope *s = hp_jinja__scope_new(c, outer);
    if (!s)
        return ST_ERR;
    jv it = hp_jinja__eval(c, n->b, s);
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
            jscope *ls = hp_jinja__scope_new(c, s);
            if (!ls || !assign(c, n->a, src->v[i], ls))
                return ST_ERR;
            jv ok = hp_jinja__eval(c, n->c, ls);
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
        if (c->err != HP_OK || !hp_jinja__scope_set(c, s, "loop", loop) ||
            !assign(c, n->a, items->v[i], s))
            return ST_ERR;
        size_t mark = c->out->len;
        int st = hp_jinja__exec_block(c, n->kids, n->nkids, s);
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
        return hp_jinja__exec_block(c, n->kids2, n->nkids2, s) == ST_ERR ? ST_ERR : ST_OK;
    return ST_OK;
}

static int exec_set(jctx *c, const jnode *n, jscope *s)
{
    jv v;
    if (n->b) {
        v = hp_jinja__eval(c, n->b, s);
    } else {
        int st;
        v = hp_jinja__capture(c, n->kids, n->nkids, s, &st);
        if (st == ST_BREAK || st == ST_CONTINUE)
            return st;
    }
    if (c->err != HP_OK)
        return ST_ERR;
    const jnode *t = n->a;
    if (t->kind == N_MEMBER) {
        jv obj = hp_jinja__eval(c, t->a, s);
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
    if (!hp_jinja__eval_args(c, n->a->kids, n->a->nkids, s, &a))
        return ST_ERR;
    jv fn = hp_jinja__eval(c, n->a->a, s);
    if (c->err != HP_OK)
        return ST_ERR;
    if (fn.k != JV_MACRO) {
        hp_jinja__fail(c, n, "{%% call %%} needs a macro, got %s",
                       hp_jinja__kind_name(fn));
        return ST_ERR;
    }
    *m = *fn.u.m;
    m->caller = (jv){JV_MACRO, {.m = caller}};
    jv r = hp_jinja__call_macro(c, n, m, &a, s);
    if (c->err != HP_OK)
        return ST_ERR;
    return hp_jinja__write_value(c, c->out, r, n) ? ST_OK : ST_ERR;
}

static int exec_one(jctx *c, const jnode *n, jscope *s)
{
    if (!hp_jinja__tick(c, n))
        return ST_ERR;
    switch (n->kind) {
    case N_TEXT:
        hp_jinja__buf_put_str(c->out, n->str);
        return c->out->oom ? (hp_jinja__oom(c), ST_ERR) : ST_OK;
    case N_COMMENT:
        return ST_OK;
    case N_IF: {
        jv cond = hp_jinja__eval(c, n->a, s);
        if (c->err != HP_OK)
            return ST_ERR;
        return hp_jinja__truthy(cond) ? hp_jinja__exec_block(c, n->kids, n->nkids, s)
                                      : hp_jinja__exec_block(c, n->kids2, n->nkids2, s);
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
        return hp_jinja__scope_set(c, s, n->name, (jv){JV_MACRO, {.m = m}}) ? ST_OK
                                                                 : ST_ERR;
    }
    case N_CALLBLOCK:
        return exec_callblock(c, n, s);
    case N_FILTERBLOCK: {
        int st;
        jv body = hp_jinja__capture(c, n->kids, n->nkids, s, &st);
        if (c->err != HP_OK)
            return ST_ERR;
        if (st != ST_OK)
            return st;
        jv r = hp_jinja__eval_filter(c, n->a, s, &body);
        if (c->err != HP_OK)
            return ST_ERR;
        return hp_jinja__write_value(c, c->out, r, n) ? ST_OK : ST_ERR;
    }
    case N_BREAK:
        return ST_BREAK;
    case N_CONTINUE:
        return ST_CONTINUE;
    default: {
        jv v = hp_jinja__eval(c, n, s);
        if (c->err != HP_OK || !hp_jinja__write_value(c, c->out, v, n))
            return ST_ERR;
        return c->out->oom ? (hp_jinja__oom(c), ST_ERR) : ST_OK;
    }
    }
}

int hp_jinja__exec_block(jctx *c, jnode *const *kids, int n, jscope *s)
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
    jscope *g = hp_jinja__scope_new(&c, NULL);
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
        hp_jinja__scope_set(&c, g, globals[i].name, globals[i].v);
    if (g && json_is_object(context)) {
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)context, key, val)
        {
            jv v = !strcmp(key, "messages") ? messages_value(&c, val)
                   : hp_jinja__from_json(&c, val, !strcmp(key, "tools"));
            if (c.err != HP_OK || !hp_jinja__scope_set(&c, g, key, v))
                break;
        }
    }
    if (g && c.err == HP_OK) {
        int st = hp_jinja__exec_block(&c, t->body, t->nbody, g);
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
