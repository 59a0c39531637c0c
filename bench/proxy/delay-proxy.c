/* delay-proxy: a TCP (or Unix socket) forwarder that adds a fixed one-way
 * delay in each direction without limiting bandwidth, so that a bulk
 * transfer through it sees RTT = 2 x delay at full throughput.  This
 * machine has no netem; this is the user-space stand-in.
 *
 *   delay-proxy --target HOST:PORT|unix:PATH --delay 5ms
 *               [--listen HOST:PORT|unix:PATH] [--buffer 256M]
 *               [--ready-file FILE]
 *
 * It prints "listening on HOST:PORT" (the real port when 0 was asked,
 * the default) and writes the same address to --ready-file once it
 * accepts, so scripts can wait for it without sleeping.
 *
 * How the delay is kept without capping bandwidth: each direction holds
 * its bytes in a chain of pipes (spliced in and out, never copied through
 * user space) and a queue of (end position, due time) marks.  Every read
 * from the source appends its bytes and a mark "these bytes may leave at
 * now + delay"; the writer sends everything whose mark is due.  Data is
 * never slept on per packet: a whole window of in-flight bytes waits at
 * once, as it would in a long cable.  A
 * connection pair is served by one thread with ppoll (nanosecond
 * timeouts), for both directions.  When --buffer bytes wait the proxy
 * stops reading, and TCP flow control pushes back on the sender.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MARKS      65536            /* per direction */
#define COALESCE   (50 * 1000)      /* ns: reads this close share a mark
                                       (bytes leave at most this early) */
#define MAX_IO     (1 << 20)

struct mark {
  uint64_t end;                     /* stream position after these bytes */
  uint64_t due;                     /* CLOCK_MONOTONIC ns they may leave */
};

struct pipebuf;

struct dir {
  int from, to;
  struct pipebuf *pipes;
  unsigned r, w;                    /* first and last pipe in use */
  uint64_t size;                    /* most bytes held at once */
  uint64_t in, out;                 /* bytes read in / written out */
  struct mark *marks;
  unsigned mhead, mtail;            /* marks[mhead..mtail) pending */
  bool eof, done;                   /* source ended; all sent and shut */
};

struct opts {
  const char *target, *listen, *ready_file;
  uint64_t delay_ns;
  uint64_t buffer;
};

static uint64_t
now_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

/* ---- addresses ------------------------------------------------------- */

/* "unix:PATH" or "HOST:PORT" ("[v6]:PORT"): a connected or listening fd. */
static int
open_addr (const char *addr, bool listening, char *real, size_t reallen)
{
  if (strncmp (addr, "unix:", 5) == 0) {
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf (sa.sun_path, sizeof sa.sun_path, "%s", addr + 5);
    int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listening)
      unlink (sa.sun_path);
    int r = listening ? bind (fd, (struct sockaddr *) &sa, sizeof sa)
                      : connect (fd, (struct sockaddr *) &sa, sizeof sa);
    if (r < 0 || (listening && listen (fd, 64) < 0)) {
      close (fd);
      return -1;
    }
    if (real)
      snprintf (real, reallen, "%s", addr);
    return fd;
  }
  char host[256];
  snprintf (host, sizeof host, "%s", addr);
  char *colon = strrchr (host, ':');
  if (!colon)
    return -1;
  *colon = '\0';
  const char *port = colon + 1;
  char *h = host;
  if (h[0] == '[' && h[strlen (h) - 1] == ']') {
    h[strlen (h) - 1] = '\0';
    h++;
  }
  struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
                            .ai_flags = listening ? AI_PASSIVE : 0 };
  struct addrinfo *res;
  if (getaddrinfo (h, port, &hints, &res) != 0)
    return -1;
  int fd = socket (res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  int r = listening ? bind (fd, res->ai_addr, res->ai_addrlen)
                    : connect (fd, res->ai_addr, res->ai_addrlen);
  freeaddrinfo (res);
  if (r < 0 || (listening && listen (fd, 64) < 0)) {
    close (fd);
    return -1;
  }
  setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (real) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname (fd, (struct sockaddr *) &ss, &sl);
    char hb[128], pb[16];
    getnameinfo ((struct sockaddr *) &ss, sl, hb, sizeof hb, pb, sizeof pb,
                 NI_NUMERICHOST | NI_NUMERICSERV);
    snprintf (real, reallen, strchr (hb, ':') ? "[%s]:%s" : "%s:%s", hb, pb);
  }
  return fd;
}

