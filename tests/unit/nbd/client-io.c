/* NBD client: requests and replies in the transmission phase, against a
 * scripted fake server. */
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
open_uri (struct fake *f, const char *extra)
{
  char uri[256];
  snprintf (uri, sizeof uri, "%s%s", f->uri, extra ? extra : "");
  struct r3m_backend *b = NULL;
  struct r3m_error err;
  if (r3m_backend_open (uri, 0, &b, &err) < 0)
    fail_msg ("open %s: %s", uri, err.msg);
  return b;
}

/* What a script saw, for the test thread to check afterwards. */
struct seen {
  int n;
  struct fk_req req[64];
};

static void
record (struct fake_conn *c, struct seen *s, struct fk_req *r)
{
  pthread_mutex_lock (&c->f->lock);
  if (s->n < 64)
    s->req[s->n++] = *r;
  else
    free (r->data);
  pthread_mutex_unlock (&c->f->lock);
}

static void
free_seen (struct seen *s)
{
  for (int i = 0; i < s->n; i++)
    free (s->req[i].data);
}

/* ---- out of order -------------------------------------------------------- */

static void
reverse_script (struct fake_conn *c)
{
  if (!fake_handshake (c))
    return;
  struct fk_req r[8];
  for (int i = 0; i < 8; i++)
    if (!fk_read_req (c, &r[i]))
      return;
  for (int i = 7; i >= 0; i--) {
    char data[4096];
    memset (data, (int) (r[i].off / 4096) + 1, sizeof data);
    fk_data (c, r[i].cookie, true, r[i].off, data, sizeof data);
  }
  struct fk_req d;
  fk_read_req (c, &d);
}

static void
replies_out_of_order (void **state)
{
  struct fake *f = fake_start (reverse_script, NULL, NULL);
  struct r3m_backend *b = open_uri (f, NULL);
  struct tracker t;
  tracker_init (&t);
  static char buf[8][4096];
  struct treq q[8];
  for (int i = 0; i < 8; i++)
    assert_int_equal (tsubmit (b, &t, &q[i], R3M_IO_READ, buf[i], 4096,
                               (uint64_t) i * 4096, 0), 0);
  twait (&t);
  for (int i = 0; i < 8; i++) {
    assert_int_equal (q[i].calls, 1);
    assert_int_equal (q[i].result, 0);
    assert_int_equal (buf[i][0], i + 1);
    assert_int_equal (buf[i][4095], i + 1);
  }
  r3m_backend_close (b);
  tracker_destroy (&t);
  assert_true (fake_stop (f));
}

/* ---- structured reads ---------------------------------------------------- */

static void
chunks_script (struct fake_conn *c)
{
  if (!fake_handshake (c))
    return;
  struct fk_req r;
  if (!fk_read_req (c, &r))
    return;
  char d[32768];
  memset (d, 'b', sizeof d);
  fk_data (c, r.cookie, false, r.off + 32768, d, 32768);   /* last first */
  fk_hole (c, r.cookie, false, r.off + 16384, 16384);
  memset (d, 'a', sizeof d);
  fk_data (c, r.cookie, false, r.off, d, 16384);
  fk_done (c, r.cookie);
  fk_read_req (c, &r);
}

static void
read_in_chunks_with_hole (void **state)
{
  struct fake *f = fake_start (chunks_script, NULL, NULL);
  struct r3m_backend *b = open_uri (f, NULL);
  char *buf = malloc (65536);
  memset (buf, 'x', 65536);
  assert_int_equal (r3m_backend_pread (b, buf, 65536, 65536), 0);
  for (int i = 0; i < 65536; i++) {
    char want = i < 16384 ? 'a' : i < 32768 ? 0 : 'b';
    if (buf[i] != want)
      fail_msg ("byte %d is %d, want %d", i, buf[i], want);
  }
  free (buf);
  r3m_backend_close (b);
  assert_true (fake_stop (f));
}

