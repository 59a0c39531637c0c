/* Mapping a backend: what the application reads is what the backend
 * holds, whichever way the chunks arrive. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend/backends.h"
#include "helpers.h"

#define MiB (1024u * 1024u)

static void
check_pattern (const unsigned char *p, uint64_t off, uint64_t len)
{
  for (uint64_t i = 0; i < len; i++)
    if (p[i] != pattern_byte (off + i))
      fail_msg ("byte %llu: %u, expected %u", (unsigned long long) (off + i),
                p[i], pattern_byte (off + i));
}

static struct r3m_uffd *
map (struct r3m_backend *b, struct r3m_uffd_options *o)
{
  struct r3m_uffd *u;
  struct r3m_error err = { 0 };
  int r = r3m_uffd_map (b, o, &u, &err);
  if (r < 0)
    fail_msg ("r3m_uffd_map: %s", err.msg);
  return u;
}

/* Demand faults only: every chunk arrives because a read wanted it. */
static void
test_demand_only (void **state)
{
  struct r3m_backend *b = pattern_backend (8 * MiB);
  struct r3m_uffd_options o;
  r3m_uffd_options_init (&o);
  o.region.pull_workers = 0;
  struct r3m_uffd *u = map (b, &o);
  const unsigned char *p = r3m_uffd_addr (u);
  /* Backwards, one byte per page, so no chunk is touched in order. */
  for (uint64_t off = 8 * MiB; off > 0; off -= 4096)
    assert_int_equal (p[off - 1], pattern_byte (off - 1));
  check_pattern (p, 0, 8 * MiB);
  /* UFFDIO_COPY wakes the faulting thread before the engine counts the
   * chunk local, so the last chunk's count may trail the read by a
   * moment. */
  struct r3m_uffd_status st;
  for (int i = 0; i < 5000; i++) {
    r3m_uffd_status (u, &st);
    if (st.region.chunks_local == st.region.chunks)
      break;
    usleep (1000);
  }
  assert_int_equal (st.region.chunks_local, st.region.chunks);
  assert_int_equal (st.region.fetches_background, 0);
  assert_int_equal (st.region.fetches_demand, st.region.chunks);
  assert_true (st.faults >= st.region.chunks);
  assert_int_equal (st.errors, 0);
  assert_int_equal (r3m_uffd_unmap (u, NULL), 0);
  r3m_backend_close (b);
}

/* The background pull installs everything without a single touch. */
static void
test_background_fills_all (void **state)
{
  struct r3m_backend *b = pattern_backend (16 * MiB);
  struct r3m_uffd *u = map (b, NULL);
  assert_int_equal (r3m_uffd_wait_pulled (u, 20000), 0);
  struct r3m_uffd_status st;
  r3m_uffd_status (u, &st);
  assert_true (st.region.pull_done);
  assert_int_equal (st.faults, 0);
  check_pattern (r3m_uffd_addr (u), 0, 16 * MiB);
  r3m_uffd_status (u, &st);
  assert_int_equal (st.faults, 0);     /* all were there already */
  assert_int_equal (r3m_uffd_unmap (u, NULL), 0);
  r3m_backend_close (b);
}

static int64_t
backwards (uint64_t chunk, void *user)
{
  (void) user;
  return (int64_t) chunk;
}

/* The priority callback orders the background pull. */
static void
test_priority_order (void **state)
{
  struct r3m_backend *inner = pattern_backend (4 * MiB);
  struct faulty *f;
  struct r3m_backend *b = faulty_new (inner, &f);
  /* Stall the first chunk: with the order reversed, every other chunk must
   * arrive while chunk 0 waits. */
  faulty_stall_reads (f, 0, 1);
  struct r3m_uffd_options o;
  r3m_uffd_options_init (&o);
  o.region.pull_workers = 1;
  o.region.priority = backwards;
  struct r3m_uffd *u = map (b, &o);
  assert_true (faulty_wait_stalled (f, 1, 10000));
  struct r3m_uffd_status st;
  r3m_uffd_status (u, &st);
  assert_int_equal (st.region.chunks_local, st.region.chunks - 1);
  faulty_release (f);
  assert_int_equal (r3m_uffd_wait_pulled (u, 10000), 0);
  check_pattern (r3m_uffd_addr (u), 0, 4 * MiB);
  assert_int_equal (r3m_uffd_unmap (u, NULL), 0);
  r3m_backend_close (b);
}

/* A size that is neither a chunk nor a page multiple: the tail of the
 * last page reads as zeros, the data before it is right. */
static void
test_odd_size (void **state)
{
  uint64_t size = 3 * 65536 + 5000;
  struct r3m_backend *b = pattern_backend (size);
  struct r3m_uffd *u = map (b, NULL);
  const unsigned char *p = r3m_uffd_addr (u);
  check_pattern (p, 0, size);
  for (uint64_t i = size; i < (size + 4095) / 4096 * 4096; i++)
    assert_int_equal (p[i], 0);
  assert_int_equal (r3m_uffd_size (u), size);
  assert_int_equal (r3m_uffd_unmap (u, NULL), 0);
  r3m_backend_close (b);
}

