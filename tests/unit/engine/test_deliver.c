/* r3m_region_read_deliver: pieces from the cache's memory, fetches straight
 * into the cache, the callback before fetched chunks turn local, the
 * fallbacks, failures, a fetch invalidated in flight, and readers racing
 * with writers, zeroing, invalidation and the puller without a hang or a
 * byte from the wrong place. */
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

#define CS 4096
#define NCHUNKS 128
#define SIZE (CS * NCHUNKS)

static struct r3m_region_options
opts (void)
{
  struct r3m_region_options o;
  r3m_region_options_init (&o);
  o.chunk_size = CS;
  o.pull_workers = 0;
  o.push_interval_ms = 60000;
  o.fetch_retries = 0;
  o.close_timeout_ms = 1000;
  return o;
}

/* What a callback saw. */
struct seen {
  struct r3m_region *r;
  unsigned char *data;          /* the pieces, concatenated */
  size_t len;
  int calls, n;
  const void *first_base;
  uint64_t local_during;        /* chunks_local while the callback ran */
  int result;                   /* what the callback returns */
};

static int
collect (const struct iovec *iov, int n, void *user)
{
  struct seen *s = user;
  s->calls++;
  s->n = n;
  s->first_base = n > 0 ? iov[0].iov_base : NULL;
  size_t len = 0;
  for (int i = 0; i < n; i++)
    len += iov[i].iov_len;
  s->data = realloc (s->data, len ? len : 1);
  s->len = 0;
  for (int i = 0; i < n; i++) {
    memcpy (s->data + s->len, iov[i].iov_base, iov[i].iov_len);
    s->len += iov[i].iov_len;
  }
  struct r3m_region_status st;
  r3m_region_status (s->r, &st);
  s->local_during = st.chunks_local;
  return s->result;
}

static bool
is_pattern (uint64_t seed, const unsigned char *p, size_t len, uint64_t off)
{
  for (size_t i = 0; i < len; i++)
    if (p[i] != tu_pattern_byte (seed, off + i))
      return false;
  return true;
}

static void
test_local_chunks_come_from_cache_memory (void **state)
{
  struct r3m_backend *remote = tu_memory (SIZE), *cache = tu_memory (SIZE);
  tu_fill (remote, 3);
  struct r3m_region_options o = opts ();
  struct r3m_region *r;
  assert_int_equal (r3m_region_open (remote, cache, &o, &r, NULL), 0);
  unsigned char *buf = malloc (SIZE);
  assert_int_equal (r3m_region_read (r, buf, 3 * CS, 4 * CS), 0);

  struct seen s = { .r = r };
  assert_int_equal (r3m_region_read_deliver (r, buf, 2 * CS + 100,
                                             4 * CS + 50, collect, &s), 0);
  assert_int_equal (s.calls, 1);
  assert_int_equal (s.n, 1);      /* one run of cache memory */
  assert_ptr_equal (s.first_base,
                    (unsigned char *) r3m_backend_direct (cache) + 4 * CS
                    + 50);
  assert_int_equal (s.len, 2 * CS + 100);
  assert_true (is_pattern (3, s.data, s.len, 4 * CS + 50));

  struct r3m_region_status st;
  r3m_region_status (r, &st);
  assert_int_equal (st.fetches_demand, 3);
  free (s.data);
  free (buf);
  assert_int_equal (r3m_region_close (r, NULL), 0);
  r3m_backend_close (cache);
  r3m_backend_close (remote);
}

