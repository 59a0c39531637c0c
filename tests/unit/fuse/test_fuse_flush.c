/* Durability and failures: what fsync and close push, what a program sees
 * when the store fails, and the mount options that change caching. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define SIZE (4u << 20)

static struct ft_mount *
mount_with (void **state, const struct r3m_fuse_options *o)
{
  struct ft_mount *m = calloc (1, sizeof *m);
  *state = m;
  ft_mount (m, SIZE, o);
  return m;
}

static int
teardown (void **state)
{
  if (*state) {
    ft_unmount (*state);
    free (*state);
  }
  return 0;
}

static void
test_fsync_flushes_backend_once_per_change (void **state)
{
  struct ft_mount *m = mount_with (state, NULL);
  int fd = open (m->path, O_RDWR);
  assert_true (fd >= 0);
  assert_int_equal (pwrite (fd, "x", 1, 5), 1);
  unsigned f0 = atomic_load (&m->spy->flushes);
  assert_int_equal (fsync (fd), 0);
  assert_int_equal (atomic_load (&m->spy->flushes), f0 + 1);
  /* Nothing new: no round trip to the store. */
  assert_int_equal (fdatasync (fd), 0);
  assert_int_equal (atomic_load (&m->spy->flushes), f0 + 1);
  assert_int_equal (pwrite (fd, "y", 1, 6), 1);
  assert_int_equal (fdatasync (fd), 0);
  assert_int_equal (atomic_load (&m->spy->flushes), f0 + 2);
  close (fd);
}

static void
test_close_after_write_flushes_and_read_only_use_does_not (void **state)
{
  struct ft_mount *m = mount_with (state, NULL);
  unsigned f0 = atomic_load (&m->spy->flushes);
  char buf[4096];
  int fd = open (m->path, O_RDONLY);
  assert_true (fd >= 0);
  assert_int_equal (pread (fd, buf, sizeof buf, 0), (ssize_t) sizeof buf);
  close (fd);
  assert_int_equal (atomic_load (&m->spy->flushes), f0);

  fd = open (m->path, O_WRONLY);
  assert_true (fd >= 0);
  assert_int_equal (pwrite (fd, buf, sizeof buf, 0), (ssize_t) sizeof buf);
  assert_int_equal (close (fd), 0);
  assert_int_equal (atomic_load (&m->spy->flushes), f0 + 1);
}

static void
test_no_flush_on_close_when_disabled (void **state)
{
  struct r3m_fuse_options o;
  r3m_fuse_options_init (&o);
  o.flush_on_close = false;
  struct ft_mount *m = mount_with (state, &o);
  unsigned f0 = atomic_load (&m->spy->flushes);
  int fd = open (m->path, O_WRONLY);
  assert_true (fd >= 0);
  assert_int_equal (pwrite (fd, "z", 1, 0), 1);
  assert_int_equal (close (fd), 0);
  assert_int_equal (atomic_load (&m->spy->flushes), f0);
  fd = open (m->path, O_WRONLY);
  assert_int_equal (fsync (fd), 0);
  assert_int_equal (atomic_load (&m->spy->flushes), f0 + 1);
  close (fd);
}

/* A dead connection below must look like an I/O error, never like a dead
 * FUSE mount (ENOTCONN) nor hang. */
static void
test_store_failures_are_eio (void **state)
{
  struct ft_mount *m = mount_with (state, NULL);
  char buf[4096];
  int fd = open (m->path, O_RDWR);
  assert_true (fd >= 0);
  atomic_store (&m->spy->fail, ECONNRESET);
  assert_int_equal (pread (fd, buf, sizeof buf, 0), -1);
  assert_int_equal (errno, EIO);
  assert_int_equal (pwrite (fd, buf, sizeof buf, 8192), -1);
  assert_int_equal (errno, EIO);
  struct r3m_fuse_stats st;
  r3m_fuse_stats (m->fs, &st);
  assert_true (st.errors >= 2);
  assert_int_equal (st.last_error, EIO);

  /* Errors that mean something to a program pass through. */
  atomic_store (&m->spy->fail, ENOSPC);
  assert_int_equal (pwrite (fd, buf, sizeof buf, 16384), -1);
  assert_int_equal (errno, ENOSPC);

  /* The store recovers: so does the file. */
  atomic_store (&m->spy->fail, 0);
  assert_int_equal (pread (fd, buf, sizeof buf, 0), (ssize_t) sizeof buf);
  close (fd);
}

