/* The dirty tracker (rounds) and the gate. */
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

#include "testutil.h"

#define CS 64
#define NCHUNKS 200
#define SIZE (CS * NCHUNKS)

static struct r3m_region *
open_region (bool direct, bool gated, struct r3m_backend **remote,
             struct r3m_backend **cache)
{
  *remote = tu_memory (SIZE);
  *cache = direct ? NULL : tu_memory (SIZE);
  struct r3m_region_options o;
  r3m_region_options_init (&o);
  o.chunk_size = CS;
  o.gated = gated;
  struct r3m_region *r;
  assert_int_equal (r3m_region_open (*remote, *cache, &o, &r, NULL), 0);
  return r;
}

static void
close_region (struct r3m_region *r, struct r3m_backend *remote,
              struct r3m_backend *cache)
{
  assert_int_equal (r3m_region_close (r, NULL), 0);
  r3m_backend_close (remote);
  r3m_backend_close (cache);
}

static void
put (struct r3m_region *r, uint64_t off, size_t len)
{
  unsigned char buf[512];
  memset (buf, 0xab, sizeof buf);
  assert_true (len <= sizeof buf);
  assert_int_equal (r3m_region_write (r, buf, len, off, 0), 0);
}

static void
expect_take (struct r3m_region *r, const uint64_t *want, size_t n)
{
  uint64_t *got;
  size_t m;
  assert_int_equal (r3m_region_track_take (r, &got, &m), 0);
  assert_int_equal (m, n);
  for (size_t i = 0; i < n; i++)
    assert_int_equal (got[i], want[i]);
  free (got);
}

/* The original's tracking rounds: writes before start are not tracked,
 * duplicates collapse, each take returns only what came after the last. */
static void
rounds (bool direct)
{
  struct r3m_backend *remote, *cache;
  struct r3m_region *r = open_region (direct, false, &remote, &cache);
  put (r, 0, 10);                               /* before start */
  assert_int_equal (r3m_region_track_start (r), 0);
  expect_take (r, NULL, 0);
  put (r, 5 * CS, 1);
  put (r, 5 * CS + 3, 1);                       /* same chunk again */
  put (r, 2 * CS + 60, 10);                     /* chunks 2 and 3 */
  put (r, 150 * CS, 3 * CS);                    /* 150..152 */
  assert_int_equal (r3m_region_zero (r, 1, 199 * CS, 0), 0);
  expect_take (r, (uint64_t[]) { 2, 3, 5, 150, 151, 152, 199 }, 7);
  put (r, 70 * CS, 1);
  expect_take (r, (uint64_t[]) { 70 }, 1);
  expect_take (r, NULL, 0);
  /* Reads are not writes. */
  unsigned char buf[CS];
  assert_int_equal (r3m_region_read (r, buf, CS, 9 * CS), 0);
  expect_take (r, NULL, 0);
  /* mark_dirty counts as a write. */
  assert_int_equal (r3m_region_mark_dirty (r, 80 * CS, 1), 0);
  expect_take (r, (uint64_t[]) { 80 }, 1);
  r3m_region_track_stop (r);
  put (r, 90 * CS, 1);
  expect_take (r, NULL, 0);
  /* start forgets what was recorded before it. */
  assert_int_equal (r3m_region_track_start (r), 0);
  put (r, 91 * CS, 1);
  r3m_region_track_stop (r);
  assert_int_equal (r3m_region_track_start (r), 0);
  expect_take (r, NULL, 0);
  close_region (r, remote, cache);
}

static void
test_tracking_rounds_cached (void **state)
{
  rounds (false);
}

static void
test_tracking_rounds_direct (void **state)
{
  rounds (true);
}

/* Writes racing with takes: every completed write shows up in some take,
 * and the union of the takes is exactly the set written. */
struct racer {
  struct r3m_region *r;
  unsigned id;
  atomic_bool *stop;
  unsigned char written[NCHUNKS];
};