static void
test_fetches_land_in_cache_and_turn_local_after (void **state)
{
  struct r3m_backend *remote = tu_memory (SIZE), *cache = tu_memory (SIZE);
  tu_fill (remote, 4);
  struct r3m_region_options o = opts ();
  struct r3m_region *r;
  assert_int_equal (r3m_region_open (remote, cache, &o, &r, NULL), 0);
  unsigned char *buf = malloc (SIZE);
  /* Chunk 1 local, 0 and 2-3 remote: a partial first and last chunk. */
  assert_int_equal (r3m_region_read (r, buf, 10, CS), 0);
  memset (buf, 0xee, SIZE);
  struct seen s = { .r = r };
  assert_int_equal (r3m_region_read_deliver (r, buf, 3 * CS, 1000, collect,
                                             &s), 0);
  assert_int_equal (s.calls, 1);
  assert_int_equal (s.len, 3 * CS);
  assert_true (is_pattern (4, s.data, s.len, 1000));
  assert_int_equal (s.local_during, 1);       /* 0, 2, 3 not yet local */
  /* The caller's buffer was not needed. */
  assert_int_equal (buf[0], 0xee);
  struct r3m_region_status st;
  r3m_region_status (r, &st);
  assert_int_equal (st.chunks_local, 4);
  assert_int_equal (st.fetches_demand, 4);
  assert_int_equal (st.bytes_fetched, 4 * CS);
  /* Whole chunks are in the cache, also the parts nobody read. */
  assert_true (tu_check (cache, 4, 0, 4 * CS));
  /* Reading them again fetches nothing. */
  assert_int_equal (r3m_region_read_deliver (r, buf, 4 * CS, 0, collect,
                                             &s), 0);
  assert_true (is_pattern (4, s.data, s.len, 0));
  r3m_region_status (r, &st);
  assert_int_equal (st.fetches_demand, 4);
  /* The callback's result is the call's. */
  s.result = -EPIPE;
  assert_int_equal (r3m_region_read_deliver (r, buf, CS, 0, collect, &s),
                    -EPIPE);
  free (s.data);
  free (buf);
  assert_int_equal (r3m_region_close (r, NULL), 0);
  r3m_backend_close (cache);
  r3m_backend_close (remote);
}

/* No lent memory (a wrapped cache), no cache, a read longer than a batch,
 * an empty read: the bytes still arrive, through buf. */
static void
test_fallbacks (void **state)
{
  struct r3m_backend *remote = tu_memory (SIZE), *cmem = tu_memory (SIZE);
  struct r3m_backend *cache;
  struct tfault *cf;
  tu_fill (remote, 5);
  assert_int_equal (tfault_new (cmem, CS, 0, &cache, &cf), 0);
  assert_null (r3m_backend_direct (cache));
  struct r3m_region_options o = opts ();
  struct r3m_region *r, *direct;
  assert_int_equal (r3m_region_open (remote, cache, &o, &r, NULL), 0);
  assert_int_equal (r3m_region_open (remote, NULL, &o, &direct, NULL), 0);
  unsigned char *buf = malloc (SIZE);
  struct seen s = { .r = r };

  assert_int_equal (r3m_region_read_deliver (r, buf, 5 * CS + 7, 3, collect,
                                             &s), 0);
  assert_ptr_equal (s.first_base, buf);
  assert_true (is_pattern (5, s.data, s.len, 3));
  assert_int_equal (s.len, 5 * CS + 7);

  s.r = direct;
  assert_int_equal (r3m_region_read_deliver (direct, buf, SIZE, 0, collect,
                                             &s), 0);
  assert_ptr_equal (s.first_base, buf);
  assert_true (is_pattern (5, s.data, SIZE, 0));

  assert_int_equal (r3m_region_read_deliver (direct, buf, 0, 0, collect, &s),
                    0);
  assert_int_equal (s.n, 0);
  assert_int_equal (r3m_region_read_deliver (direct, buf, 1, SIZE, collect,
                                             &s), -EINVAL);
  assert_int_equal (r3m_region_close (direct, NULL), 0);
  assert_int_equal (r3m_region_close (r, NULL), 0);
  r3m_backend_close (cache);
  r3m_backend_close (cmem);

  /* Longer than a batch (64 chunks) with lent memory. */
  cache = tu_memory (SIZE);
  assert_int_equal (r3m_region_open (remote, cache, &o, &r, NULL), 0);
  s.r = r;
  assert_int_equal (r3m_region_read_deliver (r, buf, SIZE - 10, 5, collect,
                                             &s), 0);
  assert_int_equal (s.len, SIZE - 10);
  assert_true (is_pattern (5, s.data, s.len, 5));
  assert_int_equal (r3m_region_close (r, NULL), 0);
  r3m_backend_close (cache);
  free (s.data);
  free (buf);
  r3m_backend_close (remote);
}

