/* The cache's lent memory (r3m_backend_direct): fetches of chunks held
 * BUSY may be received straight into it instead of into a buffer that is
 * then copied into the cache. */
#include <stdint.h>
#include <sys/mman.h>

#include "engine/engine.h"

unsigned char *
eng_cache_mem (struct r3m_region *r)
{
  return r->cache ? r3m_backend_direct (r->cache) : NULL;
}

void
eng_cache_populate (struct r3m_region *r, unsigned char *mem, uint64_t first,
                    uint64_t last)
{
#ifdef MADV_POPULATE_WRITE
  unsigned char *a = mem + eng_chunk_off (r, first);
  size_t len = (size_t) (eng_chunk_off (r, last) + eng_chunk_len (r, last)
                         - eng_chunk_off (r, first));
  /* Whole pages only: a page shared with a chunk we do not own is left to
   * whoever writes it. */
  if (r->cs < 4096 || ((uintptr_t) a & 4095) != 0 || len < 4096)
    return;
  /* Populating pages that are already there walks them for nothing (0.1-
   * 0.2 s per GB, as much as the faults it saves on fresh ones), so ask
   * about the first page: the range is fresh as a whole (a new cache, a
   * trimmed chunk) or not at all, but for rare mixtures. */
  unsigned char in_core = 0;
  if (mincore (a, 4096, &in_core) == 0 && (in_core & 1))
    return;
  (void) madvise (a, len & ~(size_t) 4095, MADV_POPULATE_WRITE);
#else
  (void) r; (void) mem; (void) first; (void) last;
#endif
}
