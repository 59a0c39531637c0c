/* Failures: a fetch that fails gives SIGBUS and a reported error, never a
 * hang; a push that fails is reported and retried by the next flush. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "frontend/uffd/internal.h"
#include "helpers.h"

#define MiB (1024u * 1024u)
#define CHUNK 65536u

static struct r3m_uffd *
map_opts (struct r3m_backend *b, bool background, uint32_t timeout_ms)
{
  struct r3m_uffd_options o;
  r3m_uffd_options_init (&o);
  if (!background)
    o.region.pull_workers = 0;
  o.fetch_timeout_ms = timeout_ms;
  struct r3m_uffd *u;
  struct r3m_error err = { 0 };
  if (r3m_uffd_map (b, &o, &u, &err) < 0)
    fail_msg ("r3m_uffd_map: %s", err.msg);
  return u;
}

/* A chunk whose every read fails: retried, then SIGBUS at the address
 * touched, the error in the status; the rest of the region still works. */
static void
test_failed_fetch_sigbus (void **state)
{
  struct faulty *f;
  struct r3m_backend *b = faulty_new (pattern_backend (MiB), &f);
  faulty_fail_reads (f, 5 * CHUNK, 6 * CHUNK, EIO);
  struct r3m_uffd *u = map_opts (b, false, 0);
  unsigned char *p = r3m_uffd_addr (u);
  void *addr = NULL;
  assert_int_equal (catch_fault (touch_read, p + 5 * CHUNK + 123, &addr),
                    SIGBUS);
  assert_ptr_equal ((char *) addr, (char *) p + 5 * CHUNK + 123);
  struct r3m_error err = { 0 };
  /* Three attempts: the default two retries. */
  assert_int_equal (faulty_reads_at (f, 5 * CHUNK), 3);
  struct r3m_uffd_status st;
  r3m_uffd_status (u, &st);
  assert_int_equal (st.chunks_failed, 1);
  assert_int_equal (st.last_error, EIO);
  assert_non_null (strstr (st.last_error_msg, "chunk 5"));
  /* Every later access to the chunk fails the same way, at once. */
  assert_int_equal (catch_fault (touch_read, p + 6 * CHUNK - 1, NULL), SIGBUS);
  assert_int_equal (faulty_reads_at (f, 5 * CHUNK), 3);
  /* Its neighbours are fine. */
  assert_int_equal (p[4 * CHUNK], pattern_byte (4 * CHUNK));
  assert_int_equal (p[6 * CHUNK], pattern_byte (6 * CHUNK));
  if (r3m_uffd_unmap (u, &err) < 0)
    fail_msg ("unmap: %s", err.msg);
  r3m_backend_close (b);
}

/* A backend that fails once recovers on the retry: no SIGBUS. */
static void
test_transient_failure_retried (void **state)
{
  struct faulty *f;
  struct r3m_backend *b = faulty_new (pattern_backend (MiB), &f);
  faulty_fail_reads (f, 0, MiB, EIO);
  struct r3m_uffd *u = map_opts (b, true, 0);
  /* The background pull fails everywhere ... */
  assert_int_equal (r3m_uffd_wait_pulled (u, 10000), -EIO);
  struct r3m_uffd_status st;
  r3m_uffd_status (u, &st);
  assert_int_equal (st.chunks_failed, 0);     /* nobody wanted them yet */
  assert_true (st.region.errors > 0);
  /* ... but a fault after the store recovered is served. */
  faulty_fail_reads (f, 0, 0, 0);
  unsigned char *p = r3m_uffd_addr (u);
  assert_int_equal (p[7 * CHUNK + 1], pattern_byte (7 * CHUNK + 1));
  assert_int_equal (r3m_uffd_unmap (u, NULL), 0);
  r3m_backend_close (b);
}

/* A fetch that never returns: the faulting access gets SIGBUS when the
 * fetch timeout passes. */
static void
test_stalled_fetch_times_out (void **state)
{
  struct faulty *f;
  struct r3m_backend *b = faulty_new (pattern_backend (MiB), &f);
  faulty_stall_reads (f, 2 * CHUNK, 3 * CHUNK);
  struct r3m_uffd *u = map_opts (b, false, 200);
  unsigned char *p = r3m_uffd_addr (u);
  assert_int_equal (catch_fault (touch_read, p + 2 * CHUNK, NULL), SIGBUS);
  struct r3m_uffd_status st;
  r3m_uffd_status (u, &st);
  assert_int_equal (st.last_error, ETIMEDOUT);
  assert_int_equal (st.chunks_failed, 1);
  /* Until the late answer arrives, the chunk stays poisoned; once it does,
   * it is installed over the poison and reads right. */
  assert_int_equal (catch_fault (touch_read, p + 2 * CHUNK + 1, NULL), SIGBUS);
  faulty_release (f);
  int sig = SIGBUS;
  for (int i = 0; i < 10000 && sig; i++) {
    sig = catch_fault (touch_read, p + 2 * CHUNK, NULL);
    if (sig) {
      struct timespec ts = { 0, 1000000 };
      nanosleep (&ts, NULL);
    }
  }
  assert_int_equal (sig, 0);
  assert_int_equal (p[2 * CHUNK + 7], pattern_byte (2 * CHUNK + 7));
  assert_int_equal (p[3 * CHUNK], pattern_byte (3 * CHUNK));
  assert_int_equal (r3m_uffd_unmap (u, NULL), 0);
  r3m_backend_close (b);
}

