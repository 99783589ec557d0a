/* cmd_detokenize.c: `hotpath detokenize`: print the text of token ids.
 *
 * The inverse of `hotpath tokenize`: loads only the vocabulary (GGUF,
 * tokenizer.json or a folder holding one) and writes the decoded bytes of
 * the ids given as arguments or read from a file (whitespace-separated),
 * exactly as hp_detokenize produces them, with no newline added unless
 * asked. Every id is checked against the vocabulary first, so a bad id is
 * an error that names it, never a crash or silent garbage. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "model/vocab.h"

static void detokenize_usage(FILE *f)
{
    fprintf(f,
        "usage: hotpath detokenize -m MODEL [options] ID...\n"
        "       hotpath detokenize -m MODEL [options] --file F\n\n"
        "Print the text of the token ids (decimal, separated by spaces,\n"
        "commas or newlines) given as arguments, in F, or on stdin when\n"
        "neither is given. Control tokens (BOS, EOS, ...) print nothing.\n"
        "The bytes are written as decoded, with no newline at the end\n"
        "unless -n is given.\n\n"
        "options:\n"
        "  -m, --model PATH    GGUF file, tokenizer.json, or a folder holding\n"
        "                      tokenizer.json (required)\n"
        "  -f, --file F        read the ids from F\n"
        "      --keep-space    keep the leading space a SentencePiece or\n"
        "                      WordPiece text starts with (removed by default)\n"
        "  -n, --newline       end the output with a newline\n"
        "  -h, --help          this help\n\n"
        "exit status: 0 ok, 1 unreadable model or file or an id out of range,\n"
        "2 bad usage or an id that is not a number\n");
}

static char *read_stream(FILE *f, size_t *n)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) {
                free(buf);
                return NULL;
            }
            buf[len] = '\0';
            *n = len;
            return buf;
        }
        if (len == cap) {
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb)
                free(buf);
            buf = nb;
            cap *= 2;
        }
    }
    return NULL;
}

/* Parse the ids of s into *ids (grown). Returns 0, or 2 on a bad number
 * (message printed). */
static int parse_ids(const char *s, int32_t **ids, int *n, int *cap)
{
    const char *p = s;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' ||
               *p == ',')
            p++;
        if (!*p)
            return 0;
        char *end;
        errno = 0;
        long long x = strtoll(p, &end, 10);
        if (end == p || errno ||
            (*end && !strchr(" \t\n\r,", *end)) || x < -2147483647LL ||
            x > 2147483647LL) {
            int l = (int)strcspn(p, " \t\n\r,");
            fprintf(stderr, "hotpath detokenize: '%.*s' is not a token id\n",
                    l > 40 ? 40 : l, p);
            return 2;
        }
        if (*n == *cap) {
            int nc = *cap ? *cap * 2 : 256;
            int32_t *nb = realloc(*ids, sizeof *nb * (size_t)nc);
            if (!nb) {
                fprintf(stderr, "hotpath detokenize: out of memory\n");
                return 1;
            }
            *ids = nb;
            *cap = nc;
        }
        (*ids)[(*n)++] = (int32_t)x;
        p = end;
    }
}

enum { OPT_KEEP_SPACE = 256 };

int hp_cmd_detokenize(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},
        {"file", required_argument, NULL, 'f'},
        {"keep-space", no_argument, NULL, OPT_KEEP_SPACE},
        {"newline", no_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *model = NULL, *file = NULL;
    bool keep_space = false, newline = false;

    optind = 0;
    for (;;) {
        int c = getopt_long(argc, argv, "m:f:nh", opts, NULL);
        if (c == -1)
            break;
        switch (c) {
        case 'm': model = optarg; break;
        case 'f': file = optarg; break;
        case 'n': newline = true; break;
        case OPT_KEEP_SPACE: keep_space = true; break;
        case 'h':
            detokenize_usage(stdout);
            return 0;
        default:
            detokenize_usage(stderr);
            return 2;
        }
    }
    if (!model) {
        fprintf(stderr, "hotpath detokenize: -m MODEL is required\n\n");
        detokenize_usage(stderr);
        return 2;
    }
    if (file && optind < argc) {
        fprintf(stderr, "hotpath detokenize: give ids or --file, not both\n");
        return 2;
    }

    int32_t *ids = NULL;
    int n = 0, cap = 0, rc = 0;
    if (optind < argc) {
        for (int i = optind; i < argc && rc == 0; i++)
            rc = parse_ids(argv[i], &ids, &n, &cap);
    } else {
        FILE *f = file ? fopen(file, "rb") : stdin;
        if (!f) {
            fprintf(stderr, "hotpath detokenize: %s: %s\n", file,
                    strerror(errno));
            return 1;
        }
        size_t len;
        char *text = read_stream(f, &len);
        if (file)
            fclose(f);
        if (!text) {
            fprintf(stderr, "hotpath detokenize: %s: cannot read\n",
                    file ? file : "stdin");
            return 1;
        }
        if (strlen(text) != len) {
            fprintf(stderr, "hotpath detokenize: %s: not a list of ids\n",
                    file ? file : "stdin");
            rc = 2;
        } else {
            rc = parse_ids(text, &ids, &n, &cap);
        }
        free(text);
    }
    if (rc != 0) {
        free(ids);
        return rc;
    }

    hp_errbuf eb = {{0}};
    hp_vocab *v = NULL;
    hp_err err = hp_vocab_open(model, &v, &eb);
    if (err != HP_OK) {
        fprintf(stderr, "hotpath detokenize: %s (%s)\n",
                eb.msg[0] ? eb.msg : model, hp_strerror(err));
        free(ids);
        return 1;
    }
    int32_t size = hp_vocab_size(v);
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= size) {
            fprintf(stderr,
                    "hotpath detokenize: id %d (position %d) is out of range: "
                    "the vocabulary has %d tokens (0..%d)\n",
                    (int)ids[i], i + 1, (int)size, (int)size - 1);
            free(ids);
            hp_vocab_free(v);
            return 1;
        }
    }
    size_t need = hp_detokenize(v, ids, n, !keep_space, NULL, 0);
    char *out = malloc(need + 1);
    if (!out) {
        fprintf(stderr, "hotpath detokenize: out of memory\n");
        rc = 1;
    } else {
        hp_detokenize(v, ids, n, !keep_space, out, need + 1);
        fwrite(out, 1, need, stdout);
        if (newline)
            putchar('\n');
    }
    free(out);
    free(ids);
    hp_vocab_free(v);
    return rc;
}
