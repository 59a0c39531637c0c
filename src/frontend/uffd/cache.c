/* The mapping as the region's cache backend.
 *
 * The engine stores whole chunks it fetched (or was given whole) into the
 * cache: for a chunk with no pages installed that is one UFFDIO_COPY (or
 * ZEROPAGE for zeros), which also wakes every thread faulting on it.
 * Everything else (partial writes to a local chunk, reads for pushes and
 * for r3m_region_read) is a plain copy to or from the mapping, made on an
 * engine or caller thread, never on the fault thread.  A trim drops the
 * pages so the next touch faults and fetches again.
 *
 * Pages can be present in a chunk we think MISSING only after an install
 * failed half-way; such a chunk is dropped and installed again rather than
 * written in place, because writing a write-protected page from here would
 * wait for the marker, which may wait for this very store. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "frontend/uffd/internal.h"
#include "util/error.h"
#include "util/zero.h"

static void
set_state_from (struct r3m_uffd *u, uint64_t c, uint8_t to)
{
  uint8_t s = atomic_load (&u->state[c]);
  while (s != CH_GONE
         && !atomic_compare_exchange_weak (&u->state[c], &s, to))
    ;
}

/* Drop chunk c's pages; the discard event this causes is ours. */
static void
drop_pages (struct r3m_uffd *u, uint64_t c)
{
  uintptr_t base = atomic_load (&u->map.base);
  if (base == 0)
    return;
  atomic_store (&u->trimming[c], 1);
  madvise ((void *) (base + uffd_chunk_off (u, c)), uffd_chunk_maplen (u, c),
           MADV_DONTNEED);
  atomic_store (&u->trimming[c], 0);
}

static int
install_once (struct r3m_uffd *u, uint64_t c, const unsigned char *src,
              size_t *skipped)
{
  size_t len = uffd_chunk_maplen (u, c);
  uint64_t off = uffd_chunk_off (u, c);
  /* The zero page cannot carry a write-protect bit, so with synchronous
   * tracking zeros are copied like any data. */
  if (u->map.track != UFFD_TRACK_SYNC && util_is_zero (src, len))
    return uffd_map_zero (&u->map, off, len, 0);
  return uffd_map_copy (&u->map, off, src, len,
                        u->map.track != UFFD_TRACK_NONE, 0, skipped);
}

/* Install a whole chunk (maplen bytes at src). */
static int
install (struct r3m_uffd *u, uint64_t c, const unsigned char *src)
{
  size_t skipped = 0;
  atomic_store (&u->installing[c], 1);
  int r = install_once (u, c, src, &skipped);
  if (r == 0 && skipped > 0) {
    drop_pages (u, c);
    skipped = 0;
    r = install_once (u, c, src, &skipped);
    if (r == 0 && skipped > 0)
      r = -EIO;
  }
  if (r == -ENOENT) {          /* unmapped by the application meanwhile */
    atomic_store (&u->state[c], CH_GONE);
    r = 0;
  }
  else if (r < 0)
    uffd_record_error (u, -r, "chunk %llu: install", (unsigned long long) c);
  else
    set_state_from (u, c, CH_INSTALLED);
  atomic_store (&u->installing[c], 0);
  return r;
}

/* Store [off, off+len) of chunk c: buf NULL means zeros. */
static int
store_piece (struct r3m_uffd *u, uint64_t c, const unsigned char *buf,
             size_t len, uint64_t off)
{
  uint8_t s = atomic_load (&u->state[c]);
  if (s == CH_GONE)
    return 0;                  /* nobody can see it any more */
  bool whole = off == uffd_chunk_off (u, c)
               && off + len >= (u->size < uffd_chunk_off (u, c) + u->chunk
                                ? u->size : uffd_chunk_off (u, c) + u->chunk);
  if (s != CH_INSTALLED) {
    if (!whole)
      return -EIO;             /* the engine stores whole chunks first */
    size_t maplen = uffd_chunk_maplen (u, c);
    if (!buf)
      return install (u, c, u->zeros);
    if (len == maplen)
      return install (u, c, buf);
    /* The last chunk: pad to whole pages with zeros. */
    unsigned char *tmp = malloc (maplen);
    if (!tmp)
      return -ENOMEM;
    memcpy (tmp, buf, len);
    memset (tmp + len, 0, maplen - len);
    int r = install (u, c, tmp);
    free (tmp);
    return r;
  }
  char *p = (char *) atomic_load (&u->map.base) + off;
  if (buf)
    memcpy (p, buf, len);
  else
    memset (p, 0, len);
  return 0;
}

static int
store (struct r3m_uffd *u, const unsigned char *buf, size_t len, uint64_t off)
{
  while (len > 0) {
    uint64_t c = off >> u->chunk_shift;
    uint64_t end = uffd_chunk_off (u, c) + u->chunk;
    size_t n = end - off < len ? (size_t) (end - off) : len;
    int r = store_piece (u, c, buf, n, off);
    if (r < 0)
      return r;
    if (buf)
      buf += n;
    off += n;
    len -= n;
  }
  return 0;
}

static int
cache_pwrite (void *self, const void *buf, size_t len, uint64_t off,
              unsigned flags)
{
  return store (self, buf, len, off);
}

static int
cache_zero (void *self, size_t len, uint64_t off, unsigned flags)
{
  return store (self, NULL, len, off);
}

static int
cache_pread (void *self, void *buf, size_t len, uint64_t off)
{
  struct r3m_uffd *u = self;
  /* Only installed chunks may be touched: a missing one would fault and
   * wait for this very read, a failed one raise SIGBUS here. */
  for (uint64_t c = off >> u->chunk_shift;
       c <= (off + len - 1) >> u->chunk_shift; c++)
    if (atomic_load (&u->state[c]) != CH_INSTALLED)
      return -EIO;
  memcpy (buf, (const char *) atomic_load (&u->map.base) + off, len);
  return 0;
}

static int
cache_trim (void *self, size_t len, uint64_t off)
{
  struct r3m_uffd *u = self;
  /* Whole chunks only: the rest of a chunk keeps its bytes. */
  uint64_t first = (off + u->chunk - 1) >> u->chunk_shift;
  uint64_t end = off + len >= u->size ? u->nchunks : (off + len) >> u->chunk_shift;
  for (uint64_t c = first; c < end; c++) {
    uint8_t s = atomic_load (&u->state[c]);
    if (s == CH_GONE)
      continue;
    set_state_from (u, c, CH_MISSING);
    drop_pages (u, c);
  }
  return 0;
}

static const struct r3m_backend_ops cache_ops = {
  .name = "uffd",
  .pread = cache_pread,
  .pwrite = cache_pwrite,
  .zero = cache_zero,
  .trim = cache_trim,
};

int
uffd_cache_new (struct r3m_uffd *u, struct r3m_error *err)
{
  struct r3m_backend_info info = {
    .size = u->size,
    .align = 1,
    .flags = R3M_BACKEND_VOLATILE | R3M_BACKEND_FAST_ZERO,
  };
  return r3m_backend_new (&cache_ops, u, &info, "uffd mapping", &u->cache,
                          err);
}
