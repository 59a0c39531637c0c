/* The pusher: only written chunks are pushed, on the interval, on flush
 * and on close; flush waits for pushes in flight; writes racing with a
 * push stay dirty. */
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

#define CS 1024
#define NCHUNKS 16
#define SIZE (CS * NCHUNKS)

struct fixture {
  struct r3m_backend *mem, *remote, *cache;
  struct tfault *f;
  struct r3m_region *r;
};

static void
setup (struct fixture *x, struct r3m_region_options *o, unsigned threads)
{
  x->mem = tu_memory (SIZE);
  x->cache = tu_memory (SIZE);
  tu_fill (x->mem, 1);
  assert_int_equal (tfault_new (x->mem, CS, threads, &x->remote, &x->f), 0);
  assert_int_equal (r3m_region_open (x->remote, x->cache, o, &x->r, NULL), 0);
}

static void
teardown (struct fixture *x)
{
  if (x->r)
    assert_int_equal (r3m_region_close (x->r, NULL), 0);
  r3m_backend_close (x->remote);
  r3m_backend_close (x->mem);
  r3m_backend_close (x->cache);
}

static struct r3m_region_options
opts (void)
{
  struct r3m_region_options o;
  r3m_region_options_init (&o);
  o.chunk_size = CS;
  o.push_interval_ms = 60000;  /* no periodic round unless a test asks */
  return o;
}

static void
write_pattern (struct r3m_region *r, uint64_t seed, uint64_t off, size_t len)
{
  unsigned char *buf = malloc (len);
  tu_pattern (seed, buf, len, off);
  assert_int_equal (r3m_region_write (r, buf, len, off, 0), 0);
  free (buf);
}

/* Pulled but unchanged chunks are never pushed; written ones are, once. */
static void
test_pushes_only_written_chunks (void **state)
{
  struct fixture x;
  struct r3m_region_options o = opts ();
  setup (&x, &o, 0);
  assert_int_equal (r3m_region_wait_pulled (x.r, 10000), 0);
  write_pattern (x.r, 2, 1 * CS + 10, 100);     /* chunk 1, partial */
  write_pattern (x.r, 2, 5 * CS, 2 * CS);       /* chunks 5 and 6, whole */
  struct r3m_region_status st;
  r3m_region_status (x.r, &st);
  assert_int_equal (st.chunks_dirty, 3);
  assert_int_equal (r3m_region_flush (x.r), 0);
  assert_int_equal (tfault_chunks_written (x.f), 3);
  assert_int_equal (tfault_chunk_writes (x.f, 1), 1);
  assert_int_equal (tfault_chunk_writes (x.f, 5), 1);
  assert_int_equal (tfault_chunk_writes (x.f, 6), 1);
  assert_true (tu_equal (x.mem, x.cache, SIZE));
  r3m_region_status (x.r, &st);
  assert_int_equal (st.chunks_dirty, 0);
  assert_int_equal (st.pushes, 3);
  assert_int_equal (st.bytes_pushed, 3 * CS);
  /* Nothing dirty: a second flush pushes nothing. */
  assert_int_equal (r3m_region_flush (x.r), 0);
  assert_int_equal (tfault_calls (x.f, R3M_IO_WRITE), 3);
  teardown (&x);
}

static void
test_pull_only_pushes_nothing (void **state)
{
  struct fixture x;
  struct r3m_region_options o = opts ();
  setup (&x, &o, 0);
  assert_int_equal (r3m_region_wait_pulled (x.r, 10000), 0);
  assert_int_equal (r3m_region_flush (x.r), 0);
  assert_int_equal (r3m_region_close (x.r, NULL), 0);
  x.r = NULL;
  assert_int_equal (tfault_calls (x.f, R3M_IO_WRITE), 0);
  teardown (&x);
}

static bool
pushed_one (void *p)
{
  struct fixture *x = p;
  struct r3m_region_status st;
  r3m_region_status (x->r, &st);
  return st.pushes >= 1 && st.chunks_dirty == 0;
}

static void
test_periodic_push (void **state)
{
  struct fixture x;
  struct r3m_region_options o = opts ();
  o.push_interval_ms = 10;
  setup (&x, &o, 0);
  write_pattern (x.r, 3, 2 * CS, CS);
  /* No flush: the periodic round pushes it. */
  assert_true (tu_poll (pushed_one, &x, 10000));
  assert_true (tu_check (x.mem, 3, 2 * CS, CS));
  teardown (&x);
}

