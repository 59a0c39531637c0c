/* The dir backend under contention with a tiny fd cache (max-open=2, 16
 * chunks, 8 threads): descriptors are evicted and reopened constantly
 * while other threads use them.  Each thread owns one 8-byte slot of every
 * 64-byte chunk and checks its reads against its own model; a descriptor
 * closed under a reader shows up as an error or as another chunk's bytes.
 * Between rounds, one thread removes a whole chunk (zero with MAY_TRIM,
 * or trim) while the others keep working on the other chunks.  At the end
 * a fresh handle (fresh descriptors) must read exactly the models. */
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common.h"

enum {
  CHUNK = 64, CHUNKS = 16, SIZE = CHUNK * CHUNKS,
  THREADS = 8, SLOT = CHUNK / THREADS,
  ROUNDS = 400, OPS = 150,
};

struct shared {
  struct r3m_backend *b;
  pthread_barrier_t barrier;
  unsigned removed;              /* chunk removed this round */
};

struct worker {
  pthread_t tid;
  struct shared *sh;
  unsigned id;
  uint64_t rng;
  unsigned char model[CHUNKS][SLOT];
  int failed;
};

static uint64_t
next (uint64_t *s)
{
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

static void
fail_once (struct worker *w, int code)
{
  if (!w->failed)
    w->failed = code;
}

/* One random operation on a chunk other than `avoid`. */
static void
step (struct worker *w, unsigned avoid)
{
  uint64_t r = next (&w->rng);
  unsigned c = (unsigned) (r % CHUNKS);
  if (c == avoid)
    c = (c + 1) % CHUNKS;
  unsigned sub = (unsigned) (r >> 8) % SLOT;
  unsigned len = 1 + (unsigned) (r >> 16) % (SLOT - sub);
  uint64_t off = (uint64_t) c * CHUNK + w->id * SLOT + sub;
  unsigned char buf[CHUNK];
  switch ((r >> 24) % 8) {
  case 0: case 1: case 2:
    for (unsigned i = 0; i < len; i++)
      buf[i] = (unsigned char) next (&w->rng);
    if (r3m_backend_pwrite (w->sh->b, buf, len, off, 0) != 0)
      fail_once (w, 1);
    memcpy (&w->model[c][sub], buf, len);
    break;
  case 3: case 4: case 5:
    if (r3m_backend_pread (w->sh->b, buf, len, off) != 0)
      fail_once (w, 2);
    else if (memcmp (buf, &w->model[c][sub], len) != 0)
      fail_once (w, 3);
    break;
  case 6:
    /* A whole chunk: others' slots change under us, ours must not. */
    if (r3m_backend_pread (w->sh->b, buf, CHUNK, (uint64_t) c * CHUNK) != 0)
      fail_once (w, 4);
    else if (memcmp (buf + w->id * SLOT, w->model[c], SLOT) != 0)
      fail_once (w, 5);
    break;
  default:
    if (r3m_backend_flush (w->sh->b) != 0)
      fail_once (w, 6);
  }
}

static void *
run (void *arg)
{
  struct worker *w = arg;
  struct shared *sh = w->sh;
  for (unsigned round = 0; round < ROUNDS; round++) {
    for (unsigned i = 0; i < OPS; i++)
      step (w, CHUNKS);
    /* Remove one chunk while the others keep going elsewhere. */
    if (w->id == 0)
      sh->removed = (unsigned) (next (&w->rng) % CHUNKS);
    pthread_barrier_wait (&sh->barrier);
    unsigned c = sh->removed;
    if (w->id == 0) {
      int r = round % 2
        ? r3m_backend_zero (sh->b, CHUNK, (uint64_t) c * CHUNK,
                            R3M_IO_MAY_TRIM)
        : r3m_backend_trim (sh->b, CHUNK, (uint64_t) c * CHUNK);
      if (r != 0)
        fail_once (w, 7);
    }
    else
      for (unsigned i = 0; i < OPS / 4; i++)
        step (w, c);
    pthread_barrier_wait (&sh->barrier);
    memset (w->model[c], 0, SLOT);
  }
  return NULL;
}

static void
test_eviction_under_load (void **state)
{
  char *tmp = tmp_dir_fast ();
  char uri[PATH_MAX + 64];
  snprintf (uri, sizeof uri, "dir:%s/d?size=%d&chunk=%d&max-open=2", tmp,
            SIZE, CHUNK);
  struct shared sh = { .b = open_ok (uri, 0) };
  pthread_barrier_init (&sh.barrier, NULL, THREADS);
  struct worker *w = calloc (THREADS, sizeof *w);
  assert_non_null (w);
  for (unsigned i = 0; i < THREADS; i++) {
    w[i].sh = &sh;
    w[i].id = i;
    w[i].rng = 0x2545F4914F6CDD1Dull * (i + 1);
    assert_int_equal (pthread_create (&w[i].tid, NULL, run, &w[i]), 0);
  }
  for (unsigned i = 0; i < THREADS; i++)
    pthread_join (w[i].tid, NULL);
  for (unsigned i = 0; i < THREADS; i++)
    if (w[i].failed)
      fail_msg ("worker %u: failure %d", i, w[i].failed);
  pthread_barrier_destroy (&sh.barrier);
  assert_int_equal (r3m_backend_flush (sh.b), 0);
  r3m_backend_close (sh.b);

  struct r3m_backend *b = open_ok (uri, 0);
  unsigned char all[SIZE];
  assert_int_equal (r3m_backend_pread (b, all, SIZE, 0), 0);
  for (unsigned c = 0; c < CHUNKS; c++)
    for (unsigned t = 0; t < THREADS; t++)
      if (memcmp (all + c * CHUNK + t * SLOT, w[t].model[c], SLOT) != 0)
        fail_msg ("chunk %u slot %u differs from its model after reopen", c,
                  t);
  r3m_backend_close (b);
  free (w);
  tmp_remove (tmp);
  free (tmp);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_eviction_under_load),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
