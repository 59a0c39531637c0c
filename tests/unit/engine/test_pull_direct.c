/* The puller receiving runs straight into the cache's memory (a memory:
 * cache lends it through r3m_backend_direct): the bytes are in the cache
 * while the run's chunks are still BUSY, so nothing may read them, write
 * under them or keep them unless the run finishes well.  Runs that land in
 * place, a failed run that leaves nothing readable (and a retried one that
 * does), writes and invalidations racing a run whose bytes already landed,
 * close with a run still landing, and the fallback through a buffer when
 * the cache lends no memory (file:, dir:). */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <r3map/region.h>

#include "fault.h"
#include "testutil.h"
#include "pull_fixture.h"
#include "region_writer.h"

#define CS 4096                 /* whole pages: the populate path runs */
#define NCHUNKS 32
#define SIZE (CS * NCHUNKS)
#define RUN 4                   /* chunks per request in these tests */

static struct r3m_region_options
opts (void)
{
  struct r3m_region_options o;
  r3m_region_options_init (&o);
  o.chunk_size = CS;
  o.pull_workers = 1;
  o.pull_window = 2;
  o.pull_request_size = RUN * CS;
  o.push_window = 0;
  o.fetch_retries = 0;
  return o;
}

/* The run fixture with the cache's lent memory at hand. */
static void
setup (struct pull_fx *x, uint64_t seed, unsigned threads)
{
  pull_fx_setup (x, CS, SIZE, seed, threads);
  x->cmem = r3m_backend_direct (x->cache);
  assert_non_null (x->cmem);
}

static void
open_with_first_read_stalled (struct pull_fx *x)
{
  struct r3m_region_options o = opts ();
  pull_fx_open_with_first_read_stalled (x, &o);
}

static bool
mem_check (const unsigned char *p, uint64_t seed, uint64_t off, size_t len)
{
  for (size_t i = 0; i < len; i++)
    if (p[off + i] != tu_pattern_byte (seed, off + i))
      return false;
  return true;
}

static bool
mem_zero (const unsigned char *p, uint64_t off, size_t len)
{
  for (size_t i = 0; i < len; i++)
    if (p[off + i] != 0)
      return false;
  return true;
}

/* Whole pull through inline and threaded remotes: every byte lands in
 * the cache, one request per run, and the cache is never written through
 * its pwrite (the tfault wrapper would count it; here the memory itself is
 * checked, and the counters of the region). */
static void
pull_all (unsigned threads, uint64_t seed)
{
  struct pull_fx x;
  setup (&x, seed, threads);
  struct r3m_region_options o = opts ();
  pull_fx_open (&x, &o);
  assert_int_equal (r3m_region_wait_pulled (x.r, 10000), 0);
  assert_true (mem_check (x.cmem, seed, 0, SIZE));
  assert_int_equal (tfault_calls (x.f, R3M_IO_READ), NCHUNKS / RUN);
  struct r3m_region_status st;
  r3m_region_status (x.r, &st);
  assert_int_equal (st.fetches_background, NCHUNKS);
  assert_int_equal (st.bytes_fetched, SIZE);
  assert_int_equal (st.chunks_local, NCHUNKS);
  assert_int_equal (st.errors, 0);
  unsigned char got[3 * CS];
  assert_int_equal (r3m_region_read (x.r, got, sizeof got, 5 * CS + 7), 0);
  unsigned char want[3 * CS];
  tu_pattern (seed, want, sizeof want, 5 * CS + 7);
  assert_memory_equal (got, want, sizeof got);
  pull_fx_teardown (&x);
}

static void
test_runs_land_inline (void **state)
{
  pull_all (0, 90);
}

static void
test_runs_land_threaded (void **state)
{
  pull_all (2, 91);
}

/* The cache was touched before (its pages are present, so populate is
 * skipped): the data still lands whole. */
static void
test_runs_land_in_warm_cache (void **state)
{
  struct pull_fx x;
  setup (&x, 92, 2);
  memset (x.cmem, 0xa5, SIZE);
  struct r3m_region_options o = opts ();
  pull_fx_open (&x, &o);
  assert_int_equal (r3m_region_wait_pulled (x.r, 10000), 0);
  assert_true (mem_check (x.cmem, 92, 0, SIZE));
  pull_fx_teardown (&x);
}