static void
test_close_pushes_and_flushes (void **state)
{
  struct fixture x;
  struct r3m_region_options o = opts ();
  o.push_window = 0;            /* no background push at all */
  setup (&x, &o, 0);
  write_pattern (x.r, 4, 3 * CS + 1, 3000);
  assert_int_equal (tfault_calls (x.f, R3M_IO_WRITE), 0);
  assert_int_equal (r3m_region_close (x.r, NULL), 0);
  x.r = NULL;
  assert_true (tu_check (x.mem, 4, 3 * CS + 1, 3000));
  assert_true (tfault_calls (x.f, R3M_IO_FLUSH) >= 1);
  teardown (&x);
}

/* Flush = push, then flush the cache, then flush the remote. */
static void
test_flush_reaches_remote (void **state)
{
  struct fixture x;
  struct r3m_region_options o = opts ();
  setup (&x, &o, 0);
  write_pattern (x.r, 5, 0, 10);
  assert_int_equal (r3m_region_flush (x.r), 0);
  assert_int_equal (tfault_calls (x.f, R3M_IO_FLUSH), 1);
  assert_true (tu_check (x.mem, 5, 0, 10));
  teardown (&x);
}

/* A flush that starts while a round is in flight waits for it. */
struct flush_arg {
  struct r3m_region *r;
  int rc;
};

static void *
flusher (void *p)
{
  struct flush_arg *a = p;
  a->rc = r3m_region_flush (a->r);
  return NULL;
}

/* Bug 10: a write that lands while its chunk is being pushed stays dirty
 * and reaches the remote with the next push. */
static void
test_bug10_write_during_push_stays_dirty (void **state)
{
  struct fixture x;
  struct r3m_region_options o = opts ();
  setup (&x, &o, 2);
  write_pattern (x.r, 6, 7 * CS, CS);
  struct tfault_rule stall = { .ops = TF_OP (R3M_IO_WRITE), .times = 1,
                               .off = 7 * CS, .len = CS, .stall = true };
  assert_int_equal (tfault_add (x.f, &stall), 0);
  struct flush_arg a = { x.r, -1 };
  pthread_t t;
  pthread_create (&t, NULL, flusher, &a);
  assert_true (tfault_wait_stalled (x.f, 1, 10000));
  /* The snapshot is taken and on its way: this write must not block. */
  write_pattern (x.r, 7, 7 * CS + 100, 50);
  tfault_release (x.f);
  pthread_join (t, NULL);
  assert_int_equal (a.rc, 0);
  struct r3m_region_status st;
  r3m_region_status (x.r, &st);
  assert_int_equal (st.chunks_dirty, 1);
  assert_int_equal (r3m_region_flush (x.r), 0);
  assert_true (tu_check (x.mem, 6, 7 * CS, 100));
  assert_true (tu_check (x.mem, 7, 7 * CS + 100, 50));
  assert_true (tu_check (x.mem, 6, 7 * CS + 150, CS - 150));
  r3m_region_status (x.r, &st);
  assert_int_equal (st.chunks_dirty, 0);
  teardown (&x);
}

/* A second flush issued while the first one's push is stalled returns
 * only after that push completed (it waits for pushes in flight). */
static void
test_flush_waits_for_push_in_flight (void **state)
{
  struct fixture x;
  struct r3m_region_options o = opts ();
  setup (&x, &o, 2);
  write_pattern (x.r, 8, 4 * CS, CS);
  struct tfault_rule stall = { .ops = TF_OP (R3M_IO_WRITE), .times = 1,
                               .stall = true };
  assert_int_equal (tfault_add (x.f, &stall), 0);
  struct flush_arg a = { x.r, -1 }, b = { x.r, -1 };
  pthread_t t1, t2;
  pthread_create (&t1, NULL, flusher, &a);
  assert_true (tfault_wait_stalled (x.f, 1, 10000));
  pthread_create (&t2, NULL, flusher, &b);
  tfault_release (x.f);
  pthread_join (t2, NULL);
  /* When the second flush is back, the chunk is on the remote. */
  assert_int_equal (b.rc, 0);
  assert_true (tu_check (x.mem, 8, 4 * CS, CS));
  pthread_join (t1, NULL);
  assert_int_equal (a.rc, 0);
  teardown (&x);
}

/* before_push runs once per pushed chunk, before its snapshot. */
struct bp_log {
  pthread_mutex_t mu;
  unsigned calls[NCHUNKS];
};

static void
before_push (uint64_t c, void *user)
{
  struct bp_log *l = user;
  pthread_mutex_lock (&l->mu);
  l->calls[c]++;
  pthread_mutex_unlock (&l->mu);
}

static void
test_before_push_called (void **state)
{
  struct fixture x;
  struct bp_log log = { .mu = PTHREAD_MUTEX_INITIALIZER };
  struct r3m_region_options o = opts ();
  o.before_push = before_push;
  o.before_push_user = &log;
  setup (&x, &o, 0);
  write_pattern (x.r, 9, 3 * CS, 10);
  write_pattern (x.r, 9, 9 * CS, 10);
  assert_int_equal (r3m_region_flush (x.r), 0);
  for (unsigned c = 0; c < NCHUNKS; c++)
    assert_int_equal (log.calls[c], c == 3 || c == 9 ? 1 : 0);
  teardown (&x);
}

