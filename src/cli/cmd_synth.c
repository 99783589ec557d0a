/* cmd_synth.c: `hotpath synth`: write a random-weight llama GGUF of a real
 * model's shape (SmolLM2-135M, Llama-3.2-1B, or any given dimensions), with
 * a real tokenizer copied from another GGUF or a synthetic SentencePiece
 * vocabulary.
 *
 * Such files load and run exactly like the real models (same tensor names,
 * shapes, types and metadata), so speed and memory can be measured, and
 * hotpath compared with llama.cpp side by side, without downloading
 * weights. The text they produce is gibberish.
 *
 * Memory: gguf_write.h copies tensor data and writes everything at save,
 * so the whole file is held in memory until then (plus one tensor while
 * it is handed over): about 1.3 GB for llama3.2-1b in q8_0. Each tensor is
 * generated and quantized row by row into its own buffer; no f32 copy of a
 * whole quantized tensor ever exists. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/bench_prompt.h"
#include "cli/cli.h"
#include "kernels/kernels.h"
#include "model/gguf.h"
#include "model/gguf_write.h"
#include "util/utf8.h"

/* ---- shapes --------------------------------------------------------------- */

typedef struct shape {
    const char *name;
    long hidden, layers, heads, kv_heads, ffn, vocab, ctx;
    float rope_base;
} shape;

static const shape shapes[] = {
    /* HuggingFaceTB/SmolLM2-135M config.json */
    {"smollm2-135m", 576, 30, 9, 3, 1536, 49152, 8192, 100000.0f},
    /* meta-llama/Llama-3.2-1B config.json; hotpath caps the context */
    {"llama3.2-1b", 2048, 16, 32, 8, 8192, 128256, 131072, 500000.0f},
    /* for tests: small enough to generate and run in milliseconds */
    {"tiny", 64, 2, 4, 2, 128, 512, 2048, 10000.0f},
};

#define N_SHAPES (sizeof shapes / sizeof shapes[0])

static void synth_usage(FILE *f)
{
    fprintf(f,
        "usage: hotpath synth --shape NAME [options] -o OUT.gguf\n\n"
        "Write a llama-architecture GGUF with random weights (normal, std 0.02,\n"
        "norm weights 1) of a real model's shape. Text generated from it is\n"
        "gibberish; speed and memory use are those of the real model.\n\n"
        "options:\n"
        "      --shape NAME       smollm2-135m, llama3.2-1b or tiny; optional when\n"
        "                         all of --hidden --layers --heads --ffn --vocab-size\n"
        "                         (or --vocab) are given\n"
        "      --type T           type of every 2-D weight: q8_0 (default), q4_0,\n"
        "                         f16 or f32 (norms are always f32)\n"
        "      --hidden N         embedding length (override the shape's)\n"
        "      --layers N         block count\n"
        "      --heads N          attention heads\n"
        "      --kv-heads N       key/value heads (default: = heads)\n"
        "      --ffn N            feed-forward length\n"
        "      --vocab-size N     vocabulary size\n"
        "      --ctx N            llama.context_length (default: the shape's)\n"
        "      --vocab FILE.gguf  copy every tokenizer.* key of FILE; the vocab\n"
        "                         size comes from it (must equal --vocab-size if\n"
        "                         given). Default: a synthetic SentencePiece vocab\n"
        "                         (<unk> <s> </s>, 256 byte tokens, pseudo-words)\n"
        "      --no-partial-utf8  zero the embedding rows (tied: also the output\n"
        "                         head) of tokens that decode to bytes that are not\n"
        "                         valid UTF-8 on their own, so greedy decoding\n"
        "                         avoids them. SentencePiece: byte tokens\n"
        "                         <0x80>..<0xFF>; BPE (gpt2 byte mapping): tokens\n"
        "                         whose bytes are invalid UTF-8; other tokenizer\n"
        "                         models: byte tokens only\n"
        "      --seed S           weight seed (default 1)\n"
        "  -o, --output PATH      output file (required)\n"
        "  -h, --help             this help\n\n"
        "Embeddings are tied (no output.weight). Quantized types need hidden and\n"
        "ffn to be multiples of 32.\n");
}