/* The bytes of a run are in the cache before the request completes, but
 * the chunks are not readable as local until it does: a reader waits. */
struct reader {
  struct r3m_region *r;
  uint64_t off;
  size_t len;
  unsigned char buf[2 * CS];
  atomic_bool done;
  int result;
};

static void *
read_thread (void *p)
{
  struct reader *rd = p;
  rd->result = r3m_region_read (rd->r, rd->buf, rd->len, rd->off);
  atomic_store (&rd->done, true);
  return NULL;
}

static void
pause_ms (long ms)
{
  struct timespec ts = { ms / 1000, (ms % 1000) * 1000 * 1000 };
  nanosleep (&ts, NULL);
}

static void
test_landed_run_waits_for_completion (void **state)
{
  struct pull_fx x;
  setup (&x, 93, 2);
  open_with_first_read_stalled (&x);
  /* Run [0-3] is read, so its bytes are in the cache already ... */
  assert_true (mem_check (x.cmem, 93, 0, RUN * CS));
  struct r3m_region_status st;
  r3m_region_status (x.r, &st);
  assert_true (st.chunks_local <= NCHUNKS - RUN);
  /* ... but a reader of them waits for the run. */
  struct reader rd = { .r = x.r, .off = CS, .len = CS };
  pthread_t t;
  assert_int_equal (pthread_create (&t, NULL, read_thread, &rd), 0);
  pause_ms (50);
  assert_false (atomic_load (&rd.done));
  tfault_release (x.f);
  pthread_join (t, NULL);
  assert_int_equal (rd.result, 0);
  unsigned char want[CS];
  tu_pattern (93, want, CS, CS);
  assert_memory_equal (rd.buf, want, CS);
  /* Fetched once, by the run. */
  assert_int_equal (tfault_chunk_reads (x.f, 1), 1);
  assert_int_equal (r3m_region_wait_pulled (x.r, 10000), 0);
  pull_fx_teardown (&x);
}

/* A run whose bytes arrived but whose request failed (no retries): its
 * chunks stay REMOTE, the bytes are dropped from the cache, and nothing
 * reads them while the remote still fails; once it answers, reads get
 * the remote's bytes. */
static void
test_failed_run_leaves_nothing_readable (void **state)
{
  struct pull_fx x;
  setup (&x, 94, 2);
  struct tfault_rule fail = { .ops = TF_OP (R3M_IO_READ), .off = 0,
                              .len = RUN * CS, .error = EIO, .after = true };
  assert_int_equal (tfault_add (x.f, &fail), 0);
  struct r3m_region_options o = opts ();
  o.pull_window = 1;
  pull_fx_open (&x, &o);
  /* The pull stops at the first failure. */
  assert_int_equal (r3m_region_wait_pulled (x.r, 10000), -EIO);
  struct r3m_region_status st;
  r3m_region_status (x.r, &st);
  assert_int_equal (st.chunks_local, 0);
  assert_int_equal (st.fetches_background, 0);
  assert_int_equal (st.bytes_fetched, 0);
  assert_true (mem_zero (x.cmem, 0, RUN * CS));
  unsigned char got[CS];
  assert_int_equal (r3m_region_read (x.r, got, CS, 2 * CS), -EIO);
  r3m_region_status (x.r, &st);
  assert_int_equal (st.chunks_local, 0);

  tfault_clear (x.f);
  assert_int_equal (r3m_region_read (x.r, got, CS, 2 * CS), 0);
  unsigned char want[CS];
  tu_pattern (94, want, CS, 2 * CS);
  assert_memory_equal (got, want, CS);
  pull_fx_teardown (&x);
}

/* The run fails once after its bytes arrived; the retry (chunk by chunk)
 * lands them again and every chunk becomes local with the right data. */
