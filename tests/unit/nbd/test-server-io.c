/* NBD server transmission: every command, every refusal, replies simple
 * and structured, on all three execution paths: inline on the connection
 * thread, inline with zero-copy access to the store, and the worker pool.
 * Tests that count backend calls or make the backend fail skip the
 * zero-copy path, which does not call the backend for READ and WRITE. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmocka.h>

#include "nbd/proto.h"
#include "rawnbd.h"
#include "testbackend.h"

#define SIZE (1u << 20)

struct fixture {
  struct r3m_nbd_server *srv;
  struct tb *tb, *tbro, *tba;
  struct r3m_backend *b, *ro, *aligned;
  struct raw c;
};

static const struct r3m_extent layout[] = {
  { 65536, 0 },
  { 131072, R3M_EXTENT_HOLE | R3M_EXTENT_ZERO },
  { SIZE - 65536 - 131072, R3M_EXTENT_ZERO },
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
  assert_int_equal (tb_new (&to, &f->tbro, &f->ro), 0);
  to.fast_zero = true;
  assert_int_equal (tb_new (&to, &f->tba, &f->aligned), 0);
  for (unsigned i = 0; i < SIZE; i++)
    f->tb->data[i] = (unsigned char) (i * 13);
  struct r3m_nbd_server_options so;
  r3m_nbd_server_options_init (&so);
  so.workers = 4;
  assert_int_equal (r3m_nbd_server_new (&so, &f->srv, NULL), 0);
  assert_int_equal (r3m_nbd_server_add_export (f->srv, "", f->b, NULL, NULL),
                    0);
  struct r3m_nbd_export_options eo = { .read_only = true };
  assert_int_equal (r3m_nbd_server_add_export (f->srv, "ro", f->ro, &eo,
                                               NULL), 0);
  struct r3m_nbd_export_options ea = { .min_block = 512,
                                       .max_payload = 65536 };
  assert_int_equal (r3m_nbd_server_add_export (f->srv, "aligned", f->aligned,
                                               &ea, NULL), 0);
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
  r3m_backend_close (f->ro);
  r3m_backend_close (f->aligned);
  free (f);
  return 0;
}

static void
go (struct fixture *f, const char *name, bool structured)
{
  raw_connect (f->srv, &f->c);
  const char *meta[] = { "base:allocation" };
  raw_go (&f->c, name, structured, meta, structured ? 1 : 0, NULL, NULL);
}

static uint32_t
simple (struct fixture *f, uint64_t cookie)
{
  uint32_t err;
  uint64_t got;
  raw_simple (&f->c, &err, &got);
  assert_int_equal (got, cookie);
  return err;
}

/* Expect a structured ERROR chunk for cookie; returns the error. */
static uint32_t
error_chunk (struct fixture *f, uint64_t cookie)
{
  uint16_t flags, type;
  uint64_t got;
  unsigned char p[256];
  uint32_t len;
  raw_chunk (&f->c, &flags, &type, &got, p, sizeof p, &len);
  assert_int_equal (got, cookie);
  assert_int_equal (type, NBD_REPLY_TYPE_ERROR);
  assert_true (flags & NBD_REPLY_FLAG_DONE);
  uint16_t mlen = nbd_get16 (p + 4);
  assert_true (mlen > 0 && 6u + mlen == len);   /* a message for people */
  return nbd_get32 (p);
}

static void
test_write_read_simple (void **state)
{
  struct fixture *f = *state;
  go (f, "", false);
  unsigned char w[10000], r[10000];
  for (size_t i = 0; i < sizeof w; i++)
    w[i] = (unsigned char) (i ^ 0x5a);
  raw_request (&f->c, 0, NBD_CMD_WRITE, 1, 777, sizeof w, w);
  assert_int_equal (simple (f, 1), 0);
  raw_request (&f->c, 0, NBD_CMD_READ, 2, 777, sizeof r, NULL);
  assert_int_equal (simple (f, 2), 0);
  raw_recv (&f->c, r, sizeof r);
  assert_memory_equal (r, w, sizeof w);
  assert_memory_equal (f->tb->data + 777, w, sizeof w);
}

