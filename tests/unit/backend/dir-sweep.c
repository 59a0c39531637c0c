/* The original's arbitrary-range sweep (reference spec 11.7) through the
 * dir backend with tiny chunks, so that almost every request spans several
 * chunk files: chunk {2, 4, 8} x count {16, 64} x buffer sizes 1..128 x
 * every offset. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "common.h"

struct sweep_arg {
  char *tmp;
  unsigned chunk;
  unsigned n;                    /* backends opened so far */
};

static struct r3m_backend *
open_fresh (uint64_t size, void *arg)
{
  struct sweep_arg *a = arg;
  char uri[PATH_MAX + 64];
  snprintf (uri, sizeof uri, "dir:%s/%u?size=%llu&chunk=%u", a->tmp, a->n++,
            (unsigned long long) size, a->chunk);
  return open_ok (uri, 0);
}

static void
run (unsigned chunk, unsigned count)
{
  struct sweep_arg a = { tmp_dir_fast (), chunk, 0 };
  sweep (open_fresh, NULL, &a, (uint64_t) chunk * count);
  tmp_remove (a.tmp);
  free (a.tmp);
}

static void test_chunk2_count16 (void **s) { run (2, 16); }
static void test_chunk2_count64 (void **s) { run (2, 64); }
static void test_chunk4_count16 (void **s) { run (4, 16); }
static void test_chunk4_count64 (void **s) { run (4, 64); }
static void test_chunk8_count16 (void **s) { run (8, 16); }
static void test_chunk8_count64 (void **s) { run (8, 64); }

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_chunk2_count16),
    cmocka_unit_test (test_chunk2_count64),
    cmocka_unit_test (test_chunk4_count16),
    cmocka_unit_test (test_chunk4_count64),
    cmocka_unit_test (test_chunk8_count16),
    cmocka_unit_test (test_chunk8_count64),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
