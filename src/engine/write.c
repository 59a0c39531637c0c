/* Writes through a region: arbitrary byte ranges in, whole chunks out.
 *
 * A write is cut at chunk boundaries.  A partial chunk that is REMOTE is
 * fetched first (read-modify-write: the fetched chunk and the new bytes go
 * into the cache in one call); a partial chunk that is LOCAL is written in
 * place.  Whole chunks need no fetch: runs of them are claimed in ascending
 * order (LOCAL ones get a writer count, REMOTE ones become BUSY for the
 * fill) and written with one cache call per run.
 *
 * A write counts for the pusher and the dirty tracker once its bytes are in
 * the cache: wgen is bumped after the cache call returns, under the chunk's
 * lock.  The pusher snapshots a chunk only while it has no writers, so every
 * generation it records is wholly in its snapshot.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

#define RUN_MAX 64              /* whole chunks per cache call */

/* Wait until chunk c can take a writer: not BUSY, not being snapshotted. */
static void
wait_writable_locked (struct r3m_region *r, uint64_t c)
{
  struct eng_chunk *ch = &r->chunk[c];
  while (ch->state == ENG_BUSY || (ch->flags & ENG_F_SNAP))
    eng_wait (r, c);
}

/* The write to LOCAL chunk c (writer count held) ended with e. */
static void
end_writer (struct r3m_region *r, uint64_t c, int e)
{
  struct eng_chunk *ch = &r->chunk[c];
  eng_lock (r, c);
  /* Even a failed cache write may have changed some bytes: keep the remote
   * in step with whatever the cache now holds. */
  (void) e;
  eng_written_locked (r, c);
  if (--ch->writers == 0)
    eng_wake (r, c);
  eng_unlock (r, c);
}

/* The fill of BUSY chunk c ended with e: LOCAL and dirty, or REMOTE. */
static void
end_fill (struct r3m_region *r, uint64_t c, int e)
{
  struct eng_chunk *ch = &r->chunk[c];
  bool local = false;
  eng_lock (r, c);
  ch->flags &= (uint8_t) ~ENG_F_STALE; /* our bytes win over the old ones */
  if (e == 0) {
    local = eng_become_local_locked (r, c);
    eng_written_locked (r, c);
  } else {
    ch->state = ENG_REMOTE;
    eng_wake (r, c);
  }
  eng_unlock (r, c);
  if (local)
    eng_notify_local (r, c);
  else
    eng_puller_requeue (r, &c, 1);
}

static int
cache_put (struct r3m_region *r, const void *buf, size_t len, uint64_t off)
{
  int e = buf ? r3m_backend_pwrite (r->cache, buf, len, off, 0)
              : r3m_backend_zero (r->cache, len, off, 0);
  if (e < 0)
    eng_fail (r, e, "write of %s at %llu", r3m_backend_describe (r->cache),
              (unsigned long long) off);
  return e;
}

/* Write [off, off+len) inside chunk c, not the whole chunk.  buf NULL
 * writes zeros. */
static int
write_partial (struct r3m_region *r, uint64_t c, const unsigned char *buf,
               size_t len, uint64_t off)
{
  struct eng_chunk *ch = &r->chunk[c];
  uint64_t coff = eng_chunk_off (r, c);
  uint32_t clen = eng_chunk_len (r, c);

  for (;;) {
    eng_lock (r, c);
    wait_writable_locked (r, c);
    if (ch->state == ENG_LOCAL) {
      ch->writers++;
      eng_unlock (r, c);
      int e = cache_put (r, buf, len, off);
      end_writer (r, c, e);
      return e;
    }
    ch->state = ENG_BUSY;
    eng_unlock (r, c);

    /* Read-modify-write: fetch, overlay, store the chunk in one call. */
    unsigned char *tmp = malloc (clen);
    int e = tmp ? eng_fetch_sync_nostore (r, c, tmp) : -ENOMEM;
    if (e == 0) {
      if (buf)
        memcpy (tmp + (off - coff), buf, len);
      else
        memset (tmp + (off - coff), 0, len);
      e = cache_put (r, tmp, clen, coff);
    }
    free (tmp);

    bool stale = false, local = false;
    eng_lock (r, c);
    if (e == 0) {
      stale = (ch->flags & ENG_F_STALE) != 0;
      local = eng_become_local_locked (r, c);
      if (local)
        eng_written_locked (r, c);
    } else {
      ch->state = ENG_REMOTE;
      ch->flags &= (uint8_t) ~ENG_F_STALE;
      eng_wake (r, c);
    }
    eng_unlock (r, c);
    if (local) {
      eng_notify_local (r, c);
      return 0;
    }
    if (!stale) {
      eng_puller_requeue (r, &c, 1);
      return e;
    }
    /* Invalidated while we fetched: the merge used old data, redo it. */
  }
}

/* Claim whole chunk c for writing.  Returns true if it was REMOTE and is
 * now BUSY for us to fill, false if it is LOCAL with a writer count. */
static bool
claim_whole (struct r3m_region *r, uint64_t c)
{
  struct eng_chunk *ch = &r->chunk[c];
  bool fill;
  eng_lock (r, c);
  wait_writable_locked (r, c);
  if (ch->state == ENG_LOCAL) {
    ch->writers++;
    fill = false;
  } else {
    ch->state = ENG_BUSY;
    fill = true;
  }
  eng_unlock (r, c);
  return fill;
}

