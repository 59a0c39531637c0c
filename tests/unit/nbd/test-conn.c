/* The shared NBD byte stream (src/nbd/conn.c): reads, writes, shutdown,
 * NBD URIs, listening and connecting, over socketpairs and real sockets. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "nbd/conn.h"
#include "util/time.h"

static void
pair (struct nbd_conn **a, struct nbd_conn **b)
{
  int sv[2];
  assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM, 0, sv), 0);
  assert_int_equal (nbd_conn_new (sv[0], a), 0);
  assert_int_equal (nbd_conn_new (sv[1], b), 0);
}

static void
test_read_exact_and_eof (void **state)
{
  struct nbd_conn *a, *b;
  pair (&a, &b);
  assert_int_equal (nbd_conn_write_all (a, "hello world", 11), 0);
  char buf[16];
  assert_int_equal (nbd_conn_read_exact (b, buf, 5), 0);
  assert_memory_equal (buf, "hello", 5);
  nbd_conn_close (a);
  /* 6 bytes remain; asking for 8 hits the end of the stream. */
  assert_int_equal (nbd_conn_read_exact (b, buf, 8), -ECONNRESET);
  nbd_conn_close (b);
}

static void
test_writev_gathers_in_order (void **state)
{
  struct nbd_conn *a, *b;
  pair (&a, &b);
  /* More pieces than fit in one sendmsg call's local vector (64). */
  struct iovec iov[200];
  unsigned char expect[200];
  for (int i = 0; i < 200; i++) {
    expect[i] = (unsigned char) i;
    iov[i].iov_base = &expect[i];
    iov[i].iov_len = 1;
  }
  assert_int_equal (nbd_conn_writev_all (a, iov, 200), 0);
  unsigned char got[200];
  assert_int_equal (nbd_conn_read_exact (b, got, 200), 0);
  assert_memory_equal (got, expect, 200);
  nbd_conn_close (a);
  nbd_conn_close (b);
}

struct bulk {
  struct nbd_conn *c;
  size_t len;
  int result;
};

static void *
bulk_reader (void *arg)
{
  struct bulk *k = arg;
  unsigned char *buf = malloc (k->len);
  k->result = nbd_conn_read_exact (k->c, buf, k->len);
  for (size_t i = 0; k->result == 0 && i < k->len; i++)
    if (buf[i] != (unsigned char) (i * 7))
      k->result = -EILSEQ;
  free (buf);
  return NULL;
}

static void
test_large_write_completes (void **state)
{
  /* Far more than a socket buffer: writev_all must resume short writes. */
  struct nbd_conn *a, *b;
  pair (&a, &b);
  struct bulk k = { .c = b, .len = 8u << 20 };
  pthread_t t;
  pthread_create (&t, NULL, bulk_reader, &k);
  unsigned char *buf = malloc (k.len);
  for (size_t i = 0; i < k.len; i++)
    buf[i] = (unsigned char) (i * 7);
  struct iovec iov[3] = { { buf, 100 }, { buf + 100, k.len - 200 },
                          { buf + k.len - 100, 100 } };
  assert_int_equal (nbd_conn_writev_all (a, iov, 3), 0);
  pthread_join (t, NULL);
  assert_int_equal (k.result, 0);
  free (buf);
  nbd_conn_close (a);
  nbd_conn_close (b);
}

static void *
blocked_reader (void *arg)
{
  struct bulk *k = arg;
  char c;
  k->result = (int) nbd_conn_read_some (k->c, &c, 1);
  return NULL;
}

static void
test_shutdown_wakes_reader (void **state)
{
  struct nbd_conn *a, *b;
  pair (&a, &b);
  struct bulk k = { .c = b, .result = 99 };
  pthread_t t;
  pthread_create (&t, NULL, blocked_reader, &k);
  /* Whether or not the reader is already asleep, it must see the end. */
  nbd_conn_shutdown (b, SHUT_RD);
  pthread_join (t, NULL);
  assert_int_equal (k.result, 0);
  nbd_conn_close (a);
  nbd_conn_close (b);
}

