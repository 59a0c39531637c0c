/* The low-level FUSE operations.
 *
 * The file system is one fixed root directory holding the export files.
 * Nothing can be created, renamed or removed, and a file's size never
 * changes, so every answer about names and attributes is constant: the
 * kernel may cache them for as long as it likes (long timeouts), and data
 * stays valid in its page cache across opens (keep_cache) because every
 * change to a file passes through this mount.  The one exception, a region
 * whose remote changed behind our back (migration), is announced with
 * r3m_fuse_invalidate.  For the same reason the kernel's automatic
 * invalidation on attribute changes is turned off.
 *
 * Why the low-level API: there is no path to resolve and no inode table to
 * keep (inode numbers are array indices), READ replies go out from the
 * worker's buffer without the high-level library's extra copy and locking,
 * and WRITE data can be taken straight from the request buffer.
 *
 * Threads: any worker may run any operation at any time, several at once
 * on one file.  Operations share only atomics and read-only state; the
 * region or backend below does its own locking.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "frontend/fuse/fusefe.h"

/* Attributes and names never change, so let the kernel keep them a day. */
#define FOREVER 86400.0

static struct r3m_fuse *
fs_of (fuse_req_t req)
{
  return fuse_req_userdata (req);
}

static struct fusefe_file *
file_of (struct r3m_fuse *fs, fuse_ino_t ino)
{
  if (ino < FUSEFE_FIRST_INO || ino - FUSEFE_FIRST_INO >= fs->nfiles)
    return NULL;
  return &fs->files[ino - FUSEFE_FIRST_INO];
}

static void
reply_error (struct r3m_fuse *fs, fuse_req_t req, int r)
{
  int e = fusefe_reply_errno (r);
  atomic_fetch_add (&fs->errors, 1);
  atomic_store (&fs->last_error, e);
  fuse_reply_err (req, e);
}

static int
fill_attr (struct r3m_fuse *fs, fuse_ino_t ino, struct stat *st)
{
  memset (st, 0, sizeof *st);
  st->st_ino = ino;
  st->st_uid = fs->uid;
  st->st_gid = fs->gid;
  st->st_atim = st->st_mtim = st->st_ctim = fs->mtime;
  st->st_blksize = 65536;
  if (ino == FUSE_ROOT_ID) {
    st->st_mode = S_IFDIR | 0755;
    st->st_nlink = 2;
    return 0;
  }
  struct fusefe_file *f = file_of (fs, ino);
  if (!f)
    return -ENOENT;
  mode_t mode = fs->opts.mode & 07777;
  if (f->read_only)
    mode &= ~(mode_t) 0222;
  st->st_mode = S_IFREG | mode;
  st->st_nlink = 1;
  st->st_size = (off_t) f->size;
  st->st_blocks = (blkcnt_t) ((f->size + 511) / 512);
  return 0;
}

/* Per-worker data buffer of opts.max_io bytes (see fusefe.h). */
static void *
worker_buffer (struct r3m_fuse *fs)
{
  void *buf = pthread_getspecific (fs->buf_key);
  if (buf)
    return buf;
  if (posix_memalign (&buf, 4096, fs->opts.max_io) != 0)
    return NULL;
  if (pthread_setspecific (fs->buf_key, buf) != 0) {
    free (buf);
    return NULL;
  }
  return buf;
}

static void
op_init (void *userdata, struct fuse_conn_info *conn)
{
  struct r3m_fuse *fs = userdata;
  const struct r3m_fuse_options *o = &fs->opts;

  conn->max_write = o->max_io;
  if (o->readahead)
    conn->max_readahead = o->readahead;
  if (o->max_background) {
    conn->max_background = o->max_background;
    conn->congestion_threshold = o->max_background * 3 / 4;
  }
  /* Data changes only through us: keep the page cache on attribute
   * refreshes.  Sizes never change: O_TRUNC goes through setattr, which
   * refuses it.  No readdirplus: the directory is tiny. */
  conn->want &= ~(unsigned) (FUSE_CAP_AUTO_INVAL_DATA | FUSE_CAP_ATOMIC_O_TRUNC
                             | FUSE_CAP_READDIRPLUS
                             | FUSE_CAP_READDIRPLUS_AUTO);
  unsigned splice = FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE;
  if (o->splice)
    conn->want |= conn->capable & splice;
  else
    conn->want &= ~(splice | FUSE_CAP_SPLICE_MOVE);
  if (o->writeback_cache && (conn->capable & FUSE_CAP_WRITEBACK_CACHE))
    conn->want |= FUSE_CAP_WRITEBACK_CACHE;
}

