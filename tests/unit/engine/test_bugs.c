/* One test per bug of the original (reference §12) that applies to the
 * region engine, named after it.  Bug 10 (write during push) is in
 * test_pusher.c; bug 12 also in test_puller.c (invalidate before pull).
 * Bugs 1-7 are the authors' documented limits, 16-20 belong to backends,
 * the NBD layer and device handling, not to the engine. */
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
opts (uint32_t cs)
{
  struct r3m_region_options o;
  r3m_region_options_init (&o);
  o.chunk_size = cs;
  o.push_interval_ms = 60000;
  o.close_timeout_ms = 5000;
  return o;
}

/* Bug 8: the defaults run background pull and push; 0 workers or window
 * disables them, as documented. */
static void
test_bug08_defaults_enable_pull_and_push (void **state)
{
  struct r3m_backend *remote = tu_memory (1 << 20), *cache = tu_memory (1 << 20);
  tu_fill (remote, 1);
  struct r3m_region *r;
  assert_int_equal (r3m_region_open (remote, cache, NULL, &r, NULL), 0);
  assert_int_equal (r3m_region_wait_pulled (r, 10000), 0);
  assert_true (tu_check (cache, 1, 0, 1 << 20));
  unsigned char buf[10] = { 9, 9, 9 };
  assert_int_equal (r3m_region_write (r, buf, 10, 5000, 0), 0);
  assert_int_equal (r3m_region_close (r, NULL), 0);
  unsigned char got[10];
  assert_int_equal (r3m_backend_pread (remote, got, 10, 5000), 0);
  assert_memory_equal (got, buf, 10);

  struct r3m_region_options o = opts (4096);
  o.pull_workers = 0;
  assert_int_equal (r3m_region_open (remote, cache, &o, &r, NULL), 0);
  assert_int_equal (r3m_region_wait_pulled (r, 0), -ETIMEDOUT);
  struct r3m_region_status st;
  r3m_region_status (r, &st);
  assert_int_equal (st.fetches_background, 0);
  assert_int_equal (r3m_region_close (r, NULL), 0);
  r3m_backend_close (remote);
  r3m_backend_close (cache);
}

/* Bug 9: on_chunk_local fires for written chunks whatever the push
 * configuration (here: no background push, no puller). */
struct counts {
  pthread_mutex_t mu;
  unsigned n[16];
};

static void
count_local (uint64_t c, void *user)
{
  struct counts *k = user;
  pthread_mutex_lock (&k->mu);
  k->n[c]++;
  pthread_mutex_unlock (&k->mu);
}

static void
test_bug09_on_chunk_local_without_push (void **state)
{
  struct r3m_backend *remote = tu_memory (16 * 256), *cache = tu_memory (16 * 256);
  struct counts k = { .mu = PTHREAD_MUTEX_INITIALIZER };
  struct r3m_region_options o = opts (256);
  o.pull_workers = 0;
  o.push_window = 0;
  o.on_chunk_local = count_local;
  o.on_chunk_local_user = &k;
  struct r3m_region *r;
  assert_int_equal (r3m_region_open (remote, cache, &o, &r, NULL), 0);
  unsigned char buf[512] = { 0 };
  assert_int_equal (r3m_region_write (r, buf, 512, 256, 0), 0); /* 1, 2 whole */
  assert_int_equal (r3m_region_write (r, buf, 10, 1030, 0), 0); /* 4 partial */
  assert_int_equal (r3m_region_write (r, buf, 10, 1040, 0), 0); /* 4 again */
  assert_int_equal (r3m_region_read (r, buf, 10, 10 * 256), 0); /* 10 read */
  for (unsigned c = 0; c < 16; c++)
    assert_int_equal (k.n[c], c == 1 || c == 2 || c == 4 || c == 10);
  assert_int_equal (r3m_region_close (r, NULL), 0);
  r3m_backend_close (remote);
  r3m_backend_close (cache);
}

/* Bug 11: failures of the pusher need nobody to drain anything: flush and
 * close return the error, the status records it, nothing hangs. */
