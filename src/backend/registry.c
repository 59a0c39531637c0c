/* r3m_backend_open: from a URI's scheme to the backend's opener, plus the
 * argument parsing the openers share so that every malformed URI gets a
 * message naming the URI and what is wrong with it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backends.h"
#include "util/error.h"
#include "util/size.h"

/* One line per scheme; usage is shown when a URI is malformed. */
static const struct {
  const char *scheme;
  be_open_fn *open;
  const char *usage;
} schemes[] = {
  { "memory",  be_memory_open,  "memory:SIZE" },
  { "pattern", be_pattern_open, "pattern:SIZE" },
  { "file",    be_file_open,    "file:PATH[?size=SIZE]" },
  { "dir",     be_dir_open,     "dir:PATH?size=SIZE&chunk=SIZE[&max-open=N]" },
  { "nbd",       be_nbd_open, "nbd://HOST[:PORT][/EXPORT][?PARAMS]" },
  { "nbds",      be_nbd_open, "nbds://HOST[:PORT][/EXPORT][?tls-ca=FILE&...]" },
  { "nbd+unix",  be_nbd_open, "nbd+unix:///[EXPORT]?socket=PATH" },
  { "nbds+unix", be_nbd_open, "nbds+unix:///[EXPORT]?socket=PATH&tls-hostname=NAME" },
};

#define NSCHEMES (sizeof schemes / sizeof schemes[0])

static int
unknown_scheme (const char *uri, const char *scheme, struct r3m_error *err)
{
  char known[200] = "";
  size_t used = 0;
  for (size_t i = 0; i < NSCHEMES && used < sizeof known; i++) {
    int n = snprintf (known + used, sizeof known - used, "%s%s",
                      i ? ", " : "", schemes[i].scheme);
    if (n < 0)
      break;
    used += (size_t) n;
  }
  char lb[UTIL_URI_LABEL_MAX];
  return util_err (err, EINVAL, "%s: unknown backend type '%s' (known: %s)",
                   util_uri_label (uri, lb), scheme, known);
}

int
r3m_backend_open (const char *uri, unsigned flags, struct r3m_backend **out,
                  struct r3m_error *err)
{
  if (!uri || !out)
    return util_err (err, EINVAL, "r3m_backend_open: uri and out are required");
  char lb[UTIL_URI_LABEL_MAX];
  if (flags & ~R3M_OPEN_READ_ONLY)
    return util_err (err, EINVAL, "%s: unknown open flags 0x%x",
                     util_uri_label (uri, lb), flags & ~R3M_OPEN_READ_ONLY);
  struct util_uri u;
  int r = util_uri_parse (uri, &u, err);
  if (r == 0) {
    r = unknown_scheme (uri, u.scheme, err);
    for (size_t i = 0; i < NSCHEMES; i++)
      if (strcmp (u.scheme, schemes[i].scheme) == 0) {
        r = schemes[i].open (&u, uri, flags, out, err);
        break;
      }
  }
  util_uri_free (&u);
  return r;
}

/* ---- helpers for openers ---------------------------------------------- */

int
be_arg_size (const char *uri, const char *name, const char *value,
             uint64_t *out, struct r3m_error *err)
{
  char lb[UTIL_URI_LABEL_MAX];
  uri = util_uri_label (uri, lb);
  if (!value || !*value)
    return util_err (err, EINVAL, "%s: %s is empty (want a size such as 64M)",
                     uri, name);
  int r = util_parse_size (value, out);
  if (r == -ERANGE)
    return util_err (err, EINVAL, "%s: %s '%s' is too large", uri, name,
                     value);
  if (r < 0)
    return util_err (err, EINVAL,
                     "%s: %s '%s' is not a size (want a number with an "
                     "optional k, M, G, T, P or E suffix, e.g. 64M)",
                     uri, name, value);
  return 0;
}

int
be_arg_uint (const char *uri, const char *name, const char *value,
             uint64_t min, uint64_t max, uint64_t *out, struct r3m_error *err)
{
  char lb[UTIL_URI_LABEL_MAX];
  uri = util_uri_label (uri, lb);
  uint64_t v = 0;
  bool ok = value && *value;
  for (const char *p = value; ok && *p; p++) {
    unsigned d = (unsigned) (*p - '0');
    if (d > 9 || v > (UINT64_MAX - d) / 10)
      ok = false;
    else
      v = v * 10 + d;
  }
  if (!ok || v < min || v > max)
    return util_err (err, EINVAL,
                     "%s: %s '%s' is not a whole number from %llu to %llu",
                     uri, name, value ? value : "", (unsigned long long) min,
                     (unsigned long long) max);
  *out = v;
  return 0;
}

int
be_uri_opaque_size (const struct util_uri *u, const char *uri,
                    const char *usage, uint64_t *size, struct r3m_error *err)
{
  char lb[UTIL_URI_LABEL_MAX];
  const char *full = uri;
  uri = util_uri_label (uri, lb);
  if (u->has_authority)
    return util_err (err, EINVAL, "%s: expected %s, without '//'", uri, usage);
  if (u->nparams > 0)
    return util_err (err, EINVAL, "%s: %s takes no parameters ('%s')", uri,
                     usage, u->params[0].key);
  if (!*u->path)
    return util_err (err, EINVAL, "%s: size missing (expected %s, e.g. %s:64M)",
                     uri, usage, u->scheme);
  return be_arg_size (full, "size", u->path, size, err);
}

int
be_uri_local_path (const struct util_uri *u, const char *uri,
                   const char *usage, const char **path, struct r3m_error *err)
{
  char lb[UTIL_URI_LABEL_MAX];
  uri = util_uri_label (uri, lb);
  if (u->host || u->user || u->password || u->port >= 0)
    return util_err (err, EINVAL,
                     "%s: a local path takes no host, user or port "
                     "(write %s:/path or %s:///path)", uri, u->scheme,
                     u->scheme);
  if (!*u->path)
    return util_err (err, EINVAL, "%s: path missing (expected %s)", uri,
                     usage);
  *path = u->path;
  return 0;
}
