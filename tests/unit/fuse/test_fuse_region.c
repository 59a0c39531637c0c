/* Files backed by a region: reads pull only what they touch, writes reach
 * the remote on fsync, msync and unmount, and a failing remote gives EIO. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define SIZE (16u << 20)
#define CHUNK (64u * 1024)

struct fixture {
  char dir[64];
  struct ft_spy *spy;
  struct r3m_backend *remote, *cache;
  struct r3m_region *region;
  struct r3m_fuse *fs;
  const char *path;
};

/* A region with no background pull or push, so that every remote call in
 * a test comes from what the test did through the file. */
static int
setup (void **state)
{
  struct fixture *x = calloc (1, sizeof *x);
  *state = x;
  strcpy (x->dir, "/tmp/r3m-fuse-XXXXXX");
  assert_non_null (mkdtemp (x->dir));
  x->remote = ft_spy_new (SIZE, &x->spy);
  char *data = malloc (SIZE);
  ft_pattern (data, SIZE, 0, 11);
  assert_int_equal (r3m_backend_pwrite (x->remote, data, SIZE, 0, 0), 0);
  free (data);
  atomic_store (&x->spy->reads, 0);
  atomic_store (&x->spy->writes, 0);

  struct r3m_error err;
  assert_int_equal (r3m_backend_open ("memory:16M", 0, &x->cache, &err), 0);
  struct r3m_region_options ro;
  r3m_region_options_init (&ro);
  ro.chunk_size = CHUNK;
  ro.pull_workers = 0;
  ro.push_window = 0;
  if (r3m_region_open (x->remote, x->cache, &ro, &x->region, &err) < 0)
    fail_msg ("%s", err.msg);
  struct r3m_fuse_file f = { .name = "region", .region = x->region };
  if (r3m_fuse_mount (x->dir, &f, 1, NULL, &x->fs, &err) < 0)
    fail_msg ("%s", err.msg);
  x->path = r3m_fuse_path (x->fs, 0);
  return 0;
}

static int
teardown (void **state)
{
  struct fixture *x = *state;
  r3m_fuse_close (x->fs, NULL);
  if (x->region)
    r3m_region_close (x->region, NULL);
  r3m_backend_close (x->cache);
  r3m_backend_close (x->remote);
  rmdir (x->dir);
  free (x);
  return 0;
}

/* The status once at least `want` chunks are local (or after 5 s).  A
 * read's reply goes out before the chunks it fetched are marked local (see
 * r3m_region_read_deliver), so the status may lag the read a moment. */
static void
status_when_local (struct fixture *x, uint64_t want,
                   struct r3m_region_status *st)
{
  for (int i = 0; i < 500; i++) {
    r3m_region_status (x->region, st);
    if (st->chunks_local >= want)
      return;
    usleep (10000);
  }
}

static void
test_small_read_pulls_few_chunks (void **state)
{
  struct fixture *x = *state;
  char got[100], want[100];
  ft_pattern (want, sizeof want, 5 * CHUNK + 10, 11);
  int fd = open (x->path, O_RDONLY);
  assert_true (fd >= 0);
  assert_int_equal (pread (fd, got, sizeof got, 5 * CHUNK + 10),
                    (ssize_t) sizeof got);
  assert_memory_equal (got, want, sizeof got);
  close (fd);
  struct r3m_region_status st;
  status_when_local (x, 1, &st);
  /* The kernel reads ahead (1 MiB = 16 chunks by default), no more. */
  assert_true (st.chunks_local >= 1);
  assert_true (st.chunks_local <= (1u << 20) / CHUNK + 1);
  assert_true (st.bytes_fetched < SIZE / 8);
}

static void
test_whole_file_reads_match_remote (void **state)
{
  struct fixture *x = *state;
  char *want = malloc (SIZE), *got = malloc (SIZE);
  ft_pattern (want, SIZE, 0, 11);
  int fd = open (x->path, O_RDONLY);
  assert_true (fd >= 0);
  for (size_t off = 0; off < SIZE; off += 1 << 20)
    assert_int_equal (pread (fd, got + off, 1 << 20, (off_t) off), 1 << 20);
  assert_memory_equal (got, want, SIZE);
  close (fd);
  struct r3m_region_status st;
  status_when_local (x, SIZE / CHUNK, &st);
  assert_int_equal (st.chunks_local, SIZE / CHUNK);
  free (want);
  free (got);
}

