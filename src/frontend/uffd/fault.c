/* The fault thread: the only reader of the userfaultfd.
 *
 * It sleeps in poll() on the descriptor and a stop eventfd, with a timeout
 * when some fault waits on a fetch that has a deadline.  Each wake-up reads
 * every queued message at once.  Events (remove, unmap, remap) are applied
 * under map.lock as they are read; page faults are then served without
 * waiting on any I/O or on the region:
 *
 *   chunk MISSING           queue it for a demand worker (once); the store
 *                           of the fetched chunk wakes the faulting thread
 *   chunk INSTALLED         the page was discarded (MADV_DONTNEED): zeros
 *   chunk FAILED/GONE, or   poison the page: the access gets SIGBUS
 *   outside the region
 *   write-protect fault     queue the chunk for the marker, which reports
 *                           the write and then unprotects the chunk
 *
 * A fill that meets a pending event (EAGAIN) reads the event first and
 * tries again, since only this thread can read it. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "frontend/uffd/internal.h"
#include "util/error.h"
#include "util/time.h"

struct pending {
  uint64_t chunk;
  uint64_t deadline_ns;
};

struct fault_ctx {
  struct r3m_uffd *u;
  struct uffd_msg *batch;          /* page faults read, not yet served */
  size_t nbatch, batch_cap;
  struct pending *pend;            /* faults waiting on a fetch */
  size_t npend, pend_cap;
  unsigned char *zeros;            /* one page */
};

static bool
grow (void **p, size_t *cap, size_t need, size_t size)
{
  if (need <= *cap)
    return true;
  size_t n = *cap ? *cap * 2 : 64;
  while (n < need)
    n *= 2;
  void *q = realloc (*p, n * size);
  if (!q)
    return false;
  *p = q;
  *cap = n;
  return true;
}

/* Chunks overlapping [start, end) (offsets), clipped to the mapping. */
static bool
chunk_span (struct r3m_uffd *u, uint64_t start, uint64_t end,
            uint64_t *first, uint64_t *last)
{
  if (end > u->map.len)
    end = u->map.len;
  if (start >= end)
    return false;
  *first = start >> u->chunk_shift;
  *last = (end - 1) >> u->chunk_shift;
  return true;
}

static void
give_up_range (struct r3m_uffd *u, uint64_t start, uint64_t end)
{
  uint64_t a, b;
  if (!chunk_span (u, start, end, &a, &b))
    return;
  if (grow ((void **) &u->gone, &u->gone_cap, 2 * (u->ngone + 1),
            sizeof *u->gone)) {
    u->gone[2 * u->ngone] = start;
    u->gone[2 * u->ngone + 1] = end < u->map.len ? end : u->map.len;
    u->ngone++;
  }
  for (uint64_t c = a; c <= b; c++)
    if (atomic_exchange (&u->state[c], CH_GONE) != CH_GONE)
      uffd_mark_queue (u, c, MARK_GONE);
}

/* Apply one non-fault event.  map.lock is held. */
static void
apply_event (struct r3m_uffd *u, const struct uffd_msg *m)
{
  uintptr_t base = atomic_load (&u->map.base);
  uint64_t a, b;
  switch (m->event) {
  case UFFD_EVENT_REMOVE:
    /* Discarded pages read as zeros from now on: a write of zeros, unless
     * the discard is the region trimming the chunk. */
    if (m->arg.remove.start >= base
        && chunk_span (u, m->arg.remove.start - base,
                       m->arg.remove.end - base, &a, &b))
      for (uint64_t c = a; c <= b; c++)
        if (!atomic_load (&u->trimming[c])
            && uffd_has_pages (u, c))
          uffd_mark_queue (u, c, MARK_DIRTY);
    break;
  case UFFD_EVENT_UNMAP:
    if (m->arg.remove.start < base + u->map.len && m->arg.remove.end > base) {
      uint64_t s = m->arg.remove.start > base ? m->arg.remove.start - base : 0;
      give_up_range (u, s, m->arg.remove.end - base);
    }
    break;
  case UFFD_EVENT_REMAP:
    if (m->arg.remap.from == base && m->arg.remap.len == u->map.len)
      atomic_store (&u->map.base, (uintptr_t) m->arg.remap.to);
    else if (m->arg.remap.from >= base
             && m->arg.remap.from < base + u->map.len) {
      uint64_t s = m->arg.remap.from - base;
      give_up_range (u, s, s + m->arg.remap.len);
      uffd_record_error (u, EINVAL, "part of the region was moved with "
                         "mremap; it is no longer served");
    }
    break;
  default:
    break;
  }
}