static void
test_failed_run_retried (void **state)
{
  struct pull_fx x;
  setup (&x, 95, 2);
  struct tfault_rule fail = { .ops = TF_OP (R3M_IO_READ), .times = 1,
                              .error = EIO, .after = true };
  assert_int_equal (tfault_add (x.f, &fail), 0);
  struct r3m_region_options o = opts ();
  o.fetch_retries = 2;
  pull_fx_open (&x, &o);
  assert_int_equal (r3m_region_wait_pulled (x.r, 10000), 0);
  assert_true (mem_check (x.cmem, 95, 0, SIZE));
  for (uint64_t c = 0; c < RUN; c++)
    assert_int_equal (tfault_chunk_reads (x.f, c), 2);
  struct r3m_region_status st;
  r3m_region_status (x.r, &st);
  assert_int_equal (st.chunks_local, NCHUNKS);
  assert_int_equal (st.fetches_background, NCHUNKS);
  assert_int_equal (st.bytes_fetched, SIZE);
  pull_fx_teardown (&x);
}

/* Writes to chunks of a run whose bytes already landed in the cache: they
 * wait for the run, so the run's bytes never cover them (a whole-chunk
 * write and a partial one). */
static void
test_write_racing_landed_run (void **state)
{
  struct pull_fx x;
  setup (&x, 96, 2);
  open_with_first_read_stalled (&x);

  struct region_writer whole = {
    .r = x.r, .off = 1 * CS, .len = CS, .seed = 97 };
  struct region_writer part = {
    .r = x.r, .off = 2 * CS + 100, .len = 50, .seed = 98 };
  pthread_t t1, t2;
  assert_int_equal (pthread_create (&t1, NULL, region_writer_main,
                                    &whole), 0);
  assert_int_equal (pthread_create (&t2, NULL, region_writer_main,
                                    &part), 0);
  pause_ms (50);
  assert_false (atomic_load (&whole.done));
  assert_false (atomic_load (&part.done));
  /* Nothing of the writes reached the cache under the run. */
  assert_true (mem_check (x.cmem, 96, 0, RUN * CS));
  tfault_release (x.f);
  pthread_join (t1, NULL);
  pthread_join (t2, NULL);
  assert_int_equal (whole.result, 0);
  assert_int_equal (part.result, 0);
  assert_int_equal (r3m_region_wait_pulled (x.r, 10000), 0);
  assert_true (mem_check (x.cmem, 96, 0, CS));
  assert_true (mem_check (x.cmem, 97, CS, CS));
  assert_true (mem_check (x.cmem, 96, 2 * CS, 100));
  assert_true (mem_check (x.cmem, 98, 2 * CS + 100, 50));
  assert_true (mem_check (x.cmem, 96, 2 * CS + 150, SIZE - 2 * CS - 150));
  assert_int_equal (tfault_chunk_reads (x.f, 1), 1);
  assert_int_equal (tfault_chunk_reads (x.f, 2), 1);
  assert_int_equal (r3m_region_flush (x.r), 0);
  assert_true (tu_check (x.mem, 97, CS, CS));
  assert_true (tu_check (x.mem, 98, 2 * CS + 100, 50));
  pull_fx_teardown (&x);
}

/* A chunk of a landed run is invalidated (the remote changed) before the
 * run completes: the old bytes in the cache do not make it local; it is
 * fetched again and holds the new bytes. */
static void
test_invalidate_landed_run (void **state)
{
  struct pull_fx x;
  setup (&x, 99, 2);
  open_with_first_read_stalled (&x);
  assert_true (mem_check (x.cmem, 99, 0, RUN * CS));   /* old bytes landed */
  unsigned char buf[CS];
  tu_pattern (100, buf, CS, 3 * CS);
  assert_int_equal (r3m_backend_pwrite (x.mem, buf, CS, 3 * CS, 0), 0);
  uint64_t c = 3;
  assert_int_equal (r3m_region_invalidate (x.r, &c, 1), 0);
  tfault_release (x.f);
  assert_int_equal (r3m_region_wait_pulled (x.r, 10000), 0);
  assert_true (mem_check (x.cmem, 99, 0, 3 * CS));
  assert_true (mem_check (x.cmem, 100, 3 * CS, CS));
  assert_true (mem_check (x.cmem, 99, 4 * CS, SIZE - 4 * CS));
  assert_int_equal (tfault_chunk_reads (x.f, 3), 2);
  unsigned char got[CS];
  assert_int_equal (r3m_region_read (x.r, got, CS, 3 * CS), 0);
  assert_memory_equal (got, buf, CS);
  pull_fx_teardown (&x);
}