/* Never-written backend memory reads as zeros (the zero page), and a write
 * into such a chunk is still seen and pushed. */
static void
test_zero_chunks_tracked (void **state)
{
  struct r3m_backend *b;
  assert_int_equal (be_memory_new (4 * MiB, 0, "memory", &b, NULL), 0);
  struct r3m_uffd *u = map (b, NULL);
  unsigned char *p = r3m_uffd_addr (u);
  for (uint64_t i = 0; i < 4 * MiB; i += 512)
    assert_int_equal (p[i], 0);
  p[3 * MiB + 7] = 0xab;
  assert_int_equal (r3m_uffd_flush (u, NULL), 0);
  unsigned char c = 0;
  assert_int_equal (r3m_backend_pread (b, &c, 1, 3 * MiB + 7), 0);
  assert_int_equal (c, 0xab);
  assert_int_equal (r3m_uffd_unmap (u, NULL), 0);
  r3m_backend_close (b);
}

/* The kernel touching the mapping on our behalf (write(2) from it, read(2)
 * into it) is served like any access. */
static void
test_kernel_access (void **state)
{
  struct r3m_backend *b = pattern_backend (2 * MiB);
  struct r3m_uffd_options o;
  r3m_uffd_options_init (&o);
  o.region.pull_workers = 0;
  struct r3m_uffd *u = map (b, &o);
  unsigned char *p = r3m_uffd_addr (u);
  int fds[2];
  assert_int_equal (pipe (fds), 0);
  assert_int_equal (write (fds[1], p + MiB + 100, 3000), 3000);
  unsigned char got[3000];
  assert_int_equal (read (fds[0], got, sizeof got), 3000);
  check_pattern (got, MiB + 100, 3000);
  memset (got, 0x77, sizeof got);
  assert_int_equal (write (fds[1], got, sizeof got), 3000);
  assert_int_equal (read (fds[0], p + 1536 * 1024, 3000), 3000);
  assert_int_equal (p[1536 * 1024 + 2999], 0x77);
  close (fds[0]);
  close (fds[1]);
  assert_int_equal (r3m_uffd_unmap (u, NULL), 0);
  r3m_backend_close (b);
}

struct reader {
  const unsigned char *p;
  uint64_t size;
  uint64_t seed;
  int bad;
};

static void *
random_reader (void *arg)
{
  struct reader *r = arg;
  for (int i = 0; i < 20000; i++) {
    uint64_t off = rng_next (&r->seed) % r->size;
    if (r->p[off] != pattern_byte (off))
      r->bad++;
  }
  return NULL;
}

/* Many threads faulting on the same and different chunks at once. */
static void
test_many_threads (void **state)
{
  enum { N = 8 };
  struct r3m_backend *b = pattern_backend (32 * MiB);
  struct r3m_uffd_options o;
  r3m_uffd_options_init (&o);
  o.region.pull_workers = 0;
  struct r3m_uffd *u = map (b, &o);
  pthread_t t[N];
  struct reader r[N];
  for (int i = 0; i < N; i++) {
    r[i] = (struct reader) { r3m_uffd_addr (u), 32 * MiB, (uint64_t) i + 1, 0 };
    pthread_create (&t[i], NULL, random_reader, &r[i]);
  }
  for (int i = 0; i < N; i++) {
    pthread_join (t[i], NULL);
    assert_int_equal (r[i].bad, 0);
  }
  struct r3m_uffd_status st;
  r3m_uffd_status (u, &st);
  assert_int_equal (st.errors, 0);
  assert_true (st.region.fetches_demand <= st.region.chunks);   /* each fetched once */
  assert_int_equal (r3m_uffd_unmap (u, NULL), 0);
  r3m_backend_close (b);
}

static void
test_bad_options (void **state)
{
  struct r3m_backend *b = pattern_backend (MiB);
  struct r3m_uffd_options o;
  struct r3m_uffd *u;
  struct r3m_error err;
  r3m_uffd_options_init (&o);
  o.region.chunk_size = 3 * 4096;
  assert_int_equal (r3m_uffd_map (b, &o, &u, &err), -EINVAL);
  assert_non_null (strstr (err.msg, "chunk size"));
  o.region.chunk_size = 1024;
  assert_int_equal (r3m_uffd_map (b, &o, &u, &err), -EINVAL);
  r3m_uffd_options_init (&o);
  o.demand_workers = 0;
  assert_int_equal (r3m_uffd_map (b, &o, &u, &err), -EINVAL);
  r3m_backend_close (b);
}

int
main (void)
{
  require_uffd ();
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_demand_only),
    cmocka_unit_test (test_background_fills_all),
    cmocka_unit_test (test_priority_order),
    cmocka_unit_test (test_odd_size),
    cmocka_unit_test (test_zero_chunks_tracked),
    cmocka_unit_test (test_kernel_access),
    cmocka_unit_test (test_many_threads),
    cmocka_unit_test (test_bad_options),
  };
  return cmocka_run_group_tests_name ("uffd map", tests, NULL, NULL);
}
