/* Mounting and unmounting a FUSE file system of export files.
 *
 * Life of a mount:
 *
 *   r3m_fuse_mount    check /dev/fuse and the mount point, create the libfuse
 *                     session, mount, start the workers, wait until the
 *                     kernel's INIT is answered (a stat of the mount point),
 *                     raise the mount's read-ahead
 *   (serving)         until unmounted, by us or from outside
 *   r3m_fuse_unmount  fsync every file (the kernel writes back its dirty
 *                     pages through the workers), umount, flush every
 *                     file's target
 *   r3m_fuse_close    lazy unmount if still mounted, stop the workers, close
 *                     the session (which aborts the connection for anyone
 *                     still using a lazily unmounted file), flush again
 *
 * We never let libfuse unmount: fuse_session_unmount closes the device fd
 * before unmounting, which aborts the connection and drops the kernel's
 * dirty pages.  Unmounting while the workers still serve lets the kernel
 * write them back first.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "frontend/fuse/fusefe.h"
#include "util/error.h"
#include "util/time.h"

extern char **environ;

void
r3m_fuse_options_init (struct r3m_fuse_options *o)
{
  *o = (struct r3m_fuse_options) {
    .threads = 8,
    .max_io = 1u << 20,
    .readahead = 1u << 20,
    .max_background = 64,
    .flush_on_close = true,
    .mode = 0644,
  };
}

static int
check_options (const struct r3m_fuse_options *o, struct r3m_error *err)
{
  const char *what = "r3m_fuse_mount";
  if (o->threads < 1 || o->threads > 256)
    return util_err (err, EINVAL, "%s: threads %u is not in 1..256", what,
                     o->threads);
  if (o->max_io < 4096 || o->max_io > (1u << 20) || o->max_io % 4096)
    return util_err (err, EINVAL,
                     "%s: max_io %u is not a multiple of 4 KiB in 4 KiB..1 MiB",
                     what, o->max_io);
  if (o->readahead % 4096 || o->readahead > (64u << 20))
    return util_err (err, EINVAL,
                     "%s: readahead %u is not a multiple of 4 KiB up to 64 MiB",
                     what, o->readahead);
  if (o->max_background > 65535)
    return util_err (err, EINVAL, "%s: max_background %u is over 65535",
                     what, o->max_background);
  return 0;
}

static int
check_files (const struct r3m_fuse_file *files, size_t n,
             struct r3m_error *err)
{
  const char *what = "r3m_fuse_mount";
  if (n == 0 || !files)
    return util_err (err, EINVAL, "%s: no files to present", what);
  for (size_t i = 0; i < n; i++) {
    const struct r3m_fuse_file *f = &files[i];
    const char *name = f->name ? f->name : "";
    if (!*name || strchr (name, '/') || strcmp (name, ".") == 0
        || strcmp (name, "..") == 0 || strlen (name) > 255)
      return util_err (err, EINVAL, "%s: '%s' is not a valid file name",
                       what, name);
    if (!f->region == !f->backend)
      return util_err (err, EINVAL,
                       "%s: file '%s' needs exactly one of region and backend",
                       what, name);
    for (size_t j = 0; j < i; j++)
      if (strcmp (files[j].name, name) == 0)
        return util_err (err, EINVAL, "%s: file name '%s' appears twice",
                         what, name);
  }
  return 0;
}

static int
dead_mount (const char *mountpoint, struct r3m_error *err)
{
  return util_err (err, EBUSY, "mount %s: the mount point is busy: a FUSE "
                   "mount whose server died is still there (fusermount3 -u "
                   "%s)", mountpoint, mountpoint);
}

/* The two failures people hit most get a message that says what to do. */
static int
check_environment (const char *mountpoint, struct r3m_error *err)
{
  if (access ("/dev/fuse", F_OK) < 0)
    return util_err (err, ENODEV,
                     "mount %s: /dev/fuse is missing (load the fuse kernel "
                     "module: modprobe fuse)", mountpoint);
  if (access ("/dev/fuse", R_OK | W_OK) < 0)
    return util_errno (err, errno, "mount %s: cannot open /dev/fuse",
                       mountpoint);

  struct statx stx;
  if (statx (AT_FDCWD, mountpoint, AT_NO_AUTOMOUNT, STATX_TYPE, &stx) < 0) {
    int e = errno;
    if (e == ENOTCONN)
      return dead_mount (mountpoint, err);
    return util_errno (err, e, "mount %s", mountpoint);
  }
  if (!S_ISDIR (stx.stx_mode))
    return util_err (err, ENOTDIR, "mount %s: the mount point is not a "
                     "directory", mountpoint);
  if ((stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT)
      && (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT)) {
    /* The kernel may answer stat from cached attributes even when the
     * FUSE server behind the mount is gone; statfs always asks it. */
    struct statfs sf;
    if (statfs (mountpoint, &sf) < 0 && errno == ENOTCONN)
      return dead_mount (mountpoint, err);
    return util_err (err, EBUSY,
                     "mount %s: the mount point is busy: something is already "
                     "mounted there (umount %s)", mountpoint, mountpoint);
  }
  return 0;
}

