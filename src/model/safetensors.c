/* safetensors.c: the validating safetensors reader behind safetensors.h.
 *
 * Owns the mappings of one checkpoint's shard files, their parsed JSON
 * headers (tensor names borrow the header's keys), the tensor table and a
 * name hash. Every header length, dtype, shape, byte range and overlap is
 * checked against the file size here, once. Also the load-time converter
 * to f32/f16/bf16/q8_0/q4_0. Knows the container format only: no
 * architectures. Included (through safetensors.h) by model/ and cli/.
 *
 * File layout (the format's whole spec): u64 little-endian N, N bytes of
 * UTF-8 JSON {name: {dtype, shape, data_offsets: [begin, end]}, optional
 * "__metadata__": {str: str}}, then the data section; offsets are relative
 * to the data section start (8 + N). */
#include "model/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define INDEX_NAME "model.safetensors.index.json"
#define SINGLE_NAME "model.safetensors"
/* The index is small (a name per tensor); anything bigger is not one. */
#define INDEX_MAX_BYTES (64u * 1024u * 1024u)
/* Longest name echoed into an error message (names come from the file). */
#define NAME_SHOW 72
/* Convert inline below this many elements: thread start costs more. */
#define PAR_MIN_ELEMS (1 << 18)
#define PAR_MAX_THREADS 64

typedef struct shard {
    char *path;          /* owns: full path */
    const char *base;    /* borrows: basename inside path */
    void *map;           /* owns: mmap of the whole file (NULL if empty) */
    size_t size;
    json_t *hdr;         /* owns: parsed header; names borrow its keys */
    const uint8_t *data; /* start of the data section */
    uint64_t data_size;
} shard;

struct hp_st {
    char *label;           /* owns: index or file basename, for messages */
    shard *shards;         /* owns: n_shards */
    size_t n_shards;
    hp_st_tensor *tensors; /* owns: n_tensors */
    size_t n_tensors, cap_tensors;
    uint32_t *table;       /* owns: tensor index + 1, 0 = empty slot */
    size_t table_cap;      /* power of two, >= 2 * n_tensors */
};

static const struct {
    const char *name;
    int size;
    hp_dtype kt;
} dtypes[HP_ST_DTYPE_COUNT] = {
    [HP_ST_BOOL] = {"BOOL", 1, HP_DT_COUNT},
    [HP_ST_U8] = {"U8", 1, HP_DT_COUNT},
    [HP_ST_I8] = {"I8", 1, HP_DT_COUNT},
    [HP_ST_F8_E5M2] = {"F8_E5M2", 1, HP_DT_COUNT},
    [HP_ST_F8_E4M3] = {"F8_E4M3", 1, HP_DT_COUNT},
    [HP_ST_F8_E8M0] = {"F8_E8M0", 1, HP_DT_COUNT},
    [HP_ST_I16] = {"I16", 2, HP_DT_COUNT},
    [HP_ST_U16] = {"U16", 2, HP_DT_COUNT},
    [HP_ST_F16] = {"F16", 2, HP_DT_F16},
    [HP_ST_BF16] = {"BF16", 2, HP_DT_BF16},
    [HP_ST_I32] = {"I32", 4, HP_DT_COUNT},
    [HP_ST_U32] = {"U32", 4, HP_DT_COUNT},
    [HP_ST_F32] = {"F32", 4, HP_DT_F32},
    [HP_ST_I64] = {"I64", 8, HP_DT_COUNT},
    [HP_ST_U64] = {"U64", 8, HP_DT_COUNT},
    [HP_ST_F64] = {"F64", 8, HP_DT_COUNT},
};

const char *hp_st_dtype_name(hp_st_dtype t)
{
    if ((int)t < 0 || t >= HP_ST_DTYPE_COUNT)
        return "?";
    return dtypes[t].name;
}

/* -------------------------------------------------------------- helpers */

/* Copy a file-supplied string into buf for a message: at most NAME_SHOW
 * bytes, non-printables as '?', "..." when cut. */
