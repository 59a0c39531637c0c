/* Reporting writes made through the mapping to the region.
 *
 * Synchronous mode: a write to a protected page faults; the fault thread
 * queues the chunk here; the marker reports it (r3m_region_mark_dirty) and
 * only then unprotects the chunk, which lets the write go on.  The region's
 * pusher protects a chunk again in before_push, after it recorded the
 * chunk's write generation: a write either landed before (and is in the
 * copy pushed) or faults and is reported after (and keeps it dirty).
 *
 * Asynchronous mode (Linux 6.7+): the kernel resolves the faults itself
 * and keeps "written" in the page table.  The marker scans for written
 * pages every scan_interval_ms (PAGEMAP_SCAN, which re-protects what it
 * reports) and reports them; flush does the same first.  before_push
 * re-protects the chunk about to be copied, dropping what it finds: those
 * writes are in the copy.
 *
 * Discards (MADV_DONTNEED by the application) are writes of zeros.  Chunks
 * the application unmapped are invalidated, so the region stops trying to
 * push them. */
#include <errno.h>
#include <stdlib.h>

#include "frontend/uffd/internal.h"
#include "util/error.h"
#include "util/time.h"

void
uffd_mark_queue (struct r3m_uffd *u, uint64_t c, enum mark_kind k)
{
  struct uffd_queues *q = &u->q;
  pthread_mutex_lock (&q->lock);
  if (q->mq_len == q->mq_cap) {
    size_t cap = q->mq_cap ? q->mq_cap * 2 : 256;
    struct mark_job *n = malloc (cap * sizeof *n);
    if (!n) {
      pthread_mutex_unlock (&q->lock);
      uffd_record_error (u, ENOMEM, "chunk %llu: write not reported",
                         (unsigned long long) c);
      return;
    }
    for (size_t i = 0; i < q->mq_len; i++)
      n[i] = q->marks[(q->mq_head + i) % q->mq_cap];
    free (q->marks);
    q->marks = n;
    q->mq_head = 0;
    q->mq_cap = cap;
  }
  q->marks[(q->mq_head + q->mq_len) % q->mq_cap] = (struct mark_job) { c, k };
  q->mq_len++;
  q->mark_seq++;
  pthread_cond_signal (&q->mark_cv);
  pthread_mutex_unlock (&q->lock);
}

static uint64_t
chunk_datalen (struct r3m_uffd *u, uint64_t c)
{
  uint64_t off = uffd_chunk_off (u, c);
  return u->size - off < u->chunk ? u->size - off : u->chunk;
}

static void
run_job (struct r3m_uffd *u, struct mark_job j)
{
  uint64_t c = j.chunk;
  uint64_t off = uffd_chunk_off (u, c);
  switch (j.kind) {
  case MARK_GONE:
    r3m_region_invalidate (u->region, &c, 1);
    return;
  case MARK_DIRTY:
    /* A chunk trimmed meanwhile has no pages to report: its next store
     * brings the region's bytes. */
    if (uffd_has_pages (u, c))
      r3m_region_mark_dirty (u->region, off, chunk_datalen (u, c));
    return;
  case MARK_WP: {
    /* Report, then let the write go on.  Were before_push's protect to
     * fall between the two, our unprotect would undo it after the region
     * took the chunk as pushed, and later writes would go unseen. */
    pthread_mutex_t *l = &u->wp_lock[c % UFFD_WP_LOCKS];
    pthread_mutex_lock (l);
    if (uffd_has_pages (u, c))
      r3m_region_mark_dirty (u->region, off, chunk_datalen (u, c));
    int r = uffd_map_protect (&u->map, off, uffd_chunk_maplen (u, c), false);
    pthread_mutex_unlock (l);
    if (r < 0 && r != -ENOENT)
      uffd_record_error (u, -r, "chunk %llu: unprotect",
                         (unsigned long long) c);
    return;
  }
  }
}

/* Report a written run.  Only chunks with pages: poison markers scan as
 * written (they are swap-type entries without the protect bit), and a
 * mark would make the region take a missing chunk for local.  A chunk
 * being installed counts: the region's mark waits for its store. */
static void
written (uint64_t off, uint64_t len, void *user)
{
  struct r3m_uffd *u = user;
  uint64_t end = off + len < u->size ? off + len : u->size;
  while (off < end) {
    uint64_t c = off >> u->chunk_shift;
    uint64_t cend = uffd_chunk_off (u, c) + u->chunk;
    uint64_t n = (cend < end ? cend : end) - off;
    if (uffd_has_pages (u, c))
      r3m_region_mark_dirty (u->region, off, n);
    off += n;
  }
}

static void
ignore_written (uint64_t off, uint64_t len, void *user)
{
  (void) off;
  (void) len;
  (void) user;
}

