/* The inline connection's busy polling and reply batching
 * (server_request.c fill_read, server_inline.c), and the Unix socket send
 * buffer (server.c tune_socket): requests and payloads
 * that arrive in pieces, with gaps shorter and longer than the spin,
 * many replies batched while requests keep coming, a client that stops
 * reading for a while, two connections competing for the one spinner,
 * requests that trickle in while replies wait (held batches over TCP),
 * and shutdown of a connection that is polling.  Every test runs with
 * busy polling on (a long and the default budget) and off, on the plain
 * and the zero-copy inline path, over a socketpair and over TCP (with
 * the default hold, a long one and none). */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "nbd/proto.h"
#include "rawnbd.h"
#include "testbackend.h"

#define SIZE (4u << 20)

struct fixture {
  struct r3m_nbd_server *srv;
  struct tb *tb;
  struct r3m_backend *b;
  struct raw c;
  int tcp_port;               /* > 0: clients connect over TCP */
};

static int
setup_hold (void **state, unsigned busy_poll_us, bool direct, bool tcp,
            unsigned batch_hold_us)
{
  struct fixture *f = calloc (1, sizeof *f);
  struct tb_options to = { .size = SIZE, .direct = direct };
  assert_int_equal (tb_new (&to, &f->tb, &f->b), 0);
  for (unsigned i = 0; i < SIZE; i++)
    f->tb->data[i] = (unsigned char) (i * 7);
  struct r3m_nbd_server_options so;
  r3m_nbd_server_options_init (&so);
  so.busy_poll_us = busy_poll_us;
  so.batch_hold_us = batch_hold_us;
  assert_int_equal (r3m_nbd_server_new (&so, &f->srv, NULL), 0);
  assert_int_equal (r3m_nbd_server_add_export (f->srv, "", f->b, NULL, NULL),
                    0);
  if (tcp) {
    /* Over TCP the server polls only within large payloads and, while
     * replies wait, for up to batch_hold_us for more requests. */
    assert_int_equal (r3m_nbd_server_listen (f->srv, "nbd://127.0.0.1:0",
                                             NULL), 0);
    assert_int_equal (r3m_nbd_server_start (f->srv, NULL), 0);
    const char *a = r3m_nbd_server_address (f->srv, 0);
    const char *colon = strrchr (a, ':');
    assert_non_null (colon);
    f->tcp_port = atoi (colon + 1);
    assert_true (f->tcp_port > 0);
  }
  f->c.fd = -1;
  *state = f;
  return 0;
}

static int
setup_with (void **state, unsigned busy_poll_us, bool direct, bool tcp)
{
  return setup_hold (state, busy_poll_us, direct, tcp, 20);
}

static int setup_spin (void **s) { return setup_with (s, 2000, false, 0); }
static int setup_spin_direct (void **s) { return setup_with (s, 2000, 1, 0); }
static int setup_default (void **s) { return setup_with (s, 50, true, 0); }
static int setup_nospin (void **s) { return setup_with (s, 0, false, 0); }
static int setup_nospin_direct (void **s) { return setup_with (s, 0, 1, 0); }
static int setup_tcp (void **s) { return setup_with (s, 2000, true, true); }
/* Holds long enough that requests sent 1 ms apart join one batch. */
static int setup_tcp_hold (void **s) { return setup_hold (s, 50, 1, 1, 5000); }
static int setup_tcp_nohold (void **s) { return setup_hold (s, 50, 1, 1, 0); }

static int
teardown (void **state)
{
  struct fixture *f = *state;
  raw_close (&f->c);
  r3m_nbd_server_free (f->srv);
  r3m_backend_close (f->b);
  free (f);
  return 0;
}