static void
test_write_to_closed_peer_is_epipe (void **state)
{
  struct nbd_conn *a, *b;
  pair (&a, &b);
  nbd_conn_close (b);
  /* No SIGPIPE may kill us here (cmocka would report the signal). */
  int r = nbd_conn_write_all (a, "x", 1);
  assert_true (r == -EPIPE || r == -ECONNRESET);
  nbd_conn_close (a);
}

static void
test_discard (void **state)
{
  struct nbd_conn *a, *b;
  pair (&a, &b);
  unsigned char buf[40000];
  memset (buf, 1, sizeof buf);
  buf[sizeof buf - 1] = 42;
  assert_int_equal (nbd_conn_write_all (a, buf, sizeof buf), 0);
  assert_int_equal (nbd_conn_discard (b, sizeof buf - 1), 0);
  unsigned char last;
  assert_int_equal (nbd_conn_read_exact (b, &last, 1), 0);
  assert_int_equal (last, 42);
  nbd_conn_close (a);
  nbd_conn_close (b);
}

static void
test_timeout (void **state)
{
  struct nbd_conn *a, *b;
  pair (&a, &b);
  assert_int_equal (nbd_conn_set_timeout (b, 50), 0);
  char c;
  assert_int_equal (nbd_conn_read_some (b, &c, 1), -ETIMEDOUT);
  nbd_conn_close (a);
  nbd_conn_close (b);
}

struct trickle {
  struct nbd_conn *c;
  int stop;
};

static void *
trickler (void *arg)
{
  struct trickle *t = arg;
  for (int i = 0; i < 100 && !__atomic_load_n (&t->stop, __ATOMIC_RELAXED);
       i++) {
    struct timespec ts = { 0, 20 * 1000000 };
    nanosleep (&ts, NULL);
    if (nbd_conn_write_all (t->c, "x", 1) < 0)
      break;
  }
  return NULL;
}

static void
test_deadline_beats_trickling (void **state)
{
  /* A byte every 20 ms would satisfy any per-call timeout; the deadline
   * ends the read anyway. */
  struct nbd_conn *a, *b;
  pair (&a, &b);
  struct trickle t = { .c = a };
  pthread_t th;
  pthread_create (&th, NULL, trickler, &t);
  uint64_t start = util_now_ns ();
  nbd_conn_set_deadline (b, start + 150 * UINT64_C (1000000));
  char buf[100];
  assert_int_equal (nbd_conn_read_exact (b, buf, sizeof buf), -ETIMEDOUT);
  uint64_t took = util_now_ns () - start;
  assert_true (took < UINT64_C (1500000000));
  __atomic_store_n (&t.stop, 1, __ATOMIC_RELAXED);
  pthread_join (th, NULL);
  /* Without a deadline the stream works as before. */
  nbd_conn_set_deadline (b, 0);
  assert_int_equal (nbd_conn_write_all (a, "y", 1), 0);
  char c;
  do
    assert_int_equal (nbd_conn_read_exact (b, &c, 1), 0);
  while (c != 'y');
  nbd_conn_close (a);
  nbd_conn_close (b);
}

/* ---- URIs -------------------------------------------------------------- */

static void
test_uri_tcp_defaults (void **state)
{
  struct nbd_uri u;
  assert_int_equal (nbd_uri_parse ("nbd://", &u, NULL), 0);
  assert_false (u.tls);
  assert_false (u.unix_socket);
  assert_string_equal (u.host, "localhost");
  assert_string_equal (u.port, "10809");
  assert_string_equal (u.export_name, "");
  nbd_uri_free (&u);

  assert_int_equal (nbd_uri_parse ("nbds://[::1]:4000//my%20disk", &u, NULL),
                    0);
  assert_true (u.tls);
  assert_string_equal (u.host, "::1");
  assert_string_equal (u.port, "4000");
  assert_string_equal (u.export_name, "/my disk");
  nbd_uri_free (&u);
}

static void
test_uri_unix (void **state)
{
  struct nbd_uri u;
  assert_int_equal (nbd_uri_parse ("nbd+unix:///disk?socket=/tmp/s%3Fx",
                                   &u, NULL), 0);
  assert_true (u.unix_socket);
  assert_string_equal (u.socket, "/tmp/s?x");
  assert_string_equal (u.export_name, "disk");
  nbd_uri_free (&u);
}

