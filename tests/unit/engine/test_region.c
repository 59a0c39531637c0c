/* Region basics: options, arbitrary byte ranges through the chunk table
 * (the original's Arbitrary/Synced test plan), direct mode, zero, FUA, the
 * backend view. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <r3map/region.h>

#include "fault.h"
#include "testutil.h"

static struct r3m_region_options
quiet_opts (uint32_t chunk)
{
  struct r3m_region_options o;
  r3m_region_options_init (&o);
  o.chunk_size = chunk;
  o.pull_workers = 0;           /* demand fetches only: deterministic */
  o.push_window = 0;
  return o;
}

static void
test_options_defaults (void **state)
{
  struct r3m_region_options o;
  r3m_region_options_init (&o);
  assert_int_equal (o.chunk_size, 64 * 1024);
  assert_true (o.pull_workers > 0);
  assert_true (o.pull_window > 0);
  assert_true (o.push_window > 0);
  assert_true (o.push_interval_ms > 0);
  assert_int_equal (o.fetch_retries, 2);
  assert_true (o.close_timeout_ms > 0);
}

static void
test_open_rejects_bad_chunk_size (void **state)
{
  struct r3m_backend *remote = tu_memory (4096), *cache = tu_memory (4096);
  struct r3m_region_options o = quiet_opts (3);
  struct r3m_region *r;
  struct r3m_error err;
  assert_int_equal (r3m_region_open (remote, cache, &o, &r, &err), -EINVAL);
  assert_int_equal (err.code, EINVAL);
  assert_non_null (strstr (err.msg, "chunk size"));
  o.chunk_size = 0;
  assert_int_equal (r3m_region_open (remote, cache, &o, &r, NULL), -EINVAL);
  r3m_backend_close (remote);
  r3m_backend_close (cache);
}

static void
test_open_rejects_small_cache (void **state)
{
  struct r3m_backend *remote = tu_memory (8192), *cache = tu_memory (4096);
  struct r3m_region_options o = quiet_opts (1024);
  struct r3m_region *r;
  struct r3m_error err;
  assert_int_equal (r3m_region_open (remote, cache, &o, &r, &err), -EINVAL);
  assert_non_null (strstr (err.msg, "smaller"));
  r3m_backend_close (remote);
  r3m_backend_close (cache);
}

static void
test_open_null_options_uses_defaults (void **state)
{
  struct r3m_backend *remote = tu_memory (1 << 20), *cache = tu_memory (1 << 20);
  struct r3m_region *r;
  assert_int_equal (r3m_region_open (remote, cache, NULL, &r, NULL), 0);
  assert_int_equal (r3m_region_chunk_size (r), 64 * 1024);
  assert_int_equal (r3m_region_size (r), 1 << 20);
  assert_int_equal (r3m_region_close (r, NULL), 0);
  r3m_backend_close (remote);
  r3m_backend_close (cache);
}

/* The original's generic sweep: chunk sizes {2,4,8} x chunk counts
 * {16,64} x buffer sizes 1..128 x every offset.  Reads of untouched data
 * give zeros; every write reads back; the region matches a model. */
static void
sweep (bool direct)
{
  static const uint32_t sizes[] = { 2, 4, 8 };
  static const uint32_t counts[] = { 16, 64 };
  unsigned char buf[128], got[128];
  for (size_t si = 0; si < 3; si++)
    for (size_t ci = 0; ci < 2; ci++) {
      uint32_t cs = sizes[si];
      uint64_t size = (uint64_t) cs * counts[ci];
      struct r3m_backend *remote = tu_memory (size);
      struct r3m_backend *cache = direct ? NULL : tu_memory (size);
      struct r3m_region_options o = quiet_opts (cs);
      struct r3m_region *r;
      unsigned char *model = calloc (1, size);
      assert_int_equal (r3m_region_open (remote, cache, &o, &r, NULL), 0);
      uint64_t seed = si * 10 + ci;
      for (size_t len = 1; len <= 128; len++)
        for (uint64_t off = 0; off + len <= size; off++) {
          assert_int_equal (r3m_region_read (r, got, len, off), 0);
          assert_memory_equal (got, model + off, len);
          buf[0] = (unsigned char) tu_rand (&seed);
          for (size_t i = 1; i < len; i++)
            buf[i] = (unsigned char) (buf[i - 1] * 31 + 7);
          assert_int_equal (r3m_region_write (r, buf, len, off, 0), 0);
          memcpy (model + off, buf, len);
          assert_int_equal (r3m_region_read (r, got, len, off), 0);
          assert_memory_equal (got, buf, len);
        }
      assert_int_equal (r3m_region_close (r, NULL), 0);
      /* Everything written reached the remote on close. */
      unsigned char *all = malloc (size);
      assert_int_equal (r3m_backend_pread (remote, all, size, 0), 0);
      assert_memory_equal (all, model, size);
      free (all);
      free (model);
      r3m_backend_close (remote);
      r3m_backend_close (cache);
    }
}

