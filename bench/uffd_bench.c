/* uffd_bench: first touch of a region mapped with the userfaultfd
 * frontend, against the ceiling (first touch of plain anonymous memory)
 * and against a naive handler that fetches one page per fault (what the
 * original userfaultfd-go did).  Sequential and random page order, median
 * of --repeat runs, in one process; prints a markdown table and writes
 * JSON.  See docs/benchmarks.md ("userfaultfd frontend").
 *
 *   uffd_bench [--size 1G] [--chunk 64K] [--repeat 3] [--naive-size 256M]
 *              [--uri URI ...] [--latency N] [--json FILE]
 *
 * Without --uri the backend is memory: filled with non-zero data; each
 * --uri (e.g. nbd+unix:///?socket=/tmp/s) adds rows for that backend.
 * The anonymous ceiling writes one byte per page (reading anonymous memory
 * would only map the shared zero page); the mapped cases read one byte per
 * page, which makes the frontend fetch the data. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/userfaultfd.h>

#include <r3map/r3map.h>

#include "backend/backends.h"
#include "util/size.h"
#include "util/time.h"

#define PAGE 4096u

struct opts {
  uint64_t size, naive_size;
  uint32_t chunk;
  int repeat;
  unsigned latency;
  const char *json;
  const char *uris[8];
  int nuris;
};

struct row {
  char name[96];
  double gbps;                 /* median */
  double secs;                 /* median */
  double ratio;                /* to the anonymous ceiling, same order */
};

static struct row rows[64];
static int nrows;

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

