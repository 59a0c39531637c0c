/* Reads through a region.
 *
 * A read is cut into batches of up to BATCH chunks.  For each batch:
 *   1. claim: LOCAL chunks get a reader count (invalidate waits for it),
 *      REMOTE chunks become BUSY and are ours to fetch, BUSY chunks are
 *      somebody else's fetch and are waited for last;
 *   2. our fetches are all submitted at once (urgent), straight into the
 *      caller's buffer where a chunk is wholly inside it;
 *   3. runs of LOCAL chunks are copied out of the cache, one call per run;
 *   4. our fetches are waited for, retried, stored and made LOCAL;
 *   5. chunks that were BUSY elsewhere are waited for one at a time.
 * Step 5 comes after every chunk we made BUSY has left BUSY, so a reader
 * never waits while holding a claim another reader may wait on.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "engine/engine.h"
#include "engine/fetch.h"
#include "util/tsan.h"

#define BATCH 64

enum claim { CL_LOCAL, CL_MINE, CL_WAIT };

struct span {                 /* the part of chunk c the caller reads */
  uint64_t c;
  uint64_t off;               /* absolute offset */
  size_t len;
  unsigned char *dst;
};

static struct span
span_of (struct r3m_region *r, uint64_t c, unsigned char *buf, uint64_t off,
         uint64_t end)
{
  uint64_t cs = eng_chunk_off (r, c), ce = cs + eng_chunk_len (r, c);
  uint64_t s = off > cs ? off : cs, e = end < ce ? end : ce;
  return (struct span) { c, s, (size_t) (e - s), buf + (s - off) };
}

static bool
span_whole (struct r3m_region *r, const struct span *sp)
{
  return sp->len == eng_chunk_len (r, sp->c);
}

static void
release_reader (struct r3m_region *r, uint64_t c)
{
  eng_lock (r, c);
  if (--r->chunk[c].readers == 0)
    eng_wake (r, c);
  eng_unlock (r, c);
}

static enum claim
claim (struct r3m_region *r, uint64_t c)
{
  struct eng_chunk *ch = &r->chunk[c];
  enum claim k;
  eng_lock (r, c);
  if (ch->state == ENG_LOCAL) {
    ch->readers++;
    k = CL_LOCAL;
  } else if (ch->state == ENG_REMOTE) {
    ch->state = ENG_BUSY;
    k = CL_MINE;
  } else
    k = CL_WAIT;
  eng_unlock (r, c);
  return k;
}

/* Copy [off, off+len) of LOCAL chunks out of the cache, then release the
 * reader counts of chunks first..last. */
static int
read_local_run (struct r3m_region *r, uint64_t first, uint64_t last,
                unsigned char *dst, size_t len, uint64_t off)
{
  UTIL_TSAN_IGNORE_READS_BEGIN ();
  int e = r3m_backend_pread (r->cache, dst, len, off);
  UTIL_TSAN_IGNORE_READS_END ();
  for (uint64_t c = first; c <= last; c++)
    release_reader (r, c);
  if (e < 0)
    eng_fail (r, e, "read of %s at %llu", r3m_backend_describe (r->cache),
              (unsigned long long) off);
  return e;
}

/* Read one chunk's span, waiting for other fetches and fetching it
 * ourselves if it is (or becomes) REMOTE.  Used for single-chunk reads and
 * for chunks another thread was fetching when a batch claimed them. */
static int
read_slow (struct r3m_region *r, const struct span *sp)
{
  struct eng_chunk *ch = &r->chunk[sp->c];
  for (;;) {
    eng_lock (r, sp->c);
    while (ch->state == ENG_BUSY)
      eng_wait (r, sp->c);
    enum claim k = CL_MINE;
    if (ch->state == ENG_LOCAL) {
      ch->readers++;
      k = CL_LOCAL;
    } else
      ch->state = ENG_BUSY;
    eng_unlock (r, sp->c);

    if (k == CL_LOCAL)
      return read_local_run (r, sp->c, sp->c, sp->dst, sp->len, sp->off);

    /* A whole chunk is fetched straight into the caller's buffer. */
    bool whole = span_whole (r, sp);
    unsigned char *tmp = whole ? sp->dst : malloc (eng_chunk_len (r, sp->c));
    int e = tmp ? eng_fetch_sync (r, sp->c, tmp) : -ENOMEM;
    bool local = eng_fetch_finish (r, sp->c, e);
    if (local && !whole)
      memcpy (sp->dst, tmp + (sp->off - eng_chunk_off (r, sp->c)), sp->len);
    if (!whole)
      free (tmp);
    if (e < 0)
      return e;
    if (local)
      return 0;
    /* Invalidated while we fetched: go round again for the new data. */
  }
}

