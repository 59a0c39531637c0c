/* The generic submit adapter: every request completes exactly once,
 * urgent requests go first, closing drains the queue, and a backend with
 * no threads completes inline. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common.h"
#include "testbe.h"

/* Completion bookkeeping shared by the requests of one test. */
struct tally {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  unsigned done;                 /* completions seen */
  unsigned errors;               /* completions with result < 0 */
  unsigned order[64];            /* io->user tags in completion order */
};

#define TALLY_INIT { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, \
                     0, 0, { 0 } }

struct req {
  struct r3m_io io;
  struct tally *t;
  unsigned tag;
  atomic_uint completions;
};

static void
req_done (struct r3m_io *io, int result)
{
  struct req *q = io->user;
  atomic_fetch_add (&q->completions, 1);
  pthread_mutex_lock (&q->t->lock);
  if (q->t->done < 64)
    q->t->order[q->t->done] = q->tag;
  q->t->done++;
  if (result < 0)
    q->t->errors++;
  pthread_cond_broadcast (&q->t->cond);
  pthread_mutex_unlock (&q->t->lock);
}

static void
wait_for (struct tally *t, unsigned n)
{
  pthread_mutex_lock (&t->lock);
  while (t->done < n)
    pthread_cond_wait (&t->cond, &t->lock);
  pthread_mutex_unlock (&t->lock);
}

static void
prep (struct req *q, struct tally *t, unsigned tag, enum r3m_io_op op,
      void *buf, size_t len, uint64_t off, unsigned flags)
{
  memset (q, 0, sizeof *q);
  q->io = (struct r3m_io) { .op = op, .flags = flags, .buf = buf,
                            .len = len, .off = off, .done = req_done,
                            .user = q };
  q->t = t;
  q->tag = tag;
}

/* ---- exactly once ----------------------------------------------------- */

enum { SUBMITTERS = 4, PER_SUBMITTER = 500, SLICE = 256 };

struct submitter {
  pthread_t tid;
  struct r3m_backend *b;
  struct tally *t;
  unsigned id;
  struct req *reqs;
  unsigned char *bufs;
  int failed;
};

static void *
submit_many (void *arg)
{
  struct submitter *s = arg;
  static const enum r3m_io_op ops[] = {
    R3M_IO_WRITE, R3M_IO_READ, R3M_IO_ZERO, R3M_IO_FLUSH, R3M_IO_TRIM,
  };
  for (unsigned i = 0; i < PER_SUBMITTER; i++) {
    unsigned k = s->id * PER_SUBMITTER + i;
    uint64_t off = (uint64_t) k * SLICE;
    unsigned char *buf = s->bufs + (size_t) i * SLICE;
    fill (buf, SLICE, off, 40);
    prep (&s->reqs[i], s->t, k, ops[i % 5], buf, SLICE, off,
          i % 7 == 0 ? R3M_IO_URGENT : 0);
    if (r3m_backend_submit (s->b, &s->reqs[i].io) != 0)
      s->failed = 1;
  }
  return NULL;
}

static void
test_each_completes_once (void **state)
{
  struct testbe *tb;
  struct testbe_opts o = { .size = (uint64_t) SUBMITTERS * PER_SUBMITTER
                                   * SLICE, .async_threads = 4 };
  struct r3m_backend *b = testbe_new (&o, &tb);
  struct tally t = TALLY_INIT;
  struct submitter s[SUBMITTERS];
  for (unsigned i = 0; i < SUBMITTERS; i++) {
    s[i] = (struct submitter) { .b = b, .t = &t, .id = i };
    s[i].reqs = calloc (PER_SUBMITTER, sizeof *s[i].reqs);
    s[i].bufs = malloc ((size_t) PER_SUBMITTER * SLICE);
    assert_true (s[i].reqs && s[i].bufs);
    assert_int_equal (pthread_create (&s[i].tid, NULL, submit_many, &s[i]),
                      0);
  }
  for (unsigned i = 0; i < SUBMITTERS; i++)
    pthread_join (s[i].tid, NULL);
  wait_for (&t, SUBMITTERS * PER_SUBMITTER);
  r3m_backend_close (b);
  assert_int_equal (t.done, SUBMITTERS * PER_SUBMITTER);
  assert_int_equal (t.errors, 0);
  for (unsigned i = 0; i < SUBMITTERS; i++) {
    assert_int_equal (s[i].failed, 0);
    for (unsigned k = 0; k < PER_SUBMITTER; k++)
      assert_int_equal (atomic_load (&s[i].reqs[k].completions), 1);
    free (s[i].reqs);
    free (s[i].bufs);
  }
}

