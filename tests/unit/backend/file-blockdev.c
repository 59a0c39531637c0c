/* file: on a block device: a loop device over a file in a temporary
 * directory.  Needs root and losetup; exits 77 (skip) without them. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "common.h"

#define SIZE (4 << 20)

static char *tmp;
static char backing[PATH_MAX];
static char loopdev[64];
static char uri[128];

/* Attach a loop device; false (with a reason printed) when we cannot. */
static bool
attach (void)
{
  if (geteuid () != 0) {
    printf ("file-blockdev: needs root for losetup, skipping\n");
    return false;
  }
  tmp = tmp_dir ();
  snprintf (backing, sizeof backing, "%s/backing", tmp);
  int fd = open (backing, O_CREAT | O_RDWR, 0600);
  if (fd < 0 || ftruncate (fd, SIZE) < 0)
    return false;
  close (fd);
  char cmd[PATH_MAX + 64];
  snprintf (cmd, sizeof cmd, "losetup -f --show '%s' 2>&1", backing);
  FILE *p = popen (cmd, "r");
  if (!p || !fgets (loopdev, sizeof loopdev, p)) {
    if (p)
      pclose (p);
    printf ("file-blockdev: losetup failed, skipping\n");
    return false;
  }
  int st = pclose (p);
  loopdev[strcspn (loopdev, "\n")] = '\0';
  if (st != 0 || strncmp (loopdev, "/dev/loop", 9) != 0) {
    printf ("file-blockdev: losetup: %s, skipping\n", loopdev);
    return false;
  }
  snprintf (uri, sizeof uri, "file:%s", loopdev);
  return true;
}

static void
detach (void)
{
  if (loopdev[0]) {
    char cmd[128];
    snprintf (cmd, sizeof cmd, "losetup -d %s", loopdev);
    if (system (cmd) != 0)
      fprintf (stderr, "file-blockdev: %s failed\n", cmd);
  }
  if (tmp) {
    tmp_remove (tmp);
    free (tmp);
  }
}

static int
setup (void **state)
{
  *state = open_ok (uri, 0);
  return 0;
}

static int
teardown (void **state)
{
  r3m_backend_close (*state);
  return 0;
}

static void test_reads_zero (void **s) { check_reads_zero (*s); }
static void test_round_trip (void **s) { check_round_trip (*s); }
static void test_past_end (void **s) { check_past_end (*s); }
static void test_overflow (void **s) { check_overflow (*s); }
static void test_zero (void **s) { check_zero (*s, 0); }
static void test_zero_may_trim (void **s) { check_zero (*s, R3M_IO_MAY_TRIM); }
static void test_trim (void **s) { check_trim (*s); }
static void test_flush (void **s) { check_flush (*s); }
static void test_extents (void **s) { check_extents (*s); }
static void test_submit (void **s) { check_submit (*s); }
static void test_read_only (void **s) { check_read_only (uri); }

/* The size comes from BLKGETSIZE64 (fstat says 0 for a device). */
static void
test_size_from_device (void **state)
{
  assert_int_equal (r3m_backend_size (*state), SIZE);
}

static void
test_size_must_match (void **state)
{
  char u[160];
  snprintf (u, sizeof u, "%s?size=1M", uri);
  open_fails (u, 0, EINVAL, "the block device holds 4194304 bytes, not "
              "size=1048576");
  snprintf (u, sizeof u, "%s?size=4M", uri);
  r3m_backend_close (open_ok (u, 0));
}

/* Flushed writes reach the file behind the loop device. */
static void
test_flush_reaches_backing_file (void **state)
{
  static char buf[8192], back[8192];
  fill (buf, sizeof buf, 1000, 50);
  assert_int_equal (r3m_backend_pwrite (*state, buf, sizeof buf, 1000, 0), 0);
  assert_int_equal (r3m_backend_flush (*state), 0);
  int fd = open (backing, O_RDONLY);
  assert_true (fd >= 0);
  assert_int_equal (pread (fd, back, sizeof back, 1000), sizeof back);
  close (fd);
  assert_memory_equal (buf, back, sizeof buf);
}

/* Zero of unaligned edges around whole sectors. */
static void
test_zero_sector_edges (void **state)
{
  static char buf[4096], back[4096];
  fill (buf, sizeof buf, 0, 51);
  assert_int_equal (r3m_backend_pwrite (*state, buf, sizeof buf, 0, 0), 0);
  /* [100, 1100): partial, one whole sector [512, 1024), partial. */
  assert_int_equal (r3m_backend_zero (*state, 1000, 100, 0), 0);
  /* Inside one sector. */
  assert_int_equal (r3m_backend_zero (*state, 10, 2000, R3M_IO_MAY_TRIM), 0);
  assert_int_equal (r3m_backend_pread (*state, back, sizeof back, 0), 0);
  assert_memory_equal (back, buf, 100);
  for (size_t i = 100; i < 1100; i++)
    assert_int_equal (back[i], 0);
  assert_memory_equal (back + 1100, buf + 1100, 900);
  for (size_t i = 2000; i < 2010; i++)
    assert_int_equal (back[i], 0);
  assert_memory_equal (back + 2010, buf + 2010, sizeof buf - 2010);
}

int
main (void)
{
  if (!attach ()) {
    detach ();
    return 77;
  }
#define T(fn) cmocka_unit_test_setup_teardown (fn, setup, teardown)
  const struct CMUnitTest tests[] = {
    T (test_reads_zero), T (test_round_trip), T (test_past_end),
    T (test_overflow), T (test_zero), T (test_zero_may_trim), T (test_trim),
    T (test_flush), T (test_extents), T (test_submit),
    T (test_size_from_device), T (test_size_must_match),
    T (test_flush_reaches_backing_file), T (test_zero_sector_edges),
    cmocka_unit_test (test_read_only),
  };
  int r = cmocka_run_group_tests (tests, NULL, NULL);
  detach ();
  return r;
}
