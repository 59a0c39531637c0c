/* proxy-check: does delay-proxy add the round-trip time it claims, and
 * does it keep bandwidth?
 *
 *   proxy-check [--json FILE] PATH-TO-delay-proxy [DELAY_MS...]
 *                                                  (default 0 1 5 20)
 *
 * Starts a small peer (ping echo and bulk download over TCP on 127.0.0.1)
 * and, for each one-way delay, a delay-proxy in front of it.  Measures the
 * median ping-pong round trip of 1 byte (200 rounds) and the throughput
 * of a 2 GiB download, directly and through the proxy.  Prints a markdown
 * table (and the same as JSON to FILE); exits 1 if a proxied RTT is below 2 x delay (the proxy would be
 * lying) or above 2 x delay + 2 ms, or if throughput through the proxy at
 * delay 0 is below half the direct figure.
 */
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#define PINGS     200
#define BULK      (UINT64_C (2) << 30)

static uint64_t
now_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

static int
full_io (int fd, void *buf, size_t n, bool wr)
{
  char *p = buf;
  while (n > 0) {
    ssize_t r = wr ? send (fd, p, n, MSG_NOSIGNAL) : recv (fd, p, n, 0);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return -1;
    p += r;
    n -= (size_t) r;
  }
  return 0;
}

/* ---- the peer ----------------------------------------------------------- */

static void *
peer_conn (void *arg)
{
  int fd = (int) (intptr_t) arg;
  static char zeros[1 << 20];
  char cmd;
  while (full_io (fd, &cmd, 1, false) == 0) {
    if (cmd == 'p') {
      if (full_io (fd, &cmd, 1, true) < 0)
        break;
    } else if (cmd == 'd') {
      uint64_t n;
      if (full_io (fd, &n, 8, false) < 0)
        break;
      while (n > 0) {
        size_t k = n < sizeof zeros ? (size_t) n : sizeof zeros;
        if (full_io (fd, zeros, k, true) < 0)
          goto out;
        n -= k;
      }
    } else
      break;
  }
out:
  close (fd);
  return NULL;
}

static void *
peer_main (void *arg)
{
  int lfd = (int) (intptr_t) arg;
  for (;;) {
    int fd = accept (lfd, NULL, NULL);
    if (fd < 0)
      return NULL;
    int one = 1;
    setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    pthread_t t;
    pthread_create (&t, NULL, peer_conn, (void *) (intptr_t) fd);
    pthread_detach (t);
  }
}

