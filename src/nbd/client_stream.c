/* The byte stream under an NBD client connection: a connected socket
 * (TCP or Unix), read-exactly and write-all with EINTR and short I/O
 * handled, and a timeout for the handshake. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "nbd/client.h"
#include "util/error.h"
#include "util/time.h"

void
nbd_cli_stream_from_fd (struct nbd_cli_stream *s, int fd)
{
  s->fd = fd;
  s->tls = NULL;
}

/* connect() with a deadline: non-blocking connect, then poll. */
static int
connect_fd (int fd, const struct sockaddr *sa, socklen_t len, unsigned ms)
{
  if (ms == 0)
    return connect (fd, sa, len) == 0 ? 0 : -errno;
  int fl = fcntl (fd, F_GETFL);
  if (fl < 0 || fcntl (fd, F_SETFL, fl | O_NONBLOCK) < 0)
    return -errno;
  int r = 0;
  if (connect (fd, sa, len) < 0) {
    if (errno != EINPROGRESS)
      r = -errno;
    else {
      struct pollfd p = { .fd = fd, .events = POLLOUT };
      int n;
      do
        n = poll (&p, 1, (int) ms);
      while (n < 0 && errno == EINTR);
      if (n < 0)
        r = -errno;
      else if (n == 0)
        r = -ETIMEDOUT;
      else {
        int e = 0;
        socklen_t el = sizeof e;
        if (getsockopt (fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0)
          r = -errno;
        else
          r = -e;
      }
    }
  }
  if (fcntl (fd, F_SETFL, fl) < 0 && r == 0)
    r = -errno;
  return r;
}

static int
connect_unix (const struct nbd_cli_opts *o, struct nbd_cli_stream *s,
              struct r3m_error *err)
{
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  if (strlen (o->socket) >= sizeof sun.sun_path)
    return util_err (err, ENAMETOOLONG, "%s: socket path is too long",
                     o->what);
  strcpy (sun.sun_path, o->socket);
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return util_errno (err, errno, "%s: socket", o->what);
  int r = connect_fd (fd, (struct sockaddr *) &sun, sizeof sun,
                      o->connect_timeout_ms);
  if (r < 0) {
    close (fd);
    return util_errno (err, -r, "%s: connect to %s", o->what, o->socket);
  }
  nbd_cli_stream_from_fd (s, fd);
  return 0;
}

static int
connect_tcp (const struct nbd_cli_opts *o, struct nbd_cli_stream *s,
             struct r3m_error *err)
{
  struct addrinfo hints = { .ai_family = AF_UNSPEC,
                            .ai_socktype = SOCK_STREAM,
                            .ai_flags = AI_ADDRCONFIG };
  struct addrinfo *res;
  int g = getaddrinfo (o->host, o->port, &hints, &res);
  if (g != 0)
    return util_err (err, g == EAI_SYSTEM ? errno : EHOSTUNREACH,
                     "%s: cannot resolve %s: %s", o->what, o->host,
                     gai_strerror (g));
  int r = -EHOSTUNREACH;
  int fd = -1;
  for (struct addrinfo *a = res; a; a = a->ai_next) {
    fd = socket (a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      r = -errno;
      continue;
    }
    r = connect_fd (fd, a->ai_addr, a->ai_addrlen, o->connect_timeout_ms);
    if (r == 0)
      break;
    close (fd);
    fd = -1;
  }
  freeaddrinfo (res);
  if (fd < 0)
    return util_errno (err, -r, "%s: connect to %s port %s", o->what, o->host,
                       o->port);
  /* Request headers are small and latency matters more than packets. */
  int one = 1;
  setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  nbd_cli_stream_from_fd (s, fd);
  return 0;
}

int
nbd_cli_stream_connect (const struct nbd_cli_opts *o, struct nbd_cli_stream *s,
                        struct r3m_error *err)
{
  s->fd = -1;
  s->tls = NULL;
  return o->socket ? connect_unix (o, s, err) : connect_tcp (o, s, err);
}

int
nbd_cli_stream_starttls (struct nbd_cli_stream *s,
                         const struct nbd_cli_opts *o, struct r3m_error *err)
{
  return util_err (err, ENOTSUP, "%s: TLS is not available in this build",
                   o->what);
}

int
nbd_cli_stream_read (struct nbd_cli_stream *s, void *buf, size_t n)
{
  char *p = buf;
  while (n > 0) {
    ssize_t r = read (s->fd, p, n);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return errno == EAGAIN ? -ETIMEDOUT : -errno;
    }
    if (r == 0)
      return -ECONNRESET;
    p += r;
    n -= (size_t) r;
  }
  return 0;
}

int
nbd_cli_stream_writev (struct nbd_cli_stream *s, struct iovec *iov,
                       int iovcnt)
{
  while (iovcnt > 0) {
    struct msghdr m = { .msg_iov = iov,
                        .msg_iovlen = (size_t) (iovcnt > IOV_MAX ? IOV_MAX
                                                 : iovcnt) };
    ssize_t r = sendmsg (s->fd, &m, MSG_NOSIGNAL);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return errno == EAGAIN ? -ETIMEDOUT : -errno;
    }
    size_t done = (size_t) r;
    while (iovcnt > 0 && done >= iov->iov_len) {
      done -= iov->iov_len;
      iov++;
      iovcnt--;
    }
    if (iovcnt > 0) {
      iov->iov_base = (char *) iov->iov_base + done;
      iov->iov_len -= done;
    }
  }
  return 0;
}

void
nbd_cli_stream_set_timeout (struct nbd_cli_stream *s, unsigned ms)
{
  struct timeval tv = { .tv_sec = ms / 1000,
                        .tv_usec = (long) (ms % 1000) * 1000 };
  setsockopt (s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt (s->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

void
nbd_cli_stream_shutdown (struct nbd_cli_stream *s)
{
  if (s->fd >= 0)
    shutdown (s->fd, SHUT_RDWR);
}

void
nbd_cli_stream_close (struct nbd_cli_stream *s)
{
  if (s->fd >= 0)
    close (s->fd);
  s->fd = -1;
}
