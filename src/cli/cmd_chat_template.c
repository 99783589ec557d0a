/* cmd_chat_template.c: `hotpath chat-template`: render a model's chat
 * template for a messages file and print the prompt exactly (no newline
 * added), as Hugging Face's apply_chat_template(tokenize=False) would.
 *
 * The template comes from --chat-template FILE, else from MODEL: a GGUF
 * (only its metadata is read: tokenizer.chat_template, and the BOS/EOS
 * token texts from tokenizer.ggml.*; no weights are needed), a
 * tokenizer_config.json, or a Hugging Face folder (chat_template.jinja if
 * present, else tokenizer_config.json's chat_template). --segments prints each
 * segment on its own line as JSON ({"content": bool, "text": ...}) to show
 * which text came from the messages. */
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "engine/chat.h"
#include "engine/jinja.h"
#include "model/gguf.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: hotpath chat-template [-m MODEL] --messages FILE.json [options]\n\n"
        "Print the prompt MODEL's chat template renders for the messages.\n\n"
        "options:\n"
        "  -m, --model PATH          GGUF file, tokenizer_config.json, or a folder\n"
        "                            holding tokenizer_config.json\n"
        "      --messages FILE       JSON array of chat messages (required)\n"
        "      --tools FILE          JSON array of tools (OpenAI format)\n"
        "      --add-generation-prompt  end with the assistant turn's header\n"
        "      --chat-template FILE  use this Jinja template instead of MODEL's\n"
        "      --bos-token TEXT      bos_token (default: MODEL's)\n"
        "      --eos-token TEXT      eos_token (default: MODEL's)\n"
        "      --kwargs JSON         extra template variables, a JSON object\n"
        "      --segments            print segments as JSON lines\n"
        "  -h, --help                this help\n");
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t k = fread(buf + n, 1, cap - n, f);
        n += k;
        if (n < cap)
            break;
        cap *= 2;
        char *q = realloc(buf, cap + 1);
        if (!q) {
            free(buf);
            buf = NULL;
        }
        buf = q;
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        if (len)
            *len = n;
    }
    return buf;
}

/* A token given as "text" or {"content": "text"}. */
static char *token_text(json_t *t)
{
    if (json_is_object(t))
        t = json_object_get(t, "content");
    return json_is_string(t) ? strdup(json_string_value(t)) : NULL;
}

/* chat_template, bos and eos from a tokenizer_config.json. */
static int from_config(const char *path, char **tmpl, char **bos, char **eos)
{
    json_error_t je;
    json_t *root = json_load_file(path, JSON_DECODE_INT_AS_REAL, &je);
    if (!root || !json_is_object(root)) {
        fprintf(stderr, "hotpath chat-template: %s: not a JSON object (%s)\n",
                path, root ? "" : je.text);
        json_decref(root);
        return 1;
    }
    json_t *ct = json_object_get(root, "chat_template");
    if (json_is_array(ct)) {
        json_t *pick = NULL;
        for (size_t i = 0; i < json_array_size(ct); i++) {
            json_t *e = json_array_get(ct, i);
            json_t *name = json_object_get(e, "name");
            if (json_is_string(name) &&
                !strcmp(json_string_value(name), "default"))
                pick = json_object_get(e, "template");
        }
        ct = pick;
    }
    if (json_is_string(ct) && !*tmpl)
        *tmpl = strdup(json_string_value(ct));
    if (!*bos)
        *bos = token_text(json_object_get(root, "bos_token"));
    if (!*eos)
        *eos = token_text(json_object_get(root, "eos_token"));
    json_decref(root);
    return 0;
}

static char *token_from_gguf(const hp_gguf *g, const char *id_key)
{
    uint32_t id;
    const hp_gguf_kv *kv = hp_gguf_find(g, "tokenizer.ggml.tokens");
    if (!hp_gguf_get_u32(g, id_key, &id) || !kv || kv->type != HP_GGUF_ARRAY ||
        kv->arr_type != HP_GGUF_STRING || id >= kv->arr_n)
        return NULL;
    hp_str *all = malloc(kv->arr_n * sizeof *all);
    char *s = NULL;
    if (all && hp_gguf_arr_strs(kv, all))
        s = strndup(all[id].ptr, all[id].len);
    free(all);
    return s;
}

static int from_gguf(const char *path, char **tmpl, char **bos, char **eos)
{
    hp_errbuf eb = {{0}};
    hp_gguf *g = NULL;
    if (hp_gguf_open(path, &g, &eb) != HP_OK) {
        fprintf(stderr, "hotpath chat-template: cannot open '%s': %s\n", path,
                eb.msg);
        return 1;
    }
    hp_str s;
    if (!*tmpl && hp_gguf_get_str(g, "tokenizer.chat_template", &s))
        *tmpl = strndup(s.ptr, s.len);
    if (!*bos)
        *bos = token_from_gguf(g, "tokenizer.ggml.bos_token_id");
    if (!*eos)
        *eos = token_from_gguf(g, "tokenizer.ggml.eos_token_id");
    hp_gguf_close(g);
    return 0;
}