static void
test_fetch_failure_calls_nothing (void **state)
{
  struct r3m_backend *rmem = tu_memory (SIZE), *cache = tu_memory (SIZE);
  struct r3m_backend *remote;
  struct tfault *rf;
  tu_fill (rmem, 6);
  assert_int_equal (tfault_new (rmem, CS, 0, &remote, &rf), 0);
  struct r3m_region_options o = opts ();
  struct r3m_region *r;
  assert_int_equal (r3m_region_open (remote, cache, &o, &r, NULL), 0);
  struct tfault_rule fail = { .ops = TF_OP (R3M_IO_READ), .times = 1,
                              .off = 2 * CS, .len = CS,
                              .error = ECONNRESET };
  assert_int_equal (tfault_add (rf, &fail), 0);
  unsigned char *buf = malloc (SIZE);
  struct seen s = { .r = r };
  assert_int_equal (r3m_region_read_deliver (r, buf, 4 * CS, 0, collect,
                                             &s), -ECONNRESET);
  assert_int_equal (s.calls, 0);
  struct r3m_region_status st;
  r3m_region_status (r, &st);
  assert_int_equal (st.chunks_local, 3);      /* all but the failed one */
  assert_int_equal (r3m_region_read_deliver (r, buf, 4 * CS, 0, collect,
                                             &s), 0);
  assert_true (is_pattern (6, s.data, s.len, 0));
  free (s.data);
  free (buf);
  assert_int_equal (r3m_region_close (r, NULL), 0);
  r3m_backend_close (cache);
  r3m_backend_close (remote);
  r3m_backend_close (rmem);
}

struct stale_reader {
  struct r3m_region *r;
  struct seen s;
  int result;
};

static void *
stale_reader_main (void *arg)
{
  struct stale_reader *a = arg;
  unsigned char *buf = malloc (2 * CS);
  a->result = r3m_region_read_deliver (a->r, buf, 2 * CS, 2 * CS, collect,
                                       &a->s);
  free (buf);
  return NULL;
}

/* A chunk invalidated while our fetch of it is in flight: the old bytes
 * must not be handed out; the read fetches again and delivers the new. */
static void
test_fetch_invalidated_in_flight_delivers_new_bytes (void **state)
{
  struct r3m_backend *rmem = tu_memory (SIZE), *cache = tu_memory (SIZE);
  struct r3m_backend *remote;
  struct tfault *rf;
  tu_fill (rmem, 7);
  assert_int_equal (tfault_new (rmem, CS, 2, &remote, &rf), 0);
  struct r3m_region_options o = opts ();
  struct r3m_region *r;
  assert_int_equal (r3m_region_open (remote, cache, &o, &r, NULL), 0);
  /* Chunk 3's first fetch reads the old bytes, then stalls. */
  struct tfault_rule stall = { .ops = TF_OP (R3M_IO_READ), .times = 1,
                               .off = 3 * CS, .len = CS, .stall = true,
                               .after = true };
  assert_int_equal (tfault_add (rf, &stall), 0);
  struct stale_reader a = { .r = r, .s = { .r = r } };
  pthread_t t;
  assert_int_equal (pthread_create (&t, NULL, stale_reader_main, &a), 0);
  assert_true (tfault_wait_stalled (rf, 1, 10000));
  tu_fill (rmem, 8);                  /* the remote changes ... */
  uint64_t c = 3;
  assert_int_equal (r3m_region_invalidate (r, &c, 1), 0); /* ... we hear */
  tfault_release (rf);
  pthread_join (t, NULL);
  assert_int_equal (a.result, 0);
  assert_int_equal (a.s.calls, 1);
  /* Chunk 2 may be either (it was not invalidated); chunk 3 is new. */
  assert_true (is_pattern (8, a.s.data + CS, CS, 3 * CS));
  free (a.s.data);
  assert_true (tfault_wait_idle (rf, 10000));
  assert_int_equal (r3m_region_close (r, NULL), 0);
  r3m_backend_close (cache);
  r3m_backend_close (remote);
  r3m_backend_close (rmem);
}

/* ---- races ------------------------------------------------------------
 * Every 8-byte word of the region holds its own index in the upper bits and
 * a version in the low 16, or is zero (zeroed ranges).  Readers through
 * read_deliver check every word they get: a piece from the wrong place, a
 * wrong length or a hang fails the test; which version they see is up to
 * the race. */

#define RACE_MS 700

static uint64_t
word_of (uint64_t index, unsigned version)
{
  return (index + 1) << 16 | (version & 0xffff);
}

struct race {
  struct r3m_region *r;
  atomic_bool stop;
  atomic_int bad;
  atomic_uint_fast64_t reads;
  uint64_t seed;
};

static int
check_words (const struct iovec *iov, int n, void *user)
{
  uint64_t *at = user;          /* index of the next word expected */
  for (int i = 0; i < n; i++) {
    if (iov[i].iov_len % 8)
      return -EINVAL;
    const unsigned char *p = iov[i].iov_base;
    for (size_t j = 0; j < iov[i].iov_len; j += 8) {
      uint64_t w;
      memcpy (&w, p + j, 8);
      if (w != 0 && w >> 16 != *at + 1)
        return -EIO;
      (*at)++;
    }
  }
  return 0;
}

