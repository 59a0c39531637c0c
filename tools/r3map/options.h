/* Option parsing shared by the r3map commands.
 *
 * cli_getopt wraps getopt_long so every command reports bad options the same
 * way (one line naming the option, a suggestion for a misspelt long option,
 * a pointer to the help) and handles --help.  The value parsers check the
 * syntax and the range and print a usage error naming the option when
 * either is wrong, so a command only has to return CLI_EXIT_USAGE. */
#ifndef R3M_CLI_OPTIONS_H
#define R3M_CLI_OPTIONS_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "commands.h"

/* Put this in every command's long options (with 'h' in its short ones). */
#define CLI_OPTION_HELP { "help", no_argument, NULL, 'h' }

/* cli_getopt returns this when the command must stop and return *status:
 * after printing the help (CLI_EXIT_OK) or a usage error (CLI_EXIT_USAGE). */
#define CLI_OPT_STOP 0x10000

/* getopt_long over argv (argv[0] is the command name).  `shortopts` as for
 * getopt, without a leading ':' or '+'.  Returns the option's value, -1 at
 * the end of the options (operands start at optind), or CLI_OPT_STOP. */
int cli_getopt (const struct cli_command *cmd, int argc, char **argv,
                const char *shortopts, const struct option *longopts,
                int *status);

/* Check that exactly `want` operands follow the options; `names` is how the
 * help calls them ("SRC DST").  0, or a usage error printed and -1. */
int cli_operands (const struct cli_command *cmd, int argc, char **argv,
                  int want, const char *names);

#define CLI_SIZE_POW2 (1u << 0)  /* the size must be a power of two */

/* A byte count such as 4096, 64K, 1M, 1.5G (util_parse_size) within
 * [min, max].  0, or a usage error printed and -1. */
int cli_parse_size (const struct cli_command *cmd, const char *opt,
                    const char *arg, uint64_t min, uint64_t max,
                    unsigned flags, uint64_t *out);

/* A decimal count within [min, max].  0, or a usage error printed and -1. */
int cli_parse_count (const struct cli_command *cmd, const char *opt,
                     const char *arg, uint64_t min, uint64_t max,
                     uint64_t *out);

/* A duration: a number (a fraction is fine) and a unit, ms, s, m or h, such
 * as 500ms, 5s, 1.5s, 2m; a bare 0 is also accepted.  Gives milliseconds
 * (a result that is not a whole number of milliseconds is refused) within
 * [min_ms, max_ms].  0, or a usage error printed and -1. */
int cli_parse_duration (const struct cli_command *cmd, const char *opt,
                        const char *arg, uint64_t min_ms, uint64_t max_ms,
                        uint64_t *out_ms);

/* Pure parser behind cli_parse_duration: 0, -EINVAL or -ERANGE. */
int cli_duration_ms (const char *s, uint64_t *out_ms);

/* The candidate closest to `word` by edit distance, if close enough to be
 * a likely typo (or `word` is a prefix of exactly one candidate); else NULL.
 * `candidates` holds n strings spaced `stride` bytes apart (so it can walk
 * an array of structs whose first member is the name). */
const char *cli_closest (const char *word, const void *candidates, size_t n,
                         size_t stride);

#endif
