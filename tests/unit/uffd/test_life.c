/* What the application may do to the mapping itself: fork, mremap,
 * munmap part of it. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "helpers.h"

#define MiB (1024u * 1024u)
#define CHUNK 65536u

static struct r3m_uffd *
map_plain (struct r3m_backend *b)
{
  struct r3m_uffd_options o;
  r3m_uffd_options_init (&o);
  o.region.pull_workers = 0;
  struct r3m_uffd *u;
  struct r3m_error err = { 0 };
  if (r3m_uffd_map (b, &o, &u, &err) < 0)
    fail_msg ("r3m_uffd_map: %s", err.msg);
  return u;
}

/* A child does not inherit the region (it would see zeros where data is
 * missing): touching it there is a SIGSEGV; the parent goes on. */
static void
test_fork_excluded (void **state)
{
  struct r3m_backend *b = pattern_backend (MiB);
  struct r3m_uffd *u = map_plain (b);
  unsigned char *p = r3m_uffd_addr (u);
  assert_int_equal (p[0], pattern_byte (0));
  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0) {
    signal (SIGSEGV, SIG_DFL);
    volatile unsigned char *v = p + CHUNK * 3;
    _exit (*v == pattern_byte (CHUNK * 3) ? 0 : 1);
  }
  int status;
  assert_int_equal (waitpid (pid, &status, 0), pid);
  assert_true (WIFSIGNALED (status));
  assert_int_equal (WTERMSIG (status), SIGSEGV);
  assert_int_equal (p[CHUNK * 3], pattern_byte (CHUNK * 3));
  assert_int_equal (r3m_uffd_unmap (u, NULL), 0);
  r3m_backend_close (b);
}

/* Moving the whole region is followed: faults at the new address are
 * served, writes there are pushed, unmap releases the new range. */
static void
test_mremap_whole (void **state)
{
  struct r3m_backend *b = pattern_backend (2 * MiB);
  struct r3m_uffd *u = map_plain (b);
  unsigned char *p = r3m_uffd_addr (u);
  p[0] = 0x42;                                  /* chunk 0 local, dirty */
  void *hole = mmap (NULL, 2 * MiB, PROT_NONE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  assert_true (hole != MAP_FAILED);
  unsigned char *q = mremap (p, 2 * MiB, 2 * MiB,
                             MREMAP_MAYMOVE | MREMAP_FIXED, hole);
  assert_true (q == hole);
  assert_int_equal (q[0], 0x42);
  assert_int_equal (q[CHUNK * 20 + 9], pattern_byte (CHUNK * 20 + 9));
  /* The fault thread applies the move before it serves that fault. */
  assert_ptr_equal (r3m_uffd_addr (u), q);
  q[CHUNK * 30] = 0x43;
  assert_int_equal (r3m_uffd_flush (u, NULL), 0);
  unsigned char c;
  assert_int_equal (r3m_backend_pread (b, &c, 1, 0), 0);
  assert_int_equal (c, 0x42);
  assert_int_equal (r3m_backend_pread (b, &c, 1, CHUNK * 30), 0);
  assert_int_equal (c, 0x43);
  struct r3m_uffd_status st;
  r3m_uffd_status (u, &st);
  assert_int_equal (st.errors, 0);
  assert_int_equal (r3m_uffd_unmap (u, NULL), 0);
  /* The new range is gone, so a fixed mapping there succeeds. */
  void *again = mmap (q, 2 * MiB, PROT_READ,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
                      -1, 0);
  assert_ptr_equal (again, q);
  munmap (again, 2 * MiB);
  r3m_backend_close (b);
}

/* Part of the region moved away is given up: its missing pages raise
 * SIGBUS at the new place, the error is reported, the rest still works. */
static void
test_mremap_part (void **state)
{
  struct r3m_backend *b = pattern_backend (2 * MiB);
  struct r3m_uffd *u = map_plain (b);
  unsigned char *p = r3m_uffd_addr (u);
  void *hole = mmap (NULL, 4 * CHUNK, PROT_NONE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  assert_true (hole != MAP_FAILED);
  unsigned char *q = mremap (p + 8 * CHUNK, 4 * CHUNK, 4 * CHUNK,
                             MREMAP_MAYMOVE | MREMAP_FIXED, hole);
  assert_true (q == hole);
  assert_int_equal (catch_fault (touch_read, q + 5, NULL), SIGBUS);
  assert_int_equal (p[CHUNK * 20], pattern_byte (CHUNK * 20));
  struct r3m_uffd_status st;
  r3m_uffd_status (u, &st);
  assert_true (st.errors > 0);
  assert_int_equal (r3m_uffd_unmap (u, NULL), 0);
  munmap (q, 4 * CHUNK);
  r3m_backend_close (b);
}

/* The application unmapped the tail itself and reused the addresses:
 * unmapping the region leaves that new mapping alone. */
static void
test_app_munmap_part (void **state)
{
  struct r3m_backend *b = pattern_backend (2 * MiB);
  struct r3m_uffd *u = map_plain (b);
  unsigned char *p = r3m_uffd_addr (u);
  p[0] = 1;
  p[MiB + 5] = 2;
  assert_int_equal (munmap (p + MiB, MiB), 0);
  unsigned char *mine = mmap (p + MiB, MiB, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS
                              | MAP_FIXED_NOREPLACE, -1, 0);
  assert_ptr_equal (mine, p + MiB);
  mine[0] = 7;
  struct r3m_error err = { 0 };
  if (r3m_uffd_unmap (u, &err) < 0)
    fail_msg ("r3m_uffd_unmap: %s", err.msg);
  assert_int_equal (mine[0], 7);                /* still mapped */
  unsigned char c;
  assert_int_equal (r3m_backend_pread (b, &c, 1, 0), 0);
  assert_int_equal (c, 1);                      /* pushed */
  assert_int_equal (r3m_backend_pread (b, &c, 1, MiB + 5), 0);
  assert_int_equal (c, pattern_byte (MiB + 5)); /* given up, not pushed */
  munmap (mine, MiB);
  r3m_backend_close (b);
}

int
main (void)
{
  require_uffd ();
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_fork_excluded),
    cmocka_unit_test (test_mremap_whole),
    cmocka_unit_test (test_mremap_part),
    cmocka_unit_test (test_app_munmap_part),
  };
  return cmocka_run_group_tests_name ("uffd lifecycle", tests, NULL, NULL);
}