/* Zero extents still skip the transfer when runs land in place: a remote
 * that reports chunks 8-15 as zeros (its bytes there are zeros too). */
static int
zx_pread (void *self, void *buf, size_t len, uint64_t off)
{
  return r3m_backend_pread (self, buf, len, off);
}

static int
zx_pwrite (void *self, const void *buf, size_t len, uint64_t off,
           unsigned flags)
{
  return r3m_backend_pwrite (self, buf, len, off, flags);
}

static int
zx_extents (void *self, uint64_t off, uint64_t len, struct r3m_extent *ext,
            size_t max, size_t *n)
{
  (void) self;
  const uint64_t zs = 8 * CS, ze = 16 * CS;
  *n = 0;
  while (len > 0 && *n < max) {
    uint64_t end = off < zs ? zs : off < ze ? ze : SIZE;
    if (end > off + len)
      end = off + len;
    ext[*n] = (struct r3m_extent) {
      .len = end - off,
      .flags = off >= zs && off < ze ? R3M_EXTENT_ZERO | R3M_EXTENT_HOLE : 0,
    };
    (*n)++;
    len -= end - off;
    off = end;
  }
  return 0;
}

static void
zx_close (void *self)
{
  (void) self;
}

static const struct r3m_backend_ops zx_ops = {
  .name = "zero-extents", .pread = zx_pread, .pwrite = zx_pwrite,
  .extents = zx_extents,
  .close = zx_close,
};

static void
test_zero_extents_skip_transfer (void **state)
{
  struct pull_fx x;
  setup (&x, 101, 0);
  assert_int_equal (r3m_backend_zero (x.mem, 8 * CS, 8 * CS, 0), 0);
  struct r3m_backend_info info = { .size = SIZE, .align = 1,
                                   .async_threads = 2 };
  struct r3m_backend *outer;
  assert_int_equal (r3m_backend_new (&zx_ops, x.remote, &info, "zx", &outer,
                                     NULL), 0);
  struct r3m_region_options o = opts ();
  assert_int_equal (r3m_region_open (outer, x.cache, &o, &x.r, NULL), 0);
  assert_int_equal (r3m_region_wait_pulled (x.r, 10000), 0);
  assert_true (mem_check (x.cmem, 101, 0, 8 * CS));
  assert_true (mem_zero (x.cmem, 8 * CS, 8 * CS));
  assert_true (mem_check (x.cmem, 101, 16 * CS, SIZE - 16 * CS));
  for (uint64_t c = 8; c < 16; c++)
    assert_int_equal (tfault_chunk_reads (x.f, c), 0);
  assert_int_equal (tfault_calls (x.f, R3M_IO_READ), (NCHUNKS - 8) / RUN);
  struct r3m_region_status st;
  r3m_region_status (x.r, &st);
  assert_int_equal (st.chunks_local, NCHUNKS);
  assert_int_equal (st.bytes_fetched, SIZE - 8 * CS);
  assert_int_equal (r3m_region_close (x.r, NULL), 0);
  x.r = NULL;
  r3m_backend_close (outer);
  pull_fx_teardown (&x);
}

/* Close while a run is still being received into the cache's memory: the
 * remote may still write into the cache, so close says -ETIMEDOUT and the
 * backends must stay open until the stalled call returns. */
static void
test_close_with_run_landing (void **state)
{
  struct pull_fx x;
  setup (&x, 102, 2);
  struct tfault_rule stall = { .ops = TF_OP (R3M_IO_READ), .stall = true };
  assert_int_equal (tfault_add (x.f, &stall), 0);
  struct r3m_region_options o = opts ();
  o.close_timeout_ms = 200;
  pull_fx_open (&x, &o);
  assert_true (tfault_wait_stalled (x.f, 2, 10000));
  struct r3m_error err;
  assert_int_equal (r3m_region_close (x.r, &err), -ETIMEDOUT);
  assert_int_equal (err.code, ETIMEDOUT);
  assert_non_null (strstr (err.msg, "close"));
  x.r = NULL;
  /* The stalled reads go on and land; then the backends may go. */
  tfault_release (x.f);
  assert_true (tfault_wait_idle (x.f, 10000));
  pull_fx_teardown (&x);
}

