/* NBD server with extended headers (NBD_OPT_EXTENDED_HEADERS): the
 * negotiation rules, and in transmission the exact bytes of the 32-byte
 * replies, the PAYLOAD_LEN rules, the block status payload form and 64-bit
 * effect lengths, on all three execution paths (inline, inline zero-copy,
 * worker pool). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "nbd/proto.h"
#include "rawnbd.h"
#include "testbackend.h"

#define SIZE (1u << 20)
#define GIB  (UINT64_C (1) << 30)

static const struct r3m_extent layout[] = {
  { 65536, 0 },
  { 131072, R3M_EXTENT_HOLE | R3M_EXTENT_ZERO },
  { SIZE - 65536 - 131072, R3M_EXTENT_ZERO },
};

/* ---- a 16 GiB export that stores nothing, for 64-bit lengths ---------- */

struct huge {
  uint64_t zeroed, trimmed;     /* bytes the last zero/trim covered */
};

static int
huge_pread (void *self, void *buf, size_t len, uint64_t off)
{
  (void) self, (void) off;
  memset (buf, 0, len);
  return 0;
}

static int
huge_pwrite (void *self, const void *buf, size_t len, uint64_t off,
             unsigned flags)
{
  (void) self, (void) buf, (void) len, (void) off, (void) flags;
  return 0;
}

static int
huge_flush (void *self)
{
  (void) self;
  return 0;
}

static int
huge_zero (void *self, size_t len, uint64_t off, unsigned flags)
{
  (void) off, (void) flags;
  ((struct huge *) self)->zeroed = len;
  return 0;
}

static int
huge_trim (void *self, size_t len, uint64_t off)
{
  (void) off;
  ((struct huge *) self)->trimmed = len;
  return 0;
}

/* 5 GiB of data, then holes. */
static int
huge_extents (void *self, uint64_t off, uint64_t len, struct r3m_extent *ext,
              size_t max, size_t *n)
{
  (void) self;
  const uint64_t data = 5 * GIB;
  *n = 0;
  if (off < data && *n < max) {
    ext[(*n)++] = (struct r3m_extent) { .len = data - off, .flags = 0 };
    if (len <= data - off)
      return 0;
    len -= data - off;
    off = data;
  }
  if (*n < max)
    ext[(*n)++] = (struct r3m_extent) {
      .len = len, .flags = R3M_EXTENT_HOLE | R3M_EXTENT_ZERO };
  return 0;
}

static void
huge_close (void *self)
{
  (void) self;
}

static const struct r3m_backend_ops huge_ops = {
  .name = "huge", .pread = huge_pread, .pwrite = huge_pwrite,
  .flush = huge_flush, .zero = huge_zero, .trim = huge_trim,
  .extents = huge_extents, .close = huge_close,
};

/* A second context on the default export: one extent of flags 5. */
static int
five_query (void *user, void *state, uint64_t off, uint64_t len,
            struct r3m_extent *ext, size_t max, size_t *n)
{
  (void) user, (void) state, (void) off, (void) max;
  ext[0] = (struct r3m_extent) { .len = len, .flags = 5 };
  *n = 1;
  return 0;
}

/* ---- fixture ------------------------------------------------------------ */

struct fixture {
  struct r3m_nbd_server *srv;
  struct tb *tb, *tba;
  struct r3m_backend *b, *aligned, *big;
  struct huge huge;
  struct raw c;
};

