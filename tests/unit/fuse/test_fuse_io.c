/* Data through a FUSE file: pread/pwrite, mmap, the fixed size, read-only
 * files, fallocate, and what the directory looks like. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define SIZE (8u << 20)

static int
setup (void **state)
{
  struct ft_mount *m = calloc (1, sizeof *m);
  ft_mount (m, SIZE, NULL);
  *state = m;
  return 0;
}

static int
teardown (void **state)
{
  ft_unmount (*state);
  free (*state);
  return 0;
}

static void
test_file_has_backend_size (void **state)
{
  struct ft_mount *m = *state;
  struct stat st;
  assert_int_equal (stat (m->path, &st), 0);
  assert_true (S_ISREG (st.st_mode));
  assert_int_equal (st.st_size, SIZE);
  assert_int_equal (st.st_mode & 0777, 0644);
  assert_int_equal (st.st_uid, geteuid ());
}

static void
test_directory_lists_only_the_file (void **state)
{
  struct ft_mount *m = *state;
  DIR *d = opendir (m->dir);
  assert_non_null (d);
  int files = 0, found = 0;
  struct dirent *e;
  while ((e = readdir (d))) {
    if (strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0)
      continue;
    files++;
    found += strcmp (e->d_name, "disk") == 0;
  }
  closedir (d);
  assert_int_equal (files, 1);
  assert_int_equal (found, 1);
  char other[128];
  snprintf (other, sizeof other, "%s/other", m->dir);
  assert_int_equal (open (other, O_RDWR | O_CREAT, 0644), -1);
  assert_true (errno == ENOSYS || errno == EPERM || errno == EROFS
               || errno == EACCES);
}

static void
test_read_sees_backend_data (void **state)
{
  struct ft_mount *m = *state;
  char *want = malloc (SIZE), *got = malloc (SIZE);
  ft_pattern (want, SIZE, 0, 1);
  assert_int_equal (r3m_backend_pwrite (m->be, want, SIZE, 0, 0), 0);
  int fd = open (m->path, O_RDONLY);
  assert_true (fd >= 0);
  assert_int_equal (pread (fd, got, SIZE, 0), SIZE);
  assert_memory_equal (got, want, SIZE);
  /* An odd range too. */
  assert_int_equal (pread (fd, got, 12345, 777777), 12345);
  assert_memory_equal (got, want + 777777, 12345);
  close (fd);
  free (want);
  free (got);
}

static void
test_pwrite_reaches_backend (void **state)
{
  struct ft_mount *m = *state;
  size_t len = 300000;
  uint64_t off = 1000001;
  char *want = malloc (len), *got = malloc (len);
  ft_pattern (want, len, off, 2);
  int fd = open (m->path, O_RDWR);
  assert_true (fd >= 0);
  assert_int_equal (pwrite (fd, want, len, (off_t) off), (ssize_t) len);
  /* Without the write-back cache a write is in the backend on return. */
  assert_int_equal (r3m_backend_pread (m->be, got, len, off), 0);
  assert_memory_equal (got, want, len);
  memset (got, 0, len);
  assert_int_equal (pread (fd, got, len, (off_t) off), (ssize_t) len);
  assert_memory_equal (got, want, len);
  close (fd);
  free (want);
  free (got);
}

static void
test_mmap_shared_write_reaches_backend_after_msync (void **state)
{
  struct ft_mount *m = *state;
  int fd = open (m->path, O_RDWR);
  assert_true (fd >= 0);
  unsigned char *p = mmap (NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
                           fd, 0);
  assert_true (p != MAP_FAILED);
  ft_pattern (p + 4096 * 3, 4096 * 5 + 17, 4096 * 3, 3);
  unsigned before = atomic_load (&m->spy->flushes);
  assert_int_equal (msync (p, SIZE, MS_SYNC), 0);
  assert_true (atomic_load (&m->spy->flushes) > before);

  unsigned char *want = malloc (4096 * 5 + 17), *got = malloc (4096 * 5 + 17);
  ft_pattern (want, 4096 * 5 + 17, 4096 * 3, 3);
  assert_int_equal (r3m_backend_pread (m->be, got, 4096 * 5 + 17, 4096 * 3),
                    0);
  assert_memory_equal (got, want, 4096 * 5 + 17);
  munmap (p, SIZE);
  close (fd);
  free (want);
  free (got);
}

static void
test_mmap_reads_backend_data (void **state)
{
  struct ft_mount *m = *state;
  char *want = malloc (SIZE);
  ft_pattern (want, SIZE, 0, 4);
  assert_int_equal (r3m_backend_pwrite (m->be, want, SIZE, 0, 0), 0);
  int fd = open (m->path, O_RDONLY);
  assert_true (fd >= 0);
  void *p = mmap (NULL, SIZE, PROT_READ, MAP_SHARED, fd, 0);
  assert_true (p != MAP_FAILED);
  assert_memory_equal (p, want, SIZE);
  munmap (p, SIZE);
  close (fd);
  free (want);
}

static void
test_write_at_end_is_enospc_and_across_it_is_short (void **state)
{
  struct ft_mount *m = *state;
  char buf[8192];
  memset (buf, 'x', sizeof buf);
  int fd = open (m->path, O_WRONLY);
  assert_true (fd >= 0);
  assert_int_equal (pwrite (fd, buf, sizeof buf, SIZE), -1);
  assert_int_equal (errno, ENOSPC);
  assert_int_equal (pwrite (fd, buf, sizeof buf, SIZE - 100), 100);
  struct stat st;
  assert_int_equal (fstat (fd, &st), 0);
  assert_int_equal (st.st_size, SIZE);
  close (fd);
}