static int
tcp_connect (int port)
{
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons (port) };
  inet_pton (AF_INET, "127.0.0.1", &sa.sin_addr);
  int fd = socket (AF_INET, SOCK_STREAM, 0);
  if (connect (fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
    close (fd);
    return -1;
  }
  int one = 1;
  setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

/* ---- measurements -------------------------------------------------------- */

static int
cmp_u64 (const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
  return x < y ? -1 : x > y;
}

static double
median_rtt_ms (int port)
{
  int fd = tcp_connect (port);
  if (fd < 0)
    return -1;
  uint64_t t[PINGS];
  char c = 'p';
  for (int i = 0; i < PINGS; i++) {
    uint64_t s = now_ns ();
    if (full_io (fd, &c, 1, true) < 0 || full_io (fd, &c, 1, false) < 0) {
      close (fd);
      return -1;
    }
    t[i] = now_ns () - s;
    c = 'p';
  }
  close (fd);
  qsort (t, PINGS, sizeof t[0], cmp_u64);
  return (double) t[PINGS / 2] / 1e6;
}

static double
download_gbps (int port)
{
  int fd = tcp_connect (port);
  if (fd < 0)
    return -1;
  static char buf[1 << 20];
  char cmd[9] = { 'd' };
  uint64_t n = BULK;
  memcpy (cmd + 1, &n, 8);
  uint64_t s = now_ns ();
  full_io (fd, cmd, 9, true);
  while (n > 0) {
    ssize_t r = recv (fd, buf, n < sizeof buf ? n : sizeof buf, 0);
    if (r <= 0) {
      close (fd);
      return -1;
    }
    n -= (uint64_t) r;
  }
  double secs = (double) (now_ns () - s) / 1e9;
  close (fd);
  return (double) BULK / secs / 1e9;
}

/* Start delay-proxy in front of port; return its port and pid. */
static int
start_proxy (const char *exe, int target, double delay_ms, pid_t *pid)
{
  char tgt[64], delay[32], ready[64];
  snprintf (tgt, sizeof tgt, "127.0.0.1:%d", target);
  snprintf (delay, sizeof delay, "%gms", delay_ms);
  snprintf (ready, sizeof ready, "/tmp/proxy-check-%d.ready", (int) getpid ());
  unlink (ready);
  *pid = fork ();
  if (*pid == 0) {
    int dn = open ("/dev/null", 1);
    dup2 (dn, 1);
    execl (exe, exe, "--target", tgt, "--delay", delay, "--ready-file", ready,
           (char *) NULL);
    _exit (127);
  }
  for (int i = 0; i < 200; i++) {
    FILE *f = fopen (ready, "r");
    if (f) {
      int port = -1;
      if (fscanf (f, "127.0.0.1:%d", &port) != 1)
        port = -1;
      fclose (f);
      unlink (ready);
      return port;
    }
    usleep (20000);
  }
  return -1;
}

int
main (int argc, char **argv)
{
  const char *json = NULL;
  if (argc > 2 && strcmp (argv[1], "--json") == 0) {
    json = argv[2];
    argv += 2;
    argc -= 2;
  }
  if (argc < 2) {
    fprintf (stderr, "usage: proxy-check [--json FILE] PATH-TO-delay-proxy "
             "[DELAY_MS...]\n");
    return 2;
  }
  FILE *jf = json ? fopen (json, "w") : NULL;
  if (json && !jf) {
    perror (json);
    return 1;
  }
  signal (SIGPIPE, SIG_IGN);
  static double defaults[] = { 0, 1, 5, 20 };
  int nd = argc > 2 ? argc - 2 : 4;
  double delays[16];
  for (int i = 0; i < nd && i < 16; i++)
    delays[i] = argc > 2 ? atof (argv[i + 2]) : defaults[i];

  int lfd = socket (AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = { .sin_family = AF_INET };
  inet_pton (AF_INET, "127.0.0.1", &sa.sin_addr);
  socklen_t sl = sizeof sa;
  if (bind (lfd, (struct sockaddr *) &sa, sizeof sa) < 0 || listen (lfd, 16) < 0
      || getsockname (lfd, (struct sockaddr *) &sa, &sl) < 0) {
    perror ("proxy-check: listen");
    return 1;
  }
  int peer = ntohs (sa.sin_port);
  pthread_t t;
  pthread_create (&t, NULL, peer_main, (void *) (intptr_t) lfd);

  double direct_rtt = median_rtt_ms (peer), direct_bw = download_gbps (peer);
  printf ("| one-way delay | expected RTT | measured RTT | direct RTT | "
          "2 GiB download | direct download | proxy CPU per GiB |\n"
          "|---:|---:|---:|---:|---:|---:|---:|\n");
  int bad = 0;
  if (jf)
    fprintf (jf, "{\n  \"benchmark\": \"delay-proxy-check\",\n"
             "  \"bulk_bytes\": %" PRIu64 ", \"pings\": %d,\n"
             "  \"direct_rtt_ms\": %.4f, \"direct_download_GBps\": %.3f,\n"
             "  \"rows\": [", BULK, PINGS, direct_rtt, direct_bw);
  for (int i = 0; i < nd; i++) {
    pid_t pid;
    int port = start_proxy (argv[1], peer, delays[i], &pid);
    if (port < 0) {
      fprintf (stderr, "proxy-check: delay-proxy did not start\n");
      return 1;
    }
    double rtt = median_rtt_ms (port), bw = download_gbps (port);
    kill (pid, SIGTERM);
    struct rusage ru;
    wait4 (pid, NULL, 0, &ru);
    double cpu = (double) ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6
                 + (double) ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    double want = 2 * delays[i];
    if (jf)
      fprintf (jf, "%s\n    {\"one_way_ms\": %g, \"expected_rtt_ms\": %g, "
               "\"rtt_ms\": %.4f, \"download_GBps\": %.3f, "
               "\"proxy_cpu_s_per_GiB\": %.3f}", i ? "," : "", delays[i],
               want, rtt, bw, cpu / ((double) BULK / (1 << 30)));
    printf ("| %g ms | %g ms | %.3f ms | %.3f ms | %.2f GB/s | %.2f GB/s | "
            "%.2f s |\n", delays[i], want, rtt, direct_rtt, bw, direct_bw,
            cpu / ((double) BULK / (1 << 30)));
    if (rtt < want || rtt > want + 2.0) {
      fprintf (stderr, "proxy-check: RTT %.3f ms at delay %g ms is not "
               "2 x delay\n", rtt, delays[i]);
      bad = 1;
    }
    if (delays[i] == 0 && bw < direct_bw / 2) {
      fprintf (stderr, "proxy-check: the proxy caps throughput at 0 ms\n");
      bad = 1;
    }
  }
  if (jf) {
    double load[3] = { 0 };
    getloadavg (load, 3);
    fprintf (jf, "\n  ],\n  \"loadavg\": [%.2f, %.2f, %.2f]\n}\n", load[0],
             load[1], load[2]);
    fclose (jf);
  }
  return bad;
}
