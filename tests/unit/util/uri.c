/* util_uri_parse, util_uri_param and util_uri_check_params. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "util/uri.h"

/* Parse s, which must succeed. */
static void
ok (const char *s, struct util_uri *u)
{
  struct r3m_error err = { 0 };
  int r = util_uri_parse (s, u, &err);
  if (r != 0)
    fail_msg ("'%s' failed: %s", s, err.msg);
  assert_int_equal (err.code, 0);
}

/* Parse s, which must fail with EINVAL and a message that starts with s
 * (when s is not empty) and contains `about`. */
static void
bad (const char *s, const char *about)
{
  struct r3m_error err = { 0 };
  struct util_uri u;
  int r = util_uri_parse (s, &u, &err);
  if (r != -EINVAL)
    fail_msg ("'%s' gave %d, want -EINVAL", s ? s : "(null)", r);
  assert_int_equal (err.code, EINVAL);
  if (s && *s && strncmp (err.msg, s, strlen (s)) != 0)
    fail_msg ("'%s': message '%s' does not start with the URI", s, err.msg);
  if (!strstr (err.msg, about))
    fail_msg ("'%s': message '%s' does not mention '%s'", s, err.msg, about);
  util_uri_free (&u);
}

static void
test_opaque (void **state)
{
  struct util_uri u;
  ok ("memory:64M", &u);
  assert_string_equal (u.scheme, "memory");
  assert_false (u.has_authority);
  assert_null (u.host);
  assert_null (u.user);
  assert_null (u.password);
  assert_int_equal (u.port, -1);
  assert_string_equal (u.path, "64M");
  assert_int_equal (u.nparams, 0);
  util_uri_free (&u);
}

static void
test_scheme_lowercased (void **state)
{
  struct util_uri u;
  ok ("NBD+Unix:///e?socket=/s", &u);
  assert_string_equal (u.scheme, "nbd+unix");
  assert_true (u.has_authority);
  assert_null (u.host);
  assert_string_equal (u.path, "/e");
  assert_string_equal (util_uri_param (&u, "socket"), "/s");
  util_uri_free (&u);
}

static void
test_empty_path (void **state)
{
  struct util_uri u;
  ok ("memory:", &u);
  assert_string_equal (u.path, "");
  util_uri_free (&u);
  ok ("nbd://host", &u);
  assert_string_equal (u.host, "host");
  assert_string_equal (u.path, "");
  util_uri_free (&u);
}

static void
test_file_forms (void **state)
{
  struct util_uri u;
  ok ("file:/tmp/x?size=1G", &u);
  assert_false (u.has_authority);
  assert_string_equal (u.path, "/tmp/x");
  assert_string_equal (util_uri_param (&u, "size"), "1G");
  util_uri_free (&u);
  ok ("file:///tmp/x", &u);
  assert_true (u.has_authority);
  assert_null (u.host);
  assert_string_equal (u.path, "/tmp/x");
  util_uri_free (&u);
  ok ("file:relative/name", &u);
  assert_string_equal (u.path, "relative/name");
  util_uri_free (&u);
}

static void
test_host_port (void **state)
{
  struct util_uri u;
  ok ("nbd://example.com:10809/export", &u);
  assert_string_equal (u.host, "example.com");
  assert_int_equal (u.port, 10809);
  assert_string_equal (u.path, "/export");
  util_uri_free (&u);
  ok ("nbd://127.0.0.1:0/", &u);
  assert_string_equal (u.host, "127.0.0.1");
  assert_int_equal (u.port, 0);
  util_uri_free (&u);
  ok ("nbd://h:65535", &u);
  assert_int_equal (u.port, 65535);
  util_uri_free (&u);
  ok ("nbd://my_host-1.local/x", &u);
  assert_string_equal (u.host, "my_host-1.local");
  assert_int_equal (u.port, -1);
  util_uri_free (&u);
}

static void
test_port_errors (void **state)
{
  bad ("nbd://h:/x", "port");
  bad ("nbd://h:65536/x", "port");
  bad ("nbd://h:123456/x", "port");
  bad ("nbd://h:12a/x", "port");
  bad ("nbd://h:-1/x", "port");
}

static void
test_ipv6 (void **state)
{
  struct util_uri u;
  ok ("nbd://[::1]:10809/e", &u);
  assert_string_equal (u.host, "::1");
  assert_int_equal (u.port, 10809);
  assert_string_equal (u.path, "/e");
  util_uri_free (&u);
  ok ("nbd://[fe80::1:2]/", &u);
  assert_string_equal (u.host, "fe80::1:2");
  assert_int_equal (u.port, -1);
  util_uri_free (&u);
  ok ("nbd://[::ffff:127.0.0.1]", &u);
  assert_string_equal (u.host, "::ffff:127.0.0.1");
  util_uri_free (&u);
}

static void
test_ipv6_errors (void **state)
{
  bad ("nbd://[::1/e", "']'");
  bad ("nbd://[]/e", "empty IPv6");
  bad ("nbd://[::g]/e", "IPv6");
  bad ("nbd://[fe80::1%25eth0]/e", "IPv6");
  bad ("nbd://[::1]x/e", "junk");
  bad ("nbd://[::1]:/e", "port");
}

