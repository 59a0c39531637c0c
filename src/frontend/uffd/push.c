/* Writing back: collect what the application wrote, push it, flush.
 *
 * Pushes copy straight from the mapping to the backend: no snapshot
 * buffer.  What makes that safe is the order per chunk: clear dirty, then
 * write-protect (synchronous mode; PAGEMAP_SCAN has already re-protected
 * in asynchronous mode), then read.  A write that lands after the protect
 * marks the chunk dirty again, so the next flush pushes it; a write before
 * it is in what this push reads. */
#include <errno.h>

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
  if (u->map.track == UFFD_TRACK_ASYNC) {
    int r = uffd_map_take_written (&u->map, 0, u->map.len, written, u);
    if (r < 0 && r != -ENOENT) {
      uffd_record_error (u, -r, "PAGEMAP_SCAN");
      first = util_errno (err, -r, "userfaultfd: PAGEMAP_SCAN");
    }
  }
  for (uint64_t c = 0; c < u->nchunks; c++) {
    if (!atomic_load (&u->dirty[c]))
      continue;
    /* A chunk not (or no longer) local cannot be read: a discard raced
     * with its install and it stays dirty until it is local; a failed or
     * gone one has nothing to push. */
    if (atomic_load (&u->state[c]) != CH_LOCAL)
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
