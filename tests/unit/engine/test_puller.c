/* The puller: order by priority, workers, invalidation, pull_first,
 * skipping local chunks, retries. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <r3map/region.h>

#include "fault.h"
#include "testutil.h"

#define CS 512
#define NCHUNKS 32

struct order_log {
  pthread_mutex_t mu;
  uint64_t seq[NCHUNKS * 4];
  size_t n;
};

static void
log_local (uint64_t c, void *user)
{
  struct order_log *l = user;
  pthread_mutex_lock (&l->mu);
  if (l->n < sizeof l->seq / sizeof l->seq[0])
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

static int64_t
prio_const (uint64_t c, void *u)
{
  return 1;
}

static int64_t
prio_inc (uint64_t c, void *u)
{
  return (int64_t) c;
}

static int64_t
prio_dec (uint64_t c, void *u)
{
  return -(int64_t) c;
}

/* Every third chunk first, the rest in ascending order (ties). */
static int64_t
prio_thirds (uint64_t c, void *u)
{
  return c % 3 == 0 ? 5 : 0;
}

/* With a window of one, chunks become local in exactly the pull order. */
static void
check_order (r3m_priority_fn prio, unsigned workers, const uint64_t *want)
{
  struct r3m_backend *remote = tu_memory (CS * NCHUNKS);
  struct r3m_backend *cache = tu_memory (CS * NCHUNKS);
  tu_fill (remote, 11);
  struct order_log log = { .mu = PTHREAD_MUTEX_INITIALIZER };
  struct r3m_region_options o;
  r3m_region_options_init (&o);
  o.chunk_size = CS;
  o.pull_workers = workers;
  o.pull_window = 1;
  o.priority = prio;
  o.on_chunk_local = log_local;
  o.on_chunk_local_user = &log;
  struct r3m_region *r;
  assert_int_equal (r3m_region_open (remote, cache, &o, &r, NULL), 0);
  assert_int_equal (r3m_region_wait_pulled (r, 10000), 0);
  /* on_chunk_local of the last chunk may still be running. */
  assert_true (tu_poll (logged_all, &log, 10000));
  assert_int_equal (log.n, NCHUNKS);
  for (size_t i = 0; i < NCHUNKS; i++)
    assert_int_equal (log.seq[i], want[i]);
  assert_true (tu_check (cache, 11, 0, CS * NCHUNKS));
  struct r3m_region_status st;
  r3m_region_status (r, &st);
  assert_true (st.pull_done);
  assert_int_equal (st.fetches_background, NCHUNKS);
  assert_int_equal (st.bytes_fetched, CS * NCHUNKS);
  assert_int_equal (r3m_region_close (r, NULL), 0);
  r3m_backend_close (remote);
  r3m_backend_close (cache);
}

static void
orders (unsigned workers)
{
  uint64_t want[NCHUNKS];
  for (size_t i = 0; i < NCHUNKS; i++)
    want[i] = i;
  check_order (NULL, workers, want);
  check_order (prio_const, workers, want);
  for (size_t i = 0; i < NCHUNKS; i++)
    want[i] = NCHUNKS - 1 - i;
  check_order (prio_inc, workers, want);
  for (size_t i = 0; i < NCHUNKS; i++)
    want[i] = i;
  check_order (prio_dec, workers, want);
  size_t k = 0;
  for (uint64_t c = 0; c < NCHUNKS; c += 3)
    want[k++] = c;
  for (uint64_t c = 0; c < NCHUNKS; c++)
    if (c % 3)
      want[k++] = c;
  check_order (prio_thirds, workers, want);
}

static void
test_order_one_worker (void **state)
{
  orders (1);
}

static void
test_order_two_workers (void **state)
{
  orders (2);
}

