/* nbd-client-tool: drives the NBD client backend from shell tests.
 *
 *   nbd-client-tool info URI
 *   nbd-client-tool read URI OFF LEN          > data      (synchronous)
 *   nbd-client-tool write URI OFF [fua]       < data      (synchronous)
 *   nbd-client-tool dump URI [CHUNK [WINDOW]] > data      (asynchronous)
 *   nbd-client-tool load URI [CHUNK [WINDOW]] < data      (asynchronous)
 *   nbd-client-tool zero|trim URI OFF LEN
 *   nbd-client-tool flush URI
 *   nbd-client-tool extents URI OFF LEN
 *
 * Sizes take suffixes (64K, 1M).  On failure it prints "nbd-client-tool:"
 * and the client's reason (r3m_nbd_client_error) and exits 1; exit 2 is a
 * usage error.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <r3map/backend.h>
#include <r3map/nbd_client.h>

#include "util/size.h"

static struct r3m_backend *b;

static void
die (const char *what, int r)
{
  struct r3m_error e;
  if (b && r3m_nbd_client_error (b, &e) != 0)
    fprintf (stderr, "nbd-client-tool: %s: %s\n", what, e.msg);
  else
    fprintf (stderr, "nbd-client-tool: %s: %s\n", what, strerror (-r));
  r3m_backend_close (b);
  exit (1);
}

static uint64_t
size_arg (const char *s)
{
  uint64_t v;
  if (util_parse_size (s, &v) < 0) {
    fprintf (stderr, "nbd-client-tool: '%s' is not a size\n", s);
    exit (2);
  }
  return v;
}

static int
cmd_info (void)
{
  struct r3m_nbd_client_info i;
  if (r3m_nbd_client_info (b, &i) < 0)
    die ("info", -EINVAL);
  const struct r3m_backend_info *bi = r3m_backend_get_info (b);
  printf ("size %" PRIu64 "\nflags 0x%04x\nconnections %u\ninflight %u\n"
          "structured %d\nblock_status %d\ntls %d\nmin_block %" PRIu32
          "\npreferred_block %" PRIu32 "\nmax_payload %" PRIu32
          "\nread_only %d\nalign %" PRIu32 "\nmax_io %" PRIu32 "\n",
          i.size, i.flags, i.connections, i.inflight, i.structured_replies,
          i.block_status, i.tls, i.min_block, i.preferred_block,
          i.max_payload, !!(bi->flags & R3M_BACKEND_READ_ONLY), bi->align,
          bi->max_io);
  return 0;
}

static int
cmd_read (uint64_t off, uint64_t len)
{
  size_t bs = 1 << 20;
  char *buf = malloc (bs);
  while (len > 0) {
    size_t n = len < bs ? len : bs;
    int r = r3m_backend_pread (b, buf, n, off);
    if (r < 0)
      die ("read", r);
    fwrite (buf, 1, n, stdout);
    off += n;
    len -= n;
  }
  free (buf);
  return 0;
}

static int
cmd_write (uint64_t off, unsigned flags)
{
  size_t bs = 1 << 20;
  char *buf = malloc (bs);
  size_t n;
  while ((n = fread (buf, 1, bs, stdin)) > 0) {
    int r = r3m_backend_pwrite (b, buf, n, off, flags);
    if (r < 0)
      die ("write", r);
    off += n;
  }
  free (buf);
  return 0;
}

/* ---- asynchronous dump/load: a window of requests ------------------------ */

struct window {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  unsigned busy;
  int error;
};

struct req {
  struct r3m_io io;
  struct window *w;
  bool finished;             /* guarded by w->lock */
};

static void
req_done (struct r3m_io *io, int result)
{
  struct req *q = io->user;
  pthread_mutex_lock (&q->w->lock);
  if (result < 0 && q->w->error == 0)
    q->w->error = result;
  q->w->busy--;
  q->finished = true;
  pthread_cond_broadcast (&q->w->cond);
  pthread_mutex_unlock (&q->w->lock);
}

/* Read or write the whole backend in CHUNK pieces with WINDOW in flight,
 * keeping output in order. */
