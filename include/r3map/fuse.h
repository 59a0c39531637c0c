/* r3map: the FUSE frontend.
 *
 * Presents regions (or plain backends) as regular files in a FUSE mount:
 * one file per export, directly under the mount point, with the export's
 * size.  Programs use the file as they would any other: pread/pwrite, and
 * mmap MAP_SHARED for reading and writing.  The kernel's page cache sits in
 * front of the file (unless direct_io is chosen), so data once read is
 * served by the kernel without asking us again.
 *
 * Durability: fsync/fdatasync/msync(MS_SYNC) and (by default) close(2) push
 * every dirty chunk of the region to its remote and flush the remote before
 * they return.  r3m_fuse_unmount makes the kernel write back its dirty pages
 * first, so data written through a mapping and never synced still reaches
 * the region.
 *
 * Threads: r3m_fuse_mount starts `threads` workers that serve the kernel's
 * requests until the file system is unmounted, by r3m_fuse_unmount or from
 * outside (`fusermount3 -u DIR`, `umount DIR`).  A thread that serves the
 * mount must never access the mount itself; every other thread may,
 * including threads of the process that mounted it.
 *
 * All calls are thread-safe except r3m_fuse_close, which must be the last.
 * None is async-signal-safe: to unmount on a signal, wait for it in a
 * thread (sigwait) and call r3m_fuse_unmount there.
 */
#ifndef R3MAP_FUSE_H
#define R3MAP_FUSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <r3map/backend.h>
#include <r3map/error.h>
#include <r3map/region.h>

#ifdef __cplusplus
extern "C" {
#endif

struct r3m_fuse;

/* One file in the mount.  Exactly one of region and backend is set; it is
 * borrowed and must stay open until r3m_fuse_close has returned. */
struct r3m_fuse_file {
  const char *name;            /* file name: no '/', not "." or "..",
                                  at most 255 bytes; copied */
  struct r3m_region *region;   /* I/O goes through the region engine */
  struct r3m_backend *backend; /* or straight to a backend */
  bool read_only;              /* refuse opening for writing (EROFS) */
};

struct r3m_fuse_options {
  unsigned threads;          /* request workers; default 8, 1..256 */
  uint32_t max_io;           /* largest READ/WRITE request the kernel sends,
                                bytes; 4 KiB..1 MiB; default 1 MiB */
  uint32_t readahead;        /* kernel read-ahead of the mount, bytes
                                (root only); 0 = kernel default;
                                default 1 MiB */
  unsigned max_background;   /* kernel read-ahead/write-back requests in
                                flight; 0 = kernel default; default 64 */
  bool direct_io;            /* read and write bypass the page cache;
                                MAP_SHARED still works where the kernel
                                offers FUSE_DIRECT_IO_ALLOW_MMAP (6.6+),
                                else fails with ENODEV; default false */
  bool writeback_cache;      /* let the kernel buffer write(2) data and send
                                it later in large requests; a write past the
                                end then fails at write-back instead of at
                                write(2); default false */
  bool splice;               /* move request and reply data through pipes
                                (FUSE_CAP_SPLICE_*); default false, see
                                docs/fuse.md for why */
  bool flush_on_close;       /* close(2) pushes and flushes like fsync;
                                default true */
  bool allow_other;          /* other users may use the mount (needs root
                                or user_allow_other); default false */
  mode_t mode;               /* permission bits of writable files; read-only
                                ones lose the write bits; default 0644 */
};

/* Fill in the defaults. */
void r3m_fuse_options_init (struct r3m_fuse_options *opts);

/* Mount a FUSE file system at `mountpoint` (an existing, empty-or-not
 * directory that is not already a mount point) with `n` files, and start
 * serving it.  Returns once the mount answers requests.  Fails with a clear
 * message when /dev/fuse is missing (-ENODEV), the mount point does not
 * exist (-ENOENT), is not a directory (-ENOTDIR), is already a mount point
 * or a dead FUSE mount (-EBUSY), or the names are invalid or repeated
 * (-EINVAL).  opts may be NULL for the defaults. */
int r3m_fuse_mount (const char *mountpoint, const struct r3m_fuse_file *files,
                    size_t n, const struct r3m_fuse_options *opts,
                    struct r3m_fuse **out, struct r3m_error *err);

/* "MOUNTPOINT/NAME" of file i; valid until r3m_fuse_close.  NULL if i is
 * out of range. */
const char *r3m_fuse_path (const struct r3m_fuse *fs, size_t i);

/* Wait until the file system is unmounted: by r3m_fuse_unmount (also a
 * lazy one, while programs may still use the file), from outside, or by
 * the kernel ending the connection.  timeout_ms < 0 waits for ever.
 * 0 or -ETIMEDOUT. */
int r3m_fuse_wait (struct r3m_fuse *fs, int timeout_ms);

/* Unmount: have the kernel write back its dirty pages of every file, flush
 * every file's region or backend, then unmount.  When a file is still open
 * or mapped, the unmount fails with -EBUSY unless `lazy`, which detaches the
 * mount at once; programs still using the file then get errors (ENOTCONN)
 * on later I/O.  0 (also when it was already unmounted) or -errno. */
int r3m_fuse_unmount (struct r3m_fuse *fs, bool lazy, struct r3m_error *err);

/* Drop the kernel's cached pages of file i in [off, off+len) (len 0: to the
 * end), for when its region's data changed behind the mount's back, e.g.
 * chunks invalidated by a migration round.  0 or -errno. */
int r3m_fuse_invalidate (struct r3m_fuse *fs, size_t i, uint64_t off,
                         uint64_t len);

struct r3m_fuse_stats {
  uint64_t reads, writes;          /* READ and WRITE requests served */
  uint64_t bytes_read, bytes_written;
  uint64_t flushes;                /* flush/fsync requests that reached the
                                      region or backend */
  uint64_t errors;                 /* requests answered with an error */
  int last_error;                  /* positive errno of the latest one */
};

void r3m_fuse_stats (const struct r3m_fuse *fs, struct r3m_fuse_stats *st);

/* Unmount lazily if still mounted, stop the workers, flush every file's
 * region or backend, and free the mount.  The regions and backends stay
 * open (the caller closes them).  Returns the first flush error, if any;
 * the mount is freed either way.  NULL is a no-op. */
int r3m_fuse_close (struct r3m_fuse *fs, struct r3m_error *err);

#ifdef __cplusplus
}
#endif
#endif /* R3MAP_FUSE_H */
