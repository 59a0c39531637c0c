/* dir:PATH?size=SIZE&chunk=SIZE[&max-open=N] -- one file per chunk.
 *
 * Layout: chunk i lives in PATH/<i * chunk in decimal> (the original's
 * names), holding the chunk's bytes from file offset 0; the metadata file
 * (dir_meta.c) records size and chunk.  A chunk file may be shorter than
 * the chunk, or missing: what is not there reads as zeros, and reading
 * never creates a file (the original created and truncated one on every
 * first read).  The first write to a chunk creates its file.
 *
 * Any byte range is accepted and split at chunk boundaries.  Descriptors
 * come from a bounded LRU cache with reference counts (dir_cache.c), so
 * I/O on different chunks runs in parallel and a descriptor is never closed
 * under a thread using it (the original had a use-after-close race and
 * FIFO order).
 *
 * Zero/trim of a whole chunk removes its file (zero only when the caller
 * allows deallocation, R3M_IO_MAY_TRIM); of part of a chunk, punches a hole
 * or zeroes in place.  Extents: a missing chunk is a hole that reads as
 * zeros, a present one is data.
 *
 * Durability: flush is syncfs on the directory's file system, which covers
 * data of chunk files the cache already closed and the directory entries of
 * new files in one call, where per-file fdatasync would have to remember
 * every file written since the last flush. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <linux/falloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/backends.h"
#include "backend/dir.h"
#include "backend/dir_cache.h"
#include "backend/extent.h"
#include "backend/fdio.h"
#include "util/error.h"

#define DEFAULT_MAX_OPEN 128
#define MAX_CHUNK ((uint64_t) 1 << 30)

struct dir {
  int dirfd;
  bool ro;
  uint64_t size;
  uint64_t chunk;
  unsigned shift;                /* log2 (chunk) */
  struct be_fdcache *cache;
  atomic_bool dirty;             /* changed since the last flush */
  atomic_bool new_files;         /* files created since the last dir sync */
};

static void
chunk_name (const struct dir *d, uint64_t idx, char name[24])
{
  snprintf (name, 24, "%" PRIu64, idx << d->shift);
}

/* Bytes of chunk idx (the last one is short when size is not a multiple
 * of chunk). */
static uint64_t
chunk_len (const struct dir *d, uint64_t idx)
{
  uint64_t start = idx << d->shift;
  return d->size - start < d->chunk ? d->size - start : d->chunk;
}

/* ---- cache callbacks -------------------------------------------------- */

static int
open_chunk (void *ctx, uint64_t idx, bool create)
{
  struct dir *d = ctx;
  char name[24];
  chunk_name (d, idx, name);
  int flags = (d->ro ? O_RDONLY : O_RDWR) | O_CLOEXEC;
  int fd = openat (d->dirfd, name, flags);
  if (fd >= 0)
    return fd;
  if (errno != ENOENT || !create)
    return -errno;
  /* The cache serialises opens of one key, so nobody races this create. */
  fd = openat (d->dirfd, name, flags | O_CREAT, 0666);
  if (fd < 0)
    return -errno;
  atomic_store (&d->new_files, true);
  return fd;
}

static void
close_chunk (void *ctx, int fd)
{
  close (fd);
}

static int
unlink_chunk (void *ctx, uint64_t idx)
{
  struct dir *d = ctx;
  char name[24];
  chunk_name (d, idx, name);
  if (unlinkat (d->dirfd, name, 0) < 0)
    return errno == ENOENT ? 0 : -errno;
  atomic_store (&d->dirty, true);
  return 0;
}

static const struct be_fdcache_ops cache_ops = {
  .open = open_chunk,
  .close = close_chunk,
};

/* ---- I/O -------------------------------------------------------------- */

/* The part of one chunk that a request covers. */
struct piece {
  uint64_t idx;                  /* chunk index */
  uint64_t inner;                /* offset inside the chunk */
  uint64_t n;                    /* bytes */
};

/* Cut the next piece off [*pos, end); false when nothing is left. */
static bool
next_piece (const struct dir *d, uint64_t *pos, uint64_t end,
            struct piece *pc)
{
  if (*pos >= end)
    return false;
  pc->idx = *pos >> d->shift;
  pc->inner = *pos & (d->chunk - 1);
  pc->n = d->chunk - pc->inner;
  if (pc->n > end - *pos)
    pc->n = end - *pos;
  *pos += pc->n;
  return true;
}

static int
dir_pread (void *self, void *buf, size_t len, uint64_t off)
{
  struct dir *d = self;
  char *p = buf;
  struct piece pc;
  for (uint64_t pos = off; next_piece (d, &pos, off + len, &pc); p += pc.n) {
    int fd;
    struct be_fdent *e;
    int r = be_fdcache_get (d->cache, pc.idx, false, &fd, &e);
    if (r == -ENOENT) {
      memset (p, 0, (size_t) pc.n);
      continue;
    }
    if (r < 0)
      return r;
    r = be_fd_pread (fd, p, (size_t) pc.n, pc.inner);
    be_fdcache_put (d->cache, e);
    if (r < 0)
      return r;
  }
  return 0;
}