struct toucher {
  unsigned char *p;
  int sig;
  _Atomic bool done;
};

static void *
touch_thread (void *arg)
{
  struct toucher *t = arg;
  t->sig = catch_fault (touch_read, t->p, NULL);
  atomic_store (&t->done, true);
  return NULL;
}

struct unmapper {
  struct r3m_uffd *u;
  int r;
  _Atomic bool done;
};

static void *
unmap_thread (void *arg)
{
  struct unmapper *m = arg;
  m->r = r3m_uffd_unmap (m->u, NULL);
  atomic_store (&m->done, true);
  return NULL;
}

static bool
wait_flag (_Atomic bool *flag, int ms)
{
  for (int i = 0; i < ms && !atomic_load (flag); i++) {
    struct timespec ts = { 0, 1000000 };
    nanosleep (&ts, NULL);
  }
  return atomic_load (flag);
}

/* Unmap while threads wait in faults on a fetch that does not return:
 * they get SIGBUS right away (not when the fetch ends), and unmap returns
 * once the backend lets go of its worker. */
static void
test_unmap_with_faults_in_flight (void **state)
{
  enum { N = 4 };
  struct faulty *f;
  struct r3m_backend *b = faulty_new (pattern_backend (MiB), &f);
  faulty_stall_reads (f, 0, MiB);
  struct r3m_uffd *u = map_opts (b, false, 0);
  unsigned char *p = r3m_uffd_addr (u);
  struct toucher t[N];
  pthread_t th[N];
  for (int i = 0; i < N; i++) {
    t[i] = (struct toucher) { p + (uint64_t) i * 3 * CHUNK + 1, 0, false };
    pthread_create (&th[i], NULL, touch_thread, &t[i]);
  }
  /* Both workers are stuck; the other faults are queued. */
  assert_true (faulty_wait_stalled (f, 2, 10000));
  struct unmapper m = { u, -1, false };
  pthread_t mt;
  pthread_create (&mt, NULL, unmap_thread, &m);
  for (int i = 0; i < N; i++) {
    assert_true (wait_flag (&t[i].done, 10000));
    pthread_join (th[i], NULL);
    assert_int_equal (t[i].sig, SIGBUS);
  }
  assert_false (atomic_load (&m.done));   /* still waiting for the backend */
  faulty_release (f);
  assert_true (wait_flag (&m.done, 10000));
  pthread_join (mt, NULL);
  assert_int_equal (m.r, 0);
  r3m_backend_close (b);
}

/* A push that fails is reported, the chunk stays dirty, and the next
 * flush pushes it. */
static void
test_failed_push_retried (void **state)
{
  struct faulty *f;
  struct r3m_backend *b = faulty_new (pattern_backend (MiB), &f);
  struct r3m_uffd *u = map_opts (b, true, 0);
  unsigned char *p = r3m_uffd_addr (u);
  p[9 * CHUNK] = 0x5e;
  faulty_fail_writes (f, ENOSPC);
  struct r3m_error err = { 0 };
  assert_int_equal (r3m_uffd_flush (u, &err), -ENOSPC);
  assert_int_equal (err.code, ENOSPC);
  struct r3m_uffd_status st;
  r3m_uffd_status (u, &st);
  assert_int_equal (st.region.chunks_dirty, 1);
  faulty_fail_writes (f, 0);
  assert_int_equal (r3m_uffd_flush (u, NULL), 0);
  unsigned char c;
  assert_int_equal (r3m_backend_pread (b, &c, 1, 9 * CHUNK), 0);
  assert_int_equal (c, 0x5e);
  assert_int_equal (r3m_uffd_unmap (u, NULL), 0);
  r3m_backend_close (b);
}

/* Kernels without UFFDIO_POISON: the failed chunk becomes inaccessible
 * (SIGSEGV) instead; still an error, never a hang. */
static void
test_failure_without_poison (void **state)
{
  struct faulty *f;
  struct r3m_backend *b = faulty_new (pattern_backend (MiB), &f);
  faulty_fail_reads (f, CHUNK, 2 * CHUNK, EIO);
  struct r3m_uffd *u = map_opts (b, false, 0);
  u->map.poison_by_mprotect = true;
  unsigned char *p = r3m_uffd_addr (u);
  assert_int_equal (catch_fault (touch_read, p + CHUNK + 5, NULL), SIGSEGV);
  assert_int_equal (p[0], pattern_byte (0));
  assert_int_equal (r3m_uffd_unmap (u, NULL), 0);
  r3m_backend_close (b);
}

int
main (void)
{
  require_uffd ();
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_failed_fetch_sigbus),
    cmocka_unit_test (test_transient_failure_retried),
    cmocka_unit_test (test_stalled_fetch_times_out),
    cmocka_unit_test (test_unmap_with_faults_in_flight),
    cmocka_unit_test (test_failed_push_retried),
    cmocka_unit_test (test_failure_without_poison),
  };
  return cmocka_run_group_tests_name ("uffd failures", tests, NULL, NULL);
}
