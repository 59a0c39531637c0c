/* The ceiling for the NBD server benchmark: a server that does no work.
 *
 * Where fio is the bottleneck (a whole core against r3map), a faster server
 * can only help by making fio's side of each request cheaper.  This program
 * measures how far that can go: it keeps no data (READs answer zeros,
 * WRITEs are read and dropped), has no worker threads, and answers each
 * batch of requests the way a server with nothing else to do would: read
 * everything the socket holds, then send all the replies with one writev.
 * `--spin` makes it poll the socket instead of sleeping in recv, so that
 * fio never pays for waking it; `--hold US` keeps polling for up to US
 * microseconds after a batch for more requests to answer in the same
 * writev, so that fio is woken less often.  bench/nbd-server-bench.py runs it as
 * server "null" (--null PATH); docs/benchmarks.md has the figures.
 *
 * Speaks just enough NBD for fio's libnbd: fixed newstyle, NO_ZEROES,
 * EXPORT_NAME, INFO/GO, STRUCTURED_REPLY, ABORT; every other option gets
 * ERR_UNSUP.  Not a server for anything but this benchmark: no bounds
 * checks beyond what keeps this process safe, every command succeeds.
 *
 * Usage: nbd-null-server SIZE UNIX-PATH TCP-PORT [--spin | --hold US] */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
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
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define IHAVEOPT 0x49484156454F5054ULL
#define OPT_REPLY_MAGIC 0x0003e889045565a9ULL
#define REQUEST_MAGIC 0x25609513u
#define SIMPLE_MAGIC 0x67446698u
#define STRUCTURED_MAGIC 0x668e33efu
#define REQ_SIZE 28
#define MAX_PAYLOAD (32u << 20)
#define RBUF_SIZE (1u << 20)
#define MAX_BATCH 256           /* replies per writev, 3 iovecs each */

static uint64_t export_size;
static bool spin;
static uint64_t hold_ns;
static const unsigned char *zeros;     /* MAX_PAYLOAD bytes, never written */

static int
read_full (int fd, void *buf, size_t len)
{
  unsigned char *p = buf;
  while (len > 0) {
    ssize_t n = recv (fd, p, len, 0);
    if (n <= 0) {
      if (n < 0 && errno == EINTR)
        continue;
      return -1;
    }
    p += n;
    len -= (size_t) n;
  }
  return 0;
}

