/* jinja_parse.c: owns template parsing (hp_jinja_parse, hp_jinja_free):
 * tokens -> syntax tree (jnode, see jinja_int.h).
 *
 * The grammar and operator precedence are @huggingface/jinja's, lowest
 * first: `a if c else b`, or, and, not, comparisons and (not) in, + - ~,
 * * / // %, **, `is` tests, | filters, unary + -, then calls, attribute
 * and item access and slices. Where the reference would fail only at
 * render time on a name it does not know (a filter, a test), this parser
 * fails at once, with the name's line and column, so a template either
 * loads completely or not at all. Knows nothing of values or output. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/jinja_int.h"

typedef struct parser {
    hp_arena *a;
    const char *src;
    size_t srclen;
    jtok *t;
    int n, cur;
    hp_errbuf *eb;
    hp_err err;
    int depth;
} parser;

#define MAX_DEPTH 200

static bool pfail(parser *p, size_t pos, const char *fmt, const char *arg)
{
    if (p->err == HP_OK)
        p->err = hp_jinja__errat(p->eb, HP_ERR_FORMAT, p->src, p->srclen, pos,
                                 fmt, arg);
    return false;
}

static jtok *peek(parser *p)
{
    return &p->t[p->cur < p->n ? p->cur : p->n - 1];
}

static jtok *peek_at(parser *p, int k)
{
    int i = p->cur + k;
    return &p->t[i < p->n ? i : p->n - 1];
}

static bool is(parser *p, jtt t)
{
    return peek(p)->t == t;
}

static bool is_name(parser *p, const char *name)
{
    return peek(p)->t == T_NAME && !strcmp(peek(p)->v, name);
}

static const char *describe(const jtok *k)
{
    switch (k->t) {
    case T_EOF:
        return "end of template";
    case T_TEXT:
        return "text";
    case T_COMMENT:
        return "comment";
    default:
        return k->v;
    }
}

static bool expect(parser *p, jtt t, const char *what)
{
    jtok *k = peek(p);
    if (k->t != t) {
        char m[120];
        snprintf(m, sizeof m, "expected %s, got '%.40s'", what, describe(k));
        return pfail(p, k->pos, "%s", m);
    }
    p->cur++;
    return true;
}

static jnode *node(parser *p, jnk kind, size_t pos)
{
    jnode *n = hp_arena_alloc(p->a, sizeof *n);
    if (!n) {
        p->err = HP_ERR_NOMEM;
        return NULL;
    }
    n->kind = kind;
    n->pos = pos;
    return n;
}

/* Growable node list, copied into the arena when done. */
typedef struct nvec {
    jnode **v;
    int n, cap;
} nvec;

static bool nv_push(parser *p, nvec *v, jnode *x)
{
    if (!x)
        return false;
    if (v->n == v->cap) {
        int nc = v->cap ? v->cap * 2 : 8;
        jnode **q = realloc(v->v, (size_t)nc * sizeof *q);
        if (!q) {
            p->err = HP_ERR_NOMEM;
            return false;
        }
        v->v = q;
        v->cap = nc;
    }
    v->v[v->n++] = x;
    return true;
}

static bool nv_done(parser *p, nvec *v, jnode ***out, int *n)
{
    *out = NULL;
    *n = v->n;
    if (v->n) {
        *out = hp_arena_alloc(p->a, (size_t)v->n * sizeof **out);
        if (!*out) {
            free(v->v);
            p->err = HP_ERR_NOMEM;
            return false;
        }
        memcpy(*out, v->v, (size_t)v->n * sizeof **out);
    }
    free(v->v);
    v->v = NULL;
    return p->err == HP_OK;
}

static jnode *parse_expr(parser *p);
static jnode *parse_primary(parser *p);
static jnode *parse_any(parser *p);

/* ---- expressions ---------------------------------------------------------- */

