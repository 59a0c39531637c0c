/* TLS pre-shared keys: the key file parser (src/nbd/tls_psk.c), PSK
 * handshakes between our own server and client contexts over a socketpair
 * (tls.c, conn.c), and the client URI's user and tls-psk-file
 * (client_uri.c).  Interoperation with GnuTLS is in the integration tests
 * nbd-tls-psk.sh and nbd-client-tls-psk.sh. */
#include <errno.h>
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

#include "nbd/client.h"
#include "nbd/conn.h"
#include "nbd/tls.h"
#include "nbd/tls_psk.h"
#include "testcerts.h"

static char dir[] = "/tmp/r3m-psk-XXXXXX";

#define KEY_A "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define KEY_B "ffeeddccbbaa99887766554433221100"

static const char *
path (const char *name)
{
  static __thread char buf[8][256];
  static __thread int i;
  i = (i + 1) % 8;
  snprintf (buf[i], sizeof buf[i], "%s/%s", dir, name);
  return buf[i];
}

static void
write_file (const char *name, const char *text)
{
  FILE *f = fopen (path (name), "w");
  assert_non_null (f);
  fputs (text, f);
  fclose (f);
}

static int
setup (void **state)
{
  if (!mkdtemp (dir) || testcerts_make (dir) < 0)
    return -1;
  write_file ("keys.psk", "alice:" KEY_A "\nbob:" KEY_B "\n");
  write_file ("alice.psk", "alice:" KEY_A "\n");
  write_file ("wrong.psk", "alice:" KEY_B "\n");
  write_file ("mallory.psk", "mallory:" KEY_A "\n");
  return 0;
}