/* Fetch, store and finish the chunks we claimed; copy partial ones out of
 * their bounce buffers.  Returns the first error. */
static int
finish_mine (struct r3m_region *r, struct span *sp, enum claim *k, size_t n,
             struct eng_dfetch *f, unsigned char **bounce)
{
  int first_err = 0;
  for (size_t i = 0; i < n; i++) {
    if (k[i] != CL_MINE)
      continue;
    int e = f[i].io.buf ? eng_fetch_retry (r, &f[i]) : -ENOMEM;
    if (!f[i].io.buf)
      eng_fail (r, e, "fetch of chunk %llu", (unsigned long long) sp[i].c);
    if (e == 0)
      e = eng_fetch_store (r, sp[i].c, f[i].io.buf);
    bool local = eng_fetch_finish (r, sp[i].c, e);
    if (local && bounce[i])
      memcpy (sp[i].dst,
              bounce[i] + (sp[i].off - eng_chunk_off (r, sp[i].c)),
              sp[i].len);
    if (e == 0 && !local)
      k[i] = CL_WAIT;           /* stale: read it again in step 5 */
    if (e < 0 && first_err == 0)
      first_err = e;
  }
  return first_err;
}

/* 1. Claim chunks first..first+n-1 for a read of [off, end) into buf. */
static void
claim_batch (struct r3m_region *r, unsigned char *buf, uint64_t off,
             uint64_t end, uint64_t first, size_t n, struct span *sp,
             enum claim *k)
{
  for (size_t i = 0; i < n; i++) {
    sp[i] = span_of (r, first + i, buf, off, end);
    k[i] = claim (r, first + i);
  }
}

/* Steps 2 to 5 for claimed chunks. */
static int
read_claimed (struct r3m_region *r, struct span *sp, enum claim *k, size_t n)
{
  struct eng_dfetch f[BATCH];
  unsigned char *bounce[BATCH] = { 0 };
  struct eng_group g;
  bool any_mine = false;
  int err = 0;

  for (size_t i = 0; i < n; i++)
    if (k[i] == CL_MINE)
      any_mine = true;

  /* 2. Submit our fetches together. */
  if (any_mine) {
    eng_group_init (&g);
    for (size_t i = 0; i < n; i++) {
      if (k[i] != CL_MINE)
        continue;
      void *dst = sp[i].dst;
      if (!span_whole (r, &sp[i])) {
        bounce[i] = malloc (eng_chunk_len (r, sp[i].c));
        dst = bounce[i];
      }
      if (dst)
        eng_group_submit (r, &g, &f[i], sp[i].c, dst);
      else {
        f[i].chunk = sp[i].c;
        f[i].result = -ENOMEM;
        f[i].io.buf = NULL;
      }
    }
  }

  /* 3. Runs of LOCAL chunks, one cache read per run. */
  for (size_t i = 0; i < n;) {
    if (k[i] != CL_LOCAL) {
      i++;
      continue;
    }
    size_t j = i;
    while (j + 1 < n && k[j + 1] == CL_LOCAL)
      j++;
    size_t len = (size_t) (sp[j].off + sp[j].len - sp[i].off);
    int e = read_local_run (r, sp[i].c, sp[j].c, sp[i].dst, len, sp[i].off);
    if (e < 0 && err == 0)
      err = e;
    i = j + 1;
  }

  /* 4. Our fetches. */
  if (any_mine) {
    eng_group_wait (&g);
    eng_group_destroy (&g);
    int e = finish_mine (r, sp, k, n, f, bounce);
    if (e < 0 && err == 0)
      err = e;
    for (size_t i = 0; i < n; i++)
      free (bounce[i]);
  }

  /* 5. Other threads' fetches. */
  for (size_t i = 0; i < n; i++) {
    if (k[i] != CL_WAIT)
      continue;
    int e = read_slow (r, &sp[i]);
    if (e < 0 && err == 0)
      err = e;
  }
  return err;
}

static int
read_batch (struct r3m_region *r, unsigned char *buf, uint64_t off,
            uint64_t end, uint64_t first, size_t n)
{
  struct span sp[BATCH];
  enum claim k[BATCH];
  claim_batch (r, buf, off, end, first, n, sp, k);
  return read_claimed (r, sp, k, n);
}