/* The same close with a cache that lends no memory: runs go to slot
 * buffers, nothing can reach the cache late, close returns 0. */
static void
test_close_with_run_buffered (void **state)
{
  struct pull_fx x;
  setup (&x, 103, 2);
  x.inner_cache = x.cache;
  assert_int_equal (tfault_new (x.inner_cache, CS, 0, &x.cache, &x.cf), 0);
  assert_null (r3m_backend_direct (x.cache));
  struct tfault_rule stall = { .ops = TF_OP (R3M_IO_READ), .stall = true };
  assert_int_equal (tfault_add (x.f, &stall), 0);
  struct r3m_region_options o = opts ();
  o.close_timeout_ms = 200;
  pull_fx_open (&x, &o);
  assert_true (tfault_wait_stalled (x.f, 2, 10000));
  assert_int_equal (r3m_region_close (x.r, NULL), 0);
  x.r = NULL;
  tfault_release (x.f);
  assert_true (tfault_wait_idle (x.f, 10000));
  pull_fx_teardown (&x);
}

/* Caches that lend no memory (file:, dir:, behind a counting wrapper):
 * runs are received into buffers and stored with one cache write each. */
static void
pull_fallback (const char *scheme, uint64_t seed)
{
  struct pull_fx x;
  setup (&x, seed, 2);
  r3m_backend_close (x.cache);
  x.cmem = NULL;
  snprintf (x.dir, sizeof x.dir, "/tmp/r3m-pull-direct-XXXXXX");
  assert_non_null (mkdtemp (x.dir));
  char uri[256];
  if (strcmp (scheme, "file") == 0)
    snprintf (uri, sizeof uri, "file:%s/cache?size=%d", x.dir, SIZE);
  else
    snprintf (uri, sizeof uri, "dir:%s/cache?size=%d&chunk=%d", x.dir, SIZE,
              CS);
  struct r3m_error err = { 0 };
  assert_int_equal (r3m_backend_open (uri, 0, &x.inner_cache, &err), 0);
  assert_null (r3m_backend_direct (x.inner_cache));
  assert_int_equal (tfault_new (x.inner_cache, CS, 0, &x.cache, &x.cf), 0);
  struct r3m_region_options o = opts ();
  pull_fx_open (&x, &o);
  assert_int_equal (r3m_region_wait_pulled (x.r, 10000), 0);
  assert_true (tu_check (x.inner_cache, seed, 0, SIZE));
  assert_int_equal (tfault_calls (x.cf, R3M_IO_WRITE), NCHUNKS / RUN);
  assert_int_equal (tfault_calls (x.f, R3M_IO_READ), NCHUNKS / RUN);
  struct r3m_region_status st;
  r3m_region_status (x.r, &st);
  assert_int_equal (st.chunks_local, NCHUNKS);
  assert_int_equal (st.bytes_fetched, SIZE);
  pull_fx_teardown (&x);
}

static void
test_fallback_file_cache (void **state)
{
  pull_fallback ("file", 104);
}

static void
test_fallback_dir_cache (void **state)
{
  pull_fallback ("dir", 105);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_runs_land_inline),
    cmocka_unit_test (test_runs_land_threaded),
    cmocka_unit_test (test_runs_land_in_warm_cache),
    cmocka_unit_test (test_landed_run_waits_for_completion),
    cmocka_unit_test (test_failed_run_leaves_nothing_readable),
    cmocka_unit_test (test_failed_run_retried),
    cmocka_unit_test (test_write_racing_landed_run),
    cmocka_unit_test (test_invalidate_landed_run),
    cmocka_unit_test (test_zero_extents_skip_transfer),
    cmocka_unit_test (test_close_with_run_landing),
    cmocka_unit_test (test_close_with_run_buffered),
    cmocka_unit_test (test_fallback_file_cache),
    cmocka_unit_test (test_fallback_dir_cache),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
