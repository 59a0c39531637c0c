/* Internal view of a FUSE mount (include/r3map/fuse.h).
 *
 * Files of the frontend, one job each:
 *   mount.c   r3m_fuse_mount/unmount/wait/close: checks, session, teardown
 *   loop.c    the pool of worker threads that read requests from /dev/fuse
 *   ops.c     the low-level FUSE operations (lookup, getattr, read, ...)
 *   target.c  I/O on a file's region or backend, and errno mapping
 */
#ifndef R3M_FRONTEND_FUSE_FUSEFE_H
#define R3M_FRONTEND_FUSE_FUSEFE_H

#define FUSE_USE_VERSION 312

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <fuse_lowlevel.h>

#include <r3map/fuse.h>

/* Inode numbers: the root directory is FUSE_ROOT_ID (1); file i is
 * FUSEFE_FIRST_INO + i.  Inodes never change, so lookups need no table and
 * forget needs no bookkeeping. */
#define FUSEFE_FIRST_INO 2

struct fusefe_file {
  char *name;
  char *path;                    /* mountpoint/name */
  uint64_t size;
  struct r3m_region *region;     /* exactly one of these two */
  struct r3m_backend *backend;
  bool read_only;
  /* Writes served, and how many of them the last successful flush covered:
   * a flush with nothing new to push skips the remote round trip. */
  atomic_uint_fast64_t write_gen;
  atomic_uint_fast64_t flushed_gen;
};

struct fusefe_worker {
  struct r3m_fuse *fs;
  pthread_t thread;
  struct fuse_buf buf;           /* request buffer, owned by the worker */
  bool started;
};

struct r3m_fuse {
  struct r3m_fuse_options opts;
  char *mountpoint;
  struct fusefe_file *files;
  size_t nfiles;
  uint64_t total_size;
  struct timespec mtime;         /* times reported for every inode */
  uid_t uid;
  gid_t gid;

  struct fuse_session *se;
  /* Per-worker data buffer of opts.max_io bytes for replies and spliced
   * writes; created by each worker, freed by the key's destructor. */
  pthread_key_t buf_key;
  bool buf_key_made;
  struct fusefe_worker *workers;
  unsigned nworkers;

  /* lock guards the fields below it; `changed` is broadcast when
   * `mounted`, `ended` or `running` change.  Never held while calling into libfuse, a region
   * or a backend. */
  pthread_mutex_t lock;
  pthread_cond_t changed;
  bool mounted;                  /* our mount exists (not yet unmounted) */
  bool ended;                    /* the kernel closed the connection */
  unsigned running;              /* workers still in their loop */
  atomic_bool stopping;          /* workers must leave their loop */

  /* INIT flags libfuse 3.14 cannot negotiate (init_ext.c). */
  _Atomic uint64_t init_unique;  /* the kernel's INIT request */
  atomic_bool init_allow_mmap;   /* it offered FUSE_DIRECT_IO_ALLOW_MMAP
                                    and our reply has not gone yet */

  /* statistics */
  atomic_uint_fast64_t reads, writes, bytes_read, bytes_written;
  atomic_uint_fast64_t flushes, errors;
  atomic_int last_error;
};

/* ops.c */
extern const struct fuse_lowlevel_ops fusefe_ops;

/* init_ext.c: route the session's I/O on fd through hooks that negotiate
 * FUSE_DIRECT_IO_ALLOW_MMAP for --direct-io; 0 or -EIO. */
int fusefe_init_ext (struct r3m_fuse *fs, int fd);

/* loop.c: start opts.threads workers; 0 or -errno (none left running). */
int fusefe_loop_start (struct r3m_fuse *fs);
/* Make every worker leave (cancelling those blocked in read) and join. */
void fusefe_loop_stop (struct r3m_fuse *fs);

/* target.c: the size and I/O of the file's region or backend; I/O returns
 * 0 or -errno. */
uint64_t fusefe_size (const struct fusefe_file *f);
int fusefe_read (struct fusefe_file *f, void *buf, size_t len, uint64_t off);
int fusefe_write (struct fusefe_file *f, const void *buf, size_t len,
                  uint64_t off);
int fusefe_zero (struct fusefe_file *f, size_t len, uint64_t off,
                 bool may_trim);
/* Push and flush unless nothing was written since the last flush. */
int fusefe_flush (struct r3m_fuse *fs, struct fusefe_file *f);
/* The errno a program should see for a failure of a region or backend. */
int fusefe_reply_errno (int negative_errno);

#endif