static void
go (struct fixture *f, struct raw *c)
{
  if (f->tcp_port > 0) {
    struct sockaddr_in sa = { .sin_family = AF_INET,
                              .sin_port = htons ((uint16_t) f->tcp_port),
                              .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
    c->fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true (c->fd >= 0);
    assert_int_equal (connect (c->fd, (struct sockaddr *) &sa, sizeof sa),
                      0);
    struct timeval tv = { .tv_sec = 10 };
    setsockopt (c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt (c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  } else
    raw_connect (f->srv, c);
  raw_go (c, "", false, NULL, 0, NULL, NULL);
}

static void
sleep_ms (unsigned ms)
{
  struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };
  nanosleep (&ts, NULL);
}

static void
expect_simple (struct raw *c, uint64_t cookie)
{
  uint32_t err;
  uint64_t got;
  raw_simple (c, &err, &got);
  assert_int_equal (got, cookie);
  assert_int_equal (err, 0);
}

/* Header and payload in separate sends (as libnbd does), some with a
 * pause between them longer than any spin, then read back pipelined. */
static void
test_split_writes (void **state)
{
  struct fixture *f = *state;
  go (f, &f->c);
  unsigned char h[NBD_REQUEST_SIZE], w[4096];
  for (unsigned i = 0; i < 40; i++) {
    memset (w, (int) (0x40 + i), sizeof w);
    raw_put_request (h, 0, NBD_CMD_WRITE, i, (uint64_t) i * 8192, sizeof w);
    raw_send (&f->c, h, sizeof h);
    if (i % 8 == 3)
      sleep_ms (10);
    raw_send (&f->c, w, 100);
    if (i % 8 == 5)
      sleep_ms (10);
    raw_send (&f->c, w + 100, sizeof w - 100);
  }
  for (unsigned i = 0; i < 40; i++)
    expect_simple (&f->c, i);
  for (unsigned i = 0; i < 40; i++)
    raw_request (&f->c, 0, NBD_CMD_READ, 100 + i, (uint64_t) i * 8192,
                 4096, NULL);
  unsigned char r[4096];
  for (unsigned i = 0; i < 40; i++) {
    expect_simple (&f->c, 100 + i);
    raw_recv (&f->c, r, sizeof r);
    memset (w, (int) (0x40 + i), sizeof w);
    assert_memory_equal (r, w, sizeof r);
  }
}

/* A large payload (received straight into the store on the zero-copy
 * path) trickling in with pauses. */
static void
test_trickled_large_write (void **state)
{
  struct fixture *f = *state;
  go (f, &f->c);
  size_t len = 1u << 20;
  unsigned char *w = malloc (len), *r = malloc (len);
  for (size_t i = 0; i < len; i++)
    w[i] = (unsigned char) (i * 31 + 5);
  unsigned char h[NBD_REQUEST_SIZE];
  raw_put_request (h, 0, NBD_CMD_WRITE, 7, 65536, (uint32_t) len);
  raw_send (&f->c, h, sizeof h);
  size_t done = 0, step = 100;
  while (done < len) {
    size_t n = len - done < step ? len - done : step;
    raw_send (&f->c, w + done, n);
    done += n;
    step *= 4;
    sleep_ms (5);
  }
  expect_simple (&f->c, 7);
  raw_request (&f->c, 0, NBD_CMD_READ, 8, 65536, (uint32_t) len, NULL);
  expect_simple (&f->c, 8);
  raw_recv (&f->c, r, len);
  assert_memory_equal (r, w, len);
  free (w);
  free (r);
}

/* Large WRITEs back to back (after each, the next request is polled
 * for, even over TCP), the last one followed by silence: every reply
 * arrives, and a request after a pause longer than any spin is served. */
static void
test_streamed_writes (void **state)
{
  struct fixture *f = *state;
  go (f, &f->c);
  size_t len = 256u * 1024;
  unsigned n = 8;
  unsigned char *w = malloc (len * n), *r = malloc (len);
  for (size_t i = 0; i < len * n; i++)
    w[i] = (unsigned char) (i * 13 + i / 4096);
  unsigned char h[NBD_REQUEST_SIZE];
  for (unsigned i = 0; i < n; i++) {
    raw_put_request (h, 0, NBD_CMD_WRITE, i, (uint64_t) i * len, (uint32_t) len);
    raw_send (&f->c, h, sizeof h);
    raw_send (&f->c, w + i * len, len);
  }
  for (unsigned i = 0; i < n; i++)
    expect_simple (&f->c, i);
  sleep_ms (20);
  for (unsigned i = 0; i < n; i++) {
    raw_request (&f->c, 0, NBD_CMD_READ, 100 + i, (uint64_t) i * len,
                 (uint32_t) len, NULL);
    expect_simple (&f->c, 100 + i);
    raw_recv (&f->c, r, len);
    assert_memory_equal (r, w + i * len, len);
  }
  free (w);
  free (r);
}

/* A client that waits between requests (spinning turns off) and then
 * pipelines again (it turns back on): every request is answered. */
static void
test_idle_then_busy (void **state)
{
  struct fixture *f = *state;
  go (f, &f->c);
  unsigned char r[512];
  for (unsigned round = 0; round < 3; round++) {
    raw_request (&f->c, 0, NBD_CMD_READ, round, 0, sizeof r, NULL);
    expect_simple (&f->c, round);
    raw_recv (&f->c, r, sizeof r);
    sleep_ms (30);
    for (unsigned i = 0; i < 50; i++)
      raw_request (&f->c, 0, NBD_CMD_READ, 1000 + i, (uint64_t) i * 512,
                   sizeof r, NULL);
    for (unsigned i = 0; i < 50; i++) {
      expect_simple (&f->c, 1000 + i);
      raw_recv (&f->c, r, sizeof r);
      assert_int_equal (r[0], (unsigned char) (i * 512 * 7));
    }
  }
}

static void
one_at_a_time (struct fixture *f, unsigned n)
{
  unsigned char r[4096];
  for (unsigned i = 0; i < n; i++) {
    raw_request (&f->c, 0, NBD_CMD_READ, i, (uint64_t) (i % 64) * 4096,
                 sizeof r, NULL);
    expect_simple (&f->c, i);
    raw_recv (&f->c, r, sizeof r);
    assert_memory_equal (r, f->tb->data + (size_t) (i % 64) * 4096,
                         sizeof r);
  }
}

/* n READs of 4 KiB at offsets 0, 4096, ..., cookies from cookie on. */
static void
put_reads (unsigned char *buf, unsigned n, uint64_t cookie)
{
  for (unsigned i = 0; i < n; i++)
    raw_put_request (buf + i * NBD_REQUEST_SIZE, 0, NBD_CMD_READ, cookie + i,
                     (uint64_t) i * 4096, 4096);
}

/* 16 of them in one send (one batch), all answered: from here the server
 * has seen the client 16 deep (hold_depth). */
static void
read_burst (struct fixture *f, uint64_t cookie)
{
  unsigned char reqs[16 * NBD_REQUEST_SIZE], r[4096];
  put_reads (reqs, 16, cookie);
  raw_send (&f->c, reqs, sizeof reqs);
  for (unsigned i = 0; i < 16; i++) {
    expect_simple (&f->c, cookie + i);
    raw_recv (&f->c, r, sizeof r);
  }
}

/* Requests that trickle in while replies wait (held batches over TCP):
 * a client that waits for each reply is never held (or, after it looked
 * deeper, rarely: the hold backs off), and one that keeps sending
 * gets each reply with the data as of its request's turn, even where a
 * READ follows a WRITE of the same block in one batch. */
static void
test_trickled_requests (void **state)
{
  struct fixture *f = *state;
  go (f, &f->c);
  unsigned char w[4096], r[4096];
  struct r3m_nbd_server_stats st0, st1;
  r3m_nbd_server_stats (f->srv, &st0);
  one_at_a_time (f, 200);
  /* A client seen with one request in flight is never held. */
  r3m_nbd_server_stats (f->srv, &st1);
  assert_int_equal (st1.holds, st0.holds);

  /* After a burst the client looks 16 deep... */
  read_burst (f, 500);
  /* ... and then sends one at a time: no hold can find another, so
   * holding backs off (holds at requests 0, 2, 5, 10, ... 134: 8 in
   * 200). */
  r3m_nbd_server_stats (f->srv, &st0);
  one_at_a_time (f, 200);
  r3m_nbd_server_stats (f->srv, &st1);
  assert_int_equal (st1.holds_found, st0.holds_found);
  assert_true (st1.holds - st0.holds <= 8);
  for (unsigned i = 0; i < 10; i++) {
    memset (w, (int) (i + 1), sizeof w);
    raw_request (&f->c, 0, NBD_CMD_WRITE, 100 + 2 * i, 0, sizeof w, w);
    sleep_ms (1);
    raw_request (&f->c, 0, NBD_CMD_READ, 101 + 2 * i, 0, sizeof r, NULL);
    sleep_ms (1);
  }
  for (unsigned i = 0; i < 10; i++) {
    expect_simple (&f->c, 100 + 2 * i);
    expect_simple (&f->c, 101 + 2 * i);
    raw_recv (&f->c, r, sizeof r);
    memset (w, (int) (i + 1), sizeof w);
    assert_memory_equal (r, w, sizeof r);
  }
}

/* The client's last requests come with the end of its stream while the
 * server may be holding the batch (after a burst the client looks 16
 * deep; with the 5 ms hold of setup_tcp_hold the end comes 1 ms into
 * it): the requests read before the end are still answered, and the
 * connection closes. */
static void
test_eof_while_held (void **state)
{
  struct fixture *f = *state;
  go (f, &f->c);
  read_burst (f, 700);
  unsigned char r[4096], reqs[2 * NBD_REQUEST_SIZE];
  put_reads (reqs, 2, 700);
  struct r3m_nbd_server_stats st0, st1;
  r3m_nbd_server_stats (f->srv, &st0);
  raw_send (&f->c, reqs, sizeof reqs);
  sleep_ms (1);
  assert_int_equal (shutdown (f->c.fd, SHUT_WR), 0);
  for (unsigned i = 0; i < 2; i++) {
    expect_simple (&f->c, 700 + i);
    raw_recv (&f->c, r, sizeof r);
    assert_memory_equal (r, f->tb->data + (size_t) i * 4096, sizeof r);
  }
  assert_true (raw_closed (&f->c));
  /* The end of the stream is not a request found by holding. */
  r3m_nbd_server_stats (f->srv, &st1);
  assert_int_equal (st1.holds_found, st0.holds_found);
}

struct sender {
  struct raw *c;
  unsigned n;
};

static void *
send_reads (void *arg)
{
  struct sender *s = arg;
  for (unsigned i = 0; i < s->n; i++)
    raw_request (s->c, 0, NBD_CMD_READ, i, (uint64_t) (i % 1000) * 4096,
                 4096, NULL);
  return NULL;
}

/* More requests than the socket buffers hold, while the client does not
 * read for a while: the server blocks in writing replies (holding at
 * most one batch) and everything arrives, in order, once the client
 * reads. */
static void
test_client_stops_reading (void **state)
{
  struct fixture *f = *state;
  go (f, &f->c);
  struct sender s = { &f->c, 3000 };
  pthread_t t;
  assert_int_equal (pthread_create (&t, NULL, send_reads, &s), 0);
  sleep_ms (300);
  unsigned char r[4096];
  for (unsigned i = 0; i < s.n; i++) {
    expect_simple (&f->c, i);
    raw_recv (&f->c, r, sizeof r);
    assert_memory_equal (r, f->tb->data + (size_t) (i % 1000) * 4096,
                         sizeof r);
  }
  pthread_join (t, NULL);
}

struct client {
  struct fixture *f;
  unsigned id;
};

static void *
client_run (void *arg)
{
  struct client *cl = arg;
  struct raw c = { .fd = -1 };
  go (cl->f, &c);
  unsigned char w[4096], r[4096];
  uint64_t base = (uint64_t) cl->id * (1u << 20);
  for (unsigned round = 0; round < 20; round++) {
    for (unsigned i = 0; i < 16; i++) {
      memset (w, (int) (cl->id * 64 + round + i), sizeof w);
      raw_request (&c, 0, NBD_CMD_WRITE, i, base + i * 4096, sizeof w, w);
    }
    for (unsigned i = 0; i < 16; i++)
      expect_simple (&c, i);
    for (unsigned i = 0; i < 16; i++)
      raw_request (&c, 0, NBD_CMD_READ, 100 + i, base + i * 4096, 4096,
                   NULL);
    for (unsigned i = 0; i < 16; i++) {
      expect_simple (&c, 100 + i);
      raw_recv (&c, r, sizeof r);
      memset (w, (int) (cl->id * 64 + round + i), sizeof w);
      assert_memory_equal (r, w, sizeof r);
    }
  }
  raw_request (&c, 0, NBD_CMD_DISC, 0, 0, 0, NULL);
  raw_close (&c);
  return NULL;
}

/* Three connections, one spinner at a time: all make progress. */
static void
test_connections_share_the_spinner (void **state)
{
  struct fixture *f = *state;
  struct client cl[3];
  pthread_t t[3];
  for (unsigned i = 0; i < 3; i++) {
    cl[i] = (struct client) { f, i };
    assert_int_equal (pthread_create (&t[i], NULL, client_run, &cl[i]), 0);
  }
  for (unsigned i = 0; i < 3; i++)
    pthread_join (t[i], NULL);
}

/* Shutdown wakes a connection that is polling or asleep at once. */
static void
test_shutdown_while_polling (void **state)
{
  struct fixture *f = *state;
  go (f, &f->c);
  unsigned char r[512];
  raw_request (&f->c, 0, NBD_CMD_READ, 1, 0, sizeof r, NULL);
  expect_simple (&f->c, 1);
  raw_recv (&f->c, r, sizeof r);
  struct timespec a, b;
  clock_gettime (CLOCK_MONOTONIC, &a);
  assert_int_equal (r3m_nbd_server_shutdown (f->srv, 5000, NULL), 0);
  clock_gettime (CLOCK_MONOTONIC, &b);
  double s = (double) (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
  assert_true (s < 2.0);
  assert_true (raw_closed (&f->c));
}

/* A Unix socket's send buffer is raised (up to net.core.wmem_max), so a
 * 1 MiB reply need not leave in rounds of the default 208 KiB. */
static void
test_unix_send_buffer (void **state)
{
  struct fixture *f = *state;
  int sv[2];
  assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
                    0);
  int before = 0, after = 0, wmem_max = 0;
  socklen_t l = sizeof before;
  assert_int_equal (getsockopt (sv[0], SOL_SOCKET, SO_SNDBUF, &before, &l),
                    0);
  FILE *m = fopen ("/proc/sys/net/core/wmem_max", "r");
  if (m) {
    if (fscanf (m, "%d", &wmem_max) != 1)
      wmem_max = 0;
    fclose (m);
  }
  /* The server owns sv[0] from here; it stays open while we keep sv[1]. */
  assert_int_equal (r3m_nbd_server_serve_fd (f->srv, sv[0], NULL), 0);
  l = sizeof after;
  assert_int_equal (getsockopt (sv[0], SOL_SOCKET, SO_SNDBUF, &after, &l),
                    0);
  /* The kernel doubles what it is asked for (bookkeeping overhead). */
  int want = 4 << 20;
  if (wmem_max > 0 && wmem_max < want)
    want = wmem_max;
  assert_true (after >= before);
  assert_true (after >= want);
  f->c.fd = sv[1];
  raw_go (&f->c, "", false, NULL, 0, NULL, NULL);
  size_t len = 1u << 20;
  unsigned char *r = malloc (len);
  raw_request (&f->c, 0, NBD_CMD_READ, 3, 0, (uint32_t) len, NULL);
  expect_simple (&f->c, 3);
  raw_recv (&f->c, r, len);
  assert_memory_equal (r, f->tb->data, len);
  free (r);
}

/* Out of range. */
static void
test_option_bounds (void **state)
{
  (void) state;
  struct r3m_nbd_server_options so;
  r3m_nbd_server_options_init (&so);
  assert_int_equal (so.busy_poll_us, 50);
  assert_int_equal (so.batch_hold_us, 20);
  so.busy_poll_us = 10001;
  struct r3m_nbd_server *srv = NULL;
  assert_int_equal (r3m_nbd_server_new (&so, &srv, NULL), -EINVAL);
  assert_null (srv);
  r3m_nbd_server_options_init (&so);
  so.batch_hold_us = 10001;
  assert_int_equal (r3m_nbd_server_new (&so, &srv, NULL), -EINVAL);
  assert_null (srv);
}

#define EACH(t) \
  cmocka_unit_test_setup_teardown (t, setup_spin, teardown), \
  cmocka_unit_test_setup_teardown (t, setup_spin_direct, teardown), \
  cmocka_unit_test_setup_teardown (t, setup_default, teardown), \
  cmocka_unit_test_setup_teardown (t, setup_nospin, teardown), \
  cmocka_unit_test_setup_teardown (t, setup_nospin_direct, teardown), \
  cmocka_unit_test_setup_teardown (t, setup_tcp, teardown), \
  cmocka_unit_test_setup_teardown (t, setup_tcp_hold, teardown), \
  cmocka_unit_test_setup_teardown (t, setup_tcp_nohold, teardown)

int
main (void)
{
  const struct CMUnitTest tests[] = {
    EACH (test_split_writes),
    EACH (test_trickled_large_write),
    EACH (test_streamed_writes),
    EACH (test_idle_then_busy),
    EACH (test_trickled_requests),
    EACH (test_client_stops_reading),
    EACH (test_eof_while_held),
    EACH (test_connections_share_the_spinner),
    EACH (test_shutdown_while_polling),
    cmocka_unit_test_setup_teardown (test_unix_send_buffer, setup_default,
                                     teardown),
    cmocka_unit_test (test_option_bounds),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