/* Scan what is still ours for written pages, chunk run by chunk run. */
static int
scan_written (struct r3m_uffd *u, uint64_t first, uint64_t end_chunk,
              void (*fn) (uint64_t, uint64_t, void *))
{
  uint64_t c = first;
  while (c < end_chunk) {
    while (c < end_chunk && atomic_load (&u->state[c]) == CH_GONE)
      c++;
    uint64_t start = c;
    while (c < end_chunk && atomic_load (&u->state[c]) != CH_GONE)
      c++;
    if (c == start)
      break;
    uint64_t off = uffd_chunk_off (u, start);
    uint64_t end = c == u->nchunks ? u->map.len : uffd_chunk_off (u, c);
    int r = uffd_map_take_written (&u->map, off, end - off, fn, u);
    if (r < 0 && r != -ENOENT)
      return r;
  }
  return 0;
}

static int
scan_all (struct r3m_uffd *u)
{
  if (u->map.track != UFFD_TRACK_ASYNC)
    return 0;
  pthread_mutex_lock (&u->scan_lock);
  /* Events already read are applied before we look at GONE. */
  pthread_mutex_lock (&u->map.lock);
  pthread_mutex_unlock (&u->map.lock);
  int r = scan_written (u, 0, u->nchunks, written);
  pthread_mutex_unlock (&u->scan_lock);
  if (r < 0)
    uffd_record_error (u, -r, "PAGEMAP_SCAN");
  return r;
}

void
uffd_before_push (uint64_t c, void *user)
{
  struct r3m_uffd *u = user;
  if (atomic_load (&u->state[c]) != CH_INSTALLED)
    return;
  int r = 0;
  if (u->map.track == UFFD_TRACK_SYNC) {
    pthread_mutex_t *l = &u->wp_lock[c % UFFD_WP_LOCKS];
    pthread_mutex_lock (l);
    r = uffd_map_protect (&u->map, uffd_chunk_off (u, c),
                          uffd_chunk_maplen (u, c), true);
    pthread_mutex_unlock (l);
  }
  else if (u->map.track == UFFD_TRACK_ASYNC)
    r = scan_written (u, c, c + 1, ignore_written);
  if (r < 0 && r != -ENOENT)
    uffd_record_error (u, -r, "chunk %llu: protect before push",
                       (unsigned long long) c);
}

static void *
marker (void *arg)
{
  struct r3m_uffd *u = arg;
  struct uffd_queues *q = &u->q;
  uint32_t period = u->opts.scan_interval_ms ? u->opts.scan_interval_ms
                    : 1000;
  uint64_t next_scan = util_now_ns () + (uint64_t) period * 1000000u;
  pthread_mutex_lock (&q->lock);
  while (!q->stop_marker) {
    if (q->mq_len == 0) {
      if (u->map.track == UFFD_TRACK_ASYNC && util_now_ns () >= next_scan) {
        pthread_mutex_unlock (&q->lock);
        scan_all (u);
        next_scan = util_now_ns () + (uint64_t) period * 1000000u;
        pthread_mutex_lock (&q->lock);
        continue;
      }
      struct timespec ts = util_deadline_ms (period);
      pthread_cond_timedwait (&q->mark_cv, &q->lock, &ts);
      continue;
    }
    struct mark_job j = q->marks[q->mq_head];
    q->mq_head = (q->mq_head + 1) % q->mq_cap;
    q->mq_len--;
    pthread_mutex_unlock (&q->lock);
    run_job (u, j);
    pthread_mutex_lock (&q->lock);
    q->marked_seq++;
    pthread_cond_broadcast (&q->marked_cv);
  }
  pthread_mutex_unlock (&q->lock);
  return NULL;
}

int
uffd_collect (struct r3m_uffd *u, struct r3m_error *err)
{
  int r = scan_all (u);
  struct uffd_queues *q = &u->q;
  pthread_mutex_lock (&q->lock);
  uint64_t target = q->mark_seq;
  while (q->marked_seq < target && u->marker_started && !q->stop_marker)
    pthread_cond_wait (&q->marked_cv, &q->lock);
  pthread_mutex_unlock (&q->lock);
  if (r < 0)
    return util_errno (err, -r, "userfaultfd: PAGEMAP_SCAN");
  return 0;
}

int
uffd_marker_start (struct r3m_uffd *u, struct r3m_error *err)
{
  int r = pthread_create (&u->marker_thread, NULL, marker, u);
  if (r != 0)
    return util_errno (err, r, "userfaultfd: starting the marker");
  u->marker_started = true;
  return 0;
}

void
uffd_marker_stop (struct r3m_uffd *u)
{
  if (!u->marker_started)
    return;
  pthread_mutex_lock (&u->q.lock);
  u->q.stop_marker = true;
  pthread_cond_broadcast (&u->q.mark_cv);
  pthread_cond_broadcast (&u->q.marked_cv);
  pthread_mutex_unlock (&u->q.lock);
  pthread_join (u->marker_thread, NULL);
  u->marker_started = false;
}
