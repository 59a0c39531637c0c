/* Fault injection: failing and stalling remote and cache calls.  Errors
 * surface in return values and the status; nothing hangs, and close gives
 * up on a stalled backend after close_timeout_ms. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <r3map/region.h>

#include "fault.h"
#include "testutil.h"

#define CS 1024
#define NCHUNKS 8
#define SIZE (CS * NCHUNKS)

struct fx {
  struct r3m_backend *rmem, *cmem, *remote, *cache;
  struct tfault *rf, *cf;
  struct r3m_region *r;
};

static struct r3m_region_options
opts (void)
{
  struct r3m_region_options o;
  r3m_region_options_init (&o);
  o.chunk_size = CS;
  o.pull_workers = 0;
  o.push_interval_ms = 60000;
  o.fetch_retries = 0;
  o.close_timeout_ms = 300;
  return o;
}

static void
setup (struct fx *x, const struct r3m_region_options *o, unsigned threads)
{
  x->rmem = tu_memory (SIZE);
  x->cmem = tu_memory (SIZE);
  tu_fill (x->rmem, 1);
  assert_int_equal (tfault_new (x->rmem, CS, threads, &x->remote, &x->rf), 0);
  assert_int_equal (tfault_new (x->cmem, CS, threads, &x->cache, &x->cf), 0);
  assert_int_equal (r3m_region_open (x->remote, x->cache, o, &x->r, NULL), 0);
}

/* Release every stall, let late calls return, close the backends. */
static void
teardown (struct fx *x)
{
  tfault_release (x->rf);
  tfault_release (x->cf);
  assert_true (tfault_wait_idle (x->rf, 10000));
  assert_true (tfault_wait_idle (x->cf, 10000));
  r3m_backend_close (x->remote);
  r3m_backend_close (x->cache);
  r3m_backend_close (x->rmem);
  r3m_backend_close (x->cmem);
}

static void
test_fetch_failure_surfaces (void **state)
{
  struct fx x;
  struct r3m_region_options o = opts ();
  setup (&x, &o, 0);
  struct tfault_rule fail = { .ops = TF_OP (R3M_IO_READ), .times = 1,
                              .error = ECONNRESET };
  assert_int_equal (tfault_add (x.rf, &fail), 0);
  unsigned char buf[CS];
  assert_int_equal (r3m_region_read (x.r, buf, 100, 0), -ECONNRESET);
  struct r3m_region_status st;
  r3m_region_status (x.r, &st);
  assert_int_equal (st.errors, 1);
  assert_int_equal (st.last_error, ECONNRESET);
  assert_non_null (strstr (st.last_error_msg, "fetch of chunk 0"));
  assert_int_equal (st.chunks_local, 0);
  assert_int_equal (r3m_region_read (x.r, buf, 100, 0), 0);
  assert_int_equal (r3m_region_close (x.r, NULL), 0);
  teardown (&x);
}

static void
test_cache_store_failure_surfaces (void **state)
{
  struct fx x;
  struct r3m_region_options o = opts ();
  setup (&x, &o, 0);
  struct tfault_rule fail = { .ops = TF_OP (R3M_IO_WRITE), .times = 1,
                              .error = ENOSPC };
  assert_int_equal (tfault_add (x.cf, &fail), 0);
  unsigned char buf[CS];
  assert_int_equal (r3m_region_read (x.r, buf, CS, 2 * CS), -ENOSPC);
  struct r3m_region_status st;
  r3m_region_status (x.r, &st);
  assert_int_equal (st.last_error, ENOSPC);
  assert_int_equal (st.chunks_local, 0);
  assert_int_equal (r3m_region_read (x.r, buf, CS, 2 * CS), 0);
  assert_true (tu_check (x.cmem, 1, 2 * CS, CS));
  assert_int_equal (r3m_region_close (x.r, NULL), 0);
  teardown (&x);
}

static void
test_cache_read_failure_surfaces (void **state)
{
  struct fx x;
  struct r3m_region_options o = opts ();
  setup (&x, &o, 0);
  unsigned char buf[CS];
  assert_int_equal (r3m_region_read (x.r, buf, CS, 0), 0);
  struct tfault_rule fail = { .ops = TF_OP (R3M_IO_READ), .times = 1,
                              .error = EIO };
  assert_int_equal (tfault_add (x.cf, &fail), 0);
  assert_int_equal (r3m_region_read (x.r, buf, CS, 0), -EIO);
  assert_int_equal (r3m_region_read (x.r, buf, CS, 0), 0);
  assert_int_equal (r3m_region_close (x.r, NULL), 0);
  teardown (&x);
}

