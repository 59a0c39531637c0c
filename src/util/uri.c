/* A small RFC 3986 subset, enough for backend and listen URIs.  Everything
 * is copied out of the input, so the caller's string can go away. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "util/uri.h"

static int
hexval (char c)
{
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Percent-decode s[0..n) into a new string; *out NULL on error. */
static int
decode (const char *s, size_t n, const char *part, const char *uri,
        char **out, struct r3m_error *err)
{
  *out = NULL;
  char *d = malloc (n + 1);
  if (!d)
    return util_errno (err, ENOMEM, "%s", uri);
  size_t j = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] != '%') {
      d[j++] = s[i];
      continue;
    }
    int hi = i + 2 < n ? hexval (s[i + 1]) : -1;
    int lo = i + 2 < n ? hexval (s[i + 2]) : -1;
    if (hi < 0 || lo < 0) {
      free (d);
      return util_err (err, EINVAL, "%s: bad percent escape in the %s",
                       uri, part);
    }
    char c = (char) (hi * 16 + lo);
    if (c == '\0') {
      free (d);
      return util_err (err, EINVAL, "%s: %%00 is not allowed in the %s",
                       uri, part);
    }
    d[j++] = c;
    i += 2;
  }
  d[j] = '\0';
  *out = d;
  return 0;
}

static int
parse_query (const char *q, const char *uri, struct util_uri *u,
             struct r3m_error *err)
{
  size_t count = 1;
  for (const char *p = q; *p; p++)
    count += *p == '&';
  u->params = calloc (count, sizeof *u->params);
  if (!u->params)
    return util_errno (err, ENOMEM, "%s", uri);
  while (*q) {
    size_t len = strcspn (q, "&");
    if (len > 0) {
      const char *eq = memchr (q, '=', len);
      size_t klen = eq ? (size_t) (eq - q) : len;
      if (klen == 0)
        return util_err (err, EINVAL, "%s: empty parameter name in the query",
                         uri);
      struct util_uri_param *p = &u->params[u->nparams];
      int r = decode (q, klen, "query", uri, &p->key, err);
      if (r == 0)
        r = eq ? decode (eq + 1, len - klen - 1, "query", uri, &p->value, err)
               : decode ("", 0, "query", uri, &p->value, err);
      if (r < 0) {
        free (p->key);
        p->key = NULL;
        return r;
      }
      u->nparams++;
    }
    q += len;
    if (*q == '&')
      q++;
  }
  return 0;
}

static int
parse_port (const char *s, size_t n, const char *uri, int *port,
            struct r3m_error *err)
{
  if (n == 0 || n > 5)
    return util_err (err, EINVAL, "%s: port must be a number from 0 to 65535",
                     uri);
  int v = 0;
  for (size_t i = 0; i < n; i++) {
    if (!isdigit ((unsigned char) s[i]))
      return util_err (err, EINVAL, "%s: port must be a number from 0 to 65535",
                       uri);
    v = v * 10 + (s[i] - '0');
  }
  if (v > 65535)
    return util_err (err, EINVAL, "%s: port must be a number from 0 to 65535",
                     uri);
  *port = v;
  return 0;
}

/* authority = [userinfo@]host[:port]; a is not NUL-terminated. */
static int
parse_authority (const char *a, size_t n, const char *uri, struct util_uri *u,
                 struct r3m_error *err)
{
  const char *at = NULL;
  for (size_t i = 0; i < n; i++)
    if (a[i] == '@')
      at = a + i;
  if (at) {
    size_t ulen = (size_t) (at - a);
    const char *colon = memchr (a, ':', ulen);
    int r = decode (a, colon ? (size_t) (colon - a) : ulen, "user name", uri,
                    &u->user, err);
    if (r == 0 && colon)
      r = decode (colon + 1, (size_t) (at - colon - 1), "password", uri,
                  &u->password, err);
    if (r < 0)
      return r;
    n -= ulen + 1;
    a = at + 1;
  }

