/* The puller: background pre-copy of REMOTE chunks into the cache.
 *
 * THREAD MODEL
 *
 * pull_workers threads share one queue.  Each loops: store a completed
 * fetch in the cache if one is waiting, else claim the next REMOTE chunk
 * (invalidated chunks first, then the priority order) and submit its fetch
 * if fewer than pull_window are in flight, else sleep.  Fetches are
 * asynchronous (r3m_backend_submit); their completion only queues the
 * result and wakes a worker, because completions run on the backend's
 * threads and must not block.  So one worker can keep the whole window in
 * flight against a pipelining backend; more workers add cache bandwidth.
 *
 * Claiming makes the chunk BUSY: readers and writers of it wait for the
 * fetch instead of fetching it again.  Chunks that are not REMOTE when
 * their turn comes (fetched on demand, written, already pulled) are
 * skipped.  A fetch that fails is retried fetch_retries times; then the
 * chunk goes back to REMOTE, the error is recorded and the background pull
 * stops (on-demand fetches go on).
 *
 * At close the workers stop claiming, discard results, and exit once
 * nothing is in flight or the close deadline passes; a completion that
 * arrives after the last worker exited cleans up after itself.
 */
#include <errno.h>
#include <stdlib.h>

#include "engine/engine.h"
#include "util/time.h"

static void pull_done (struct r3m_io *io, int result);

static void
submit_fetch (struct r3m_region *r, struct eng_fetch *f)
{
  f->io = (struct r3m_io) {
    .op = R3M_IO_READ, .buf = f->buf, .len = eng_chunk_len (r, f->chunk),
    .off = eng_chunk_off (r, f->chunk), .done = pull_done, .user = f,
  };
  eng_ref (r);
  int e = r3m_backend_submit (r->remote, &f->io);
  if (e < 0)
    pull_done (&f->io, e);
}

/* Chunk c was claimed but will not be fetched now: back to REMOTE. */
static void
unclaim (struct r3m_region *r, uint64_t c)
{
  eng_lock (r, c);
  r->chunk[c].state = ENG_REMOTE;
  r->chunk[c].flags &= (uint8_t) ~ENG_F_STALE;
  eng_wake (r, c);
  eng_unlock (r, c);
}

static void
queue_push_locked (struct eng_puller *p, uint64_t c)
{
  if (p->qlen == p->qcap) {
    size_t ncap = p->qcap ? p->qcap * 2 : 64;
    uint64_t *q = malloc (ncap * sizeof *q);
    if (!q)
      return;         /* still REMOTE: a demand read or wait_pulled sees it */
    for (size_t i = 0; i < p->qlen; i++)
      q[i] = p->queue[(p->qhead + i) % p->qcap];
    free (p->queue);
    p->queue = q;
    p->qhead = 0;
    p->qcap = ncap;
  }
  p->queue[(p->qhead + p->qlen) % p->qcap] = c;
  p->qlen++;
}

static bool
next_candidate_locked (struct r3m_region *r, uint64_t *c)
{
  struct eng_puller *p = &r->pull;
  if (p->qlen > 0) {
    *c = p->queue[p->qhead];
    p->qhead = (p->qhead + 1) % p->qcap;
    p->qlen--;
    return true;
  }
  if (p->next < r->nchunks) {
    *c = p->order ? p->order[p->next] : p->next;
    p->next++;
    return true;
  }
  return false;
}

/* Claim the next REMOTE chunk and give it a fetch slot, or NULL. */
static struct eng_fetch *
claim_next_locked (struct r3m_region *r)
{
  struct eng_puller *p = &r->pull;
  uint64_t c;
  for (;;) {
    if (!next_candidate_locked (r, &c))
      return NULL;
    eng_lock (r, c);
    bool mine = r->chunk[c].state == ENG_REMOTE;
    if (mine)
      r->chunk[c].state = ENG_BUSY;
    eng_unlock (r, c);
    if (mine)
      break;
  }
  struct eng_fetch *f = p->free;
  if (f)
    p->free = f->next;
  else {
    f = calloc (1, sizeof *f);
    if (f && !(f->buf = malloc (r->cs))) {
      free (f);
      f = NULL;
    }
    if (!f) {
      unclaim (r, c);
      queue_push_locked (p, c);
      p->error = ENOMEM;
      atomic_store (&r->pull_error, ENOMEM);
      return NULL;
    }
    f->r = r;
  }
  f->chunk = c;
  f->attempt = 0;
  f->zero = (atomic_load_explicit (&r->zero_bits[c / 64],
                                   memory_order_relaxed)
             >> (c % 64)) & 1;
  return f;
}