static void
test_pull_first_returns_all_local (void **state)
{
  struct r3m_backend *remote = tu_memory (CS * NCHUNKS + 100);
  struct r3m_backend *cache = tu_memory (CS * NCHUNKS + 100);
  tu_fill (remote, 12);
  struct r3m_region_options o;
  r3m_region_options_init (&o);
  o.chunk_size = CS;
  o.pull_first = true;
  o.pull_window = 4;
  struct r3m_region *r;
  assert_int_equal (r3m_region_open (remote, cache, &o, &r, NULL), 0);
  struct r3m_region_status st;
  r3m_region_status (r, &st);
  assert_true (st.pull_done);
  assert_int_equal (st.chunks_local, NCHUNKS + 1);
  assert_true (tu_check (cache, 12, 0, CS * NCHUNKS + 100));
  assert_int_equal (r3m_region_close (r, NULL), 0);
  r3m_backend_close (remote);
  r3m_backend_close (cache);
}

/* A cache whose writes take turns (R3M_BACKEND_SERIAL_WRITES, as a
 * regular file declares) is stored into by one worker whatever
 * pull_workers says: its pwrite never runs twice at once.  The writes are
 * slow, so several workers would overlap them. */
struct serial_cache {
  unsigned char *mem;
  atomic_int active, most;
};

static int
serial_pread (void *self, void *buf, size_t len, uint64_t off)
{
  struct serial_cache *c = self;
  memcpy (buf, c->mem + off, len);
  return 0;
}

static int
serial_pwrite (void *self, const void *buf, size_t len, uint64_t off,
               unsigned flags)
{
  struct serial_cache *c = self;
  int now = atomic_fetch_add (&c->active, 1) + 1;
  int most = atomic_load (&c->most);
  while (now > most && !atomic_compare_exchange_weak (&c->most, &most, now))
    ;
  struct timespec ts = { 0, 2 * 1000 * 1000 };
  nanosleep (&ts, NULL);
  memcpy (c->mem + off, buf, len);
  atomic_fetch_sub (&c->active, 1);
  return 0;
}

static void
serial_close (void *self)
{
}

static void
test_serial_writes_cache_gets_one_worker (void **state)
{
  static const struct r3m_backend_ops ops = {
    .name = "serial-test",
    .pread = serial_pread,
    .pwrite = serial_pwrite,
    .close = serial_close,
  };
  struct serial_cache sc = { .mem = calloc (1, CS * NCHUNKS) };
  assert_non_null (sc.mem);
  struct r3m_backend_info info = { .size = CS * NCHUNKS, .align = 1,
                                   .flags = R3M_BACKEND_SERIAL_WRITES };
  struct r3m_backend *cache;
  assert_int_equal (r3m_backend_new (&ops, &sc, &info, "serial-test:",
                                     &cache, NULL), 0);
  struct r3m_backend *remote = tu_memory (CS * NCHUNKS);
  tu_fill (remote, 31);
  struct r3m_region_options o;
  r3m_region_options_init (&o);
  o.chunk_size = CS;
  o.pull_request_size = CS;       /* one store per chunk: many chances */
  o.pull_workers = 4;
  o.pull_first = true;
  struct r3m_region *r;
  assert_int_equal (r3m_region_open (remote, cache, &o, &r, NULL), 0);
  assert_int_equal (atomic_load (&sc.most), 1);
  assert_true (tu_check (cache, 31, 0, CS * NCHUNKS));
  assert_int_equal (r3m_region_close (r, NULL), 0);
  r3m_backend_close (remote);
  r3m_backend_close (cache);
  free (sc.mem);
}

/* Invalidate after the pull, with the remote changed in between: the
 * invalidated chunks are pulled again and hold the new data. */
