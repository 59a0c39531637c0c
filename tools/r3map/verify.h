/* Comparing two backends by hash (r3map copy --verify, r3map compare). */
#ifndef R3M_CLI_VERIFY_H
#define R3M_CLI_VERIFY_H

#include <stdint.h>

#include <r3map/backend.h>

#define CLI_VERIFY_SAME UINT64_MAX

struct cli_verify_result {
  uint64_t first_diff;       /* offset of the first chunk that differs, or
                                CLI_VERIFY_SAME */
  uint64_t hash_a, hash_b;   /* XXH3-64 of [0, len) of each side; only when
                                first_diff is CLI_VERIFY_SAME (the
                                comparison stops at the first difference) */
};

/* Read [0, len) of `a` and of `b`, each side on its own thread, hash every
 * `chunk` bytes with XXH3-64 and compare the hashes.  A side whose backend
 * is R3M_BACKEND_REMOTE keeps many asynchronous reads in flight; others are
 * read synchronously.  Both backends must be
 * at least len bytes.  0 (with *res filled, whatever the outcome) or -errno
 * when a read fails, with err naming the backend and the offset. */
int cli_verify (struct r3m_backend *a, struct r3m_backend *b, uint64_t len,
                uint32_t chunk, struct cli_verify_result *res,
                struct r3m_error *err);

#endif
