/* Progress bar rendering and the summary's number formats. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "progress.h"

#define MiB (1024.0 * 1024)
#define GiB (1024ull * 1024 * 1024)

static void
test_render_middle (void **state)
{
  char line[256];
  cli_progress_render (line, sizeof line, 80, GiB / 2, GiB, 256 * MiB);
  /* 45 columns of numbers leave 30 bar cells in 79 columns; half full. */
  assert_string_equal (line, "[===============>              ]"
                       "   50%  512 MiB / 1.00 GiB  256 MiB/s  ETA 0:02");
  assert_int_equal (strlen (line), 79);
}

static void
test_render_unknown_rate (void **state)
{
  char line[256];
  cli_progress_render (line, sizeof line, 80, 0, GiB, 0);
  assert_non_null (strstr (line, "  0%  0 B / 1.00 GiB  -- B/s  ETA --:--"));
  assert_int_equal (line[0], '[');
  assert_int_equal (line[1], '>');
}

static void
test_render_done (void **state)
{
  char line[256];
  cli_progress_render (line, sizeof line, 80, GiB + 5, GiB, 1e9);
  assert_non_null (strstr (line, "100%  1.00 GiB / 1.00 GiB"));
  assert_non_null (strstr (line, "ETA 0:00"));
  assert_null (strchr (line, '>'));
}

static void
test_render_fits_width (void **state)
{
  char line[256];
  for (unsigned w = 20; w <= 200; w++) {
    cli_progress_render (line, sizeof line, w, 3 * GiB / 7, GiB, 3 * MiB);
    assert_true (strlen (line) <= w - 1);
  }
  /* Narrow: the bar goes first, the numbers stay. */
  cli_progress_render (line, sizeof line, 60, GiB / 4, GiB, MiB);
  assert_int_not_equal (line[0], '[');
  assert_non_null (strstr (line, " 25%"));
}

static void
test_eta_long (void **state)
{
  char line[256];
  /* 1 GiB left at 100 KiB/s: 10486 s = 2:54:46 */
  cli_progress_render (line, sizeof line, 120, 0, GiB, 102400);
  assert_non_null (strstr (line, "ETA 2:54:46"));
}

static void
test_rate_window (void **state)
{
  struct cli_progress p;
  FILE *devnull = fopen ("/dev/null", "w");
  assert_non_null (devnull);
  cli_progress_init (&p, devnull, false, 100 * GiB, 0);
  assert_true (cli_progress_rate (&p) == 0);
  /* 1 MiB per 200 ms for 20 samples, then 10 MiB per 200 ms: the rate
   * follows the recent speed, not the average. */
  uint64_t t = 0, b = 0;
  for (int i = 0; i < 20; i++)
    cli_progress_update (&p, b += 1 << 20, t += 200000000, false);
  assert_true (cli_progress_rate (&p) > 4.9 * MiB
               && cli_progress_rate (&p) < 5.1 * MiB);
  for (int i = 0; i < 20; i++)
    cli_progress_update (&p, b += 10 << 20, t += 200000000, false);
  assert_true (cli_progress_rate (&p) > 49 * MiB
               && cli_progress_rate (&p) < 51 * MiB);
  /* Updates closer than the interval are not sampled. */
  cli_progress_update (&p, b + (1000 << 20), t + 1000, false);
  assert_true (cli_progress_rate (&p) < 51 * MiB);
  fclose (devnull);
}

static void
test_bar_drawing (void **state)
{
  char *buf = NULL;
  size_t len = 0;
  FILE *out = open_memstream (&buf, &len);
  assert_non_null (out);
  struct cli_progress p;
  cli_progress_init (&p, out, true, 100, 0);
  cli_progress_update (&p, 0, 0, true);
  cli_progress_update (&p, 50, 1000, false);        /* too soon: no draw */
  cli_progress_update (&p, 100, 300000000, false);
  cli_progress_clear (&p);
  fclose (out);
  /* Two frames, each "\r...\033[K", then the erase. */
  const char *f1 = strstr (buf, "  0%");
  const char *f2 = strstr (buf, "100%");
  assert_non_null (f1);
  assert_non_null (f2);
  assert_null (strstr (buf, " 50%"));
  assert_string_equal (buf + len - 4, "\r\033[K");
  free (buf);
}

static void
test_formats (void **state)
{
  char b[32];
  cli_format_duration (0.842, b, sizeof b);
  assert_string_equal (b, "0.84 s");
  cli_format_duration (12.34, b, sizeof b);
  assert_string_equal (b, "12.3 s");
  cli_format_duration (125, b, sizeof b);
  assert_string_equal (b, "2m05s");
  cli_format_duration (3720, b, sizeof b);
  assert_string_equal (b, "1h02m");
  cli_format_rate (1.19 * GiB, b, sizeof b);
  assert_string_equal (b, "1.19 GiB/s");
  cli_format_rate (0, b, sizeof b);
  assert_string_equal (b, "0 B/s");
  cli_format_size_exact (512, b, sizeof b);
  assert_string_equal (b, "512 B");
  cli_format_size_exact (65536, b, sizeof b);
  assert_string_equal (b, "64 KiB");
  cli_format_size_exact (64u << 20, b, sizeof b);
  assert_string_equal (b, "64 MiB");
  cli_format_size_exact (3000, b, sizeof b);
  assert_string_equal (b, "2.93 KiB");
  cli_format_size_exact (UINT64_MAX, b, sizeof b);
  assert_string_equal (b, "16.0 EiB");
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_render_middle),
    cmocka_unit_test (test_render_unknown_rate),
    cmocka_unit_test (test_render_done),
    cmocka_unit_test (test_render_fits_width),
    cmocka_unit_test (test_eta_long),
    cmocka_unit_test (test_rate_window),
    cmocka_unit_test (test_bar_drawing),
    cmocka_unit_test (test_formats),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