static void
invalidate_after_pull (size_t n_dirty)
{
  struct r3m_backend *remote = tu_memory (CS * NCHUNKS);
  struct r3m_backend *cache = tu_memory (CS * NCHUNKS);
  tu_fill (remote, 20);
  struct r3m_region_options o;
  r3m_region_options_init (&o);
  o.chunk_size = CS;
  o.pull_workers = 2;
  o.pull_window = 3;
  struct r3m_region *r;
  assert_int_equal (r3m_region_open (remote, cache, &o, &r, NULL), 0);
  assert_int_equal (r3m_region_wait_pulled (r, 10000), 0);
  uint64_t dirty[NCHUNKS];
  unsigned char buf[CS];
  for (size_t i = 0; i < n_dirty; i++) {
    dirty[i] = (i * 7) % NCHUNKS;
    tu_pattern (21, buf, CS, dirty[i] * CS);
    assert_int_equal (r3m_backend_pwrite (remote, buf, CS, dirty[i] * CS, 0),
                      0);
  }
  assert_int_equal (r3m_region_invalidate (r, dirty, n_dirty), 0);
  assert_int_equal (r3m_region_wait_pulled (r, 10000), 0);
  /* The cache matches the remote, read directly (no demand fetches). */
  assert_true (tu_equal (cache, remote, CS * NCHUNKS));
  struct r3m_region_status st;
  r3m_region_status (r, &st);
  assert_int_equal (st.chunks_local, NCHUNKS);
  assert_int_equal (st.fetches_demand, 0);
  assert_int_equal (st.fetches_background, NCHUNKS + n_dirty);
  assert_int_equal (r3m_region_close (r, NULL), 0);
  r3m_backend_close (remote);
  r3m_backend_close (cache);
}

static void
test_invalidate_none (void **state)
{
  invalidate_after_pull (0);
}

static void
test_invalidate_some (void **state)
{
  invalidate_after_pull (5);
}

static void
test_invalidate_all (void **state)
{
  invalidate_after_pull (NCHUNKS);
}

/* Invalidate before anything was pulled (the remote stalls the first
 * fetch): nothing hangs and the region still ends fully and correctly
 * local, with progress counted per distinct chunk. */
static void
test_invalidate_before_pull (void **state)
{
  struct r3m_backend *mem = tu_memory (CS * NCHUNKS), *remote;
  struct r3m_backend *cache = tu_memory (CS * NCHUNKS);
  struct tfault *f;
  tu_fill (mem, 30);
  assert_int_equal (tfault_new (mem, CS, 2, &remote, &f), 0);
  struct tfault_rule stall = { .ops = TF_OP (R3M_IO_READ), .times = 1,
                               .stall = true };
  assert_int_equal (tfault_add (f, &stall), 0);
  struct r3m_region_options o;
  r3m_region_options_init (&o);
  o.chunk_size = CS;
  o.pull_workers = 1;
  o.pull_window = 1;
  struct r3m_region *r;
  assert_int_equal (r3m_region_open (remote, cache, &o, &r, NULL), 0);
  assert_true (tfault_wait_stalled (f, 1, 10000));
  /* Chunk 0 is being fetched, the others were never pulled. */
  tu_fill (mem, 31);
  uint64_t all[NCHUNKS];
  for (size_t i = 0; i < NCHUNKS; i++)
    all[i] = i;
  assert_int_equal (r3m_region_invalidate (r, all, NCHUNKS), 0);
  tfault_release (f);
  assert_int_equal (r3m_region_wait_pulled (r, 10000), 0);
  assert_true (tu_check (cache, 31, 0, CS * NCHUNKS));
  struct r3m_region_status st;
  r3m_region_status (r, &st);
  assert_int_equal (st.chunks_local, NCHUNKS);
  assert_true (st.pull_done);
  assert_int_equal (r3m_region_close (r, NULL), 0);
  r3m_backend_close (remote);
  r3m_backend_close (mem);
  r3m_backend_close (cache);
}

static int64_t
prio_three_first (uint64_t c, void *u)
{
  return c == 3;
}

/* The remote changes while the puller's fetch of a chunk is in flight
 * (its data already read): invalidation makes the puller fetch it again
 * instead of keeping the old bytes. */
