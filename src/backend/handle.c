/* Backend handles: the checks every backend shares (ranges, read-only) and
 * the dispatch to an implementation's ops.  Implementations never see a
 * request outside [0, size) nor a write to a read-only store. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backend/handle.h"
#include "util/error.h"

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
  if (info->align == 0 || (info->align & (info->align - 1)) != 0)
    return util_err (err, EINVAL,
                     "r3m_backend_new: %s: align %u is not a power of two",
                     ops->name ? ops->name : "backend", info->align);

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
  be_async_init (&b->async);
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
be_check (const struct r3m_backend *b, enum r3m_io_op op, size_t len,
          uint64_t off)
{
  bool writes = op == R3M_IO_WRITE || op == R3M_IO_ZERO || op == R3M_IO_TRIM;
  if (writes && (b->info.flags & R3M_BACKEND_READ_ONLY))
    return -EPERM;
  if (op == R3M_IO_FLUSH)
    return 0;
  /* Written so that off + len cannot overflow. */
  if (off > b->info.size || len > b->info.size - off)
    return op == R3M_IO_WRITE || op == R3M_IO_ZERO ? -ENOSPC : -EINVAL;
  return 0;
}

static int
zero_by_writing (struct r3m_backend *b, size_t len, uint64_t off,
                 unsigned flags)
{
  static const char zeros[65536];
  while (len > 0) {
    size_t n = len < sizeof zeros ? len : sizeof zeros;
    int r = b->ops->pwrite (b->self, zeros, n, off, flags);
    if (r < 0)
      return r;
    len -= n;
    off += n;
  }
  return 0;
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
  return be_run_sync (b, &io);
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
  int r = be_check (b, io->op, io->len, io->off);
  if (r < 0)
    return r;
  if (b->ops->submit)
    return b->ops->submit (b->self, io);
  if (b->info.async_threads == 0) {
    io->done (io, be_run_sync (b, io));
    return 0;
  }
  return be_async_submit (b, io);
}

void *
r3m_backend_direct (struct r3m_backend *b)
{
  return b->ops->direct ? b->ops->direct (b->self) : NULL;
}
