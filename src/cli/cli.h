/* cli.h: subcommand entry points. Each takes argv after the subcommand
 * name (argv[0] is the subcommand), prints its own errors, and returns the
 * process exit status. Only these functions print and exit. */
#ifndef HP_CLI_H
#define HP_CLI_H

int hp_cmd_run(int argc, char **argv);
int hp_cmd_serve(int argc, char **argv);
int hp_cmd_tokenize(int argc, char **argv);
int hp_cmd_detokenize(int argc, char **argv);
int hp_cmd_bench(int argc, char **argv);
int hp_cmd_synth(int argc, char **argv);
int hp_cmd_chat_template(int argc, char **argv);
/* `hotpath config check FILE`: validate a gateway config (cmd_config.c). */
int hp_cmd_config(int argc, char **argv);
/* `hotpath keys create|list|revoke`: manage virtual API keys (cmd_keys.c). */
int hp_cmd_keys(int argc, char **argv);

#endif
