/* Concurrent read-modify-write through the alignment adapter: 8 threads
 * write their own 8-byte slots of shared 64-byte blocks, so every write is
 * an RMW of a block other threads are modifying at the same time.  Without
 * the stripe locks, one thread's RMW writes back a block read before
 * another's write, and that write is lost.  A ninth thread writes whole
 * blocks elsewhere (same stripes, shared locks).  The result must equal
 * each thread's model. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common.h"
#include "testbe.h"

enum {
  BLOCK = 64, SLOTS = 8, SLOT = BLOCK / SLOTS,
  SHARED_BLOCKS = 64,            /* blocks 0..63: slots of 8 threads */
  OWN_BLOCKS = 64,               /* blocks 64..127: whole-block thread */
  SIZE = (SHARED_BLOCKS + OWN_BLOCKS) * BLOCK,
  ITERS = 20000,
};

static pthread_barrier_t start;

struct worker {
  pthread_t tid;
  struct r3m_backend *b;
  unsigned id;
  uint64_t rng;
  unsigned char model[SIZE];     /* only this worker's bytes are meaningful */
  int failed;                    /* first error seen, 0 if none */
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

static void
slot_step (struct worker *w)
{
  uint64_t r = next (&w->rng);
  uint64_t block = r % SHARED_BLOCKS;
  unsigned sub = (unsigned) (r >> 8) % SLOT;
  unsigned len = 1 + (unsigned) (r >> 16) % (SLOT - sub);
  uint64_t off = block * BLOCK + w->id * SLOT + sub;
  unsigned char buf[SLOT];
  switch ((r >> 24) % 4) {
  case 0:
  case 1:
    for (unsigned i = 0; i < len; i++)
      buf[i] = (unsigned char) next (&w->rng);
    if (r3m_backend_pwrite (w->b, buf, len, off, 0) != 0)
      fail_once (w, 1);
    memcpy (w->model + off, buf, len);
    break;
  case 2:
    if (r3m_backend_zero (w->b, len, off, 0) != 0)
      fail_once (w, 2);
    memset (w->model + off, 0, len);
    break;
  default:
    if (r3m_backend_pread (w->b, buf, len, off) != 0)
      fail_once (w, 3);
    else if (memcmp (buf, w->model + off, len) != 0)
      fail_once (w, 4);
  }
}

static void
block_step (struct worker *w)
{
  uint64_t r = next (&w->rng);
  uint64_t off = (SHARED_BLOCKS + r % OWN_BLOCKS) * BLOCK;
  unsigned n = 1 + (unsigned) (r >> 32) % 2;          /* one or two blocks */
  if (off + n * BLOCK > SIZE)
    n = 1;
  unsigned char buf[2 * BLOCK];
  if ((r >> 8) % 2) {
    for (unsigned i = 0; i < n * BLOCK; i++)
      buf[i] = (unsigned char) next (&w->rng);
    if (r3m_backend_pwrite (w->b, buf, n * BLOCK, off, 0) != 0)
      fail_once (w, 5);
    memcpy (w->model + off, buf, n * BLOCK);
  }
  else if (r3m_backend_pread (w->b, buf, n * BLOCK, off) != 0)
    fail_once (w, 6);
  else if (memcmp (buf, w->model + off, n * BLOCK) != 0)
    fail_once (w, 7);
}

static void *
run (void *arg)
{
  struct worker *w = arg;
  pthread_barrier_wait (&start);
  for (unsigned i = 0; i < ITERS; i++)
    if (w->id < SLOTS)
      slot_step (w);
    else
      block_step (w);
  return NULL;
}

static void
test_concurrent_rmw (void **state)
{
  struct testbe *tb;
  struct testbe_opts o = { .size = SIZE, .align = BLOCK, .yield = true };
  struct r3m_backend *b = testbe_new (&o, &tb);
  struct worker *w = calloc (SLOTS + 1, sizeof *w);
  assert_non_null (w);
  pthread_barrier_init (&start, NULL, SLOTS + 1);
  for (unsigned i = 0; i <= SLOTS; i++) {
    w[i].b = b;
    w[i].id = i;
    w[i].rng = 0x9E3779B97F4A7C15ull * (i + 1);
    assert_int_equal (pthread_create (&w[i].tid, NULL, run, &w[i]), 0);
  }
  for (unsigned i = 0; i <= SLOTS; i++)
    pthread_join (w[i].tid, NULL);
  pthread_barrier_destroy (&start);
  for (unsigned i = 0; i <= SLOTS; i++)
    if (w[i].failed)
      fail_msg ("worker %u: failure %d", i, w[i].failed);

  static unsigned char all[SIZE], want[SIZE];
  assert_int_equal (r3m_backend_pread (b, all, SIZE, 0), 0);
  for (uint64_t k = 0; k < SHARED_BLOCKS; k++)
    for (unsigned t = 0; t < SLOTS; t++) {
      uint64_t off = k * BLOCK + t * SLOT;
      memcpy (want + off, w[t].model + off, SLOT);
    }
  memcpy (want + SHARED_BLOCKS * BLOCK, w[SLOTS].model + SHARED_BLOCKS * BLOCK,
          OWN_BLOCKS * BLOCK);
  for (size_t i = 0; i < SIZE; i++)
    if (all[i] != want[i])
      fail_msg ("byte %zu (block %zu, slot %zu): %02x, want %02x: a write "
                "was lost", i, i / BLOCK, i % BLOCK / SLOT, all[i], want[i]);
  assert_int_equal (atomic_load (&tb->violations), 0);
  r3m_backend_close (b);
  free (w);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_concurrent_rmw),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
