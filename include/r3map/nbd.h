/* r3map: the NBD server.
 *
 * Exports backends over the NBD protocol (fixed newstyle) to any client:
 * the Linux kernel, qemu, libnbd's tools, fio, or r3map's own client.  One
 * server has any number of named exports and listens on any number of TCP
 * and Unix sockets; it can also serve connections handed to it as file
 * descriptors (a socketpair to a kernel NBD device in the same process).
 *
 * Life cycle:
 *   r3m_nbd_server_options_init (&o);  ...adjust o...
 *   r3m_nbd_server_new (&o, &srv, &err);
 *   r3m_nbd_server_add_export (srv, "", backend, NULL, &err);
 *   r3m_nbd_server_listen (srv, "nbd+unix:///?socket=/run/r3map.sock", &err);
 *   r3m_nbd_server_start (srv, &err);          accept connections
 *   ...r3m_nbd_server_address (srv, i) says where it listens...
 *   r3m_nbd_server_shutdown (srv, 5000, &err); drain and flush
 *   r3m_nbd_server_free (srv);
 * Exports, meta contexts and listeners are added before start.  Backends
 * are borrowed: they must outlive the server.
 *
 * Protocol, limits and errors are documented in docs/protocol.md.
 */
#ifndef R3MAP_NBD_H
#define R3MAP_NBD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <r3map/backend.h>
#include <r3map/error.h>

