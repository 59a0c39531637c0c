/* The NBD byte stream: plain sockets, custom transports, and TLS on top.
 *
 * Plain sockets stay blocking: a reader sleeps in read(2), writers in
 * sendmsg(2), and SO_RCVTIMEO/SO_SNDTIMEO give the timeout.  Once TLS is
 * up the socket becomes non-blocking and every OpenSSL call runs under
 * tls_lock; a call that wants the socket (SSL_ERROR_WANT_READ/WRITE)
 * releases the lock and polls, so the reader waiting for a request never
 * keeps a writer from sending a reply (see conn.h for the thread rules). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "nbd/conn.h"
#include "nbd/splice_send.h"
#include "nbd/tcp_tune.h"
#include "nbd/tls.h"
#include "util/error.h"
#include "util/time.h"

/* Small pieces of a TLS write are gathered into one record of this size
 * rather than sent as a record each (a 16-byte reply header alone would
 * cost a record and a syscall). */
#define TLS_STAGE_SIZE 16384

struct nbd_conn {
  int fd;                      /* -1 for a custom transport */
  bool is_socket;
  int family;                  /* AF_UNIX, AF_INET, ...; 0 if unknown */
  const struct nbd_conn_io *io;
  void *io_user;
  unsigned timeout_ms;
  uint64_t deadline_ns;        /* 0 = none */
  char peer[128];

  pthread_mutex_t wlock;       /* one writer at a time; guards stage */
  pthread_mutex_t tls_lock;    /* every call on ssl (inner to wlock) */
  SSL *ssl;                    /* NULL until a TLS handshake succeeded */
  unsigned char *stage;        /* TLS_STAGE_SIZE bytes once TLS is up */
  char tls_peer[96];           /* verified client certificate's CN, or
                                  "psk user NAME" */
  struct splice_pipe pipe;     /* for nbd_conn_writev_by_ref (wlock) */
};

/* ---- creating --------------------------------------------------------- */

static struct nbd_conn *
conn_alloc (void)
{
  struct nbd_conn *c = calloc (1, sizeof *c);
  if (!c)
    return NULL;
  c->fd = -1;
  splice_pipe_init (&c->pipe);
  pthread_mutex_init (&c->wlock, NULL);
  pthread_mutex_init (&c->tls_lock, NULL);
  return c;
}

static void
describe_sockaddr (const struct sockaddr_storage *ss, char *buf, size_t len)
{
  char host[INET6_ADDRSTRLEN];
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *) ss;
    inet_ntop (AF_INET, &in->sin_addr, host, sizeof host);
    snprintf (buf, len, "%s:%u", host, ntohs (in->sin_port));
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) ss;
    inet_ntop (AF_INET6, &in6->sin6_addr, host, sizeof host);
    snprintf (buf, len, "[%s]:%u", host, ntohs (in6->sin6_port));
  } else if (ss->ss_family == AF_UNIX)
    snprintf (buf, len, "unix socket");
  else
    snprintf (buf, len, "fd");
}

int
nbd_conn_new (int fd, struct nbd_conn **out)
{
  struct nbd_conn *c = conn_alloc ();
  if (!c) {
    close (fd);
    return -ENOMEM;
  }
  c->fd = fd;
  fcntl (fd, F_SETFD, FD_CLOEXEC);
  int fl = fcntl (fd, F_GETFL);
  if (fl >= 0 && (fl & O_NONBLOCK))
    fcntl (fd, F_SETFL, fl & ~O_NONBLOCK);

  struct sockaddr_storage local, peer;
  socklen_t sl = sizeof local;
  memset (&local, 0, sizeof local);
  memset (&peer, 0, sizeof peer);
  if (getsockname (fd, (struct sockaddr *) &local, &sl) == 0) {
    c->is_socket = true;
    c->family = local.ss_family;
    sl = sizeof peer;
    bool named = getpeername (fd, (struct sockaddr *) &peer, &sl) == 0;
    if (named)
      describe_sockaddr (&peer, c->peer, sizeof c->peer);
    else
      snprintf (c->peer, sizeof c->peer, "socket");
    if (local.ss_family == AF_INET || local.ss_family == AF_INET6)
      nbd_tcp_tune (fd, &local, &peer);
  } else
    snprintf (c->peer, sizeof c->peer, "fd %d", fd);
  *out = c;
  return 0;
}