/* (a, b = c, ...) for calls; params: NAME or NAME=default only. */
static bool parse_args(parser *p, bool params, jnode ***out, int *n)
{
    nvec v = {0};
    bool kw = false;
    if (!expect(p, T_LPAREN, "'('"))
        return false;
    while (!is(p, T_RPAREN)) {
        if (is(p, T_EOF) || p->err != HP_OK) {
            free(v.v);
            return expect(p, T_RPAREN, "')'");
        }
        size_t pos = peek(p)->pos;
        if (is(p, T_POW) || (is(p, T_MUL) && !strcmp(peek(p)->v, "*"))) {
            free(v.v);
            return pfail(p, pos, "argument unpacking (* / **) is not "
                                 "supported%s", "");
        }
        jnode *x = parse_expr(p);
        if (!x) {
            free(v.v);
            return false;
        }
        if (is(p, T_EQUALS)) {
            p->cur++;
            if (x->kind != N_NAME) {
                free(v.v);
                return pfail(p, pos, "expected a name before '='%s", "");
            }
            jnode *k = node(p, N_KWARG, pos);
            if (!k) {
                free(v.v);
                return false;
            }
            k->name = x->name;
            k->a = parse_expr(p);
            if (!k->a) {
                free(v.v);
                return false;
            }
            x = k;
            kw = true;
        } else if (kw) {
            free(v.v);
            return pfail(p, pos, params ? "non-default parameter follows a "
                                          "default one%s"
                                        : "positional argument follows a "
                                          "keyword argument%s", "");
        }
        if (params && x->kind != N_NAME && x->kind != N_KWARG) {
            free(v.v);
            return pfail(p, pos, "expected a parameter name%s", "");
        }
        if (!nv_push(p, &v, x)) {
            free(v.v);
            return false;
        }
        if (is(p, T_COMMA))
            p->cur++;
    }
    p->cur++;
    return nv_done(p, &v, out, n);
}

static jnode *parse_call(parser *p, jnode *callee);

static jnode *parse_member(parser *p, jnode *obj)
{
    while (obj && (is(p, T_DOT) || is(p, T_LBRACKET))) {
        jtok *op = peek(p);
        p->cur++;
        jnode *m = node(p, N_MEMBER, op->pos);
        if (!m)
            return NULL;
        m->a = obj;
        if (op->t == T_LBRACKET) {
            m->flag = true;
            jnode *parts[3] = {NULL, NULL, NULL};
            int np = 0;
            bool slice = false;
            while (!is(p, T_RBRACKET)) {
                if (is(p, T_EOF)) {
                    expect(p, T_RBRACKET, "']'");
                    return NULL;
                }
                if (np >= 3) {
                    pfail(p, peek(p)->pos, "a slice takes at most 3 parts%s",
                          "");
                    return NULL;
                }
                if (is(p, T_COLON)) {
                    np++;
                    p->cur++;
                    slice = true;
                } else {
                    parts[np] = parse_expr(p);
                    if (!parts[np++])
                        return NULL;
                    if (is(p, T_COLON)) {
                        p->cur++;
                        slice = true;
                    }
                }
            }
            if (np == 0) {
                pfail(p, op->pos, "expected an index inside []%s", "");
                return NULL;
            }
            p->cur++;
            if (slice) {
                jnode *s = node(p, N_SLICE, op->pos);
                if (!s)
                    return NULL;
                s->a = parts[0];
                s->b = parts[1];
                s->c = parts[2];
                m->b = s;
            } else {
                m->b = parts[0];
            }
        } else {
            jtok *k = peek(p);
            if (k->t != T_NAME && k->t != T_NUM) {
                pfail(p, k->pos, "expected a name after '.'%s", "");
                return NULL;
            }
            jnode *prop = parse_primary(p);
            if (!prop)
                return NULL;
            if (prop->kind != N_NAME && prop->kind != N_INT) {
                pfail(p, k->pos, "expected a name after '.'%s", "");
                return NULL;
            }
            m->b = prop;
        }
        obj = m;
    }
    return obj;
}

