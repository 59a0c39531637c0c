/* The kernel half of the userfaultfd frontend (see map.h).
 *
 * Every fill ioctl (COPY, ZEROPAGE, POISON) can stop part-way: it reports
 * the bytes done and fails with EAGAIN, or fails on the first page with
 * EEXIST (already present), EAGAIN (the address space is changing: a
 * remove, unmap or remap event is waiting to be read) or ENOENT (no mapping
 * there any more).  fill() turns that into "every missing page of the range
 * is now filled, or here is why not". */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "frontend/uffd/map.h"
#include "util/error.h"

enum fill_op { FILL_COPY, FILL_ZERO, FILL_POISON };

/* Features we ask for whenever the kernel has them.  The events let the
 * frontend follow what the application does to the mapping: discards
 * (MADV_DONTNEED) count as writes of zeros, unmapped parts are never
 * touched again, and a moved region is followed. */
#define WANTED_EVENTS \
  (UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_REMOVE \
   | UFFD_FEATURE_EVENT_UNMAP)

static void
pause_briefly (void)
{
  struct timespec ts = { 0, 20 * 1000 };
  nanosleep (&ts, NULL);
}

/* After ENOENT: did the fault thread move `base` meanwhile?  Taking the
 * lock waits for an event it is applying right now. */
static bool
base_moved (struct uffd_map *m, uintptr_t old)
{
  pthread_mutex_lock (&m->lock);
  uintptr_t now = atomic_load (&m->base);
  pthread_mutex_unlock (&m->lock);
  return now != 0 && now != old;
}

/* One ioctl; returns 0 or an errno, and the bytes done (or -errno) in
 * *done as the kernel reports them. */
static int
fill_once (struct uffd_map *m, enum fill_op op, uintptr_t dst,
           const char *src, size_t len, bool wp, unsigned flags,
           int64_t *done)
{
  bool dontwake = flags & UFFD_OP_DONTWAKE;
  int r;
  switch (op) {
  case FILL_COPY: {
    struct uffdio_copy c = {
      .dst = dst, .src = (uintptr_t) src, .len = len,
      .mode = (wp ? UFFDIO_COPY_MODE_WP : 0)
              | (dontwake ? UFFDIO_COPY_MODE_DONTWAKE : 0),
    };
    r = ioctl (m->fd, UFFDIO_COPY, &c) < 0 ? errno : 0;
    *done = c.copy;
    break;
  }
  case FILL_ZERO: {
    struct uffdio_zeropage z = {
      .range = { dst, len },
      .mode = dontwake ? UFFDIO_ZEROPAGE_MODE_DONTWAKE : 0,
    };
    r = ioctl (m->fd, UFFDIO_ZEROPAGE, &z) < 0 ? errno : 0;
    *done = z.zeropage;
    break;
  }
  default: {
    struct uffdio_poison p = {
      .range = { dst, len },
      .mode = dontwake ? UFFDIO_POISON_MODE_DONTWAKE : 0,
    };
    r = ioctl (m->fd, UFFDIO_POISON, &p) < 0 ? errno : 0;
    *done = p.updated;
    break;
  }
  }
  return r;
}

static int
fill (struct uffd_map *m, enum fill_op op, uint64_t off, const char *src,
      size_t len, bool wp, unsigned flags, size_t *skipped)
{
  while (len > 0) {
    uintptr_t base = atomic_load (&m->base);
    if (base == 0)
      return -ENOENT;
    int64_t done = 0;
    int r = fill_once (m, op, base + off, src, len, wp, flags, &done);
    if (r == 0)
      return 0;
    if (done > 0) {           /* part done; go on from there */
      size_t n = (size_t) done;
      off += n;
      len -= n;
      if (src)
        src += n;
      continue;
    }
    switch (r) {
    case EEXIST:              /* this page is present: skip it */
      if (skipped)
        ++*skipped;
      if (!(flags & UFFD_OP_DONTWAKE))
        uffd_map_wake (m, off, m->page);
      off += m->page;
      len -= m->page;
      if (src)
        src += m->page;
      break;
    case EAGAIN:
      if (flags & UFFD_OP_NOWAIT)
        return -EAGAIN;
      pause_briefly ();
      break;
    case ENOENT:
    case ESRCH:
      if (!base_moved (m, base))
        return -ENOENT;
      break;
    default:
      return -r;
    }
  }
  return 0;
}

int
uffd_map_copy (struct uffd_map *m, uint64_t off, const void *src, size_t len,
               bool wp, unsigned flags, size_t *skipped)
{
  return fill (m, FILL_COPY, off, src, len, wp, flags, skipped);
}

int
uffd_map_zero (struct uffd_map *m, uint64_t off, size_t len, unsigned flags)
{
  return fill (m, FILL_ZERO, off, NULL, len, false, flags, NULL);
}