static void
test_sweep_cached (void **state)
{
  sweep (false);
}

static void
test_sweep_direct (void **state)
{
  sweep (true);
}

/* Synced semantics: a local write reads back; a first read comes from the
 * remote; after the remote changes and the chunk is invalidated, a read
 * gives the new data. */
static void
test_local_write_then_read (void **state)
{
  struct r3m_backend *remote = tu_memory (4096), *cache = tu_memory (4096);
  struct r3m_region_options o = quiet_opts (256);
  struct r3m_region *r;
  unsigned char buf[256], got[256];
  assert_int_equal (r3m_region_open (remote, cache, &o, &r, NULL), 0);
  tu_pattern (1, buf, sizeof buf, 512);
  assert_int_equal (r3m_region_write (r, buf, sizeof buf, 512, 0), 0);
  assert_int_equal (r3m_region_read (r, got, sizeof got, 512), 0);
  assert_memory_equal (got, buf, sizeof buf);
  assert_int_equal (r3m_region_close (r, NULL), 0);
  r3m_backend_close (remote);
  r3m_backend_close (cache);
}

static void
test_remote_first_read (void **state)
{
  struct r3m_backend *remote = tu_memory (4096), *cache = tu_memory (4096);
  tu_fill (remote, 7);
  struct r3m_region_options o = quiet_opts (256);
  struct r3m_region *r;
  unsigned char got[1000];
  assert_int_equal (r3m_region_open (remote, cache, &o, &r, NULL), 0);
  assert_int_equal (r3m_region_read (r, got, sizeof got, 100), 0);
  unsigned char want[1000];
  tu_pattern (7, want, sizeof want, 100);
  assert_memory_equal (got, want, sizeof got);
  /* The fetched chunks are in the cache now. */
  assert_true (tu_check (cache, 7, 0, 1280));
  struct r3m_region_status st;
  r3m_region_status (r, &st);
  assert_int_equal (st.chunks_local, 5);
  assert_int_equal (st.fetches_demand, 5);
  assert_int_equal (st.chunks_dirty, 0);
  assert_int_equal (r3m_region_close (r, NULL), 0);
  r3m_backend_close (remote);
  r3m_backend_close (cache);
}

static void
test_invalidate_gives_new_remote_data (void **state)
{
  struct r3m_backend *remote = tu_memory (4096), *cache = tu_memory (4096);
  tu_fill (remote, 1);
  struct r3m_region_options o = quiet_opts (1024);
  struct r3m_region *r;
  unsigned char got[4096], want[4096];
  assert_int_equal (r3m_region_open (remote, cache, &o, &r, NULL), 0);
  assert_int_equal (r3m_region_read (r, got, sizeof got, 0), 0);
  tu_fill (remote, 2);
  uint64_t chunk = 2;
  assert_int_equal (r3m_region_invalidate (r, &chunk, 1), 0);
  assert_int_equal (r3m_region_read (r, got, sizeof got, 0), 0);
  tu_pattern (1, want, sizeof want, 0);
  tu_pattern (2, want + 2048, 1024, 2048);
  assert_memory_equal (got, want, sizeof got);
  assert_int_equal (r3m_region_invalidate (r, &(uint64_t) { 4 }, 1), -EINVAL);
  assert_int_equal (r3m_region_close (r, NULL), 0);
  r3m_backend_close (remote);
  r3m_backend_close (cache);
}

static void
test_out_of_range (void **state)
{
  struct r3m_backend *remote = tu_memory (4096), *cache = tu_memory (4096);
  struct r3m_region_options o = quiet_opts (1024);
  struct r3m_region *r;
  unsigned char buf[16] = { 0 };
  assert_int_equal (r3m_region_open (remote, cache, &o, &r, NULL), 0);
  assert_int_equal (r3m_region_read (r, buf, 16, 4090), -EINVAL);
  assert_int_equal (r3m_region_write (r, buf, 16, 4090, 0), -ENOSPC);
  assert_int_equal (r3m_region_read (r, buf, 1, UINT64_MAX), -EINVAL);
  assert_int_equal (r3m_region_read (r, buf, 0, 4096), 0);
  assert_int_equal (r3m_region_mark_dirty (r, 4000, 100), -EINVAL);
  assert_int_equal (r3m_region_close (r, NULL), 0);
  r3m_backend_close (remote);
  r3m_backend_close (cache);
}

