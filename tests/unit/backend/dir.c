/* dir:PATH?size=SIZE&chunk=SIZE[&max-open=N] */
#include <dirent.h>
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
  char *tmp;
  char dir[PATH_MAX];
  char uri[PATH_MAX + 64];
  struct r3m_backend *b;
};

static int
setup (void **state)
{
  struct fx *f = calloc (1, sizeof *f);
  f->tmp = tmp_dir ();
  snprintf (f->dir, sizeof f->dir, "%s/d", f->tmp);
  snprintf (f->uri, sizeof f->uri, "dir:%s?size=1M&chunk=64k", f->dir);
  f->b = open_ok (f->uri, 0);
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  struct fx *f = *state;
  r3m_backend_close (f->b);
  tmp_remove (f->tmp);
  free (f->tmp);
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
static void test_zero_fua (void **s) { check_zero (B (s), R3M_IO_FUA | R3M_IO_MAY_TRIM); }
static void test_trim (void **s) { check_trim (B (s)); }
static void test_flush (void **s) { check_flush (B (s)); }
static void test_extents (void **s) { check_extents (B (s)); }
static void test_submit (void **s) { check_submit (B (s)); }

/* The directory's entries other than "." and "..", sorted, joined by ' '. */
static void
listing (const char *dir, char *out, size_t len)
{
  struct dirent **names;
  int n = scandir (dir, &names, NULL, alphasort);
  assert_true (n >= 0);
  out[0] = '\0';
  for (int i = 0; i < n; i++) {
    const char *s = names[i]->d_name;
    if (strcmp (s, ".") != 0 && strcmp (s, "..") != 0) {
      if (out[0])
        strncat (out, " ", len - strlen (out) - 1);
      strncat (out, s, len - strlen (out) - 1);
    }
    free (names[i]);
  }
  free (names);
}

static void
expect_listing (const char *dir, const char *want)
{
  char got[4096];
  listing (dir, got, sizeof got);
  if (strcmp (got, want) != 0)
    fail_msg ("%s holds '%s', want '%s'", dir, got, want);
}

/* Read a chunk file directly, bypassing the backend. */
static ssize_t
read_chunk_file (const char *dir, const char *name, void *buf, size_t len)
{
  char path[PATH_MAX + 32];
  snprintf (path, sizeof path, "%s/%s", dir, name);
  int fd = open (path, O_RDONLY);
  if (fd < 0)
    return -errno;
  ssize_t n = pread (fd, buf, len, 0);
  close (fd);
  return n;
}

static void
test_reads_create_nothing (void **state)
{
  struct fx *f = *state;
  static char buf[1 << 20];
  assert_int_equal (r3m_backend_pread (f->b, buf, sizeof buf, 0), 0);
  assert_int_equal (r3m_backend_pread (f->b, buf, 10, 65530), 0);
  assert_int_equal (r3m_backend_flush (f->b), 0);
  expect_listing (f->dir, ".r3map-dir");
}

static void
test_writes_create_touched_chunks (void **state)
{
  struct fx *f = *state;
  char buf[10];
  fill (buf, sizeof buf, 65530, 20);
  assert_int_equal (r3m_backend_pwrite (f->b, buf, sizeof buf, 65530, 0), 0);
  assert_int_equal (r3m_backend_pwrite (f->b, buf, 1, 1048575, 0), 0);
  expect_listing (f->dir, ".r3map-dir 0 65536 983040");
  /* Each file holds its chunk's bytes from offset 0. */
  char back[16];
  assert_int_equal (read_chunk_file (f->dir, "65536", back, sizeof back), 4);
  assert_memory_equal (back, buf + 6, 4);
  /* The last chunk's file ends at its last written byte. */
  char last[65536];
  assert_int_equal (read_chunk_file (f->dir, "983040", last, sizeof last),
                    65536);
  assert_int_equal (last[65535], buf[0]);
  assert_int_equal (last[0], 0);
}

/* Reading a chunk written at its end only: zeros before the written byte. */
static void
test_sparse_chunk_reads_zero (void **state)
{
  struct fx *f = *state;
  char c = 0x42, back[65536];
  assert_int_equal (r3m_backend_pwrite (f->b, &c, 1, 2 * 65536 - 1, 0), 0);
  memset (back, 0xaa, sizeof back);
  assert_int_equal (r3m_backend_pread (f->b, back, sizeof back, 65536), 0);
  for (size_t i = 0; i + 1 < sizeof back; i++)
    assert_int_equal (back[i], 0);
  assert_int_equal (back[65535], 0x42);
}

static void
test_zero_whole_chunk_removes_file (void **state)
{
  struct fx *f = *state;
  static char buf[3 * 65536];
  fill (buf, sizeof buf, 0, 21);
  assert_int_equal (r3m_backend_pwrite (f->b, buf, sizeof buf, 0, 0), 0);
  expect_listing (f->dir, ".r3map-dir 0 131072 65536");
  /* Chunk 0 in part: the file stays. */
  assert_int_equal (r3m_backend_zero (f->b, 100, 0, R3M_IO_MAY_TRIM), 0);
  /* Chunk 1 whole without MAY_TRIM: zeroed in place, the file stays. */
  assert_int_equal (r3m_backend_zero (f->b, 65536, 65536, 0), 0);
  expect_listing (f->dir, ".r3map-dir 0 131072 65536");
  /* Chunks 1 and 2 whole with MAY_TRIM: removed. */
  assert_int_equal (r3m_backend_zero (f->b, 2 * 65536, 65536,
                                      R3M_IO_MAY_TRIM), 0);
  expect_listing (f->dir, ".r3map-dir 0");
  static char back[3 * 65536];
  assert_int_equal (r3m_backend_pread (f->b, back, sizeof back, 0), 0);
  for (size_t i = 0; i < 100; i++)
    assert_int_equal (back[i], 0);
  assert_memory_equal (back + 100, buf + 100, 65536 - 100);
  for (size_t i = 65536; i < sizeof back; i++)
    assert_int_equal (back[i], 0);
}

static void
test_trim_whole_chunk_removes_file (void **state)
{
  struct fx *f = *state;
  static char buf[2 * 65536];
  fill (buf, sizeof buf, 0, 22);
  assert_int_equal (r3m_backend_pwrite (f->b, buf, sizeof buf, 0, 0), 0);
  /* Part of chunk 0: its file stays; all of chunk 1: removed. */
  assert_int_equal (r3m_backend_trim (f->b, 65536 - 10, 10), 0);
  assert_int_equal (r3m_backend_trim (f->b, 65536, 65536), 0);
  expect_listing (f->dir, ".r3map-dir 0");
}

/* After a chunk's file is removed, the next write must create a new file,
 * not go through a cached descriptor of the removed one. */
static void
test_write_after_remove_reaches_new_file (void **state)
{
  struct fx *f = *state;
  char buf[64];
  fill (buf, sizeof buf, 0, 23);
  assert_int_equal (r3m_backend_pwrite (f->b, buf, sizeof buf, 0, 0), 0);
  assert_int_equal (r3m_backend_zero (f->b, 65536, 0, R3M_IO_MAY_TRIM), 0);
  expect_listing (f->dir, ".r3map-dir");
  assert_int_equal (r3m_backend_pwrite (f->b, buf, 8, 16, 0), 0);
  expect_listing (f->dir, ".r3map-dir 0");
  char disk[64];
  assert_int_equal (read_chunk_file (f->dir, "0", disk, sizeof disk), 24);
  for (size_t i = 0; i < 16; i++)
    assert_int_equal (disk[i], 0);
  assert_memory_equal (disk + 16, buf, 8);
}

static void
test_extents_exact (void **state)
{
  struct fx *f = *state;
  const uint32_t hole = R3M_EXTENT_HOLE | R3M_EXTENT_ZERO;
  char c = 1;
  /* Chunks 1, 2 and 5 present. */
  assert_int_equal (r3m_backend_pwrite (f->b, &c, 1, 65536 + 7, 0), 0);
  assert_int_equal (r3m_backend_pwrite (f->b, &c, 1, 2 * 65536, 0), 0);
  assert_int_equal (r3m_backend_pwrite (f->b, &c, 1, 5 * 65536 + 9, 0), 0);
  struct r3m_extent e[8];
  size_t n;
  assert_int_equal (r3m_backend_extents (f->b, 0, 1 << 20, e, 8, &n), 0);
  assert_int_equal (n, 5);
  uint64_t want_len[5] = { 65536, 131072, 131072, 65536, 655360 };
  uint32_t want_flags[5] = { hole, 0, hole, 0, hole };
  for (size_t i = 0; i < 5; i++) {
    assert_int_equal (e[i].len, want_len[i]);
    assert_int_equal (e[i].flags, want_flags[i]);
  }
  /* From the middle of a chunk, with room for two. */
  assert_int_equal (r3m_backend_extents (f->b, 65536 + 100, 1 << 19, e, 2,
                                         &n), 0);
  assert_int_equal (n, 2);
  assert_int_equal (e[0].len, 131072 - 100);
  assert_int_equal (e[0].flags, 0);
  assert_int_equal (e[1].len, 131072);
  assert_int_equal (e[1].flags, hole);
}

/* A range of more chunks than fstatat is used for: one directory scan. */
static void
test_extents_large_range (void **state)
{
  struct fx *f = *state;
  char uri[PATH_MAX + 64];
  snprintf (uri, sizeof uri, "dir:%s/big?size=1G&chunk=4k", f->tmp);
  struct r3m_backend *b = open_ok (uri, 0);
  char c = 1;
  assert_int_equal (r3m_backend_pwrite (b, &c, 1, 4096 * 1000, 0), 0);
  assert_int_equal (r3m_backend_pwrite (b, &c, 1, 4096 * 1001, 0), 0);
  assert_int_equal (r3m_backend_pwrite (b, &c, 1, (1 << 30) - 1, 0), 0);
  struct r3m_extent e[8];
  size_t n;
  assert_int_equal (r3m_backend_extents (b, 0, 1 << 30, e, 8, &n), 0);
  assert_int_equal (n, 4);
  assert_int_equal (e[0].len, 4096 * 1000);
  assert_int_equal (e[1].len, 8192);
  assert_int_equal (e[1].flags, 0);
  assert_int_equal (e[2].len, (1 << 30) - 4096 * 1002 - 4096);
  assert_int_equal (e[3].len, 4096);
  assert_int_equal (e[3].flags, 0);
  r3m_backend_close (b);
}

static void
test_reopen_uses_metadata (void **state)
{
  struct fx *f = *state;
  char buf[100], back[100];
  fill (buf, sizeof buf, 70000, 24);
  assert_int_equal (r3m_backend_pwrite (f->b, buf, sizeof buf, 70000, 0), 0);
  assert_int_equal (r3m_backend_flush (f->b), 0);
  char uri[PATH_MAX + 64];
  snprintf (uri, sizeof uri, "dir:%s", f->dir);
  struct r3m_backend *b = open_ok (uri, 0);
  assert_int_equal (r3m_backend_size (b), 1 << 20);
  assert_int_equal (r3m_backend_get_info (b)->preferred_io, 65536);
  assert_int_equal (r3m_backend_pread (b, back, sizeof back, 70000), 0);
  assert_memory_equal (buf, back, sizeof buf);
  r3m_backend_close (b);
  snprintf (uri, sizeof uri, "dir:%s?chunk=64k&max-open=3", f->dir);
  r3m_backend_close (open_ok (uri, 0));
}

static void
test_reopen_mismatch_refused (void **state)
{
  struct fx *f = *state;
  char uri[PATH_MAX + 64];
  snprintf (uri, sizeof uri, "dir:%s?size=2M&chunk=64k", f->dir);
  open_fails (uri, 0, EINVAL,
              "the directory holds size=1048576 chunk=65536, which the URI "
              "contradicts");
  snprintf (uri, sizeof uri, "dir:%s?chunk=4k", f->dir);
  open_fails (uri, 0, EINVAL, "contradicts");
}

static void
test_bad_metadata_refused (void **state)
{
  struct fx *f = *state;
  char path[PATH_MAX + 32], uri[PATH_MAX + 64];
  snprintf (path, sizeof path, "%s/.r3map-dir", f->dir);
  snprintf (uri, sizeof uri, "dir:%s", f->dir);
  static const char *const bad[] = {
    "", "r3map-dir 2\nsize 1\nchunk 1\n", "r3map-dir 1\nsize 1\n",
    "r3map-dir 1\nsize 1\nchunk 1\njunk\n", "r3map-dir 1\nsize x\nchunk 1\n",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    FILE *fp = fopen (path, "w");
    assert_non_null (fp);
    fputs (bad[i], fp);
    fclose (fp);
    open_fails (uri, 0, EINVAL, "not a metadata file");
  }
  FILE *fp = fopen (path, "w");
  fputs ("r3map-dir 1\nsize 1024\nchunk 3\n", fp);
  fclose (fp);
  open_fails (uri, 0, EINVAL, "chunk 3 is not a power of two");
}

static void
test_new_dir_needs_geometry (void **state)
{
  struct fx *f = *state;
  char uri[PATH_MAX + 64];
  snprintf (uri, sizeof uri, "dir:%s/new", f->tmp);
  open_fails (uri, 0, EINVAL, "size= missing");
  snprintf (uri, sizeof uri, "dir:%s/new?size=1M", f->tmp);
  open_fails (uri, 0, EINVAL, "chunk= missing");
  snprintf (uri, sizeof uri, "dir:%s/a/b?size=1M&chunk=4k", f->tmp);
  open_fails (uri, 0, ENOENT, "creating the directory");
}

static void
test_path_is_a_file (void **state)
{
  struct fx *f = *state;
  char path[PATH_MAX + 32], uri[PATH_MAX + 64];
  snprintf (path, sizeof path, "%s/file", f->tmp);
  close (open (path, O_CREAT | O_WRONLY, 0666));
  snprintf (uri, sizeof uri, "dir:%s?size=1M&chunk=4k", path);
  open_fails (uri, 0, ENOTDIR, "opening the directory");
}

static void
test_read_only (void **state)
{
  struct fx *f = *state;
  char uri[PATH_MAX + 64];
  snprintf (uri, sizeof uri, "dir:%s", f->dir);
  check_read_only (uri);
  /* Read-only creates neither the directory nor metadata. */
  snprintf (uri, sizeof uri, "dir:%s/ro?size=1M&chunk=4k", f->tmp);
  open_fails (uri, R3M_OPEN_READ_ONLY, ENOENT, "opening the directory");
  char path[PATH_MAX + 32];
  snprintf (path, sizeof path, "%s/ro", f->tmp);
  assert_int_equal (mkdir (path, 0777), 0);
  r3m_backend_close (open_ok (uri, R3M_OPEN_READ_ONLY));
  expect_listing (path, "");
}

/* size not a multiple of chunk: the last chunk is short. */
static void
test_short_last_chunk (void **state)
{
  struct fx *f = *state;
  char uri[PATH_MAX + 64], path[PATH_MAX + 32];
  snprintf (path, sizeof path, "%s/short", f->tmp);
  snprintf (uri, sizeof uri, "dir:%s?size=100k&chunk=64k", path);
  struct r3m_backend *b = open_ok (uri, 0);
  static char buf[102400 - 60000], back[sizeof buf];
  fill (buf, sizeof buf, 60000, 25);
  assert_int_equal (r3m_backend_pwrite (b, buf, sizeof buf, 60000, 0), 0);
  assert_int_equal (r3m_backend_pread (b, back, sizeof back, 60000), 0);
  assert_memory_equal (buf, back, sizeof buf);
  struct stat st;
  char chunk1[PATH_MAX + 40];
  snprintf (chunk1, sizeof chunk1, "%s/65536", path);
  assert_int_equal (stat (chunk1, &st), 0);
  assert_int_equal (st.st_size, 102400 - 65536);
  /* Zeroing the whole short chunk removes it. */
  assert_int_equal (r3m_backend_zero (b, 102400 - 65536, 65536,
                                      R3M_IO_MAY_TRIM), 0);
  expect_listing (path, ".r3map-dir 0");
  r3m_backend_close (b);
}

/* With one fd cached, data of closed files is still flushed and kept. */
static void
test_many_chunks_small_cache (void **state)
{
  struct fx *f = *state;
  char uri[PATH_MAX + 64];
  snprintf (uri, sizeof uri, "dir:%s/small?size=64k&chunk=1k&max-open=1",
            f->tmp);
  struct r3m_backend *b = open_ok (uri, 0);
  static char buf[65536], back[65536];
  fill (buf, sizeof buf, 0, 26);
  /* 96-byte writes: many straddle two chunks. */
  for (size_t off = 0; off < sizeof buf; off += 96) {
    size_t n = sizeof buf - off < 96 ? sizeof buf - off : 96;
    assert_int_equal (r3m_backend_pwrite (b, buf + off, n, off, 0), 0);
  }
  assert_int_equal (r3m_backend_flush (b), 0);
  assert_int_equal (r3m_backend_pread (b, back, sizeof back, 0), 0);
  assert_memory_equal (buf, back, sizeof buf);
  r3m_backend_close (b);
  b = open_ok (uri, 0);
  assert_int_equal (r3m_backend_pread (b, back, sizeof back, 0), 0);
  assert_memory_equal (buf, back, sizeof buf);
  r3m_backend_close (b);
}

int
main (void)
{
#define T(fn) cmocka_unit_test_setup_teardown (fn, setup, teardown)
  const struct CMUnitTest tests[] = {
    T (test_reads_zero), T (test_round_trip), T (test_past_end),
    T (test_overflow), T (test_zero), T (test_zero_may_trim),
    T (test_zero_fua), T (test_trim), T (test_flush), T (test_extents),
    T (test_submit), T (test_reads_create_nothing),
    T (test_writes_create_touched_chunks), T (test_sparse_chunk_reads_zero),
    T (test_zero_whole_chunk_removes_file),
    T (test_trim_whole_chunk_removes_file),
    T (test_write_after_remove_reaches_new_file), T (test_extents_exact),
    T (test_extents_large_range), T (test_reopen_uses_metadata),
    T (test_reopen_mismatch_refused), T (test_bad_metadata_refused),
    T (test_new_dir_needs_geometry), T (test_path_is_a_file),
    T (test_read_only), T (test_short_last_chunk),
    T (test_many_chunks_small_cache),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
