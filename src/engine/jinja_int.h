/* jinja_int.h: internals shared by the jinja_*.c files (not for callers):
 * tokens, the syntax tree, runtime values and the render context.
 *
 * Memory: the syntax tree lives in the hp_jinja's arena; every value made
 * while rendering lives in the render's arena and dies with it, so values
 * are plain structs passed by value with no reference counts. Output and
 * capture buffers (jbuf) are malloc'd because they grow. */
#ifndef HP_JINJA_INT_H
#define HP_JINJA_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/jinja.h"
#include "util/arena.h"

/* ---- strings with content marks ----------------------------------------- */

/* [a, b) byte range of a string that came from request content. */
typedef struct jspan {
    size_t a, b;
} jspan;

/* Immutable string (arena). spans are sorted, disjoint and non-adjacent. */
typedef struct jstr {
    const char *p; /* NUL-terminated */
    size_t len;
    const jspan *spans;
    int nspans;
} jstr;

/* Growable byte buffer with content spans (malloc'd). */
typedef struct jbuf {
    char *p;
    size_t len, cap;
    jspan *sp;
    int nsp, spcap;
    bool oom;
} jbuf;

void hp_jinja__buf_put(jbuf *b, const char *s, size_t n, bool content);
void hp_jinja__buf_puts(jbuf *b, const char *s);
void hp_jinja__buf_put_str(jbuf *b, const jstr *s);
void hp_jinja__buf_truncate(jbuf *b, size_t len);
void hp_jinja__buf_free(jbuf *b);
/* Copy into the arena as a string (NULL on OOM). */
jstr *hp_jinja__buf_str(hp_arena *a, const jbuf *b);

jstr *hp_jinja__str(hp_arena *a, const char *s, size_t n, bool content);
/* s[from..to) keeping the marks that fall inside. */
jstr *hp_jinja__substr(hp_arena *a, const jstr *s, size_t from, size_t to);
jstr *hp_jinja__strcat(hp_arena *a, const jstr *x, const jstr *y);
bool hp_jinja__str_marked(const jstr *s);

/* ---- values ------------------------------------------------------------- */

typedef enum jkind {
    JV_UNDEF = 0,
    JV_NONE,
    JV_BOOL,
    JV_INT,
    JV_FLOAT,
    JV_STR,
    JV_LIST, /* also tuples */
    JV_DICT,
    JV_NS,     /* namespace(): a dict whose attributes can be set */
    JV_FUNC,   /* global builtin function (JF_*) */
    JV_MACRO,  /* {% macro %} or a call block's caller() */
    JV_METHOD  /* a string/dict method bound to its receiver */
} jkind;

typedef struct jlist jlist;
typedef struct jdict jdict;
typedef struct jnode jnode;
typedef struct jmacro jmacro;
typedef struct jmethod jmethod;

typedef struct jv {
    jkind k;
    union {
        bool b;
        int64_t i;
        double f;
        jstr *s;
        jlist *l;
        jdict *d;
        int fn;
        jmacro *m;
        jmethod *bm;
    } u;
} jv;

struct jlist {
    jv *v;
    size_t n, cap;
};

struct jdict {
    jstr **keys;
    jv *vals;
    size_t n, cap;
};

enum { JF_RAISE = 1, JF_RANGE, JF_NAMESPACE, JF_STRFTIME };

/* ---- syntax tree -------------------------------------------------------- */

typedef enum jnk {
    /* statements */
    N_TEXT, N_IF, N_FOR, N_SET, N_MACRO, N_CALLBLOCK, N_FILTERBLOCK,
    N_BREAK, N_CONTINUE, N_COMMENT,
    /* expressions */
    N_STR, N_INT, N_FLOAT, N_NAME, N_LIST, N_TUPLE, N_DICT, N_MEMBER,
    N_SLICE, N_CALL, N_BINOP, N_UNARY, N_FILTER, N_TEST, N_SELECT,
    N_TERNARY, N_KWARG
} jnk;

/* Binary and unary operators. */
enum {
    OP_ADD = 1, OP_SUB, OP_CAT, OP_MUL, OP_DIV, OP_FDIV, OP_MOD, OP_POW,
    OP_EQ, OP_NE, OP_LT, OP_GT, OP_LE, OP_GE, OP_IN, OP_NOTIN, OP_AND,
    OP_OR, OP_NOT, OP_NEG, OP_POS
};

