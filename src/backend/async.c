/* The generic submit adapter: for backends without a native submit, a small
 * pool of threads runs the synchronous ops.  Threads start on first use, so
 * a backend that is only ever used synchronously costs nothing.  Urgent
 * requests (a caller is blocked on them) go to the head of the queue. */
#include <errno.h>
#include <stdlib.h>

#include "backend/handle.h"

#define NEXT(io) ((io)->priv[0])

void
be_async_init (struct be_async *a)
{
  pthread_mutex_init (&a->lock, NULL);
  pthread_cond_init (&a->wake, NULL);
}

static void *
worker (void *arg)
{
  struct r3m_backend *b = arg;
  struct be_async *a = &b->async;

  pthread_mutex_lock (&a->lock);
  for (;;) {
    while (!a->head && !a->stopping)
      pthread_cond_wait (&a->wake, &a->lock);
    if (!a->head)
      break;                    /* stopping and drained */
    struct r3m_io *io = a->head;
    a->head = NEXT (io);
    if (!a->head)
      a->tail = NULL;
    pthread_mutex_unlock (&a->lock);
    io->done (io, be_run_sync (b, io));
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
  unsigned n = b->info.async_threads;
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
  if (!a->head)
    a->head = a->tail = io;
  else if (io->flags & R3M_IO_URGENT) {
    NEXT (io) = a->head;
    a->head = io;
  } else {
    NEXT (a->tail) = io;
    a->tail = io;
  }
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
