/* r3map: a remote region as plain memory (the userfaultfd frontend).
 *
 * r3m_uffd_map returns a pointer to `size` bytes of the caller's address
 * space whose contents come from a backend (memory, file, an NBD server
 * ...).  The application reads and writes it like any memory:
 *
 *   - The first access to a chunk that is not here yet blocks while that
 *     chunk is fetched and installed (a whole chunk per fault).  Chunks the
 *     backend returns as zeros are mapped to the shared zero page.
 *   - Meanwhile the region's puller installs the untouched chunks in the
 *     order of a priority callback, so that most first touches find their
 *     page already there.
 *   - Writes are tracked (userfaultfd write-protect; with Linux 6.7+ the
 *     asynchronous kind, read back with PAGEMAP_SCAN, so a write costs no
 *     round trip to a handler thread) and reported to the region, whose
 *     pusher writes them back in the background; r3m_uffd_flush pushes
 *     every chunk written before it and flushes the backend.
 *   - A chunk that cannot be fetched (after retries, or within the fetch
 *     timeout) is poisoned: the access that wanted it, and every later one,
 *     gets SIGBUS, and the error is in the status.  Nothing waits for ever.
 *
 * The mapping is private to this process: it is excluded from fork
 * (MADV_DONTFORK; a child that touches it gets SIGSEGV).  Moving the whole
 * mapping with mremap is followed; unmapping or moving part of it gives
 * that part up (later accesses there get SIGSEGV or SIGBUS, and unpushed
 * writes there are lost).  MADV_DONTNEED on a local chunk makes its pages
 * read as zeros, and those zeros are pushed like any write.
 *
 * Threads: one fault thread, `demand_workers` fetch threads and one
 * marker thread per mapping, plus the region's puller and pusher.
 * Any number of application threads may use the memory at once.  flush,
 * status and wait_pulled may be called from any thread, concurrently;
 * unmap once, when no other call on the handle is running.
 */
#ifndef R3MAP_UFFD_H
#define R3MAP_UFFD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <r3map/backend.h>
#include <r3map/error.h>
#include <r3map/region.h>

#ifdef __cplusplus
extern "C" {
#endif

struct r3m_uffd;

enum r3m_uffd_track {
  R3M_UFFD_TRACK_AUTO = 0,   /* asynchronous where the kernel has it
                                (Linux 6.7+), else synchronous */
  R3M_UFFD_TRACK_SYNC,       /* each chunk's first write after a push
                                costs a trip to the fault thread */
  R3M_UFFD_TRACK_NONE,       /* writes stay in this process: nothing is
                                ever pushed */
};

struct r3m_uffd_options {
  /* The region under the mapping: chunk size (the fetch and tracking unit;
   * at least a page here), background pull (workers, window, priority),
   * push interval, fetch retries.  r3m_uffd_options_init fills in the
   * region's defaults; before_push is the frontend's and is overridden. */
  struct r3m_region_options region;
  unsigned demand_workers;   /* threads fetching chunks faults wait for;
                                at least 1; default 2 */
  uint32_t fetch_timeout_ms; /* longest a faulting access waits before it
                                gets SIGBUS; 0 = no limit; default 30000 */
  uint32_t scan_interval_ms; /* asynchronous tracking: how often written
                                pages are reported to the region;
                                default 1000 */
  enum r3m_uffd_track track;
};

/* Fill in the defaults. */
void r3m_uffd_options_init (struct r3m_uffd_options *opts);

/* Map the whole of `remote` (borrowed: it must outlive the mapping): open
 * a region over it whose cache is the mapping, and start the threads.
 * opts NULL = defaults.  0 or -errno. */
int r3m_uffd_map (struct r3m_backend *remote,
                  const struct r3m_uffd_options *opts, struct r3m_uffd **out,
                  struct r3m_error *err);

/* The region under the mapping, for what the region offers beyond the
 * mapping: status, dirty tracking rounds, invalidation, serving it with
 * r3m_region_as_backend.  Valid until r3m_uffd_unmap; do not close it. */
struct r3m_region *r3m_uffd_region (struct r3m_uffd *u);

/* Start of the mapping (it changes only if the application moves it with
 * mremap), and its size in bytes (the backend's size; the mapping itself
 * is rounded up to whole pages, the tail reading as zeros). */
void *r3m_uffd_addr (const struct r3m_uffd *u);
uint64_t r3m_uffd_size (const struct r3m_uffd *u);

/* Push every chunk written before the call to the backend and flush it.
 * 0 or the first error (the chunks that failed stay dirty). */
int r3m_uffd_flush (struct r3m_uffd *u, struct r3m_error *err);

/* Wait until every chunk is here.  timeout_ms < 0 waits for ever.
 * 0, -ETIMEDOUT, or the error that kept some chunk from being fetched. */
int r3m_uffd_wait_pulled (struct r3m_uffd *u, int timeout_ms);

struct r3m_uffd_status {
  struct r3m_region_status region; /* chunks local/dirty, fetches, pushes,
                                      the region's errors */
  uint64_t faults;           /* missing-page faults served */
  uint64_t wp_faults;        /* write-protect faults (synchronous mode) */
  uint64_t chunks_failed;    /* poisoned: accesses got or get SIGBUS */
  uint64_t errors;           /* the frontend's own failures */
  enum r3m_uffd_track track; /* what the kernel granted: SYNC or NONE, or
                                AUTO meaning asynchronous */
  int last_error;            /* the frontend's latest failure (errno) */
  char last_error_msg[R3M_ERROR_MSG_MAX];
};

void r3m_uffd_status (struct r3m_uffd *u, struct r3m_uffd_status *st);

/* Stop fetching (threads still waiting for a chunk get SIGBUS), push what
 * was written, flush the backend, unmap and free.  The handle is freed
 * whatever happens; the first error of the final push is returned. */
int r3m_uffd_unmap (struct r3m_uffd *u, struct r3m_error *err);

#ifdef __cplusplus
}
#endif
#endif /* R3MAP_UFFD_H */