/* ---- errors -------------------------------------------------------------- */

static void
error_script (struct fake_conn *c)
{
  if (!fake_handshake (c))
    return;
  struct fk_req r;
  if (!fk_read_req (c, &r))
    return;
  fk_error (c, r.cookie, true, NBD_EIO, "disk on fire");
  if (!fk_read_req (c, &r))
    return;
  fk_simple (c, r.cookie, NBD_ENOSPC, NULL, 0);
  free (r.data);
  if (!fk_read_req (c, &r))
    return;
  fk_simple (c, r.cookie, 9999, NULL, 0);     /* unknown: EINVAL */
  if (!fk_read_req (c, &r))
    return;
  char d[512] = { 7 };
  fk_data (c, r.cookie, true, r.off, d, 512);
  fk_read_req (c, &r);
}

/* Error replies fail only their request, with the server's message kept;
 * the connection goes on. */
static void
error_replies (void **state)
{
  struct fake *f = fake_start (error_script, NULL, NULL);
  struct r3m_backend *b = open_uri (f, NULL);
  char buf[512];
  assert_int_equal (r3m_backend_pread (b, buf, 512, 0), -EIO);
  struct r3m_error err;
  assert_int_equal (r3m_nbd_client_error (b, &err), -EIO);
  assert_non_null (strstr (err.msg, "disk on fire"));
  assert_non_null (strstr (err.msg, "READ at 0+512"));
  assert_int_equal (r3m_backend_pwrite (b, buf, 512, 0, 0), -ENOSPC);
  assert_int_equal (r3m_backend_pread (b, buf, 512, 0), -EINVAL);
  assert_int_equal (r3m_backend_pread (b, buf, 512, 512), 0);
  assert_int_equal (buf[0], 7);
  r3m_backend_close (b);
  assert_true (fake_stop (f));
}

/* ---- commands and flags -------------------------------------------------- */

static struct seen seen;

/* Answer everything with success, recording requests. */
static void
recorder_script (struct fake_conn *c)
{
  if (!fake_handshake (c))
    return;
  struct fk_req r;
  while (fk_read_req (c, &r) && r.type != NBD_CMD_DISC) {
    if (r.type == NBD_CMD_READ) {
      char *z = calloc (1, r.len ? r.len : 1);
      if (c->f->cfg.structured)
        fk_data (c, r.cookie, true, r.off, z, r.len);
      else
        fk_simple (c, r.cookie, 0, z, r.len);
      free (z);
    } else
      fk_simple (c, r.cookie, 0, NULL, 0);
    record (c, &seen, &r);
  }
}

static void
write_payload_and_fua (void **state)
{
  memset (&seen, 0, sizeof seen);
  struct fake *f = fake_start (recorder_script, NULL, NULL);
  struct r3m_backend *b = open_uri (f, NULL);
  char data[1000];
  for (int i = 0; i < 1000; i++)
    data[i] = (char) (i * 7);
  assert_int_equal (r3m_backend_pwrite (b, data, 1000, 4000, R3M_IO_FUA), 0);
  assert_int_equal (r3m_backend_flush (b), 0);
  r3m_backend_close (b);
  assert_true (fake_stop (f));
  assert_int_equal (seen.n, 2);
  assert_int_equal (seen.req[0].type, NBD_CMD_WRITE);
  assert_int_equal (seen.req[0].flags, NBD_CMD_FLAG_FUA);
  assert_int_equal (seen.req[0].off, 4000);
  assert_int_equal (seen.req[0].len, 1000);
  assert_memory_equal (seen.req[0].data, data, 1000);
  assert_int_equal (seen.req[1].type, NBD_CMD_FLUSH);
  free_seen (&seen);
}

