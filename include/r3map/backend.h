/* r3map: storage backends.
 *
 * A backend is a flat array of bytes of fixed size: memory, a file or block
 * device, a directory of chunk files, Redis, S3, or a remote NBD server.  The
 * region engine, the NBD server and `r3map copy` all talk to backends through
 * this one interface.
 *
 * Contract every backend keeps (the handle enforces what it can):
 *  - Reads fill the whole buffer.  Data that was never written reads as
 *    zeros, whatever the store says about it ("missing" keys, holes).
 *  - Any byte range inside [0, size) is accepted.  A backend that can only do
 *    aligned I/O declares `align` and the handle does the read-modify-write.
 *  - Calls on different ranges may run concurrently from many threads.
 *    Overlapping concurrent writes leave one of the writes, unspecified which.
 *  - flush returns once every write that completed before it is durable in
 *    the store (a no-op for volatile stores such as memory).
 *  - Errors are negative errno values: -EINVAL for a read outside the backend,
 *    -ENOSPC for a write outside it, -EPERM for a write to a read-only one,
 *    -EIO (or something more precise) when the store fails.
 *
 * Ownership: r3m_backend_open/r3m_backend_new return a handle that the caller
 * owns and releases with r3m_backend_close, once no I/O is in flight on it.
 */
#ifndef R3MAP_BACKEND_H
#define R3MAP_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <r3map/error.h>