static void
test_uri_rejects (void **state)
{
  static const char *bad[] = {
    "nbd+unix:///disk",                     /* no socket */
    "nbd+unix://host/disk?socket=/s",       /* host on a Unix URI */
    "nbd://host/disk?socket=/s",            /* socket on a TCP URI */
    "http://host/",                         /* not NBD */
    "nbd:disk",                             /* no authority */
    "nbd://user@host/",                     /* PSK user names */
    "nbd://host:99999/",                    /* port range */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct nbd_uri u;
    struct r3m_error err;
    r3m_error_clear (&err);
    assert_int_not_equal (nbd_uri_parse (bad[i], &u, &err), 0);
    assert_true (err.msg[0] != '\0');
    nbd_uri_free (&u);
  }
}

/* ---- listen and connect ------------------------------------------------ */

static void
echo_once (int lfd)
{
  int s = accept (lfd, NULL, NULL);
  assert_true (s >= 0);
  char buf[4];
  assert_int_equal (read (s, buf, 4), 4);
  assert_int_equal (write (s, buf, 4), 4);
  close (s);
}

static void
connect_and_echo (const char *address, int lfd)
{
  struct nbd_uri u;
  struct r3m_error err;
  assert_int_equal (nbd_uri_parse (address, &u, &err), 0);
  struct nbd_conn *c;
  assert_int_equal (nbd_uri_connect (&u, &c, &err), 0);
  assert_int_equal (nbd_conn_write_all (c, "ping", 4), 0);
  echo_once (lfd);
  char buf[4];
  assert_int_equal (nbd_conn_read_exact (c, buf, 4), 0);
  assert_memory_equal (buf, "ping", 4);
  nbd_conn_close (c);
  nbd_uri_free (&u);
}

static void
test_listen_tcp_port_zero (void **state)
{
  struct nbd_uri u;
  assert_int_equal (nbd_uri_parse ("nbd://127.0.0.1:0", &u, NULL), 0);
  struct nbd_listener *l;
  size_t n;
  struct r3m_error err;
  assert_int_equal (nbd_listen_uri (&u, 16, &l, &n, &err), 0);
  assert_int_equal (n, 1);
  assert_non_null (strstr (l[0].address, "nbd://127.0.0.1:"));
  assert_null (strstr (l[0].address, ":0"));  /* the real port */
  connect_and_echo (l[0].address, l[0].fd);
  nbd_listeners_free (l, n);
  nbd_uri_free (&u);
}

/* A TCP pair over the loopback device, both ends set to congestion
 * control cc before they are wrapped; false if cc is not available. */