/* Without UFFDIO_POISON (Linux < 6.6) the range is made inaccessible
 * instead: the waiters are woken and fault again with SIGSEGV. */
static int
poison_by_mprotect (struct uffd_map *m, uint64_t off, size_t len,
                    unsigned flags)
{
  uintptr_t base = atomic_load (&m->base);
  if (base == 0)
    return -ENOENT;
  if (mprotect ((void *) (base + off), len, PROT_NONE) < 0)
    return -errno;
  return (flags & UFFD_OP_DONTWAKE) ? 0 : uffd_map_wake (m, off, len);
}

int
uffd_map_poison (struct uffd_map *m, uint64_t off, size_t len,
                 unsigned flags)
{
  if (!(m->features & UFFD_FEATURE_POISON) || atomic_load (&m->poison_by_mprotect))
    return poison_by_mprotect (m, off, len, flags);
  return fill (m, FILL_POISON, off, NULL, len, false, flags, NULL);
}

int
uffd_map_protect (struct uffd_map *m, uint64_t off, size_t len, bool wp)
{
  for (;;) {
    uintptr_t base = atomic_load (&m->base);
    if (base == 0)
      return -ENOENT;
    struct uffdio_writeprotect w = {
      .range = { base + off, len },
      .mode = wp ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
    };
    if (ioctl (m->fd, UFFDIO_WRITEPROTECT, &w) == 0)
      return 0;
    int r = errno;
    if (r == EAGAIN)
      pause_briefly ();
    else if ((r != ENOENT && r != ESRCH) || !base_moved (m, base))
      return -r;
  }
}

int
uffd_map_wake (struct uffd_map *m, uint64_t off, size_t len)
{
  uintptr_t base = atomic_load (&m->base);
  if (base == 0)
    return -ENOENT;
  struct uffdio_range r = { base + off, len };
  return ioctl (m->fd, UFFDIO_WAKE, &r) < 0 ? -errno : 0;
}

int
uffd_map_take_written (struct uffd_map *m, uint64_t off, uint64_t len,
                       void (*fn) (uint64_t off, uint64_t len, void *user),
                       void *user)
{
  struct page_region vec[256];
  uintptr_t base = atomic_load (&m->base);
  if (m->pagemap_fd < 0)
    return -EOPNOTSUPP;
  if (base == 0)
    return -ENOENT;
  uint64_t start = base + off, end = base + off + len;
  while (start < end) {
    /* Written, present or swapped out, and not the shared zero page
     * (which is never written; the zero page is mapped unprotected). */
    struct pm_scan_arg a = {
      .size = sizeof a,
      .flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
      .start = start,
      .end = end,
      .vec = (uintptr_t) vec,
      .vec_len = sizeof vec / sizeof vec[0],
      .category_inverted = PAGE_IS_PFNZERO,
      .category_mask = PAGE_IS_WRITTEN | PAGE_IS_PFNZERO,
      .category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
      .return_mask = PAGE_IS_WRITTEN,
    };
    long n = ioctl (m->pagemap_fd, PAGEMAP_SCAN, &a);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN)
        continue;
      return -errno;
    }
    for (long i = 0; i < n; i++)
      fn (vec[i].start - base, vec[i].end - vec[i].start, user);
    if (a.walk_end <= start)
      return -EIO;            /* no progress: never loop for ever */
    start = a.walk_end;
  }
  return 0;
}

/* A userfaultfd that serves kernel-mode faults too (a read(2) into the
 * region must work), if we may have one: the syscall needs
 * CAP_SYS_PTRACE or vm.unprivileged_userfaultfd=1, /dev/userfaultfd
 * needs access to the device (Linux 6.1+).  Last resort: user-mode only. */
