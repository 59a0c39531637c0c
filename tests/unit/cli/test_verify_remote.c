/* cli_verify against remote backends: reads kept in flight through
 * r3m_backend_submit, completed out of order, some late, some inline, some
 * failing.  The verdict must be the one the synchronous path gives, errors
 * must name the first failing read in order, and no read may still be in
 * flight when cli_verify returns (its buffers are gone by then: ASan would
 * see a late completion write into freed memory). */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <r3map/r3map.h>

#include "verify.h"

#define NEVER UINT64_MAX
#define MAX_PENDING 2048

/* A remote-looking backend over a buffer.  One thread completes the
 * submitted reads: it lets them pile up for a moment, then takes a random
 * one, so they complete out of order.  Every INLINE_EVERY-th read completes
 * inside submit instead.  Reads that reach fail_from fail at once (they
 * overtake the delayed ones); reads that reach refuse_from are refused by
 * submit. */
#define INLINE_EVERY 7

struct slow {
  unsigned char *data;
  uint64_t size;
  uint64_t fail_from, refuse_from;
  unsigned delay_us;
  pthread_mutex_t lock;
  pthread_cond_t wake;
  struct r3m_io *pending[MAX_PENDING];
  unsigned npending;
  unsigned seed;
  uint64_t submitted, completed, bytes_submitted;
  uint64_t max_inflight;
  bool stopping;
  pthread_t thread;
};

static int
complete (struct slow *s, struct r3m_io *io)
{
  if (io->off + io->len > s->fail_from)
    return -EIO;
  memcpy (io->buf, s->data + io->off, io->len);
  return 0;
}

/* Count the completion before calling done: cli_verify sees done, so when
 * it returns every counted completion is visible to the test. */
static void
finish (struct slow *s, struct r3m_io *io, int r)
{
  pthread_mutex_lock (&s->lock);
  s->completed++;
  pthread_mutex_unlock (&s->lock);
  io->done (io, r);
}

static void *
completer (void *arg)
{
  struct slow *s = arg;
  pthread_mutex_lock (&s->lock);
  for (;;) {
    while (s->npending == 0 && !s->stopping)
      pthread_cond_wait (&s->wake, &s->lock);
    if (s->npending == 0)
      break;
    /* A failing read goes first, before the delay. */
    unsigned pick = s->npending;
    for (unsigned i = 0; i < s->npending; i++)
      if (s->pending[i]->off + s->pending[i]->len > s->fail_from)
        pick = i;
    if (pick == s->npending) {
      unsigned us = s->delay_us + (unsigned) rand_r (&s->seed) % (s->delay_us + 1);
      pthread_mutex_unlock (&s->lock);
      usleep (us);
      pthread_mutex_lock (&s->lock);
      pick = (unsigned) rand_r (&s->seed) % s->npending;
    }
    struct r3m_io *io = s->pending[pick];
    s->pending[pick] = s->pending[--s->npending];
    pthread_mutex_unlock (&s->lock);
    finish (s, io, complete (s, io));
    pthread_mutex_lock (&s->lock);
  }
  pthread_mutex_unlock (&s->lock);
  return NULL;
}

static int
slow_submit (void *self, struct r3m_io *io)
{
  struct slow *s = self;
  /* Not a cmocka assert: this runs on cli_verify's threads. */
  if (io->op != R3M_IO_READ)
    abort ();
  if (io->off + io->len > s->refuse_from)
    return -EIO;
  pthread_mutex_lock (&s->lock);
  s->submitted++;
  s->bytes_submitted += io->len;
  if (s->submitted - s->completed > s->max_inflight)
    s->max_inflight = s->submitted - s->completed;
  bool inline_done = s->submitted % INLINE_EVERY == 3;
  if (!inline_done) {
    if (s->npending == MAX_PENDING)
      abort ();
    s->pending[s->npending++] = io;
    pthread_cond_signal (&s->wake);
  }
  pthread_mutex_unlock (&s->lock);
  if (inline_done)
    finish (s, io, complete (s, io));
  return 0;
}

static int
slow_pread (void *self, void *buf, size_t len, uint64_t off)
{
  struct slow *s = self;
  if (off + len > s->fail_from)
    return -EIO;
  memcpy (buf, s->data + off, len);
  return 0;
}

static int
slow_pwrite (void *self, const void *buf, size_t len, uint64_t off,
             unsigned flags)
{
  return -EROFS;
}

static void
slow_close (void *self)
{
  struct slow *s = self;
  pthread_mutex_lock (&s->lock);
  s->stopping = true;
  pthread_cond_signal (&s->wake);
  pthread_mutex_unlock (&s->lock);
  pthread_join (s->thread, NULL);
  pthread_cond_destroy (&s->wake);
  pthread_mutex_destroy (&s->lock);
  free (s->data);
  free (s);
}

static const struct r3m_backend_ops slow_ops = {
  .name = "slow", .pread = slow_pread, .pwrite = slow_pwrite,
  .submit = slow_submit, .close = slow_close,
};

static unsigned char
byte_at (uint64_t i)
{
  return (unsigned char) (i * 131 + (i >> 9));
}

