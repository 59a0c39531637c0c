/* r3map: a remote region as plain memory (the userfaultfd frontend).
 *
 * r3m_uffd_map returns a pointer to `size` bytes of the caller's address
 * space whose contents come from a backend (memory, file, an NBD server
 * ...).  The application reads and writes it like any memory:
 *
 *   - The first access to a chunk that is not here yet blocks while that
 *     chunk is fetched and installed (a whole chunk per fault).  Chunks the
 *     backend returns as zeros are mapped to the shared zero page.
 *   - Meanwhile background workers install the untouched chunks, those after
 *     a faulting chunk first, then in the order of a priority callback, so
 *     that most first touches find their page already there.
 *   - Writes are tracked (userfaultfd write-protect; with Linux 6.7+ the
 *     asynchronous kind, read back with PAGEMAP_SCAN, so a write costs no
 *     round trip to a handler thread).  r3m_uffd_flush pushes every chunk
 *     written since the last push to the backend and flushes it.
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
 * Threads: one fault thread and `pull_workers` fetch threads per mapping.
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
  uint32_t chunk_size;       /* fetch/track unit: power of two, at least a
                                page; default 64 KiB */
  unsigned pull_workers;     /* fetch threads (demand and background);
                                at least 1; default 2 */
  bool background_pull;      /* fetch untouched chunks ahead of use;
                                default true */
  r3m_priority_fn priority;  /* background order; NULL = ascending */
  void *priority_user;
  unsigned readahead;        /* chunks after a faulting one that are
                                fetched next; default 16 */
  unsigned fetch_retries;    /* extra attempts for a failed fetch;
                                default 2 */
  uint32_t fetch_timeout_ms; /* longest a faulting access waits before it
                                gets SIGBUS; 0 = no limit; default 30000 */
  enum r3m_uffd_track track;
};

/* Fill in the defaults. */
void r3m_uffd_options_init (struct r3m_uffd_options *opts);

/* Map the whole of `remote` (borrowed: it must outlive the mapping) and
 * start its threads.  opts NULL = defaults.  0 or -errno. */
int r3m_uffd_map (struct r3m_backend *remote,
                  const struct r3m_uffd_options *opts, struct r3m_uffd **out,
                  struct r3m_error *err);

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
  uint64_t size;
  uint32_t chunk_size;
  uint64_t chunks;
  uint64_t chunks_local;     /* installed (fetched or zero) */
  uint64_t chunks_dirty;     /* written, not yet pushed (as last seen) */
  uint64_t chunks_failed;    /* poisoned: accesses get SIGBUS */
  uint64_t faults;           /* missing-page faults served */
  uint64_t wp_faults;        /* write-protect faults (synchronous mode) */
  uint64_t fetches_demand;   /* chunk fetches a fault waited for */
  uint64_t fetches_background;
  uint64_t bytes_fetched;
  uint64_t pushes;
  uint64_t bytes_pushed;
  uint64_t errors;
  enum r3m_uffd_track track; /* what the kernel granted: SYNC or NONE, or
                                AUTO meaning asynchronous */
  bool pull_done;
  int last_error;            /* positive errno of the latest failure */
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
