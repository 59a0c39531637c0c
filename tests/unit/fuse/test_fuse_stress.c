/* Concurrent readers and writers on one FUSE file, through pread/pwrite
 * and through shared mappings, against an exact model: each thread owns a
 * page-aligned slice, so the model of every byte is known.  Other threads
 * read the whole file at the same time (their data is not checked, only
 * that they get it).  At the end the store must equal the model. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define WRITERS 4
#define MAPPERS 2
#define READERS 2
#define SLICE (1u << 20)
#define SIZE ((WRITERS + MAPPERS) * SLICE)
#define OPS 800

struct worker {
  const char *path;
  unsigned index;          /* slice */
  unsigned char *model;    /* the whole file's expected bytes */
  atomic_bool *stop;
  int failures;
};

static unsigned
next (unsigned *seed)
{
  *seed = *seed * 1103515245u + 12345u;
  return *seed >> 8;
}

static void *
writer (void *arg)
{
  struct worker *w = arg;
  unsigned seed = w->index + 1;
  uint64_t base = (uint64_t) w->index * SLICE;
  unsigned char *buf = malloc (65536);
  int fd = open (w->path, O_RDWR);
  if (fd < 0 || !buf) {
    w->failures++;
    goto out;
  }
  for (int i = 0; i < OPS; i++) {
    size_t len = 1 + next (&seed) % 65536;
    uint64_t off = base + next (&seed) % (SLICE - len);
    if (next (&seed) % 2) {
      ft_pattern (buf, len, off, (unsigned) i);
      if (pwrite (fd, buf, len, (off_t) off) != (ssize_t) len)
        w->failures++;
      memcpy (w->model + off, buf, len);
    } else if (pread (fd, buf, len, (off_t) off) != (ssize_t) len
               || memcmp (buf, w->model + off, len) != 0)
      w->failures++;
    if (i % 64 == 63 && fsync (fd) < 0)
      w->failures++;
  }
out:
  if (fd >= 0)
    close (fd);
  free (buf);
  return NULL;
}

static void *
mapper (void *arg)
{
  struct worker *w = arg;
  unsigned seed = w->index * 7 + 3;
  uint64_t base = (uint64_t) w->index * SLICE;
  int fd = open (w->path, O_RDWR);
  unsigned char *p = fd < 0 ? MAP_FAILED
    : mmap (NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    w->failures++;
    goto out;
  }
  for (int i = 0; i < OPS; i++) {
    size_t len = 1 + next (&seed) % 65536;
    uint64_t off = base + next (&seed) % (SLICE - len);
    if (next (&seed) % 2) {
      ft_pattern (p + off, len, off, (unsigned) i + 1000);
      memcpy (w->model + off, p + off, len);
    } else if (memcmp (p + off, w->model + off, len) != 0)
      w->failures++;
    if (i % 64 == 63 && msync (p, SIZE, MS_SYNC) < 0)
      w->failures++;
  }
  if (msync (p, SIZE, MS_SYNC) < 0)
    w->failures++;
  munmap (p, SIZE);
out:
  if (fd >= 0)
    close (fd);
  return NULL;
}

static void *
reader (void *arg)
{
  struct worker *w = arg;
  unsigned char *buf = malloc (1 << 20);
  int fd = open (w->path, O_RDONLY);
  if (fd < 0 || !buf) {
    w->failures++;
    goto out;
  }
  while (!atomic_load (w->stop))
    for (uint64_t off = 0; off < SIZE; off += 1 << 20)
      if (pread (fd, buf, 1 << 20, (off_t) off) != 1 << 20)
        w->failures++;
out:
  if (fd >= 0)
    close (fd);
  free (buf);
  return NULL;
}

static int
teardown (void **state)
{
  if (*state) {
    ft_unmount (*state);
    free (*state);
  }
  return 0;
}

/* Run the workers on the file at `path`, each checking what it reads
 * against the model. */
