/* Internals of the NBD server (include/r3map/nbd.h).
 *
 * Files:
 *   server.c            the server object: exports, listeners, the accept
 *                       thread, connection threads, shutdown, stats
 *   server_handshake.c  option haggling (fixed newstyle) up to GO
 *   server_meta.c       metadata contexts: matching names, base:allocation
 *   server_request.c    one request: validation and execution
 *   server_reply.c      encoding replies (simple and structured)
 *   server_inline.c     transmission on the reader thread (cheap backends)
 *   server_pool.c       transmission with a worker pool (blocking backends)
 *
 * Threads.  The server has one accept thread.  Each connection has one
 * thread that runs the handshake and then reads requests; for a backend
 * whose calls are cheap and never block (memory:, declared by
 * async_threads == 0 and no submit slot) that thread also executes them and
 * batches the replies, which costs no thread hand-off at all.  For other
 * backends it queues requests to a per-connection pool of workers, which
 * execute and reply out of order; writers share the connection through
 * nbd_conn's atomic writev.
 *
 * Locks, in order (never take an earlier one while holding a later one):
 *   srv->shutdown_lock   serialises r3m_nbd_server_shutdown
 *   srv->lock    exports, listeners, the connection list, state, totals
 *   pool->lock   one connection's queue and worker bookkeeping
 *   (nbd_conn's own write and TLS locks, inside either)
 */
#ifndef R3M_NBD_SERVER_H
#define R3M_NBD_SERVER_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <r3map/nbd.h>

#include "nbd/conn.h"
#include "nbd/proto.h"

/* Option data we are willing to buffer; longer options are skipped and
 * answered NBD_REP_ERR_TOO_BIG.  Names are at most 4096 bytes, so this
 * leaves room for many meta context queries. */
#define NBD_SRV_MAX_OPTION     (64u * 1024)
/* Longer than this is not worth even skipping: hard disconnect. */
#define NBD_SRV_MAX_SKIP       (64u << 20)
/* Options per handshake before we call it abuse. */
#define NBD_SRV_MAX_OPTIONS    4096
/* Context ids a BLOCK_STATUS payload may name (a bit each in req.only);
 * a payload longer than the most ids it can hold is malformed. */
#define NBD_SRV_MAX_FILTER_IDS 64
/* Extents per block status chunk (the spec allows up to 2^20). */
#define NBD_SRV_MAX_EXTENTS    16384
/* Pool: requests and payload bytes in flight per connection. */
#define NBD_SRV_POOL_INFLIGHT  64
#define NBD_SRV_POOL_BYTES     (64u << 20)
/* Send buffer asked for on Unix sockets (see tune_socket in server.c). */
#define NBD_SRV_UNIX_SNDBUF    (4 << 20)
/* Longest error message we put in a structured ERROR chunk. */
#define NBD_SRV_MSG_MAX        120
/* Room for any reply's header bytes (chunk header + error + message),
 * extended headers being the longer ones. */
#define NBD_SRV_HDR_MAX        (NBD_EXT_REPLY_SIZE + 8 + NBD_SRV_MSG_MAX)
/* An extended request's payload longer than this cannot be a payload any
 * NBD_INFO_BLOCK_SIZE allows: hard disconnect instead of consuming it. */
#define NBD_SRV_EXT_MAX_PAYLOAD UINT32_MAX

/* ---- exports and metadata contexts ---------------------------------- */

struct nbd_srv_meta {
  char *name;
  bool allocation;            /* the built-in base:allocation */
  struct r3m_nbd_meta_context ctx;   /* custom: callbacks (name = ours) */
};

struct nbd_srv_export {
  char *name;
  char *description;          /* "" when none */
  struct r3m_backend *backend;
  uint64_t size;
  bool read_only;
  bool multi_conn;
  bool inline_io;             /* execute on the reader thread */
  unsigned char *direct;      /* the store's memory when the backend
                                 offers direct access (inline only) */
  bool fast_zero;             /* backend zeroes faster than it writes */
  uint32_t min_block, pref_block, max_payload;
  struct nbd_srv_meta *metas; /* metas[0] is base:allocation */
  size_t nmetas;
};

/* ---- the server -------------------------------------------------------- */

struct nbd_srv_listener {
  int fd;
  bool tls_required;
};

struct nbd_srv_conn;
struct reap;

struct r3m_nbd_server {
  struct r3m_nbd_server_options opts; /* strings point to our copies */
  char *tls_cert, *tls_key, *tls_ca, *tls_psk;
  struct nbd_tls *tls;                /* NULL when TLS is off */

