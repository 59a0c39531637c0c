/* NBD client: internal interfaces shared by client_*.c.
 *
 * Files:
 *   client_uri.c        nbd://, nbds://, nbd+unix:// URIs -> struct nbd_cli_opts
 *   client_handshake.c  fixed newstyle negotiation -> struct nbd_cli_export
 *   client_conn.c       one transmission-phase connection: request slots,
 *                       the send path and its queue, failure
 *   client_reply.c      the reply reader: simple replies and structured
 *                       chunks, every field checked
 *   client_backend.c    the r3m backend: a pool of connections, request
 *                       splitting, synchronous calls built on submit
 *
 * The byte stream under a connection (socket, TLS, custom transports) is
 * the shared struct nbd_conn (conn.h).
 *
 * Error convention: functions return 0 or -errno; those that can fail for a
 * reason a person must read take a struct r3m_error and start the message
 * with the URI.
 */
#ifndef R3M_NBD_CLIENT_H
#define R3M_NBD_CLIENT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include <r3map/backend.h>

#include "nbd/conn.h"
#include "nbd/proto.h"
#include "nbd/tls.h"

/* ---- options (client_uri.c) -------------------------------------------- */

#define NBD_CLI_DEFAULT_INFLIGHT    64
#define NBD_CLI_DEFAULT_CONNECTIONS 4
#define NBD_CLI_MAX_INFLIGHT        4096
#define NBD_CLI_MAX_CONNECTIONS     64
#define NBD_CLI_DEFAULT_CONNECT_TIMEOUT_MS 30000

struct nbd_cli_opts {
  char *what;              /* the URI as given, for messages */
  struct nbd_uri uri;      /* where to connect, export name, TLS or not */
  char *tls_ca, *tls_cert, *tls_key;
  char *tls_hostname;      /* name the certificate must carry */
  char *tls_psk_file;      /* pre-shared keys instead of certificates */
  char *tls_username;      /* whose key: the URI's user, else the login */
  unsigned inflight;       /* requests on the wire per connection */
  unsigned connections;    /* wanted; 1 unless the server allows more */
  unsigned connect_timeout_ms; /* bounds the handshake; 0 = none */
  unsigned request_timeout_ms; /* a request unanswered this long kills the
                                  connection; 0 = wait for ever */
  unsigned open_flags;     /* R3M_OPEN_* */
  bool extended_headers;   /* ask for NBD_OPT_EXTENDED_HEADERS (default) */
};

int nbd_cli_opts_parse (const char *uri, unsigned open_flags,
                        struct nbd_cli_opts *o, struct r3m_error *err);
void nbd_cli_opts_free (struct nbd_cli_opts *o);

/* ---- handshake (client_handshake.c) ------------------------------------ */

/* What negotiation settled for one connection. */
struct nbd_cli_export {
  uint64_t size;
  uint16_t flags;          /* transmission flags (NBD_FLAG_*) */
  bool structured;         /* structured replies */
  bool extended;           /* extended headers (implies structured) */
  bool has_meta;           /* base:allocation selected */
  uint32_t meta_id;        /* its context id on this connection */
  uint32_t min_block;      /* power of two, 1..64 KiB */
  uint32_t pref_block;
  uint32_t max_payload;    /* server's limit for READ/WRITE payloads */
  bool old_export_name;    /* fell back to NBD_OPT_EXPORT_NAME */
};

/* Negotiate on a fresh connection.  tls: the client context, required
 * when o->uri.tls.  On failure the caller closes s. */
int nbd_cli_handshake (struct nbd_conn *s, const struct nbd_cli_opts *o,
                       struct nbd_tls *tls, struct nbd_cli_export *ex,
                       struct r3m_error *err);

/* ---- requests ----------------------------------------------------------- */

/* Internal request kind carried in r3m_io.op beside enum r3m_io_op. */
#define NBD_CLI_OP_STATUS 100

/* Where a BLOCK_STATUS request stores its answer (io->priv[3]). */
struct nbd_cli_status {
  struct r3m_extent *ext;
  size_t max;
  size_t n;
};

