/* The pusher: write-back of dirty chunks to the remote.
 *
 * A push round walks the dirty bitmap and, for each dirty chunk, records
 * its write generation, calls before_push, copies the chunk out of the
 * cache while engine writers to it are kept out, and submits the copy to
 * the remote, at most push_window at a time.  Once
 * the remote has it, pgen becomes the recorded generation; a write that
 * landed meanwhile bumped wgen past it, so the chunk stays dirty for the
 * next round.  Chunks that were only pulled are never dirty, never pushed.
 *
 * Rounds are serialised by round_mu: the periodic round of the pusher
 * thread, r3m_region_flush and FUA writes each run whole rounds, so a flush
 * that starts while a round is in flight waits for it and then pushes what
 * is still dirty.
 *
 * The pusher thread sleeps push_interval_ms between rounds (no periodic
 * rounds when push_window is 0).  At close it runs the final round and the
 * flushes, so that close can give up on a stalled backend by timing out
 * the join instead of hanging in a backend call itself.
 */
#include <errno.h>
#include <stdlib.h>

#include "engine/engine.h"
#include "util/time.h"

#define FLUSH_WINDOW 16         /* flush and close when push_window is 0 */

static void
push_done (struct r3m_io *io, int result)
{
  struct eng_push *p = io->user;
  struct r3m_region *r = p->r;
  struct eng_pusher *ps = &r->push;

  eng_lock (r, p->chunk);
  eng_pushed_locked (r, p->chunk, p->gen, result == 0);
  eng_unlock (r, p->chunk);
  if (result == 0) {
    atomic_fetch_add (&r->pushes, 1);
    atomic_fetch_add (&r->bytes_pushed, io->len);
  } else
    eng_fail_remote (r, result, "push of chunk %llu to %s",
                     (unsigned long long) p->chunk,
                     r3m_backend_describe (r->remote));

  pthread_mutex_lock (&ps->mu);
  ps->inflight--;
  if (result < 0 && ps->round_error == 0)
    ps->round_error = result;
  p->next = ps->free;
  ps->free = p;
  pthread_cond_broadcast (&ps->cv);
  pthread_mutex_unlock (&ps->mu);
  eng_unref (r);
}

/* Copy dirty chunk c out of the cache into p->buf.  1: copied (PUSH set),
 * 0: nothing to push, <0: the cache read failed.
 *
 * The generation is recorded before before_push runs and before the copy.
 * Writes through r3m_region_write are kept out by SNAP, so they are wholly
 * in the copy or counted after it.  A frontend whose writes bypass the
 * engine (a uffd mapping) write-protects the chunk in before_push and
 * reports each later write with mark_dirty: such a write either landed
 * before the protection (so it is in the copy) or faults and is marked
 * after the generation was recorded (so the chunk stays dirty). */
static int
snapshot (struct r3m_region *r, uint64_t c, struct eng_push *p)
{
  struct eng_chunk *ch = &r->chunk[c];
  eng_lock (r, c);
  while (ch->writers > 0 && ch->state == ENG_LOCAL)
    eng_wait (r, c);
  if (ch->state != ENG_LOCAL || ch->wgen == ch->pgen) {
    eng_unlock (r, c);
    return 0;
  }
  ch->flags |= ENG_F_SNAP;
  p->gen = ch->wgen;
  eng_unlock (r, c);

  if (r->o.before_push && !atomic_load (&r->abandoned))
    r->o.before_push (c, r->o.before_push_user);
  int e = r3m_backend_pread (r->cache, p->buf, eng_chunk_len (r, c),
                             eng_chunk_off (r, c));
  eng_lock (r, c);
  ch->flags &= (uint8_t) ~ENG_F_SNAP;
  if (e == 0)
    ch->flags |= ENG_F_PUSH;
  eng_wake (r, c);
  eng_unlock (r, c);
  if (e < 0) {
    eng_fail (r, e, "snapshot of chunk %llu from %s", (unsigned long long) c,
              r3m_backend_describe (r->cache));
    return e;
  }
  return 1;
}

/* A push slot once fewer than window pushes are in flight, or NULL. */
static struct eng_push *
get_slot (struct r3m_region *r, unsigned window)
{
  struct eng_pusher *ps = &r->push;
  pthread_mutex_lock (&ps->mu);
  while (ps->inflight >= window)
    pthread_cond_wait (&ps->cv, &ps->mu);
  struct eng_push *p = ps->free;
  if (p)
    ps->free = p->next;
  pthread_mutex_unlock (&ps->mu);
  if (!p) {
    p = calloc (1, sizeof *p);
    if (p && !(p->buf = malloc (r->cs))) {
      free (p);
      p = NULL;
    }
    if (p)
      p->r = r;
  }
  return p;
}

static void
put_slot (struct r3m_region *r, struct eng_push *p)
{
  struct eng_pusher *ps = &r->push;
  pthread_mutex_lock (&ps->mu);
  p->next = ps->free;
  ps->free = p;
  pthread_mutex_unlock (&ps->mu);
}

static void
submit_push (struct r3m_region *r, struct eng_push *p, uint64_t c)
{
  struct eng_pusher *ps = &r->push;
  p->chunk = c;
  p->io = (struct r3m_io) {
    .op = R3M_IO_WRITE, .buf = p->buf, .len = eng_chunk_len (r, c),
    .off = eng_chunk_off (r, c), .done = push_done, .user = p,
  };
  pthread_mutex_lock (&ps->mu);
  ps->inflight++;
  pthread_mutex_unlock (&ps->mu);
  eng_ref (r);
  int e = r3m_backend_submit (r->remote, &p->io);
  if (e < 0)
    push_done (&p->io, e);
}

