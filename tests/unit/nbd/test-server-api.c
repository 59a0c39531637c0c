/* The NBD server's library API: argument checks, listening on real
 * sockets, the life cycle, flushing at shutdown. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "nbd/proto.h"
#include "rawnbd.h"
#include "testbackend.h"

struct fixture {
  struct r3m_nbd_server *srv;
  struct tb *tb, *tbro;
  struct r3m_backend *b, *ro;
  char dir[64];
};

static int
setup (void **state)
{
  struct fixture *f = calloc (1, sizeof *f);
  struct tb_options to = { .size = 1 << 20 };
  assert_int_equal (tb_new (&to, &f->tb, &f->b), 0);
  to.read_only = true;
  assert_int_equal (tb_new (&to, &f->tbro, &f->ro), 0);
  assert_int_equal (r3m_nbd_server_new (NULL, &f->srv, NULL), 0);
  snprintf (f->dir, sizeof f->dir, "/tmp/r3m-api-XXXXXX");
  assert_non_null (mkdtemp (f->dir));
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  struct fixture *f = *state;
  r3m_nbd_server_free (f->srv);
  r3m_backend_close (f->b);
  r3m_backend_close (f->ro);
  rmdir (f->dir);
  free (f);
  return 0;
}

static void
test_export_arguments (void **state)
{
  struct fixture *f = *state;
  struct r3m_error err;
  assert_int_equal (r3m_nbd_server_add_export (f->srv, "a", f->b, NULL,
                                               &err), 0);
  assert_int_equal (r3m_nbd_server_add_export (f->srv, "a", f->b, NULL,
                                               &err), -EEXIST);
  assert_non_null (strstr (err.msg, "'a'"));
  struct r3m_nbd_export_options o = { .min_block = 3 };
  assert_int_equal (r3m_nbd_server_add_export (f->srv, "b", f->b, &o, &err),
                    -EINVAL);
  o = (struct r3m_nbd_export_options) { .min_block = 1 << 17 };
  assert_int_equal (r3m_nbd_server_add_export (f->srv, "b", f->b, &o, &err),
                    -EINVAL);
  o = (struct r3m_nbd_export_options) { .preferred_block = 100 };
  assert_int_equal (r3m_nbd_server_add_export (f->srv, "b", f->b, &o, &err),
                    -EINVAL);
  o = (struct r3m_nbd_export_options) { .max_payload = 1024,
                                       .preferred_block = 4096 };
  assert_int_equal (r3m_nbd_server_add_export (f->srv, "b", f->b, &o, &err),
                    -EINVAL);
  o = (struct r3m_nbd_export_options) { .max_payload = 128u << 20 };
  assert_int_equal (r3m_nbd_server_add_export (f->srv, "b", f->b, &o, &err),
                    -EINVAL);
  char longname[NBD_MAX_STRING + 2];
  memset (longname, 'x', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  assert_int_equal (r3m_nbd_server_add_export (f->srv, longname, f->b, NULL,
                                               &err), -EINVAL);
  struct r3m_nbd_meta_context ctx = { .name = "nocolon" };
  assert_int_equal (r3m_nbd_server_add_meta_context (f->srv, "a", &ctx,
                                                     &err), -EINVAL);
}

static void
test_listen_arguments (void **state)
{
  struct fixture *f = *state;
  struct r3m_error err;
  assert_int_equal (r3m_nbd_server_listen (f->srv, "nbd://127.0.0.1:0/disk",
                                           &err), -EINVAL);
  assert_int_equal (r3m_nbd_server_listen (f->srv, "nbds://127.0.0.1:0",
                                           &err), -EINVAL);
  assert_non_null (strstr (err.msg, "TLS"));
  assert_int_equal (r3m_nbd_server_listen (f->srv, "nbd://127.0.0.1:0?x=1",
                                           &err), -EINVAL);
  assert_int_equal (r3m_nbd_server_listen (f->srv, "file:/x", &err),
                    -EINVAL);
  /* Nothing to serve yet. */
  assert_int_equal (r3m_nbd_server_start (f->srv, &err), -EINVAL);
}

static void
test_listen_and_serve (void **state)
{
  struct fixture *f = *state;
  struct r3m_error err;
  char uri[128], sock[96];
  snprintf (sock, sizeof sock, "%s/s", f->dir);
  snprintf (uri, sizeof uri, "nbd+unix:///?socket=%s", sock);
  assert_int_equal (r3m_nbd_server_add_export (f->srv, "", f->b, NULL,
                                               &err), 0);
  assert_int_equal (r3m_nbd_server_listen (f->srv, uri, &err), 0);
  assert_int_equal (r3m_nbd_server_listen (f->srv, "nbd://127.0.0.1:0",
                                           &err), 0);
  assert_int_equal (r3m_nbd_server_address_count (f->srv), 2);
  assert_string_equal (r3m_nbd_server_address (f->srv, 0), uri);
  const char *tcp = r3m_nbd_server_address (f->srv, 1);
  assert_non_null (strstr (tcp, "nbd://127.0.0.1:"));
  assert_int_equal (r3m_nbd_server_start (f->srv, &err), 0);
  assert_int_equal (r3m_nbd_server_start (f->srv, &err), -EBUSY);
  /* Exports and listeners are fixed once serving. */
  assert_int_equal (r3m_nbd_server_add_export (f->srv, "late", f->b, NULL,
                                               &err), -EBUSY);
  assert_int_equal (r3m_nbd_server_listen (f->srv, "nbd://127.0.0.1:0",
                                           &err), -EBUSY);

  struct raw c;
  raw_connect_unix (sock, &c);
  uint64_t size;
  raw_go (&c, "", false, NULL, 0, &size, NULL);
  assert_int_equal (size, 1 << 20);
  raw_close (&c);

  assert_int_equal (r3m_nbd_server_shutdown (f->srv, 1000, &err), 0);
  struct stat st;
  assert_int_equal (stat (sock, &st), -1);     /* socket file removed */
  assert_int_equal (r3m_nbd_server_shutdown (f->srv, 1000, &err), 0);
}