/* Make new directory entries durable (FUA on a write that created files). */
static int
sync_dir (struct dir *d)
{
  if (!atomic_exchange (&d->new_files, false))
    return 0;
  if (fsync (d->dirfd) < 0) {
    int e = errno;
    atomic_store (&d->new_files, true);
    return -e;
  }
  return 0;
}

static int
dir_pwrite (void *self, const void *buf, size_t len, uint64_t off,
            unsigned flags)
{
  struct dir *d = self;
  const char *p = buf;
  bool fua = flags & R3M_IO_FUA;
  struct piece pc;
  for (uint64_t pos = off; next_piece (d, &pos, off + len, &pc); p += pc.n) {
    int fd;
    struct be_fdent *e;
    int r = be_fdcache_get (d->cache, pc.idx, true, &fd, &e);
    if (r < 0)
      return r;
    r = be_fd_pwrite (fd, p, (size_t) pc.n, pc.inner, fua);
    be_fdcache_put (d->cache, e);
    atomic_store (&d->dirty, true);
    if (r < 0)
      return r;
  }
  return fua ? sync_dir (d) : 0;
}

static int
dir_flush (void *self)
{
  struct dir *d = self;
  bool dirty = atomic_exchange (&d->dirty, false);
  bool created = atomic_exchange (&d->new_files, false);
  if (!dirty && !created)
    return 0;
  if (syncfs (d->dirfd) < 0) {
    int e = errno;
    atomic_store (&d->dirty, true);
    atomic_store (&d->new_files, created);
    return -e;
  }
  return 0;
}

/* Zero (or with punch, deallocate) [inner, inner+n) of an existing chunk
 * file; bytes past its end already read as zeros and are left alone. */
static int
zero_in_chunk (struct dir *d, uint64_t idx, uint64_t inner, uint64_t n,
               bool punch, bool advisory)
{
  int fd;
  struct be_fdent *e;
  int r = be_fdcache_get (d->cache, idx, false, &fd, &e);
  if (r == -ENOENT)
    return 0;
  if (r < 0)
    return r;
  struct stat st;
  r = fstat (fd, &st) < 0 ? -errno : 0;
  uint64_t flen = r == 0 ? (uint64_t) st.st_size : 0;
  uint64_t end = inner + n < flen ? inner + n : flen;
  if (r == 0 && inner < end) {
    int mode = punch ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
                     : FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
    if (fallocate (fd, mode, (off_t) inner, (off_t) (end - inner)) < 0)
      r = -errno;
    if (advisory)
      r = 0;
    else if (r == -EOPNOTSUPP || r == -ENOSYS || r == -EINVAL)
      r = be_fd_write_zeros (fd, (size_t) (end - inner), inner);
    if (r == 0)
      atomic_store (&d->dirty, true);
  }
  be_fdcache_put (d->cache, e);
  return r;
}

static int
dir_zero (void *self, size_t len, uint64_t off, unsigned flags)
{
  struct dir *d = self;
  bool may_trim = flags & R3M_IO_MAY_TRIM;
  struct piece pc;
  for (uint64_t pos = off; next_piece (d, &pos, off + len, &pc);) {
    int r;
    if (may_trim && pc.inner == 0 && pc.n == chunk_len (d, pc.idx))
      r = be_fdcache_remove (d->cache, pc.idx, unlink_chunk);
    else
      r = zero_in_chunk (d, pc.idx, pc.inner, pc.n, may_trim, false);
    if (r < 0)
      return r;
  }
  return flags & R3M_IO_FUA ? dir_flush (d) : 0;
}

static int
dir_trim (void *self, size_t len, uint64_t off)
{
  struct dir *d = self;
  struct piece pc;
  for (uint64_t pos = off; next_piece (d, &pos, off + len, &pc);) {
    int r;
    if (pc.inner == 0 && pc.n == chunk_len (d, pc.idx))
      r = be_fdcache_remove (d->cache, pc.idx, unlink_chunk);
    else
      r = zero_in_chunk (d, pc.idx, pc.inner, pc.n, true, true);
    if (r < 0)
      return r;
  }
  return 0;
}

/* ---- extents ---------------------------------------------------------- */

/* Ranges of up to this many chunks are answered with one fstatat per
 * chunk; larger ones with one pass over the directory. */
#define STAT_LIMIT 1024

struct present {
  uint64_t *idx;
  size_t n, cap;
};