/* ---- random weights ------------------------------------------------------- */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Approximately normal values with std `std`: the sum of four 16-bit
 * uniforms from one 64-bit draw (Irwin-Hall, variance 1/3 after
 * centring), rescaled. Five times faster than Box-Muller, which matters
 * for a billion weights, and the tails (cut at 3.46 sigma) are irrelevant
 * for random weights. */
static void fill_normal(uint64_t *s, float *v, int64_t n, float std)
{
    const float k = std * 1.7320508f / 65536.0f; /* sqrt(3) / 2^16 */
    for (int64_t i = 0; i < n; i++) {
        uint64_t r = splitmix(s);
        float sum = (float)(r & 0xffff) + (float)((r >> 16) & 0xffff) +
                    (float)((r >> 32) & 0xffff) + (float)(r >> 48);
        v[i] = (sum - 2.0f * 65536.0f) * k;
    }
}

/* FNV-1a, so each tensor's values depend on (seed, name) only. */
static uint64_t name_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}

/* ---- the job -------------------------------------------------------------- */

typedef struct job {
    shape sh;
    hp_dtype type;
    uint64_t seed;
    const char *out;        /* borrows: argv */
    const char *vocab_path; /* borrows: argv */
    bool no_partial_utf8;
    bool *zero_rows;        /* owns: [vocab] rows to zero, or NULL */
    long n_zero;
    /* progress */
    bool tty;
    int n_tensors, done_tensors;
    uint64_t bytes;
    double t0, last_print;
} job;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void progress(job *j, const char *name)
{
    double t = now_s();
    bool last = j->done_tensors == j->n_tensors;
    if (!last && t - j->last_print < (j->tty ? 0.2 : 2.0))
        return;
    j->last_print = t;
    fprintf(stderr, "%ssynth: tensor %d/%d %-28s %9.1f MB%s", j->tty ? "\r" : "",
            j->done_tensors, j->n_tensors, name, (double)j->bytes / 1e6,
            j->tty && !last ? "" : "\n");
    fflush(stderr);
}

/* Generate one tensor row by row into a buffer of its final type and hand
 * it to the writer. 1-D tensors are norm weights (f32 ones). */
static hp_err add_tensor(job *j, hp_gguf_writer *w, const char *name,
                         int64_t ne0, int64_t ne1, hp_errbuf *eb)
{
    hp_err e;
    if (ne1 == 0) {
        float *ones = malloc(sizeof(float) * (size_t)ne0);
        if (!ones)
            return hp_errf(eb, HP_ERR_NOMEM, "out of memory");
        for (int64_t i = 0; i < ne0; i++)
            ones[i] = 1.0f;
        int64_t ne[1] = {ne0};
        e = hp_gguf_writer_tensor(w, name, HP_DT_F32, 1, ne, ones);
        free(ones);
        j->bytes += (uint64_t)ne0 * 4;
    } else {
        int64_t rb = hp_dtype_row_bytes(j->type, ne0);
        if (rb <= 0)
            return hp_errf(eb, HP_ERR_INVALID, "%s: row of %lld is not a "
                           "multiple of the %s block", name, (long long)ne0,
                           hp_dtype_name(j->type));
        uint8_t *data = malloc((size_t)rb * (size_t)ne1);
        float *row = malloc(sizeof(float) * (size_t)ne0);
        if (!data || !row) {
            free(data);
            free(row);
            return hp_errf(eb, HP_ERR_NOMEM, "out of memory for %s (%.1f MB)",
                           name, (double)rb * (double)ne1 / 1e6);
        }
        uint64_t s = j->seed ^ name_hash(name);
        bool embd = !strcmp(name, "token_embd.weight");
        for (int64_t r = 0; r < ne1; r++) {
            fill_normal(&s, row, ne0, 0.02f);
            if (embd && j->zero_rows && j->zero_rows[r])
                memset(row, 0, sizeof(float) * (size_t)ne0);
            hp_quant_row_ref(j->type, row, data + (size_t)r * (size_t)rb, ne0);
        }
        free(row);
        int64_t ne[2] = {ne0, ne1};
        e = hp_gguf_writer_tensor(w, name, j->type, 2, ne, data);
        free(data);
        j->bytes += (uint64_t)rb * (uint64_t)ne1;
    }
    if (e != HP_OK)
        return hp_errf(eb, e, "adding tensor %s: %s", name, hp_strerror(e));
    j->done_tensors++;
    progress(j, name);
    return HP_OK;
}