/* ---- one direction ---------------------------------------------------- */

/* The bytes of a direction wait in a chain of pipes, moved in and out with
 * splice(2): no copy through user space, which on a small machine halves
 * the CPU a forwarded byte costs.  pipes[r..w] (mod MAX_PIPES) hold data
 * in order; w is the one being filled. */
#define MAX_PIPES  1024
#define PIPE_SIZE  (4u << 20)

struct pipebuf {
  int rd, wr;                       /* -1 until first used */
  uint64_t bytes;                   /* queued in it */
};

static int
dir_init (struct dir *d, int from, int to, uint64_t limit)
{
  memset (d, 0, sizeof *d);
  d->from = from;
  d->to = to;
  d->size = limit;
  d->pipes = calloc (MAX_PIPES, sizeof *d->pipes);
  d->marks = malloc (MARKS * sizeof *d->marks);
  if (!d->pipes || !d->marks)
    return -1;
  for (unsigned i = 0; i < MAX_PIPES; i++)
    d->pipes[i].rd = d->pipes[i].wr = -1;
  return 0;
}

static void
dir_free (struct dir *d)
{
  for (unsigned i = 0; d->pipes && i < MAX_PIPES; i++)
    if (d->pipes[i].rd >= 0) {
      close (d->pipes[i].rd);
      close (d->pipes[i].wr);
    }
  free (d->pipes);
  free (d->marks);
}

static struct pipebuf *
pipe_at (struct dir *d, unsigned i)
{
  struct pipebuf *p = &d->pipes[i % MAX_PIPES];
  if (p->rd < 0) {
    int fds[2];
    if (pipe2 (fds, O_NONBLOCK | O_CLOEXEC) < 0)
      return NULL;
    /* As big as allowed: fewer pipes, fewer hops between them. */
    if (fcntl (fds[1], F_SETPIPE_SZ, PIPE_SIZE) < 0)
      fcntl (fds[1], F_SETPIPE_SZ, 1 << 20);
    p->rd = fds[0];
    p->wr = fds[1];
  }
  return p;
}

static bool
can_read (const struct dir *d)
{
  return !d->eof && d->in - d->out < d->size
         && d->mtail - d->mhead < MARKS - 1
         && d->w - d->r < MAX_PIPES - 1;
}

/* Bytes that may leave now; *next is the due time of the first mark not
 * yet due (or 0). */
static uint64_t
sendable (struct dir *d, uint64_t now, uint64_t *next)
{
  *next = 0;
  uint64_t upto = d->out;
  for (unsigned i = d->mhead; i != d->mtail; i++) {
    struct mark *m = &d->marks[i % MARKS];
    if (m->due > now) {
      *next = m->due;
      break;
    }
    upto = m->end;
  }
  return upto - d->out;
}

static bool
pipe_has_room (int wr)
{
  struct pollfd p = { .fd = wr, .events = POLLOUT };
  return poll (&p, 1, 0) == 1 && (p.revents & POLLOUT);
}

/* One splice into the chain: 1 if more may follow, 0 if the socket is
 * drained (or ended), -1 on error. */