static bool
loopback_pair_with (const char *cc, int *a, int *b)
{
  int l = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = { .sin_family = AF_INET,
                            .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  socklen_t sl = sizeof sa;
  assert_int_equal (bind (l, (struct sockaddr *) &sa, sizeof sa), 0);
  assert_int_equal (listen (l, 1), 0);
  assert_int_equal (getsockname (l, (struct sockaddr *) &sa, &sl), 0);
  *a = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_int_equal (connect (*a, (struct sockaddr *) &sa, sizeof sa), 0);
  *b = accept (l, NULL, NULL);
  assert_true (*b >= 0);
  close (l);
  socklen_t n = (socklen_t) strlen (cc);
  if (setsockopt (*a, IPPROTO_TCP, TCP_CONGESTION, cc, n) < 0
      || setsockopt (*b, IPPROTO_TCP, TCP_CONGESTION, cc, n) < 0) {
    close (*a);
    close (*b);
    return false;
  }
  return true;
}

static void
congestion_control (struct nbd_conn *c, char *cc, socklen_t len)
{
  memset (cc, 0, len);
  assert_int_equal (getsockopt (nbd_conn_fd (c), IPPROTO_TCP, TCP_CONGESTION,
                                cc, &len), 0);
}

/* BBR paces every packet with a timer, which on the loopback device only
 * costs (tcp_tune.c): both ends of a loopback connection leave it. */
static void
test_loopback_does_not_pace (void **state)
{
  int a, b;
  if (!loopback_pair_with ("bbr", &a, &b)) {
    print_message ("bbr is not available here: nothing to leave\n");
    skip ();
  }
  struct nbd_conn *ca, *cb;
  assert_int_equal (nbd_conn_new (a, &ca), 0);
  assert_int_equal (nbd_conn_new (b, &cb), 0);
  char cc[16];
  congestion_control (ca, cc, sizeof cc);
  assert_true (strcmp (cc, "cubic") == 0 || strcmp (cc, "reno") == 0);
  congestion_control (cb, cc, sizeof cc);
  assert_true (strcmp (cc, "cubic") == 0 || strcmp (cc, "reno") == 0);
  nbd_conn_close (ca);
  nbd_conn_close (cb);
  /* An algorithm that does not pace is the administrator's choice. */
  assert_true (loopback_pair_with ("reno", &a, &b));
  assert_int_equal (nbd_conn_new (a, &ca), 0);
  congestion_control (ca, cc, sizeof cc);
  assert_string_equal (cc, "reno");
  nbd_conn_close (ca);
  close (b);
}

static void
test_listen_unix_replaces_stale_socket (void **state)
{
  char dir[] = "/tmp/r3m-conn-XXXXXX";
  assert_non_null (mkdtemp (dir));
  char uri[256], path[128];
  snprintf (path, sizeof path, "%s/s", dir);
  snprintf (uri, sizeof uri, "nbd+unix:///?socket=%s", path);
  struct nbd_uri u;
  assert_int_equal (nbd_uri_parse (uri, &u, NULL), 0);

  struct nbd_listener *l, *l2;
  size_t n, n2;
  struct r3m_error err;
  assert_int_equal (nbd_listen_uri (&u, 16, &l, &n, &err), 0);
  connect_and_echo (l[0].address, l[0].fd);
  /* A live socket must not be taken over (the probe leaves a connection
   * in the backlog, which is why the echo came first). */
  assert_int_equal (nbd_listen_uri (&u, 16, &l2, &n2, &err), -EADDRINUSE);
  /* Simulate a crash: close without removing the file. */
  close (l[0].fd);
  l[0].fd = -1;
  free (l[0].unlink_path);
  l[0].unlink_path = NULL;
  nbd_listeners_free (l, n);
  struct stat st;
  assert_int_equal (stat (path, &st), 0);
  assert_int_equal (nbd_listen_uri (&u, 16, &l2, &n2, &err), 0);
  connect_and_echo (l2[0].address, l2[0].fd);
  nbd_listeners_free (l2, n2);
  assert_int_equal (stat (path, &st), -1);  /* removed on close */
  nbd_uri_free (&u);
  rmdir (dir);
}

static void
test_connect_refused_has_message (void **state)
{
  char dir[] = "/tmp/r3m-conn-XXXXXX";
  assert_non_null (mkdtemp (dir));
  char uri[256];
  snprintf (uri, sizeof uri, "nbd+unix:///?socket=%s/none", dir);
  struct nbd_uri u;
  assert_int_equal (nbd_uri_parse (uri, &u, NULL), 0);
  struct nbd_conn *c;
  struct r3m_error err;
  r3m_error_clear (&err);
  assert_int_equal (nbd_uri_connect (&u, &c, &err), -ENOENT);
  assert_non_null (strstr (err.msg, "none"));
  nbd_uri_free (&u);
  rmdir (dir);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_read_exact_and_eof),
    cmocka_unit_test (test_loopback_does_not_pace),
    cmocka_unit_test (test_writev_gathers_in_order),
    cmocka_unit_test (test_large_write_completes),
    cmocka_unit_test (test_shutdown_wakes_reader),
    cmocka_unit_test (test_write_to_closed_peer_is_epipe),
    cmocka_unit_test (test_discard),
    cmocka_unit_test (test_timeout),
    cmocka_unit_test (test_deadline_beats_trickling),
    cmocka_unit_test (test_uri_tcp_defaults),
    cmocka_unit_test (test_uri_unix),
    cmocka_unit_test (test_uri_rejects),
    cmocka_unit_test (test_listen_tcp_port_zero),
    cmocka_unit_test (test_listen_unix_replaces_stale_socket),
    cmocka_unit_test (test_connect_refused_has_message),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
