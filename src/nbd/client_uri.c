/* NBD URIs, following the NBD URI standard (as libnbd reads it):
 *
 *   nbd://HOST[:PORT][/EXPORT][?PARAMS]        plain TCP
 *   nbds://HOST[:PORT][/EXPORT][?PARAMS]       TLS, certificate verified
 *   nbd+unix:///[EXPORT]?socket=PATH[&PARAMS]  Unix socket
 *   nbds+unix:///[EXPORT]?socket=PATH&tls-hostname=NAME[&...]
 *
 * The export name is the path without its first '/', percent-decoded.
 * PARAMS: inflight=N (requests on the wire per connection), connections=N
 * (used only when the server allows multi-conn), connect-timeout=SECONDS,
 * tls-ca=FILE, tls-cert=FILE, tls-key=FILE, tls-hostname=NAME.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nbd/client.h"
#include "util/error.h"
#include "util/uri.h"

static int
parse_uint (const char *what, const char *key, const char *v, unsigned lo,
            unsigned hi, unsigned *out, struct r3m_error *err)
{
  if (!v || !*v || *v == '-')
    return util_err (err, EINVAL, "%s: %s must be a number from %u to %u",
                     what, key, lo, hi);
  char *end;
  errno = 0;
  unsigned long n = strtoul (v, &end, 10);
  if (errno || *end || n < lo || n > hi)
    return util_err (err, EINVAL, "%s: %s must be a number from %u to %u",
                     what, key, lo, hi);
  *out = (unsigned) n;
  return 0;
}

static int
dup_param (const struct util_uri *u, const char *key, char **out,
           const char *what, struct r3m_error *err)
{
  const char *v = util_uri_param (u, key);
  *out = NULL;
  if (!v)
    return 0;
  if (!*v)
    return util_err (err, EINVAL, "%s: %s is empty", what, key);
  *out = strdup (v);
  return *out ? 0 : util_errno (err, ENOMEM, "%s", what);
}

static int
parse_numbers (const struct util_uri *u, struct nbd_cli_opts *o,
               struct r3m_error *err)
{
  const char *v;
  int r = 0;
  if ((v = util_uri_param (u, "inflight")))
    r = parse_uint (o->what, "inflight", v, 1, NBD_CLI_MAX_INFLIGHT,
                    &o->inflight, err);
  if (r == 0 && (v = util_uri_param (u, "connections")))
    r = parse_uint (o->what, "connections", v, 1, NBD_CLI_MAX_CONNECTIONS,
                    &o->connections, err);
  if (r == 0 && (v = util_uri_param (u, "connect-timeout"))) {
    unsigned s;
    r = parse_uint (o->what, "connect-timeout", v, 0, 86400, &s, err);
    o->connect_timeout_ms = s * 1000;
  }
  return r;
}

static int
parse_tls (const struct util_uri *u, struct nbd_cli_opts *o,
           struct r3m_error *err)
{
  int r = dup_param (u, "tls-ca", &o->tls_ca, o->what, err);
  if (r == 0)
    r = dup_param (u, "tls-cert", &o->tls_cert, o->what, err);
  if (r == 0)
    r = dup_param (u, "tls-key", &o->tls_key, o->what, err);
  if (r == 0)
    r = dup_param (u, "tls-hostname", &o->tls_hostname, o->what, err);
  if (r < 0)
    return r;
  bool any = o->tls_ca || o->tls_cert || o->tls_key || o->tls_hostname;
  if (any && !o->tls)
    return util_err (err, EINVAL, "%s: tls-* parameters need nbds:// or "
                     "nbds+unix://", o->what);
  if (!o->tls_cert != !o->tls_key)
    return util_err (err, EINVAL, "%s: tls-cert and tls-key go together",
                     o->what);
  if (o->tls && !o->tls_hostname) {
    if (!o->host)
      return util_err (err, EINVAL, "%s: nbds+unix needs tls-hostname= (the "
                       "name the server's certificate must carry)", o->what);
    o->tls_hostname = strdup (o->host);
    if (!o->tls_hostname)
      return util_errno (err, ENOMEM, "%s", o->what);
  }
  return 0;
}

static int
parse_place (const struct util_uri *u, bool is_unix, struct nbd_cli_opts *o,
             struct r3m_error *err)
{
  if (u->user || u->password)
    return util_err (err, EINVAL, "%s: user names are not supported",
                     o->what);
  if (!u->has_authority)
    return util_err (err, EINVAL, "%s: expected %s", o->what, is_unix
                     ? "nbd+unix:///EXPORT?socket=PATH"
                     : "nbd://HOST[:PORT]/EXPORT");
  if (is_unix) {
    if (u->host || u->port >= 0)
      return util_err (err, EINVAL, "%s: a Unix socket URI has no host "
                       "(nbd+unix:///EXPORT?socket=PATH)", o->what);
    int r = dup_param (u, "socket", &o->socket, o->what, err);
    if (r < 0)
      return r;
    if (!o->socket)
      return util_err (err, EINVAL, "%s: socket=PATH is missing", o->what);
    return 0;
  }
  if (!u->host)
    return util_err (err, EINVAL, "%s: host is missing", o->what);
  if (util_uri_param (u, "socket"))
    return util_err (err, EINVAL, "%s: socket= needs nbd+unix://", o->what);
  o->host = strdup (u->host);
  char port[16];
  snprintf (port, sizeof port, "%d", u->port >= 0 ? u->port
            : NBD_DEFAULT_PORT);
  o->port = strdup (port);
  if (!o->host || !o->port)
    return util_errno (err, ENOMEM, "%s", o->what);
  return 0;
}

int
nbd_cli_opts_parse (const char *uri, unsigned open_flags,
                    struct nbd_cli_opts *o, struct r3m_error *err)
{
  static const char *const allowed[] = {
    "socket", "inflight", "connections", "connect-timeout",
    "tls-ca", "tls-cert", "tls-key", "tls-hostname", NULL
  };
  memset (o, 0, sizeof *o);
  o->inflight = NBD_CLI_DEFAULT_INFLIGHT;
  o->connections = NBD_CLI_DEFAULT_CONNECTIONS;
  o->connect_timeout_ms = NBD_CLI_DEFAULT_CONNECT_TIMEOUT_MS;
  o->open_flags = open_flags;
  o->what = strdup (uri ? uri : "");
  if (!o->what)
    return util_errno (err, ENOMEM, "nbd");

  struct util_uri u;
  int r = util_uri_parse (uri, &u, err);
  if (r < 0)
    goto out;
  bool is_unix = false;
  if (strcmp (u.scheme, "nbd") == 0)
    ;
  else if (strcmp (u.scheme, "nbds") == 0)
    o->tls = true;
  else if (strcmp (u.scheme, "nbd+unix") == 0)
    is_unix = true;
  else if (strcmp (u.scheme, "nbds+unix") == 0)
    is_unix = o->tls = true;
  else {
    r = util_err (err, EINVAL, "%s: not an NBD URI (nbd://, nbds://, "
                  "nbd+unix://, nbds+unix://)", uri);
    goto out;
  }
  r = util_uri_check_params (&u, allowed, uri, err);
  if (r == 0)
    r = parse_place (&u, is_unix, o, err);
  if (r == 0)
    r = parse_numbers (&u, o, err);
  if (r == 0)
    r = parse_tls (&u, o, err);
  if (r < 0)
    goto out;
  const char *name = u.path[0] == '/' ? u.path + 1 : u.path;
  if (strlen (name) > NBD_MAX_STRING) {
    r = util_err (err, EINVAL, "%s: export name longer than %d bytes", uri,
                  NBD_MAX_STRING);
    goto out;
  }
  o->export_name = strdup (name);
  if (!o->export_name)
    r = util_errno (err, ENOMEM, "%s", uri);
out:
  util_uri_free (&u);
  if (r < 0)
    nbd_cli_opts_free (o);
  return r;
}

void
nbd_cli_opts_free (struct nbd_cli_opts *o)
{
  free (o->what);
  free (o->host);
  free (o->port);
  free (o->socket);
  free (o->export_name);
  free (o->tls_ca);
  free (o->tls_cert);
  free (o->tls_key);
  free (o->tls_hostname);
  memset (o, 0, sizeof *o);
}