static void
test_size_cannot_change (void **state)
{
  struct ft_mount *m = *state;
  assert_int_equal (truncate (m->path, 4096), -1);
  assert_int_equal (errno, EPERM);
  assert_int_equal (open (m->path, O_WRONLY | O_TRUNC), -1);
  assert_int_equal (errno, EPERM);
  /* Truncating to the same size is no change, and times may be set. */
  assert_int_equal (truncate (m->path, SIZE), 0);
  int fd = open (m->path, O_RDWR);
  assert_true (fd >= 0);
  assert_int_equal (futimens (fd, NULL), 0);
  close (fd);
  assert_int_equal (chmod (m->path, 0600), -1);
  assert_int_equal (errno, EPERM);
}

static void
test_punch_hole_reads_zeros (void **state)
{
  struct ft_mount *m = *state;
  char *buf = malloc (65536), *zeros = calloc (1, 65536);
  ft_pattern (buf, 65536, 0, 5);
  int fd = open (m->path, O_RDWR);
  assert_true (fd >= 0);
  assert_int_equal (pwrite (fd, buf, 65536, 65536), 65536);
  assert_int_equal (pread (fd, buf, 65536, 65536), 65536);   /* cache it */
  assert_int_equal (fallocate (fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                               65536 + 4096, 8192), 0);
  assert_int_equal (pread (fd, buf, 65536, 65536), 65536);
  assert_memory_equal (buf + 4096, zeros, 8192);
  assert_memory_not_equal (buf, zeros, 4096);
  assert_int_equal (r3m_backend_pread (m->be, buf, 8192, 65536 + 4096), 0);
  assert_memory_equal (buf, zeros, 8192);
  /* Growing is impossible. */
  assert_int_equal (fallocate (fd, 0, SIZE - 4096, 8192), -1);
  assert_int_equal (errno, EFBIG);
  close (fd);
  free (buf);
  free (zeros);
}

static void
test_statfs_reports_the_size (void **state)
{
  struct ft_mount *m = *state;
  struct statvfs sv;
  assert_int_equal (statvfs (m->dir, &sv), 0);
  assert_int_equal ((uint64_t) sv.f_blocks * sv.f_frsize, SIZE);
}

/* Two files of different sizes, one read-only.  Kept here so that the
 * teardown closes the mount even when an assertion fails. */
static struct {
  char dir[64];
  struct r3m_backend *b1, *b2;
  struct r3m_fuse *fs;
} two;

static int
teardown_two (void **state)
{
  r3m_fuse_close (two.fs, NULL);
  r3m_backend_close (two.b1);
  r3m_backend_close (two.b2);
  rmdir (two.dir);
  return 0;
}

static void
test_several_files_one_read_only (void **state)
{
  strcpy (two.dir, "/tmp/r3m-fuse-XXXXXX");
  assert_non_null (mkdtemp (two.dir));
  struct ft_spy *s1, *s2;
  two.b1 = ft_spy_new (1 << 20, &s1);
  two.b2 = ft_spy_new (3 << 20, &s2);
  struct r3m_fuse_file files[] = {
    { .name = "a", .backend = two.b1 },
    { .name = "b.img", .backend = two.b2, .read_only = true },
  };
  struct r3m_error err;
  if (r3m_fuse_mount (two.dir, files, 2, NULL, &two.fs, &err) < 0)
    fail_msg ("%s", err.msg);
  struct r3m_fuse *fs = two.fs;
  struct stat st;
  assert_int_equal (stat (r3m_fuse_path (fs, 0), &st), 0);
  assert_int_equal (st.st_size, 1 << 20);
  assert_int_equal (stat (r3m_fuse_path (fs, 1), &st), 0);
  assert_int_equal (st.st_size, 3 << 20);
  assert_int_equal (st.st_mode & 0777, 0444);
  assert_null (r3m_fuse_path (fs, 2));
  /* root ignores modes, so the read-only check is ours */
  assert_int_equal (open (r3m_fuse_path (fs, 1), O_RDWR), -1);
  assert_int_equal (errno, EROFS);
  int fd = open (r3m_fuse_path (fs, 1), O_RDONLY);
  assert_true (fd >= 0);
  assert_true (mmap (NULL, 4096, PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED);
  close (fd);
  two.fs = NULL;
  assert_int_equal (r3m_fuse_close (fs, &err), 0);
}

int
main (void)
{
  ft_require_fuse ();
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_file_has_backend_size, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_directory_lists_only_the_file,
                                     setup, teardown),
    cmocka_unit_test_setup_teardown (test_read_sees_backend_data, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_pwrite_reaches_backend, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown
      (test_mmap_shared_write_reaches_backend_after_msync, setup, teardown),
    cmocka_unit_test_setup_teardown (test_mmap_reads_backend_data, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown
      (test_write_at_end_is_enospc_and_across_it_is_short, setup, teardown),
    cmocka_unit_test_setup_teardown (test_size_cannot_change, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_punch_hole_reads_zeros, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_statfs_reports_the_size, setup,
                                     teardown),
    cmocka_unit_test_teardown (test_several_files_one_read_only,
                               teardown_two),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