static int
teardown (void **state)
{
  char cmd[300];
  snprintf (cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system (cmd) == 0 ? 0 : -1;
}

/* ---- the parser --------------------------------------------------------- */

static int
parse (const char *text, struct nbd_psk_keys *k, struct r3m_error *err)
{
  r3m_error_clear (err);
  return nbd_psk_parse (text, strlen (text), "keys", k, err);
}

static void
test_parse_good (void **state)
{
  struct nbd_psk_keys k;
  struct r3m_error err;
  assert_int_equal (parse ("# a comment\n\nalice:" KEY_A "\r\n"
                           "bob:FFEEDDCCBBAA99887766554433221100  \n"
                           "with space:" KEY_B, &k, &err), 0);
  assert_int_equal (k.n, 3);
  const struct nbd_psk_entry *a = nbd_psk_find (&k, "alice", 5);
  assert_non_null (a);
  assert_int_equal (a->key_len, 32);
  assert_int_equal (a->key[0], 0x00);
  assert_int_equal (a->key[31], 0xff);
  const struct nbd_psk_entry *b = nbd_psk_find (&k, "bob", 3);
  assert_non_null (b);
  assert_int_equal (b->key_len, 16);
  assert_int_equal (b->key[0], 0xff);
  assert_non_null (nbd_psk_find (&k, "with space", 10));
  assert_null (nbd_psk_find (&k, "alic", 4));
  assert_null (nbd_psk_find (&k, "alicex", 6));
  nbd_psk_keys_free (&k);
  assert_int_equal (k.n, 0);
  nbd_psk_keys_free (&k);             /* empty: a no-op */
  /* Nothing at all parses (the loader refuses it, see below). */
  assert_int_equal (parse ("", &k, &err), 0);
  assert_int_equal (k.n, 0);
}

static void
test_parse_errors_name_the_line (void **state)
{
  static const struct {
    const char *text, *msg;
  } bad[] = {
    { "alice:" KEY_A "\nno colon here\n", "line 2: expected username:hexkey" },
    { ":" KEY_A "\n", "line 1: empty user name" },
    { "alice:\n", "line 1: empty key" },
    { "alice:" KEY_B "0\n", "line 1: the key has an odd number" },
    { "\n\nalice:" KEY_B "zz\n", "line 3: the key is not hexadecimal" },
    { "alice: " KEY_B "\n", "line 1: the key is not hexadecimal" },
    { "alice:00112233\n", "line 1: the key has 4 bytes" },
    { "alice:" KEY_A KEY_A KEY_A KEY_A KEY_A KEY_A KEY_A KEY_A "00\n",
      "line 1: the key has 257 bytes" },
    { "alice:" KEY_A "\nalice:" KEY_B "\n", "line 2: user alice given twice" },
    { "al\tice:" KEY_A "\n", "line 1: control character" },
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct nbd_psk_keys k;
    struct r3m_error err;
    assert_int_equal (parse (bad[i].text, &k, &err), -EINVAL);
    assert_int_equal (k.n, 0);
    if (!strstr (err.msg, bad[i].msg))
      fail_msg ("case %zu: '%s' lacks '%s'", i, err.msg, bad[i].msg);
    /* Never any part of a key. */
    assert_null (strstr (err.msg, "0011223344"));
    assert_null (strstr (err.msg, "ffeeddcc"));
  }
  /* A NUL byte, and a name over the limit. */
  struct nbd_psk_keys k;
  struct r3m_error err;
  static const char nul[] = "alice:" KEY_B "\nb\0b:" KEY_B "\n";
  r3m_error_clear (&err);
  assert_int_equal (nbd_psk_parse (nul, sizeof nul - 1, "keys", &k, &err),
                    -EINVAL);
  assert_non_null (strstr (err.msg, "line 2: NUL byte"));
  char longname[NBD_PSK_USER_MAX + 2 + sizeof KEY_B + 1];
  memset (longname, 'u', NBD_PSK_USER_MAX + 1);
  snprintf (longname + NBD_PSK_USER_MAX + 1,
            sizeof longname - NBD_PSK_USER_MAX - 1, ":%s", KEY_B);
  assert_int_equal (parse (longname, &k, &err), -EINVAL);
  assert_non_null (strstr (err.msg, "user name longer than"));
  longname[NBD_PSK_USER_MAX] = ':';
  memcpy (longname + NBD_PSK_USER_MAX + 1, KEY_B, sizeof KEY_B);
  assert_int_equal (parse (longname, &k, &err), 0);
  assert_int_equal (k.n, 1);
  nbd_psk_keys_free (&k);
}

static void
test_load (void **state)
{
  struct nbd_psk_keys k;
  struct r3m_error err;
  r3m_error_clear (&err);
  assert_int_equal (nbd_psk_load (path ("keys.psk"), &k, &err), 0);
  assert_int_equal (k.n, 2);
  nbd_psk_keys_free (&k);
  assert_int_equal (nbd_psk_load (path ("none.psk"), &k, &err), -ENOENT);
  assert_non_null (strstr (err.msg, "none.psk"));
  assert_int_equal (nbd_psk_load (dir, &k, &err), -EINVAL);
  assert_non_null (strstr (err.msg, "not a regular file"));
  write_file ("empty.psk", "# nothing\n");
  assert_int_equal (nbd_psk_load (path ("empty.psk"), &k, &err), -EINVAL);
  assert_non_null (strstr (err.msg, "no keys"));
  write_file ("bad.psk", "alice:" KEY_A "\nbob:" KEY_B "0\n");
  assert_int_equal (nbd_psk_load (path ("bad.psk"), &k, &err), -EINVAL);
  assert_non_null (strstr (err.msg, "bad.psk: line 2"));
  assert_null (strstr (err.msg, KEY_B));
}

/* ---- handshakes ---------------------------------------------------------- */

struct side {
  struct nbd_conn *c;
  struct nbd_tls *tls;
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

/* Server with keys (and a certificate when with_cert, and a CA for
 * client certificates when with_ca) against a client with psk_file/user,
 * or a certificate client when psk_file is NULL. */
static void
handshake2 (struct side *srv, struct side *cli, bool with_cert, bool with_ca,
            const char *psk_file, const char *user)
{
  int sv[2];
  assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM, 0, sv), 0);
  memset (srv, 0, sizeof *srv);
  memset (cli, 0, sizeof *cli);
  assert_int_equal (nbd_conn_new (sv[0], &srv->c), 0);
  assert_int_equal (nbd_conn_new (sv[1], &cli->c), 0);
  nbd_conn_set_timeout (srv->c, 5000);
  nbd_conn_set_timeout (cli->c, 5000);

  struct nbd_tls_options so, co;
  nbd_tls_options_init (&so);
  so.psk_file = path ("keys.psk");
  if (with_cert) {
    so.cert_file = path ("server.pem");
    so.key_file = path ("server-key.pem");
  }
  so.ca_file = with_ca ? path ("ca.pem") : NULL;
  struct r3m_error err;
  r3m_error_clear (&err);
  assert_int_equal (nbd_tls_new_server (&so, &srv->tls, &err), 0);
  nbd_tls_options_init (&co);
  co.psk_file = psk_file;
  co.psk_user = user;
  co.ca_file = psk_file ? NULL : path ("ca.pem");
  assert_int_equal (nbd_tls_new_client (&co, &cli->tls, &err), 0);

  pthread_t t;
  pthread_create (&t, NULL, server_side, srv);
  r3m_error_clear (&cli->err);
  cli->result = nbd_conn_tls_connect (cli->c, cli->tls, "localhost",
                                      &cli->err);
  if (cli->result < 0)
    nbd_conn_shutdown (cli->c, SHUT_RDWR);
  pthread_join (t, NULL);
}