/* No SEND_FUA: a FUA write is a write, then (after its reply) a flush. */
static void
fua_emulated_by_flush (void **state)
{
  memset (&seen, 0, sizeof seen);
  struct fake_cfg cfg = fake_default_cfg ();
  cfg.tflags &= (uint16_t) ~NBD_FLAG_SEND_FUA;
  struct fake *f = fake_start (recorder_script, NULL, &cfg);
  struct r3m_backend *b = open_uri (f, NULL);
  char data[512] = { 1 };
  assert_int_equal (r3m_backend_pwrite (b, data, 512, 0, R3M_IO_FUA), 0);
  r3m_backend_close (b);
  assert_true (fake_stop (f));
  assert_int_equal (seen.n, 2);
  assert_int_equal (seen.req[0].type, NBD_CMD_WRITE);
  assert_int_equal (seen.req[0].flags, 0);
  assert_int_equal (seen.req[1].type, NBD_CMD_FLUSH);
  free_seen (&seen);
}

/* Without SEND_FLUSH / SEND_TRIM those are no-ops that reach nobody. */
static void
unsupported_flush_and_trim (void **state)
{
  memset (&seen, 0, sizeof seen);
  struct fake_cfg cfg = fake_default_cfg ();
  cfg.tflags = 0;
  struct fake *f = fake_start (recorder_script, NULL, &cfg);
  struct r3m_backend *b = open_uri (f, NULL);
  assert_int_equal (r3m_backend_flush (b), 0);
  assert_int_equal (r3m_backend_trim (b, 4096, 0), 0);
  char data[512] = { 1 };
  assert_int_equal (r3m_backend_pwrite (b, data, 512, 0, R3M_IO_FUA), 0);
  r3m_backend_close (b);
  assert_true (fake_stop (f));
  assert_int_equal (seen.n, 1);
  assert_int_equal (seen.req[0].type, NBD_CMD_WRITE);
  assert_int_equal (seen.req[0].flags, 0);     /* no FUA without SEND_FUA */
  free_seen (&seen);
}

static void
zero_and_trim_commands (void **state)
{
  memset (&seen, 0, sizeof seen);
  struct fake *f = fake_start (recorder_script, NULL, NULL);
  struct r3m_backend *b = open_uri (f, NULL);
  assert_int_equal (r3m_backend_zero (b, 8192, 4096, 0), 0);
  assert_int_equal (r3m_backend_zero (b, 8192, 0, R3M_IO_MAY_TRIM
                                      | R3M_IO_FUA), 0);
  assert_int_equal (r3m_backend_trim (b, 4096, 0), 0);
  r3m_backend_close (b);
  assert_true (fake_stop (f));
  assert_int_equal (seen.n, 3);
  assert_int_equal (seen.req[0].type, NBD_CMD_WRITE_ZEROES);
  assert_int_equal (seen.req[0].flags, NBD_CMD_FLAG_NO_HOLE);
  assert_int_equal (seen.req[0].off, 4096);
  assert_int_equal (seen.req[0].len, 8192);
  assert_int_equal (seen.req[1].type, NBD_CMD_WRITE_ZEROES);
  assert_int_equal (seen.req[1].flags, NBD_CMD_FLAG_FUA);
  assert_int_equal (seen.req[2].type, NBD_CMD_TRIM);
  free_seen (&seen);
}

/* Without WRITE_ZEROES, zeroing writes zeros (split at the zero buffer). */
static void
zero_without_write_zeroes (void **state)
{
  struct fake_cfg cfg = fake_default_cfg ();
  cfg.tflags &= (uint16_t) ~NBD_FLAG_SEND_WRITE_ZEROES;
  cfg.size = 4 << 20;
  struct fake_mem m = { .lock = PTHREAD_MUTEX_INITIALIZER, .bytes = malloc (cfg.size) };
  memset (m.bytes, 0xff, cfg.size);
  struct fake *f = fake_start (fake_memory_script, &m, &cfg);
  struct r3m_backend *b = open_uri (f, NULL);
  assert_false (r3m_backend_get_info (b)->flags & R3M_BACKEND_FAST_ZERO);
  assert_int_equal (r3m_backend_zero (b, (3 << 20) + 5, 7, 0), 0);
  r3m_backend_close (b);
  assert_true (fake_stop (f));
  assert_int_equal (m.bytes[6], 0xff);
  for (size_t i = 7; i < (3 << 20) + 12; i++)
    if (m.bytes[i] != 0)
      fail_msg ("byte %zu not zeroed", i);
  assert_int_equal (m.bytes[(3 << 20) + 12], 0xff);
  assert_int_equal (m.requests[0], 4);   /* 1 MiB pieces */
  free (m.bytes);
}