static void
run_workers (const char *path, unsigned char *model)
{
  atomic_bool stop = false;
  struct worker w[WRITERS + MAPPERS + READERS];
  pthread_t t[WRITERS + MAPPERS + READERS];
  for (unsigned i = 0; i < WRITERS + MAPPERS + READERS; i++) {
    w[i] = (struct worker) { .path = path, .index = i, .model = model,
                             .stop = &stop };
    void *(*fn) (void *) = i < WRITERS ? writer
                         : i < WRITERS + MAPPERS ? mapper : reader;
    assert_int_equal (pthread_create (&t[i], NULL, fn, &w[i]), 0);
  }
  for (unsigned i = 0; i < WRITERS + MAPPERS; i++)
    pthread_join (t[i], NULL);
  atomic_store (&stop, true);
  for (unsigned i = WRITERS + MAPPERS; i < WRITERS + MAPPERS + READERS; i++)
    pthread_join (t[i], NULL);
  for (unsigned i = 0; i < WRITERS + MAPPERS + READERS; i++)
    assert_int_equal (w[i].failures, 0);
}

static void
test_concurrent_readers_and_writers_match_model (void **state)
{
  struct ft_mount *m = calloc (1, sizeof *m);
  *state = m;
  ft_mount (m, SIZE, NULL);
  unsigned char *model = calloc (1, SIZE);
  run_workers (m->path, model);
  unsigned char *store = malloc (SIZE);
  assert_int_equal (r3m_backend_pread (m->be, store, SIZE, 0), 0);
  assert_memory_equal (store, model, SIZE);
  free (store);
  free (model);
}

/* The same through a region with background pull and push running, with
 * a remote that already holds data. */
static struct {
  char dir[64];
  struct ft_spy *spy;
  struct r3m_backend *remote, *cache;
  struct r3m_region *region;
  struct r3m_fuse *fs;
} rg;

static int
teardown_region (void **state)
{
  r3m_fuse_close (rg.fs, NULL);
  if (rg.region)
    r3m_region_close (rg.region, NULL);
  r3m_backend_close (rg.cache);
  r3m_backend_close (rg.remote);
  rmdir (rg.dir);
  return 0;
}

static void
test_concurrent_io_through_region_matches_model (void **state)
{
  strcpy (rg.dir, "/tmp/r3m-fuse-XXXXXX");
  assert_non_null (mkdtemp (rg.dir));
  unsigned char *model = malloc (SIZE);
  ft_pattern (model, SIZE, 0, 77);
  rg.remote = ft_spy_new (SIZE, &rg.spy);
  assert_int_equal (r3m_backend_pwrite (rg.remote, model, SIZE, 0, 0), 0);
  struct r3m_error err;
  char uri[32];
  snprintf (uri, sizeof uri, "memory:%u", SIZE);
  assert_int_equal (r3m_backend_open (uri, 0, &rg.cache, &err), 0);
  struct r3m_region_options ro;
  r3m_region_options_init (&ro);
  ro.chunk_size = 16384;
  ro.pull_workers = 2;
  ro.pull_window = 8;
  ro.push_interval_ms = 20;
  if (r3m_region_open (rg.remote, rg.cache, &ro, &rg.region, &err) < 0)
    fail_msg ("%s", err.msg);
  struct r3m_fuse_file f = { .name = "region", .region = rg.region };
  if (r3m_fuse_mount (rg.dir, &f, 1, NULL, &rg.fs, &err) < 0)
    fail_msg ("%s", err.msg);

  run_workers (r3m_fuse_path (rg.fs, 0), model);

  struct r3m_fuse *fs = rg.fs;
  rg.fs = NULL;
  assert_int_equal (r3m_fuse_close (fs, &err), 0);
  struct r3m_region *r = rg.region;
  rg.region = NULL;
  assert_int_equal (r3m_region_close (r, &err), 0);
  unsigned char *store = malloc (SIZE);
  assert_int_equal (r3m_backend_pread (rg.remote, store, SIZE, 0), 0);
  assert_memory_equal (store, model, SIZE);
  free (store);
  free (model);
}

int
main (void)
{
  ft_require_fuse ();
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_teardown
      (test_concurrent_readers_and_writers_match_model, teardown),
    cmocka_unit_test_teardown
      (test_concurrent_io_through_region_matches_model, teardown_region),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
