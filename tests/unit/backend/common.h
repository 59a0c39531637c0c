/* Helpers shared by the backend tests: temporary directories, opening
 * backends, and the checks every backend must pass (a "conformance" suite
 * the per-backend files run against their own URIs). */
#ifndef R3M_TEST_BACKEND_COMMON_H
#define R3M_TEST_BACKEND_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <r3map/backend.h>

/* A fresh directory under $TMPDIR (or /tmp); free with tmp_remove. */
char *tmp_dir (void);
/* The same in memory (/dev/shm) when $TMPDIR is not set, for tests that
 * create thousands of files: creating files on this disk costs ~0.5 ms. */
char *tmp_dir_fast (void);
/* Remove a directory tree (or file). */
void tmp_remove (const char *path);

/* Open uri or fail the test with the message. */
struct r3m_backend *open_ok (const char *uri, unsigned flags);
/* Open uri, which must fail with -code and a message containing `about`. */
void open_fails (const char *uri, unsigned flags, int code, const char *about);

/* Deterministic bytes for offset off of a test pattern named by seed. */
void fill (void *buf, size_t len, uint64_t off, unsigned seed);

/* Checks of the backend contract; each fails the test on a violation.
 * They write, so the backend must be writable, at least 64 KiB, and is
 * left with arbitrary contents. */
void check_reads_zero (struct r3m_backend *b);
void check_round_trip (struct r3m_backend *b);
void check_past_end (struct r3m_backend *b);
void check_overflow (struct r3m_backend *b);
void check_zero (struct r3m_backend *b, unsigned flags);
void check_trim (struct r3m_backend *b);
void check_flush (struct r3m_backend *b);
void check_extents (struct r3m_backend *b);
void check_submit (struct r3m_backend *b);
/* Submit one request and wait for it: its result, or submit's error. */
int submit_wait (struct r3m_backend *b, enum r3m_io_op op, void *buf,
                 size_t len, uint64_t off);
/* uri opened read-only: reads work, writes/zero/trim fail with -EPERM. */
void check_read_only (const char *uri);

/* The original's sweep (reference spec 11.7): for each buffer size 1..128
 * and every offset, a read of data never written is zero and a write reads
 * back; open_fresh returns a new empty backend of at least `size` bytes. */
void sweep (struct r3m_backend *(*open_fresh) (uint64_t size, void *arg),
            void (*before_close) (struct r3m_backend *b, void *arg),
            void *arg, uint64_t size);

#endif