/* ---- block status -------------------------------------------------------- */

static void
status_script (struct fake_conn *c)
{
  if (!fake_handshake (c))
    return;
  struct fk_req r;
  while (fk_read_req (c, &r) && r.type == NBD_CMD_BLOCK_STATUS) {
    record (c, &seen, &r);
    /* 4 KiB hole, 8 KiB data, then zeros reaching past the request. */
    const uint64_t ext[3][2] = {
      { 4096, NBD_STATE_HOLE | NBD_STATE_ZERO },
      { 8192, 0 },
      { 1 << 20, NBD_STATE_ZERO },
    };
    uint32_t n = 0;
    for (uint64_t sum = 0; n < 3 && sum < r.len; n++)
      sum += ext[n][0];                /* the spec: stop once past len */
    fk_status (c, r.cookie, true, FAKE_META_ID, ext, n);
  }
}

static void
extents_from_block_status (void **state)
{
  memset (&seen, 0, sizeof seen);
  struct fake_cfg cfg = fake_default_cfg ();
  cfg.block_size = true;
  cfg.min = 4096;
  cfg.pref = 4096;
  cfg.max = 1 << 20;
  struct fake *f = fake_start (status_script, NULL, &cfg);
  struct r3m_backend *b = open_uri (f, NULL);
  struct r3m_extent e[8];
  size_t n;
  assert_int_equal (r3m_backend_extents (b, 0, 65536, e, 8, &n), 0);
  assert_int_equal (n, 3);
  assert_int_equal (e[0].len, 4096);
  assert_int_equal (e[0].flags, R3M_EXTENT_HOLE | R3M_EXTENT_ZERO);
  assert_int_equal (e[1].len, 8192);
  assert_int_equal (e[1].flags, 0);
  assert_int_equal (e[2].len, 65536 - 12288);   /* clamped to the request */
  assert_int_equal (e[2].flags, R3M_EXTENT_ZERO);
  /* Unaligned: asked from the block start, answered from off. */
  assert_int_equal (r3m_backend_extents (b, 1000, 5000, e, 8, &n), 0);
  assert_int_equal (n, 2);
  assert_int_equal (e[0].len, 3096);
  assert_int_equal (e[1].len, 5000 - 3096);
  /* max 1: only the first extent. */
  assert_int_equal (r3m_backend_extents (b, 0, 65536, e, 1, &n), 0);
  assert_int_equal (n, 1);
  r3m_backend_close (b);
  assert_true (fake_stop (f));
  assert_int_equal (seen.n, 3);
  assert_int_equal (seen.req[1].off, 0);
  assert_int_equal (seen.req[1].len, 8192);
  free_seen (&seen);
}

static void
extents_without_meta (void **state)
{
  struct fake_cfg cfg = fake_default_cfg ();
  cfg.meta = false;
  struct fake_mem m = { .lock = PTHREAD_MUTEX_INITIALIZER, .bytes = calloc (1, cfg.size) };
  struct fake *f = fake_start (fake_memory_script, &m, &cfg);
  struct r3m_backend *b = open_uri (f, NULL);
  struct r3m_extent e[2];
  size_t n;
  assert_int_equal (r3m_backend_extents (b, 100, 5000, e, 2, &n), 0);
  assert_int_equal (n, 1);
  assert_int_equal (e[0].len, 5000);
  assert_int_equal (e[0].flags, 0);
  r3m_backend_close (b);
  assert_true (fake_stop (f));
  assert_int_equal (m.requests[0], 0);
  free (m.bytes);
}

