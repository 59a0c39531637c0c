/* The alignment adapter: lets a backend that only does aligned I/O (it
 * declares info.align > 1) accept any byte range, and splits reads and
 * writes larger than info.max_io.
 *
 * A request [off, end) is cut into up to three parts:
 *
 *   | head block  |  whole blocks ...  | tail block  |
 *        [off ...                              ... end)
 *
 * Whole blocks go to the backend directly (split by max_io).  A partial
 * head or tail block is read, patched and written back (read-modify-write).
 * A block ends at the next multiple of align or at the backend's size,
 * whichever comes first, so a size that is not a multiple of align just
 * gives a short last block.  A read of a partial block goes through a bounce
 * buffer and needs no lock.  Trim is advisory, so its partial blocks are
 * simply dropped.
 *
 * Concurrency: the RMW of a block holds that block's stripe exclusively, so
 * two RMWs of one block are serialised and neither write is lost.  A write
 * of whole blocks through this synchronous path holds the stripes of its
 * blocks shared, so it cannot fall between an RMW's read and write and be
 * undone.  A request holds at most one set of stripes at a time (head,
 * middle, tail in turn) and never waits for another while holding one, so
 * there is no deadlock; the stripe counters live under one mutex
 * (struct be_stripes in handle.h) that is never held across I/O.
 * Limitation: aligned requests that a backend receives through its
 * native submit bypass the stripes (a lock cannot be held across an
 * asynchronous completion); such a write racing a misaligned write to the
 * same block may be partly undone.  Requests the handle adapts always run
 * here, on the caller's thread or a pool thread. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backend/handle.h"

int
be_align_init (struct r3m_backend *b)
{
  if (b->info.align <= 1)
    return 0;
  b->stripes = calloc (1, sizeof *b->stripes);
  if (!b->stripes)
    return -ENOMEM;
  pthread_mutex_init (&b->stripes->lock, NULL);
  pthread_cond_init (&b->stripes->changed, NULL);
  return 0;
}

void
be_align_fini (struct r3m_backend *b)
{
  if (!b->stripes)
    return;
  pthread_cond_destroy (&b->stripes->changed);
  pthread_mutex_destroy (&b->stripes->lock);
  free (b->stripes);
  b->stripes = NULL;
}

/* An end offset is aligned at a block boundary or at the end of the store. */
static bool
aligned_end (const struct r3m_backend *b, uint64_t end)
{
  return end % b->info.align == 0 || end == b->info.size;
}

static bool
is_payload (enum r3m_io_op op)
{
  return op == R3M_IO_READ || op == R3M_IO_WRITE;
}

bool
be_needs_adapting (const struct r3m_backend *b, const struct r3m_io *io)
{
  if (io->op == R3M_IO_FLUSH)
    return false;
  if (is_payload (io->op) && b->info.max_io != 0 && io->len > b->info.max_io)
    return true;
  return b->info.align > 1
         && (io->off % b->info.align != 0 || !aligned_end (b, io->off + io->len));
}

/* ---- stripes ---------------------------------------------------------- */

/* The stripes of the blocks in [off, end): first stripe and how many. */
static void
stripe_span (const struct r3m_backend *b, uint64_t off, uint64_t end,
             unsigned *first, unsigned *count)
{
  uint64_t fb = off / b->info.align, blocks = (end - 1) / b->info.align - fb + 1;
  *first = (unsigned) (fb % BE_ALIGN_STRIPES);
  *count = blocks < BE_ALIGN_STRIPES ? (unsigned) blocks : BE_ALIGN_STRIPES;
}

/* Is any of the stripes held or wanted by an RMW?  Waiting RMWs count, so
 * a stream of whole-block writes cannot starve them. */
static bool
blocked (const struct be_stripes *st, unsigned first, unsigned count)
{
  for (unsigned i = 0; i < count; i++) {
    unsigned s = (first + i) % BE_ALIGN_STRIPES;
    if (st->exclusive[s] || st->waiting[s])
      return true;
  }
  return false;
}

/* Take (or release) the stripes of [off, end) shared: wait while an RMW
 * holds or waits for any of them, then take all at once. */
static void
stripes_shared (struct r3m_backend *b, uint64_t off, uint64_t end, bool lock)
{
  struct be_stripes *st = b->stripes;
  if (!st || off >= end)
    return;
  unsigned first, count;
  stripe_span (b, off, end, &first, &count);
  pthread_mutex_lock (&st->lock);
  if (lock) {
    while (blocked (st, first, count))
      pthread_cond_wait (&st->changed, &st->lock);
    for (unsigned i = 0; i < count; i++)
      st->shared[(first + i) % BE_ALIGN_STRIPES]++;
  }
  else {
    for (unsigned i = 0; i < count; i++)
      st->shared[(first + i) % BE_ALIGN_STRIPES]--;
    pthread_cond_broadcast (&st->changed);
  }
  pthread_mutex_unlock (&st->lock);
}

/* Take the stripe of the block at block_off exclusively. */
static unsigned
stripe_lock (struct r3m_backend *b, uint64_t block_off)
{
  struct be_stripes *st = b->stripes;
  unsigned s = (unsigned) ((block_off / b->info.align) % BE_ALIGN_STRIPES);
  pthread_mutex_lock (&st->lock);
  st->waiting[s]++;
  while (st->exclusive[s] || st->shared[s])
    pthread_cond_wait (&st->changed, &st->lock);
  st->waiting[s]--;
  st->exclusive[s] = true;
  pthread_mutex_unlock (&st->lock);
  return s;
}

