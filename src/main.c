/* main.c: the hotpath binary: dispatch to a subcommand. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

typedef struct subcmd {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} subcmd;

static const subcmd cmds[] = {
    {"serve", hp_cmd_serve, "serve a model over an OpenAI-compatible HTTP API"},
    {"run", hp_cmd_run, "generate a completion for a prompt on the command line"},
    {"tokenize", hp_cmd_tokenize, "print the token ids of a text"},
    {"detokenize", hp_cmd_detokenize, "print the text of token ids"},
    {"bench", hp_cmd_bench, "load-test an OpenAI-compatible server"},
    {"synth", hp_cmd_synth, "write a random-weight llama GGUF of a given shape"},
    {"chat-template", hp_cmd_chat_template, "print the prompt a model's chat template renders"},
    {"config", hp_cmd_config, "validate a gateway config file (config check FILE)"},
    {"keys", hp_cmd_keys, "create, list and revoke the gateway's virtual API keys"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: hotpath <command> [options]\n\n"
               "Serve and run open-weight LLMs (GGUF) on the CPU.\n\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        fprintf(f, "  %-10s %s\n", cmds[i].name, cmds[i].help);
    fprintf(f, "\nRun 'hotpath <command> --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("hotpath 0.1.0\n");
        return 0;
    }
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(argv[1], cmds[i].name))
            return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "hotpath: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
