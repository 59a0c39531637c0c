/* r3map: the command-line tool (minimal dispatcher until branch cli's
 * lands; its main.c replaces this one). */
#include <stdio.h>
#include <string.h>

#include <r3map/r3map.h>

#include "commands.h"

static const struct cli_command commands[] = {
  { "serve", "export backends over NBD", cli_serve_run, cli_serve_help },
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

int
main (int argc, char **argv)
{
  if (argc < 2 || strcmp (argv[1], "--help") == 0) {
    printf ("Usage: r3map COMMAND [OPTIONS] ARGS...\nCommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
      printf ("  %-10s %s\n", commands[i].name, commands[i].summary);
    return argc < 2 ? 2 : 0;
  }
  for (size_t i = 0; i < NCOMMANDS; i++)
    if (strcmp (commands[i].name, argv[1]) == 0)
      return commands[i].run (&commands[i], argc - 1, argv + 1);
  fprintf (stderr, "r3map: unknown command '%s'\n", argv[1]);
  return 2;
}