/* ---- splitting, windows, urgency, connections ----------------------------- */

static void
large_read_is_split (void **state)
{
  struct fake_cfg cfg = fake_default_cfg ();
  cfg.block_size = true;
  cfg.min = 1;
  cfg.pref = 4096;
  cfg.max = 65536;
  struct fake_mem m = { .lock = PTHREAD_MUTEX_INITIALIZER, .bytes = malloc (cfg.size), .seed = 3 };
  for (size_t i = 0; i < cfg.size; i++)
    m.bytes[i] = (unsigned char) (i * 31 + i / 4096);
  struct fake *f = fake_start (fake_memory_script, &m, &cfg);
  struct r3m_backend *b = open_uri (f, NULL);
  struct tracker t;
  tracker_init (&t);
  struct treq q;
  unsigned char *buf = malloc (cfg.size - 3);
  assert_int_equal (tsubmit (b, &t, &q, R3M_IO_READ, buf, cfg.size - 3, 3,
                             0), 0);
  twait (&t);
  assert_int_equal (q.calls, 1);
  assert_int_equal (q.result, 0);
  assert_memory_equal (buf, m.bytes + 3, cfg.size - 3);
  r3m_backend_close (b);
  tracker_destroy (&t);
  assert_true (fake_stop (f));
  assert_int_equal (m.requests[0], 16);
  free (buf);
  free (m.bytes);
}

static uint64_t urgent_first_off;

/* Hold two requests unanswered; the next to arrive must be the urgent
 * one although a third normal request was submitted before it. */
static void
urgent_script (struct fake_conn *c)
{
  if (!fake_handshake (c))
    return;
  struct fk_req r[4];
  for (int i = 0; i < 3; i++)
    if (!fk_read_req (c, &r[i]))
      return;
  pthread_mutex_lock (&c->f->lock);
  urgent_first_off = r[2].off;
  pthread_mutex_unlock (&c->f->lock);
  char d[4096] = { 0 };
  for (int i = 2; i >= 0; i--)
    fk_data (c, r[i].cookie, true, r[i].off, d, 4096);
  if (fk_read_req (c, &r[3]))
    fk_data (c, r[3].cookie, true, r[3].off, d, 4096);
  fk_read_req (c, &r[0]);
}

static void
urgent_skips_full_window (void **state)
{
  struct fake *f = fake_start (urgent_script, NULL, NULL);
  struct r3m_backend *b = open_uri (f, "&inflight=2");
  struct tracker t;
  tracker_init (&t);
  static char buf[4][4096];
  struct treq q[3];
  for (int i = 0; i < 3; i++)
    tsubmit (b, &t, &q[i], R3M_IO_READ, buf[i], 4096, (uint64_t) i * 4096,
             0);
  /* The window is full (2), the third waits; a synchronous read is
   * urgent and goes out now. */
  assert_int_equal (r3m_backend_pread (b, buf[3], 4096, 12288), 0);
  twait (&t);
  for (int i = 0; i < 3; i++) {
    assert_int_equal (q[i].calls, 1);
    assert_int_equal (q[i].result, 0);
  }
  r3m_backend_close (b);
  tracker_destroy (&t);
  assert_true (fake_stop (f));
  assert_int_equal (urgent_first_off, 12288);
}