static void
handshake (struct side *srv, struct side *cli, bool with_cert,
           const char *psk_file, const char *user)
{
  handshake2 (srv, cli, with_cert, false, psk_file, user);
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
test_psk_handshake_and_data (void **state)
{
  for (int with_cert = 0; with_cert < 2; with_cert++) {
    struct side srv, cli;
    handshake (&srv, &cli, with_cert, path ("alice.psk"), "alice");
    assert_int_equal (cli.result, 0);
    assert_int_equal (srv.result, 0);
    assert_int_equal (nbd_conn_write_all (cli.c, "secret", 6), 0);
    char buf[6];
    assert_int_equal (nbd_conn_read_exact (srv.c, buf, 6), 0);
    assert_memory_equal (buf, "secret", 6);
    char peer[256];
    nbd_conn_describe_peer (srv.c, peer, sizeof peer);
    assert_non_null (strstr (peer, "psk user alice"));
    done (&srv, &cli);
  }
  /* The client picks its user's line from a file with several. */
  struct side srv, cli;
  handshake (&srv, &cli, false, path ("keys.psk"), "bob");
  assert_int_equal (cli.result, 0);
  assert_int_equal (srv.result, 0);
  done (&srv, &cli);
}

static void
test_psk_wrong_key (void **state)
{
  struct side srv, cli;
  handshake (&srv, &cli, false, path ("wrong.psk"), "alice");
  assert_int_equal (srv.result, -EACCES);
  assert_non_null (strstr (srv.err.msg, "PSK user 'alice' did not prove"));
  assert_int_not_equal (cli.result, 0);
  assert_non_null (strstr (cli.err.msg, "pre-shared key of user 'alice'"));
  assert_null (strstr (srv.err.msg, "ffeeddcc"));
  assert_null (strstr (cli.err.msg, "ffeeddcc"));
  done (&srv, &cli);
}

static void
test_psk_unknown_user (void **state)
{
  /* Keys only: the handshake has nothing else to try. */
  struct side srv, cli;
  handshake (&srv, &cli, false, path ("mallory.psk"), "mallory");
  assert_int_equal (srv.result, -EACCES);
  assert_non_null (strstr (srv.err.msg, "unknown PSK user 'mallory'"));
  assert_int_not_equal (cli.result, 0);
  done (&srv, &cli);
  /* With a certificate the server offers it instead; a PSK client must
   * not take it. */
  handshake (&srv, &cli, true, path ("mallory.psk"), "mallory");
  assert_int_equal (cli.result, -EACCES);
  assert_non_null (strstr (cli.err.msg, "offered a certificate instead"));
  assert_int_not_equal (srv.result, 0);
  assert_non_null (strstr (srv.err.msg, "unknown PSK user 'mallory'"));
  done (&srv, &cli);
}

static void
test_certificate_client_of_psk_server (void **state)
{
  struct side srv, cli;
  handshake (&srv, &cli, true, NULL, NULL);
  assert_int_equal (cli.result, 0);
  assert_int_equal (srv.result, 0);
  done (&srv, &cli);
  /* Keys only: a certificate client finds no certificate to verify. */
  handshake (&srv, &cli, false, NULL, NULL);
  assert_int_not_equal (cli.result, 0);
  assert_int_not_equal (srv.result, 0);
  done (&srv, &cli);
}

/* Clients verified by a CA: a PSK client's key is its proof (OpenSSL
 * needs a session id context for that, or fails "session id context
 * uninitialized"); a certificate client without a certificate is still
 * refused. */
static void
test_psk_with_client_ca (void **state)
{
  struct side srv, cli;
  handshake2 (&srv, &cli, true, true, path ("alice.psk"), "alice");
  assert_int_equal (srv.result, 0);
  assert_int_equal (cli.result, 0);
  done (&srv, &cli);
  handshake2 (&srv, &cli, true, true, NULL, NULL);
  assert_int_not_equal (srv.result, 0);
  done (&srv, &cli);
}

static void
test_context_errors (void **state)
{
  struct nbd_tls_options o;
  struct nbd_tls *t;
  struct r3m_error err;
  nbd_tls_options_init (&o);
  r3m_error_clear (&err);
  assert_int_equal (nbd_tls_new_server (&o, &t, &err), -EINVAL);
  assert_non_null (strstr (err.msg, "pre-shared key"));
  o.psk_file = path ("keys.psk");
  o.psk_user = "nobody";
  assert_int_equal (nbd_tls_new_client (&o, &t, &err), -EACCES);
  assert_non_null (strstr (err.msg, "no key for user nobody"));
  o.psk_user = NULL;
  assert_int_equal (nbd_tls_new_client (&o, &t, &err), -EINVAL);
  o.psk_file = path ("none.psk");
  assert_int_equal (nbd_tls_new_server (&o, &t, &err), -ENOENT);
}

/* ---- client URIs ----------------------------------------------------------- */

static void
test_client_uri (void **state)
{
  struct nbd_cli_opts o;
  struct r3m_error err;
  r3m_error_clear (&err);
  assert_int_equal (nbd_cli_opts_parse ("nbds+unix://alice@/x?socket=/s&"
                                        "tls-psk-file=/k", 0, &o, &err), 0);
  assert_string_equal (o.tls_username, "alice");
  assert_string_equal (o.tls_psk_file, "/k");
  assert_null (o.tls_hostname);        /* no certificate to check */
  assert_string_equal (o.uri.export_name, "x");
  nbd_cli_opts_free (&o);
  assert_int_equal (nbd_cli_opts_parse ("nbds://al%40ice@h:1/?tls-psk-file="
                                        "/k", 0, &o, &err), 0);
  assert_string_equal (o.tls_username, "al@ice");
  nbd_cli_opts_free (&o);
  /* No user: the login name, whatever it is here. */
  assert_int_equal (nbd_cli_opts_parse ("nbds://h/?tls-psk-file=/k", 0, &o,
                                        &err), 0);
  assert_non_null (o.tls_username);
  assert_true (o.tls_username[0] != '\0');
  nbd_cli_opts_free (&o);

  static const struct {
    const char *uri, *msg;
  } bad[] = {
    { "nbd://alice@h/", "needs nbds" },
    { "nbds://alice@h/", "is for tls-psk-file" },
    { "nbds://alice:pw@h/?tls-psk-file=/k", "passwords" },
    { "nbd://h/?tls-psk-file=/k", "need nbds" },
    { "nbds://h/?tls-psk-file=/k&tls-ca=/c", "does not go with" },
    { "nbds://h/?tls-psk-file=", "tls-psk-file is empty" },
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    r3m_error_clear (&err);
    assert_int_equal (nbd_cli_opts_parse (bad[i].uri, 0, &o, &err), -EINVAL);
    if (!strstr (err.msg, bad[i].msg))
      fail_msg ("%s: '%s' lacks '%s'", bad[i].uri, err.msg, bad[i].msg);
  }
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_parse_good),
    cmocka_unit_test (test_parse_errors_name_the_line),
    cmocka_unit_test (test_load),
    cmocka_unit_test (test_psk_handshake_and_data),
    cmocka_unit_test (test_psk_wrong_key),
    cmocka_unit_test (test_psk_unknown_user),
    cmocka_unit_test (test_certificate_client_of_psk_server),
    cmocka_unit_test (test_psk_with_client_ca),
    cmocka_unit_test (test_context_errors),
    cmocka_unit_test (test_client_uri),
  };
  return cmocka_run_group_tests (tests, setup, teardown);
}