/* A node. Which fields mean what, per kind:
 *   TEXT/STR: str. INT: i. FLOAT: f. NAME: name.
 *   LIST/TUPLE: kids. DICT: kids = k0, v0, k1, v1, ...
 *   MEMBER: a = object, b = property (computed) or name (dotted);
 *           flag = computed.
 *   SLICE: a, b, c = start, stop, step (each may be NULL).
 *   CALL: a = callee, kids = args (KWARG nodes for keywords).
 *   BINOP/UNARY: op, a, b.  TERNARY: a = cond, b = then, c = else.
 *   SELECT: a = value, b = cond.
 *   FILTER: a = operand, name = filter, kids = args, flag = called.
 *   TEST: a = operand, name = test, flag = negated.
 *   KWARG: name, a = value.
 *   IF: a = cond, kids = body, kids2 = else.
 *   FOR: a = target (NAME or TUPLE), b = iterable, c = condition or NULL,
 *        kids = body, kids2 = else.
 *   SET: a = target, b = value or NULL (block: kids).
 *   MACRO: name, params = parameters (NAME or KWARG), kids = body.
 *   CALLBLOCK: a = CALL node, params = caller parameters, kids = body.
 *   FILTERBLOCK: a = FILTER node with a NULL operand, kids = body. */
struct jnode {
    jnk kind;
    int op;
    bool flag;
    size_t pos; /* byte offset in the original template, for errors */
    jstr *str;
    const char *name;
    int64_t i;
    double f;
    jnode *a, *b, *c;
    jnode **kids;
    int nkids;
    jnode **kids2;
    int nkids2;
    jnode **params;
    int nparams;
};

struct hp_jinja {
    hp_arena *arena;   /* owns: the tree and source copies */
    char *src;         /* arena: the original template */
    size_t src_len;
    jnode **body;
    int nbody;
    bool content_parts;
};

/* ---- lexer -------------------------------------------------------------- */

typedef enum jtt {
    T_TEXT, T_NUM, T_STR, T_NAME, T_EQUALS, T_LPAREN, T_RPAREN, T_OPEN_STMT,
    T_CLOSE_STMT, T_OPEN_EXPR, T_CLOSE_EXPR, T_LBRACKET, T_RBRACKET,
    T_LBRACE, T_RBRACE, T_COMMA, T_DOT, T_COLON, T_PIPE, T_ADD, T_MUL,
    T_POW, T_CMP, T_UNARY, T_COMMENT, T_EOF
} jtt;

typedef struct jtok {
    jtt t;
    const char *v; /* arena, NUL-terminated (decoded for strings) */
    size_t len;
    size_t pos;    /* offset in the original template */
} jtok;

/* Tokenize src the way @huggingface/jinja does (after its trim_blocks /
 * lstrip_blocks rewrite). HP_ERR_FORMAT with line/column in eb. */
hp_err hp_jinja__lex(hp_arena *a, const char *src, size_t len, jtok **toks,
                     int *ntoks, hp_errbuf *eb);
