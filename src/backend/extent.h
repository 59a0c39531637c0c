/* Building an extent list for r3m_backend_ops.extents. */
#ifndef R3M_BACKEND_EXTENT_H
#define R3M_BACKEND_EXTENT_H

#include <stdbool.h>
#include <stddef.h>

#include <r3map/backend.h>

/* Append a run of len bytes with flags, merging it into the last extent
 * when the flags match.  false when it neither merges nor fits in max
 * (the caller stops there: the answer may cover less than asked). */
static inline bool
be_extent_push (struct r3m_extent *ext, size_t max, size_t *n, uint64_t len,
                uint32_t flags)
{
  if (*n > 0 && ext[*n - 1].flags == flags) {
    ext[*n - 1].len += len;
    return true;
  }
  if (*n == max)
    return false;
  ext[*n].len = len;
  ext[*n].flags = flags;
  (*n)++;
  return true;
}

#endif
