/* mksafetensors.c: write a safetensors file, or a sharded set with its
 * index JSON, holding seeded random tensors, for the safetensors tests and
 * for hand-made Hugging Face-style fixtures.
 *
 *   mksafetensors [--seed S] [--shards K] OUT NAME=DTYPE[d0,d1,...] ...
 *
 * K = 1 (default): OUT is the .safetensors file. K > 1: OUT is a directory
 * (created if needed) receiving model-0000i-of-0000K.safetensors and
 * model.safetensors.index.json; tensors go to shards in contiguous runs in
 * argument order. DTYPE is any safetensors name (F32, BF16, I64, ...);
 * "[]" is a scalar. Headers are padded with spaces to a multiple of 8 and
 * tensors laid out back to back in argument order, as the reference writer
 * does, with __metadata__ {"format": "pt"}.
 *
 * Values (tests regenerate them): one splitmix64 stream seeded with S runs
 * over all tensors in argument order, one draw per element. Float types
 * store v = ((int64)(draw >> 40) - 2^23) / 2^23 (exact in f32) converted
 * with hp_f32_to_f16 / hp_f32_to_bf16; every other type stores the low
 * elem_size bytes of the draw (BOOL: draw & 1). */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kernels/kernels.h"

#define MAX_T 4096
#define MAX_D 8

typedef struct spec {
    char name[256];
    char dtype[16];
    int size;   /* bytes per element */
    int nd;
    long long shape[MAX_D];
    long long n;
    unsigned char *data; /* owns */
} spec;

static uint64_t next_u64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int dtype_size(const char *d)
{
    static const struct { const char *n; int s; } tab[] = {
        {"BOOL", 1}, {"U8", 1}, {"I8", 1}, {"F8_E5M2", 1}, {"F8_E4M3", 1},
        {"F8_E8M0", 1}, {"I16", 2}, {"U16", 2}, {"F16", 2}, {"BF16", 2},
        {"I32", 4}, {"U32", 4}, {"F32", 4}, {"I64", 8}, {"U64", 8},
        {"F64", 8},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (strcmp(tab[i].n, d) == 0)
            return tab[i].s;
    return 0;
}

/* NAME=DTYPE[d0,d1,...] */
static int parse_spec(const char *arg, spec *s)
{
    const char *eq = strrchr(arg, '=');
    const char *lb = eq ? strchr(eq, '[') : NULL;
    if (eq == NULL || lb == NULL || eq == arg ||
        (size_t)(eq - arg) >= sizeof s->name ||
        (size_t)(lb - eq - 1) >= sizeof s->dtype)
        return -1;
    memcpy(s->name, arg, (size_t)(eq - arg));
    s->name[eq - arg] = '\0';
    memcpy(s->dtype, eq + 1, (size_t)(lb - eq - 1));
    s->dtype[lb - eq - 1] = '\0';
    s->size = dtype_size(s->dtype);
    if (s->size == 0)
        return -1;
    const char *p = lb + 1;
    s->nd = 0;
    s->n = 1;
    while (*p != ']') {
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || v < 0 || v > (1ll << 31) || s->nd == MAX_D)
            return -1;
        s->shape[s->nd++] = v;
        s->n *= v;
        p = end;
        if (*p == ',')
            p++;
        else if (*p != ']')
            return -1;
    }
    return p[1] == '\0' ? 0 : -1;
}

static void fill(spec *s, uint64_t *rng)
{
    s->data = malloc((size_t)(s->n * s->size) + 1);
    if (s->data == NULL) {
        fprintf(stderr, "mksafetensors: out of memory\n");
        exit(1);
    }
    bool f32 = strcmp(s->dtype, "F32") == 0;
    bool f16 = strcmp(s->dtype, "F16") == 0;
    bool bf16 = strcmp(s->dtype, "BF16") == 0;
    bool boolean = strcmp(s->dtype, "BOOL") == 0;
    for (long long i = 0; i < s->n; i++) {
        uint64_t r = next_u64(rng);
        unsigned char *dst = s->data + i * s->size;
        float v = (float)((int64_t)(r >> 40) - (1 << 23)) / (float)(1 << 23);
        if (f32) {
            memcpy(dst, &v, 4);
        } else if (f16 || bf16) {
            uint16_t h = f16 ? hp_f32_to_f16(v) : hp_f32_to_bf16(v);
            memcpy(dst, &h, 2);
        } else {
            if (boolean)
                r &= 1;
            memcpy(dst, &r, (size_t)s->size); /* little-endian low bytes */
        }
    }
}