static int load_model(const char *path, char **tmpl, char **bos, char **eos)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "hotpath chat-template: cannot open '%s'\n", path);
        return 1;
    }
    if (S_ISDIR(st.st_mode)) {
        /* newer checkpoints keep the template in chat_template.jinja */
        char cfg[4096];
        snprintf(cfg, sizeof cfg, "%s/chat_template.jinja", path);
        if (!*tmpl)
            *tmpl = slurp(cfg, NULL);
        snprintf(cfg, sizeof cfg, "%s/tokenizer_config.json", path);
        return from_config(cfg, tmpl, bos, eos);
    }
    size_t n = strlen(path);
    if (n >= 5 && !strcmp(path + n - 5, ".json"))
        return from_config(path, tmpl, bos, eos);
    return from_gguf(path, tmpl, bos, eos);
}

static json_t *load_json(const char *path, const char *what)
{
    json_error_t je;
    json_t *j = json_load_file(path, JSON_DECODE_ANY, &je);
    if (!j)
        fprintf(stderr, "hotpath chat-template: %s '%s': %s (line %d)\n",
                what, path, je.text, je.line);
    return j;
}

static void print_segments(const hp_jinja_out *o)
{
    for (int i = 0; i < o->n_segs; i++) {
        json_t *j = json_pack("{s:b, s:s%}", "content", o->segs[i].content,
                              "text", o->segs[i].text, o->segs[i].len);
        char *s = j ? json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
        if (s)
            printf("%s\n", s);
        free(s);
        json_decref(j);
    }
}

int hp_cmd_chat_template(int argc, char **argv)
{
    enum { O_MSGS = 1000, O_TOOLS, O_GEN, O_TMPL, O_BOS, O_EOS, O_KW, O_SEG };
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},
        {"messages", required_argument, NULL, O_MSGS},
        {"tools", required_argument, NULL, O_TOOLS},
        {"add-generation-prompt", no_argument, NULL, O_GEN},
        {"chat-template", required_argument, NULL, O_TMPL},
        {"bos-token", required_argument, NULL, O_BOS},
        {"eos-token", required_argument, NULL, O_EOS},
        {"kwargs", required_argument, NULL, O_KW},
        {"segments", no_argument, NULL, O_SEG},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *model = NULL, *msgs_path = NULL, *tools_path = NULL;
    const char *tmpl_path = NULL, *kwargs_text = NULL;
    char *bos = NULL, *eos = NULL, *tmpl = NULL;
    bool gen = false, segments = false;
    int c, rc = 1;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "m:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            model = optarg;
            break;
        case O_MSGS:
            msgs_path = optarg;
            break;
        case O_TOOLS:
            tools_path = optarg;
            break;
        case O_GEN:
            gen = true;
            break;
        case O_TMPL:
            tmpl_path = optarg;
            break;
        case O_BOS:
            free(bos);
            bos = strdup(optarg);
            break;
        case O_EOS:
            free(eos);
            eos = strdup(optarg);
            break;
        case O_KW:
            kwargs_text = optarg;
            break;
        case O_SEG:
            segments = true;
            break;
        case 'h':
            usage(stdout);
            free(bos);
            free(eos);
            return 0;
        default:
            fprintf(stderr, "hotpath chat-template: unknown or incomplete "
                            "option '%s'\n\n", argv[optind - 1]);
            usage(stderr);
            free(bos);
            free(eos);
            return 2;
        }
    }
    if (optind < argc || !msgs_path || (!model && !tmpl_path)) {
        fprintf(stderr, "hotpath chat-template: %s\n\n",
                optind < argc ? "unexpected argument"
                : !msgs_path  ? "--messages FILE is required"
                              : "give -m MODEL or --chat-template FILE");
        usage(stderr);
        free(bos);
        free(eos);
        return 2;
    }
    json_t *msgs = NULL, *tools = NULL, *kwargs = NULL;
    hp_jinja *t = NULL;
    hp_jinja_out out = {0};
    hp_errbuf eb = {{0}};
    if (tmpl_path && !(tmpl = slurp(tmpl_path, NULL))) {
        fprintf(stderr, "hotpath chat-template: cannot read '%s'\n", tmpl_path);
        goto done;
    }
    if (model && load_model(model, &tmpl, &bos, &eos) != 0)
        goto done;
    if (!tmpl) {
        fprintf(stderr, "hotpath chat-template: '%s' has no chat template; "
                        "give --chat-template FILE\n", model);
        goto done;
    }
    if (!(msgs = load_json(msgs_path, "messages")))
        goto done;
    if (tools_path && !(tools = load_json(tools_path, "tools")))
        goto done;
    if (kwargs_text) {
        json_error_t je;
        kwargs = json_loads(kwargs_text, 0, &je);
        if (!json_is_object(kwargs)) {
            fprintf(stderr, "hotpath chat-template: --kwargs must be a JSON "
                            "object\n");
            goto done;
        }
    }
    if (hp_jinja_parse(tmpl, strlen(tmpl), &t, &eb) != HP_OK) {
        fprintf(stderr, "hotpath chat-template: %s\n", eb.msg);
        goto done;
    }
    if (hp_chat_render_jinja(t, msgs, tools, gen, bos, eos, kwargs, &out,
                             &eb) != HP_OK) {
        fprintf(stderr, "hotpath chat-template: %s\n", eb.msg);
        goto done;
    }
    if (segments)
        print_segments(&out);
    else
        fwrite(out.buf, 1, out.len, stdout);
    fflush(stdout);
    rc = 0;
done:
    hp_jinja_out_free(&out);
    hp_jinja_free(t);
    json_decref(msgs);
    json_decref(tools);
    json_decref(kwargs);
    free(tmpl);
    free(bos);
    free(eos);
    return rc;
}
