/* NBD URIs, following the NBD URI standard (as libnbd reads it):
 *
 *   nbd://HOST[:PORT][/EXPORT][?PARAMS]        plain TCP
 *   nbds://HOST[:PORT][/EXPORT][?PARAMS]       TLS, certificate verified
 *   nbd+unix:///[EXPORT]?socket=PATH[&PARAMS]  Unix socket
 *   nbds+unix:///[EXPORT]?socket=PATH&tls-hostname=NAME[&...]
 *
 * The place (host, port, socket, export) is parsed by nbd_uri_parse
 * (conn.h), shared with the server; this file adds the client's PARAMS:
 *   inflight=N         requests on the wire per connection
 *   connections=N      used only when the server allows multi-conn
 *   connect-timeout=S  bound on the handshake (seconds, 0 = none)
 *   request-timeout=S  a request without a reply for S seconds kills the
 *                      connection with ETIMEDOUT (default 0 = never)
 *   extended-headers=on|off   ask for NBD extended headers (default on;
 *                      servers without them are used as before)
 *   tls-ca=FILE        CA the server certificate must chain to (default:
 *                      the system's trust store)
 *   tls-cert=FILE, tls-key=FILE   client certificate
 *   tls-hostname=NAME  name the server certificate must carry (default:
 *                      the URI's host)
 *   tls-psk-file=FILE  TLS with a pre-shared key instead of certificates
 *                      (psktool's format); the user is the URI's user part
 *                      (nbds://alice@host/), by default the login name, as
 *                      in libnbd
 */
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
  if (r == 0 && (v = util_uri_param (u, "request-timeout"))) {
    unsigned s;
    r = parse_uint (o->what, "request-timeout", v, 0, 86400, &s, err);
    o->request_timeout_ms = s * 1000;
  }
  return r;
}

static int
parse_switches (const struct util_uri *u, struct nbd_cli_opts *o,
                struct r3m_error *err)
{
  const char *v = util_uri_param (u, "extended-headers");
  if (!v)
    return 0;
  if (strcmp (v, "on") == 0)
    o->extended_headers = true;
  else if (strcmp (v, "off") == 0)
    o->extended_headers = false;
  else
    return util_err (err, EINVAL, "%s: extended-headers must be on or off",
                     o->what);
  return 0;
}

/* libnbd's default user for a PSK: the login name, else the name of the
 * effective user (getlogin fails without a controlling terminal). */
static int
default_username (struct nbd_cli_opts *o, struct r3m_error *err)
{
  char name[LOGIN_NAME_MAX + 1];
  if (getlogin_r (name, sizeof name) == 0 && name[0]) {
    o->tls_username = strdup (name);
  } else {
    struct passwd pw, *res = NULL;
    char buf[4096];
    if (getpwuid_r (geteuid (), &pw, buf, sizeof buf, &res) != 0 || !res)
      return util_err (err, EINVAL, "%s: no user name for tls-psk-file: put "
                       "one in the URI (nbds://USER@host/)", o->what);
    o->tls_username = strdup (res->pw_name);
  }
  return o->tls_username ? 0 : util_errno (err, ENOMEM, "%s", o->what);
}

static int
parse_psk (const struct util_uri *u, struct nbd_cli_opts *o,
           struct r3m_error *err)
{
  int r = dup_param (u, "tls-psk-file", &o->tls_psk_file, o->what, err);
  if (r < 0)
    return r;
  if (!o->tls_psk_file) {
    if (u->user)
      return util_err (err, EINVAL, "%s: a user name in the URI is for "
                       "tls-psk-file=", o->what);
    return 0;
  }
  /* One way of proving who is who per connection, as in libnbd. */
  if (o->tls_ca || o->tls_cert || o->tls_key)
    return util_err (err, EINVAL, "%s: tls-psk-file does not go with "
                     "tls-ca, tls-cert or tls-key", o->what);
  if (u->user && !*u->user)
    return util_err (err, EINVAL, "%s: empty user name", o->what);
  if (u->user) {
    o->tls_username = strdup (u->user);
    return o->tls_username ? 0 : util_errno (err, ENOMEM, "%s", o->what);
  }
  return default_username (o, err);
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
  if (r == 0)
    r = parse_psk (u, o, err);
  if (r < 0)
    return r;
  bool any = o->tls_ca || o->tls_cert || o->tls_key || o->tls_hostname
             || o->tls_psk_file;
  if (any && !o->uri.tls)
    return util_err (err, EINVAL, "%s: tls-* parameters need nbds:// or "
                     "nbds+unix://", o->what);
  if (!o->tls_cert != !o->tls_key)
    return util_err (err, EINVAL, "%s: tls-cert and tls-key go together",
                     o->what);
  /* With a PSK there is no certificate whose name could be checked. */
  if (o->uri.tls && !o->tls_hostname && !o->tls_psk_file) {
    if (o->uri.unix_socket)
      return util_err (err, EINVAL, "%s: nbds+unix needs tls-hostname= (the "
                       "name the server's certificate must carry)", o->what);
    o->tls_hostname = strdup (o->uri.host);
    if (!o->tls_hostname)
      return util_errno (err, ENOMEM, "%s", o->what);
  }
  return 0;
}

int
nbd_cli_opts_parse (const char *uri, unsigned open_flags,
                    struct nbd_cli_opts *o, struct r3m_error *err)
{
  static const char *const allowed[] = {
    "socket", "inflight", "connections", "connect-timeout", "request-timeout",
    "tls-ca", "tls-cert", "tls-key", "tls-hostname", "tls-psk-file",
    "extended-headers", NULL
  };
  memset (o, 0, sizeof *o);
  o->inflight = NBD_CLI_DEFAULT_INFLIGHT;
  o->connections = NBD_CLI_DEFAULT_CONNECTIONS;
  o->connect_timeout_ms = NBD_CLI_DEFAULT_CONNECT_TIMEOUT_MS;
  o->extended_headers = true;
  o->open_flags = open_flags;
  o->what = strdup (uri ? uri : "");
  if (!o->what)
    return util_errno (err, ENOMEM, "nbd");
  int r = nbd_uri_parse (o->what, &o->uri, err);
  if (r == 0)
    r = util_uri_check_params (&o->uri.uri, allowed, uri, err);
  if (r == 0)
    r = parse_numbers (&o->uri.uri, o, err);
  if (r == 0)
    r = parse_switches (&o->uri.uri, o, err);
  if (r == 0)
    r = parse_tls (&o->uri.uri, o, err);
  if (r < 0)
    nbd_cli_opts_free (o);
  return r;
}

void
nbd_cli_opts_free (struct nbd_cli_opts *o)
{
  free (o->what);
  nbd_uri_free (&o->uri);
  free (o->tls_ca);
  free (o->tls_cert);
  free (o->tls_key);
  free (o->tls_hostname);
  free (o->tls_psk_file);
  free (o->tls_username);
  memset (o, 0, sizeof *o);
}
