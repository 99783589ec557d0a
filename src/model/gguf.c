/* gguf.c: the validating GGUF (v2/v3) reader behind gguf.h.
 *
 * Owns the mapping of one file and the parsed key/tensor tables that point
 * into it. Every length, count, type, dimension and offset is checked
 * against the file size here, once, so callers never re-check bounds.
 * Knows the container format only: no architectures, no tokenizers.
 * Included (through gguf.h) by model/ and cli/. */
#include "model/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_MAGIC 0x46554747u /* "GGUF" read as a little-endian uint32 */
#define GGUF_DEFAULT_ALIGN 32
/* Nested arrays are skipped (no getter returns them); the depth limit keeps
 * a crafted file from recursing without bound. */
#define GGUF_MAX_ARRAY_DEPTH 4
/* Longest name echoed into an error message (names come from the file and
 * may be huge or unprintable; the errbuf is only 256 bytes). */
#define NAME_SHOW 48

/* Parsing cursor over the mapping, with what error messages need. */
typedef struct cursor {
    const uint8_t *base;
    uint64_t size;
    uint64_t pos;
    const char *fname; /* borrows: basename for messages */
    hp_errbuf *eb;
} cursor;

/* -------------------------------------------------------------- helpers */

static uint32_t rd_u32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4); /* files are little-endian, as are our targets */
    return v;
}

static uint64_t rd_u64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static bool has(const cursor *c, uint64_t n)
{
    return n <= c->size - c->pos;
}

