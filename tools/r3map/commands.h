/* The r3map command's subcommands.
 *
 * Each command lives in tools/r3map/cmd_NAME.c and provides two functions:
 *   run:  parse argv (argv[0] is the command name) with cli_getopt and do the
 *         work; return an exit status from cli.h (never call exit());
 *   help: print the full help text (usage, every option with its default,
 *         exit statuses, examples) to `out`.
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

int cli_copy_run (const struct cli_command *cmd, int argc, char **argv);
void cli_copy_help (FILE *out);

int cli_compare_run (const struct cli_command *cmd, int argc, char **argv);
void cli_compare_help (FILE *out);

int cli_serve_run (const struct cli_command *cmd, int argc, char **argv);
void cli_serve_help (FILE *out);

#endif
