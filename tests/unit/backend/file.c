/* file:PATH[?size=SIZE] on regular files.  Block devices: file-blockdev.c. */
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

struct fx {
  char *dir;
  char path[PATH_MAX];
  char uri[PATH_MAX + 64];
  struct r3m_backend *b;
};

static int
setup (void **state)
{
  struct fx *f = calloc (1, sizeof *f);
  f->dir = tmp_dir ();
  snprintf (f->path, sizeof f->path, "%s/f", f->dir);
  snprintf (f->uri, sizeof f->uri, "file:%s?size=1M", f->path);
  f->b = open_ok (f->uri, 0);
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  struct fx *f = *state;
  r3m_backend_close (f->b);
  tmp_remove (f->dir);
  free (f->dir);
  free (f);
  return 0;
}

#define B(s) (((struct fx *) *(s))->b)
static void test_reads_zero (void **s) { check_reads_zero (B (s)); }
static void test_round_trip (void **s) { check_round_trip (B (s)); }
static void test_past_end (void **s) { check_past_end (B (s)); }
static void test_overflow (void **s) { check_overflow (B (s)); }
static void test_zero (void **s) { check_zero (B (s), 0); }
static void test_zero_may_trim (void **s) { check_zero (B (s), R3M_IO_MAY_TRIM); }
static void test_zero_fua (void **s) { check_zero (B (s), R3M_IO_FUA); }
static void test_trim (void **s) { check_trim (B (s)); }
static void test_flush (void **s) { check_flush (B (s)); }
static void test_extents (void **s) { check_extents (B (s)); }
static void test_submit (void **s) { check_submit (B (s)); }

static off_t
file_size (const char *path)
{
  struct stat st;
  assert_int_equal (stat (path, &st), 0);
  return st.st_size;
}

static blkcnt_t
file_blocks (const char *path)
{
  struct stat st;
  assert_int_equal (stat (path, &st), 0);
  return st.st_blocks;
}

static void
test_created_sparse (void **state)
{
  struct fx *f = *state;
  assert_int_equal (file_size (f->path), 1 << 20);
  assert_int_equal (r3m_backend_size (f->b), 1 << 20);
  assert_true (file_blocks (f->path) < 64);
  const struct r3m_backend_info *i = r3m_backend_get_info (f->b);
  assert_true (i->async_threads > 1);
  assert_false (i->flags & (R3M_BACKEND_READ_ONLY | R3M_BACKEND_VOLATILE));
}

/* A new file is one hole; a write makes data; a punch makes a hole. */
static void
test_extents_follow_allocation (void **state)
{
  struct fx *f = *state;
  struct r3m_extent e[8];
  size_t n;
  const uint32_t hole = R3M_EXTENT_HOLE | R3M_EXTENT_ZERO;
  assert_int_equal (r3m_backend_extents (f->b, 0, 1 << 20, e, 8, &n), 0);
  assert_int_equal (n, 1);
  assert_int_equal (e[0].len, 1 << 20);
  assert_int_equal (e[0].flags, hole);

  static char buf[65536];
  fill (buf, sizeof buf, 0, 9);
  assert_int_equal (r3m_backend_pwrite (f->b, buf, sizeof buf, 262144, 0), 0);
  assert_int_equal (r3m_backend_flush (f->b), 0);
  assert_int_equal (r3m_backend_extents (f->b, 0, 1 << 20, e, 8, &n), 0);
  assert_int_equal (n, 3);
  assert_int_equal (e[0].flags, hole);
  assert_int_equal (e[0].len, 262144);
  assert_int_equal (e[1].flags, 0);
  assert_int_equal (e[1].len, 65536);
  assert_int_equal (e[2].flags, hole);
  assert_int_equal (e[2].len, (1 << 20) - 262144 - 65536);

  /* max = 2 stops after two extents. */
  assert_int_equal (r3m_backend_extents (f->b, 0, 1 << 20, e, 2, &n), 0);
  assert_int_equal (n, 2);

  assert_int_equal (r3m_backend_zero (f->b, 65536, 262144, R3M_IO_MAY_TRIM),
                    0);
  assert_int_equal (r3m_backend_extents (f->b, 0, 1 << 20, e, 8, &n), 0);
  assert_int_equal (n, 1);
  assert_int_equal (e[0].flags, hole);
}

/* Zero with MAY_TRIM gives the blocks back; trim does too. */
static void
test_zero_may_trim_deallocates (void **state)
{
  struct fx *f = *state;
  static char buf[1 << 20];
  fill (buf, sizeof buf, 0, 10);
  assert_int_equal (r3m_backend_pwrite (f->b, buf, sizeof buf, 0, 0), 0);
  assert_int_equal (r3m_backend_flush (f->b), 0);
  assert_true (file_blocks (f->path) >= 2048);
  assert_int_equal (r3m_backend_zero (f->b, 512 << 10, 0, R3M_IO_MAY_TRIM),
                    0);
  assert_int_equal (r3m_backend_trim (f->b, 512 << 10, 512 << 10), 0);
  assert_true (file_blocks (f->path) < 64);
  assert_int_equal (file_size (f->path), 1 << 20);
}