static void
test_read_structured (void **state)
{
  struct fixture *f = *state;
  go (f, "", true);
  raw_request (&f->c, NBD_CMD_FLAG_DF, NBD_CMD_READ, 3, 100, 4096, NULL);
  uint16_t flags, type;
  uint64_t cookie;
  unsigned char p[8 + 4096];
  uint32_t len;
  raw_chunk (&f->c, &flags, &type, &cookie, p, sizeof p, &len);
  assert_int_equal (type, NBD_REPLY_TYPE_OFFSET_DATA);
  assert_true (flags & NBD_REPLY_FLAG_DONE);
  assert_int_equal (len, 8 + 4096);
  assert_int_equal (nbd_get64 (p), 100);
  assert_memory_equal (p + 8, f->tb->data + 100, 4096);
  /* A zero-length read is a lone NONE chunk. */
  raw_request (&f->c, 0, NBD_CMD_READ, 4, 0, 0, NULL);
  raw_chunk (&f->c, &flags, &type, &cookie, p, sizeof p, &len);
  assert_int_equal (type, NBD_REPLY_TYPE_NONE);
  assert_true (flags & NBD_REPLY_FLAG_DONE);
  assert_int_equal (len, 0);
}

static void
test_read_beyond_end (void **state)
{
  struct fixture *f = *state;
  go (f, "", false);
  raw_request (&f->c, 0, NBD_CMD_READ, 5, SIZE - 10, 11, NULL);
  assert_int_equal (simple (f, 5), NBD_EINVAL);
  /* No payload followed: the next reply parses. */
  raw_request (&f->c, 0, NBD_CMD_READ, 6, UINT64_MAX - 5, 100, NULL);
  assert_int_equal (simple (f, 6), NBD_EINVAL);
  raw_request (&f->c, 0, NBD_CMD_FLUSH, 7, 0, 0, NULL);
  assert_int_equal (simple (f, 7), 0);
}

static void
test_read_error_structured_has_message (void **state)
{
  struct fixture *f = *state;
  go (f, "", true);
  raw_request (&f->c, 0, NBD_CMD_READ, 8, SIZE, 1, NULL);
  assert_int_equal (error_chunk (f, 8), NBD_EINVAL);
  /* A backend failure too. */
  tb_set (f->tb, &f->tb->fail_reads, -EIO);
  raw_request (&f->c, 0, NBD_CMD_READ, 9, 0, 512, NULL);
  assert_int_equal (error_chunk (f, 9), NBD_EIO);
  tb_set (f->tb, &f->tb->fail_reads, 0);
}

static void
test_write_errors_consume_payload (void **state)
{
  struct fixture *f = *state;
  go (f, "", false);
  unsigned char w[4096];
  memset (w, 0xee, sizeof w);
  raw_request (&f->c, 0, NBD_CMD_WRITE, 10, SIZE - 100, sizeof w, w);
  assert_int_equal (simple (f, 10), NBD_ENOSPC);
  /* The payload was skipped: a good write after it lands intact. */
  raw_request (&f->c, 0, NBD_CMD_WRITE, 11, 0, sizeof w, w);
  assert_int_equal (simple (f, 11), 0);
  assert_memory_equal (f->tb->data, w, sizeof w);
  assert_int_not_equal (f->tb->data[SIZE - 100], 0xee);
}