/* Size of a scalar value type; 0 for STRING/ARRAY/unknown. */
static uint64_t scalar_size(uint32_t t)
{
    switch (t) {
    case HP_GGUF_UINT8:
    case HP_GGUF_INT8:
    case HP_GGUF_BOOL: return 1;
    case HP_GGUF_UINT16:
    case HP_GGUF_INT16: return 2;
    case HP_GGUF_UINT32:
    case HP_GGUF_INT32:
    case HP_GGUF_FLOAT32: return 4;
    case HP_GGUF_UINT64:
    case HP_GGUF_INT64:
    case HP_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

static bool type_known(uint32_t t)
{
    return t <= HP_GGUF_FLOAT64;
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Read a GGUF string (u64 length + bytes) after checking it fits. */
static bool rd_str(cursor *c, hp_str *out)
{
    if (!has(c, 8))
        return false;
    uint64_t len = rd_u64(c->base + c->pos);
    if (len > c->size - c->pos - 8)
        return false;
    out->ptr = (const char *)(c->base + c->pos + 8);
    out->len = len;
    c->pos += 8 + len;
    return true;
}

/* Skip one value of type t (already read), validating it. depth counts
 * array nesting. Returns false with *why set on failure. */
static bool skip_value(cursor *c, uint32_t t, int depth, const char **why,
                       hp_err *code)
{
    uint64_t sz = scalar_size(t);
    if (sz) {
        if (!has(c, sz)) {
            *why = "truncated";
            return false;
        }
        c->pos += sz;
        return true;
    }
    if (t == HP_GGUF_STRING) {
        hp_str s;
        if (!rd_str(c, &s)) {
            *why = "string length past end of file";
            return false;
        }
        return true;
    }
    if (t != HP_GGUF_ARRAY) {
        *why = "unknown value type";
        return false;
    }
    if (depth >= GGUF_MAX_ARRAY_DEPTH) {
        *why = "arrays nested too deeply";
        *code = HP_ERR_UNSUPPORTED;
        return false;
    }
    if (!has(c, 12)) {
        *why = "truncated";
        return false;
    }
    uint32_t et = rd_u32(c->base + c->pos);
    uint64_t n = rd_u64(c->base + c->pos + 4);
    c->pos += 12;
    if (!type_known(et)) {
        *why = "unknown array element type";
        return false;
    }
    uint64_t esz = scalar_size(et);
    uint64_t left = c->size - c->pos;
    /* Strings take at least 8 bytes and arrays 12, so a count that cannot
     * fit is refused before any loop runs over it. */
    uint64_t min_elem = esz ? esz : (et == HP_GGUF_STRING ? 8 : 12);
    if (n > left / min_elem) {
        *why = "array count past end of file";
        return false;
    }
    if (esz) {
        c->pos += n * esz;
        return true;
    }
    for (uint64_t i = 0; i < n; i++)
        if (!skip_value(c, et, depth + 1, why, code))
            return false;
    return true;
}

/* ------------------------------------------------------------- parsing */

static hp_err parse_kvs(hp_gguf *g, cursor *c)
{
    for (uint64_t i = 0; i < g->n_kv; i++) {
        hp_gguf_kv *kv = &g->kv[i];
        if (!rd_str(c, &kv->key))
            return hp_errf(c->eb, HP_ERR_FORMAT,
                           "%s: truncated in metadata key %llu (bad key "
                           "length)", c->fname, (unsigned long long)i);
        int kl = kv->key.len > NAME_SHOW ? NAME_SHOW : (int)kv->key.len;
        if (!has(c, 4))
            return hp_errf(c->eb, HP_ERR_FORMAT,
                           "%s: truncated in metadata key %llu (%.*s)",
                           c->fname, (unsigned long long)i, kl, kv->key.ptr);
        uint32_t t = rd_u32(c->base + c->pos);
        c->pos += 4;
        if (!type_known(t))
            return hp_errf(c->eb, HP_ERR_FORMAT,
                           "%s: metadata key %llu (%.*s): unknown value "
                           "type %u", c->fname, (unsigned long long)i, kl,
                           kv->key.ptr, t);
        kv->type = (hp_gguf_type)t;
        kv->arr_type = 0;
        kv->arr_n = 0;
        if (t == HP_GGUF_ARRAY) {
            if (has(c, 12)) {
                uint32_t et = rd_u32(c->base + c->pos);
                kv->arr_type = (hp_gguf_type)et;
                kv->arr_n = rd_u64(c->base + c->pos + 4);
                kv->data = c->base + c->pos + 12;
                if (!type_known(et))
                    return hp_errf(c->eb, HP_ERR_FORMAT,
                                   "%s: metadata key %llu (%.*s): unknown "
                                   "array element type %u", c->fname,
                                   (unsigned long long)i, kl, kv->key.ptr,
                                   et);
            }
        } else {
            kv->data = c->base + c->pos;
        }
        const char *why = NULL;
        hp_err code = HP_ERR_FORMAT;
        if (!skip_value(c, t, 0, &why, &code)) {
            /* A length or count past the end is what truncation looks
             * like, so say both: where, and which field ran over. */
            if (strcmp(why, "truncated") == 0)
                return hp_errf(c->eb, code,
                               "%s: truncated in metadata key %llu (%.*s)",
                               c->fname, (unsigned long long)i, kl,
                               kv->key.ptr);
            if (strstr(why, "past end"))
                return hp_errf(c->eb, code,
                               "%s: truncated in metadata key %llu (%.*s): "
                               "%s", c->fname, (unsigned long long)i, kl,
                               kv->key.ptr, why);
            return hp_errf(c->eb, code, "%s: metadata key %llu (%.*s): %s",
                           c->fname, (unsigned long long)i, kl, kv->key.ptr,
                           why);
        }
    }
    return HP_OK;
}

static hp_err parse_tensor_infos(hp_gguf *g, cursor *c)
{
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        hp_gguf_tensor *t = &g->tensors[i];
        if (!rd_str(c, &t->name))
            return hp_errf(c->eb, HP_ERR_FORMAT,
                           "%s: truncated in tensor info %llu (bad name "
                           "length)", c->fname, (unsigned long long)i);
        int nl = t->name.len > NAME_SHOW ? NAME_SHOW : (int)t->name.len;
        const char *nm = t->name.ptr;
        if (!has(c, 4))
            return hp_errf(c->eb, HP_ERR_FORMAT,
                           "%s: truncated in tensor info %llu (%.*s)",
                           c->fname, (unsigned long long)i, nl, nm);
        uint32_t nd = rd_u32(c->base + c->pos);
        c->pos += 4;
        if (nd < 1 || nd > HP_GGUF_MAX_DIMS)
            return hp_errf(c->eb, HP_ERR_FORMAT,
                           "%s: tensor %.*s: %u dimensions (1..%d allowed)",
                           c->fname, nl, nm, nd, HP_GGUF_MAX_DIMS);
        t->n_dims = nd;
        if (!has(c, 8ull * nd + 4 + 8))
            return hp_errf(c->eb, HP_ERR_FORMAT,
                           "%s: truncated in tensor info %llu (%.*s)",
                           c->fname, (unsigned long long)i, nl, nm);
        /* Elements must stay below 2^62 so byte counts cannot overflow
         * even at 4 bytes per element. */
        uint64_t nel = 1;
        for (uint32_t d = 0; d < HP_GGUF_MAX_DIMS; d++) {
            uint64_t v = d < nd ? rd_u64(c->base + c->pos + 8ull * d) : 1;
            if (v == 0)
                return hp_errf(c->eb, HP_ERR_FORMAT,
                               "%s: tensor %.*s: dimension %u is zero",
                               c->fname, nl, nm, d);
            if (v > (1ull << 62) / nel)
                return hp_errf(c->eb, HP_ERR_FORMAT,
                               "%s: tensor %.*s: dimensions overflow",
                               c->fname, nl, nm);
            nel *= v;
            t->ne[d] = (int64_t)v;
        }
        c->pos += 8ull * nd;
        uint32_t ty = rd_u32(c->base + c->pos);
        t->offset = rd_u64(c->base + c->pos + 4);
        c->pos += 12;
        if (ty >= HP_DT_COUNT || hp_dtype_block_elems((hp_dtype)ty) <= 0 ||
            hp_dtype_block_bytes((hp_dtype)ty) <= 0)
            return hp_errf(c->eb, HP_ERR_UNSUPPORTED,
                           "%s: tensor %.*s: unknown tensor type %u",
                           c->fname, nl, nm, ty);
        t->type = (hp_dtype)ty;
        int64_t rb = hp_dtype_row_bytes(t->type, t->ne[0]);
        if (rb < 0)
            return hp_errf(c->eb, HP_ERR_FORMAT,
                           "%s: tensor %.*s: row length %lld is not a "
                           "multiple of the %s block size %lld", c->fname,
                           nl, nm, (long long)t->ne[0],
                           hp_dtype_name(t->type),
                           (long long)hp_dtype_block_elems(t->type));
        uint64_t rows = nel / (uint64_t)t->ne[0];
        if ((uint64_t)rb > UINT64_MAX / rows)
            return hp_errf(c->eb, HP_ERR_FORMAT,
                           "%s: tensor %.*s: size overflows", c->fname, nl,
                           nm);
        t->nbytes = (uint64_t)rb * rows;
        if (t->offset % g->alignment != 0)
            return hp_errf(c->eb, HP_ERR_FORMAT,
                           "%s: tensor %.*s: offset %llu not aligned to %llu",
                           c->fname, nl, nm, (unsigned long long)t->offset,
                           (unsigned long long)g->alignment);
    }
    return HP_OK;
}

/* general.alignment, validated; the default when absent. */
static hp_err read_alignment(hp_gguf *g, cursor *c)
{
    g->alignment = GGUF_DEFAULT_ALIGN;
    const hp_gguf_kv *kv = hp_gguf_find(g, "general.alignment");
    if (!kv)
        return HP_OK;
    int64_t a;
    if (!hp_gguf_get_i64(g, "general.alignment", &a) || a <= 0 ||
        a > (1 << 30) || (a & (a - 1)) != 0)
        return hp_errf(c->eb, HP_ERR_FORMAT,
                       "%s: general.alignment must be a power of two",
                       c->fname);
    g->alignment = (uint64_t)a;
    return HP_OK;
}

static hp_err parse(hp_gguf *g, cursor *c)
{
    if (c->size < 4 || rd_u32(c->base) != GGUF_MAGIC)
        return hp_errf(c->eb, HP_ERR_FORMAT, "%s: not a GGUF file (bad "
                       "magic)", c->fname);
    if (c->size < 8)
        return hp_errf(c->eb, HP_ERR_FORMAT, "%s: truncated in header",
                       c->fname);
    g->version = rd_u32(c->base + 4);
    if (g->version < 2 || g->version > 3)
        return hp_errf(c->eb, HP_ERR_UNSUPPORTED,
                       "%s: GGUF version %u not supported (only 2 and 3)",
                       c->fname, g->version);
    if (c->size < 24)
        return hp_errf(c->eb, HP_ERR_FORMAT, "%s: truncated in header",
                       c->fname);
    g->n_tensors = rd_u64(c->base + 8);
    g->n_kv = rd_u64(c->base + 16);
    c->pos = 24;
    /* A key/value takes at least 13 bytes (length, type, one byte) and a
     * tensor info 32, so counts beyond that are corrupt, and refusing them
     * here bounds the allocations below by the file size. */
    uint64_t left = c->size - c->pos;
    if (g->n_kv > left / 13)
        return hp_errf(c->eb, HP_ERR_FORMAT,
                       "%s: metadata count %llu cannot fit in the file",
                       c->fname, (unsigned long long)g->n_kv);
    if (g->n_tensors > left / 32)
        return hp_errf(c->eb, HP_ERR_FORMAT,
                       "%s: tensor count %llu cannot fit in the file",
                       c->fname, (unsigned long long)g->n_tensors);
    g->kv = calloc(g->n_kv ? g->n_kv : 1, sizeof *g->kv);
    g->tensors = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *g->tensors);
    if (!g->kv || !g->tensors)
        return hp_errf(c->eb, HP_ERR_NOMEM, "%s: out of memory", c->fname);
    hp_err e = parse_kvs(g, c);
    if (e != HP_OK)
        return e;
    e = read_alignment(g, c);
    if (e != HP_OK)
        return e;
    e = parse_tensor_infos(g, c);
    if (e != HP_OK)
        return e;
    uint64_t data_off = c->pos;
    uint64_t pad = (g->alignment - data_off % g->alignment) % g->alignment;
    data_off += pad;
    if (data_off > c->size) {
        if (g->n_tensors > 0)
            return hp_errf(c->eb, HP_ERR_FORMAT,
                           "%s: truncated before tensor data", c->fname);
        data_off = c->size; /* vocabulary-only files may end unpadded */
    }
    g->data_base = c->base + data_off;
    uint64_t data_size = c->size - data_off;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        hp_gguf_tensor *t = &g->tensors[i];
        int nl = t->name.len > NAME_SHOW ? NAME_SHOW : (int)t->name.len;
        if (t->offset > data_size || t->nbytes > data_size - t->offset)
            return hp_errf(c->eb, HP_ERR_FORMAT,
                           "%s: tensor %.*s: offset past end of file",
                           c->fname, nl, t->name.ptr);
        t->data = g->data_base + t->offset;
    }
    return HP_OK;
}