static void
requests_spread_over_connections (void **state)
{
  struct fake_cfg cfg = fake_default_cfg ();
  cfg.tflags |= NBD_FLAG_CAN_MULTI_CONN;
  struct fake_mem m = { .lock = PTHREAD_MUTEX_INITIALIZER, .bytes = calloc (1, cfg.size), .seed = 5 };
  struct fake *f = fake_start (fake_memory_script, &m, &cfg);
  struct r3m_backend *b = open_uri (f, "&connections=4");
  /* The other three join in the background; info waits for them. */
  struct r3m_nbd_client_info info;
  assert_int_equal (r3m_nbd_client_info (b, &info), 0);
  assert_int_equal (info.connections, 4);
  struct tracker t;
  tracker_init (&t);
  static char buf[64][4096];
  static struct treq q[64];
  for (int i = 0; i < 64; i++)
    tsubmit (b, &t, &q[i], R3M_IO_WRITE, buf[i], 4096, (uint64_t) i * 4096,
             0);
  twait (&t);
  /* A flush goes to one connection only: multi-conn makes it cover all. */
  assert_int_equal (r3m_backend_flush (b), 0);
  r3m_backend_close (b);
  tracker_destroy (&t);
  assert_true (fake_stop (f));
  unsigned total = 0;
  for (int i = 0; i < 4; i++) {
    assert_true (m.requests[i] > 0);
    total += m.requests[i];
  }
  assert_int_equal (total, 65);
  free (m.bytes);
}

static bool saw_disc;

static void
disc_script (struct fake_conn *c)
{
  if (!fake_handshake (c))
    return;
  struct fk_req r;
  while (fk_read_req (c, &r))
    if (r.type == NBD_CMD_DISC) {
      pthread_mutex_lock (&c->f->lock);
      saw_disc = true;
      pthread_mutex_unlock (&c->f->lock);
    }
}

static void
close_sends_disc (void **state)
{
  struct fake *f = fake_start (disc_script, NULL, NULL);
  struct r3m_backend *b = open_uri (f, NULL);
  r3m_backend_close (b);
  fake_wait_finished (f, 1);
  assert_true (saw_disc);
  assert_true (fake_stop (f));
}

/* Simple replies only (no structured replies agreed). */
static void
simple_replies_read_write (void **state)
{
  struct fake_cfg cfg = fake_default_cfg ();
  cfg.structured = false;
  struct fake_mem m = { .lock = PTHREAD_MUTEX_INITIALIZER, .bytes = calloc (1, cfg.size), .seed = 9 };
  struct fake *f = fake_start (fake_memory_script, &m, &cfg);
  struct r3m_backend *b = open_uri (f, NULL);
  char w[3000], r[3000];
  for (int i = 0; i < 3000; i++)
    w[i] = (char) (i ^ 0x5a);
  assert_int_equal (r3m_backend_pwrite (b, w, 3000, 777, 0), 0);
  assert_int_equal (r3m_backend_pread (b, r, 3000, 777), 0);
  assert_memory_equal (w, r, 3000);
  r3m_backend_close (b);
  assert_true (fake_stop (f));
  free (m.bytes);
}

/* ---- extended headers ------------------------------------------------------ */

/* Write, read, zero, block status and disconnect in extended form; the
 * fake checks PAYLOAD_LEN on every request it reads. */
static void
extended_script (struct fake_conn *c)
{
  struct seen *s = c->f->user;
  if (!fake_handshake (c))
    return;
  struct fk_req r;
  while (fk_read_req (c, &r)) {
    struct fk_req kept = r;
    kept.data = NULL;
    switch (r.type) {
    case NBD_CMD_READ: {
      char d[4096];
      memset (d, 'r', sizeof d);
      fk_hole (c, r.cookie, false, r.off + 4096, r.len - 4096);
      fk_data (c, r.cookie, true, r.off, d, 4096);
      break;
    }
    case NBD_CMD_BLOCK_STATUS: {
      /* The second extent goes far past the request: 2^33 bytes. */
      const uint64_t e[2][2] = { { 4096, NBD_STATE_HOLE | NBD_STATE_ZERO },
                                 { UINT64_C (1) << 33, 0 } };
      fk_status (c, r.cookie, true, FAKE_META_ID, e, 2);
      break;
    }
    case NBD_CMD_DISC:
      record (c, s, &kept);
      free (r.data);
      return;
    default:
      if (r.type == NBD_CMD_WRITE && (r.len != 3000 || !r.data
                                      || ((char *) r.data)[2999] != 'w'))
        fake_fail (c->f, "write payload");
      fk_done (c, r.cookie);
      break;
    }
    record (c, s, &kept);
    free (r.data);
  }
}

