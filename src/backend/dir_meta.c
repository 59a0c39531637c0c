/* The metadata file of a chunk directory, three lines of text:
 *
 *   r3map-dir 1
 *   size 1073741824
 *   chunk 65536
 *
 * Text so that a person can read it with cat; the version line lets a
 * later layout refuse old readers instead of confusing them. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "backend/dir.h"
#include "backend/fdio.h"
#include "util/error.h"

#define META_TMP BE_DIR_META ".tmp"
#define META_MAX 4096

static int
read_all (int fd, char *buf, size_t cap, size_t *len)
{
  *len = 0;
  while (*len < cap) {
    ssize_t n = read (fd, buf + *len, cap - *len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -errno;
    if (n == 0)
      break;
    *len += (size_t) n;
  }
  return 0;
}

int
be_dir_meta_read (int dirfd, const char *uri, uint64_t *size,
                  uint64_t *chunk, struct r3m_error *err)
{
  int fd = openat (dirfd, BE_DIR_META, O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT)
    return -ENOENT;
  if (fd < 0)
    return util_errno (err, errno, "%s: opening %s", uri, BE_DIR_META);
  char buf[META_MAX + 1];
  size_t len;
  int r = read_all (fd, buf, META_MAX, &len);
  close (fd);
  if (r < 0)
    return util_errno (err, -r, "%s: reading %s", uri, BE_DIR_META);
  buf[len] = '\0';
  int used = -1;
  if (len < META_MAX && strlen (buf) == len
      && sscanf (buf, "r3map-dir 1\nsize %" SCNu64 "\nchunk %" SCNu64 "\n%n",
                 size, chunk, &used) == 2
      && used == (int) len)
    return 0;
  return util_err (err, EINVAL, "%s: %s in the directory is not a metadata "
                   "file this version understands", uri, BE_DIR_META);
}

int
be_dir_meta_write (int dirfd, const char *uri, uint64_t size, uint64_t chunk,
                   struct r3m_error *err)
{
  char buf[128];
  int len = snprintf (buf, sizeof buf, "r3map-dir 1\nsize %" PRIu64
                      "\nchunk %" PRIu64 "\n", size, chunk);
  int fd = openat (dirfd, META_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                   0666);
  if (fd < 0)
    return util_errno (err, errno, "%s: creating %s", uri, META_TMP);
  int r = be_fd_pwrite (fd, buf, (size_t) len, 0, false);
  if (r == 0)
    r = fsync (fd) < 0 ? -errno : 0;
  close (fd);
  if (r == 0)
    r = renameat (dirfd, META_TMP, dirfd, BE_DIR_META) < 0 ? -errno : 0;
  if (r == 0)
    r = fsync (dirfd) < 0 ? -errno : 0;
  if (r < 0) {
    unlinkat (dirfd, META_TMP, 0);
    return util_errno (err, -r, "%s: writing %s", uri, BE_DIR_META);
  }
  return 0;
}
