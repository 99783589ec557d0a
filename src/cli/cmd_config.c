/* cmd_config.c: `hotpath config check FILE`: validate a gateway config.
 *
 * Loads the YAML file with hp_gwconf_load and prints either a one-line
 * summary or the loader's "FILE:LINE: key: message" error, so an editor or
 * CI job can jump to the line. Serves nothing and reads no environment: an
 * api_key_env is only a name here, and no secret is ever printed. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "gateway/config.h"

static void config_usage(FILE *f)
{
    fprintf(f,
        "usage: hotpath config check FILE\n\n"
        "Validate a gateway config (YAML, see docs/CONFIG.md) without\n"
        "serving. Prints \"FILE: ok (N models, N upstreams, N routes)\", or\n"
        "the first error as \"FILE:LINE: key: message\".\n\n"
        "options:\n"
        "  -h, --help   this help\n\n"
        "exit status: 0 valid, 1 invalid or unreadable file, 2 bad usage\n");
}

int hp_cmd_config(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            config_usage(stdout);
            return 0;
        }
    if (argc != 3 || strcmp(argv[1], "check") || argv[2][0] == '-') {
        if (argc >= 2 && strcmp(argv[1], "check"))
            fprintf(stderr, "hotpath config: unknown action '%s'\n\n", argv[1]);
        config_usage(stderr);
        return 2;
    }
    const char *path = argv[2];
    hp_gwconf *c = NULL;
    hp_errbuf eb = {{0}};
    if (hp_gwconf_load(path, &c, &eb) != HP_OK) {
        fprintf(stderr, "%s\n", eb.msg);
        return 1;
    }
    printf("%s: ok (%zu models, %zu upstreams, %zu routes)\n", path,
           c->n_models, c->n_upstreams, c->n_routes);
    hp_gwconf_free(c);
    return 0;
}