static void
test_invalidate_during_background_fetch (void **state)
{
  struct r3m_backend *mem = tu_memory (CS * NCHUNKS), *remote;
  struct r3m_backend *cache = tu_memory (CS * NCHUNKS);
  struct tfault *f;
  tu_fill (mem, 32);
  assert_int_equal (tfault_new (mem, CS, 2, &remote, &f), 0);
  struct tfault_rule stall = { .ops = TF_OP (R3M_IO_READ), .times = 1,
                               .off = 3 * CS, .len = CS, .stall = true,
                               .after = true };
  assert_int_equal (tfault_add (f, &stall), 0);
  struct r3m_region_options o;
  r3m_region_options_init (&o);
  o.chunk_size = CS;
  o.pull_workers = 1;
  o.pull_window = 1;
  o.priority = prio_three_first;
  struct r3m_region *r;
  assert_int_equal (r3m_region_open (remote, cache, &o, &r, NULL), 0);
  assert_true (tfault_wait_stalled (f, 1, 10000));
  unsigned char buf[CS];
  tu_pattern (33, buf, CS, 3 * CS);
  assert_int_equal (r3m_backend_pwrite (mem, buf, CS, 3 * CS, 0), 0);
  uint64_t c = 3;
  assert_int_equal (r3m_region_invalidate (r, &c, 1), 0);
  tfault_release (f);
  assert_int_equal (r3m_region_wait_pulled (r, 10000), 0);
  assert_true (tu_check (cache, 33, 3 * CS, CS));
  assert_true (tu_check (cache, 32, 4 * CS, CS));
  assert_int_equal (tfault_chunk_reads (f, 3), 2);
  assert_int_equal (r3m_region_close (r, NULL), 0);
  r3m_backend_close (remote);
  r3m_backend_close (mem);
  r3m_backend_close (cache);
}

/* A remote that reports some chunks as zero extents (like a sparse file
 * or an NBD server's base:allocation) and counts reads per chunk. */
struct sparse {
  struct r3m_backend *mem;
  uint64_t size;
  uint64_t zero;              /* bit c: chunk c is reported as zeros */
  atomic_uint reads[NCHUNKS + 1];
};

static int
sp_pread (void *self, void *buf, size_t len, uint64_t off)
{
  struct sparse *s = self;
  for (uint64_t c = off / CS; c <= (off + len - 1) / CS; c++)
    atomic_fetch_add (&s->reads[c], 1);
  return r3m_backend_pread (s->mem, buf, len, off);
}

static int
sp_pwrite (void *self, const void *buf, size_t len, uint64_t off,
           unsigned flags)
{
  struct sparse *s = self;
  return r3m_backend_pwrite (s->mem, buf, len, off, flags);
}

static bool
sp_is_zero (struct sparse *s, uint64_t off)
{
  return (s->zero >> (off / CS)) & 1;
}

static int
sp_extents (void *self, uint64_t off, uint64_t len, struct r3m_extent *ext,
            size_t max, size_t *n)
{
  struct sparse *s = self;
  uint64_t end = off + len;
  *n = 0;
  while (off < end && *n < max) {
    bool z = sp_is_zero (s, off);
    uint64_t e = (off / CS + 1) * CS;
    while (e < end && sp_is_zero (s, e) == z)
      e += CS;
    if (e > end)
      e = end;
    ext[*n].len = e - off;
    ext[*n].flags = z ? R3M_EXTENT_ZERO | R3M_EXTENT_HOLE : 0;
    (*n)++;
    off = e;
  }
  return 0;
}

static const struct r3m_backend_ops sparse_ops = {
  .name = "sparse", .pread = sp_pread, .pwrite = sp_pwrite,
  .extents = sp_extents,
};

/* Chunks the remote reports as zeros are zeroed in the cache without a
 * transfer; invalidating one after the remote wrote it fetches it. */
