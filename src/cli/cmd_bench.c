/* cmd_bench.c: `hotpath bench` (placeholder while it is written). */
#include <stdio.h>

#include "cli/cli.h"

int hp_cmd_bench(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "hotpath bench: not implemented yet\n");
    return 1;
}
