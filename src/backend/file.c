/* file:PATH[?size=SIZE] -- a regular file or a block device.
 *
 * Plain buffered pread/pwrite on one descriptor shared by all threads (the
 * kernel allows concurrent positional I/O), so the generic submit adapter's
 * threads overlap requests on a slow disk.  Durability: flush is fdatasync;
 * FUA writes use RWF_DSYNC.  Zeroing prefers the cheapest primitive that
 * keeps the semantics: punching a hole only when the caller allows it
 * (R3M_IO_MAY_TRIM), else FALLOC_FL_ZERO_RANGE, else BLKZEROOUT on block
 * devices, else writing zeros.  What the file system cannot do is
 * remembered, so the fallback costs one failed call, not one per request.
 *
 * Size: a regular file's size (size= creates or extends it, never shrinks);
 * a block device's BLKGETSIZE64 (size= must match). */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/backends.h"
#include "backend/extent.h"
#include "backend/fdio.h"
#include "util/error.h"

struct file {
  int fd;
  bool is_bdev;
  pthread_mutex_t write_lock;    /* regular files: see file_pwrite */
  uint64_t size;
  uint32_t sector;               /* block devices: logical block size */
  atomic_bool no_punch;          /* fallocate PUNCH_HOLE unsupported here */
  atomic_bool no_zero_range;     /* fallocate ZERO_RANGE unsupported here */
  atomic_bool no_zeroout;        /* BLKZEROOUT unsupported here */
};

static int
file_pread (void *self, void *buf, size_t len, uint64_t off)
{
  struct file *f = self;
  return be_fd_pread (f->fd, buf, len, off);
}

static int
file_pwrite (void *self, const void *buf, size_t len, uint64_t off,
             unsigned flags)
{
  struct file *f = self;
  bool fua = flags & R3M_IO_FUA;
  /* A buffered write holds the inode's lock exclusively in the kernel, so
   * writers of one regular file take turns there anyway; waiting for the
   * turn there spins (rwsem optimistic spinning) and cost r3map copy into
   * tmpfs about a quarter of its CPU with two store workers.  Waiting here
   * sleeps.  FUA writes stay outside: their sync runs after the kernel
   * lets go of the inode and may overlap other writes. */
  if (f->is_bdev || fua)
    return be_fd_pwrite (f->fd, buf, len, off, fua);
  pthread_mutex_lock (&f->write_lock);
  int r = be_fd_pwrite (f->fd, buf, len, off, false);
  pthread_mutex_unlock (&f->write_lock);
  return r;
}

static int
file_flush (void *self)
{
  struct file *f = self;
  return be_fd_datasync (f->fd);
}

static bool
unsupported (int e)
{
  return e == EOPNOTSUPP || e == ENOSYS || e == ENOTTY || e == ENODEV;
}

/* fallocate with one mode, remembering in *no when the file system (or
 * device) does not support it.  0, -EOPNOTSUPP or -errno. */
static int
try_fallocate (struct file *f, atomic_bool *no, int mode, uint64_t len,
               uint64_t off)
{
  if (atomic_load_explicit (no, memory_order_relaxed))
    return -EOPNOTSUPP;
  while (fallocate (f->fd, mode, (off_t) off, (off_t) len) < 0) {
    if (errno == EINTR)
      continue;
    if (unsupported (errno)) {
      atomic_store_explicit (no, true, memory_order_relaxed);
      return -EOPNOTSUPP;
    }
    return -errno;
  }
  return 0;
}

static int
try_zeroout (struct file *f, uint64_t len, uint64_t off)
{
  if (atomic_load_explicit (&f->no_zeroout, memory_order_relaxed))
    return -EOPNOTSUPP;
  uint64_t range[2] = { off, len };
  if (ioctl (f->fd, BLKZEROOUT, range) < 0) {
    if (unsupported (errno)) {
      atomic_store_explicit (&f->no_zeroout, true, memory_order_relaxed);
      return -EOPNOTSUPP;
    }
    return -errno;
  }
  return 0;
}

/* Zero [off, off+len) with the cheapest primitive allowed; the range is
 * sector-aligned on block devices. */
static int
zero_range (struct file *f, uint64_t len, uint64_t off, bool may_trim)
{
  int r = -EOPNOTSUPP;
  if (may_trim)
    r = try_fallocate (f, &f->no_punch,
                       FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, len, off);
  if (r == -EOPNOTSUPP)
    r = try_fallocate (f, &f->no_zero_range,
                       FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, len, off);
  if (r == -EOPNOTSUPP && f->is_bdev)
    r = try_zeroout (f, len, off);
  if (r == -EOPNOTSUPP)
    r = be_fd_write_zeros (f->fd, (size_t) len, off);
  return r;
}