static void
test_zero_extents_not_fetched (void **state)
{
  uint64_t size = NCHUNKS * CS + 100;
  struct sparse sp = { .mem = tu_memory (size), .size = size };
  unsigned char buf[CS];
  tu_fill (sp.mem, 70);
  static const uint64_t zero[] = { 0, 1, 2, 10, NCHUNKS };
  memset (buf, 0, CS);
  for (size_t i = 0; i < 5; i++) {
    sp.zero |= UINT64_C (1) << zero[i];
    uint64_t off = zero[i] * CS;
    assert_int_equal (r3m_backend_pwrite (sp.mem, buf, off < NCHUNKS * CS
                                          ? CS : 100, off, 0), 0);
  }
  struct r3m_backend *remote, *cache = tu_memory (size);
  struct r3m_backend_info info = { .size = size, .align = 1 };
  assert_int_equal (r3m_backend_new (&sparse_ops, &sp, &info, "sparse",
                                     &remote, NULL), 0);
  memset (buf, 0xaa, CS);       /* the cache starts with other bytes */
  for (uint64_t c = 0; c <= NCHUNKS; c++)
    assert_int_equal (r3m_backend_pwrite (cache, buf, c < NCHUNKS ? CS : 100,
                                          c * CS, 0), 0);
  struct r3m_region_options o;
  r3m_region_options_init (&o);
  o.chunk_size = CS;
  struct r3m_region *r;
  assert_int_equal (r3m_region_open (remote, cache, &o, &r, NULL), 0);
  assert_int_equal (r3m_region_wait_pulled (r, 10000), 0);
  assert_true (tu_equal (cache, sp.mem, size));
  for (uint64_t c = 0; c <= NCHUNKS; c++)
    assert_int_equal (atomic_load (&sp.reads[c]), (sp.zero >> c) & 1 ? 0 : 1);
  struct r3m_region_status st;
  r3m_region_status (r, &st);
  assert_int_equal (st.fetches_background, NCHUNKS + 1);
  assert_int_equal (st.bytes_fetched, (NCHUNKS - 4) * CS);

  tu_pattern (71, buf, CS, 10 * CS);
  assert_int_equal (r3m_backend_pwrite (sp.mem, buf, CS, 10 * CS, 0), 0);
  uint64_t c = 10;
  assert_int_equal (r3m_region_invalidate (r, &c, 1), 0);
  assert_int_equal (r3m_region_wait_pulled (r, 10000), 0);
  assert_true (tu_check (cache, 71, 10 * CS, CS));
  assert_int_equal (atomic_load (&sp.reads[10]), 1);
  assert_int_equal (r3m_region_close (r, NULL), 0);
  r3m_backend_close (remote);
  r3m_backend_close (sp.mem);
  r3m_backend_close (cache);
}

/* A chunk written whole before its turn is local already: the puller
 * never fetches it. */
static void
test_skips_local_chunks (void **state)
{
  struct r3m_backend *mem = tu_memory (CS * NCHUNKS), *remote;
  struct r3m_backend *cache = tu_memory (CS * NCHUNKS);
  struct tfault *f;
  tu_fill (mem, 40);
  assert_int_equal (tfault_new (mem, CS, 2, &remote, &f), 0);
  struct tfault_rule stall = { .ops = TF_OP (R3M_IO_READ), .times = 1,
                               .stall = true };
  assert_int_equal (tfault_add (f, &stall), 0);
  struct r3m_region_options o;
  r3m_region_options_init (&o);
  o.chunk_size = CS;
  o.pull_workers = 1;
  o.pull_window = 1;
  /* One chunk per request, so that the stalled fetch holds chunk 0 only
   * (runs are test_run_stops_at_local_chunks). */
  o.pull_request_size = CS;
  o.push_window = 0;
  struct r3m_region *r;
  assert_int_equal (r3m_region_open (remote, cache, &o, &r, NULL), 0);
  assert_true (tfault_wait_stalled (f, 1, 10000));
  unsigned char buf[CS * 2];
  tu_pattern (41, buf, sizeof buf, (NCHUNKS - 2) * CS);
  assert_int_equal (r3m_region_write (r, buf, sizeof buf, (NCHUNKS - 2) * CS,
                                      0), 0);
  tfault_release (f);
  assert_int_equal (r3m_region_wait_pulled (r, 10000), 0);
  assert_int_equal (tfault_chunk_reads (f, NCHUNKS - 1), 0);
  assert_int_equal (tfault_chunk_reads (f, NCHUNKS - 2), 0);
  for (uint64_t c = 0; c < NCHUNKS - 2; c++)
    assert_int_equal (tfault_chunk_reads (f, c), 1);
  assert_true (tu_check (cache, 41, (NCHUNKS - 2) * CS, 2 * CS));
  assert_int_equal (r3m_region_close (r, NULL), 0);
  r3m_backend_close (remote);
  r3m_backend_close (mem);
  r3m_backend_close (cache);
}

/* Readers racing with the puller: every chunk is fetched exactly once. */
struct reader_arg {
  struct r3m_region *r;
  unsigned seed;
};

