/* Internal view of a backend handle (include/r3map/backend.h).
 *
 * A request travels: public call -> be_check (range, read-only) ->
 * be_run (align.c: splits by max_io, read-modify-write for misaligned edges)
 * -> be_run_sync (one call into the implementation's ops).  Submitted
 * requests take the same path on a pool thread (async.c) unless the
 * implementation has a native submit and the request needs no adapting. */
#ifndef R3M_BACKEND_HANDLE_H
#define R3M_BACKEND_HANDLE_H

#include <pthread.h>
#include <stdbool.h>

#include <r3map/backend.h>

/* Queue and threads of the generic submit adapter, started on first use. */
struct be_async {
  pthread_mutex_t lock;        /* guards everything below */
  pthread_cond_t wake;         /* work queued or stopping */
  /* Two FIFO queues linked through priv[0]: urgent requests (someone waits
   * on them) are always taken before background ones. */
  struct r3m_io *urgent_head, *urgent_tail;
  struct r3m_io *head, *tail;
  pthread_t *threads;
  unsigned nthreads;           /* started so far */
  unsigned want;               /* pool size */
  unsigned idle;               /* threads waiting for work */
  bool stopping;
};

/* Stripes of the alignment adapter (align.c): a block maps to stripe
 * (offset / align) % BE_ALIGN_STRIPES.  A read-modify-write of a block holds
 * its stripe exclusively; a write of whole blocks holds the stripes of its
 * blocks shared, so it cannot fall between an RMW's read and its write.
 * One mutex guards all counters, and nobody holds it across I/O, so taking
 * many stripes costs two lock operations and has no lock-order cycle. */
#define BE_ALIGN_STRIPES 64

struct be_stripes {
  pthread_mutex_t lock;        /* guards the arrays below */
  pthread_cond_t changed;      /* a stripe was released */
  unsigned shared[BE_ALIGN_STRIPES];   /* whole-block writes in flight */
  unsigned waiting[BE_ALIGN_STRIPES];  /* RMWs waiting: new shared wait */
  bool exclusive[BE_ALIGN_STRIPES];    /* an RMW in flight */
};

struct r3m_backend {
  const struct r3m_backend_ops *ops;
  void *self;
  struct r3m_backend_info info;
  char *description;
  struct be_stripes *stripes;  /* when align > 1 */
  struct be_async async;
};

/* Run one request through the ops exactly as given (already checked,
 * aligned and within max_io). */
int be_run_sync (struct r3m_backend *b, struct r3m_io *io);

/* Run one checked request, adapting it to align and max_io (align.c). */
int be_run (struct r3m_backend *b, struct r3m_io *io);

/* Does this checked request need be_run's adapting (misaligned, or a read
 * or write larger than max_io)? */
bool be_needs_adapting (const struct r3m_backend *b, const struct r3m_io *io);

/* Stripe locks of the alignment adapter (align.c); 0 or -errno. */
int be_align_init (struct r3m_backend *b);
void be_align_fini (struct r3m_backend *b);

/* Check op/range/read-only for a request; 0 or the -errno to fail it with. */
int be_check (const struct r3m_backend *b, enum r3m_io_op op, size_t len,
              uint64_t off);

/* The generic adapter (async.c): queue io for a pool thread, which runs
 * be_run and calls io->done. */
int be_async_submit (struct r3m_backend *b, struct r3m_io *io);
void be_async_init (struct be_async *a, unsigned threads);
void be_async_stop (struct be_async *a);

#endif