static void
test_bug11_push_errors_need_no_draining (void **state)
{
  struct r3m_backend *mem = tu_memory (8192), *remote, *cache = tu_memory (8192);
  struct tfault *f;
  assert_int_equal (tfault_new (mem, 1024, 2, &remote, &f), 0);
  struct tfault_rule fail = { .ops = TF_OP (R3M_IO_WRITE), .error = EROFS };
  assert_int_equal (tfault_add (f, &fail), 0);
  struct r3m_region_options o = opts (1024);
  o.push_interval_ms = 5;      /* failing rounds keep running meanwhile */
  struct r3m_region *r;
  assert_int_equal (r3m_region_open (remote, cache, &o, &r, NULL), 0);
  unsigned char buf[3000] = { 1 };
  assert_int_equal (r3m_region_write (r, buf, sizeof buf, 100, 0), 0);
  assert_int_equal (r3m_region_flush (r), -EROFS);
  struct r3m_region_status st;
  r3m_region_status (r, &st);
  assert_int_equal (st.last_error, EROFS);
  assert_int_equal (st.chunks_dirty, 4);
  assert_true (st.errors >= 4);
  struct r3m_error err;
  assert_int_equal (r3m_region_close (r, &err), -EROFS);
  assert_int_equal (err.code, EROFS);
  assert_non_null (strstr (err.msg, "push of chunk"));
  r3m_backend_close (remote);
  r3m_backend_close (mem);
  r3m_backend_close (cache);
}

/* Bug 12: progress counts distinct chunks.  Chunks invalidated before
 * they were ever pulled (and invalidated twice) count once; nothing
 * waits for a count that cannot be reached. */
static void
test_bug12_progress_counts_distinct_chunks (void **state)
{
  struct r3m_backend *remote = tu_memory (8 * 512), *cache = tu_memory (8 * 512);
  tu_fill (remote, 3);
  struct r3m_region_options o = opts (512);
  o.pull_workers = 0;
  struct r3m_region *r;
  assert_int_equal (r3m_region_open (remote, cache, &o, &r, NULL), 0);
  uint64_t dirty[] = { 7, 7, 0, 3, 3 };
  assert_int_equal (r3m_region_invalidate (r, dirty, 5), 0);
  assert_int_equal (r3m_region_invalidate (r, dirty, 5), 0);
  unsigned char buf[8 * 512];
  assert_int_equal (r3m_region_read (r, buf, sizeof buf, 0), 0);
  assert_int_equal (r3m_region_wait_pulled (r, 0), 0);
  struct r3m_region_status st;
  r3m_region_status (r, &st);
  assert_int_equal (st.chunks_local, 8);
  assert_int_equal (st.bytes_fetched, 8 * 512);
  assert_int_equal (r3m_region_close (r, NULL), 0);

  /* With a puller: invalidating never-pulled chunks does not hang. */
  o.pull_workers = 2;
  assert_int_equal (r3m_region_open (remote, cache, &o, &r, NULL), 0);
  assert_int_equal (r3m_region_invalidate (r, dirty, 5), 0);
  assert_int_equal (r3m_region_wait_pulled (r, 10000), 0);
  r3m_region_status (r, &st);
  assert_int_equal (st.chunks_local, 8);
  assert_int_equal (r3m_region_close (r, NULL), 0);
  r3m_backend_close (remote);
  r3m_backend_close (cache);
}

/* Bug 13: two workers failing at once cannot deadlock, and nobody has to
 * drain their errors. */
static void
test_bug13_two_workers_failing_at_once (void **state)
{
  struct r3m_backend *mem = tu_memory (64 * 256), *remote;
  struct r3m_backend *cache = tu_memory (64 * 256);
  struct tfault *f;
  assert_int_equal (tfault_new (mem, 256, 4, &remote, &f), 0);
  struct tfault_rule fail = { .ops = TF_OP (R3M_IO_READ), .error = EIO };
  assert_int_equal (tfault_add (f, &fail), 0);
  struct r3m_region_options o = opts (256);
  o.pull_workers = 2;
  o.pull_window = 8;
  o.fetch_retries = 0;
  struct r3m_region *r;
  assert_int_equal (r3m_region_open (remote, cache, &o, &r, NULL), 0);
  assert_int_equal (r3m_region_wait_pulled (r, 10000), -EIO);
  assert_int_equal (r3m_region_wait_pulled (r, -1), -EIO);
  struct r3m_region_status st;
  r3m_region_status (r, &st);
  assert_true (st.errors >= 1);
  assert_int_equal (st.chunks_local, 0);
  assert_int_equal (r3m_region_close (r, NULL), 0);
  r3m_backend_close (remote);
  r3m_backend_close (mem);
  r3m_backend_close (cache);
}