static int
read_once (struct dir *d, uint64_t delay)
{
  struct pipebuf *p = pipe_at (d, d->w);
  if (!p)
    return -1;
  size_t n = MAX_IO;
  ssize_t r = splice (d->from, NULL, p->wr, NULL, n,
                      SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
  if (r < 0) {
    if (errno != EAGAIN && errno != EINTR)
      return -1;
    /* The socket is empty, or this pipe is full: then use the next. */
    if (errno == EAGAIN && p->bytes > 0 && !pipe_has_room (p->wr)) {
      d->w++;
      return 1;
    }
    return 0;
  }
  if (r == 0) {
    d->eof = true;
    return 0;
  }
  p->bytes += (uint64_t) r;
  d->in += (uint64_t) r;
  uint64_t due = now_ns () + delay;
  if (d->mtail != d->mhead) {
    struct mark *last = &d->marks[(d->mtail - 1) % MARKS];
    if (due - last->due < COALESCE) {
      last->end = d->in;          /* keeps the queue short at high rates */
      return 1;
    }
  }
  d->marks[d->mtail++ % MARKS] = (struct mark) { .end = d->in, .due = due };
  return 1;
}

/* Read until the socket is drained, the chain is full or a round's worth
 * came in (so the other direction gets its turn). */
static int
do_read (struct dir *d, uint64_t delay)
{
  for (unsigned i = 0; i < 16 && can_read (d); i++) {
    int r = read_once (d, delay);
    if (r <= 0)
      return r;
  }
  return 0;
}

/* Send what is due until the socket is full. */
static int
do_write (struct dir *d)
{
  for (unsigned i = 0; i < 32; i++) {
    uint64_t next;
    uint64_t n = sendable (d, now_ns (), &next);
    if (n == 0)
      return 0;
    struct pipebuf *p = &d->pipes[d->r % MAX_PIPES];
    if (p->bytes == 0) {
      if (d->r == d->w)
        return 0;                 /* cannot happen: n > 0 means queued */
      d->r++;
      continue;
    }
    size_t k = n < p->bytes ? (size_t) n : (size_t) p->bytes;
    if (k > MAX_IO)
      k = MAX_IO;
    ssize_t r = splice (p->rd, NULL, d->to, NULL, k,
                        SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
    if (r < 0)
      return errno == EINTR || errno == EAGAIN ? 0 : -1;
    p->bytes -= (uint64_t) r;
    d->out += (uint64_t) r;
    while (d->mhead != d->mtail && d->marks[d->mhead % MARKS].end <= d->out)
      d->mhead++;
    if (p->bytes == 0 && d->r != d->w)
      d->r++;
    if ((size_t) r < k)
      return 0;
  }
  return 0;
}

/* ---- a connection pair ------------------------------------------------ */

struct pair {
  int a, b;                         /* client side, server side */
  const struct opts *o;
};

static void *
pump (void *arg)
{
  struct pair *p = arg;
  struct dir d[2];
  /* splice blocks on a blocking socket whatever its flags say. */
  fcntl (p->a, F_SETFL, fcntl (p->a, F_GETFL) | O_NONBLOCK);
  fcntl (p->b, F_SETFL, fcntl (p->b, F_GETFL) | O_NONBLOCK);
  if (dir_init (&d[0], p->a, p->b, p->o->buffer) < 0
      || dir_init (&d[1], p->b, p->a, p->o->buffer) < 0)
    goto out;
  while (!(d[0].done && d[1].done)) {
    uint64_t now = now_ns (), wake = 0;
    struct pollfd fds[2] = { { .fd = p->a }, { .fd = p->b } };
    uint64_t ready[2];
    for (int i = 0; i < 2; i++) {
      uint64_t next;
      ready[i] = sendable (&d[i], now, &next);
      if (next && (!wake || next < wake))
        wake = next;
      if (can_read (&d[i]))
        fds[i].events |= POLLIN;             /* d[0] reads a, d[1] reads b */
      if (ready[i] > 0)
        fds[1 - i].events |= POLLOUT;        /* d[0] writes b */
      if (d[i].eof && d[i].in == d[i].out && !d[i].done) {
        shutdown (d[i].to, SHUT_WR);
        d[i].done = true;
      }
    }
    if (d[0].done && d[1].done)
      break;
    /* A socket with nothing to wait for is left out: its POLLHUP after a
     * half close would wake us in a loop. */
    for (int k = 0; k < 2; k++)
      if (fds[k].events == 0)
        fds[k].fd = -1;
    struct timespec ts, *tp = NULL;
    if (wake) {
      uint64_t w = wake > now ? wake - now : 0;
      ts.tv_sec = (time_t) (w / 1000000000u);
      ts.tv_nsec = (long) (w % 1000000000u);
      tp = &ts;
    }
    if (ppoll (fds, 2, tp, NULL) < 0 && errno != EINTR)
      break;
    bool failed = false;
    for (int i = 0; i < 2 && !failed; i++) {
      if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) && can_read (&d[i]))
        failed |= do_read (&d[i], p->o->delay_ns) < 0;
      if (fds[1 - i].revents & (POLLOUT | POLLERR))
        failed |= do_write (&d[i]) < 0;
    }
    if (failed)
      break;
  }
out:
  dir_free (&d[0]);
  dir_free (&d[1]);
  close (p->a);
  close (p->b);
  free (p);
  return NULL;
}