int
r3m_region_read (struct r3m_region *r, void *buf, size_t len, uint64_t off)
{
  int e = eng_gate (r);
  if (e < 0)
    return e;
  if (off > r->size || len > r->size - off)
    return -EINVAL;
  if (len == 0)
    return 0;
  if (!r->cache) {
    e = r3m_backend_pread (r->remote, buf, len, off);
    if (e < 0)
      eng_fail_remote (r, e, "read of %s at %llu",
                       r3m_backend_describe (r->remote),
                       (unsigned long long) off);
    return e;
  }

  uint64_t end = off + len;
  uint64_t first = off >> r->shift, last = (end - 1) >> r->shift;
  if (first == last) {
    /* One chunk (the common small read): no batch bookkeeping. */
    struct span sp = span_of (r, first, buf, off, end);
    return read_slow (r, &sp);
  }
  int err = 0;
  for (uint64_t c = first; c <= last; c += BATCH) {
    size_t n = last - c + 1 < BATCH ? (size_t) (last - c + 1) : BATCH;
    e = read_batch (r, buf, off, end, c, n);
    if (e < 0 && err == 0)
      err = e;
  }
  return err;
}

/* ---- reads that hand their bytes to a callback ------------------------
 *
 * r3m_region_read_deliver serves a frontend that copies the bytes on
 * anyway (FUSE writes them into the kernel's page cache).  When the cache
 * lends its memory (r3m_backend_direct), the bytes need not pass through
 * the caller's buffer at all:
 *   - LOCAL chunks are handed over where they lie in the cache, with their
 *     reader counts held until the callback returns;
 *   - chunks we fetch are received straight into their place in the cache
 *     (the chunk is BUSY and ours, so nobody else touches those bytes),
 *     whole even when the read covers only part of them: no bounce buffer,
 *     no store copy;
 *   - the callback runs as soon as the fetches landed, before the chunks
 *     turn LOCAL and their waiters wake.
 * Holding our BUSY chunks through the callback is safe only if we wait for
 * nobody meanwhile: a batch that meets a chunk somebody else is filling
 * (CL_WAIT; in a mount with background pull, the puller's, which is the
 * common case for sequential reads) first finishes its own fetches, then
 * waits for the others holding reader counts only, then delivers from the
 * cache.  Two readers each holding a BUSY chunk the other waits for would
 * deadlock; reader counts only hold off invalidate, which waits holding
 * nothing, so they may be kept while we wait for fetches. */

static void
piece_add (struct iovec *iov, int *n, const void *base, size_t len)
{
  if (len == 0)
    return;
  if (*n > 0) {
    struct iovec *last = &iov[*n - 1];
    if ((const unsigned char *) last->iov_base + last->iov_len == base) {
      last->iov_len += len;
      return;
    }
  }
  iov[(*n)++] = (struct iovec) { (void *) base, len };
}

/* True if an invalidate marked one of our fetched chunks while it was in
 * flight: its bytes are old, so they must not be handed out. */
static bool
any_stale (struct r3m_region *r, const struct span *sp, const enum claim *k,
           size_t n)
{
  bool stale = false;
  for (size_t i = 0; i < n && !stale; i++) {
    if (k[i] != CL_MINE)
      continue;
    eng_lock (r, sp[i].c);
    stale = r->chunk[sp[i].c].flags & ENG_F_STALE;
    eng_unlock (r, sp[i].c);
  }
  return stale;
}

/* Hold chunk c as a reader once it is LOCAL: wait while somebody fills
 * it, fetch it straight into the cache if it is REMOTE.  We hold no BUSY
 * chunk while waiting here. */
static int
hold_local (struct r3m_region *r, unsigned char *mem, uint64_t c)
{
  struct eng_chunk *ch = &r->chunk[c];
  for (;;) {
    eng_lock (r, c);
    while (ch->state == ENG_BUSY)
      eng_wait (r, c);
    bool local = ch->state == ENG_LOCAL;
    if (local)
      ch->readers++;
    else
      ch->state = ENG_BUSY;
    eng_unlock (r, c);
    if (local)
      return 0;
    int e = eng_fetch_sync_nostore (r, c, mem + eng_chunk_off (r, c));
    (void) eng_fetch_finish (r, c, e);
    if (e < 0)
      return e;
    /* Stored (or invalidated meanwhile): go round to hold it. */
  }
}

/* Hand the batch's spans, where they lie in the cache's memory mem, to
 * deliver as pieces (adjacent spans joined).  A write to the same bytes
 * may run meanwhile (see util/tsan.h). */
static int
deliver_cache (const unsigned char *mem, const struct span *sp, size_t n,
               r3m_region_deliver_fn deliver, void *user)
{
  struct iovec iov[BATCH];
  int niov = 0;
  for (size_t i = 0; i < n; i++)
    piece_add (iov, &niov, mem + sp[i].off, sp[i].len);
  UTIL_TSAN_IGNORE_READS_BEGIN ();
  int res = deliver (iov, niov, user);
  UTIL_TSAN_IGNORE_READS_END ();
  return res;
}

