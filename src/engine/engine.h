/* Internal view of a region (include/r3map/region.h).
 *
 * CHUNK STATE TABLE
 *
 * One 16-byte record per chunk, guarded by one of ENG_STRIPES striped
 * mutexes (chunk c uses stripe c & (ENG_STRIPES - 1)):
 *
 *   state    REMOTE   the cache holds nothing meaningful for the chunk
 *            BUSY     one thread owns the chunk's cache bytes and is filling
 *                     them (a fetch, a whole-chunk write, an invalidation);
 *                     everybody else waits for it to leave BUSY
 *            LOCAL    the cache holds the chunk's current bytes
 *   wgen     write generation: bumped when a write to the chunk completes
 *   pgen     the generation last pushed; dirty <=> wgen != pgen
 *   readers  threads copying the chunk out of the cache (LOCAL only)
 *   writers  threads writing part of the chunk into the cache (LOCAL only)
 *   SNAP     the pusher is copying the chunk out of the cache: writers wait
 *   PUSH     a snapshot of the chunk is being written to the remote
 *   STALE    invalidated while BUSY: the fetch in progress returns old data
 *
 * Transitions (all under the chunk's stripe lock):
 *
 *   REMOTE -> BUSY     a reader, a partial writer or the puller claims the
 *                      fetch; a whole-chunk writer claims the fill;
 *                      invalidate claims it while it trims the cache
 *   BUSY   -> LOCAL    the bytes are in the cache (on_chunk_local follows)
 *   BUSY   -> REMOTE   the fetch or cache write failed, or STALE was set
 *   LOCAL  -> BUSY     invalidate (after readers, writers, SNAP and PUSH
 *                      are gone); it then goes to REMOTE
 *
 * Threads never wait for a chunk while they hold another chunk in BUSY
 * unless they acquire in ascending chunk order (whole-chunk write runs),
 * and nobody waits on a writer while holding SNAP, so there is no cycle.
 *
 * LOCK ORDER (never take an earlier lock while holding a later one):
 *
 *   1. push.round_mu   one push round at a time (pusher thread, flush, FUA)
 *   2. pull.mu         puller queues, window, completions
 *   3. stripe[i].mu    chunk records of stripe i (never two at once)
 *   4. leaves: push.mu, prog_mu, err_mu, gate_mu (nothing is taken under
 *      them)
 *
 * No lock is ever held across a backend call, a user callback or
 * r3m_backend_submit (whose completion may run inline, on this thread).
 *
 * LIFETIME
 *
 * The region is reference counted: the owner holds one reference, every
 * engine thread one, every background request in flight one.  Close drops
 * the owner's reference after waiting (at most close_timeout_ms) for the
 * threads; whatever is still stuck in a backend keeps the memory alive and
 * frees it when it returns.  Such late returns touch no backend and call no
 * user callback (r->abandoned).
 */
#ifndef R3M_ENGINE_ENGINE_H
#define R3M_ENGINE_ENGINE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <r3map/backend.h>
#include <r3map/region.h>

#define ENG_STRIPES 256u

enum eng_state { ENG_REMOTE = 0, ENG_BUSY = 1, ENG_LOCAL = 2 };

#define ENG_F_SNAP  (1u << 0)
#define ENG_F_PUSH  (1u << 1)
#define ENG_F_STALE (1u << 2)

struct eng_chunk {
  uint8_t state;              /* enum eng_state */
  uint8_t flags;              /* ENG_F_* */
  uint16_t readers;
  uint16_t writers;
  uint16_t unused;
  uint32_t wgen;
  uint32_t pgen;
};

struct eng_stripe {
  pthread_mutex_t mu;         /* guards the chunk records of this stripe */
  pthread_cond_t cv;          /* any of those chunks changed */
  unsigned waiters;           /* threads in cv; skip broadcasts when 0 */
} __attribute__ ((aligned (64)));

/* A background fetch (puller) of a run of adjacent chunks, one remote
 * request.  Heap-allocated; owns its buffer (run_max chunks). */
struct eng_fetch {
  struct r3m_io io;
  struct r3m_region *r;
  uint64_t chunk;             /* first chunk of the run */
  uint32_t n;                 /* chunks in the run, all BUSY and ours */
  unsigned attempt;
  int result;
  bool zero;                  /* the remote said zeros: no transfer */
  struct eng_fetch *next;     /* completion queue or free list */
  unsigned char *buf;
};

