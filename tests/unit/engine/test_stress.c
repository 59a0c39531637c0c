/* Concurrency stress: several threads read and write random ranges
 * through a region while the puller, the pusher (on a short interval),
 * periodic flushes and tracker takes run.  Each thread owns disjoint byte
 * segments (not chunk aligned, so threads share chunks), which makes a
 * byte model exact.  At the end the remote must equal the model. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <r3map/region.h>

#include "fault.h"
#include "testutil.h"

#define THREADS 4

struct config {
  uint32_t chunk;
  uint64_t size;
  uint64_t segment;           /* bytes per owned segment */
  unsigned async_threads;     /* of the remote; 0 = inline */
  unsigned ops;               /* per thread */
};

struct shared {
  const struct config *cfg;
  struct r3m_region *r;
  unsigned char *model;       /* segment j is written only by j % THREADS */
  atomic_bool stop;
};

struct worker {
  struct shared *s;
  unsigned id;
  int failed;                 /* 0, or a line number */
};

/* A random range inside one of this thread's segments. */
static void
pick (struct worker *w, uint64_t *rng, uint64_t *off, size_t *len)
{
  const struct config *c = w->s->cfg;
  uint64_t nseg = (c->size + c->segment - 1) / c->segment;
  uint64_t mine = (nseg - w->id + THREADS - 1) / THREADS;
  uint64_t seg = (tu_rand (rng) % mine) * THREADS + w->id;
  uint64_t start = seg * c->segment;
  uint64_t end = start + c->segment < c->size ? start + c->segment : c->size;
  uint64_t a = start + tu_rand (rng) % (end - start);
  uint64_t b = a + 1 + tu_rand (rng) % (end - a);
  *off = a;
  *len = (size_t) (b - a);
}

#define CHECK(cond) do { if (!(cond)) { w->failed = __LINE__; return NULL; } } while (0)

static void *
work (void *p)
{
  struct worker *w = p;
  struct shared *s = w->s;
  uint64_t rng = w->id * 7919 + 1;
  unsigned char *buf = malloc (s->cfg->segment);
  CHECK (buf);
  for (unsigned i = 0; i < s->cfg->ops && !w->failed; i++) {
    uint64_t off;
    size_t len;
    pick (w, &rng, &off, &len);
    unsigned what = (unsigned) (tu_rand (&rng) % 100);
    if (what < 45) {
      CHECK (r3m_region_read (s->r, buf, len, off) == 0);
      CHECK (memcmp (buf, s->model + off, len) == 0);
    } else if (what < 85) {
      tu_pattern (tu_rand (&rng), buf, len, off);
      CHECK (r3m_region_write (s->r, buf, len, off, 0) == 0);
      memcpy (s->model + off, buf, len);
    } else if (what < 93) {
      CHECK (r3m_region_zero (s->r, len, off, 0) == 0);
      memset (s->model + off, 0, len);
    } else if (what < 98) {
      tu_pattern (tu_rand (&rng), buf, len, off);
      CHECK (r3m_region_write (s->r, buf, len, off, R3M_IO_FUA) == 0);
      memcpy (s->model + off, buf, len);
    } else
      CHECK (r3m_region_flush (s->r) == 0);
  }
  free (buf);
  return NULL;
}

static void *
taker (void *p)
{
  struct shared *s = p;
  while (!atomic_load (&s->stop)) {
    uint64_t *chunks;
    size_t n;
    if (r3m_region_track_take (s->r, &chunks, &n) == 0)
      free (chunks);
    struct r3m_region_status st;
    r3m_region_status (s->r, &st);
  }
  return NULL;
}

static void
run (const struct config *cfg)
{
  struct r3m_backend *mem = tu_memory (cfg->size), *cache = tu_memory (cfg->size);
  struct r3m_backend *remote;
  struct tfault *f;
  tu_fill (mem, 99);
  assert_int_equal (tfault_new (mem, cfg->chunk, cfg->async_threads, &remote,
                                &f), 0);
  struct shared s = { .cfg = cfg, .model = malloc (cfg->size) };
  assert_non_null (s.model);
  tu_pattern (99, s.model, cfg->size, 0);

  struct r3m_region_options o;
  r3m_region_options_init (&o);
  o.chunk_size = cfg->chunk;
  o.pull_workers = 2;
  o.pull_window = 8;
  o.push_window = 4;
  o.push_interval_ms = 5;
  assert_int_equal (r3m_region_open (remote, cache, &o, &s.r, NULL), 0);
  assert_int_equal (r3m_region_track_start (s.r), 0);

  pthread_t t[THREADS], tk;
  struct worker w[THREADS];
  pthread_create (&tk, NULL, taker, &s);
  for (unsigned i = 0; i < THREADS; i++) {
    w[i] = (struct worker) { .s = &s, .id = i };
    pthread_create (&t[i], NULL, work, &w[i]);
  }
  for (unsigned i = 0; i < THREADS; i++) {
    pthread_join (t[i], NULL);
    if (w[i].failed)
      fail_msg ("worker %u failed at line %d", i, w[i].failed);
  }
  atomic_store (&s.stop, true);
  pthread_join (tk, NULL);

  assert_int_equal (r3m_region_flush (s.r), 0);
  unsigned char *got = malloc (cfg->size);
  assert_int_equal (r3m_backend_pread (mem, got, cfg->size, 0), 0);
  assert_memory_equal (got, s.model, cfg->size);
  assert_int_equal (r3m_region_read (s.r, got, cfg->size, 0), 0);
  assert_memory_equal (got, s.model, cfg->size);
  struct r3m_region_status st;
  r3m_region_status (s.r, &st);
  assert_int_equal (st.errors, 0);
  assert_int_equal (st.chunks_dirty, 0);
  assert_int_equal (r3m_region_wait_pulled (s.r, 30000), 0);
  assert_int_equal (r3m_region_close (s.r, NULL), 0);
  assert_int_equal (r3m_backend_pread (mem, got, cfg->size, 0), 0);
  assert_memory_equal (got, s.model, cfg->size);
  free (got);
  free (s.model);
  r3m_backend_close (remote);
  r3m_backend_close (mem);
  r3m_backend_close (cache);
}

