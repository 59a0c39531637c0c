/* r3map: the region engine.
 *
 * A region is a byte range whose authoritative copy lives in a remote backend
 * and whose working copy lives in a local cache backend.  It is what every
 * frontend (userfaultfd mapping, FUSE file, NBD device) presents, and what a
 * migration moves.
 *
 *   - Reads of chunks not yet in the cache fetch them on demand (post-copy),
 *     ahead of any background work.
 *   - A puller fetches the remaining chunks in the background (pre-copy), in
 *     the order of a priority callback, with a window of requests in flight.
 *   - Writes land in the cache and mark their chunks dirty; a pusher writes
 *     dirty chunks back to the remote on an interval, on flush and on close.
 *     Data that was only pulled is never pushed back.
 *   - A dirty tracker records which chunks were written since it was last
 *     asked (migration rounds); a gate holds all I/O until it is opened.
 *
 * With no cache the region is direct: every call goes to the remote.
 *
 * All calls are thread-safe.  Byte ranges are arbitrary; the engine talks
 * to backends in whole, aligned chunks (the last chunk may be short).
 * Errors are negative errno values; background failures are also recorded in
 * the status, which nobody has to drain.
 */
#ifndef R3MAP_REGION_H
#define R3MAP_REGION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <r3map/backend.h>
#include <r3map/error.h>

