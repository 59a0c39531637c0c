/* I/O on the region or backend behind a file, and what errno a program
 * sees when it fails.
 *
 * The kernel has already clamped reads to the file size (it knows the size
 * from getattr), so ranges here are inside the file except for writes past
 * the end, which ops.c refuses before they get here. */
#include <errno.h>

#include "frontend/fuse/fusefe.h"


uint64_t
fusefe_size (const struct fusefe_file *f)
{
  return f->region ? r3m_region_size (f->region)
                   : r3m_backend_size (f->backend);
}

int
fusefe_read (struct fusefe_file *f, void *buf, size_t len, uint64_t off)
{
  if (f->region)
    return r3m_region_read (f->region, buf, len, off);
  return r3m_backend_pread (f->backend, buf, len, off);
}

int
fusefe_write (struct fusefe_file *f, const void *buf, size_t len,
              uint64_t off)
{
  int r;
  if (f->region)
    r = r3m_region_write (f->region, buf, len, off, 0);
  else
    r = r3m_backend_pwrite (f->backend, buf, len, off, 0);
  /* Count after the write completed: a flush that reads write_gen later
   * covers it. */
  if (r == 0)
    atomic_fetch_add (&f->write_gen, 1);
  return r;
}

int
fusefe_zero (struct fusefe_file *f, size_t len, uint64_t off, bool may_trim)
{
  unsigned flags = may_trim ? R3M_IO_MAY_TRIM : 0;
  int r;
  if (f->region)
    r = r3m_region_zero (f->region, len, off, flags);
  else
    r = r3m_backend_zero (f->backend, len, off, flags);
  if (r == 0)
    atomic_fetch_add (&f->write_gen, 1);
  return r;
}

int
fusefe_flush (struct r3m_fuse *fs, struct fusefe_file *f)
{
  /* Every write counted in `gen` completed before this point, so a
   * successful flush makes all of them durable. */
  uint_fast64_t gen = atomic_load (&f->write_gen);
  if (gen == atomic_load (&f->flushed_gen))
    return 0;
  int r = f->region ? r3m_region_flush (f->region)
                    : r3m_backend_flush (f->backend);
  if (r < 0)
    return r;
  atomic_fetch_add (&fs->flushes, 1);
  /* Racing flushes: keep the larger generation. */
  uint_fast64_t seen = atomic_load (&f->flushed_gen);
  while (seen < gen
         && !atomic_compare_exchange_weak (&f->flushed_gen, &seen, gen))
    ;
  return 0;
}

int
fusefe_reply_errno (int r)
{
  int e = r < 0 ? -r : r;
  switch (e) {
  /* Errors that mean the same to a program doing file I/O. */
  case EIO: case ENOSPC: case EROFS: case EPERM: case EINVAL: case ENOMEM:
  case EFBIG: case EDQUOT: case EACCES: case EOPNOTSUPP: case EINTR:
    return e;
  /* Everything else (a dead connection, a timeout, a protocol error, an
   * unexpected code from a backend) is an I/O error to the program.  Above
   * all never ENOTCONN: to a FUSE user that means the mount itself died. */
  default:
    return EIO;
  }
}
