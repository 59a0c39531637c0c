/* On-demand fetches (post-copy): a caller waits for them, so they are
 * submitted with R3M_IO_URGENT and go ahead of the puller's background
 * requests in the backend's queue.  The request lives on the caller's stack:
 * the caller blocks until it completes, however long the backend takes. */
#include <errno.h>

#include "engine/engine.h"
#include "engine/fetch.h"

static void
group_done (struct r3m_io *io, int result)
{
  struct eng_dfetch *f = io->user;
  struct eng_group *g = f->group;
  pthread_mutex_lock (&g->mu);
  f->result = result;
  if (--g->pending == 0)
    pthread_cond_signal (&g->cv);
  pthread_mutex_unlock (&g->mu);
}

void
eng_group_init (struct eng_group *g)
{
  pthread_mutex_init (&g->mu, NULL);
  pthread_cond_init (&g->cv, NULL);
  g->pending = 0;
}

void
eng_group_destroy (struct eng_group *g)
{
  pthread_cond_destroy (&g->cv);
  pthread_mutex_destroy (&g->mu);
}

void
eng_group_submit (struct r3m_region *r, struct eng_group *g,
                  struct eng_dfetch *f, uint64_t c, void *buf)
{
  f->group = g;
  f->chunk = c;
  f->result = 0;
  f->io = (struct r3m_io) {
    .op = R3M_IO_READ, .flags = R3M_IO_URGENT, .buf = buf,
    .len = eng_chunk_len (r, c), .off = eng_chunk_off (r, c),
    .done = group_done, .user = f,
  };
  pthread_mutex_lock (&g->mu);
  g->pending++;
  pthread_mutex_unlock (&g->mu);
  int e = r3m_backend_submit (r->remote, &f->io);
  if (e < 0)
    group_done (&f->io, e);
}

void
eng_group_wait (struct eng_group *g)
{
  pthread_mutex_lock (&g->mu);
  while (g->pending > 0)
    pthread_cond_wait (&g->cv, &g->mu);
  pthread_mutex_unlock (&g->mu);
}

/* Retry a failed fetch (f->result < 0) up to fetch_retries times. */
int
eng_fetch_retry (struct r3m_region *r, struct eng_dfetch *f)
{
  for (unsigned i = 0; f->result < 0 && i < r->o.fetch_retries; i++) {
    struct eng_group g;
    eng_group_init (&g);
    eng_group_submit (r, &g, f, f->chunk, f->io.buf);
    eng_group_wait (&g);
    eng_group_destroy (&g);
  }
  if (f->result < 0)
    eng_fail_remote (r, f->result, "fetch of chunk %llu from %s",
                     (unsigned long long) f->chunk,
                     r3m_backend_describe (r->remote));
  return f->result;
}

/* Store fetched chunk c (held BUSY by the caller) in the cache. */
static int
eng_fetch_put (struct r3m_region *r, uint64_t c, const void *buf)
{
  uint32_t len = eng_chunk_len (r, c);
  int e = r3m_backend_pwrite (r->cache, buf, len, eng_chunk_off (r, c), 0);
  if (e < 0)
    eng_fail (r, e, "storing chunk %llu in %s", (unsigned long long) c,
              r3m_backend_describe (r->cache));
  return e;
}

int
eng_fetch_store (struct r3m_region *r, uint64_t c, const void *buf)
{
  int e = eng_fetch_put (r, c, buf);
  if (e == 0) {
    atomic_fetch_add (&r->fetch_demand, 1);
    atomic_fetch_add (&r->bytes_fetched, eng_chunk_len (r, c));
  }
  return e;
}

int
eng_fetch_sync_nostore (struct r3m_region *r, uint64_t c, void *buf)
{
  struct eng_group g;
  struct eng_dfetch f;
  eng_group_init (&g);
  eng_group_submit (r, &g, &f, c, buf);
  eng_group_wait (&g);
  eng_group_destroy (&g);
  int e = eng_fetch_retry (r, &f);
  if (e == 0) {
    atomic_fetch_add (&r->fetch_demand, 1);
    atomic_fetch_add (&r->bytes_fetched, eng_chunk_len (r, c));
  }
  return e;
}

int
eng_fetch_sync (struct r3m_region *r, uint64_t c, void *buf)
{
  int e = eng_fetch_sync_nostore (r, c, buf);
  if (e < 0)
    return e;
  return eng_fetch_put (r, c, buf);
}

/* The fetch of BUSY chunk c ended with e (0: stored).  Make it LOCAL, or
 * REMOTE if it failed or was invalidated while in flight; wake waiters,
 * notify.  Returns true if it is LOCAL now. */
bool
eng_fetch_settle (struct r3m_region *r, uint64_t c, int e)
{
  bool local = false;
  eng_lock (r, c);
  if (e == 0)
    local = eng_become_local_locked (r, c);
  else {
    r->chunk[c].state = ENG_REMOTE;
    r->chunk[c].flags &= (uint8_t) ~ENG_F_STALE;
    eng_wake (r, c);
  }
  eng_unlock (r, c);
  if (local)
    eng_notify_local (r, c);
  return local;
}

bool
eng_fetch_finish (struct r3m_region *r, uint64_t c, int e)
{
  bool local = eng_fetch_settle (r, c, e);
  if (!local)
    eng_puller_requeue (r, &c, 1); /* nobody may be left to fetch it */
  return local;
}