static double
median (double *v, int n)
{
  qsort (v, (size_t) n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Page visiting order: identity or a fixed random permutation. */
static uint64_t *
page_order (uint64_t pages, bool random)
{
  uint64_t *o = malloc (pages * sizeof *o);
  if (!o)
    abort ();
  for (uint64_t i = 0; i < pages; i++)
    o[i] = i;
  if (random) {
    uint64_t s = 42;
    for (uint64_t i = pages - 1; i > 0; i--) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      uint64_t j = (s >> 11) % (i + 1), t = o[i];
      o[i] = o[j];
      o[j] = t;
    }
  }
  return o;
}

static uint64_t sink;

static double
touch_read (const unsigned char *p, const uint64_t *order, uint64_t pages)
{
  uint64_t t0 = util_now_ns (), sum = 0;
  for (uint64_t i = 0; i < pages; i++)
    sum += p[order[i] * PAGE + (order[i] & 511)];
  sink += sum;
  return (double) (util_now_ns () - t0) / 1e9;
}

static double
anon_once (uint64_t size, const uint64_t *order)
{
  unsigned char *p = mmap (NULL, size, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED)
    abort ();
  madvise (p, size, MADV_NOHUGEPAGE);
  uint64_t t0 = util_now_ns ();
  for (uint64_t i = 0; i < size / PAGE; i++)
    p[order[i] * PAGE] = 1;
  double s = (double) (util_now_ns () - t0) / 1e9;
  munmap (p, size);
  return s;
}

static struct r3m_backend *
filled_memory (uint64_t size)
{
  struct r3m_backend *b;
  struct r3m_error err;
  if (be_memory_new (size, 0, "memory", &b, &err) < 0) {
    fprintf (stderr, "%s\n", err.msg);
    exit (1);
  }
  unsigned char *buf = malloc (1 << 20);
  for (uint64_t off = 0; off < size; off += 1 << 20) {
    for (size_t i = 0; i < (1 << 20); i += 8)
      {
        uint64_t v = (off + i) * 0x9E3779B97F4A7C15ull | 1;
        memcpy (buf + i, &v, sizeof v);
      }
    r3m_backend_pwrite (b, buf, 1 << 20, off, 0);
  }
  free (buf);
  return b;
}

/* One mapped first-touch run: map, touch every page, unmap. */
static double
uffd_once (struct r3m_backend *b, const struct opts *o, const uint64_t *order,
           uint64_t pages)
{
  struct r3m_uffd_options uo;
  r3m_uffd_options_init (&uo);
  uo.region.chunk_size = o->chunk;
  uo.track = R3M_UFFD_TRACK_NONE;      /* reads only: no write tracking */
  struct r3m_uffd *u;
  struct r3m_error err;
  uint64_t t0 = util_now_ns ();
  if (r3m_uffd_map (b, &uo, &u, &err) < 0) {
    fprintf (stderr, "%s\n", err.msg);
    exit (1);
  }
  touch_read (r3m_uffd_addr (u), order, pages);
  double s = (double) (util_now_ns () - t0) / 1e9;
  r3m_uffd_unmap (u, NULL);
  return s;
}

/* ---- the naive handler: one page per fault, fetched synchronously ---- */

struct naive {
  int uffd, stop;
  unsigned char *base;
  struct r3m_backend *b;
};

static void *
naive_handler (void *arg)
{
  struct naive *n = arg;
  unsigned char *page = aligned_alloc (PAGE, PAGE);
  struct pollfd pfd[2] = { { n->uffd, POLLIN, 0 }, { n->stop, POLLIN, 0 } };
  for (;;) {
    if (poll (pfd, 2, -1) < 0 || pfd[1].revents)
      break;
    struct uffd_msg m;
    if (read (n->uffd, &m, sizeof m) != sizeof m)
      continue;
    if (m.event != UFFD_EVENT_PAGEFAULT)
      continue;
    uint64_t addr = m.arg.pagefault.address & ~(uint64_t) (PAGE - 1);
    r3m_backend_pread (n->b, page, PAGE, addr - (uintptr_t) n->base);
    struct uffdio_copy c = { addr, (uintptr_t) page, PAGE, 0, 0 };
    ioctl (n->uffd, UFFDIO_COPY, &c);
  }
  free (page);
  return NULL;
}

static double
naive_once (struct r3m_backend *b, uint64_t size, const uint64_t *order)
{
  struct naive n = { .b = b };
  n.uffd = (int) syscall (SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
  struct uffdio_api api = { .api = UFFD_API };
  if (n.uffd < 0 || ioctl (n.uffd, UFFDIO_API, &api) < 0)
    abort ();
  n.base = mmap (NULL, size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  madvise (n.base, size, MADV_NOHUGEPAGE);
  struct uffdio_register reg = { { (uintptr_t) n.base, size },
                                 UFFDIO_REGISTER_MODE_MISSING, 0 };
  if (ioctl (n.uffd, UFFDIO_REGISTER, &reg) < 0)
    abort ();
  int sp[2];
  if (pipe (sp) < 0)
    abort ();
  n.stop = sp[0];
  pthread_t th;
  pthread_create (&th, NULL, naive_handler, &n);
  double s = touch_read (n.base, order, size / PAGE);
  if (write (sp[1], "x", 1) != 1)
    abort ();
  pthread_join (th, NULL);
  munmap (n.base, size);
  close (n.uffd);
  close (sp[0]);
  close (sp[1]);
  return s;
}

/* ---- first-fault latency: each touch lands in a chunk not yet here ---- */

static void
latency (struct r3m_backend *b, const char *name, const struct opts *o)
{
  struct r3m_uffd_options uo;
  r3m_uffd_options_init (&uo);
  uo.region.chunk_size = o->chunk;
  uo.region.pull_workers = 0;
  uo.track = R3M_UFFD_TRACK_NONE;
  struct r3m_uffd *u;
  struct r3m_error err;
  if (r3m_uffd_map (b, &uo, &u, &err) < 0) {
    fprintf (stderr, "%s\n", err.msg);
    exit (1);
  }
  uint64_t chunks = r3m_backend_size (b) / o->chunk;
  unsigned n = o->latency < chunks ? o->latency : (unsigned) chunks;
  uint64_t *order = page_order (chunks, true);
  double *lat = malloc (n * sizeof *lat);
  const volatile unsigned char *p = r3m_uffd_addr (u);
  for (unsigned i = 0; i < n; i++) {
    uint64_t t0 = util_now_ns ();
    sink += p[order[i] * o->chunk + 100];
    lat[i] = (double) (util_now_ns () - t0) / 1e3;
  }
  r3m_uffd_unmap (u, NULL);
  qsort (lat, n, sizeof *lat, cmp_double);
  struct row *r = &rows[nrows++];
  snprintf (r->name, sizeof r->name, "first-fault latency, %s (us): p50 "
            "%.1f, p90 %.1f, p99 %.1f", name, lat[n / 2], lat[n * 9 / 10],
            lat[n * 99 / 100]);
  r->gbps = r->secs = r->ratio = -1;
  r->secs = lat[n / 2];
  free (lat);
  free (order);
}

static void
add_row (const char *name, double *secs, int n, uint64_t bytes,
         double anon_secs)
{
  struct row *r = &rows[nrows++];
  snprintf (r->name, sizeof r->name, "%s", name);
  r->secs = median (secs, n);
  r->gbps = (double) bytes / r->secs / 1e9;
  r->ratio = anon_secs > 0 ? anon_secs / r->secs * (double) bytes
                             / (double) bytes : 0;
}

static void
run_backend (struct r3m_backend *b, const char *label, const struct opts *o,
             const double anon[2])
{
  uint64_t pages = r3m_backend_size (b) / PAGE;
  for (int rnd = 0; rnd < 2; rnd++) {
    uint64_t *order = page_order (pages, rnd);
    double s[16];
    for (int i = 0; i < o->repeat; i++)
      s[i] = uffd_once (b, o, order, pages);
    char name[96];
    snprintf (name, sizeof name, "r3map uffd, %s, %s", label,
              rnd ? "random" : "sequential");
    add_row (name, s, o->repeat, pages * PAGE, anon[rnd]);
    free (order);
  }
}

static void
parse (int argc, char **argv, struct opts *o)
{
  *o = (struct opts) { .size = 1ull << 30, .naive_size = 256ull << 20,
                       .chunk = 65536, .repeat = 3, .latency = 2000 };
  /* Every option takes a value: step over both. */
  for (int i = 1; i < argc; i += 2) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    uint64_t x;
    if (!v)
      goto usage;
    if (!strcmp (a, "--size") && util_parse_size (v, &x) == 0)
      o->size = x;
    else if (!strcmp (a, "--naive-size") && util_parse_size (v, &x) == 0)
      o->naive_size = x;
    else if (!strcmp (a, "--chunk") && util_parse_size (v, &x) == 0)
      o->chunk = (uint32_t) x;
    else if (!strcmp (a, "--repeat"))
      o->repeat = atoi (v) < 1 ? 1 : atoi (v) > 15 ? 15 : atoi (v);
    else if (!strcmp (a, "--latency"))
      o->latency = (unsigned) atoi (v);
    else if (!strcmp (a, "--json"))
      o->json = v;
    else if (!strcmp (a, "--uri") && o->nuris < 8)
      o->uris[o->nuris++] = v;
    else
      goto usage;
  }
  return;
usage:
  fprintf (stderr, "usage: uffd_bench [--size 1G] [--chunk 64K] [--repeat 3]"
           " [--naive-size 256M] [--latency N] [--uri URI]... [--json FILE]\n");
  exit (2);
}

static void
report (const struct opts *o)
{
  printf ("\n| case | median s | GB/s | vs anonymous first touch |\n"
          "|---|---:|---:|---:|\n");
  for (int i = 0; i < nrows; i++) {
    struct row *r = &rows[i];
    if (r->gbps < 0)
      printf ("| %s | | | |\n", r->name);
    else
      printf ("| %s | %.3f | %.2f | %.0f%% |\n", r->name, r->secs, r->gbps,
              r->ratio * 100);
  }
  if (!o->json)
    return;
  FILE *f = fopen (o->json, "w");
  if (!f) {
    perror (o->json);
    return;
  }
  fprintf (f, "{\n  \"size\": %" PRIu64 ", \"chunk\": %u, \"repeat\": %d,"
           "\n  \"rows\": [\n", o->size, o->chunk, o->repeat);
  for (int i = 0; i < nrows; i++)
    fprintf (f, "    {\"case\": \"%s\", \"median_s\": %.6f, \"gbps\": %.4f,"
             " \"ratio_to_anon\": %.4f}%s\n", rows[i].name, rows[i].secs,
             rows[i].gbps, rows[i].ratio, i + 1 < nrows ? "," : "");
  fprintf (f, "  ]\n}\n");
  fclose (f);
}

int
main (int argc, char **argv)
{
  struct opts o;
  parse (argc, argv, &o);
  uint64_t pages = o.size / PAGE;
  struct r3m_backend *mem = filled_memory (o.size);
  /* The first touch of guest memory the VM never backed is much slower
   * than of memory it backed before: warm up, then alternate the ceiling
   * and the mapping in each repetition so both see the same machine. */
  uint64_t *warm = page_order (2 * pages, false);
  anon_once (2 * o.size, warm);
  free (warm);
  double anon[2];
  for (int rnd = 0; rnd < 2; rnd++) {
    uint64_t *order = page_order (pages, rnd);
    double a[16], m[16];
    for (int i = 0; i < o.repeat; i++) {
      a[i] = anon_once (o.size, order);
      m[i] = uffd_once (mem, &o, order, pages);
    }
    add_row (rnd ? "anonymous memory (ceiling), random"
             : "anonymous memory (ceiling), sequential", a, o.repeat,
             o.size, 0);
    anon[rnd] = rows[nrows - 1].secs;
    rows[nrows - 1].ratio = 1;
    add_row (rnd ? "r3map uffd, memory backend, random"
             : "r3map uffd, memory backend, sequential", m, o.repeat,
             o.size, anon[rnd]);
    free (order);
  }

  /* The naive handler on a smaller size (it is that slow); its ratio is
   * by rate, against the ceiling's rate. */
  struct r3m_backend *small = filled_memory (o.naive_size);
  for (int rnd = 0; rnd < 2; rnd++) {
    uint64_t np = o.naive_size / PAGE;
    uint64_t *order = page_order (np, rnd);
    double s = naive_once (small, o.naive_size, order);
    char name[96];
    snprintf (name, sizeof name, "naive 4 KiB per fault, memory backend "
              "(%s), %s", rnd ? "random" : "sequential",
              o.naive_size == o.size ? "same size" : "smaller size");
    add_row (name, &s, 1, o.naive_size, 0);
    rows[nrows - 1].ratio = rows[nrows - 1].gbps / ((double) o.size
                                                    / anon[rnd] / 1e9);
    free (order);
  }
  r3m_backend_close (small);
  latency (mem, "memory backend", &o);
  r3m_backend_close (mem);

  for (int i = 0; i < o.nuris; i++) {
    struct r3m_backend *b;
    struct r3m_error err;
    if (r3m_backend_open (o.uris[i], R3M_OPEN_READ_ONLY, &b, &err) < 0) {
      fprintf (stderr, "uffd_bench: %s: %s (skipped)\n", o.uris[i], err.msg);
      continue;
    }
    run_backend (b, o.uris[i], &o, anon);
    latency (b, o.uris[i], &o);
    r3m_backend_close (b);
  }
  report (&o);
  return sink == 42;
}
