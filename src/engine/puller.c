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
 * RUNS
 *
 * One request per chunk spends a round trip's worth of window on every
 * 64 KiB: over a 40 ms link, 64 of them keep 4 MiB in flight and the link
 * idles.  So a claim takes a run: the next chunk in the order, then as
 * long as the chunk after it in the order is also the next index, REMOTE,
 * not known to be zeros, and the run is below run_max chunks, that one
 * too.  The run is fetched with one remote request and stored with one
 * cache call.  Only chunks that are next in the order join, so the order
 * is exactly what it was; every chunk of the run is BUSY from the claim
 * until its own transition, so a write to one of them waits for the fetch
 * and lands after it (never under it), and a reader waits instead of
 * fetching again.  A failure fails (and retries) only the run's chunks;
 * a chunk invalidated while the run was in flight (STALE) goes back to
 * REMOTE alone and is queued again.
 *
 * When the cache lends its memory (memory:), a run is received straight
 * into its place in the cache and store has nothing to write.  That is
 * safe because the bytes land only in chunks the run holds BUSY: readers
 * and writers wait for BUSY chunks, a STALE chunk is not made LOCAL, a
 * run that fails for good leaves its chunks REMOTE (and its range trimmed),
 * and close reports a run still landing as stuck (the cache must outlive
 * it).
 *
 * At close the workers stop claiming, discard results, and exit once
 * nothing is in flight or the close deadline passes; a completion that
 * arrives after the last worker exited cleans up after itself.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>

#include "backend/handle.h"
#include "engine/engine.h"
#include "engine/fetch.h"
#include "util/time.h"

static void pull_done (struct r3m_io *io, int result);

/* Bytes of run f (only the last chunk of the region may be short). */
static size_t
run_len (struct r3m_region *r, const struct eng_fetch *f)
{
  uint64_t last = f->chunk + f->n - 1;
  return (size_t) (eng_chunk_off (r, last) - eng_chunk_off (r, f->chunk))
         + eng_chunk_len (r, last);
}

static bool
zero_hint (struct r3m_region *r, uint64_t c)
{
  return (atomic_load_explicit (&r->zero_bits[c / 64], memory_order_relaxed)
          >> (c % 64)) & 1;
}

/* A remote that runs submitted requests inline in the caller (memory:,
 * pattern:) has no round trip for runs to save, and a large run loses
 * the CPU cache between its two copies (remote to buffer, buffer to
 * cache): pulling 256 MiB of warm memory took 4.7 GB/s with 1 MiB runs
 * and 8.8 GB/s with 64 KiB requests.  So its runs stop at 64 KiB, which
 * still merges small chunks. */
#define INLINE_RUN (64u << 10)

static bool
runs_inline (const struct r3m_backend *b)
{
  return !b->ops->submit && b->async.want == 0;
}

/* Submit run f's read: straight into the run's place in the cache when
 * the cache lends its memory (the run's chunks are BUSY and ours, so
 * nobody else touches those bytes until store makes them LOCAL), else
 * into the slot's buffer, which store then writes into the cache. */