static void *
race_reader (void *arg)
{
  struct race *x = arg;
  uint64_t rs = x->seed++;
  unsigned char *buf = malloc (SIZE);
  while (!atomic_load (&x->stop)) {
    uint64_t c = tu_rand (&rs) % NCHUNKS;
    uint64_t words = 1 + tu_rand (&rs) % (8 * CS / 8);
    uint64_t first = c * (CS / 8) + tu_rand (&rs) % (CS / 8);
    if (first + words > SIZE / 8)
      words = SIZE / 8 - first;
    uint64_t at = first;
    int e = r3m_region_read_deliver (x->r, buf, words * 8, first * 8,
                                     check_words, &at);
    if (e < 0 || at != first + words)
      atomic_fetch_add (&x->bad, 1);
    atomic_fetch_add (&x->reads, 1);
  }
  free (buf);
  return NULL;
}

static void *
race_writer (void *arg)
{
  struct race *x = arg;
  uint64_t rs = x->seed++ * 77;
  uint64_t *buf = malloc (2 * CS);
  unsigned version = 1;
  while (!atomic_load (&x->stop)) {
    uint64_t first = tu_rand (&rs) % (SIZE / 8 - 2 * CS / 8);
    uint64_t words = 1 + tu_rand (&rs) % (2 * CS / 8);
    switch (tu_rand (&rs) % 8) {
    case 0:
      (void) r3m_region_zero (x->r, words * 8, first * 8, R3M_IO_MAY_TRIM);
      break;
    case 1: {
      uint64_t c = first * 8 / CS;
      (void) r3m_region_invalidate (x->r, &c, 1);
      break;
    }
    default:
      version++;
      for (uint64_t i = 0; i < words; i++)
        buf[i] = word_of (first + i, version);
      if (r3m_region_write (x->r, buf, words * 8, first * 8, 0) < 0)
        atomic_fetch_add (&x->bad, 1);
    }
  }
  free (buf);
  return NULL;
}

static void
run_race (unsigned async_threads, unsigned pull_workers)
{
  struct r3m_backend *rmem = tu_memory (SIZE), *cache = tu_memory (SIZE);
  struct r3m_backend *remote;
  struct tfault *rf;
  uint64_t *init = malloc (SIZE);
  for (uint64_t i = 0; i < SIZE / 8; i++)
    init[i] = word_of (i, 0);
  assert_int_equal (r3m_backend_pwrite (rmem, init, SIZE, 0, 0), 0);
  free (init);
  /* Slow-ish asynchronous fetches make chunks stay BUSY long enough for
   * readers to meet each other's. */
  assert_int_equal (tfault_new (rmem, CS, async_threads, &remote, &rf), 0);
  struct r3m_region_options o = opts ();
  o.pull_workers = pull_workers;
  o.push_interval_ms = 20;
  struct r3m_region *r;
  assert_int_equal (r3m_region_open (remote, cache, &o, &r, NULL), 0);
  struct race x = { .r = r, .seed = 1 };
  pthread_t t[6];
  for (int i = 0; i < 4; i++)
    assert_int_equal (pthread_create (&t[i], NULL, race_reader, &x), 0);
  for (int i = 4; i < 6; i++)
    assert_int_equal (pthread_create (&t[i], NULL, race_writer, &x), 0);
  usleep (RACE_MS * 1000);
  atomic_store (&x.stop, true);
  for (int i = 0; i < 6; i++)
    pthread_join (t[i], NULL);
  assert_int_equal (atomic_load (&x.bad), 0);
  assert_true (atomic_load (&x.reads) > 100);
  assert_int_equal (r3m_region_close (r, NULL), 0);
  r3m_backend_close (cache);
  r3m_backend_close (remote);
  r3m_backend_close (rmem);
}

static void
test_race_inline_fetches (void **state)
{
  run_race (0, 0);
}

static void
test_race_async_fetches_and_puller (void **state)
{
  run_race (4, 2);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_local_chunks_come_from_cache_memory),
    cmocka_unit_test (test_fetches_land_in_cache_and_turn_local_after),
    cmocka_unit_test (test_fallbacks),
    cmocka_unit_test (test_fetch_failure_calls_nothing),
    cmocka_unit_test (test_fetch_invalidated_in_flight_delivers_new_bytes),
    cmocka_unit_test (test_race_inline_fetches),
    cmocka_unit_test (test_race_async_fetches_and_puller),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
