/* NBD server under concurrency: out-of-order replies, shutdown with
 * requests in flight, several connections on one export, and many
 * clients at once.  Suite 'stress' (also run under TSan). */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
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
};

static int
setup_with (void **state, unsigned async_threads, unsigned workers)
{
  struct fixture *f = calloc (1, sizeof *f);
  struct tb_options to = { .size = SIZE, .async_threads = async_threads };
  assert_int_equal (tb_new (&to, &f->tb, &f->b), 0);
  struct r3m_nbd_server_options so;
  r3m_nbd_server_options_init (&so);
  so.workers = workers;
  assert_int_equal (r3m_nbd_server_new (&so, &f->srv, NULL), 0);
  assert_int_equal (r3m_nbd_server_add_export (f->srv, "", f->b, NULL, NULL),
                    0);
  *state = f;
  return 0;
}

static int
setup_pool (void **state)
{
  return setup_with (state, 2, 4);
}

static int
setup_pool_one (void **state)
{
  return setup_with (state, 2, 1);
}

static int
setup_inline (void **state)
{
  return setup_with (state, 0, 4);
}

static int
teardown (void **state)
{
  struct fixture *f = *state;
  r3m_nbd_server_free (f->srv);
  r3m_backend_close (f->b);
  free (f);
  return 0;
}

static void
expect_read_reply (struct raw *c, uint64_t cookie, uint32_t error,
                   uint32_t len)
{
  uint32_t err;
  uint64_t got;
  raw_simple (c, &err, &got);
  assert_int_equal (got, cookie);
  assert_int_equal (err, error);
  unsigned char buf[4096];
  if (error == 0)
    raw_recv (c, buf, len);
}

static void
test_replies_out_of_order (void **state)
{
  struct fixture *f = *state;
  struct raw c;
  raw_connect (f->srv, &c);
  raw_go (&c, "", false, NULL, 0, NULL, NULL);
  tb_hold (f->tb, 0);
  raw_request (&c, 0, NBD_CMD_READ, 1, 0, 4096, NULL);
  tb_wait_held (f->tb, 1);
  raw_request (&c, 0, NBD_CMD_READ, 2, 4096, 4096, NULL);
  /* The second read overtakes the first, which is still held. */
  expect_read_reply (&c, 2, 0, 4096);
  tb_release (f->tb);
  expect_read_reply (&c, 1, 0, 4096);
  raw_close (&c);
}

struct shut {
  struct r3m_nbd_server *srv;
  int result;
};

static void *
shut_thread (void *arg)
{
  struct shut *s = arg;
  s->result = r3m_nbd_server_shutdown (s->srv, 10000, NULL);
  return NULL;
}

/* Wait until the server refuses new connections: shutdown has begun. */
static void
wait_stopping (struct r3m_nbd_server *srv)
{
  for (int i = 0; i < 10000; i++) {
    int sv[2];
    assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM, 0, sv), 0);
    int r = r3m_nbd_server_serve_fd (srv, sv[0], NULL);
    close (sv[1]);
    if (r < 0)
      return;
    struct timespec ts = { 0, 1000000 };
    nanosleep (&ts, NULL);
  }
  fail_msg ("the server never started stopping");
}

static void
test_shutdown_finishes_running_and_refuses_queued (void **state)
{
  struct fixture *f = *state;       /* one worker */
  struct raw c;
  raw_connect (f->srv, &c);
  raw_go (&c, "", false, NULL, 0, NULL, NULL);
  unsigned char w[512] = { 1 };
  raw_request (&c, 0, NBD_CMD_WRITE, 9, 8192, sizeof w, w);
  expect_read_reply (&c, 9, 0, 0);
  tb_hold (f->tb, 0);
  raw_request (&c, 0, NBD_CMD_READ, 1, 0, 4096, NULL);   /* running */
  tb_wait_held (f->tb, 1);
  raw_request (&c, 0, NBD_CMD_READ, 2, 4096, 4096, NULL); /* queued */
  struct shut s = { .srv = f->srv, .result = 1 };
  pthread_t t;
  pthread_create (&t, NULL, shut_thread, &s);
  wait_stopping (f->srv);
  unsigned flushes = tb_count (f->tb, &f->tb->flushes);
  tb_release (f->tb);
  expect_read_reply (&c, 1, 0, 4096);
  expect_read_reply (&c, 2, NBD_ESHUTDOWN, 0);
  assert_true (raw_closed (&c));
  pthread_join (t, NULL);
  assert_int_equal (s.result, 0);
  /* Flushed at the end (the connection's and the server's flush). */
  assert_true (tb_count (f->tb, &f->tb->flushes) > flushes);
  raw_close (&c);
}

static void
test_shutdown_closes_handshaking_clients (void **state)
{
  struct fixture *f = *state;
  struct raw c;
  raw_connect (f->srv, &c);
  raw_hello (&c, NBD_FLAG_C_FIXED_NEWSTYLE);
  assert_int_equal (r3m_nbd_server_shutdown (f->srv, 5000, NULL), 0);
  assert_true (raw_closed (&c));
  raw_close (&c);
}

static void
test_shutdown_cuts_client_that_does_not_read (void **state)
{
  struct fixture *f = *state;
  struct raw c;
  raw_connect (f->srv, &c);
  raw_go (&c, "", false, NULL, 0, NULL, NULL);
  /* Ask for far more than the socket buffers hold, read nothing. */
  for (uint64_t i = 0; i < 64; i++)
    raw_request (&c, 0, NBD_CMD_READ, i, 0, 1 << 20, NULL);
  struct timespec a, b;
  clock_gettime (CLOCK_MONOTONIC, &a);
  assert_int_equal (r3m_nbd_server_shutdown (f->srv, 200, NULL), 0);
  clock_gettime (CLOCK_MONOTONIC, &b);
  /* Bounded by the grace period, give or take scheduling. */
  assert_true (b.tv_sec - a.tv_sec < 5);
  raw_close (&c);
}