static int
present_add (struct present *p, uint64_t idx)
{
  if (p->n == p->cap) {
    size_t cap = p->cap ? 2 * p->cap : 64;
    uint64_t *v = realloc (p->idx, cap * sizeof *v);
    if (!v)
      return -ENOMEM;
    p->idx = v;
    p->cap = cap;
  }
  p->idx[p->n++] = idx;
  return 0;
}

static int
cmp_u64 (const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
  return x < y ? -1 : x > y;
}

/* The chunk index a directory entry names, if it is a chunk file. */
static bool
parse_chunk_name (const struct dir *d, const char *name, uint64_t *idx)
{
  uint64_t v = 0;
  if (!*name || (name[0] == '0' && name[1]))
    return false;
  for (const char *p = name; *p; p++) {
    unsigned c = (unsigned) (*p - '0');
    if (c > 9 || v > (UINT64_MAX - c) / 10)
      return false;
    v = v * 10 + c;
  }
  if (v & (d->chunk - 1) || v >= d->size)
    return false;
  *idx = v >> d->shift;
  return true;
}

static int
scan_dir (struct dir *d, uint64_t first, uint64_t last, struct present *p)
{
  int fd = openat (d->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  DIR *dp = fdopendir (fd);
  if (!dp) {
    int e = errno;
    close (fd);
    return -e;
  }
  int r = 0;
  struct dirent *de;
  uint64_t idx;
  errno = 0;
  while (r == 0 && (de = readdir (dp)))
    if (parse_chunk_name (d, de->d_name, &idx) && idx >= first && idx <= last)
      r = present_add (p, idx);
  if (r == 0 && errno != 0)
    r = -errno;
  closedir (dp);
  qsort (p->idx, p->n, sizeof *p->idx, cmp_u64);
  return r;
}

static int
stat_chunks (struct dir *d, uint64_t first, uint64_t last, struct present *p)
{
  for (uint64_t idx = first; idx <= last; idx++) {
    char name[24];
    struct stat st;
    chunk_name (d, idx, name);
    if (fstatat (d->dirfd, name, &st, 0) == 0) {
      int r = present_add (p, idx);
      if (r < 0)
        return r;
    }
    else if (errno != ENOENT)
      return -errno;
  }
  return 0;
}

static int
dir_extents (void *self, uint64_t off, uint64_t len, struct r3m_extent *ext,
             size_t max, size_t *n)
{
  struct dir *d = self;
  const uint32_t hole = R3M_EXTENT_HOLE | R3M_EXTENT_ZERO;
  uint64_t end = off + len, first = off >> d->shift;
  uint64_t last = (end - 1) >> d->shift;
  struct present p = { 0 };
  int r = last - first < STAT_LIMIT ? stat_chunks (d, first, last, &p)
                                    : scan_dir (d, first, last, &p);
  *n = 0;
  /* Walk the range: a present chunk is data, a gap up to the next present
   * chunk is one hole. */
  size_t k = 0;
  for (uint64_t pos = off; r == 0 && pos < end;) {
    uint64_t idx = pos >> d->shift, stop;
    uint32_t flags;
    if (k < p.n && p.idx[k] == idx) {
      stop = (idx + 1) << d->shift;
      flags = 0;
      k++;
    }
    else {
      stop = k < p.n ? p.idx[k] << d->shift : end;
      flags = hole;
    }
    if (stop > end || stop == 0)
      stop = end;
    if (!be_extent_push (ext, max, n, stop - pos, flags))
      break;
    pos = stop;
  }
  free (p.idx);
  return r;
}

/* ---- opening ---------------------------------------------------------- */

static void
dir_close (void *self)
{
  struct dir *d = self;
  be_fdcache_free (d->cache);
  if (d->dirfd >= 0)
    close (d->dirfd);
  free (d);
}

static const struct r3m_backend_ops dir_ops = {
  .name = "dir",
  .pread = dir_pread,
  .pwrite = dir_pwrite,
  .flush = dir_flush,
  .zero = dir_zero,
  .trim = dir_trim,
  .extents = dir_extents,
  .close = dir_close,
};

/* The URI's parameters; have_* say which were given. */
struct dir_args {
  const char *path;
  uint64_t size, chunk, max_open;
  bool have_size, have_chunk;
};

static int
parse_args (const struct util_uri *u, const char *uri, struct dir_args *a,
            struct r3m_error *err)
{
  static const char *const allowed[] = { "size", "chunk", "max-open", NULL };
  int r = be_uri_local_path (u, uri,
                             "dir:PATH?size=SIZE&chunk=SIZE[&max-open=N]",
                             &a->path, err);
  if (r == 0)
    r = util_uri_check_params (u, allowed, uri, err);
  const char *v;
  a->max_open = DEFAULT_MAX_OPEN;
  if (r == 0 && (v = util_uri_param (u, "size"))) {
    a->have_size = true;
    r = be_arg_size (uri, "size", v, &a->size, err);
  }
  if (r == 0 && (v = util_uri_param (u, "chunk"))) {
    a->have_chunk = true;
    r = be_arg_size (uri, "chunk", v, &a->chunk, err);
  }
  if (r == 0 && (v = util_uri_param (u, "max-open")))
    r = be_arg_uint (uri, "max-open", v, 1, 1 << 20, &a->max_open, err);
  return r;
}

static int
check_geometry (const char *uri, uint64_t size, uint64_t chunk,
                struct r3m_error *err)
{
  if (chunk == 0 || (chunk & (chunk - 1)) != 0 || chunk > MAX_CHUNK)
    return util_err (err, EINVAL, "%s: chunk %" PRIu64 " is not a power of "
                     "two from 1 to 1G", uri, chunk);
  if (size > INT64_MAX)
    return util_err (err, EINVAL, "%s: size %" PRIu64 " is too large", uri,
                     size);
  return 0;
}

/* Reconcile the URI with the directory's metadata file (writing one for a
 * new directory); on success a->size and a->chunk are the ones to use. */
static int
load_meta (int dirfd, const char *uri, bool ro, struct dir_args *a,
           struct r3m_error *err)
{
  uint64_t size, chunk;
  int r = be_dir_meta_read (dirfd, uri, &size, &chunk, err);
  if (r == 0) {
    r = check_geometry (uri, size, chunk, err);
    if (r == 0 && ((a->have_size && a->size != size)
                   || (a->have_chunk && a->chunk != chunk)))
      r = util_err (err, EINVAL, "%s: the directory holds size=%" PRIu64
                    " chunk=%" PRIu64 ", which the URI contradicts", uri,
                    size, chunk);
    a->size = size;
    a->chunk = chunk;
    return r;
  }
  if (r != -ENOENT)
    return r;
  if (!a->have_size || !a->have_chunk)
    return util_err (err, EINVAL, "%s: %s missing (a directory without %s "
                     "needs size= and chunk=)", uri,
                     !a->have_size ? "size=" : "chunk=", BE_DIR_META);
  r = check_geometry (uri, a->size, a->chunk, err);
  if (r == 0 && !ro)
    r = be_dir_meta_write (dirfd, uri, a->size, a->chunk, err);
  return r;
}

/* Open (creating it unless read-only) the directory. */
static int
open_dir (const char *uri, const char *path, bool ro, struct r3m_error *err)
{
  if (!ro && mkdir (path, 0777) == 0) {
    /* Make the new directory's own entry durable. */
    char *copy = strdup (path);
    int pfd = copy ? open (dirname (copy), O_RDONLY | O_DIRECTORY
                           | O_CLOEXEC) : -1;
    if (pfd >= 0) {
      fsync (pfd);
      close (pfd);
    }
    free (copy);
  }
  else if (!ro && errno != EEXIST)
    return util_errno (err, errno, "%s: creating the directory", uri);
  int fd = open (path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return util_errno (err, errno, "%s: opening the directory", uri);
  return fd;
}

int
be_dir_open (const struct util_uri *u, const char *uri, unsigned flags,
             struct r3m_backend **out, struct r3m_error *err)
{
  /* Messages name the URI by its label; the description gets it whole. */
  char lb[UTIL_URI_LABEL_MAX];
  const char *full = uri;
  uri = util_uri_label (full, lb);
  struct dir_args a = { 0 };
  int r = parse_args (u, full, &a, err);
  if (r == 0 && a.have_chunk)
    r = check_geometry (uri, 0, a.chunk, err);
  if (r < 0)
    return r;
  bool ro = flags & R3M_OPEN_READ_ONLY;
  struct dir *d = calloc (1, sizeof *d);
  if (!d)
    return util_errno (err, ENOMEM, "%s", uri);
  d->ro = ro;
  d->dirfd = open_dir (uri, a.path, ro, err);
  r = d->dirfd < 0 ? d->dirfd : load_meta (d->dirfd, uri, ro, &a, err);
  if (r == 0) {
    d->size = a.size;
    d->chunk = a.chunk;
    while (((uint64_t) 1 << d->shift) < d->chunk)
      d->shift++;
    r = be_fdcache_new ((size_t) a.max_open, &cache_ops, d, &d->cache);
    if (r < 0)
      util_errno (err, -r, "%s", uri);
  }
  if (r < 0) {
    dir_close (d);
    return r;
  }
  struct r3m_backend_info info = {
    .size = d->size,
    .align = 1,
    .preferred_io = (uint32_t) d->chunk,
    .flags = ro ? R3M_BACKEND_READ_ONLY : 0,
    .async_threads = 8,          /* as file: overlap blocking file I/O */
  };
  r = r3m_backend_new (&dir_ops, d, &info, full, out, err);
  if (r < 0)
    dir_close (d);
  return r;
}