static void
test_push_failure_keeps_chunk_dirty (void **state)
{
  struct fx x;
  struct r3m_region_options o = opts ();
  setup (&x, &o, 0);
  unsigned char buf[10] = { 3 };
  assert_int_equal (r3m_region_write (x.r, buf, 10, 5 * CS, 0), 0);
  struct tfault_rule fail = { .ops = TF_OP (R3M_IO_WRITE), .times = 1,
                              .error = EIO };
  assert_int_equal (tfault_add (x.rf, &fail), 0);
  assert_int_equal (r3m_region_flush (x.r), -EIO);
  struct r3m_region_status st;
  r3m_region_status (x.r, &st);
  assert_int_equal (st.chunks_dirty, 1);
  assert_int_equal (r3m_region_flush (x.r), 0);
  r3m_region_status (x.r, &st);
  assert_int_equal (st.chunks_dirty, 0);
  unsigned char got[10];
  assert_int_equal (r3m_backend_pread (x.rmem, got, 10, 5 * CS), 0);
  assert_memory_equal (got, buf, 10);
  assert_int_equal (r3m_region_close (x.r, NULL), 0);
  teardown (&x);
}

static void
test_remote_flush_failure_surfaces (void **state)
{
  struct fx x;
  struct r3m_region_options o = opts ();
  setup (&x, &o, 0);
  struct tfault_rule fail = { .ops = TF_OP (R3M_IO_FLUSH), .error = EIO };
  assert_int_equal (tfault_add (x.rf, &fail), 0);
  assert_int_equal (r3m_region_flush (x.r), -EIO);
  assert_int_equal (r3m_region_close (x.r, NULL), -EIO);
  teardown (&x);
}

/* A demand read of one chunk stalls; reads of other chunks go on. */
struct reader {
  struct r3m_region *r;
  uint64_t off;
  atomic_int done;
  int rc;
};

static void *
reader (void *p)
{
  struct reader *a = p;
  unsigned char buf[CS];
  a->rc = r3m_region_read (a->r, buf, CS, a->off);
  atomic_store (&a->done, 1);
  return NULL;
}

static void
test_stalled_fetch_blocks_only_its_chunk (void **state)
{
  struct fx x;
  struct r3m_region_options o = opts ();
  setup (&x, &o, 2);
  struct tfault_rule stall = { .ops = TF_OP (R3M_IO_READ), .off = 3 * CS,
                               .len = CS, .stall = true };
  assert_int_equal (tfault_add (x.rf, &stall), 0);
  struct reader a = { .r = x.r, .off = 3 * CS }, b = { .r = x.r, .off = 3 * CS };
  pthread_t ta, tb;
  pthread_create (&ta, NULL, reader, &a);
  assert_true (tfault_wait_stalled (x.rf, 1, 10000));
  pthread_create (&tb, NULL, reader, &b);   /* waits for a's fetch */
  unsigned char buf[CS];
  assert_int_equal (r3m_region_read (x.r, buf, CS, 4 * CS), 0);
  assert_int_equal (r3m_region_read (x.r, buf, CS, 2 * CS), 0);
  assert_int_equal (atomic_load (&a.done), 0);
  tfault_release (x.rf);
  pthread_join (ta, NULL);
  pthread_join (tb, NULL);
  assert_int_equal (a.rc, 0);
  assert_int_equal (b.rc, 0);
  assert_int_equal (tfault_chunk_reads (x.rf, 3), 1);  /* fetched once */
  assert_int_equal (r3m_region_close (x.r, NULL), 0);
  teardown (&x);
}

/* The remote changes while a reader's fetch is in flight (data already
 * read) and the chunk is invalidated: the old bytes do not stay local. */
static void
test_invalidate_during_demand_fetch (void **state)
{
  struct fx x;
  struct r3m_region_options o = opts ();
  setup (&x, &o, 2);
  struct tfault_rule stall = { .ops = TF_OP (R3M_IO_READ), .times = 1,
                               .off = 3 * CS, .len = CS, .stall = true,
                               .after = true };
  assert_int_equal (tfault_add (x.rf, &stall), 0);
  struct reader a = { .r = x.r, .off = 3 * CS };
  pthread_t t;
  pthread_create (&t, NULL, reader, &a);
  assert_true (tfault_wait_stalled (x.rf, 1, 10000));
  unsigned char buf[CS];
  tu_pattern (2, buf, CS, 3 * CS);
  assert_int_equal (r3m_backend_pwrite (x.rmem, buf, CS, 3 * CS, 0), 0);
  uint64_t c = 3;
  assert_int_equal (r3m_region_invalidate (x.r, &c, 1), 0);
  tfault_release (x.rf);
  pthread_join (t, NULL);
  assert_int_equal (a.rc, 0);
  assert_true (tu_check (x.cmem, 2, 3 * CS, CS));
  unsigned char got[CS];
  assert_int_equal (r3m_region_read (x.r, got, CS, 3 * CS), 0);
  assert_memory_equal (got, buf, CS);
  assert_int_equal (r3m_region_close (x.r, NULL), 0);
  teardown (&x);
}

/* Close with the final push stalled forever: close returns -ETIMEDOUT
 * within its timeout; the data not pushed is lost to the remote. */
