/* A byte stream to an NBD peer, shared by the server and the client.
 *
 * struct nbd_conn wraps a connected socket (TCP, Unix, socketpair) or a
 * caller-supplied transport, and can be upgraded in place to TLS after
 * NBD_OPT_STARTTLS (see tls.h).  It gives the two things the protocol code
 * needs: "read exactly n bytes" and "write this iovec completely", with
 * errors as negative errno values.
 *
 * Threads.  One thread reads while any number of threads write:
 *  - reads (nbd_conn_read*, nbd_conn_discard) must come from one thread at
 *    a time (the connection's reader);
 *  - each nbd_conn_write* call is atomic with respect to other writers: its
 *    bytes go out contiguously, so a reply header and its data never
 *    interleave with another reply (an internal write lock);
 *  - nbd_conn_shutdown may be called from any thread at any time, to wake a
 *    reader or writer blocked on the peer;
 *  - nbd_conn_close ends everything and must not race with any other call.
 * With TLS, OpenSSL does not allow concurrent SSL_read and SSL_write on one
 * SSL object, so the socket is made non-blocking and every OpenSSL call is
 * made under a second, inner lock; waiting for the socket (poll) happens
 * outside it.  Lock order: write lock, then the TLS lock.
 *
 * Signals.  Writes never raise SIGPIPE (MSG_NOSIGNAL, also under TLS; the
 * by-reference write blocks it for the call); a peer that went away gives
 * -EPIPE or -ECONNRESET.
 *
 * URIs.  nbd_uri_parse understands the NBD URI standard
 * (https://github.com/NetworkBlockDevice/nbd/blob/master/doc/uri.md):
 *   nbd://[host][:port][/export]          TCP, port 10809 by default
 *   nbds://[host][:port][/export]         TCP, TLS required
 *   nbd+unix:///[export]?socket=PATH      Unix domain socket
 *   nbds+unix:///[export]?socket=PATH     Unix domain socket, TLS required
 * An absent host means localhost.  Query keys other than socket= are left to
 * the caller (tls-ca=, connections=, ...), which should reject the ones it
 * does not know with util_uri_check_params.
 */
#ifndef R3M_NBD_CONN_H
#define R3M_NBD_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <r3map/error.h>

#include "util/uri.h"

struct nbd_conn;
struct nbd_tls;

/* ---- creating and ending a connection --------------------------------- */

/* Wrap a connected stream socket (or any stream fd).  The connection owns
 * fd from now on, also when this fails (fd is then closed).  Sets
 * TCP_NODELAY on TCP sockets (and more: tcp_tune.c) and close-on-exec.
 * 0 or -errno. */
int nbd_conn_new (int fd, struct nbd_conn **out);

/* A transport that is not a file descriptor (tests, fuzzing).  read returns
 * bytes read (> 0), 0 at end of stream or -errno; writev returns bytes
 * written (> 0) or -errno; shutdown (may be NULL) wakes a blocked read;
 * close (may be NULL) releases user.  TLS is not available on it. */
struct nbd_conn_io {
  ssize_t (*read) (void *user, void *buf, size_t len);
  ssize_t (*writev) (void *user, const struct iovec *iov, int iovcnt);
  void (*shutdown) (void *user);
  void (*close) (void *user);
};
int nbd_conn_new_custom (const struct nbd_conn_io *io, void *user,
                         struct nbd_conn **out);

/* Shut the socket down in direction `how` (SHUT_RD, SHUT_WR, SHUT_RDWR)
 * without freeing anything: a reader blocked on it sees end of stream, a
 * blocked writer fails.  Safe from any thread, any number of times. */
void nbd_conn_shutdown (struct nbd_conn *c, int how);

/* Send a TLS close_notify if TLS is up (best effort, bounded by the
 * timeout), close the socket and free c.  NULL is a no-op. */
void nbd_conn_close (struct nbd_conn *c);

/* ---- properties --------------------------------------------------------- */

int nbd_conn_fd (const struct nbd_conn *c);      /* -1 for custom ones */
bool nbd_conn_is_tls (const struct nbd_conn *c);
/* The socket's address family (AF_UNIX, AF_INET, AF_INET6); 0 when it is
 * not a socket or a custom transport. */
int nbd_conn_family (const struct nbd_conn *c);

/* Describe the peer for messages: "127.0.0.1:53422", "[::1]:4000",
 * "unix socket", "custom"; plus " (tls: CN)" when a client certificate was
 * verified.  Always NUL-terminates buf. */
void nbd_conn_describe_peer (const struct nbd_conn *c, char *buf, size_t len);

/* Bound every later blocking read and write (and the TLS handshake) to ms
 * milliseconds of waiting for the peer; 0 = wait for ever (the default).
 * A call that runs out gets -ETIMEDOUT. */
int nbd_conn_set_timeout (struct nbd_conn *c, unsigned ms);

/* Fail every read and write that would still be waiting for the peer at
 * the absolute CLOCK_MONOTONIC time deadline_ns (util_now_ns) with
 * -ETIMEDOUT, however the peer trickles its bytes; 0 = no deadline (the
 * default).  Costs a poll(2) per system call while set, so it is meant
 * for short phases such as a handshake.  Not applied to custom
 * transports. */
void nbd_conn_set_deadline (struct nbd_conn *c, uint64_t deadline_ns);

