/* memory:SIZE */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common.h"

static int
setup (void **state)
{
  *state = open_ok ("memory:1M", 0);
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
static void test_read_only (void **s) { check_read_only ("memory:1M"); }

static void
test_info (void **state)
{
  struct r3m_backend *b = *state;
  const struct r3m_backend_info *i = r3m_backend_get_info (b);
  assert_int_equal (r3m_backend_size (b), 1 << 20);
  assert_int_equal (i->align, 1);
  assert_true (i->flags & R3M_BACKEND_VOLATILE);
  assert_false (i->flags & R3M_BACKEND_READ_ONLY);
  assert_string_equal (r3m_backend_describe (b), "memory:1M");
  /* Nothing to say beyond an errno. */
  char why[64] = "x";
  assert_int_equal (r3m_backend_why (b, why, sizeof why), 0);
}

/* Zeroing whole pages gives them back (MADV_DONTNEED); the bytes around
 * the pages must survive and the pages must read as zeros. */
static void
test_zero_pages (void **state)
{
  struct r3m_backend *b = *state;
  static unsigned char buf[3 * 4096 + 2], back[sizeof buf];
  fill (buf, sizeof buf, 4095, 7);
  assert_int_equal (r3m_backend_pwrite (b, buf, sizeof buf, 4095, 0), 0);
  assert_int_equal (r3m_backend_zero (b, 3 * 4096, 4096, R3M_IO_MAY_TRIM), 0);
  assert_int_equal (r3m_backend_pread (b, back, sizeof back, 4095), 0);
  assert_int_equal (back[0], buf[0]);
  for (size_t i = 1; i <= 3 * 4096; i++)
    assert_int_equal (back[i], 0);
  assert_int_equal (back[3 * 4096 + 1], buf[3 * 4096 + 1]);
}

static void
test_empty (void **state)
{
  struct r3m_backend *b = open_ok ("memory:0", 0);
  char c;
  assert_int_equal (r3m_backend_size (b), 0);
  assert_int_equal (r3m_backend_pread (b, &c, 0, 0), 0);
  assert_int_equal (r3m_backend_pread (b, &c, 1, 0), -EINVAL);
  assert_int_equal (r3m_backend_pwrite (b, &c, 1, 0, 0), -ENOSPC);
  assert_int_equal (r3m_backend_flush (b), 0);
  r3m_backend_close (b);
}

/* Pages cost nothing until written: a terabyte opens on a small machine. */
static void
test_sparse_terabyte (void **state)
{
  struct r3m_backend *b = open_ok ("memory:1T", 0);
  uint64_t end = r3m_backend_size (b);
  assert_int_equal (end, 1ull << 40);
  unsigned char c = 0xaa;
  assert_int_equal (r3m_backend_pread (b, &c, 1, end - 1), 0);
  assert_int_equal (c, 0);
  c = 0x5a;
  assert_int_equal (r3m_backend_pwrite (b, &c, 1, end / 2, 0), 0);
  c = 0;
  assert_int_equal (r3m_backend_pread (b, &c, 1, end / 2), 0);
  assert_int_equal (c, 0x5a);
  r3m_backend_close (b);
}

/* Writes that populate fresh 64 KiB granules, partial granules, granules
 * dropped by a zero and written again: every byte reads back as written. */
static void
test_populated_granules_round_trip (void **state)
{
  struct r3m_backend *b = *state;
  enum { G = 64 * 1024, N = (1 << 20) / G };
  static unsigned char want[1 << 20], got[1 << 20];
  for (size_t i = 0; i < sizeof want; i++)
    want[i] = (unsigned char) (i * 7 + 3);
  /* Fresh whole granules, then a write straddling populated and fresh. */
  assert_int_equal (r3m_backend_pwrite (b, want, 3 * G, 0, 0), 0);
  assert_int_equal (r3m_backend_pwrite (b, want + 2 * G + 100, 3 * G,
                                        2 * G + 100, 0), 0);
  /* Drop two granules and a bit, write across the hole again. */
  assert_int_equal (r3m_backend_zero (b, 2 * G + 10, G - 5, 0), 0);
  for (size_t i = G - 5; i < 3 * G + 5; i++)
    want[i] = 0;
  assert_int_equal (r3m_backend_pwrite (b, want + G, G, G, 0), 0);
  /* The rest in one go (most of it fresh). */
  assert_int_equal (r3m_backend_pwrite (b, want + 5 * G + 100,
                                        (N - 5) * G - 100, 5 * G + 100, 0),
                    0);
  assert_int_equal (r3m_backend_pread (b, got, sizeof got, 0), 0);
  assert_memory_equal (got, want, sizeof got);
}

static void
test_too_large (void **state)
{
  open_fails ("memory:15E", 0, EFBIG, "does not fit");
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_reads_zero, setup, teardown),
    cmocka_unit_test_setup_teardown (test_round_trip, setup, teardown),
    cmocka_unit_test_setup_teardown (test_past_end, setup, teardown),
    cmocka_unit_test_setup_teardown (test_overflow, setup, teardown),
    cmocka_unit_test_setup_teardown (test_zero, setup, teardown),
    cmocka_unit_test_setup_teardown (test_zero_may_trim, setup, teardown),
    cmocka_unit_test_setup_teardown (test_zero_pages, setup, teardown),
    cmocka_unit_test_setup_teardown (test_trim, setup, teardown),
    cmocka_unit_test_setup_teardown (test_flush, setup, teardown),
    cmocka_unit_test_setup_teardown (test_extents, setup, teardown),
    cmocka_unit_test_setup_teardown (test_submit, setup, teardown),
    cmocka_unit_test_setup_teardown (test_info, setup, teardown),
    cmocka_unit_test_setup_teardown (test_populated_granules_round_trip,
                                     setup, teardown),
    cmocka_unit_test (test_read_only),
    cmocka_unit_test (test_empty),
    cmocka_unit_test (test_sparse_terabyte),
    cmocka_unit_test (test_too_large),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