static void
test_read_only_refuses_writes (void **state)
{
  struct fixture *f = *state;
  go (f, "ro", false);
  unsigned char w[512] = { 1 };
  raw_request (&f->c, 0, NBD_CMD_WRITE, 12, 0, sizeof w, w);
  assert_int_equal (simple (f, 12), NBD_EPERM);
  raw_request (&f->c, 0, NBD_CMD_TRIM, 13, 0, 512, NULL);
  assert_int_equal (simple (f, 13), NBD_EPERM);
  raw_request (&f->c, 0, NBD_CMD_WRITE_ZEROES, 14, 0, 512, NULL);
  assert_int_equal (simple (f, 14), NBD_EPERM);
  raw_request (&f->c, 0, NBD_CMD_READ, 15, 0, 512, NULL);
  assert_int_equal (simple (f, 15), 0);
  unsigned char r[512];
  raw_recv (&f->c, r, sizeof r);
  assert_int_equal (f->tbro->writes, 0);
}

static void
test_unknown_command_and_flags (void **state)
{
  struct fixture *f = *state;
  go (f, "", false);
  raw_request (&f->c, 0, 99, 16, 0, 0, NULL);
  assert_int_equal (simple (f, 16), NBD_EINVAL);
  raw_request (&f->c, 0, NBD_CMD_RESIZE, 17, 0, 0, NULL);
  assert_int_equal (simple (f, 17), NBD_EINVAL);
  /* DF without structured replies, REQ_ONE on a read, unknown bits. */
  raw_request (&f->c, NBD_CMD_FLAG_DF, NBD_CMD_READ, 18, 0, 512, NULL);
  assert_int_equal (simple (f, 18), NBD_EINVAL);
  raw_request (&f->c, NBD_CMD_FLAG_REQ_ONE, NBD_CMD_READ, 19, 0, 512, NULL);
  assert_int_equal (simple (f, 19), NBD_EINVAL);
  raw_request (&f->c, 1u << 12, NBD_CMD_FLUSH, 20, 0, 0, NULL);
  assert_int_equal (simple (f, 20), NBD_EINVAL);
  /* Block status without structured replies and contexts. */
  raw_request (&f->c, 0, NBD_CMD_BLOCK_STATUS, 21, 0, 512, NULL);
  assert_int_equal (simple (f, 21), NBD_EINVAL);
}

static void
test_alignment_and_limits (void **state)
{
  struct fixture *f = *state;
  go (f, "aligned", true);
  unsigned char w[1024] = { 0 };
  raw_request (&f->c, 0, NBD_CMD_WRITE, 22, 100, 512, w);
  assert_int_equal (error_chunk (f, 22), NBD_EINVAL);
  raw_request (&f->c, 0, NBD_CMD_WRITE, 23, 512, 1000, w);
  assert_int_equal (error_chunk (f, 23), NBD_EINVAL);
  raw_request (&f->c, 0, NBD_CMD_WRITE, 24, 512, 1024, w);
  assert_int_equal (simple (f, 24), 0);
  /* Over the 64 KiB maximum payload. */
  raw_request (&f->c, 0, NBD_CMD_READ, 25, 0, 131072, NULL);
  assert_int_equal (error_chunk (f, 25), NBD_EOVERFLOW);
  unsigned char *big = calloc (1, 131072);
  raw_request (&f->c, 0, NBD_CMD_WRITE, 26, 0, 131072, big);
  free (big);
  assert_int_equal (error_chunk (f, 26), NBD_EINVAL);
  /* Payload-free commands may exceed it. */
  raw_request (&f->c, 0, NBD_CMD_WRITE_ZEROES, 27, 0, 262144, NULL);
  assert_int_equal (simple (f, 27), 0);
}

static void
test_bad_magic_disconnects (void **state)
{
  struct fixture *f = *state;
  go (f, "", false);
  unsigned char junk[28] = "definitely not a request...";
  raw_send (&f->c, junk, sizeof junk);
  assert_true (raw_closed (&f->c));
}

