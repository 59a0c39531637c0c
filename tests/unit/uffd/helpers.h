/* Helpers for the userfaultfd frontend's tests: a backend that fails or
 * stalls chosen reads, deterministic data, and catching SIGBUS/SIGSEGV in
 * the thread that touches the mapping.  (Kept local to these tests; the
 * shared fault-injecting backend of tests/lib can replace it later.) */
#ifndef R3M_TEST_UFFD_HELPERS_H
#define R3M_TEST_UFFD_HELPERS_H

#include <setjmp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <r3map/r3map.h>

struct faulty;

/* Wrap `inner` (owned by the result).  *f stays valid until the backend
 * is closed. */
struct r3m_backend *faulty_new (struct r3m_backend *inner, struct faulty **f);
/* Reads overlapping [lo, hi) fail with -code (0: stop failing). */
void faulty_fail_reads (struct faulty *f, uint64_t lo, uint64_t hi, int code);
/* Writes fail with -code (0: stop failing). */
void faulty_fail_writes (struct faulty *f, int code);
/* Reads overlapping [lo, hi) block until faulty_release. */
void faulty_stall_reads (struct faulty *f, uint64_t lo, uint64_t hi);
void faulty_release (struct faulty *f);
/* Wait until at least n reads are blocked; false after timeout_ms. */
bool faulty_wait_stalled (struct faulty *f, unsigned n, int timeout_ms);
uint64_t faulty_reads (struct faulty *f);
uint64_t faulty_writes (struct faulty *f);
uint64_t faulty_flushes (struct faulty *f);
/* Reads that covered offset off. */
uint64_t faulty_reads_at (struct faulty *f, uint64_t off);
/* Did any write cover offset off? */
bool faulty_written_at (struct faulty *f, uint64_t off);

/* The byte every pattern-filled store holds at off. */
static inline uint8_t
pattern_byte (uint64_t off)
{
  uint64_t x = off * 0x9E3779B97F4A7C15ull;
  return (uint8_t) ((x >> 29) ^ (off >> 12) ^ 0x5a);
}

/* A memory backend of size bytes filled with pattern_byte. */
struct r3m_backend *pattern_backend (uint64_t size);

/* Run fn(arg) in this thread; returns 0, or the signal (SIGBUS or
 * SIGSEGV) it raised, with the faulting address in *addr. */
int catch_fault (void (*fn) (void *), void *arg, void **addr);

/* Read one byte through a volatile pointer (for catch_fault). */
void touch_read (void *p);

/* splitmix64 for tests that need random numbers. */
static inline uint64_t
rng_next (uint64_t *s)
{
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* Skip (exit 77) when this machine has no usable userfaultfd. */
void require_uffd (void);

#endif
