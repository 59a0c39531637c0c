/* Mounting and unmounting: clear errors for the usual mistakes, unmount
 * from inside and outside, busy files, lazy unmount. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define SIZE (1u << 20)

struct fixture {
  char dir[64];
  struct ft_spy *spy;
  struct r3m_backend *be;
  struct r3m_fuse *fs;     /* closed by teardown, even after a failure */
};

static int
setup (void **state)
{
  struct fixture *x = calloc (1, sizeof *x);
  strcpy (x->dir, "/tmp/r3m-fuse-XXXXXX");
  assert_non_null (mkdtemp (x->dir));
  x->be = ft_spy_new (SIZE, &x->spy);
  *state = x;
  return 0;
}

static int
teardown (void **state)
{
  struct fixture *x = *state;
  r3m_fuse_close (x->fs, NULL);
  umount2 (x->dir, MNT_DETACH);        /* whatever a test left there */
  r3m_backend_close (x->be);
  rmdir (x->dir);
  free (x);
  return 0;
}

static int
try_mount (struct fixture *x, const char *dir, struct r3m_error *err)
{
  struct r3m_fuse_file f = { .name = "disk", .backend = x->be };
  struct r3m_fuse *fs = NULL;
  int r = r3m_fuse_mount (dir, &f, 1, NULL, &fs, err);
  if (r == 0)
    r3m_fuse_close (fs, NULL);
  return r;
}

static void
test_missing_mount_point_is_enoent (void **state)
{
  struct fixture *x = *state;
  char path[128];
  snprintf (path, sizeof path, "%s/nope", x->dir);
  struct r3m_error err;
  assert_int_equal (try_mount (x, path, &err), -ENOENT);
  assert_non_null (strstr (err.msg, path));
}

static void
test_file_as_mount_point_is_enotdir (void **state)
{
  struct fixture *x = *state;
  char path[128];
  snprintf (path, sizeof path, "%s/file", x->dir);
  close (open (path, O_CREAT | O_WRONLY, 0644));
  struct r3m_error err;
  assert_int_equal (try_mount (x, path, &err), -ENOTDIR);
  assert_non_null (strstr (err.msg, "not a directory"));
  unlink (path);
}

static void
test_mount_point_in_use_is_ebusy (void **state)
{
  struct fixture *x = *state;
  assert_int_equal (mount ("none", x->dir, "tmpfs", 0, "size=1m"), 0);
  struct r3m_error err;
  assert_int_equal (try_mount (x, x->dir, &err), -EBUSY);
  assert_non_null (strstr (err.msg, "busy"));
  assert_int_equal (umount (x->dir), 0);
}

/* A FUSE mount whose server died answers ENOTCONN to everything. */
static void
test_dead_fuse_mount_is_ebusy (void **state)
{
  struct fixture *x = *state;
  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0) {
    struct r3m_fuse_file f = { .name = "disk", .backend = x->be };
    struct r3m_fuse *fs;
    _exit (r3m_fuse_mount (x->dir, &f, 1, NULL, &fs, NULL) == 0 ? 0 : 1);
  }
  int status;
  assert_int_equal (waitpid (pid, &status, 0), pid);
  assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 0);
  struct statvfs sv;
  assert_int_equal (statvfs (x->dir, &sv), -1);
  assert_int_equal (errno, ENOTCONN);

  struct r3m_error err;
  assert_int_equal (try_mount (x, x->dir, &err), -EBUSY);
  assert_non_null (strstr (err.msg, "fusermount3 -u"));
}

static void
test_missing_dev_fuse_is_enodev (void **state)
{
  struct fixture *x = *state;
  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0) {
    /* Hide /dev behind an empty tmpfs in a namespace of our own. */
    if (unshare (CLONE_NEWNS) < 0
        || mount ("none", "/dev", "tmpfs", 0, "size=1m") < 0)
      _exit (2);
    struct r3m_error err;
    int r = try_mount (x, x->dir, &err);
    _exit (r == -ENODEV && strstr (err.msg, "/dev/fuse is missing") ? 0 : 1);
  }
  int status;
  assert_int_equal (waitpid (pid, &status, 0), pid);
  assert_true (WIFEXITED (status));
  assert_int_equal (WEXITSTATUS (status), 0);
}

static void
test_bad_files_and_options_are_einval (void **state)
{
  struct fixture *x = *state;
  struct r3m_fuse *fs;
  struct r3m_error err;
  const char *bad[] = { "", ".", "..", "a/b", NULL };
  for (int i = 0; i < 5; i++) {
    struct r3m_fuse_file f = { .name = bad[i], .backend = x->be };
    assert_int_equal (r3m_fuse_mount (x->dir, &f, 1, NULL, &fs, &err),
                      -EINVAL);
  }
  struct r3m_fuse_file two[] = {
    { .name = "same", .backend = x->be },
    { .name = "same", .backend = x->be },
  };
  assert_int_equal (r3m_fuse_mount (x->dir, two, 2, NULL, &fs, &err),
                    -EINVAL);
  assert_non_null (strstr (err.msg, "twice"));
  struct r3m_fuse_file none = { .name = "x" };
  assert_int_equal (r3m_fuse_mount (x->dir, &none, 1, NULL, &fs, &err),
                    -EINVAL);
  assert_int_equal (r3m_fuse_mount (x->dir, two, 0, NULL, &fs, &err),
                    -EINVAL);

  struct r3m_fuse_options o;
  r3m_fuse_options_init (&o);
  o.max_io = 5000;
  assert_int_equal (r3m_fuse_mount (x->dir, two, 1, &o, &fs, &err), -EINVAL);
  r3m_fuse_options_init (&o);
  o.threads = 0;
  assert_int_equal (r3m_fuse_mount (x->dir, two, 1, &o, &fs, &err), -EINVAL);
}