static int
setup_with (void **state, unsigned async_threads, bool direct)
{
  struct fixture *f = calloc (1, sizeof *f);
  struct tb_options to = { .size = SIZE, .async_threads = async_threads,
                           .extents = layout, .nextents = 3,
                           .direct = direct };
  assert_int_equal (tb_new (&to, &f->tb, &f->b), 0);
  to.extents = NULL;
  assert_int_equal (tb_new (&to, &f->tba, &f->aligned), 0);
  for (unsigned i = 0; i < SIZE; i++)
    f->tb->data[i] = (unsigned char) (i * 7);
  struct r3m_backend_info info = { .size = 16 * GIB, .align = 1,
                                   .async_threads = async_threads };
  assert_int_equal (r3m_backend_new (&huge_ops, &f->huge, &info, "huge",
                                     &f->big, NULL), 0);
  struct r3m_nbd_server_options so;
  r3m_nbd_server_options_init (&so);
  so.workers = 4;
  assert_int_equal (r3m_nbd_server_new (&so, &f->srv, NULL), 0);
  assert_int_equal (r3m_nbd_server_add_export (f->srv, "", f->b, NULL, NULL),
                    0);
  struct r3m_nbd_export_options ea = { .min_block = 512,
                                       .max_payload = 65536 };
  assert_int_equal (r3m_nbd_server_add_export (f->srv, "aligned", f->aligned,
                                               &ea, NULL), 0);
  assert_int_equal (r3m_nbd_server_add_export (f->srv, "huge", f->big, NULL,
                                               NULL), 0);
  struct r3m_nbd_meta_context five = { .name = "x-test:five",
                                       .query = five_query };
  assert_int_equal (r3m_nbd_server_add_meta_context (f->srv, "", &five,
                                                     NULL), 0);
  f->c.fd = -1;
  *state = f;
  return 0;
}

static int
setup_inline (void **state)
{
  return setup_with (state, 0, false);
}

static int
setup_direct (void **state)
{
  return setup_with (state, 0, true);
}

static int
setup_pool (void **state)
{
  return setup_with (state, 2, false);
}

static int
teardown (void **state)
{
  struct fixture *f = *state;
  raw_close (&f->c);
  r3m_nbd_server_free (f->srv);
  r3m_backend_close (f->b);
  r3m_backend_close (f->aligned);
  r3m_backend_close (f->big);
  free (f);
  return 0;
}

static uint16_t
go (struct fixture *f, const char *name)
{
  raw_connect (f->srv, &f->c);
  const char *meta[] = { "base:allocation" };
  uint16_t eflags;
  raw_go_ext (&f->c, name, meta, 1, NULL, &eflags);
  return eflags;
}

/* The 32 bytes an extended reply header must be. */
static void
expect_header (struct fixture *f, uint16_t flags, uint16_t type,
               uint64_t cookie, uint64_t off, uint64_t len)
{
  unsigned char want[32], got[32];
  nbd_put32 (want, NBD_EXT_REPLY_MAGIC);
  nbd_put16 (want + 4, flags);
  nbd_put16 (want + 6, type);
  nbd_put64 (want + 8, cookie);
  nbd_put64 (want + 16, off);
  nbd_put64 (want + 24, len);
  raw_recv (&f->c, got, sizeof got);
  assert_memory_equal (got, want, sizeof want);
}

static void
expect_none (struct fixture *f, uint64_t cookie, uint64_t off)
{
  expect_header (f, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, cookie, off, 0);
}

/* An ERROR chunk for cookie at off; returns the error. */
static uint32_t
error_chunk (struct fixture *f, uint64_t cookie, uint64_t off)
{
  uint16_t flags, type;
  uint64_t got, goff, len;
  unsigned char p[256];
  raw_ext_chunk (&f->c, &flags, &type, &got, &goff, p, sizeof p, &len);
  assert_int_equal (got, cookie);
  assert_int_equal (goff, off);
  assert_int_equal (type, NBD_REPLY_TYPE_ERROR);
  assert_int_equal (flags, NBD_REPLY_FLAG_DONE);
  uint16_t mlen = nbd_get16 (p + 4);
  assert_true (mlen > 0 && 6u + mlen == len);   /* a message for people */
  return nbd_get32 (p);
}

/* ---- negotiation -------------------------------------------------------- */

