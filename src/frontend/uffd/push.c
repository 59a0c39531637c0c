/* Writing back: collect what the application wrote, push it, flush.
 *
 * Pushes copy straight from the mapping to the backend: no snapshot
 * buffer.  What makes that safe is the order per chunk: clear dirty, then
 * write-protect (synchronous mode; PAGEMAP_SCAN has already re-protected
 * in asynchronous mode), then read.  A write that lands after the protect
 * marks the chunk dirty again, so the next flush pushes it; a write before
 * it is in what this push reads. */
#include <errno.h>
#include <sched.h>

#include "frontend/uffd/internal.h"
#include "util/error.h"

void
uffd_mark_dirty (struct r3m_uffd *u, uint64_t off, uint64_t len)
{
  if (len == 0 || off >= u->map.len)
    return;
  uint64_t end = off + len < u->map.len ? off + len : u->map.len;
  for (uint64_t c = off >> u->chunk_shift; c <= (end - 1) >> u->chunk_shift;
       c++)
    atomic_store (&u->dirty[c], 1);
}

static void
written (uint64_t off, uint64_t len, void *user)
{
  uffd_mark_dirty (user, off, len);
}

/* ASYNC: scan what is still ours (not given up to the application) for
 * pages written since the last scan, re-protecting them. */
static int
collect_written (struct r3m_uffd *u, struct r3m_error *err)
{
  uint64_t c = 0;
  while (c < u->nchunks) {
    while (c < u->nchunks && atomic_load (&u->state[c]) == CH_GONE)
      c++;
    uint64_t start = c;
    while (c < u->nchunks && atomic_load (&u->state[c]) != CH_GONE)
      c++;
    if (c == start)
      break;
    uint64_t off = uffd_chunk_off (u, start);
    uint64_t end = c == u->nchunks ? u->map.len : uffd_chunk_off (u, c);
    int r = uffd_map_take_written (&u->map, off, end - off, written, u);
    if (r < 0 && r != -ENOENT) {
      uffd_record_error (u, -r, "PAGEMAP_SCAN");
      return util_errno (err, -r, "userfaultfd: PAGEMAP_SCAN");
    }
  }
  return 0;
}

/* Take chunk c's dirty mark and make later writes visible; false if the
 * chunk cannot be pushed now. */
static bool
take_dirty (struct r3m_uffd *u, uint64_t c)
{
  if (u->map.track != UFFD_TRACK_SYNC) {
    atomic_store (&u->dirty[c], 0);
    return true;
  }
  pthread_mutex_t *l = &u->wp_lock[c % UFFD_WP_LOCKS];
  pthread_mutex_lock (l);
  atomic_store (&u->dirty[c], 0);
  int r = uffd_map_protect (&u->map, uffd_chunk_off (u, c),
                            uffd_chunk_maplen (u, c), true);
  if (r < 0)
    atomic_store (&u->dirty[c], 1);
  pthread_mutex_unlock (l);
  return r == 0;
}

static int
push_chunk (struct r3m_uffd *u, uint64_t c)
{
  if (!take_dirty (u, c))
    return -EIO;
  uint64_t off = uffd_chunk_off (u, c);
  size_t len = uffd_chunk_datalen (u, c);
  const char *p = (const char *) atomic_load (&u->map.base) + off;
  int r = r3m_backend_pwrite (u->remote, p, len, off, 0);
  if (r < 0) {
    atomic_store (&u->dirty[c], 1);
    uffd_record_error (u, -r, "chunk %llu: write to %s",
                       (unsigned long long) c,
                       r3m_backend_describe (u->remote));
    return r;
  }
  atomic_fetch_add (&u->pushes, 1);
  atomic_fetch_add (&u->bytes_pushed, len);
  return 0;
}

int
uffd_push (struct r3m_uffd *u, struct r3m_error *err)
{
  int first = 0;
  pthread_mutex_lock (&u->push_lock);
  /* An munmap or mremap of part of the region that returned before this
   * call has had its event read, but perhaps not applied: the fault
   * thread holds map.lock until it has.  Wait for that, so no push
   * touches a range the application gave up. */
  pthread_mutex_lock (&u->map.lock);
  pthread_mutex_unlock (&u->map.lock);
  if (u->map.track == UFFD_TRACK_ASYNC)
    first = collect_written (u, err);
  for (uint64_t c = 0; c < u->nchunks; c++) {
    if (!atomic_load (&u->dirty[c]))
      continue;
    /* A write to a chunk being installed completes once its pages are in,
     * before the worker marks it LOCAL: wait for that.  A failed or gone
     * chunk has nothing to push. */
    uint8_t st;
    while ((st = atomic_load (&u->state[c])) == CH_INSTALLING)
      sched_yield ();         /* its pages are in; only the state lags */
    if (st != CH_LOCAL)
      continue;
    int r = push_chunk (u, c);
    if (r < 0 && first == 0)
      first = util_errno (err, -r, "userfaultfd: pushing chunk %llu to %s",
                          (unsigned long long) c,
                          r3m_backend_describe (u->remote));
  }
  int r = r3m_backend_flush (u->remote);
  if (r < 0) {
    uffd_record_error (u, -r, "flush of %s", r3m_backend_describe (u->remote));
    if (first == 0)
      first = util_errno (err, -r, "userfaultfd: flush of %s",
                          r3m_backend_describe (u->remote));
  }
  pthread_mutex_unlock (&u->push_lock);
  return first;
}
