/* gguf_write.c: the in-memory GGUF v3 builder behind gguf_write.h.
 *
 * Owns the serialized key/value section (one growing byte buffer, since
 * keys are written exactly as added) and one owned data buffer per tensor.
 * Saving streams the header, then each tensor's bytes with fwrite, so a
 * multi-gigabyte synthetic model costs no copy beyond what the writer
 * already holds. Knows the container format only. */
#include "model/gguf_write.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WRITE_ALIGN 32

typedef struct wtensor {
    char *name;   /* owns */
    hp_dtype type;
    uint32_t n_dims;
    int64_t ne[HP_GGUF_MAX_DIMS];
    uint64_t nbytes;
    void *data;   /* owns */
} wtensor;

struct hp_gguf_writer {
    uint8_t *kv;  /* owns: serialized key/value records */
    size_t kv_len, kv_cap;
    uint64_t n_kv;
    wtensor *t;   /* owns: array of n_t */
    size_t n_t, cap_t;
};

hp_gguf_writer *hp_gguf_writer_new(void)
{
    return calloc(1, sizeof(hp_gguf_writer));
}

void hp_gguf_writer_free(hp_gguf_writer *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n_t; i++) {
        free(w->t[i].name);
        free(w->t[i].data);
    }
    free(w->t);
    free(w->kv);
    free(w);
}

/* ------------------------------------------------- key/value section */

static bool put(hp_gguf_writer *w, const void *p, size_t n)
{
    if (n > SIZE_MAX - w->kv_len)
        return false;
    if (w->kv_len + n > w->kv_cap) {
        size_t cap = w->kv_cap ? w->kv_cap : 256;
        while (cap < w->kv_len + n) {
            if (cap > SIZE_MAX / 2)
                return false;
            cap *= 2;
        }
        uint8_t *nb = realloc(w->kv, cap);
        if (!nb)
            return false;
        w->kv = nb;
        w->kv_cap = cap;
    }
    if (n)
        memcpy(w->kv + w->kv_len, p, n);
    w->kv_len += n;
    return true;
}

static bool put_u32(hp_gguf_writer *w, uint32_t v)
{
    return put(w, &v, 4); /* little-endian host assumed, as for reading */
}

static bool put_u64(hp_gguf_writer *w, uint64_t v)
{
    return put(w, &v, 8);
}

static bool put_str(hp_gguf_writer *w, const char *s, uint64_t len)
{
    return put_u64(w, len) && put(w, s, (size_t)len);
}

/* Key and type header of one record. On failure the buffer is rolled back
 * by the caller through `mark`. */
static bool put_key(hp_gguf_writer *w, const char *key, hp_gguf_type t)
{
    return put_str(w, key, strlen(key)) && put_u32(w, (uint32_t)t);
}

static hp_err finish(hp_gguf_writer *w, size_t mark, bool ok)
{
    if (!ok) {
        w->kv_len = mark; /* drop the half-written record */
        return HP_ERR_NOMEM;
    }
    w->n_kv++;
    return HP_OK;
}

static hp_err scalar(hp_gguf_writer *w, const char *key, hp_gguf_type t,
                     const void *v, size_t n)
{
    if (!w || !key)
        return HP_ERR_INVALID;
    size_t mark = w->kv_len;
    return finish(w, mark, put_key(w, key, t) && put(w, v, n));
}

hp_err hp_gguf_writer_u32(hp_gguf_writer *w, const char *key, uint32_t v)
{
    return scalar(w, key, HP_GGUF_UINT32, &v, 4);
}

hp_err hp_gguf_writer_i32(hp_gguf_writer *w, const char *key, int32_t v)
{
    return scalar(w, key, HP_GGUF_INT32, &v, 4);
}

hp_err hp_gguf_writer_f32(hp_gguf_writer *w, const char *key, float v)
{
    return scalar(w, key, HP_GGUF_FLOAT32, &v, 4);
}

hp_err hp_gguf_writer_bool(hp_gguf_writer *w, const char *key, bool v)
{
    uint8_t b = v ? 1 : 0;
    return scalar(w, key, HP_GGUF_BOOL, &b, 1);
}

hp_err hp_gguf_writer_str(hp_gguf_writer *w, const char *key, const char *v)
{
    if (!w || !key || !v)
        return HP_ERR_INVALID;
    size_t mark = w->kv_len;
    return finish(w, mark,
                  put_key(w, key, HP_GGUF_STRING) && put_str(w, v, strlen(v)));
}

hp_err hp_gguf_writer_arr_str(hp_gguf_writer *w, const char *key,
                              const char *const *strs, const uint64_t *lens,
                              uint64_t n)
{
    if (!w || !key || (n && !strs))
        return HP_ERR_INVALID;
    size_t mark = w->kv_len;
    bool ok = put_key(w, key, HP_GGUF_ARRAY) &&
              put_u32(w, HP_GGUF_STRING) && put_u64(w, n);
    for (uint64_t i = 0; ok && i < n; i++) {
        uint64_t len = lens ? lens[i] : strlen(strs[i]);
        ok = put_str(w, strs[i], len);
    }
    return finish(w, mark, ok);
}

