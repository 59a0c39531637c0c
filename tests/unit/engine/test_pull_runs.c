/* The puller's runs: adjacent chunks fetched with one remote request
 * (pull_request_size).  One request per run, runs that never reorder the
 * pull order and stop at chunks that are not REMOTE, a failure that fails
 * only the bad chunk, writes that race with a run in flight, invalidation
 * of a chunk of a run in flight, the last, short chunk, the smaller
 * runs of a remote that runs requests inline, and the window growing on a
 * long link. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <r3map/region.h>

#include "fault.h"
#include "testutil.h"
#include "pull_fixture.h"
#include "region_writer.h"

#define CS 512
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
  o.pull_window = 1;
  o.pull_request_size = RUN * CS;
  o.push_window = 0;
  return o;
}

static void
setup (struct pull_fx *x, uint64_t size, uint64_t seed, unsigned threads)
{
  pull_fx_setup (x, CS, size, seed, threads);
}

static void
open_with_first_read_stalled (struct pull_fx *x)
{
  struct r3m_region_options o = opts ();
  pull_fx_open_with_first_read_stalled (x, &o);
}

/* Every chunk read exactly once, in NCHUNKS / RUN requests. */
static void
test_one_request_per_run (void **state)
{
  struct pull_fx x = { 0 };
  setup (&x, SIZE, 70, 0);
  struct r3m_region_options o = opts ();
  pull_fx_open (&x, &o);
  assert_int_equal (r3m_region_wait_pulled (x.r, 10000), 0);
  assert_int_equal (tfault_calls (x.f, R3M_IO_READ), NCHUNKS / RUN);
  for (uint64_t c = 0; c < NCHUNKS; c++)
    assert_int_equal (tfault_chunk_reads (x.f, c), 1);
  assert_true (tu_check (x.cache, 70, 0, SIZE));
  struct r3m_region_status st;
  r3m_region_status (x.r, &st);
  assert_int_equal (st.fetches_background, NCHUNKS);
  assert_int_equal (st.bytes_fetched, SIZE);
  assert_int_equal (st.chunks_local, NCHUNKS);
  pull_fx_teardown (&x);
}

/* A region whose last chunk is short: the last run's request ends at the
 * region's end. */
static void
test_short_last_chunk_in_run (void **state)
{
  struct pull_fx x = { 0 };
  uint64_t size = SIZE - CS / 2 - 3;
  setup (&x, size, 71, 2);
  struct r3m_region_options o = opts ();
  o.pull_window = 3;
  pull_fx_open (&x, &o);
  assert_int_equal (r3m_region_wait_pulled (x.r, 10000), 0);
  assert_true (tu_check (x.cache, 71, 0, size));
  assert_int_equal (tfault_calls (x.f, R3M_IO_READ), NCHUNKS / RUN);
  struct r3m_region_status st;
  r3m_region_status (x.r, &st);
  assert_int_equal (st.bytes_fetched, size);
  pull_fx_teardown (&x);
}

/* Every third chunk first: a run only takes chunks that are next in the
 * order, so the high-priority chunks go one by one and the rest in runs;
 * the order in which chunks become local is the priority order. */
static int64_t
prio_thirds (uint64_t c, void *u)
{
  (void) u;
  return c % 3 == 0 ? 5 : 0;
}

static int64_t
prio_dec (uint64_t c, void *u)
{
  (void) u;
  return -(int64_t) c;
}

static int64_t
prio_inc (uint64_t c, void *u)
{
  (void) u;
  return (int64_t) c;
}

struct order_log {
  pthread_mutex_t mu;
  uint64_t seq[NCHUNKS];
  size_t n;
};

static void
log_local (uint64_t c, void *user)
{
  struct order_log *l = user;
  pthread_mutex_lock (&l->mu);
  if (l->n < NCHUNKS)
    l->seq[l->n++] = c;
  pthread_mutex_unlock (&l->mu);
}

static bool
logged_all (void *p)
{
  struct order_log *l = p;
  pthread_mutex_lock (&l->mu);
  bool done = l->n >= NCHUNKS;
  pthread_mutex_unlock (&l->mu);
  return done;
}