static jnode *parse_call(parser *p, jnode *callee)
{
    jnode *c = node(p, N_CALL, peek(p)->pos);
    if (!c)
        return NULL;
    c->a = callee;
    if (!parse_args(p, false, &c->kids, &c->nkids))
        return NULL;
    jnode *x = parse_member(p, c);
    if (x && is(p, T_LPAREN))
        x = parse_call(p, x);
    return x;
}

/* Sequence a, b, c -> TUPLE (or the single expression). */
static jnode *parse_sequence(parser *p, bool primary)
{
    size_t pos = peek(p)->pos;
    jnode *first = primary ? parse_primary(p) : parse_expr(p);
    if (!first || !is(p, T_COMMA))
        return first;
    nvec v = {0};
    nv_push(p, &v, first);
    while (is(p, T_COMMA)) {
        p->cur++;
        if (!nv_push(p, &v, primary ? parse_primary(p) : parse_expr(p))) {
            free(v.v);
            return NULL;
        }
    }
    jnode *t = node(p, N_TUPLE, pos);
    if (!t || !nv_done(p, &v, &t->kids, &t->nkids))
        return NULL;
    return t;
}

static jnode *parse_primary(parser *p)
{
    if (++p->depth > MAX_DEPTH) {
        pfail(p, peek(p)->pos, "expression nested too deeply%s", "");
        return NULL;
    }
    jtok *k = peek(p);
    jnode *n = NULL;
    p->cur++;
    switch (k->t) {
    case T_NUM:
        if (strchr(k->v, '.')) {
            n = node(p, N_FLOAT, k->pos);
            if (n)
                n->f = strtod(k->v, NULL);
        } else {
            n = node(p, N_INT, k->pos);
            if (n)
                n->i = strtoll(k->v, NULL, 10);
        }
        break;
    case T_STR: {
        size_t total = k->len;
        int j = p->cur;
        while (j < p->n && p->t[j].t == T_STR)
            total += p->t[j++].len;
        char *s = hp_arena_alloc(p->a, total + 1);
        n = node(p, N_STR, k->pos);
        if (!s || !n) {
            p->err = HP_ERR_NOMEM;
            n = NULL;
            break;
        }
        memcpy(s, k->v, k->len);
        size_t off = k->len;
        while (is(p, T_STR)) {
            memcpy(s + off, peek(p)->v, peek(p)->len);
            off += peek(p)->len;
            p->cur++;
        }
        n->str = hp_jinja__str(p->a, s, total, false);
        if (!n->str) {
            p->err = HP_ERR_NOMEM;
            n = NULL;
        }
        break;
    }
    case T_NAME:
        n = node(p, N_NAME, k->pos);
        if (n)
            n->name = k->v;
        break;
    case T_LPAREN:
        n = parse_sequence(p, false);
        if (n && !expect(p, T_RPAREN, "')'"))
            n = NULL;
        break;
    case T_LBRACKET: {
        nvec v = {0};
        n = node(p, N_LIST, k->pos);
        while (n && !is(p, T_RBRACKET)) {
            if (is(p, T_EOF)) {
                expect(p, T_RBRACKET, "']'");
                break;
            }
            if (!nv_push(p, &v, parse_expr(p)))
                break;
            if (is(p, T_COMMA))
                p->cur++;
        }
        if (p->err != HP_OK || !n) {
            free(v.v);
            n = NULL;
            break;
        }
        p->cur++;
        if (!nv_done(p, &v, &n->kids, &n->nkids))
            n = NULL;
        break;
    }
    case T_LBRACE: {
        nvec v = {0};
        n = node(p, N_DICT, k->pos);
        while (n && !is(p, T_RBRACE)) {
            if (is(p, T_EOF)) {
                expect(p, T_RBRACE, "'}'");
                break;
            }
            if (!nv_push(p, &v, parse_expr(p)))
                break;
            if (!expect(p, T_COLON, "':' in a dict literal"))
                break;
            if (!nv_push(p, &v, parse_expr(p)))
                break;
            if (is(p, T_COMMA))
                p->cur++;
        }
        if (p->err != HP_OK || !n) {
            free(v.v);
            n = NULL;
            break;
        }
        p->cur++;
        if (!nv_done(p, &v, &n->kids, &n->nkids))
            n = NULL;
        break;
    }
    default:
        pfail(p, k->pos, "unexpected '%.40s'", describe(k));
        break;
    }
    p->depth--;
    return n;
}