/* ---- main --------------------------------------------------------------- */

static int
parse_duration (const char *s, uint64_t *ns)
{
  char *end;
  double v = strtod (s, &end);
  if (end == s || v < 0)
    return -1;
  double mult = !*end || !strcmp (end, "s") ? 1e9 : !strcmp (end, "ms") ? 1e6
                : !strcmp (end, "us") ? 1e3 : !strcmp (end, "ns") ? 1 : -1;
  if (mult < 0)
    return -1;
  *ns = (uint64_t) (v * mult + 0.5);
  return 0;
}

static int
parse_size (const char *s, uint64_t *out)
{
  char *end;
  unsigned long long v = strtoull (s, &end, 10);
  int shift = *end == 'K' || *end == 'k' ? 10 : *end == 'M' ? 20
              : *end == 'G' ? 30 : *end ? -1 : 0;
  if (shift < 0 || end == s)
    return -1;
  *out = (uint64_t) v << shift;
  return 0;
}

static void
usage (void)
{
  fprintf (stderr, "usage: delay-proxy --target HOST:PORT|unix:PATH "
           "--delay DURATION [--listen HOST:PORT|unix:PATH] "
           "[--buffer SIZE] [--ready-file FILE]\n");
  exit (2);
}

int
main (int argc, char **argv)
{
  struct opts o = { .listen = "127.0.0.1:0", .buffer = 256u << 20 };
  bool have_delay = false;
  static const struct option lo[] = {
    { "target", 1, NULL, 't' }, { "listen", 1, NULL, 'l' },
    { "delay", 1, NULL, 'd' }, { "buffer", 1, NULL, 'b' },
    { "ready-file", 1, NULL, 'r' }, { NULL, 0, NULL, 0 },
  };
  int c;
  while ((c = getopt_long (argc, argv, "", lo, NULL)) != -1) {
    switch (c) {
    case 't': o.target = optarg; break;
    case 'l': o.listen = optarg; break;
    case 'r': o.ready_file = optarg; break;
    case 'd':
      if (parse_duration (optarg, &o.delay_ns) < 0)
        usage ();
      have_delay = true;
      break;
    case 'b':
      if (parse_size (optarg, &o.buffer) < 0 || o.buffer < 65536
          || (o.buffer & (o.buffer - 1)))
        usage ();
      break;
    default: usage ();
    }
  }
  if (!o.target || !have_delay || optind != argc)
    usage ();
  signal (SIGPIPE, SIG_IGN);

  char real[300];
  int lfd = open_addr (o.listen, true, real, sizeof real);
  if (lfd < 0) {
    fprintf (stderr, "delay-proxy: cannot listen on %s: %s\n", o.listen,
             strerror (errno));
    return 1;
  }
  printf ("listening on %s\n", real);
  fflush (stdout);
  /* Each connection may hold many pipes. */
  struct rlimit rl;
  if (getrlimit (RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit (RLIMIT_NOFILE, &rl);
  }
  if (o.ready_file) {
    char tmp[4096];
    snprintf (tmp, sizeof tmp, "%s.tmp", o.ready_file);
    FILE *f = fopen (tmp, "w");
    if (!f || fprintf (f, "%s\n", real) < 0 || fclose (f) != 0
        || rename (tmp, o.ready_file) < 0) {
      fprintf (stderr, "delay-proxy: %s: %s\n", o.ready_file,
               strerror (errno));
      return 1;
    }
  }
  for (;;) {
    int a = accept4 (lfd, NULL, NULL, SOCK_CLOEXEC);
    if (a < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      perror ("delay-proxy: accept");
      return 1;
    }
    int one = 1;
    setsockopt (a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int b = open_addr (o.target, false, NULL, 0);
    if (b < 0) {
      fprintf (stderr, "delay-proxy: cannot connect to %s: %s\n", o.target,
               strerror (errno));
      close (a);
      continue;
    }
    struct pair *p = malloc (sizeof *p);
    *p = (struct pair) { .a = a, .b = b, .o = &o };
    pthread_t t;
    if (pthread_create (&t, NULL, pump, p) != 0) {
      close (a);
      close (b);
      free (p);
      continue;
    }
    pthread_detach (t);
  }
}