static hp_err add_weights(job *j, hp_gguf_writer *w, hp_errbuf *eb)
{
    const shape *s = &j->sh;
    int64_t hd = s->hidden / s->heads, kv = hd * s->kv_heads;
    j->n_tensors = 2 + 9 * (int)s->layers;
    hp_err e = add_tensor(j, w, "token_embd.weight", s->hidden, s->vocab, eb);
    if (e == HP_OK)
        e = add_tensor(j, w, "output_norm.weight", s->hidden, 0, eb);
    char name[64];
    for (long l = 0; e == HP_OK && l < s->layers; l++) {
        static const char *const parts[9] = {
            "attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
            "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"};
        /* ne0 (input, contiguous) and ne1 (output rows) as llama.cpp lays
         * them out; ne1 == 0 marks a norm vector. */
        const int64_t dims[9][2] = {
            {s->hidden, 0}, {s->hidden, s->hidden}, {s->hidden, kv},
            {s->hidden, kv}, {s->hidden, s->hidden}, {s->hidden, 0},
            {s->hidden, s->ffn}, {s->hidden, s->ffn}, {s->ffn, s->hidden}};
        for (int p = 0; e == HP_OK && p < 9; p++) {
            snprintf(name, sizeof name, "blk.%ld.%s.weight", l, parts[p]);
            e = add_tensor(j, w, name, dims[p][0], dims[p][1], eb);
        }
    }
    return e;
}

/* ---- vocabulary ----------------------------------------------------------- */

/* Synthetic SentencePiece vocabulary of n >= 260 tokens: <unk> <s> </s>,
 * <0x00>..<0xFF> (byte fallback), "▁", letters, "▁"+letter, "▁"+each of
 * `hotpath bench`'s prompt words and their prefixes (so a P-word bench
 * prompt is P tokens, as with real vocabularies), then unique pseudo-words "▁" +
 * consonant-vowel syllables, scores descending. */
/* True if piece ("▁" + letters) is a bench word or a prefix of one, which
 * synth_vocab already added. */
static bool is_bench_word(const char *piece)
{
    const char *const *w;
    size_t n = hp_bench_words(&w);
    size_t pl = strlen(piece + 3); /* skip the 3-byte "▁" */
    for (size_t i = 0; i < n; i++)
        if (!strncmp(piece + 3, w[i], pl))
            return true;
    return false;
}

