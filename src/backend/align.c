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
 * undone.  Limitation: aligned requests that a backend receives through its
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
  b->stripes = calloc (BE_ALIGN_STRIPES, sizeof *b->stripes);
  if (!b->stripes)
    return -ENOMEM;
  for (unsigned i = 0; i < BE_ALIGN_STRIPES; i++)
    pthread_rwlock_init (&b->stripes[i], NULL);
  return 0;
}

void
be_align_fini (struct r3m_backend *b)
{
  if (!b->stripes)
    return;
  for (unsigned i = 0; i < BE_ALIGN_STRIPES; i++)
    pthread_rwlock_destroy (&b->stripes[i]);
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

/* Lock (shared) or unlock the stripes of the blocks in [off, end), in
 * ascending stripe order. */
static void
stripes_shared (struct r3m_backend *b, uint64_t off, uint64_t end, bool lock)
{
  if (!b->stripes || off >= end)
    return;
  uint64_t first = off / b->info.align;
  uint64_t count = (end - 1) / b->info.align - first + 1;
  unsigned base = (unsigned) (first % BE_ALIGN_STRIPES);
  for (unsigned s = 0; s < BE_ALIGN_STRIPES; s++) {
    unsigned dist = (s + BE_ALIGN_STRIPES - base) % BE_ALIGN_STRIPES;
    if (dist >= count)
      continue;
    if (lock)
      pthread_rwlock_rdlock (&b->stripes[s]);
    else
      pthread_rwlock_unlock (&b->stripes[s]);
  }
}

static pthread_rwlock_t *
stripe_of (struct r3m_backend *b, uint64_t block_off)
{
  return &b->stripes[(block_off / b->info.align) % BE_ALIGN_STRIPES];
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
  pthread_rwlock_t *lock = stripe_of (b, bs);
  pthread_rwlock_wrlock (lock);
  int r = pieces (b, R3M_IO_READ, bounce, be - bs, bs, 0);
  if (r == 0) {
    if (src)
      memcpy (bounce + (off - bs), src, (size_t) n);
    else
      memset (bounce + (off - bs), 0, (size_t) n);
    r = pieces (b, R3M_IO_WRITE, bounce, be - bs, bs, flags & R3M_IO_FUA);
  }
  pthread_rwlock_unlock (lock);
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