static void
test_zero_partial_and_whole (void **state)
{
  struct r3m_backend *remote = tu_memory (8192), *cache = tu_memory (8192);
  tu_fill (remote, 3);
  struct r3m_region_options o = quiet_opts (1024);
  struct r3m_region *r;
  unsigned char got[8192], want[8192];
  assert_int_equal (r3m_region_open (remote, cache, &o, &r, NULL), 0);
  /* Partial chunk 0, whole chunks 1-3, partial chunk 4. */
  assert_int_equal (r3m_region_zero (r, 4096, 500, 0), 0);
  tu_pattern (3, want, sizeof want, 0);
  memset (want + 500, 0, 4096);
  assert_int_equal (r3m_region_read (r, got, sizeof got, 0), 0);
  assert_memory_equal (got, want, sizeof got);
  assert_int_equal (r3m_region_flush (r), 0);
  assert_int_equal (r3m_backend_pread (remote, got, sizeof got, 0), 0);
  assert_memory_equal (got, want, sizeof got);
  assert_int_equal (r3m_region_close (r, NULL), 0);
  r3m_backend_close (remote);
  r3m_backend_close (cache);
}

static void
test_fua_write_reaches_remote (void **state)
{
  struct r3m_backend *mem = tu_memory (8192), *remote, *cache = tu_memory (8192);
  struct tfault *f;
  assert_int_equal (tfault_new (mem, 1024, 0, &remote, &f), 0);
  struct r3m_region_options o = quiet_opts (1024);
  struct r3m_region *r;
  unsigned char buf[100];
  assert_int_equal (r3m_region_open (remote, cache, &o, &r, NULL), 0);
  tu_pattern (5, buf, sizeof buf, 3100);
  assert_int_equal (r3m_region_write (r, buf, sizeof buf, 3100, R3M_IO_FUA), 0);
  assert_true (tu_check (mem, 5, 3100, sizeof buf));
  assert_true (tfault_calls (f, R3M_IO_FLUSH) >= 1);
  assert_int_equal (tfault_chunks_written (f), 1);
  assert_int_equal (r3m_region_close (r, NULL), 0);
  r3m_backend_close (remote);
  r3m_backend_close (mem);
  r3m_backend_close (cache);
}

static void
test_direct_passes_through (void **state)
{
  struct r3m_backend *remote = tu_memory (4096);
  struct r3m_region_options o = quiet_opts (512);
  o.pull_workers = 2;
  o.push_window = 4;
  struct r3m_region *r;
  unsigned char buf[300], got[300];
  assert_int_equal (r3m_region_open (remote, NULL, &o, &r, NULL), 0);
  tu_pattern (9, buf, sizeof buf, 1000);
  assert_int_equal (r3m_region_write (r, buf, sizeof buf, 1000, 0), 0);
  assert_true (tu_check (remote, 9, 1000, sizeof buf));
  assert_int_equal (r3m_region_read (r, got, sizeof got, 1000), 0);
  assert_memory_equal (got, buf, sizeof buf);
  assert_int_equal (r3m_region_wait_pulled (r, 0), 0);
  struct r3m_region_status st;
  r3m_region_status (r, &st);
  assert_true (st.pull_done);
  assert_int_equal (st.chunks, 8);
  assert_int_equal (st.chunks_dirty, 0);
  assert_int_equal (r3m_region_trim (r, 512, 0), 0);
  assert_int_equal (r3m_region_flush (r), 0);
  assert_int_equal (r3m_region_close (r, NULL), 0);
  r3m_backend_close (remote);
}

static void
test_as_backend (void **state)
{
  struct r3m_backend *remote = tu_memory (8192), *cache = tu_memory (8192);
  tu_fill (remote, 4);
  struct r3m_region_options o = quiet_opts (1024);
  struct r3m_region *r;
  struct r3m_backend *b;
  unsigned char buf[700];
  assert_int_equal (r3m_region_open (remote, cache, &o, &r, NULL), 0);
  assert_int_equal (r3m_region_as_backend (r, &b, NULL), 0);
  assert_int_equal (r3m_backend_size (b), 8192);
  assert_true (tu_check (b, 4, 0, 8192));
  tu_pattern (6, buf, sizeof buf, 1500);
  assert_int_equal (r3m_backend_pwrite (b, buf, sizeof buf, 1500, 0), 0);
  assert_true (tu_check (b, 6, 1500, sizeof buf));
  assert_int_equal (r3m_backend_flush (b), 0);
  assert_true (tu_check (remote, 6, 1500, sizeof buf));
  /* Every chunk reads as data, fetched or not. */
  struct r3m_extent ext[4];
  size_t n;
  assert_int_equal (r3m_backend_extents (b, 0, 8192, ext, 4, &n), 0);
  assert_int_equal (n, 1);
  assert_int_equal (ext[0].len, 8192);
  assert_int_equal (ext[0].flags, 0);
  r3m_backend_close (b);
  assert_int_equal (r3m_region_close (r, NULL), 0);
  r3m_backend_close (remote);
  r3m_backend_close (cache);
}

