/* A fault-injecting backend for tests.
 *
 * tfault_new wraps any backend (borrowed: it must outlive the wrapper) in a
 * new handle that forwards every call, counts calls per operation and per
 * chunk, and applies rules that make chosen calls fail with a chosen errno
 * or stall until the test releases them (or for a time).  A rule matches
 * by operation, by the per-operation call number and by byte range.
 *
 * With async_threads > 0 the handle runs r3m_backend_submit requests on
 * that many threads (the generic adapter), so a stalled submitted request
 * blocks an adapter thread rather than the submitter; with 0 they run
 * inline in the submitting thread, like the memory backend.
 *
 * Every function is thread-safe.  Close the handle with r3m_backend_close
 * after releasing stalled calls (a stalled call holds the adapter).
 */
#ifndef R3M_TEST_FAULT_H
#define R3M_TEST_FAULT_H

#include <stdbool.h>
#include <stdint.h>

#include <r3map/backend.h>

struct tfault;

#define TF_OP(op) (1u << (op))  /* e.g. TF_OP (R3M_IO_READ) */
#define TF_ALL_OPS 0u

struct tfault_rule {
  unsigned ops;               /* TF_OP bits; TF_ALL_OPS = every operation */
  uint64_t first_call;        /* 1-based per-op call number to start at;
                                 0 = from the first */
  unsigned times;             /* matching calls to affect; 0 = all */
  uint64_t off, len;          /* calls overlapping [off, off+len); len 0 =
                                 anywhere (flush always matches) */
  int error;                  /* positive errno to fail with; 0 = succeed */
  bool stall;                 /* block before running the call ... */
  unsigned stall_ms;          /* ... this long; 0 = until tfault_release */
  bool after;                 /* stall (and fail) after running the call
                                 instead: a read has its data already */
};

/* Wrap inner.  chunk_size (power of two) is the granularity of the per-
 * chunk counters.  *out is the new handle; *f its control (owned by the
 * handle, freed by r3m_backend_close). */
int tfault_new (struct r3m_backend *inner, uint32_t chunk_size,
                unsigned async_threads, struct r3m_backend **out,
                struct tfault **f);

/* Add a rule; rules are checked in the order added, the first matching
 * one applies.  Returns 0 or -ENOMEM. */
int tfault_add (struct tfault *f, const struct tfault_rule *rule);
/* Remove every rule (stalled calls stay stalled until released). */
void tfault_clear (struct tfault *f);
/* Wake every stalled call and make stall rules stop stalling. */
void tfault_release (struct tfault *f);
/* Calls blocked in a stall right now. */
unsigned tfault_stalled (struct tfault *f);
/* Poll until at least n calls are stalled; false after timeout_ms. */
bool tfault_wait_stalled (struct tfault *f, unsigned n, unsigned timeout_ms);

/* Poll until no call is inside the wrapper (stalled calls released and
 * returned); false after timeout_ms. */
bool tfault_wait_idle (struct tfault *f, unsigned timeout_ms);

/* Calls of op seen so far (including failed and stalled ones). */
uint64_t tfault_calls (struct tfault *f, enum r3m_io_op op);
/* Read or write calls that touched chunk c. */
uint32_t tfault_chunk_reads (struct tfault *f, uint64_t c);
uint32_t tfault_chunk_writes (struct tfault *f, uint64_t c);
/* Number of distinct chunks read / written at least once. */
uint64_t tfault_chunks_read (struct tfault *f);
uint64_t tfault_chunks_written (struct tfault *f);
/* Zero every counter. */
void tfault_reset_counts (struct tfault *f);

#endif
