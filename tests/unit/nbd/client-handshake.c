/* NBD client: the handshake, against a scripted fake server. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <r3map/backend.h>
#include <r3map/nbd_client.h>

#include "client-fake.h"
#include "nbd/proto.h"

static struct r3m_backend *
open_ok (struct fake *f, const char *extra)
{
  char uri[256];
  snprintf (uri, sizeof uri, "%s%s", f->uri, extra ? extra : "");
  struct r3m_backend *b = NULL;
  struct r3m_error err;
  int r = r3m_backend_open (uri, 0, &b, &err);
  if (r < 0)
    fail_msg ("open %s: %s", uri, err.msg);
  return b;
}

static int
open_fails (struct fake *f, const char *extra, struct r3m_error *err)
{
  char uri[256];
  snprintf (uri, sizeof uri, "%s%s", f->uri, extra ? extra : "");
  struct r3m_backend *b = NULL;
  int r = r3m_backend_open (uri, 0, &b, err);
  assert_true (r < 0);
  assert_null (b);
  assert_int_equal (err->code, -r);
  assert_non_null (strstr (err->msg, uri));   /* names the URI */
  return r;
}

/* GO carries its real length and asks for INFO_BLOCK_SIZE (the Go
 * original sent length 0); client flags are FIXED | NO_ZEROES. */