static void
submit_fetch (struct r3m_region *r, struct eng_fetch *f)
{
  unsigned char *mem = eng_cache_mem (r);
  /* f may be stored and reused as soon as it is submitted. */
  uint64_t first = f->chunk, last = f->chunk + f->n - 1;
  f->io = (struct r3m_io) {
    .op = R3M_IO_READ, .buf = mem ? mem + eng_chunk_off (r, first) : f->buf,
    .len = run_len (r, f), .off = eng_chunk_off (r, first),
    .done = pull_done, .user = f,
  };
  /* Fault the run's fresh cache pages in with one call rather than one
   * fault per 4 KiB page inside the receive, and before the submit: done
   * after it, while the request was on the wire, the connection's receive
   * often caught up with the populate (the window drains whenever this
   * worker falls behind) and took 40% of the faults itself, two threads
   * faulting the same pages; populating first cost 2-5% less CPU and wall
   * time for a 1 GiB copy over a Unix socket. */
  if (mem)
    eng_cache_populate (r, mem, first, last);
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

/* The next chunk to consider, without taking it: from the queue of
 * invalidated chunks first, then the order.  *from_queue says which. */
static bool
peek_candidate_locked (struct r3m_region *r, uint64_t *c, bool *from_queue)
{
  struct eng_puller *p = &r->pull;
  if (p->qlen > 0) {
    *c = p->queue[p->qhead];
    *from_queue = true;
    return true;
  }
  if (p->next < r->nchunks) {
    *c = p->order ? p->order[p->next] : p->next;
    *from_queue = false;
    return true;
  }
  return false;
}

static void
take_candidate_locked (struct r3m_region *r, bool from_queue)
{
  struct eng_puller *p = &r->pull;
  if (from_queue) {
    p->qhead = (p->qhead + 1) % p->qcap;
    p->qlen--;
  } else
    p->next++;
}

/* Claim chunk c if it is REMOTE (its stripe lock is taken here). */
static bool
try_claim (struct r3m_region *r, uint64_t c)
{
  eng_lock (r, c);
  bool mine = r->chunk[c].state == ENG_REMOTE;
  if (mine)
    r->chunk[c].state = ENG_BUSY;
  eng_unlock (r, c);
  return mine;
}

/* Grow the run that starts at claimed chunk c with the chunks that follow
 * it in the same source (queue or order) while they are the next indices,
 * REMOTE and not zero-hinted.  Returns the run's length in chunks. */
static uint32_t
grow_run_locked (struct r3m_region *r, uint64_t c, bool from_queue)
{
  struct eng_puller *p = &r->pull;
  uint32_t n = 1;
  while (n < p->run_max && c + n < r->nchunks) {
    uint64_t d;
    bool q;
    if (!peek_candidate_locked (r, &d, &q) || q != from_queue || d != c + n
        || zero_hint (r, d) || !try_claim (r, d))
      break;
    take_candidate_locked (r, q);
    n++;
  }
  return n;
}

/* Run buffers are plain malloc'd memory, faulted in 4 KiB pages on first
 * use.  They once came from one arena with transparent huge pages, to save
 * the page faults of a full window (16384 for 64 x 1 MiB, about 40 ms of
 * CPU): on VMs that hand freed memory back to their host (free page
 * reporting) a huge page is exactly such a block and costs 1.5-2.8 s per
 * GiB to touch again against 0.4 for 4 KiB pages (bench/page_populate),
 * and `r3map copy` of 64 MiB took 0.14-0.17 s in a third of the runs with
 * the arena, 0.04-0.06 s in every run without (docs/engine.md). */

/* A fetch slot with a buffer of run_max chunks, or NULL (ENOMEM).  Slots
 * are kept on the free list and reused, never returned, so their buffers
 * are touched once per region.  Runs received straight into the cache's
 * memory need no buffer. */
static struct eng_fetch *
slot_get_locked (struct r3m_region *r)
{
  struct eng_puller *p = &r->pull;
  struct eng_fetch *f = p->free;
  if (f) {
    p->free = f->next;
    return f;
  }
  size_t len = (size_t) p->run_max * r->cs;
  f = calloc (1, sizeof *f);
  if (f && !eng_cache_mem (r) && !(f->buf = malloc (len))) {
    free (f);
    return NULL;
  }
  if (f)
    f->r = r;
  return f;
}

/* Claim the next REMOTE run and give it a fetch slot, or NULL. */
static struct eng_fetch *
claim_next_locked (struct r3m_region *r)
{
  struct eng_puller *p = &r->pull;
  uint64_t c;
  bool from_queue;
  for (;;) {
    if (!peek_candidate_locked (r, &c, &from_queue))
      return NULL;
    take_candidate_locked (r, from_queue);
    if (try_claim (r, c))
      break;
  }
  /* A slot first, so that a failed allocation has only c to give back. */
  struct eng_fetch *f = slot_get_locked (r);
  if (!f) {
    unclaim (r, c);
    queue_push_locked (p, c);
    p->error = ENOMEM;
    atomic_store (&r->pull_error, ENOMEM);
    return NULL;
  }
  f->chunk = c;
  f->attempt = 0;
  /* A zero-hinted chunk is zeroed alone, without a transfer. */
  f->zero = zero_hint (r, c);
  f->n = f->zero ? 1 : grow_run_locked (r, c, from_queue);
  return f;
}

/* Drop a result nobody will store (closing). */
static void
discard (struct r3m_region *r, struct eng_fetch *f)
{
  struct eng_puller *p = &r->pull;
  for (uint32_t i = 0; i < f->n; i++)
    unclaim (r, f->chunk + i);
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

/* Run f failed: retry each of its chunks as a request of its own (this
 * is their next attempt), so that a bad chunk fails alone, names itself,
 * and does not keep the good ones of its run from becoming LOCAL. */
static void
split_retry (struct r3m_region *r, struct eng_fetch *f)
{
  struct eng_puller *p = &r->pull;
  struct eng_fetch *more = NULL;
  pthread_mutex_lock (&p->mu);
  for (uint32_t i = 1; i < f->n; i++) {
    uint64_t c = f->chunk + i;
    struct eng_fetch *g = slot_get_locked (r);
    if (!g) {
      /* No memory for a slot: give the chunk back; it is pulled later
       * or fetched on demand. */
      unclaim (r, c);
      queue_push_locked (p, c);
      continue;
    }
    g->chunk = c;
    g->n = 1;
    g->attempt = f->attempt + 1;
    g->zero = false;
    g->next = more;
    more = g;
    p->inflight++;
  }
  pthread_mutex_unlock (&p->mu);
  f->n = 1;
  f->attempt++;
  submit_fetch (r, f);
  while (more) {
    struct eng_fetch *g = more;
    more = g->next;
    submit_fetch (r, g);
  }
}

/* Run f, received straight into the cache, failed for good: whatever part
 * of it arrived is not the chunks' data.  The chunks go back to REMOTE, so
 * nothing reads those bytes as theirs; trimming them as well leaves the
 * cache as it was before the run (fresh, zeros) rather than half-filled.
 * Advice only: errors do not matter. */
static void
drop_partial (struct r3m_region *r, const struct eng_fetch *f)
{
  (void) r3m_backend_trim (r->cache, run_len (r, f),
                           eng_chunk_off (r, f->chunk));
}

/* Store a completed fetch in the cache and finish its chunks. */
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
    if (f->n > 1)
      split_retry (r, f);       /* each submit takes its own reference */
    else {
      f->attempt++;
      submit_fetch (r, f);
    }
    eng_unref (r);
    return;
  }
  uint64_t c0 = f->chunk;
  size_t len = run_len (r, f);
  if (e < 0 && !f->buf)
    drop_partial (r, f);
  if (e < 0 && f->n == 1)
    eng_fail_remote (r, e, "background fetch of chunk %llu from %s",
                     (unsigned long long) c0,
                     r3m_backend_describe (r->remote));
  else if (e < 0)
    eng_fail_remote (r, e, "background fetch of chunks %llu-%llu from %s",
                     (unsigned long long) c0,
                     (unsigned long long) (c0 + f->n - 1),
                     r3m_backend_describe (r->remote));
  else if (f->zero) {
    e = r3m_backend_zero (r->cache, len, eng_chunk_off (r, c0),
                          R3M_IO_MAY_TRIM);
    if (e < 0)
      eng_fail (r, e, "zeroing chunk %llu in %s", (unsigned long long) c0,
                r3m_backend_describe (r->cache));
    else
      atomic_fetch_add (&r->fetch_bg, f->n);  /* no bytes moved */
  } else {
    /* Received straight into the cache (submit_fetch): nothing to store. */
    e = f->buf ? r3m_backend_pwrite (r->cache, f->buf, len,
                                     eng_chunk_off (r, c0), 0)
               : 0;
    if (e < 0 && f->n == 1)
      eng_fail (r, e, "storing chunk %llu in %s", (unsigned long long) c0,
                r3m_backend_describe (r->cache));
    else if (e < 0)
      eng_fail (r, e, "storing chunks %llu-%llu in %s",
                (unsigned long long) c0,
                (unsigned long long) (c0 + f->n - 1),
                r3m_backend_describe (r->cache));
    else {
      /* Counted before the chunks turn LOCAL, so that the status never
       * shows a chunk local whose fetch it has not counted. */
      atomic_fetch_add (&r->fetch_bg, f->n);
      atomic_fetch_add (&r->bytes_fetched, len);
    }
  }

  /* Each chunk on its own: a STALE one (invalidated while the run was in
   * flight) goes back to REMOTE and is fetched again, the others are
   * LOCAL. */
  for (uint32_t i = 0; i < f->n; i++) {
    uint64_t c = c0 + i;
    if (!eng_fetch_settle (r, c, e) && e == 0) {
      pthread_mutex_lock (&p->mu);
      queue_push_locked (p, c);
      pthread_mutex_unlock (&p->mu);
    }
  }

  pthread_mutex_lock (&p->mu);
  p->inflight--;
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
static uint64_t
scan_zeros (struct r3m_region *r)
{
  enum { MAX = 256 };
  struct r3m_extent ext[MAX];
  struct eng_puller *p = &r->pull;
  uint64_t *bits = calloc (r->nwords, sizeof *bits);
  if (!bits)
    return 0;
  pthread_mutex_lock (&p->mu);
  uint64_t epoch = p->inval_epoch;
  pthread_mutex_unlock (&p->mu);

  bool any = false;
  uint64_t off = 0, rtt = 0;
  while (off < r->size && !atomic_load (&r->closing)) {
    size_t n = 0;
    uint64_t t0 = util_now_ns ();
    int e = r3m_backend_extents (r->remote, off, r->size - off, ext, MAX, &n);
    if (off == 0)
      rtt = util_now_ns () - t0;
    if (e < 0 || n == 0)
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
  return rtt;
}

/* Long links need more bytes in flight than the window holds: the first
 * extents query is a lone request, so its time is the round trip (plus
 * the server's work), and the window grows by one pull_window for every
 * WINDOW_RTT of it, up to WINDOW_SCALE times, once that makes at least
 * two (a round trip of 5 ms or more).  A short link keeps pull_window,
 * so local and nearby remotes do not get a larger pile of buffers.  Why:
 * over a 40 ms link, 1 GiB took 1.56 s with 64 MiB in flight and 1.22 s
 * with 256 MiB (r3map copy, median of 3), and over 10 ms 0.97 s with
 * 64 MiB and 0.91 s with 256 MiB (median of 6, alternating), while on a
 * Unix socket 256 MiB of buffers cost 20-60% more CPU than 64 MiB.  The
 * bandwidth-delay product alone (12 MB at 1.2 GB/s and 10 ms) would not
 * ask for that much; the requests queue at each hop on the way. */
#define WINDOW_RTT (2500 * 1000)        /* ns */
#define WINDOW_SCALE 4

static void
scale_window_locked (struct r3m_region *r, uint64_t rtt_ns)
{
  struct eng_puller *p = &r->pull;
  uint64_t k = rtt_ns / WINDOW_RTT;
  if (k > WINDOW_SCALE)
    k = WINDOW_SCALE;
  if (k > 1 && p->window <= UINT_MAX / k)
    p->window *= (unsigned) k;
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
      uint64_t rtt = scan_zeros (r);
      pthread_mutex_lock (&p->mu);
      scale_window_locked (r, rtt);
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
  /* Workers add cache bandwidth only where stores can overlap.  Into a
   * cache whose writes take turns anyway (a regular file), a second worker
   * only waits for the first and costs a wake-up per run: r3m copy of
   * pattern:1G into a tmpfs file took 0.43-0.44 s with two workers and
   * 0.35-0.36 s with one (a plain dd of 1 GiB: 0.30-0.32 s).  One worker
   * keeps the whole window in flight: fetches are asynchronous. */
  if (n > 1 && r->cache && !eng_cache_mem (r)
      && (r3m_backend_get_info (r->cache)->flags & R3M_BACKEND_SERIAL_WRITES))
    n = 1;
  p->window = r->o.pull_window ? r->o.pull_window : 1;
  /* A request size below one chunk means one chunk per request. */
  uint32_t req = r->o.pull_request_size;
  if (runs_inline (r->remote) && req > INLINE_RUN)
    req = INLINE_RUN;
  uint32_t run = req / r->cs;
  p->run_max = run < 1 ? 1 : run;
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

bool
eng_puller_landing (struct r3m_region *r)
{
  struct eng_puller *p = &r->pull;
  if (!eng_cache_mem (r))
    return false;
  pthread_mutex_lock (&p->mu);
  bool landing = p->inflight > 0;
  pthread_mutex_unlock (&p->mu);
  return landing;
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
