/* Demand workers: fetch the chunks that faults wait for.
 *
 * The fault thread queues a chunk when it sets its wanted[] flag; a worker
 * skips chunks no longer missing, asks the region for the whole chunk, and
 * clears the flag when done.  The region fetches it urgently (or waits for the puller's
 * fetch already in flight) and stores it into the mapping, which wakes the
 * faulting threads; the copy into the worker's buffer is a by-product.  A
 * read that fails after the region's retries poisons the chunk. */
#include <errno.h>
#include <stdlib.h>

#include "frontend/uffd/internal.h"
#include "util/error.h"

void
uffd_demand_queue (struct r3m_uffd *u, uint64_t c)
{
  struct uffd_queues *q = &u->q;
  pthread_mutex_lock (&q->lock);
  if (q->dq_len < u->nchunks) {
    q->demand[(q->dq_head + q->dq_len) % u->nchunks] = c;
    q->dq_len++;
  }
  if (q->demand_idle > 0)
    pthread_cond_signal (&q->demand_cv);
  pthread_mutex_unlock (&q->lock);
}

static bool
next (struct r3m_uffd *u, uint64_t *c)
{
  struct uffd_queues *q = &u->q;
  pthread_mutex_lock (&q->lock);
  while (!q->stop_demand && q->dq_len == 0) {
    q->demand_idle++;
    pthread_cond_wait (&q->demand_cv, &q->lock);
    q->demand_idle--;
  }
  bool ok = !q->stop_demand;
  if (ok) {
    *c = q->demand[q->dq_head];
    q->dq_head = (q->dq_head + 1) % u->nchunks;
    q->dq_len--;
  }
  pthread_mutex_unlock (&q->lock);
  return ok;
}

static void *
worker (void *arg)
{
  struct r3m_uffd *u = arg;
  unsigned char *buf = malloc (u->chunk);
  uint64_t c;
  while (buf && next (u, &c)) {
    if (atomic_load (&u->state[c]) == CH_MISSING) {
      uint64_t off = uffd_chunk_off (u, c);
      size_t len = (size_t) (u->size - off < u->chunk ? u->size - off
                             : u->chunk);
      int r = r3m_region_read (u->region, buf, len, off);
      if (r < 0)
        uffd_fail_chunk (u, c, -r, "fetch failed; accesses get SIGBUS");
    }
    /* wanted stays set while the fetch runs, so unmap can find the faults
     * it must fail.  A chunk trimmed again meanwhile may have a new fault
     * that saw the flag set and queued nothing: queue it once more. */
    atomic_store (&u->wanted[c], 0);
    if (atomic_load (&u->state[c]) == CH_MISSING
        && !atomic_load (&u->closing)
        && atomic_exchange (&u->wanted[c], 1) == 0)
      uffd_demand_queue (u, c);
  }
  free (buf);
  return NULL;
}

int
uffd_demand_start (struct r3m_uffd *u, struct r3m_error *err)
{
  u->demand_threads = calloc (u->opts.demand_workers,
                              sizeof *u->demand_threads);
  if (!u->demand_threads)
    return util_errno (err, ENOMEM, "userfaultfd: demand workers");
  for (unsigned i = 0; i < u->opts.demand_workers; i++) {
    int r = pthread_create (&u->demand_threads[i], NULL, worker, u);
    if (r != 0)
      return util_errno (err, r, "userfaultfd: starting a demand worker");
    u->ndemand++;
  }
  return 0;
}

void
uffd_demand_stop (struct r3m_uffd *u)
{
  pthread_mutex_lock (&u->q.lock);
  u->q.stop_demand = true;
  pthread_cond_broadcast (&u->q.demand_cv);
  pthread_mutex_unlock (&u->q.lock);
  for (unsigned i = 0; i < u->ndemand; i++)
    pthread_join (u->demand_threads[i], NULL);
  u->ndemand = 0;
}
