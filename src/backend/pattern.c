/* pattern:SIZE -- a read-only, generated backend with no storage.
 *
 * Every aligned 8-byte word holds its own byte offset as a big-endian
 * 64-bit number, the same bytes as `nbdkit pattern`, so data read through
 * any layer can be checked without keeping a copy: the byte at offset o is
 * byte (o % 8) of be64(o - o % 8). */
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "backend/backends.h"
#include "util/error.h"

static unsigned char
byte_at (uint64_t o)
{
  uint64_t word = o & ~(uint64_t) 7;
  return (unsigned char) (word >> (8 * (7 - (o & 7))));
}

static int
pattern_pread (void *self, void *buf, size_t len, uint64_t off)
{
  unsigned char *p = buf;
  for (; len > 0 && (off & 7) != 0; len--)
    *p++ = byte_at (off++);
  for (; len >= 8; len -= 8, off += 8, p += 8) {
    uint64_t v = htobe64 (off);
    memcpy (p, &v, 8);
  }
  for (; len > 0; len--)
    *p++ = byte_at (off++);
  return 0;
}

/* Never called: the handle refuses writes to a read-only backend. */
static int
pattern_pwrite (void *self, const void *buf, size_t len, uint64_t off,
                unsigned flags)
{
  return -EPERM;
}

static const struct r3m_backend_ops pattern_ops = {
  .name = "pattern",
  .pread = pattern_pread,
  .pwrite = pattern_pwrite,
};

int
be_pattern_open (const struct util_uri *u, const char *uri, unsigned flags,
                 struct r3m_backend **out, struct r3m_error *err)
{
  uint64_t size;
  int r = be_uri_opaque_size (u, uri, "pattern:SIZE", &size, err);
  if (r < 0)
    return r;
  struct r3m_backend_info info = {
    .size = size,
    .align = 1,
    .flags = R3M_BACKEND_READ_ONLY,
    .async_threads = 0,         /* generating is faster than a thread hop */
  };
  /* The ops keep no state, so there is no self. */
  return r3m_backend_new (&pattern_ops, NULL, &info, uri, out, err);
}