static void
free_buffer (void *buf)
{
  free (buf);
}

static void
free_fs (struct r3m_fuse *fs)
{
  if (fs->buf_key_made)
    pthread_key_delete (fs->buf_key);
  for (size_t i = 0; i < fs->nfiles; i++) {
    free (fs->files[i].name);
    free (fs->files[i].path);
  }
  free (fs->files);
  free (fs->workers);
  free (fs->mountpoint);
  pthread_cond_destroy (&fs->changed);
  pthread_mutex_destroy (&fs->lock);
  free (fs);
}

/* NULL with *res and err set on failure. */
static struct r3m_fuse *
new_fs (const char *mountpoint, const struct r3m_fuse_file *files, size_t n,
        const struct r3m_fuse_options *opts, int *res, struct r3m_error *err)
{
  struct r3m_fuse *fs = calloc (1, sizeof *fs);
  if (!fs) {
    *res = util_errno (err, ENOMEM, "mount %s", mountpoint);
    return NULL;
  }
  fs->opts = *opts;
  pthread_mutex_init (&fs->lock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init (&ca);
  pthread_condattr_setclock (&ca, CLOCK_MONOTONIC);
  pthread_cond_init (&fs->changed, &ca);
  pthread_condattr_destroy (&ca);
  clock_gettime (CLOCK_REALTIME, &fs->mtime);
  fs->uid = geteuid ();
  fs->gid = getegid ();

  int r = -ENOMEM;
  fs->mountpoint = realpath (mountpoint, NULL);
  fs->files = calloc (n, sizeof *fs->files);
  if (!fs->mountpoint || !fs->files)
    goto fail;
  fs->nfiles = n;
  for (size_t i = 0; i < n; i++) {
    struct fusefe_file *f = &fs->files[i];
    f->region = files[i].region;
    f->backend = files[i].backend;
    f->read_only = files[i].read_only;
    f->size = fusefe_size (f);
    fs->total_size += f->size;
    f->name = strdup (files[i].name);
    if (!f->name
        || asprintf (&f->path, "%s/%s", fs->mountpoint, f->name) < 0) {
      f->path = NULL;
      goto fail;
    }
  }
  if ((r = -pthread_key_create (&fs->buf_key, free_buffer)) < 0)
    goto fail;
  fs->buf_key_made = true;
  return fs;

fail:
  free_fs (fs);
  *res = util_errno (err, -r, "mount %s", mountpoint);
  return NULL;
}

/* As root we mount with mount(2) ourselves and hand libfuse the device fd
 * ("/dev/fd/N"), so libfuse never unmounts anything: its unmount would
 * close the device first (losing dirty pages) and print errors for mounts
 * we already took down.  As a user only the setuid fusermount3 can mount,
 * and libfuse knows how to talk to it. */
static int
mount_as_root (struct r3m_fuse *fs, struct r3m_error *err)
{
  int fd = open ("/dev/fuse", O_RDWR | O_CLOEXEC);
  if (fd < 0)
    return util_errno (err, errno, "mount %s: opening /dev/fuse",
                       fs->mountpoint);
  char opts[160];
  snprintf (opts, sizeof opts,
            "fd=%d,rootmode=%o,user_id=%u,group_id=%u,default_permissions%s",
            fd, (unsigned) (S_IFDIR | 0755), (unsigned) fs->uid,
            (unsigned) fs->gid, fs->opts.allow_other ? ",allow_other" : "");
  if (mount ("r3map", fs->mountpoint, "fuse.r3map", MS_NOSUID | MS_NODEV,
             opts) < 0) {
    int e = errno;
    close (fd);
    return util_errno (err, e, "mount %s", fs->mountpoint);
  }
  char devfd[32];
  snprintf (devfd, sizeof devfd, "/dev/fd/%d", fd);
  if (fs->opts.direct_io ? fusefe_init_ext (fs, fd) != 0
      : fuse_session_mount (fs->se, devfd) != 0) {
    umount2 (fs->mountpoint, MNT_DETACH);
    close (fd);
    return util_err (err, EIO, "mount %s: libfuse refused the device fd",
                     fs->mountpoint);
  }
  return 0;
}

static int
new_session (struct r3m_fuse *fs, struct r3m_error *err)
{
  char opts[128];
  snprintf (opts, sizeof opts,
            "fsname=r3map,subtype=r3map,default_permissions%s",
            fs->opts.allow_other ? ",allow_other" : "");
  char *argv[] = { (char *) "r3map", (char *) "-o", opts, NULL };
  struct fuse_args args = FUSE_ARGS_INIT (3, argv);
  fs->se = fuse_session_new (&args, &fusefe_ops, sizeof fusefe_ops, fs);
  fuse_opt_free_args (&args);
  if (!fs->se)
    return util_err (err, ENOMEM, "mount %s: cannot create a FUSE session",
                     fs->mountpoint);
  int r = 0;
  if (geteuid () == 0)
    r = mount_as_root (fs, err);
  else if (fuse_session_mount (fs->se, fs->mountpoint) != 0)
    r = util_err (err, EPERM,
                  "mount %s: the FUSE mount failed (as a user this needs "
                  "fusermount3 from the fuse3 package)", fs->mountpoint);
  else if (fs->opts.direct_io
           && fusefe_init_ext (fs, fuse_session_fd (fs->se)) != 0)
    r = util_err (err, EIO, "mount %s: libfuse refused the I/O hooks",
                  fs->mountpoint);
  if (r < 0) {
    fuse_session_destroy (fs->se);
    fs->se = NULL;
  }
  return r;
}

/* The kernel starts a FUSE mount with 128 KiB of read-ahead whatever INIT
 * says; sequential reads and mmap scans want more.  Root only (sysfs). */
static void
set_readahead (struct r3m_fuse *fs, dev_t dev)
{
  if (!fs->opts.readahead || geteuid () != 0)
    return;
  char path[64];
  snprintf (path, sizeof path, "/sys/class/bdi/%u:%u/read_ahead_kb",
            major (dev), minor (dev));
  int fd = open (path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return;
  char kb[16];
  int len = snprintf (kb, sizeof kb, "%u", fs->opts.readahead / 1024);
  if (write (fd, kb, (size_t) len) < 0) {
    /* Not fatal: the mount works with the kernel's default. */
  }
  close (fd);
}

int
r3m_fuse_mount (const char *mountpoint, const struct r3m_fuse_file *files,
                size_t n, const struct r3m_fuse_options *opts,
                struct r3m_fuse **out, struct r3m_error *err)
{
  struct r3m_fuse_options defaults;
  if (!opts) {
    r3m_fuse_options_init (&defaults);
    opts = &defaults;
  }
  if (!mountpoint || !out)
    return util_err (err, EINVAL, "r3m_fuse_mount: mountpoint and out are "
                     "required");
  int r;
  if ((r = check_options (opts, err)) < 0
      || (r = check_files (files, n, err)) < 0
      || (r = check_environment (mountpoint, err)) < 0)
    return r;

  struct r3m_fuse *fs = new_fs (mountpoint, files, n, opts, &r, err);
  if (!fs)
    return r;
  if ((r = new_session (fs, err)) < 0) {
    free_fs (fs);
    return r;
  }
  fs->mounted = true;
  if ((r = fusefe_loop_start (fs)) < 0) {
    util_errno (err, -r, "mount %s: starting workers", fs->mountpoint);
    goto fail;
  }

  /* The first request waits for INIT, so this returns once we serve. */
  struct stat st;
  if (stat (fs->mountpoint, &st) < 0 || st.st_ino != FUSE_ROOT_ID) {
    r = util_errno (err, errno ? errno : EIO,
                    "mount %s: the new mount does not answer",
                    fs->mountpoint);
    goto fail;
  }
  set_readahead (fs, st.st_dev);
  *out = fs;
  return 0;

fail:
  r3m_fuse_close (fs, NULL);
  return r;
}

const char *
r3m_fuse_path (const struct r3m_fuse *fs, size_t i)
{
  return i < fs->nfiles ? fs->files[i].path : NULL;
}

int
r3m_fuse_wait (struct r3m_fuse *fs, int timeout_ms)
{
  struct timespec deadline = util_deadline_ms (timeout_ms < 0 ? 0
                                               : (uint64_t) timeout_ms);
  int r = 0;
  pthread_mutex_lock (&fs->lock);
  while (fs->mounted && !fs->ended && fs->running > 0 && r == 0) {
    if (timeout_ms < 0)
      pthread_cond_wait (&fs->changed, &fs->lock);
    else if (pthread_cond_timedwait (&fs->changed, &fs->lock, &deadline)
             == ETIMEDOUT)
      r = -ETIMEDOUT;
  }
  pthread_mutex_unlock (&fs->lock);
  return r;
}

/* umount2 as root; fusermount3 (setuid) otherwise. */
static int
do_umount (struct r3m_fuse *fs, bool lazy)
{
  if (geteuid () == 0)
    return umount2 (fs->mountpoint, lazy ? MNT_DETACH : 0) < 0 ? -errno : 0;

  char *argv[7];
  int k = 0;
  argv[k++] = (char *) "fusermount3";
  argv[k++] = (char *) "-u";
  argv[k++] = (char *) "-q";
  if (lazy)
    argv[k++] = (char *) "-z";
  argv[k++] = (char *) "--";
  argv[k++] = fs->mountpoint;
  argv[k] = NULL;
  pid_t pid;
  int r = posix_spawnp (&pid, "fusermount3", NULL, NULL, argv, environ);
  if (r != 0)
    return -r;
  int status;
  while (waitpid (pid, &status, 0) < 0)
    if (errno != EINTR)
      return -errno;
  /* fusermount3 prints its reason; busy is by far the likeliest. */
  return WIFEXITED (status) && WEXITSTATUS (status) == 0 ? 0 : -EBUSY;
}

static int
flush_all (struct r3m_fuse *fs)
{
  int first = 0;
  for (size_t i = 0; i < fs->nfiles; i++) {
    int r = fusefe_flush (fs, &fs->files[i]);
    if (r < 0 && first == 0)
      first = r;
  }
  return first;
}

/* Have the kernel write back its dirty pages (mmap writes not yet synced,
 * the write-back cache) while the workers still serve.  Not syncfs: on a
 * FUSE mount it starts the writes without waiting for them.  fsync waits,
 * and it works through any descriptor, even one opened read-only. */
static void
write_back_all (struct r3m_fuse *fs)
{
  for (size_t i = 0; i < fs->nfiles; i++) {
    int fd = open (fs->files[i].path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      fsync (fd);
      close (fd);
    }
  }
}

int
r3m_fuse_unmount (struct r3m_fuse *fs, bool lazy, struct r3m_error *err)
{
  pthread_mutex_lock (&fs->lock);
  bool mounted = fs->mounted && !fs->ended;
  bool serving = fs->running > 0;
  pthread_mutex_unlock (&fs->lock);
  if (!mounted)
    return 0;

  /* With no worker (a mount that failed to start them), opening a file
   * would wait for ever for an answer: there is nothing to write back. */
  if (serving)
    write_back_all (fs);
  int r = do_umount (fs, false);
  if (r == -EBUSY && lazy)
    r = do_umount (fs, true);
  if (r == 0 || r == -EINVAL) {   /* EINVAL: unmounted from outside */
    pthread_mutex_lock (&fs->lock);
    fs->mounted = false;
    pthread_cond_broadcast (&fs->changed);
    pthread_mutex_unlock (&fs->lock);
  }
  int fr = flush_all (fs);
  if (r == -EBUSY)
    return util_err (err, EBUSY, "unmount %s: a file is still open or "
                     "mapped (its data was flushed)", fs->mountpoint);
  if (r < 0 && r != -EINVAL)
    return util_errno (err, -r, "unmount %s", fs->mountpoint);
  if (fr < 0)
    return util_errno (err, -fr, "unmount %s: flushing", fs->mountpoint);
  return 0;
}

int
r3m_fuse_invalidate (struct r3m_fuse *fs, size_t i, uint64_t off,
                     uint64_t len)
{
  if (i >= fs->nfiles || off > INT64_MAX || len > INT64_MAX)
    return -EINVAL;
  pthread_mutex_lock (&fs->lock);
  bool live = fs->mounted && !fs->ended;
  pthread_mutex_unlock (&fs->lock);
  if (!live)
    return 0;
  int r = fuse_lowlevel_notify_inval_inode (fs->se, FUSEFE_FIRST_INO + i,
                                            (off_t) off, (off_t) len);
  /* ENOENT: the kernel has no inode for it, so nothing is cached. */
  return r == -ENOENT ? 0 : r;
}

void
r3m_fuse_stats (const struct r3m_fuse *fs, struct r3m_fuse_stats *st)
{
  struct r3m_fuse *m = (struct r3m_fuse *) fs;
  *st = (struct r3m_fuse_stats) {
    .reads = atomic_load (&m->reads),
    .writes = atomic_load (&m->writes),
    .bytes_read = atomic_load (&m->bytes_read),
    .bytes_written = atomic_load (&m->bytes_written),
    .flushes = atomic_load (&m->flushes),
    .errors = atomic_load (&m->errors),
    .last_error = atomic_load (&m->last_error),
  };
}

int
r3m_fuse_close (struct r3m_fuse *fs, struct r3m_error *err)
{
  if (!fs)
    return 0;
  if (fs->se) {
    pthread_mutex_lock (&fs->lock);
    bool mounted = fs->mounted && !fs->ended;
    pthread_mutex_unlock (&fs->lock);
    /* Lazily: someone may still hold a file open, and close must not
     * fail.  r3m_fuse_unmount has the kernel write back its dirty pages
     * first. */
    if (mounted)
      r3m_fuse_unmount (fs, true, NULL);
    fusefe_loop_stop (fs);
    /* Frees what fuse_session_mount kept of a user mount (fusermount3 -u
     * -z, quietly a no-op by now); nothing at all for a root mount. */
    fuse_session_unmount (fs->se);
    fuse_session_destroy (fs->se);
  }
  int r = flush_all (fs);
  if (r < 0)
    util_errno (err, -r, "closing mount %s: flushing", fs->mountpoint);
  free_fs (fs);
  return r;
}