static void
go_has_correct_length (void **state)
{
  struct fake_mem m = { .lock = PTHREAD_MUTEX_INITIALIZER, .bytes = calloc (1, 1 << 20) };
  struct fake *f = fake_start (fake_memory_script, &m, NULL);
  struct r3m_backend *b = open_ok (f, NULL);
  assert_int_equal (f->go_len, 4 + 0 + 2 + 2);
  assert_int_equal (f->go_infos, 1);
  assert_true (f->go_asked_block_size);
  assert_int_equal (f->client_flags,
                    NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
  assert_int_equal (r3m_backend_size (b), 1 << 20);
  r3m_backend_close (b);
  assert_true (fake_stop (f));
  free (m.bytes);
}

static void
export_name_in_go (void **state)
{
  struct fake_mem m = { .lock = PTHREAD_MUTEX_INITIALIZER, .bytes = calloc (1, 1 << 20) };
  struct fake *f = fake_start (fake_memory_script, &m, NULL);
  struct r3m_backend *b = NULL;
  struct r3m_error err;
  char uri[256];
  snprintf (uri, sizeof uri, "nbd+unix:///disk%%20one?socket=%s", f->sock);
  assert_int_equal (r3m_backend_open (uri, 0, &b, &err), 0);
  /* name length 8 ("disk one"), 1 info request */
  assert_int_equal (f->go_len, 4 + 8 + 2 + 2);
  r3m_backend_close (b);
  assert_true (fake_stop (f));
  free (m.bytes);
}

/* INFO_BLOCK_SIZE becomes the handle's alignment and request limit. */
static void
block_size_honoured (void **state)
{
  struct fake_cfg cfg = fake_default_cfg ();
  cfg.block_size = true;
  cfg.min = 512;
  cfg.pref = 4096;
  cfg.max = 65536;
  struct fake_mem m = { .lock = PTHREAD_MUTEX_INITIALIZER, .bytes = calloc (1, 1 << 20) };
  struct fake *f = fake_start (fake_memory_script, &m, &cfg);
  struct r3m_backend *b = open_ok (f, NULL);
  const struct r3m_backend_info *i = r3m_backend_get_info (b);
  assert_int_equal (i->align, 512);
  assert_int_equal (i->preferred_io, 4096);
  assert_int_equal (i->max_io, 65536);
  /* A 256 KiB read goes out as four 64 KiB requests. */
  char *buf = malloc (256 << 10);
  memset (m.bytes, 0xab, 256 << 10);
  assert_int_equal (r3m_backend_pread (b, buf, 256 << 10, 0), 0);
  assert_int_equal ((unsigned char) buf[(256 << 10) - 1], 0xab);
  r3m_backend_close (b);
  assert_true (fake_stop (f));
  assert_int_equal (m.requests[0], 4);
  free (buf);
  free (m.bytes);
}

/* A server that does not know GO gets EXPORT_NAME. */
static void
export_name_fallback (void **state)
{
  struct fake_cfg cfg = fake_default_cfg ();
  cfg.go_unsupported = true;
  cfg.size = 12345 * 512;
  struct fake_mem m = { .lock = PTHREAD_MUTEX_INITIALIZER, .bytes = calloc (1, cfg.size) };
  struct fake *f = fake_start (fake_memory_script, &m, &cfg);
  struct r3m_backend *b = open_ok (f, NULL);
  assert_int_equal (r3m_backend_size (b), cfg.size);
  m.bytes[100] = 42;
  char c;
  assert_int_equal (r3m_backend_pread (b, &c, 1, 100), 0);
  assert_int_equal (c, 42);
  r3m_backend_close (b);
  assert_true (fake_stop (f));
  free (m.bytes);
}

/* Without FIXED_NEWSTYLE only EXPORT_NAME may be sent, and the 124 zero
 * bytes come unless NO_ZEROES was agreed. */
static void
old_newstyle_server (void **state)
{
  struct fake_cfg cfg = fake_default_cfg ();
  cfg.hs_flags = 0;
  cfg.structured = false;       /* what the fake's replies must be */
  struct fake_mem m = { .lock = PTHREAD_MUTEX_INITIALIZER, .bytes = calloc (1, cfg.size) };
  struct fake *f = fake_start (fake_memory_script, &m, &cfg);
  struct r3m_backend *b = open_ok (f, NULL);
  assert_int_equal (f->client_flags, 0);
  assert_int_equal (r3m_backend_size (b), cfg.size);
  struct r3m_nbd_client_info info;
  assert_int_equal (r3m_nbd_client_info (b, &info), 0);
  assert_false (info.structured_replies);
  char buf[8];
  assert_int_equal (r3m_backend_pread (b, buf, 8, 0), 0);
  r3m_backend_close (b);
  assert_true (fake_stop (f));
  free (m.bytes);
}

static void
unknown_export_script (struct fake_conn *c)
{
  fk_greeting (c, NBD_FLAG_FIXED_NEWSTYLE);
  char d[512];
  uint32_t opt, len;
  fk_read (c, d, 4);
  while (fk_read_option (c, &opt, &len, d, sizeof d)) {
    if (opt == NBD_OPT_GO) {
      fk_opt_reply (c, opt, NBD_REP_ERR_UNKNOWN, "no such thing", 13);
      return;
    }
    fk_opt_reply (c, opt, NBD_REP_ERR_UNSUP, NULL, 0);
  }
}

static void
unknown_export (void **state)
{
  struct fake *f = fake_start (unknown_export_script, NULL, NULL);
  struct r3m_error err;
  assert_int_equal (open_fails (f, NULL, &err), -ENOENT);
  assert_non_null (strstr (err.msg, "no export named ''"));
  assert_non_null (strstr (err.msg, "no such thing"));
  assert_true (fake_stop (f));
}

static void
tls_required_script (struct fake_conn *c)
{
  fk_greeting (c, NBD_FLAG_FIXED_NEWSTYLE);
  char d[512];
  uint32_t opt, len;
  fk_read (c, d, 4);
  while (fk_read_option (c, &opt, &len, d, sizeof d))
    fk_opt_reply (c, opt, NBD_REP_ERR_TLS_REQD, NULL, 0);
}

static void
tls_required (void **state)
{
  struct fake *f = fake_start (tls_required_script, NULL, NULL);
  struct r3m_error err;
  assert_int_equal (open_fails (f, NULL, &err), -EACCES);
  assert_non_null (strstr (err.msg, "requires TLS"));
  assert_true (fake_stop (f));
}

static void
raw_script (struct fake_conn *c)
{
  const char *bytes = c->f->user;
  fk_write (c, bytes, strlen (bytes));
  char d[64];
  fk_read (c, d, sizeof d);      /* until the client leaves */
}

static void
not_nbd_server (void **state)
{
  static char ssh[] = "SSH-2.0-OpenSSH_9.2p1 Debian\r\n";
  struct fake *f = fake_start (raw_script, ssh, NULL);
  struct r3m_error err;
  assert_int_equal (open_fails (f, NULL, &err), -EPROTO);
  assert_non_null (strstr (err.msg, "not an NBD server"));
  assert_true (fake_stop (f));
}

static void
oldstyle_script (struct fake_conn *c)
{
  char b[16];
  nbd_put64 (b, NBD_MAGIC);
  nbd_put64 (b + 8, UINT64_C (0x00420281861253));
  fk_write (c, b, sizeof b);
  fk_read (c, b, sizeof b);
}

static void
oldstyle_refused (void **state)
{
  struct fake *f = fake_start (oldstyle_script, NULL, NULL);
  struct r3m_error err;
  assert_int_equal (open_fails (f, NULL, &err), -EPROTONOSUPPORT);
  assert_non_null (strstr (err.msg, "oldstyle"));
  assert_true (fake_stop (f));
}

/* ACK to GO without INFO_EXPORT leaves the size unknown. */
static void
ack_without_export_script (struct fake_conn *c)
{
  fk_greeting (c, NBD_FLAG_FIXED_NEWSTYLE);
  char d[512];
  uint32_t opt, len;
  fk_read (c, d, 4);
  while (fk_read_option (c, &opt, &len, d, sizeof d)) {
    if (opt == NBD_OPT_GO) {
      fk_opt_reply (c, opt, NBD_REP_ACK, NULL, 0);
      fk_read (c, d, 1);
      return;
    }
    fk_opt_reply (c, opt, NBD_REP_ERR_UNSUP, NULL, 0);
  }
}

static void
ack_without_export (void **state)
{
  struct fake *f = fake_start (ack_without_export_script, NULL, NULL);
  struct r3m_error err;
  assert_int_equal (open_fails (f, NULL, &err), -EPROTO);
  assert_non_null (strstr (err.msg, "protocol error"));
  assert_true (fake_stop (f));
}

/* A reply to an option we did not send. */
static void
wrong_option_echo_script (struct fake_conn *c)
{
  fk_greeting (c, NBD_FLAG_FIXED_NEWSTYLE);
  char d[512];
  uint32_t opt, len;
  fk_read (c, d, 4);
  if (fk_read_option (c, &opt, &len, d, sizeof d))
    fk_opt_reply (c, NBD_OPT_LIST, NBD_REP_ACK, NULL, 0);
  fk_read (c, d, 1);
}

static void
wrong_option_echo (void **state)
{
  struct fake *f = fake_start (wrong_option_echo_script, NULL, NULL);
  struct r3m_error err;
  assert_int_equal (open_fails (f, NULL, &err), -EPROTO);
  assert_true (fake_stop (f));
}

/* A huge option reply length is refused, not allocated. */
static void
huge_reply_script (struct fake_conn *c)
{
  fk_greeting (c, NBD_FLAG_FIXED_NEWSTYLE);
  char d[512];
  uint32_t opt, len;
  fk_read (c, d, 4);
  if (fk_read_option (c, &opt, &len, d, sizeof d)) {
    char h[NBD_OPT_REPLY_SIZE];
    nbd_put64 (h, NBD_OPT_REPLY_MAGIC);
    nbd_put32 (h + 8, opt);
    nbd_put32 (h + 12, NBD_REP_ERR_UNSUP);
    nbd_put32 (h + 16, UINT32_MAX);
    fk_write (c, h, sizeof h);
  }
  fk_read (c, d, 1);
}

static void
huge_option_reply (void **state)
{
  struct fake *f = fake_start (huge_reply_script, NULL, NULL);
  struct r3m_error err;
  assert_int_equal (open_fails (f, NULL, &err), -EPROTO);
  assert_true (fake_stop (f));
}

static void
silent_script (struct fake_conn *c)
{
  char d[1];
  fk_read (c, d, 1);             /* says nothing, waits */
}

/* A server that accepts and never speaks does not hang the open. */
static void
silent_server_times_out (void **state)
{
  struct fake *f = fake_start (silent_script, NULL, NULL);
  struct r3m_error err;
  assert_int_equal (open_fails (f, "&connect-timeout=1", &err), -ETIMEDOUT);
  assert_non_null (strstr (err.msg, "did not answer"));
  assert_true (fake_stop (f));
}

static void
hangup_script (struct fake_conn *c)
{
  fk_greeting (c, NBD_FLAG_FIXED_NEWSTYLE);
}

static void
server_hangs_up (void **state)
{
  struct fake *f = fake_start (hangup_script, NULL, NULL);
  struct r3m_error err;
  open_fails (f, NULL, &err);
  assert_non_null (strstr (err.msg, "closed the connection"));
  assert_true (fake_stop (f));
}

/* READ_ONLY from the server makes the backend read-only: writes fail
 * with EPERM without reaching the wire. */
static void
read_only_honoured (void **state)
{
  struct fake_cfg cfg = fake_default_cfg ();
  cfg.tflags |= NBD_FLAG_READ_ONLY;
  struct fake_mem m = { .lock = PTHREAD_MUTEX_INITIALIZER, .bytes = calloc (1, cfg.size) };
  struct fake *f = fake_start (fake_memory_script, &m, &cfg);
  struct r3m_backend *b = open_ok (f, NULL);
  assert_true (r3m_backend_get_info (b)->flags & R3M_BACKEND_READ_ONLY);
  char c = 1;
  assert_int_equal (r3m_backend_pwrite (b, &c, 1, 0, 0), -EPERM);
  r3m_backend_close (b);
  assert_true (fake_stop (f));
  assert_int_equal (m.requests[0], 0);
  free (m.bytes);
}

/* Multi-conn: as many connections as asked when the server allows it,
 * one otherwise. */
static void
connections_follow_multi_conn (void **state)
{
  struct fake_cfg cfg = fake_default_cfg ();
  cfg.tflags |= NBD_FLAG_CAN_MULTI_CONN;
  struct fake_mem m = { .lock = PTHREAD_MUTEX_INITIALIZER, .bytes = calloc (1, cfg.size) };
  struct fake *f = fake_start (fake_memory_script, &m, &cfg);
  struct r3m_backend *b = open_ok (f, "&connections=3");
  struct r3m_nbd_client_info info;
  r3m_nbd_client_info (b, &info);
  assert_int_equal (info.connections, 3);
  r3m_backend_close (b);
  assert_true (fake_stop (f));

  cfg.tflags &= (uint16_t) ~NBD_FLAG_CAN_MULTI_CONN;
  f = fake_start (fake_memory_script, &m, &cfg);
  b = open_ok (f, "&connections=3");
  r3m_nbd_client_info (b, &info);
  assert_int_equal (info.connections, 1);
  r3m_backend_close (b);
  assert_true (fake_stop (f));
  free (m.bytes);
}

/* Open returns when the first connection is ready, while the others are
 * still negotiating; requests work meanwhile, the latecomers join, and a
 * connection whose handshake fails is left out. */
struct slow_user {
  struct fake_mem m;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool release;
};

static void
slow_script (struct fake_conn *c)
{
  struct slow_user *u = c->f->user;
  if (c->index > 0) {
    pthread_mutex_lock (&u->lock);
    while (!u->release)
      pthread_cond_wait (&u->cond, &u->lock);
    pthread_mutex_unlock (&u->lock);
  }
  if (c->index == 2)
    return;                    /* hangs up before the greeting */
  if (fake_handshake (c))
    fake_serve_memory (c);
}

static void
extra_connections_join_in_background (void **state)
{
  struct fake_cfg cfg = fake_default_cfg ();
  cfg.tflags |= NBD_FLAG_CAN_MULTI_CONN;
  struct slow_user u = {
    .m = { .lock = PTHREAD_MUTEX_INITIALIZER, .bytes = calloc (1, cfg.size) },
    .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER,
  };
  /* fake_serve_memory finds its struct fake_mem at the start of user. */
  struct fake *f = fake_start (slow_script, &u, &cfg);
  struct r3m_backend *b = open_ok (f, "&connections=3");
  char w[4096], r[4096];
  memset (w, 0x5a, sizeof w);
  assert_int_equal (r3m_backend_pwrite (b, w, sizeof w, 8192, 0), 0);
  assert_int_equal (r3m_backend_pread (b, r, sizeof r, 8192), 0);
  assert_memory_equal (w, r, sizeof w);
  pthread_mutex_lock (&u.lock);
  u.release = true;
  pthread_cond_broadcast (&u.cond);
  pthread_mutex_unlock (&u.lock);
  struct r3m_nbd_client_info info;
  assert_int_equal (r3m_nbd_client_info (b, &info), 0);
  assert_int_equal (info.connections, 2);
  for (int i = 0; i < 64; i++)
    assert_int_equal (r3m_backend_pread (b, r, sizeof r, 8192), 0);
  assert_memory_equal (w, r, sizeof w);
  r3m_backend_close (b);
  assert_true (fake_stop (f));
  free (u.m.bytes);
}

/* Closing while the other connections are still negotiating waits for
 * them and leaks nothing (ASan and the fake's bookkeeping check). */
static void
close_while_connections_negotiate (void **state)
{
  struct fake_cfg cfg = fake_default_cfg ();
  cfg.tflags |= NBD_FLAG_CAN_MULTI_CONN;
  struct slow_user u = {
    .m = { .lock = PTHREAD_MUTEX_INITIALIZER, .bytes = calloc (1, cfg.size) },
    .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER,
    .release = false,
  };
  struct fake *f = fake_start (slow_script, &u, &cfg);
  struct r3m_backend *b = open_ok (f, "&connections=4");
  pthread_mutex_lock (&u.lock);
  u.release = true;            /* let them finish while close waits */
  pthread_cond_broadcast (&u.cond);
  pthread_mutex_unlock (&u.lock);
  r3m_backend_close (b);
  assert_true (fake_stop (f));
  free (u.m.bytes);
}

static void
bad_uris (void **state)
{
  static const char *const bad[] = {
    "nbd+unix:///x",                            /* no socket= */
    "nbd://h/x?inflight=0",
    "nbd://h/x?inflight=many",
    "nbd://h/x?connections=65",
    "nbd://h/x?frobnicate=1",
    "nbd://h/x?tls-ca=/ca.pem",                 /* tls-* needs nbds */
    "nbds://h/x?tls-cert=/c.pem",               /* without tls-key */
    "nbds+unix:///x?socket=/s",                 /* no tls-hostname */
    "nbd://h/x?inflight=1&inflight=2",
    "nbd://h/x?extended-headers=yes",
    "nbd://h/x?extended-headers=",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct r3m_backend *b = NULL;
    struct r3m_error err;
    int r = r3m_backend_open (bad[i], 0, &b, &err);
    if (r != -EINVAL)
      fail_msg ("%s: %d %s", bad[i], r, err.msg);
    assert_non_null (strstr (err.msg, bad[i]));
  }
}

/* ---- extended headers ------------------------------------------------------ */

/* Asked for by default; when agreed, structured replies are not asked
 * for (extended headers imply them); when refused, they are. */
static void
extended_headers_negotiation (void **state)
{
  for (int mode = 0; mode < 3; mode++) {
    struct fake_cfg cfg = fake_default_cfg ();
    cfg.extended = mode != 1;
    struct fake_mem m = { .lock = PTHREAD_MUTEX_INITIALIZER,
                          .bytes = calloc (1, cfg.size) };
    struct fake *f = fake_start (fake_memory_script, &m, &cfg);
    struct r3m_backend *b = open_ok (f, mode == 2 ? "&extended-headers=off"
                                                  : "&extended-headers=on");
    struct r3m_nbd_client_info info;
    r3m_nbd_client_info (b, &info);
    assert_int_equal (info.extended_headers, mode == 0);
    assert_true (info.structured_replies);
    assert_true (info.block_status);
    m.bytes[4000] = 7;
    char c[8192];
    assert_int_equal (r3m_backend_pread (b, c, sizeof c, 0), 0);
    assert_int_equal (c[4000], 7);
    r3m_backend_close (b);
    fake_wait_finished (f, 1);
    assert_int_equal (f->asked_extended, mode != 2);
    assert_int_equal (f->asked_structured, mode != 0);
    assert_true (fake_stop (f));
    free (m.bytes);
  }
}

/* A server that agreed to extended headers must not refuse GO as unknown
 * (the client may not fall back to EXPORT_NAME then). */
static void
extended_headers_then_go_unsupported (void **state)
{
  struct fake_cfg cfg = fake_default_cfg ();
  cfg.extended = true;
  cfg.go_unsupported = true;
  struct fake_mem m = { .lock = PTHREAD_MUTEX_INITIALIZER,
                        .bytes = calloc (1, cfg.size) };
  struct fake *f = fake_start (fake_memory_script, &m, &cfg);
  struct r3m_error err;
  assert_int_equal (open_fails (f, NULL, &err), -EPROTO);
  assert_non_null (strstr (err.msg, "GO unsupported after EXTENDED_HEADERS"));
  assert_true (fake_stop (f));
  free (m.bytes);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (go_has_correct_length),
    cmocka_unit_test (export_name_in_go),
    cmocka_unit_test (block_size_honoured),
    cmocka_unit_test (export_name_fallback),
    cmocka_unit_test (old_newstyle_server),
    cmocka_unit_test (unknown_export),
    cmocka_unit_test (tls_required),
    cmocka_unit_test (not_nbd_server),
    cmocka_unit_test (oldstyle_refused),
    cmocka_unit_test (ack_without_export),
    cmocka_unit_test (wrong_option_echo),
    cmocka_unit_test (huge_option_reply),
    cmocka_unit_test (silent_server_times_out),
    cmocka_unit_test (server_hangs_up),
    cmocka_unit_test (read_only_honoured),
    cmocka_unit_test (connections_follow_multi_conn),
    cmocka_unit_test (extra_connections_join_in_background),
    cmocka_unit_test (close_while_connections_negotiate),
    cmocka_unit_test (bad_uris),
    cmocka_unit_test (extended_headers_negotiation),
    cmocka_unit_test (extended_headers_then_go_unsupported),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