/* Bookkeeping of an r3m_io that needs more than one NBD request: split
 * into parts, or a write followed by a flush to emulate FUA. */
struct nbd_cli_split {
  atomic_uint remaining;   /* parts not completed yet */
  atomic_int error;        /* first failure, 0 if none */
  bool flush_after;        /* FUA emulation: flush once the parts are done */
  bool flush_stage;        /* the flush is what is being sent now */
};

/* r3m_io.priv[] while the client owns a request. */
#define NBD_CLI_NEXT(io)   ((io)->priv[0])  /* queue link */
#define NBD_CLI_SPLIT(io)  ((io)->priv[1])  /* struct nbd_cli_split * or NULL */
#define NBD_CLI_CURSOR(io) ((io)->priv[2])  /* bytes already sent, uintptr_t */
#define NBD_CLI_STATUS(io) ((io)->priv[3])  /* struct nbd_cli_status * */

/* ---- connection (client_conn.c, client_reply.c) ------------------------ */

/* Content coverage of a structured read, to prove the server sent every
 * byte exactly once.  In-order chunks only move `end`; the rest go to a
 * sorted list of disjoint intervals. */
struct nbd_cli_cover {
  uint64_t end;            /* [start, end) covered contiguously */
  uint64_t (*iv)[2];       /* other covered intervals, sorted */
  size_t n, cap;
};

enum nbd_cli_slot_state {
  SLOT_FREE = 0,
  SLOT_SENDING,            /* a sender is writing its request */
  SLOT_SENT,               /* on the wire; only the reader touches it */
};

/* One request on the wire.  Cookie = gen << 32 | index. */
struct nbd_cli_slot {
  struct r3m_io *io;
  uint64_t off;
  uint64_t len;              /* 64-bit only with extended headers */
  uint16_t cmd;
  uint16_t cmd_flags;
  char *buf;               /* READ: destination; WRITE: source */
  uint32_t gen;
  uint8_t state;           /* enum nbd_cli_slot_state */
  bool replied;            /* final reply received (or failed) */
  bool normal;             /* counts against the normal window */
  uint64_t since;          /* CLOCK_MONOTONIC ns it went out */
  int result;              /* 0 or -errno, valid once replied */
  /* Reader-only state while a structured reply is in progress. */
  bool status_seen;
  struct nbd_cli_cover cover;
  uint32_t next_free;
};

struct nbd_cli_queue {
  struct r3m_io *head, *tail;
};

struct nbd_cli_pool;

struct nbd_cli_conn {
  struct nbd_cli_pool *pool;   /* NULL for a lone connection */
  unsigned index;              /* in the pool, for messages */
  const char *what;            /* the URI, for messages */
  struct nbd_conn *s;
  struct nbd_cli_export ex;
  uint32_t max_io;             /* READ/WRITE part size */
  unsigned request_timeout_ms; /* 0 = none */
  void *zero_buf;              /* source of zeros without WRITE_ZEROES */
  size_t zero_len;

  /* lock guards everything below it.  Lock order: a connection's lock is
   * never held while taking another connection's lock or while calling a
   * done callback. */
  pthread_mutex_t lock;
  pthread_cond_t wake;         /* sender thread: work or stopping */
  struct nbd_cli_slot *slots;
  uint32_t nslots;             /* window + urgent reserve */
  uint32_t nnormal;            /* window for normal requests */
  uint32_t free_head;          /* free list through next_free; nslots = end */
  uint32_t used, used_normal;
  struct nbd_cli_queue urgent, normal;
  bool sending;                /* some thread owns the write side */
  bool dead;                   /* no new requests; see error */
  bool stopping;               /* sender thread must exit */
  bool reader_exited;
  int error;                   /* -errno new requests fail with once dead */
  char msg[R3M_ERROR_MSG_MAX]; /* why it died, "" if unknown or alive */
  char req_msg[R3M_ERROR_MSG_MAX]; /* the server's last error message */
  int req_error;               /* and its -errno */
  bool threads;                /* reader and sender were started; set
                                  once before any request, then only read */
  bool joined;                 /* ... and have been joined (stop) */
  pthread_t reader, sender;
  atomic_uint load;            /* queued + in flight, for picking a conn;
                                  read without the lock */
};