static jnode *parse_call_member(parser *p)
{
    jnode *m = parse_member(p, parse_primary(p));
    if (m && is(p, T_LPAREN))
        return parse_call(p, m);
    return m;
}

static jnode *parse_unary_sign(parser *p)
{
    jtok *k = peek(p);
    if ((k->t == T_UNARY || k->t == T_ADD) &&
        (!strcmp(k->v, "-") || !strcmp(k->v, "+"))) {
        if (++p->depth > MAX_DEPTH) {
            pfail(p, k->pos, "expression nested too deeply%s", "");
            return NULL;
        }
        p->cur++;
        jnode *u = node(p, N_UNARY, k->pos);
        if (!u)
            return NULL;
        u->op = k->v[0] == '-' ? OP_NEG : OP_POS;
        u->a = parse_unary_sign(p);
        p->depth--;
        return u->a ? u : NULL;
    }
    return parse_call_member(p);
}

/* x | name, x | name(args); names are checked here, not at render. */
static jnode *parse_filter_tail(parser *p, jnode *operand)
{
    jtok *k = peek(p);
    if (k->t != T_NAME) {
        pfail(p, k->pos, "expected a filter name after '|'%s", "");
        return NULL;
    }
    p->cur++;
    if (!hp_jinja__filter_known(k->v)) {
        pfail(p, k->pos, "unknown filter '%.60s'", k->v);
        return NULL;
    }
    jnode *f = node(p, N_FILTER, k->pos);
    if (!f)
        return NULL;
    f->a = operand;
    f->name = k->v;
    if (is(p, T_LPAREN)) {
        f->flag = true;
        if (!parse_args(p, false, &f->kids, &f->nkids))
            return NULL;
    }
    return f;
}

static jnode *parse_filter(parser *p)
{
    jnode *x = parse_unary_sign(p);
    while (x && is(p, T_PIPE)) {
        p->cur++;
        x = parse_filter_tail(p, x);
    }
    return x;
}

static jnode *parse_test(parser *p)
{
    jnode *x = parse_filter(p);
    while (x && is_name(p, "is")) {
        p->cur++;
        bool neg = is_name(p, "not");
        if (neg)
            p->cur++;
        jtok *k = peek(p);
        if (k->t != T_NAME) {
            pfail(p, k->pos, "expected a test name after 'is'%s", "");
            return NULL;
        }
        p->cur++;
        if (!hp_jinja__test_known(k->v)) {
            pfail(p, k->pos, "unknown test '%.60s'", k->v);
            return NULL;
        }
        jnode *t = node(p, N_TEST, k->pos);
        if (!t)
            return NULL;
        t->a = x;
        t->name = k->v;
        t->flag = neg;
        x = t;
    }
    return x;
}

static jnode *binop(parser *p, int op, size_t pos, jnode *l, jnode *r)
{
    if (!l || !r)
        return NULL;
    jnode *b = node(p, N_BINOP, pos);
    if (!b)
        return NULL;
    b->op = op;
    b->a = l;
    b->b = r;
    return b;
}

static jnode *parse_pow(parser *p)
{
    jnode *x = parse_test(p);
    while (x && is(p, T_POW)) {
        size_t pos = peek(p)->pos;
        p->cur++;
        x = binop(p, OP_POW, pos, x, parse_test(p));
    }
    return x;
}

static jnode *parse_mul(parser *p)
{
    jnode *x = parse_pow(p);
    while (x && is(p, T_MUL)) {
        jtok *k = peek(p);
        p->cur++;
        int op = !strcmp(k->v, "*") ? OP_MUL : !strcmp(k->v, "/") ? OP_DIV
                 : !strcmp(k->v, "//") ? OP_FDIV : OP_MOD;
        x = binop(p, op, k->pos, x, parse_pow(p));
    }
    return x;
}

