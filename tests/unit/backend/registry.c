/* r3m_backend_open: scheme dispatch and the messages for malformed URIs.
 * Per-backend semantics are tested in each backend's own file. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "common.h"

static void
test_unknown_scheme_lists_known (void **state)
{
  open_fails ("foo:bar", 0, EINVAL,
              "unknown backend type 'foo' (known: memory, pattern, file, dir");
  open_fails ("Nope://host/x", 0, EINVAL, "'nope'");
}

static void
test_not_a_uri (void **state)
{
  open_fails ("/tmp/x", 0, EINVAL, "not a URI");
  open_fails ("64M", 0, EINVAL, "not a URI");
}

static void
test_bad_arguments (void **state)
{
  struct r3m_backend *b = NULL;
  struct r3m_error err = { 0 };
  assert_int_equal (r3m_backend_open (NULL, 0, &b, &err), -EINVAL);
  assert_int_equal (err.code, EINVAL);
  assert_int_equal (r3m_backend_open ("memory:1M", 0, NULL, NULL), -EINVAL);
  open_fails ("memory:1M", 0x80, EINVAL, "unknown open flags");
}

static void
test_scheme_case (void **state)
{
  struct r3m_backend *b = open_ok ("MEMORY:1M", 0);
  assert_int_equal (r3m_backend_size (b), 1 << 20);
  assert_string_equal (r3m_backend_describe (b), "MEMORY:1M");
  r3m_backend_close (b);
}

/* memory: and pattern: share the SCHEME:SIZE form. */
static void
test_opaque_size_errors (void **state)
{
  static const char *const schemes[] = { "memory", "pattern" };
  for (size_t i = 0; i < 2; i++) {
    const char *s = schemes[i];
    char uri[128], about[64];
    snprintf (uri, sizeof uri, "%s:", s);
    snprintf (about, sizeof about, "size missing (expected %s:SIZE", s);
    open_fails (uri, 0, EINVAL, about);
    snprintf (uri, sizeof uri, "%s:abc", s);
    open_fails (uri, 0, EINVAL, "size 'abc' is not a size");
    snprintf (uri, sizeof uri, "%s:1.5", s);
    open_fails (uri, 0, EINVAL, "is not a size");
    snprintf (uri, sizeof uri, "%s:-5", s);
    open_fails (uri, 0, EINVAL, "is not a size");
    snprintf (uri, sizeof uri, "%s:99999999999999999999", s);
    open_fails (uri, 0, EINVAL, "is too large");
    snprintf (uri, sizeof uri, "%s://64M", s);
    open_fails (uri, 0, EINVAL, "without '//'");
    snprintf (uri, sizeof uri, "%s:64M?x=1", s);
    open_fails (uri, 0, EINVAL, "takes no parameters ('x')");
  }
}

static void
test_local_path_errors (void **state)
{
  open_fails ("file:", 0, EINVAL, "path missing (expected file:PATH");
  open_fails ("file://", 0, EINVAL, "path missing");
  open_fails ("file://host/tmp/x", 0, EINVAL, "no host, user or port");
  open_fails ("file://u@/tmp/x", 0, EINVAL, "no host, user or port");
  open_fails ("file://:1/tmp/x", 0, EINVAL, "no host, user or port");
  open_fails ("dir:?size=1M&chunk=4k", 0, EINVAL,
              "path missing (expected dir:PATH?size=SIZE&chunk=SIZE");
  open_fails ("dir://h/d?size=1M&chunk=4k", 0, EINVAL, "no host");
}

static void
test_parameter_errors (void **state)
{
  open_fails ("file:/tmp/x?szie=1M", 0, EINVAL, "unknown parameter 'szie'");
  open_fails ("file:/tmp/x?size=1M&size=2M", 0, EINVAL,
              "parameter 'size' given twice");
  open_fails ("file:/tmp/x?size=lots", 0, EINVAL, "size 'lots' is not a size");
  open_fails ("file:/tmp/x?size=", 0, EINVAL, "size is empty");
  open_fails ("dir:/tmp/d?size=1M&chunk=3000", 0, EINVAL,
              "chunk 3000 is not a power of two");
  open_fails ("dir:/tmp/d?size=1M&chunk=0", 0, EINVAL,
              "is not a power of two");
  open_fails ("dir:/tmp/d?size=1M&chunk=2G", 0, EINVAL,
              "is not a power of two from 1 to 1G");
  open_fails ("dir:/tmp/d?size=1M&chunk=4k&max-open=0", 0, EINVAL,
              "max-open '0' is not a whole number from 1 to 1048576");
  open_fails ("dir:/tmp/d?size=1M&chunk=4k&max-open=1x", 0, EINVAL,
              "max-open '1x'");
  open_fails ("dir:/tmp/d?size=1M&chunk=4k&maxopen=3", 0, EINVAL,
              "unknown parameter 'maxopen'");
}

/* Malformed URIs fail before touching the file system. */
static void
test_errors_create_nothing (void **state)
{
  char *t = tmp_dir ();
  char uri[4200], path[4200];
  snprintf (uri, sizeof uri, "dir:%s/d?size=1M&chunk=3", t);
  open_fails (uri, 0, EINVAL, "power of two");
  snprintf (path, sizeof path, "%s/d", t);
  assert_int_equal (access (path, F_OK), -1);
  snprintf (uri, sizeof uri, "file:%s/f?size=1M&bogus=1", t);
  open_fails (uri, 0, EINVAL, "unknown parameter");
  snprintf (path, sizeof path, "%s/f", t);
  assert_int_equal (access (path, F_OK), -1);
  tmp_remove (t);
  free (t);
}

/* A long URI: the message keeps the reason, the description the URI. */
static void
test_long_uri (void **state)
{
  char uri[600];
  memset (uri, 'z', sizeof uri);
  memcpy (uri, "memory:", 7);
  uri[sizeof uri - 1] = '\0';
  struct r3m_backend *b = NULL;
  struct r3m_error err = { 0 };
  assert_int_equal (r3m_backend_open (uri, 0, &b, &err), -EINVAL);
  assert_non_null (strstr (err.msg, "...: size 'zzz"));

  char *t = tmp_dir (), *long_uri;
  assert_true (asprintf (&long_uri, "file:%s/%0200d", t, 8) > 0);
  assert_int_equal (r3m_backend_open (long_uri, 0, &b, &err), -ENOENT);
  assert_non_null (strstr (err.msg, "...: no such file (add ?size=SIZE"));
  free (long_uri);
  assert_true (asprintf (&long_uri, "dir:%s/%0200d?size=1M&chunk=4k&x=1", t,
                         9) > 0);
  assert_int_equal (r3m_backend_open (long_uri, 0, &b, &err), -EINVAL);
  assert_non_null (strstr (err.msg, "...: unknown parameter 'x'"));
  free (long_uri);
  assert_true (asprintf (&long_uri, "file:%s/%0200d?size=4k", t, 7) > 0);
  b = open_ok (long_uri, 0);
  assert_string_equal (r3m_backend_describe (b), long_uri);
  r3m_backend_close (b);
  free (long_uri);
  tmp_remove (t);
  free (t);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_unknown_scheme_lists_known),
    cmocka_unit_test (test_not_a_uri),
    cmocka_unit_test (test_bad_arguments),
    cmocka_unit_test (test_scheme_case),
    cmocka_unit_test (test_opaque_size_errors),
    cmocka_unit_test (test_local_path_errors),
    cmocka_unit_test (test_parameter_errors),
    cmocka_unit_test (test_errors_create_nothing),
    cmocka_unit_test (test_long_uri),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