/* Take ownership of a negotiated stream (also on failure).  *out is
 * freed by nbd_cli_conn_free. */
int nbd_cli_conn_new (struct nbd_conn *s, const struct nbd_cli_export *ex,
                      const char *what, unsigned inflight,
                      unsigned request_timeout_ms,
                      struct nbd_cli_conn **out, struct r3m_error *err);
/* Start the reader and sender threads. */
int nbd_cli_conn_start (struct nbd_cli_conn *c, struct r3m_error *err);
/* Queue io and send what the window allows.  0: done will be called;
 * -errno: it will not. */
int nbd_cli_conn_submit (struct nbd_cli_conn *c, struct r3m_io *io);
/* Mark the connection dead with `code`, wake its threads; requests on the
 * wire are failed by the reader, queued ones right here. */
void nbd_cli_conn_kill (struct nbd_cli_conn *c, int code);
/* Send NBD_CMD_DISC (best effort; no I/O may be in flight). */
void nbd_cli_conn_disc (struct nbd_cli_conn *c);
/* Kill, stop the threads, fail what is left.  After this no thread of c
 * runs, so siblings in a pool may be freed. */
void nbd_cli_conn_stop (struct nbd_cli_conn *c);
/* Stop if needed and release everything. */
void nbd_cli_conn_free (struct nbd_cli_conn *c);

/* The reader loop (client_reply.c): runs until the connection dies, then
 * fails every request it still holds.  The reader thread runs it; the fuzz
 * harness calls it inline. */
void nbd_cli_reader_run (struct nbd_cli_conn *c);
void *nbd_cli_reader_main (void *conn);
/* The reader's last act: fail every request still on the wire. */
void nbd_cli_conn_reader_exit (struct nbd_cli_conn *c);

/* Helpers shared by client_conn.c and client_reply.c. */
int nbd_cli_errno_from_nbd (uint32_t nbd_error);
/* Record that the slot's final reply is in (result) and complete it if its
 * request is fully sent.  Called without c->lock. */
void nbd_cli_slot_finish (struct nbd_cli_conn *c, uint32_t index, int result);
/* Record a reason the connection died (first one wins) and kill it. */
void nbd_cli_conn_fail (struct nbd_cli_conn *c, int code, const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));
/* The same for a failed read or write on the socket (doing: "sending a
 * request", "reading a reply"): a server that went away is "server closed
 * the connection" whether the sender or the reader notices first. */
void nbd_cli_conn_io_failed (struct nbd_cli_conn *c, int code,
                             const char *doing);

/* ---- pool and backend (client_backend.c) ------------------------------- */

struct nbd_cli_pool {
  struct nbd_cli_opts o;
  struct nbd_tls *tls;         /* client context for nbds, else NULL */
  struct nbd_cli_conn **conns;
  /* conns[0, nconns) are started and in use.  The first is there when
   * open returns; the others join from the opener thread as their
   * handshakes finish, so nconns only grows, and conns[i] is written
   * before nconns covers it. */
  atomic_uint nconns;
  atomic_uint next;            /* round robin start */
  atomic_int dead_code;        /* nonzero once a connection died */
  atomic_bool closing;         /* close began: the opener adds nobody */
  pthread_t opener;
  bool opener_started;
  pthread_mutex_t open_lock;   /* guards opener_joined */
  bool opener_joined;
};

/* Called by a connection that died, to kill its siblings. */
void nbd_cli_pool_conn_died (struct nbd_cli_pool *p, struct nbd_cli_conn *c,
                             int code);

/* Open the nbd/nbds/nbd+unix backend for uri. */
int nbd_cli_backend_open (const char *uri, unsigned flags,
                          struct r3m_backend **out, struct r3m_error *err);

#endif