static void
test_negotiation_rules (void **state)
{
  struct fixture *f = *state;
  raw_connect (f->srv, &f->c);
  raw_hello (&f->c, NBD_FLAG_C_FIXED_NEWSTYLE);
  unsigned char junk[7] = "payload";
  uint32_t type;
  raw_opt (&f->c, NBD_OPT_EXTENDED_HEADERS, junk, sizeof junk);
  raw_opt_reply (&f->c, NBD_OPT_EXTENDED_HEADERS, &type, NULL, 0, NULL);
  assert_int_equal (type, NBD_REP_ERR_INVALID);
  /* Structured replies first is fine; extended headers then win. */
  raw_opt_expect (&f->c, NBD_OPT_STRUCTURED_REPLY, NBD_REP_ACK);
  raw_opt_expect (&f->c, NBD_OPT_EXTENDED_HEADERS, NBD_REP_ACK);
  raw_opt_expect (&f->c, NBD_OPT_EXTENDED_HEADERS, NBD_REP_ERR_INVALID);
  raw_opt_expect (&f->c, NBD_OPT_STRUCTURED_REPLY,
                  NBD_REP_ERR_EXT_HEADER_REQD);
  raw_close (&f->c);

  /* Extended headers alone allow metadata contexts; DF is offered, and
   * with contexts selected the block status payload form. */
  uint16_t eflags = go (f, "");
  assert_true (eflags & NBD_FLAG_SEND_DF);
  assert_true (eflags & NBD_FLAG_BLOCK_STAT_PAYLOAD);
  raw_ext_request (&f->c, 0, NBD_CMD_FLUSH, 1, 0, 0, NULL, 0);
  expect_none (f, 1, 0);
  raw_close (&f->c);
  raw_connect (f->srv, &f->c);
  raw_go_ext (&f->c, "", NULL, 0, NULL, &eflags);
  assert_false (eflags & NBD_FLAG_BLOCK_STAT_PAYLOAD);
  raw_close (&f->c);
  /* Nor without extended headers. */
  raw_connect (f->srv, &f->c);
  const char *meta[] = { "base:allocation" };
  raw_go (&f->c, "", true, meta, 1, NULL, &eflags);
  assert_false (eflags & NBD_FLAG_BLOCK_STAT_PAYLOAD);
  raw_close (&f->c);

  /* EXPORT_NAME cannot follow: the client broke a MUST. */
  raw_connect (f->srv, &f->c);
  raw_hello (&f->c, NBD_FLAG_C_FIXED_NEWSTYLE);
  raw_opt_expect (&f->c, NBD_OPT_EXTENDED_HEADERS, NBD_REP_ACK);
  raw_opt (&f->c, NBD_OPT_EXPORT_NAME, NULL, 0);
  assert_true (raw_closed (&f->c));
}

/* ---- transmission ------------------------------------------------------- */

static void
test_write_read_bytes (void **state)
{
  struct fixture *f = *state;
  go (f, "");
  unsigned char w[5000], r[8 + 5000];
  for (size_t i = 0; i < sizeof w; i++)
    w[i] = (unsigned char) (i ^ 0xa5);
  raw_ext_request (&f->c, NBD_CMD_FLAG_PAYLOAD_LEN | NBD_CMD_FLAG_FUA,
                   NBD_CMD_WRITE, 0x1122334455667788, 4321, sizeof w, w,
                   sizeof w);
  expect_none (f, 0x1122334455667788, 4321);
  assert_memory_equal (f->tb->data + 4321, w, sizeof w);

  raw_ext_request (&f->c, NBD_CMD_FLAG_DF, NBD_CMD_READ, 2, 4321, sizeof w,
                   NULL, 0);
  expect_header (f, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_DATA, 2, 4321,
                 8 + sizeof w);
  raw_recv (&f->c, r, sizeof r);
  assert_int_equal (nbd_get64 (r), 4321);
  assert_memory_equal (r + 8, w, sizeof w);

  /* A zero-length read is a lone NONE chunk; so are the other commands'
   * successes: extended headers have no simple replies. */
  raw_ext_request (&f->c, 0, NBD_CMD_READ, 3, 100, 0, NULL, 0);
  expect_none (f, 3, 100);
  raw_ext_request (&f->c, 0, NBD_CMD_WRITE_ZEROES, 4, 0, 512, NULL, 0);
  expect_none (f, 4, 0);
  raw_ext_request (&f->c, 0, NBD_CMD_TRIM, 5, 512, 512, NULL, 0);
  expect_none (f, 5, 512);
  raw_ext_request (&f->c, 0, NBD_CMD_CACHE, 6, 0, 4096, NULL, 0);
  expect_none (f, 6, 0);
}