static void
test_multi_conn_flush_visible (void **state)
{
  struct fixture *f = *state;
  struct raw a, b;
  raw_connect (f->srv, &a);
  raw_connect (f->srv, &b);
  uint16_t fa, fb;
  raw_go (&a, "", false, NULL, 0, NULL, &fa);
  raw_go (&b, "", false, NULL, 0, NULL, &fb);
  assert_true (fa & NBD_FLAG_CAN_MULTI_CONN);
  unsigned char w[4096], r[4096];
  memset (w, 0x42, sizeof w);
  raw_request (&a, 0, NBD_CMD_WRITE, 1, 65536, sizeof w, w);
  expect_read_reply (&a, 1, 0, 0);
  raw_request (&a, 0, NBD_CMD_FLUSH, 2, 0, 0, NULL);
  expect_read_reply (&a, 2, 0, 0);
  raw_request (&b, 0, NBD_CMD_READ, 3, 65536, sizeof r, NULL);
  uint32_t err;
  uint64_t cookie;
  raw_simple (&b, &err, &cookie);
  assert_int_equal (err, 0);
  raw_recv (&b, r, sizeof r);
  assert_memory_equal (r, w, sizeof r);
  raw_close (&a);
  raw_close (&b);
}

/* Many clients, each writing and reading back its own area with many
 * requests in flight. */
struct hammer {
  struct r3m_nbd_server *srv;
  unsigned id;
  int ok;
};

static void *
hammer_thread (void *arg)
{
  struct hammer *h = arg;
  struct raw c;
  raw_connect (h->srv, &c);
  raw_go (&c, "", h->id % 2 == 0, NULL, 0, NULL, NULL);
  uint64_t base = (uint64_t) h->id * (SIZE / 8);
  enum { N = 64, LEN = 4096 };
  static __thread unsigned char w[N][LEN];
  for (unsigned i = 0; i < N; i++) {
    memset (w[i], (int) (h->id * 31 + i), LEN);
    raw_request (&c, i % 3 == 0 ? NBD_CMD_FLAG_FUA : 0, NBD_CMD_WRITE, i,
                 base + i * LEN, LEN, w[i]);
  }
  for (unsigned i = 0; i < N; i++) {
    uint32_t err;
    uint64_t cookie;
    raw_simple (&c, &err, &cookie);
    if (err != 0 || cookie >= N)
      return NULL;
  }
  for (unsigned i = 0; i < N; i++)
    raw_request (&c, 0, NBD_CMD_READ, 100 + i, base + i * LEN, LEN, NULL);
  for (unsigned i = 0; i < N; i++) {
    unsigned char r[LEN];
    uint64_t cookie;
    if (h->id % 2 == 0) {
      uint16_t flags, type;
      uint32_t len;
      unsigned char p[8 + LEN];
      raw_chunk (&c, &flags, &type, &cookie, p, sizeof p, &len);
      if (type != NBD_REPLY_TYPE_OFFSET_DATA || len != 8 + LEN)
        return NULL;
      memcpy (r, p + 8, LEN);
    } else {
      uint32_t err;
      raw_simple (&c, &err, &cookie);
      if (err != 0)
        return NULL;
      raw_recv (&c, r, LEN);
    }
    if (cookie < 100 || cookie >= 100 + N
        || memcmp (r, w[cookie - 100], LEN) != 0)
      return NULL;
  }
  raw_request (&c, 0, NBD_CMD_DISC, 0, 0, 0, NULL);
  raw_close (&c);
  h->ok = 1;
  return NULL;
}

static void
test_many_clients (void **state)
{
  struct fixture *f = *state;
  struct hammer h[8];
  pthread_t t[8];
  for (unsigned i = 0; i < 8; i++) {
    h[i] = (struct hammer) { .srv = f->srv, .id = i };
    pthread_create (&t[i], NULL, hammer_thread, &h[i]);
  }
  for (unsigned i = 0; i < 8; i++) {
    pthread_join (t[i], NULL);
    assert_true (h[i].ok);
  }
  struct r3m_nbd_server_stats st;
  assert_int_equal (r3m_nbd_server_shutdown (f->srv, 5000, NULL), 0);
  r3m_nbd_server_stats (f->srv, &st);
  assert_int_equal (st.connections, 8);
  assert_int_equal (st.active, 0);
  assert_int_equal (st.requests, 8 * 128);
  assert_int_equal (st.errors, 0);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_replies_out_of_order, setup_pool,
                                     teardown),
    cmocka_unit_test_setup_teardown
      (test_shutdown_finishes_running_and_refuses_queued, setup_pool_one,
       teardown),
    cmocka_unit_test_setup_teardown (test_shutdown_closes_handshaking_clients,
                                     setup_pool, teardown),
    cmocka_unit_test_setup_teardown
      (test_shutdown_cuts_client_that_does_not_read, setup_inline, teardown),
    cmocka_unit_test_setup_teardown
      (test_shutdown_cuts_client_that_does_not_read, setup_pool, teardown),
    cmocka_unit_test_setup_teardown (test_multi_conn_flush_visible,
                                     setup_inline, teardown),
    cmocka_unit_test_setup_teardown (test_many_clients, setup_inline,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_many_clients, setup_pool,
                                     teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