static void
extended_headers_requests_and_replies (void **state)
{
  static struct seen s;
  memset (&s, 0, sizeof s);
  struct fake_cfg cfg = fake_default_cfg ();
  cfg.extended = true;
  cfg.structured = false;        /* not asked for: extended imply it */
  struct fake *f = fake_start (extended_script, &s, &cfg);
  struct r3m_backend *b = open_uri (f, "&connections=1");
  struct r3m_nbd_client_info info;
  r3m_nbd_client_info (b, &info);
  assert_true (info.extended_headers);
  assert_true (info.structured_replies);
  assert_true (info.block_status);
  char w[3000], r[12288];
  memset (w, 'w', sizeof w);
  assert_int_equal (r3m_backend_pwrite (b, w, sizeof w, 100, R3M_IO_FUA), 0);
  assert_int_equal (r3m_backend_pread (b, r, sizeof r, 8192), 0);
  assert_int_equal (r[0], 'r');
  assert_int_equal (r[4095], 'r');
  assert_int_equal (r[4096], 0);
  assert_int_equal (r[12287], 0);
  assert_int_equal (r3m_backend_zero (b, 65536, 0, 0), 0);
  struct r3m_extent e[4];
  size_t n;
  assert_int_equal (r3m_backend_extents (b, 0, 65536, e, 4, &n), 0);
  assert_int_equal (n, 2);
  assert_int_equal (e[0].len, 4096);
  assert_int_equal (e[0].flags, R3M_EXTENT_HOLE | R3M_EXTENT_ZERO);
  assert_int_equal (e[1].len, 65536 - 4096);   /* clamped to the request */
  assert_int_equal (e[1].flags, 0);
  r3m_backend_close (b);
  fake_wait_finished (f, 1);
  assert_false (f->asked_structured);
  assert_true (fake_stop (f));
  assert_int_equal (s.n, 5);
  assert_int_equal (s.req[0].type, NBD_CMD_WRITE);
  assert_int_equal (s.req[0].flags, NBD_CMD_FLAG_FUA);  /* PAYLOAD_LEN gone */
  assert_int_equal (s.req[2].type, NBD_CMD_WRITE_ZEROES);
  assert_int_equal (s.req[2].len, 65536);
  assert_int_equal (s.req[4].type, NBD_CMD_DISC);
  free_seen (&s);
}

/* Ranges beyond 4 GiB: with extended headers TRIM, WRITE_ZEROES and
 * BLOCK_STATUS go as one request with a 64-bit effect length; compact
 * headers split them at 1 GiB (block status asks about the first GiB). */
static void
big_range_script (struct fake_conn *c)
{
  struct seen *s = c->f->user;
  if (!fake_handshake (c))
    return;
  struct fk_req r;
  while (fk_read_req (c, &r) && r.type != NBD_CMD_DISC) {
    if (r.type == NBD_CMD_BLOCK_STATUS) {
      const uint64_t e[1][2] = { { r.len, NBD_STATE_HOLE | NBD_STATE_ZERO } };
      fk_status (c, r.cookie, true, FAKE_META_ID, e, 1);
    } else if (c->ext)
      fk_done (c, r.cookie);
    else
      fk_simple (c, r.cookie, 0, NULL, 0);
    record (c, s, &r);
  }
}