static void
test_errors_have_offset_and_message (void **state)
{
  struct fixture *f = *state;
  go (f, "aligned");
  /* Beyond the end, unaligned, over the maximum payload (EOVERFLOW, as
   * for structured replies, not a dropped connection). */
  raw_ext_request (&f->c, 0, NBD_CMD_READ, 10, SIZE, 512, NULL, 0);
  assert_int_equal (error_chunk (f, 10, SIZE), NBD_EINVAL);
  raw_ext_request (&f->c, 0, NBD_CMD_READ, 11, 100, 512, NULL, 0);
  assert_int_equal (error_chunk (f, 11, 100), NBD_EINVAL);
  raw_ext_request (&f->c, 0, NBD_CMD_READ, 12, 0, 131072, NULL, 0);
  assert_int_equal (error_chunk (f, 12, 0), NBD_EOVERFLOW);
  /* A 64-bit length beyond the end of a small export. */
  raw_ext_request (&f->c, 0, NBD_CMD_TRIM, 13, 0, UINT64_C (1) << 40, NULL,
                   0);
  assert_int_equal (error_chunk (f, 13, 0), NBD_EINVAL);
  raw_ext_request (&f->c, 0, NBD_CMD_WRITE_ZEROES, 14, 0, UINT64_MAX, NULL,
                   0);
  assert_int_equal (error_chunk (f, 14, 0), NBD_ENOSPC);
  /* A WRITE over the maximum payload: consumed, refused, in step. */
  unsigned char *big = calloc (1, 131072);
  raw_ext_request (&f->c, NBD_CMD_FLAG_PAYLOAD_LEN, NBD_CMD_WRITE, 15, 0,
                   131072, big, 131072);
  assert_int_equal (error_chunk (f, 15, 0), NBD_EINVAL);
  free (big);
  raw_ext_request (&f->c, 0, NBD_CMD_FLUSH, 16, 0, 0, NULL, 0);
  expect_none (f, 16, 0);
}

static void
test_payload_len_rules (void **state)
{
  struct fixture *f = *state;
  go (f, "");
  unsigned char p[300];
  memset (p, 0x77, sizeof p);
  memset (f->tb->data, 0, 4096);
  /* WRITE without the flag: its length is an effect length, nothing
   * follows, and the write is refused. */
  raw_ext_request (&f->c, 0, NBD_CMD_WRITE, 20, 0, 300, NULL, 0);
  assert_int_equal (error_chunk (f, 20, 0), NBD_EINVAL);
  /* Other commands with a payload: consumed, refused (no payload form is
   * offered, not even BLOCK_STATUS's). */
  uint16_t cmds[] = { NBD_CMD_READ, NBD_CMD_TRIM, NBD_CMD_BLOCK_STATUS,
                      NBD_CMD_FLUSH, 99 };
  for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
    raw_ext_request (&f->c, NBD_CMD_FLAG_PAYLOAD_LEN, cmds[i], 21 + i, 0,
                     sizeof p, p, sizeof p);
    assert_int_equal (error_chunk (f, 21 + i, 0), NBD_EINVAL);
  }
  for (size_t i = 0; i < 4096; i++)
    assert_int_equal (f->tb->data[i], 0);
  /* Still in step. */
  raw_ext_request (&f->c, 0, NBD_CMD_READ, 30, 0, 16, NULL, 0);
  expect_header (f, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_DATA, 30, 0,
                 8 + 16);
  unsigned char r[8 + 16];
  raw_recv (&f->c, r, sizeof r);
  /* A payload longer than 32 bits cannot be one: hard disconnect. */
  raw_ext_request (&f->c, NBD_CMD_FLAG_PAYLOAD_LEN, NBD_CMD_WRITE, 31, 0,
                   UINT64_C (1) << 32, NULL, 0);
  assert_true (raw_closed (&f->c));
}