static void
test_flush_and_fua_reach_backend (void **state)
{
  struct fixture *f = *state;
  go (f, "", false);
  unsigned char w[512] = { 7 };
  raw_request (&f->c, NBD_CMD_FLAG_FUA, NBD_CMD_WRITE, 28, 0, sizeof w, w);
  assert_int_equal (simple (f, 28), 0);
  assert_int_equal (tb_count (f->tb, &f->tb->fua_writes), 1);
  unsigned before = tb_count (f->tb, &f->tb->flushes);
  raw_request (&f->c, 0, NBD_CMD_FLUSH, 29, 0, 0, NULL);
  assert_int_equal (simple (f, 29), 0);
  assert_int_equal (tb_count (f->tb, &f->tb->flushes), before + 1);
  /* A failing flush is an error reply, not a dropped connection. */
  tb_set (f->tb, &f->tb->fail_flush, -EIO);
  raw_request (&f->c, 0, NBD_CMD_FLUSH, 30, 0, 0, NULL);
  assert_int_equal (simple (f, 30), NBD_EIO);
  tb_set (f->tb, &f->tb->fail_flush, 0);
}

static void
test_zero_trim_cache (void **state)
{
  struct fixture *f = *state;
  go (f, "", false);
  raw_request (&f->c, NBD_CMD_FLAG_NO_HOLE, NBD_CMD_WRITE_ZEROES, 31, 4096,
               8192, NULL);
  assert_int_equal (simple (f, 31), 0);
  for (int i = 4096; i < 4096 + 8192; i++)
    assert_int_equal (f->tb->data[i], 0);
  /* This backend is not fast at zeroing: FAST_ZERO fails quickly and
   * leaves the data alone. */
  unsigned char keep = f->tb->data[20000];
  raw_request (&f->c, NBD_CMD_FLAG_FAST_ZERO, NBD_CMD_WRITE_ZEROES, 32,
               16384, 8192, NULL);
  assert_int_equal (simple (f, 32), NBD_ENOTSUP);
  assert_int_equal (f->tb->data[20000], keep);
  raw_request (&f->c, 0, NBD_CMD_TRIM, 33, 0, 65536, NULL);
  assert_int_equal (simple (f, 33), 0);
  assert_int_equal (tb_count (f->tb, &f->tb->trims), 1);
  raw_request (&f->c, 0, NBD_CMD_CACHE, 34, 0, 65536, NULL);
  assert_int_equal (simple (f, 34), 0);
  raw_request (&f->c, 0, NBD_CMD_CACHE, 35, SIZE, 1, NULL);
  assert_int_equal (simple (f, 35), NBD_EINVAL);
}

static void
test_fast_zero_on_fast_backend (void **state)
{
  struct fixture *f = *state;
  go (f, "aligned", false);
  f->tba->data[1000] = 9;
  raw_request (&f->c, NBD_CMD_FLAG_FAST_ZERO, NBD_CMD_WRITE_ZEROES, 36, 0,
               4096, NULL);
  assert_int_equal (simple (f, 36), 0);
  assert_int_equal (f->tba->data[1000], 0);
}

/* Read a BLOCK_STATUS chunk; return the number of extents in ext. */
static uint32_t
block_status (struct fixture *f, uint16_t flags, uint64_t off, uint32_t len,
              uint32_t ext[][2])
{
  raw_request (&f->c, flags, NBD_CMD_BLOCK_STATUS, 40, off, len, NULL);
  uint16_t cflags, type;
  uint64_t cookie;
  unsigned char p[4 + 8 * 64];
  uint32_t plen;
  raw_chunk (&f->c, &cflags, &type, &cookie, p, sizeof p, &plen);
  assert_int_equal (type, NBD_REPLY_TYPE_BLOCK_STATUS);
  assert_true (cflags & NBD_REPLY_FLAG_DONE);
  assert_int_equal ((plen - 4) % 8, 0);
  uint32_t n = (plen - 4) / 8;
  for (uint32_t i = 0; i < n; i++) {
    ext[i][0] = nbd_get32 (p + 4 + 8 * i);
    ext[i][1] = nbd_get32 (p + 8 + 8 * i);
  }
  return n;
}