static int
write_full (int fd, const void *buf, size_t len)
{
  const unsigned char *p = buf;
  while (len > 0) {
    ssize_t n = send (fd, p, len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    p += n;
    len -= (size_t) n;
  }
  return 0;
}

static void
put64 (unsigned char *p, uint64_t v)
{
  v = htobe64 (v);
  memcpy (p, &v, 8);
}

static void
put32 (unsigned char *p, uint32_t v)
{
  v = htobe32 (v);
  memcpy (p, &v, 4);
}

static void
put16 (unsigned char *p, uint16_t v)
{
  v = htobe16 (v);
  memcpy (p, &v, 2);
}

static uint32_t
get32 (const unsigned char *p)
{
  uint32_t v;
  memcpy (&v, p, 4);
  return be32toh (v);
}

static uint16_t
get16 (const unsigned char *p)
{
  uint16_t v;
  memcpy (&v, p, 2);
  return be16toh (v);
}

static int
opt_reply (int fd, uint32_t opt, uint32_t type, const void *data,
           uint32_t len)
{
  unsigned char h[20];
  put64 (h, OPT_REPLY_MAGIC);
  put32 (h + 8, opt);
  put32 (h + 12, type);
  put32 (h + 16, len);
  if (write_full (fd, h, sizeof h) < 0)
    return -1;
  return len ? write_full (fd, data, len) : 0;
}

/* HAS_FLAGS | SEND_FLUSH | CAN_MULTI_CONN: nothing fio asks for is
 * refused, and there is no state to make multi-conn untrue. */
#define TFLAGS (1u | 4u | 256u)

/* Returns 1 when transmission starts, 0 to close. */
static int
handshake (int fd, bool *structured)
{
  unsigned char hello[18];
  put64 (hello, 0x4e42444d41474943ULL);
  put64 (hello + 8, IHAVEOPT);
  put16 (hello + 16, 3);        /* FIXED_NEWSTYLE | NO_ZEROES */
  unsigned char cflags[4];
  if (write_full (fd, hello, sizeof hello) < 0
      || read_full (fd, cflags, 4) < 0)
    return 0;
  bool no_zeroes = get32 (cflags) & 2;
  for (;;) {
    unsigned char h[16];
    if (read_full (fd, h, sizeof h) < 0)
      return 0;
    uint32_t opt = get32 (h + 8), len = get32 (h + 12);
    if (len > 65536)
      return 0;
    unsigned char data[65536];
    if (read_full (fd, data, len) < 0)
      return 0;
    unsigned char info[12];
    put16 (info, 0);            /* NBD_INFO_EXPORT */
    put64 (info + 2, export_size);
    put16 (info + 10, TFLAGS);
    switch (opt) {
    case 1: {                   /* EXPORT_NAME */
      unsigned char r[134] = { 0 };
      put64 (r, export_size);
      put16 (r + 8, TFLAGS);
      return write_full (fd, r, no_zeroes ? 10 : 134) == 0;
    }
    case 2:                     /* ABORT */
      opt_reply (fd, opt, 1, NULL, 0);
      return 0;
    case 6:                     /* INFO */
    case 7:                     /* GO */
      if (opt_reply (fd, opt, 3, info, sizeof info) < 0
          || opt_reply (fd, opt, 1, NULL, 0) < 0)
        return 0;
      if (opt == 7)
        return 1;
      break;
    case 8:                     /* STRUCTURED_REPLY */
      *structured = true;
      if (opt_reply (fd, opt, 1, NULL, 0) < 0)
        return 0;
      break;
    default:
      if (opt_reply (fd, opt, 0x80000001u, NULL, 0) < 0)
        return 0;
    }
  }
}

/* Fills more of the buffer: blocks in recv, or with --spin polls it with
 * MSG_DONTWAIT until something arrives. */
static ssize_t
refill (int fd, unsigned char *buf, size_t len)
{
  for (;;) {
    ssize_t n = recv (fd, buf, len, spin ? MSG_DONTWAIT : 0);
    if (n >= 0)
      return n;
    if (errno != EINTR && errno != EAGAIN)
      return -1;
  }
}

static uint64_t
now_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

/* --hold: polls for more requests until the deadline; -2 when none came. */
static ssize_t
refill_until (int fd, unsigned char *buf, size_t len, uint64_t deadline)
{
  do {
    ssize_t n = recv (fd, buf, len, MSG_DONTWAIT);
    if (n >= 0)
      return n;
    if (errno != EINTR && errno != EAGAIN)
      return -1;
  } while (now_ns () < deadline);
  return -2;
}

struct batch {
  struct iovec iov[3 * MAX_BATCH];
  unsigned char hdr[MAX_BATCH][28];
  int niov, n;
};

static int
flush_batch (int fd, struct batch *b)
{
  struct iovec *iov = b->iov;
  int niov = b->niov;
  while (niov > 0) {
    ssize_t n = writev (fd, iov, niov);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    while (niov > 0 && (size_t) n >= iov->iov_len) {
      n -= (ssize_t) iov->iov_len;
      iov++;
      niov--;
    }
    if (niov > 0) {
      iov->iov_base = (char *) iov->iov_base + n;
      iov->iov_len -= (size_t) n;
    }
  }
  b->niov = b->n = 0;
  return 0;
}

static void
add_reply (struct batch *b, bool structured, bool read, uint64_t cookie,
           uint64_t offset, uint32_t len)
{
  unsigned char *h = b->hdr[b->n++];
  if (read && structured) {
    put32 (h, STRUCTURED_MAGIC);
    put16 (h + 4, 1);           /* DONE */
    put16 (h + 6, 1);           /* OFFSET_DATA */
    put64 (h + 8, cookie);
    put32 (h + 16, 8 + len);
    put64 (h + 20, offset);
    b->iov[b->niov++] = (struct iovec) { h, 28 };
  }
  else {
    put32 (h, SIMPLE_MAGIC);
    put32 (h + 4, 0);
    put64 (h + 8, cookie);
    b->iov[b->niov++] = (struct iovec) { h, 16 };
  }
  if (read)
    b->iov[b->niov++] = (struct iovec) { (void *) zeros, len };
}

static void
transmission (int fd, bool structured)
{
  unsigned char *buf = malloc (RBUF_SIZE);
  struct batch *b = calloc (1, sizeof *b);
  if (!buf || !b)
    goto out;
  size_t have = 0;
  uint64_t skip = 0;            /* WRITE payload still to drop */
  uint64_t skip_cookie = 0;     /* and the cookie to answer after it:
                                   libnbd takes no reply for a command
                                   it has not finished sending */
  for (;;) {
    ssize_t n = refill (fd, buf + have, RBUF_SIZE - have);
    if (n <= 0)
      goto out;
    have += (size_t) n;
    uint64_t deadline = 0;
  parse:;
    size_t pos = 0;
    for (;;) {
      if (skip) {
        size_t k = have - pos < skip ? have - pos : (size_t) skip;
        pos += k;
        skip -= k;
        if (skip)
          break;
        add_reply (b, structured, false, skip_cookie, 0, 0);
        if (b->n == MAX_BATCH && flush_batch (fd, b) < 0)
          goto out;
      }
      if (have - pos < REQ_SIZE)
        break;
      const unsigned char *r = buf + pos;
      if (get32 (r) != REQUEST_MAGIC)
        goto out;
      uint16_t type = get16 (r + 6);
      uint64_t cookie, offset;
      memcpy (&cookie, r + 8, 8);
      cookie = be64toh (cookie);
      memcpy (&offset, r + 16, 8);
      offset = be64toh (offset);
      uint32_t len = get32 (r + 24);
      pos += REQ_SIZE;
      if (type == 2)            /* DISC */
        goto out;
      if ((type == 0 || type == 1) && len > MAX_PAYLOAD)
        goto out;
      if (type == 1 && len > 0) {
        skip = len;
        skip_cookie = cookie;
        continue;
      }
      add_reply (b, structured, type == 0, cookie, offset, len);
      if (b->n == MAX_BATCH && flush_batch (fd, b) < 0)
        goto out;
    }
    memmove (buf, buf + pos, have - pos);
    have -= pos;
    if (b->n && hold_ns) {
      if (!deadline)
        deadline = now_ns () + hold_ns;
      n = refill_until (fd, buf + have, RBUF_SIZE - have, deadline);
      if (n > 0) {
        have += (size_t) n;
        goto parse;
      }
      if (n != -2)
        goto out;
    }
    if (b->n && flush_batch (fd, b) < 0)
      goto out;
  }
 out:
  free (buf);
  free (b);
}

static void *
serve (void *arg)
{
  int fd = (int) (intptr_t) arg;
  bool structured = false;
  if (handshake (fd, &structured))
    transmission (fd, structured);
  close (fd);
  return NULL;
}

static void *
accept_loop (void *arg)
{
  int lfd = (int) (intptr_t) arg;
  for (;;) {
    int fd = accept (lfd, NULL, NULL);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      perror ("accept");
      exit (1);
    }
    int one = 1;
    setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    pthread_t t;
    if (pthread_create (&t, NULL, serve, (void *) (intptr_t) fd) != 0) {
      close (fd);
      continue;
    }
    pthread_detach (t);
  }
  return NULL;
}