static hp_err synth_vocab(hp_gguf_writer *w, long n, hp_errbuf *eb)
{
    static const char cons[] = "bdfgklmnprstvz", vow[] = "aeiou";
    char **toks = calloc((size_t)n, sizeof *toks);
    float *scores = calloc((size_t)n, sizeof *scores);
    int32_t *types = calloc((size_t)n, sizeof *types);
    hp_err e = HP_ERR_NOMEM;
    if (!toks || !scores || !types)
        goto done;
    const char *fixed[3] = {"<unk>", "<s>", "</s>"};
    /* "▁"+word needs every "▁"+prefix too: SentencePiece BPE only merges
     * a pair whose concatenation is a token */
    const char *const *bench;
    size_t n_bench = hp_bench_words(&bench);
    char pre[2048][24];
    long n_pre = 0;
    for (size_t i = 0; i < n_bench; i++) {
        size_t wl = strlen(bench[i]);
        for (size_t l = 2; l <= wl && l < 20 && n_pre < 2048; l++) {
            char cand[24];
            snprintf(cand, sizeof cand, "\xe2\x96\x81%.*s", (int)l, bench[i]);
            bool dup = false;
            for (long j = 0; j < n_pre && !dup; j++)
                dup = !strcmp(pre[j], cand);
            if (!dup)
                memcpy(pre[n_pre++], cand, sizeof cand);
        }
    }
    long k = 0, word = 0;
    for (; k < n; k++) {
        char buf[64];
        if (k < 3) {
            snprintf(buf, sizeof buf, "%s", fixed[k]);
            types[k] = k == 0 ? 2 : 3; /* unknown, control */
        } else if (k < 259) {
            snprintf(buf, sizeof buf, "<0x%02X>", (unsigned)(k - 3));
            types[k] = 6; /* byte */
        } else {
            long m = k - 259;
            if (m == 0) {
                snprintf(buf, sizeof buf, "\xe2\x96\x81");
            } else if (m <= 26) {
                snprintf(buf, sizeof buf, "%c", (char)('a' + m - 1));
            } else if (m <= 52) {
                snprintf(buf, sizeof buf, "\xe2\x96\x81%c", (char)('a' + m - 27));
            } else if (m - 53 < n_pre) {
                snprintf(buf, sizeof buf, "%s", pre[m - 53]);
            } else {
                /* word in base 70 (14 consonants x 5 vowels), 2+ syllables;
                 * skip the few that spell a bench word already present */
                do {
                    long v = word++ + 70;
                    size_t len = (size_t)snprintf(buf, sizeof buf, "\xe2\x96\x81");
                    while (v > 0 && len + 2 < sizeof buf) {
                        long syl = v % 70;
                        buf[len++] = cons[syl / 5];
                        buf[len++] = vow[syl % 5];
                        v /= 70;
                    }
                    buf[len] = 0;
                } while (is_bench_word(buf));
            }
            types[k] = 1;
            scores[k] = -(float)(m + 1);
        }
        toks[k] = strdup(buf);
        if (!toks[k])
            goto done;
    }
    e = hp_gguf_writer_str(w, "tokenizer.ggml.model", "llama");
    if (e == HP_OK)
        e = hp_gguf_writer_arr_str(w, "tokenizer.ggml.tokens",
                                   (const char *const *)toks, NULL, (uint64_t)n);
    if (e == HP_OK)
        e = hp_gguf_writer_arr_f32(w, "tokenizer.ggml.scores", scores, (uint64_t)n);
    if (e == HP_OK)
        e = hp_gguf_writer_arr_i32(w, "tokenizer.ggml.token_type", types, (uint64_t)n);
    if (e == HP_OK)
        e = hp_gguf_writer_u32(w, "tokenizer.ggml.bos_token_id", 1);
    if (e == HP_OK)
        e = hp_gguf_writer_u32(w, "tokenizer.ggml.eos_token_id", 2);
    if (e == HP_OK)
        e = hp_gguf_writer_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    if (e == HP_OK)
        e = hp_gguf_writer_bool(w, "tokenizer.ggml.add_bos_token", true);
done:
    if (toks)
        for (long i = 0; i < n; i++)
            free(toks[i]);
    free(toks);
    free(scores);
    free(types);
    if (e != HP_OK)
        return hp_errf(eb, e, "synthetic vocabulary: %s", hp_strerror(e));
    return HP_OK;
}

/* "<0xNN>" -> NN, else -1. */
static int byte_token(hp_str t)
{
    if (t.len != 6 || memcmp(t.ptr, "<0x", 3) || t.ptr[5] != '>')
        return -1;
    char hex[3] = {t.ptr[3], t.ptr[4], 0};
    char *end;
    long v = strtol(hex, &end, 16);
    return *end ? -1 : (int)v;
}

/* gpt2 byte-level BPE maps each byte to a printable code point: bytes
 * '!'..'~', 0xA1..0xAC and 0xAE..0xFF map to themselves, the other 68 map
 * to U+0100 upwards in byte order. Decode token text back to bytes; false
 * if the text is not in that alphabet (e.g. a special token). */
static bool gpt2_bytes(hp_str t, uint8_t *out, size_t cap, size_t *n)
{
    int inv[68], k = 0;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) ||
                         (b >= 0xAE && b <= 0xFF);
        if (!printable)
            inv[k++] = b;
    }
    size_t len = 0;
    for (uint64_t i = 0; i < t.len;) {
        uint8_t c = (uint8_t)t.ptr[i];
        uint32_t cp;
        if (c < 0x80) {
            cp = c;
            i += 1;
        } else if ((c & 0xE0) == 0xC0 && i + 1 < t.len) {
            cp = ((uint32_t)(c & 0x1F) << 6) | ((uint8_t)t.ptr[i + 1] & 0x3F);
            i += 2;
        } else {
            return false; /* 3+ byte code points are not in the alphabet */
        }
        int b;
        if (cp >= 0x100 && cp < 0x100 + 68)
            b = inv[cp - 0x100];
        else if (cp < 0x100 && ((cp >= '!' && cp <= '~') ||
                                (cp >= 0xA1 && cp <= 0xAC) || cp >= 0xAE))
            b = (int)cp;
        else
            return false;
        if (len == cap)
            return false;
        out[len++] = (uint8_t)b;
    }
    *n = len;
    return true;
}