static void
test_outside_umount_ends_wait (void **state)
{
  struct fixture *x = *state;
  struct r3m_fuse_file f = { .name = "disk", .backend = x->be };
  assert_int_equal (r3m_fuse_mount (x->dir, &f, 1, NULL, &x->fs, NULL), 0);
  struct r3m_fuse *fs = x->fs;
  assert_int_equal (r3m_fuse_wait (fs, 20), -ETIMEDOUT);
  assert_int_equal (umount (x->dir), 0);
  assert_int_equal (r3m_fuse_wait (fs, 30000), 0);
  /* Already gone: unmount is a no-op. */
  assert_int_equal (r3m_fuse_unmount (fs, false, NULL), 0);
  x->fs = NULL;
  assert_int_equal (r3m_fuse_close (fs, NULL), 0);
}

static void
test_unmount_of_open_file_is_ebusy_unless_lazy (void **state)
{
  struct fixture *x = *state;
  struct r3m_fuse_file f = { .name = "disk", .backend = x->be };
  struct r3m_error err;
  assert_int_equal (r3m_fuse_mount (x->dir, &f, 1, NULL, &x->fs, NULL), 0);
  struct r3m_fuse *fs = x->fs;
  int fd = open (r3m_fuse_path (fs, 0), O_RDWR);
  assert_true (fd >= 0);
  assert_int_equal (r3m_fuse_unmount (fs, false, &err), -EBUSY);
  assert_non_null (strstr (err.msg, "still open"));
  /* Still mounted and serving. */
  assert_int_equal (pwrite (fd, "abc", 3, 0), 3);
  close (fd);
  assert_int_equal (r3m_fuse_unmount (fs, false, &err), 0);
  assert_int_equal (r3m_fuse_wait (fs, 30000), 0);
  char buf[3];
  assert_int_equal (r3m_backend_pread (x->be, buf, 3, 0), 0);
  assert_memory_equal (buf, "abc", 3);
  x->fs = NULL;
  assert_int_equal (r3m_fuse_close (fs, NULL), 0);
}

/* Pages dirtied through a mapping and never synced are written back by
 * the unmount even though the file is still mapped. */
static void
test_lazy_unmount_writes_back_dirty_mapping (void **state)
{
  struct fixture *x = *state;
  struct r3m_fuse_file f = { .name = "disk", .backend = x->be };
  assert_int_equal (r3m_fuse_mount (x->dir, &f, 1, NULL, &x->fs, NULL), 0);
  struct r3m_fuse *fs = x->fs;
  int fd = open (r3m_fuse_path (fs, 0), O_RDWR);
  assert_true (fd >= 0);
  char *p = mmap (NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  assert_true (p != MAP_FAILED);
  ft_pattern (p + 8192, 20000, 8192, 7);
  unsigned flushes = atomic_load (&x->spy->flushes);

  assert_int_equal (r3m_fuse_unmount (fs, true, NULL), 0);
  struct stat st;
  assert_int_equal (stat (x->dir, &st), 0);
  assert_int_not_equal (st.st_ino, 1);       /* the mount is detached */
  char want[20000], got[20000];
  ft_pattern (want, sizeof want, 8192, 7);
  assert_int_equal (r3m_backend_pread (x->be, got, sizeof got, 8192), 0);
  assert_memory_equal (got, want, sizeof want);
  assert_true (atomic_load (&x->spy->flushes) > flushes);

  /* The mapping still works until the mount is closed. */
  assert_memory_equal (p + 8192, want, sizeof want);
  munmap (p, SIZE);
  close (fd);
  x->fs = NULL;
  assert_int_equal (r3m_fuse_close (fs, NULL), 0);
}

int
main (void)
{
  ft_require_fuse ();
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_missing_mount_point_is_enoent,
                                     setup, teardown),
    cmocka_unit_test_setup_teardown (test_file_as_mount_point_is_enotdir,
                                     setup, teardown),
    cmocka_unit_test_setup_teardown (test_mount_point_in_use_is_ebusy,
                                     setup, teardown),
    cmocka_unit_test_setup_teardown (test_dead_fuse_mount_is_ebusy,
                                     setup, teardown),
    cmocka_unit_test_setup_teardown (test_missing_dev_fuse_is_enodev,
                                     setup, teardown),
    cmocka_unit_test_setup_teardown (test_bad_files_and_options_are_einval,
                                     setup, teardown),
    cmocka_unit_test_setup_teardown (test_outside_umount_ends_wait,
                                     setup, teardown),
    cmocka_unit_test_setup_teardown
      (test_unmount_of_open_file_is_ebusy_unless_lazy, setup, teardown),
    cmocka_unit_test_setup_teardown
      (test_lazy_unmount_writes_back_dirty_mapping, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