static hp_err arr_scalar(hp_gguf_writer *w, const char *key, hp_gguf_type et,
                         const void *v, uint64_t n, size_t esz)
{
    if (!w || !key || (n && !v) || n > SIZE_MAX / esz)
        return HP_ERR_INVALID;
    size_t mark = w->kv_len;
    return finish(w, mark,
                  put_key(w, key, HP_GGUF_ARRAY) && put_u32(w, (uint32_t)et) &&
                      put_u64(w, n) && put(w, v, (size_t)(n * esz)));
}

hp_err hp_gguf_writer_arr_f32(hp_gguf_writer *w, const char *key,
                              const float *v, uint64_t n)
{
    return arr_scalar(w, key, HP_GGUF_FLOAT32, v, n, 4);
}

hp_err hp_gguf_writer_arr_i32(hp_gguf_writer *w, const char *key,
                              const int32_t *v, uint64_t n)
{
    return arr_scalar(w, key, HP_GGUF_INT32, v, n, 4);
}

static uint64_t scalar_bytes(hp_gguf_type t)
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
    case HP_GGUF_STRING:
    case HP_GGUF_ARRAY: return 0;
    }
    return 0;
}

/* Serialized size of n elements of type et starting at p. The reader has
 * validated the whole value, so this walk stays inside the mapping. */
static uint64_t elems_bytes(hp_gguf_type et, const uint8_t *p, uint64_t n)
{
    uint64_t sz = scalar_bytes(et);
    if (sz)
        return sz * n;
    uint64_t off = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (et == HP_GGUF_STRING) {
            uint64_t len;
            memcpy(&len, p + off, 8);
            off += 8 + len;
        } else { /* nested array: type, count, elements */
            uint32_t it;
            uint64_t in;
            memcpy(&it, p + off, 4);
            memcpy(&in, p + off + 4, 8);
            off += 12 + elems_bytes((hp_gguf_type)it, p + off + 12, in);
        }
    }
    return off;
}

hp_err hp_gguf_writer_copy_kvs(hp_gguf_writer *w, const hp_gguf *src,
                               const char *prefix)
{
    if (!w || !src)
        return HP_ERR_INVALID;
    size_t plen = prefix ? strlen(prefix) : 0;
    for (uint64_t i = 0; i < src->n_kv; i++) {
        const hp_gguf_kv *kv = &src->kv[i];
        if (prefix &&
            (kv->key.len < plen || memcmp(kv->key.ptr, prefix, plen) != 0))
            continue;
        /* general.alignment is the writer's own business. */
        if (hp_str_eq(kv->key, "general.alignment"))
            continue;
        size_t mark = w->kv_len;
        bool ok = put_str(w, kv->key.ptr, kv->key.len) &&
                  put_u32(w, (uint32_t)kv->type);
        if (kv->type == HP_GGUF_ARRAY) {
            uint64_t nb = elems_bytes(kv->arr_type, kv->data, kv->arr_n);
            ok = ok && put_u32(w, (uint32_t)kv->arr_type) &&
                 put_u64(w, kv->arr_n) && put(w, kv->data, (size_t)nb);
        } else {
            uint64_t nb = elems_bytes(kv->type, kv->data, 1);
            ok = ok && put(w, kv->data, (size_t)nb);
        }
        hp_err e = finish(w, mark, ok);
        if (e != HP_OK)
            return e;
    }
    return HP_OK;
}

/* ------------------------------------------------------------ tensors */

/* Validate a shape and append an empty tensor record; data filled later. */
static hp_err add_tensor(hp_gguf_writer *w, const char *name, hp_dtype t,
                         uint32_t n_dims, const int64_t *ne, wtensor **out)
{
    if (!w || !name || !ne || n_dims < 1 || n_dims > HP_GGUF_MAX_DIMS ||
        hp_dtype_block_elems(t) <= 0)
        return HP_ERR_INVALID;
    uint64_t rows = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] <= 0)
            return HP_ERR_INVALID;
        if (d > 0) {
            if ((uint64_t)ne[d] > (1ull << 62) / rows)
                return HP_ERR_INVALID;
            rows *= (uint64_t)ne[d];
        }
    }
    int64_t rb = hp_dtype_row_bytes(t, ne[0]);
    if (rb < 0 || (uint64_t)rb > (1ull << 62) / rows)
        return HP_ERR_INVALID;
    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? w->cap_t * 2 : 16;
        wtensor *nt = realloc(w->t, cap * sizeof *nt);
        if (!nt)
            return HP_ERR_NOMEM;
        w->t = nt;
        w->cap_t = cap;
    }
    wtensor *wt = &w->t[w->n_t];
    memset(wt, 0, sizeof *wt);
    wt->name = strdup(name);
    wt->nbytes = (uint64_t)rb * rows;
    wt->data = wt->nbytes ? malloc((size_t)wt->nbytes) : NULL;
    if (!wt->name || !wt->data) {
        free(wt->name);
        free(wt->data);
        return HP_ERR_NOMEM;
    }
    wt->type = t;
    wt->n_dims = n_dims;
    for (uint32_t d = 0; d < HP_GGUF_MAX_DIMS; d++)
        wt->ne[d] = d < n_dims ? ne[d] : 1;
    w->n_t++;
    *out = wt;
    return HP_OK;
}

