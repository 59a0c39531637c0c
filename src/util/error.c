#include <stdarg.h>
#include <stdio.h>
#include <stdbool.h>
#include <string.h>

#include "util/error.h"

static int set (struct r3m_error *err, int code, bool with_strerror,
                const char *fmt, va_list ap)
  __attribute__ ((format (printf, 4, 0)));

static int
set (struct r3m_error *err, int code, bool with_strerror, const char *fmt,
     va_list ap)
{
  if (code < 0)
    code = -code;
  if (err) {
    err->code = code;
    int n = vsnprintf (err->msg, sizeof err->msg, fmt, ap);
    if (with_strerror && n >= 0 && (size_t) n < sizeof err->msg) {
      char buf[128];
      snprintf (err->msg + n, sizeof err->msg - (size_t) n, ": %s",
                strerror_r (code, buf, sizeof buf));
    }
  }
  return -code;
}

int
util_err (struct r3m_error *err, int code, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  int r = set (err, code, false, fmt, ap);
  va_end (ap);
  return r;
}

int
util_errno (struct r3m_error *err, int code, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  int r = set (err, code, true, fmt, ap);
  va_end (ap);
  return r;
}
