/* gguf_write.h: build a GGUF v3 file in memory and write it out.
 *
 * Used by `hotpath synth` and by test tools that make fixtures (random
 * weights of any shape and type, corrupt files). Keys and tensors are
 * written in the order added. Tensor data is copied (the writer owns it).
 * Included by model/ and cli/. */
#ifndef HP_GGUF_WRITE_H
#define HP_GGUF_WRITE_H

#include <stdbool.h>
#include <stdint.h>

#include "kernels/kernels.h"
#include "model/gguf.h"
#include "util/err.h"

typedef struct hp_gguf_writer hp_gguf_writer;

hp_gguf_writer *hp_gguf_writer_new(void);
void hp_gguf_writer_free(hp_gguf_writer *w); /* accepts NULL */

hp_err hp_gguf_writer_u32(hp_gguf_writer *w, const char *key, uint32_t v);
hp_err hp_gguf_writer_i32(hp_gguf_writer *w, const char *key, int32_t v);
hp_err hp_gguf_writer_f32(hp_gguf_writer *w, const char *key, float v);
hp_err hp_gguf_writer_bool(hp_gguf_writer *w, const char *key, bool v);
hp_err hp_gguf_writer_str(hp_gguf_writer *w, const char *key, const char *v);
/* Arrays: strs[n] (NUL-terminated each; lens may be NULL, else explicit
 * byte lengths so strings may contain NUL), f32 and i32 arrays. */
hp_err hp_gguf_writer_arr_str(hp_gguf_writer *w, const char *key,
                              const char *const *strs, const uint64_t *lens,
                              uint64_t n);
hp_err hp_gguf_writer_arr_f32(hp_gguf_writer *w, const char *key,
                              const float *v, uint64_t n);
hp_err hp_gguf_writer_arr_i32(hp_gguf_writer *w, const char *key,
                              const int32_t *v, uint64_t n);
/* Copy every key of src whose name starts with prefix (NULL copies all),
 * e.g. "tokenizer." to carry a real tokenizer into a synthetic model. */
hp_err hp_gguf_writer_copy_kvs(hp_gguf_writer *w, const hp_gguf *src,
                               const char *prefix);

/* Add a tensor of shape ne[0..n_dims) (ne[0] contiguous) and type t, with
 * data already in that type's layout (hp_dtype_row_bytes(t, ne[0]) * rows
 * bytes). */
hp_err hp_gguf_writer_tensor(hp_gguf_writer *w, const char *name,
                             hp_dtype t, uint32_t n_dims, const int64_t *ne,
                             const void *data);
/* Add an f32 tensor converted to t with the reference quantizer. */
hp_err hp_gguf_writer_tensor_f32(hp_gguf_writer *w, const char *name,
                                 hp_dtype t, uint32_t n_dims,
                                 const int64_t *ne, const float *data);

/* Write the file (alignment 32). eb names the path on failure. */
hp_err hp_gguf_writer_save(hp_gguf_writer *w, const char *path,
                           hp_errbuf *eb);

#endif