static void
test_failed_flush_fails_fsync (void **state)
{
  struct ft_mount *m = mount_with (state, NULL);
  int fd = open (m->path, O_RDWR);
  assert_true (fd >= 0);
  assert_int_equal (pwrite (fd, "a", 1, 0), 1);
  atomic_store (&m->spy->fail, ETIMEDOUT);
  assert_int_equal (fsync (fd), -1);
  assert_int_equal (errno, EIO);
  /* The change is still unflushed: the next fsync tries again. */
  atomic_store (&m->spy->fail, 0);
  unsigned f0 = atomic_load (&m->spy->flushes);
  assert_int_equal (fsync (fd), 0);
  assert_int_equal (atomic_load (&m->spy->flushes), f0 + 1);
  close (fd);
}

/* keep_cache: data stays cached across opens, so a change behind the
 * mount's back shows only after r3m_fuse_invalidate. */
static void
test_invalidate_drops_cached_pages (void **state)
{
  struct ft_mount *m = mount_with (state, NULL);
  char old[8192], fresh[8192], got[8192];
  ft_pattern (old, sizeof old, 0, 1);
  ft_pattern (fresh, sizeof fresh, 0, 2);
  assert_int_equal (r3m_backend_pwrite (m->be, old, sizeof old, 65536, 0), 0);
  int fd = open (m->path, O_RDONLY);
  assert_int_equal (pread (fd, got, sizeof got, 65536), (ssize_t) sizeof got);
  assert_memory_equal (got, old, sizeof got);
  close (fd);

  assert_int_equal (r3m_backend_pwrite (m->be, fresh, sizeof fresh, 65536, 0),
                    0);
  unsigned r0 = atomic_load (&m->spy->reads);
  fd = open (m->path, O_RDONLY);
  assert_int_equal (pread (fd, got, sizeof got, 65536), (ssize_t) sizeof got);
  assert_memory_equal (got, old, sizeof got);      /* from the page cache */
  assert_int_equal (atomic_load (&m->spy->reads), r0);

  assert_int_equal (r3m_fuse_invalidate (m->fs, 0, 65536, sizeof fresh), 0);
  assert_int_equal (pread (fd, got, sizeof got, 65536), (ssize_t) sizeof got);
  assert_memory_equal (got, fresh, sizeof got);
  close (fd);
  assert_int_equal (r3m_fuse_invalidate (m->fs, 1, 0, 0), -EINVAL);
}

static void
test_direct_io_reads_the_store_every_time (void **state)
{
  struct r3m_fuse_options o;
  r3m_fuse_options_init (&o);
  o.direct_io = true;
  struct ft_mount *m = mount_with (state, &o);
  char a[4096], b[4096], got[4096];
  ft_pattern (a, sizeof a, 0, 1);
  ft_pattern (b, sizeof b, 0, 2);
  int fd = open (m->path, O_RDWR);
  assert_true (fd >= 0);
  assert_int_equal (pwrite (fd, a, sizeof a, 4096), (ssize_t) sizeof a);
  assert_int_equal (pread (fd, got, sizeof got, 4096), (ssize_t) sizeof got);
  assert_memory_equal (got, a, sizeof got);
  assert_int_equal (r3m_backend_pwrite (m->be, b, sizeof b, 4096, 0), 0);
  assert_int_equal (pread (fd, got, sizeof got, 4096), (ssize_t) sizeof got);
  assert_memory_equal (got, b, sizeof got);
  close (fd);
}

/* Linux 6.6 and later offer FUSE_DIRECT_IO_ALLOW_MMAP, which libfuse 3.14
 * cannot ask for; the mount adds it to INIT itself (init_ext.c). */
static bool
kernel_allows_direct_io_mmap (void)
{
  struct utsname u;
  unsigned major = 0, minor = 0;
  if (uname (&u) != 0 || sscanf (u.release, "%u.%u", &major, &minor) != 2)
    return false;
  return major > 6 || (major == 6 && minor >= 6);
}

