/* NBD URIs (doc/uri.md of the NBD project) and connecting to them. */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "nbd/conn.h"
#include "nbd/proto.h"
#include "util/error.h"

void
nbd_uri_free (struct nbd_uri *u)
{
  free (u->host);
  free (u->port);
  free (u->socket);
  free (u->export_name);
  util_uri_free (&u->uri);
  memset (u, 0, sizeof *u);
  u->uri.port = -1;
}

static int
parse_scheme (const char *scheme, struct nbd_uri *u)
{
  static const struct { const char *name; bool tls, unix_socket; } s[] = {
    { "nbd", false, false }, { "nbds", true, false },
    { "nbd+unix", false, true }, { "nbds+unix", true, true },
  };
  for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
    if (strcmp (scheme, s[i].name) == 0) {
      u->tls = s[i].tls;
      u->unix_socket = s[i].unix_socket;
      return 0;
    }
  return -EINVAL;
}

static int
parse_unix (const char *s, struct nbd_uri *u, struct r3m_error *err)
{
  if (u->uri.host || u->uri.port >= 0)
    return util_err (err, EINVAL,
                     "%s: a Unix socket URI has no host or port "
                     "(nbd+unix:///EXPORT?socket=PATH)", s);
  const char *path = util_uri_param (&u->uri, "socket");
  if (!path || !*path)
    return util_err (err, EINVAL, "%s: socket=PATH is missing", s);
  if (strlen (path) >= sizeof ((struct sockaddr_un *) 0)->sun_path)
    return util_err (err, ENAMETOOLONG, "%s: socket path is too long", s);
  u->socket = strdup (path);
  return u->socket ? 0 : util_errno (err, ENOMEM, "%s", s);
}

static int
parse_tcp (const char *s, struct nbd_uri *u, struct r3m_error *err)
{
  if (util_uri_param (&u->uri, "socket"))
    return util_err (err, EINVAL,
                     "%s: socket= needs the nbd+unix:// scheme", s);
  char port[16];
  snprintf (port, sizeof port, "%d",
            u->uri.port >= 0 ? u->uri.port : NBD_DEFAULT_PORT);
  u->host = strdup (u->uri.host ? u->uri.host : "localhost");
  u->port = strdup (port);
  return u->host && u->port ? 0 : util_errno (err, ENOMEM, "%s", s);
}

int
nbd_uri_parse (const char *s, struct nbd_uri *u, struct r3m_error *err)
{
  memset (u, 0, sizeof *u);
  int r = util_uri_parse (s, &u->uri, err);
  if (r < 0)
    return r;
  if (parse_scheme (u->uri.scheme, u) < 0)
    return util_err (err, EINVAL,
                     "%s: not an NBD URI (nbd://, nbds://, nbd+unix://, "
                     "nbds+unix://)", s);
  if (!u->uri.has_authority)
    return util_err (err, EINVAL, "%s: expected %s://...", s, u->uri.scheme);
  /* A user name is libnbd's way to name the TLS pre-shared key to use, so
   * it makes sense with TLS only; a password never does (the key file
   * holds the secret). */
  if (u->uri.password)
    return util_err (err, EINVAL, "%s: passwords in NBD URIs are not "
                     "supported (use tls-psk-file=)", s);
  if (u->uri.user && !u->tls)
    return util_err (err, EINVAL, "%s: a user name (for TLS pre-shared "
                     "keys) needs nbds:// or nbds+unix://", s);
  r = u->unix_socket ? parse_unix (s, u, err) : parse_tcp (s, u, err);
  if (r < 0)
    return r;
  const char *path = u->uri.path;
  u->export_name = strdup (path[0] == '/' ? path + 1 : path);
  if (!u->export_name)
    return util_errno (err, ENOMEM, "%s", s);
  if (strlen (u->export_name) > NBD_MAX_STRING)
    return util_err (err, ENAMETOOLONG, "%s: export name is longer than %d "
                     "bytes", s, NBD_MAX_STRING);
  return 0;
}

static int
connect_unix (const struct nbd_uri *u, int *fd, struct r3m_error *err)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  snprintf (sa.sun_path, sizeof sa.sun_path, "%s", u->socket);
  int s = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0)
    return util_errno (err, errno, "%s: socket", u->socket);
  if (connect (s, (struct sockaddr *) &sa, sizeof sa) < 0) {
    int e = errno;
    close (s);
    return util_errno (err, e, "connect to %s", u->socket);
  }
  *fd = s;
  return 0;
}

static int
connect_tcp (const struct nbd_uri *u, int *fd, struct r3m_error *err)
{
  struct addrinfo hints = { .ai_family = AF_UNSPEC,
                            .ai_socktype = SOCK_STREAM,
                            .ai_flags = AI_NUMERICSERV };
  struct addrinfo *res;
  int g = getaddrinfo (u->host, u->port, &hints, &res);
  if (g != 0)
    return util_err (err, g == EAI_SYSTEM ? errno : EHOSTUNREACH,
                     "%s: %s", u->host, gai_strerror (g));
  int e = ECONNREFUSED;
  for (struct addrinfo *a = res; a; a = a->ai_next) {
    int s = socket (a->ai_family, a->ai_socktype | SOCK_CLOEXEC,
                    a->ai_protocol);
    if (s < 0) {
      e = errno;
      continue;
    }
    if (connect (s, a->ai_addr, a->ai_addrlen) == 0) {
      freeaddrinfo (res);
      *fd = s;
      return 0;
    }
    e = errno;
    close (s);
  }
  freeaddrinfo (res);
  return util_errno (err, e, "connect to %s port %s", u->host, u->port);
}

int
nbd_uri_connect (const struct nbd_uri *u, struct nbd_conn **out,
                 struct r3m_error *err)
{
  int fd = -1;
  int r = u->unix_socket ? connect_unix (u, &fd, err)
                         : connect_tcp (u, &fd, err);
  if (r < 0)
    return r;
  r = nbd_conn_new (fd, out);
  return r < 0 ? util_errno (err, -r, "nbd connection") : 0;
}
