/* memory:SIZE -- a volatile backend in anonymous memory.
 *
 * The store is one private anonymous mapping with MAP_NORESERVE: pages cost
 * nothing until written, so memory:1T works on a small machine as long as
 * little of it is used.  Zeroing whole pages gives them back to the kernel
 * (MADV_DONTNEED), which is both the fast zero and the trim.
 *
 * The first write to a page costs a page fault, which on the VMs we run on
 * is most of what filling a cache costs (about 0.45 s per GB in 4 KiB
 * faults).  Faulting a whole range in with one MADV_POPULATE_WRITE call
 * costs about a quarter less, but the same call on pages that are already
 * there costs 0.1-0.2 s per GB for nothing.  So the backend remembers, per
 * 64 KiB granule, whether it has populated it since the mapping was made or
 * the granule last dropped: a write covering never-populated granules
 * populates them first, later writes pay one bit test.  The bits are hints
 * (atomics, no lock): a race only costs the optimisation. */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backend/backends.h"
#include "util/error.h"

#define GRANULE_SHIFT 16        /* 64 KiB */
#define GRANULE ((size_t) 1 << GRANULE_SHIFT)

struct memory {
  unsigned char *base;
  size_t size;
  size_t page;
  _Atomic uint64_t *populated;  /* a bit per granule; NULL: never populate */
};

static bool
granule_test (struct memory *m, size_t g)
{
  return (atomic_load_explicit (&m->populated[g / 64], memory_order_relaxed)
          >> (g % 64)) & 1;
}

/* The granules wholly inside [off, off+len): [*first, *end). */
static void
whole_granules (uint64_t off, uint64_t len, size_t *first, size_t *end)
{
  *first = (size_t) ((off + GRANULE - 1) >> GRANULE_SHIFT);
  *end = (size_t) ((off + len) >> GRANULE_SHIFT);
}

/* Populate the never-populated whole granules of [off, off+len), in runs. */
static void
populate_fresh (struct memory *m, uint64_t off, size_t len)
{
#ifdef MADV_POPULATE_WRITE
  if (!m->populated || len < GRANULE)
    return;
  size_t first, end;
  whole_granules (off, len, &first, &end);
  for (size_t g = first; g < end;) {
    if (granule_test (m, g)) {
      g++;
      continue;
    }
    size_t h = g;
    while (h < end && !granule_test (m, h))
      h++;
    if (madvise (m->base + (g << GRANULE_SHIFT), (h - g) << GRANULE_SHIFT,
                 MADV_POPULATE_WRITE) < 0)
      return;                   /* not supported: plain faults then */
    for (size_t i = g; i < h; i++)
      atomic_fetch_or_explicit (&m->populated[i / 64],
                                UINT64_C (1) << (i % 64),
                                memory_order_relaxed);
    g = h;
  }
#else
  (void) m; (void) off; (void) len;
#endif
}

/* The whole granules of [off, off+len) were dropped. */
static void
granules_dropped (struct memory *m, uint64_t off, uint64_t len)
{
  if (!m->populated)
    return;
  size_t first, end;
  whole_granules (off, len, &first, &end);
  for (size_t i = first; i < end; i++)
    atomic_fetch_and_explicit (&m->populated[i / 64],
                               ~(UINT64_C (1) << (i % 64)),
                               memory_order_relaxed);
}

static int
memory_pread (void *self, void *buf, size_t len, uint64_t off)
{
  struct memory *m = self;
  memcpy (buf, m->base + off, len);
  return 0;
}

static int
memory_pwrite (void *self, const void *buf, size_t len, uint64_t off,
               unsigned flags)
{
  struct memory *m = self;
  populate_fresh (m, off, len);
  memcpy (m->base + off, buf, len);
  return 0;
}

static int
memory_zero (void *self, size_t len, uint64_t off, unsigned flags)
{
  struct memory *m = self;
  /* memset the unaligned edges, drop the whole pages in between. */
  uint64_t first = (off + m->page - 1) / m->page * m->page;
  uint64_t end = off + len;
  uint64_t last = end / m->page * m->page;
  if (first >= last) {
    memset (m->base + off, 0, len);
    return 0;
  }
  memset (m->base + off, 0, first - off);
  memset (m->base + last, 0, end - last);
  if (madvise (m->base + first, last - first, MADV_DONTNEED) < 0)
    memset (m->base + first, 0, last - first);
  else
    granules_dropped (m, first, last - first);
  return 0;
}

static int
memory_trim (void *self, size_t len, uint64_t off)
{
  return memory_zero (self, len, off, 0);
}

static void *
memory_direct (void *self)
{
  struct memory *m = self;
  return m->base;
}

static void
memory_close (void *self)
{
  struct memory *m = self;
  if (m->size > 0)
    munmap (m->base, m->size);
  free (m->populated);
  free (m);
}

static const struct r3m_backend_ops memory_ops = {
  .name = "memory",
  .pread = memory_pread,
  .pwrite = memory_pwrite,
  .zero = memory_zero,
  .trim = memory_trim,
  .direct = memory_direct,
  .close = memory_close,
};

int
be_memory_new (uint64_t size, unsigned open_flags, const char *description,
               struct r3m_backend **out, struct r3m_error *err)
{
  char lb[UTIL_URI_LABEL_MAX];
  const char *what = util_uri_label (description ? description : "memory",
                                     lb);
  if (size > SIZE_MAX / 2)
    return util_err (err, EFBIG, "%s: size does not fit in memory", what);
  struct memory *m = calloc (1, sizeof *m);
  if (!m)
    return util_errno (err, ENOMEM, "%s", what);
  m->size = (size_t) size;
  m->page = (size_t) sysconf (_SC_PAGESIZE);
  if (size > 0) {
    m->base = mmap (NULL, m->size, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m->base == MAP_FAILED) {
      int e = errno;
      free (m);
      return util_errno (err, e, "%s: mmap", what);
    }
    /* Without the bits (no memory for them) writes just fault. */
    size_t granules = (m->size + GRANULE - 1) >> GRANULE_SHIFT;
    if (m->page <= GRANULE)
      m->populated = calloc ((granules + 63) / 64, sizeof *m->populated);
  }
  struct r3m_backend_info info = {
    .size = size,
    .align = 1,
    .flags = R3M_BACKEND_VOLATILE | R3M_BACKEND_FAST_ZERO
             | ((open_flags & R3M_OPEN_READ_ONLY) ? R3M_BACKEND_READ_ONLY : 0),
    .async_threads = 0,         /* memcpy is faster than a thread hop */
  };
  int r = r3m_backend_new (&memory_ops, m, &info, description, out, err);
  if (r < 0)
    memory_close (m);
  return r;
}

int
be_memory_open (const struct util_uri *u, const char *uri, unsigned flags,
                struct r3m_backend **out, struct r3m_error *err)
{
  uint64_t size;
  int r = be_uri_opaque_size (u, uri, "memory:SIZE", &size, err);
  if (r < 0)
    return r;
  return be_memory_new (size, flags, uri, out, err);
}
