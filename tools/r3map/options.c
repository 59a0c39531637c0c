/* Option parsing shared by the r3map commands (see options.h). */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/size.h"

#include "cli.h"
#include "options.h"
#include "progress.h"

/* ---- getopt ------------------------------------------------------------ */

static size_t
count_options (const struct option *longopts)
{
  size_t n = 0;
  while (longopts[n].name)
    n++;
  return n;
}

/* getopt_long said '?' for a long option: say which of unknown, ambiguous
 * or "takes no value" it was, since getopt itself only knows "bad". */
static void
bad_long_option (const struct cli_command *cmd, const char *arg,
                 const struct option *longopts)
{
  const char *name = arg + 2;
  size_t len = strcspn (name, "=");
  size_t n = count_options (longopts), matches = 0;
  const struct option *match = NULL;
  char list[256] = "";
  for (size_t i = 0; i < n; i++)
    if (strncmp (longopts[i].name, name, len) == 0) {
      matches++;
      match = &longopts[i];
      size_t used = strlen (list);
      snprintf (list + used, sizeof list - used, "%s--%s",
                used ? ", " : "", longopts[i].name);
    }

  if (matches == 1 && name[len] == '=' && match->has_arg == no_argument) {
    cli_usage_error (cmd, "option '--%s' takes no value", match->name);
    return;
  }
  if (matches > 1) {
    cli_usage_error (cmd, "option '--%.*s' is ambiguous: %s", (int) len, name,
                     list);
    return;
  }
  char *word = strndup (name, len);
  const char *near = word ? cli_closest (word, longopts, n, sizeof *longopts)
                          : NULL;
  free (word);
  if (near)
    cli_usage_error (cmd, "unknown option '--%.*s' (did you mean '--%s'?)",
                     (int) len, name, near);
  else
    cli_usage_error (cmd, "unknown option '--%.*s'", (int) len, name);
}

/* The long option that argv element `arg` names, if it is one and its value
 * is `val`; NULL otherwise (a short option, or getopt has moved on). */
static const struct option *
long_option_of (const char *arg, int val, const struct option *longopts)
{
  if (strncmp (arg, "--", 2) != 0)
    return NULL;
  size_t len = strcspn (arg + 2, "=");
  for (const struct option *o = longopts; o->name; o++)
    if (o->val == val && strncmp (o->name, arg + 2, len) == 0)
      return o;
  return NULL;
}

int
cli_getopt (const struct cli_command *cmd, int argc, char **argv,
            const char *shortopts, const struct option *longopts, int *status)
{
  /* A leading ':' makes getopt tell a missing value (':') from an unknown
   * option ('?'); opterr = 0 keeps its own English messages away. */
  char spec[64];
  snprintf (spec, sizeof spec, ":%s", shortopts);
  opterr = 0;

  int c = getopt_long (argc, argv, spec, longopts, NULL);
  /* The element getopt just finished (for a short option inside a group
   * like -qx it may be an earlier one, hence long_option_of's checks). */
  const char *arg = optind > 0 && optind <= argc ? argv[optind - 1] : "";
  const struct option *lo;
  switch (c) {
  case 'h':
    cmd->help (stdout);
    *status = CLI_EXIT_OK;
    return CLI_OPT_STOP;
  case ':':
    if ((lo = long_option_of (arg, optopt, longopts)) != NULL)
      cli_usage_error (cmd, "option '--%s' needs a value", lo->name);
    else
      cli_usage_error (cmd, "option '-%c' needs a value", optopt);
    *status = CLI_EXIT_USAGE;
    return CLI_OPT_STOP;
  case '?':
    if (optopt == 0 && strncmp (arg, "--", 2) == 0)
      bad_long_option (cmd, arg, longopts);
    else if ((lo = long_option_of (arg, optopt, longopts)) != NULL)
      cli_usage_error (cmd, "option '--%s' takes no value", lo->name);
    else if (isprint (optopt))
      cli_usage_error (cmd, "unknown option '-%c'", optopt);
    else
      cli_usage_error (cmd, "unknown option '%s'", arg);
    *status = CLI_EXIT_USAGE;
    return CLI_OPT_STOP;
  default:
    return c;
  }
}

int
cli_operands (const struct cli_command *cmd, int argc, char **argv, int want,
              const char *names)
{
  int have = argc - optind;
  if (have == want)
    return 0;
  if (have < want)
    cli_usage_error (cmd, "expected %s, got %s%d operand%s", names,
                     have ? "only " : "", have, have == 1 ? "" : "s");
  else
    cli_usage_error (cmd, "expected %s; '%s' is one operand too many",
                     names, argv[optind + want]);
  return -1;
}

/* ---- values ------------------------------------------------------------ */

int
cli_parse_size (const struct cli_command *cmd, const char *opt,
                const char *arg, uint64_t min, uint64_t max, unsigned flags,
                uint64_t *out)
{
  uint64_t v;
  int r = util_parse_size (arg, &v);
  char lo[32], hi[32];
  cli_format_size_exact (min, lo, sizeof lo);
  cli_format_size_exact (max, hi, sizeof hi);
  if (r == -ERANGE || (r == 0 && (v < min || v > max))) {
    cli_usage_error (cmd, "%s: '%s' is out of range (%s to %s)", opt, arg,
                     lo, hi);
    return -1;
  }
  if (r < 0) {
    cli_usage_error (cmd, "%s: '%s' is not a size (examples: 4096, 64K, 1M, "
                     "1.5G)", opt, arg);
    return -1;
  }
  if ((flags & CLI_SIZE_POW2) && (v & (v - 1)) != 0) {
    cli_usage_error (cmd, "%s: '%s' is not a power of two (examples: 4K, "
                     "64K, 1M)", opt, arg);
    return -1;
  }
  *out = v;
  return 0;
}