static void
test_block_status_allocation (void **state)
{
  struct fixture *f = *state;
  go (f, "", true);
  uint32_t ext[64][2];
  /* From inside the first extent to inside the third; trimmed to the
   * request at the end. */
  uint32_t n = block_status (f, 0, 4096, 65536 + 131072, ext);
  assert_int_equal (n, 3);
  assert_int_equal (ext[0][0], 65536 - 4096);
  assert_int_equal (ext[0][1], 0);
  assert_int_equal (ext[1][0], 131072);
  assert_int_equal (ext[1][1], NBD_STATE_HOLE | NBD_STATE_ZERO);
  assert_int_equal (ext[2][0], 4096);
  assert_int_equal (ext[2][1], NBD_STATE_ZERO);
  /* REQ_ONE: a single extent, no longer than asked. */
  n = block_status (f, NBD_CMD_FLAG_REQ_ONE, 0, 1000, ext);
  assert_int_equal (n, 1);
  assert_int_equal (ext[0][0], 1000);
  /* Beyond the end and zero length are errors. */
  raw_request (&f->c, 0, NBD_CMD_BLOCK_STATUS, 41, SIZE, 512, NULL);
  assert_int_equal (error_chunk (f, 41), NBD_EINVAL);
  raw_request (&f->c, 0, NBD_CMD_BLOCK_STATUS, 42, 0, 0, NULL);
  assert_int_equal (error_chunk (f, 42), NBD_EINVAL);
}

static void
test_block_status_without_extents_is_data (void **state)
{
  struct fixture *f = *state;
  go (f, "aligned", true);
  uint32_t ext[64][2];
  uint32_t n = block_status (f, 0, 0, SIZE, ext);
  assert_int_equal (n, 1);
  assert_int_equal (ext[0][0], SIZE);
  assert_int_equal (ext[0][1], 0);
}

static void
test_pipelined_requests_all_answered (void **state)
{
  struct fixture *f = *state;
  go (f, "", false);
  /* 200 requests before reading any reply: more than one batch, more
   * than the pool admits at once. */
  enum { N = 200 };
  for (uint64_t i = 0; i < N; i++)
    raw_request (&f->c, 0, NBD_CMD_READ, 1000 + i, i * 4096, 4096, NULL);
  bool seen[N] = { false };
  for (int i = 0; i < N; i++) {
    uint32_t err;
    uint64_t cookie;
    raw_simple (&f->c, &err, &cookie);
    assert_int_equal (err, 0);
    assert_true (cookie >= 1000 && cookie < 1000 + N);
    assert_false (seen[cookie - 1000]);
    seen[cookie - 1000] = true;
    unsigned char r[4096];
    raw_recv (&f->c, r, sizeof r);
    assert_memory_equal (r, f->tb->data + (cookie - 1000) * 4096, 4096);
  }
}

static void
test_disconnect_flushes (void **state)
{
  struct fixture *f = *state;
  go (f, "", false);
  unsigned char w[512] = { 3 };
  raw_request (&f->c, 0, NBD_CMD_WRITE, 50, 0, sizeof w, w);
  assert_int_equal (simple (f, 50), 0);
  unsigned before = tb_count (f->tb, &f->tb->flushes);
  raw_request (&f->c, 0, NBD_CMD_DISC, 51, 0, 0, NULL);
  assert_true (raw_closed (&f->c));   /* no reply, just the close */
  assert_int_equal (tb_count (f->tb, &f->tb->flushes), before + 1);
}

/* Inline paths execute in order: a READ reply batched with a later
 * WRITE to the same bytes shows the data as it was when the READ
 * executed, also when the reply points into the store (zero copy). */