/* Write n whole chunks from chunk first on. */
static int
write_run (struct r3m_region *r, uint64_t first, size_t n,
           const unsigned char *buf)
{
  uint64_t fill = 0;            /* bit i: chunk first+i is ours to fill */
  uint64_t off = eng_chunk_off (r, first);
  size_t len = 0;
  for (size_t i = 0; i < n; i++) {
    if (claim_whole (r, first + i))
      fill |= UINT64_C (1) << i;
    len += eng_chunk_len (r, first + i);
  }
  int e = cache_put (r, buf, len, off);
  for (size_t i = 0; i < n; i++) {
    if (fill & (UINT64_C (1) << i))
      end_fill (r, first + i, e);
    else
      end_writer (r, first + i, e);
  }
  return e;
}

/* Write or zero (buf NULL) an in-range byte range through the cache. */
static int
write_cached (struct r3m_region *r, const unsigned char *buf, size_t len,
              uint64_t off)
{
  uint64_t end = off + len;
  uint64_t first = off >> r->shift, last = (end - 1) >> r->shift;
  int err = 0;
  uint64_t c = first;
  while (c <= last) {
    uint64_t cs = eng_chunk_off (r, c), ce = cs + eng_chunk_len (r, c);
    const unsigned char *src = buf ? buf + (cs > off ? cs - off : 0) : NULL;
    int e;
    if (off > cs || end < ce) {
      uint64_t s = off > cs ? off : cs, t = end < ce ? end : ce;
      e = write_partial (r, c, buf ? buf + (s - off) : NULL,
                         (size_t) (t - s), s);
      c++;
    } else {
      size_t n = 1;
      while (n < RUN_MAX && c + n <= last
             && eng_chunk_off (r, c + n) + eng_chunk_len (r, c + n) <= end)
        n++;
      e = write_run (r, c, n, src);
      c += n;
    }
    if (e < 0 && err == 0)
      err = e;
  }
  eng_track (r, first, last);
  return err;
}

/* FUA: push what was just written and flush the remote. */
static int
write_through (struct r3m_region *r, uint64_t off, size_t len)
{
  uint64_t first = off >> r->shift, last = (off + len - 1) >> r->shift;
  int e = eng_push_round (r, first, last);
  if (e == 0)
    e = r3m_backend_flush (r->remote);
  if (e < 0)
    eng_fail_remote (r, e, "FUA write to %s",
                     r3m_backend_describe (r->remote));
  return e;
}

static int
write_common (struct r3m_region *r, const void *buf, size_t len,
              uint64_t off, unsigned flags)
{
  int e = eng_gate (r);
  if (e < 0)
    return e;
  if (r->read_only)
    return -EPERM;            /* nothing written could ever be pushed */
  if (off > r->size || len > r->size - off)
    return -ENOSPC;
  if (len == 0)
    return 0;
  if (!r->cache) {
    e = buf ? r3m_backend_pwrite (r->remote, buf, len, off,
                                  flags & R3M_IO_FUA)
            : r3m_backend_zero (r->remote, len, off, flags & R3M_IO_FUA);
    if (e < 0)
      eng_fail (r, e, "write of %s at %llu",
                r3m_backend_describe (r->remote), (unsigned long long) off);
    eng_track (r, off >> r->shift, (off + len - 1) >> r->shift);
    return e;
  }
  e = write_cached (r, buf, len, off);
  if (e == 0 && (flags & R3M_IO_FUA))
    e = write_through (r, off, len);
  return e;
}

int
r3m_region_write (struct r3m_region *r, const void *buf, size_t len,
                  uint64_t off, unsigned flags)
{
  if (!buf && len > 0)
    return -EINVAL;
  return write_common (r, buf, len, off, flags);
}

int
r3m_region_zero (struct r3m_region *r, size_t len, uint64_t off,
                 unsigned flags)
{
  return write_common (r, NULL, len, off, flags);
}

/* Trim is advice.  A direct region passes it on; a cached region keeps its
 * bytes (they stay correct, which the contract allows). */
int
r3m_region_trim (struct r3m_region *r, size_t len, uint64_t off)
{
  int e = eng_gate (r);
  if (e < 0)
    return e;
  if (r->read_only)
    return -EPERM;
  if (off > r->size || len > r->size - off)
    return -EINVAL;
  if (len == 0 || r->cache)
    return 0;
  return r3m_backend_trim (r->remote, len, off);
}

int
r3m_region_mark_dirty (struct r3m_region *r, uint64_t off, uint64_t len)
{
  if (r->read_only)
    return -EPERM;
  if (off > r->size || len > r->size - off)
    return -EINVAL;
  if (len == 0)
    return 0;
  uint64_t first = off >> r->shift, last = (off + len - 1) >> r->shift;
  if (r->cache) {
    for (uint64_t c = first; c <= last; c++) {
      struct eng_chunk *ch = &r->chunk[c];
      bool became = false;
      eng_lock (r, c);
      while (ch->state == ENG_BUSY)
        eng_wait (r, c);
      /* The frontend put bytes in the cache on its own: they are the
       * chunk's now, whatever the engine thought. */
      if (ch->state == ENG_REMOTE) {
        ch->state = ENG_BUSY;
        became = eng_become_local_locked (r, c);
      }
      eng_written_locked (r, c);
      eng_unlock (r, c);
      if (became)
        eng_notify_local (r, c);
    }
  }
  eng_track (r, first, last);
  return 0;
}
