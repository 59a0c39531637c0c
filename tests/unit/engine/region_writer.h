/* A thread that writes one range of a seeded pattern through a region:
 * for tests where a write has to wait (for a run in flight, a stalled
 * fetch) while the test thread does something else. */
#ifndef TESTS_ENGINE_REGION_WRITER_H
#define TESTS_ENGINE_REGION_WRITER_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include <r3map/region.h>

#include "testutil.h"

struct region_writer {
  struct r3m_region *r;
  uint64_t off;
  size_t len;
  uint64_t seed;
  atomic_bool done;
  int result;
};

static inline void *
region_writer_main (void *p)
{
  struct region_writer *w = p;
  unsigned char *buf = malloc (w->len);
  if (!buf)
    w->result = -ENOMEM;
  else {
    tu_pattern (w->seed, buf, w->len, w->off);
    w->result = r3m_region_write (w->r, buf, w->len, w->off, 0);
  }
  free (buf);
  atomic_store (&w->done, true);
  return NULL;
}

#endif