static void
stripe_unlock (struct r3m_backend *b, unsigned s)
{
  struct be_stripes *st = b->stripes;
  pthread_mutex_lock (&st->lock);
  st->exclusive[s] = false;
  pthread_cond_broadcast (&st->changed);
  pthread_mutex_unlock (&st->lock);
}

/* ---- pieces ----------------------------------------------------------- */

/* Run an aligned request, reads and writes cut to max_io. */
static int
pieces (struct r3m_backend *b, enum r3m_io_op op, char *buf, uint64_t len,
        uint64_t off, unsigned flags)
{
  uint64_t step = is_payload (op) && b->info.max_io ? b->info.max_io : len;
  while (len > 0) {
    uint64_t n = len < step ? len : step;
    struct r3m_io io = { .op = op, .flags = flags, .buf = buf,
                         .len = (size_t) n, .off = off };
    int r = be_run_sync (b, &io);
    if (r < 0)
      return r;
    if (buf)
      buf += n;
    off += n;
    len -= n;
  }
  return 0;
}

/* The block that holds byte off: [*bs, *be). */
static void
block_of (const struct r3m_backend *b, uint64_t off, uint64_t *bs,
          uint64_t *be)
{
  *bs = off - off % b->info.align;
  *be = *bs + b->info.align;
  if (*be > b->info.size)
    *be = b->info.size;
}

/* Read the part [off, off+n) of the block at bs into dst. */
static int
read_partial (struct r3m_backend *b, char *dst, uint64_t n, uint64_t off)
{
  uint64_t bs, be;
  block_of (b, off, &bs, &be);
  char *bounce = malloc ((size_t) (be - bs));
  if (!bounce)
    return -ENOMEM;
  int r = pieces (b, R3M_IO_READ, bounce, be - bs, bs, 0);
  if (r == 0)
    memcpy (dst, bounce + (off - bs), (size_t) n);
  free (bounce);
  return r;
}

/* Write src (zeros when NULL) over [off, off+n) inside one block. */
static int
rmw_partial (struct r3m_backend *b, const char *src, uint64_t n, uint64_t off,
             unsigned flags)
{
  uint64_t bs, be;
  block_of (b, off, &bs, &be);
  char *bounce = malloc ((size_t) (be - bs));
  if (!bounce)
    return -ENOMEM;
  unsigned stripe = stripe_lock (b, bs);
  int r = pieces (b, R3M_IO_READ, bounce, be - bs, bs, 0);
  if (r == 0) {
    if (src)
      memcpy (bounce + (off - bs), src, (size_t) n);
    else
      memset (bounce + (off - bs), 0, (size_t) n);
    r = pieces (b, R3M_IO_WRITE, bounce, be - bs, bs, flags & R3M_IO_FUA);
  }
  stripe_unlock (b, stripe);
  free (bounce);
  return r;
}

/* ---- the adapter ------------------------------------------------------ */

/* Middle part of [off, end): from the first block boundary at or after off
 * to the last one at or before end (or end itself when it is the size). */
static void
middle_of (const struct r3m_backend *b, uint64_t off, uint64_t end,
           uint64_t *m0, uint64_t *m1)
{
  uint64_t a = b->info.align;
  *m0 = off % a ? off - off % a + a : off;
  *m1 = aligned_end (b, end) ? end : end - end % a;
  if (*m0 > end)
    *m0 = end;
  if (*m1 < *m0)
    *m1 = *m0;
}

static int
adapt (struct r3m_backend *b, struct r3m_io *io)
{
  uint64_t off = io->off, end = io->off + io->len, m0, m1;
  middle_of (b, off, end, &m0, &m1);
  char *p = io->buf;
  bool writes = io->op != R3M_IO_READ;
  unsigned wflags = io->flags & R3M_IO_FUA;
  int r = 0;

  if (io->op == R3M_IO_TRIM) {
    stripes_shared (b, m0, m1, true);
    r = pieces (b, R3M_IO_TRIM, NULL, m1 - m0, m0, 0);
    stripes_shared (b, m0, m1, false);
    return r;
  }

  /* Head: [off, m0), all inside one block (empty when off is aligned).
   * When the whole request sits inside one block, m0 == m1 == end clipped,
   * and the head covers it all. */
  uint64_t head_end = m0 < end ? m0 : end;
  if (off < head_end) {
    uint64_t n = head_end - off;
    r = writes ? rmw_partial (b, p, n, off, wflags) : read_partial (b, p, n, off);
    if (r < 0)
      return r;
    if (p)
      p += n;
    off = head_end;
  }
  if (off < m1) {
    if (writes)
      stripes_shared (b, off, m1, true);
    r = pieces (b, io->op, p, m1 - off, off, io->flags);
    if (writes)
      stripes_shared (b, off, m1, false);
    if (r < 0)
      return r;
    if (p)
      p += m1 - off;
    off = m1;
  }
  if (off < end)
    r = writes ? rmw_partial (b, p, end - off, off, wflags)
               : read_partial (b, p, end - off, off);
  return r;
}

int
be_run (struct r3m_backend *b, struct r3m_io *io)
{
  if (io->op == R3M_IO_FLUSH)
    return be_run_sync (b, io);
  if (b->info.align <= 1 && !be_needs_adapting (b, io))
    return be_run_sync (b, io);
  return adapt (b, io);
}
