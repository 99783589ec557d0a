/* model_int.h: internal to model/: what the GGUF loader (model.c) and the
 * Hugging Face folder loader (model_hf.c) share: the per-architecture
 * traits table, owned-buffer bookkeeping and the final hparams checks.
 * Not for callers outside src/model/. */
#ifndef HP_MODEL_INT_H
#define HP_MODEL_INT_H

#include "model/model.h"

/* What differs between architectures, as data. */
typedef struct hp_model__arch {
    const char *name;     /* GGUF general.architecture */
    hp_arch id;
    hp_rope_mode gguf_rope; /* GGUF files: llama/mistral q/k are permuted
                               by the converter (NORM); others NEOX */
    hp_act act;
    bool embd_scale;      /* embeddings * sqrt(n_embd) (gemma) */
    bool qkv_bias;        /* q/k/v biases required (qwen2) */
    bool qk_norm;         /* per-head q/k RMSNorm required */
    bool post_norms;      /* post-attention and post-FFN norms (gemma) */
    bool fused;           /* fused qkv and gate|up matrices (phi3) */
    int swa_pattern;      /* sliding layers when a window is set: 0 all,
                             n: layer l slides when l % n < n - 1 */
} hp_model__arch;

/* The traits of an architecture by GGUF name or id; NULL if unknown. */
const hp_model__arch *hp_model__arch_by_name(const char *name, size_t len);
const hp_model__arch *hp_model__arch_by_id(hp_arch id);

/* Record p (malloc'd) as owned by m; frees p and returns false on OOM. */
bool hp_model__own(hp_model *m, void *p);

/* Consistency checks every loader runs last (heads, rope dims, window):
 * HP_ERR_FORMAT naming fname. */
hp_err hp_model__check_hparams(const hp_hparams *hp, const char *fname,
                               hp_errbuf *eb);

/* Load a Hugging Face folder into m (m->path set, everything else empty).
 * Defined in model_hf.c. */
hp_err hp_model__load_hf(hp_model *m, const char *dir,
                         const hp_model_opts *o, hp_errbuf *eb);

#endif
