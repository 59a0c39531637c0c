/* r3map: error reporting.
 *
 * Every libr3map call that can fail returns a negative errno value (0 or a
 * count on success).  Calls that can fail for reasons a person needs to read
 * (a malformed URI, a refused connection, a server's error message) also take
 * an optional `struct r3m_error *`: when it is not NULL it receives the same
 * code plus a one-line message that starts with what failed.  The library
 * keeps no error state of its own, so one error struct per thread or per call
 * is enough.
 */
#ifndef R3MAP_ERROR_H
#define R3MAP_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

#define R3M_ERROR_MSG_MAX 256

struct r3m_error {
  int code;                       /* positive errno value, 0 if no error */
  char msg[R3M_ERROR_MSG_MAX];    /* NUL-terminated, "" if no error */
};

/* Reset an error to "no error". */
static inline void
r3m_error_clear (struct r3m_error *err)
{
  if (err) {
    err->code = 0;
    err->msg[0] = '\0';
  }
}

#ifdef __cplusplus
}
#endif
#endif /* R3MAP_ERROR_H */