static void
check_runs (r3m_priority_fn prio, const uint64_t *want, uint64_t requests)
{
  struct pull_fx x = { 0 };
  setup (&x, SIZE, 72, 0);
  struct order_log log = { .mu = PTHREAD_MUTEX_INITIALIZER };
  struct r3m_region_options o = opts ();
  o.priority = prio;
  o.on_chunk_local = log_local;
  o.on_chunk_local_user = &log;
  pull_fx_open (&x, &o);
  assert_int_equal (r3m_region_wait_pulled (x.r, 10000), 0);
  assert_true (tu_poll (logged_all, &log, 10000));
  for (size_t i = 0; i < NCHUNKS; i++)
    assert_int_equal (log.seq[i], want[i]);
  assert_int_equal (tfault_calls (x.f, R3M_IO_READ), requests);
  assert_true (tu_check (x.cache, 72, 0, SIZE));
  pull_fx_teardown (&x);
}

static void
test_runs_keep_priority_order (void **state)
{
  uint64_t want[NCHUNKS];
  size_t k = 0;
  for (uint64_t c = 0; c < NCHUNKS; c += 3)
    want[k++] = c;
  for (uint64_t c = 0; c < NCHUNKS; c++)
    if (c % 3)
      want[k++] = c;
  /* 11 chunks alone, then the pairs between them: [1,2] [4,5] ... [31]. */
  check_runs (prio_thirds, want, 11 + 11);

  for (size_t i = 0; i < NCHUNKS; i++)
    want[i] = i;
  /* Decreasing priority is ascending order: full runs. */
  check_runs (prio_dec, want, NCHUNKS / RUN);

  for (size_t i = 0; i < NCHUNKS; i++)
    want[i] = NCHUNKS - 1 - i;
  /* Descending order: the next chunk in the order is never the next
   * index, so every request is one chunk. */
  check_runs (prio_inc, want, NCHUNKS);
}

/* Chunks written while the puller is busy elsewhere are not fetched, and
 * runs stop at them. */
static void
test_runs_stop_at_local_chunks (void **state)
{
  struct pull_fx x = { 0 };
  setup (&x, SIZE, 73, 2);
  struct tfault_rule stall = { .ops = TF_OP (R3M_IO_READ), .times = 1,
                               .stall = true };
  assert_int_equal (tfault_add (x.f, &stall), 0);
  struct r3m_region_options o = opts ();
  pull_fx_open (&x, &o);
  assert_true (tfault_wait_stalled (x.f, 1, 10000));   /* run [0-3] */
  unsigned char buf[CS];
  tu_pattern (74, buf, CS, 6 * CS);
  assert_int_equal (r3m_region_write (x.r, buf, CS, 6 * CS, 0), 0);
  tu_pattern (74, buf, CS, 9 * CS);
  assert_int_equal (r3m_region_write (x.r, buf, CS, 9 * CS, 0), 0);
  tfault_release (x.f);
  assert_int_equal (r3m_region_wait_pulled (x.r, 10000), 0);
  assert_int_equal (tfault_chunk_reads (x.f, 6), 0);
  assert_int_equal (tfault_chunk_reads (x.f, 9), 0);
  for (uint64_t c = 0; c < NCHUNKS; c++)
    if (c != 6 && c != 9)
      assert_int_equal (tfault_chunk_reads (x.f, c), 1);
  /* [0-3] [4-5] [7-8] [10-13] [14-17] [18-21] [22-25] [26-29] [30-31] */
  assert_int_equal (tfault_calls (x.f, R3M_IO_READ), 9);
  assert_true (tu_check (x.cache, 73, 0, 6 * CS));
  assert_true (tu_check (x.cache, 74, 6 * CS, CS));
  assert_true (tu_check (x.cache, 73, 7 * CS, 2 * CS));
  assert_true (tu_check (x.cache, 74, 9 * CS, CS));
  assert_true (tu_check (x.cache, 73, 10 * CS, SIZE - 10 * CS));
  pull_fx_teardown (&x);
}

/* A chunk that keeps failing fails alone: the run is retried chunk by
 * chunk, its good chunks become local, the error names the bad one. */