static void
op_lookup (fuse_req_t req, fuse_ino_t parent, const char *name)
{
  struct r3m_fuse *fs = fs_of (req);
  if (parent != FUSE_ROOT_ID) {
    fuse_reply_err (req, ENOTDIR);
    return;
  }
  for (size_t i = 0; i < fs->nfiles; i++) {
    if (strcmp (fs->files[i].name, name) != 0)
      continue;
    struct fuse_entry_param e = {
      .ino = FUSEFE_FIRST_INO + i,
      .generation = 1,
      .attr_timeout = FOREVER,
      .entry_timeout = FOREVER,
    };
    fill_attr (fs, e.ino, &e.attr);
    fuse_reply_entry (req, &e);
    return;
  }
  /* Names never appear later either: cache the miss too. */
  struct fuse_entry_param miss = { .ino = 0, .entry_timeout = FOREVER };
  fuse_reply_entry (req, &miss);
}

static void
op_getattr (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  struct stat st;
  if (fill_attr (fs_of (req), ino, &st) < 0)
    fuse_reply_err (req, ENOENT);
  else
    fuse_reply_attr (req, &st, FOREVER);
}

/* Sizes, owners and modes are fixed; times are accepted and ignored so
 * that touch(1) and tools that restore times do not fail. */
static void
op_setattr (fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
            struct fuse_file_info *fi)
{
  struct r3m_fuse *fs = fs_of (req);
  struct stat st;
  if (fill_attr (fs, ino, &st) < 0) {
    fuse_reply_err (req, ENOENT);
    return;
  }
  if ((to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))
      || ((to_set & FUSE_SET_ATTR_SIZE) && attr->st_size != st.st_size)) {
    fuse_reply_err (req, EPERM);
    return;
  }
  fuse_reply_attr (req, &st, FOREVER);
}

static void
op_opendir (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  if (ino != FUSE_ROOT_ID) {
    fuse_reply_err (req, ENOTDIR);
    return;
  }
  fi->cache_readdir = 1;
  fi->keep_cache = 1;
  fuse_reply_open (req, fi);
}

/* Directory offsets: entry k ("." = 0, ".." = 1, file i = 2 + i) carries
 * offset k + 1, the offset of the entry after it. */
static void
op_readdir (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
            struct fuse_file_info *fi)
{
  struct r3m_fuse *fs = fs_of (req);
  char *buf = malloc (size);
  if (!buf) {
    fuse_reply_err (req, ENOMEM);
    return;
  }
  size_t used = 0;
  for (size_t k = off < 0 ? 0 : (size_t) off; k < fs->nfiles + 2; k++) {
    struct stat st = { .st_ino = k < 2 ? FUSE_ROOT_ID
                                       : FUSEFE_FIRST_INO + (k - 2) };
    st.st_mode = k < 2 ? S_IFDIR : S_IFREG;
    const char *name = k == 0 ? "." : k == 1 ? ".." : fs->files[k - 2].name;
    size_t n = fuse_add_direntry (req, buf + used, size - used, name, &st,
                                  (off_t) (k + 1));
    if (n > size - used)
      break;
    used += n;
  }
  fuse_reply_buf (req, buf, used);
  free (buf);
}

static void
op_open (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  struct r3m_fuse *fs = fs_of (req);
  struct fusefe_file *f = file_of (fs, ino);
  if (!f) {
    fuse_reply_err (req, ino == FUSE_ROOT_ID ? EISDIR : ENOENT);
    return;
  }
  if (f->read_only && (fi->flags & O_ACCMODE) != O_RDONLY) {
    fuse_reply_err (req, EROFS);
    return;
  }
  fi->direct_io = fs->opts.direct_io;
  fi->keep_cache = !fs->opts.direct_io;
  fi->noflush = !fs->opts.flush_on_close;
  fuse_reply_open (req, fi);
}

