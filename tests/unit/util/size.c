/* util_parse_size and util_format_size. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "util/size.h"

static void
parses (const char *s, uint64_t want)
{
  uint64_t v = 12345;
  int r = util_parse_size (s, &v);
  if (r != 0 || v != want)
    fail_msg ("'%s': r=%d v=%llu, want %llu", s, r, (unsigned long long) v,
              (unsigned long long) want);
}

static void
fails (const char *s, int want)
{
  uint64_t v = 12345;
  int r = util_parse_size (s, &v);
  if (r != want || v != 12345)
    fail_msg ("'%s': r=%d v=%llu, want error %d and v untouched", s, r,
              (unsigned long long) v, want);
}

static void
test_plain_numbers (void **state)
{
  parses ("0", 0);
  parses ("1", 1);
  parses ("4096", 4096);
  parses ("18446744073709551615", UINT64_MAX);
  parses ("007", 7);
  parses ("512B", 512);
  parses ("512b", 512);
}

static void
test_suffixes (void **state)
{
  parses ("1k", 1024);
  parses ("1K", 1024);
  parses ("1KB", 1024);
  parses ("1KiB", 1024);
  parses ("64m", 64ull << 20);
  parses ("64M", 64ull << 20);
  parses ("64MB", 64ull << 20);
  parses ("64MiB", 64ull << 20);
  parses ("2g", 2ull << 30);
  parses ("2GiB", 2ull << 30);
  parses ("3T", 3ull << 40);
  fails ("3tib", -EINVAL);
}

static void
test_suffixes_large (void **state)
{
  parses ("5P", 5ull << 50);
  parses ("5PiB", 5ull << 50);
  parses ("15E", 15ull << 60);
  parses ("15EiB", 15ull << 60);
}

static void
test_fractions (void **state)
{
  parses ("1.5G", 3ull << 29);
  parses ("1.5k", 1536);
  parses ("0.5M", 512 << 10);
  parses ("1.0", 1);
  parses ("2.000000000K", 2048);
  parses ("0.25K", 256);
  parses ("15.5E", (15ull << 60) + (1ull << 59));
}

static void
test_fraction_errors (void **state)
{
  fails ("0.5", -EINVAL);          /* half a byte */
  fails ("1.1K", -EINVAL);         /* 1126.4 bytes */
  fails ("1.", -EINVAL);
  fails ("1.K", -EINVAL);
  fails (".5K", -EINVAL);
  fails ("1.0000000001G", -EINVAL); /* more than 9 fraction digits */
  fails ("1.5.5G", -EINVAL);
}

static void
test_junk (void **state)
{
  fails (NULL, -EINVAL);
  fails ("", -EINVAL);
  fails ("K", -EINVAL);
  fails ("-1", -EINVAL);
  fails ("+1", -EINVAL);
  fails (" 1", -EINVAL);
  fails ("1 ", -EINVAL);
  fails ("1 K", -EINVAL);
  fails ("1KK", -EINVAL);
  fails ("1Ki", -EINVAL);
  fails ("1kb", -EINVAL);
  fails ("1X", -EINVAL);
  fails ("0x10", -EINVAL);
  fails ("1e3", -EINVAL);
}

static void
test_overflow (void **state)
{
  fails ("18446744073709551616", -ERANGE);
  fails ("99999999999999999999999", -ERANGE);
  fails ("16E", -ERANGE);
  fails ("16384P", -ERANGE);
  fails ("17179869184G", -ERANGE);
  fails ("15.9999999E", -EINVAL);  /* not whole bytes: checked first */
  parses ("16383P", 16383ull << 50);
  fails ("18446744073709551615K", -ERANGE);
}

static void
formats (uint64_t v, const char *want)
{
  char buf[32];
  util_format_size (v, buf, sizeof buf);
  if (strcmp (buf, want) != 0)
    fail_msg ("%llu formats as '%s', want '%s'", (unsigned long long) v, buf,
              want);
}

static void
test_format (void **state)
{
  formats (0, "0 B");
  formats (1023, "1023 B");
  formats (1024, "1.00 KiB");
  formats (1536, "1.50 KiB");
  formats (10 * 1024, "10.0 KiB");
  formats (100 * 1024, "100 KiB");
  formats (64ull << 20, "64.0 MiB");
  formats (1ull << 30, "1.00 GiB");
  formats (1048575, "1.00 MiB");           /* not "1024 KiB" */
  formats ((10ull << 20) - 1, "10.0 MiB"); /* not "10.00 MiB" */
  formats (UINT64_MAX, "16.0 EiB");
}

static void
test_format_truncates (void **state)
{
  char buf[4] = "xyz";
  util_format_size (1ull << 30, buf, sizeof buf);
  assert_string_equal (buf, "1.0");
  util_format_size (1ull << 30, buf, 0);   /* must not write */
  assert_string_equal (buf, "1.0");
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_plain_numbers),
    cmocka_unit_test (test_suffixes),
    cmocka_unit_test (test_suffixes_large),
    cmocka_unit_test (test_fractions),
    cmocka_unit_test (test_fraction_errors),
    cmocka_unit_test (test_junk),
    cmocka_unit_test (test_overflow),
    cmocka_unit_test (test_format),
    cmocka_unit_test (test_format_truncates),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
