/* cmd_tokenize.c: `hotpath tokenize`: print the token ids of a text, or of
 * every case of a test-vector file.
 *
 * Loads only the vocabulary (never the weights): GGUF metadata, so it
 * works on vocabulary-only files such as shared/vocab/ggml-vocab-*.gguf,
 * or a Hugging Face tokenizer.json (or a folder holding one).
 * With --file it reproduces the .out format of those vectors exactly, which
 * makes `diff` the tokenizer conformance test. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "model/vocab.h"

/* Case separator of the .inp vector files; each one ends a case. */
#define CASE_SEP "\n__ggml_vocab_test__\n"

static void tokenize_usage(FILE *f)
{
    fprintf(f,
        "usage: hotpath tokenize -m MODEL [options] [TEXT...]\n"
        "       hotpath tokenize -m MODEL --file CASES.inp\n\n"
        "Print the token ids of TEXT (words are joined by single spaces), of\n"
        "-p TEXT, or, when neither is given, of all of stdin (bytes kept as\n"
        "they are, trailing newline included), on one line separated by\n"
        "spaces. BOS is prepended when the vocabulary asks for it\n"
        "(tokenizer.ggml.add_bos_token), and EOS appended when it asks for\n"
        "that too (add_eos_token; BERT: [CLS] ... [SEP]).\n\n"
        "With --file, F holds test cases in the shared/vocab .inp format:\n"
        "each case is the text before a line '__ggml_vocab_test__' (cases are\n"
        "split on \"\\n__ggml_vocab_test__\\n\"; text after the last separator\n"
        "is one more case if not empty). One line is printed per case in the\n"
        ".out format: each id preceded by a space, an empty line for no ids.\n"
        "Cases are tokenized WITHOUT BOS (the .out convention) unless --bos.\n\n"
        "Only the vocabulary is loaded, so vocabulary-only GGUF files work.\n"
        "MODEL may also be a Hugging Face tokenizer.json, or a folder holding\n"
        "one (and optionally tokenizer_config.json).\n\n"
        "options:\n"
        "  -m, --model PATH    GGUF file holding tokenizer.ggml.*, or a\n"
        "                      tokenizer.json / folder with one (required)\n"
        "  -p, --prompt TEXT   text to tokenize\n"
        "  -f, --file F        tokenize every case of F, one output line each\n"
        "      --bos           always prepend BOS (if the vocabulary has one;\n"
        "                      also EOS where the vocabulary appends it)\n"
        "      --no-bos        never prepend BOS\n"
        "      --special       parse special-token texts (e.g. <s>) into their ids;\n"
        "                      without it they are tokenized as plain text\n"
        "  -h, --help          this help\n\n"
        "exit status: 0 ok, 1 unreadable or corrupt model or file, 2 bad usage\n");
}

/* Read all of f into a malloc'd buffer; NULL on error. */
static char *read_all(FILE *f, size_t *n)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) {
                free(buf);
                return NULL;
            }
            *n = len;
            return buf;
        }
        if (len == cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb)
                free(buf);
            buf = nb;
            cap *= 2;
        }
    }
    return NULL;
}

static char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = read_all(f, n);
    fclose(f);
    return buf;
}

/* Tokenize into *ids (grown as needed). Returns the count, -1 on OOM. */
static int encode(const hp_vocab *v, const char *text, size_t len, bool bos,
                  bool special, int32_t **ids, int *cap)
{
    for (;;) {
        int n = hp_tokenize(v, text, len, bos, special, *ids, *cap);
        if (n < 0 || n <= *cap)
            return n;
        int32_t *nb = realloc(*ids, sizeof *nb * (size_t)n);
        if (!nb)
            return -1;
        *ids = nb;
        *cap = n;
    }
}

/* Load the vocabulary of path (GGUF, tokenizer.json or a folder holding
 * one), printing any error with the file's name. */
static hp_vocab *load_vocab(const char *path)
{
    hp_errbuf eb = {{0}};
    hp_vocab *v = NULL;
    hp_err err = hp_vocab_open(path, &v, &eb);
    if (err != HP_OK) {
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        if (*base && strstr(eb.msg, base))
            fprintf(stderr, "hotpath tokenize: %s (%s)\n", eb.msg,
                    hp_strerror(err));
        else
            fprintf(stderr, "hotpath tokenize: %s: %s (%s)\n", path,
                    eb.msg[0] ? eb.msg : "cannot load vocabulary",
                    hp_strerror(err));
        return NULL;
    }
    return v;
}

