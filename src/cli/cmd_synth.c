/* cmd_synth.c: `hotpath synth` (placeholder while it is written). */
#include <stdio.h>

#include "cli/cli.h"

int hp_cmd_synth(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "hotpath synth: not implemented yet\n");
    return 1;
}