static void
test_reopen_without_size (void **state)
{
  struct fx *f = *state;
  char buf[100], back[100];
  fill (buf, sizeof buf, 5000, 11);
  assert_int_equal (r3m_backend_pwrite (f->b, buf, sizeof buf, 5000, 0), 0);
  assert_int_equal (r3m_backend_flush (f->b), 0);
  char uri[PATH_MAX + 16];
  snprintf (uri, sizeof uri, "file:%s", f->path);
  struct r3m_backend *b = open_ok (uri, 0);
  assert_int_equal (r3m_backend_size (b), 1 << 20);
  assert_int_equal (r3m_backend_pread (b, back, sizeof back, 5000), 0);
  assert_memory_equal (buf, back, sizeof buf);
  r3m_backend_close (b);
  /* file:///path is the same file. */
  snprintf (uri, sizeof uri, "file://%s", f->path);
  b = open_ok (uri, 0);
  assert_int_equal (r3m_backend_pread (b, back, sizeof back, 5000), 0);
  assert_memory_equal (buf, back, sizeof buf);
  r3m_backend_close (b);
}

static void
test_size_extends_keeps_data (void **state)
{
  struct fx *f = *state;
  char buf[10], back[10];
  fill (buf, sizeof buf, 0, 12);
  assert_int_equal (r3m_backend_pwrite (f->b, buf, sizeof buf, 0, 0), 0);
  char uri[PATH_MAX + 32];
  snprintf (uri, sizeof uri, "file:%s?size=3M", f->path);
  struct r3m_backend *b = open_ok (uri, 0);
  assert_int_equal (r3m_backend_size (b), 3 << 20);
  assert_int_equal (file_size (f->path), 3 << 20);
  assert_int_equal (r3m_backend_pread (b, back, sizeof back, 0), 0);
  assert_memory_equal (buf, back, sizeof buf);
  r3m_backend_close (b);
}

static void
test_refuses_to_shrink (void **state)
{
  struct fx *f = *state;
  char uri[PATH_MAX + 32];
  snprintf (uri, sizeof uri, "file:%s?size=512K", f->path);
  open_fails (uri, 0, EINVAL, "refusing to shrink it");
  assert_int_equal (file_size (f->path), 1 << 20);
  snprintf (uri, sizeof uri, "file:%s?size=1M", f->path);
  r3m_backend_close (open_ok (uri, 0));      /* the same size is fine */
}

static void
test_missing_needs_size (void **state)
{
  struct fx *f = *state;
  char uri[PATH_MAX + 32];
  snprintf (uri, sizeof uri, "file:%s/nope", f->dir);
  open_fails (uri, 0, ENOENT, "add ?size=SIZE to create it");
  snprintf (uri, sizeof uri, "file:%s/nope?size=1M", f->dir);
  open_fails (uri, R3M_OPEN_READ_ONLY, ENOENT, "read-only open does not");
  snprintf (uri, sizeof uri, "file:%s/no/such/dir?size=1M", f->dir);
  open_fails (uri, 0, ENOENT, "open");
}

static void
test_read_only (void **state)
{
  struct fx *f = *state;
  char uri[PATH_MAX + 32];
  snprintf (uri, sizeof uri, "file:%s", f->path);
  check_read_only (uri);
  snprintf (uri, sizeof uri, "file:%s?size=1M", f->path);
  check_read_only (uri);
  snprintf (uri, sizeof uri, "file:%s?size=2M", f->path);
  open_fails (uri, R3M_OPEN_READ_ONLY, EINVAL, "cannot extend it");
  /* A file without write permission opens read-only only (unless root,
   * which ignores permissions). */
  assert_int_equal (chmod (f->path, 0444), 0);
  snprintf (uri, sizeof uri, "file:%s", f->path);
  r3m_backend_close (open_ok (uri, R3M_OPEN_READ_ONLY));
}

static void
test_not_regular (void **state)
{
  struct fx *f = *state;
  open_fails ("file:/dev/null", 0, EINVAL,
              "not a regular file or a block device");
  char uri[PATH_MAX + 32];
  snprintf (uri, sizeof uri, "file:%s", f->dir);
  open_fails (uri, 0, EISDIR, "open");
}

/* Someone truncates the file behind our back: missing bytes read as
 * zeros, not as an error or stale data. */
static void
test_truncated_reads_zero (void **state)
{
  struct fx *f = *state;
  static char buf[8192], back[8192];
  fill (buf, sizeof buf, 0, 13);
  assert_int_equal (r3m_backend_pwrite (f->b, buf, sizeof buf, 0, 0), 0);
  assert_int_equal (truncate (f->path, 4096), 0);
  memset (back, 0xaa, sizeof back);
  assert_int_equal (r3m_backend_pread (f->b, back, sizeof back, 0), 0);
  assert_memory_equal (back, buf, 4096);
  for (size_t i = 4096; i < sizeof back; i++)
    assert_int_equal (back[i], 0);
}

/* The path in a URI is percent-decoded. */
static void
test_percent_path (void **state)
{
  struct fx *f = *state;
  char uri[PATH_MAX + 64], path[PATH_MAX];
  snprintf (uri, sizeof uri, "file:%s/a%%20b%%23c?size=4k", f->dir);
  r3m_backend_close (open_ok (uri, 0));
  snprintf (path, sizeof path, "%s/a b#c", f->dir);
  assert_int_equal (file_size (path), 4096);
}

int
main (void)
{
#define T(fn) cmocka_unit_test_setup_teardown (fn, setup, teardown)
  const struct CMUnitTest tests[] = {
    T (test_reads_zero), T (test_round_trip), T (test_past_end),
    T (test_overflow), T (test_zero), T (test_zero_may_trim),
    T (test_zero_fua), T (test_trim), T (test_flush), T (test_extents),
    T (test_submit), T (test_created_sparse),
    T (test_extents_follow_allocation), T (test_zero_may_trim_deallocates),
    T (test_reopen_without_size), T (test_size_extends_keeps_data),
    T (test_refuses_to_shrink), T (test_missing_needs_size),
    T (test_read_only), T (test_not_regular), T (test_truncated_reads_zero),
    T (test_percent_path),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