/* Mark the rows --no-partial-utf8 zeroes, from the copied vocabulary (or
 * the synthetic one's byte tokens 0x80..0xFF at ids 3+0x80..). */
static hp_err find_partial(job *j, const hp_gguf *g, hp_errbuf *eb)
{
    j->zero_rows = calloc((size_t)j->sh.vocab, 1);
    if (!j->zero_rows)
        return hp_errf(eb, HP_ERR_NOMEM, "out of memory");
    if (!g) {
        for (int b = 0x80; b <= 0xFF; b++)
            j->zero_rows[3 + b] = true;
        j->n_zero = 128;
        return HP_OK;
    }
    const hp_gguf_kv *tk = hp_gguf_find(g, "tokenizer.ggml.tokens");
    const hp_gguf_kv *ty = hp_gguf_find(g, "tokenizer.ggml.token_type");
    hp_str model = {"", 0};
    hp_gguf_get_str(g, "tokenizer.ggml.model", &model);
    bool gpt2 = hp_str_eq(model, "gpt2");
    hp_str *texts = malloc(sizeof(hp_str) * (size_t)tk->arr_n);
    if (!texts || !hp_gguf_arr_strs(tk, texts)) {
        free(texts);
        return hp_errf(eb, HP_ERR_FORMAT, "%s: tokenizer.ggml.tokens "
                       "unreadable", j->vocab_path);
    }
    for (uint64_t i = 0; i < tk->arr_n; i++) {
        bool is_byte_type = ty && ty->type == HP_GGUF_ARRAY && i < ty->arr_n &&
                            hp_gguf_arr_int(ty, i) == 6;
        int b = byte_token(texts[i]);
        bool zero = false;
        if (b >= 0x80 && (is_byte_type || !ty))
            zero = true;
        else if (gpt2 && !(ty && hp_gguf_arr_int(ty, i) == 3)) {
            uint8_t bytes[256];
            size_t n;
            if (gpt2_bytes(texts[i], bytes, sizeof bytes, &n) &&
                !hp_utf8_valid((const char *)bytes, n))
                zero = true;
        }
        if (zero) {
            j->zero_rows[i] = true;
            j->n_zero++;
        }
    }
    free(texts);
    return HP_OK;
}

/* ---- metadata and file ---------------------------------------------------- */

static hp_err add_meta(job *j, hp_gguf_writer *w, hp_errbuf *eb)
{
    const shape *s = &j->sh;
    uint32_t ftype = 0; /* llama.cpp's general.file_type: ALL_F32 */
    switch (j->type) {
    case HP_DT_F16: ftype = 1; break;
    case HP_DT_Q4_0: ftype = 2; break;
    case HP_DT_Q8_0: ftype = 7; break;
    default: break;
    }
    char name[96];
    snprintf(name, sizeof name, "synthetic %s %s", s->name,
             hp_dtype_name(j->type));
    hp_err e = hp_gguf_writer_str(w, "general.architecture", "llama");
    if (e == HP_OK) e = hp_gguf_writer_str(w, "general.name", name);
    if (e == HP_OK) e = hp_gguf_writer_u32(w, "general.file_type", ftype);
    if (e == HP_OK) e = hp_gguf_writer_u32(w, "llama.context_length", (uint32_t)s->ctx);
    if (e == HP_OK) e = hp_gguf_writer_u32(w, "llama.embedding_length", (uint32_t)s->hidden);
    if (e == HP_OK) e = hp_gguf_writer_u32(w, "llama.block_count", (uint32_t)s->layers);
    if (e == HP_OK) e = hp_gguf_writer_u32(w, "llama.feed_forward_length", (uint32_t)s->ffn);
    if (e == HP_OK) e = hp_gguf_writer_u32(w, "llama.attention.head_count", (uint32_t)s->heads);
    if (e == HP_OK) e = hp_gguf_writer_u32(w, "llama.attention.head_count_kv", (uint32_t)s->kv_heads);
    if (e == HP_OK) e = hp_gguf_writer_u32(w, "llama.rope.dimension_count", (uint32_t)(s->hidden / s->heads));
    if (e == HP_OK) e = hp_gguf_writer_f32(w, "llama.rope.freq_base", s->rope_base);
    if (e == HP_OK) e = hp_gguf_writer_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    if (e == HP_OK) e = hp_gguf_writer_u32(w, "llama.vocab_size", (uint32_t)s->vocab);
    if (e != HP_OK)
        return hp_errf(eb, e, "metadata: %s", hp_strerror(e));
    return HP_OK;
}

