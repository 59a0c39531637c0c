/* NBD client against a hostile or dying server: every bad reply kills the
 * connection with a clear error, every request's done callback runs
 * exactly once, nothing hangs, and later calls fail at once.  The chunk
 * checks run twice, with compact and with extended headers (the fake
 * writes its chunks in the negotiated form); some bad replies exist only
 * in one of the two. */
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

typedef void (*bad_fn) (struct fake_conn *c, struct fk_req *r);

struct plan {
  bad_fn bad;
  struct fake_cfg cfg;
};

/* Handshake, take one request, answer it with plan->bad, then wait for the
 * client to hang up. */
static void
bad_script (struct fake_conn *c)
{
  struct plan *p = c->f->user;
  if (!fake_handshake (c))
    return;
  struct fk_req r;
  if (!fk_read_req (c, &r))
    return;
  p->bad (c, &r);
  free (r.data);
  char d[64];
  while (fk_read (c, d, 1))
    ;
}

/* Prestate of the tests that run with extended headers. */
static const bool extended = true;
#define EXT(t) cmocka_unit_test_prestate (t, (void *) &extended)

static struct fake_cfg
cfg_for (void **state)
{
  struct fake_cfg cfg = fake_default_cfg ();
  cfg.extended = *state && *(const bool *) *state;
  return cfg;
}

/* The client speaks the headers the test meant it to. */
static void
expect_mode (struct r3m_backend *b, const struct fake_cfg *cfg)
{
  struct r3m_nbd_client_info info;
  assert_int_equal (r3m_nbd_client_info (b, &info), 0);
  assert_int_equal (info.extended_headers, cfg->extended);
}

static void
expect_dead_after (void **state, bad_fn bad, enum r3m_io_op op, int first,
                   int code, const char *msg)
{
  struct plan p = { .bad = bad, .cfg = cfg_for (state) };
  struct fake *f = fake_start (bad_script, &p, &p.cfg);
  struct r3m_backend *b = NULL;
  struct r3m_error err;
  if (r3m_backend_open (f->uri, 0, &b, &err) < 0)
    fail_msg ("open: %s", err.msg);
  expect_mode (b, &p.cfg);
  struct tracker t;
  tracker_init (&t);
  static char buf[8192];
  struct treq q;
  tsubmit (b, &t, &q, op, buf, 4096, 8192, 0);
  twait (&t);
  assert_int_equal (q.calls, 1);
  assert_int_equal (q.result, first);
  /* Later calls fail with the same code (at once, or as soon as the
   * reader has seen the bad reply). */
  assert_int_equal (r3m_backend_pread (b, buf, 512, 0), code);
  assert_int_equal (r3m_nbd_client_error (b, &err), code);
  if (!strstr (err.msg, msg))
    fail_msg ("message '%s' lacks '%s'", err.msg, msg);
  assert_non_null (strstr (err.msg, f->uri));
  struct treq q2;
  assert_int_equal (tsubmit (b, &t, &q2, R3M_IO_READ, buf, 512, 0, 0), code);
  r3m_backend_close (b);
  tracker_destroy (&t);
  assert_true (fake_stop (f));
}

static void
expect_dead (void **state, bad_fn bad, enum r3m_io_op op, int code,
             const char *msg)
{
  expect_dead_after (state, bad, op, code, code, msg);
}

