/* Writes through the mapping: tracked, pushed on flush, and nothing else
 * is pushed.  Each test runs in both tracking modes. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <cmocka.h>

#include "backend/backends.h"
#include "helpers.h"

#define MiB (1024u * 1024u)
#define CHUNK 65536u

static struct r3m_uffd *
map_track (struct r3m_backend *b, enum r3m_uffd_track t, bool background)
{
  struct r3m_uffd_options o;
  r3m_uffd_options_init (&o);
  o.track = t;
  if (!background)
    o.region.pull_workers = 0;
  struct r3m_uffd *u;
  struct r3m_error err = { 0 };
  if (r3m_uffd_map (b, &o, &u, &err) < 0)
    fail_msg ("r3m_uffd_map: %s", err.msg);
  return u;
}

static unsigned char
remote_byte (struct r3m_backend *b, uint64_t off)
{
  unsigned char c;
  assert_int_equal (r3m_backend_pread (b, &c, 1, off), 0);
  return c;
}

/* Written, flushed, unmapped, mapped again: the data comes back. */
static void
round_trip (enum r3m_uffd_track t)
{
  struct r3m_backend *b = pattern_backend (8 * MiB);
  struct r3m_uffd *u = map_track (b, t, true);
  unsigned char *p = r3m_uffd_addr (u);
  memset (p + 100, 0x11, 5000);                 /* spans two pages */
  p[3 * MiB] = 0x22;
  memset (p + 8 * MiB - 70000, 0x33, 70000);    /* spans two chunks */
  assert_int_equal (r3m_uffd_flush (u, NULL), 0);
  assert_int_equal (remote_byte (b, 100), 0x11);
  assert_int_equal (remote_byte (b, 5099), 0x11);
  assert_int_equal (remote_byte (b, 5100), pattern_byte (5100));
  assert_int_equal (remote_byte (b, 3 * MiB), 0x22);
  p[5 * MiB] = 0x44;                            /* pushed by unmap */
  assert_int_equal (r3m_uffd_unmap (u, NULL), 0);

  u = map_track (b, t, false);
  p = r3m_uffd_addr (u);
  assert_int_equal (p[99], pattern_byte (99));
  assert_int_equal (p[100], 0x11);
  assert_int_equal (p[5099], 0x11);
  assert_int_equal (p[3 * MiB], 0x22);
  assert_int_equal (p[5 * MiB], 0x44);
  assert_int_equal (p[8 * MiB - 1], 0x33);
  assert_int_equal (p[8 * MiB - 70001], pattern_byte (8 * MiB - 70001));
  assert_int_equal (r3m_uffd_unmap (u, NULL), 0);
  r3m_backend_close (b);
}

static void test_round_trip_async (void **s) { round_trip (R3M_UFFD_TRACK_AUTO); }
static void test_round_trip_sync (void **s) { round_trip (R3M_UFFD_TRACK_SYNC); }

/* Only the chunks written are pushed; chunks only read never are. */
static void
only_written_pushed (enum r3m_uffd_track t)
{
  struct faulty *f;
  struct r3m_backend *b = faulty_new (pattern_backend (4 * MiB), &f);
  struct r3m_uffd *u = map_track (b, t, true);
  assert_int_equal (r3m_uffd_wait_pulled (u, 10000), 0);
  unsigned char *p = r3m_uffd_addr (u);
  p[CHUNK * 3 + 5] ^= 1;
  p[CHUNK * 40] ^= 1;
  assert_int_equal (r3m_uffd_flush (u, NULL), 0);
  assert_int_equal (faulty_writes (f), 2);
  assert_true (faulty_written_at (f, CHUNK * 3));
  assert_true (faulty_written_at (f, CHUNK * 40));
  assert_true (faulty_flushes (f) >= 1);
  /* Nothing new: nothing pushed. */
  assert_int_equal (r3m_uffd_flush (u, NULL), 0);
  assert_int_equal (faulty_writes (f), 2);
  /* A second write to a pushed chunk is seen again. */
  p[CHUNK * 3 + 6] ^= 1;
  assert_int_equal (r3m_uffd_flush (u, NULL), 0);
  assert_int_equal (faulty_writes (f), 3);
  struct r3m_uffd_status st;
  r3m_uffd_status (u, &st);
  assert_int_equal (st.region.pushes, 3);
  assert_int_equal (st.region.chunks_dirty, 0);
  if (t == R3M_UFFD_TRACK_SYNC) {
    assert_int_equal (st.track, R3M_UFFD_TRACK_SYNC);
    assert_int_equal (st.wp_faults, 3);
  }
  assert_int_equal (r3m_uffd_unmap (u, NULL), 0);
  assert_int_equal (faulty_writes (f), 3);
  r3m_backend_close (b);
}

static void test_only_written_async (void **s) { only_written_pushed (R3M_UFFD_TRACK_AUTO); }
static void test_only_written_sync (void **s) { only_written_pushed (R3M_UFFD_TRACK_SYNC); }