static void
test_run_failure_fails_only_bad_chunk (void **state)
{
  struct pull_fx x = { 0 };
  setup (&x, SIZE, 75, 0);
  struct tfault_rule fail = { .ops = TF_OP (R3M_IO_READ), .off = 5 * CS,
                              .len = CS, .error = ENODATA };
  assert_int_equal (tfault_add (x.f, &fail), 0);
  struct r3m_region_options o = opts ();
  o.fetch_retries = 1;
  pull_fx_open (&x, &o);
  assert_int_equal (r3m_region_wait_pulled (x.r, 10000), -ENODATA);
  struct r3m_region_status st;
  r3m_region_status (x.r, &st);
  assert_false (st.pull_done);
  assert_int_equal (st.last_error, ENODATA);
  assert_non_null (strstr (st.last_error_msg, "chunk 5 "));
  /* Run [4-7] failed once (one request), then each chunk alone. */
  assert_int_equal (tfault_chunk_reads (x.f, 5), 2);
  assert_int_equal (tfault_chunk_reads (x.f, 4), 2);
  assert_int_equal (tfault_chunk_reads (x.f, 6), 2);
  assert_int_equal (tfault_chunk_reads (x.f, 7), 2);
  /* Chunks 4, 6 and 7 are local: reading them costs no remote read. */
  unsigned char buf[CS];
  assert_int_equal (r3m_region_read (x.r, buf, CS, 4 * CS), 0);
  assert_int_equal (r3m_region_read (x.r, buf, CS, 6 * CS), 0);
  assert_int_equal (r3m_region_read (x.r, buf, CS, 7 * CS), 0);
  assert_int_equal (tfault_chunk_reads (x.f, 4), 2);
  assert_int_equal (tfault_chunk_reads (x.f, 6), 2);
  assert_int_equal (tfault_chunk_reads (x.f, 7), 2);
  assert_true (tu_check (x.cache, 75, 0, 5 * CS));
  assert_true (tu_check (x.cache, 75, 6 * CS, 2 * CS));
  assert_int_equal (r3m_region_read (x.r, buf, CS, 5 * CS), -ENODATA);
  pull_fx_teardown (&x);
}

/* A failure that the retries cover: everything ends local, no error. */
static void
test_run_transient_failure_retried (void **state)
{
  struct pull_fx x = { 0 };
  setup (&x, SIZE, 76, 2);
  struct tfault_rule fail = { .ops = TF_OP (R3M_IO_READ), .times = 2,
                              .off = 10 * CS, .len = CS, .error = EIO };
  assert_int_equal (tfault_add (x.f, &fail), 0);
  struct r3m_region_options o = opts ();
  o.pull_window = 4;
  o.pull_workers = 2;
  o.fetch_retries = 2;
  pull_fx_open (&x, &o);
  assert_int_equal (r3m_region_wait_pulled (x.r, 10000), 0);
  assert_true (tu_check (x.cache, 76, 0, SIZE));
  assert_int_equal (tfault_chunk_reads (x.f, 10), 3);
  assert_int_equal (tfault_chunk_reads (x.f, 9), 2);
  assert_int_equal (tfault_chunk_reads (x.f, 0), 1);
  struct r3m_region_status st;
  r3m_region_status (x.r, &st);
  assert_int_equal (st.errors, 0);
  assert_int_equal (st.fetches_background, NCHUNKS);
  assert_int_equal (st.bytes_fetched, SIZE);
  pull_fx_teardown (&x);
}

/* Writes to chunks of a run whose data is already read but not yet
 * stored: they wait for the run and land after it, so the run's old data
 * never covers them; they stay dirty and reach the remote on flush. */