  pthread_mutex_t shutdown_lock;      /* one shutdown at a time; taken
                                         before lock */
  pthread_mutex_t lock;               /* guards everything below */
  pthread_cond_t conns_changed;       /* nconns went down */
  struct nbd_srv_export **exports;
  size_t nexports;
  struct nbd_listener *bound;         /* all listening sockets */
  struct nbd_srv_listener *listeners; /* parallel to bound */
  size_t nbound;
  struct nbd_srv_conn *conns;         /* open connections (list) */
  atomic_size_t nconns;               /* changed under lock; the inline
                                         path reads it without */
  bool frozen;                        /* serving: exports are fixed */
  bool started;                       /* accept thread running */
  bool stopping;                      /* shutdown began */
  atomic_bool stop_flag;              /* = stopping, read without lock */
  bool stopped;                       /* shutdown finished */
  int wake_fd;                        /* eventfd: stop the accept thread */
  pthread_t accept_thread;
  struct reap *reap;                  /* finished threads to join */
  struct r3m_nbd_server_stats totals; /* of closed connections */
  bool spin_ok;                       /* busy polling is allowed (more
                                         than one CPU, busy_poll_us) */
  bool hold_ok;                       /* so is holding batches (more
                                         than one CPU, batch_hold_us) */
  atomic_int spinners;                /* connections busy polling now */
};

/* ---- connections --------------------------------------------------------- */

/* A context selected by SET_META_CONTEXT and opened at GO. */
struct nbd_srv_sel {
  uint32_t id;
  const struct nbd_srv_meta *meta;
  void *state;                /* from ctx.open */
  bool opened;
};

struct nbd_srv_conn {
  struct r3m_nbd_server *srv;
  struct nbd_srv_conn *prev, *next;   /* srv->conns, under srv->lock */
  struct nbd_conn *conn;
  pthread_t thread;
  bool tls_required;
  char peer[192];

  /* Set by the handshake, read-only in transmission. */
  bool fixed, no_zeroes, structured;
  bool extended;              /* NBD_OPT_EXTENDED_HEADERS: 32-byte
                                 headers both ways (implies structured) */
  const struct nbd_srv_export *exp;
  uint16_t eflags;
  struct nbd_srv_sel *sel;    /* selected contexts */
  size_t nsel;
  char *sel_export;           /* the export they were selected for */

  /* Transmission. */
  atomic_bool wrote;          /* a write since the last flush */
  atomic_uint_fast64_t requests, bytes_read, bytes_written, errors;
  atomic_uint_fast64_t holds, holds_found;
};

/* One request on its way through the server. */
struct nbd_srv_req {
  uint16_t flags, type;
  uint64_t cookie, off;
  uint64_t len;               /* 32 bits unless extended headers */
  uint64_t only;              /* BLOCK_STATUS payload form: the context
                                 ids asked for (bit id - 1), 0 if the
                                 payload was malformed; read only when
                                 flags has NBD_CMD_FLAG_PAYLOAD_LEN */
  int error;                  /* NBD_E*: fail without executing */
  const char *msg;            /* with error: why (static string) */
  void *buf;                  /* READ: data; WRITE: payload */
  size_t cap;                 /* of buf, when owned */
  struct nbd_srv_req *next;   /* pool queue and free list */
};

/* What executing a request produced. */
struct nbd_srv_result {
  int error;                  /* NBD_E*, 0 = success */
  char msg[NBD_SRV_MSG_MAX];  /* with error */
  void *data;                 /* READ: len bytes; BLOCK_STATUS: encoded
                                 chunks (malloc'ed, caller frees) */
  size_t len;
  bool data_owned;
};

/* Buffered reading of requests (server_request.c).  The buffer lets one
 * read(2) pick up many small pipelined requests. */
struct nbd_srv_reader {
  struct nbd_conn *conn;
  unsigned char *buf;
  size_t cap, start, end;     /* unread bytes are buf[start, end) */
  size_t header_size;         /* of a request: compact or extended */
  /* The compact magic, widened so that UINT64_MAX (extended headers)
   * never matches: the compact path tests one magic, as it always did. */
  uint64_t compact_magic;
  /* Called before a read that may block (the inline path sends the
   * replies it batched); may be NULL.  Returns 0 or -errno. */
  int (*before_block) (void *arg);
  void *arg;
  /* Busy polling (inline path only): a fill first tries to read without
   * sleeping for up to spin_ns, holding *spin_token (one spinner per
   * server), as long as spinning keeps paying off: see fill_read in
   * server_request.c. */
  uint64_t spin_ns;           /* 0: never spin */
  bool spin_requests;         /* also between requests, not only within
                                 a large payload (Unix sockets) */
  bool streamed;              /* the last payload was read straight from
                                 the socket: spin for the next request */
  atomic_int *spin_token;
  bool spin_off;              /* the client went quiet: sleep at once */
  unsigned spin_skip;         /* fills left without spinning (backoff
                                 after losing the CPU while spinning) */
  unsigned spin_backoff;      /* the next such backoff */
  /* Holding the batch (inline path): a fill that finds the socket empty
   * while replies wait polls up to hold_ns per batch for more requests to
   * answer in the same send; see fill_hold. */
  uint64_t hold_ns;           /* 0: never hold */
  unsigned (*pending) (void *arg); /* replies waiting in the batch */
  unsigned hold_depth;        /* the most replies ever waiting at once:
                                 the client's window, as far as seen;
                                 no hold from half of it on */
  uint64_t hold_until;        /* this batch's deadline; 0: not set yet */
  bool hold_gained;           /* holding found requests for this batch */
  atomic_uint_fast64_t *holds, *holds_found; /* the connection's stats */
  unsigned hold_skip;         /* fills left without holding (backoff
                                 after a hold that found nothing) */
  unsigned hold_backoff;      /* the next such backoff */
};

