/* pattern:SIZE */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "common.h"

/* Written independently of the backend: byte i of the big-endian word
 * holding the offset of its first byte. */
static unsigned char
expected (uint64_t o)
{
  uint64_t word = o / 8 * 8;
  unsigned shift = 56 - 8 * (unsigned) (o % 8);
  return (unsigned char) ((word >> shift) & 0xff);
}

static void
test_first_words (void **state)
{
  struct r3m_backend *b = open_ok ("pattern:1M", 0);
  unsigned char buf[24];
  static const unsigned char want[24] = {
    0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 8,
    0, 0, 0, 0, 0, 0, 0, 16,
  };
  assert_int_equal (r3m_backend_pread (b, buf, sizeof buf, 0), 0);
  assert_memory_equal (buf, want, sizeof want);
  r3m_backend_close (b);
}

/* Every length 0..40 at every offset 0..40, and far away. */
static void
test_any_range (void **state)
{
  struct r3m_backend *b = open_ok ("pattern:1T", 0);
  unsigned char buf[64];
  static const uint64_t bases[] = { 0, 0x0123456789a0ull, (1ull << 40) - 100 };
  for (size_t k = 0; k < 3; k++)
    for (uint64_t off = bases[k]; off < bases[k] + 41; off++)
      for (size_t len = 0; len <= 40 && off + len <= (1ull << 40); len++) {
        assert_int_equal (r3m_backend_pread (b, buf, len, off), 0);
        for (size_t i = 0; i < len; i++)
          if (buf[i] != expected (off + i))
            fail_msg ("off %llu len %zu byte %zu: %02x, want %02x",
                      (unsigned long long) off, len, i, buf[i],
                      expected (off + i));
      }
  r3m_backend_close (b);
}

static void
test_large_read (void **state)
{
  struct r3m_backend *b = open_ok ("pattern:8M", 0);
  size_t n = 8 << 20;
  unsigned char *buf = malloc (n);
  assert_non_null (buf);
  assert_int_equal (r3m_backend_pread (b, buf, n - 3, 3), 0);
  for (size_t i = 0; i < n - 3; i++)
    if (buf[i] != expected (3 + i))
      fail_msg ("byte %zu differs", 3 + i);
  free (buf);
  r3m_backend_close (b);
}

/* Read-only without being asked. */
static void
test_read_only (void **state)
{
  struct r3m_backend *b = open_ok ("pattern:1M", 0);
  char buf[8] = { 0 };
  assert_true (r3m_backend_get_info (b)->flags & R3M_BACKEND_READ_ONLY);
  assert_int_equal (r3m_backend_pwrite (b, buf, 8, 0, 0), -EPERM);
  assert_int_equal (r3m_backend_zero (b, 8, 0, 0), -EPERM);
  assert_int_equal (r3m_backend_trim (b, 8, 0), -EPERM);
  assert_int_equal (r3m_backend_flush (b), 0);
  r3m_backend_close (b);
  check_read_only ("pattern:1M");
}

static void
test_past_end (void **state)
{
  struct r3m_backend *b = open_ok ("pattern:100", 0);
  char buf[8];
  assert_int_equal (r3m_backend_pread (b, buf, 1, 100), -EINVAL);
  assert_int_equal (r3m_backend_pread (b, buf, 2, 99), -EINVAL);
  assert_int_equal (r3m_backend_pread (b, buf, 2, UINT64_MAX), -EINVAL);
  assert_int_equal (r3m_backend_pread (b, buf, 8, 92), 0);
  for (unsigned i = 0; i < 8; i++)
    assert_int_equal ((unsigned char) buf[i], expected (92 + i));
  assert_int_equal ((unsigned char) buf[3], 88);     /* last byte of word 88 */
  r3m_backend_close (b);
}

static void
test_extents (void **state)
{
  struct r3m_backend *b = open_ok ("pattern:1M", 0);
  struct r3m_extent e[4];
  size_t n;
  assert_int_equal (r3m_backend_extents (b, 5, 1000, e, 4, &n), 0);
  assert_int_equal (n, 1);
  assert_int_equal (e[0].len, 1000);
  assert_int_equal (e[0].flags, 0);
  r3m_backend_close (b);
}

static void
test_submit (void **state)
{
  struct r3m_backend *b = open_ok ("pattern:1M", 0);
  unsigned char buf[100];
  assert_int_equal (submit_wait (b, R3M_IO_READ, buf, sizeof buf, 1001), 0);
  for (unsigned i = 0; i < sizeof buf; i++)
    assert_int_equal (buf[i], expected (1001 + i));
  assert_int_equal (submit_wait (b, R3M_IO_WRITE, buf, 1, 0), -EPERM);
  r3m_backend_close (b);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_first_words),
    cmocka_unit_test (test_any_range),
    cmocka_unit_test (test_large_read),
    cmocka_unit_test (test_read_only),
    cmocka_unit_test (test_past_end),
    cmocka_unit_test (test_extents),
    cmocka_unit_test (test_submit),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
