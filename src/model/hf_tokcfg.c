/* hf_tokcfg.c: tokenizer_config.json -> hp_hf_tokcfg, behind hf_tokcfg.h.
 *
 * Owns the strings it copies out of the JSON. Knows the key names and the
 * shapes transformers writes them in (plain strings, AddedToken objects,
 * named template lists); nothing of tokenization. */
#include "model/hf_tokcfg.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Chat templates run to tens of KB; the whole file is far below this. */
#define TOKCFG_MAX_BYTES (16u * 1024u * 1024u)

void hp_hf_tokcfg_free(hp_hf_tokcfg *t)
{
    if (t == NULL)
        return;
    free(t->chat_template);
    free(t->bos_token);
    free(t->eos_token);
    free(t->unk_token);
    free(t->pad_token);
    free(t);
}

static hp_err dup_to(const char *s, char **out, const char *fname,
                     hp_errbuf *eb)
{
    *out = strdup(s);
    if (*out == NULL)
        return hp_errf(eb, HP_ERR_NOMEM, "%s: out of memory", fname);
    return HP_OK;
}

/* A token: string, null, or {"content": string, ...}. */
static hp_err get_token(json_t *root, const char *key, char **out,
                        const char *fname, hp_errbuf *eb)
{
    json_t *v = json_object_get(root, key);
    if (v == NULL || json_is_null(v))
        return HP_OK;
    if (json_is_object(v))
        v = json_object_get(v, "content");
    if (!json_is_string(v))
        return hp_errf(eb, HP_ERR_FORMAT, "%s: %s: expected a string or "
                       "{\"content\": string}", fname, key);
    return dup_to(json_string_value(v), out, fname, eb);
}

static hp_err get_flag(json_t *root, const char *key, int *out,
                       const char *fname, hp_errbuf *eb)
{
    json_t *v = json_object_get(root, key);
    *out = -1;
    if (v == NULL || json_is_null(v))
        return HP_OK;
    if (!json_is_boolean(v))
        return hp_errf(eb, HP_ERR_FORMAT, "%s: %s: expected true or false",
                       fname, key);
    *out = json_is_true(v);
    return HP_OK;
}

/* chat_template: string, null, or [{"name", "template"}] -> "default". */
static hp_err get_template(json_t *v, char **out, const char *fname,
                           hp_errbuf *eb)
{
    if (v == NULL || json_is_null(v))
        return HP_OK;
    if (json_is_string(v))
        return dup_to(json_string_value(v), out, fname, eb);
    if (!json_is_array(v))
        return hp_errf(eb, HP_ERR_FORMAT, "%s: chat_template: expected a "
                       "string or a list of {name, template}", fname);
    size_t i;
    json_t *it;
    json_array_foreach(v, i, it) {
        json_t *n = json_object_get(it, "name");
        json_t *t = json_object_get(it, "template");
        if (!json_is_string(n) || !json_is_string(t))
            return hp_errf(eb, HP_ERR_FORMAT, "%s: chat_template[%zu]: "
                           "expected {name, template} strings", fname, i);
        if (strcmp(json_string_value(n), "default") == 0)
            return dup_to(json_string_value(t), out, fname, eb);
    }
    return HP_OK; /* named templates only, none the default: no template */
}

hp_err hp_hf_tokcfg_parse(const char *json, size_t len, const char *fname,
                          hp_hf_tokcfg **out, hp_errbuf *eb)
{
    if (fname == NULL)
        fname = "tokenizer_config.json";
    if (out == NULL || json == NULL)
        return hp_errf(eb, HP_ERR_INVALID, "%s: no input", fname);
    *out = NULL;
    json_error_t je;
    /* Ints as reals: model_max_length is often 1e30 written as an integer,
     * which jansson's int64 decoding refuses. We read no integers. */
    json_t *root = json_loadb(json, len, JSON_DECODE_INT_AS_REAL, &je);
    if (root == NULL)
        return hp_errf(eb, HP_ERR_FORMAT, "%s: not valid JSON: %s (line %d)",
                       fname, je.text, je.line);
    hp_err e;
    hp_hf_tokcfg *t = calloc(1, sizeof *t);
    if (t == NULL) {
        e = hp_errf(eb, HP_ERR_NOMEM, "%s: out of memory", fname);
    } else if (!json_is_object(root)) {
        e = hp_errf(eb, HP_ERR_FORMAT, "%s: not a JSON object", fname);
    } else if ((e = get_template(json_object_get(root, "chat_template"),
                                 &t->chat_template, fname, eb)) == HP_OK &&
               (e = get_token(root, "bos_token", &t->bos_token, fname,
                              eb)) == HP_OK &&
               (e = get_token(root, "eos_token", &t->eos_token, fname,
                              eb)) == HP_OK &&
               (e = get_token(root, "unk_token", &t->unk_token, fname,
                              eb)) == HP_OK &&
               (e = get_token(root, "pad_token", &t->pad_token, fname,
                              eb)) == HP_OK &&
               (e = get_flag(root, "add_bos_token", &t->add_bos_token, fname,
                             eb)) == HP_OK) {
        e = get_flag(root, "add_eos_token", &t->add_eos_token, fname, eb);
    }
    json_decref(root);
    if (e != HP_OK) {
        hp_hf_tokcfg_free(t);
        return e;
    }
    *out = t;
    return HP_OK;
}

