#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util/size.h"

/* 128-bit arithmetic keeps "1.5P" exact without floating point. */
__extension__ typedef unsigned __int128 u128;

static int
suffix_shift (const char *s, unsigned *shift)
{
  static const struct { const char *name; unsigned shift; } table[] = {
    { "", 0 }, { "b", 0 }, { "B", 0 },
    { "k", 10 }, { "K", 10 }, { "KB", 10 }, { "KiB", 10 },
    { "m", 20 }, { "M", 20 }, { "MB", 20 }, { "MiB", 20 },
    { "g", 30 }, { "G", 30 }, { "GB", 30 }, { "GiB", 30 },
    { "t", 40 }, { "T", 40 }, { "TB", 40 }, { "TiB", 40 },
    { "p", 50 }, { "P", 50 }, { "PB", 50 }, { "PiB", 50 },
    { "e", 60 }, { "E", 60 }, { "EB", 60 }, { "EiB", 60 },
  };
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
    if (strcmp (s, table[i].name) == 0) {
      *shift = table[i].shift;
      return 0;
    }
  return -EINVAL;
}

int
util_parse_size (const char *s, uint64_t *out)
{
  if (s == NULL || !isdigit ((unsigned char) *s))
    return -EINVAL;

  /* Whole part, checked for overflow by hand: strtoull accepts signs and
   * spaces we do not want. */
  uint64_t whole = 0;
  const char *p = s;
  for (; isdigit ((unsigned char) *p); p++) {
    unsigned d = (unsigned) (*p - '0');
    if (whole > (UINT64_MAX - d) / 10)
      return -ERANGE;
    whole = whole * 10 + d;
  }

  /* Fraction: up to 9 digits, kept as numerator over 10^k. */
  uint64_t frac = 0, frac_den = 1;
  if (*p == '.') {
    p++;
    if (!isdigit ((unsigned char) *p))
      return -EINVAL;
    for (; isdigit ((unsigned char) *p); p++) {
      if (frac_den >= 1000000000u)
        return -EINVAL;
      frac = frac * 10 + (uint64_t) (*p - '0');
      frac_den *= 10;
    }
  }

  unsigned shift;
  if (suffix_shift (p, &shift) < 0)
    return -EINVAL;

  if (shift > 0 && whole > (UINT64_MAX >> shift))
    return -ERANGE;
  uint64_t v = whole << shift;
  if (frac_den > 1) {
    /* frac / frac_den * 2^shift must be a whole number of bytes. */
    u128 f = (u128) frac << shift;
    if (f % frac_den != 0)
      return -EINVAL;
    uint64_t add = (uint64_t) (f / frac_den);
    if (v > UINT64_MAX - add)
      return -ERANGE;
    v += add;
  }
  *out = v;
  return 0;
}

void
util_format_size (uint64_t bytes, char *buf, size_t len)
{
  static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
  if (bytes < 1024) {
    snprintf (buf, len, "%llu B", (unsigned long long) bytes);
    return;
  }
  double v = (double) bytes;
  unsigned u = 0;
  /* 1023.6 would print as "1024": such values go to the next unit. */
  while (v >= 1023.5 && u + 1 < sizeof units / sizeof units[0]) {
    v /= 1024;
    u++;
  }
  /* Thresholds on the rounded value, so 9.999 prints as "10.0". */
  snprintf (buf, len,
            v < 9.995 ? "%.2f %s" : v < 99.95 ? "%.1f %s" : "%.0f %s",
            v, units[u]);
}