static int
file_zero (void *self, size_t len, uint64_t off, unsigned flags)
{
  struct file *f = self;
  uint64_t end = off + len, a = off, b = end;
  int r = 0;
  if (f->is_bdev) {
    /* Devices zero whole sectors only: write zeros over partial edges. */
    a = (off + f->sector - 1) / f->sector * f->sector;
    b = end / f->sector * f->sector;
    if (a >= b)
      a = b = end;
    if (off < a)
      r = be_fd_write_zeros (f->fd, (size_t) (a - off), off);
    if (r == 0 && b < end)
      r = be_fd_write_zeros (f->fd, (size_t) (end - b), b);
  }
  if (r == 0 && a < b)
    r = zero_range (f, b - a, a, flags & R3M_IO_MAY_TRIM);
  if (r == 0 && (flags & R3M_IO_FUA))
    r = be_fd_datasync (f->fd);
  return r;
}

/* Trim is advisory: deallocate what can be, ignore what cannot. */
static int
file_trim (void *self, size_t len, uint64_t off)
{
  struct file *f = self;
  int r;
  if (f->is_bdev) {
    uint64_t a = (off + f->sector - 1) / f->sector * f->sector;
    uint64_t b = (off + len) / f->sector * f->sector;
    if (a >= b)
      return 0;
    uint64_t range[2] = { a, b - a };
    r = ioctl (f->fd, BLKDISCARD, range) < 0 ? -errno : 0;
  }
  else
    r = try_fallocate (f, &f->no_punch,
                       FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, len, off);
  return r < 0 && (unsupported (-r) || r == -EINVAL) ? 0 : r;
}

/* Allocation from SEEK_DATA/SEEK_HOLE: holes read as zeros. */
static int
file_extents (void *self, uint64_t off, uint64_t len, struct r3m_extent *ext,
              size_t max, size_t *n)
{
  struct file *f = self;
  const uint32_t hole = R3M_EXTENT_HOLE | R3M_EXTENT_ZERO;
  uint64_t pos = off, end = off + len;
  *n = 0;
  /* Each step finds the next hole or data run; a run that can neither
   * merge with the last extent nor fit in ext ends the answer early. */
  while (pos < end) {
    off_t d = f->is_bdev ? (off_t) pos : lseek (f->fd, (off_t) pos, SEEK_DATA);
    if (d < 0 && errno == ENXIO)
      d = (off_t) end;           /* only a hole from pos to the end */
    else if (d < 0) {
      if (!unsupported (errno) && errno != EINVAL)
        return -errno;
      d = (off_t) pos;           /* no hole support: all data */
    }
    if ((uint64_t) d > pos) {
      uint64_t e = (uint64_t) d < end ? (uint64_t) d : end;
      if (!be_extent_push (ext, max, n, e - pos, hole))
        break;
      pos = e;
      continue;
    }
    off_t h = f->is_bdev ? (off_t) end : lseek (f->fd, (off_t) pos, SEEK_HOLE);
    if (h < 0)
      h = (off_t) end;
    uint64_t e = (uint64_t) h < end ? (uint64_t) h : end;
    if (e <= pos)
      e = end;                   /* the file changed under us: say data */
    if (!be_extent_push (ext, max, n, e - pos, 0))
      break;
    pos = e;
  }
  return 0;
}

static void
file_close (void *self)
{
  struct file *f = self;
  close (f->fd);
  pthread_mutex_destroy (&f->write_lock);
  free (f);
}

static const struct r3m_backend_ops file_ops = {
  .name = "file",
  .pread = file_pread,
  .pwrite = file_pwrite,
  .flush = file_flush,
  .zero = file_zero,
  .trim = file_trim,
  .extents = file_extents,
  .close = file_close,
};

/* ---- opening ---------------------------------------------------------- */

