/* pattern:SIZE -- a read-only, generated backend with no storage.
 *
 * Every aligned 8-byte word holds its own byte offset as a big-endian
 * 64-bit number, the same bytes as `nbdkit pattern`, so data read through
 * any layer can be checked without keeping a copy: the byte at offset o is
 * byte (o % 8) of be64(o - o % 8).
 *
 * Speed: within a 4 KiB page the word offsets page + 8i never carry into
 * the page bits, so be64(page + 8i) = be64(page) | be64(8i).  A table of
 * the 512 values be64(8i) turns generation into one OR and one store per
 * word, with no byte swap; the loop vectorises. */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backends.h"
#include "util/error.h"

static unsigned char
byte_at (uint64_t o)
{
  uint64_t word = o & ~(uint64_t) 7;
  return (unsigned char) (word >> (8 * (7 - (o & 7))));
}

#define PAGE 4096u
#define WORDS (PAGE / 8)

struct pattern {
  uint64_t low[WORDS];           /* be64 (8 * i) */
};

static int
pattern_pread (void *self, void *buf, size_t len, uint64_t off)
{
  const struct pattern *pt = self;
  unsigned char *p = buf;
  for (; len > 0 && (off & 7) != 0; len--)
    *p++ = byte_at (off++);
  while (len >= 8) {
    uint64_t high = htobe64 (off & ~(uint64_t) (PAGE - 1));
    size_t i = (size_t) (off & (PAGE - 1)) / 8;
    size_t n = WORDS - i < len / 8 ? WORDS - i : len / 8;
    for (size_t k = 0; k < n; k++) {
      uint64_t v = high | pt->low[i + k];
      memcpy (p + 8 * k, &v, 8);
    }
    p += 8 * n;
    off += 8 * n;
    len -= 8 * n;
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

static void
pattern_close (void *self)
{
  free (self);
}

static const struct r3m_backend_ops pattern_ops = {
  .name = "pattern",
  .pread = pattern_pread,
  .pwrite = pattern_pwrite,
  .close = pattern_close,
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
  struct pattern *pt = malloc (sizeof *pt);
  if (!pt)
    return util_errno (err, ENOMEM, "pattern");
  for (uint64_t i = 0; i < WORDS; i++)
    pt->low[i] = htobe64 (8 * i);
  r = r3m_backend_new (&pattern_ops, pt, &info, uri, out, err);
  if (r < 0)
    free (pt);
  return r;
}