#define PROTO(name, op, ...)                                             \
  static void bad_##name (struct fake_conn *c, struct fk_req *r)         \
  __VA_ARGS__                                                            \
  static void name (void **state)                                        \
  {                                                                      \
    expect_dead (state, bad_##name, op, -EPROTO, "protocol error");      \
  }

PROTO (unknown_cookie, R3M_IO_READ, {
  fk_simple (c, r->cookie + (UINT64_C (1) << 32), 0, NULL, 0);
})

PROTO (bad_reply_magic, R3M_IO_READ, {
  char h[16] = { 0x12, 0x34 };
  fk_write (c, h, sizeof h);
})

PROTO (data_before_request, R3M_IO_READ, {
  char d[4096] = { 0 };
  fk_data (c, r->cookie, true, r->off - 1, d, 4096);
})

PROTO (data_past_request, R3M_IO_READ, {
  char d[20] = { 0 };
  fk_data (c, r->cookie, true, r->off + 4090, d, 20);
})

PROTO (overlapping_data, R3M_IO_READ, {
  char d[2048] = { 0 };
  fk_data (c, r->cookie, false, r->off, d, 2048);
  fk_data (c, r->cookie, false, r->off + 1024, d, 2048);
  fk_done (c, r->cookie);
})

PROTO (hole_overlapping_data, R3M_IO_READ, {
  char d[2048] = { 0 };
  fk_hole (c, r->cookie, false, r->off + 2048, 2048);
  fk_data (c, r->cookie, false, r->off, d, 2048);
  fk_hole (c, r->cookie, true, r->off + 2000, 48);
})

PROTO (missing_data_at_done, R3M_IO_READ, {
  char d[2048] = { 0 };
  fk_data (c, r->cookie, false, r->off, d, 2048);
  fk_done (c, r->cookie);
})

PROTO (unknown_chunk_type, R3M_IO_READ, {
  fk_chunk (c, NBD_REPLY_FLAG_DONE, 77, r->cookie, NULL, 0);
})

PROTO (data_for_a_write, R3M_IO_WRITE, {
  char d[16] = { 0 };
  fk_data (c, r->cookie, true, r->off, d, 16);
})

PROTO (simple_data_reply_to_structured_read, R3M_IO_READ, {
  char d[4096] = { 0 };
  fk_simple (c, r->cookie, 0, d, 4096);
})

PROTO (none_chunk_with_payload, R3M_IO_READ, {
  fk_chunk (c, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, r->cookie, "abcd",
            4);
})

PROTO (none_chunk_without_done, R3M_IO_READ, {
  fk_chunk (c, 0, NBD_REPLY_TYPE_NONE, r->cookie, NULL, 0);
})

PROTO (empty_hole, R3M_IO_READ, {
  fk_hole (c, r->cookie, true, r->off, 0);
})

PROTO (short_hole_chunk, R3M_IO_READ, {
  char p[8] = { 0 };
  fk_chunk (c, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_HOLE, r->cookie, p,
            8);
})

PROTO (huge_data_chunk, R3M_IO_READ, {
  char h[28];
  nbd_put32 (h, NBD_STRUCTURED_REPLY_MAGIC);
  nbd_put16 (h + 4, NBD_REPLY_FLAG_DONE);
  nbd_put16 (h + 6, NBD_REPLY_TYPE_OFFSET_DATA);
  nbd_put64 (h + 8, r->cookie);
  nbd_put32 (h + 16, UINT32_MAX);
  nbd_put64 (h + 20, r->off);
  fk_write (c, h, sizeof h);
})

PROTO (error_message_too_long, R3M_IO_READ, {
  char p[10];
  nbd_put32 (p, NBD_EIO);
  nbd_put16 (p + 4, 100);            /* but only 4 bytes follow */
  memcpy (p + 6, "oops", 4);
  fk_chunk (c, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, r->cookie, p, 10);
})

PROTO (error_chunk_with_error_zero, R3M_IO_READ, {
  fk_error (c, r->cookie, true, 0, "not really");
})

PROTO (error_offset_outside_request, R3M_IO_READ, {
  char p[14];
  nbd_put32 (p, NBD_EIO);
  nbd_put16 (p + 4, 0);
  nbd_put64 (p + 6, 0);              /* the request starts at 8192 */
  fk_chunk (c, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR_OFFSET, r->cookie,
            p, 14);
})

/* The first reply completes the request; the second kills the
 * connection. */
static void
bad_second_reply (struct fake_conn *c, struct fk_req *r)
{
  char d[4096] = { 0 };
  fk_data (c, r->cookie, true, r->off, d, 4096);
  fk_data (c, r->cookie, true, r->off, d, 4096);
}

static void
second_reply_to_same_cookie (void **state)
{
  expect_dead_after (state, bad_second_reply, R3M_IO_READ, 0, -EPROTO,
                     "protocol error");
}

/* Block status goes through the synchronous extents call. */
static void
expect_status_dead (void **state, bad_fn bad)
{
  struct plan p = { .bad = bad, .cfg = cfg_for (state) };
  struct fake *f = fake_start (bad_script, &p, &p.cfg);
  struct r3m_backend *b = NULL;
  struct r3m_error err;
  if (r3m_backend_open (f->uri, 0, &b, &err) < 0)
    fail_msg ("open: %s", err.msg);
  expect_mode (b, &p.cfg);
  struct r3m_extent e[4];
  size_t n;
  assert_int_equal (r3m_backend_extents (b, 0, 65536, e, 4, &n), -EPROTO);
  assert_int_equal (r3m_nbd_client_error (b, &err), -EPROTO);
  assert_non_null (strstr (err.msg, "protocol error"));
  r3m_backend_close (b);
  assert_true (fake_stop (f));
}

#define STATUS(name, ...)                                                \
  static void bad_##name (struct fake_conn *c, struct fk_req *r)         \
  __VA_ARGS__                                                            \
  static void name (void **state) { expect_status_dead (state, bad_##name); }

STATUS (status_wrong_context, {
  const uint64_t e[1][2] = { { 4096, 0 } };
  fk_status (c, r->cookie, true, FAKE_META_ID + 1, e, 1);
})

STATUS (status_empty_extent, {
  const uint64_t e[2][2] = { { 4096, 0 }, { 0, 0 } };
  fk_status (c, r->cookie, true, FAKE_META_ID, e, 2);
})

STATUS (status_extent_past_request, {
  const uint64_t e[2][2] = { { 65536, 0 }, { 4096, 0 } };
  fk_status (c, r->cookie, true, FAKE_META_ID, e, 2);
})

STATUS (status_twice, {
  const uint64_t e[1][2] = { { 4096, 0 } };
  fk_status (c, r->cookie, false, FAKE_META_ID, e, 1);
  fk_status (c, r->cookie, true, FAKE_META_ID, e, 1);
})

STATUS (status_done_without_extents, { fk_done (c, r->cookie); })

STATUS (status_bad_length, {
  char p[9] = { 0 };
  nbd_put32 (p, FAKE_META_ID);
  fk_chunk (c, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_BLOCK_STATUS, r->cookie,
            p, 9);
})

/* ---- replies that are wrong only with (or only without) extended
 * headers --------------------------------------------------------------- */

PROTO (ext_offset_not_echoed, R3M_IO_READ, {
  char d[4096] = { 0 };
  fk_ext_header (c, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_DATA,
                 r->cookie, r->off + 512, 8 + sizeof d);
  char o[8];
  nbd_put64 (o, r->off);
  fk_write (c, o, 8);
  fk_write (c, d, sizeof d);
})

PROTO (ext_simple_reply, R3M_IO_WRITE, {
  char pad[16] = { 0 };
  fk_simple (c, r->cookie, 0, pad, sizeof pad);   /* 32 bytes in all */
})

PROTO (ext_structured_magic, R3M_IO_WRITE, {
  char h[NBD_CHUNK_HEADER_SIZE + 12] = { 0 };
  nbd_put32 (h, NBD_STRUCTURED_REPLY_MAGIC);
  nbd_put16 (h + 4, NBD_REPLY_FLAG_DONE);
  nbd_put64 (h + 8, r->cookie);
  fk_write (c, h, sizeof h);
})

PROTO (ext_chunk_over_32_bits, R3M_IO_READ, {
  fk_ext_header (c, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_DATA,
                 r->cookie, r->off, UINT64_C (1) << 32);
})

STATUS (ext_compact_status_chunk, {
  char p[12];
  nbd_put32 (p, FAKE_META_ID);
  nbd_put32 (p + 4, 4096);
  nbd_put32 (p + 8, 0);
  fk_chunk (c, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_BLOCK_STATUS, r->cookie,
            p, sizeof p);
})

STATUS (ext_status_count_mismatch, {
  char p[8 + 32] = { 0 };
  nbd_put32 (p, FAKE_META_ID);
  nbd_put32 (p + 4, 3);              /* but 2 follow */
  nbd_put64 (p + 8, 4096);
  nbd_put64 (p + 24, 4096);
  fk_chunk (c, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_BLOCK_STATUS_EXT,
            r->cookie, p, sizeof p);
})

STATUS (ext_status_high_bits, {
  /* base:allocation is 32-bit */
  const uint64_t e[1][2] = { { 4096, UINT64_C (1) << 32 } };
  fk_status (c, r->cookie, true, FAKE_META_ID, e, 1);
})

STATUS (ext_status_short, {
  char p[8 + 8] = { 0 };
  nbd_put32 (p, FAKE_META_ID);
  nbd_put32 (p + 4, 1);
  fk_chunk (c, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_BLOCK_STATUS_EXT,
            r->cookie, p, sizeof p);
})

/* Without extended headers the same chunk type is a violation. */
STATUS (status_ext_without_extended_headers, {
  char p[8 + 16] = { 0 };
  nbd_put32 (p, FAKE_META_ID);
  nbd_put32 (p + 4, 1);
  nbd_put64 (p + 8, 4096);
  fk_chunk (c, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_BLOCK_STATUS_EXT,
            r->cookie, p, sizeof p);
})

/* An unknown error chunk type fails its request but is not fatal. */
static void
bad_unknown_error_type (struct fake_conn *c, struct fk_req *r)
{
  char p[6 + 5];
  nbd_put32 (p, NBD_ENOSPC);
  nbd_put16 (p + 4, 5);
  memcpy (p + 6, "full!", 5);
  fk_chunk (c, NBD_REPLY_FLAG_DONE, 0x8000 | 42, r->cookie, p, sizeof p);
  struct fk_req r2;
  if (fk_read_req (c, &r2)) {
    char d[512] = { 9 };
    fk_data (c, r2.cookie, true, r2.off, d, 512);
  }
}

static void
unknown_error_type_is_an_error (void **state)
{
  struct plan p = { .bad = bad_unknown_error_type,
                    .cfg = cfg_for (state) };
  struct fake *f = fake_start (bad_script, &p, &p.cfg);
  struct r3m_backend *b = NULL;
  struct r3m_error err;
  assert_int_equal (r3m_backend_open (f->uri, 0, &b, &err), 0);
  char buf[512];
  assert_int_equal (r3m_backend_pread (b, buf, 512, 0), -ENOSPC);
  assert_int_equal (r3m_nbd_client_error (b, &err), -ENOSPC);
  assert_non_null (strstr (err.msg, "full!"));
  assert_int_equal (r3m_backend_pread (b, buf, 512, 0), 0);
  assert_int_equal (buf[0], 9);
  r3m_backend_close (b);
  assert_true (fake_stop (f));
}

/* ---- a server that dies ---------------------------------------------------- */

static void
die_after_requests (struct fake_conn *c)
{
  int *wanted = c->f->user;
  if (!fake_handshake (c))
    return;
  struct fk_req r, first = { 0 };
  for (int i = 0; i < *wanted; i++) {
    if (!fk_read_req (c, &r)) {
      free (first.data);
      return;
    }
    if (i == 0)
      first = r;              /* a READ */
    else
      free (r.data);
  }
  r = first;
  if (wanted[1]) {
    /* Half of a data chunk, then gone. */
    char d[100] = { 0 };
    char h[28];
    nbd_put32 (h, NBD_STRUCTURED_REPLY_MAGIC);
    nbd_put16 (h + 4, NBD_REPLY_FLAG_DONE);
    nbd_put16 (h + 6, NBD_REPLY_TYPE_OFFSET_DATA);
    nbd_put64 (h + 8, r.cookie);
    nbd_put32 (h + 16, 8 + 4096);
    nbd_put64 (h + 20, r.off);
    fk_write (c, h, sizeof h);
    fk_write (c, d, sizeof d);
  }
  free (first.data);
}

static void
server_dies (int mid_payload, const char *extra)
{
  int wanted[2] = { 8, mid_payload };
  struct fake_cfg cfg = fake_default_cfg ();
  cfg.tflags |= NBD_FLAG_CAN_MULTI_CONN;
  struct fake *f = fake_start (die_after_requests, wanted, &cfg);
  char uri[256];
  snprintf (uri, sizeof uri, "%s%s", f->uri, extra);
  struct r3m_backend *b = NULL;
  struct r3m_error err;
  if (r3m_backend_open (uri, 0, &b, &err) < 0)
    fail_msg ("open: %s", err.msg);
  struct tracker t;
  tracker_init (&t);
  static char buf[32][4096];
  struct treq q[32];
  /* 32 requests: some on the wire, some queued behind inflight=8. */
  for (int i = 0; i < 32; i++)
    tsubmit (b, &t, &q[i], i % 2 ? R3M_IO_WRITE : R3M_IO_READ, buf[i], 4096,
             (uint64_t) i * 4096, 0);
  twait (&t);
  for (int i = 0; i < 32; i++) {
    assert_int_equal (q[i].calls, 1);
    assert_true (q[i].result < 0);
  }
  assert_true (r3m_nbd_client_error (b, &err) < 0);
  if (!strstr (err.msg, "closed the connection"))
    fail_msg ("message: %s", err.msg);
  assert_true (r3m_backend_pread (b, buf[0], 512, 0) < 0);
  assert_true (r3m_backend_flush (b) < 0);
  r3m_backend_close (b);
  tracker_destroy (&t);
  assert_true (fake_stop (f));
}

static void
server_dies_mid_request (void **state)
{
  server_dies (0, "&inflight=8&connections=1");
}

static void
server_dies_mid_payload (void **state)
{
  server_dies (1, "&inflight=8&connections=1");
}

/* Reads one WRITE header and a little of its payload, then leaves: the
 * client is in the middle of sending. */
static void
leave_mid_send (struct fake_conn *c)
{
  if (!fake_handshake (c))
    return;
  unsigned char part[NBD_REQUEST_SIZE + 1024];
  fk_read (c, part, sizeof part);
}

/* The server goes while large WRITEs are being sent: the sender sees
 * EPIPE, the reader the end of the stream, and the caller one clear
 * message whichever saw it first. */
static void
server_gone_while_sending (void **state)
{
  for (int round = 0; round < 20; round++) {
    struct fake *f = fake_start (leave_mid_send, NULL, NULL);
    struct r3m_backend *b = NULL;
    struct r3m_error err;
    assert_int_equal (r3m_backend_open (f->uri, 0, &b, &err), 0);
    size_t len = 512u * 1024;
    char *buf = calloc (1, len);
    struct tracker t;
    tracker_init (&t);
    struct treq q[2];
    for (int i = 0; i < 2; i++)
      tsubmit (b, &t, &q[i], R3M_IO_WRITE, buf, len, (uint64_t) i * len, 0);
    twait (&t);
    for (int i = 0; i < 2; i++)
      assert_true (q[i].result < 0);
    assert_true (r3m_nbd_client_error (b, &err) < 0);
    if (!strstr (err.msg, "server closed the connection"))
      fail_msg ("round %d, message: %s", round, err.msg);
    /* The backend's why: the same words without the URI, which whoever
     * reports it names already. */
    char why[R3M_ERROR_MSG_MAX];
    assert_int_equal (r3m_backend_why (b, why, sizeof why), 1);
    assert_string_equal (why, "server closed the connection");
    r3m_backend_close (b);
    tracker_destroy (&t);
    free (buf);
    assert_true (fake_stop (f));
  }
}

/* A server that stays connected but never answers: with a request
 * timeout the caller gets ETIMEDOUT instead of waiting for ever. */
static void
mute_script (struct fake_conn *c)
{
  if (!fake_handshake (c))
    return;
  struct fk_req r;
  while (fk_read_req (c, &r))
    free (r.data);
}

static void
silent_server_times_out_requests (void **state)
{
  struct fake *f = fake_start (mute_script, NULL, NULL);
  char uri[256];
  snprintf (uri, sizeof uri, "%s&request-timeout=1", f->uri);
  struct r3m_backend *b = NULL;
  struct r3m_error err;
  assert_int_equal (r3m_backend_open (uri, 0, &b, &err), 0);
  struct tracker t;
  tracker_init (&t);
  static char buf[4][4096];
  struct treq q[4];
  for (int i = 0; i < 4; i++)
    tsubmit (b, &t, &q[i], R3M_IO_READ, buf[i], 4096, 0, 0);
  char one[512];
  assert_int_equal (r3m_backend_pread (b, one, 512, 0), -ETIMEDOUT);
  twait (&t);
  for (int i = 0; i < 4; i++) {
    assert_int_equal (q[i].calls, 1);
    assert_int_equal (q[i].result, -ETIMEDOUT);
  }
  assert_int_equal (r3m_nbd_client_error (b, &err), -ETIMEDOUT);
  assert_non_null (strstr (err.msg, "no reply from the server within 1 s"));
  r3m_backend_close (b);
  tracker_destroy (&t);
  assert_true (fake_stop (f));
}

/* With several connections, one dying takes the others down too. */
static void
server_dies_with_many_connections (void **state)
{
  server_dies (0, "&inflight=8&connections=4");
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (server_gone_while_sending),
    cmocka_unit_test (unknown_cookie),
    cmocka_unit_test (bad_reply_magic),
    cmocka_unit_test (data_before_request),
    EXT (data_before_request),
    cmocka_unit_test (data_past_request),
    EXT (data_past_request),
    cmocka_unit_test (overlapping_data),
    EXT (overlapping_data),
    cmocka_unit_test (hole_overlapping_data),
    EXT (hole_overlapping_data),
    cmocka_unit_test (missing_data_at_done),
    EXT (missing_data_at_done),
    cmocka_unit_test (unknown_chunk_type),
    EXT (unknown_chunk_type),
    cmocka_unit_test (data_for_a_write),
    EXT (data_for_a_write),
    cmocka_unit_test (simple_data_reply_to_structured_read),
    EXT (simple_data_reply_to_structured_read),
    cmocka_unit_test (none_chunk_with_payload),
    EXT (none_chunk_with_payload),
    cmocka_unit_test (none_chunk_without_done),
    EXT (none_chunk_without_done),
    cmocka_unit_test (empty_hole),
    EXT (empty_hole),
    cmocka_unit_test (short_hole_chunk),
    EXT (short_hole_chunk),
    cmocka_unit_test (huge_data_chunk),
    cmocka_unit_test (error_message_too_long),
    EXT (error_message_too_long),
    cmocka_unit_test (error_chunk_with_error_zero),
    EXT (error_chunk_with_error_zero),
    cmocka_unit_test (error_offset_outside_request),
    EXT (error_offset_outside_request),
    cmocka_unit_test (second_reply_to_same_cookie),
    EXT (second_reply_to_same_cookie),
    cmocka_unit_test (status_wrong_context),
    EXT (status_wrong_context),
    cmocka_unit_test (status_empty_extent),
    EXT (status_empty_extent),
    cmocka_unit_test (status_extent_past_request),
    EXT (status_extent_past_request),
    cmocka_unit_test (status_twice),
    EXT (status_twice),
    cmocka_unit_test (status_done_without_extents),
    EXT (status_done_without_extents),
    cmocka_unit_test (status_bad_length),
    cmocka_unit_test (status_ext_without_extended_headers),
    EXT (ext_offset_not_echoed),
    EXT (ext_simple_reply),
    EXT (ext_structured_magic),
    EXT (ext_chunk_over_32_bits),
    EXT (ext_compact_status_chunk),
    EXT (ext_status_count_mismatch),
    EXT (ext_status_high_bits),
    EXT (ext_status_short),
    cmocka_unit_test (unknown_error_type_is_an_error),
    EXT (unknown_error_type_is_an_error),
    cmocka_unit_test (server_dies_mid_request),
    cmocka_unit_test (server_dies_mid_payload),
    cmocka_unit_test (server_dies_with_many_connections),
    cmocka_unit_test (silent_server_times_out_requests),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