static const char *show(const char *s, char *buf, size_t cap)
{
    size_t n = 0, i = 0;
    if (s == NULL)
        s = "(null)";
    for (; s[i] != '\0' && n + 4 < cap && i < NAME_SHOW; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[n++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (s[i] != '\0' && n + 4 <= cap) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

static const char *base_of(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static char *join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (p == NULL)
        return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static int dtype_from_name(const char *s)
{
    for (int i = 0; i < HP_ST_DTYPE_COUNT; i++)
        if (strcmp(dtypes[i].name, s) == 0)
            return i;
    return -1;
}

/* --------------------------------------------------------- shard parse */

static hp_err push_tensor(hp_st *st, hp_st_tensor **t)
{
    if (st->n_tensors == st->cap_tensors) {
        size_t nc = st->cap_tensors ? st->cap_tensors * 2 : 64;
        hp_st_tensor *n = realloc(st->tensors, nc * sizeof *n);
        if (n == NULL)
            return HP_ERR_NOMEM;
        st->tensors = n;
        st->cap_tensors = nc;
    }
    *t = &st->tensors[st->n_tensors++];
    memset(*t, 0, sizeof **t);
    return HP_OK;
}

/* Validate one header entry into t. */
static hp_err parse_entry(const shard *sh, const char *name, json_t *v,
                          hp_st_tensor *t, hp_errbuf *eb)
{
    char nb[NAME_SHOW + 8], tb[NAME_SHOW + 8];
    const char *f = sh->base;
    if (!json_is_object(v))
        return hp_errf(eb, HP_ERR_FORMAT, "%s: tensor %s: entry is not an "
                       "object", f, show(name, nb, sizeof nb));
    json_t *dt = json_object_get(v, "dtype");
    json_t *shp = json_object_get(v, "shape");
    json_t *off = json_object_get(v, "data_offsets");
    if (!json_is_string(dt))
        return hp_errf(eb, HP_ERR_FORMAT, "%s: tensor %s: dtype missing or "
                       "not a string", f, show(name, nb, sizeof nb));
    int k = dtype_from_name(json_string_value(dt));
    if (k < 0)
        return hp_errf(eb, HP_ERR_UNSUPPORTED, "%s: tensor %s: unknown dtype "
                       "\"%s\"", f, show(name, nb, sizeof nb),
                       show(json_string_value(dt), tb, sizeof tb));
    if (!json_is_array(shp))
        return hp_errf(eb, HP_ERR_FORMAT, "%s: tensor %s: shape missing or "
                       "not an array", f, show(name, nb, sizeof nb));
    size_t nd = json_array_size(shp);
    if (nd > HP_ST_MAX_DIMS)
        return hp_errf(eb, HP_ERR_FORMAT, "%s: tensor %s: %zu dimensions "
                       "(max %d)", f, show(name, nb, sizeof nb), nd,
                       HP_ST_MAX_DIMS);
    t->name = name;
    t->file = f;
    t->st_type = (hp_st_dtype)k;
    t->type = dtypes[k].kt;
    t->elem_size = dtypes[k].size;
    t->ndims = (int)nd;
    uint64_t n = 1;
    for (int i = 0; i < HP_ST_MAX_DIMS; i++)
        t->shape[i] = 1;
    for (size_t i = 0; i < nd; i++) {
        json_t *d = json_array_get(shp, i);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return hp_errf(eb, HP_ERR_FORMAT, "%s: tensor %s: shape[%zu] is "
                           "not a non-negative integer", f,
                           show(name, nb, sizeof nb), i);
        uint64_t dim = (uint64_t)json_integer_value(d);
        if (__builtin_mul_overflow(n, dim, &n) || n > (uint64_t)INT64_MAX)
            return hp_errf(eb, HP_ERR_FORMAT, "%s: tensor %s: shape product "
                           "overflows", f, show(name, nb, sizeof nb));
        t->shape[i] = (int64_t)dim;
    }
    t->n_elems = (int64_t)n;
    uint64_t want;
    if (__builtin_mul_overflow(n, (uint64_t)t->elem_size, &want))
        return hp_errf(eb, HP_ERR_FORMAT, "%s: tensor %s: byte size "
                       "overflows", f, show(name, nb, sizeof nb));
    if (!json_is_array(off) || json_array_size(off) != 2 ||
        !json_is_integer(json_array_get(off, 0)) ||
        !json_is_integer(json_array_get(off, 1)))
        return hp_errf(eb, HP_ERR_FORMAT, "%s: tensor %s: data_offsets is "
                       "not [begin, end]", f, show(name, nb, sizeof nb));
    json_int_t b = json_integer_value(json_array_get(off, 0));
    json_int_t e = json_integer_value(json_array_get(off, 1));
    if (b < 0 || e < b)
        return hp_errf(eb, HP_ERR_FORMAT, "%s: tensor %s: data_offsets "
                       "[%lld, %lld] out of order", f,
                       show(name, nb, sizeof nb), (long long)b, (long long)e);
    if ((uint64_t)e > sh->data_size)
        return hp_errf(eb, HP_ERR_FORMAT, "%s: tensor %s: data_offsets "
                       "[%lld, %lld] past end of data (size %llu)", f,
                       show(name, nb, sizeof nb), (long long)b, (long long)e,
                       (unsigned long long)sh->data_size);
    if ((uint64_t)(e - b) != want)
        return hp_errf(eb, HP_ERR_FORMAT, "%s: tensor %s: data_offsets "
                       "[%lld, %lld] hold %lld bytes but %s shape needs %llu",
                       f, show(name, nb, sizeof nb), (long long)b,
                       (long long)e, (long long)(e - b), dtypes[k].name,
                       (unsigned long long)want);
    t->offset = (uint64_t)b;
    t->nbytes = want;
    t->data = sh->data + b;
    return HP_OK;
}

static int cmp_offset(const void *a, const void *b)
{
    const hp_st_tensor *x = a, *y = b;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    /* Equal begins: the shorter (possibly empty) first, so a zero-size
     * tensor never hides an overlap. */
    if (x->nbytes != y->nbytes)
        return x->nbytes < y->nbytes ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Map sh->path, parse and validate its header, append its tensors. */
static hp_err open_shard(hp_st *st, shard *sh, hp_errbuf *eb)
{
    const char *f = sh->base;
    int fd = open(sh->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return hp_errf(eb, errno == ENOENT ? HP_ERR_NOT_FOUND : HP_ERR_IO,
                       "%s: cannot open: %s", f, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return hp_errf(eb, HP_ERR_IO, "%s: not a regular file", f);
    }
    sh->size = (size_t)sb.st_size;
    if (sh->size < 8) {
        close(fd);
        return hp_errf(eb, HP_ERR_FORMAT, "%s: file too small (%zu bytes) "
                       "for the header length", f, sh->size);
    }
    sh->map = mmap(NULL, sh->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (sh->map == MAP_FAILED) {
        sh->map = NULL;
        return hp_errf(eb, HP_ERR_IO, "%s: mmap failed: %s", f,
                       strerror(errno));
    }
    const uint8_t *p = sh->map;
    uint64_t hlen;
    memcpy(&hlen, p, 8); /* little-endian, as are our targets */
    if (hlen > HP_ST_MAX_HEADER)
        return hp_errf(eb, HP_ERR_TOO_LARGE, "%s: header length %llu over "
                       "the %u byte cap", f, (unsigned long long)hlen,
                       HP_ST_MAX_HEADER);
    if (hlen > sh->size - 8)
        return hp_errf(eb, HP_ERR_FORMAT, "%s: header length %llu past end "
                       "of file (size %zu)", f, (unsigned long long)hlen,
                       sh->size);
    if (hlen < 2 || p[8] != '{')
        return hp_errf(eb, HP_ERR_FORMAT, "%s: header is not a JSON object",
                       f);
    json_error_t je;
    sh->hdr = json_loadb((const char *)p + 8, (size_t)hlen,
                         JSON_REJECT_DUPLICATES, &je);
    if (sh->hdr == NULL)
        return hp_errf(eb, HP_ERR_FORMAT, "%s: header is not valid JSON: %s "
                       "(byte %d)", f, je.text, je.position);
    if (!json_is_object(sh->hdr))
        return hp_errf(eb, HP_ERR_FORMAT, "%s: header is not a JSON object",
                       f);
    sh->data = p + 8 + hlen;
    sh->data_size = sh->size - 8 - hlen;

    size_t first = st->n_tensors;
    const char *key;
    json_t *v;
    json_object_foreach(sh->hdr, key, v) {
        if (strcmp(key, "__metadata__") == 0) {
            const char *mk;
            json_t *mv;
            if (!json_is_object(v))
                return hp_errf(eb, HP_ERR_FORMAT, "%s: __metadata__ is not "
                               "an object", f);
            json_object_foreach(v, mk, mv) {
                char mb[NAME_SHOW + 8];
                if (!json_is_string(mv))
                    return hp_errf(eb, HP_ERR_FORMAT, "%s: __metadata__ "
                                   "value %s is not a string", f,
                                   show(mk, mb, sizeof mb));
            }
            continue;
        }
        hp_st_tensor *t;
        if (push_tensor(st, &t) != HP_OK)
            return hp_errf(eb, HP_ERR_NOMEM, "%s: out of memory", f);
        hp_err e = parse_entry(sh, key, v, t, eb);
        if (e != HP_OK)
            return e;
    }
    /* File order, then no two non-empty ranges may share a byte. */
    size_t n = st->n_tensors - first;
    hp_st_tensor *ts = st->tensors + first;
    qsort(ts, n, sizeof *ts, cmp_offset);
    uint64_t end = 0;
    const char *prev = NULL;
    for (size_t i = 0; i < n; i++) {
        if (ts[i].nbytes == 0)
            continue;
        if (prev != NULL && ts[i].offset < end) {
            char nb[NAME_SHOW + 8], pb[NAME_SHOW + 8];
            return hp_errf(eb, HP_ERR_FORMAT, "%s: tensor %s: data_offsets "
                           "[%llu, %llu] overlap tensor %s", f,
                           show(ts[i].name, nb, sizeof nb),
                           (unsigned long long)ts[i].offset,
                           (unsigned long long)(ts[i].offset + ts[i].nbytes),
                           show(prev, pb, sizeof pb));
        }
        end = ts[i].offset + ts[i].nbytes;
        prev = ts[i].name;
    }
    return HP_OK;
}

/* ------------------------------------------------------------ the table */

static hp_err build_table(hp_st *st, hp_errbuf *eb)
{
    size_t cap = 16;
    while (cap < st->n_tensors * 2)
        cap *= 2;
    st->table = calloc(cap, sizeof *st->table);
    if (st->table == NULL)
        return hp_errf(eb, HP_ERR_NOMEM, "out of memory for %zu tensors",
                       st->n_tensors);
    st->table_cap = cap;
    for (size_t i = 0; i < st->n_tensors; i++) {
        const hp_st_tensor *t = &st->tensors[i];
        size_t h = (size_t)fnv1a(t->name) & (cap - 1);
        while (st->table[h] != 0) {
            const hp_st_tensor *o = &st->tensors[st->table[h] - 1];
            if (strcmp(o->name, t->name) == 0) {
                char nb[NAME_SHOW + 8];
                return hp_errf(eb, HP_ERR_FORMAT, "%s: tensor %s: also in "
                               "%s", t->file, show(t->name, nb, sizeof nb),
                               o->file);
            }
            h = (h + 1) & (cap - 1);
        }
        st->table[h] = (uint32_t)(i + 1);
    }
    return HP_OK;
}

const hp_st_tensor *hp_st_find(const hp_st *st, const char *name)
{
    if (st == NULL || name == NULL || st->table == NULL)
        return NULL;
    size_t h = (size_t)fnv1a(name) & (st->table_cap - 1);
    while (st->table[h] != 0) {
        const hp_st_tensor *t = &st->tensors[st->table[h] - 1];
        if (strcmp(t->name, name) == 0)
            return t;
        h = (h + 1) & (st->table_cap - 1);
    }
    return NULL;
}

/* ------------------------------------------------------------ open/close */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static hp_err add_shard(hp_st *st, const char *dir, const char *name,
                        hp_errbuf *eb)
{
    shard *n = realloc(st->shards, (st->n_shards + 1) * sizeof *n);
    if (n == NULL)
        return hp_errf(eb, HP_ERR_NOMEM, "out of memory");
    st->shards = n;
    shard *sh = &st->shards[st->n_shards];
    memset(sh, 0, sizeof *sh);
    sh->path = dir ? join(dir, name) : strdup(name);
    if (sh->path == NULL)
        return hp_errf(eb, HP_ERR_NOMEM, "out of memory");
    sh->base = base_of(sh->path);
    st->n_shards++;
    return open_shard(st, sh, eb);
}

/* Sharded set: index JSON at ipath, shards resolved in dir. */
static hp_err open_index(hp_st *st, const char *dir, const char *ipath,
                         hp_errbuf *eb)
{
    const char *f = base_of(ipath);
    char nb[NAME_SHOW + 8], sb[NAME_SHOW + 8];
    struct stat sbuf;
    if (stat(ipath, &sbuf) != 0)
        return hp_errf(eb, errno == ENOENT ? HP_ERR_NOT_FOUND : HP_ERR_IO,
                       "%s: cannot open: %s", f, strerror(errno));
    if (!S_ISREG(sbuf.st_mode) || (uint64_t)sbuf.st_size > INDEX_MAX_BYTES)
        return hp_errf(eb, HP_ERR_FORMAT, "%s: not a regular file under "
                       "%u bytes", f, INDEX_MAX_BYTES);
    json_error_t je;
    json_t *idx = json_load_file(ipath, JSON_REJECT_DUPLICATES, &je);
    if (idx == NULL)
        return hp_errf(eb, HP_ERR_FORMAT, "%s: not valid JSON: %s (line %d)",
                       f, je.text, je.line);
    hp_err e = HP_OK;
    const char **names = NULL;
    json_t *wm = json_object_get(idx, "weight_map");
    if (!json_is_object(wm) || json_object_size(wm) == 0) {
        e = hp_errf(eb, HP_ERR_FORMAT, "%s: weight_map missing, empty or "
                    "not an object", f);
        goto done;
    }
    size_t nw = json_object_size(wm), nn = 0;
    names = malloc(nw * sizeof *names);
    if (names == NULL) {
        e = hp_errf(eb, HP_ERR_NOMEM, "out of memory");
        goto done;
    }
    const char *key;
    json_t *v;
    json_object_foreach(wm, key, v) {
        const char *s = json_string_value(v);
        if (s == NULL || s[0] == '\0' || s[0] == '.' || strchr(s, '/')) {
            e = hp_errf(eb, HP_ERR_FORMAT, "%s: tensor %s: shard is not a "
                        "plain file name", f, show(key, nb, sizeof nb));
            goto done;
        }
        names[nn++] = s;
    }
    qsort(names, nn, sizeof *names, cmp_str);
    for (size_t i = 0; i < nn; i++) {
        if (i > 0 && strcmp(names[i], names[i - 1]) == 0)
            continue;
        e = add_shard(st, dir, names[i], eb);
        if (e != HP_OK)
            goto done;
    }
    e = build_table(st, eb);
    if (e != HP_OK)
        goto done;
    json_object_foreach(wm, key, v) {
        const hp_st_tensor *t = hp_st_find(st, key);
        const char *s = json_string_value(v);
        if (t == NULL) {
            e = hp_errf(eb, HP_ERR_NOT_FOUND, "%s: tensor %s: not in shard "
                        "%s", f, show(key, nb, sizeof nb),
                        show(s, sb, sizeof sb));
            goto done;
        }
        if (strcmp(t->file, s) != 0) {
            e = hp_errf(eb, HP_ERR_FORMAT, "%s: tensor %s: listed in %s but "
                        "stored in %s", f, show(key, nb, sizeof nb),
                        show(s, sb, sizeof sb), t->file);
            goto done;
        }
    }
done:
    free(names);
    json_decref(idx);
    return e;
}

static bool is_file(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

hp_err hp_st_open(const char *path, hp_st **out, hp_errbuf *eb)
{
    if (out == NULL)
        return hp_errf(eb, HP_ERR_INVALID, "no output pointer");
    *out = NULL;
    if (path == NULL || path[0] == '\0')
        return hp_errf(eb, HP_ERR_INVALID, "no checkpoint path");
    hp_st *st = calloc(1, sizeof *st);
    if (st == NULL)
        return hp_errf(eb, HP_ERR_NOMEM, "out of memory");
    hp_err e;
    char *tmp = NULL, *dir = NULL;
    const char *label = NULL; /* sharded: the index name */
    struct stat sb;
    if (stat(path, &sb) != 0) {
        e = hp_errf(eb, errno == ENOENT ? HP_ERR_NOT_FOUND : HP_ERR_IO,
                    "%s: cannot open: %s", base_of(path), strerror(errno));
        goto fail;
    }
    if (S_ISDIR(sb.st_mode)) {
        tmp = join(path, INDEX_NAME);
        if (tmp == NULL)
            goto nomem;
        if (is_file(tmp)) {
            label = INDEX_NAME;
            e = open_index(st, path, tmp, eb);
        } else {
            free(tmp);
            tmp = join(path, SINGLE_NAME);
            if (tmp == NULL)
                goto nomem;
            if (!is_file(tmp)) {
                e = hp_errf(eb, HP_ERR_NOT_FOUND, "%s: no %s or %s", path,
                            INDEX_NAME, SINGLE_NAME);
                goto fail;
            }
            e = add_shard(st, NULL, tmp, eb);
            if (e == HP_OK)
                e = build_table(st, eb);
        }
    } else if (ends_with(path, ".index.json")) {
        label = base_of(path);
        dir = strdup(path);
        if (dir == NULL)
            goto nomem;
        char *slash = strrchr(dir, '/');
        if (slash == NULL) {
            free(dir);
            dir = strdup(".");
            if (dir == NULL)
                goto nomem;
        } else {
            *slash = '\0';
        }
        e = open_index(st, dir[0] ? dir : "/", path, eb);
    } else {
        e = add_shard(st, NULL, path, eb);
        if (e == HP_OK)
            e = build_table(st, eb);
    }
    if (e != HP_OK)
        goto fail;
    /* a sharded set is named by its index, a single file by itself */
    st->label = strdup(label ? label : st->shards[0].base);
    if (st->label == NULL)
        goto nomem;
    free(tmp);
    free(dir);
    *out = st;
    return HP_OK;
nomem:
    e = hp_errf(eb, HP_ERR_NOMEM, "out of memory");
fail:
    free(tmp);
    free(dir);
    hp_st_close(st);
    return e;
}

void hp_st_close(hp_st *st)
{
    if (st == NULL)
        return;
    for (size_t i = 0; i < st->n_shards; i++) {
        shard *sh = &st->shards[i];
        if (sh->map != NULL)
            munmap(sh->map, sh->size);
        json_decref(sh->hdr);
        free(sh->path);
    }
    free(st->label);
    free(st->shards);
    free(st->tensors);
    free(st->table);
    free(st);
}

size_t hp_st_count(const hp_st *st)
{
    return st ? st->n_tensors : 0;
}

const hp_st_tensor *hp_st_at(const hp_st *st, size_t i)
{
    if (st == NULL || i >= st->n_tensors)
        return NULL;
    return &st->tensors[i];
}

size_t hp_st_n_files(const hp_st *st)
{
    return st ? st->n_shards : 0;
}

const char *hp_st_file(const hp_st *st, size_t i)
{
    if (st == NULL || i >= st->n_shards)
        return NULL;
    return st->shards[i].base;
}

const char *hp_st_metadata(const hp_st *st, const char *key)
{
    if (st == NULL || st->n_shards == 0 || key == NULL)
        return NULL;
    json_t *m = json_object_get(st->shards[0].hdr, "__metadata__");
    return json_string_value(json_object_get(m, key));
}

static int fmt_shape(char *buf, size_t cap, int nd, const int64_t *s)
{
    size_t n = 0;
    int w = snprintf(buf, cap, "[");
    n += (size_t)w;
    for (int i = 0; i < nd && n < cap; i++) {
        w = snprintf(buf + n, cap - n, "%s%lld", i ? ", " : "",
                     (long long)s[i]);
        n += (size_t)w;
    }
    if (n < cap)
        snprintf(buf + n, cap - n, "]");
    return 0;
}

hp_err hp_st_get(const hp_st *st, const char *name, int ndims,
                 const int64_t *shape, const hp_st_tensor **out,
                 hp_errbuf *eb)
{
    char nb[NAME_SHOW + 8];
    if (out != NULL)
        *out = NULL;
    const hp_st_tensor *t = hp_st_find(st, name);
    if (t == NULL)
        return hp_errf(eb, HP_ERR_NOT_FOUND, "%s: tensor %s: missing",
                       st && st->label ? st->label : "checkpoint",
                       show(name, nb, sizeof nb));
    if (t->type == HP_DT_COUNT)
        return hp_errf(eb, HP_ERR_UNSUPPORTED, "%s: tensor %s: dtype %s not "
                       "supported (F32, F16, BF16)", t->file,
                       show(name, nb, sizeof nb), dtypes[t->st_type].name);
    if (ndims > 0 && shape != NULL) {
        bool ok = t->ndims == ndims;
        for (int i = 0; ok && i < ndims; i++)
            ok = shape[i] < 0 || shape[i] == t->shape[i];
        if (!ok) {
            char have[96], want[96];
            fmt_shape(have, sizeof have, t->ndims, t->shape);
            fmt_shape(want, sizeof want, ndims > HP_ST_MAX_DIMS ?
                      HP_ST_MAX_DIMS : ndims, shape);
            return hp_errf(eb, HP_ERR_FORMAT, "%s: tensor %s: shape %s, "
                           "expected %s", t->file, show(name, nb, sizeof nb),
                           have, want);
        }
    }
    if (out != NULL)
        *out = t;
    return HP_OK;
}

/* ------------------------------------------------------------- convert */

typedef struct conv_job {
    const hp_st_tensor *t;
    hp_dtype to;
    int64_t rows, cols;
    size_t in_row, out_row; /* bytes */
    uint8_t *out;
    int n_threads;
    int ith;
    bool nomem;
} conv_job;

/* Rows [ith*rows/n, (ith+1)*rows/n): source row copied to aligned scratch
 * (the mapping gives no alignment promise), widened to f32, then written
 * in the target type. The hot loop of hp_st_tensor_to. */
static void *conv_rows(void *arg)
{
    conv_job *j = arg;
    int64_t r0 = j->rows * j->ith / j->n_threads;
    int64_t r1 = j->rows * (j->ith + 1) / j->n_threads;
    void *raw = malloc(j->in_row ? j->in_row : 1);
    float *f = malloc((size_t)j->cols * sizeof *f + 1);
    if (raw == NULL || f == NULL) {
        j->nomem = true;
        goto out;
    }
    const uint8_t *src = j->t->data;
    for (int64_t r = r0; r < r1; r++) {
        memcpy(raw, src + (size_t)r * j->in_row, j->in_row);
        uint8_t *dst = j->out + (size_t)r * j->out_row;
        if (j->t->type == HP_DT_F32)
            memcpy(f, raw, j->in_row);
        else
            hp_dequant_row_ref(j->t->type, raw, f, j->cols);
        switch (j->to) {
        case HP_DT_F32:
            memcpy(dst, f, j->out_row);
            break;
        case HP_DT_F16:
        case HP_DT_BF16:
            for (int64_t c = 0; c < j->cols; c++) {
                uint16_t h = j->to == HP_DT_F16 ? hp_f32_to_f16(f[c])
                                                : hp_f32_to_bf16(f[c]);
                memcpy(dst + 2 * c, &h, 2);
            }
            break;
        default:
            hp_quant_row_ref(j->to, f, dst, j->cols);
            break;
        }
    }
out:
    free(raw);
    free(f);
    return NULL;
}

hp_err hp_st_tensor_to(const hp_st_tensor *t, hp_dtype to, void **out_owned,
                       hp_errbuf *eb)
{
    char nb[NAME_SHOW + 8];
    if (out_owned == NULL || t == NULL)
        return hp_errf(eb, HP_ERR_INVALID, "no tensor or output pointer");
    *out_owned = NULL;
    if (t->type != HP_DT_F32 && t->type != HP_DT_F16 &&
        t->type != HP_DT_BF16)
        return hp_errf(eb, HP_ERR_UNSUPPORTED, "%s: tensor %s: dtype %s not "
                       "supported (F32, F16, BF16)", t->file,
                       show(t->name, nb, sizeof nb),
                       hp_st_dtype_name(t->st_type));
    if (to != HP_DT_F32 && to != HP_DT_F16 && to != HP_DT_BF16 &&
        to != HP_DT_Q8_0 && to != HP_DT_Q4_0) {
        const char *tn = hp_dtype_name(to);
        return hp_errf(eb, HP_ERR_UNSUPPORTED, "%s: tensor %s: cannot "
                       "convert to %s (f32, f16, bf16, q8_0, q4_0)", t->file,
                       show(t->name, nb, sizeof nb), tn ? tn : "?");
    }
    conv_job base = {.t = t, .to = to};
    base.cols = t->ndims > 0 ? t->shape[t->ndims - 1] : 1;
    base.rows = base.cols > 0 ? t->n_elems / base.cols : 0;
    int64_t rb = hp_dtype_row_bytes(to, base.cols);
    if (rb < 0)
        return hp_errf(eb, HP_ERR_INVALID, "%s: tensor %s: row length %lld "
                       "is not a multiple of %lld for %s", t->file,
                       show(t->name, nb, sizeof nb), (long long)base.cols,
                       (long long)hp_dtype_block_elems(to),
                       hp_dtype_name(to));
    base.out_row = (size_t)rb;
    base.in_row = (size_t)base.cols * (size_t)t->elem_size;
    /* rows * out_row <= 2 * file bytes, so no overflow here. */
    size_t total = (size_t)base.rows * base.out_row;
    base.out = malloc(total ? total : 1);
    if (base.out == NULL)
        return hp_errf(eb, HP_ERR_NOMEM, "%s: tensor %s: out of memory for "
                       "%zu bytes", t->file, show(t->name, nb, sizeof nb),
                       total);
    int nt = 1;
    if (t->n_elems >= PAR_MIN_ELEMS) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        nt = c < 1 ? 1 : c > PAR_MAX_THREADS ? PAR_MAX_THREADS : (int)c;
        if (nt > base.rows)
            nt = base.rows > 0 ? (int)base.rows : 1;
    }
    conv_job jobs[PAR_MAX_THREADS];
    pthread_t tids[PAR_MAX_THREADS];
    bool started[PAR_MAX_THREADS] = {false};
    for (int i = 0; i < nt; i++) {
        jobs[i] = base;
        jobs[i].n_threads = nt;
        jobs[i].ith = i;
    }
    /* Thread 0 is the caller; a thread that fails to start is done inline. */
    for (int i = 1; i < nt; i++)
        started[i] = pthread_create(&tids[i], NULL, conv_rows, &jobs[i]) == 0;
    conv_rows(&jobs[0]);
    bool nomem = jobs[0].nomem;
    for (int i = 1; i < nt; i++) {
        if (started[i])
            pthread_join(tids[i], NULL);
        else
            conv_rows(&jobs[i]);
        nomem = nomem || jobs[i].nomem;
    }
    if (nomem) {
        free(base.out);
        return hp_errf(eb, HP_ERR_NOMEM, "%s: tensor %s: out of memory for "
                       "row scratch", t->file, show(t->name, nb, sizeof nb));
    }
    *out_owned = base.out;
    return HP_OK;
}
