/* The request loop: a fixed pool of worker threads reading /dev/fuse.
 *
 * Why not fuse_session_loop_mt: it has no way to stop other than a signal
 * to the thread that runs it, and it creates and destroys threads as load
 * changes; thread creation and wake-ups are costly on the small VMs we run
 * on.  Here every worker blocks in read(2) on the shared session fd; the
 * kernel wakes exactly one reader per request.
 *
 * Thread model:
 *   - A worker leaves its loop when the kernel ends the connection (the
 *     file system was unmounted: read returns ENODEV, libfuse marks the
 *     session exited) or when it sees `stopping`.
 *   - fusefe_loop_stop sets `stopping` and cancels the workers.  A worker
 *     accepts cancellation only while it waits in read(2), never while it
 *     runs an operation, so a request is always answered or never taken.
 *   - The last worker to leave sets `ended` and wakes r3m_fuse_wait.
 */
#include <errno.h>
#include <stdlib.h>

#include "frontend/fuse/fusefe.h"

static void
leave (struct r3m_fuse *fs)
{
  pthread_mutex_lock (&fs->lock);
  fs->running--;
  if (fuse_session_exited (fs->se))
    fs->ended = true;
  pthread_cond_broadcast (&fs->changed);
  pthread_mutex_unlock (&fs->lock);
}

/* Runs when a worker is cancelled in read(2). */
static void
leave_cancelled (void *arg)
{
  leave (arg);
}

static void *
worker_main (void *arg)
{
  struct fusefe_worker *w = arg;
  struct r3m_fuse *fs = w->fs;
  int old;

  pthread_setcancelstate (PTHREAD_CANCEL_DISABLE, &old);
  pthread_cleanup_push (leave_cancelled, fs);
  while (!atomic_load (&fs->stopping) && !fuse_session_exited (fs->se)) {
    pthread_setcancelstate (PTHREAD_CANCEL_ENABLE, &old);
    int r = fuse_session_receive_buf (fs->se, &w->buf);
    pthread_setcancelstate (PTHREAD_CANCEL_DISABLE, &old);
    if (r == -EINTR || r == -EAGAIN)
      continue;
    if (r <= 0)
      break;            /* 0: connection ended; < 0: a broken device */
    fuse_session_process_buf (fs->se, &w->buf);
  }
  pthread_cleanup_pop (0);
  /* A broken device read ends the session for everyone. */
  fuse_session_exit (fs->se);
  leave (fs);
  return NULL;
}

int
fusefe_loop_start (struct r3m_fuse *fs)
{
  fs->workers = calloc (fs->opts.threads, sizeof *fs->workers);
  if (!fs->workers)
    return -ENOMEM;
  fs->nworkers = fs->opts.threads;
  for (unsigned i = 0; i < fs->nworkers; i++) {
    struct fusefe_worker *w = &fs->workers[i];
    w->fs = fs;
    pthread_mutex_lock (&fs->lock);
    fs->running++;
    pthread_mutex_unlock (&fs->lock);
    int r = pthread_create (&w->thread, NULL, worker_main, w);
    if (r != 0) {
      pthread_mutex_lock (&fs->lock);
      fs->running--;
      pthread_mutex_unlock (&fs->lock);
      fusefe_loop_stop (fs);
      return -r;
    }
    w->started = true;
  }
  return 0;
}

void
fusefe_loop_stop (struct r3m_fuse *fs)
{
  atomic_store (&fs->stopping, true);
  for (unsigned i = 0; i < fs->nworkers; i++)
    if (fs->workers[i].started)
      pthread_cancel (fs->workers[i].thread);
  for (unsigned i = 0; i < fs->nworkers; i++) {
    struct fusefe_worker *w = &fs->workers[i];
    if (!w->started)
      continue;
    pthread_join (w->thread, NULL);
    w->started = false;
    free (w->buf.mem);
    w->buf.mem = NULL;
  }
}
