/* The userfaultfd frontend's shared state (include/r3map/uffd.h).
 *
 * Threads
 *   fault thread   reads the userfaultfd: missing faults ask for their chunk
 *                  (never waiting on I/O itself), write-protect faults mark
 *                  chunks dirty, events follow discards, unmaps and moves.
 *                  It never touches the mapping's memory.
 *   fetch workers  take demanded chunks first, then read-ahead, then the
 *                  background order; read the backend; install the chunk
 *                  with one UFFDIO_COPY (or ZEROPAGE), which wakes whoever
 *                  faulted on it.
 *   callers        flush (push dirty chunks straight from the mapping),
 *                  status, wait_pulled, unmap.
 *
 * Chunk states (state[], atomic)
 *   REMOTE --claim--> FETCHING --fetched--> INSTALLING --> LOCAL
 *   FETCHING --background failure--> REMOTE (unless a fault wants it)
 *   FETCHING/REMOTE --demand failure, timeout, unmap--> FAILED (poisoned)
 *   any --the application unmapped or moved it away--> GONE
 * Only the thread that moved a chunk to FETCHING moves it on to INSTALLING
 * and out of it, by compare-and-swap; FAILED is reached from FETCHING only
 * by compare-and-swap, so a late fetch never installs over a poisoned
 * chunk, nor a timeout poisons an installed one.  GONE (set by the fault
 * thread) replaces any state and is never replaced.  wanted[c] says a fault waits for c: a failed background fetch of a
 * wanted chunk is retried as a demand fetch (the fault thread sets wanted
 * before reading state; the worker sets REMOTE before reading wanted; so
 * one of them always sees the other).
 *
 * Dirty tracking: dirty[c] is set when a write is seen (write-protect
 * fault, PAGEMAP_SCAN, a discard) and cleared by the pusher just before it
 * re-protects and copies the chunk out, so a write racing with a push
 * leaves the chunk dirty.  In synchronous mode wp_lock[] orders "set dirty,
 * unprotect" (fault thread) against "clear dirty, protect" (pusher).
 *
 * Locks, in the order they may be taken:
 *   push_lock  one flush at a time (so a flush waits for pushes in flight)
 *   wp_lock[]  per chunk stripe, synchronous tracking only
 *   lock       work queues, stop flag, pull progress
 *   map.lock   events and `base` (held by the fault thread while it reads
 *              the descriptor; also guards gone[])
 *   err_lock   last error
 */
#ifndef R3M_UFFD_INTERNAL_H
#define R3M_UFFD_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <r3map/uffd.h>

#include "frontend/uffd/map.h"

enum chunk_state {
  CH_REMOTE = 0,
  CH_FETCHING,
  CH_INSTALLING,
  CH_LOCAL,
  CH_FAILED,
  CH_GONE,
};

#define UFFD_WP_LOCKS 64

struct r3m_uffd {
  struct uffd_map map;
  struct r3m_backend *remote;     /* borrowed */
  struct r3m_uffd_options opts;
  uint64_t size;                  /* the backend's bytes */
  uint32_t chunk;                 /* bytes per chunk */
  unsigned chunk_shift;
  uint64_t nchunks;

  _Atomic uint8_t *state;         /* enum chunk_state, per chunk */
  _Atomic uint8_t *wanted;        /* a fault waits for the chunk */
  _Atomic uint8_t *dirty;         /* written since its last push */
  pthread_mutex_t wp_lock[UFFD_WP_LOCKS];

  /* Fetch work; guarded by lock. */
  pthread_mutex_t lock;
  pthread_cond_t work;            /* work queued, or stopping */
  pthread_cond_t progress;        /* a fetch ended (for wait_pulled) */
  uint64_t *demand;               /* ring of claimed chunks, nchunks long */
  uint64_t dq_head, dq_len;
  uint64_t *order;                /* background order */
  uint64_t bg_next;
  uint64_t ra_next, ra_end;       /* read-ahead window */
  unsigned active;                /* fetches in progress */
  unsigned idle;                  /* workers waiting on `work` */
  unsigned waiters;               /* threads waiting on `progress` */
  bool stopping;
  int pull_error;                 /* first background failure (-errno) */
  pthread_t *workers;
  unsigned nworkers;              /* started */

  /* Fault thread. */
  pthread_t fault_thread;
  bool fault_started;
  int stop_fd;                    /* eventfd: the fault thread stops */
  _Atomic bool closing;           /* poison instead of fetching */
  uint64_t *gone;                 /* [start, end) pairs the application
                                     unmapped; guarded by map.lock */
  size_t ngone, gone_cap;

  pthread_mutex_t push_lock;

  _Atomic uint64_t chunks_local, chunks_failed, faults, wp_faults,
    fetches_demand, fetches_background, bytes_fetched, pushes, bytes_pushed,
    errors;

  pthread_mutex_t err_lock;
  int last_error;
  char last_error_msg[R3M_ERROR_MSG_MAX];
};

static inline uint64_t
uffd_chunk_off (const struct r3m_uffd *u, uint64_t c)
{
  return c << u->chunk_shift;
}

/* Bytes of chunk c inside the mapping (page multiple) and inside the
 * backend (may be shorter for the last chunk). */
static inline size_t
uffd_chunk_maplen (const struct r3m_uffd *u, uint64_t c)
{
  uint64_t off = uffd_chunk_off (u, c);
  return (size_t) (u->map.len - off < u->chunk ? u->map.len - off : u->chunk);
}

static inline size_t
uffd_chunk_datalen (const struct r3m_uffd *u, uint64_t c)
{
  uint64_t off = uffd_chunk_off (u, c);
  return (size_t) (u->size - off < u->chunk ? u->size - off : u->chunk);
}

/* Record a failure for the status (and count it). */
void uffd_record_error (struct r3m_uffd *u, int code, const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));

/* pull.c */
int uffd_pull_start (struct r3m_uffd *u, struct r3m_error *err);
void uffd_pull_stop (struct r3m_uffd *u);
/* From the fault thread: chunk c (claimed: FETCHING) must be fetched now;
 * also fetch the chunks after it next. */
void uffd_pull_demand (struct r3m_uffd *u, uint64_t c);
/* Poison chunk c if it is REMOTE or FETCHING (a timeout, or unmap).
 * true if this call failed it. */
bool uffd_pull_fail (struct r3m_uffd *u, uint64_t c, int code,
                     const char *why);
int uffd_pull_wait (struct r3m_uffd *u, int timeout_ms);

/* fault.c */
int uffd_fault_start (struct r3m_uffd *u, struct r3m_error *err);
void uffd_fault_stop (struct r3m_uffd *u);

/* push.c */
void uffd_mark_dirty (struct r3m_uffd *u, uint64_t off, uint64_t len);
int uffd_push (struct r3m_uffd *u, struct r3m_error *err);

#endif
