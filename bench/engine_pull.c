/* engine_pull: how fast the region engine pulls a remote into its cache.
 *
 * Pulls a memory: remote (filled with data, so its pages are real) into a
 * fresh memory: cache through r3m_region_open + r3m_region_wait_pulled, for
 * several chunk sizes, windows, worker counts and request sizes (one
 * chunk per request, or runs of chunks), and compares with a plain
 * memcpy of the same bytes into fresh memory in chunk-sized pieces (the
 * ceiling: one copy, same first-touch page faults).  Each case runs
 * `repeat` times; the median is reported.  Prints a markdown table and
 * writes JSON.
 *
 * Usage: engine_pull [--size BYTES] [--repeat N] [--json PATH] [--quick]
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <r3map/backend.h>
#include <r3map/region.h>

#include "fault.h"
#include "util/size.h"
#include "util/time.h"

struct cfg {
  uint32_t chunk;
  unsigned window;
  unsigned workers;
  uint32_t request;           /* pull_request_size; 0 = one chunk */
};

/* "64 KiB" or "1 chunk" for a request size. */
static const char *
request_name (uint32_t request, char *buf, size_t cap)
{
  if (request == 0)
    snprintf (buf, cap, "1 chunk");
  else
    snprintf (buf, cap, "%u KiB", request / 1024);
  return buf;
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

static double
median (double *v, unsigned n)
{
  qsort (v, n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static struct r3m_backend *
open_memory (uint64_t size)
{
  char uri[64];
  struct r3m_backend *b;
  struct r3m_error err;
  snprintf (uri, sizeof uri, "memory:%llu", (unsigned long long) size);
  if (r3m_backend_open (uri, 0, &b, &err) < 0) {
    fprintf (stderr, "engine_pull: %s\n", err.msg);
    exit (1);
  }
  return b;
}

static void
fill (struct r3m_backend *b, uint64_t size)
{
  static unsigned char buf[1 << 20];
  for (size_t i = 0; i < sizeof buf; i++)
    buf[i] = (unsigned char) (i * 131 + 7);
  for (uint64_t off = 0; off < size; off += sizeof buf) {
    size_t n = size - off < sizeof buf ? (size_t) (size - off) : sizeof buf;
    buf[0] = (unsigned char) (off >> 20);
    if (r3m_backend_pwrite (b, buf, n, off, 0) < 0)
      exit (1);
  }
}

/* One pull; returns GB/s (1e9 bytes per second).  warm: the cache's pages
 * are touched beforehand, so the figure is the engine's own cost without
 * the kernel's first-touch page faults. */
static double
pull_once (struct r3m_backend *remote, uint64_t size, const struct cfg *c,
           bool warm)
{
  struct r3m_backend *cache = open_memory (size);
  if (warm)
    fill (cache, size);
  struct r3m_region_options o;
  r3m_region_options_init (&o);
  o.chunk_size = c->chunk;
  o.pull_window = c->window;
  o.pull_workers = c->workers;
  o.pull_request_size = c->request;
  o.push_window = 0;
  struct r3m_region *r;
  struct r3m_error err;
  uint64_t t0 = util_now_ns ();
  if (r3m_region_open (remote, cache, &o, &r, &err) < 0) {
    fprintf (stderr, "engine_pull: %s\n", err.msg);
    exit (1);
  }
  int e = r3m_region_wait_pulled (r, -1);
  uint64_t t1 = util_now_ns ();
  if (e < 0) {
    fprintf (stderr, "engine_pull: pull failed: %s\n", strerror (-e));
    exit (1);
  }
  /* Spot check: the last chunk arrived. */
  unsigned char a[64], b[64];
  if (r3m_backend_pread (cache, a, 64, size - 64) < 0
      || r3m_backend_pread (remote, b, 64, size - 64) < 0
      || memcmp (a, b, 64) != 0) {
    fprintf (stderr, "engine_pull: cache differs from remote\n");
    exit (1);
  }
  r3m_region_close (r, NULL);
  r3m_backend_close (cache);
  return (double) size / (double) (t1 - t0);
}

/* The ceiling: memcpy from the remote's memory into fresh (or, warm,
 * already touched) memory. */
static double
memcpy_once (struct r3m_backend *remote, uint64_t size, uint32_t chunk,
             bool warm)
{
  /* Read the remote through a mapping of our own so that the source is
   * real, touched memory like the remote's. */
  static unsigned char *src;
  static uint64_t src_size;
  if (src_size != size) {
    if (src)
      munmap (src, src_size);
    src = mmap (NULL, size, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (src == MAP_FAILED || r3m_backend_pread (remote, src, size, 0) < 0)
      exit (1);
    src_size = size;
  }
  unsigned char *dst = mmap (NULL, size, PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (dst == MAP_FAILED)
    exit (1);
  if (warm)
    memset (dst, 1, size);
  uint64_t t0 = util_now_ns ();
  for (uint64_t off = 0; off < size; off += chunk) {
    size_t n = size - off < chunk ? (size_t) (size - off) : chunk;
    memcpy (dst + off, src + off, n);
  }
  uint64_t t1 = util_now_ns ();
  if (memcmp (dst + size - 64, src + size - 64, 64) != 0)
    exit (1);
  munmap (dst, size);
  return (double) size / (double) (t1 - t0);
}

/* Reads of local data: through the region vs straight from the cache.
 * Returns GB/s for `ops` reads of `len` bytes, sequential or random. */
static double
read_rate (struct r3m_region *r, struct r3m_backend *cache, uint64_t size,
           size_t len, bool random, bool direct_cache)
{
  unsigned char *buf = malloc (len);
  uint64_t total = 0, x = 88172645463325252ull;
  uint64_t t0 = util_now_ns ();
  uint64_t n = size / len;
  if (random && n > 262144)
    n = 262144;
  for (uint64_t i = 0; i < n; i++) {
    uint64_t off;
    if (random) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      off = (x % (size / len)) * len;
    } else
      off = i * len;
    int e = direct_cache ? r3m_backend_pread (cache, buf, len, off)
                         : r3m_region_read (r, buf, len, off);
    if (e < 0)
      exit (1);
    total += len;
  }
  uint64_t t1 = util_now_ns ();
  free (buf);
  return (double) total / (double) (t1 - t0);
}

static void
read_table (struct r3m_backend *remote, uint64_t size, unsigned repeat,
            FILE *js)
{
  struct r3m_backend *cache = open_memory (size);
  struct r3m_region_options o;
  r3m_region_options_init (&o);
  o.pull_first = true;
  struct r3m_region *r;
  if (r3m_region_open (remote, cache, &o, &r, NULL) < 0)
    exit (1);
  static const struct { size_t len; bool random; const char *name; } w[] = {
    { 1 << 20, false, "sequential 1 MiB" },
    { 128 << 10, false, "sequential 128 KiB" },
    { 4096, true, "random 4 KiB" },
  };
  printf ("\nReads of local data (after the pull, 64 KiB chunks), one "
          "thread, GB/s (median of %u)\n\n| workload | region | cache "
          "pread | ratio |\n|---|---:|---:|---:|\n", repeat);
  double *a = calloc (repeat, sizeof *a), *b = calloc (repeat, sizeof *b);
  if (js)
    fprintf (js, "  \"reads\": [\n");
  for (size_t i = 0; i < 3; i++) {
    for (unsigned k = 0; k < repeat; k++) {
      a[k] = read_rate (r, cache, size, w[i].len, w[i].random, false);
      b[k] = read_rate (r, cache, size, w[i].len, w[i].random, true);
    }
    double ra = median (a, repeat), rb = median (b, repeat);
    printf ("| %s | %.2f | %.2f | %.2f |\n", w[i].name, ra, rb, ra / rb);
    if (js)
      fprintf (js, "    {\"workload\": \"%s\", \"region\": %.3f, "
               "\"cache\": %.3f}%s\n", w[i].name, ra, rb, i < 2 ? "," : "");
  }
  if (js)
    fprintf (js, "  ],\n");
  free (a);
  free (b);
  r3m_region_close (r, NULL);
  r3m_backend_close (cache);
}

/* Pull over a remote with 1 ms per request (a stand-in for a network
 * round trip; the fault backend delays each read on 64 threads): the
 * window, and how much each request carries, is what keeps data in flight
 * from one puller. */
static void
latency_table (unsigned repeat, FILE *js)
{
  uint64_t size = 64ull << 20;
  uint32_t chunk = 64 * 1024;
  struct r3m_backend *mem = open_memory (size), *remote;
  fill (mem, size);
  struct tfault *f;
  if (tfault_new (mem, chunk, 64, &remote, &f) < 0)
    exit (1);
  struct tfault_rule delay = { .ops = TF_OP (R3M_IO_READ), .stall = true,
                               .stall_ms = 1 };
  tfault_add (f, &delay);
  static const struct { unsigned window; uint32_t request; } rows[] = {
    { 1, 0 }, { 4, 0 }, { 16, 0 }, { 64, 0 },
    { 1, 1 << 20 }, { 4, 1 << 20 }, { 16, 1 << 20 }, { 64, 1 << 20 },
  };
  size_t nrows = sizeof rows / sizeof rows[0];
  printf ("\nPull of 64 MiB in 64 KiB chunks from a remote with 1 ms per "
          "request, 1 worker (median of %u)\n\n| window | request | "
          "seconds | GB/s | ideal seconds |\n|---:|---:|---:|---:|---:|\n",
          repeat);
  if (js)
    fprintf (js, "  \"latency_1ms\": [\n");
  double *v = calloc (repeat, sizeof *v);
  for (size_t i = 0; i < nrows; i++) {
    struct cfg c = { chunk, rows[i].window, 1, rows[i].request };
    for (unsigned k = 0; k < repeat; k++)
      v[k] = pull_once (remote, size, &c, true);
    double gbs = median (v, repeat);
    double secs = (double) size / gbs / 1e9;
    uint64_t per = rows[i].request ? rows[i].request : chunk;
    double ideal = (double) (size / per) * 0.001 / rows[i].window;
    char rq[32];
    printf ("| %u | %s | %.3f | %.3f | %.3f |\n", rows[i].window,
            request_name (rows[i].request, rq, sizeof rq), secs, gbs, ideal);
    if (js)
      fprintf (js, "    {\"window\": %u, \"request\": %u, \"seconds\": "
               "%.4f, \"ideal\": %.4f}%s\n", rows[i].window,
               rows[i].request, secs, ideal, i + 1 < nrows ? "," : "");
  }
  if (js)
    fprintf (js, "  ],\n");
  free (v);
  tfault_release (f);
  r3m_backend_close (remote);
  r3m_backend_close (mem);
}

int
main (int argc, char **argv)
{
  uint64_t size = UINT64_C (1) << 30;
  unsigned repeat = 3;
  const char *json = "bench/results/engine_pull.json";
  bool quick = false;
  for (int i = 1; i < argc; i++) {
    if (strcmp (argv[i], "--size") == 0 && i + 1 < argc) {
      if (util_parse_size (argv[++i], &size) < 0) {
        fprintf (stderr, "engine_pull: bad size %s\n", argv[i]);
        return 2;
      }
    } else if (strcmp (argv[i], "--repeat") == 0 && i + 1 < argc)
      repeat = (unsigned) atoi (argv[++i]);
    else if (strcmp (argv[i], "--json") == 0 && i + 1 < argc)
      json = argv[++i];
    else if (strcmp (argv[i], "--quick") == 0)
      quick = true;
    else {
      fprintf (stderr, "usage: engine_pull [--size BYTES] [--repeat N] "
               "[--json PATH] [--quick]\n");
      return 2;
    }
  }
  if (repeat == 0 || repeat > 101)
    repeat = 3;

  /* Request 0 is one chunk per request (what the engine did before it
   * coalesced runs); 1 MiB is the default. */
  static const struct cfg full[] = {
    { 64 * 1024, 1, 1, 0 }, { 64 * 1024, 64, 1, 0 }, { 64 * 1024, 64, 2, 0 },
    { 64 * 1024, 64, 1, 1 << 20 }, { 64 * 1024, 64, 2, 1 << 20 },
    { 256 * 1024, 64, 1, 0 }, { 256 * 1024, 64, 2, 0 },
    { 1024 * 1024, 16, 1, 0 }, { 1024 * 1024, 16, 2, 0 },
    { 4096, 64, 2, 0 }, { 4096, 64, 2, 1 << 20 },
  };
  static const struct cfg small[] = { { 64 * 1024, 64, 2, 0 },
                                      { 64 * 1024, 64, 2, 1 << 20 },
                                      { 1024 * 1024, 16, 2, 0 } };
  const struct cfg *cfgs = quick ? small : full;
  size_t ncfg = quick ? sizeof small / sizeof small[0]
                      : sizeof full / sizeof full[0];

  struct r3m_backend *remote = open_memory (size);
  fill (remote, size);

  FILE *js = fopen (json, "w");
  if (!js)
    fprintf (stderr, "engine_pull: %s: %s (JSON not written)\n", json,
             strerror (errno));
  else
    fprintf (js, "{\n  \"benchmark\": \"engine_pull\",\n  \"size\": %llu,\n"
             "  \"repeat\": %u,\n  \"unit\": \"GB/s\",\n",
             (unsigned long long) size, repeat);
  read_table (remote, size, repeat, js);
  latency_table (repeat, js);
  if (js)
    fprintf (js, "  \"results\": [\n");
  printf ("\n");

  printf ("Pull of a %.2f GiB memory: remote into a memory: cache, GB/s "
          "(median of %u)\n\n", (double) size / (1 << 30), repeat);
  printf ("Cold: the cache is fresh memory (first-touch page faults "
          "included, as in a real pull).  Warm: its pages were touched "
          "before (the engine's own cost).\n\n");
  printf ("| chunk | window | workers | request | engine cold | memcpy cold "
          "| ratio | engine warm | memcpy warm | ratio |\n"
          "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  double *v = calloc (repeat, sizeof *v), *m = calloc (repeat, sizeof *m);
  for (size_t i = 0; i < ncfg; i++) {
    const struct cfg *c = &cfgs[i];
    double ve[2], vm[2];
    for (int warm = 0; warm < 2; warm++) {
      for (unsigned k = 0; k < repeat; k++) {
        v[k] = pull_once (remote, size, c, warm);
        m[k] = memcpy_once (remote, size, c->chunk, warm);
      }
      ve[warm] = median (v, repeat);
      vm[warm] = median (m, repeat);
    }
    char rq[32];
    printf ("| %u KiB | %u | %u | %s | %.2f | %.2f | %.2f | %.2f | %.2f | "
            "%.2f |\n", c->chunk / 1024, c->window, c->workers,
            request_name (c->request, rq, sizeof rq), ve[0], vm[0],
            ve[0] / vm[0], ve[1], vm[1], ve[1] / vm[1]);
    fflush (stdout);
    if (js)
      fprintf (js, "    {\"chunk\": %u, \"window\": %u, \"workers\": %u, "
               "\"request\": %u, \"engine_cold\": %.3f, "
               "\"memcpy_cold\": %.3f, \"engine_warm\": %.3f, "
               "\"memcpy_warm\": %.3f}%s\n",
               c->chunk, c->window, c->workers, c->request, ve[0], vm[0],
               ve[1], vm[1], i + 1 < ncfg ? "," : "");
  }
  if (js) {
    fprintf (js, "  ]\n}\n");
    fclose (js);
  }
  free (v);
  free (m);
  r3m_backend_close (remote);
  return 0;
}