static void
test_wrong_header_disconnects (void **state)
{
  struct fixture *f = *state;
  /* A compact request once extended headers are on... */
  go (f, "");
  raw_request (&f->c, 0, NBD_CMD_FLUSH, 1, 0, 0, NULL);
  unsigned char pad[4] = { 0 };
  raw_send (&f->c, pad, sizeof pad);
  assert_true (raw_closed (&f->c));
  raw_close (&f->c);
  /* ... and an extended one without them. */
  raw_connect (f->srv, &f->c);
  raw_go (&f->c, "", true, NULL, 0, NULL, NULL);
  raw_ext_request (&f->c, 0, NBD_CMD_FLUSH, 1, 0, 0, NULL, 0);
  assert_true (raw_closed (&f->c));
}

/* BLOCK_STATUS_EXT: id, count, then (u64 length, u64 status). */
static uint32_t
block_status (struct fixture *f, uint16_t flags, uint64_t cookie,
              uint64_t off, uint64_t len, uint64_t ext[][2])
{
  raw_ext_request (&f->c, flags, NBD_CMD_BLOCK_STATUS, cookie, off, len,
                   NULL, 0);
  uint16_t rflags, type;
  uint64_t got, goff, plen;
  unsigned char p[8 + 16 * 64];
  raw_ext_chunk (&f->c, &rflags, &type, &got, &goff, p, sizeof p, &plen);
  assert_int_equal (type, NBD_REPLY_TYPE_BLOCK_STATUS_EXT);
  assert_int_equal (rflags, NBD_REPLY_FLAG_DONE);
  assert_int_equal (got, cookie);
  assert_int_equal (goff, off);
  assert_int_equal (nbd_get32 (p), 1);             /* base:allocation */
  uint32_t n = nbd_get32 (p + 4);
  assert_true (n > 0 && plen == 8 + 16 * (uint64_t) n);
  for (uint32_t i = 0; i < n; i++) {
    ext[i][0] = nbd_get64 (p + 8 + 16 * i);
    ext[i][1] = nbd_get64 (p + 16 + 16 * i);
  }
  return n;
}

static void
test_block_status_ext (void **state)
{
  struct fixture *f = *state;
  go (f, "");
  uint64_t ext[64][2];
  uint32_t n = block_status (f, 0, 40, 4096, 65536 + 131072, ext);
  assert_int_equal (n, 3);
  assert_int_equal (ext[0][0], 65536 - 4096);
  assert_int_equal (ext[0][1], 0);
  assert_int_equal (ext[1][0], 131072);
  assert_int_equal (ext[1][1], NBD_STATE_HOLE | NBD_STATE_ZERO);
  assert_int_equal (ext[2][0], 4096);
  assert_int_equal (ext[2][1], NBD_STATE_ZERO);
  n = block_status (f, NBD_CMD_FLAG_REQ_ONE, 41, 0, 1000, ext);
  assert_int_equal (n, 1);
  assert_int_equal (ext[0][0], 1000);
  raw_ext_request (&f->c, 0, NBD_CMD_BLOCK_STATUS, 42, 0, 0, NULL, 0);
  assert_int_equal (error_chunk (f, 42, 0), NBD_EINVAL);
}

/* One status chunk of the payload form's reply: its context id and its
 * first extent; checks the count and DONE. */
static uint32_t
status_chunk (struct fixture *f, uint64_t cookie, uint64_t off, bool done,
              uint64_t *len, uint64_t *status)
{
  uint16_t rflags, type;
  uint64_t got, goff, plen;
  unsigned char p[8 + 16 * 64];
  raw_ext_chunk (&f->c, &rflags, &type, &got, &goff, p, sizeof p, &plen);
  assert_int_equal (type, NBD_REPLY_TYPE_BLOCK_STATUS_EXT);
  assert_int_equal (rflags, done ? NBD_REPLY_FLAG_DONE : 0);
  assert_int_equal (got, cookie);
  assert_int_equal (goff, off);
  assert_true (plen == 8 + 16 * (uint64_t) nbd_get32 (p + 4));
  *len = nbd_get64 (p + 8);
  *status = nbd_get64 (p + 16);
  return nbd_get32 (p);
}