static jnode *parse_add(parser *p)
{
    jnode *x = parse_mul(p);
    while (x && is(p, T_ADD)) {
        jtok *k = peek(p);
        p->cur++;
        int op = k->v[0] == '+' ? OP_ADD : k->v[0] == '-' ? OP_SUB : OP_CAT;
        x = binop(p, op, k->pos, x, parse_mul(p));
    }
    return x;
}

static jnode *parse_cmp(parser *p)
{
    jnode *x = parse_add(p);
    while (x) {
        jtok *k = peek(p);
        int op;
        if (is_name(p, "not") && peek_at(p, 1)->t == T_NAME &&
            !strcmp(peek_at(p, 1)->v, "in")) {
            op = OP_NOTIN;
            p->cur += 2;
        } else if (is_name(p, "in")) {
            op = OP_IN;
            p->cur++;
        } else if (k->t == T_CMP) {
            static const char *const names[] = {"==", "!=", "<", ">", "<=",
                                                ">="};
            static const int ops[] = {OP_EQ, OP_NE, OP_LT, OP_GT, OP_LE,
                                      OP_GE};
            op = OP_EQ;
            for (int i = 0; i < 6; i++)
                if (!strcmp(k->v, names[i]))
                    op = ops[i];
            p->cur++;
        } else {
            break;
        }
        x = binop(p, op, k->pos, x, parse_add(p));
    }
    return x;
}

static jnode *parse_not(parser *p)
{
    if (is_name(p, "not")) {
        size_t pos = peek(p)->pos;
        if (++p->depth > MAX_DEPTH) {
            pfail(p, pos, "expression nested too deeply%s", "");
            return NULL;
        }
        p->cur++;
        jnode *u = node(p, N_UNARY, pos);
        if (!u)
            return NULL;
        u->op = OP_NOT;
        u->a = parse_not(p);
        p->depth--;
        return u->a ? u : NULL;
    }
    return parse_cmp(p);
}

static jnode *parse_and(parser *p)
{
    jnode *x = parse_not(p);
    while (x && is_name(p, "and")) {
        size_t pos = peek(p)->pos;
        p->cur++;
        x = binop(p, OP_AND, pos, x, parse_not(p));
    }
    return x;
}

static jnode *parse_or(parser *p)
{
    jnode *x = parse_and(p);
    while (x && is_name(p, "or")) {
        size_t pos = peek(p)->pos;
        p->cur++;
        x = binop(p, OP_OR, pos, x, parse_and(p));
    }
    return x;
}

static jnode *parse_expr(parser *p)
{
    if (++p->depth > MAX_DEPTH) {
        pfail(p, peek(p)->pos, "expression nested too deeply%s", "");
        return NULL;
    }
    jnode *a = parse_or(p);
    if (a && is_name(p, "if")) {
        size_t pos = peek(p)->pos;
        p->cur++;
        jnode *cond = parse_or(p);
        if (!cond)
            return NULL;
        if (is_name(p, "else")) {
            p->cur++;
            jnode *t = node(p, N_TERNARY, pos);
            if (!t)
                return NULL;
            t->a = cond;
            t->b = a;
            t->c = parse_expr(p);
            a = t->c ? t : NULL;
        } else {
            jnode *s = node(p, N_SELECT, pos);
            if (!s)
                return NULL;
            s->a = a;
            s->b = cond;
            a = s;
        }
    }
    p->depth--;
    return a;
}

/* ---- statements ------------------------------------------------------------ */

static bool is_stmt(parser *p, const char *const *names)
{
    if (!is(p, T_OPEN_STMT) || peek_at(p, 1)->t != T_NAME)
        return false;
    for (; *names; names++)
        if (!strcmp(peek_at(p, 1)->v, *names))
            return true;
    return false;
}

/* Body until one of stop (not consumed). EOF is an error naming stop[0]. */
static bool parse_body(parser *p, const char *const *stop, size_t open_pos,
                       jnode ***out, int *n)
{
    nvec v = {0};
    while (!is_stmt(p, stop)) {
        if (is(p, T_EOF)) {
            free(v.v);
            return pfail(p, open_pos, "missing {%% %s %%}", stop[0]);
        }
        if (!nv_push(p, &v, parse_any(p))) {
            free(v.v);
            return false;
        }
    }
    return nv_done(p, &v, out, n);
}

