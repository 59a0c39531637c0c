/* INIT flags that Debian 12's libfuse (3.14) cannot negotiate.
 *
 * FUSE_DIRECT_IO_ALLOW_MMAP (kernel 6.6) lets a file opened with direct
 * I/O be mapped MAP_SHARED: reads and writes bypass the page cache, mmap
 * uses it, and the kernel keeps the two coherent.  Without it `--direct-io`
 * costs every mmap user ENODEV.  libfuse 3.14 knows neither the flag nor
 * the second flags word (FUSE_INIT_EXT) it lives in, so the session's I/O
 * goes through these hooks (fuse_session_custom_io): `read` notes whether
 * the kernel's INIT offers the flag, `writev` adds it to our INIT reply.
 * Every other message passes through untouched.
 *
 * The layouts are the kernel's ABI (linux/fuse.h): fuse_in_header then
 * fuse_init_in for the request, fuse_out_header then fuse_init_out for the
 * reply; libfuse sends the reply as those two pieces. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "frontend/fuse/fusefe.h"

#ifndef FUSE_DIRECT_IO_ALLOW_MMAP
#define FUSE_DIRECT_IO_ALLOW_MMAP (1ULL << 36)
#endif
#define ALLOW_MMAP_BIT2 ((uint32_t) (FUSE_DIRECT_IO_ALLOW_MMAP >> 32))

/* The shortest INIT request and reply that have flags2 (protocol 7.36). */
#define IN_MIN  (offsetof (struct fuse_init_in, flags2) + sizeof (uint32_t))
#define OUT_MIN (offsetof (struct fuse_init_out, flags2) + sizeof (uint32_t))

static ssize_t
hook_read (int fd, void *buf, size_t len, void *userdata)
{
  struct r3m_fuse *fs = userdata;
  ssize_t n = read (fd, buf, len);
  struct fuse_in_header h;
  if (n < (ssize_t) (sizeof h + IN_MIN))
    return n;
  memcpy (&h, buf, sizeof h);
  if (h.opcode != FUSE_INIT)
    return n;
  struct fuse_init_in in = { 0 };
  memcpy (&in, (const char *) buf + sizeof h, IN_MIN);
  atomic_store (&fs->init_unique, h.unique);
  atomic_store (&fs->init_allow_mmap, (in.flags & FUSE_INIT_EXT)
                && (in.flags2 & ALLOW_MMAP_BIT2));
  return n;
}

static ssize_t
hook_writev (int fd, struct iovec *iov, int count, void *userdata)
{
  struct r3m_fuse *fs = userdata;
  struct fuse_out_header h;
  if (count == 2 && iov[0].iov_len == sizeof h
      && iov[1].iov_len >= OUT_MIN
      && iov[1].iov_len <= sizeof (struct fuse_init_out)) {
    memcpy (&h, iov[0].iov_base, sizeof h);
    /* init_allow_mmap is true only between the INIT request and its
     * reply: nothing else is ever touched. */
    if (h.error == 0 && atomic_load (&fs->init_allow_mmap)
        && h.unique == atomic_load (&fs->init_unique)) {
      atomic_store (&fs->init_allow_mmap, false);
      /* Our own copy: the reply is libfuse's. */
      struct fuse_init_out out = { 0 };
      memcpy (&out, iov[1].iov_base, iov[1].iov_len);
      out.flags |= FUSE_INIT_EXT;
      out.flags2 |= ALLOW_MMAP_BIT2;
      struct iovec v[2] = { iov[0], { &out, iov[1].iov_len } };
      return writev (fd, v, 2);
    }
  }
  return writev (fd, iov, count);
}

static ssize_t
hook_splice (int fdin, off_t *offin, int fdout, off_t *offout, size_t len,
             unsigned int flags, void *userdata)
{
  (void) userdata;
  return splice (fdin, offin, fdout, offout, len, flags);
}

int
fusefe_init_ext (struct r3m_fuse *fs, int fd)
{
  static const struct fuse_custom_io io = {
    .read = hook_read,
    .writev = hook_writev,
    .splice_receive = hook_splice,
    .splice_send = hook_splice,
  };
  return fuse_session_custom_io (fs->se, &io, fd) == 0 ? 0 : -EIO;
}