/* ---- priority --------------------------------------------------------- */

/* One pool thread held at the gate by a first read; then three background
 * and two urgent requests queue.  Urgent ones complete first, each class in
 * submission order. */
static void
test_urgent_first (void **state)
{
  struct testbe *tb;
  struct testbe_opts o = { .size = 4096, .async_threads = 1 };
  struct r3m_backend *b = testbe_new (&o, &tb);
  struct tally t = TALLY_INIT;
  struct req q[6];
  char buf[6][16];
  testbe_close_gate (tb);
  prep (&q[0], &t, 0, R3M_IO_READ, buf[0], 16, 0, 0);
  assert_int_equal (r3m_backend_submit (b, &q[0].io), 0);
  testbe_wait_entered (tb, 1);
  static const unsigned tags[] = { 1, 2, 10, 3, 11 };
  for (unsigned i = 0; i < 5; i++) {
    unsigned urgent = tags[i] >= 10 ? R3M_IO_URGENT : 0;
    prep (&q[i + 1], &t, tags[i], R3M_IO_READ, buf[i + 1], 16, 16 * i,
          urgent);
    assert_int_equal (r3m_backend_submit (b, &q[i + 1].io), 0);
  }
  testbe_open_gate (tb);
  wait_for (&t, 6);
  static const unsigned want[] = { 0, 10, 11, 1, 2, 3 };
  for (unsigned i = 0; i < 6; i++)
    if (t.order[i] != want[i])
      fail_msg ("completion %u was tag %u, want %u", i, t.order[i], want[i]);
  r3m_backend_close (b);
}

/* ---- close ------------------------------------------------------------ */

static void
test_close_drains (void **state)
{
  enum { N = 40 };
  struct testbe *tb;
  struct testbe_opts o = { .size = 4096, .async_threads = 2 };
  struct r3m_backend *b = testbe_new (&o, &tb);
  struct tally t = TALLY_INIT;
  struct req *q = calloc (N, sizeof *q);
  char (*buf)[64] = calloc (N, 64);
  assert_true (q && buf);
  testbe_close_gate (tb);
  for (unsigned i = 0; i < N; i++) {
    prep (&q[i], &t, i, R3M_IO_READ, buf[i], 64, 64 * i, 0);
    assert_int_equal (r3m_backend_submit (b, &q[i].io), 0);
  }
  testbe_wait_entered (tb, 2);     /* both threads busy, the rest queued */
  testbe_open_gate (tb);
  r3m_backend_close (b);           /* must finish all queued requests */
  assert_int_equal (t.done, N);
  assert_int_equal (t.errors, 0);
  for (unsigned i = 0; i < N; i++)
    assert_int_equal (atomic_load (&q[i].completions), 1);
  free (q);
  free (buf);
}

/* No pool threads and no native submit: done runs before submit returns. */
static void
test_inline_without_threads (void **state)
{
  struct testbe *tb;
  struct testbe_opts o = { .size = 4096, .async_threads = 0 };
  struct r3m_backend *b = testbe_new (&o, &tb);
  struct tally t = TALLY_INIT;
  struct req q;
  char buf[8];
  prep (&q, &t, 0, R3M_IO_READ, buf, 8, 0, 0);
  assert_int_equal (r3m_backend_submit (b, &q.io), 0);
  assert_int_equal (t.done, 1);
  /* A zero-length request completes at once, too. */
  prep (&q, &t, 1, R3M_IO_WRITE, buf, 0, 4096, 0);
  assert_int_equal (r3m_backend_submit (b, &q.io), 0);
  assert_int_equal (t.done, 2);
  r3m_backend_close (b);
}

/* Refused requests never call done. */
static void
test_refused_not_completed (void **state)
{
  struct testbe *tb;
  struct testbe_opts o = { .size = 4096, .async_threads = 2 };
  struct r3m_backend *b = testbe_new (&o, &tb);
  struct tally t = TALLY_INIT;
  struct req q;
  char buf[8];
  prep (&q, &t, 0, R3M_IO_READ, buf, 8, 4090, 0);
  assert_int_equal (r3m_backend_submit (b, &q.io), -EINVAL);
  prep (&q, &t, 0, R3M_IO_WRITE, buf, 8, 4090, 0);
  assert_int_equal (r3m_backend_submit (b, &q.io), -ENOSPC);
  r3m_backend_close (b);
  assert_int_equal (t.done, 0);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_each_completes_once),
    cmocka_unit_test (test_urgent_first),
    cmocka_unit_test (test_close_drains),
    cmocka_unit_test (test_inline_without_threads),
    cmocka_unit_test (test_refused_not_completed),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
