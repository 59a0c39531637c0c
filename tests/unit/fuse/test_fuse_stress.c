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
#define OPS 2000

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

static void
test_concurrent_readers_and_writers_match_model (void **state)
{
  struct ft_mount *m = calloc (1, sizeof *m);
  *state = m;
  ft_mount (m, SIZE, NULL);
  unsigned char *model = calloc (1, SIZE);
  atomic_bool stop = false;
  struct worker w[WRITERS + MAPPERS + READERS];
  pthread_t t[WRITERS + MAPPERS + READERS];
  for (unsigned i = 0; i < WRITERS + MAPPERS + READERS; i++) {
    w[i] = (struct worker) { .path = m->path, .index = i, .model = model,
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

  unsigned char *store = malloc (SIZE);
  assert_int_equal (r3m_backend_pread (m->be, store, SIZE, 0), 0);
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
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
