/* The generic submit adapter: a small pool of threads runs requests through
 * the synchronous path (be_run).  It serves backends without a native
 * submit, and backends with one for the requests the handle must adapt.
 *
 * Threads start on first use, so a backend that is only used synchronously
 * costs nothing.  Urgent requests (a caller is blocked on them) wait in
 * their own FIFO, which the threads always empty first; within each queue
 * the order is submission order.  Stopping drains both queues: every
 * accepted request completes exactly once, also during close. */
#include <errno.h>
#include <stdlib.h>

#include "backend/handle.h"

#define NEXT(io) ((io)->priv[0])

void
be_async_init (struct be_async *a, unsigned threads)
{
  pthread_mutex_init (&a->lock, NULL);
  pthread_cond_init (&a->wake, NULL);
  a->want = threads;
}

/* Take the next request; called with a->lock held. */
static struct r3m_io *
dequeue_locked (struct be_async *a)
{
  struct r3m_io **head = a->urgent_head ? &a->urgent_head : &a->head;
  struct r3m_io **tail = a->urgent_head ? &a->urgent_tail : &a->tail;
  struct r3m_io *io = *head;
  if (io) {
    *head = NEXT (io);
    if (!*head)
      *tail = NULL;
  }
  return io;
}

static void *
worker (void *arg)
{
  struct r3m_backend *b = arg;
  struct be_async *a = &b->async;

  pthread_mutex_lock (&a->lock);
  for (;;) {
    struct r3m_io *io;
    while (!(io = dequeue_locked (a)) && !a->stopping) {
      a->idle++;
      pthread_cond_wait (&a->wake, &a->lock);
      a->idle--;
    }
    if (!io)
      break;                    /* stopping and drained */
    pthread_mutex_unlock (&a->lock);
    io->done (io, be_run (b, io));
    pthread_mutex_lock (&a->lock);
  }
  pthread_mutex_unlock (&a->lock);
  return NULL;
}

/* Start the pool if it is not running; called with a->lock held. */
static int
start_locked (struct r3m_backend *b)
{
  struct be_async *a = &b->async;
  if (a->threads)
    return 0;
  unsigned n = a->want ? a->want : 1;
  a->threads = calloc (n, sizeof *a->threads);
  if (!a->threads)
    return -ENOMEM;
  for (unsigned i = 0; i < n; i++) {
    int r = pthread_create (&a->threads[i], NULL, worker, b);
    if (r != 0) {
      if (i == 0) {
        free (a->threads);
        a->threads = NULL;
        return -r;
      }
      break;                    /* fewer threads still work */
    }
    a->nthreads++;
  }
  return 0;
}

int
be_async_submit (struct r3m_backend *b, struct r3m_io *io)
{
  struct be_async *a = &b->async;
  pthread_mutex_lock (&a->lock);
  if (a->stopping) {
    pthread_mutex_unlock (&a->lock);
    return -ESHUTDOWN;
  }
  int r = start_locked (b);
  if (r < 0) {
    pthread_mutex_unlock (&a->lock);
    return r;
  }
  NEXT (io) = NULL;
  bool urgent = io->flags & R3M_IO_URGENT;
  struct r3m_io **head = urgent ? &a->urgent_head : &a->head;
  struct r3m_io **tail = urgent ? &a->urgent_tail : &a->tail;
  if (*tail)
    NEXT (*tail) = io;
  else
    *head = io;
  *tail = io;
  /* A busy worker takes the request when it finishes its current one;
   * waking another costs a context switch for nothing. */
  if (a->idle > 0)
    pthread_cond_signal (&a->wake);
  pthread_mutex_unlock (&a->lock);
  return 0;
}

/* Finish queued work, stop the threads. */
void
be_async_stop (struct be_async *a)
{
  pthread_mutex_lock (&a->lock);
  a->stopping = true;
  pthread_cond_broadcast (&a->wake);
  pthread_mutex_unlock (&a->lock);
  for (unsigned i = 0; i < a->nthreads; i++)
    pthread_join (a->threads[i], NULL);
  free (a->threads);
  a->threads = NULL;
  a->nthreads = 0;
  pthread_cond_destroy (&a->wake);
  pthread_mutex_destroy (&a->lock);
}
