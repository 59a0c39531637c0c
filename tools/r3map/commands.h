/* The r3map command's subcommands.
 *
 * Each command lives in tools/r3map/cmd_NAME.c and provides two functions:
 *   run:  parse argv (argv[0] is the command name) and do the work; return
 *         an exit status (never call exit());
 *   help: print the full help text to `out`.
 * To add one: declare both here, add one line to the table in main.c and the
 * file to tools/r3map/meson.build. */
#ifndef R3M_CLI_COMMANDS_H
#define R3M_CLI_COMMANDS_H

#include <stdio.h>

struct cli_command {
  const char *name;
  const char *summary;       /* one line for `r3map --help`, no final period */
  int (*run) (const struct cli_command *cmd, int argc, char **argv);
  void (*help) (FILE *out);
};

int cli_serve_run (const struct cli_command *cmd, int argc, char **argv);
void cli_serve_help (FILE *out);

#endif