/* Bug 14: error paths release their locks: after failures the same
 * chunks read and write normally. */
static void
test_bug14_error_paths_release_locks (void **state)
{
  struct r3m_backend *mem = tu_memory (8 * 512), *remote;
  struct r3m_backend *cache = tu_memory (8 * 512);
  struct tfault *f;
  tu_fill (mem, 4);
  assert_int_equal (tfault_new (mem, 512, 0, &remote, &f), 0);
  struct tfault_rule fail = { .ops = TF_OP (R3M_IO_READ), .times = 4,
                              .off = 3 * 512, .len = 512, .error = EIO };
  assert_int_equal (tfault_add (f, &fail), 0);
  struct r3m_region_options o = opts (512);
  o.pull_workers = 0;
  o.fetch_retries = 1;
  struct r3m_region *r;
  assert_int_equal (r3m_region_open (remote, cache, &o, &r, NULL), 0);
  unsigned char buf[2048];
  assert_int_equal (r3m_region_read (r, buf, 1024, 1024), -EIO);  /* 2, 3 */
  assert_int_equal (r3m_region_write (r, buf, 10, 3 * 512 + 7, 0), -EIO);
  /* The fault is spent: the same chunk now works both ways. */
  assert_int_equal (r3m_region_read (r, buf, 2048, 0), 0);
  assert_true (tu_check (cache, 4, 0, 2048));
  unsigned char w[10] = { 5 };
  assert_int_equal (r3m_region_write (r, w, 10, 3 * 512 + 7, 0), 0);
  assert_int_equal (r3m_region_flush (r), 0);
  assert_int_equal (r3m_backend_pread (mem, buf, 10, 3 * 512 + 7), 0);
  assert_memory_equal (buf, w, 10);
  assert_int_equal (r3m_region_close (r, NULL), 0);
  r3m_backend_close (remote);
  r3m_backend_close (mem);
  r3m_backend_close (cache);
}

/* Bug 15: data a store never had reads as zeros, whatever the caller's
 * buffer or the engine's own buffers held before (the original reused one
 * chunk buffer and leaked the previous chunk's bytes). */
static void
test_bug15_missing_data_reads_as_zeros (void **state)
{
  struct r3m_backend *remote = tu_memory (8 * 256), *cache = tu_memory (8 * 256);
  unsigned char data[256];
  tu_pattern (5, data, 256, 0);
  assert_int_equal (r3m_backend_pwrite (remote, data, 256, 0, 0), 0);
  struct r3m_region_options o = opts (256);
  o.pull_workers = 0;
  struct r3m_region *r;
  assert_int_equal (r3m_region_open (remote, cache, &o, &r, NULL), 0);
  unsigned char buf[700], zeros[700] = { 0 };
  /* Chunk 0 has data; 1 and 2 were never written; partial at both ends. */
  memset (buf, 0xff, sizeof buf);
  assert_int_equal (r3m_region_read (r, buf, 600, 100), 0);
  assert_memory_equal (buf, data + 100, 156);
  assert_memory_equal (buf + 156, zeros, 444);
  /* Read-modify-write of missing chunks 4 and 5 after chunk 0's data went
   * through the engine: the untouched bytes stay zero. */
  unsigned char w[20];
  memset (w, 0x77, sizeof w);
  assert_int_equal (r3m_region_write (r, w, 20, 4 * 256 + 250, 0), 0);
  memset (buf, 0xff, sizeof buf);
  assert_int_equal (r3m_region_read (r, buf, 512, 4 * 256), 0);
  assert_memory_equal (buf, zeros, 250);
  assert_memory_equal (buf + 250, w, 20);
  assert_memory_equal (buf + 270, zeros, 512 - 270);
  assert_int_equal (r3m_region_close (r, NULL), 0);
  r3m_backend_close (remote);
  r3m_backend_close (cache);
}

/* Bug 21: a size that is not a multiple of the chunk size is fully
 * pulled, pushed and counted; the region is not truncated. */
