/* r3map: the command-line tool.
 *
 *   r3map COMMAND [OPTIONS] ARGS...
 *
 * main looks COMMAND up in the table below and hands it argv from the
 * command name on; the command parses its own options (cli_getopt) and
 * returns an exit status (cli.h).  main itself only knows --help,
 * --version and `help COMMAND`.  Adding a command is one line in `commands`
 * (see commands.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <r3map/r3map.h>

#include "cli.h"
#include "commands.h"
#include "options.h"

static const struct cli_command commands[] = {
  { "copy", "copy one backend into another through the region engine",
    cli_copy_run, cli_copy_help },
  { "compare", "compare two backends chunk by chunk (XXH3-64)",
    cli_compare_run, cli_compare_help },
  { "serve", "export backends over NBD", cli_serve_run, cli_serve_help },
  { "mount", "present a remote region here, as a file in a FUSE mount",
    cli_mount_run, cli_mount_help },
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void
usage (FILE *out)
{
  fprintf (out,
"Usage: r3map COMMAND [OPTIONS] ARGS...\n"
"       r3map help COMMAND | r3map COMMAND --help\n"
"\n"
"r3map uses and moves memory regions whose bytes live elsewhere: in another\n"
"host's RAM, a file, a directory of chunks or any NBD server.\n"
"\n"
"Commands:\n");
  for (size_t i = 0; i < NCOMMANDS; i++)
    fprintf (out, "  %-10s %s\n", commands[i].name, commands[i].summary);
  fprintf (out,
"  %-10s %s\n"
"\n"
"Backends are named by URIs (SIZE takes K, M, G, T suffixes, powers of 1024):\n"
"  memory:SIZE                     anonymous memory, gone at exit\n"
"  pattern:SIZE                    read-only; each 8-byte word holds its own\n"
"                                  offset (big-endian), like nbdkit pattern\n"
"  file:PATH[?size=SIZE]           a regular file or a block device\n"
"  dir:PATH[?size=SIZE&chunk=SIZE] a directory with one file per chunk\n"
"  nbd://HOST[:PORT]/EXPORT        an NBD server; nbds:// adds TLS\n"
"  nbd+unix:///EXPORT?socket=PATH  an NBD server on a Unix socket\n"
"                                  (parameters: docs/nbd-client.md)\n"
"\n"
"Options:\n"
"  -h, --help     show this help\n"
"  -V, --version  show the version\n"
"\n"
"Exit status: 0 success, 1 runtime failure (I/O error), 2 usage error\n"
"(bad option or URI), 3 verification mismatch.\n"
"\n"
"More: docs/cli.md in the r3map source tree, and 'r3map help COMMAND'.\n",
           "help", "show the help of a command");
}

static const struct cli_command *
find (const char *name)
{
  for (size_t i = 0; i < NCOMMANDS; i++)
    if (strcmp (commands[i].name, name) == 0)
      return &commands[i];
  return NULL;
}

static int
unknown_command (const char *name)
{
  const char *near = cli_closest (name, commands, NCOMMANDS,
                                  sizeof commands[0]);
  if (near)
    return cli_usage_error (NULL, "unknown command '%s' (did you mean "
                            "'%s'?)", name, near);
  return cli_usage_error (NULL, "unknown command '%s'", name);
}

/* `r3map help [COMMAND]` */
static int
help (int argc, char **argv)
{
  if (argc < 2) {
    usage (stdout);
    return CLI_EXIT_OK;
  }
  if (argc > 2)
    return cli_usage_error (NULL, "help takes one command name, not %d",
                            argc - 1);
  if (strcmp (argv[1], "help") == 0 || strcmp (argv[1], "-h") == 0
      || strcmp (argv[1], "--help") == 0) {
    usage (stdout);
    return CLI_EXIT_OK;
  }
  const struct cli_command *cmd = find (argv[1]);
  if (!cmd)
    return unknown_command (argv[1]);
  cmd->help (stdout);
  return CLI_EXIT_OK;
}

static int
dispatch (int argc, char **argv)
{
  if (argc < 2) {
    cli_error ("no command given");
    fprintf (stderr, "r3map: usage: r3map COMMAND [OPTIONS] ARGS...; "
             "try 'r3map --help'\n");
    return CLI_EXIT_USAGE;
  }
  const char *word = argv[1];
  if (strcmp (word, "-h") == 0 || strcmp (word, "--help") == 0) {
    usage (stdout);
    return CLI_EXIT_OK;
  }
  if (strcmp (word, "-V") == 0 || strcmp (word, "--version") == 0) {
    printf ("r3map %s\n", R3M_VERSION_STRING);
    return CLI_EXIT_OK;
  }
  if (word[0] == '-')
    return cli_usage_error (NULL, "unknown option '%s' (options go after "
                            "the command name)", word);
  if (strcmp (word, "help") == 0)
    return help (argc - 1, argv + 1);
  const struct cli_command *cmd = find (word);
  if (!cmd)
    return unknown_command (word);
  return cmd->run (cmd, argc - 1, argv + 1);
}

int
main (int argc, char **argv)
{
  int status = dispatch (argc, argv);
  /* Help piped into a full disk or a closed pipe must not look like a
   * success. */
  if (fflush (stdout) != 0 || ferror (stdout)) {
    cli_error ("writing to standard output: %s", strerror (errno));
    if (status == CLI_EXIT_OK)
      status = CLI_EXIT_FAILURE;
  }
  return status;
}