static void
test_batched_read_then_write (void **state)
{
  struct fixture *f = *state;
  go (f, "", false);
  unsigned char before[4096], w[4096], r[4096];
  memcpy (before, f->tb->data + 8192, sizeof before);
  memset (w, 0xc3, sizeof w);
  /* Both requests in one send, so the server reads them in one batch. */
  unsigned char buf[28 * 2 + 4096];
  raw_put_request (buf, 0, NBD_CMD_READ, 70, 8192, 4096);
  raw_put_request (buf + 28, 0, NBD_CMD_WRITE, 71, 8192, 4096);
  memcpy (buf + 56, w, sizeof w);
  raw_send (&f->c, buf, sizeof buf);
  assert_int_equal (simple (f, 70), 0);
  raw_recv (&f->c, r, sizeof r);
  assert_memory_equal (r, before, sizeof r);
  assert_int_equal (simple (f, 71), 0);
  assert_memory_equal (f->tb->data + 8192, w, sizeof w);
}

/* Large READ replies from the store go by reference (splice) on the
 * direct path: same bytes, in order with batched replies around them, and
 * a later WRITE shows in a later READ. */
static void
test_large_reads (void **state)
{
  struct fixture *f = *state;
  go (f, "", false);
  enum { BIG = 512 * 1024, AT = 777 };
  unsigned char *r = malloc (BIG);
  /* small, big, small in one send: one batch around a big reply */
  unsigned char req[3 * 28];
  const uint32_t len[3] = { 100, BIG, 100 };
  for (int i = 0; i < 3; i++)
    raw_put_request (req + 28 * i, 0, NBD_CMD_READ, 80 + (uint64_t) i,
                     AT * (uint64_t) (i + 1), len[i]);
  raw_send (&f->c, req, sizeof req);
  for (int i = 0; i < 3; i++) {
    uint32_t err;
    uint64_t cookie;
    raw_simple (&f->c, &err, &cookie);
    assert_int_equal (err, 0);
    assert_true (cookie >= 80 && cookie < 83);
    uint64_t k = cookie - 80;
    raw_recv (&f->c, r, len[k]);
    assert_memory_equal (r, f->tb->data + AT * (k + 1), len[k]);
  }
  unsigned char *w = malloc (BIG);
  memset (w, 0x3c, BIG);
  raw_request (&f->c, 0, NBD_CMD_WRITE, 84, AT, BIG, w);
  assert_int_equal (simple (f, 84), 0);
  raw_request (&f->c, 0, NBD_CMD_READ, 85, AT, BIG, NULL);
  assert_int_equal (simple (f, 85), 0);
  raw_recv (&f->c, r, BIG);
  assert_memory_equal (r, w, BIG);
  free (w);
  free (r);
}

static void
test_large_reads_structured (void **state)
{
  struct fixture *f = *state;
  go (f, "", true);
  enum { BIG = SIZE - 4096 };
  raw_request (&f->c, 0, NBD_CMD_READ, 86, 4096, BIG, NULL);
  uint16_t flags, type;
  uint64_t cookie;
  unsigned char *p = malloc (8 + BIG);
  uint32_t len;
  raw_chunk (&f->c, &flags, &type, &cookie, p, 8 + BIG, &len);
  assert_int_equal (cookie, 86);
  assert_int_equal (type, NBD_REPLY_TYPE_OFFSET_DATA);
  assert_true (flags & NBD_REPLY_FLAG_DONE);
  assert_int_equal (len, 8 + BIG);
  assert_int_equal (nbd_get64 (p), 4096);
  assert_memory_equal (p + 8, f->tb->data + 4096, BIG);
  free (p);
}

/* A client that leaves while large replies are on their way: the server
 * must not raise SIGPIPE (which would end this test program, whose
 * SIGPIPE is at its default) and must serve the next client. */
static void
test_client_gone_during_large_reads (void **state)
{
  struct fixture *f = *state;
  go (f, "", false);
  for (uint64_t i = 0; i < 16; i++)
    raw_request (&f->c, 0, NBD_CMD_READ, 90 + i, 0, SIZE, NULL);
  unsigned char some[4096];
  raw_recv (&f->c, some, sizeof some);   /* the server is sending */
  raw_close (&f->c);
  go (f, "", false);
  raw_request (&f->c, 0, NBD_CMD_READ, 110, 0, SIZE, NULL);
  assert_int_equal (simple (f, 110), 0);
  unsigned char *r = malloc (SIZE);
  raw_recv (&f->c, r, SIZE);
  assert_memory_equal (r, f->tb->data, SIZE);
  free (r);
}

