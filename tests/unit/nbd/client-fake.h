/* A scripted fake NBD server for the client tests.
 *
 * fake_start listens on a Unix socket in a fresh temporary directory and
 * runs `script` on its own thread for every connection the client makes.
 * Scripts speak the protocol with the fk_* helpers, which write exactly
 * what they are told, so a script can send anything a hostile server
 * would.  A helper that sees the client do something unexpected records
 * it (fake_failed) instead of asserting: cmocka asserts only work on the
 * test's own thread, which checks fake_failed at the end.
 *
 * fake_stop shuts every connection down (a script blocked on the client
 * wakes up and returns), joins the threads and removes the directory.
 */
#ifndef TESTS_NBD_CLIENT_FAKE_H
#define TESTS_NBD_CLIENT_FAKE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define FAKE_MAX_CONNS 16
#define FAKE_META_ID   7
#define FAKE_OFFS      8192   /* request offsets remembered per connection */

struct fake;

struct fake_conn {
  struct fake *f;
  int fd;
  int index;                 /* 0 for the first connection */
  bool ext;                  /* extended headers agreed: requests are read
                                and chunks written in that form */
  /* Offsets of requests by cookie (low bits), which extended reply
   * headers echo. */
  uint64_t offs[FAKE_OFFS];
};

typedef void (*fake_script) (struct fake_conn *c);

struct fake_cfg {
  uint16_t hs_flags;         /* server handshake flags */
  bool structured;           /* agree to structured replies */
  bool extended;             /* agree to extended headers */
  bool meta;                 /* agree to base:allocation (FAKE_META_ID) */
  bool go_unsupported;       /* ERR_UNSUP to GO, then expect EXPORT_NAME */
  uint64_t size;
  uint16_t tflags;           /* transmission flags; HAS_FLAGS is added */
  bool block_size;           /* send INFO_BLOCK_SIZE with: */
  uint32_t min, pref, max;
};

/* Defaults: fixed newstyle + NO_ZEROES, structured, meta, 1 MiB,
 * flush/FUA/trim/write zeroes advertised. */
struct fake_cfg fake_default_cfg (void);

struct fake {
  char dir[64];
  char sock[96];
  char uri[160];             /* nbd+unix:///?socket=... */
  int lfd;
  fake_script script;
  void *user;                /* for the script */
  struct fake_cfg cfg;       /* for scripts that use fake_handshake */
  pthread_t acceptor;
  pthread_mutex_t lock;      /* guards everything below */
  pthread_cond_t cond;
  int nconns;
  struct fake_conn conns[FAKE_MAX_CONNS];
  pthread_t threads[FAKE_MAX_CONNS];
  int finished;              /* scripts that returned */
  bool stopping;
  char failure[256];         /* first unexpected thing, "" if none */
  /* What fake_handshake saw. */
  uint32_t go_len;           /* option length of the last GO */
  uint16_t go_infos;         /* info requests in it */
  bool go_asked_block_size;
  uint32_t client_flags;
  bool asked_extended, asked_structured;
};

struct fake *fake_start (fake_script script, void *user,
                         const struct fake_cfg *cfg);
/* true if no script recorded a failure (which is printed otherwise). */
bool fake_stop (struct fake *f);
/* Wait until n scripts have returned. */
void fake_wait_finished (struct fake *f, int n);
const char *fake_failed (struct fake *f);    /* NULL if all was well */
void fake_fail (struct fake *f, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));

/* ---- raw I/O (false once the client went away) --------------------------- */
bool fk_read (struct fake_conn *c, void *buf, size_t n);
bool fk_write (struct fake_conn *c, const void *buf, size_t n);

/* ---- handshake ---------------------------------------------------------- */
/* Greeting, then answer options as f->cfg says until GO (or EXPORT_NAME)
 * finishes.  false if the client left or misbehaved. */
bool fake_handshake (struct fake_conn *c);
void fk_greeting (struct fake_conn *c, uint16_t flags);
/* Read one option: its code, and up to cap bytes of data (rest dropped). */
bool fk_read_option (struct fake_conn *c, uint32_t *opt, uint32_t *len,
                     void *data, size_t cap);
void fk_opt_reply (struct fake_conn *c, uint32_t opt, uint32_t type,
                   const void *data, uint32_t len);

/* ---- transmission ------------------------------------------------------- */
/* Once extended headers are agreed (c->ext), fk_read_req reads extended
 * requests (checking PAYLOAD_LEN) and fk_chunk, fk_data, fk_hole, fk_done,
 * fk_error and fk_status write 32-byte headers echoing the request's
 * offset, fk_status as BLOCK_STATUS_EXT; fk_simple stays simple. */
struct fk_req {
  uint16_t flags, type;
  uint64_t cookie, off;
  uint64_t len;              /* 64-bit effect lengths with extended headers */
  void *data;                /* WRITE payload (malloc'ed), else NULL */
};
/* Read one request (and a WRITE's payload).  false at end of stream. */
bool fk_read_req (struct fake_conn *c, struct fk_req *r);
/* An extended reply header exactly as given (no payload). */
void fk_ext_header (struct fake_conn *c, uint16_t flags, uint16_t type,
                    uint64_t cookie, uint64_t off, uint64_t len);
void fk_simple (struct fake_conn *c, uint64_t cookie, uint32_t error,
                const void *data, uint32_t len);
void fk_chunk (struct fake_conn *c, uint16_t flags, uint16_t type,
               uint64_t cookie, const void *payload, uint32_t len);
void fk_data (struct fake_conn *c, uint64_t cookie, bool done, uint64_t off,
              const void *data, uint32_t len);
void fk_hole (struct fake_conn *c, uint64_t cookie, bool done, uint64_t off,
              uint32_t len);
void fk_done (struct fake_conn *c, uint64_t cookie);   /* NONE + DONE */
void fk_error (struct fake_conn *c, uint64_t cookie, bool done,
               uint32_t error, const char *msg);
/* BLOCK_STATUS for context id with n (length, flags) pairs; lengths past
 * 32 bits only with extended headers (BLOCK_STATUS_EXT). */
void fk_status (struct fake_conn *c, uint64_t cookie, bool done,
                uint32_t id, const uint64_t (*ext)[2], uint32_t n);

/* Serve a memory disk of f->cfg.size bytes shared by all connections
 * (struct fake_mem in user), answering correctly but in a scrambled
 * order, reads split into up to 3 chunks, until the client disconnects. */
struct fake_mem {
  pthread_mutex_t lock;
  unsigned char *bytes;
  unsigned seed;
  unsigned requests[FAKE_MAX_CONNS];   /* per connection */
  unsigned die_after;        /* if > 0: hang up after that many requests
                                on a connection, answering none of the
                                last batch */
};
void fake_serve_memory (struct fake_conn *c);
/* Handshake with f->cfg, then fake_serve_memory. */
void fake_memory_script (struct fake_conn *c);


/* ---- client side: tracked asynchronous requests ----------------------- */
#include <r3map/backend.h>

struct tracker {
  pthread_mutex_t lock;      /* guards pending and every treq's fields */
  pthread_cond_t cond;
  int pending;
};

struct treq {
  struct r3m_io io;
  struct tracker *t;
  int calls;                 /* done callbacks seen: must end up 1 */
  int result;
};

void tracker_init (struct tracker *t);
void tracker_destroy (struct tracker *t);
/* Submit q; a refused submit counts as a call with its result. */
int tsubmit (struct r3m_backend *b, struct tracker *t, struct treq *q,
             enum r3m_io_op op, void *buf, size_t len, uint64_t off,
             unsigned flags);
void twait (struct tracker *t);
#endif