#ifdef __cplusplus
extern "C" {
#endif

struct r3m_region;

/* Higher values are pulled first; ties go in ascending chunk order. */
typedef int64_t (*r3m_priority_fn) (uint64_t chunk, void *user);
typedef void (*r3m_chunk_fn) (uint64_t chunk, void *user);

struct r3m_region_options {
  uint32_t chunk_size;       /* power of two; default 64 KiB */
  unsigned pull_workers;     /* threads storing background fetches into the
                                cache; 0 = no background pull; default 2 */
  unsigned pull_window;      /* background requests in flight; default 64;
                                the puller multiplies it by the remote's
                                round trip / 10 ms, up to 4x */
  bool pull_first;           /* r3m_region_open returns once all is local */
  r3m_priority_fn priority;  /* NULL = ascending chunk order */
  void *priority_user;
  unsigned push_window;      /* pushes in flight; 0 = no background push
                                (flush and close still push); default 16 */
  uint32_t push_interval_ms; /* background push period; default 5000 */
  unsigned fetch_retries;    /* extra attempts for a failed fetch; default 2 */
  bool gated;                /* hold all I/O until r3m_region_gate_open */
  /* A chunk became local (pulled, fetched on demand, or first written).
   * Called once per chunk per time it becomes local, from any thread. */
  r3m_chunk_fn on_chunk_local;
  void *on_chunk_local_user;
  /* Called before the pusher copies a dirty chunk out of the cache, for
   * frontends whose writes bypass r3m_region_write (a userfaultfd mapping
   * write-protects the chunk here so later writes fault and are reported
   * with r3m_region_mark_dirty).  The chunk's write generation is recorded
   * before the call, so a write marked after it keeps the chunk dirty.
   * r3m_region_write calls on this chunk wait until the copy is done, so
   * the hook must not make one.  NULL = nothing to do. */
  r3m_chunk_fn before_push;
  void *before_push_user;
  /* How long r3m_region_close waits for background work stuck in a
   * backend (the final push and flushes, fetches in flight) before it
   * gives up with -ETIMEDOUT; default 30000. */
  uint32_t close_timeout_ms;
  /* Largest background request: the puller fetches a run of adjacent
   * chunks that are next in the pull order with one remote request of up
   * to this many bytes (at least one chunk), so a window of pull_window
   * requests keeps pull_window x pull_request_size bytes in flight.
   * A remote that runs requests inline (memory:, pattern:) gets at most
   * 64 KiB, which keeps the buffer in the CPU cache.
   * 0 = one chunk per request; default 1 MiB. */
  uint32_t pull_request_size;
};

/* Fill in the defaults. */
void r3m_region_options_init (struct r3m_region_options *opts);

/* Create a region over `remote` (borrowed; must outlive the region) with
 * `cache` (borrowed, at least as large as remote, or NULL for a direct
 * region).  The cache must start empty of meaning: every chunk counts as
 * remote until pulled or written.  Starts background pull and push. */
int r3m_region_open (struct r3m_backend *remote, struct r3m_backend *cache,
                     const struct r3m_region_options *opts,
                     struct r3m_region **out, struct r3m_error *err);

/* Stop background pull, push every dirty chunk, flush cache and remote, and
 * free the region.  Never hangs on a failed backend: the first error of the
 * final push/flush is returned (the region is freed either way).  If a
 * backend call does not return within opts.close_timeout_ms, close returns
 * -ETIMEDOUT: chunks not pushed by then are lost to the remote, and the
 * engine's memory is released when the stuck call finally returns (the
 * backend must not be closed under it unless its close cancels it).
 * When the cache lends its memory, background fetches are received straight
 * into it, so one still in flight at the timeout counts as stuck too: close
 * returns -ETIMEDOUT and neither backend may be closed under it.
 * No other call on the region may run concurrently with or after close. */
int r3m_region_close (struct r3m_region *r, struct r3m_error *err);

uint64_t r3m_region_size (const struct r3m_region *r);
uint32_t r3m_region_chunk_size (const struct r3m_region *r);

int r3m_region_read (struct r3m_region *r, void *buf, size_t len,
                     uint64_t off);

/* Read [off, off+len) and hand the bytes to `deliver` once, as n pieces in
 * order (n is 0 only for len 0), valid only during the call; returns what
 * deliver returned, or -errno without calling it if the read failed.  For a
 * caller that copies the bytes on anyway (the FUSE frontend writes them to
 * the kernel): when the cache lends its memory the pieces point into it, so
 * local chunks are not copied into buf, fetched chunks are received
 * straight into the cache, and deliver runs before fetched chunks are
 * marked local.  buf (len bytes) is used only when that is not possible.
 * deliver must not call into the region. */
typedef int (*r3m_region_deliver_fn) (const struct iovec *iov, int n,
                                      void *user);
int r3m_region_read_deliver (struct r3m_region *r, void *buf, size_t len,
                             uint64_t off, r3m_region_deliver_fn deliver,
                             void *user);
/* flags: R3M_IO_FUA (the data is pushed and the remote flushed first).
 * Writes, zeroes, trims and mark_dirty fail with -EPERM when the remote is
 * read-only. */
int r3m_region_write (struct r3m_region *r, const void *buf, size_t len,
                      uint64_t off, unsigned flags);
int r3m_region_zero (struct r3m_region *r, size_t len, uint64_t off,
                     unsigned flags);
int r3m_region_trim (struct r3m_region *r, size_t len, uint64_t off);

/* Push every dirty chunk (waiting for pushes already in flight), then flush
 * the cache and the remote.  A write that completed before the call is in
 * the remote's durable storage when it returns 0. */
int r3m_region_flush (struct r3m_region *r);

/* Wait until every chunk is local.  timeout_ms < 0 waits for ever.
 * 0, -ETIMEDOUT, or the error that stopped the background pull. */
int r3m_region_wait_pulled (struct r3m_region *r, int timeout_ms);

/* Gate: with opts.gated, I/O blocks until the gate is opened. */
void r3m_region_gate_open (struct r3m_region *r);

/* Dirty tracker (for migration).  start: forget and begin recording
 * writes.  take: return the sorted chunk indices written since start or the
 * previous take (caller frees *chunks with free) and reset.  A write counts
 * once it has completed, so a write racing with take is reported by this
 * take or the next.  stop: stop recording. */
int r3m_region_track_start (struct r3m_region *r);
int r3m_region_track_take (struct r3m_region *r, uint64_t **chunks,
                           size_t *n);
void r3m_region_track_stop (struct r3m_region *r);

/* The remote copy of these chunks changed: drop the local copies (local
 * changes to them are discarded) and fetch them again before any other
 * background work. */
int r3m_region_invalidate (struct r3m_region *r, const uint64_t *chunks,
                           size_t n);

/* A frontend wrote [off, off+len) into the cache without r3m_region_write
 * (e.g. through a mapping): treat those chunks as written. */
int r3m_region_mark_dirty (struct r3m_region *r, uint64_t off, uint64_t len);

struct r3m_region_status {
  uint64_t size;
  uint32_t chunk_size;
  uint64_t chunks;            /* ceil(size / chunk_size) */
  uint64_t chunks_local;      /* distinct chunks present in the cache */
  uint64_t chunks_dirty;      /* written and not yet pushed */
  uint64_t fetches_demand;    /* chunk fetches a caller waited for */
  uint64_t fetches_background;
  uint64_t bytes_fetched;     /* transferred (zero extents add none) */
  uint64_t pushes;            /* chunk pushes completed */
  uint64_t bytes_pushed;
  uint64_t errors;            /* failed remote or cache operations */
  bool pull_done;             /* every chunk is local */
  int last_error;             /* positive errno of the latest failure */
  char last_error_msg[R3M_ERROR_MSG_MAX];
};

void r3m_region_status (struct r3m_region *r, struct r3m_region_status *st);

/* A backend handle whose I/O goes through the region (for the NBD server and
 * `r3m_backend`-based tools).  The region must outlive the handle; closing
 * the handle does not close the region. */
int r3m_region_as_backend (struct r3m_region *r, struct r3m_backend **out,
                           struct r3m_error *err);

#ifdef __cplusplus
}
#endif
#endif /* R3MAP_REGION_H */