struct read_reply {
  fuse_req_t req;
  bool replied;
};

static int
reply_pieces (const struct iovec *iov, int n, void *user)
{
  struct read_reply *rr = user;
  rr->replied = true;
  return fuse_reply_iov (rr->req, iov, n);
}

/* A region read answers from wherever the region has the bytes (its
 * cache's memory, usually), without a copy into our buffer first, and
 * before the chunks it fetched are marked local (see
 * r3m_region_read_deliver).  Without splice only: a spliced reply would
 * copy the pieces into a pipe anyway. */
static void
read_region (struct r3m_fuse *fs, fuse_req_t req, struct fusefe_file *f,
             void *buf, size_t size, uint64_t off)
{
  struct read_reply rr = { .req = req };
  int r = r3m_region_read_deliver (f->region, buf, size, off, reply_pieces,
                                   &rr);
  if (!rr.replied) {
    reply_error (fs, req, r);
    return;
  }
  /* A failed reply (the request was interrupted) is libfuse's to clean up;
   * the read itself worked. */
  atomic_fetch_add (&fs->reads, 1);
  atomic_fetch_add (&fs->bytes_read, size);
}

static void
op_read (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
         struct fuse_file_info *fi)
{
  struct r3m_fuse *fs = fs_of (req);
  struct fusefe_file *f = file_of (fs, ino);
  if (!f) {
    fuse_reply_err (req, EBADF);
    return;
  }
  if (off < 0 || (uint64_t) off >= f->size) {
    fuse_reply_buf (req, NULL, 0);
    return;
  }
  if (size > f->size - (uint64_t) off)
    size = (size_t) (f->size - (uint64_t) off);

  /* A short reply means end of file to the kernel, so never shorten a read
   * to fit the buffer: a request larger than max_io (the kernel should not
   * send one) gets a buffer of its own. */
  void *own = NULL;
  void *buf = size <= fs->opts.max_io ? worker_buffer (fs)
                                      : (own = malloc (size));
  if (!buf) {
    reply_error (fs, req, -ENOMEM);
    return;
  }
  if (f->region && !fs->opts.splice) {
    read_region (fs, req, f, buf, size, (uint64_t) off);
    free (own);
    return;
  }
  int r = fusefe_read (f, buf, size, (uint64_t) off);
  if (r < 0)
    reply_error (fs, req, r);
  else {
    atomic_fetch_add (&fs->reads, 1);
    atomic_fetch_add (&fs->bytes_read, size);
    struct fuse_bufvec bv = FUSE_BUFVEC_INIT (size);
    bv.buf[0].mem = buf;
    fuse_reply_data (req, &bv, FUSE_BUF_SPLICE_MOVE);
  }
  free (own);
}

/* Write data arrives in the request buffer (used in place) or, with splice,
 * in a pipe (copied into the worker's buffer). */
static void
op_write_buf (fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in,
              off_t off, struct fuse_file_info *fi)
{
  struct r3m_fuse *fs = fs_of (req);
  struct fusefe_file *f = file_of (fs, ino);
  size_t len = fuse_buf_size (in);
  if (!f) {
    fuse_reply_err (req, EBADF);
    return;
  }
  if (f->read_only) {
    reply_error (fs, req, -EROFS);
    return;
  }
  /* The file cannot grow: like a block device, a write that starts at the
   * end fails with ENOSPC and one that crosses it is cut short. */
  if (off < 0 || ((uint64_t) off >= f->size && len > 0)) {
    reply_error (fs, req, -ENOSPC);
    return;
  }
  if (len > f->size - (uint64_t) off)
    len = (size_t) (f->size - (uint64_t) off);

  const void *data;
  void *own = NULL;
  const struct fuse_buf *b = &in->buf[in->idx];
  if (in->count - in->idx == 1 && !(b->flags & FUSE_BUF_IS_FD)
      && b->size - in->off >= len)
    data = (const char *) b->mem + in->off;
  else {
    void *buf = len <= fs->opts.max_io ? worker_buffer (fs)
                                       : (own = malloc (len));
    if (!buf) {
      reply_error (fs, req, -ENOMEM);
      return;
    }
    struct fuse_bufvec dst = FUSE_BUFVEC_INIT (len);
    dst.buf[0].mem = buf;
    ssize_t n = fuse_buf_copy (&dst, in, 0);
    if (n < 0 || (size_t) n != len) {
      free (own);
      reply_error (fs, req, n < 0 ? (int) n : -EIO);
      return;
    }
    data = buf;
  }
  int r = fusefe_write (f, data, len, (uint64_t) off);
  free (own);
  if (r < 0) {
    reply_error (fs, req, r);
    return;
  }
  atomic_fetch_add (&fs->writes, 1);
  atomic_fetch_add (&fs->bytes_written, len);
  fuse_reply_write (req, len);
}