static void
test_bug21_size_not_multiple_of_chunk (void **state)
{
  uint64_t size = 10 * 1024 + 333;
  struct r3m_backend *remote = tu_memory (size), *cache = tu_memory (size);
  tu_fill (remote, 6);
  struct r3m_region_options o = opts (1024);
  o.pull_first = true;
  struct r3m_region *r;
  assert_int_equal (r3m_region_open (remote, cache, &o, &r, NULL), 0);
  assert_int_equal (r3m_region_size (r), size);
  struct r3m_region_status st;
  r3m_region_status (r, &st);
  assert_int_equal (st.chunks, 11);
  assert_int_equal (st.chunks_local, 11);
  assert_int_equal (st.bytes_fetched, size);
  assert_true (tu_check (cache, 6, 0, size));
  unsigned char buf[333];
  tu_pattern (7, buf, 333, 10 * 1024);
  assert_int_equal (r3m_region_write (r, buf, 333, 10 * 1024, 0), 0);
  assert_int_equal (r3m_region_close (r, NULL), 0);
  assert_true (tu_check (remote, 7, 10 * 1024, 333));
  r3m_backend_close (remote);
  r3m_backend_close (cache);
}

/* Bug 22: accounting uses the real chunk size, not 4096. */
static void
test_bug22_accounting_follows_chunk_size (void **state)
{
  static const uint32_t sizes[] = { 512, 4096, 65536 };
  for (size_t i = 0; i < 3; i++) {
    uint64_t size = 256 * 1024 + 5;
    struct r3m_backend *remote = tu_memory (size), *cache = tu_memory (size);
    struct r3m_region_options o = opts (sizes[i]);
    o.pull_first = true;
    struct r3m_region *r;
    assert_int_equal (r3m_region_open (remote, cache, &o, &r, NULL), 0);
    uint64_t c = 1;
    assert_int_equal (r3m_region_invalidate (r, &c, 1), 0);
    assert_int_equal (r3m_region_wait_pulled (r, 10000), 0);
    struct r3m_region_status st;
    r3m_region_status (r, &st);
    assert_int_equal (st.chunk_size, sizes[i]);
    assert_int_equal (st.chunks, (size + sizes[i] - 1) / sizes[i]);
    assert_int_equal (st.bytes_fetched, size + sizes[i]);
    unsigned char b = 1;
    assert_int_equal (r3m_region_write (r, &b, 1, 0, 0), 0);
    assert_int_equal (r3m_region_flush (r), 0);
    r3m_region_status (r, &st);
    assert_int_equal (st.bytes_pushed, sizes[i]);
    assert_int_equal (r3m_region_close (r, NULL), 0);
    r3m_backend_close (remote);
    r3m_backend_close (cache);
  }
}

/* Bug 23: flush and close flush the cache and the remote. */
static void
test_bug23_flush_reaches_both_backends (void **state)
{
  struct r3m_backend *rmem = tu_memory (4096), *cmem = tu_memory (4096);
  struct r3m_backend *remote, *cache;
  struct tfault *rf, *cf;
  assert_int_equal (tfault_new (rmem, 512, 0, &remote, &rf), 0);
  assert_int_equal (tfault_new (cmem, 512, 0, &cache, &cf), 0);
  struct r3m_region_options o = opts (512);
  struct r3m_region *r;
  assert_int_equal (r3m_region_open (remote, cache, &o, &r, NULL), 0);
  unsigned char b = 1;
  assert_int_equal (r3m_region_write (r, &b, 1, 0, 0), 0);
  assert_int_equal (r3m_region_flush (r), 0);
  assert_int_equal (tfault_calls (rf, R3M_IO_FLUSH), 1);
  assert_int_equal (tfault_calls (cf, R3M_IO_FLUSH), 1);
  assert_int_equal (r3m_region_close (r, NULL), 0);
  assert_int_equal (tfault_calls (rf, R3M_IO_FLUSH), 2);
  assert_int_equal (tfault_calls (cf, R3M_IO_FLUSH), 2);
  r3m_backend_close (remote);
  r3m_backend_close (cache);
  r3m_backend_close (rmem);
  r3m_backend_close (cmem);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_bug08_defaults_enable_pull_and_push),
    cmocka_unit_test (test_bug09_on_chunk_local_without_push),
    cmocka_unit_test (test_bug11_push_errors_need_no_draining),
    cmocka_unit_test (test_bug12_progress_counts_distinct_chunks),
    cmocka_unit_test (test_bug13_two_workers_failing_at_once),
    cmocka_unit_test (test_bug14_error_paths_release_locks),
    cmocka_unit_test (test_bug15_missing_data_reads_as_zeros),
    cmocka_unit_test (test_bug21_size_not_multiple_of_chunk),
    cmocka_unit_test (test_bug22_accounting_follows_chunk_size),
    cmocka_unit_test (test_bug23_flush_reaches_both_backends),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