/* u64 effect length, then the ids. */
static size_t
status_payload (unsigned char *p, uint64_t effect, const uint32_t *ids,
                size_t n)
{
  nbd_put64 (p, effect);
  for (size_t i = 0; i < n; i++)
    nbd_put32 (p + 8 + 4 * i, ids[i]);
  return 8 + 4 * n;
}

static void
test_block_status_payload_form (void **state)
{
  struct fixture *f = *state;
  raw_connect (f->srv, &f->c);
  const char *meta[] = { "base:allocation", "x-test:five" };
  uint16_t eflags;
  raw_go_ext (&f->c, "", meta, 2, NULL, &eflags);
  assert_true (eflags & NBD_FLAG_BLOCK_STAT_PAYLOAD);
  uint64_t len, status;
  unsigned char p[8 + 4 * 80];
  /* Without a payload: both contexts, base:allocation (id 1) first. */
  raw_ext_request (&f->c, 0, NBD_CMD_BLOCK_STATUS, 60, 0, 4096, NULL, 0);
  assert_int_equal (status_chunk (f, 60, 0, false, &len, &status), 1);
  assert_int_equal (status_chunk (f, 60, 0, true, &len, &status), 2);
  /* Only the second context: one chunk, with DONE; the effect length
   * comes from the payload, not the header. */
  uint32_t two[] = { 2 };
  size_t n = status_payload (p, 8192, two, 1);
  raw_ext_request (&f->c, NBD_CMD_FLAG_PAYLOAD_LEN, NBD_CMD_BLOCK_STATUS, 61,
                   512, n, p, n);
  assert_int_equal (status_chunk (f, 61, 512, true, &len, &status), 2);
  assert_int_equal (len, 8192);
  assert_int_equal (status, 5);
  /* Only the first, with REQ_ONE. */
  uint32_t one[] = { 1 };
  n = status_payload (p, 1000, one, 1);
  raw_ext_request (&f->c, NBD_CMD_FLAG_PAYLOAD_LEN | NBD_CMD_FLAG_REQ_ONE,
                   NBD_CMD_BLOCK_STATUS, 62, 0, n, p, n);
  assert_int_equal (status_chunk (f, 62, 0, true, &len, &status), 1);
  assert_int_equal (len, 1000);
  assert_int_equal (status, 0);
  /* Both, in the other order: the chunks still come, the last with DONE. */
  uint32_t both[] = { 2, 1 };
  n = status_payload (p, 4096, both, 2);
  raw_ext_request (&f->c, NBD_CMD_FLAG_PAYLOAD_LEN, NBD_CMD_BLOCK_STATUS, 63,
                   0, n, p, n);
  assert_int_equal (status_chunk (f, 63, 0, false, &len, &status), 1);
  assert_int_equal (status_chunk (f, 63, 0, true, &len, &status), 2);

  /* Refused, payload consumed, still in step: an id twice, an id not
   * selected, no ids, a payload too short, one longer than any valid
   * one, an effect length beyond the export. */
  uint32_t twice[] = { 1, 1 }, unknown[] = { 3 }, many[80];
  for (size_t i = 0; i < 80; i++)
    many[i] = 1 + (uint32_t) i % 2;
  struct { const uint32_t *ids; size_t n; uint64_t effect; } bad[] = {
    { twice, 2, 4096 }, { unknown, 1, 4096 }, { NULL, 0, 4096 },
    { many, 80, 4096 }, { one, 1, 2 * SIZE },
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    n = status_payload (p, bad[i].effect, bad[i].ids, bad[i].n);
    raw_ext_request (&f->c, NBD_CMD_FLAG_PAYLOAD_LEN, NBD_CMD_BLOCK_STATUS,
                     70 + i, 0, n, p, n);
    assert_int_equal (error_chunk (f, 70 + i, 0), NBD_EINVAL);
  }
  raw_ext_request (&f->c, NBD_CMD_FLAG_PAYLOAD_LEN, NBD_CMD_BLOCK_STATUS, 80,
                   0, 6, p, 6);
  assert_int_equal (error_chunk (f, 80, 0), NBD_EINVAL);
  raw_ext_request (&f->c, NBD_CMD_FLAG_PAYLOAD_LEN, NBD_CMD_BLOCK_STATUS, 81,
                   0, 9, p, 9);
  assert_int_equal (error_chunk (f, 81, 0), NBD_EINVAL);
  raw_ext_request (&f->c, 0, NBD_CMD_FLUSH, 82, 0, 0, NULL, 0);
  expect_none (f, 82, 0);
}