int
cli_parse_count (const struct cli_command *cmd, const char *opt,
                 const char *arg, uint64_t min, uint64_t max, uint64_t *out)
{
  /* strtoull takes signs and spaces; a count is digits only. */
  bool digits = *arg != '\0';
  for (const char *p = arg; *p; p++)
    digits &= isdigit ((unsigned char) *p) != 0;
  if (!digits) {
    cli_usage_error (cmd, "%s: '%s' is not a number", opt, arg);
    return -1;
  }
  errno = 0;
  unsigned long long v = strtoull (arg, NULL, 10);
  if (errno == ERANGE || v < min || v > max) {
    cli_usage_error (cmd, "%s: '%s' is out of range (%llu to %llu)", opt, arg,
                     (unsigned long long) min, (unsigned long long) max);
    return -1;
  }
  *out = v;
  return 0;
}

int
cli_duration_ms (const char *s, uint64_t *out_ms)
{
  static const struct { const char *unit; uint64_t ms; } units[] = {
    { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
  };
  if (strcmp (s, "0") == 0) {
    *out_ms = 0;
    return 0;
  }
  /* The number, kept as whole / 10^k to stay exact; it starts with a
   * digit, as sizes do. */
  if (!isdigit ((unsigned char) *s))
    return -EINVAL;
  const char *p = s;
  uint64_t num = 0, den = 1;
  bool point = false, any = false;
  for (; isdigit ((unsigned char) *p) || (*p == '.' && !point); p++) {
    if (*p == '.') {
      point = true;
      continue;
    }
    any = true;
    if (num > (UINT64_MAX - 9) / 10 || (point && den >= 1000000000u))
      return -ERANGE;
    num = num * 10 + (uint64_t) (*p - '0');
    if (point)
      den *= 10;
  }
  if (!any || p[-1] == '.')
    return -EINVAL;
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
    if (strcmp (p, units[i].unit) == 0) {
      if (num > UINT64_MAX / units[i].ms)
        return -ERANGE;
      uint64_t total = num * units[i].ms;
      if (total % den != 0)
        return -EINVAL;
      *out_ms = total / den;
      return 0;
    }
  return -EINVAL;
}

int
cli_parse_duration (const struct cli_command *cmd, const char *opt,
                    const char *arg, uint64_t min_ms, uint64_t max_ms,
                    uint64_t *out_ms)
{
  uint64_t v;
  int r = cli_duration_ms (arg, &v);
  if (r == -ERANGE || (r == 0 && (v < min_ms || v > max_ms))) {
    cli_usage_error (cmd, "%s: '%s' is out of range (%llums to %llums)", opt,
                     arg, (unsigned long long) min_ms,
                     (unsigned long long) max_ms);
    return -1;
  }
  if (r < 0) {
    cli_usage_error (cmd, "%s: '%s' is not a duration (a number and a unit "
                     "ms, s, m or h: 500ms, 5s, 2m)", opt, arg);
    return -1;
  }
  *out_ms = v;
  return 0;
}

/* ---- suggestions ------------------------------------------------------- */

/* Levenshtein distance, capped: names here are short. */
static size_t
distance (const char *a, const char *b)
{
  size_t la = strlen (a), lb = strlen (b);
  if (la > 63 || lb > 63)
    return SIZE_MAX;
  size_t row[64];
  for (size_t j = 0; j <= lb; j++)
    row[j] = j;
  for (size_t i = 1; i <= la; i++) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= lb; j++) {
      size_t up = row[j];
      size_t best = diag + (a[i - 1] != b[j - 1]);
      if (up + 1 < best)
        best = up + 1;
      if (row[j - 1] + 1 < best)
        best = row[j - 1] + 1;
      row[j] = best;
      diag = up;
    }
  }
  return row[lb];
}

const char *
cli_closest (const char *word, const void *candidates, size_t n,
             size_t stride)
{
  const char *best = NULL, *prefixed = NULL;
  size_t best_d = SIZE_MAX, nprefixed = 0, wlen = strlen (word);
  for (size_t i = 0; i < n; i++) {
    /* memcpy: the compiler cannot know the stride keeps alignment. */
    const char *name;
    memcpy (&name, (const char *) candidates + i * stride, sizeof name);
    if (wlen > 0 && strncmp (name, word, wlen) == 0) {
      prefixed = name;
      nprefixed++;
    }
    size_t d = distance (word, name);
    if (d < best_d) {
      best_d = d;
      best = name;
    }
  }
  if (nprefixed == 1)
    return prefixed;
  /* One typo in a short word, two in a longer one; never a guess that
   * rewrites most of the word. */
  size_t limit = wlen <= 4 ? 1 : 2;
  if (best && best_d <= limit && best_d < wlen)
    return best;
  return NULL;
}