/* Whole file into a NUL-terminated buffer (owned by the caller). */
static hp_err slurp(const char *path, const char *base, char **buf,
                    size_t *len, hp_errbuf *eb)
{
    *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return hp_errf(eb, errno == ENOENT ? HP_ERR_NOT_FOUND : HP_ERR_IO,
                       "%s: cannot open: %s", base, strerror(errno));
    char *b = malloc(TOKCFG_MAX_BYTES + 1);
    if (b == NULL) {
        fclose(f);
        return hp_errf(eb, HP_ERR_NOMEM, "%s: out of memory", base);
    }
    size_t n = fread(b, 1, TOKCFG_MAX_BYTES + 1, f);
    bool err = ferror(f);
    fclose(f);
    if (err || n > TOKCFG_MAX_BYTES) {
        free(b);
        return hp_errf(eb, err ? HP_ERR_IO : HP_ERR_TOO_LARGE, "%s: %s",
                       base, err ? "read failed" : "file too large");
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    return HP_OK;
}

/* Template from chat_template.jinja or chat_template.json in dir, if any. */
static hp_err side_template(const char *dir, hp_hf_tokcfg *t, hp_errbuf *eb)
{
    char path[4096];
    char *buf;
    size_t n;
    snprintf(path, sizeof path, "%s/chat_template.jinja", dir);
    hp_err e = slurp(path, "chat_template.jinja", &buf, &n, eb);
    if (e == HP_OK) {
        if (strlen(buf) != n) {
            free(buf);
            return hp_errf(eb, HP_ERR_FORMAT, "chat_template.jinja: holds a "
                           "NUL byte");
        }
        t->chat_template = buf;
        return HP_OK;
    }
    if (e != HP_ERR_NOT_FOUND)
        return e;
    snprintf(path, sizeof path, "%s/chat_template.json", dir);
    e = slurp(path, "chat_template.json", &buf, &n, eb);
    if (e == HP_ERR_NOT_FOUND)
        return HP_OK;
    if (e != HP_OK)
        return e;
    json_error_t je;
    json_t *root = json_loadb(buf, n, JSON_DECODE_INT_AS_REAL, &je);
    free(buf);
    if (root == NULL)
        return hp_errf(eb, HP_ERR_FORMAT, "chat_template.json: not valid "
                       "JSON: %s (line %d)", je.text, je.line);
    e = get_template(json_object_get(root, "chat_template"),
                     &t->chat_template, "chat_template.json", eb);
    json_decref(root);
    return e;
}

hp_err hp_hf_tokcfg_load(const char *path, hp_hf_tokcfg **out,
                         hp_errbuf *eb)
{
    if (out == NULL || path == NULL)
        return hp_errf(eb, HP_ERR_INVALID, "no tokenizer config path");
    *out = NULL;
    char file[4096];
    const char *dir = NULL;
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        snprintf(file, sizeof file, "%s/tokenizer_config.json", path);
        dir = path;
        path = file;
    }
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    char *buf;
    size_t n;
    hp_err e = slurp(path, base, &buf, &n, eb);
    if (e != HP_OK)
        return e;
    hp_hf_tokcfg *t;
    e = hp_hf_tokcfg_parse(buf, n, base, &t, eb);
    free(buf);
    if (e != HP_OK)
        return e;
    if (dir != NULL && t->chat_template == NULL) {
        e = side_template(dir, t, eb);
        if (e != HP_OK) {
            hp_hf_tokcfg_free(t);
            return e;
        }
    }
    *out = t;
    return HP_OK;
}
