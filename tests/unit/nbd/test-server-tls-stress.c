/* TLS under load: one client sends pipelined writes and reads from one
 * thread while another reads the replies, against the worker pool, where
 * the server's reader calls SSL_read while its workers call SSL_write on
 * the same session.  Data must round-trip intact and every cookie come
 * back once.  Suite 'stress' (also under TSan). */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include <r3map/nbd.h>

#include "nbd/conn.h"
#include "nbd/proto.h"
#include "nbd/tls.h"
#include "rawnbd.h"
#include "testbackend.h"
#include "testcerts.h"

#define N 256
#define LEN 8192

static char dir[] = "/tmp/r3m-tlsstress-XXXXXX";

static const char *
path (const char *name)
{
  static char buf[4][256];
  static int i;
  i = (i + 1) % 4;
  snprintf (buf[i], sizeof buf[i], "%s/%s.pem", dir, name);
  return buf[i];
}

struct sender {
  struct nbd_conn *c;
  uint16_t type;
  unsigned char (*data)[LEN];
  int result;
};

static void *
send_all (void *arg)
{
  struct sender *s = arg;
  s->result = 0;
  for (unsigned i = 0; i < N && s->result == 0; i++) {
    unsigned char h[28];
    raw_put_request (h, 0, s->type, i, (uint64_t) i * LEN, LEN);
    struct iovec iov[2] = { { h, 28 }, { s->data[i], LEN } };
    s->result = nbd_conn_writev_all (s->c, iov,
                                     s->type == NBD_CMD_WRITE ? 2 : 1);
  }
  return NULL;
}

static void
negotiate (struct nbd_conn *c, struct nbd_tls **ctls)
{
  unsigned char h[20], cf[4];
  assert_int_equal (nbd_conn_read_exact (c, h, 18), 0);
  nbd_put32 (cf, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
  assert_int_equal (nbd_conn_write_all (c, cf, 4), 0);
  unsigned char o[16 + 6] = { 0 };
  nbd_put64 (o, NBD_IHAVEOPT);
  nbd_put32 (o + 8, NBD_OPT_STARTTLS);
  assert_int_equal (nbd_conn_write_all (c, o, 16), 0);
  assert_int_equal (nbd_conn_read_exact (c, h, 20), 0);
  assert_int_equal (nbd_get32 (h + 12), NBD_REP_ACK);
  struct nbd_tls_options to;
  nbd_tls_options_init (&to);
  to.ca_file = path ("ca");
  assert_int_equal (nbd_tls_new_client (&to, ctls, NULL), 0);
  assert_int_equal (nbd_conn_tls_connect (c, *ctls, "localhost", NULL), 0);
  nbd_put32 (o + 8, NBD_OPT_GO);
  nbd_put32 (o + 12, 6);
  assert_int_equal (nbd_conn_write_all (c, o, sizeof o), 0);
  for (;;) {
    assert_int_equal (nbd_conn_read_exact (c, h, 20), 0);
    assert_int_equal (nbd_conn_discard (c, nbd_get32 (h + 16)), 0);
    if (nbd_get32 (h + 12) == NBD_REP_ACK)
      break;
    assert_int_equal (nbd_get32 (h + 12), NBD_REP_INFO);
  }
}

static void
test_tls_pipelined_round_trip (void **state)
{
  struct tb *tb;
  struct r3m_backend *b;
  struct tb_options to = { .size = N * LEN, .async_threads = 2 };
  assert_int_equal (tb_new (&to, &tb, &b), 0);
  struct r3m_nbd_server_options o;
  r3m_nbd_server_options_init (&o);
  o.tls = R3M_NBD_TLS_REQUIRE;
  o.tls_cert = path ("server");
  o.tls_key = path ("server-key");
  o.workers = 4;
  struct r3m_nbd_server *srv;
  assert_int_equal (r3m_nbd_server_new (&o, &srv, NULL), 0);
  assert_int_equal (r3m_nbd_server_add_export (srv, "", b, NULL, NULL), 0);
  int sv[2];
  assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM, 0, sv), 0);
  assert_int_equal (r3m_nbd_server_serve_fd (srv, sv[0], NULL), 0);
  struct nbd_conn *c;
  assert_int_equal (nbd_conn_new (sv[1], &c), 0);
  nbd_conn_set_timeout (c, 20000);
  struct nbd_tls *ctls;
  negotiate (c, &ctls);

  static unsigned char data[N][LEN];
  for (unsigned i = 0; i < N; i++)
    memset (data[i], (int) (i * 7 + 1), LEN);
  for (int phase = 0; phase < 2; phase++) {
    struct sender s = { .c = c, .data = data,
                        .type = phase ? NBD_CMD_READ : NBD_CMD_WRITE };
    pthread_t t;
    pthread_create (&t, NULL, send_all, &s);
    bool seen[N] = { false };
    for (unsigned k = 0; k < N; k++) {
      unsigned char h[16], r[LEN];
      assert_int_equal (nbd_conn_read_exact (c, h, 16), 0);
      assert_true (nbd_get32 (h) == NBD_SIMPLE_REPLY_MAGIC);
      assert_int_equal (nbd_get32 (h + 4), 0);
      uint64_t cookie = nbd_get64 (h + 8);
      assert_true (cookie < N && !seen[cookie]);
      seen[cookie] = true;
      if (phase) {
        assert_int_equal (nbd_conn_read_exact (c, r, LEN), 0);
        assert_memory_equal (r, data[cookie], LEN);
      }
    }
    pthread_join (t, NULL);
    assert_int_equal (s.result, 0);
  }
  nbd_conn_close (c);
  assert_int_equal (r3m_nbd_server_shutdown (srv, 5000, NULL), 0);
  r3m_nbd_server_free (srv);
  nbd_tls_free (ctls);
  r3m_backend_close (b);
}

static int
group_setup (void **state)
{
  return mkdtemp (dir) && testcerts_make (dir) == 0 ? 0 : -1;
}

static int
group_teardown (void **state)
{
  char cmd[300];
  snprintf (cmd, sizeof cmd, "rm -rf %s", dir);
  return system (cmd) == 0 ? 0 : -1;
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_tls_pipelined_round_trip),
  };
  return cmocka_run_group_tests (tests, group_setup, group_teardown);
}
