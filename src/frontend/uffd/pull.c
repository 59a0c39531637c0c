/* Fetch workers: bring chunks from the backend into the mapping.
 *
 * A worker takes, in this order: a chunk a fault is waiting for (already
 * claimed by the fault thread), the read-ahead window after the latest
 * faulting chunk, then the background order.  It reads the chunk with
 * retries and installs it with one ioctl, which also wakes every thread
 * that faulted on it.  Workers wait on `work` only when there is nothing
 * to do, and are signalled only when one of them is idle. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backend/handle.h"
#include "frontend/uffd/internal.h"
#include "util/error.h"
#include "util/time.h"

struct job {
  uint64_t chunk;
  bool demand;
};

static bool
claim (struct r3m_uffd *u, uint64_t c)
{
  uint8_t want = CH_REMOTE;
  return atomic_compare_exchange_strong (&u->state[c], &want, CH_FETCHING);
}

/* Next job, or false when stopping.  Called with u->lock held. */
static bool
next_job (struct r3m_uffd *u, struct job *j)
{
  while (!u->stopping) {
    if (u->dq_len > 0) {
      j->chunk = u->demand[u->dq_head];
      j->demand = true;
      u->dq_head = (u->dq_head + 1) % u->nchunks;
      u->dq_len--;
      return true;
    }
    while (u->ra_next < u->ra_end) {
      uint64_t c = u->ra_next++;
      if (claim (u, c)) {
        *j = (struct job) { c, false };
        return true;
      }
    }
    while (u->opts.background_pull && u->bg_next < u->nchunks) {
      uint64_t c = u->order[u->bg_next++];
      if (claim (u, c)) {
        *j = (struct job) { c, false };
        return true;
      }
    }
    u->idle++;
    pthread_cond_wait (&u->work, &u->lock);
    u->idle--;
  }
  return false;
}

static bool
all_zero (const unsigned char *p, size_t len)
{
  const uint64_t *w = (const uint64_t *) p;
  for (size_t i = 0; i < len / 8; i++)
    if (w[i] != 0)
      return false;
  return true;
}

static int
read_chunk (struct r3m_uffd *u, uint64_t c, unsigned char *buf)
{
  size_t data = uffd_chunk_datalen (u, c), map = uffd_chunk_maplen (u, c);
  int r = 0;
  for (unsigned attempt = 0; attempt <= u->opts.fetch_retries; attempt++) {
    r = r3m_backend_pread (u->remote, buf, data, uffd_chunk_off (u, c));
    if (r >= 0)
      break;
    if (atomic_load (&u->state[c]) != CH_FETCHING)
      break;                  /* timed out or unmapping: stop trying */
  }
  if (r >= 0 && map > data)
    memset (buf + data, 0, map - data);
  return r < 0 ? r : 0;
}

/* Install a fetched chunk.  Zero chunks get the shared zero page, except
 * with synchronous tracking, where the zero page could not be write-
 * protected and its first write would go unseen. */
static int
install (struct r3m_uffd *u, uint64_t c, const unsigned char *buf)
{
  size_t len = uffd_chunk_maplen (u, c);
  uint64_t off = uffd_chunk_off (u, c);
  if (u->map.track != UFFD_TRACK_SYNC && all_zero (buf, len))
    return uffd_map_zero (&u->map, off, len, 0);
  return uffd_map_copy (&u->map, off, buf, len,
                        u->map.track != UFFD_TRACK_NONE, 0);
}

static void
finished (struct r3m_uffd *u, bool demand, int error)
{
  pthread_mutex_lock (&u->lock);
  u->active--;
  if (error < 0 && !demand && u->pull_error == 0)
    u->pull_error = error;
  if (u->waiters > 0)
    pthread_cond_broadcast (&u->progress);
  pthread_mutex_unlock (&u->lock);
}

bool
uffd_pull_fail (struct r3m_uffd *u, uint64_t c, int code, const char *why)
{
  uint8_t s = atomic_load (&u->state[c]);
  while (s == CH_REMOTE || s == CH_FETCHING) {
    if (atomic_compare_exchange_weak (&u->state[c], &s, CH_FAILED)) {
      /* Report before poisoning: whoever the SIGBUS reaches may look. */
      uint64_t off = uffd_chunk_off (u, c);
      atomic_fetch_add (&u->chunks_failed, 1);
      uffd_record_error (u, code, "chunk %llu at offset %llu: %s",
                         (unsigned long long) c, (unsigned long long) off,
                         why);
      int r = uffd_map_poison (&u->map, off, uffd_chunk_maplen (u, c), 0);
      if (r < 0 && r != -ENOENT)
        uffd_record_error (u, -r, "chunk %llu: cannot poison",
                           (unsigned long long) c);
      return true;
    }
  }
  return false;
}

/* Fetch and install one claimed chunk.  A failed background fetch is
 * retried as a demand fetch if a fault wants the chunk meanwhile. */