static void *
racer (void *p)
{
  struct racer *a = p;
  uint64_t s = a->id;
  unsigned char b = 1;
  for (int i = 0; i < 3000; i++) {
    uint64_t c = tu_rand (&s) % NCHUNKS;
    if (r3m_region_write (a->r, &b, 1, c * CS + a->id, 0) != 0)
      return (void *) 1;
    a->written[c] = 1;
  }
  return NULL;
}

static void
test_tracking_races_with_take (void **state)
{
  struct r3m_backend *remote, *cache;
  struct r3m_region *r = open_region (false, false, &remote, &cache);
  assert_int_equal (r3m_region_track_start (r), 0);
  struct racer a[3];
  pthread_t t[3];
  atomic_bool stop = false;
  for (unsigned i = 0; i < 3; i++) {
    a[i] = (struct racer) { .r = r, .id = i + 1, .stop = &stop };
    pthread_create (&t[i], NULL, racer, &a[i]);
  }
  unsigned char seen[NCHUNKS] = { 0 };
  for (int k = 0; k < 200; k++) {
    uint64_t *got;
    size_t n;
    assert_int_equal (r3m_region_track_take (r, &got, &n), 0);
    for (size_t i = 0; i < n; i++)
      seen[got[i]] = 1;
    free (got);
  }
  for (unsigned i = 0; i < 3; i++) {
    void *ret;
    pthread_join (t[i], &ret);
    assert_null (ret);
  }
  uint64_t *got;
  size_t n;
  assert_int_equal (r3m_region_track_take (r, &got, &n), 0);
  for (size_t i = 0; i < n; i++)
    seen[got[i]] = 1;
  free (got);
  for (unsigned c = 0; c < NCHUNKS; c++) {
    bool w = a[0].written[c] || a[1].written[c] || a[2].written[c];
    assert_int_equal (seen[c], w);
  }
  close_region (r, remote, cache);
}

/* Gate: with opts.gated, I/O waits until the gate opens. */
struct gated_io {
  struct r3m_region *r;
  atomic_int done;
  int rc;
};

static void *
gated_reader (void *p)
{
  struct gated_io *g = p;
  unsigned char buf[10];
  g->rc = r3m_region_read (g->r, buf, sizeof buf, 0);
  atomic_store (&g->done, 1);
  return NULL;
}

static void *
gated_writer (void *p)
{
  struct gated_io *g = p;
  unsigned char buf[10] = { 1 };
  g->rc = r3m_region_write (g->r, buf, sizeof buf, 100, 0);
  atomic_store (&g->done, 1);
  return NULL;
}

static void
test_gate_holds_io_until_open (void **state)
{
  struct r3m_backend *remote, *cache;
  struct r3m_region *r = open_region (false, true, &remote, &cache);
  struct gated_io rd = { .r = r }, wr = { .r = r };
  pthread_t t1, t2;
  pthread_create (&t1, NULL, gated_reader, &rd);
  pthread_create (&t2, NULL, gated_writer, &wr);
  /* The background pull goes on behind a closed gate. */
  assert_int_equal (r3m_region_wait_pulled (r, 10000), 0);
  usleep (20000);
  assert_int_equal (atomic_load (&rd.done), 0);
  assert_int_equal (atomic_load (&wr.done), 0);
  r3m_region_gate_open (r);
  pthread_join (t1, NULL);
  pthread_join (t2, NULL);
  assert_int_equal (rd.rc, 0);
  assert_int_equal (wr.rc, 0);
  /* Open stays open: later I/O does not wait. */
  unsigned char buf[4];
  assert_int_equal (r3m_region_read (r, buf, 4, 0), 0);
  r3m_region_gate_open (r);
  close_region (r, remote, cache);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_tracking_rounds_cached),
    cmocka_unit_test (test_tracking_rounds_direct),
    cmocka_unit_test (test_tracking_races_with_take),
    cmocka_unit_test (test_gate_holds_io_until_open),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
