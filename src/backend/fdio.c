#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "backend/fdio.h"

int
be_fd_pread (int fd, void *buf, size_t len, uint64_t off)
{
  char *p = buf;
  while (len > 0) {
    ssize_t n = pread (fd, p, len, (off_t) off);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    if (n == 0) {
      /* End of file: the file is shorter than the store (a sparse chunk, or
       * truncated behind our back).  Missing data reads as zeros. */
      memset (p, 0, len);
      return 0;
    }
    p += n;
    off += (uint64_t) n;
    len -= (size_t) n;
  }
  return 0;
}

/* Write all of [p, p+len) at off with pwritev2 flags rwf.  0: written;
 * 1: the kernel or file system does not take rwf (nothing was written);
 * -errno. */
static int
write_all (int fd, const char *p, size_t len, uint64_t off, int rwf)
{
  while (len > 0) {
    struct iovec iov = { .iov_base = (void *) (uintptr_t) p, .iov_len = len };
    ssize_t n = pwritev2 (fd, &iov, 1, (off_t) off, rwf);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (rwf != 0 && (errno == EOPNOTSUPP || errno == ENOSYS))
        return 1;
      return -errno;
    }
    if (n == 0)
      return -EIO;
    p += n;
    off += (uint64_t) n;
    len -= (size_t) n;
  }
  return 0;
}

int
be_fd_pwrite (int fd, const void *buf, size_t len, uint64_t off, bool fua)
{
  /* FUA as RWF_DSYNC syncs only this write; where that flag is refused,
   * a plain write plus fdatasync gives the same guarantee. */
  if (fua) {
    int r = write_all (fd, buf, len, off, RWF_DSYNC);
    if (r != 1)
      return r;
  }
  int r = write_all (fd, buf, len, off, 0);
  if (r < 0)
    return r;
  return fua ? be_fd_datasync (fd) : 0;
}

int
be_fd_write_zeros (int fd, size_t len, uint64_t off)
{
  static const char zeros[65536];
  while (len > 0) {
    size_t n = len < sizeof zeros ? len : sizeof zeros;
    int r = be_fd_pwrite (fd, zeros, n, off, false);
    if (r < 0)
      return r;
    off += n;
    len -= n;
  }
  return 0;
}

int
be_fd_datasync (int fd)
{
  while (fdatasync (fd) < 0)
    if (errno != EINTR)
      return -errno;
  return 0;
}
