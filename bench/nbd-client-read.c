/* nbd-client-read: read a whole backend as fast as the client allows and
 * throw the bytes away -- the r3map side of the RTT benchmark, until
 * `r3map copy` exists to do the same through the region engine.
 *
 *   nbd-client-read URI [--chunk SIZE] [--window N]
 *
 * Keeps WINDOW requests of CHUNK bytes in flight with r3m_backend_submit
 * (defaults 1M and 128: 128 MiB in flight, twice the bandwidth-delay
 * product of 1.6 GB/s at 40 ms RTT)
 * and prints one line of JSON: bytes, seconds to open (handshakes),
 * seconds to read, and the read rate.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <r3map/backend.h>
#include <r3map/nbd_client.h>

#include "util/size.h"
#include "util/time.h"

struct state {
  struct r3m_backend *b;
  pthread_mutex_t lock;      /* guards everything below */
  pthread_cond_t cond;
  uint64_t next, size;       /* next offset to ask for */
  size_t chunk;
  unsigned busy;
  int error;
};

struct req {
  struct r3m_io io;
  struct state *s;
};

static void refill (struct state *s, struct req *q);

static void
done (struct r3m_io *io, int result)
{
  struct req *q = io->user;
  struct state *s = q->s;
  pthread_mutex_lock (&s->lock);
  if (result < 0 && s->error == 0)
    s->error = result;
  s->busy--;
  pthread_cond_signal (&s->cond);
  pthread_mutex_unlock (&s->lock);
  /* Reuse the request at once: a done callback may submit (the client
   * queues it and never writes from its reader thread). */
  refill (s, q);
}

/* Give q the next piece, if any is left and nothing failed. */
static void
refill (struct state *s, struct req *q)
{
  pthread_mutex_lock (&s->lock);
  if (s->error || s->next >= s->size) {
    pthread_mutex_unlock (&s->lock);
    return;
  }
  uint64_t off = s->next;
  size_t n = s->size - off < s->chunk ? (size_t) (s->size - off) : s->chunk;
  s->next += n;
  s->busy++;
  pthread_mutex_unlock (&s->lock);
  q->io = (struct r3m_io) { .op = R3M_IO_READ, .buf = q->io.buf, .len = n,
                            .off = off, .done = done, .user = q };
  int r = r3m_backend_submit (s->b, &q->io);
  if (r < 0) {
    pthread_mutex_lock (&s->lock);
    if (s->error == 0)
      s->error = r;
    s->busy--;
    pthread_cond_signal (&s->cond);
    pthread_mutex_unlock (&s->lock);
  }
}

int
main (int argc, char **argv)
{
  uint64_t chunk = 1 << 20, window = 128;
  static const struct option lo[] = {
    { "chunk", 1, NULL, 'c' }, { "window", 1, NULL, 'w' },
    { NULL, 0, NULL, 0 },
  };
  int c;
  while ((c = getopt_long (argc, argv, "", lo, NULL)) != -1) {
    if ((c != 'c' && c != 'w')
        || util_parse_size (optarg, c == 'c' ? &chunk : &window) < 0) {
      fprintf (stderr, "usage: nbd-client-read URI [--chunk SIZE] "
               "[--window N]\n");
      return 2;
    }
  }
  if (optind != argc - 1 || chunk == 0 || window == 0 || chunk > (1u << 30)) {
    fprintf (stderr, "usage: nbd-client-read URI [--chunk SIZE] "
             "[--window N]\n");
    return 2;
  }

  struct state s = { .chunk = (size_t) chunk };
  pthread_mutex_init (&s.lock, NULL);
  pthread_cond_init (&s.cond, NULL);
  uint64_t t0 = util_now_ns ();
  struct r3m_error err;
  if (r3m_backend_open (argv[optind], R3M_OPEN_READ_ONLY, &s.b, &err) < 0) {
    fprintf (stderr, "nbd-client-read: %s\n", err.msg);
    return 1;
  }
  uint64_t t1 = util_now_ns ();
  s.size = r3m_backend_size (s.b);
  struct req *q = calloc (window, sizeof *q);
  for (uint64_t i = 0; i < window; i++) {
    q[i].s = &s;
    q[i].io.buf = malloc ((size_t) chunk);
    if (!q[i].io.buf) {
      fprintf (stderr, "nbd-client-read: out of memory\n");
      return 1;
    }
  }
  for (uint64_t i = 0; i < window; i++)
    refill (&s, &q[i]);
  pthread_mutex_lock (&s.lock);
  while (s.busy > 0 || (s.next < s.size && s.error == 0))
    pthread_cond_wait (&s.cond, &s.lock);
  int e = s.error;
  pthread_mutex_unlock (&s.lock);
  uint64_t t2 = util_now_ns ();
  if (e < 0) {
    if (r3m_nbd_client_error (s.b, &err) == 0)
      snprintf (err.msg, sizeof err.msg, "%s", strerror (-e));
    fprintf (stderr, "nbd-client-read: %s\n", err.msg);
  }
  r3m_backend_close (s.b);
  for (uint64_t i = 0; i < window; i++)
    free (q[i].io.buf);
  free (q);
  if (e < 0)
    return 1;
  double open_s = (double) (t1 - t0) / 1e9, read_s = (double) (t2 - t1) / 1e9;
  printf ("{\"bytes\": %" PRIu64 ", \"open_s\": %.4f, \"read_s\": %.4f, "
          "\"read_GBps\": %.4f}\n", s.size, open_s, read_s,
          (double) s.size / read_s / 1e9);
  return 0;
}
