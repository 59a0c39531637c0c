/* Backend handles: the checks every backend shares (ranges, read-only) and
 * the dispatch to an implementation's ops.  Implementations never see a
 * request outside [0, size), a write to a read-only store, a request that
 * breaks their declared alignment, nor a read or write above max_io. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backend/handle.h"
#include "util/error.h"

/* Largest alignment a backend may declare: the adapter allocates bounce
 * buffers of this size. */
#define MAX_ALIGN (1u << 30)

static int
check_info (const struct r3m_backend_ops *ops,
            const struct r3m_backend_info *info, struct r3m_error *err)
{
  const char *name = ops->name ? ops->name : "backend";
  if (info->align == 0 || (info->align & (info->align - 1)) != 0
      || info->align > MAX_ALIGN)
    return util_err (err, EINVAL,
                     "r3m_backend_new: %s: align %u is not a power of two "
                     "up to 1 GiB", name, info->align);
  if (info->max_io != 0 && info->max_io % info->align != 0)
    return util_err (err, EINVAL,
                     "r3m_backend_new: %s: max_io %u is not a multiple of "
                     "align %u", name, info->max_io, info->align);
  return 0;
}

int
r3m_backend_new (const struct r3m_backend_ops *ops, void *self,
                 const struct r3m_backend_info *info,
                 const char *description, struct r3m_backend **out,
                 struct r3m_error *err)
{
  if (!ops || !ops->pread || !ops->pwrite || !info || !out)
    return util_err (err, EINVAL,
                     "r3m_backend_new: ops with pread and pwrite, info and "
                     "out are required");
  int r = check_info (ops, info, err);
  if (r < 0)
    return r;

  struct r3m_backend *b = calloc (1, sizeof *b);
  if (!b)
    return util_errno (err, ENOMEM, "r3m_backend_new");
  b->description = strdup (description ? description
                           : ops->name ? ops->name : "backend");
  if (!b->description) {
    free (b);
    return util_errno (err, ENOMEM, "r3m_backend_new");
  }
  b->ops = ops;
  b->self = self;
  b->info = *info;
  r = be_align_init (b);
  if (r < 0) {
    free (b->description);
    free (b);
    return util_errno (err, -r, "r3m_backend_new");
  }
  /* A native submit still needs a few pool threads for the requests the
   * handle must adapt (misaligned or oversized ones). */
  unsigned threads = info->async_threads;
  if (ops->submit && threads == 0)
    threads = 4;
  be_async_init (&b->async, threads);
  *out = b;
  return 0;
}

void
r3m_backend_close (struct r3m_backend *b)
{
  if (!b)
    return;
  be_async_stop (&b->async);
  if (b->ops->close)
    b->ops->close (b->self);
  be_align_fini (b);
  free (b->description);
  free (b);
}

uint64_t
r3m_backend_size (const struct r3m_backend *b)
{
  return b->info.size;
}

const struct r3m_backend_info *
r3m_backend_get_info (const struct r3m_backend *b)
{
  return &b->info;
}

const char *
r3m_backend_describe (const struct r3m_backend *b)
{
  return b->description;
}

int
r3m_backend_why (const struct r3m_backend *b, char *buf, size_t len)
{
  if (len == 0 || !b->ops->why)
    return 0;
  buf[0] = '\0';
  return b->ops->why (b->self, buf, len) > 0 && buf[0] ? 1 : 0;
}

int
be_check (const struct r3m_backend *b, enum r3m_io_op op, size_t len,
          uint64_t off)
{
  switch (op) {
  case R3M_IO_READ:
  case R3M_IO_FLUSH:
    break;
  case R3M_IO_WRITE:
  case R3M_IO_ZERO:
  case R3M_IO_TRIM:
    if (b->info.flags & R3M_BACKEND_READ_ONLY)
      return -EPERM;
    break;
  default:
    return -EINVAL;
  }
  if (op == R3M_IO_FLUSH)
    return 0;
  /* Written so that off + len cannot overflow. */
  if (off > b->info.size || len > b->info.size - off)
    return op == R3M_IO_WRITE || op == R3M_IO_ZERO ? -ENOSPC : -EINVAL;
  return 0;
}

/* The default zero: write zeros in pieces that keep the backend's
 * alignment and max_io (the range itself is already aligned). */