/* Drop a result nobody will store (closing). */
static void
discard (struct r3m_region *r, struct eng_fetch *f)
{
  struct eng_puller *p = &r->pull;
  unclaim (r, f->chunk);
  pthread_mutex_lock (&p->mu);
  p->inflight--;
  f->next = p->free;
  p->free = f;
  pthread_cond_broadcast (&p->cv);
  pthread_mutex_unlock (&p->mu);
}

static void
pull_done (struct r3m_io *io, int result)
{
  struct eng_fetch *f = io->user;
  struct r3m_region *r = f->r;
  struct eng_puller *p = &r->pull;
  f->result = result;
  pthread_mutex_lock (&p->mu);
  if (p->running == 0) {
    pthread_mutex_unlock (&p->mu);
    discard (r, f);
    eng_unref (r);
    return;
  }
  f->next = NULL;
  if (p->done_tail)
    p->done_tail->next = f;
  else
    p->done_head = f;
  p->done_tail = f;
  pthread_cond_signal (&p->cv);
  pthread_mutex_unlock (&p->mu);
}

/* Store a completed fetch in the cache and finish its chunk. */
static void
store (struct r3m_region *r, struct eng_fetch *f)
{
  struct eng_puller *p = &r->pull;
  int e = f->result;
  if (atomic_load (&r->closing)) {
    discard (r, f);
    eng_unref (r);
    return;
  }
  if (e < 0 && f->attempt < r->o.fetch_retries) {
    f->attempt++;
    submit_fetch (r, f);        /* takes its own reference */
    eng_unref (r);
    return;
  }
  uint64_t c = f->chunk;
  uint32_t len = eng_chunk_len (r, c);
  if (e < 0)
    eng_fail (r, e, "background fetch of chunk %llu from %s",
              (unsigned long long) c, r3m_backend_describe (r->remote));
  else if (f->zero) {
    e = r3m_backend_zero (r->cache, len, eng_chunk_off (r, c),
                          R3M_IO_MAY_TRIM);
    if (e < 0)
      eng_fail (r, e, "zeroing chunk %llu in %s", (unsigned long long) c,
                r3m_backend_describe (r->cache));
    else
      atomic_fetch_add (&r->fetch_bg, 1);  /* no bytes moved */
  } else {
    e = r3m_backend_pwrite (r->cache, f->buf, len, eng_chunk_off (r, c), 0);
    if (e < 0)
      eng_fail (r, e, "storing chunk %llu in %s", (unsigned long long) c,
                r3m_backend_describe (r->cache));
    else {
      /* Counted before the chunk turns LOCAL, so that the status never
       * shows a chunk local whose fetch it has not counted. */
      atomic_fetch_add (&r->fetch_bg, 1);
      atomic_fetch_add (&r->bytes_fetched, len);
    }
  }

  bool local = false, stale = false;
  eng_lock (r, c);
  if (e == 0) {
    local = eng_become_local_locked (r, c);
    stale = !local;
  } else {
    r->chunk[c].state = ENG_REMOTE;
    r->chunk[c].flags &= (uint8_t) ~ENG_F_STALE;
    eng_wake (r, c);
  }
  eng_unlock (r, c);
  if (local)
    eng_notify_local (r, c);

  pthread_mutex_lock (&p->mu);
  p->inflight--;
  if (stale)
    queue_push_locked (p, c);   /* invalidated meanwhile: fetch again */
  if (e < 0 && p->error == 0) {
    p->error = -e;
    atomic_store (&r->pull_error, -e);
  }
  f->next = p->free;
  p->free = f;
  pthread_cond_broadcast (&p->cv);
  pthread_mutex_unlock (&p->mu);
  if (e < 0)
    eng_progress_wake (r);
  eng_unref (r);
}

