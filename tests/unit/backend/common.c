#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "common.h"

static char *
make_tmp (const char *fallback)
{
  const char *base = getenv ("TMPDIR");
  char *t;
  if (asprintf (&t, "%s/r3m-test-XXXXXX", base && *base ? base : fallback)
      < 0)
    fail_msg ("asprintf");
  if (!mkdtemp (t))
    fail_msg ("mkdtemp %s: %s", t, strerror (errno));
  return t;
}

char *
tmp_dir (void)
{
  return make_tmp ("/tmp");
}

char *
tmp_dir_fast (void)
{
  return make_tmp (access ("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
}

static int
rm_one (const char *path, const struct stat *st, int type, struct FTW *ftw)
{
  remove (path);
  return 0;
}

void
tmp_remove (const char *path)
{
  nftw (path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

struct r3m_backend *
open_ok (const char *uri, unsigned flags)
{
  struct r3m_error err = { 0 };
  struct r3m_backend *b = NULL;
  int r = r3m_backend_open (uri, flags, &b, &err);
  if (r != 0)
    fail_msg ("open %s: %d %s", uri, r, err.msg);
  assert_non_null (b);
  return b;
}

void
open_fails (const char *uri, unsigned flags, int code, const char *about)
{
  struct r3m_error err = { 0 };
  struct r3m_backend *b = NULL;
  int r = r3m_backend_open (uri, flags, &b, &err);
  if (r == 0) {
    r3m_backend_close (b);
    fail_msg ("open %s succeeded, want an error about '%s'", uri, about);
  }
  if (r != -code || err.code != code)
    fail_msg ("open %s: got %d (%s), want %d", uri, r, err.msg, -code);
  if (strncmp (err.msg, uri, strlen (uri)) != 0)
    fail_msg ("open %s: message '%s' does not start with the URI", uri,
              err.msg);
  if (!strstr (err.msg, about))
    fail_msg ("open %s: message '%s' does not mention '%s'", uri, err.msg,
              about);
  assert_null (b);
}

void
fill (void *buf, size_t len, uint64_t off, unsigned seed)
{
  unsigned char *p = buf;
  for (size_t i = 0; i < len; i++) {
    uint64_t x = (off + i) * 0x9E3779B97F4A7C15ull + seed * 0x100000001B3ull;
    x ^= x >> 29;
    p[i] = (unsigned char) (x | 1);   /* never zero: zeros mean "missing" */
  }
}

static bool
all_zero (const unsigned char *p, size_t len)
{
  for (size_t i = 0; i < len; i++)
    if (p[i])
      return false;
  return true;
}

static void
expect_pattern (const unsigned char *p, size_t len, uint64_t off,
                unsigned seed)
{
  unsigned char *want = malloc (len);
  assert_non_null (want);
  fill (want, len, off, seed);
  for (size_t i = 0; i < len; i++)
    if (p[i] != want[i])
      fail_msg ("byte %llu: got %02x, want %02x",
                (unsigned long long) (off + i), p[i], want[i]);
  free (want);
}

/* ---- the contract ----------------------------------------------------- */

void
check_reads_zero (struct r3m_backend *b)
{
  uint64_t size = r3m_backend_size (b);
  size_t n = size < (1 << 20) ? (size_t) size : 1 << 20;
  unsigned char *buf = malloc (n);
  assert_non_null (buf);
  memset (buf, 0xaa, n);
  assert_int_equal (r3m_backend_pread (b, buf, n, 0), 0);
  assert_true (all_zero (buf, n));
  memset (buf, 0xaa, n);
  assert_int_equal (r3m_backend_pread (b, buf, n, size - n), 0);
  assert_true (all_zero (buf, n));
  free (buf);
}

void
check_round_trip (struct r3m_backend *b)
{
  uint64_t size = r3m_backend_size (b);
  static const struct { uint64_t off; size_t len; } cases[] = {
    { 0, 1 }, { 1, 1 }, { 7, 13 }, { 4095, 2 }, { 4096, 4096 },
    { 10000, 30000 }, { 65536 - 3, 3 },
  };
  unsigned char buf[40000];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    fill (buf, cases[i].len, cases[i].off, 1);
    assert_int_equal (r3m_backend_pwrite (b, buf, cases[i].len, cases[i].off,
                                          0), 0);
  }
  /* The last byte of the store, and FUA. */
  fill (buf, 1, size - 1, 1);
  assert_int_equal (r3m_backend_pwrite (b, buf, 1, size - 1, R3M_IO_FUA), 0);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    memset (buf, 0, sizeof buf);
    assert_int_equal (r3m_backend_pread (b, buf, cases[i].len, cases[i].off),
                      0);
    expect_pattern (buf, cases[i].len, cases[i].off, 1);
  }
  assert_int_equal (r3m_backend_pread (b, buf, 1, size - 1), 0);
  expect_pattern (buf, 1, size - 1, 1);
  /* Bytes between the writes were never written. */
  assert_int_equal (r3m_backend_pread (b, buf, 100, 40000), 0);
  assert_true (all_zero (buf, 100));
}

void
check_past_end (struct r3m_backend *b)
{
  uint64_t size = r3m_backend_size (b);
  char buf[16] = "0123456789abcdef";
  assert_int_equal (r3m_backend_pread (b, buf, 1, size), -EINVAL);
  assert_int_equal (r3m_backend_pread (b, buf, 2, size - 1), -EINVAL);
  assert_int_equal (r3m_backend_pwrite (b, buf, 1, size, 0), -ENOSPC);
  assert_int_equal (r3m_backend_pwrite (b, buf, 16, size - 8, 0), -ENOSPC);
  assert_int_equal (r3m_backend_zero (b, 2, size - 1, 0), -ENOSPC);
  assert_int_equal (r3m_backend_trim (b, 2, size - 1), -EINVAL);
  struct r3m_extent e[2];
  size_t n = 9;
  assert_int_equal (r3m_backend_extents (b, size, 1, e, 2, &n), -EINVAL);
  assert_int_equal (n, 0);
  /* Nothing was written, and the backend still works (the original's
   * memory backend kept its lock after such a call). */
  assert_int_equal (r3m_backend_pwrite (b, buf, 8, size - 8, 0), 0);
  char back[8];
  assert_int_equal (r3m_backend_pread (b, back, 8, size - 8), 0);
  assert_memory_equal (back, buf, 8);
  /* Empty requests at the end are fine. */
  assert_int_equal (r3m_backend_pread (b, buf, 0, size), 0);
  assert_int_equal (r3m_backend_pwrite (b, buf, 0, size, 0), 0);
}

void
check_overflow (struct r3m_backend *b)
{
  uint64_t size = r3m_backend_size (b);
  char buf[4];
  assert_int_equal (r3m_backend_pread (b, buf, 2, UINT64_MAX), -EINVAL);
  assert_int_equal (r3m_backend_pread (b, buf, 4, UINT64_MAX - 1), -EINVAL);
  assert_int_equal (r3m_backend_pwrite (b, buf, 4, UINT64_MAX - 1, 0),
                    -ENOSPC);
  assert_int_equal (r3m_backend_pread (b, buf, SIZE_MAX, 1), -EINVAL);
  assert_int_equal (r3m_backend_zero (b, SIZE_MAX, size - 1, 0), -ENOSPC);
  assert_int_equal (r3m_backend_trim (b, SIZE_MAX, size - 1), -EINVAL);
  struct r3m_extent e[2];
  size_t n;
  assert_int_equal (r3m_backend_extents (b, 1, UINT64_MAX, e, 2, &n),
                    -EINVAL);
}

void
check_zero (struct r3m_backend *b, unsigned flags)
{
  enum { N = 256 * 1024 };
  unsigned char *buf = malloc (N);
  assert_non_null (buf);
  fill (buf, N, 0, 2);
  assert_int_equal (r3m_backend_pwrite (b, buf, N, 0, 0), 0);
  /* Unaligned edges and a large aligned middle. */
  assert_int_equal (r3m_backend_zero (b, 3, 5, flags), 0);
  assert_int_equal (r3m_backend_zero (b, 200000, 10001, flags), 0);
  memset (buf, 0xaa, N);
  assert_int_equal (r3m_backend_pread (b, buf, N, 0), 0);
  expect_pattern (buf, 5, 0, 2);
  assert_true (all_zero (buf + 5, 3));
  expect_pattern (buf + 8, 10001 - 8, 8, 2);
  assert_true (all_zero (buf + 10001, 200000));
  expect_pattern (buf + 210001, N - 210001, 210001, 2);
  /* Zeroing what is already zero, and the whole store. */
  assert_int_equal (r3m_backend_zero (b, 4096, 10001, flags), 0);
  uint64_t size = r3m_backend_size (b);
  assert_int_equal (r3m_backend_zero (b, (size_t) size, 0, flags), 0);
  assert_int_equal (r3m_backend_pread (b, buf, N, 0), 0);
  assert_true (all_zero (buf, N));
  free (buf);
}

void
check_trim (struct r3m_backend *b)
{
  enum { N = 128 * 1024 };
  unsigned char *buf = malloc (N);
  assert_non_null (buf);
  fill (buf, N, 0, 3);
  assert_int_equal (r3m_backend_pwrite (b, buf, N, 0, 0), 0);
  assert_int_equal (r3m_backend_trim (b, 70000, 1000), 0);
  /* Outside the trimmed range nothing changed; inside, anything goes. */
  assert_int_equal (r3m_backend_pread (b, buf, N, 0), 0);
  expect_pattern (buf, 1000, 0, 3);
  expect_pattern (buf + 71000, N - 71000, 71000, 3);
  assert_int_equal (r3m_backend_trim (b, 0, 0), 0);
  free (buf);
}

void
check_flush (struct r3m_backend *b)
{
  char buf[512];
  fill (buf, sizeof buf, 100, 4);
  assert_int_equal (r3m_backend_flush (b), 0);
  assert_int_equal (r3m_backend_pwrite (b, buf, sizeof buf, 100, 0), 0);
  assert_int_equal (r3m_backend_flush (b), 0);
  assert_int_equal (r3m_backend_flush (b), 0);
}

void
check_extents (struct r3m_backend *b)
{
  uint64_t size = r3m_backend_size (b);
  unsigned char buf[4096];
  fill (buf, sizeof buf, 8192, 5);
  assert_int_equal (r3m_backend_pwrite (b, buf, sizeof buf, 8192, 0), 0);

  struct r3m_extent e[64];
  size_t n = 99;
  assert_int_equal (r3m_backend_extents (b, 0, size, e, 64, &n), 0);
  assert_true (n >= 1 && n <= 64);
  uint64_t pos = 0;
  for (size_t i = 0; i < n; i++) {
    assert_true (e[i].len > 0);
    assert_true ((e[i].flags & ~(uint32_t) (R3M_EXTENT_HOLE
                                            | R3M_EXTENT_ZERO)) == 0);
    if (i > 0)
      assert_true (e[i].flags != e[i - 1].flags);   /* merged */
    /* What an extent says is zero must read as zero. */
    if (e[i].flags & R3M_EXTENT_ZERO) {
      uint64_t probe = pos + e[i].len / 2;
      unsigned char c = 0xaa;
      assert_int_equal (r3m_backend_pread (b, &c, 1, probe), 0);
      assert_int_equal (c, 0);
    }
    /* The written bytes are never reported as zero. */
    if (pos <= 8192 && pos + e[i].len > 8192)
      assert_false (e[i].flags & R3M_EXTENT_ZERO);
    pos += e[i].len;
  }
  assert_true (pos <= size);
  if (n < 64)
    assert_int_equal (pos, size);

  /* A window in the middle is answered from its own start. */
  assert_int_equal (r3m_backend_extents (b, 8200, 100, e, 64, &n), 0);
  assert_true (n >= 1);
  assert_false (e[0].flags & R3M_EXTENT_ZERO);
  assert_true (e[0].len <= 100);
  /* max = 1: one extent, from the start. */
  assert_int_equal (r3m_backend_extents (b, 0, size, e, 1, &n), 0);
  assert_int_equal (n, 1);
  assert_true (e[0].len > 0 && e[0].len <= size);
  /* Empty requests. */
  assert_int_equal (r3m_backend_extents (b, 0, 0, e, 64, &n), 0);
  assert_int_equal (n, 0);
  assert_int_equal (r3m_backend_extents (b, 0, size, e, 0, &n), 0);
  assert_int_equal (n, 0);
}

/* ---- async ------------------------------------------------------------ */

#include <pthread.h>

struct waiter {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int done, result;
};

static void
on_done (struct r3m_io *io, int result)
{
  struct waiter *w = io->user;
  pthread_mutex_lock (&w->lock);
  w->done++;
  if (result < 0)
    w->result = result;
  pthread_cond_broadcast (&w->cond);
  pthread_mutex_unlock (&w->lock);
}

int
submit_wait (struct r3m_backend *b, enum r3m_io_op op, void *buf, size_t len,
             uint64_t off)
{
  struct waiter w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
                      0, 0 };
  struct r3m_io io = { .op = op, .buf = buf, .len = len, .off = off,
                       .done = on_done, .user = &w };
  int r = r3m_backend_submit (b, &io);
  if (r < 0)
    return r;
  pthread_mutex_lock (&w.lock);
  while (w.done == 0)
    pthread_cond_wait (&w.cond, &w.lock);
  pthread_mutex_unlock (&w.lock);
  assert_int_equal (w.done, 1);
  return w.result;
}

void
check_submit (struct r3m_backend *b)
{
  unsigned char buf[10000], back[10000];
  fill (buf, sizeof buf, 333, 6);
  assert_int_equal (submit_wait (b, R3M_IO_WRITE, buf, sizeof buf, 333), 0);
  assert_int_equal (submit_wait (b, R3M_IO_FLUSH, NULL, 0, 0), 0);
  assert_int_equal (submit_wait (b, R3M_IO_READ, back, sizeof back, 333), 0);
  assert_memory_equal (buf, back, sizeof buf);
  assert_int_equal (submit_wait (b, R3M_IO_ZERO, NULL, 100, 400), 0);
  assert_int_equal (submit_wait (b, R3M_IO_READ, back, 100, 400), 0);
  assert_true (all_zero (back, 100));
  assert_int_equal (submit_wait (b, R3M_IO_TRIM, NULL, 100, 400), 0);
  /* Bad requests are refused at submit; done is not called. */
  uint64_t size = r3m_backend_size (b);
  assert_int_equal (submit_wait (b, R3M_IO_READ, back, 2, size - 1), -EINVAL);
  assert_int_equal (submit_wait (b, R3M_IO_WRITE, back, 2, size - 1),
                    -ENOSPC);
  assert_int_equal (submit_wait (b, (enum r3m_io_op) 99, back, 2, 0),
                    -EINVAL);
  struct r3m_io io = { .op = R3M_IO_READ, .buf = back, .len = 1 };
  assert_int_equal (r3m_backend_submit (b, &io), -EINVAL);   /* no done */
}

void
check_read_only (const char *uri)
{
  struct r3m_backend *b = open_ok (uri, R3M_OPEN_READ_ONLY);
  assert_true (r3m_backend_get_info (b)->flags & R3M_BACKEND_READ_ONLY);
  char buf[64] = { 1 };
  assert_int_equal (r3m_backend_pread (b, buf, sizeof buf, 0), 0);
  assert_int_equal (r3m_backend_pwrite (b, buf, sizeof buf, 0, 0), -EPERM);
  assert_int_equal (r3m_backend_zero (b, 64, 0, 0), -EPERM);
  assert_int_equal (r3m_backend_trim (b, 64, 0), -EPERM);
  /* Read-only wins over the range check. */
  assert_int_equal (r3m_backend_pwrite (b, buf, 1, UINT64_MAX, 0), -EPERM);
  assert_int_equal (r3m_backend_flush (b), 0);
  struct r3m_io io = { .op = R3M_IO_WRITE, .buf = buf, .len = 1,
                       .done = on_done };
  assert_int_equal (r3m_backend_submit (b, &io), -EPERM);
  r3m_backend_close (b);
}

/* ---- the sweep -------------------------------------------------------- */

void
sweep (struct r3m_backend *(*open_fresh) (uint64_t size, void *arg),
       void (*before_close) (struct r3m_backend *b, void *arg),
       void *arg, uint64_t size)
{
  unsigned char *model = calloc (1, (size_t) size);
  unsigned char buf[128], back[128];
  assert_non_null (model);
  for (size_t len = 1; len <= 128 && len <= size; len++) {
    struct r3m_backend *b = open_fresh (size, arg);
    memset (model, 0, (size_t) size);
    for (uint64_t off = 0; off + len <= size; off++) {
      /* Read first: bytes never written must be zero. */
      memset (back, 0xaa, len);
      assert_int_equal (r3m_backend_pread (b, back, len, off), 0);
      if (memcmp (back, model + off, len) != 0)
        fail_msg ("len %zu off %llu: read before write differs", len,
                  (unsigned long long) off);
      fill (buf, len, off, (unsigned) len);
      assert_int_equal (r3m_backend_pwrite (b, buf, len, off, 0), 0);
      memcpy (model + off, buf, len);
      memset (back, 0xaa, len);
      assert_int_equal (r3m_backend_pread (b, back, len, off), 0);
      if (memcmp (back, buf, len) != 0)
        fail_msg ("len %zu off %llu: write did not read back", len,
                  (unsigned long long) off);
    }
    /* The whole store matches the model at the end. */
    unsigned char *all = malloc ((size_t) size);
    assert_non_null (all);
    assert_int_equal (r3m_backend_pread (b, all, (size_t) size, 0), 0);
    if (memcmp (all, model, (size_t) size) != 0)
      fail_msg ("len %zu: final contents differ from the model", len);
    free (all);
    if (before_close)
      before_close (b, arg);
    r3m_backend_close (b);
  }
  free (model);
}