static void
test_fsync_pushes_writes_to_remote (void **state)
{
  struct fixture *x = *state;
  char buf[5000], got[5000];
  ft_pattern (buf, sizeof buf, 0, 99);
  int fd = open (x->path, O_RDWR);
  assert_true (fd >= 0);
  assert_int_equal (pwrite (fd, buf, sizeof buf, 3 * CHUNK - 100),
                    (ssize_t) sizeof buf);
  /* Not pushed yet: no background push in this region. */
  struct r3m_region_status st;
  r3m_region_status (x->region, &st);
  assert_true (st.chunks_dirty >= 1);
  unsigned f0 = atomic_load (&x->spy->flushes);
  assert_int_equal (fsync (fd), 0);
  assert_int_equal (r3m_backend_pread (x->remote, got, sizeof got,
                                       3 * CHUNK - 100), 0);
  assert_memory_equal (got, buf, sizeof got);
  assert_true (atomic_load (&x->spy->flushes) > f0);
  r3m_region_status (x->region, &st);
  assert_int_equal (st.chunks_dirty, 0);
  close (fd);
}

static void
test_msync_pushes_mapped_writes (void **state)
{
  struct fixture *x = *state;
  int fd = open (x->path, O_RDWR);
  assert_true (fd >= 0);
  unsigned char *p = mmap (NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
                           fd, 0);
  assert_true (p != MAP_FAILED);
  memset (p + 7 * CHUNK + 1, 0xa5, 3 * CHUNK);
  assert_int_equal (msync (p, SIZE, MS_SYNC), 0);
  unsigned char *got = malloc (3 * CHUNK);
  assert_int_equal (r3m_backend_pread (x->remote, got, 3 * CHUNK,
                                       7 * CHUNK + 1), 0);
  for (size_t i = 0; i < 3 * CHUNK; i++)
    if (got[i] != 0xa5)
      fail_msg ("byte %zu of the pushed range is %#x", i, got[i]);
  munmap (p, SIZE);
  close (fd);
  free (got);
}

/* Mapped writes never synced reach the remote when the mount goes away,
 * even while the file is still mapped. */
static void
test_unmount_pushes_unsynced_mapped_writes (void **state)
{
  struct fixture *x = *state;
  int fd = open (x->path, O_RDWR);
  assert_true (fd >= 0);
  unsigned char *p = mmap (NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
                           fd, 0);
  assert_true (p != MAP_FAILED);
  memset (p + SIZE - CHUNK, 0x3c, CHUNK);
  assert_int_equal (r3m_fuse_unmount (x->fs, true, NULL), 0);
  unsigned char got[CHUNK];
  assert_int_equal (r3m_backend_pread (x->remote, got, CHUNK, SIZE - CHUNK),
                    0);
  for (size_t i = 0; i < CHUNK; i++)
    if (got[i] != 0x3c)
      fail_msg ("byte %zu of the last chunk is %#x", i, got[i]);
  munmap (p, SIZE);
  close (fd);
}

static void
test_failing_remote_gives_eio_not_a_hang (void **state)
{
  struct fixture *x = *state;
  atomic_store (&x->spy->fail, ECONNREFUSED);
  char buf[4096];
  int fd = open (x->path, O_RDONLY);
  assert_true (fd >= 0);
  assert_int_equal (pread (fd, buf, sizeof buf, 9 * CHUNK), -1);
  assert_int_equal (errno, EIO);
  struct r3m_region_status st;
  r3m_region_status (x->region, &st);
  assert_true (st.errors > 0);
  /* Once the remote answers again, so does the file. */
  atomic_store (&x->spy->fail, 0);
  assert_int_equal (pread (fd, buf, sizeof buf, 9 * CHUNK),
                    (ssize_t) sizeof buf);
  close (fd);
}

int
main (void)
{
  ft_require_fuse ();
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_small_read_pulls_few_chunks, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_whole_file_reads_match_remote,
                                     setup, teardown),
    cmocka_unit_test_setup_teardown (test_fsync_pushes_writes_to_remote,
                                     setup, teardown),
    cmocka_unit_test_setup_teardown (test_msync_pushes_mapped_writes, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown
      (test_unmount_pushes_unsynced_mapped_writes, setup, teardown),
    cmocka_unit_test_setup_teardown
      (test_failing_remote_gives_eio_not_a_hang, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