/* Make a new directory entry durable: fsync the parent directory. */
static int
sync_parent (const char *path)
{
  char *copy = strdup (path);
  if (!copy)
    return -ENOMEM;
  int dfd = open (dirname (copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  free (copy);
  if (dfd < 0)
    return -errno;
  int r = fsync (dfd) < 0 ? -errno : 0;
  close (dfd);
  return r;
}

/* Open path, creating it only when size= asks for it.  *created says so.
 * Here and below, uri is the label for messages. */
static int
open_path (const char *uri, const char *path, bool ro, bool have_size,
           bool *created, struct r3m_error *err)
{
  int oflags = (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC;
  *created = false;
  for (;;) {
    int fd = open (path, oflags);
    if (fd >= 0)
      return fd;
    if (errno != ENOENT || !have_size || ro)
      break;
    fd = open (path, oflags | O_CREAT | O_EXCL, 0666);
    if (fd >= 0) {
      *created = true;
      return fd;
    }
    if (errno != EEXIST)
      break;                     /* else someone created it: open it */
  }
  int e = errno;
  if (e == ENOENT && !have_size)
    return util_err (err, e, "%s: no such file (add ?size=SIZE to create "
                     "it)", uri);
  if (e == ENOENT && ro)
    return util_err (err, e, "%s: no such file (a read-only open does not "
                     "create it)", uri);
  return util_errno (err, e, "%s: open", uri);
}

/* Size of a regular file, grown to want when size= was given. */
static int
regular_size (const char *uri, int fd, const struct stat *st, bool ro,
              bool have_size, uint64_t want, uint64_t *size,
              struct r3m_error *err)
{
  uint64_t have = (uint64_t) st->st_size;
  *size = have;
  if (!have_size || have == want)
    return 0;
  if (have > want)
    return util_err (err, EINVAL, "%s: the file holds %llu bytes, more than "
                     "size=%llu; refusing to shrink it", uri,
                     (unsigned long long) have, (unsigned long long) want);
  if (ro)
    return util_err (err, EINVAL, "%s: the file holds %llu bytes, less than "
                     "size=%llu, and a read-only open cannot extend it", uri,
                     (unsigned long long) have, (unsigned long long) want);
  if (want > INT64_MAX)
    return util_err (err, EFBIG, "%s: size=%llu is too large for a file",
                     uri, (unsigned long long) want);
  if (ftruncate (fd, (off_t) want) < 0)
    return util_errno (err, errno, "%s: extending to %llu bytes", uri,
                       (unsigned long long) want);
  *size = want;
  return 0;
}

static int
bdev_size (const char *uri, struct file *f, bool have_size, uint64_t want,
           struct r3m_error *err)
{
  if (ioctl (f->fd, BLKGETSIZE64, &f->size) < 0)
    return util_errno (err, errno, "%s: BLKGETSIZE64", uri);
  int sector = 512;
  if (ioctl (f->fd, BLKSSZGET, &sector) < 0 || sector <= 0)
    sector = 512;
  f->sector = (uint32_t) sector;
  if (have_size && want != f->size)
    return util_err (err, EINVAL, "%s: the block device holds %llu bytes, "
                     "not size=%llu", uri, (unsigned long long) f->size,
                     (unsigned long long) want);
  return 0;
}

static int
setup (const char *uri, const char *path, struct file *f, bool ro,
       bool have_size, uint64_t want, uint32_t *blksize,
       struct r3m_error *err)
{
  bool created;
  f->fd = open_path (uri, path, ro, have_size, &created, err);
  if (f->fd < 0)
    return f->fd;
  struct stat st;
  if (fstat (f->fd, &st) < 0)
    return util_errno (err, errno, "%s: fstat", uri);
  *blksize = st.st_blksize > 0 ? (uint32_t) st.st_blksize : 4096;
  int r;
  if (S_ISREG (st.st_mode))
    r = regular_size (uri, f->fd, &st, ro, have_size, want, &f->size, err);
  else if (S_ISBLK (st.st_mode)) {
    f->is_bdev = true;
    r = bdev_size (uri, f, have_size, want, err);
  }
  else
    r = util_err (err, EINVAL, "%s: not a regular file or a block device",
                  uri);
  if (r == 0 && created && (r = sync_parent (path)) < 0)
    r = util_errno (err, -r, "%s: fsync of the parent directory", uri);
  return r;
}

int
be_file_open (const struct util_uri *u, const char *uri, unsigned flags,
              struct r3m_backend **out, struct r3m_error *err)
{
  static const char *const allowed[] = { "size", NULL };
  const char *path;
  int r = be_uri_local_path (u, uri, "file:PATH[?size=SIZE]", &path, err);
  if (r == 0)
    r = util_uri_check_params (u, allowed, uri, err);
  const char *size_arg = r == 0 ? util_uri_param (u, "size") : NULL;
  uint64_t want = 0;
  if (r == 0 && size_arg)
    r = be_arg_size (uri, "size", size_arg, &want, err);
  if (r < 0)
    return r;

  char lb[UTIL_URI_LABEL_MAX];
  util_uri_label (uri, lb);
  struct file *f = calloc (1, sizeof *f);
  if (!f)
    return util_errno (err, ENOMEM, "%s", lb);
  pthread_mutex_init (&f->write_lock, NULL);
  bool ro = flags & R3M_OPEN_READ_ONLY;
  uint32_t blksize = 4096;
  r = setup (lb, path, f, ro, size_arg != NULL, want, &blksize, err);
  if (r < 0) {
    if (f->fd >= 0)
      close (f->fd);
    pthread_mutex_destroy (&f->write_lock);
    free (f);
    return r;
  }
  struct r3m_backend_info info = {
    .size = f->size,
    .align = 1,
    .preferred_io = blksize,
    .flags = (ro ? R3M_BACKEND_READ_ONLY : 0)
             | (f->is_bdev ? 0 : R3M_BACKEND_SERIAL_WRITES),
    /* Threads that block in the kernel while others submit: enough to keep
     * a disk queue busy for the puller, cheap while idle. */
    .async_threads = 8,
  };
  r = r3m_backend_new (&file_ops, f, &info, uri, out, err);
  if (r < 0)
    file_close (f);
  return r;
}