/* Generate everything and save to j->out through a temporary name, so a
 * failed run never leaves a truncated file under the final name. */
static hp_err synth(job *j, const hp_gguf *vocab_src, hp_errbuf *eb)
{
    hp_err e = HP_OK;
    size_t tl = strlen(j->out) + 16;
    char *tmp = malloc(tl);
    hp_gguf_writer *w = hp_gguf_writer_new();
    if (!tmp || !w) {
        e = hp_errf(eb, HP_ERR_NOMEM, "out of memory");
        goto done;
    }
    snprintf(tmp, tl, "%s.partial", j->out);
    struct stat sb;
    /* lstat: the rename below would replace a symlink, a device or a
     * FIFO rather than write through it; only regular files are ours */
    if (lstat(j->out, &sb) == 0 && !S_ISREG(sb.st_mode)) {
        e = hp_errf(eb, HP_ERR_IO, "%s: %s; give a path to a regular file",
                    j->out, S_ISDIR(sb.st_mode) ? "is a directory"
                                                : "exists and is not a regular file");
        goto done;
    }
    /* Fail on an unwritable path before minutes of work, not after. */
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        e = hp_errf(eb, HP_ERR_IO, "%s: %s", j->out, strerror(errno));
        goto done;
    }
    fclose(f);
    e = add_meta(j, w, eb);
    if (e == HP_OK) {
        if (vocab_src) {
            e = hp_gguf_writer_copy_kvs(w, vocab_src, "tokenizer.");
            if (e != HP_OK)
                e = hp_errf(eb, e, "copying tokenizer.* from %s: %s",
                            j->vocab_path, hp_strerror(e));
        } else {
            e = synth_vocab(w, j->sh.vocab, eb);
        }
    }
    if (e == HP_OK && j->no_partial_utf8)
        e = find_partial(j, vocab_src, eb);
    if (e == HP_OK)
        e = add_weights(j, w, eb);
    if (e == HP_OK) {
        fprintf(stderr, "synth: writing %s (%.1f MB)\n", j->out,
                (double)j->bytes / 1e6);
        e = hp_gguf_writer_save(w, tmp, eb);
    }
    if (e == HP_OK && rename(tmp, j->out) != 0)
        e = hp_errf(eb, HP_ERR_IO, "%s: %s", j->out, strerror(errno));
    if (e != HP_OK)
        unlink(tmp);
done:
    hp_gguf_writer_free(w);
    free(tmp);
    return e;
}

/* ---- arguments ------------------------------------------------------------ */

enum {
    OPT_SHAPE = 256, OPT_TYPE, OPT_HIDDEN, OPT_LAYERS, OPT_HEADS, OPT_KV,
    OPT_FFN, OPT_VSIZE, OPT_CTX, OPT_VOCAB, OPT_NOPART, OPT_SEED
};

static const struct option synth_opts[] = {
    {"shape", required_argument, 0, OPT_SHAPE},
    {"type", required_argument, 0, OPT_TYPE},
    {"hidden", required_argument, 0, OPT_HIDDEN},
    {"layers", required_argument, 0, OPT_LAYERS},
    {"heads", required_argument, 0, OPT_HEADS},
    {"kv-heads", required_argument, 0, OPT_KV},
    {"ffn", required_argument, 0, OPT_FFN},
    {"vocab-size", required_argument, 0, OPT_VSIZE},
    {"ctx", required_argument, 0, OPT_CTX},
    {"vocab", required_argument, 0, OPT_VOCAB},
    {"no-partial-utf8", no_argument, 0, OPT_NOPART},
    {"seed", required_argument, 0, OPT_SEED},
    {"output", required_argument, 0, 'o'},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print one argument error and return exit status 2. */
static int bad(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "hotpath synth: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see 'hotpath synth --help')\n");
    va_end(ap);
    return 2;
}