/* "chat template: line L, column C: " prefix for offset pos of src. */
hp_err hp_jinja__errat(hp_errbuf *eb, hp_err code, const char *src,
                       size_t len, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* ---- render context ------------------------------------------------------ */

typedef struct jscope jscope;
struct jscope {
    jdict *vars;
    jscope *parent;
};

struct jmacro {
    const jnode *def;   /* MACRO or CALLBLOCK node */
    jscope *closure;    /* call blocks: the scope they were written in */
    jv caller;          /* macro called from a call block: its caller() */
};

struct jmethod {
    jv self;
    const char *name;
};

typedef struct jctx {
    hp_arena *a;
    const hp_jinja *t;
    hp_errbuf *eb;
    hp_err err;          /* first error, HP_OK while fine */
    jbuf *out;           /* where statements write */
    int depth;
    long steps;
} jctx;

/* Set the error (first one wins) at node n; returns false for `return`. */
bool hp_jinja__fail(jctx *c, const jnode *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
bool hp_jinja__oom(jctx *c);

/* values */
jv hp_jinja__mk_str(jctx *c, const char *s, size_t n);
jv hp_jinja__mk_list(jctx *c, size_t cap);
bool hp_jinja__list_push(jctx *c, jlist *l, jv v);
jv hp_jinja__mk_dict(jctx *c);
jv *hp_jinja__dict_get(const jdict *d, const char *k, size_t n);
bool hp_jinja__dict_set(jctx *c, jdict *d, jstr *k, jv v);
bool hp_jinja__truthy(jv v);
bool hp_jinja__equal(jv x, jv y);
/* Python-ish type name for messages ("string", "list", ...). */
const char *hp_jinja__kind_name(jv v);
/* Convert JSON into a value; content marks strings. */
jv hp_jinja__from_json(jctx *c, const json_t *j, bool content);

/* Append how v prints in output ({{ v }}) to b; undefined/none print
 * nothing when top is true (statement output). */
bool hp_jinja__write_value(jctx *c, jbuf *b, jv v, const jnode *at);
/* v as a string value (for ~, +, string filter). NULL after an error. */
jstr *hp_jinja__to_str(jctx *c, jv v, const jnode *at);
/* JSON text (tojson). indent < 0: none. */
typedef struct jjson_opts {
    int indent;
    bool ensure_ascii, sort_keys, undef_null;
    const char *item_sep, *key_sep;
} jjson_opts;
bool hp_jinja__to_json(jctx *c, jbuf *b, jv v, const jjson_opts *o,
                       int depth, const jnode *at);
/* JavaScript's Number#toString of d into buf (>= 32 bytes). */
void hp_jinja__fmt_num(double d, char *buf, size_t cap);

/* Evaluated call arguments: positional, then keyword names and values. */
typedef struct jargs {
    const jv *pos;
    int npos;
    const char *const *kwn;
    const jv *kwv;
    int nkw;
} jargs;

/* Positional i (i < 0: none), else keyword name, else NULL. */
const jv *hp_jinja__arg(const jargs *a, int i, const char *name);
bool hp_jinja__arg_bool(const jargs *a, int i, const char *name, bool def);

/* string, sort and path helpers (jinja_call.c) */
size_t hp_jinja__cp_len(const char *s, size_t i, size_t n);
size_t hp_jinja__cp_count(const jstr *s);
/* strip chars (NULL: JavaScript whitespace) from the left and/or right. */
jv hp_jinja__strip(jctx *c, const jstr *s, const jstr *chars, bool l, bool r);
/* mode 0 upper, 1 lower, 2 title, 3 capitalize (ASCII). */
jv hp_jinja__case_map(jctx *c, const jstr *s, int mode);
jv hp_jinja__replace(jctx *c, const jnode *at, const jstr *s, const jargs *a);
/* what 0: [key, value] pairs, 1: keys, 2: values. */
jv hp_jinja__dict_items(jctx *c, const jdict *d, int what);
jv hp_jinja__sorted(jctx *c, const jnode *at, const jlist *l, bool rev,
                    bool cs, const jstr *attr);
/* item.a.0.b: dict keys and list indices; undefined when missing. */
jv hp_jinja__attr_path(jv item, const jstr *path);

/* statement results */
enum { ST_OK = 0, ST_BREAK = 1, ST_CONTINUE = 2, ST_ERR = -1 };

/* Call arguments as evaluated from the syntax tree (arena arrays). */
typedef struct cargs {
    jv *pos;
    int npos;
    const char **kwn;
    jv *kwv;
    int nkw;
} cargs;

/* scopes and statements (jinja_render.c) */
jscope *hp_jinja__scope_new(jctx *c, jscope *parent);
jv hp_jinja__lookup(const jscope *s, const char *name);
bool hp_jinja__scope_set(jctx *c, jscope *s, const char *name, jv v);
int hp_jinja__exec_block(jctx *c, jnode *const *kids, int n, jscope *s);
/* Run a block into a new buffer; its text as a string, *st its result. */
jv hp_jinja__capture(jctx *c, jnode *const *kids, int n, jscope *s, int *st);

/* expressions (jinja_eval.c) */
jv hp_jinja__eval(jctx *c, const jnode *n, jscope *s);
bool hp_jinja__eval_args(jctx *c, jnode *const *kids, int n, jscope *s,
                         cargs *a);
/* A FILTER node; operand (filter blocks) replaces its innermost operand. */
jv hp_jinja__eval_filter(jctx *c, const jnode *n, jscope *s,
                         const jv *operand);
jv hp_jinja__call_macro(jctx *c, const jnode *at, const jmacro *m,
                        const cargs *a, jscope *callsite);
/* Count a step; false (error set) past the step or memory limit. */
bool hp_jinja__tick(jctx *c, const jnode *n);

/* filters, tests (jinja_filter.c), methods and functions (jinja_call.c) */
bool hp_jinja__filter_known(const char *name);
bool hp_jinja__test_known(const char *name);
/* Apply filter name to v with evaluated args (pos[npos], kw names/vals). */
bool hp_jinja__filter(jctx *c, const jnode *at, const char *name, jv v,
                      const jv *pos, int npos, const char *const *kwn,
                      const jv *kwv, int nkw, jv *res);
bool hp_jinja__test(jctx *c, const jnode *at, const char *name, jv v,
                    const jv *args, int nargs, bool *res);
/* Attribute of a string/list/dict used as x.name (methods, length). */
bool hp_jinja__attr(jctx *c, jv obj, const char *name, jv *res);
bool hp_jinja__call_method(jctx *c, const jnode *at, const jmethod *m,
                           const jv *pos, int npos, const char *const *kwn,
                           const jv *kwv, int nkw, jv *res);
bool hp_jinja__call_builtin(jctx *c, const jnode *at, int fn,
                            const jv *pos, int npos, const char *const *kwn,
                            const jv *kwv, int nkw, jv *res);

#endif