/* Ask the remote which chunks read as zeros (R3M_EXTENT_ZERO over the
 * whole chunk); the puller zeroes those in the cache instead of fetching
 * them.  Only a hint: errors leave it empty.  The answer is published under
 * pull.mu only if no invalidation happened meanwhile (invalidate clears
 * bits under the same lock), so it never revives a changed chunk. */
static void
scan_zeros (struct r3m_region *r)
{
  enum { MAX = 256 };
  struct r3m_extent ext[MAX];
  struct eng_puller *p = &r->pull;
  uint64_t *bits = calloc (r->nwords, sizeof *bits);
  if (!bits)
    return;
  pthread_mutex_lock (&p->mu);
  uint64_t epoch = p->inval_epoch;
  pthread_mutex_unlock (&p->mu);

  bool any = false;
  uint64_t off = 0;
  while (off < r->size && !atomic_load (&r->closing)) {
    size_t n = 0;
    if (r3m_backend_extents (r->remote, off, r->size - off, ext, MAX, &n) < 0
        || n == 0)
      break;
    for (size_t i = 0; i < n && off < r->size; i++) {
      uint64_t len = ext[i].len;
      if (len == 0)
        goto done;              /* a malformed answer: stop believing it */
      if (len > r->size - off)
        len = r->size - off;
      if (ext[i].flags & R3M_EXTENT_ZERO) {
        /* Chunks wholly inside [off, off + len). */
        for (uint64_t c = (off + r->cs - 1) >> r->shift; c < r->nchunks;
             c++) {
          if (eng_chunk_off (r, c) + eng_chunk_len (r, c) > off + len)
            break;
          bits[c / 64] |= UINT64_C (1) << (c % 64);
          any = true;
        }
      }
      off += len;
    }
  }
done:
  pthread_mutex_lock (&p->mu);
  if (any && p->inval_epoch == epoch)
    for (size_t w = 0; w < r->nwords; w++)
      if (bits[w])
        atomic_fetch_or (&r->zero_bits[w], bits[w]);
  pthread_mutex_unlock (&p->mu);
  free (bits);
}

static void *
worker (void *arg)
{
  struct r3m_region *r = arg;
  struct eng_puller *p = &r->pull;
  pthread_mutex_lock (&p->mu);
  for (;;) {
    if (p->done_head) {
      struct eng_fetch *f = p->done_head;
      p->done_head = f->next;
      if (!p->done_head)
        p->done_tail = NULL;
      pthread_mutex_unlock (&p->mu);
      store (r, f);
      pthread_mutex_lock (&p->mu);
      continue;
    }
    if (p->stop) {
      if (p->inflight == 0 || util_now_ns () >= p->deadline_ns)
        break;
      struct timespec ts = util_deadline_ms (10);
      pthread_cond_timedwait (&p->cv, &p->mu, &ts);
      continue;
    }
    if (!p->scanned) {
      if (p->scanning) {
        pthread_cond_wait (&p->cv, &p->mu);
        continue;
      }
      p->scanning = true;
      pthread_mutex_unlock (&p->mu);
      scan_zeros (r);
      pthread_mutex_lock (&p->mu);
      p->scanned = true;
      pthread_cond_broadcast (&p->cv);
      continue;
    }
    if (p->error == 0 && p->inflight < p->window) {
      struct eng_fetch *f = claim_next_locked (r);
      if (f && f->zero) {
        /* The remote said this chunk reads as zeros: no transfer, the
         * store zeroes it in the cache. */
        p->inflight++;
        eng_ref (r);
        f->result = 0;
        f->next = NULL;
        if (p->done_tail)
          p->done_tail->next = f;
        else
          p->done_head = f;
        p->done_tail = f;
        continue;
      }
      if (f) {
        p->inflight++;
        pthread_mutex_unlock (&p->mu);
        submit_fetch (r, f);
        pthread_mutex_lock (&p->mu);
        continue;
      }
    }
    pthread_cond_wait (&p->cv, &p->mu);
  }
  p->running--;
  pthread_mutex_unlock (&p->mu);
  eng_unref (r);
  return NULL;
}