int
nbd_conn_new_custom (const struct nbd_conn_io *io, void *user,
                     struct nbd_conn **out)
{
  if (!io || !io->read || !io->writev)
    return -EINVAL;
  struct nbd_conn *c = conn_alloc ();
  if (!c)
    return -ENOMEM;
  c->io = io;
  c->io_user = user;
  snprintf (c->peer, sizeof c->peer, "custom");
  *out = c;
  return 0;
}

void
nbd_conn_shutdown (struct nbd_conn *c, int how)
{
  if (c->io) {
    if (c->io->shutdown)
      c->io->shutdown (c->io_user);
  } else if (c->is_socket)
    shutdown (c->fd, how);
}

void
nbd_conn_close (struct nbd_conn *c)
{
  if (!c)
    return;
  if (c->ssl) {
    /* One non-blocking attempt at close_notify: the peer may be gone. */
    ERR_clear_error ();
    SSL_shutdown (c->ssl);
    ERR_clear_error ();
    SSL_free (c->ssl);
  }
  if (c->io) {
    if (c->io->close)
      c->io->close (c->io_user);
  } else if (c->fd >= 0)
    close (c->fd);
  free (c->stage);
  splice_pipe_close (&c->pipe);
  pthread_mutex_destroy (&c->wlock);
  pthread_mutex_destroy (&c->tls_lock);
  free (c);
}

int
nbd_conn_fd (const struct nbd_conn *c)
{
  return c->fd;
}

int
nbd_conn_family (const struct nbd_conn *c)
{
  return c->family;
}

bool
nbd_conn_is_tls (const struct nbd_conn *c)
{
  return c->ssl != NULL;
}

void
nbd_conn_describe_peer (const struct nbd_conn *c, char *buf, size_t len)
{
  if (c->tls_peer[0])
    snprintf (buf, len, "%s (tls: %s)", c->peer, c->tls_peer);
  else
    snprintf (buf, len, "%s", c->peer);
}

