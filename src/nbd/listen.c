/* Listening sockets for NBD URIs.
 *
 * A TCP URI binds every address its host resolves to (localhost may give
 * 127.0.0.1 and ::1), with IPV6_V6ONLY so that 0.0.0.0 and :: can be bound
 * side by side.  A Unix URI replaces a stale socket file left by a crashed
 * server, but never one a live server still accepts on. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "nbd/conn.h"
#include "util/error.h"

void
nbd_listeners_free (struct nbd_listener *l, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    if (l[i].fd >= 0)
      close (l[i].fd);
    if (l[i].unlink_path)
      unlink (l[i].unlink_path);
    free (l[i].address);
    free (l[i].unlink_path);
  }
  free (l);
}

/* Percent-encode what a URI query value cannot hold as is. */
static void
encode_query_value (const char *s, char *out, size_t len)
{
  size_t j = 0;
  for (; *s && j + 4 < len; s++) {
    unsigned char c = (unsigned char) *s;
    if (c <= ' ' || c >= 0x7f || strchr ("%&#?+=", c))
      j += (size_t) snprintf (out + j, len - j, "%%%02X", c);
    else
      out[j++] = (char) c;
  }
  out[j] = '\0';
}

static bool
socket_is_live (const char *path)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  snprintf (sa.sun_path, sizeof sa.sun_path, "%s", path);
  int s = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0)
    return true;                /* cannot tell: do not remove it */
  bool live = connect (s, (struct sockaddr *) &sa, sizeof sa) == 0
              || errno != ECONNREFUSED;
  close (s);
  return live;
}

static int
listen_unix (const struct nbd_uri *u, int backlog, struct nbd_listener *l,
             struct r3m_error *err)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  snprintf (sa.sun_path, sizeof sa.sun_path, "%s", u->socket);
  int s = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0)
    return util_errno (err, errno, "%s: socket", u->socket);
  int r = bind (s, (struct sockaddr *) &sa, sizeof sa);
  if (r < 0 && errno == EADDRINUSE) {
    struct stat st;
    if (lstat (u->socket, &st) == 0 && S_ISSOCK (st.st_mode)
        && !socket_is_live (u->socket)) {
      unlink (u->socket);
      r = bind (s, (struct sockaddr *) &sa, sizeof sa);
    } else
      errno = EADDRINUSE;
  }
  if (r < 0 || listen (s, backlog) < 0) {
    int e = errno;
    close (s);
    return util_errno (err, e, "listen on %s", u->socket);
  }
  char enc[512];
  encode_query_value (u->socket, enc, sizeof enc);
  size_t alen = strlen (enc) + 64;
  l->fd = s;
  l->address = malloc (alen);
  l->unlink_path = strdup (u->socket);
  if (!l->address || !l->unlink_path)
    return util_errno (err, ENOMEM, "listen");
  snprintf (l->address, alen, "%s:///?socket=%s",
            u->tls ? "nbds+unix" : "nbd+unix", enc);
  return 0;
}

static int
describe_bound (int fd, bool tls, char **out)
{
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (getsockname (fd, (struct sockaddr *) &ss, &sl) < 0)
    return -errno;
  char host[INET6_ADDRSTRLEN];
  unsigned port;
  bool v6 = ss.ss_family == AF_INET6;
  if (v6) {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &ss;
    inet_ntop (AF_INET6, &in6->sin6_addr, host, sizeof host);
    port = ntohs (in6->sin6_port);
  } else {
    struct sockaddr_in *in = (struct sockaddr_in *) &ss;
    inet_ntop (AF_INET, &in->sin_addr, host, sizeof host);
    port = ntohs (in->sin_port);
  }
  char buf[128];
  snprintf (buf, sizeof buf, "%s://%s%s%s:%u", tls ? "nbds" : "nbd",
            v6 ? "[" : "", host, v6 ? "]" : "", port);
  *out = strdup (buf);
  return *out ? 0 : -ENOMEM;
}

static int
listen_one (const struct addrinfo *a, int backlog, int *fd)
{
  int s = socket (a->ai_family, a->ai_socktype | SOCK_CLOEXEC,
                  a->ai_protocol);
  if (s < 0)
    return -errno;
  int one = 1;
  setsockopt (s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (a->ai_family == AF_INET6)
    setsockopt (s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (bind (s, a->ai_addr, a->ai_addrlen) < 0 || listen (s, backlog) < 0) {
    int e = errno;
    close (s);
    return -e;
  }
  *fd = s;
  return 0;
}

static bool
seen_before (const struct addrinfo *res, const struct addrinfo *a)
{
  for (const struct addrinfo *b = res; b != a; b = b->ai_next)
    if (b->ai_addrlen == a->ai_addrlen
        && memcmp (b->ai_addr, a->ai_addr, a->ai_addrlen) == 0)
      return true;
  return false;
}

static int
listen_tcp (const struct nbd_uri *u, int backlog, struct nbd_listener **out,
            size_t *n, struct r3m_error *err)
{
  struct addrinfo hints = { .ai_family = AF_UNSPEC,
                            .ai_socktype = SOCK_STREAM,
                            .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
  struct addrinfo *res;
  int g = getaddrinfo (u->host, u->port, &hints, &res);
  if (g != 0)
    return util_err (err, g == EAI_SYSTEM ? errno : EADDRNOTAVAIL,
                     "listen on %s: %s", u->host, gai_strerror (g));
  size_t count = 0;
  for (struct addrinfo *a = res; a; a = a->ai_next)
    count++;
  struct nbd_listener *l = calloc (count, sizeof *l);
  if (!l) {
    freeaddrinfo (res);
    return util_errno (err, ENOMEM, "listen");
  }
  size_t k = 0;
  int r = 0;
  for (struct addrinfo *a = res; a && r == 0; a = a->ai_next) {
    if (seen_before (res, a))
      continue;
    l[k].fd = -1;
    r = listen_one (a, backlog, &l[k].fd);
    if (r == -EAFNOSUPPORT) {   /* e.g. no IPv6 in this kernel */
      r = 0;
      continue;
    }
    if (r == 0)
      r = describe_bound (l[k].fd, u->tls, &l[k].address);
    k++;
  }
  freeaddrinfo (res);
  if (r == 0 && k == 0)
    r = -EADDRNOTAVAIL;
  if (r < 0) {
    nbd_listeners_free (l, k);
    return util_errno (err, -r, "listen on %s port %s", u->host, u->port);
  }
  *out = l;
  *n = k;
  return 0;
}

int
nbd_listen_uri (const struct nbd_uri *u, int backlog,
                struct nbd_listener **out, size_t *n, struct r3m_error *err)
{
  *out = NULL;
  *n = 0;
  if (!u->unix_socket)
    return listen_tcp (u, backlog, out, n, err);
  struct nbd_listener *l = calloc (1, sizeof *l);
  if (!l)
    return util_errno (err, ENOMEM, "listen");
  l->fd = -1;
  int r = listen_unix (u, backlog, l, err);
  if (r < 0) {
    if (l->fd < 0) {
      free (l);
      return r;
    }
    nbd_listeners_free (l, 1);
    return r;
  }
  *out = l;
  *n = 1;
  return 0;
}