/* Push chunk c if it is dirty.  0 or -errno. */
static int
push_one (struct r3m_region *r, uint64_t c, unsigned window)
{
  struct eng_push *p = get_slot (r, window);
  if (!p) {
    eng_fail (r, -ENOMEM, "push of chunk %llu", (unsigned long long) c);
    return -ENOMEM;
  }
  int e = snapshot (r, c, p);
  if (e <= 0) {
    put_slot (r, p);
    return e;
  }
  submit_push (r, p, c);
  return 0;
}

int
eng_push_round (struct r3m_region *r, uint64_t first, uint64_t last)
{
  struct eng_pusher *ps = &r->push;
  if (!r->cache || r->nchunks == 0)
    return 0;
  unsigned window = r->o.push_window ? r->o.push_window : FLUSH_WINDOW;
  int err = 0;

  pthread_mutex_lock (&ps->round_mu);
  pthread_mutex_lock (&ps->mu);
  ps->round_error = 0;
  pthread_mutex_unlock (&ps->mu);

  for (uint64_t w = first / 64; w <= last / 64; w++) {
    uint64_t bits = atomic_load_explicit (&r->dirty_bits[w],
                                          memory_order_relaxed);
    if (w == first / 64)
      bits &= ~UINT64_C (0) << (first % 64);
    if (w == last / 64 && last % 64 != 63)
      bits &= (UINT64_C (1) << (last % 64 + 1)) - 1;
    while (bits && !atomic_load (&r->abandoned)) {
      uint64_t c = w * 64 + (unsigned) __builtin_ctzll (bits);
      bits &= bits - 1;
      int e = push_one (r, c, window);
      if (e < 0 && err == 0)
        err = e;
    }
  }

  pthread_mutex_lock (&ps->mu);
  while (ps->inflight > 0)
    pthread_cond_wait (&ps->cv, &ps->mu);
  if (err == 0)
    err = ps->round_error;
  pthread_mutex_unlock (&ps->mu);
  pthread_mutex_unlock (&ps->round_mu);
  return err;
}

static int
flush_backend (struct r3m_region *r, struct r3m_backend *b)
{
  int e = r3m_backend_flush (b);
  if (e < 0)
    eng_fail (r, e, "flush of %s", r3m_backend_describe (b));
  return e;
}

int
r3m_region_flush (struct r3m_region *r)
{
  int e = eng_gate (r);
  if (e < 0)
    return e;
  if (r->cache) {
    e = eng_push_round (r, 0, r->nchunks ? r->nchunks - 1 : 0);
    if (e < 0)
      return e;
    e = flush_backend (r, r->cache);
    if (e < 0)
      return e;
  }
  return flush_backend (r, r->remote);
}

int
eng_final_sync (struct r3m_region *r)
{
  int err = 0, e;
  if (r->cache) {
    err = eng_push_round (r, 0, r->nchunks ? r->nchunks - 1 : 0);
    if (atomic_load (&r->abandoned))
      return err;
    e = flush_backend (r, r->cache);
    if (err == 0)
      err = e;
  }
  if (atomic_load (&r->abandoned))
    return err;
  e = flush_backend (r, r->remote);
  return err ? err : e;
}

static void *
pusher_thread (void *arg)
{
  struct r3m_region *r = arg;
  struct eng_pusher *ps = &r->push;
  bool periodic = r->cache && r->o.push_window > 0
                  && r->o.push_interval_ms > 0;

  pthread_mutex_lock (&ps->mu);
  while (!ps->stop) {
    if (!periodic) {
      pthread_cond_wait (&ps->cv, &ps->mu);
      continue;
    }
    struct timespec ts = util_deadline_ms (r->o.push_interval_ms);
    while (!ps->stop
           && pthread_cond_timedwait (&ps->cv, &ps->mu, &ts) != ETIMEDOUT)
      ;
    if (ps->stop)
      break;
    pthread_mutex_unlock (&ps->mu);
    (void) eng_push_round (r, 0, r->nchunks ? r->nchunks - 1 : 0);
    pthread_mutex_lock (&ps->mu);
  }
  pthread_mutex_unlock (&ps->mu);

  int e = eng_final_sync (r);
  pthread_mutex_lock (&ps->mu);
  ps->final_result = e;
  ps->final_done = true;
  pthread_mutex_unlock (&ps->mu);
  eng_unref (r);
  return NULL;
}

int
eng_pusher_start (struct r3m_region *r)
{
  struct eng_pusher *ps = &r->push;
  eng_ref (r);
  int e = pthread_create (&ps->thread, NULL, pusher_thread, r);
  if (e != 0) {
    eng_unref (r);
    return -e;
  }
  ps->thread_started = true;
  return 0;
}

void
eng_pusher_stop (struct r3m_region *r)
{
  struct eng_pusher *ps = &r->push;
  pthread_mutex_lock (&ps->mu);
  ps->stop = true;
  pthread_cond_broadcast (&ps->cv);
  pthread_mutex_unlock (&ps->mu);
}

void
eng_pusher_free (struct r3m_region *r)
{
  struct eng_pusher *ps = &r->push;
  while (ps->free) {
    struct eng_push *p = ps->free;
    ps->free = p->next;
    free (p->buf);
    free (p);
  }
}
