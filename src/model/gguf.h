/* gguf.h: read-only, validated view of a GGUF (v2/v3) file through mmap.
 *
 * hp_gguf_open checks every header field, string and array length, tensor
 * dimension, type, offset and size against the file size before returning,
 * so nothing else ever has to re-check bounds. Strings and tensor data point
 * into the mapping (borrowed; valid until hp_gguf_close). Knows nothing of
 * model architectures. Included by model/. */
#ifndef HP_GGUF_H
#define HP_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"
#include "util/err.h"

typedef enum hp_gguf_type {
    HP_GGUF_UINT8 = 0,
    HP_GGUF_INT8 = 1,
    HP_GGUF_UINT16 = 2,
    HP_GGUF_INT16 = 3,
    HP_GGUF_UINT32 = 4,
    HP_GGUF_INT32 = 5,
    HP_GGUF_FLOAT32 = 6,
    HP_GGUF_BOOL = 7,
    HP_GGUF_STRING = 8,
    HP_GGUF_ARRAY = 9,
    HP_GGUF_UINT64 = 10,
    HP_GGUF_INT64 = 11,
    HP_GGUF_FLOAT64 = 12
} hp_gguf_type;

/* A length-delimited string inside the mapping; not NUL-terminated. */
typedef struct hp_str {
    const char *ptr;
    uint64_t len;
} hp_str;

typedef struct hp_gguf_kv {
    hp_str key;
    hp_gguf_type type;     /* value type; ARRAY for arrays */
    hp_gguf_type arr_type; /* element type when type == ARRAY */
    uint64_t arr_n;        /* element count when type == ARRAY */
    const uint8_t *data;   /* borrows: value bytes (scalar, string header,
                              or first array element) in the mapping */
} hp_gguf_kv;

#define HP_GGUF_MAX_DIMS 4

typedef struct hp_gguf_tensor {
    hp_str name;
    uint32_t n_dims;
    int64_t ne[HP_GGUF_MAX_DIMS]; /* ne[0] is the contiguous (row) length;
                                     unused dims are 1 */
    hp_dtype type;
    uint64_t offset;  /* relative to the data section */
    uint64_t nbytes;  /* exact size from shape and type */
    const void *data; /* borrows: points into the mapping */
} hp_gguf_tensor;

typedef struct hp_gguf {
    char *path;            /* owns */
    void *map;             /* owns: mmap of the whole file */
    size_t map_size;
    uint32_t version;      /* 2 or 3 */
    uint64_t n_kv;
    hp_gguf_kv *kv;        /* owns: array of n_kv */
    uint64_t n_tensors;
    hp_gguf_tensor *tensors; /* owns: array of n_tensors */
    uint64_t alignment;    /* general.alignment or 32 */
    const uint8_t *data_base; /* start of the tensor data section */
} hp_gguf;

/* Map and validate path. On failure *out is NULL and eb names the file and
 * the problem, e.g. "m.gguf: tensor blk.3.attn_q.weight: offset past end of
 * file". Unknown tensor types are HP_ERR_UNSUPPORTED naming the type value. */
hp_err hp_gguf_open(const char *path, hp_gguf **out, hp_errbuf *eb);
/* Unmap and free. Accepts NULL. */
void hp_gguf_close(hp_gguf *g);

/* Key lookup (exact match); NULL when absent. */
const hp_gguf_kv *hp_gguf_find(const hp_gguf *g, const char *key);
const hp_gguf_tensor *hp_gguf_tensor_find(const hp_gguf *g, const char *name);

/* Typed getters: false when the key is absent or not convertible. Integer
 * getters accept any integer type whose value fits; the float getter
 * accepts FLOAT32/FLOAT64. */
bool hp_gguf_get_u32(const hp_gguf *g, const char *key, uint32_t *out);
bool hp_gguf_get_i64(const hp_gguf *g, const char *key, int64_t *out);
bool hp_gguf_get_f32(const hp_gguf *g, const char *key, float *out);
bool hp_gguf_get_bool(const hp_gguf *g, const char *key, bool *out);
bool hp_gguf_get_str(const hp_gguf *g, const char *key, hp_str *out);

/* Array element access, by arr_type. Index must be < kv->arr_n.
 * hp_gguf_arr_strs fills out[0..arr_n) in one pass (string arrays cannot be
 * indexed in O(1)); false if kv is not a string array. */
bool hp_gguf_arr_strs(const hp_gguf_kv *kv, hp_str *out);
float hp_gguf_arr_f32(const hp_gguf_kv *kv, uint64_t i);   /* FLOAT32 */
int64_t hp_gguf_arr_int(const hp_gguf_kv *kv, uint64_t i); /* any int type */

/* True when s equals the C string c. */
bool hp_str_eq(hp_str s, const char *c);

#endif
