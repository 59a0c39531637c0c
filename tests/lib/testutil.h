/* Small helpers shared by tests: memory backends, byte patterns, polling. */
#ifndef R3M_TEST_TESTUTIL_H
#define R3M_TEST_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <r3map/backend.h>

/* A memory: backend of size bytes; aborts the test program on failure. */
struct r3m_backend *tu_memory (uint64_t size);

/* The byte a pattern with seed puts at absolute offset off. */
static inline unsigned char
tu_pattern_byte (uint64_t seed, uint64_t off)
{
  uint64_t x = (off + 1) * 0x9E3779B97F4A7C15ull ^ seed * 0xBF58476D1CE4E5B9ull;
  x ^= x >> 31;
  return (unsigned char) (x ^ (x >> 17));
}

/* Fill buf with the pattern for [off, off+len). */
void tu_pattern (uint64_t seed, void *buf, size_t len, uint64_t off);
/* Write the pattern over the whole backend; aborts on failure. */
void tu_fill (struct r3m_backend *b, uint64_t seed);
/* Does the backend hold the pattern over [off, off+len)? */
bool tu_check (struct r3m_backend *b, uint64_t seed, uint64_t off,
               uint64_t len);
/* Are the two backends' first len bytes equal? */
bool tu_equal (struct r3m_backend *a, struct r3m_backend *b, uint64_t len);

/* Does the backend's first len bytes equal buf? */
bool tu_equal_buf (struct r3m_backend *b, const void *buf, uint64_t len);

/* Poll cond (up to timeout_ms) until it returns true. */
bool tu_poll (bool (*cond) (void *), void *arg, unsigned timeout_ms);

/* A deterministic pseudo-random generator for tests. */
static inline uint64_t
tu_rand (uint64_t *state)
{
  uint64_t x = *state += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

#endif