static void
test_host_errors (void **state)
{
  bad ("nbd://h!st/e", "'!'");
  bad ("nbd://h st/e", "' '");
  bad ("nbd://h%zz/e", "percent");
}

static void
test_userinfo (void **state)
{
  struct util_uri u;
  ok ("redis://user:p%40ss@host:6379/0", &u);
  assert_string_equal (u.user, "user");
  assert_string_equal (u.password, "p@ss");
  assert_string_equal (u.host, "host");
  assert_int_equal (u.port, 6379);
  assert_string_equal (u.path, "/0");
  util_uri_free (&u);
  ok ("redis://:secret@host", &u);
  assert_string_equal (u.user, "");
  assert_string_equal (u.password, "secret");
  util_uri_free (&u);
  ok ("s3://key@bucket/prefix", &u);
  assert_string_equal (u.user, "key");
  assert_null (u.password);
  assert_string_equal (u.host, "bucket");
  util_uri_free (&u);
  /* The last '@' ends the userinfo. */
  ok ("s3://a@b@host/", &u);
  assert_string_equal (u.user, "a@b");
  assert_string_equal (u.host, "host");
  util_uri_free (&u);
  ok ("nbd://user@/e", &u);
  assert_string_equal (u.user, "user");
  assert_null (u.host);
  util_uri_free (&u);
}

static void
test_userinfo_errors (void **state)
{
  bad ("redis://us%zzer@host/0", "user name");
  bad ("redis://user:pa%0@host/0", "password");
  bad ("redis://user:pa%00ss@host/0", "%00");
}

static void
test_percent_path (void **state)
{
  struct util_uri u;
  ok ("file:/tmp/a%20b%2Fc%41%7e", &u);
  assert_string_equal (u.path, "/tmp/a b/cA~");
  util_uri_free (&u);
  ok ("file:/tmp/%23x", &u);
  assert_string_equal (u.path, "/tmp/#x");
  util_uri_free (&u);
}

static void
test_percent_errors (void **state)
{
  bad ("file:/tmp/%zz", "percent");
  bad ("file:/tmp/%4", "percent");
  bad ("file:/tmp/%", "percent");
  bad ("file:/tmp/%4g", "percent");
  bad ("file:/tmp/a%00b", "%00");
  bad ("file:/x?a=%00", "%00");
  bad ("file:/x?%0=1", "percent");
}

static void
test_query (void **state)
{
  struct util_uri u;
  ok ("dir:/d?size=1G&&chunk=64k&flag&empty=&eq=%3D&sp=a%20b&", &u);
  assert_int_equal (u.nparams, 6);
  assert_string_equal (u.params[0].key, "size");
  assert_string_equal (u.params[0].value, "1G");
  assert_string_equal (util_uri_param (&u, "chunk"), "64k");
  assert_string_equal (util_uri_param (&u, "flag"), "");
  assert_string_equal (util_uri_param (&u, "empty"), "");
  assert_string_equal (util_uri_param (&u, "eq"), "=");
  assert_string_equal (util_uri_param (&u, "sp"), "a b");
  assert_null (util_uri_param (&u, "missing"));
  assert_null (util_uri_param (&u, "SIZE"));
  util_uri_free (&u);
  ok ("x:p?a=1=2", &u);
  assert_string_equal (util_uri_param (&u, "a"), "1=2");
  util_uri_free (&u);
  ok ("x:p?", &u);
  assert_int_equal (u.nparams, 0);
  assert_string_equal (u.path, "p");
  util_uri_free (&u);
}

static void
test_query_errors (void **state)
{
  bad ("x:p?=v", "empty parameter name");
  bad ("x:p?a=1&=2", "empty parameter name");
}

static void
test_not_uris (void **state)
{
  bad (NULL, "empty URI");
  bad ("", "empty URI");
  bad ("/tmp/x", "not a URI");
  bad ("64M", "not a URI");
  bad (":x", "not a URI");
  bad ("1abc:x", "not a URI");
  bad ("a b:c", "scheme");
  bad ("a/b:c", "scheme");
}

static void
test_fragment_refused (void **state)
{
  bad ("file:/tmp/x#frag", "'#'");
  bad ("nbd://h/e?a=1#f", "'#'");
}

/* The result must not point into the input. */
static void
test_copies_input (void **state)
{
  char *s = strdup ("nbd://u:p@h:1/e?k=v");
  assert_non_null (s);
  struct util_uri u;
  ok (s, &u);
  memset (s, 'x', strlen (s));
  free (s);
  assert_string_equal (u.scheme, "nbd");
  assert_string_equal (u.user, "u");
  assert_string_equal (u.password, "p");
  assert_string_equal (u.host, "h");
  assert_string_equal (u.path, "/e");
  assert_string_equal (util_uri_param (&u, "k"), "v");
  util_uri_free (&u);
}

