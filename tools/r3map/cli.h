/* What every r3map command shares: exit statuses and messages.
 *
 * Every line the tool writes to stderr starts with "r3map: ", so a script or
 * a log reader can tell them from other programs' output.  Commands return
 * one of the CLI_EXIT_* statuses; they are documented in `r3map --help` and
 * docs/cli.md, and scripts rely on them, so never renumber them. */
#ifndef R3M_CLI_CLI_H
#define R3M_CLI_CLI_H

#include <stdio.h>

#include <r3map/error.h>

#include "commands.h"

enum {
  CLI_EXIT_OK = 0,           /* did what was asked */
  CLI_EXIT_FAILURE = 1,      /* runtime failure: I/O error, refused connection */
  CLI_EXIT_USAGE = 2,        /* bad option, bad operand, bad URI */
  CLI_EXIT_MISMATCH = 3,     /* a verification found different data */
};

/* Print "r3map: <message>\n" to stderr. */
void cli_error (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

/* Print "r3map: CMD: <message>" and a line telling where the help is
 * ("r3map: try 'r3map CMD --help'"; cmd NULL: the top-level help), and
 * return CLI_EXIT_USAGE. */
int cli_usage_error (const struct cli_command *cmd, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));

/* Exit status for a failed library call: an invalid argument (-EINVAL,
 * -ERANGE: a malformed URI, a bad size) is a usage error, anything else a
 * runtime failure. */
int cli_exit_status (int r);

/* Report a failed library call: "r3map: CMD: <err->msg>", or with
 * strerror(-r) after `what` when the library left no message.  Returns
 * cli_exit_status (r). */
int cli_report (const struct cli_command *cmd, int r,
                const struct r3m_error *err, const char *what);

/* Copy msg into buf (cap bytes, truncating) with every occurrence of
 * `from` replaced by `to`, and return buf.  For messages that quote a URI
 * the tool rewrote (r3map copy adds size= to a DST) so the user sees the
 * URI they typed.  from "" or equal to `to`: a plain copy. */
const char *cli_replace (const char *msg, const char *from, const char *to,
                         char *buf, size_t cap);

#endif
