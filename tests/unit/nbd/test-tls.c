/* TLS on the shared byte stream (src/nbd/tls.c, conn.c): handshakes with
 * certificates made at test time, verification failures, and concurrent
 * reading and writing on one TLS connection. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "nbd/conn.h"
#include "nbd/tls.h"
#include "testcerts.h"

static char dir[] = "/tmp/r3m-tls-XXXXXX";

static const char *
path (const char *name)
{
  static __thread char buf[8][256];
  static __thread int i;
  i = (i + 1) % 8;
  snprintf (buf[i], sizeof buf[i], "%s/%s.pem", dir, name);
  return buf[i];
}

static int
setup (void **state)
{
  if (!mkdtemp (dir) || testcerts_make (dir) < 0)
    return -1;
  return 0;
}

static int
teardown (void **state)
{
  static const char *files[] = { "ca", "ca-key", "server", "server-key",
                                 "client", "client-key", "other-ca",
                                 "other-client", "other-client-key" };
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
    unlink (path (files[i]));
  rmdir (dir);
  return 0;
}

struct side {
  struct nbd_conn *c;
  struct nbd_tls *tls;
  const char *hostname;
  int result;
  struct r3m_error err;
};

static void *
server_side (void *arg)
{
  struct side *s = arg;
  r3m_error_clear (&s->err);
  s->result = nbd_conn_tls_accept (s->c, s->tls, &s->err);
  return NULL;
}

/* Handshake server (cert/ca) against client (ca/cert) over a socketpair. */
static void
handshake (struct side *srv, struct side *cli, bool server_ca,
           const char *client_ca, const char *client_cert,
           const char *hostname)
{
  int sv[2];
  assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM, 0, sv), 0);
  memset (srv, 0, sizeof *srv);
  memset (cli, 0, sizeof *cli);
  assert_int_equal (nbd_conn_new (sv[0], &srv->c), 0);
  assert_int_equal (nbd_conn_new (sv[1], &cli->c), 0);
  /* A failed handshake on one side must not leave the other waiting. */
  nbd_conn_set_timeout (srv->c, 5000);
  nbd_conn_set_timeout (cli->c, 5000);

  struct nbd_tls_options so, co;
  nbd_tls_options_init (&so);
  so.cert_file = path ("server");
  so.key_file = path ("server-key");
  so.ca_file = server_ca ? path ("ca") : NULL;
  struct r3m_error err;
  assert_int_equal (nbd_tls_new_server (&so, &srv->tls, &err), 0);
  nbd_tls_options_init (&co);
  co.ca_file = client_ca;
  if (client_cert) {
    co.cert_file = path (client_cert);
    char key[64];
    snprintf (key, sizeof key, "%s-key", client_cert);
    co.key_file = path (key);
  }
  assert_int_equal (nbd_tls_new_client (&co, &cli->tls, &err), 0);

  pthread_t t;
  pthread_create (&t, NULL, server_side, srv);
  r3m_error_clear (&cli->err);
  cli->result = nbd_conn_tls_connect (cli->c, cli->tls, hostname, &cli->err);
  if (cli->result < 0)
    nbd_conn_shutdown (cli->c, SHUT_RDWR);
  pthread_join (t, NULL);
}

static void
done (struct side *srv, struct side *cli)
{
  nbd_conn_close (srv->c);
  nbd_conn_close (cli->c);
  nbd_tls_free (srv->tls);
  nbd_tls_free (cli->tls);
}

static void
test_handshake_and_data (void **state)
{
  struct side srv, cli;
  handshake (&srv, &cli, false, path ("ca"), NULL, "localhost");
  assert_int_equal (cli.result, 0);
  assert_int_equal (srv.result, 0);
  assert_true (nbd_conn_is_tls (cli.c));
  assert_int_equal (nbd_conn_write_all (cli.c, "secret", 6), 0);
  char buf[6];
  assert_int_equal (nbd_conn_read_exact (srv.c, buf, 6), 0);
  assert_memory_equal (buf, "secret", 6);
  done (&srv, &cli);
}

static void
test_ip_address_checked (void **state)
{
  struct side srv, cli;
  handshake (&srv, &cli, false, path ("ca"), NULL, "127.0.0.1");
  assert_int_equal (cli.result, 0);
  done (&srv, &cli);
}

static void
test_wrong_ca_refused (void **state)
{
  struct side srv, cli;
  handshake (&srv, &cli, false, path ("other-ca"), NULL, "localhost");
  assert_int_equal (cli.result, -EACCES);
  assert_non_null (strstr (cli.err.msg, "certificate"));
  assert_int_not_equal (srv.result, 0);
  done (&srv, &cli);
}