hp_err hp_gguf_writer_tensor(hp_gguf_writer *w, const char *name,
                             hp_dtype t, uint32_t n_dims, const int64_t *ne,
                             const void *data)
{
    if (!data)
        return HP_ERR_INVALID;
    wtensor *wt;
    hp_err e = add_tensor(w, name, t, n_dims, ne, &wt);
    if (e != HP_OK)
        return e;
    memcpy(wt->data, data, (size_t)wt->nbytes);
    return HP_OK;
}

hp_err hp_gguf_writer_tensor_f32(hp_gguf_writer *w, const char *name,
                                 hp_dtype t, uint32_t n_dims,
                                 const int64_t *ne, const float *data)
{
    if (!data)
        return HP_ERR_INVALID;
    wtensor *wt;
    hp_err e = add_tensor(w, name, t, n_dims, ne, &wt);
    if (e != HP_OK)
        return e;
    /* Quantize row by row straight into the owned buffer: no f32 copy. */
    uint64_t rows = 1;
    for (uint32_t d = 1; d < n_dims; d++)
        rows *= (uint64_t)ne[d];
    int64_t rb = hp_dtype_row_bytes(t, ne[0]);
    for (uint64_t r = 0; r < rows; r++)
        hp_quant_row_ref(t, data + r * (uint64_t)ne[0],
                         (uint8_t *)wt->data + r * (uint64_t)rb, ne[0]);
    return HP_OK;
}

/* --------------------------------------------------------------- save */

static bool write_all(FILE *f, const void *p, size_t n)
{
    return n == 0 || fwrite(p, 1, n, f) == n;
}

static bool write_pad(FILE *f, uint64_t pos)
{
    static const uint8_t zeros[WRITE_ALIGN];
    size_t pad = (size_t)((WRITE_ALIGN - pos % WRITE_ALIGN) % WRITE_ALIGN);
    return write_all(f, zeros, pad);
}

hp_err hp_gguf_writer_save(hp_gguf_writer *w, const char *path,
                           hp_errbuf *eb)
{
    if (!w || !path)
        return hp_errf(eb, HP_ERR_INVALID, "gguf writer: no path");
    FILE *f = fopen(path, "wb");
    if (!f)
        return hp_errf(eb, HP_ERR_IO, "%s: %s", path, strerror(errno));
    uint32_t magic_ver[2] = {0x46554747u, 3};
    uint64_t counts[2] = {w->n_t, w->n_kv + 1}; /* + general.alignment */
    bool ok = write_all(f, magic_ver, sizeof magic_ver) &&
              write_all(f, counts, sizeof counts) &&
              write_all(f, w->kv, w->kv_len);
    /* general.alignment last, so keys the caller added keep their order. */
    static const char akey[] = "general.alignment";
    uint64_t alen = sizeof akey - 1;
    uint32_t atype = HP_GGUF_UINT32, aval = WRITE_ALIGN;
    ok = ok && write_all(f, &alen, 8) && write_all(f, akey, alen) &&
         write_all(f, &atype, 4) && write_all(f, &aval, 4);
    uint64_t pos = 24 + w->kv_len + 8 + alen + 8;
    uint64_t off = 0;
    for (size_t i = 0; ok && i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        uint64_t nlen = strlen(t->name);
        uint32_t ty = (uint32_t)t->type;
        ok = write_all(f, &nlen, 8) && write_all(f, t->name, nlen) &&
             write_all(f, &t->n_dims, 4);
        for (uint32_t d = 0; ok && d < t->n_dims; d++) {
            uint64_t v = (uint64_t)t->ne[d];
            ok = write_all(f, &v, 8);
        }
        ok = ok && write_all(f, &ty, 4) && write_all(f, &off, 8);
        pos += 8 + nlen + 4 + 8ull * t->n_dims + 4 + 8;
        off += t->nbytes;
        off += (WRITE_ALIGN - off % WRITE_ALIGN) % WRITE_ALIGN;
    }
    ok = ok && write_pad(f, pos);
    for (size_t i = 0; ok && i < w->n_t; i++)
        ok = write_all(f, w->t[i].data, (size_t)w->t[i].nbytes) &&
             write_pad(f, w->t[i].nbytes);
    if (fclose(f) != 0)
        ok = false;
    if (!ok) {
        int saved = errno;
        remove(path);
        return hp_errf(eb, HP_ERR_IO, "%s: write failed: %s", path,
                       strerror(saved));
    }
    return HP_OK;
}
