/* An in-memory backend for server tests that records what the server
 * asked of it and can be told to fail, to describe extents, or to hold a
 * read until the test releases it (for ordering and shutdown tests).
 *
 * async_threads > 0 makes the server use its worker pool for it; 0 makes
 * it run requests inline on the connection thread (like memory:). */
#ifndef R3M_TEST_TESTBACKEND_H
#define R3M_TEST_TESTBACKEND_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <r3map/backend.h>

struct tb_options {
  uint64_t size;
  unsigned async_threads;
  unsigned align;              /* 0 = 1 */
  bool fast_zero;
  bool read_only;
  bool direct;                 /* offer the store's memory (zero copy) */
  const struct r3m_extent *extents; /* describe the store; NULL = none */
  size_t nextents;
};

struct tb {
  unsigned char *data;
  uint64_t size;
  struct r3m_extent ext[16];
  size_t next;

  pthread_mutex_t lock;        /* guards everything below */
  pthread_cond_t cond;
  unsigned reads, writes, fua_writes, zeroes, trims, flushes;
  int fail_reads;              /* -errno to fail every read with */
  int fail_flush;
  bool hold;                   /* reads at hold_off wait for release */
  uint64_t hold_off;
  unsigned held;               /* reads waiting now */
};

int tb_new (const struct tb_options *o, struct tb **tb,
            struct r3m_backend **b);

/* Hold reads at off until tb_release; wait until n reads are held. */
void tb_hold (struct tb *tb, uint64_t off);
void tb_wait_held (struct tb *tb, unsigned n);
void tb_release (struct tb *tb);
unsigned tb_count (struct tb *tb, const unsigned *counter);
/* Set fail_reads or fail_flush under the lock. */
void tb_set (struct tb *tb, int *field, int value);

#endif
