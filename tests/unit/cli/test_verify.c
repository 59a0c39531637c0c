/* cli_verify: the comparison behind r3map copy --verify and r3map compare. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <r3map/r3map.h>

#include "verify.h"

static struct r3m_backend *
memory (const char *uri)
{
  struct r3m_backend *b = NULL;
  assert_int_equal (r3m_backend_open (uri, 0, &b, NULL), 0);
  return b;
}

/* Fill both with the same non-trivial bytes. */
static void
fill_same (struct r3m_backend *a, struct r3m_backend *b, uint64_t len)
{
  unsigned char *buf = malloc (len);
  assert_non_null (buf);
  for (uint64_t i = 0; i < len; i++)
    buf[i] = (unsigned char) (i * 131 + (i >> 9));
  assert_int_equal (r3m_backend_pwrite (a, buf, len, 0, 0), 0);
  assert_int_equal (r3m_backend_pwrite (b, buf, len, 0, 0), 0);
  free (buf);
}

static void
poke (struct r3m_backend *b, uint64_t off)
{
  unsigned char c;
  assert_int_equal (r3m_backend_pread (b, &c, 1, off), 0);
  c ^= 0x40;
  assert_int_equal (r3m_backend_pwrite (b, &c, 1, off, 0), 0);
}

static void
test_identical (void **state)
{
  struct r3m_backend *a = memory ("memory:3M"), *b = memory ("memory:3M");
  fill_same (a, b, 3 << 20);
  struct cli_verify_result res;
  assert_int_equal (cli_verify (a, b, 3 << 20, 65536, &res, NULL), 0);
  assert_true (res.first_diff == CLI_VERIFY_SAME);
  assert_true (res.hash_a == res.hash_b);
  assert_true (res.hash_a != 0);
  r3m_backend_close (a);
  r3m_backend_close (b);
}

/* A difference anywhere (first byte, last byte, across windows and I/O
 * pieces) is reported at its chunk's offset, for several chunk sizes. */
static void
test_first_difference (void **state)
{
  static const uint32_t chunks[] = { 512, 4096, 65536, 4u << 20 };
  const uint64_t len = (8u << 20) + 1000;   /* a short last chunk */
  const uint64_t offs[] = { 0, 511, 512, 3u << 20, (2u << 20) + 4097,
                            len - 1 };
  for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++)
    for (size_t o = 0; o < sizeof offs / sizeof offs[0]; o++) {
      struct r3m_backend *a = memory ("memory:9M"), *b = memory ("memory:9M");
      fill_same (a, b, len);
      poke (b, offs[o]);
      /* and a later one, which must not be the one reported */
      if (offs[o] + 3 * chunks[c] < len)
        poke (a, offs[o] + 3 * chunks[c]);
      struct cli_verify_result res;
      assert_int_equal (cli_verify (a, b, len, chunks[c], &res, NULL), 0);
      assert_int_equal (res.first_diff, offs[o] / chunks[c] * chunks[c]);
      r3m_backend_close (a);
      r3m_backend_close (b);
    }
}

/* Bytes past len are not compared. */
static void
test_length_bounds (void **state)
{
  struct r3m_backend *a = memory ("memory:2M"), *b = memory ("memory:4M");
  poke (b, 2u << 20);
  struct cli_verify_result res;
  assert_int_equal (cli_verify (a, b, 2u << 20, 4096, &res, NULL), 0);
  assert_true (res.first_diff == CLI_VERIFY_SAME);
  struct r3m_error err;
  assert_int_equal (cli_verify (a, b, 3u << 20, 4096, &res, &err), -EINVAL);
  assert_non_null (strstr (err.msg, "memory:2M"));
  r3m_backend_close (a);
  r3m_backend_close (b);
}

/* A backend whose reads fail from a given offset on. */
struct failing { uint64_t from; };

static int
failing_pread (void *self, void *buf, size_t len, uint64_t off)
{
  struct failing *f = self;
  if (off + len > f->from)
    return -EIO;
  memset (buf, 0, len);
  return 0;
}

static int
failing_pwrite (void *self, const void *buf, size_t len, uint64_t off,
                unsigned flags)
{
  return -EROFS;
}

static const struct r3m_backend_ops failing_ops = {
  .name = "failing", .pread = failing_pread, .pwrite = failing_pwrite,
};

static void
test_read_error (void **state)
{
  static struct failing f = { .from = 5u << 20 };
  struct r3m_backend_info info = { .size = 8u << 20, .align = 1 };
  struct r3m_backend *bad = NULL;
  assert_int_equal (r3m_backend_new (&failing_ops, &f, &info, "failing:8M",
                                     &bad, NULL), 0);
  struct r3m_backend *good = memory ("memory:8M");
  struct cli_verify_result res;
  struct r3m_error err;
  assert_int_equal (cli_verify (good, bad, 8u << 20, 65536, &res, &err), -EIO);
  assert_string_equal (err.msg, "reading failing:8M at offset 5242880: "
                       "Input/output error");
  /* The same with the sides swapped. */
  assert_int_equal (cli_verify (bad, good, 8u << 20, 65536, &res, &err), -EIO);
  assert_non_null (strstr (err.msg, "failing:8M"));
  r3m_backend_close (good);
  r3m_backend_close (bad);
}

static void
test_empty (void **state)
{
  struct r3m_backend *a = memory ("memory:1M"), *b = memory ("memory:1M");
  struct cli_verify_result res;
  assert_int_equal (cli_verify (a, b, 0, 4096, &res, NULL), 0);
  assert_true (res.first_diff == CLI_VERIFY_SAME);
  r3m_backend_close (a);
  r3m_backend_close (b);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_identical),
    cmocka_unit_test (test_first_difference),
    cmocka_unit_test (test_length_bounds),
    cmocka_unit_test (test_read_error),
    cmocka_unit_test (test_empty),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