/* Print one id line: ".out" style puts a space before every id. */
static void print_ids(const int32_t *ids, int n, bool out_style)
{
    for (int i = 0; i < n; i++) {
        if (out_style || i > 0)
            putchar(' ');
        printf("%d", (int)ids[i]);
    }
    putchar('\n');
}

/* Tokenize each case of an .inp file. */
static int run_cases(const hp_vocab *v, const char *path, bool bos,
                     bool special)
{
    size_t n;
    char *buf = read_file(path, &n);
    if (!buf) {
        fprintf(stderr, "hotpath tokenize: %s: cannot read file\n", path);
        return 1;
    }
    int32_t *ids = NULL;
    int cap = 0, rc = 0;
    const size_t seplen = strlen(CASE_SEP);
    size_t pos = 0;
    while (pos < n) {
        const char *hit = memmem(buf + pos, n - pos, CASE_SEP, seplen);
        size_t end = hit ? (size_t)(hit - buf) : n;
        int k = encode(v, buf + pos, end - pos, bos, special, &ids, &cap);
        if (k < 0) {
            fprintf(stderr, "hotpath tokenize: out of memory\n");
            rc = 1;
            break;
        }
        print_ids(ids, k, true);
        if (!hit)
            break;
        pos = end + seplen;
    }
    free(ids);
    free(buf);
    return rc;
}

enum { OPT_BOS = 256, OPT_NO_BOS, OPT_SPECIAL };

int hp_cmd_tokenize(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},
        {"prompt", required_argument, NULL, 'p'},
        {"file", required_argument, NULL, 'f'},
        {"bos", no_argument, NULL, OPT_BOS},
        {"no-bos", no_argument, NULL, OPT_NO_BOS},
        {"special", no_argument, NULL, OPT_SPECIAL},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *model = NULL, *prompt = NULL, *file = NULL;
    int bos_mode = 0; /* 0 = vocabulary default, 1 = always, -1 = never */
    bool special = false;

    optind = 0; /* full getopt reset: another command may have parsed */
    for (;;) {
        int c = getopt_long(argc, argv, "m:p:f:h", opts, NULL);
        if (c == -1)
            break;
        switch (c) {
        case 'm': model = optarg; break;
        case 'p': prompt = optarg; break;
        case 'f': file = optarg; break;
        case OPT_BOS: bos_mode = 1; break;
        case OPT_NO_BOS: bos_mode = -1; break;
        case OPT_SPECIAL: special = true; break;
        case 'h':
            tokenize_usage(stdout);
            return 0;
        default:
            tokenize_usage(stderr);
            return 2;
        }
    }
    if (!model) {
        fprintf(stderr, "hotpath tokenize: -m MODEL is required\n\n");
        tokenize_usage(stderr);
        return 2;
    }
    if ((file && (prompt || optind < argc)) || (prompt && optind < argc)) {
        fprintf(stderr, "hotpath tokenize: give one of --file, -p TEXT or "
                        "TEXT\n");
        return 2;
    }

    hp_vocab *v = load_vocab(model);
    if (!v)
        return 1;
    if (file) {
        int rc = run_cases(v, file, bos_mode == 1, special);
        hp_vocab_free(v);
        return rc;
    }

    char *text = NULL;
    size_t len = 0;
    if (prompt) {
        len = strlen(prompt);
        text = malloc(len + 1);
        if (text)
            memcpy(text, prompt, len + 1);
    } else if (optind < argc) {
        for (int i = optind; i < argc; i++)
            len += strlen(argv[i]) + 1;
        text = malloc(len);
        len = 0;
        for (int i = optind; text && i < argc; i++) {
            size_t l = strlen(argv[i]);
            if (i > optind)
                text[len++] = ' ';
            memcpy(text + len, argv[i], l);
            len += l;
        }
    } else {
        text = read_all(stdin, &len);
        if (!text) {
            fprintf(stderr, "hotpath tokenize: cannot read stdin\n");
            hp_vocab_free(v);
            return 1;
        }
    }
    if (!text) {
        fprintf(stderr, "hotpath tokenize: out of memory\n");
        hp_vocab_free(v);
        return 1;
    }

    bool bos = bos_mode == 1 || (bos_mode == 0 && hp_vocab_add_bos(v));
    int32_t *ids = NULL;
    int cap = 0;
    int n = encode(v, text, len, bos, special, &ids, &cap);
    int rc = 0;
    if (n < 0) {
        fprintf(stderr, "hotpath tokenize: out of memory\n");
        rc = 1;
    } else {
        print_ids(ids, n, false);
    }
    free(ids);
    free(text);
    hp_vocab_free(v);
    return rc;
}