/* A frontend whose writes bypass the engine (a uffd mapping) protects the
 * chunk in before_push; a write it then sees is reported with mark_dirty
 * after the generation was recorded, so the chunk stays dirty and the next
 * round pushes it: no write is lost between protect and copy. */
struct mapping_sim {
  struct r3m_region *r;
  struct r3m_backend *cache;
  int writes_left;
};

static void
write_behind_engine (uint64_t c, void *user)
{
  struct mapping_sim *m = user;
  if (m->writes_left-- <= 0)
    return;
  unsigned char buf[16];
  tu_pattern (12, buf, sizeof buf, c * CS + 40);
  assert_int_equal (r3m_backend_pwrite (m->cache, buf, sizeof buf,
                                        c * CS + 40, 0), 0);
  assert_int_equal (r3m_region_mark_dirty (m->r, c * CS + 40, sizeof buf), 0);
}

static void
test_mark_dirty_in_before_push_stays_dirty (void **state)
{
  struct fixture x;
  struct mapping_sim m = { .writes_left = 1 };
  struct r3m_region_options o = opts ();
  o.before_push = write_behind_engine;
  o.before_push_user = &m;
  o.pull_first = true;
  setup (&x, &o, 0);
  m.r = x.r;
  m.cache = x.cache;
  write_pattern (x.r, 13, 2 * CS, 8);
  assert_int_equal (r3m_region_flush (x.r), 0);
  struct r3m_region_status st;
  r3m_region_status (x.r, &st);
  assert_int_equal (st.chunks_dirty, 1);
  assert_int_equal (r3m_region_flush (x.r), 0);
  r3m_region_status (x.r, &st);
  assert_int_equal (st.chunks_dirty, 0);
  assert_true (tu_check (x.mem, 13, 2 * CS, 8));
  assert_true (tu_check (x.mem, 12, 2 * CS + 40, 16));
  teardown (&x);
}

/* mark_dirty: bytes a frontend put in the cache itself get pushed. */
static void
test_mark_dirty_pushes (void **state)
{
  struct fixture x;
  struct r3m_region_options o = opts ();
  o.pull_workers = 0;
  setup (&x, &o, 0);
  unsigned char buf[CS];
  tu_pattern (10, buf, CS, 11 * CS);
  assert_int_equal (r3m_backend_pwrite (x.cache, buf, CS, 11 * CS, 0), 0);
  assert_int_equal (r3m_region_mark_dirty (x.r, 11 * CS, CS), 0);
  struct r3m_region_status st;
  r3m_region_status (x.r, &st);
  assert_int_equal (st.chunks_dirty, 1);
  assert_int_equal (st.chunks_local, 1);
  assert_int_equal (r3m_region_flush (x.r), 0);
  assert_true (tu_check (x.mem, 10, 11 * CS, CS));
  teardown (&x);
}

/* The last chunk may be short: it is pushed with its own length. */
static void
test_short_last_chunk_pushed (void **state)
{
  struct r3m_backend *remote = tu_memory (SIZE + 100);
  struct r3m_backend *cache = tu_memory (SIZE + 100);
  struct r3m_region_options o = opts ();
  struct r3m_region *r;
  assert_int_equal (r3m_region_open (remote, cache, &o, &r, NULL), 0);
  write_pattern (r, 11, SIZE + 50, 50);
  assert_int_equal (r3m_region_flush (r), 0);
  assert_true (tu_check (remote, 11, SIZE + 50, 50));
  struct r3m_region_status st;
  r3m_region_status (r, &st);
  assert_int_equal (st.bytes_pushed, 100);
  assert_int_equal (r3m_region_close (r, NULL), 0);
  r3m_backend_close (remote);
  r3m_backend_close (cache);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_pushes_only_written_chunks),
    cmocka_unit_test (test_pull_only_pushes_nothing),
    cmocka_unit_test (test_periodic_push),
    cmocka_unit_test (test_close_pushes_and_flushes),
    cmocka_unit_test (test_flush_reaches_remote),
    cmocka_unit_test (test_bug10_write_during_push_stays_dirty),
    cmocka_unit_test (test_flush_waits_for_push_in_flight),
    cmocka_unit_test (test_before_push_called),
    cmocka_unit_test (test_mark_dirty_pushes),
    cmocka_unit_test (test_mark_dirty_in_before_push_stays_dirty),
    cmocka_unit_test (test_short_last_chunk_pushed),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