/* ---- reading (one reader thread at a time) ----------------------------- */

/* Read up to len bytes: > 0 bytes read, 0 at end of stream, or -errno. */
ssize_t nbd_conn_read_some (struct nbd_conn *c, void *buf, size_t len);

/* What a plain socket holds right now, without waiting: > 0 bytes read,
 * 0 at end of stream, -EAGAIN when there is nothing (always for TLS and
 * custom transports, which may buffer on their own), or -errno. */
ssize_t nbd_conn_read_now (struct nbd_conn *c, void *buf, size_t len);

/* Busy polling: like nbd_conn_read_some, but it never sleeps; on a plain
 * socket it polls for up to spin_ns nanoseconds (so that a peer sending
 * data does not have to wake us) and then gives up with -EAGAIN.  Other
 * connections (TLS, custom) give -EAGAIN at once.  -EBUSY: the thread
 * lost its CPU while polling (a few tries took longer than
 * NBD_CONN_SPIN_PREEMPTED_NS), so the CPU is wanted by someone else,
 * perhaps the very peer we wait for: stop spinning for a while. */
#define NBD_CONN_SPIN_PREEMPTED_NS 100000u
ssize_t nbd_conn_read_spin (struct nbd_conn *c, void *buf, size_t len,
                            uint64_t spin_ns);

/* Read exactly len bytes.  0, -ECONNRESET when the stream ends first, or
 * another -errno. */
int nbd_conn_read_exact (struct nbd_conn *c, void *buf, size_t len);

/* Read and drop len bytes (an option or payload we will not use). */
int nbd_conn_discard (struct nbd_conn *c, uint64_t len);

/* ---- writing (any thread; each call is atomic) ------------------------- */

int nbd_conn_write_all (struct nbd_conn *c, const void *buf, size_t len);
/* iov is not modified.  iovcnt may exceed IOV_MAX. */
int nbd_conn_writev_all (struct nbd_conn *c, const struct iovec *iov,
                         int iovcnt);

/* Write the nh iovecs of hdr, then len bytes at data without copying them:
 * the socket refers to data's pages until the peer has the bytes, so data
 * must be memory that will not be reused for other bytes (splice_send.h).
 * -EOPNOTSUPP, with nothing written, where the connection cannot do that
 * (TLS, a custom transport, a deadline; nbd_conn_can_write_by_ref says so
 * in advance) or no pipe could be opened (out of descriptors). */
bool nbd_conn_can_write_by_ref (const struct nbd_conn *c);
int nbd_conn_writev_by_ref (struct nbd_conn *c, const struct iovec *hdr,
                            int nh, const void *data, size_t len);

/* ---- TLS (after NBD_OPT_STARTTLS was acknowledged) --------------------- */

/* Run the server side of the TLS handshake on c with a server context from
 * nbd_tls_new_server.  On failure the connection is unusable (close it).
 * 0 or -errno with a message (bad certificate, wrong protocol, ...). */
int nbd_conn_tls_accept (struct nbd_conn *c, struct nbd_tls *tls,
                         struct r3m_error *err);

/* Run the client side with a context from nbd_tls_new_client.  hostname
 * (may be NULL) is sent as SNI and, when the context verifies peers,
 * checked against the server certificate (a DNS name or an IP address). */
int nbd_conn_tls_connect (struct nbd_conn *c, struct nbd_tls *tls,
                          const char *hostname, struct r3m_error *err);

/* ---- NBD URIs, connecting and listening -------------------------------- */

struct nbd_uri {
  bool tls;                   /* nbds or nbds+unix */
  bool unix_socket;           /* nbd+unix or nbds+unix */
  char *host;                 /* TCP: never NULL ("localhost" if absent) */
  char *port;                 /* TCP: decimal, "10809" if absent */
  char *socket;               /* Unix: the socket= path */
  char *export_name;          /* the path without its leading '/'; "" is
                                 the default export */
  struct util_uri uri;        /* everything, for the caller's query keys */
};

/* Parse s.  The caller frees u with nbd_uri_free, also after a failure.
 * 0 or -EINVAL with a message. */
int nbd_uri_parse (const char *s, struct nbd_uri *u, struct r3m_error *err);
void nbd_uri_free (struct nbd_uri *u);

/* Connect to the address in u (TLS is not started: that comes after
 * NBD_OPT_STARTTLS).  Tries each address a host name resolves to.
 * 0 or -errno with a message naming the address. */
int nbd_uri_connect (const struct nbd_uri *u, struct nbd_conn **out,
                     struct r3m_error *err);

/* A listening socket made by nbd_listen_uri. */
struct nbd_listener {
  int fd;
  char *address;              /* the URI a client connects to, with the
                                 real port when port 0 was asked for */
  char *unlink_path;          /* Unix socket to remove on close, or NULL */
};

/* Bind and listen on every address of u (a host name may give both IPv4
 * and IPv6).  A stale Unix socket file (nobody accepting on it) is
 * replaced; a live one is an error (-EADDRINUSE).  *out is an array of *n
 * listeners the caller releases with nbd_listeners_free.  0 or -errno. */
int nbd_listen_uri (const struct nbd_uri *u, int backlog,
                    struct nbd_listener **out, size_t *n,
                    struct r3m_error *err);

/* Close the sockets, remove Unix socket files, free the array. */
void nbd_listeners_free (struct nbd_listener *l, size_t n);

#endif