struct eng_puller {
  pthread_mutex_t mu;         /* guards every field below */
  pthread_cond_t cv;          /* completion queued, work queued, stop */
  uint64_t *order;            /* pull order; NULL = ascending index */
  uint64_t next;              /* position in order */
  uint64_t *queue;            /* invalidated chunks, pulled first (ring) */
  size_t qhead, qlen, qcap;
  struct eng_fetch *done_head, *done_tail; /* completions to store */
  struct eng_fetch *free;     /* reusable fetch slots */
  unsigned inflight;          /* submitted, completion not yet handled */
  unsigned window;
  uint32_t run_max;           /* chunks per background request */
  unsigned running;           /* worker threads not yet exited */
  bool scanning, scanned;     /* one worker asks the remote for zero
                                 extents before anybody claims */
  uint64_t inval_epoch;       /* bumped by every invalidate */
  bool stop;                  /* closing: no new work, discard results */
  uint64_t deadline_ns;       /* stop: exit by then even with inflight */
  int error;                  /* positive errno that stopped the pull */
  pthread_t *threads;
  unsigned nthreads;
};

/* A background push of one chunk snapshot. */
struct eng_push {
  struct r3m_io io;
  struct r3m_region *r;
  uint64_t chunk;
  uint32_t gen;               /* wgen the snapshot holds */
  struct eng_push *next;      /* free list */
  unsigned char *buf;
};

struct eng_pusher {
  pthread_mutex_t round_mu;   /* serialises push rounds (lock order 1) */
  pthread_mutex_t mu;         /* guards every field below (a leaf) */
  pthread_cond_t cv;          /* inflight dropped, stop requested */
  unsigned inflight;
  int round_error;            /* first failure of the current round */
  struct eng_push *free;
  bool stop;                  /* close: final push, flush, exit */
  bool thread_started;
  bool final_done;
  int final_result;
  pthread_t thread;
};

struct r3m_region {
  struct r3m_backend *remote;
  struct r3m_backend *cache;  /* NULL: direct region */
  struct r3m_region_options o;
  uint64_t size;
  uint32_t cs;                /* chunk size */
  unsigned shift;             /* log2 (cs) */
  uint64_t nchunks;
  bool read_only;             /* the remote refuses writes: so does the region */
  atomic_int refs;
  atomic_bool closing;
  atomic_bool abandoned;      /* close returned; late returns do nothing */
  atomic_int pull_error;      /* positive errno that stopped the pull */

  struct eng_chunk *chunk;    /* [nchunks] */
  struct eng_stripe *stripe;  /* [ENG_STRIPES] */
  size_t nwords;              /* words of each bitmap */
  _Atomic uint64_t *dirty_bits;  /* dirty chunks (a hint; records decide) */
  _Atomic uint64_t *track_bits;  /* written since the last track_take */
  _Atomic uint64_t *zero_bits;   /* the remote reports zeros (pull hint) */
  atomic_bool tracking;

  pthread_mutex_t gate_mu;    /* leaf: guards waiting on gate_cv */
  pthread_cond_t gate_cv;
  atomic_bool gate_open;

  pthread_mutex_t prog_mu;    /* leaf: wait_pulled waits on prog_cv */
  pthread_cond_t prog_cv;     /* all local, pull error, closing */

  atomic_uint_fast64_t n_local, n_dirty, fetch_demand, fetch_bg,
    bytes_fetched, pushes, bytes_pushed, errors;
  pthread_mutex_t err_mu;     /* leaf: guards last_error, last_msg */
  int last_error;
  char last_msg[R3M_ERROR_MSG_MAX];

  struct eng_puller pull;
  struct eng_pusher push;
};

/* ---- region.c ---- */
void eng_ref (struct r3m_region *r);
void eng_unref (struct r3m_region *r);
/* Count a failure in the status; err is -errno. */
void eng_fail (struct r3m_region *r, int err, const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));
/* The same for a request to the remote that failed: in the remote's own
 * words where it has them (r3m_backend_why). */
void eng_fail_remote (struct r3m_region *r, int err, const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));
void eng_cond_init (pthread_cond_t *cv);
/* Wake waiters of wait_pulled (all local, error, closing). */
void eng_progress_wake (struct r3m_region *r);

/* ---- chunks.c: the state table ---- */
static inline struct eng_stripe *
eng_stripe_of (struct r3m_region *r, uint64_t c)
{
  return &r->stripe[c & (ENG_STRIPES - 1)];
}