/* util_uri_free leaves an empty URI that can be freed again. */
static void
test_free_twice (void **state)
{
  struct util_uri u;
  ok ("nbd://h/e?k=v", &u);
  util_uri_free (&u);
  assert_null (u.scheme);
  assert_int_equal (u.nparams, 0);
  assert_int_equal (u.port, -1);
  util_uri_free (&u);
}

/* NULL err is allowed. */
static void
test_null_err (void **state)
{
  struct util_uri u;
  assert_int_equal (util_uri_parse ("nope", &u, NULL), -EINVAL);
  util_uri_free (&u);
}

static void
test_check_params (void **state)
{
  static const char *const allowed[] = { "size", "chunk", NULL };
  struct util_uri u;
  struct r3m_error err = { 0 };
  ok ("dir:/d?size=1&chunk=2", &u);
  assert_int_equal (util_uri_check_params (&u, allowed, "dir:/d", &err), 0);
  util_uri_free (&u);

  ok ("dir:/d", &u);
  assert_int_equal (util_uri_check_params (&u, allowed, "dir:/d", &err), 0);
  assert_int_equal (util_uri_check_params (&u, NULL, "dir:/d", &err), 0);
  util_uri_free (&u);
}

static void
test_check_params_unknown (void **state)
{
  static const char *const allowed[] = { "size", NULL };
  struct util_uri u;
  struct r3m_error err = { 0 };
  ok ("file:/f?size=1&szie=2", &u);
  assert_int_equal (util_uri_check_params (&u, allowed, "file:/f", &err),
                    -EINVAL);
  assert_int_equal (err.code, EINVAL);
  assert_string_equal (err.msg, "file:/f: unknown parameter 'szie'");
  assert_int_equal (util_uri_check_params (&u, NULL, "file:/f", &err),
                    -EINVAL);
  assert_string_equal (err.msg, "file:/f: unknown parameter 'size'");
  util_uri_free (&u);
}

static void
test_check_params_twice (void **state)
{
  static const char *const allowed[] = { "size", "chunk", NULL };
  struct util_uri u;
  struct r3m_error err = { 0 };
  ok ("dir:/d?size=1&chunk=2&size=1", &u);
  assert_int_equal (util_uri_check_params (&u, allowed, "dir:/d", &err),
                    -EINVAL);
  assert_string_equal (err.msg, "dir:/d: parameter 'size' given twice");
  util_uri_free (&u);
  /* Encoded and plain spellings are the same key. */
  ok ("dir:/d?size=1&%73ize=2", &u);
  assert_int_equal (util_uri_check_params (&u, allowed, "dir:/d", NULL),
                    -EINVAL);
  util_uri_free (&u);
}

/* A long URI is named by a cut label, so the reason still fits. */
static void
test_long_uri_message (void **state)
{
  char s[400];
  memset (s, 'a', sizeof s);
  memcpy (s, "file:/", 6);
  strcpy (s + sizeof s - 8, "%zz");
  struct util_uri u;
  struct r3m_error err = { 0 };
  assert_int_equal (util_uri_parse (s, &u, &err), -EINVAL);
  assert_non_null (strstr (err.msg, "...: bad percent escape in the path"));
  assert_int_equal (strncmp (err.msg, s, UTIL_URI_LABEL_MAX - 4), 0);
  util_uri_free (&u);
}

static void
test_label (void **state)
{
  char buf[UTIL_URI_LABEL_MAX];
  assert_string_equal (util_uri_label ("memory:1M", buf), "memory:1M");
  assert_string_equal (util_uri_label ("a\nb\x7f\xc3\xa9", buf), "a?b?\xc3\xa9");
  char s[300];
  memset (s, 'x', sizeof s - 1);
  s[sizeof s - 1] = '\0';
  util_uri_label (s, buf);
  assert_int_equal (strlen (buf), UTIL_URI_LABEL_MAX - 1);
  assert_string_equal (buf + UTIL_URI_LABEL_MAX - 4, "...");
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_opaque),
    cmocka_unit_test (test_scheme_lowercased),
    cmocka_unit_test (test_empty_path),
    cmocka_unit_test (test_file_forms),
    cmocka_unit_test (test_host_port),
    cmocka_unit_test (test_port_errors),
    cmocka_unit_test (test_ipv6),
    cmocka_unit_test (test_ipv6_errors),
    cmocka_unit_test (test_host_errors),
    cmocka_unit_test (test_userinfo),
    cmocka_unit_test (test_userinfo_errors),
    cmocka_unit_test (test_percent_path),
    cmocka_unit_test (test_percent_errors),
    cmocka_unit_test (test_query),
    cmocka_unit_test (test_query_errors),
    cmocka_unit_test (test_not_uris),
    cmocka_unit_test (test_fragment_refused),
    cmocka_unit_test (test_copies_input),
    cmocka_unit_test (test_free_twice),
    cmocka_unit_test (test_null_err),
    cmocka_unit_test (test_check_params),
    cmocka_unit_test (test_check_params_unknown),
    cmocka_unit_test (test_check_params_twice),
    cmocka_unit_test (test_long_uri_message),
    cmocka_unit_test (test_label),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
