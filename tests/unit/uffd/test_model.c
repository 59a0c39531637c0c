/* Several threads read and write random ranges of the mapping while the
 * background pull installs chunks and a flusher pushes; each thread owns
 * interleaved 512-byte stripes (so threads share chunks and pages) and
 * keeps an exact model of them.  At the end memory == model == backend.
 * Runs once per tracking mode.  Argument: operations per thread. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "helpers.h"

#define SIZE (8u * 1024 * 1024 + 12345)   /* not a chunk multiple */
#define STRIPE 512u
#define THREADS 4

static long ops = 20000;

struct ctx {
  unsigned char *map;
  unsigned char *model;
  _Atomic bool stop;
  struct r3m_uffd *u;
  _Atomic int flush_errors;
};

struct worker {
  struct ctx *c;
  unsigned id;
  uint64_t seed;
  long bad;
};

/* A random range of at most max bytes inside one of the thread's stripes
 * or spanning several of its stripes (written stripe by stripe). */
static uint64_t
own_start (struct worker *w, uint64_t *rng)
{
  uint64_t nstripes = SIZE / STRIPE / THREADS;
  uint64_t k = rng_next (rng) % nstripes;
  return (k * THREADS + w->id) * STRIPE;
}

static void *
work (void *arg)
{
  struct worker *w = arg;
  struct ctx *c = w->c;
  uint64_t rng = w->seed;
  for (long i = 0; i < ops; i++) {
    uint64_t r = rng_next (&rng);
    uint64_t stripes = 1 + r % 4;           /* up to 4 of ours, 2 KiB apart */
    uint64_t start = own_start (w, &rng);
    uint64_t in = rng_next (&rng) % STRIPE;
    uint64_t len = 1 + rng_next (&rng) % (STRIPE - in);
    bool write = (r >> 8) % 3 == 0;
    unsigned char v = (unsigned char) (r >> 16);
    for (uint64_t s = 0; s < stripes; s++) {
      uint64_t off = start + s * STRIPE * THREADS + in;
      if (off + len > SIZE)
        break;
      if (write) {
        memset (c->map + off, v, len);
        memset (c->model + off, v, len);
      }
      else if (memcmp (c->map + off, c->model + off, len) != 0)
        w->bad++;
    }
  }
  return NULL;
}

static void *
flusher (void *arg)
{
  struct ctx *c = arg;
  while (!atomic_load (&c->stop))
    if (r3m_uffd_flush (c->u, NULL) < 0)
      atomic_fetch_add (&c->flush_errors, 1);
  return NULL;
}

static void
run (enum r3m_uffd_track t, uint32_t chunk)
{
  struct r3m_backend *b = pattern_backend (SIZE);
  struct r3m_uffd_options o;
  r3m_uffd_options_init (&o);
  o.track = t;
  o.region.chunk_size = chunk;
  struct ctx c = { 0 };
  struct r3m_error err = { 0 };
  if (r3m_uffd_map (b, &o, &c.u, &err) < 0)
    fail_msg ("r3m_uffd_map: %s", err.msg);
  c.map = r3m_uffd_addr (c.u);
  c.model = malloc (SIZE);
  assert_non_null (c.model);
  for (uint64_t i = 0; i < SIZE; i++)
    c.model[i] = pattern_byte (i);

  pthread_t th[THREADS], ft;
  struct worker w[THREADS];
  pthread_create (&ft, NULL, flusher, &c);
  for (unsigned i = 0; i < THREADS; i++) {
    w[i] = (struct worker) { &c, i, 1000u * (i + 1) + (unsigned) t, 0 };
    pthread_create (&th[i], NULL, work, &w[i]);
  }
  for (unsigned i = 0; i < THREADS; i++) {
    pthread_join (th[i], NULL);
    assert_int_equal (w[i].bad, 0);
  }
  atomic_store (&c.stop, true);
  pthread_join (ft, NULL);
  assert_int_equal (atomic_load (&c.flush_errors), 0);
  assert_int_equal (r3m_uffd_flush (c.u, NULL), 0);
  assert_int_equal (memcmp (c.map, c.model, SIZE), 0);

  unsigned char *remote = malloc (SIZE);
  assert_non_null (remote);
  assert_int_equal (r3m_backend_pread (b, remote, SIZE, 0), 0);
  for (uint64_t i = 0; i < SIZE; i++)
    if (remote[i] != c.model[i])
      fail_msg ("backend byte %llu: %u, model %u", (unsigned long long) i,
                remote[i], c.model[i]);
  struct r3m_uffd_status st;
  r3m_uffd_status (c.u, &st);
  assert_int_equal (st.errors, 0);
  assert_int_equal (r3m_uffd_unmap (c.u, NULL), 0);
  free (remote);
  free (c.model);
  r3m_backend_close (b);
}

static void test_model_async (void **s) { run (R3M_UFFD_TRACK_AUTO, 16384); }
static void test_model_sync (void **s) { run (R3M_UFFD_TRACK_SYNC, 16384); }
static void test_model_async_big (void **s) { run (R3M_UFFD_TRACK_AUTO, 262144); }

int
main (int argc, char **argv)
{
  if (argc > 1)
    ops = atol (argv[1]);
  require_uffd ();
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_model_async),
    cmocka_unit_test (test_model_sync),
    cmocka_unit_test (test_model_async_big),
  };
  return cmocka_run_group_tests_name ("uffd model", tests, NULL, NULL);
}
