/* The userfaultfd frontend's shared state (include/r3map/uffd.h).
 *
 * The mapping is the region's cache: the region engine stores chunks into
 * it through a backend whose pwrite installs pages with UFFDIO_COPY
 * (cache.c), reads pushes out of it, and trims it on invalidation.  The
 * frontend adds what only it can see: faults, writes made through the
 * mapping, and what the application does to the mapping.
 *
 * Threads
 *   fault thread   the only reader of the userfaultfd.  Never waits on I/O
 *                  nor on the region: a missing fault queues its chunk for
 *                  a demand worker; a write-protect fault or a discard
 *                  queues a job for the marker; events are applied at once.
 *   demand workers r3m_region_read of a faulting chunk: the engine fetches
 *                  it urgently (or waits for the puller's fetch) and stores
 *                  it, which installs the pages and wakes the faulters.  A
 *                  failure poisons the chunk (SIGBUS).
 *   marker         reports writes to the region (r3m_region_mark_dirty):
 *                  write-protect faults (then unprotects the chunk),
 *                  discards, and in asynchronous mode a periodic
 *                  PAGEMAP_SCAN.  It may wait on the region; nobody waits
 *                  on it but flush.
 *   engine threads puller and pusher store into / copy out of the mapping
 *                  through cache.c; the pusher calls before_push.
 *
 * Chunk states, the frontend's view (state[], atomic):
 *   MISSING    no pages installed by a store (or trimmed since)
 *   INSTALLED  a store installed the chunk; a missing page in it was
 *              discarded by the application and reads as zeros
 *   FAILED     poisoned: a fetch failed or timed out (a later store that
 *              succeeds installs over the poison and makes it INSTALLED)
 *   GONE       the application unmapped or moved it away; never touched
 *              again, never left
 * installing[c] is set from before a store's UFFDIO_COPY until the state
 * says INSTALLED: the copy wakes the faulting threads, whose writes may be
 * seen before the state changes, and must be reported all the same.
 * trimming[c] is set while the engine trims chunk c, so the discard event
 * that causes is not taken for the application's.  wanted[c] is set while
 * a demand job for c is queued.
 *
 * Locks, in the order they may be taken: scan_lock (one PAGEMAP_SCAN and
 * its reports at a time), wp_lock[] (synchronous tracking), map.lock (events, base, gone[]; the fault thread
 * queues jobs while holding it), q.lock (demand and marker queues, stop
 * flags), err_lock.  Only scan_lock and wp_lock[] are held across a region
 * call (mark_dirty, which waits only for a chunk being stored, never on the
 * fault thread or on a chunk the pusher holds); no lock is held across a
 * backend call.
 */
#ifndef R3M_UFFD_INTERNAL_H
#define R3M_UFFD_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <r3map/uffd.h>

#include "frontend/uffd/map.h"

#define UFFD_WP_LOCKS 64

enum chunk_state {
  CH_MISSING = 0,
  CH_INSTALLED,
  CH_FAILED,
  CH_GONE,
};

/* A job for the marker thread. */
enum mark_kind {
  MARK_DIRTY,                /* the application discarded pages */
  MARK_WP,                   /* a write-protect fault: mark, unprotect */
  MARK_GONE,                 /* given up: drop the region's dirty state */
};

struct mark_job {
  uint64_t chunk;
  enum mark_kind kind;
};

struct uffd_queues {
  pthread_mutex_t lock;      /* guards everything in this struct */
  pthread_cond_t demand_cv;  /* demand work or stop */
  pthread_cond_t mark_cv;    /* marker work, stop, or a flush waiting */
  pthread_cond_t marked_cv;  /* the marker finished a batch */
  uint64_t *demand;          /* ring, nchunks long (wanted[] dedupes) */
  uint64_t dq_head, dq_len;
  struct mark_job *marks;    /* growable FIFO */
  size_t mq_head, mq_len, mq_cap;
  uint64_t mark_seq;         /* jobs queued so far */
  uint64_t marked_seq;       /* jobs done so far */
  unsigned demand_idle;
  bool stop_demand, stop_marker;
};