static void
test_direct_io_allows_shared_mappings (void **state)
{
  if (!kernel_allows_direct_io_mmap ()) {
    fprintf (stderr, "skipped: this kernel predates "
             "FUSE_DIRECT_IO_ALLOW_MMAP (6.6)\n");
    skip ();
  }
  struct r3m_fuse_options o;
  r3m_fuse_options_init (&o);
  o.direct_io = true;
  struct ft_mount *m = mount_with (state, &o);
  char a[4096], b[4096], c[4096], got[4096];
  ft_pattern (a, sizeof a, 0, 4);
  ft_pattern (b, sizeof b, 0, 5);
  ft_pattern (c, sizeof c, 0, 6);
  int fd = open (m->path, O_RDWR);
  assert_true (fd >= 0);
  assert_int_equal (pwrite (fd, a, sizeof a, 4096), (ssize_t) sizeof a);
  char *map = mmap (NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  assert_true (map != MAP_FAILED);
  /* The mapping sees what pwrite wrote before it... */
  assert_memory_equal (map + 4096, a, sizeof a);
  /* ...its own writes reach pread and the store after msync... */
  memcpy (map + 8192, b, sizeof b);
  assert_int_equal (msync (map, SIZE, MS_SYNC), 0);
  assert_int_equal (pread (fd, got, sizeof got, 8192), (ssize_t) sizeof got);
  assert_memory_equal (got, b, sizeof got);
  assert_int_equal (r3m_backend_pread (m->be, got, sizeof got, 8192), 0);
  assert_memory_equal (got, b, sizeof got);
  /* ...and a later direct write replaces what it had cached. */
  assert_int_equal (pwrite (fd, c, sizeof c, 8192), (ssize_t) sizeof c);
  assert_memory_equal (map + 8192, c, sizeof c);
  assert_int_equal (munmap (map, SIZE), 0);
  close (fd);
}

static void
test_writeback_cache_data_reaches_store_on_fsync (void **state)
{
  struct r3m_fuse_options o;
  r3m_fuse_options_init (&o);
  o.writeback_cache = true;
  struct ft_mount *m = mount_with (state, &o);
  size_t len = 256 * 1024;
  char *want = malloc (len), *got = malloc (len);
  ft_pattern (want, len, 12345, 3);
  int fd = open (m->path, O_WRONLY);
  assert_true (fd >= 0);
  for (size_t done = 0; done < len; done += 512)   /* many small writes */
    assert_int_equal (pwrite (fd, want + done, 512, (off_t) (12345 + done)),
                      512);
  assert_int_equal (fsync (fd), 0);
  assert_int_equal (r3m_backend_pread (m->be, got, len, 12345), 0);
  assert_memory_equal (got, want, len);
  /* The kernel merged them into far fewer requests. */
  struct r3m_fuse_stats st;
  r3m_fuse_stats (m->fs, &st);
  assert_true (st.writes < len / 512);
  close (fd);
  free (want);
  free (got);
}

static void
test_splice_moves_data_correctly (void **state)
{
  struct r3m_fuse_options o;
  r3m_fuse_options_init (&o);
  o.splice = true;
  struct ft_mount *m = mount_with (state, &o);
  size_t len = 3 << 20;
  char *want = malloc (len), *got = malloc (len);
  ft_pattern (want, len, 4096, 9);
  int fd = open (m->path, O_RDWR);
  assert_true (fd >= 0);
  assert_int_equal (pwrite (fd, want, len, 4096), (ssize_t) len);
  assert_int_equal (r3m_backend_pread (m->be, got, len, 4096), 0);
  assert_memory_equal (got, want, len);
  assert_int_equal (r3m_fuse_invalidate (m->fs, 0, 0, 0), 0);
  memset (got, 0, len);
  assert_int_equal (pread (fd, got, len, 4096), (ssize_t) len);
  assert_memory_equal (got, want, len);
  close (fd);
  free (want);
  free (got);
}

int
main (void)
{
  ft_require_fuse ();
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_teardown (test_fsync_flushes_backend_once_per_change,
                               teardown),
    cmocka_unit_test_teardown
      (test_close_after_write_flushes_and_read_only_use_does_not, teardown),
    cmocka_unit_test_teardown (test_no_flush_on_close_when_disabled,
                               teardown),
    cmocka_unit_test_teardown (test_store_failures_are_eio, teardown),
    cmocka_unit_test_teardown (test_failed_flush_fails_fsync, teardown),
    cmocka_unit_test_teardown (test_invalidate_drops_cached_pages, teardown),
    cmocka_unit_test_teardown (test_direct_io_reads_the_store_every_time,
                               teardown),
    cmocka_unit_test_teardown (test_direct_io_allows_shared_mappings,
                               teardown),
    cmocka_unit_test_teardown
      (test_writeback_cache_data_reaches_store_on_fsync, teardown),
    cmocka_unit_test_teardown (test_splice_moves_data_correctly, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
