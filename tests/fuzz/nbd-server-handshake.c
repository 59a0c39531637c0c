/* libFuzzer harness: the NBD server from its first byte.  The input is
 * everything a client sends (client flags, options, then requests if it
 * gets that far); the server's replies are discarded.  ASan and UBSan
 * catch memory errors; libFuzzer's -timeout catches hangs and its malloc
 * limit huge allocations.  Seeds: corpus/nbd-server-handshake/, made by
 * nbd-server-seeds.py. */
#include <stddef.h>
#include <stdint.h>

#include "nbd-server-harness.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  fuzz_serve (NULL, 0, data, size);
  return 0;
}
