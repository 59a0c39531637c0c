/* Internal helpers for struct r3m_error (see include/r3map/error.h). */
#ifndef R3M_UTIL_ERROR_H
#define R3M_UTIL_ERROR_H

#include <r3map/error.h>

/* Record `code` (a positive errno) and a printf-style message in err when
 * err is not NULL, and return -code, so that callers can write
 *   return util_err (err, EINVAL, "bad size '%s'", s);
 */
int util_err (struct r3m_error *err, int code, const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));

/* As util_err, but the message gets ": <strerror(code)>" appended. */
int util_errno (struct r3m_error *err, int code, const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));

#endif
