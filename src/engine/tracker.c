/* The dirty tracker (migration rounds) and invalidation.
 *
 * The tracker is a bitmap of chunks written since the last take.  A write
 * sets its bits after its bytes are in the cache (or the remote, for a
 * direct region); take swaps each word with zero atomically.  So a write
 * that completes before take starts is in this take, and one that races
 * with it is in this take or the next, never lost and never half-counted.
 */
#include <errno.h>
#include <stdlib.h>

#include "engine/engine.h"

int
r3m_region_track_start (struct r3m_region *r)
{
  atomic_store (&r->tracking, false);
  for (size_t w = 0; w < r->nwords; w++)
    atomic_store_explicit (&r->track_bits[w], 0, memory_order_relaxed);
  atomic_store_explicit (&r->tracking, true, memory_order_release);
  return 0;
}

int
r3m_region_track_take (struct r3m_region *r, uint64_t **chunks, size_t *n)
{
  size_t cap = 0, len = 0;
  uint64_t *out = NULL;
  *chunks = NULL;
  *n = 0;
  for (size_t w = 0; w < r->nwords; w++) {
    uint64_t bits = atomic_exchange (&r->track_bits[w], 0);
    while (bits) {
      if (len == cap) {
        size_t ncap = cap ? cap * 2 : 64;
        uint64_t *p = realloc (out, ncap * sizeof *p);
        if (!p) {
          /* Put back what we took so nothing is lost, then fail. */
          atomic_fetch_or (&r->track_bits[w], bits);
          for (size_t i = 0; i < len; i++)
            atomic_fetch_or (&r->track_bits[out[i] / 64],
                             UINT64_C (1) << (out[i] % 64));
          free (out);
          return -ENOMEM;
        }
        out = p;
        cap = ncap;
      }
      unsigned b = (unsigned) __builtin_ctzll (bits);
      bits &= bits - 1;
      out[len++] = (uint64_t) w * 64 + b;
    }
  }
  *chunks = out;
  *n = len;
  return 0;
}

void
r3m_region_track_stop (struct r3m_region *r)
{
  atomic_store (&r->tracking, false);
}

/* Drop the local copy of chunk c, waiting for whoever uses it. */
static int
invalidate_one (struct r3m_region *r, uint64_t c)
{
  struct eng_chunk *ch = &r->chunk[c];
  eng_lock (r, c);
  for (;;) {
    if (ch->state == ENG_BUSY) {
      /* A fetch in flight would store the old bytes: mark it so its
       * owner fetches again (a whole-chunk writer ignores the mark). */
      ch->flags |= ENG_F_STALE;
      break;
    }
    if (ch->state == ENG_REMOTE)
      break;
    /* A push in flight would overwrite the new remote bytes with the old
     * local ones: wait for it, and for readers and writers. */
    if (ch->readers || ch->writers || (ch->flags & (ENG_F_SNAP | ENG_F_PUSH))) {
      eng_wait (r, c);
      continue;
    }
    eng_clean_locked (r, c);
    ch->state = ENG_BUSY;
    atomic_fetch_sub (&r->n_local, 1);
    eng_unlock (r, c);
    /* Give the cache a chance to drop the bytes (a uffd mapping unmaps the
     * pages so the next touch faults).  Advice only: errors do not matter. */
    (void) r3m_backend_trim (r->cache, eng_chunk_len (r, c),
                             eng_chunk_off (r, c));
    eng_lock (r, c);
    ch->state = ENG_REMOTE;
    ch->flags &= (uint8_t) ~ENG_F_STALE; /* set by a racing invalidate */
    eng_wake (r, c);
    break;
  }
  eng_unlock (r, c);
  return 0;
}

int
r3m_region_invalidate (struct r3m_region *r, const uint64_t *chunks, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (chunks[i] >= r->nchunks)
      return -EINVAL;
  if (!r->cache)
    return 0;
  /* The remote changed: what it said about zeros no longer holds. */
  eng_puller_forget_zeros (r, chunks, n);
  for (size_t i = 0; i < n; i++)
    invalidate_one (r, chunks[i]);
  eng_puller_requeue (r, chunks, n);
  return 0;
}