/* With tracking off, writes stay local: nothing is pushed. */
static void
test_track_none (void **s)
{
  struct faulty *f;
  struct r3m_backend *b = faulty_new (pattern_backend (MiB), &f);
  struct r3m_uffd *u = map_track (b, R3M_UFFD_TRACK_NONE, true);
  unsigned char *p = r3m_uffd_addr (u);
  p[10] = 1;
  assert_int_equal (r3m_uffd_flush (u, NULL), 0);
  assert_int_equal (r3m_uffd_unmap (u, NULL), 0);
  assert_int_equal (faulty_writes (f), 0);
  assert_int_equal (remote_byte (b, 10), pattern_byte (10));
  r3m_backend_close (b);
}

/* MADV_DONTNEED on a written chunk: its pages read as zeros, and the
 * zeros are pushed like a write. */
static void
discard (enum r3m_uffd_track t)
{
  struct r3m_backend *b = pattern_backend (2 * MiB);
  struct r3m_uffd *u = map_track (b, t, true);
  assert_int_equal (r3m_uffd_wait_pulled (u, 10000), 0);
  unsigned char *p = r3m_uffd_addr (u);
  assert_int_equal (r3m_uffd_flush (u, NULL), 0);
  assert_int_equal (madvise (p + CHUNK, 8192, MADV_DONTNEED), 0);
  assert_int_equal (p[CHUNK], 0);
  assert_int_equal (p[CHUNK + 8191], 0);
  assert_int_equal (p[CHUNK + 8192], pattern_byte (CHUNK + 8192));
  assert_int_equal (r3m_uffd_flush (u, NULL), 0);
  assert_int_equal (remote_byte (b, CHUNK + 5), 0);
  assert_int_equal (remote_byte (b, CHUNK + 8192), pattern_byte (CHUNK + 8192));
  /* Writing into a discarded page is tracked again. */
  p[CHUNK + 1] = 9;
  assert_int_equal (r3m_uffd_flush (u, NULL), 0);
  assert_int_equal (remote_byte (b, CHUNK + 1), 9);
  assert_int_equal (r3m_uffd_unmap (u, NULL), 0);
  r3m_backend_close (b);
}

static void test_discard_async (void **s) { discard (R3M_UFFD_TRACK_AUTO); }
static void test_discard_sync (void **s) { discard (R3M_UFFD_TRACK_SYNC); }

struct writer {
  unsigned char *p;
  _Atomic bool *stop;
  uint64_t off;
  unsigned char last;
  _Atomic uint64_t rounds;
};

static void *
keep_writing (void *arg)
{
  struct writer *w = arg;
  while (!atomic_load (w->stop)) {
    w->p[w->off] = ++w->last;
    atomic_fetch_add (&w->rounds, 1);
  }
  return NULL;
}

/* A write racing with a flush is pushed by that flush or the next: after
 * the writer stops, one more flush leaves the remote equal to memory. */
static void
racing_write (enum r3m_uffd_track t)
{
  struct r3m_backend *b = pattern_backend (MiB);
  struct r3m_uffd *u = map_track (b, t, true);
  assert_int_equal (r3m_uffd_wait_pulled (u, 10000), 0);
  _Atomic bool stop = false;
  struct writer w = { r3m_uffd_addr (u), &stop, CHUNK * 2 + 17, 0, 0 };
  pthread_t th;
  pthread_create (&th, NULL, keep_writing, &w);
  while (atomic_load (&w.rounds) == 0)
    sched_yield ();
  for (int i = 0; i < 200; i++)
    assert_int_equal (r3m_uffd_flush (u, NULL), 0);
  atomic_store (&stop, true);
  pthread_join (th, NULL);
  assert_int_equal (r3m_uffd_flush (u, NULL), 0);
  assert_int_equal (((unsigned char *) r3m_uffd_addr (u))[w.off], w.last);
  assert_int_equal (remote_byte (b, w.off), w.last);
  assert_int_equal (r3m_uffd_unmap (u, NULL), 0);
  r3m_backend_close (b);
}

static void test_racing_write_async (void **s) { racing_write (R3M_UFFD_TRACK_AUTO); }
static void test_racing_write_sync (void **s) { racing_write (R3M_UFFD_TRACK_SYNC); }

int
main (void)
{
  require_uffd ();
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_round_trip_async),
    cmocka_unit_test (test_round_trip_sync),
    cmocka_unit_test (test_only_written_async),
    cmocka_unit_test (test_only_written_sync),
    cmocka_unit_test (test_track_none),
    cmocka_unit_test (test_discard_async),
    cmocka_unit_test (test_discard_sync),
    cmocka_unit_test (test_racing_write_async),
    cmocka_unit_test (test_racing_write_sync),
  };
  return cmocka_run_group_tests_name ("uffd write", tests, NULL, NULL);
}
