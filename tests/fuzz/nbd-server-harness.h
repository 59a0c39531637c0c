/* Shared by the NBD server's libFuzzer harnesses: a server with a few
 * exports (inline memory, a read-only one, one on the worker pool, one
 * with a 512-byte minimum block and a custom metadata context), and a
 * run of one connection over an in-memory transport whose reads come from
 * the fuzz input and whose writes are discarded. */
#ifndef R3M_FUZZ_NBD_SERVER_HARNESS_H
#define R3M_FUZZ_NBD_SERVER_HARNESS_H

#include <stddef.h>
#include <stdint.h>

/* Serve one connection whose client sends prefix then data, on the
 * calling thread, until the input ends or the server hangs up. */
void fuzz_serve (const uint8_t *prefix, size_t plen, const uint8_t *data,
                 size_t len);

#endif
