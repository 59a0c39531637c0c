/* Messages and exit statuses shared by the r3map commands (see cli.h). */
#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "cli.h"

static void __attribute__ ((format (printf, 2, 0)))
verror (const char *prefix, const char *fmt, va_list ap)
{
  /* One fprintf per line, so lines from threads or other processes sharing
   * stderr do not interleave mid-line. */
  char msg[1024];
  vsnprintf (msg, sizeof msg, fmt, ap);
  fprintf (stderr, "r3map: %s%s\n", prefix, msg);
}

void
cli_error (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  verror ("", fmt, ap);
  va_end (ap);
}

int
cli_usage_error (const struct cli_command *cmd, const char *fmt, ...)
{
  char prefix[64] = "";
  if (cmd)
    snprintf (prefix, sizeof prefix, "%s: ", cmd->name);
  va_list ap;
  va_start (ap, fmt);
  verror (prefix, fmt, ap);
  va_end (ap);
  if (cmd)
    fprintf (stderr, "r3map: try 'r3map %s --help'\n", cmd->name);
  else
    fprintf (stderr, "r3map: try 'r3map --help'\n");
  return CLI_EXIT_USAGE;
}

int
cli_exit_status (int r)
{
  return r == -EINVAL || r == -ERANGE ? CLI_EXIT_USAGE : CLI_EXIT_FAILURE;
}

int
cli_report (const struct cli_command *cmd, int r, const struct r3m_error *err,
            const char *what)
{
  int status = cli_exit_status (r);
  char msg[R3M_ERROR_MSG_MAX + 128];
  if (err && err->msg[0])
    snprintf (msg, sizeof msg, "%s", err->msg);
  else
    snprintf (msg, sizeof msg, "%s: %s", what, strerror (-r));
  if (status == CLI_EXIT_USAGE)
    cli_usage_error (cmd, "%s", msg);
  else
    cli_error ("%s: %s", cmd->name, msg);
  return status;
}

const char *
cli_replace (const char *msg, const char *from, const char *to, char *buf,
             size_t cap)
{
  size_t flen = strlen (from), used = 0;
  buf[0] = '\0';
  const char *p = msg;
  for (;;) {
    const char *hit = flen && strcmp (from, to) != 0 ? strstr (p, from) : NULL;
    size_t keep = hit ? (size_t) (hit - p) : strlen (p);
    int n = snprintf (buf + used, cap - used, "%.*s%s", (int) keep, p,
                      hit ? to : "");
    if (n < 0 || (size_t) n >= cap - used || !hit)
      return buf;
    used += (size_t) n;
    p = hit + flen;
  }
}
