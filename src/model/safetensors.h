/* safetensors.h: read-only, validated view of a Hugging Face safetensors
 * checkpoint (one file, or a sharded set named by an index JSON) through
 * mmap.
 *
 * hp_st_open checks every shard's header length, JSON header, tensor dtype,
 * shape, byte range and overlap against the file size before returning,
 * and checks the index against the shards, so callers never re-check
 * bounds. Tensor data points into the read-only mappings (borrowed; valid
 * until hp_st_close). Knows the container format only: no architectures,
 * no configs (see hf_config.h). Included by model/ and cli/.
 *
 * Shapes keep Hugging Face order: row-major, shape[0] is the slowest
 * dimension, shape[ndims-1] the contiguous one. A torch Linear weight is
 * [out_features, in_features], i.e. rows x cols, which is the same memory
 * layout as an hp_weight with ne0 = shape[1] (cols), ne1 = shape[0] (rows):
 * no transpose is needed to use it in hp_matmul. */
#ifndef HP_SAFETENSORS_H
#define HP_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"
#include "util/err.h"

/* Headers above this are refused (the reference implementation uses the
 * same cap); the JSON is parsed into memory, so the cap bounds that too. */
#define HP_ST_MAX_HEADER (100u * 1000u * 1000u)
/* Tensors with more dimensions are refused (models use at most 4). */
#define HP_ST_MAX_DIMS 8

/* Every element type the format names. Files may hold any of them (a
 * checkpoint often carries an I64 buffer or two); only F32/F16/BF16 map to
 * an hp_dtype the kernels compute with, and hp_st_get/hp_st_tensor_to
 * refuse the rest by name. */
typedef enum hp_st_dtype {
    HP_ST_BOOL,
    HP_ST_U8,
    HP_ST_I8,
    HP_ST_F8_E5M2,
    HP_ST_F8_E4M3,
    HP_ST_F8_E8M0,
    HP_ST_I16,
    HP_ST_U16,
    HP_ST_F16,
    HP_ST_BF16,
    HP_ST_I32,
    HP_ST_U32,
    HP_ST_F32,
    HP_ST_I64,
    HP_ST_U64,
    HP_ST_F64,
    HP_ST_DTYPE_COUNT
} hp_st_dtype;

typedef struct hp_st_tensor {
    const char *name;   /* borrows: NUL-terminated, lives as long as hp_st */
    const char *file;   /* borrows: basename of the shard holding it */
    hp_st_dtype st_type;
    hp_dtype type;      /* HP_DT_F32/F16/BF16, or HP_DT_COUNT when the
                           file type has no kernel type (I64, F8_*, ...) */
    int elem_size;      /* bytes per element */
    int ndims;          /* 0 for a scalar */
    int64_t shape[HP_ST_MAX_DIMS]; /* HF order; unused dims are 1 */
    int64_t n_elems;    /* product of shape (1 for a scalar) */
    uint64_t offset;    /* data_offsets[0], relative to the data section */
    uint64_t nbytes;    /* data_offsets[1] - data_offsets[0] */
    const void *data;   /* borrows: read-only mapping. Aligned only as the
                           writer laid it out (normally to the element
                           size, not guaranteed): use hp_st_tensor_to for
                           an aligned owned copy when it matters. */
} hp_st_tensor;

typedef struct hp_st hp_st;

/* Open a checkpoint. path may be:
 *   - a directory holding model.safetensors.index.json (sharded) or
 *     model.safetensors (single),
 *   - an index file (*.safetensors.index.json): its shards are resolved
 *     beside it,
 *   - a single .safetensors file.
 * Every shard is mapped read-only and validated. The index's weight_map
 * must name only plain file names (no '/'), every listed shard must exist
 * and hold the tensors listed for it, and a tensor name may appear in only
 * one shard. On failure *out is NULL and eb names the file and the tensor,
 * e.g. "model-00002-of-00003.safetensors: tensor model.layers.3.mlp.up_proj
 * .weight: data_offsets [0, 9000] past end of data (size 4096)". Codes:
 * HP_ERR_IO (cannot open/map), HP_ERR_NOT_FOUND (no checkpoint in the
 * directory, missing shard), HP_ERR_FORMAT (corrupt), HP_ERR_UNSUPPORTED
 * (dtype name unknown), HP_ERR_TOO_LARGE (header over the cap),
 * HP_ERR_NOMEM. */
hp_err hp_st_open(const char *path, hp_st **out, hp_errbuf *eb);
/* Unmap every shard and free. Accepts NULL. */
void hp_st_close(hp_st *st);

/* Number of tensors over all shards. */
size_t hp_st_count(const hp_st *st);
/* Tensor i < hp_st_count, in shard order (sorted shard names), then by
 * offset inside the shard, i.e. file order. NULL when out of range. */
const hp_st_tensor *hp_st_at(const hp_st *st, size_t i);
/* Lookup by exact name (hash table); NULL when absent. */
const hp_st_tensor *hp_st_find(const hp_st *st, const char *name);

/* Lookup for a loader: the tensor must exist (HP_ERR_NOT_FOUND, naming
 * the single file or, for a sharded set, the index), have a
 * kernel type F32/F16/BF16 (HP_ERR_UNSUPPORTED naming the file type), and
 * when ndims > 0, exactly that many dims equal to shape[0..ndims) (a shape
 * entry < 0 matches anything); else HP_ERR_FORMAT naming the file, the
 * tensor, the shape found and the one expected. */
hp_err hp_st_get(const hp_st *st, const char *name, int ndims,
                 const int64_t *shape, const hp_st_tensor **out,
                 hp_errbuf *eb);

/* A __metadata__ string of the first shard (e.g. "format" -> "pt"); NULL
 * when absent. Borrowed; lives as long as st. */
const char *hp_st_metadata(const hp_st *st, const char *key);

/* Number of shard files and the basename of shard i (NULL if out of range). */
size_t hp_st_n_files(const hp_st *st);
const char *hp_st_file(const hp_st *st, size_t i);

/* File type name as the format spells it ("BF16"); "?" if out of range. */
const char *hp_st_dtype_name(hp_st_dtype t);

/* Convert a tensor to type `to` in a new buffer (owned by the caller,
 * free()). Source must be F32/F16/BF16; to may be F32, F16, BF16, Q8_0 or
 * Q4_0. Rows are the last dimension (shape[ndims-1] elements, 1 row for a
 * 1-D tensor) and are converted independently: quantized rows are exactly
 * hp_quant_row_ref(to, row as f32), so the result is deterministic
 * whatever the thread count. Result size is rows * hp_dtype_row_bytes(to,
 * cols). The row length must be a multiple of the block size (32 for
 * Q8_0/Q4_0), else HP_ERR_INVALID naming the tensor. Large tensors are
 * split over all online cores (load-time only: it starts and joins its
 * own threads, so never call it while a forward pass runs). */
hp_err hp_st_tensor_to(const hp_st_tensor *t, hp_dtype to, void **out_owned,
                       hp_errbuf *eb);

#endif
