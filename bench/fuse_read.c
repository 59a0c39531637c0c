/* fuse_read: read a file the three ways the FUSE benchmark compares, and
 * print the rate.  Used by bench/fuse_vs_nbdfuse.sh on our mount, on
 * nbdfuse's and on tmpfs alike, so that only the file system differs.
 *
 *   fuse_read seq  FILE            pread 1 MiB at a time, front to back
 *   fuse_read mmap FILE            map the file (MAP_SHARED, read-only) and
 *                                  read 8 bytes of every 4 KiB page in order
 *   fuse_read rand FILE THREADS N  THREADS threads each pread N random
 *                                  4 KiB blocks (fixed seeds, so every file
 *                                  system gets the same offsets)
 *
 * Prints one line: "MODE BYTES SECONDS MB/s CHECKSUM" (MB = 10^6 bytes).
 * The checksum (a sum of what was read) shows that all file systems
 * returned the same data, and keeps the compiler from dropping the reads.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double
now (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static uint64_t
sum64 (const void *p, size_t len)
{
  const unsigned char *b = p;
  uint64_t s = 0, w;
  for (size_t i = 0; i + 8 <= len; i += 4096) {
    memcpy (&w, b + i, 8);
    s += w;
  }
  return s;
}

static int
seq (int fd, uint64_t size, uint64_t *check)
{
  size_t bs = 1 << 20;
  void *buf = aligned_alloc (4096, bs);
  if (!buf)
    return -1;
  for (uint64_t off = 0; off < size; off += bs) {
    ssize_t n = pread (fd, buf, bs, (off_t) off);
    if (n <= 0) {
      perror ("pread");
      free (buf);
      return -1;
    }
    *check += sum64 (buf, (size_t) n);
  }
  free (buf);
  return 0;
}

static int
scan (int fd, uint64_t size, uint64_t *check)
{
  const unsigned char *p = mmap (NULL, size, PROT_READ, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    perror ("mmap");
    return -1;
  }
  *check += sum64 (p, size);
  munmap ((void *) p, size);
  return 0;
}

struct rand_job {
  int fd;
  uint64_t blocks;              /* 4 KiB blocks in the file */
  unsigned seed;
  long reads;
  uint64_t check;
  int failed;
};

static void *
rand_main (void *arg)
{
  struct rand_job *j = arg;
  unsigned char buf[4096];
  uint64_t x = 0x9e3779b97f4a7c15u * (j->seed + 1);
  for (long i = 0; i < j->reads; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    off_t off = (off_t) ((x % j->blocks) * 4096);
    if (pread (j->fd, buf, sizeof buf, off) != (ssize_t) sizeof buf) {
      j->failed = 1;
      return NULL;
    }
    j->check += sum64 (buf, sizeof buf);
  }
  return NULL;
}

static int
rnd (int fd, uint64_t size, int threads, long reads, uint64_t *check)
{
  struct rand_job jobs[64];
  pthread_t t[64];
  if (threads < 1 || threads > 64)
    return -1;
  for (int i = 0; i < threads; i++) {
    jobs[i] = (struct rand_job) { .fd = fd, .blocks = size / 4096,
                                  .seed = (unsigned) i, .reads = reads };
    pthread_create (&t[i], NULL, rand_main, &jobs[i]);
  }
  int failed = 0;
  for (int i = 0; i < threads; i++) {
    pthread_join (t[i], NULL);
    failed |= jobs[i].failed;
    *check += jobs[i].check;
  }
  if (failed)
    fprintf (stderr, "fuse_read: a random pread failed\n");
  return failed ? -1 : 0;
}

int
main (int argc, char **argv)
{
  if (argc < 3) {
    fprintf (stderr, "usage: fuse_read seq|mmap FILE | rand FILE THREADS N\n");
    return 2;
  }
  const char *mode = argv[1];
  int fd = open (argv[2], O_RDONLY);
  struct stat st;
  if (fd < 0 || fstat (fd, &st) < 0) {
    perror (argv[2]);
    return 1;
  }
  uint64_t size = (uint64_t) st.st_size, check = 0, bytes = size;
  double t0 = now ();
  int r;
  if (strcmp (mode, "seq") == 0)
    r = seq (fd, size, &check);
  else if (strcmp (mode, "mmap") == 0)
    r = scan (fd, size, &check);
  else if (strcmp (mode, "rand") == 0 && argc == 5) {
    int threads = atoi (argv[3]);
    long n = atol (argv[4]);
    r = rnd (fd, size, threads, n, &check);
    bytes = (uint64_t) threads * (uint64_t) n * 4096;
  } else {
    fprintf (stderr, "fuse_read: bad mode '%s'\n", mode);
    return 2;
  }
  double secs = now () - t0;
  close (fd);
  if (r < 0)
    return 1;
  printf ("%s %" PRIu64 " %.4f %.1f %016" PRIx64 "\n", mode, bytes, secs,
          (double) bytes / secs / 1e6, check);
  return 0;
}