/* Out of descriptors, the server cannot open the pipe that replies by
 * reference go through: it copies instead, and the client sees nothing. */
static void
test_large_reads_without_pipes (void **state)
{
  struct fixture *f = *state;
  go (f, "", false);
  struct rlimit old, none;
  assert_int_equal (getrlimit (RLIMIT_NOFILE, &old), 0);
  int lowest = dup (0);            /* the next descriptor anyone would get */
  assert_true (lowest >= 0);
  close (lowest);
  none = (struct rlimit) { .rlim_cur = (rlim_t) lowest,
                           .rlim_max = old.rlim_max };
  assert_int_equal (setrlimit (RLIMIT_NOFILE, &none), 0);
  unsigned char *r = malloc (SIZE);
  for (uint64_t i = 0; i < 2; i++) {
    raw_request (&f->c, 0, NBD_CMD_READ, 120 + i, 0, SIZE, NULL);
    assert_int_equal (simple (f, 120 + i), 0);
    raw_recv (&f->c, r, SIZE);
    assert_memory_equal (r, f->tb->data, SIZE);
  }
  assert_int_equal (setrlimit (RLIMIT_NOFILE, &old), 0);
  free (r);
}

static void
test_stats (void **state)
{
  struct fixture *f = *state;
  go (f, "", false);
  unsigned char w[1000] = { 0 };
  raw_request (&f->c, 0, NBD_CMD_WRITE, 60, 0, sizeof w, w);
  assert_int_equal (simple (f, 60), 0);
  raw_request (&f->c, 0, NBD_CMD_READ, 61, SIZE, 1, NULL);
  assert_int_equal (simple (f, 61), NBD_EINVAL);
  struct r3m_nbd_server_stats st;
  r3m_nbd_server_stats (f->srv, &st);
  assert_int_equal (st.active, 1);
  assert_int_equal (st.requests, 2);
  assert_int_equal (st.bytes_written, 1000);
  assert_int_equal (st.errors, 1);
}

#define BOTH(t) \
  cmocka_unit_test_setup_teardown (t, setup_inline, teardown), \
  cmocka_unit_test_setup_teardown (t, setup_pool, teardown)
#define ALL(t) \
  BOTH (t), cmocka_unit_test_setup_teardown (t, setup_direct, teardown)

int
main (void)
{
  const struct CMUnitTest tests[] = {
    ALL (test_write_read_simple),
    ALL (test_read_structured),
    ALL (test_read_beyond_end),
    BOTH (test_read_error_structured_has_message),
    ALL (test_write_errors_consume_payload),
    ALL (test_read_only_refuses_writes),
    ALL (test_unknown_command_and_flags),
    ALL (test_alignment_and_limits),
    ALL (test_bad_magic_disconnects),
    BOTH (test_flush_and_fua_reach_backend),
    ALL (test_zero_trim_cache),
    ALL (test_fast_zero_on_fast_backend),
    ALL (test_block_status_allocation),
    ALL (test_block_status_without_extents_is_data),
    ALL (test_pipelined_requests_all_answered),
    ALL (test_disconnect_flushes),
    ALL (test_stats),
    ALL (test_large_reads),
    ALL (test_large_reads_structured),
    ALL (test_client_gone_during_large_reads),
    ALL (test_large_reads_without_pipes),
    /* The pool may legitimately run the write first. */
    cmocka_unit_test_setup_teardown (test_batched_read_then_write,
                                     setup_inline, teardown),
    cmocka_unit_test_setup_teardown (test_batched_read_then_write,
                                     setup_direct, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
