/* What a fresh cache page costs on this machine: maps SIZE of anonymous
 * memory, faults it in with MADV_POPULATE_WRITE in STEP pieces (4 KiB
 * pages, or transparent huge pages with --huge) and prints the seconds per
 * GiB.  The FUSE mount's memory: cache pays this for every chunk it pulls,
 * on top of what any FUSE client pays for the kernel's page cache
 * (docs/fuse.md).  Run it a few seconds after other memory was freed to see
 * the "cold" figure of a VM with free page reporting.  Each GiB's own
 * figure is printed too: on such a VM the first GiBs come from memory
 * freed a moment ago (warm) and the rest from memory the host has taken
 * back (cold), which costs several times more (docs/benchmarks.md).
 *
 *   page_populate [--huge] [SIZE_MIB [STEP_KIB]]      (default 1024 1024) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

static double
now (void)
{
  struct timespec t;
  clock_gettime (CLOCK_MONOTONIC, &t);
  return (double) t.tv_sec + (double) t.tv_nsec / 1e9;
}

int
main (int argc, char **argv)
{
  int a = 1;
  int huge = argc > 1 && strcmp (argv[1], "--huge") == 0;
  a += huge;
  size_t mib = argc > a ? strtoul (argv[a], NULL, 10) : 1024;
  size_t step = (argc > a + 1 ? strtoul (argv[a + 1], NULL, 10) : 1024) << 10;
  size_t size = mib << 20, align = 2u << 20;
  if (mib == 0 || step == 0 || step % 4096 || size % step) {
    fprintf (stderr, "usage: page_populate [--huge] [SIZE_MIB [STEP_KIB]]"
             " (STEP a multiple of 4 that divides SIZE)\n");
    return 2;
  }
  char *raw = mmap (NULL, size + align, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) {
    perror ("mmap");
    return 1;
  }
  /* 2 MiB alignment, so that --huge can get whole huge pages. */
  char *p = (char *) (((unsigned long) raw + align - 1) & ~(align - 1));
  madvise (p, size, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
  double t0 = now (), tg = t0;
  size_t gib = (size_t) 1 << 30;
  for (size_t o = 0; o < size; o += step) {
    if (madvise (p + o, step, MADV_POPULATE_WRITE) != 0) {
      perror ("madvise(MADV_POPULATE_WRITE)");
      return 1;
    }
    if ((o + step) % gib == 0 && size > gib) {
      double t = now ();
      printf ("  GiB %zu: %.3f s\n", (o + step) / gib, t - tg);
      tg = t;
    }
  }
  double t1 = now ();
  memset (p, 1, size);      /* the same memory again, now present */
  double t2 = now ();
  double gibs = (double) size / (1u << 30);
  printf ("%s pages, %zu KiB steps: populate %.3f s/GiB, then writing it "
          "%.3f s/GiB\n", huge ? "huge" : "4 KiB", step >> 10,
          (t1 - t0) / gibs, (t2 - t1) / gibs);
  munmap (raw, size + align);
  return 0;
}