#ifdef __cplusplus
extern "C" {
#endif

struct r3m_backend;

/* ---- asynchronous I/O ------------------------------------------------- */

enum r3m_io_op {
  R3M_IO_READ = 0,
  R3M_IO_WRITE,
  R3M_IO_FLUSH,
  R3M_IO_ZERO,
  R3M_IO_TRIM,
};

#define R3M_IO_FUA      (1u << 0) /* write/zero: durable before `done` */
#define R3M_IO_URGENT   (1u << 1) /* someone waits on it: go before background work */
#define R3M_IO_MAY_TRIM (1u << 2) /* zero: punching a hole is fine */

/* One asynchronous request.  The caller owns it and keeps it (and `buf`)
 * alive until `done` has been called. */
struct r3m_io {
  enum r3m_io_op op;
  unsigned flags;            /* R3M_IO_* */
  void *buf;                 /* READ: filled; WRITE: source; else unused */
  size_t len;
  uint64_t off;
  /* Called exactly once with 0 or -errno, on any thread, possibly before
   * r3m_backend_submit returns.  It runs on a backend's I/O thread, so it
   * must not block for long nor wait for other I/O on the same backend. */
  void (*done) (struct r3m_io *io, int result);
  void *user;                /* for the caller */
  void *priv[4];             /* for the backend while the request is in flight */
};

/* ---- block status ----------------------------------------------------- */

#define R3M_EXTENT_HOLE (1u << 0) /* not allocated in the store */
#define R3M_EXTENT_ZERO (1u << 1) /* reads as zeros */

struct r3m_extent {
  uint64_t len;
  uint32_t flags;            /* R3M_EXTENT_* */
};

/* ---- writing a backend ------------------------------------------------ */

#define R3M_BACKEND_READ_ONLY (1u << 0) /* writes fail with -EPERM */
#define R3M_BACKEND_VOLATILE  (1u << 1) /* data does not outlive the process */
#define R3M_BACKEND_FAST_ZERO (1u << 2) /* zero() costs much less than a write */
#define R3M_BACKEND_REMOTE    (1u << 3) /* every request waits for a network
                                            round trip: keep many in flight */
#define R3M_BACKEND_SERIAL_WRITES (1u << 4) /* writes from several threads
                                            take turns (a regular file's
                                            inode lock): one writer is enough */

struct r3m_backend_info {
  uint64_t size;             /* bytes; fixed for the life of the handle */
  uint32_t align;            /* offsets and lengths the backend accepts must be
                                multiples of this (1 = any byte range) */
  uint32_t preferred_io;     /* a good request size (0 = no preference) */
  uint32_t max_io;           /* largest request; 0 = no limit */
  unsigned flags;            /* R3M_BACKEND_* */
  unsigned async_threads;    /* threads of the generic submit adapter when
                                ops->submit is NULL; 0 = run inline */
};

/* One backend implementation.  `self` is the implementation's state.  Only
 * pread and pwrite are required; a NULL slot gets the documented default.
 * The handle has already checked ranges and read-only before calling. */
struct r3m_backend_ops {
  const char *name;          /* short kind, e.g. "file" */

  /* Fill buf with len bytes at off; missing data as zeros.  0 or -errno. */
  int (*pread) (void *self, void *buf, size_t len, uint64_t off);

  /* Write len bytes at off.  flags: R3M_IO_FUA.  0 or -errno. */
  int (*pwrite) (void *self, const void *buf, size_t len, uint64_t off,
                 unsigned flags);

  /* Make every completed write durable.  NULL: nothing to do. */
  int (*flush) (void *self);

  /* Make the range read as zeros.  flags: R3M_IO_FUA, R3M_IO_MAY_TRIM.
   * NULL: the handle writes zeros with pwrite. */
  int (*zero) (void *self, size_t len, uint64_t off, unsigned flags);

  /* Advise that the range's contents are no longer needed (they may read
   * back as anything until written).  NULL: ignored. */
  int (*trim) (void *self, size_t len, uint64_t off);

  /* Describe allocation from off: fill at most `max` extents that cover
   * [off, off+len) from the start, set *n, return 0 or -errno.
   * NULL: the whole range is allocated data. */
  int (*extents) (void *self, uint64_t off, uint64_t len,
                  struct r3m_extent *ext, size_t max, size_t *n);

  /* Start an asynchronous request (see struct r3m_io).  Return 0 once it is
   * accepted (done will be called) or -errno (done will not be called).
   * NULL: the handle runs the synchronous slots on async_threads threads. */
  int (*submit) (void *self, struct r3m_io *io);

  /* Release self.  No I/O is in flight when it is called. */
  void (*close) (void *self);

  /* Plain memory stores only: the address of byte 0 of the store, which
   * callers may read and (unless the handle is read-only) write directly
   * for the life of the handle, as a zero-copy alternative to pread and
   * pwrite.  NULL slot or NULL result: no direct access. */
  void *(*direct) (void *self);

  /* Why requests fail, where the backend knows more than an errno says
   * (a remote store: "server closed the connection"): copy that, NUL-
   * terminated, into buf of len bytes and return 1; 0 if there is nothing
   * to add.  NULL: nothing. */
  int (*why) (void *self, char *buf, size_t len);
};

/* Wrap an implementation in a handle.  On success the handle owns `self`
 * (ops->close releases it); on failure the caller still owns it.
 * `description` (copied) names the store in messages, e.g. "file:/tmp/x". */
int r3m_backend_new (const struct r3m_backend_ops *ops, void *self,
                     const struct r3m_backend_info *info,
                     const char *description, struct r3m_backend **out,
                     struct r3m_error *err);

/* ---- using a backend -------------------------------------------------- */

#define R3M_OPEN_READ_ONLY (1u << 0) /* refuse writes */

/* Open a backend from a URI:
 *   memory:SIZE                      e.g. memory:64M, memory:1G
 *   file:PATH[?size=SIZE]            regular file or block device; size=
 *                                    creates the file or extends it
 *   dir:PATH?size=SIZE&chunk=SIZE[&max-open=N]
 *                                    one file per chunk, created on demand
 * plus the schemes later layers register (nbd://, nbds://, nbd+unix://,
 * redis://, s3://).  SIZE takes a suffix: k/K/KiB, M/MiB, G/GiB, T/TiB. */
int r3m_backend_open (const char *uri, unsigned flags,
                      struct r3m_backend **out, struct r3m_error *err);

/* Release a handle and the store behind it.  NULL is a no-op. */
void r3m_backend_close (struct r3m_backend *b);

uint64_t r3m_backend_size (const struct r3m_backend *b);
const struct r3m_backend_info *r3m_backend_get_info (const struct r3m_backend *b);
/* e.g. "file:/tmp/x"; valid as long as the handle. */
const char *r3m_backend_describe (const struct r3m_backend *b);
/* The backend's own words for why its requests fail, if it has any (see
 * why in struct r3m_backend_ops): 1 with them in buf, or 0. */
int r3m_backend_why (const struct r3m_backend *b, char *buf, size_t len);

int r3m_backend_pread (struct r3m_backend *b, void *buf, size_t len,
                       uint64_t off);
int r3m_backend_pwrite (struct r3m_backend *b, const void *buf, size_t len,
                        uint64_t off, unsigned flags);
int r3m_backend_flush (struct r3m_backend *b);
int r3m_backend_zero (struct r3m_backend *b, size_t len, uint64_t off,
                      unsigned flags);
int r3m_backend_trim (struct r3m_backend *b, size_t len, uint64_t off);
int r3m_backend_extents (struct r3m_backend *b, uint64_t off, uint64_t len,
                         struct r3m_extent *ext, size_t max, size_t *n);
int r3m_backend_submit (struct r3m_backend *b, struct r3m_io *io);

/* The store's memory when the backend offers direct access (see the
 * `direct` slot), else NULL.  The NBD server uses it to receive WRITE
 * payloads into the store and send READ data from it without a copy. */
void *r3m_backend_direct (struct r3m_backend *b);

#ifdef __cplusplus
}
#endif
#endif /* R3MAP_BACKEND_H */