static void
test_64bit_effect_lengths (void **state)
{
  struct fixture *f = *state;
  go (f, "huge");
  uint64_t ext[64][2];
  /* Extents of 2^32 bytes, one more than 32 bits can say. */
  uint32_t n = block_status (f, 0, 50, GIB, 8 * GIB, ext);
  assert_int_equal (n, 2);
  assert_true (ext[0][0] == 4 * GIB);
  assert_int_equal (ext[0][1], 0);
  assert_true (ext[1][0] == 4 * GIB);
  assert_int_equal (ext[1][1], NBD_STATE_HOLE | NBD_STATE_ZERO);
  raw_ext_request (&f->c, 0, NBD_CMD_TRIM, 51, GIB, 6 * GIB, NULL, 0);
  expect_none (f, 51, GIB);
  assert_true (f->huge.trimmed == 6 * GIB);
  raw_ext_request (&f->c, NBD_CMD_FLAG_NO_HOLE, NBD_CMD_WRITE_ZEROES, 52, 0,
                   16 * GIB, NULL, 0);
  expect_none (f, 52, 0);
  assert_true (f->huge.zeroed == 16 * GIB);
  /* A READ that long is refused, not attempted. */
  raw_ext_request (&f->c, 0, NBD_CMD_READ, 53, 0, 8 * GIB, NULL, 0);
  assert_int_equal (error_chunk (f, 53, 0), NBD_EOVERFLOW);
}

static void
test_pipelined (void **state)
{
  struct fixture *f = *state;
  go (f, "");
  enum { N = 200 };
  for (uint64_t i = 0; i < N; i++)
    raw_ext_request (&f->c, 0, NBD_CMD_READ, 1000 + i, 512 * i, 512, NULL,
                     0);
  unsigned char buf[8 + 512];
  for (uint64_t i = 0; i < N; i++) {
    uint16_t flags, type;
    uint64_t cookie, off, len;
    raw_ext_chunk (&f->c, &flags, &type, &cookie, &off, buf, sizeof buf,
                   &len);
    /* The pool may answer out of order; each answer must fit its
     * request. */
    assert_true (cookie >= 1000 && cookie < 1000 + N);
    assert_int_equal (off, 512 * (cookie - 1000));
    assert_int_equal (type, NBD_REPLY_TYPE_OFFSET_DATA);
    assert_int_equal (len, 8 + 512);
    assert_memory_equal (buf + 8, f->tb->data + off, 512);
  }
}

#define ALL(t) \
  cmocka_unit_test_setup_teardown (t, setup_inline, teardown), \
  cmocka_unit_test_setup_teardown (t, setup_pool, teardown), \
  cmocka_unit_test_setup_teardown (t, setup_direct, teardown)

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_negotiation_rules, setup_inline,
                                     teardown),
    ALL (test_write_read_bytes),
    ALL (test_errors_have_offset_and_message),
    ALL (test_payload_len_rules),
    ALL (test_wrong_header_disconnects),
    ALL (test_block_status_ext),
    ALL (test_block_status_payload_form),
    ALL (test_64bit_effect_lengths),
    ALL (test_pipelined),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