/* A slow backend named `name` of `size` bytes of the test data; *sp lets
 * the test poke its bytes and read its counters. */
static struct r3m_backend *
slow_new (const char *name, uint64_t size, uint32_t max_io,
          unsigned delay_us, struct slow **sp)
{
  struct slow *s = calloc (1, sizeof *s);
  assert_non_null (s);
  s->data = malloc (size);
  assert_non_null (s->data);
  for (uint64_t i = 0; i < size; i++)
    s->data[i] = byte_at (i);
  s->size = size;
  s->fail_from = s->refuse_from = NEVER;
  s->delay_us = delay_us;
  s->seed = (unsigned) size ^ max_io;
  pthread_mutex_init (&s->lock, NULL);
  pthread_cond_init (&s->wake, NULL);
  assert_int_equal (pthread_create (&s->thread, NULL, completer, s), 0);
  struct r3m_backend_info info = {
    .size = size, .align = 512, .max_io = max_io,
    .flags = R3M_BACKEND_REMOTE | R3M_BACKEND_READ_ONLY,
  };
  struct r3m_backend *b = NULL;
  assert_int_equal (r3m_backend_new (&slow_ops, s, &info, name, &b, NULL), 0);
  *sp = s;
  return b;
}

/* A memory backend with the same bytes. */
static struct r3m_backend *
memory_copy (uint64_t size)
{
  char uri[64];
  snprintf (uri, sizeof uri, "memory:%llu", (unsigned long long) size);
  struct r3m_backend *b = NULL;
  assert_int_equal (r3m_backend_open (uri, 0, &b, NULL), 0);
  unsigned char *buf = malloc (size);
  assert_non_null (buf);
  for (uint64_t i = 0; i < size; i++)
    buf[i] = byte_at (i);
  assert_int_equal (r3m_backend_pwrite (b, buf, size, 0, 0), 0);
  free (buf);
  return b;
}

/* Every read that was accepted has completed. */
static void
assert_idle (struct slow *s)
{
  pthread_mutex_lock (&s->lock);
  uint64_t sub = s->submitted, done = s->completed;
  pthread_mutex_unlock (&s->lock);
  assert_int_equal (sub, done);
}

/* The same verdict and whole-range hash as two memory backends give, for
 * chunk sizes below, at and above the read size, reads of 1 MiB and of an
 * odd max_io, a short last chunk, and a range shorter than one read. */
static void
test_identical (void **state)
{
  static const uint32_t chunks[] = { 512, 65536, 4u << 20 };
  static const uint32_t max_ios[] = { 0, 3u << 16 };
  static const uint64_t lens[] = { (8u << 20) + 1000, 1000 };
  for (size_t l = 0; l < 2; l++)
    for (size_t c = 0; c < 3; c++)
      for (size_t m = 0; m < 2; m++) {
        uint64_t len = lens[l];
        struct r3m_backend *ma = memory_copy (len), *mb = memory_copy (len);
        struct cli_verify_result want;
        assert_int_equal (cli_verify (ma, mb, len, chunks[c], &want, NULL), 0);
        assert_true (want.first_diff == CLI_VERIFY_SAME);

        struct slow *s;
        struct r3m_backend *sb = slow_new ("slow", len, max_ios[m], 50, &s);
        struct cli_verify_result res;
        assert_int_equal (cli_verify (ma, sb, len, chunks[c], &res, NULL), 0);
        assert_true (res.first_diff == CLI_VERIFY_SAME);
        assert_true (res.hash_a == want.hash_a);
        assert_true (res.hash_b == want.hash_a);
        assert_idle (s);
        assert_int_equal (s->bytes_submitted, len);
        if (len > (2u << 20))
          assert_true (s->max_inflight > 1);   /* pipelined */
        r3m_backend_close (sb);
        r3m_backend_close (ma);
        r3m_backend_close (mb);
      }
}

/* A prefix that ends inside an aligned block of the backend (compare
 * --length): the last read is one the handle adapts, on its pool. */
static void
test_prefix (void **state)
{
  const uint64_t len = (5u << 20) + 777;
  struct r3m_backend *ma = memory_copy (8u << 20), *mb = memory_copy (8u << 20);
  struct cli_verify_result want, res;
  assert_int_equal (cli_verify (ma, mb, len, 4096, &want, NULL), 0);
  struct slow *s;
  struct r3m_backend *sb = slow_new ("slow", 8u << 20, 0, 50, &s);
  assert_int_equal (cli_verify (sb, ma, len, 4096, &res, NULL), 0);
  assert_true (res.first_diff == CLI_VERIFY_SAME);
  assert_true (res.hash_a == want.hash_a);
  assert_idle (s);
  assert_true (s->bytes_submitted < len);   /* the tail went elsewhere */
  r3m_backend_close (sb);
  r3m_backend_close (ma);
  r3m_backend_close (mb);
}

/* Both sides remote: the first differing chunk is reported, wherever it
 * is (the last byte, in the short last chunk, across windows), and not a
 * later difference on the other side. */