/* Read every queued message; apply events, keep page faults.  false when
 * the descriptor is unusable. */
static bool
read_messages (struct fault_ctx *fx)
{
  struct r3m_uffd *u = fx->u;
  struct uffd_msg msgs[64];
  bool ok = true;
  pthread_mutex_lock (&u->map.lock);
  for (;;) {
    ssize_t n = read (u->map.fd, msgs, sizeof msgs);
    if (n < 0) {
      ok = errno == EAGAIN || errno == EINTR;
      break;
    }
    size_t k = (size_t) n / sizeof msgs[0];
    for (size_t i = 0; i < k; i++) {
      if (msgs[i].event != UFFD_EVENT_PAGEFAULT) {
        apply_event (u, &msgs[i]);
        continue;
      }
      if (grow ((void **) &fx->batch, &fx->batch_cap, fx->nbatch + 1,
                sizeof *fx->batch))
        fx->batch[fx->nbatch++] = msgs[i];
    }
    if (k < sizeof msgs / sizeof msgs[0])
      break;
  }
  pthread_mutex_unlock (&u->map.lock);
  return ok;
}

static void
add_pending (struct fault_ctx *fx, uint64_t c)
{
  struct r3m_uffd *u = fx->u;
  if (u->opts.fetch_timeout_ms == 0)
    return;
  if (grow ((void **) &fx->pend, &fx->pend_cap, fx->npend + 1,
            sizeof *fx->pend))
    fx->pend[fx->npend++] = (struct pending) {
      c, util_now_ns () + (uint64_t) u->opts.fetch_timeout_ms * 1000000u };
}

static int
zero_page (struct fault_ctx *fx, uint64_t off)
{
  struct uffd_map *m = &fx->u->map;
  if (m->track == UFFD_TRACK_SYNC)
    return uffd_map_copy (m, off, fx->zeros, m->page, true, UFFD_OP_NOWAIT,
                          NULL);
  return uffd_map_zero (m, off, m->page, UFFD_OP_NOWAIT);
}

static int
poison_page (struct fault_ctx *fx, uint64_t off)
{
  return uffd_map_poison (&fx->u->map, off, fx->u->map.page, UFFD_OP_NOWAIT);
}

/* Serve one page fault; 0, or -EAGAIN to retry after reading events. */
static int
serve (struct fault_ctx *fx, const struct uffd_msg *msg)
{
  struct r3m_uffd *u = fx->u;
  uint64_t addr = msg->arg.pagefault.address & ~(uint64_t) (u->map.page - 1);
  uintptr_t base = atomic_load (&u->map.base);
  /* Offsets wrap around for addresses below base; base + off is still the
   * faulting address, which is all the poisoning needs. */
  uint64_t off = addr - base;
  if (base == 0 || off >= u->map.len) {
    uffd_record_error (u, EFAULT, "fault at %#llx outside the region",
                       (unsigned long long) addr);
    return poison_page (fx, off);
  }
  uint64_t c = off >> u->chunk_shift;
  if (msg->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP) {
    atomic_fetch_add (&u->wp_faults, 1);
    uffd_mark_queue (u, c, MARK_WP);
    return 0;
  }
  atomic_fetch_add (&u->faults, 1);
  switch (atomic_load (&u->state[c])) {
  case CH_INSTALLED:
    return zero_page (fx, off);
  case CH_FAILED:
  case CH_GONE:
    return poison_page (fx, off);
  default:
    break;
  }
  if (atomic_load (&u->closing)) {
    uffd_fail_chunk (u, c, ECANCELED, "unmapping while a fault waited");
    return 0;
  }
  if (atomic_exchange (&u->wanted[c], 1) == 0) {
    add_pending (fx, c);
    uffd_demand_queue (u, c);
  }
  return 0;
}