static void
test_close_with_stalled_push_times_out (void **state)
{
  struct fx x;
  struct r3m_region_options o = opts ();
  setup (&x, &o, 2);
  unsigned char buf[10] = { 1 };
  assert_int_equal (r3m_region_write (x.r, buf, 10, 0, 0), 0);
  struct tfault_rule stall = { .ops = TF_OP (R3M_IO_WRITE), .stall = true };
  assert_int_equal (tfault_add (x.rf, &stall), 0);
  struct r3m_error err;
  assert_int_equal (r3m_region_close (x.r, &err), -ETIMEDOUT);
  assert_int_equal (err.code, ETIMEDOUT);
  assert_non_null (strstr (err.msg, "close"));
  assert_int_equal (tfault_stalled (x.rf), 1);
  teardown (&x);
}

static void
test_close_with_stalled_remote_flush_times_out (void **state)
{
  struct fx x;
  struct r3m_region_options o = opts ();
  setup (&x, &o, 2);
  struct tfault_rule stall = { .ops = TF_OP (R3M_IO_FLUSH), .stall = true };
  assert_int_equal (tfault_add (x.rf, &stall), 0);
  assert_int_equal (r3m_region_close (x.r, NULL), -ETIMEDOUT);
  teardown (&x);
}

/* Background fetches stalled at close: nothing local is at risk, close
 * returns 0 after its timeout. */
static void
test_close_with_stalled_background_fetch (void **state)
{
  struct fx x;
  struct r3m_region_options o = opts ();
  o.pull_workers = 2;
  o.pull_window = 4;
  o.pull_request_size = CS;     /* several requests, each stalled */
  x.rmem = NULL;
  struct tfault_rule stall = { .ops = TF_OP (R3M_IO_READ), .stall = true };
  x.rmem = tu_memory (SIZE);
  x.cmem = tu_memory (SIZE);
  assert_int_equal (tfault_new (x.rmem, CS, 2, &x.remote, &x.rf), 0);
  assert_int_equal (tfault_new (x.cmem, CS, 0, &x.cache, &x.cf), 0);
  assert_int_equal (tfault_add (x.rf, &stall), 0);
  assert_int_equal (r3m_region_open (x.remote, x.cache, &o, &x.r, NULL), 0);
  assert_true (tfault_wait_stalled (x.rf, 2, 10000));
  assert_int_equal (r3m_region_close (x.r, NULL), 0);
  teardown (&x);
}

/* The cache stalls while the puller stores a chunk. */
static void
test_close_with_stalled_cache_store (void **state)
{
  struct fx x;
  struct r3m_region_options o = opts ();
  o.pull_workers = 1;
  x.rmem = tu_memory (SIZE);
  x.cmem = tu_memory (SIZE);
  assert_int_equal (tfault_new (x.rmem, CS, 0, &x.remote, &x.rf), 0);
  assert_int_equal (tfault_new (x.cmem, CS, 0, &x.cache, &x.cf), 0);
  struct tfault_rule stall = { .ops = TF_OP (R3M_IO_WRITE), .stall = true };
  assert_int_equal (tfault_add (x.cf, &stall), 0);
  assert_int_equal (r3m_region_open (x.remote, x.cache, &o, &x.r, NULL), 0);
  assert_true (tfault_wait_stalled (x.cf, 1, 10000));
  assert_int_equal (r3m_region_close (x.r, NULL), 0);
  /* The worker is still inside the cache call; it finishes on release
   * without touching the backends again. */
  tfault_release (x.cf);
  assert_true (tfault_wait_idle (x.cf, 10000));
  teardown (&x);
}

/* A stall that ends by itself (a slow backend) within the timeout: close
 * waits for it and pushes everything. */
static void
test_close_waits_for_slow_push (void **state)
{
  struct fx x;
  struct r3m_region_options o = opts ();
  o.close_timeout_ms = 10000;
  setup (&x, &o, 2);
  unsigned char buf[10] = { 8 };
  assert_int_equal (r3m_region_write (x.r, buf, 10, 6 * CS, 0), 0);
  struct tfault_rule slow = { .ops = TF_OP (R3M_IO_WRITE), .stall = true,
                              .stall_ms = 50 };
  assert_int_equal (tfault_add (x.rf, &slow), 0);
  assert_int_equal (r3m_region_close (x.r, NULL), 0);
  unsigned char got[10];
  assert_int_equal (r3m_backend_pread (x.rmem, got, 10, 6 * CS), 0);
  assert_memory_equal (got, buf, 10);
  teardown (&x);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_fetch_failure_surfaces),
    cmocka_unit_test (test_cache_store_failure_surfaces),
    cmocka_unit_test (test_cache_read_failure_surfaces),
    cmocka_unit_test (test_push_failure_keeps_chunk_dirty),
    cmocka_unit_test (test_remote_flush_failure_surfaces),
    cmocka_unit_test (test_stalled_fetch_blocks_only_its_chunk),
    cmocka_unit_test (test_invalidate_during_demand_fetch),
    cmocka_unit_test (test_close_with_stalled_push_times_out),
    cmocka_unit_test (test_close_with_stalled_remote_flush_times_out),
    cmocka_unit_test (test_close_with_stalled_background_fetch),
    cmocka_unit_test (test_close_with_stalled_cache_store),
    cmocka_unit_test (test_close_waits_for_slow_push),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