static int
cmd_stream (bool load, size_t chunk, unsigned window)
{
  uint64_t size = r3m_backend_size (b);
  struct window w = { .busy = 0 };
  pthread_mutex_init (&w.lock, NULL);
  pthread_cond_init (&w.cond, NULL);
  struct req *q = calloc (window, sizeof *q);
  for (unsigned i = 0; i < window; i++) {
    q[i].io.buf = malloc (chunk);
    q[i].w = &w;
  }
  uint64_t next = 0, out = 0;
  unsigned head = 0;          /* oldest request, completes in order */
  while (out < size) {
    /* Fill the window. */
    while (next < size && next - out < (uint64_t) window * chunk) {
      struct req *r = &q[(next / chunk) % window];
      size_t n = size - next < chunk ? size - next : chunk;
      r->io = (struct r3m_io) { .op = load ? R3M_IO_WRITE : R3M_IO_READ,
                                .buf = r->io.buf, .len = n, .off = next,
                                .done = req_done, .user = r };
      if (load && fread (r->io.buf, 1, n, stdin) != n)
        die ("load: short input", -EIO);
      pthread_mutex_lock (&w.lock);
      w.busy++;
      pthread_mutex_unlock (&w.lock);
      int e = r3m_backend_submit (b, &r->io);
      if (e < 0)
        die (load ? "load" : "dump", e);
      next += n;
    }
    struct req *r = &q[head];
    pthread_mutex_lock (&w.lock);
    while (!r->finished && w.error == 0)
      pthread_cond_wait (&w.cond, &w.lock);
    int e = w.error;
    pthread_mutex_unlock (&w.lock);
    if (e < 0) {
      pthread_mutex_lock (&w.lock);
      while (w.busy > 0)
        pthread_cond_wait (&w.cond, &w.lock);
      pthread_mutex_unlock (&w.lock);
      die (load ? "load" : "dump", e);
    }
    if (!load)
      fwrite (r->io.buf, 1, r->io.len, stdout);
    r->finished = false;
    out += r->io.len;
    head = (head + 1) % window;
  }
  for (unsigned i = 0; i < window; i++)
    free (q[i].io.buf);
  free (q);
  return 0;
}

static int
cmd_extents (uint64_t off, uint64_t len)
{
  struct r3m_extent e[64];
  while (len > 0) {
    size_t n;
    int r = r3m_backend_extents (b, off, len, e, 64, &n);
    if (r < 0)
      die ("extents", r);
    if (n == 0)
      break;
    for (size_t i = 0; i < n && len > 0; i++) {
      uint64_t l = e[i].len < len ? e[i].len : len;
      printf ("%" PRIu64 " %" PRIu64 " %s%s\n", off, l,
              (e[i].flags & R3M_EXTENT_HOLE) ? "hole" : "data",
              (e[i].flags & R3M_EXTENT_ZERO) ? ",zero" : "");
      off += l;
      len -= l;
    }
  }
  return 0;
}

static void
usage (void)
{
  fprintf (stderr, "usage: nbd-client-tool info|read|write|dump|load|zero|"
           "trim|flush|extents URI [ARGS]\n");
  exit (2);
}

int
main (int argc, char **argv)
{
  if (argc < 3)
    usage ();
  const char *cmd = argv[1];
  bool ro = strcmp (cmd, "write") != 0 && strcmp (cmd, "load") != 0
            && strcmp (cmd, "zero") != 0 && strcmp (cmd, "trim") != 0
            && strcmp (cmd, "flush") != 0;
  struct r3m_error err;
  int r = r3m_backend_open (argv[2], ro ? R3M_OPEN_READ_ONLY : 0, &b, &err);
  if (r < 0) {
    fprintf (stderr, "nbd-client-tool: %s\n", err.msg);
    return 1;
  }
  if (strcmp (cmd, "info") == 0)
    r = cmd_info ();
  else if (strcmp (cmd, "read") == 0 && argc == 5)
    r = cmd_read (size_arg (argv[3]), size_arg (argv[4]));
  else if (strcmp (cmd, "write") == 0 && (argc == 4 || argc == 5))
    r = cmd_write (size_arg (argv[3]), argc == 5 ? R3M_IO_FUA : 0);
  else if ((strcmp (cmd, "dump") == 0 || strcmp (cmd, "load") == 0)
           && argc <= 5)
    r = cmd_stream (cmd[0] == 'l', argc > 3 ? size_arg (argv[3]) : 1 << 20,
                    argc > 4 ? (unsigned) size_arg (argv[4]) : 16);
  else if ((strcmp (cmd, "zero") == 0 || strcmp (cmd, "trim") == 0)
           && argc == 5) {
    uint64_t off = size_arg (argv[3]), len = size_arg (argv[4]);
    r = cmd[0] == 'z' ? r3m_backend_zero (b, len, off, 0)
                      : r3m_backend_trim (b, len, off);
    if (r < 0)
      die (cmd, r);
  } else if (strcmp (cmd, "flush") == 0 && argc == 3) {
    if ((r = r3m_backend_flush (b)) < 0)
      die ("flush", r);
  } else if (strcmp (cmd, "extents") == 0 && argc == 5)
    r = cmd_extents (size_arg (argv[3]), size_arg (argv[4]));
  else
    usage ();
  fflush (stdout);
  r3m_backend_close (b);
  return r < 0 ? 1 : 0;
}