/* The batch, with the cache lending memory `mem`.  Returns the callback's
 * result, or -errno if the read failed; *delivered tells which. */
static int
deliver_batch (struct r3m_region *r, unsigned char *mem, struct span *sp,
               enum claim *k, size_t n, r3m_region_deliver_fn deliver,
               void *user, bool *delivered)
{
  struct eng_dfetch f[BATCH];
  struct eng_group g;
  bool any_mine = false, any_wait = false;
  int err = 0;

  *delivered = false;
  for (size_t i = 0; i < n; i++) {
    any_mine |= k[i] == CL_MINE;
    any_wait |= k[i] == CL_WAIT;
  }
  if (any_mine) {
    eng_group_init (&g);
    for (size_t i = 0; i < n; i++)
      if (k[i] == CL_MINE)
        eng_group_submit (r, &g, &f[i], sp[i].c,
                          mem + eng_chunk_off (r, sp[i].c));
    for (size_t i = 0; i < n;) {
      size_t j = i;
      if (k[i] == CL_MINE) {
        while (j + 1 < n && k[j + 1] == CL_MINE)
          j++;
        eng_cache_populate (r, mem, sp[i].c, sp[j].c);
      }
      i = j + 1;
    }
    eng_group_wait (&g);
    eng_group_destroy (&g);
    for (size_t i = 0; i < n; i++) {
      if (k[i] != CL_MINE)
        continue;
      int e = eng_fetch_retry (r, &f[i]);
      if (e < 0 && err == 0)
        err = e;
    }
  }

  int res = err;
  /* Fast: nothing to wait for, so deliver while ours are still BUSY. */
  if (!any_wait && err == 0 && !(any_mine && any_stale (r, sp, k, n))) {
    res = deliver_cache (mem, sp, n, deliver, user);
    *delivered = true;
  }

  for (size_t i = 0; i < n; i++) {
    if (k[i] != CL_MINE)
      continue;
    int e = f[i].result;
    if (e == 0) {
      /* Counted before the chunk turns LOCAL, as eng_fetch_store does. */
      atomic_fetch_add (&r->fetch_demand, 1);
      atomic_fetch_add (&r->bytes_fetched, eng_chunk_len (r, sp[i].c));
    }
    (void) eng_fetch_finish (r, sp[i].c, e);
    k[i] = CL_WAIT;             /* not held: hold_local below if needed */
  }

  /* Slow: another thread (the puller, mostly) is filling some chunks.  Ours
   * are finished above, so we wait holding only reader counts, then answer
   * from the cache all the same. */
  if (!*delivered && err == 0 && any_wait) {
    /* Last chunk first: the puller fills a run front to back, so once the
     * last is local the others mostly are too, and we sleep once rather
     * than once per chunk (a wake-up is dear on these VMs). */
    for (size_t i = n; i-- > 0 && err == 0;)
      if (k[i] == CL_WAIT) {
        err = hold_local (r, mem, sp[i].c);
        if (err == 0)
          k[i] = CL_LOCAL;
      }
    res = err;
    if (err == 0) {
      res = deliver_cache (mem, sp, n, deliver, user);
      *delivered = true;
    }
  }

  for (size_t i = 0; i < n; i++)
    if (k[i] == CL_LOCAL)
      release_reader (r, sp[i].c);
  return res;
}

int
r3m_region_read_deliver (struct r3m_region *r, void *buf, size_t len,
                         uint64_t off, r3m_region_deliver_fn deliver,
                         void *user)
{
  int e = eng_gate (r);
  if (e < 0)
    return e;
  if (off > r->size || len > r->size - off)
    return -EINVAL;
  unsigned char *mem = len > 0 ? eng_cache_mem (r) : NULL;
  uint64_t end = off + len;
  uint64_t first = off >> r->shift;
  uint64_t last = len > 0 ? (end - 1) >> r->shift : first;
  if (mem && last - first < BATCH) {
    struct span sp[BATCH];
    enum claim k[BATCH];
    size_t n = (size_t) (last - first + 1);
    bool delivered;
    claim_batch (r, buf, off, end, first, n, sp, k);
    e = deliver_batch (r, mem, sp, k, n, deliver, user, &delivered);
    if (delivered || e < 0)
      return e;
    /* A fetched chunk went stale: read again the ordinary way. */
  }
  e = r3m_region_read (r, buf, len, off);
  if (e < 0)
    return e;
  struct iovec iov = { buf, len };
  return deliver (&iov, len > 0, user);
}
