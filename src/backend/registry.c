/* r3m_backend_open: URI scheme to backend constructor.
 * Minimal for now: memory:SIZE.  The URI parser and the other schemes
 * replace this. */
#include <errno.h>
#include <string.h>

#include "backend/backends.h"
#include "nbd/client.h"
#include "util/error.h"
#include "util/size.h"

int
r3m_backend_open (const char *uri, unsigned flags, struct r3m_backend **out,
                  struct r3m_error *err)
{
  if (uri && strncmp (uri, "memory:", 7) == 0) {
    uint64_t size;
    if (util_parse_size (uri + 7, &size) < 0)
      return util_err (err, EINVAL, "%s: '%s' is not a size", uri, uri + 7);
    return be_memory_new (size, flags, uri, out, err);
  }
  if (uri && (strncmp (uri, "nbd:", 4) == 0 || strncmp (uri, "nbds:", 5) == 0
              || strncmp (uri, "nbd+unix:", 9) == 0
              || strncmp (uri, "nbds+unix:", 10) == 0))
    return nbd_cli_backend_open (uri, flags, out, err);
  return util_err (err, EINVAL, "%s: unknown backend URI", uri ? uri : "(null)");
}