static void
test_first_difference (void **state)
{
  static const uint32_t chunks[] = { 512, 65536 };
  const uint64_t len = (6u << 20) + 1000;
  const uint64_t offs[] = { 0, (2u << 20) + 4097, len - 1000, len - 1 };
  for (size_t c = 0; c < 2; c++)
    for (size_t o = 0; o < sizeof offs / sizeof offs[0]; o++) {
      struct slow *a, *b;
      struct r3m_backend *ba = slow_new ("a", len, 0, 20, &a);
      struct r3m_backend *bb = slow_new ("b", len, 3u << 16, 20, &b);
      b->data[offs[o]] ^= 0x40;
      if (offs[o] + 3 * chunks[c] < len)
        a->data[offs[o] + 3 * chunks[c]] ^= 0x40;
      struct cli_verify_result res;
      assert_int_equal (cli_verify (ba, bb, len, chunks[c], &res, NULL), 0);
      assert_int_equal (res.first_diff, offs[o] / chunks[c] * chunks[c]);
      assert_idle (a);
      assert_idle (b);
      r3m_backend_close (ba);
      r3m_backend_close (bb);
    }
}

/* A difference stops the work early: with 512-byte chunks a window is
 * 2 MiB, so a difference in the first window is found after at most that
 * window plus one ring (32 MiB) of reads, well short of the range. */
static void
test_stops_early (void **state)
{
  const uint64_t len = 48u << 20;
  struct slow *a, *b;
  struct r3m_backend *ba = slow_new ("a", len, 0, 20, &a);
  struct r3m_backend *bb = slow_new ("b", len, 0, 20, &b);
  b->data[100000] ^= 1;
  struct cli_verify_result res;
  assert_int_equal (cli_verify (ba, bb, len, 512, &res, NULL), 0);
  assert_int_equal (res.first_diff, 100000 / 512 * 512);
  assert_idle (a);
  assert_idle (b);
  assert_true (a->bytes_submitted <= (34u << 20));
  assert_true (b->bytes_submitted <= (34u << 20));
  r3m_backend_close (ba);
  r3m_backend_close (bb);
}

/* A read failing in the middle, with reads before it still delayed and
 * reads after it in flight: the error names the first failing read in
 * order, and cli_verify returns only once every read has completed.  The
 * same when submit refuses the read, and with either side failing. */
static void
test_read_error (void **state)
{
  const uint64_t len = 8u << 20, from = 5u << 20;
  for (int refuse = 0; refuse < 2; refuse++)
    for (int m = 0; m < 2; m++)
      for (int swap = 0; swap < 2; swap++) {
        uint32_t max_io = m ? 3u << 16 : 0;
        uint64_t io = m ? 3u << 16 : 1u << 20;
        struct slow *s, *g;
        struct r3m_backend *bad = slow_new ("bad", len, max_io, 200, &s);
        struct r3m_backend *good = slow_new ("good", len, 0, 20, &g);
        if (refuse)
          s->refuse_from = from;
        else
          s->fail_from = from;
        struct cli_verify_result res;
        struct r3m_error err;
        assert_int_equal (cli_verify (swap ? bad : good, swap ? good : bad,
                                      len, 65536, &res, &err), -EIO);
        /* The first read that reaches past `from`. */
        char want[128];
        snprintf (want, sizeof want, "reading bad at offset %llu: "
                  "Input/output error", (unsigned long long) (from / io * io));
        assert_string_equal (err.msg, want);
        assert_idle (s);
        assert_idle (g);
        r3m_backend_close (bad);
        r3m_backend_close (good);
      }
}

/* A remote side against a local one that fails: the remote side's reads
 * are all waited for. */
static void
test_local_error (void **state)
{
  const uint64_t len = 8u << 20;
  struct slow *s, *f;
  struct r3m_backend *remote = slow_new ("remote", len, 0, 100, &s);
  struct r3m_backend *other = slow_new ("other", len, 0, 0, &f);
  /* A backend without the REMOTE flag would do, but the slow one fails
   * the same way through pread, its synchronous slot: reuse it. */
  f->fail_from = 1u << 20;
  struct r3m_backend_info info = { .size = len, .align = 1 };
  static const struct r3m_backend_ops local_ops = {
    .name = "local", .pread = slow_pread, .pwrite = slow_pwrite,
  };
  struct r3m_backend *local = NULL;
  assert_int_equal (r3m_backend_new (&local_ops, f, &info, "local:8M",
                                     &local, NULL), 0);
  struct cli_verify_result res;
  struct r3m_error err;
  assert_int_equal (cli_verify (remote, local, len, 65536, &res, &err), -EIO);
  /* Local reads are 128 KiB: the one at 1 MiB is the first to reach
   * past it. */
  assert_string_equal (err.msg, "reading local:8M at offset 1048576: "
                       "Input/output error");
  assert_idle (s);
  r3m_backend_close (local);   /* no close slot: f stays ours */
  r3m_backend_close (other);
  r3m_backend_close (remote);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_identical),
    cmocka_unit_test (test_prefix),
    cmocka_unit_test (test_first_difference),
    cmocka_unit_test (test_stops_early),
    cmocka_unit_test (test_read_error),
    cmocka_unit_test (test_local_error),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