static void
test_stress_tiny_chunks_inline_remote (void **state)
{
  struct config c = { .chunk = 64, .size = 64 * 1024 + 13, .segment = 1000,
                      .async_threads = 0, .ops = 30000 };
  run (&c);
}

static void
test_stress_4k_chunks_async_remote (void **state)
{
  struct config c = { .chunk = 4096, .size = 1024 * 1024 + 777,
                      .segment = 20000, .async_threads = 2, .ops = 10000 };
  run (&c);
}

/* Invalidations racing with readers, demand fetches and the puller (the
 * remote never changes, so every read must still see its bytes). */
struct inv {
  struct r3m_region *r;
  uint64_t size, nchunks;
  unsigned id;
  atomic_bool *stop;
  int failed;
};

static void *
inv_reader (void *p)
{
  struct inv *a = p;
  uint64_t rng = a->id + 100;
  unsigned char buf[3000];
  for (int i = 0; i < 20000; i++) {
    uint64_t off = tu_rand (&rng) % (a->size - sizeof buf);
    size_t len = 1 + tu_rand (&rng) % sizeof buf;
    if (r3m_region_read (a->r, buf, len, off) != 0) {
      a->failed = __LINE__;
      break;
    }
    for (size_t j = 0; j < len; j++)
      if (buf[j] != tu_pattern_byte (5, off + j)) {
        a->failed = __LINE__;
        return NULL;
      }
  }
  return NULL;
}

static void *
invalidator (void *p)
{
  struct inv *a = p;
  uint64_t rng = 4242;
  while (!atomic_load (a->stop)) {
    uint64_t c[4];
    for (int i = 0; i < 4; i++)
      c[i] = tu_rand (&rng) % a->nchunks;
    if (r3m_region_invalidate (a->r, c, 4) != 0)
      a->failed = __LINE__;
  }
  return NULL;
}

static void
test_stress_invalidate_while_reading (void **state)
{
  uint64_t size = 256 * 1024 + 99;
  struct r3m_backend *mem = tu_memory (size), *cache = tu_memory (size);
  struct r3m_backend *remote;
  struct tfault *f;
  tu_fill (mem, 5);
  assert_int_equal (tfault_new (mem, 512, 2, &remote, &f), 0);
  struct r3m_region_options o;
  r3m_region_options_init (&o);
  o.chunk_size = 512;
  o.pull_window = 4;
  struct r3m_region *r;
  assert_int_equal (r3m_region_open (remote, cache, &o, &r, NULL), 0);
  atomic_bool stop = false;
  struct inv a[4];
  pthread_t t[4];
  for (unsigned i = 0; i < 4; i++) {
    a[i] = (struct inv) { r, size, (size + 511) / 512, i, &stop, 0 };
    pthread_create (&t[i], NULL, i == 3 ? invalidator : inv_reader, &a[i]);
  }
  for (unsigned i = 0; i < 3; i++)
    pthread_join (t[i], NULL);
  atomic_store (&stop, true);
  pthread_join (t[3], NULL);
  for (unsigned i = 0; i < 4; i++)
    if (a[i].failed)
      fail_msg ("thread %u failed at line %d", i, a[i].failed);
  assert_int_equal (r3m_region_wait_pulled (r, 30000), 0);
  assert_true (tu_check (cache, 5, 0, size));
  struct r3m_region_status st;
  r3m_region_status (r, &st);
  assert_int_equal (st.errors, 0);
  assert_int_equal (st.chunks_local, (size + 511) / 512);
  assert_int_equal (r3m_region_close (r, NULL), 0);
  assert_int_equal (tfault_calls (f, R3M_IO_WRITE), 0);
  r3m_backend_close (remote);
  r3m_backend_close (mem);
  r3m_backend_close (cache);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_stress_tiny_chunks_inline_remote),
    cmocka_unit_test (test_stress_4k_chunks_async_remote),
    cmocka_unit_test (test_stress_invalidate_while_reading),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