  const char *host = a;
  size_t hlen;
  const char *rest;
  if (n > 0 && a[0] == '[') {
    const char *close = memchr (a, ']', n);
    if (!close)
      return util_err (err, EINVAL, "%s: '[' without ']' in the host", uri);
    host = a + 1;
    hlen = (size_t) (close - a - 1);
    if (hlen == 0)
      return util_err (err, EINVAL, "%s: empty IPv6 address", uri);
    for (size_t i = 0; i < hlen; i++)
      if (!isxdigit ((unsigned char) host[i]) && host[i] != ':'
          && host[i] != '.')
        return util_err (err, EINVAL, "%s: bad IPv6 address", uri);
    rest = close + 1;
  } else {
    const char *colon = memchr (a, ':', n);
    hlen = colon ? (size_t) (colon - a) : n;
    rest = a + hlen;
    for (size_t i = 0; i < hlen; i++) {
      unsigned char c = (unsigned char) host[i];
      if (!isalnum (c) && c != '-' && c != '.' && c != '_' && c != '%')
        return util_err (err, EINVAL, "%s: bad character '%c' in the host",
                         uri, isprint (c) ? c : '?');
    }
  }
  size_t rlen = n - (size_t) (rest - a);
  if (rlen > 0) {
    if (rest[0] != ':')
      return util_err (err, EINVAL, "%s: junk after the host", uri);
    int r = parse_port (rest + 1, rlen - 1, uri, &u->port, err);
    if (r < 0)
      return r;
  }
  if (hlen > 0)
    return decode (host, hlen, "host", uri, &u->host, err);
  return 0;
}

int
util_uri_parse (const char *s, struct util_uri *u, struct r3m_error *err)
{
  memset (u, 0, sizeof *u);
  u->port = -1;
  if (!s || !*s)
    return util_err (err, EINVAL, "empty URI");
  /* Messages name the URI by a short, printable label. */
  char label[UTIL_URI_LABEL_MAX];
  const char *lb = util_uri_label (s, label);

  const char *colon = strchr (s, ':');
  if (!colon || colon == s || !isalpha ((unsigned char) s[0]))
    return util_err (err, EINVAL,
                     "%s: not a URI (expected SCHEME:..., e.g. memory:64M "
                     "or file:/path)", lb);
  size_t slen = (size_t) (colon - s);
  for (size_t i = 0; i < slen; i++) {
    unsigned char c = (unsigned char) s[i];
    if (!isalnum (c) && c != '+' && c != '-' && c != '.')
      return util_err (err, EINVAL, "%s: bad character in the scheme", lb);
  }
  if (strchr (s, '#'))
    return util_err (err, EINVAL,
                     "%s: '#' is not allowed (write %%23 in a name)", lb);
  u->scheme = strndup (s, slen);
  if (!u->scheme)
    return util_errno (err, ENOMEM, "%s", lb);
  for (char *p = u->scheme; *p; p++)
    *p = (char) tolower ((unsigned char) *p);

  const char *p = colon + 1;
  if (p[0] == '/' && p[1] == '/') {
    u->has_authority = true;
    p += 2;
    size_t alen = strcspn (p, "/?");
    int r = parse_authority (p, alen, lb, u, err);
    if (r < 0)
      return r;
    p += alen;
  }
  size_t plen = strcspn (p, "?");
  int r = decode (p, plen, "path", lb, &u->path, err);
  if (r < 0)
    return r;
  p += plen;
  if (*p == '?')
    return parse_query (p + 1, lb, u, err);
  return 0;
}

const char *
util_uri_label (const char *s, char buf[UTIL_URI_LABEL_MAX])
{
  size_t n = strlen (s), keep = n;
  if (n >= UTIL_URI_LABEL_MAX)
    keep = UTIL_URI_LABEL_MAX - 4;
  for (size_t i = 0; i < keep; i++) {
    unsigned char c = (unsigned char) s[i];
    buf[i] = c < 0x20 || c == 0x7f ? '?' : (char) c;
  }
  strcpy (buf + keep, keep < n ? "..." : "");
  return buf;
}

void
util_uri_free (struct util_uri *u)
{
  free (u->scheme);
  free (u->user);
  free (u->password);
  free (u->host);
  free (u->path);
  for (size_t i = 0; i < u->nparams; i++) {
    free (u->params[i].key);
    free (u->params[i].value);
  }
  free (u->params);
  memset (u, 0, sizeof *u);
  u->port = -1;
}

const char *
util_uri_param (const struct util_uri *u, const char *key)
{
  for (size_t i = 0; i < u->nparams; i++)
    if (strcmp (u->params[i].key, key) == 0)
      return u->params[i].value;
  return NULL;
}

int
util_uri_check_params (const struct util_uri *u, const char *const *allowed,
                       const char *what, struct r3m_error *err)
{
  char lb[UTIL_URI_LABEL_MAX];
  what = util_uri_label (what ? what : "URI", lb);
  for (size_t i = 0; i < u->nparams; i++) {
    const char *k = u->params[i].key;
    bool ok = false;
    for (const char *const *a = allowed; a && *a; a++)
      ok |= strcmp (*a, k) == 0;
    if (!ok)
      return util_err (err, EINVAL, "%s: unknown parameter '%s'", what, k);
    for (size_t j = 0; j < i; j++)
      if (strcmp (u->params[j].key, k) == 0)
        return util_err (err, EINVAL, "%s: parameter '%s' given twice", what,
                         k);
  }
  return 0;
}
