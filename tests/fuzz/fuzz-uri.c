/* libFuzzer harness for the URI parser, the size parser and the URI
 * registry on side-effect-free schemes.  Besides crashes and sanitizer
 * reports it checks invariants: a parsed URI is well formed, a failure
 * says why, a parsed size prints and parses back to itself. */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <r3map/backend.h>

#include "util/size.h"
#include "util/uri.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

#define CHECK(c) do { if (!(c)) { fprintf (stderr, "invariant: %s\n", #c); \
                                  abort (); } } while (0)

static void
check_uri (const char *s)
{
  static const char *const allowed[] = { "size", "chunk", NULL };
  struct util_uri u;
  struct r3m_error err = { 0 };
  int r = util_uri_parse (s, &u, &err);
  if (r == 0) {
    CHECK (u.scheme && *u.scheme && u.path);
    for (const char *p = u.scheme; *p; p++)
      CHECK (!(*p >= 'A' && *p <= 'Z'));
    CHECK (u.port >= -1 && u.port <= 65535);
    CHECK (u.has_authority || (!u.host && !u.user && u.port == -1));
    for (size_t i = 0; i < u.nparams; i++) {
      CHECK (u.params[i].key && *u.params[i].key && u.params[i].value);
      CHECK (util_uri_param (&u, u.params[i].key) != NULL);
    }
    r = util_uri_check_params (&u, allowed, s, &err);
    CHECK (r == 0 || (r == -EINVAL && err.code == EINVAL && err.msg[0]));
  }
  else {
    char label[UTIL_URI_LABEL_MAX];
    util_uri_label (s, label);
    CHECK (r == -EINVAL && err.code == EINVAL);
    CHECK (strncmp (err.msg, label, strlen (label)) == 0 || !*s);
  }
  util_uri_free (&u);
  util_uri_free (&u);             /* freeing twice is allowed */
}

static void
check_size (const char *s)
{
  uint64_t v = 0, w = 1;
  int r = util_parse_size (s, &v);
  if (r != 0) {
    CHECK (r == -EINVAL || r == -ERANGE);
    return;
  }
  char buf[32];
  snprintf (buf, sizeof buf, "%" PRIu64, v);
  CHECK (util_parse_size (buf, &w) == 0 && w == v);
  util_format_size (v, buf, sizeof buf);
  CHECK (buf[0] >= '0' && buf[0] <= '9' && strchr (buf, ' '));
}

/* pattern: and memory: open nothing outside the process; memory: only
 * when small, so that runs stay fast. */
static void
check_open (const char *s)
{
  if (strncmp (s, "pattern:", 8) != 0 && strncmp (s, "memory:", 7) != 0)
    return;
  uint64_t v;
  if (s[0] == 'm' && util_parse_size (s + 7, &v) == 0 && v > (1u << 20))
    return;
  struct r3m_backend *b = NULL;
  struct r3m_error err = { 0 };
  int r = r3m_backend_open (s, 0, &b, &err);
  if (r == 0) {
    char c[8];
    uint64_t n = r3m_backend_size (b);
    CHECK (r3m_backend_pread (b, c, n < 8 ? (size_t) n : 8, 0) == 0);
    r3m_backend_close (b);
  }
  else {
    char label[UTIL_URI_LABEL_MAX];
    util_uri_label (s, label);
    CHECK (err.code == -r && strncmp (err.msg, label, strlen (label)) == 0);
  }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  char *s = malloc (size + 1);
  if (!s)
    return 0;
  memcpy (s, data, size);
  s[size] = '\0';
  check_uri (s);
  check_size (s);
  check_open (s);
  free (s);
  return 0;
}