/* {% name %} ending a block: consumes all three tokens. */
static bool end_tag(parser *p, const char *name)
{
    if (!expect(p, T_OPEN_STMT, "'{%'"))
        return false;
    if (!is_name(p, name))
        return pfail(p, peek(p)->pos, "expected '%s'", name);
    p->cur++;
    return expect(p, T_CLOSE_STMT, "'%}'");
}

static jnode *parse_if(parser *p, size_t pos)
{
    static const char *const stop[] = {"endif", "elif", "else", NULL};
    static const char *const stop_else[] = {"endif", NULL};
    jnode *n = node(p, N_IF, pos);
    if (!n || !(n->a = parse_expr(p)) ||
        !expect(p, T_CLOSE_STMT, "'%}'") ||
        !parse_body(p, stop, pos, &n->kids, &n->nkids))
        return NULL;
    if (is_stmt(p, (const char *const[]){"elif", NULL})) {
        size_t epos = peek_at(p, 1)->pos;
        p->cur += 2;
        jnode *e = parse_if(p, epos);
        if (!e)
            return NULL;
        n->kids2 = hp_arena_alloc(p->a, sizeof *n->kids2);
        if (!n->kids2) {
            p->err = HP_ERR_NOMEM;
            return NULL;
        }
        n->kids2[0] = e;
        n->nkids2 = 1;
    } else if (is_stmt(p, (const char *const[]){"else", NULL})) {
        p->cur += 2;
        if (!expect(p, T_CLOSE_STMT, "'%}'") ||
            !parse_body(p, stop_else, pos, &n->kids2, &n->nkids2))
            return NULL;
    }
    return n;
}

static jnode *parse_for(parser *p, size_t pos)
{
    static const char *const stop[] = {"endfor", "else", NULL};
    static const char *const stop_end[] = {"endfor", NULL};
    jnode *n = node(p, N_FOR, pos);
    if (!n || !(n->a = parse_sequence(p, true)))
        return NULL;
    if (n->a->kind != N_NAME && n->a->kind != N_TUPLE) {
        pfail(p, n->a->pos, "expected a loop variable%s", "");
        return NULL;
    }
    for (int i = 0; n->a->kind == N_TUPLE && i < n->a->nkids; i++)
        if (n->a->kids[i]->kind != N_NAME) {
            pfail(p, n->a->kids[i]->pos, "expected a loop variable%s", "");
            return NULL;
        }
    if (!is_name(p, "in")) {
        pfail(p, peek(p)->pos, "expected 'in' after the loop variable%s", "");
        return NULL;
    }
    p->cur++;
    jnode *it = parse_expr(p);
    if (!it)
        return NULL;
    if (it->kind == N_SELECT) {
        n->b = it->a;
        n->c = it->b;
    } else {
        n->b = it;
    }
    if (!expect(p, T_CLOSE_STMT, "'%}'") ||
        !parse_body(p, stop, pos, &n->kids, &n->nkids))
        return NULL;
    if (is_stmt(p, (const char *const[]){"else", NULL})) {
        p->cur += 2;
        if (!expect(p, T_CLOSE_STMT, "'%}'") ||
            !parse_body(p, stop_end, pos, &n->kids2, &n->nkids2))
            return NULL;
    }
    return end_tag(p, "endfor") ? n : NULL;
}