/* Overrides, 0 when not given. */
typedef struct overrides {
    long hidden, layers, heads, kv_heads, ffn, vocab, ctx;
} overrides;

static int parse_args(int argc, char **argv, job *j, overrides *ov)
{
    const shape *base = NULL;
    bool have_type = false;
    unsigned long long u;
    opterr = 0;
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, ":ho:", synth_opts, NULL)) != -1) {
        long *dst = NULL, lo = 1, hi = 1 << 20;
        switch (ch) {
        case 'h':
            synth_usage(stdout);
            return -1;
        case 'o':
            if (!*optarg)
                return bad("-o needs a file name");
            j->out = optarg;
            break;
        case OPT_SHAPE:
            for (size_t i = 0; i < N_SHAPES; i++)
                if (!strcmp(optarg, shapes[i].name))
                    base = &shapes[i];
            if (!base)
                return bad("--shape '%s': expected smollm2-135m, llama3.2-1b "
                           "or tiny", optarg);
            break;
        case OPT_TYPE:
            if (!strcmp(optarg, "q8_0"))
                j->type = HP_DT_Q8_0;
            else if (!strcmp(optarg, "q4_0"))
                j->type = HP_DT_Q4_0;
            else if (!strcmp(optarg, "f16"))
                j->type = HP_DT_F16;
            else if (!strcmp(optarg, "f32"))
                j->type = HP_DT_F32;
            else
                return bad("--type '%s': expected q8_0, q4_0, f16 or f32",
                           optarg);
            have_type = true;
            break;
        case OPT_HIDDEN: dst = &ov->hidden; hi = 65536; break;
        case OPT_LAYERS: dst = &ov->layers; hi = 1024; break;
        case OPT_HEADS: dst = &ov->heads; hi = 1024; break;
        case OPT_KV: dst = &ov->kv_heads; hi = 1024; break;
        case OPT_FFN: dst = &ov->ffn; hi = 1 << 18; break;
        case OPT_VSIZE: dst = &ov->vocab; hi = 1 << 22; break;
        case OPT_CTX: dst = &ov->ctx; hi = 1 << 24; break;
        case OPT_VOCAB:
            j->vocab_path = optarg;
            break;
        case OPT_NOPART:
            j->no_partial_utf8 = true;
            break;
        case OPT_SEED:
            if (!hp_arg_u64(optarg, &u))
                return bad("--seed '%s': expected a non-negative integer",
                           optarg);
            j->seed = u;
            break;
        case ':':
            return bad("%s needs a value", argv[optind - 1]);
        default:
            return bad("unknown option '%s'", argv[optind - 1]);
        }
        if (dst && !hp_arg_long(optarg, lo, hi, dst))
            return bad("--%s '%s': expected an integer in %ld..%ld",
                       hp_arg_name(synth_opts, ch), optarg, lo, hi);
    }
    (void)have_type;
    if (optind < argc)
        return bad("unexpected argument '%s'", argv[optind]);
    if (!j->out)
        return bad("-o OUT.gguf is required");
    shape s = base ? *base
                   : (shape){"custom", 0, 0, 0, 0, 0, 0, 4096, 10000.0f};
    if (ov->hidden) s.hidden = ov->hidden;
    if (ov->layers) s.layers = ov->layers;
    if (ov->heads) s.heads = ov->heads;
    if (ov->kv_heads) s.kv_heads = ov->kv_heads;
    else if (!base) s.kv_heads = s.heads;
    if (ov->ffn) s.ffn = ov->ffn;
    if (ov->vocab) s.vocab = ov->vocab;
    if (ov->ctx) s.ctx = ov->ctx;
    if (!base && (!s.hidden || !s.layers || !s.heads || !s.ffn ||
                  (!s.vocab && !j->vocab_path)))
        return bad("--shape is required unless --hidden, --layers, --heads, "
                   "--ffn and --vocab-size (or --vocab) are all given");
    if (s.hidden % s.heads)
        return bad("hidden size %ld is not a multiple of %ld heads", s.hidden,
                   s.heads);
    if (s.kv_heads > s.heads || s.heads % s.kv_heads)
        return bad("%ld heads are not a multiple of %ld kv heads", s.heads,
                   s.kv_heads);
    if ((s.hidden / s.heads) % 2)
        return bad("head size %ld is odd (RoPE rotates pairs)",
                   s.hidden / s.heads);
    int64_t blk = hp_dtype_block_elems(j->type);
    if (s.hidden % blk || s.ffn % blk)
        return bad("--type %s needs hidden (%ld) and ffn (%ld) to be "
                   "multiples of %lld", hp_dtype_name(j->type), s.hidden,
                   s.ffn, (long long)blk);
    if (!j->vocab_path && s.vocab < 260)
        return bad("--vocab-size %ld: a synthetic vocabulary needs at least "
                   "260 tokens (3 special, 256 bytes, 1 word)", s.vocab);
    j->sh = s;
    return 0;
}