static int
zero_by_writing (struct r3m_backend *b, size_t len, uint64_t off,
                 unsigned flags)
{
  static const char zeros[65536];
  size_t step = sizeof zeros;
  if (b->info.align > step)
    step = b->info.align;
  if (b->info.max_io != 0 && b->info.max_io < step)
    step = b->info.max_io;
  if (step > len)
    step = len;
  const char *buf = zeros;
  char *owned = NULL;
  if (step > sizeof zeros) {
    owned = calloc (1, step);
    if (!owned)
      return -ENOMEM;
    buf = owned;
  }
  int r = 0;
  while (len > 0 && r == 0) {
    size_t n = len < step ? len : step;
    r = b->ops->pwrite (b->self, buf, n, off, flags);
    len -= n;
    off += n;
  }
  free (owned);
  return r;
}

int
be_run_sync (struct r3m_backend *b, struct r3m_io *io)
{
  const struct r3m_backend_ops *o = b->ops;
  switch (io->op) {
  case R3M_IO_READ:
    return o->pread (b->self, io->buf, io->len, io->off);
  case R3M_IO_WRITE:
    return o->pwrite (b->self, io->buf, io->len, io->off,
                      io->flags & R3M_IO_FUA);
  case R3M_IO_FLUSH:
    return o->flush ? o->flush (b->self) : 0;
  case R3M_IO_ZERO:
    if (o->zero)
      return o->zero (b->self, io->len, io->off,
                      io->flags & (R3M_IO_FUA | R3M_IO_MAY_TRIM));
    return zero_by_writing (b, io->len, io->off, io->flags & R3M_IO_FUA);
  case R3M_IO_TRIM:
    return o->trim ? o->trim (b->self, io->len, io->off) : 0;
  }
  return -EINVAL;
}

static int
run (struct r3m_backend *b, enum r3m_io_op op, void *buf, size_t len,
     uint64_t off, unsigned flags)
{
  int r = be_check (b, op, len, off);
  if (r < 0)
    return r;
  if (len == 0 && op != R3M_IO_FLUSH)
    return 0;
  struct r3m_io io = { .op = op, .flags = flags, .buf = buf, .len = len,
                       .off = off };
  return be_run (b, &io);
}

int
r3m_backend_pread (struct r3m_backend *b, void *buf, size_t len, uint64_t off)
{
  return run (b, R3M_IO_READ, buf, len, off, 0);
}

int
r3m_backend_pwrite (struct r3m_backend *b, const void *buf, size_t len,
                    uint64_t off, unsigned flags)
{
  /* The cast is safe: the write path never stores through buf. */
  return run (b, R3M_IO_WRITE, (void *) (uintptr_t) buf, len, off, flags);
}

int
r3m_backend_flush (struct r3m_backend *b)
{
  return run (b, R3M_IO_FLUSH, NULL, 0, 0, 0);
}

int
r3m_backend_zero (struct r3m_backend *b, size_t len, uint64_t off,
                  unsigned flags)
{
  return run (b, R3M_IO_ZERO, NULL, len, off, flags);
}

int
r3m_backend_trim (struct r3m_backend *b, size_t len, uint64_t off)
{
  return run (b, R3M_IO_TRIM, NULL, len, off, 0);
}

int
r3m_backend_extents (struct r3m_backend *b, uint64_t off, uint64_t len,
                     struct r3m_extent *ext, size_t max, size_t *n)
{
  *n = 0;
  if (off > b->info.size || len > b->info.size - off)
    return -EINVAL;
  if (len == 0 || max == 0)
    return 0;
  if (b->ops->extents)
    return b->ops->extents (b->self, off, len, ext, max, n);
  ext[0].len = len;
  ext[0].flags = 0;
  *n = 1;
  return 0;
}

int
r3m_backend_submit (struct r3m_backend *b, struct r3m_io *io)
{
  if (!io || !io->done)
    return -EINVAL;
  int r = be_check (b, io->op, io->len, io->off);
  if (r < 0)
    return r;
  if (io->len == 0 && io->op != R3M_IO_FLUSH) {
    io->done (io, 0);
    return 0;
  }
  if (b->ops->submit && !be_needs_adapting (b, io))
    return b->ops->submit (b->self, io);
  if (!b->ops->submit && b->async.want == 0) {
    io->done (io, be_run (b, io));
    return 0;
  }
  return be_async_submit (b, io);
}

void *
r3m_backend_direct (struct r3m_backend *b)
{
  return b->ops->direct ? b->ops->direct (b->self) : NULL;
}