static void
serve_batch (struct fault_ctx *fx)
{
  for (size_t i = 0; i < fx->nbatch; i++) {
    struct uffd_msg msg = fx->batch[i];
    int r;
    while ((r = serve (fx, &msg)) == -EAGAIN)
      if (!read_messages (fx))
        break;
    if (r < 0 && r != -EAGAIN)
      uffd_record_error (fx->u, -r, "serving a fault at %#llx",
                         (unsigned long long) msg.arg.pagefault.address);
  }
  fx->nbatch = 0;
}

/* Drop settled entries; poison chunks whose deadline passed.  Returns the
 * poll timeout until the next deadline (-1: none). */
static int
expire (struct fault_ctx *fx)
{
  struct r3m_uffd *u = fx->u;
  uint64_t now = util_now_ns (), next = UINT64_MAX;
  size_t k = 0;
  for (size_t i = 0; i < fx->npend; i++) {
    struct pending p = fx->pend[i];
    if (atomic_load (&u->state[p.chunk]) != CH_MISSING)
      continue;
    if (now >= p.deadline_ns) {
      uffd_fail_chunk (u, p.chunk, ETIMEDOUT,
                       "fetch timed out; accesses get SIGBUS");
      continue;
    }
    if (p.deadline_ns < next)
      next = p.deadline_ns;
    fx->pend[k++] = p;
  }
  fx->npend = k;
  if (next == UINT64_MAX)
    return -1;
  return (int) ((next - now) / 1000000u) + 1;
}

static void *
fault_main (void *arg)
{
  struct fault_ctx *fx = arg;
  struct r3m_uffd *u = fx->u;
  struct pollfd pfd[2] = {
    { .fd = u->map.fd, .events = POLLIN },
    { .fd = u->stop_fd, .events = POLLIN },
  };
  int timeout = -1;
  for (;;) {
    int n = poll (pfd, 2, timeout);
    if (n < 0 && errno != EINTR)
      break;
    if (pfd[1].revents)
      break;
    if (pfd[0].revents & (POLLERR | POLLHUP | POLLNVAL))
      break;
    if (pfd[0].revents & POLLIN) {
      if (!read_messages (fx))
        break;
      serve_batch (fx);
    }
    timeout = expire (fx);
  }
  free (fx->batch);
  free (fx->pend);
  free (fx->zeros);
  free (fx);
  return NULL;
}

int
uffd_fault_start (struct r3m_uffd *u, struct r3m_error *err)
{
  u->stop_fd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (u->stop_fd < 0)
    return util_errno (err, errno, "userfaultfd: eventfd");
  struct fault_ctx *fx = calloc (1, sizeof *fx);
  if (fx)
    fx->zeros = calloc (1, u->map.page);
  if (!fx || !fx->zeros) {
    free (fx);
    return util_errno (err, ENOMEM, "userfaultfd: fault thread");
  }
  fx->u = u;
  int r = pthread_create (&u->fault_thread, NULL, fault_main, fx);
  if (r != 0) {
    free (fx->zeros);
    free (fx);
    return util_errno (err, r, "userfaultfd: starting the fault thread");
  }
  u->fault_started = true;
  return 0;
}

void
uffd_fault_stop (struct r3m_uffd *u)
{
  if (u->fault_started) {
    uint64_t one = 1;
    ssize_t n = write (u->stop_fd, &one, sizeof one);
    (void) n;
    pthread_join (u->fault_thread, NULL);
    u->fault_started = false;
  }
  if (u->stop_fd >= 0)
    close (u->stop_fd);
  u->stop_fd = -1;
}