static void
test_shutdown_flushes_writable_exports (void **state)
{
  struct fixture *f = *state;
  assert_int_equal (r3m_nbd_server_add_export (f->srv, "", f->b, NULL,
                                               NULL), 0);
  assert_int_equal (r3m_nbd_server_add_export (f->srv, "ro", f->ro, NULL,
                                               NULL), 0);
  assert_int_equal (r3m_nbd_server_shutdown (f->srv, 0, NULL), 0);
  assert_int_equal (tb_count (f->tb, &f->tb->flushes), 1);
  assert_int_equal (tb_count (f->tbro, &f->tbro->flushes), 0);
}

static void
test_shutdown_reports_flush_failure (void **state)
{
  struct fixture *f = *state;
  assert_int_equal (r3m_nbd_server_add_export (f->srv, "", f->b, NULL,
                                               NULL), 0);
  tb_set (f->tb, &f->tb->fail_flush, -EIO);
  struct r3m_error err;
  r3m_error_clear (&err);
  assert_int_equal (r3m_nbd_server_shutdown (f->srv, 0, &err), -EIO);
  assert_non_null (strstr (err.msg, "flush"));
}

static void
test_read_only_backend_makes_read_only_export (void **state)
{
  struct fixture *f = *state;
  assert_int_equal (r3m_nbd_server_add_export (f->srv, "", f->ro, NULL,
                                               NULL), 0);
  struct raw c;
  raw_connect (f->srv, &c);
  uint16_t flags;
  raw_go (&c, "", false, NULL, 0, NULL, &flags);
  assert_true (flags & NBD_FLAG_READ_ONLY);
  raw_close (&c);
}

/* A backend that only does aligned I/O: the server neither advertises nor
 * enforces its alignment as a minimum (the backend handle adapts
 * unaligned requests), and offers it as the preferred size. */
static void
test_backend_alignment_is_preferred_not_minimum (void **state)
{
  struct fixture *f = *state;
  struct tb *tb;
  struct r3m_backend *b;
  struct tb_options to = { .size = 1 << 20, .align = 65536 };
  assert_int_equal (tb_new (&to, &tb, &b), 0);
  assert_int_equal (r3m_nbd_server_add_export (f->srv, "", b, NULL, NULL),
                    0);
  struct raw c;
  raw_connect (f->srv, &c);
  raw_hello (&c, NBD_FLAG_C_FIXED_NEWSTYLE);
  unsigned char d[64];
  uint16_t req = NBD_INFO_BLOCK_SIZE;
  raw_opt (&c, NBD_OPT_GO, d, raw_info_data (d, "", &req, 1));
  uint32_t type, len, min = 0, pref = 0;
  do {
    raw_opt_reply (&c, NBD_OPT_GO, &type, d, sizeof d, &len);
    if (type == NBD_REP_INFO && nbd_get16 (d) == NBD_INFO_BLOCK_SIZE) {
      min = nbd_get32 (d + 2);
      pref = nbd_get32 (d + 6);
    }
  } while (type == NBD_REP_INFO);
  assert_int_equal (type, NBD_REP_ACK);
  assert_int_equal (min, 1);
  assert_int_equal (pref, 65536);
  unsigned char w[100];
  memset (w, 0x3c, sizeof w);
  raw_request (&c, 0, NBD_CMD_WRITE, 1, 70000, sizeof w, w);
  uint32_t err;
  uint64_t cookie;
  raw_simple (&c, &err, &cookie);
  assert_int_equal (err, 0);
  raw_request (&c, 0, NBD_CMD_READ, 2, 69999, 102, NULL);
  raw_simple (&c, &err, &cookie);
  assert_int_equal (err, 0);
  unsigned char r[102];
  raw_recv (&c, r, sizeof r);
  assert_int_equal (r[0], 0);
  assert_memory_equal (r + 1, w, sizeof w);
  assert_int_equal (r[101], 0);
  raw_close (&c);
  r3m_nbd_server_shutdown (f->srv, 1000, NULL);
  r3m_backend_close (b);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_export_arguments, setup, teardown),
    cmocka_unit_test_setup_teardown (test_listen_arguments, setup, teardown),
    cmocka_unit_test_setup_teardown (test_listen_and_serve, setup, teardown),
    cmocka_unit_test_setup_teardown (test_shutdown_flushes_writable_exports,
                                     setup, teardown),
    cmocka_unit_test_setup_teardown (test_shutdown_reports_flush_failure,
                                     setup, teardown),
    cmocka_unit_test_setup_teardown
      (test_read_only_backend_makes_read_only_export, setup, teardown),
    cmocka_unit_test_setup_teardown
      (test_backend_alignment_is_preferred_not_minimum, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