static void
reply_flush (fuse_req_t req, fuse_ino_t ino)
{
  struct r3m_fuse *fs = fs_of (req);
  struct fusefe_file *f = file_of (fs, ino);
  if (!f) {
    fuse_reply_err (req, EBADF);
    return;
  }
  int r = fusefe_flush (fs, f);
  if (r < 0)
    reply_error (fs, req, r);
  else
    fuse_reply_err (req, 0);
}

/* close(2).  The kernel has already written back its dirty pages of the
 * file before sending FLUSH. */
static void
op_flush (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  if (fs_of (req)->opts.flush_on_close)
    reply_flush (req, ino);
  else
    fuse_reply_err (req, 0);
}

/* fsync, fdatasync and msync(MS_SYNC): the kernel writes back the range's
 * dirty pages, then asks us to make everything durable. */
static void
op_fsync (fuse_req_t req, fuse_ino_t ino, int datasync,
          struct fuse_file_info *fi)
{
  reply_flush (req, ino);
}

static void
op_fallocate (fuse_req_t req, fuse_ino_t ino, int mode, off_t off,
              off_t len, struct fuse_file_info *fi)
{
  struct r3m_fuse *fs = fs_of (req);
  struct fusefe_file *f = file_of (fs, ino);
  if (!f) {
    fuse_reply_err (req, EBADF);
    return;
  }
  if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE
               | FALLOC_FL_ZERO_RANGE)) {
    fuse_reply_err (req, EOPNOTSUPP);
    return;
  }
  if (off < 0 || len <= 0) {
    fuse_reply_err (req, EINVAL);
    return;
  }
  uint64_t end = (uint64_t) off + (uint64_t) len;
  if (end > f->size) {
    /* Growing the file is impossible; with KEEP_SIZE only the part inside
     * it matters. */
    if (!(mode & FALLOC_FL_KEEP_SIZE)) {
      reply_error (fs, req, -EFBIG);
      return;
    }
    end = f->size;
  }
  int r = 0;
  if ((mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))
      && (uint64_t) off < end) {
    if (f->read_only)
      r = -EROFS;
    else
      r = fusefe_zero (f, (size_t) (end - (uint64_t) off), (uint64_t) off,
                       (mode & FALLOC_FL_PUNCH_HOLE) != 0);
  }
  /* Plain allocation: every byte of the file already exists. */
  if (r < 0)
    reply_error (fs, req, r);
  else
    fuse_reply_err (req, 0);
}

static void
op_statfs (fuse_req_t req, fuse_ino_t ino)
{
  struct r3m_fuse *fs = fs_of (req);
  struct statvfs sv = {
    .f_bsize = 4096,
    .f_frsize = 4096,
    .f_blocks = (fs->total_size + 4095) / 4096,
    .f_files = fs->nfiles + 1,
    .f_namemax = 255,
  };
  fuse_reply_statfs (req, &sv);
}

const struct fuse_lowlevel_ops fusefe_ops = {
  .init = op_init,
  .lookup = op_lookup,
  .getattr = op_getattr,
  .setattr = op_setattr,
  .opendir = op_opendir,
  .readdir = op_readdir,
  .open = op_open,
  .read = op_read,
  .write_buf = op_write_buf,
  .flush = op_flush,
  .fsync = op_fsync,
  .fallocate = op_fallocate,
  .statfs = op_statfs,
};