struct r3m_uffd {
  struct uffd_map map;
  struct r3m_backend *remote;     /* borrowed */
  struct r3m_backend *cache;      /* ours: the mapping as a backend */
  struct r3m_region *region;      /* ours */
  struct r3m_uffd_options opts;
  uint64_t size;                  /* the backend's bytes */
  uint32_t chunk;
  unsigned chunk_shift;
  uint64_t nchunks;

  _Atomic uint8_t *state;         /* enum chunk_state */
  _Atomic uint8_t *wanted;
  _Atomic uint8_t *trimming;
  _Atomic uint8_t *installing;    /* a store is installing the chunk */
  unsigned char *zeros;           /* one chunk of zeros */
  pthread_mutex_t scan_lock;      /* one PAGEMAP_SCAN + marking at a time */
  /* Synchronous tracking: makes "report, unprotect" (marker) and
   * "protect" (before_push) atomic towards each other, per chunk stripe. */
  pthread_mutex_t wp_lock[UFFD_WP_LOCKS];

  struct uffd_queues q;
  pthread_t *demand_threads;
  unsigned ndemand;
  pthread_t marker_thread;
  bool marker_started;

  pthread_t fault_thread;
  bool fault_started;
  int stop_fd;                    /* eventfd: the fault thread stops */
  _Atomic bool closing;           /* fail faults instead of fetching */
  uint64_t *gone;                 /* [start, end) offsets the application
                                     gave up; guarded by map.lock */
  size_t ngone, gone_cap;

  _Atomic uint64_t faults, wp_faults, chunks_failed, errors;
  pthread_mutex_t err_lock;
  int last_error;
  char last_error_msg[R3M_ERROR_MSG_MAX];
};

static inline uint64_t
uffd_chunk_off (const struct r3m_uffd *u, uint64_t c)
{
  return c << u->chunk_shift;
}

/* Bytes of chunk c inside the mapping (a page multiple). */
static inline size_t
uffd_chunk_maplen (const struct r3m_uffd *u, uint64_t c)
{
  uint64_t off = uffd_chunk_off (u, c);
  return (size_t) (u->map.len - off < u->chunk ? u->map.len - off : u->chunk);
}

/* Has chunk c (or is it getting) pages a write can have reached? */
static inline bool
uffd_has_pages (struct r3m_uffd *u, uint64_t c)
{
  return atomic_load (&u->installing[c])
         || atomic_load (&u->state[c]) == CH_INSTALLED;
}

void uffd_record_error (struct r3m_uffd *u, int code, const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));

/* Poison chunk c unless it is INSTALLED or GONE: its missing pages raise
 * SIGBUS and the threads waiting on them wake.  true if it did. */
bool uffd_fail_chunk (struct r3m_uffd *u, uint64_t c, int code,
                      const char *why);

/* cache.c: the mapping as the region's cache backend. */
int uffd_cache_new (struct r3m_uffd *u, struct r3m_error *err);

/* fault.c */
int uffd_fault_start (struct r3m_uffd *u, struct r3m_error *err);
void uffd_fault_stop (struct r3m_uffd *u);

/* demand.c */
int uffd_demand_start (struct r3m_uffd *u, struct r3m_error *err);
void uffd_demand_stop (struct r3m_uffd *u);
void uffd_demand_queue (struct r3m_uffd *u, uint64_t c);

/* track.c */
int uffd_marker_start (struct r3m_uffd *u, struct r3m_error *err);
void uffd_marker_stop (struct r3m_uffd *u);
void uffd_mark_queue (struct r3m_uffd *u, uint64_t c, enum mark_kind k);
/* Report every write made so far to the region (scan, drain the marker). */
int uffd_collect (struct r3m_uffd *u, struct r3m_error *err);
void uffd_before_push (uint64_t chunk, void *user);

#endif