static void
test_read_only_remote_refuses_writes (void **state)
{
  struct r3m_backend *remote, *cache = tu_memory (4096);
  assert_int_equal (r3m_backend_open ("memory:4096", R3M_OPEN_READ_ONLY,
                                      &remote, NULL), 0);
  struct r3m_region_options o = quiet_opts (1024);
  struct r3m_region *r;
  unsigned char buf[10] = { 0 };
  assert_int_equal (r3m_region_open (remote, cache, &o, &r, NULL), 0);
  assert_int_equal (r3m_region_read (r, buf, 10, 0), 0);
  assert_int_equal (r3m_region_write (r, buf, 10, 0, 0), -EPERM);
  assert_int_equal (r3m_region_zero (r, 10, 0, 0), -EPERM);
  assert_int_equal (r3m_region_trim (r, 10, 0), -EPERM);
  assert_int_equal (r3m_region_mark_dirty (r, 0, 10), -EPERM);
  struct r3m_backend *b;
  assert_int_equal (r3m_region_as_backend (r, &b, NULL), 0);
  assert_true (r3m_backend_get_info (b)->flags & R3M_BACKEND_READ_ONLY);
  assert_int_equal (r3m_backend_pwrite (b, buf, 10, 0, 0), -EPERM);
  r3m_backend_close (b);
  assert_int_equal (r3m_region_close (r, NULL), 0);
  r3m_backend_close (remote);
  r3m_backend_close (cache);
}

struct waiter {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  unsigned left;
  int err;
};

static void
io_done (struct r3m_io *io, int result)
{
  struct waiter *w = io->user;
  pthread_mutex_lock (&w->mu);
  if (result < 0)
    w->err = result;
  if (--w->left == 0)
    pthread_cond_signal (&w->cv);
  pthread_mutex_unlock (&w->mu);
}

/* Requests submitted to the backend view complete (on its threads). */
static void
test_as_backend_submit (void **state)
{
  struct r3m_backend *remote = tu_memory (8192), *cache = tu_memory (8192);
  tu_fill (remote, 8);
  struct r3m_region_options o = quiet_opts (1024);
  struct r3m_region *r;
  struct r3m_backend *b;
  assert_int_equal (r3m_region_open (remote, cache, &o, &r, NULL), 0);
  assert_int_equal (r3m_region_as_backend (r, &b, NULL), 0);
  struct waiter w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 8, 0 };
  static unsigned char bufs[8][1000];
  struct r3m_io io[8];
  for (int i = 0; i < 8; i++) {
    io[i] = (struct r3m_io) { .op = R3M_IO_READ, .buf = bufs[i], .len = 1000,
                              .off = (uint64_t) i * 1000, .done = io_done,
                              .user = &w };
    assert_int_equal (r3m_backend_submit (b, &io[i]), 0);
  }
  pthread_mutex_lock (&w.mu);
  while (w.left > 0)
    pthread_cond_wait (&w.cv, &w.mu);
  pthread_mutex_unlock (&w.mu);
  assert_int_equal (w.err, 0);
  for (int i = 0; i < 8; i++) {
    unsigned char want[1000];
    tu_pattern (8, want, 1000, (uint64_t) i * 1000);
    assert_memory_equal (bufs[i], want, 1000);
  }
  r3m_backend_close (b);
  assert_int_equal (r3m_region_close (r, NULL), 0);
  r3m_backend_close (remote);
  r3m_backend_close (cache);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_options_defaults),
    cmocka_unit_test (test_open_rejects_bad_chunk_size),
    cmocka_unit_test (test_open_rejects_small_cache),
    cmocka_unit_test (test_open_null_options_uses_defaults),
    cmocka_unit_test (test_sweep_cached),
    cmocka_unit_test (test_sweep_direct),
    cmocka_unit_test (test_local_write_then_read),
    cmocka_unit_test (test_remote_first_read),
    cmocka_unit_test (test_invalidate_gives_new_remote_data),
    cmocka_unit_test (test_out_of_range),
    cmocka_unit_test (test_zero_partial_and_whole),
    cmocka_unit_test (test_fua_write_reaches_remote),
    cmocka_unit_test (test_direct_passes_through),
    cmocka_unit_test (test_as_backend),
    cmocka_unit_test (test_read_only_remote_refuses_writes),
    cmocka_unit_test (test_as_backend_submit),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
