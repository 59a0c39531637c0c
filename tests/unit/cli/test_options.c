/* Option value parsers and suggestions of the r3map command. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cli.h"
#include "options.h"

static void
duration_ok (const char *s, uint64_t want)
{
  uint64_t v = 12345;
  assert_int_equal (cli_duration_ms (s, &v), 0);
  assert_int_equal (v, want);
}

static void
duration_bad (const char *s, int want)
{
  uint64_t v = 12345;
  assert_int_equal (cli_duration_ms (s, &v), want);
  assert_int_equal (v, 12345);
}

static void
test_duration_units (void **state)
{
  duration_ok ("0", 0);
  duration_ok ("500ms", 500);
  duration_ok ("5s", 5000);
  duration_ok ("2m", 120000);
  duration_ok ("1h", 3600000);
  duration_ok ("0s", 0);
  duration_ok ("1.5s", 1500);
  duration_ok ("0.25m", 15000);
}

static void
test_duration_refused (void **state)
{
  duration_bad ("", -EINVAL);
  duration_bad ("5", -EINVAL);          /* a unit is required */
  duration_bad ("s", -EINVAL);
  duration_bad ("5 s", -EINVAL);
  duration_bad ("-5s", -EINVAL);
  duration_bad ("5sec", -EINVAL);
  duration_bad ("1.s", -EINVAL);
  duration_bad (".5s", -EINVAL);
  duration_bad ("1.2.3s", -EINVAL);
  duration_bad ("0.5ms", -EINVAL);      /* not whole milliseconds */
  duration_bad ("99999999999999999999ms", -ERANGE);
  duration_bad ("9999999999999999h", -ERANGE);
}

struct named { const char *name; int other; };

static void
test_closest (void **state)
{
  static const struct named c[] = {
    { "copy", 0 }, { "compare", 0 }, { "serve", 0 }, { "mount", 0 },
    { "migrate", 0 },
  };
  size_t n = sizeof c / sizeof c[0];
  assert_string_equal (cli_closest ("cpy", c, n, sizeof c[0]), "copy");
  assert_string_equal (cli_closest ("comprae", c, n, sizeof c[0]), "compare");
  assert_string_equal (cli_closest ("serv", c, n, sizeof c[0]), "serve");
  assert_string_equal (cli_closest ("mig", c, n, sizeof c[0]), "migrate");
  assert_string_equal (cli_closest ("moutn", c, n, sizeof c[0]), "mount");
  /* "co" starts two names: no guess. */
  assert_null (cli_closest ("co", c, n, sizeof c[0]));
  assert_null (cli_closest ("frobnicate", c, n, sizeof c[0]));
  assert_null (cli_closest ("x", c, n, sizeof c[0]));
  assert_null (cli_closest ("", c, n, sizeof c[0]));
}

static void
test_replace (void **state)
{
  char buf[64];
  assert_string_equal (cli_replace ("file:/x?size=4: write: ENOSPC",
                                    "file:/x?size=4", "file:/x", buf,
                                    sizeof buf), "file:/x: write: ENOSPC");
  assert_string_equal (cli_replace ("a-b-a", "a", "xy", buf, sizeof buf),
                       "xy-b-xy");
  assert_string_equal (cli_replace ("none here", "zz", "y", buf, sizeof buf),
                       "none here");
  assert_string_equal (cli_replace ("keep", "", "y", buf, sizeof buf), "keep");
  /* Truncated, still terminated. */
  char small[6];
  assert_string_equal (cli_replace ("abcabc", "b", "BBBB", small,
                                    sizeof small), "aBBBB");
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_duration_units),
    cmocka_unit_test (test_duration_refused),
    cmocka_unit_test (test_closest),
    cmocka_unit_test (test_replace),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
