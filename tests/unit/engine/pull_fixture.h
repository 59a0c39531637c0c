/* The fixture of the puller's run tests (test_pull_runs.c,
 * test_pull_direct.c): a seeded pattern behind a fault wrapper as the
 * remote, a memory: cache, and the region between them. */
#ifndef TESTS_ENGINE_PULL_FIXTURE_H
#define TESTS_ENGINE_PULL_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <r3map/region.h>

#include "fault.h"
#include "testutil.h"

struct pull_fx {
  struct r3m_backend *mem, *remote, *cache;
  struct r3m_backend *inner_cache;  /* set when a test wraps the cache */
  struct tfault *f, *cf;
  struct r3m_region *r;
  unsigned char *cmem;          /* the cache's lent memory, if a test uses it */
  char dir[64];                 /* removed at teardown when set */
};

/* Remote: the pattern of seed over size bytes behind a fault wrapper
 * running submitted requests on `threads` threads (0: inline); cache:
 * memory of the same size. */
static inline void
pull_fx_setup (struct pull_fx *x, uint32_t cs, uint64_t size, uint64_t seed,
               unsigned threads)
{
  memset (x, 0, sizeof *x);
  x->mem = tu_memory (size);
  x->cache = tu_memory (size);
  tu_fill (x->mem, seed);
  assert_int_equal (tfault_new (x->mem, cs, threads, &x->remote, &x->f), 0);
}

static inline void
pull_fx_open (struct pull_fx *x, const struct r3m_region_options *o)
{
  assert_int_equal (r3m_region_open (x->remote, x->cache, o, &x->r, NULL), 0);
}

/* Open the region with the first remote read stalled after it read its
 * bytes (a run whose data is in hand but not yet stored), and wait until
 * the puller is stuck there. */
static inline void
pull_fx_open_with_first_read_stalled (struct pull_fx *x,
                                      const struct r3m_region_options *o)
{
  struct tfault_rule stall = { .ops = TF_OP (R3M_IO_READ), .times = 1,
                               .stall = true, .after = true };
  assert_int_equal (tfault_add (x->f, &stall), 0);
  pull_fx_open (x, o);
  assert_true (tfault_wait_stalled (x->f, 1, 10000));
}

static inline void
pull_fx_teardown (struct pull_fx *x)
{
  if (x->r)
    assert_int_equal (r3m_region_close (x->r, NULL), 0);
  r3m_backend_close (x->remote);
  r3m_backend_close (x->mem);
  r3m_backend_close (x->cache);
  r3m_backend_close (x->inner_cache);
  if (x->dir[0]) {
    char cmd[128];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", x->dir);
    assert_int_equal (system (cmd), 0);
  }
}

#endif
