/* pattern:SIZE must produce the same bytes as `nbdkit pattern`, read
 * through nbdcopy.  Exits 77 when nbdkit or nbdcopy is missing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <r3map/backend.h>

/* An odd size: the last word is cut short. */
#define SIZE ((3u << 20) + 5)

static void
test_same_bytes_as_nbdkit (void **state)
{
  unsigned char *theirs = malloc (SIZE + 1), *ours = malloc (SIZE);
  assert_true (theirs && ours);
  char cmd[256];
  snprintf (cmd, sizeof cmd,
            "nbdkit -U - pattern size=%u --run 'nbdcopy \"$uri\" -'", SIZE);
  FILE *p = popen (cmd, "r");
  assert_non_null (p);
  size_t got = fread (theirs, 1, SIZE + 1, p);
  assert_int_equal (pclose (p), 0);
  assert_int_equal (got, SIZE);

  char uri[64];
  snprintf (uri, sizeof uri, "pattern:%u", SIZE);
  struct r3m_backend *b = NULL;
  struct r3m_error err = { 0 };
  if (r3m_backend_open (uri, 0, &b, &err) != 0)
    fail_msg ("%s", err.msg);
  /* In uneven pieces, so that the word-boundary paths are used. */
  for (size_t off = 0; off < SIZE;) {
    size_t n = 1 + (off * 7919) % 70001;
    if (n > SIZE - off)
      n = SIZE - off;
    assert_int_equal (r3m_backend_pread (b, ours + off, n, off), 0);
    off += n;
  }
  r3m_backend_close (b);
  for (size_t i = 0; i < SIZE; i++)
    if (ours[i] != theirs[i])
      fail_msg ("byte %zu: ours %02x, nbdkit %02x", i, ours[i], theirs[i]);
  free (theirs);
  free (ours);
}

int
main (void)
{
  if (system ("nbdkit --version >/dev/null 2>&1") != 0
      || system ("nbdcopy --version >/dev/null 2>&1") != 0) {
    printf ("backend-pattern-nbdkit: needs nbdkit and nbdcopy (libnbd-bin), "
            "skipping\n");
    return 77;
  }
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_same_bytes_as_nbdkit),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
