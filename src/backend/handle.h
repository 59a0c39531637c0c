/* Internal view of a backend handle (include/r3map/backend.h). */
#ifndef R3M_BACKEND_HANDLE_H
#define R3M_BACKEND_HANDLE_H

#include <pthread.h>
#include <stdbool.h>

#include <r3map/backend.h>

/* Queue and threads of the generic submit adapter, started on first use. */
struct be_async {
  pthread_mutex_t lock;        /* guards everything below */
  pthread_cond_t wake;         /* work queued or stopping */
  struct r3m_io *head, *tail;  /* queued requests, linked through priv[0] */
  pthread_t *threads;
  unsigned nthreads;           /* started so far */
  bool stopping;
};

struct r3m_backend {
  const struct r3m_backend_ops *ops;
  void *self;
  struct r3m_backend_info info;
  char *description;
  struct be_async async;
};

/* Run one request synchronously through the ops (ranges already checked). */
int be_run_sync (struct r3m_backend *b, struct r3m_io *io);

/* Check op/range/read-only for a request; 0 or the -errno to fail it with. */
int be_check (const struct r3m_backend *b, enum r3m_io_op op, size_t len,
              uint64_t off);

/* The generic adapter (async.c). */
int be_async_submit (struct r3m_backend *b, struct r3m_io *io);
void be_async_init (struct be_async *a);
void be_async_stop (struct be_async *a);

#endif
