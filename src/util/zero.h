/* Zero detection at memory speed, for skipping transfers of empty chunks. */
#ifndef R3M_UTIL_ZERO_H
#define R3M_UTIL_ZERO_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* True when all len bytes at p are zero.  Checks the first 16 bytes, then
 * lets memcmp (vectorised by libc) compare the buffer with itself shifted
 * by 16: equal shifted copies of a zero head are zero throughout.  No
 * alignment is assumed. */
static inline bool
util_is_zero (const void *p, size_t len)
{
  const unsigned char *b = p;
  size_t head = len < 16 ? len : 16;
  for (size_t i = 0; i < head; i++)
    if (b[i] != 0)
      return false;
  return len <= 16 || memcmp (b, b + 16, len - 16) == 0;
}

#endif