int
nbd_conn_set_timeout (struct nbd_conn *c, unsigned ms)
{
  c->timeout_ms = ms;
  if (c->io || !c->is_socket)
    return 0;
  struct timeval tv = { .tv_sec = ms / 1000,
                        .tv_usec = (suseconds_t) (ms % 1000) * 1000 };
  if (setsockopt (c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0
      || setsockopt (c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0)
    return -errno;
  return 0;
}

void
nbd_conn_set_deadline (struct nbd_conn *c, uint64_t deadline_ns)
{
  c->deadline_ns = deadline_ns;
}

/* How long a poll may wait: the timeout, cut short by the deadline;
 * -1 for ever. */
static int
wait_ms (const struct nbd_conn *c)
{
  int ms = c->timeout_ms ? (int) c->timeout_ms : -1;
  if (c->deadline_ns) {
    uint64_t now = util_now_ns ();
    uint64_t left = c->deadline_ns > now ? c->deadline_ns - now : 0;
    int d = (int) ((left + 999999) / 1000000);
    if (ms < 0 || d < ms)
      ms = d;
  }
  return ms;
}

/* Wait until fd is ready for events; 0 or -ETIMEDOUT/-errno. */
static int
wait_fd (struct nbd_conn *c, short events)
{
  struct pollfd p = { .fd = c->fd, .events = events };
  for (;;) {
    int r = poll (&p, 1, wait_ms (c));
    if (r > 0)
      return 0;
    if (r == 0)
      return -ETIMEDOUT;
    if (errno != EINTR)
      return -errno;
  }
}

/* ---- TLS plumbing ------------------------------------------------------ */

/* Wait until the socket is ready for what OpenSSL asked for. */
static int
tls_wait (struct nbd_conn *c, int ssl_error)
{
  return wait_fd (c, ssl_error == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN);
}

/* Map a failed OpenSSL I/O call to -errno; > 0 means "retry after
 * tls_wait (c, that value)".  Called with errno and the error queue as the
 * failed call left them. */
static int
tls_failure (int ssl_error, int saved_errno)
{
  switch (ssl_error) {
  case SSL_ERROR_WANT_READ:
  case SSL_ERROR_WANT_WRITE:
    return ssl_error;
  case SSL_ERROR_ZERO_RETURN:
    return 0;
  case SSL_ERROR_SYSCALL:
    ERR_clear_error ();
    return saved_errno ? -saved_errno : -ECONNRESET;
  default:
    ERR_clear_error ();
    return -EPROTO;
  }
}

static ssize_t
tls_read (struct nbd_conn *c, void *buf, size_t len)
{
  int n = len > INT_MAX ? INT_MAX : (int) len;
  for (;;) {
    pthread_mutex_lock (&c->tls_lock);
    ERR_clear_error ();
    int r = SSL_read (c->ssl, buf, n);
    int e = r > 0 ? SSL_ERROR_NONE : SSL_get_error (c->ssl, r);
    int saved = errno;
    pthread_mutex_unlock (&c->tls_lock);
    if (r > 0)
      return r;
    int f = tls_failure (e, saved);
    if (f <= 0)
      return f;
    f = tls_wait (c, f);
    if (f < 0)
      return f;
  }
}

static int
tls_write_all (struct nbd_conn *c, const unsigned char *buf, size_t len)
{
  while (len > 0) {
    int n = len > (1u << 30) ? 1 << 30 : (int) len;
    pthread_mutex_lock (&c->tls_lock);
    ERR_clear_error ();
    int r = SSL_write (c->ssl, buf, n);
    int e = r > 0 ? SSL_ERROR_NONE : SSL_get_error (c->ssl, r);
    int saved = errno;
    pthread_mutex_unlock (&c->tls_lock);
    if (r > 0) {
      buf += r;
      len -= (size_t) r;
      continue;
    }
    int f = tls_failure (e, saved);
    if (f == 0)
      return -EPIPE;            /* peer sent close_notify */
    if (f < 0)
      return f;
    f = tls_wait (c, f);
    if (f < 0)
      return f;
  }
  return 0;
}

/* Gather small pieces into the stage, send big ones as they are. */
static int
tls_writev_all (struct nbd_conn *c, const struct iovec *iov, int iovcnt)
{
  size_t staged = 0;
  for (int i = 0; i < iovcnt; i++) {
    const unsigned char *p = iov[i].iov_base;
    size_t len = iov[i].iov_len;
    if (len == 0)
      continue;
    if (staged + len <= TLS_STAGE_SIZE) {
      memcpy (c->stage + staged, p, len);
      staged += len;
      continue;
    }
    if (staged > 0 && len < TLS_STAGE_SIZE) {
      /* Top the record up, then keep what remains for the next one. */
      size_t fill = TLS_STAGE_SIZE - staged;
      memcpy (c->stage + staged, p, fill);
      int r = tls_write_all (c, c->stage, TLS_STAGE_SIZE);
      if (r < 0)
        return r;
      memcpy (c->stage, p + fill, len - fill);
      staged = len - fill;
      continue;
    }
    if (staged > 0) {
      int r = tls_write_all (c, c->stage, staged);
      if (r < 0)
        return r;
      staged = 0;
    }
    int r = tls_write_all (c, p, len);
    if (r < 0)
      return r;
  }
  return staged > 0 ? tls_write_all (c, c->stage, staged) : 0;
}

static void
record_peer_name (struct nbd_conn *c)
{
  X509 *cert = SSL_get1_peer_certificate (c->ssl);
  if (!cert)
    return;
  X509_NAME *name = X509_get_subject_name (cert);
  if (name && X509_NAME_get_text_by_NID (name, NID_commonName, c->tls_peer,
                                         (int) sizeof c->tls_peer) < 0)
    snprintf (c->tls_peer, sizeof c->tls_peer, "certificate without CN");
  X509_free (cert);
}

/* A handshake failed with a protocol error (not a broken socket): if a
 * pre-shared key was involved, say whose and what probably went wrong in
 * err (OpenSSL's reasons follow when they help) and return true.  Never
 * names a key. */
static bool
psk_failure (const struct nbd_tls_note *n, bool server, int ssl_error,
             const char *peer, struct r3m_error *err)
{
  if (!n->psk_offered)
    return false;
  if (server && !n->user_known)
    /* OpenSSL's reason would be about the certificate handshake it tried
     * next, which only confuses. */
    util_err (err, EACCES, "tls handshake with %s: unknown PSK user '%s'",
              peer, n->user);
  else if (server)
    nbd_tls_err (err, EACCES, "tls handshake with %s: PSK user '%s' did not "
                 "prove the key (wrong key?)", peer, n->user);
  else if (n->cert_refused)
    util_err (err, EACCES, "tls handshake with %s: the server did not accept "
              "the pre-shared key of user '%s' (unknown user or wrong key?) "
              "and offered a certificate instead", peer, n->user);
  else
    /* GnuTLS servers (nbdkit) close without an alert. */
    nbd_tls_err (err, EACCES, "tls handshake with %s: the server refused "
                 "the pre-shared key of user '%s' (unknown user or wrong "
                 "key?)%s", peer, n->user,
                 ssl_error == SSL_ERROR_ZERO_RETURN
                 ? ": it closed the connection" : "");
  ERR_clear_error ();
  return true;
}

static int
tls_handshake (struct nbd_conn *c, struct nbd_tls *tls, bool server,
               const char *hostname, struct r3m_error *err)
{
  if (c->io || !c->is_socket)
    return util_err (err, ENOTSUP, "tls: needs a socket");
  if (c->ssl)
    return util_err (err, EINVAL, "tls: already running");
  SSL *ssl = nbd_tls_new_ssl (tls, c->fd, server, err);
  if (!ssl)
    return -(err && err->code ? err->code : ENOMEM);
  if (!server && hostname && *hostname) {
    /* An address is checked as an address; only names go in SNI. */
    unsigned char addr[16];
    bool is_ip = inet_pton (AF_INET, hostname, addr) == 1
                 || inet_pton (AF_INET6, hostname, addr) == 1;
    if (!is_ip)
      SSL_set_tlsext_host_name (ssl, hostname);
    if (nbd_tls_verifies_peer (tls)) {
      int ok = is_ip
        ? X509_VERIFY_PARAM_set1_ip_asc (SSL_get0_param (ssl), hostname)
        : SSL_set1_host (ssl, hostname);
      if (ok != 1) {
        SSL_free (ssl);
        return nbd_tls_err (err, EINVAL, "tls: host name %s", hostname);
      }
    }
  }
  unsigned char *stage = malloc (TLS_STAGE_SIZE);
  if (!stage) {
    SSL_free (ssl);
    return util_errno (err, ENOMEM, "tls");
  }
  int fl = fcntl (c->fd, F_GETFL);
  fcntl (c->fd, F_SETFL, fl | O_NONBLOCK);

  /* The note lives for the handshake only; detached before ssl is kept. */
  struct nbd_tls_note note = { 0 };
  nbd_tls_attach_note (ssl, &note);
  for (;;) {
    ERR_clear_error ();
    int r = server ? SSL_accept (ssl) : SSL_connect (ssl);
    if (r == 1)
      break;
    int e = SSL_get_error (ssl, r);
    int saved = errno;
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      int w = tls_wait (c, e);
      if (w == 0)
        continue;
      SSL_free (ssl);
      free (stage);
      return util_errno (err, -w, "tls handshake with %s", c->peer);
    }
    long v = SSL_get_verify_result (ssl);
    int code = e == SSL_ERROR_SYSCALL && ERR_peek_error () == 0
               ? (saved ? saved : ECONNRESET) : EPROTO;
    int ret = v != X509_V_OK ? -EACCES : -code;
    /* An unknown user is worth naming even when the client hung up
     * on the certificate it got instead. */
    bool unknown = server && note.psk_offered && !note.user_known;
    if ((code == EPROTO || unknown)
        && psk_failure (&note, server, e, c->peer, err))
      ret = -EACCES;
    else if (v != X509_V_OK)
      nbd_tls_err (err, EACCES, "tls handshake with %s: certificate: %s",
                   c->peer, X509_verify_cert_error_string (v));
    else if (code != EPROTO)
      util_errno (err, code, "tls handshake with %s", c->peer);
    else
      nbd_tls_err (err, code, "tls handshake with %s", c->peer);
    SSL_free (ssl);
    free (stage);
    return ret;
  }
  nbd_tls_attach_note (ssl, NULL);
  if (!nbd_tls_psk_used (tls, ssl)) {
    /* Cannot happen with psk_refuse_certificate in place; kept so that a
     * PSK client never talks to a server that did not prove the key. */
    SSL_free (ssl);
    free (stage);
    return util_err (err, EACCES, "tls handshake with %s: the server did not "
                     "use the pre-shared key", c->peer);
  }
  pthread_mutex_lock (&c->wlock);
  pthread_mutex_lock (&c->tls_lock);
  c->ssl = ssl;
  c->stage = stage;
  pthread_mutex_unlock (&c->tls_lock);
  pthread_mutex_unlock (&c->wlock);
  if (server && note.user_known && SSL_session_reused (ssl))
    snprintf (c->tls_peer, sizeof c->tls_peer, "psk user %s", note.user);
  else if (server && nbd_tls_verifies_peer (tls))
    record_peer_name (c);
  return 0;
}

int
nbd_conn_tls_accept (struct nbd_conn *c, struct nbd_tls *tls,
                     struct r3m_error *err)
{
  return tls_handshake (c, tls, true, NULL, err);
}

int
nbd_conn_tls_connect (struct nbd_conn *c, struct nbd_tls *tls,
                      const char *hostname, struct r3m_error *err)
{
  return tls_handshake (c, tls, false, hostname, err);
}

/* ---- reading ----------------------------------------------------------- */

ssize_t
nbd_conn_read_some (struct nbd_conn *c, void *buf, size_t len)
{
  if (len == 0)
    return -EINVAL;
  if (c->ssl)
    return tls_read (c, buf, len);
  if (c->deadline_ns && !c->io) {
    int w = wait_fd (c, POLLIN);
    if (w < 0)
      return w;
  }
  for (;;) {
    ssize_t n = c->io ? c->io->read (c->io_user, buf, len)
                      : read (c->fd, buf, len);
    if (n >= 0 || c->io)
      return n;
    if (errno == EINTR)
      continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      return -ETIMEDOUT;        /* SO_RCVTIMEO ran out */
    return -errno;
  }
}

ssize_t
nbd_conn_read_now (struct nbd_conn *c, void *buf, size_t len)
{
  if (c->ssl || c->io || !c->is_socket || len == 0)
    return -EAGAIN;
  for (;;) {
    ssize_t n = recv (c->fd, buf, len, MSG_DONTWAIT);
    if (n >= 0)
      return n;
    if (errno != EINTR)
      return errno == EWOULDBLOCK ? -EAGAIN : -errno;
  }
}

ssize_t
nbd_conn_read_spin (struct nbd_conn *c, void *buf, size_t len,
                    uint64_t spin_ns)
{
  if (c->ssl || c->io || !c->is_socket || c->deadline_ns || len == 0)
    return -EAGAIN;
  /* On a Unix socket poll(2) with no timeout looks at the socket without
   * locking it, so the spinning does not hold up the peer queueing its
   * data (recv would take the socket lock each time).  Over TCP that lock
   * is what we want: while a recv owns the socket, the kernel leaves the
   * peer's arriving segments on the socket's backlog for this thread to
   * process, instead of processing them in the peer's send.  With 4 KiB
   * random writes that took 5% off fio's CPU per request, and fio is the
   * bottleneck there (docs/nbd-server.md). */
  bool tcp = c->family != AF_UNIX;
  struct pollfd p = { .fd = c->fd, .events = POLLIN };
  uint64_t last = util_now_ns (), end = last + spin_ns;
  for (unsigned i = 1;; i++) {
    if (tcp) {
      ssize_t n = nbd_conn_read_now (c, buf, len);
      if (n != -EAGAIN)
        return n;
    } else {
      int r = poll (&p, 1, 0);
      if (r > 0)
        return nbd_conn_read_some (c, buf, len);
      if (r < 0 && errno != EINTR)
        return -errno;
    }
    /* Reading the clock costs about as much as a try: every few. */
    if ((i & 3) == 0) {
      uint64_t now = util_now_ns ();
      if (now - last > NBD_CONN_SPIN_PREEMPTED_NS)
        return -EBUSY;
      if (now >= end)
        return -EAGAIN;
      last = now;
    }
  }
}

int
nbd_conn_read_exact (struct nbd_conn *c, void *buf, size_t len)
{
  unsigned char *p = buf;
  while (len > 0) {
    ssize_t n = nbd_conn_read_some (c, p, len);
    if (n == 0)
      return -ECONNRESET;
    if (n < 0)
      return (int) n;
    p += n;
    len -= (size_t) n;
  }
  return 0;
}

int
nbd_conn_discard (struct nbd_conn *c, uint64_t len)
{
  unsigned char buf[16384];
  while (len > 0) {
    size_t want = len < sizeof buf ? (size_t) len : sizeof buf;
    ssize_t n = nbd_conn_read_some (c, buf, want);
    if (n == 0)
      return -ECONNRESET;
    if (n < 0)
      return (int) n;
    len -= (uint64_t) n;
  }
  return 0;
}

/* ---- writing ----------------------------------------------------------- */

static ssize_t
plain_writev (struct nbd_conn *c, const struct iovec *iov, int iovcnt)
{
  if (c->io)
    return c->io->writev (c->io_user, iov, iovcnt);
  if (c->deadline_ns) {
    int w = wait_fd (c, POLLOUT);
    if (w < 0)
      return w;
  }
  for (;;) {
    ssize_t n;
    if (c->is_socket) {
      struct msghdr m = { .msg_iov = (struct iovec *) (uintptr_t) iov,
                          .msg_iovlen = (size_t) iovcnt };
      n = sendmsg (c->fd, &m, MSG_NOSIGNAL);
    } else
      n = writev (c->fd, iov, iovcnt);
    if (n >= 0)
      return n;
    if (errno == EINTR)
      continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      return -ETIMEDOUT;        /* SO_SNDTIMEO ran out */
    return -errno;
  }
}

/* Write all of iov; short writes resume in a local copy of the vector. */
static int
plain_writev_all (struct nbd_conn *c, const struct iovec *iov, int iovcnt)
{
  struct iovec local[64];
  while (iovcnt > 0) {
    int n = iovcnt < 64 ? iovcnt : 64;
    memcpy (local, iov, (size_t) n * sizeof *iov);
    struct iovec *v = local;
    int vn = n;
    while (vn > 0) {
      ssize_t w = plain_writev (c, v, vn);
      if (w < 0)
        return (int) w;
      if (w == 0)
        return -EPIPE;
      while (vn > 0 && (size_t) w >= v->iov_len) {
        w -= (ssize_t) v->iov_len;
        v++;
        vn--;
      }
      if (vn > 0) {
        v->iov_base = (char *) v->iov_base + w;
        v->iov_len -= (size_t) w;
      }
    }
    iov += n;
    iovcnt -= n;
  }
  return 0;
}

int
nbd_conn_writev_all (struct nbd_conn *c, const struct iovec *iov, int iovcnt)
{
  pthread_mutex_lock (&c->wlock);
  int r = c->ssl ? tls_writev_all (c, iov, iovcnt)
                 : plain_writev_all (c, iov, iovcnt);
  pthread_mutex_unlock (&c->wlock);
  return r;
}

bool
nbd_conn_can_write_by_ref (const struct nbd_conn *c)
{
  /* A deadline is kept by polling before each write, which the splice
   * loop does not do; SO_SNDTIMEO it honours. */
  return c->fd >= 0 && c->is_socket && !c->io && !c->ssl && !c->deadline_ns;
}

int
nbd_conn_writev_by_ref (struct nbd_conn *c, const struct iovec *hdr, int nh,
                        const void *data, size_t len)
{
  if (!nbd_conn_can_write_by_ref (c))
    return -EOPNOTSUPP;
  pthread_mutex_lock (&c->wlock);
  int r = splice_send (c->fd, &c->pipe, hdr, nh, data, len);
  pthread_mutex_unlock (&c->wlock);
  return r;
}

int
nbd_conn_write_all (struct nbd_conn *c, const void *buf, size_t len)
{
  struct iovec iov = { .iov_base = (void *) (uintptr_t) buf, .iov_len = len };
  return nbd_conn_writev_all (c, &iov, 1);
}