static inline uint64_t
eng_chunk_off (const struct r3m_region *r, uint64_t c)
{
  return c << r->shift;
}

/* Length of chunk c (the last one may be short). */
static inline uint32_t
eng_chunk_len (const struct r3m_region *r, uint64_t c)
{
  uint64_t off = c << r->shift;
  uint64_t left = r->size - off;
  return left < r->cs ? (uint32_t) left : r->cs;
}

void eng_lock (struct r3m_region *r, uint64_t c);
void eng_unlock (struct r3m_region *r, uint64_t c);
/* Wait on chunk c's stripe (its lock held). */
void eng_wait (struct r3m_region *r, uint64_t c);
/* Wake waiters of chunk c's stripe (its lock held). */
void eng_wake (struct r3m_region *r, uint64_t c);
/* A write to chunk c completed (its lock held): bump wgen, mark dirty. */
void eng_written_locked (struct r3m_region *r, uint64_t c);
/* Chunk c's push of generation gen ended (its lock held). */
void eng_pushed_locked (struct r3m_region *r, uint64_t c, uint32_t gen,
                        bool ok);
/* Drop chunk c's dirty state (invalidate; its lock held). */
void eng_clean_locked (struct r3m_region *r, uint64_t c);
/* A BUSY chunk c now holds its bytes (its lock held).  Returns true if it
 * became LOCAL, false if STALE was set (it is REMOTE again). */
bool eng_become_local_locked (struct r3m_region *r, uint64_t c);
/* Record writes to chunks [first, last] for the dirty tracker. */
void eng_track (struct r3m_region *r, uint64_t first, uint64_t last);
/* Call on_chunk_local unless the region was abandoned. */
void eng_notify_local (struct r3m_region *r, uint64_t c);

/* ---- fetch.c: on-demand fetches ---- */
/* Fetch chunk c (which the caller holds BUSY) into buf with R3M_IO_URGENT,
 * retrying opts.fetch_retries times, and count it; eng_fetch_sync then
 * stores it in the cache.  0 or -errno (recorded in the status). */
int eng_fetch_sync_nostore (struct r3m_region *r, uint64_t c, void *buf);
int eng_fetch_sync (struct r3m_region *r, uint64_t c, void *buf);

/* ---- cache_mem.c: the cache's lent memory ---- */
/* Byte 0 of the cache's memory if the cache lends it (r3m_backend_direct),
 * else NULL.  The owner of a BUSY chunk may receive its fetch straight into
 * mem + eng_chunk_off (r, c): nobody else touches those bytes. */
unsigned char *eng_cache_mem (struct r3m_region *r);
/* Fault in (MADV_POPULATE_WRITE) the cache pages of chunks first..last,
 * held BUSY by the caller, typically while their fetches are on the wire:
 * cheaper in one call than a fault per 4 KiB page inside the connection's
 * receive.  Advice only. */
void eng_cache_populate (struct r3m_region *r, unsigned char *mem,
                         uint64_t first, uint64_t last);

/* ---- io.c ---- */
int eng_gate (struct r3m_region *r);

/* ---- puller.c ---- */
int eng_puller_start (struct r3m_region *r);
/* Stop claiming; workers exit when nothing is in flight or at deadline. */
void eng_puller_stop (struct r3m_region *r, uint64_t deadline_ns);
/* After stop: true if runs being received straight into the cache's
 * memory are still in flight (they may write into the cache later). */
bool eng_puller_landing (struct r3m_region *r);
/* The remote changed under these chunks: drop their zero hints. */
void eng_puller_forget_zeros (struct r3m_region *r, const uint64_t *chunks,
                              size_t n);
/* Put chunks first in the pull order (invalidate, failed fetches). */
void eng_puller_requeue (struct r3m_region *r, const uint64_t *chunks,
                         size_t n);

/* ---- pusher.c ---- */
int eng_pusher_start (struct r3m_region *r);
/* Ask the pusher thread for its final push and flush. */
void eng_pusher_stop (struct r3m_region *r);
/* The final push and flush, as close runs it (on the pusher thread). */
int eng_final_sync (struct r3m_region *r);
/* Push every dirty chunk in [first, last], at most window in flight, and
 * wait for them.  0 or the first -errno. */
int eng_push_round (struct r3m_region *r, uint64_t first, uint64_t last);
/* Release the free lists of puller and pusher (region teardown). */
void eng_pusher_free (struct r3m_region *r);
void eng_puller_free (struct r3m_region *r);

#endif
