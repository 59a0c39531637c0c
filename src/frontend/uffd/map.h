/* The kernel half of the userfaultfd frontend: one anonymous mapping, the
 * userfaultfd that serves its faults, and the ioctls that fill, poison,
 * write-protect and scan it.
 *
 * Offsets are relative to the start of the mapping.  The start can move
 * (the application may mremap the whole region): `base` is re-read after
 * every ioctl that fails because the old address is gone, under `lock`,
 * which the fault thread holds while it reads and applies events. */
#ifndef R3M_UFFD_MAP_H
#define R3M_UFFD_MAP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <r3map/error.h>

#include "frontend/uffd/uapi.h"

enum uffd_track {
  UFFD_TRACK_NONE = 0,       /* MISSING only: writes stay local */
  UFFD_TRACK_ASYNC,          /* WP_ASYNC + PAGEMAP_SCAN (Linux 6.7+) */
  UFFD_TRACK_SYNC,           /* WP faults reach the fault thread */
};

/* Flags of the fill operations. */
#define UFFD_OP_NOWAIT   (1u << 0) /* return -EAGAIN instead of retrying
                                      while the address space changes
                                      (for the thread that reads events) */
#define UFFD_OP_DONTWAKE (1u << 1) /* leave faulting threads asleep */

struct uffd_map {
  int fd;                    /* userfaultfd, O_NONBLOCK | O_CLOEXEC */
  int pagemap_fd;            /* /proc/self/pagemap (ASYNC only), else -1 */
  _Atomic uintptr_t base;    /* start of the mapping; 0 once it is gone */
  size_t len;                /* bytes mapped: page multiple */
  size_t page;
  uint64_t features;         /* negotiated UFFD_FEATURE_* */
  enum uffd_track track;
  bool user_mode_only;       /* kernel-mode faults are not served */
  _Atomic bool poison_by_mprotect; /* fail chunks with PROT_NONE (SIGSEGV) even
                                where UFFDIO_POISON exists (tests) */
  /* Held by the fault thread while it reads and applies events, and by a
   * filler that must learn whether `base` moved.  Nothing else is taken
   * while it is held. */
  pthread_mutex_t lock;
};

/* Map len bytes (rounded up to pages) and register them.  `want` is the
 * tracking wanted; UFFD_TRACK_ASYNC falls back to SYNC where the kernel
 * lacks it (m->track says what was granted).  0 or -errno. */
int uffd_map_create (size_t len, enum uffd_track want, struct uffd_map *m,
                     struct r3m_error *err);

/* Unmap what is still ours.  `keep` lists ranges the application unmapped
 * itself, as pairs of offsets [start, end): the addresses it gave back may
 * hold someone else's mapping by now.  Threads still waiting in a fault on
 * the region wake when the descriptor closes, and get SIGSEGV.  Must not
 * be called with m->lock held (the fault thread reads our unmap event). */
void uffd_map_unmap (struct uffd_map *m, const uint64_t *keep, size_t nkeep);

/* Close the descriptors (after uffd_map_unmap and the fault thread). */
void uffd_map_close (struct uffd_map *m);

/* Install len bytes from src at off (page aligned, page multiple).  Pages
 * already present are left alone and counted in *skipped (if not NULL).
 * wp: install them write-protected.  0, -ENOENT (the range is no longer
 * mapped), -EAGAIN (UFFD_OP_NOWAIT and the address space is changing) or
 * another -errno. */
int uffd_map_copy (struct uffd_map *m, uint64_t off, const void *src,
                   size_t len, bool wp, unsigned flags, size_t *skipped);

/* Map the zero page over the missing pages of [off, off+len). */
int uffd_map_zero (struct uffd_map *m, uint64_t off, size_t len,
                   unsigned flags);

/* Make every missing page of [off, off+len) raise SIGBUS when touched, and
 * wake the threads waiting on them.  Present pages keep their data.
 * Without UFFDIO_POISON the whole range becomes PROT_NONE (SIGSEGV). */
int uffd_map_poison (struct uffd_map *m, uint64_t off, size_t len,
                     unsigned flags);

/* Write-protect (wp) or unprotect present pages; unprotecting wakes. */
int uffd_map_protect (struct uffd_map *m, uint64_t off, size_t len, bool wp);

/* Wake threads waiting on faults in the range. */
int uffd_map_wake (struct uffd_map *m, uint64_t off, size_t len);

/* ASYNC tracking: find pages written since they were last protected in
 * [off, off+len), protect them again and call fn for each written run
 * (offsets relative to the mapping).  0 or -errno. */
int uffd_map_take_written (struct uffd_map *m, uint64_t off, uint64_t len,
                           void (*fn) (uint64_t off, uint64_t len,
                                       void *user),
                           void *user);

#endif