int nbd_srv_reader_init (struct nbd_srv_reader *r, struct nbd_conn *conn,
                         size_t cap);
/* From now on requests have extended headers (after init). */
void nbd_srv_reader_set_extended (struct nbd_srv_reader *r);
void nbd_srv_reader_free (struct nbd_srv_reader *r);
/* Make n (<= cap) bytes available at buf + start.  0; 1 when the stream
 * ended cleanly before any of them; -ECONNRESET when it ended mid-way;
 * or another -errno. */
int nbd_srv_reader_need (struct nbd_srv_reader *r, size_t n);
/* Consume len bytes into dst (len may exceed cap). */
int nbd_srv_reader_copy (struct nbd_srv_reader *r, void *dst, size_t len);
/* Consume and drop len bytes. */
int nbd_srv_reader_skip (struct nbd_srv_reader *r, uint64_t len);
/* Parse the request header at buf + start (header_size available) and
 * consume it.  0, or -EPROTO for a bad magic, or (extended headers) an
 * error consuming a payload the command does not take, -EMSGSIZE when
 * that payload is too long to consume.  An extended header is turned into
 * the compact form: WRITE loses NBD_CMD_FLAG_PAYLOAD_LEN; a WRITE without
 * it, or another command with it (its payload consumed here), keeps or
 * gets the flag and length 0, so the flag check refuses it (EINVAL).
 * BLOCK_STATUS with it keeps it, its payload parsed into len and only. */
int nbd_srv_reader_header (struct nbd_srv_reader *r, struct nbd_srv_req *req);
/* What a failure of nbd_srv_reader_header means, for the log. */
const char *nbd_srv_header_error (int r);

/* server.c */
void nbd_srv_log (struct r3m_nbd_server *srv, enum r3m_nbd_log_level level,
                  const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));
bool nbd_srv_stopping (struct r3m_nbd_server *srv);
const struct nbd_srv_export *nbd_srv_find_export (struct r3m_nbd_server *srv,
                                                  const char *name,
                                                  size_t len);
/* Run one connection to its end on the calling thread and free it (also
 * used by the fuzz harness). */
void nbd_srv_conn_run (struct nbd_srv_conn *sc);
struct nbd_srv_conn *nbd_srv_conn_new (struct r3m_nbd_server *srv,
                                       struct nbd_conn *conn,
                                       bool tls_required);

/* server_handshake.c: 0 = enter transmission, < 0 = close. */
int nbd_srv_handshake (struct nbd_srv_conn *sc);
uint16_t nbd_srv_eflags (const struct nbd_srv_conn *sc,
                         const struct nbd_srv_export *e);

/* server_meta.c */
/* Call cb for each context of e matching query (LIST semantics when
 * list, else SET: exact names only).  Returns what cb returned if < 0. */
int nbd_srv_meta_match (const struct nbd_srv_export *e, const char *query,
                        size_t qlen, bool list,
                        int (*cb) (const struct nbd_srv_meta *m, void *arg),
                        void *arg);
int nbd_srv_meta_open (struct nbd_srv_conn *sc);
void nbd_srv_meta_close (struct nbd_srv_conn *sc);
void nbd_srv_meta_clear (struct nbd_srv_conn *sc);
/* Encode one BLOCK_STATUS chunk per selected context for req into
 * res->data.  Sets res->error on failure. */
void nbd_srv_block_status (struct nbd_srv_conn *sc,
                           const struct nbd_srv_req *req,
                           struct nbd_srv_result *res);

/* server_request.c */
/* Check a request just read (header fields set).  Sets req->error/msg. */
void nbd_srv_validate (struct nbd_srv_conn *sc, struct nbd_srv_req *req);
/* Execute a valid request.  READ data goes to req->buf (len bytes). */
void nbd_srv_execute (struct nbd_srv_conn *sc, struct nbd_srv_req *req,
                      struct nbd_srv_result *res);
int nbd_srv_errno_to_nbd (int negative_errno);
/* Flush the backend if this connection wrote since its last flush. */
void nbd_srv_flush_if_wrote (struct nbd_srv_conn *sc);

/* server_reply.c: fill hdr (NBD_SRV_HDR_MAX bytes) and up to 2 iovecs;
 * returns the number of iovecs. */
int nbd_srv_encode_reply (const struct nbd_srv_conn *sc,
                          const struct nbd_srv_req *req,
                          const struct nbd_srv_result *res,
                          unsigned char *hdr, struct iovec *iov);
void nbd_srv_result_fail (struct nbd_srv_result *res, int nbd_error,
                          const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));

/* server_inline.c and server_pool.c: run transmission to its end. */
void nbd_srv_transmit_inline (struct nbd_srv_conn *sc);
void nbd_srv_transmit_pool (struct nbd_srv_conn *sc);

#endif
