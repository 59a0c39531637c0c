/* libFuzzer harness: NBD server requests.  The harness negotiates a
 * connection itself (the first input byte picks the export and whether
 * structured replies, metadata contexts and extended headers are on: bit
 * 16 asks for extended headers instead of structured replies, so the
 * requests are then extended ones), so every mutation
 * lands in the transmission phase: request parsing, validation, execution
 * and reply encoding.  Seeds: corpus/nbd-server-request/, made by
 * nbd-server-seeds.py. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "nbd/proto.h"
#include "nbd-server-harness.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static size_t
opt (uint8_t *p, uint32_t o, const void *d, uint32_t len)
{
  nbd_put64 (p, NBD_IHAVEOPT);
  nbd_put32 (p + 8, o);
  nbd_put32 (p + 12, len);
  if (len)
    memcpy (p + 16, d, len);
  return 16 + len;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static const char *const exports[] = { "", "ro", "pool", "a" };
  if (size < 1)
    return 0;
  uint8_t sel = data[0];
  const char *name = exports[sel & 3];
  bool extended = sel & 16, structured = (sel & 4) || extended;
  bool meta = sel & 8;
  uint8_t pre[512];
  size_t n = 0;
  nbd_put32 (pre, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
  n += 4;
  if (structured)
    n += opt (pre + n, extended ? NBD_OPT_EXTENDED_HEADERS
                                : NBD_OPT_STRUCTURED_REPLY, NULL, 0);
  uint8_t d[128];
  uint32_t nl = (uint32_t) strlen (name);
  if (structured && meta) {
    static const char *const q[] = { "base:allocation", "x-fuzz:ctx" };
    nbd_put32 (d, nl);
    memcpy (d + 4, name, nl);
    nbd_put32 (d + 4 + nl, 2);
    uint32_t p = 8 + nl;
    for (int i = 0; i < 2; i++) {
      uint32_t ql = (uint32_t) strlen (q[i]);
      nbd_put32 (d + p, ql);
      memcpy (d + p + 4, q[i], ql);
      p += 4 + ql;
    }
    n += opt (pre + n, NBD_OPT_SET_META_CONTEXT, d, p);
  }
  nbd_put32 (d, nl);
  memcpy (d + 4, name, nl);
  nbd_put16 (d + 4 + nl, 1);
  nbd_put16 (d + 6 + nl, NBD_INFO_BLOCK_SIZE);
  n += opt (pre + n, NBD_OPT_GO, d, 8 + nl);
  fuzz_serve (pre, n, data + 1, size - 1);
  return 0;
}