static void *
reader (void *p)
{
  struct reader_arg *a = p;
  unsigned char buf[CS * 3];
  uint64_t s = a->seed;
  for (int i = 0; i < 200; i++) {
    uint64_t off = tu_rand (&s) % (CS * (NCHUNKS - 3));
    if (r3m_region_read (a->r, buf, sizeof buf, off) != 0)
      return (void *) 1;
    for (size_t j = 0; j < sizeof buf; j++)
      if (buf[j] != tu_pattern_byte (50, off + j))
        return (void *) 2;
  }
  return NULL;
}

static void
test_each_chunk_fetched_once (void **state)
{
  struct r3m_backend *mem = tu_memory (CS * NCHUNKS), *remote;
  struct r3m_backend *cache = tu_memory (CS * NCHUNKS);
  struct tfault *f;
  tu_fill (mem, 50);
  assert_int_equal (tfault_new (mem, CS, 3, &remote, &f), 0);
  struct r3m_region_options o;
  r3m_region_options_init (&o);
  o.chunk_size = CS;
  o.pull_workers = 2;
  o.pull_window = 4;
  struct r3m_region *r;
  assert_int_equal (r3m_region_open (remote, cache, &o, &r, NULL), 0);
  pthread_t t[4];
  struct reader_arg a[4];
  for (int i = 0; i < 4; i++) {
    a[i] = (struct reader_arg) { r, (unsigned) i + 1 };
    pthread_create (&t[i], NULL, reader, &a[i]);
  }
  for (int i = 0; i < 4; i++) {
    void *ret;
    pthread_join (t[i], &ret);
    assert_null (ret);
  }
  assert_int_equal (r3m_region_wait_pulled (r, 10000), 0);
  for (uint64_t c = 0; c < NCHUNKS; c++)
    assert_int_equal (tfault_chunk_reads (f, c), 1);
  struct r3m_region_status st;
  r3m_region_status (r, &st);
  assert_int_equal (st.fetches_demand + st.fetches_background, NCHUNKS);
  assert_int_equal (r3m_region_close (r, NULL), 0);
  r3m_backend_close (remote);
  r3m_backend_close (mem);
  r3m_backend_close (cache);
}

/* A fetch that fails fewer times than fetch_retries still succeeds. */
static void
test_background_fetch_retried (void **state)
{
  struct r3m_backend *mem = tu_memory (CS * NCHUNKS), *remote;
  struct r3m_backend *cache = tu_memory (CS * NCHUNKS);
  struct tfault *f;
  tu_fill (mem, 60);
  assert_int_equal (tfault_new (mem, CS, 0, &remote, &f), 0);
  struct tfault_rule fail = { .ops = TF_OP (R3M_IO_READ), .times = 2,
                              .off = 5 * CS, .len = CS, .error = EIO };
  assert_int_equal (tfault_add (f, &fail), 0);
  struct r3m_region_options o;
  r3m_region_options_init (&o);
  o.chunk_size = CS;
  o.fetch_retries = 2;
  struct r3m_region *r;
  assert_int_equal (r3m_region_open (remote, cache, &o, &r, NULL), 0);
  assert_int_equal (r3m_region_wait_pulled (r, 10000), 0);
  assert_true (tu_check (cache, 60, 0, CS * NCHUNKS));
  assert_int_equal (tfault_chunk_reads (f, 5), 3);
  struct r3m_region_status st;
  r3m_region_status (r, &st);
  assert_int_equal (st.errors, 0);
  assert_int_equal (r3m_region_close (r, NULL), 0);
  r3m_backend_close (remote);
  r3m_backend_close (mem);
  r3m_backend_close (cache);
}

/* One failure more than the retries stops the background pull with that
 * error; on-demand reads of other chunks still work. */