static void
big_ranges (bool extended)
{
  static struct seen s;
  memset (&s, 0, sizeof s);
  const uint64_t gib = UINT64_C (1) << 30, len = 5 * gib;
  struct fake_cfg cfg = fake_default_cfg ();
  cfg.extended = extended;
  cfg.size = 8 * gib;
  struct fake *f = fake_start (big_range_script, &s, &cfg);
  struct r3m_backend *b = open_uri (f, "&connections=1");
  assert_int_equal (r3m_backend_zero (b, len, gib, 0), 0);
  assert_int_equal (r3m_backend_trim (b, len, 0), 0);
  struct r3m_extent e[4];
  size_t n;
  assert_int_equal (r3m_backend_extents (b, 0, len, e, 4, &n), 0);
  assert_true (n >= 1);
  assert_int_equal (e[0].flags, R3M_EXTENT_HOLE | R3M_EXTENT_ZERO);
  assert_int_equal (e[0].len, extended ? len : gib);
  r3m_backend_close (b);
  assert_true (fake_stop (f));
  int parts = extended ? 1 : 5;
  assert_int_equal (s.n, 2 * parts + 1);
  uint64_t zeroed = 0, trimmed = 0;
  for (int i = 0; i < 2 * parts; i++) {
    assert_true (s.req[i].len == (extended ? len : gib));
    if (s.req[i].type == NBD_CMD_WRITE_ZEROES)
      zeroed += s.req[i].len;
    else if (s.req[i].type == NBD_CMD_TRIM)
      trimmed += s.req[i].len;
  }
  assert_true (zeroed == len && trimmed == len);
  assert_int_equal (s.req[2 * parts].type, NBD_CMD_BLOCK_STATUS);
  assert_true (s.req[2 * parts].len == (extended ? len : gib));
  free_seen (&s);
}

static void
big_ranges_extended_go_whole (void **state)
{
  big_ranges (true);
}

static void
big_ranges_compact_are_split (void **state)
{
  big_ranges (false);
}

/* The scrambling memory server, with extended headers. */
static void
extended_headers_memory_server (void **state)
{
  struct fake_cfg cfg = fake_default_cfg ();
  cfg.extended = true;
  struct fake_mem m = { .lock = PTHREAD_MUTEX_INITIALIZER,
                        .bytes = calloc (1, cfg.size), .seed = 5 };
  struct fake *f = fake_start (fake_memory_script, &m, &cfg);
  struct r3m_backend *b = open_uri (f, NULL);
  unsigned seed = 3;
  static char w[65536], r[65536];
  for (int i = 0; i < 50; i++) {
    size_t len = 1 + (size_t) rand_r (&seed) % sizeof w;
    uint64_t off = (uint64_t) rand_r (&seed) % (cfg.size - len);
    for (size_t k = 0; k < len; k++)
      w[k] = (char) rand_r (&seed);
    assert_int_equal (r3m_backend_pwrite (b, w, len, off, 0), 0);
    assert_int_equal (r3m_backend_pread (b, r, len, off), 0);
    assert_memory_equal (w, r, len);
  }
  r3m_backend_close (b);
  assert_true (fake_stop (f));
  free (m.bytes);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (replies_out_of_order),
    cmocka_unit_test (read_in_chunks_with_hole),
    cmocka_unit_test (error_replies),
    cmocka_unit_test (write_payload_and_fua),
    cmocka_unit_test (fua_emulated_by_flush),
    cmocka_unit_test (unsupported_flush_and_trim),
    cmocka_unit_test (zero_and_trim_commands),
    cmocka_unit_test (zero_without_write_zeroes),
    cmocka_unit_test (extents_from_block_status),
    cmocka_unit_test (extents_without_meta),
    cmocka_unit_test (large_read_is_split),
    cmocka_unit_test (urgent_skips_full_window),
    cmocka_unit_test (requests_spread_over_connections),
    cmocka_unit_test (close_sends_disc),
    cmocka_unit_test (simple_replies_read_write),
    cmocka_unit_test (extended_headers_requests_and_replies),
    cmocka_unit_test (extended_headers_memory_server),
    cmocka_unit_test (big_ranges_extended_go_whole),
    cmocka_unit_test (big_ranges_compact_are_split),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