static jnode *parse_set(parser *p, size_t pos)
{
    static const char *const stop[] = {"endset", NULL};
    jnode *n = node(p, N_SET, pos);
    if (!n || !(n->a = parse_sequence(p, false)))
        return NULL;
    jnode *t = n->a;
    bool ok = t->kind == N_NAME || t->kind == N_TUPLE ||
              (t->kind == N_MEMBER && !t->flag && t->b->kind == N_NAME);
    for (int i = 0; t->kind == N_TUPLE && i < t->nkids; i++)
        ok = ok && t->kids[i]->kind == N_NAME;
    if (!ok) {
        pfail(p, t->pos, "cannot assign to this expression%s", "");
        return NULL;
    }
    if (is(p, T_EQUALS)) {
        p->cur++;
        if (!(n->b = parse_sequence(p, false)))
            return NULL;
        return expect(p, T_CLOSE_STMT, "'%}'") ? n : NULL;
    }
    if (!expect(p, T_CLOSE_STMT, "'=' or '%}'") ||
        !parse_body(p, stop, pos, &n->kids, &n->nkids) ||
        !end_tag(p, "endset"))
        return NULL;
    return n;
}

static jnode *parse_macro(parser *p, size_t pos)
{
    static const char *const stop[] = {"endmacro", NULL};
    jnode *n = node(p, N_MACRO, pos);
    if (!n)
        return NULL;
    if (!is(p, T_NAME)) {
        pfail(p, peek(p)->pos, "expected a macro name%s", "");
        return NULL;
    }
    n->name = peek(p)->v;
    p->cur++;
    if (!parse_args(p, true, &n->params, &n->nparams) ||
        !expect(p, T_CLOSE_STMT, "'%}'") ||
        !parse_body(p, stop, pos, &n->kids, &n->nkids) ||
        !end_tag(p, "endmacro"))
        return NULL;
    return n;
}

static jnode *parse_callblock(parser *p, size_t pos)
{
    static const char *const stop[] = {"endcall", NULL};
    jnode *n = node(p, N_CALLBLOCK, pos);
    if (!n)
        return NULL;
    if (is(p, T_LPAREN) && !parse_args(p, true, &n->params, &n->nparams))
        return NULL;
    if (!is(p, T_NAME)) {
        pfail(p, peek(p)->pos, "expected a macro name after 'call'%s", "");
        return NULL;
    }
    jnode *callee = parse_primary(p);
    if (!callee)
        return NULL;
    n->a = node(p, N_CALL, callee->pos);
    if (!n->a)
        return NULL;
    n->a->a = callee;
    if (!parse_args(p, false, &n->a->kids, &n->a->nkids) ||
        !expect(p, T_CLOSE_STMT, "'%}'") ||
        !parse_body(p, stop, pos, &n->kids, &n->nkids) ||
        !end_tag(p, "endcall"))
        return NULL;
    return n;
}

static jnode *parse_filterblock(parser *p, size_t pos)
{
    static const char *const stop[] = {"endfilter", NULL};
    jnode *n = node(p, N_FILTERBLOCK, pos);
    if (!n || !(n->a = parse_filter_tail(p, NULL)))
        return NULL;
    while (is(p, T_PIPE)) {
        p->cur++;
        if (!(n->a = parse_filter_tail(p, n->a)))
            return NULL;
    }
    if (!expect(p, T_CLOSE_STMT, "'%}'") ||
        !parse_body(p, stop, pos, &n->kids, &n->nkids) ||
        !end_tag(p, "endfilter"))
        return NULL;
    return n;
}

static jnode *parse_statement(parser *p)
{
    p->cur++; /* {% */
    jtok *k = peek(p);
    if (k->t != T_NAME) {
        pfail(p, k->pos, "expected a statement name, got '%.40s'",
              describe(k));
        return NULL;
    }
    p->cur++;
    const char *s = k->v;
    jnode *n = NULL;
    if (!strcmp(s, "set")) {
        n = parse_set(p, k->pos);
    } else if (!strcmp(s, "if")) {
        n = parse_if(p, k->pos);
        if (n && !end_tag(p, "endif"))
            n = NULL;
    } else if (!strcmp(s, "for")) {
        n = parse_for(p, k->pos);
    } else if (!strcmp(s, "macro")) {
        n = parse_macro(p, k->pos);
    } else if (!strcmp(s, "call")) {
        n = parse_callblock(p, k->pos);
    } else if (!strcmp(s, "filter")) {
        n = parse_filterblock(p, k->pos);
    } else if (!strcmp(s, "break") || !strcmp(s, "continue")) {
        n = node(p, s[0] == 'b' ? N_BREAK : N_CONTINUE, k->pos);
        if (n && !expect(p, T_CLOSE_STMT, "'%}'"))
            n = NULL;
    } else if (!strncmp(s, "end", 3) || !strcmp(s, "else") ||
               !strcmp(s, "elif")) {
        pfail(p, k->pos, "unexpected {%% %.40s %%} (no open block it "
                         "closes)", s);
    } else {
        pfail(p, k->pos, "unknown statement '%.60s'", s);
    }
    return n;
}