static void
test_wrong_host_refused (void **state)
{
  struct side srv, cli;
  handshake (&srv, &cli, false, path ("ca"), NULL, "example.com");
  assert_int_equal (cli.result, -EACCES);
  assert_non_null (strstr (cli.err.msg, "hostname mismatch"));
  done (&srv, &cli);
}

static void
test_client_cert_required_and_checked (void **state)
{
  struct side srv, cli;
  /* Without a client certificate. */
  handshake (&srv, &cli, true, path ("ca"), NULL, "localhost");
  assert_int_not_equal (srv.result, 0);
  done (&srv, &cli);
  /* With one from another CA. */
  handshake (&srv, &cli, true, path ("ca"), "other-client", "localhost");
  assert_int_not_equal (srv.result, 0);
  done (&srv, &cli);
  /* With a good one: the server names the peer. */
  handshake (&srv, &cli, true, path ("ca"), "client", "localhost");
  assert_int_equal (srv.result, 0);
  assert_int_equal (cli.result, 0);
  char peer[256];
  nbd_conn_describe_peer (srv.c, peer, sizeof peer);
  assert_non_null (strstr (peer, "r3map-test-client"));
  done (&srv, &cli);
}

static void
test_bad_files_have_messages (void **state)
{
  struct nbd_tls_options o;
  nbd_tls_options_init (&o);
  o.cert_file = "/nonexistent/cert.pem";
  struct nbd_tls *t;
  struct r3m_error err;
  r3m_error_clear (&err);
  assert_int_equal (nbd_tls_new_server (&o, &t, &err), -EINVAL);
  assert_non_null (strstr (err.msg, "/nonexistent/cert.pem"));
  /* A key that does not belong to the certificate. */
  o.cert_file = path ("server");
  o.key_file = path ("client-key");
  r3m_error_clear (&err);
  assert_int_equal (nbd_tls_new_server (&o, &t, &err), -EINVAL);
  assert_non_null (strstr (err.msg, "key"));
}

/* Both directions at once, from different threads: the TLS lock and the
 * non-blocking socket must keep them from corrupting or stalling. */
struct pump {
  struct nbd_conn *c;
  size_t len;
  int result;
};

static void *
pump_read (void *arg)
{
  struct pump *p = arg;
  unsigned char *buf = malloc (p->len);
  p->result = nbd_conn_read_exact (p->c, buf, p->len);
  for (size_t i = 0; p->result == 0 && i < p->len; i++)
    if (buf[i] != (unsigned char) (i % 251))
      p->result = -EILSEQ;
  free (buf);
  return NULL;
}

static void *
pump_write (void *arg)
{
  struct pump *p = arg;
  unsigned char *buf = malloc (p->len);
  for (size_t i = 0; i < p->len; i++)
    buf[i] = (unsigned char) (i % 251);
  /* Many small writes and a few big ones. */
  size_t off = 0;
  p->result = 0;
  while (p->result == 0 && off < p->len) {
    size_t n = off % 3 == 0 ? 1000000 : 17;
    if (n > p->len - off)
      n = p->len - off;
    p->result = nbd_conn_write_all (p->c, buf + off, n);
    off += n;
  }
  free (buf);
  return NULL;
}

static void
test_concurrent_read_write (void **state)
{
  struct side srv, cli;
  handshake (&srv, &cli, false, path ("ca"), NULL, "localhost");
  assert_int_equal (cli.result, 0);
  size_t len = 6u << 20;
  struct pump sr = { srv.c, len, 1 }, sw = { srv.c, len, 1 };
  struct pump cr = { cli.c, len, 1 }, cw = { cli.c, len, 1 };
  pthread_t t[4];
  pthread_create (&t[0], NULL, pump_read, &sr);
  pthread_create (&t[1], NULL, pump_write, &sw);
  pthread_create (&t[2], NULL, pump_read, &cr);
  pthread_create (&t[3], NULL, pump_write, &cw);
  for (int i = 0; i < 4; i++)
    pthread_join (t[i], NULL);
  assert_int_equal (sr.result, 0);
  assert_int_equal (sw.result, 0);
  assert_int_equal (cr.result, 0);
  assert_int_equal (cw.result, 0);
  done (&srv, &cli);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_handshake_and_data),
    cmocka_unit_test (test_ip_address_checked),
    cmocka_unit_test (test_wrong_ca_refused),
    cmocka_unit_test (test_wrong_host_refused),
    cmocka_unit_test (test_client_cert_required_and_checked),
    cmocka_unit_test (test_bad_files_have_messages),
    cmocka_unit_test (test_concurrent_read_write),
  };
  return cmocka_run_group_tests (tests, setup, teardown);
}