static void
test_write_racing_run (void **state)
{
  struct pull_fx x = { 0 };
  setup (&x, SIZE, 77, 2);
  /* The first read (run [0-3]) has its data, then stalls. */
  open_with_first_read_stalled (&x);

  struct region_writer whole = {
    .r = x.r, .off = 1 * CS, .len = CS, .seed = 78 };
  struct region_writer part = {
    .r = x.r, .off = 2 * CS + 100, .len = 50, .seed = 79 };
  pthread_t t1, t2;
  assert_int_equal (pthread_create (&t1, NULL, region_writer_main,
                                    &whole), 0);
  assert_int_equal (pthread_create (&t2, NULL, region_writer_main,
                                    &part), 0);
  struct timespec ts = { 0, 50 * 1000 * 1000 };
  nanosleep (&ts, NULL);
  /* Both chunks are BUSY with the run: the writes wait. */
  assert_false (atomic_load (&whole.done));
  assert_false (atomic_load (&part.done));
  tfault_release (x.f);
  pthread_join (t1, NULL);
  pthread_join (t2, NULL);
  assert_int_equal (whole.result, 0);
  assert_int_equal (part.result, 0);
  assert_int_equal (r3m_region_wait_pulled (x.r, 10000), 0);

  /* Chunk 1 holds the write; chunk 2 the remote's bytes with the write
   * on top; the others the remote's. */
  assert_true (tu_check (x.cache, 77, 0, CS));
  assert_true (tu_check (x.cache, 78, CS, CS));
  assert_true (tu_check (x.cache, 77, 2 * CS, 100));
  assert_true (tu_check (x.cache, 79, 2 * CS + 100, 50));
  assert_true (tu_check (x.cache, 77, 2 * CS + 150, SIZE - 2 * CS - 150));
  /* Fetched once, by the run: the writes did not fetch again. */
  assert_int_equal (tfault_chunk_reads (x.f, 1), 1);
  assert_int_equal (tfault_chunk_reads (x.f, 2), 1);
  struct r3m_region_status st;
  r3m_region_status (x.r, &st);
  assert_int_equal (st.chunks_dirty, 2);
  assert_int_equal (r3m_region_flush (x.r), 0);
  assert_true (tu_check (x.mem, 78, CS, CS));
  assert_true (tu_check (x.mem, 79, 2 * CS + 100, 50));
  assert_true (tu_check (x.mem, 77, 2 * CS, 100));
  assert_true (tu_check (x.mem, 77, 4 * CS, SIZE - 4 * CS));
  pull_fx_teardown (&x);
}

/* A chunk of a run in flight is invalidated: its old bytes are not kept;
 * it is fetched again alone, and the run's other chunks stay local. */
static void
test_invalidate_chunk_of_run_in_flight (void **state)
{
  struct pull_fx x = { 0 };
  setup (&x, SIZE, 80, 2);
  open_with_first_read_stalled (&x);   /* run [0-3] read */
  /* The remote changes chunk 2 after the run read it. */
  unsigned char buf[CS];
  tu_pattern (81, buf, CS, 2 * CS);
  assert_int_equal (r3m_backend_pwrite (x.mem, buf, CS, 2 * CS, 0), 0);
  uint64_t c = 2;
  assert_int_equal (r3m_region_invalidate (x.r, &c, 1), 0);
  tfault_release (x.f);
  assert_int_equal (r3m_region_wait_pulled (x.r, 10000), 0);
  assert_true (tu_check (x.cache, 80, 0, 2 * CS));
  assert_true (tu_check (x.cache, 81, 2 * CS, CS));
  assert_true (tu_check (x.cache, 80, 3 * CS, SIZE - 3 * CS));
  assert_int_equal (tfault_chunk_reads (x.f, 2), 2);
  assert_int_equal (tfault_chunk_reads (x.f, 1), 1);
  assert_int_equal (tfault_chunk_reads (x.f, 3), 1);
  unsigned char got[CS];
  assert_int_equal (r3m_region_read (x.r, got, CS, 2 * CS), 0);
  assert_memory_equal (got, buf, CS);
  pull_fx_teardown (&x);
}

/* pull_request_size 0 (the zero-valued struct) means one chunk per
 * request. */
static void
test_request_size_zero_is_one_chunk (void **state)
{
  struct pull_fx x = { 0 };
  setup (&x, SIZE, 82, 0);
  struct r3m_region_options o = opts ();
  o.pull_request_size = 0;
  pull_fx_open (&x, &o);
  assert_int_equal (r3m_region_wait_pulled (x.r, 10000), 0);
  assert_int_equal (tfault_calls (x.f, R3M_IO_READ), NCHUNKS);
  assert_true (tu_check (x.cache, 82, 0, SIZE));
  pull_fx_teardown (&x);
}

/* A remote that runs requests inline gets runs of at most 64 KiB (no
 * round trip to save; the CPU cache matters more); one with threads gets
 * the whole pull_request_size. */
static void
test_inline_remote_runs_capped (void **state)
{
  enum { BIG = 16384 };
  for (unsigned threads = 0; threads <= 2; threads += 2) {
    struct pull_fx x = { 0 };
    setup (&x, (uint64_t) BIG * NCHUNKS, 83, threads);
    struct r3m_region_options o = opts ();
    o.chunk_size = BIG;
    o.pull_request_size = 1 << 20;
    pull_fx_open (&x, &o);
    assert_int_equal (r3m_region_wait_pulled (x.r, 10000), 0);
    assert_int_equal (tfault_calls (x.f, R3M_IO_READ),
                      threads ? 1 : NCHUNKS / ((64 << 10) / BIG));
    assert_true (tu_check (x.cache, 83, 0, (uint64_t) BIG * NCHUNKS));
    pull_fx_teardown (&x);
  }
}