int hp_cmd_synth(int argc, char **argv)
{
    job j = {.type = HP_DT_Q8_0, .seed = 1};
    overrides ov = {0};
    int st = parse_args(argc, argv, &j, &ov);
    if (st < 0)
        return 0;
    if (st > 0)
        return st;
    hp_errbuf eb = {{0}};
    hp_gguf *vg = NULL;
    if (j.vocab_path) {
        if (hp_gguf_open(j.vocab_path, &vg, &eb) != HP_OK) {
            fprintf(stderr, "hotpath synth: --vocab: %s\n", eb.msg);
            return 2;
        }
        const hp_gguf_kv *tk = hp_gguf_find(vg, "tokenizer.ggml.tokens");
        if (!tk || tk->type != HP_GGUF_ARRAY || tk->arr_type != HP_GGUF_STRING ||
            tk->arr_n == 0) {
            fprintf(stderr, "hotpath synth: --vocab %s: no "
                    "tokenizer.ggml.tokens array\n", j.vocab_path);
            hp_gguf_close(vg);
            return 2;
        }
        if (ov.vocab && (uint64_t)ov.vocab != tk->arr_n) {
            fprintf(stderr, "hotpath synth: --vocab-size %ld disagrees with "
                    "%s (%llu tokens)\n", ov.vocab, j.vocab_path,
                    (unsigned long long)tk->arr_n);
            hp_gguf_close(vg);
            return 2;
        }
        j.sh.vocab = (long)tk->arr_n;
    }
    j.tty = isatty(STDERR_FILENO) == 1;
    j.t0 = now_s();
    j.last_print = -1e9;
    hp_err e = synth(&j, vg, &eb);
    hp_gguf_close(vg);
    free(j.zero_rows);
    if (e != HP_OK) {
        fprintf(stderr, "hotpath synth: %s\n", eb.msg);
        return 1;
    }
    const shape *s = &j.sh;
    double params = (double)s->vocab * (double)s->hidden +
        (double)s->layers * ((double)s->hidden * (double)s->hidden * 2 +
                             2.0 * (double)s->hidden * (double)(s->hidden / s->heads * s->kv_heads) +
                             3.0 * (double)s->hidden * (double)s->ffn + 2 * (double)s->hidden) +
        (double)s->hidden;
    fprintf(stderr,
            "synth: wrote %s: %s %s, hidden %ld, %ld layers, %ld/%ld heads, "
            "ffn %ld, vocab %ld%s, %.1f M params, %d tensors, %.1f MB in "
            "%.1f s", j.out, s->name, hp_dtype_name(j.type), s->hidden,
            s->layers, s->heads, s->kv_heads, s->ffn, s->vocab,
            j.vocab_path ? " (copied)" : " (synthetic)", params / 1e6,
            j.n_tensors, (double)j.bytes / 1e6, now_s() - j.t0);
    if (j.no_partial_utf8)
        fprintf(stderr, ", %ld partial-UTF-8 rows zeroed", j.n_zero);
    fprintf(stderr, "\n");
    return 0;
}
