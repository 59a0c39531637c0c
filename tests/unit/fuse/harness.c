#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

void
ft_require_fuse (void)
{
  if (geteuid () != 0) {
    printf ("skip: FUSE tests mount file systems and need root\n");
    exit (77);
  }
  if (access ("/dev/fuse", R_OK | W_OK) < 0) {
    printf ("skip: /dev/fuse is not available\n");
    exit (77);
  }
  /* Mounts made in a private namespace die with the process. */
  if (unshare (CLONE_NEWNS) < 0
      || mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
    perror ("unshare/mount --make-rprivate");
    exit (1);
  }
}

static int
spy_pread (void *self, void *buf, size_t len, uint64_t off)
{
  struct ft_spy *s = self;
  atomic_fetch_add (&s->reads, 1);
  int e = atomic_load (&s->fail);
  if (e)
    return -e;
  pthread_mutex_lock (&s->lock);
  int r = r3m_backend_pread (s->inner, buf, len, off);
  pthread_mutex_unlock (&s->lock);
  return r;
}

static int
spy_pwrite (void *self, const void *buf, size_t len, uint64_t off,
            unsigned flags)
{
  struct ft_spy *s = self;
  atomic_fetch_add (&s->writes, 1);
  int e = atomic_load (&s->fail);
  if (e)
    return -e;
  pthread_mutex_lock (&s->lock);
  int r = r3m_backend_pwrite (s->inner, buf, len, off, flags);
  pthread_mutex_unlock (&s->lock);
  return r;
}

static int
spy_flush (void *self)
{
  struct ft_spy *s = self;
  atomic_fetch_add (&s->flushes, 1);
  int e = atomic_load (&s->fail);
  if (e)
    return -e;
  pthread_mutex_lock (&s->lock);
  int r = r3m_backend_flush (s->inner);
  pthread_mutex_unlock (&s->lock);
  return r;
}

static int
spy_zero (void *self, size_t len, uint64_t off, unsigned flags)
{
  struct ft_spy *s = self;
  atomic_fetch_add (&s->zeros, 1);
  int e = atomic_load (&s->fail);
  if (e)
    return -e;
  pthread_mutex_lock (&s->lock);
  int r = r3m_backend_zero (s->inner, len, off, flags);
  pthread_mutex_unlock (&s->lock);
  return r;
}

static void
spy_close (void *self)
{
  struct ft_spy *s = self;
  r3m_backend_close (s->inner);
  pthread_mutex_destroy (&s->lock);
  free (s);
}

static const struct r3m_backend_ops spy_ops = {
  .name = "spy",
  .pread = spy_pread,
  .pwrite = spy_pwrite,
  .flush = spy_flush,
  .zero = spy_zero,
  .close = spy_close,
};

struct r3m_backend *
ft_spy_new (uint64_t size, struct ft_spy **spy)
{
  struct ft_spy *s = calloc (1, sizeof *s);
  assert_non_null (s);
  pthread_mutex_init (&s->lock, NULL);
  char uri[64];
  snprintf (uri, sizeof uri, "memory:%llu", (unsigned long long) size);
  struct r3m_error err;
  int r = r3m_backend_open (uri, 0, &s->inner, &err);
  if (r < 0)
    fail_msg ("%s", err.msg);
  struct r3m_backend_info info = { .size = size, .align = 1 };
  struct r3m_backend *b;
  r = r3m_backend_new (&spy_ops, s, &info, "spy", &b, &err);
  if (r < 0)
    fail_msg ("%s", err.msg);
  *spy = s;
  return b;
}

void
ft_mount (struct ft_mount *m, uint64_t size,
          const struct r3m_fuse_options *opts)
{
  memset (m, 0, sizeof *m);
  strcpy (m->dir, "/tmp/r3m-fuse-XXXXXX");
  assert_non_null (mkdtemp (m->dir));
  m->be = ft_spy_new (size, &m->spy);
  struct r3m_fuse_file f = { .name = "disk", .backend = m->be };
  struct r3m_error err;
  int r = r3m_fuse_mount (m->dir, &f, 1, opts, &m->fs, &err);
  if (r < 0)
    fail_msg ("%s", err.msg);
  m->path = r3m_fuse_path (m->fs, 0);
}

void
ft_unmount (struct ft_mount *m)
{
  struct r3m_error err;
  if (m->fs && r3m_fuse_close (m->fs, &err) < 0)
    print_error ("r3m_fuse_close: %s\n", err.msg);
  m->fs = NULL;
  r3m_backend_close (m->be);
  m->be = NULL;
  rmdir (m->dir);
}

void
ft_pattern (void *buf, size_t len, uint64_t off, unsigned seed)
{
  unsigned char *p = buf;
  for (size_t i = 0; i < len; i++) {
    uint64_t x = (off + i) * 2654435761u + seed * 40503u;
    p[i] = (unsigned char) (x ^ (x >> 13) ^ (x >> 29));
  }
}
