/* The chunk state table: striped locks, generations, dirty bitmaps.  The
 * states and transitions are described in engine.h. */
#include <stdlib.h>

#include "engine/engine.h"

void
eng_lock (struct r3m_region *r, uint64_t c)
{
  pthread_mutex_lock (&eng_stripe_of (r, c)->mu);
}

void
eng_unlock (struct r3m_region *r, uint64_t c)
{
  pthread_mutex_unlock (&eng_stripe_of (r, c)->mu);
}

void
eng_wait (struct r3m_region *r, uint64_t c)
{
  struct eng_stripe *s = eng_stripe_of (r, c);
  s->waiters++;
  pthread_cond_wait (&s->cv, &s->mu);
  s->waiters--;
}

void
eng_wake (struct r3m_region *r, uint64_t c)
{
  struct eng_stripe *s = eng_stripe_of (r, c);
  if (s->waiters > 0)
    pthread_cond_broadcast (&s->cv);
}

static void
bit_set (_Atomic uint64_t *bits, uint64_t c)
{
  atomic_fetch_or_explicit (&bits[c / 64], UINT64_C (1) << (c % 64),
                            memory_order_relaxed);
}

static void
bit_clear (_Atomic uint64_t *bits, uint64_t c)
{
  atomic_fetch_and_explicit (&bits[c / 64], ~(UINT64_C (1) << (c % 64)),
                             memory_order_relaxed);
}

void
eng_written_locked (struct r3m_region *r, uint64_t c)
{
  struct eng_chunk *ch = &r->chunk[c];
  if (ch->wgen == ch->pgen) {
    bit_set (r->dirty_bits, c);
    atomic_fetch_add (&r->n_dirty, 1);
  }
  ch->wgen++;
  if (ch->wgen == ch->pgen)     /* wrapped around: still dirty */
    ch->wgen++;
}

void
eng_pushed_locked (struct r3m_region *r, uint64_t c, uint32_t gen, bool ok)
{
  struct eng_chunk *ch = &r->chunk[c];
  ch->flags &= (uint8_t) ~ENG_F_PUSH;
  /* A write that landed after the snapshot bumped wgen past gen, so the
   * chunk stays dirty and the next round pushes it again. */
  if (ok && ch->wgen != ch->pgen) {
    ch->pgen = gen;
    if (ch->wgen == ch->pgen) {
      bit_clear (r->dirty_bits, c);
      atomic_fetch_sub (&r->n_dirty, 1);
    }
  }
  eng_wake (r, c);
}

void
eng_clean_locked (struct r3m_region *r, uint64_t c)
{
  struct eng_chunk *ch = &r->chunk[c];
  if (ch->wgen != ch->pgen) {
    ch->pgen = ch->wgen;
    bit_clear (r->dirty_bits, c);
    atomic_fetch_sub (&r->n_dirty, 1);
  }
}

bool
eng_become_local_locked (struct r3m_region *r, uint64_t c)
{
  struct eng_chunk *ch = &r->chunk[c];
  bool stale = ch->flags & ENG_F_STALE;
  ch->flags &= (uint8_t) ~ENG_F_STALE;
  eng_wake (r, c);
  if (stale) {
    ch->state = ENG_REMOTE;
    return false;
  }
  ch->state = ENG_LOCAL;
  if (atomic_fetch_add (&r->n_local, 1) + 1 == r->nchunks)
    eng_progress_wake (r);
  return true;
}

void
eng_track (struct r3m_region *r, uint64_t first, uint64_t last)
{
  if (!atomic_load_explicit (&r->tracking, memory_order_acquire))
    return;
  for (uint64_t c = first; c <= last; c++)
    bit_set (r->track_bits, c);
}

void
eng_notify_local (struct r3m_region *r, uint64_t c)
{
  if (r->o.on_chunk_local && !atomic_load (&r->abandoned))
    r->o.on_chunk_local (c, r->o.on_chunk_local_user);
}