#ifdef __cplusplus
extern "C" {
#endif

struct r3m_nbd_server;

enum r3m_nbd_tls_mode {
  R3M_NBD_TLS_OFF = 0,       /* STARTTLS is refused (NBD_REP_ERR_POLICY) */
  R3M_NBD_TLS_ON,            /* clients may upgrade with STARTTLS */
  R3M_NBD_TLS_REQUIRE,       /* options other than STARTTLS and ABORT fail
                                with NBD_REP_ERR_TLS_REQD until they do */
};

enum r3m_nbd_log_level {
  R3M_NBD_LOG_ERROR = 0,     /* the server or a backend failed */
  R3M_NBD_LOG_WARN,          /* a client misbehaved or was refused */
  R3M_NBD_LOG_INFO,          /* connections come and go */
  R3M_NBD_LOG_DEBUG,         /* every option */
};

/* Called from any server thread, possibly concurrently; msg has no
 * newline and is valid only during the call. */
typedef void (*r3m_nbd_log_fn) (void *user, enum r3m_nbd_log_level level,
                                const char *msg);

struct r3m_nbd_server_options {
  enum r3m_nbd_tls_mode tls;
  const char *tls_cert;      /* PEM certificate (chain); needed unless off
                                or tls_psk is given */
  const char *tls_key;       /* PEM private key; default: tls_cert */
  const char *tls_ca;        /* when set, clients must present a
                                certificate signed by this CA */
  unsigned workers;          /* threads per connection for backends whose
                                calls block (see docs/nbd-server.md);
                                default 16 */
  unsigned max_connections;  /* further connections are closed at once;
                                default 256 */
  unsigned handshake_timeout_ms; /* a client that has not finished option
                                haggling by then is dropped; default
                                30000; 0 = none */
  r3m_nbd_log_fn log;        /* NULL: silent */
  void *log_user;
  enum r3m_nbd_log_level log_level; /* messages above it are dropped;
                                default R3M_NBD_LOG_WARN */
  unsigned busy_poll_us;     /* inline exports (memory:): before sleeping
                                for the next request, poll the socket this
                                long while the client keeps sending (one
                                connection at a time, only with 2+ CPUs;
                                see docs/nbd-server.md); default 50;
                                0 = never */
  unsigned batch_hold_us;    /* inline exports (memory:): while replies
                                wait to be sent, poll this long (per batch)
                                for more requests to answer in the same
                                send; never while half of the client's
                                window (as seen) waits, so never for one
                                or two requests in flight; backs off when
                                holds find nothing (only with 2+ CPUs, not
                                with TLS; see docs/nbd-server.md); default
                                20; 0 = never */
  const char *tls_psk;       /* TLS pre-shared keys, "user:hexkey" lines
                                (GnuTLS psktool's format): a client naming
                                a user of the file and proving its key gets
                                in (TLS 1.3), besides or instead of
                                tls_cert; read once, at r3m_nbd_server_new */
};

void r3m_nbd_server_options_init (struct r3m_nbd_server_options *o);

/* Strings in o are copied; TLS files are loaded now, so a bad certificate
 * fails here.  0 or -errno. */
int r3m_nbd_server_new (const struct r3m_nbd_server_options *o,
                        struct r3m_nbd_server **out, struct r3m_error *err);

/* ---- exports ------------------------------------------------------------ */

struct r3m_nbd_export_options {
  const char *description;   /* shown by NBD_OPT_LIST and INFO; may be NULL */
  bool read_only;            /* advertise READ_ONLY, refuse writes (EPERM);
                                also implied by a read-only backend */
  uint32_t min_block;        /* power of two <= 64 KiB; requests must be
                                aligned to it (EINVAL otherwise); 0 = 1, no
                                constraint (a backend that needs aligned
                                I/O gets read-modify-write from its handle) */
  uint32_t preferred_block;  /* power of two; 0 = the largest of 4096,
                                min_block, the backend's alignment and its
                                preferred size, at most max_payload */
  uint32_t max_payload;      /* largest READ/WRITE, 512 B to 64 MiB;
                                0 = 32 MiB */
  bool no_multi_conn;        /* do not advertise CAN_MULTI_CONN (it is
                                advertised by default: every connection
                                shares the backend, so a flush on one covers
                                writes completed on all) */
};

/* Export `backend` under `name` ("" is the default export, which
 * NBD_OPT_EXPORT_NAME with an empty name and nbd://host/ reach).  Names
 * are unique, at most 4096 bytes, without NUL.  o may be NULL. */
int r3m_nbd_server_add_export (struct r3m_nbd_server *srv, const char *name,
                               struct r3m_backend *backend,
                               const struct r3m_nbd_export_options *o,
                               struct r3m_error *err);

/* ---- metadata contexts -------------------------------------------------- */

/* A metadata context an export offers to NBD_CMD_BLOCK_STATUS besides the
 * built-in base:allocation (which comes from r3m_backend_extents).  The
 * migration layer uses this for r3map:dirty and r3map:final.
 *
 * Flags in the extents are the context's own (32 bits on the wire). */
struct r3m_nbd_meta_context {
  const char *name;          /* "namespace:leaf", e.g. "r3map:dirty";
                                copied */
  /* A connection entered transmission with this context selected
   * (NBD_OPT_GO or EXPORT_NAME after SET_META_CONTEXT).  *state is given
   * to query and close for that connection.  0, or -errno to fail the GO.
   * NULL: no per-connection state. */
  int (*open) (void *user, void **state);
  /* Describe [off, off+len) from off: fill at most max extents (max >= 1)
   * in order, set *n >= 1, return 0 or -errno (sent as an NBD error).
   * Extents may cover less than len (the client asks again) or more (the
   * server trims them).  Called from any connection thread, concurrently. */
  int (*query) (void *user, void *state, uint64_t off, uint64_t len,
                struct r3m_extent *ext, size_t max, size_t *n);
  /* The connection ended.  NULL: nothing to do. */
  void (*close) (void *user, void *state);
  void *user;
};

/* Offer ctx on the export called export_name.  Names are unique per
 * export and "base:allocation" is taken. */
int r3m_nbd_server_add_meta_context (struct r3m_nbd_server *srv,
                                     const char *export_name,
                                     const struct r3m_nbd_meta_context *ctx,
                                     struct r3m_error *err);

/* ---- listening and serving ---------------------------------------------- */

/* Bind and listen on an NBD URI: nbd://HOST[:PORT] (port 0 picks a free
 * one), nbd+unix:///?socket=PATH; nbds:// and nbds+unix:// make TLS
 * mandatory on that listener (needs a certificate).  A host name may bind
 * several addresses.  The export part of the URI must be empty. */
int r3m_nbd_server_listen (struct r3m_nbd_server *srv, const char *uri,
                           struct r3m_error *err);

/* Start accepting on every listener (in a thread of the server's). */
int r3m_nbd_server_start (struct r3m_nbd_server *srv, struct r3m_error *err);

/* The addresses clients connect to, one per bound socket, with the real
 * port: "nbd://127.0.0.1:10809", "nbd+unix:///?socket=/tmp/s"; the scheme
 * says nbds when the listener requires TLS.  Valid until shutdown, which
 * closes the listeners (the count is 0 after it). */
size_t r3m_nbd_server_address_count (const struct r3m_nbd_server *srv);
const char *r3m_nbd_server_address (const struct r3m_nbd_server *srv,
                                    size_t i);

/* Serve one already connected stream socket (the server owns fd from now
 * on, also on failure) in a thread of its own.  Works before and after
 * start. */
int r3m_nbd_server_serve_fd (struct r3m_nbd_server *srv, int fd,
                             struct r3m_error *err);

/* Stop: close the listeners, refuse further options with
 * NBD_REP_ERR_SHUTDOWN, let requests in progress finish (requests not yet
 * started get NBD_ESHUTDOWN), wait up to grace_ms for clients to
 * disconnect, then cut the remaining connections; finally flush every
 * writable export's backend.  Returns 0 or the first flush error.
 * Idempotent; safe from any thread except the server's own. */
int r3m_nbd_server_shutdown (struct r3m_nbd_server *srv, unsigned grace_ms,
                             struct r3m_error *err);

/* Shut down (grace 0) if still running, and free.  NULL is a no-op. */
void r3m_nbd_server_free (struct r3m_nbd_server *srv);

struct r3m_nbd_server_stats {
  uint64_t connections;      /* accepted in total */
  uint64_t active;           /* open now */
  uint64_t requests;         /* transmission requests handled */
  uint64_t bytes_read;       /* payload sent to clients */
  uint64_t bytes_written;    /* payload received from clients */
  uint64_t errors;           /* requests answered with an error */
  uint64_t holds;            /* times replies waited while the connection
                                polled for more requests (batch_hold_us) */
  uint64_t holds_found;      /* ... and more requests came */
};

void r3m_nbd_server_stats (struct r3m_nbd_server *srv,
                           struct r3m_nbd_server_stats *st);

#ifdef __cplusplus
}
#endif
#endif /* R3MAP_NBD_H */