/* One shard file holding specs [a, b). */
static int write_file(const char *path, spec *ss, int a, int b)
{
    json_t *h = json_object();
    json_t *meta = json_object();
    json_object_set_new(meta, "format", json_string("pt"));
    json_object_set_new(h, "__metadata__", meta);
    long long off = 0;
    for (int i = a; i < b; i++) {
        json_t *t = json_object();
        json_t *shape = json_array();
        for (int d = 0; d < ss[i].nd; d++)
            json_array_append_new(shape, json_integer(ss[i].shape[d]));
        long long nb = ss[i].n * ss[i].size;
        json_object_set_new(t, "dtype", json_string(ss[i].dtype));
        json_object_set_new(t, "shape", shape);
        json_object_set_new(t, "data_offsets",
                            json_pack("[II]", off, off + nb));
        json_object_set_new(h, ss[i].name, t);
        off += nb;
    }
    char *txt = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(h);
    if (txt == NULL)
        return -1;
    size_t len = strlen(txt);
    size_t padded = (len + 7) / 8 * 8;
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        fprintf(stderr, "mksafetensors: %s: %s\n", path, strerror(errno));
        free(txt);
        return -1;
    }
    uint64_t hl = padded;
    fwrite(&hl, 8, 1, f);
    fwrite(txt, 1, len, f);
    for (size_t i = len; i < padded; i++)
        fputc(' ', f);
    for (int i = a; i < b; i++)
        fwrite(ss[i].data, 1, (size_t)(ss[i].n * ss[i].size), f);
    free(txt);
    return fclose(f) == 0 ? 0 : -1;
}

static int usage(void)
{
    fprintf(stderr, "usage: mksafetensors [--seed S] [--shards K] OUT "
                    "NAME=DTYPE[d0,...] ...\n");
    return 2;
}

int main(int argc, char **argv)
{
    uint64_t seed = 1;
    int shards = 1, i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        if (i + 1 >= argc)
            return usage();
        if (strcmp(argv[i], "--seed") == 0)
            seed = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--shards") == 0)
            shards = (int)strtol(argv[i + 1], NULL, 10);
        else
            return usage();
    }
    if (i + 2 > argc || shards < 1 || shards > 99999)
        return usage();
    const char *out = argv[i++];
    int n = argc - i;
    if (n > MAX_T || n < shards)
        return usage();
    spec *ss = calloc((size_t)n, sizeof *ss);
    if (ss == NULL)
        return 1;
    uint64_t rng = seed;
    for (int k = 0; k < n; k++) {
        if (parse_spec(argv[i + k], &ss[k]) != 0) {
            fprintf(stderr, "mksafetensors: bad tensor spec %s\n",
                    argv[i + k]);
            return 2;
        }
        fill(&ss[k], &rng);
    }
    int rc = 0;
    if (shards == 1) {
        rc = write_file(out, ss, 0, n);
    } else {
        if (mkdir(out, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, "mksafetensors: %s: %s\n", out, strerror(errno));
            return 1;
        }
        json_t *wm = json_object();
        long long total = 0;
        for (int s = 0; s < shards && rc == 0; s++) {
            int a = n * s / shards, b = n * (s + 1) / shards;
            char name[64], path[4096];
            snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors",
                     s + 1, shards);
            snprintf(path, sizeof path, "%s/%s", out, name);
            rc = write_file(path, ss, a, b);
            for (int k = a; k < b; k++) {
                json_object_set_new(wm, ss[k].name, json_string(name));
                total += ss[k].n * ss[k].size;
            }
        }
        json_t *idx = json_pack("{s:{s:I},s:o}", "metadata", "total_size",
                                total, "weight_map", wm);
        char path[4096];
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", out);
        if (rc == 0 && json_dump_file(idx, path, JSON_INDENT(2) |
                                      JSON_PRESERVE_ORDER) != 0)
            rc = -1;
        json_decref(idx);
    }
    for (int k = 0; k < n; k++)
        free(ss[k].data);
    free(ss);
    if (rc != 0)
        fprintf(stderr, "mksafetensors: write failed\n");
    return rc == 0 ? 0 : 1;
}
