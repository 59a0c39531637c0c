/* A test backend in memory that checks what the handle sends it: every
 * call must respect the declared alignment and max_io, or it counts a
 * violation.  It can hold reads at a gate (to order async requests), and
 * can have a native submit (to test routing). */
#ifndef R3M_TEST_BACKEND_TESTBE_H
#define R3M_TEST_BACKEND_TESTBE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <r3map/backend.h>

struct testbe {
  pthread_mutex_t lock;          /* guards data, gate and entered */
  pthread_cond_t cond;
  unsigned char *data;
  uint64_t size;
  uint32_t align, max_io;
  bool gate_closed;              /* preads wait while true */
  bool yield;                    /* sched_yield after each pread */
  unsigned entered;              /* preads that reached the gate */
  atomic_uint violations;        /* misaligned or oversized calls */
  atomic_uint native_submits;
  atomic_uint reads, writes, zeros, trims, flushes;
};

struct testbe_opts {
  uint64_t size;
  uint32_t align, max_io;
  unsigned async_threads;
  bool zero_op;                  /* provide ops->zero */
  bool native_submit;            /* provide ops->submit (runs inline) */
  bool yield;                    /* widen race windows: yield in pread */
};

/* The handle owns the testbe; *tb stays valid until r3m_backend_close. */
struct r3m_backend *testbe_new (const struct testbe_opts *o,
                                struct testbe **tb);

void testbe_close_gate (struct testbe *tb);
void testbe_open_gate (struct testbe *tb);
/* Wait until n preads have reached the gate. */
void testbe_wait_entered (struct testbe *tb, unsigned n);

#endif
