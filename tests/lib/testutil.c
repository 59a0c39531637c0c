/* Helpers shared by tests (testutil.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

struct r3m_backend *
tu_memory (uint64_t size)
{
  char uri[64];
  struct r3m_backend *b;
  struct r3m_error err;
  snprintf (uri, sizeof uri, "memory:%llu", (unsigned long long) size);
  if (r3m_backend_open (uri, 0, &b, &err) < 0) {
    fprintf (stderr, "tu_memory: %s\n", err.msg);
    abort ();
  }
  return b;
}

void
tu_pattern (uint64_t seed, void *buf, size_t len, uint64_t off)
{
  unsigned char *p = buf;
  for (size_t i = 0; i < len; i++)
    p[i] = tu_pattern_byte (seed, off + i);
}

void
tu_fill (struct r3m_backend *b, uint64_t seed)
{
  uint64_t size = r3m_backend_size (b);
  unsigned char buf[65536];
  for (uint64_t off = 0; off < size; off += sizeof buf) {
    size_t n = size - off < sizeof buf ? (size_t) (size - off) : sizeof buf;
    tu_pattern (seed, buf, n, off);
    if (r3m_backend_pwrite (b, buf, n, off, 0) < 0)
      abort ();
  }
}

bool
tu_check (struct r3m_backend *b, uint64_t seed, uint64_t off, uint64_t len)
{
  unsigned char buf[65536];
  while (len > 0) {
    size_t n = len < sizeof buf ? (size_t) len : sizeof buf;
    if (r3m_backend_pread (b, buf, n, off) < 0)
      return false;
    for (size_t i = 0; i < n; i++)
      if (buf[i] != tu_pattern_byte (seed, off + i))
        return false;
    off += n;
    len -= n;
  }
  return true;
}

bool
tu_equal (struct r3m_backend *a, struct r3m_backend *b, uint64_t len)
{
  enum { N = 65536 };
  unsigned char *x = malloc (N), *y = malloc (N);
  bool same = x && y;
  for (uint64_t off = 0; same && off < len; off += N) {
    size_t n = len - off < N ? (size_t) (len - off) : N;
    if (r3m_backend_pread (a, x, n, off) < 0
        || r3m_backend_pread (b, y, n, off) < 0 || memcmp (x, y, n) != 0)
      same = false;
  }
  free (x);
  free (y);
  return same;
}

bool
tu_equal_buf (struct r3m_backend *b, const void *buf, uint64_t len)
{
  enum { N = 65536 };
  unsigned char *x = malloc (N);
  const unsigned char *y = buf;
  bool same = x != NULL;
  for (uint64_t off = 0; same && off < len; off += N) {
    size_t n = len - off < N ? (size_t) (len - off) : N;
    if (r3m_backend_pread (b, x, n, off) < 0 || memcmp (x, y + off, n) != 0)
      same = false;
  }
  free (x);
  return same;
}

bool
tu_poll (bool (*cond) (void *), void *arg, unsigned timeout_ms)
{
  for (unsigned t = 0; t <= timeout_ms; t++) {
    if (cond (arg))
      return true;
    usleep (1000);
  }
  return cond (arg);
}