static uint64_t
parse_size (const char *s)
{
  char *end;
  unsigned long long v = strtoull (s, &end, 10);
  switch (*end) {
  case 'G': v <<= 30; break;
  case 'M': v <<= 20; break;
  case 'K': v <<= 10; break;
  case '\0': break;
  default:
    fprintf (stderr, "nbd-null-server: bad size '%s'\n", s);
    exit (2);
  }
  return v;
}

int
main (int argc, char **argv)
{
  if (argc < 4 || argc > 6) {
  usage:
    fprintf (stderr, "usage: nbd-null-server SIZE UNIX-PATH TCP-PORT "
             "[--spin | --hold MICROSECONDS]\n");
    return 2;
  }
  if (argc == 5) {
    if (strcmp (argv[4], "--spin"))
      goto usage;
    spin = true;
  }
  if (argc == 6) {
    if (strcmp (argv[4], "--hold"))
      goto usage;
    hold_ns = strtoull (argv[5], NULL, 10) * 1000;
  }
  export_size = parse_size (argv[1]);
  zeros = calloc (1, MAX_PAYLOAD);
  if (!zeros)
    return 1;
  signal (SIGPIPE, SIG_IGN);

  int ufd = socket (AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un un = { .sun_family = AF_UNIX };
  snprintf (un.sun_path, sizeof un.sun_path, "%s", argv[2]);
  unlink (un.sun_path);
  int tfd = socket (AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt (tfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in in = { .sin_family = AF_INET,
    .sin_port = htons ((uint16_t) atoi (argv[3])),
    .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  if (ufd < 0 || tfd < 0
      || bind (ufd, (struct sockaddr *) &un, sizeof un) < 0
      || bind (tfd, (struct sockaddr *) &in, sizeof in) < 0
      || listen (ufd, 16) < 0 || listen (tfd, 16) < 0) {
    perror ("nbd-null-server: listen");
    return 1;
  }
  pthread_t t;
  if (pthread_create (&t, NULL, accept_loop, (void *) (intptr_t) ufd) != 0)
    return 1;
  accept_loop ((void *) (intptr_t) tfd);
  return 0;
}