struct prio {
  int64_t prio;
  uint64_t chunk;
};

static int
prio_cmp (const void *a, const void *b)
{
  const struct prio *x = a, *y = b;
  if (x->prio != y->prio)
    return x->prio > y->prio ? -1 : 1;  /* higher first */
  return x->chunk < y->chunk ? -1 : x->chunk > y->chunk;
}

/* Pull order: descending priority, ties by ascending index (a total order,
 * so qsort gives what a stable sort would). */
static int
make_order (struct r3m_region *r)
{
  uint64_t n = r->nchunks;
  if (!r->o.priority || n == 0)
    return 0;
  struct prio *tmp = malloc (n * sizeof *tmp);
  r->pull.order = malloc (n * sizeof *r->pull.order);
  if (!tmp || !r->pull.order) {
    free (tmp);
    return -ENOMEM;
  }
  for (uint64_t c = 0; c < n; c++)
    tmp[c] = (struct prio) { r->o.priority (c, r->o.priority_user), c };
  qsort (tmp, n, sizeof *tmp, prio_cmp);
  for (uint64_t i = 0; i < n; i++)
    r->pull.order[i] = tmp[i].chunk;
  free (tmp);
  return 0;
}

int
eng_puller_start (struct r3m_region *r)
{
  struct eng_puller *p = &r->pull;
  unsigned n = r->o.pull_workers;
  if (n == 0 && r->o.pull_first)
    n = 1;
  p->window = r->o.pull_window ? r->o.pull_window : 1;
  if (n == 0)
    return 0;
  int e = make_order (r);
  if (e < 0)
    return e;
  p->threads = calloc (n, sizeof *p->threads);
  if (!p->threads)
    return -ENOMEM;
  for (unsigned i = 0; i < n; i++) {
    pthread_mutex_lock (&p->mu);
    p->running++;
    pthread_mutex_unlock (&p->mu);
    eng_ref (r);
    e = pthread_create (&p->threads[i], NULL, worker, r);
    if (e != 0) {
      pthread_mutex_lock (&p->mu);
      p->running--;
      pthread_mutex_unlock (&p->mu);
      eng_unref (r);
      return i > 0 ? 0 : -e;    /* fewer workers still work */
    }
    p->nthreads++;
  }
  return 0;
}

void
eng_puller_stop (struct r3m_region *r, uint64_t deadline_ns)
{
  struct eng_puller *p = &r->pull;
  pthread_mutex_lock (&p->mu);
  p->stop = true;
  p->deadline_ns = deadline_ns;
  pthread_cond_broadcast (&p->cv);
  pthread_mutex_unlock (&p->mu);
}

void
eng_puller_forget_zeros (struct r3m_region *r, const uint64_t *chunks,
                         size_t n)
{
  struct eng_puller *p = &r->pull;
  pthread_mutex_lock (&p->mu);
  p->inval_epoch++;
  for (size_t i = 0; i < n; i++)
    atomic_fetch_and (&r->zero_bits[chunks[i] / 64],
                      ~(UINT64_C (1) << (chunks[i] % 64)));
  pthread_mutex_unlock (&p->mu);
}

void
eng_puller_requeue (struct r3m_region *r, const uint64_t *chunks, size_t n)
{
  struct eng_puller *p = &r->pull;
  if (p->nthreads == 0)
    return;
  pthread_mutex_lock (&p->mu);
  /* A stopped puller consumes nothing: do not let the queue grow. */
  for (size_t i = 0; i < n && !p->stop && p->error == 0; i++)
    queue_push_locked (p, chunks[i]);
  pthread_cond_broadcast (&p->cv);
  pthread_mutex_unlock (&p->mu);
}

void
eng_puller_free (struct r3m_region *r)
{
  struct eng_puller *p = &r->pull;
  while (p->free) {
    struct eng_fetch *f = p->free;
    p->free = f->next;
    free (f->buf);
    free (f);
  }
  free (p->order);
  free (p->queue);
  free (p->threads);
}