/* A remote whose extents query (the puller's first, lone request) takes
 * 45 ms looks like a long link: the window grows to 4 x pull_window.  The
 * reads stall in an inner fault backend, so the number stalled at once is
 * the window. */
struct slow {
  struct r3m_backend *inner;
  unsigned extents_ms;
};

static int
slow_pread (void *self, void *buf, size_t len, uint64_t off)
{
  struct slow *s = self;
  return r3m_backend_pread (s->inner, buf, len, off);
}

static int
slow_pwrite (void *self, const void *buf, size_t len, uint64_t off,
             unsigned flags)
{
  struct slow *s = self;
  return r3m_backend_pwrite (s->inner, buf, len, off, flags);
}

static int
slow_extents (void *self, uint64_t off, uint64_t len, struct r3m_extent *ext,
              size_t max, size_t *n)
{
  struct slow *s = self;
  struct timespec ts = { 0, (long) s->extents_ms * 1000 * 1000 };
  nanosleep (&ts, NULL);
  return r3m_backend_extents (s->inner, off, len, ext, max, n);
}

static void
slow_close (void *self)
{
  (void) self;
}

static const struct r3m_backend_ops slow_ops = {
  .name = "slow-extents", .pread = slow_pread, .pwrite = slow_pwrite,
  .extents = slow_extents, .close = slow_close,
};

static unsigned
stalled_window (unsigned extents_ms)
{
  struct pull_fx x = { 0 };
  setup (&x, SIZE, 84, 0);
  struct tfault_rule stall = { .ops = TF_OP (R3M_IO_READ), .stall = true };
  assert_int_equal (tfault_add (x.f, &stall), 0);
  struct slow s = { x.remote, extents_ms };
  struct r3m_backend_info info = { .size = SIZE, .align = 1,
                                   .async_threads = 8 };
  struct r3m_backend *outer;
  assert_int_equal (r3m_backend_new (&slow_ops, &s, &info, "slow", &outer,
                                     NULL), 0);
  struct r3m_region_options o = opts ();
  o.pull_request_size = CS;    /* one chunk per request */
  assert_int_equal (r3m_region_open (outer, x.cache, &o, &x.r, NULL), 0);
  assert_true (tfault_wait_stalled (x.f, 1, 10000));
  struct timespec ts = { 0, 200 * 1000 * 1000 };
  nanosleep (&ts, NULL);         /* time for more to arrive, if allowed */
  unsigned n = tfault_stalled (x.f);
  tfault_release (x.f);
  assert_int_equal (r3m_region_wait_pulled (x.r, 10000), 0);
  assert_true (tu_check (x.cache, 84, 0, SIZE));
  assert_int_equal (r3m_region_close (x.r, NULL), 0);
  x.r = NULL;
  r3m_backend_close (outer);
  pull_fx_teardown (&x);
  return n;
}

static void
test_window_grows_on_long_link (void **state)
{
  /* A local remote answers in microseconds; at most 2 because a loaded
   * test machine may deschedule us for 5 ms around the query. */
  assert_true (stalled_window (0) <= 2);
  assert_int_equal (stalled_window (12), 4);   /* 10 ms links grow too */
  assert_int_equal (stalled_window (45), 4);   /* and no further */
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_one_request_per_run),
    cmocka_unit_test (test_short_last_chunk_in_run),
    cmocka_unit_test (test_runs_keep_priority_order),
    cmocka_unit_test (test_runs_stop_at_local_chunks),
    cmocka_unit_test (test_run_failure_fails_only_bad_chunk),
    cmocka_unit_test (test_run_transient_failure_retried),
    cmocka_unit_test (test_write_racing_run),
    cmocka_unit_test (test_invalidate_chunk_of_run_in_flight),
    cmocka_unit_test (test_request_size_zero_is_one_chunk),
    cmocka_unit_test (test_inline_remote_runs_capped),
    cmocka_unit_test (test_window_grows_on_long_link),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