static void
fetch (struct r3m_uffd *u, struct job j, unsigned char *buf)
{
  uint64_t c = j.chunk;
  for (;;) {
    atomic_fetch_add (j.demand ? &u->fetches_demand
                      : &u->fetches_background, 1);
    int r = read_chunk (u, c, buf);
    if (r == 0) {
      uint8_t s = CH_FETCHING;
      if (!atomic_compare_exchange_strong (&u->state[c], &s, CH_INSTALLING))
        break;                /* failed meanwhile (timeout, unmap) */
      atomic_fetch_add (&u->bytes_fetched, uffd_chunk_datalen (u, c));
      r = install (u, c, buf);
      /* The install woke the faulting threads; one of them may already
       * have unmapped the chunk (GONE) before we get here: keep that. */
      s = CH_INSTALLING;
      if (r == -ENOENT) {
        atomic_compare_exchange_strong (&u->state[c], &s, CH_GONE);
        break;
      }
      if (r == 0) {
        if (atomic_compare_exchange_strong (&u->state[c], &s, CH_LOCAL))
          atomic_fetch_add (&u->chunks_local, 1);
        break;
      }
      if (!atomic_compare_exchange_strong (&u->state[c], &s, CH_FETCHING))
        break;
      uffd_record_error (u, -r, "chunk %llu: install", (unsigned long long) c);
    }
    else
      uffd_record_error (u, -r, "chunk %llu: read from %s",
                         (unsigned long long) c,
                         r3m_backend_describe (u->remote));
    if (j.demand || atomic_load (&u->wanted[c])) {
      uffd_pull_fail (u, c, -r, "fetch failed; accesses get SIGBUS");
      finished (u, true, r);
      return;
    }
    atomic_store (&u->state[c], CH_REMOTE);
    if (atomic_load (&u->wanted[c]) && claim (u, c)) {
      j.demand = true;        /* a fault arrived meanwhile: try again */
      continue;
    }
    finished (u, false, r);
    return;
  }
  finished (u, j.demand, 0);
}

static void *
worker (void *arg)
{
  struct r3m_uffd *u = arg;
  unsigned char *buf = aligned_alloc (u->map.page, u->chunk);
  pthread_mutex_lock (&u->lock);
  struct job j;
  while (buf && next_job (u, &j)) {
    u->active++;
    pthread_mutex_unlock (&u->lock);
    fetch (u, j, buf);
    pthread_mutex_lock (&u->lock);
  }
  pthread_mutex_unlock (&u->lock);
  free (buf);
  return NULL;
}

void
uffd_pull_demand (struct r3m_uffd *u, uint64_t c)
{
  pthread_mutex_lock (&u->lock);
  u->demand[(u->dq_head + u->dq_len) % u->nchunks] = c;
  u->dq_len++;
  u->ra_next = c + 1;
  u->ra_end = c + 1 + u->opts.readahead;
  if (u->ra_end > u->nchunks)
    u->ra_end = u->nchunks;
  if (u->idle > 0)
    pthread_cond_signal (&u->work);
  pthread_mutex_unlock (&u->lock);
}

struct prio {
  int64_t p;
  uint64_t c;
};

static int
cmp_prio (const void *a, const void *b)
{
  const struct prio *x = a, *y = b;
  if (x->p != y->p)
    return x->p > y->p ? -1 : 1;
  return x->c < y->c ? -1 : x->c > y->c;
}

static int
make_order (struct r3m_uffd *u)
{
  u->order = malloc (u->nchunks * sizeof *u->order);
  if (!u->order)
    return -ENOMEM;
  if (!u->opts.priority) {
    for (uint64_t c = 0; c < u->nchunks; c++)
      u->order[c] = c;
    return 0;
  }
  struct prio *p = malloc (u->nchunks * sizeof *p);
  if (!p)
    return -ENOMEM;
  for (uint64_t c = 0; c < u->nchunks; c++)
    p[c] = (struct prio) { u->opts.priority (c, u->opts.priority_user), c };
  qsort (p, u->nchunks, sizeof *p, cmp_prio);
  for (uint64_t c = 0; c < u->nchunks; c++)
    u->order[c] = p[c].c;
  free (p);
  return 0;
}

int
uffd_pull_start (struct r3m_uffd *u, struct r3m_error *err)
{
  u->demand = malloc (u->nchunks * sizeof *u->demand);
  if (!u->demand || make_order (u) < 0)
    return util_errno (err, ENOMEM, "userfaultfd: fetch queues");
  u->workers = calloc (u->opts.pull_workers, sizeof *u->workers);
  if (!u->workers)
    return util_errno (err, ENOMEM, "userfaultfd: workers");
  for (unsigned i = 0; i < u->opts.pull_workers; i++) {
    int r = pthread_create (&u->workers[i], NULL, worker, u);
    if (r != 0)
      return util_errno (err, r, "userfaultfd: starting fetch worker");
    u->nworkers++;
  }
  return 0;
}

void
uffd_pull_stop (struct r3m_uffd *u)
{
  pthread_mutex_lock (&u->lock);
  u->stopping = true;
  pthread_cond_broadcast (&u->work);
  pthread_cond_broadcast (&u->progress);
  pthread_mutex_unlock (&u->lock);
  for (unsigned i = 0; i < u->nworkers; i++)
    pthread_join (u->workers[i], NULL);
  u->nworkers = 0;
}

int
uffd_pull_wait (struct r3m_uffd *u, int timeout_ms)
{
  struct timespec deadline = util_deadline_ms (timeout_ms < 0 ? 0
                                               : (uint64_t) timeout_ms);
  int r = 0;
  pthread_mutex_lock (&u->lock);
  u->waiters++;
  for (;;) {
    if (atomic_load (&u->chunks_local) >= u->nchunks)
      break;
    bool exhausted = (!u->opts.background_pull
                      || u->bg_next >= u->nchunks)
                     && u->ra_next >= u->ra_end && u->dq_len == 0
                     && u->active == 0;
    if (u->stopping || exhausted) {
      r = u->pull_error < 0 ? u->pull_error
          : atomic_load (&u->chunks_failed) > 0 ? -EIO
          : u->stopping ? -ECANCELED : -EAGAIN;
      break;
    }
    if (timeout_ms < 0)
      pthread_cond_wait (&u->progress, &u->lock);
    else if (pthread_cond_timedwait (&u->progress, &u->lock, &deadline)
             == ETIMEDOUT) {
      r = -ETIMEDOUT;
      break;
    }
  }
  u->waiters--;
  pthread_mutex_unlock (&u->lock);
  return r;
}
