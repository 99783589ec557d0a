/* args.h: strict parsing of numeric command-line values, shared by the
 * subcommands. Each returns false (and leaves *out alone) unless the whole
 * string is a number within [lo, hi]. */
#ifndef HP_ARGS_H
#define HP_ARGS_H

#include <stdbool.h>
#include <getopt.h>

bool hp_arg_long(const char *s, long lo, long hi, long *out);
bool hp_arg_double(const char *s, double lo, double hi, double *out);
bool hp_arg_u64(const char *s, unsigned long long *out);
/* "--name" of the option whose getopt value is c, for error messages. */
const char *hp_arg_name(const struct option *opts, int c);

#endif