static void
test_background_fetch_gives_up (void **state)
{
  struct r3m_backend *mem = tu_memory (CS * NCHUNKS), *remote;
  struct r3m_backend *cache = tu_memory (CS * NCHUNKS);
  struct tfault *f;
  tu_fill (mem, 61);
  assert_int_equal (tfault_new (mem, CS, 0, &remote, &f), 0);
  struct tfault_rule fail = { .ops = TF_OP (R3M_IO_READ),
                              .off = 5 * CS, .len = CS, .error = ENODATA };
  assert_int_equal (tfault_add (f, &fail), 0);
  struct r3m_region_options o;
  r3m_region_options_init (&o);
  o.chunk_size = CS;
  o.fetch_retries = 1;
  o.pull_window = 1;
  o.pull_workers = 1;
  struct r3m_region *r;
  assert_int_equal (r3m_region_open (remote, cache, &o, &r, NULL), 0);
  assert_int_equal (r3m_region_wait_pulled (r, 10000), -ENODATA);
  struct r3m_region_status st;
  r3m_region_status (r, &st);
  assert_false (st.pull_done);
  assert_int_equal (st.last_error, ENODATA);
  assert_non_null (strstr (st.last_error_msg, "chunk 5"));
  assert_true (st.errors >= 1);
  unsigned char buf[CS];
  assert_int_equal (r3m_region_read (r, buf, CS, 9 * CS), 0);
  assert_int_equal (r3m_region_read (r, buf, CS, 5 * CS), -ENODATA);
  assert_int_equal (r3m_region_close (r, NULL), 0);
  r3m_backend_close (remote);
  r3m_backend_close (mem);
  r3m_backend_close (cache);
}

/* pull_first with a remote that cannot be read: open fails, with the
 * error and a message. */
static void
test_pull_first_failure_fails_open (void **state)
{
  struct r3m_backend *mem = tu_memory (CS * 4), *remote;
  struct r3m_backend *cache = tu_memory (CS * 4);
  struct tfault *f;
  assert_int_equal (tfault_new (mem, CS, 0, &remote, &f), 0);
  struct tfault_rule fail = { .ops = TF_OP (R3M_IO_READ), .error = EIO };
  assert_int_equal (tfault_add (f, &fail), 0);
  struct r3m_region_options o;
  r3m_region_options_init (&o);
  o.chunk_size = CS;
  o.pull_first = true;
  struct r3m_region *r;
  struct r3m_error err;
  assert_int_equal (r3m_region_open (remote, cache, &o, &r, &err), -EIO);
  assert_non_null (strstr (err.msg, "pulling first"));
  r3m_backend_close (remote);
  r3m_backend_close (mem);
  r3m_backend_close (cache);
}

static void
test_wait_pulled_times_out_without_puller (void **state)
{
  struct r3m_backend *remote = tu_memory (CS * 4), *cache = tu_memory (CS * 4);
  struct r3m_region_options o;
  r3m_region_options_init (&o);
  o.chunk_size = CS;
  o.pull_workers = 0;
  struct r3m_region *r;
  assert_int_equal (r3m_region_open (remote, cache, &o, &r, NULL), 0);
  assert_int_equal (r3m_region_wait_pulled (r, 0), -ETIMEDOUT);
  assert_int_equal (r3m_region_wait_pulled (r, 20), -ETIMEDOUT);
  unsigned char buf[CS * 4];
  assert_int_equal (r3m_region_read (r, buf, sizeof buf, 0), 0);
  assert_int_equal (r3m_region_wait_pulled (r, 0), 0);
  assert_int_equal (r3m_region_close (r, NULL), 0);
  r3m_backend_close (remote);
  r3m_backend_close (cache);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_order_one_worker),
    cmocka_unit_test (test_order_two_workers),
    cmocka_unit_test (test_pull_first_returns_all_local),
    cmocka_unit_test (test_serial_writes_cache_gets_one_worker),
    cmocka_unit_test (test_invalidate_none),
    cmocka_unit_test (test_invalidate_some),
    cmocka_unit_test (test_invalidate_all),
    cmocka_unit_test (test_invalidate_before_pull),
    cmocka_unit_test (test_invalidate_during_background_fetch),
    cmocka_unit_test (test_skips_local_chunks),
    cmocka_unit_test (test_zero_extents_not_fetched),
    cmocka_unit_test (test_each_chunk_fetched_once),
    cmocka_unit_test (test_background_fetch_retried),
    cmocka_unit_test (test_background_fetch_gives_up),
    cmocka_unit_test (test_pull_first_failure_fails_open),
    cmocka_unit_test (test_wait_pulled_times_out_without_puller),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