/* ---------------------------------------------------------- public API */

hp_err hp_gguf_open(const char *path, hp_gguf **out, hp_errbuf *eb)
{
    *out = NULL;
    const char *fname = base_name(path);
    hp_gguf *g = calloc(1, sizeof *g);
    if (!g)
        return hp_errf(eb, HP_ERR_NOMEM, "%s: out of memory", fname);
    hp_err e = HP_OK;
    g->path = strdup(path);
    if (!g->path) {
        e = hp_errf(eb, HP_ERR_NOMEM, "%s: out of memory", fname);
        goto fail;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        e = hp_errf(eb, HP_ERR_IO, "%s: %s", path, strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        e = hp_errf(eb, HP_ERR_IO, "%s: not a regular file", path);
        goto fail;
    }
    if (st.st_size < 24) {
        close(fd);
        /* Distinguish a wrong file from a cut one where we can. */
        e = hp_errf(eb, HP_ERR_FORMAT, "%s: truncated in header (%lld "
                    "bytes)", fname, (long long)st.st_size);
        goto fail_check_magic;
    }
    g->map_size = (size_t)st.st_size;
    void *m = mmap(NULL, g->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) {
        g->map_size = 0;
        e = hp_errf(eb, HP_ERR_IO, "%s: mmap: %s", path, strerror(errno));
        goto fail;
    }
    g->map = m;
    cursor c = {m, g->map_size, 0, fname, eb};
    e = parse(g, &c);
    if (e != HP_OK)
        goto fail;
    *out = g;
    return HP_OK;

fail_check_magic:
    /* A short file: report bad magic/version rather than truncation when
     * the bytes that are there already say so. */
    {
        uint8_t hdr[8] = {0};
        int fd2 = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n = fd2 >= 0 ? read(fd2, hdr, sizeof hdr) : -1;
        if (fd2 >= 0)
            close(fd2);
        if (n >= 4 && rd_u32(hdr) != GGUF_MAGIC)
            e = hp_errf(eb, HP_ERR_FORMAT,
                        "%s: not a GGUF file (bad magic)", fname);
        else if (n < 4 && n >= 0 &&
                 memcmp(hdr, "GGUF", (size_t)n) != 0)
            e = hp_errf(eb, HP_ERR_FORMAT,
                        "%s: not a GGUF file (bad magic)", fname);
        else if (n == 8 && (rd_u32(hdr + 4) < 2 || rd_u32(hdr + 4) > 3))
            e = hp_errf(eb, HP_ERR_UNSUPPORTED,
                        "%s: GGUF version %u not supported (only 2 and 3)",
                        fname, rd_u32(hdr + 4));
    }
fail:
    hp_gguf_close(g);
    return e;
}

void hp_gguf_close(hp_gguf *g)
{
    if (!g)
        return;
    if (g->map)
        munmap(g->map, g->map_size);
    free(g->kv);
    free(g->tensors);
    free(g->path);
    free(g);
}

bool hp_str_eq(hp_str s, const char *c)
{
    size_t n = strlen(c);
    return s.len == n && memcmp(s.ptr, c, n) == 0;
}

/* Linear scans: a model has a few dozen keys and a few hundred tensors,
 * and lookups happen once at load. */
const hp_gguf_kv *hp_gguf_find(const hp_gguf *g, const char *key)
{
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (hp_str_eq(g->kv[i].key, key))
            return &g->kv[i];
    return NULL;
}

const hp_gguf_tensor *hp_gguf_tensor_find(const hp_gguf *g, const char *name)
{
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (hp_str_eq(g->tensors[i].name, name))
            return &g->tensors[i];
    return NULL;
}

/* Integer value of a scalar of type t at p; false for non-integers. Values
 * are returned as (is_negative, magnitude) through a signed/unsigned pair
 * so both getters can range-check. */
static bool int_at(hp_gguf_type t, const uint8_t *p, int64_t *sv,
                   uint64_t *uv, bool *is_unsigned)
{
    *is_unsigned = false;
    switch (t) {
    case HP_GGUF_UINT8: *sv = p[0]; return true;
    case HP_GGUF_INT8: *sv = (int8_t)p[0]; return true;
    case HP_GGUF_UINT16: {
        uint16_t v;
        memcpy(&v, p, 2);
        *sv = v;
        return true;
    }
    case HP_GGUF_INT16: {
        int16_t v;
        memcpy(&v, p, 2);
        *sv = v;
        return true;
    }
    case HP_GGUF_UINT32: *sv = rd_u32(p); return true;
    case HP_GGUF_INT32: *sv = (int32_t)rd_u32(p); return true;
    case HP_GGUF_UINT64:
        *uv = rd_u64(p);
        *is_unsigned = true;
        return true;
    case HP_GGUF_INT64: *sv = (int64_t)rd_u64(p); return true;
    case HP_GGUF_FLOAT32:
    case HP_GGUF_BOOL:
    case HP_GGUF_STRING:
    case HP_GGUF_ARRAY:
    case HP_GGUF_FLOAT64: return false;
    }
    return false;
}

bool hp_gguf_get_i64(const hp_gguf *g, const char *key, int64_t *out)
{
    const hp_gguf_kv *kv = hp_gguf_find(g, key);
    int64_t sv = 0;
    uint64_t uv = 0;
    bool u;
    if (!kv || !int_at(kv->type, kv->data, &sv, &uv, &u))
        return false;
    if (u) {
        if (uv > (uint64_t)INT64_MAX)
            return false;
        sv = (int64_t)uv;
    }
    *out = sv;
    return true;
}

bool hp_gguf_get_u32(const hp_gguf *g, const char *key, uint32_t *out)
{
    int64_t v;
    if (!hp_gguf_get_i64(g, key, &v) || v < 0 || v > (int64_t)UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

bool hp_gguf_get_f32(const hp_gguf *g, const char *key, float *out)
{
    const hp_gguf_kv *kv = hp_gguf_find(g, key);
    if (!kv)
        return false;
    if (kv->type == HP_GGUF_FLOAT32) {
        memcpy(out, kv->data, 4);
        return true;
    }
    if (kv->type == HP_GGUF_FLOAT64) {
        double d;
        memcpy(&d, kv->data, 8);
        *out = (float)d;
        return true;
    }
    return false;
}

bool hp_gguf_get_bool(const hp_gguf *g, const char *key, bool *out)
{
    const hp_gguf_kv *kv = hp_gguf_find(g, key);
    if (!kv || kv->type != HP_GGUF_BOOL)
        return false;
    *out = kv->data[0] != 0;
    return true;
}

bool hp_gguf_get_str(const hp_gguf *g, const char *key, hp_str *out)
{
    const hp_gguf_kv *kv = hp_gguf_find(g, key);
    if (!kv || kv->type != HP_GGUF_STRING)
        return false;
    out->len = rd_u64(kv->data);
    out->ptr = (const char *)kv->data + 8;
    return true;
}

bool hp_gguf_arr_strs(const hp_gguf_kv *kv, hp_str *out)
{
    if (kv->type != HP_GGUF_ARRAY || kv->arr_type != HP_GGUF_STRING)
        return false;
    /* Lengths were validated at open, so the walk stays in the mapping. */
    const uint8_t *p = kv->data;
    for (uint64_t i = 0; i < kv->arr_n; i++) {
        out[i].len = rd_u64(p);
        out[i].ptr = (const char *)p + 8;
        p += 8 + out[i].len;
    }
    return true;
}

float hp_gguf_arr_f32(const hp_gguf_kv *kv, uint64_t i)
{
    float v = 0.0f;
    if (kv->type != HP_GGUF_ARRAY || i >= kv->arr_n)
        return 0.0f;
    if (kv->arr_type == HP_GGUF_FLOAT32) {
        memcpy(&v, kv->data + 4 * i, 4);
    } else if (kv->arr_type == HP_GGUF_FLOAT64) {
        double d;
        memcpy(&d, kv->data + 8 * i, 8);
        v = (float)d;
    }
    return v;
}

int64_t hp_gguf_arr_int(const hp_gguf_kv *kv, uint64_t i)
{
    if (kv->type != HP_GGUF_ARRAY || i >= kv->arr_n)
        return 0;
    uint64_t sz = scalar_size(kv->arr_type);
    if (sz == 0 || kv->arr_type == HP_GGUF_FLOAT32 ||
        kv->arr_type == HP_GGUF_FLOAT64)
        return 0;
    int64_t sv = 0;
    uint64_t uv = 0;
    bool u;
    if (kv->arr_type == HP_GGUF_BOOL)
        return kv->data[i];
    if (!int_at(kv->arr_type, kv->data + sz * i, &sv, &uv, &u))
        return 0;
    return u ? (int64_t)uv : sv;
}