static int
open_uffd (bool *user_mode_only)
{
  *user_mode_only = false;
  int fd = (int) syscall (SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
  if (fd >= 0)
    return fd;
  int first = errno;
  int dev = open ("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
  if (dev >= 0) {
    fd = ioctl (dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
    close (dev);
    if (fd >= 0)
      return fd;
  }
  fd = (int) syscall (SYS_userfaultfd,
                      O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
  if (fd >= 0) {
    *user_mode_only = true;
    return fd;
  }
  return -first;
}

/* UFFDIO_API may be called once per descriptor: learn what the kernel
 * offers on a throw-away one, then ask for what we use. */
static int
negotiate (struct uffd_map *m, enum uffd_track want, struct r3m_error *err)
{
  bool umo;
  int probe = open_uffd (&umo);
  if (probe < 0)
    return util_errno (err, -probe, "userfaultfd");
  struct uffdio_api api = { .api = UFFD_API };
  if (ioctl (probe, UFFDIO_API, &api) < 0) {
    int e = errno;
    close (probe);
    return util_errno (err, e, "userfaultfd: UFFDIO_API");
  }
  close (probe);
  uint64_t have = api.features;
  if ((have & WANTED_EVENTS) != WANTED_EVENTS)
    return util_err (err, EOPNOTSUPP,
                     "userfaultfd: the kernel lacks remove/unmap/remap "
                     "events (Linux 4.11+ needed)");
  uint64_t ask = WANTED_EVENTS | (have & UFFD_FEATURE_POISON);
  if (want == UFFD_TRACK_ASYNC) {
    m->pagemap_fd = open ("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if ((have & UFFD_FEATURE_WP_ASYNC) && m->pagemap_fd >= 0)
      ask |= UFFD_FEATURE_WP_ASYNC;
    else
      want = UFFD_TRACK_SYNC;
  }
  m->track = want;

  m->fd = open_uffd (&m->user_mode_only);
  if (m->fd < 0)
    return util_errno (err, -m->fd, "userfaultfd");
  api = (struct uffdio_api) { .api = UFFD_API, .features = ask };
  if (ioctl (m->fd, UFFDIO_API, &api) < 0)
    return util_errno (err, errno, "userfaultfd: UFFDIO_API");
  m->features = api.features & ask;
  return 0;
}

int
uffd_map_create (size_t len, enum uffd_track want, struct uffd_map *m,
                 struct r3m_error *err)
{
  memset (m, 0, sizeof *m);
  m->fd = m->pagemap_fd = -1;
  m->page = (size_t) sysconf (_SC_PAGESIZE);
  m->len = (len + m->page - 1) / m->page * m->page;
  pthread_mutex_init (&m->lock, NULL);
  if (m->len == 0)
    return util_err (err, EINVAL, "userfaultfd: an empty region");

  int r = negotiate (m, want, err);
  if (r < 0)
    goto fail;

  void *p = mmap (NULL, m->len, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    r = util_errno (err, errno, "userfaultfd: mmap of %zu bytes", m->len);
    goto fail;
  }
  atomic_store (&m->base, (uintptr_t) p);
  /* A child would get the registered range without its fault handler
   * (zeros where data is missing): keep the region out of children.
   * Huge pages would make the kernel fill and track 2 MiB at once. */
  madvise (p, m->len, MADV_DONTFORK);
  madvise (p, m->len, MADV_NOHUGEPAGE);

  struct uffdio_register reg = {
    .range = { (uintptr_t) p, m->len },
    .mode = UFFDIO_REGISTER_MODE_MISSING
            | (m->track != UFFD_TRACK_NONE ? UFFDIO_REGISTER_MODE_WP : 0),
  };
  if (ioctl (m->fd, UFFDIO_REGISTER, &reg) < 0) {
    int e = errno;
    r = e == EINVAL && m->track != UFFD_TRACK_NONE
        ? util_err (err, EOPNOTSUPP, "userfaultfd: write-protect "
                    "registration refused (Linux 5.7+ needed)")
        : util_errno (err, e, "userfaultfd: UFFDIO_REGISTER");
    goto fail;
  }
  if (!(reg.ioctls & ((uint64_t) 1 << _UFFDIO_COPY))
      || !(reg.ioctls & ((uint64_t) 1 << _UFFDIO_ZEROPAGE))) {
    r = util_err (err, EOPNOTSUPP, "userfaultfd: no UFFDIO_COPY here");
    goto fail;
  }
  return 0;

fail:
  uffd_map_unmap (m, NULL, 0);
  uffd_map_close (m);
  return r;
}

static int
cmp_u64_pair (const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
  return x < y ? -1 : x > y;
}

void
uffd_map_unmap (struct uffd_map *m, const uint64_t *keep, size_t nkeep)
{
  uintptr_t base = atomic_exchange (&m->base, 0);
  if (base == 0)
    return;
  uint64_t *k = NULL;
  if (nkeep > 0) {
    k = malloc (nkeep * 2 * sizeof *k);
    if (!k)
      return;                 /* out of memory: leak rather than guess */
    memcpy (k, keep, nkeep * 2 * sizeof *k);
    qsort (k, nkeep, 2 * sizeof *k, cmp_u64_pair);
  }
  uint64_t at = 0;
  for (size_t i = 0; i < nkeep; i++) {
    if (k[2 * i] > at)
      munmap ((void *) (base + at), k[2 * i] - at);
    if (k[2 * i + 1] > at)
      at = k[2 * i + 1];
  }
  if (at < m->len)
    munmap ((void *) (base + at), m->len - at);
  free (k);
}

void
uffd_map_close (struct uffd_map *m)
{
  if (m->fd >= 0)
    close (m->fd);
  if (m->pagemap_fd >= 0)
    close (m->pagemap_fd);
  m->fd = m->pagemap_fd = -1;
  pthread_mutex_destroy (&m->lock);
}
