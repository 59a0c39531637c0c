/* backend_io: throughput of the built-in backends through the handle,
 * side by side with the same I/O done with plain system calls (the
 * ceiling), in one run.
 *
 *   sequential read / write, 1 MiB requests, over the whole store
 *   random read, 4 KiB requests, synchronous, one thread
 *   random read, 4 KiB requests, 32 in flight through r3m_backend_submit
 *
 * Subjects: memory: against memcpy; file: against pread/pwrite on the same
 * file; dir: (1 MiB and 64 KiB chunks; the latter also with a cache
 * smaller than the working set) against pread/pwrite of the chunk files;
 * pattern: against memset.  Median of --repeat runs; a markdown table on
 * stdout, JSON with --json FILE.  Figures: docs/benchmarks.md. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <r3map/backend.h>

#include "util/size.h"
#include "util/time.h"

#define MAX_REPEAT 15
#define SEQ_BS (1u << 20)
#define RAND_BS 4096u
#define RAND_OPS 20000u
#define WINDOW 32u

static uint64_t size = 256ull << 20;
static unsigned repeat = 3;
static char *buf;                    /* SEQ_BS bytes */

static uint64_t
rng (uint64_t *s)
{
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

/* ---- what is measured: bytes moved by one run ------------------------- */

typedef uint64_t run_fn (void *arg);

struct ctx {
  struct r3m_backend *b;
  int fd;                            /* raw file */
  const char *chunkdir;              /* raw chunk files */
  uint64_t chunk;
  char *mem;                         /* raw memory */
};

static uint64_t
be_seq_read (void *arg)
{
  struct ctx *c = arg;
  for (uint64_t off = 0; off < size; off += SEQ_BS)
    if (r3m_backend_pread (c->b, buf, SEQ_BS, off) < 0)
      abort ();
  return size;
}

static uint64_t
be_seq_write (void *arg)
{
  struct ctx *c = arg;
  for (uint64_t off = 0; off < size; off += SEQ_BS)
    if (r3m_backend_pwrite (c->b, buf, SEQ_BS, off, 0) < 0)
      abort ();
  return size;
}

static uint64_t
be_rand_read (void *arg)
{
  struct ctx *c = arg;
  uint64_t s = 88172645463325252ull;
  for (unsigned i = 0; i < RAND_OPS; i++) {
    uint64_t off = rng (&s) % (size / RAND_BS) * RAND_BS;
    if (r3m_backend_pread (c->b, buf, RAND_BS, off) < 0)
      abort ();
  }
  return (uint64_t) RAND_OPS * RAND_BS;
}

/* Asynchronous: keep WINDOW requests in flight; completions return their
 * slot to a free list (they may complete in any order). */
struct window {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct r3m_io ios[WINDOW];
  char bufs[WINDOW][RAND_BS];
  unsigned free[WINDOW], nfree;
  int error;
};

static void
win_done (struct r3m_io *io, int result)
{
  struct window *w = io->user;
  pthread_mutex_lock (&w->lock);
  w->free[w->nfree++] = (unsigned) (io - w->ios);
  if (result < 0)
    w->error = result;
  pthread_cond_signal (&w->cond);
  pthread_mutex_unlock (&w->lock);
}

static uint64_t
be_rand_read_async (void *arg)
{
  struct ctx *c = arg;
  static struct window w;
  pthread_mutex_init (&w.lock, NULL);
  pthread_cond_init (&w.cond, NULL);
  for (unsigned k = 0; k < WINDOW; k++)
    w.free[k] = k;
  w.nfree = WINDOW;
  uint64_t s = 88172645463325252ull;
  for (unsigned i = 0; i < RAND_OPS; i++) {
    pthread_mutex_lock (&w.lock);
    while (w.nfree == 0)
      pthread_cond_wait (&w.cond, &w.lock);
    unsigned k = w.free[--w.nfree];
    pthread_mutex_unlock (&w.lock);
    w.ios[k] = (struct r3m_io) { .op = R3M_IO_READ, .buf = w.bufs[k],
                                 .len = RAND_BS,
                                 .off = rng (&s) % (size / RAND_BS) * RAND_BS,
                                 .done = win_done, .user = &w };
    if (r3m_backend_submit (c->b, &w.ios[k]) < 0)
      abort ();
  }
  pthread_mutex_lock (&w.lock);
  while (w.nfree < WINDOW)
    pthread_cond_wait (&w.cond, &w.lock);
  pthread_mutex_unlock (&w.lock);
  if (w.error)
    abort ();
  pthread_cond_destroy (&w.cond);
  pthread_mutex_destroy (&w.lock);
  return (uint64_t) RAND_OPS * RAND_BS;
}

/* ---- ceilings: the same I/O with plain system calls ------------------ */

static void
full_pread (int fd, char *p, size_t n, uint64_t off)
{
  while (n > 0) {
    ssize_t r = pread (fd, p, n, (off_t) off);
    if (r <= 0)
      abort ();
    p += r;
    n -= (size_t) r;
    off += (uint64_t) r;
  }
}

static void
full_pwrite (int fd, const char *p, size_t n, uint64_t off)
{
  while (n > 0) {
    ssize_t r = pwrite (fd, p, n, (off_t) off);
    if (r <= 0)
      abort ();
    p += r;
    n -= (size_t) r;
    off += (uint64_t) r;
  }
}

static uint64_t
raw_file_seq_read (void *arg)
{
  struct ctx *c = arg;
  for (uint64_t off = 0; off < size; off += SEQ_BS)
    full_pread (c->fd, buf, SEQ_BS, off);
  return size;
}

static uint64_t
raw_file_seq_write (void *arg)
{
  struct ctx *c = arg;
  for (uint64_t off = 0; off < size; off += SEQ_BS)
    full_pwrite (c->fd, buf, SEQ_BS, off);
  return size;
}

static uint64_t
raw_file_rand_read (void *arg)
{
  struct ctx *c = arg;
  uint64_t s = 88172645463325252ull;
  for (unsigned i = 0; i < RAND_OPS; i++)
    full_pread (c->fd, buf, RAND_BS, rng (&s) % (size / RAND_BS) * RAND_BS);
  return (uint64_t) RAND_OPS * RAND_BS;
}

/* Chunk files kept open all the time: the best a dir backend could do. */
static int *chunk_fds;

static uint64_t
raw_dir_seq_read (void *arg)
{
  struct ctx *c = arg;
  for (uint64_t off = 0; off < size; off += SEQ_BS)
    for (uint64_t o = off; o < off + SEQ_BS; o += c->chunk)
      full_pread (chunk_fds[o / c->chunk], buf + (o - off),
                  c->chunk < SEQ_BS ? c->chunk : SEQ_BS, 0);
  return size;
}

static uint64_t
raw_dir_seq_write (void *arg)
{
  struct ctx *c = arg;
  for (uint64_t off = 0; off < size; off += SEQ_BS)
    for (uint64_t o = off; o < off + SEQ_BS; o += c->chunk)
      full_pwrite (chunk_fds[o / c->chunk], buf + (o - off),
                   c->chunk < SEQ_BS ? c->chunk : SEQ_BS, 0);
  return size;
}

static uint64_t
raw_dir_rand_read (void *arg)
{
  struct ctx *c = arg;
  uint64_t s = 88172645463325252ull;
  for (unsigned i = 0; i < RAND_OPS; i++) {
    uint64_t off = rng (&s) % (size / RAND_BS) * RAND_BS;
    full_pread (chunk_fds[off / c->chunk], buf, RAND_BS, off % c->chunk);
  }
  return (uint64_t) RAND_OPS * RAND_BS;
}

static uint64_t
raw_mem_seq_read (void *arg)
{
  struct ctx *c = arg;
  for (uint64_t off = 0; off < size; off += SEQ_BS)
    memcpy (buf, c->mem + off, SEQ_BS);
  return size;
}

static uint64_t
raw_mem_seq_write (void *arg)
{
  struct ctx *c = arg;
  for (uint64_t off = 0; off < size; off += SEQ_BS)
    memcpy (c->mem + off, buf, SEQ_BS);
  return size;
}

static uint64_t
raw_mem_rand_read (void *arg)
{
  struct ctx *c = arg;
  uint64_t s = 88172645463325252ull;
  for (unsigned i = 0; i < RAND_OPS; i++)
    memcpy (buf, c->mem + rng (&s) % (size / RAND_BS) * RAND_BS, RAND_BS);
  return (uint64_t) RAND_OPS * RAND_BS;
}

static uint64_t
raw_memset_seq (void *arg)
{
  for (uint64_t off = 0; off < size; off += SEQ_BS) {
    memset (buf, (int) (off >> 20), SEQ_BS);
    __asm__ volatile ("" : : "r" (buf) : "memory");
  }
  return size;
}

/* ---- running and reporting ------------------------------------------- */

static double
median (double *v, unsigned n)
{
  for (unsigned i = 1; i < n; i++)
    for (unsigned j = i; j > 0 && v[j - 1] > v[j]; j--) {
      double t = v[j];
      v[j] = v[j - 1];
      v[j - 1] = t;
    }
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* MB/s (10^6 bytes per second) of one run. */
static double
once (run_fn *fn, void *arg)
{
  uint64_t t0 = util_now_ns ();
  uint64_t bytes = fn (arg);
  uint64_t t1 = util_now_ns ();
  return (double) bytes / ((double) (t1 - t0) / 1e9) / 1e6;
}

struct row {
  const char *subject, *workload, *ceiling_name;
  double ours, ceiling;
};

static struct row rows[64];
static unsigned nrows;

static void
add (const char *subject, const char *workload, run_fn *ours, void *oarg,
     const char *ceiling_name, run_fn *ceiling, void *carg)
{
  struct row *r = &rows[nrows++];
  r->subject = subject;
  r->workload = workload;
  r->ceiling_name = ceiling_name;
  /* Warm up both, then alternate runs, so that a slow phase of a busy
   * machine hits both sides alike. */
  double a[MAX_REPEAT], c[MAX_REPEAT];
  ours (oarg);
  if (ceiling)
    ceiling (carg);
  for (unsigned i = 0; i < repeat; i++) {
    a[i] = once (ours, oarg);
    c[i] = ceiling ? once (ceiling, carg) : 0;
  }
  r->ours = median (a, repeat);
  r->ceiling = median (c, repeat);
  fprintf (stderr, "%-28s %-26s %9.0f MB/s  %-14s %9.0f MB/s\n", subject,
           workload, r->ours, ceiling_name, r->ceiling);
}

static void
print_table (void)
{
  char sz[32];
  util_format_size (size, sz, sizeof sz);
  printf ("store size %s, median of %u runs, MB/s = 10^6 bytes/s\n\n", sz,
          repeat);
  printf ("| backend | workload | r3map MB/s | ceiling | ceiling MB/s | "
          "r3map / ceiling |\n|---|---|---:|---|---:|---:|\n");
  for (unsigned i = 0; i < nrows; i++) {
    struct row *r = &rows[i];
    if (r->ceiling > 0)
      printf ("| %s | %s | %.0f | %s | %.0f | %.2f |\n", r->subject,
              r->workload, r->ours, r->ceiling_name, r->ceiling,
              r->ours / r->ceiling);
    else
      printf ("| %s | %s | %.0f | - | - | - |\n", r->subject, r->workload,
              r->ours);
  }
}

static void
write_json (const char *path)
{
  FILE *f = fopen (path, "w");
  if (!f && errno == ENOENT) {
    /* bench/results/ may not exist yet in a fresh checkout. */
    char *dir = strdup (path), *slash = dir ? strrchr (dir, '/') : NULL;
    if (slash) {
      *slash = '\0';
      mkdir (dir, 0777);
    }
    free (dir);
    f = fopen (path, "w");
  }
  if (!f) {
    perror (path);
    exit (1);
  }
  fprintf (f, "{\n  \"benchmark\": \"backend_io\",\n  \"size\": %" PRIu64
           ",\n  \"repeat\": %u,\n  \"unit\": \"MB/s\",\n  \"rows\": [\n",
           size, repeat);
  for (unsigned i = 0; i < nrows; i++) {
    struct row *r = &rows[i];
    fprintf (f, "    {\"backend\": \"%s\", \"workload\": \"%s\", "
             "\"r3map\": %.1f, \"ceiling\": \"%s\", \"ceiling_mbps\": %.1f, "
             "\"ratio\": %.3f}%s\n", r->subject, r->workload, r->ours,
             r->ceiling_name, r->ceiling,
             r->ceiling > 0 ? r->ours / r->ceiling : 0.0,
             i + 1 < nrows ? "," : "");
  }
  fprintf (f, "  ]\n}\n");
  fclose (f);
}

static struct r3m_backend *
open_or_die (const char *uri)
{
  struct r3m_backend *b;
  struct r3m_error err = { 0 };
  if (r3m_backend_open (uri, 0, &b, &err) < 0) {
    fprintf (stderr, "backend_io: %s\n", err.msg);
    exit (1);
  }
  return b;
}

static void
bench_memory (void)
{
  char uri[64];
  snprintf (uri, sizeof uri, "memory:%" PRIu64, size);
  struct ctx c = { .b = open_or_die (uri), .mem = aligned_alloc (4096, size) };
  if (!c.mem)
    abort ();
  memset (c.mem, 1, size);
  be_seq_write (&c);
  add ("memory", "seq read 1M", be_seq_read, &c, "memcpy", raw_mem_seq_read,
       &c);
  add ("memory", "seq write 1M", be_seq_write, &c, "memcpy",
       raw_mem_seq_write, &c);
  add ("memory", "rand read 4K", be_rand_read, &c, "memcpy",
       raw_mem_rand_read, &c);
  r3m_backend_close (c.b);
  free (c.mem);
}

static void
bench_pattern (void)
{
  char uri[64];
  snprintf (uri, sizeof uri, "pattern:%" PRIu64, size);
  struct ctx c = { .b = open_or_die (uri) };
  add ("pattern", "seq read 1M", be_seq_read, &c, "memset", raw_memset_seq,
       NULL);
  r3m_backend_close (c.b);
}

static void
bench_file (const char tmp[1000])
{
  char path[1100], uri[1200];
  snprintf (path, sizeof path, "%s/file", tmp);
  snprintf (uri, sizeof uri, "file:%s?size=%" PRIu64, path, size);
  struct ctx c = { .b = open_or_die (uri), .fd = open (path, O_RDWR) };
  if (c.fd < 0)
    abort ();
  be_seq_write (&c);             /* allocate: no holes in the page cache */
  add ("file (page cache)", "seq read 1M", be_seq_read, &c, "pread",
       raw_file_seq_read, &c);
  add ("file (page cache)", "seq write 1M", be_seq_write, &c, "pwrite",
       raw_file_seq_write, &c);
  add ("file (page cache)", "rand read 4K", be_rand_read, &c, "pread",
       raw_file_rand_read, &c);
  add ("file (page cache)", "rand read 4K, 32 submitted", be_rand_read_async,
       &c, "pread", raw_file_rand_read, &c);
  r3m_backend_close (c.b);
  close (c.fd);
  unlink (path);
}

static void
bench_dir (const char tmp[1000], const char *label, uint64_t chunk,
           unsigned max_open)
{
  char dir[1100], uri[1300];
  snprintf (dir, sizeof dir, "%s/dir-%" PRIu64 "-%u", tmp, chunk, max_open);
  snprintf (uri, sizeof uri, "dir:%s?size=%" PRIu64 "&chunk=%" PRIu64
            "&max-open=%u", dir, size, chunk, max_open);
  struct ctx c = { .b = open_or_die (uri), .chunk = chunk };
  be_seq_write (&c);
  uint64_t n = size / chunk;
  chunk_fds = calloc (n, sizeof *chunk_fds);
  for (uint64_t i = 0; i < n; i++) {
    char name[1200];
    snprintf (name, sizeof name, "%s/%" PRIu64, dir, i * chunk);
    chunk_fds[i] = open (name, O_RDWR);
    if (chunk_fds[i] < 0)
      abort ();
  }
  add (label, "seq read 1M", be_seq_read, &c, "pread, all open",
       raw_dir_seq_read, &c);
  add (label, "seq write 1M", be_seq_write, &c, "pwrite, all open",
       raw_dir_seq_write, &c);
  add (label, "rand read 4K", be_rand_read, &c, "pread, all open",
       raw_dir_rand_read, &c);
  add (label, "rand read 4K, 32 submitted", be_rand_read_async, &c,
       "pread, all open", raw_dir_rand_read, &c);
  for (uint64_t i = 0; i < n; i++)
    close (chunk_fds[i]);
  free (chunk_fds);
  r3m_backend_close (c.b);
  char cmd[1200];
  snprintf (cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system (cmd) != 0)
    fprintf (stderr, "backend_io: %s failed\n", cmd);
}

static void
usage (void)
{
  fprintf (stderr, "usage: backend_io [--size SIZE] [--repeat N] "
           "[--json FILE] [--dir TMPDIR]\n"
           "                  [--only memory|pattern|file|dir]\n");
  exit (2);
}

int
main (int argc, char **argv)
{
  const char *json = NULL, *base = "/tmp", *only = NULL;
  for (int i = 1; i < argc; i++) {
    if (i + 1 < argc && strcmp (argv[i], "--size") == 0) {
      if (util_parse_size (argv[++i], &size) < 0 || size < SEQ_BS
          || size % SEQ_BS)
        usage ();
    }
    else if (i + 1 < argc && strcmp (argv[i], "--repeat") == 0) {
      repeat = (unsigned) atoi (argv[++i]);
      if (repeat < 1 || repeat > MAX_REPEAT)
        usage ();
    }
    else if (i + 1 < argc && strcmp (argv[i], "--json") == 0)
      json = argv[++i];
    else if (i + 1 < argc && strcmp (argv[i], "--dir") == 0)
      base = argv[++i];
    else if (i + 1 < argc && strcmp (argv[i], "--only") == 0)
      only = argv[++i];
    else
      usage ();
  }
  /* Page-aligned, as the engine's buffers are: glibc's memcpy of 4 KiB
   * between addresses 16 bytes apart modulo 4096 (what malloc gives) runs
   * into 4K aliasing and is several times slower, which would be measured
   * as backend overhead. */
  buf = aligned_alloc (4096, SEQ_BS);
  if (!buf)
    abort ();
  memset (buf, 0x5a, SEQ_BS);
  char tmp[1000];
  if (strlen (base) > 900)
    usage ();
  snprintf (tmp, sizeof tmp, "%s/r3m-bench-XXXXXX", base);
  if (!mkdtemp (tmp)) {
    perror (tmp);
    return 1;
  }

#define WANT(name) (!only || strcmp (only, name) == 0)
  if (WANT ("memory"))
    bench_memory ();
  if (WANT ("pattern"))
    bench_pattern ();
  if (WANT ("file"))
    bench_file (tmp);
  if (WANT ("dir")) {
    bench_dir (tmp, "dir, chunk 1M, all cached", 1 << 20, 1024);
    bench_dir (tmp, "dir, chunk 64K, all cached", 64 << 10,
               (unsigned) (size / (64 << 10)));
    bench_dir (tmp, "dir, chunk 64K, max-open 128", 64 << 10, 128);
  }

  rmdir (tmp);
  print_table ();
  if (json)
    write_json (json);
  free (buf);
  return 0;
}
