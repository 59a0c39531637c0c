/* Random operations against a model (one thread, deterministic seeds):
 * reads, writes, zeroes, FUA writes, flushes, writes behind the engine's
 * back with mark_dirty, remote changes with invalidation (local changes to
 * those chunks are discarded), close and reopen over a fresh cache.  The
 * model keeps what reads must return and what the remote must hold after
 * each flush. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <r3map/region.h>

#include "testutil.h"

struct model {
  uint32_t cs;
  uint64_t size, nchunks;
  unsigned char *view;        /* what reads return */
  struct r3m_backend *remote, *cache;
  struct r3m_region *r;
  uint64_t rng;
};

static void
open_region (struct model *m)
{
  struct r3m_region_options o;
  r3m_region_options_init (&o);
  o.chunk_size = m->cs;
  o.pull_workers = 0;           /* the test writes the remote directly */
  o.push_window = 0;
  m->cache = tu_memory (m->size);
  assert_int_equal (r3m_region_open (m->remote, m->cache, &o, &m->r, NULL), 0);
}

static void
close_region (struct model *m)
{
  assert_int_equal (r3m_region_close (m->r, NULL), 0);
  r3m_backend_close (m->cache);
  assert_true (tu_equal_buf (m->remote, m->view, m->size));
}

static void
pick (struct model *m, uint64_t *off, size_t *len)
{
  uint64_t max = m->cs * 5;
  *off = tu_rand (&m->rng) % m->size;
  uint64_t left = m->size - *off;
  *len = (size_t) (1 + tu_rand (&m->rng) % (left < max ? left : max));
}

static void
step (struct model *m, unsigned char *buf, unsigned char *got)
{
  uint64_t off;
  size_t len;
  pick (m, &off, &len);
  unsigned what = (unsigned) (tu_rand (&m->rng) % 100);
  if (what < 35) {
    assert_int_equal (r3m_region_read (m->r, got, len, off), 0);
    assert_memory_equal (got, m->view + off, len);
  } else if (what < 65) {
    tu_pattern (tu_rand (&m->rng), buf, len, off);
    assert_int_equal (r3m_region_write (m->r, buf, len, off, 0), 0);
    memcpy (m->view + off, buf, len);
  } else if (what < 72) {
    assert_int_equal (r3m_region_zero (m->r, len, off, 0), 0);
    memset (m->view + off, 0, len);
  } else if (what < 77) {
    tu_pattern (tu_rand (&m->rng), buf, len, off);
    assert_int_equal (r3m_region_write (m->r, buf, len, off, R3M_IO_FUA), 0);
    memcpy (m->view + off, buf, len);
    /* Those bytes are on the remote now. */
    assert_int_equal (r3m_backend_pread (m->remote, got, len, off), 0);
    assert_memory_equal (got, buf, len);
  } else if (what < 82) {
    assert_int_equal (r3m_region_flush (m->r), 0);
    assert_true (tu_equal_buf (m->remote, m->view, m->size));
    struct r3m_region_status st;
    r3m_region_status (m->r, &st);
    assert_int_equal (st.chunks_dirty, 0);
    assert_int_equal (st.errors, 0);
  } else if (what < 87) {
    /* A frontend writes into a local chunk's cache bytes itself. */
    assert_int_equal (r3m_region_read (m->r, got, len, off), 0);
    tu_pattern (tu_rand (&m->rng), buf, len, off);
    assert_int_equal (r3m_backend_pwrite (m->cache, buf, len, off, 0), 0);
    assert_int_equal (r3m_region_mark_dirty (m->r, off, len), 0);
    memcpy (m->view + off, buf, len);
  } else if (what < 97) {
    /* The remote changes under some chunks; they are invalidated, and
     * local changes to them are gone. */
    uint64_t c[3];
    for (int i = 0; i < 3; i++) {
      c[i] = tu_rand (&m->rng) % m->nchunks;
      uint64_t co = c[i] * m->cs;
      size_t cl = m->size - co < m->cs ? (size_t) (m->size - co) : m->cs;
      tu_pattern (tu_rand (&m->rng), buf, cl, co);
      assert_int_equal (r3m_backend_pwrite (m->remote, buf, cl, co, 0), 0);
      memcpy (m->view + co, buf, cl);
    }
    assert_int_equal (r3m_region_invalidate (m->r, c, 3), 0);
  } else {
    close_region (m);
    open_region (m);
  }
}

static void
run (uint32_t cs, uint64_t size, uint64_t seed, unsigned steps)
{
  struct model m = { .cs = cs, .size = size, .rng = seed,
                     .nchunks = (size + cs - 1) / cs };
  m.remote = tu_memory (size);
  tu_fill (m.remote, seed);
  m.view = malloc (size);
  tu_pattern (seed, m.view, size, 0);
  unsigned char *buf = malloc (cs * 5), *got = malloc (cs * 5);
  open_region (&m);
  for (unsigned i = 0; i < steps; i++)
    step (&m, buf, got);
  close_region (&m);
  free (buf);
  free (got);
  free (m.view);
  r3m_backend_close (m.remote);
}

static void
test_model_tiny_chunks (void **state)
{
  for (uint64_t seed = 1; seed <= 4; seed++)
    run (8, 8 * 40 + 3, seed, 5000);
}

static void
test_model_small_chunks (void **state)
{
  for (uint64_t seed = 10; seed <= 12; seed++)
    run (512, 512 * 32 + 100, seed, 5000);
}

static void
test_model_one_byte_chunks (void **state)
{
  run (1, 300, 77, 5000);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_model_tiny_chunks),
    cmocka_unit_test (test_model_small_chunks),
    cmocka_unit_test (test_model_one_byte_chunks),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