static jnode *parse_any(parser *p)
{
    if (++p->depth > MAX_DEPTH) {
        pfail(p, peek(p)->pos, "blocks nested too deeply%s", "");
        return NULL;
    }
    jtok *k = peek(p);
    jnode *n = NULL;
    switch (k->t) {
    case T_COMMENT:
        p->cur++;
        n = node(p, N_COMMENT, k->pos);
        break;
    case T_TEXT:
        p->cur++;
        n = node(p, N_TEXT, k->pos);
        if (n) {
            n->str = hp_jinja__str(p->a, k->v, k->len, false);
            if (!n->str) {
                p->err = HP_ERR_NOMEM;
                n = NULL;
            }
        }
        break;
    case T_OPEN_STMT:
        n = parse_statement(p);
        break;
    case T_OPEN_EXPR:
        p->cur++;
        n = parse_expr(p);
        if (n && !expect(p, T_CLOSE_EXPR, "'}}'"))
            n = NULL;
        break;
    default:
        pfail(p, k->pos, "unexpected '%.40s'", describe(k));
        break;
    }
    p->depth--;
    return n;
}

/* ---- public ------------------------------------------------------------------ */

static bool has(const char *s, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (!memcmp(s + i, needle, k))
            return true;
    return false;
}

hp_err hp_jinja_parse(const char *src, size_t len, hp_jinja **out,
                      hp_errbuf *eb)
{
    *out = NULL;
    if (!src)
        len = 0;
    hp_jinja *t = calloc(1, sizeof *t);
    if (!t)
        return hp_errf(eb, HP_ERR_NOMEM, "chat template: out of memory");
    t->arena = hp_arena_new(0);
    t->src = t->arena ? hp_arena_strndup(t->arena, src ? src : "", len) : NULL;
    if (!t->src) {
        hp_jinja_free(t);
        return hp_errf(eb, HP_ERR_NOMEM, "chat template: out of memory");
    }
    t->src_len = len;
    jtok *toks = NULL;
    int ntoks = 0;
    hp_err e = hp_jinja__lex(t->arena, t->src, len, &toks, &ntoks, eb);
    if (e != HP_OK) {
        hp_jinja_free(t);
        return e;
    }
    parser p = {t->arena, t->src, len, toks, ntoks, 0, eb, HP_OK, 0};
    nvec v = {0};
    while (p.err == HP_OK && !is(&p, T_EOF))
        if (!nv_push(&p, &v, parse_any(&p)))
            break;
    if (p.err == HP_OK)
        nv_done(&p, &v, &t->body, &t->nbody);
    else
        free(v.v);
    free(toks);
    if (p.err != HP_OK) {
        if (p.err == HP_ERR_NOMEM)
            hp_errf(eb, HP_ERR_NOMEM, "chat template: out of memory");
        hp_jinja_free(t);
        return p.err;
    }
    t->content_parts = has(t->src, len, "'text'") ||
                       has(t->src, len, "\"text\"") ||
                       has(t->src, len, ".text") ||
                       has(t->src, len, "'type'") ||
                       has(t->src, len, "\"type\"");
    *out = t;
    return HP_OK;
}

void hp_jinja_free(hp_jinja *t)
{
    if (!t)
        return;
    hp_arena_free(t->arena);
    free(t);
}

bool hp_jinja_wants_content_parts(const hp_jinja *t)
{
    return t && t->content_parts;
}
