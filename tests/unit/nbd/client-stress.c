/* NBD client under concurrency (suite 'stress', also run under TSan):
 * many threads mixing synchronous and asynchronous requests over several
 * connections with a small window, against a fake server that answers out
 * of order in split chunks; and the same load when the server hangs up. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <r3map/backend.h>

#include "client-fake.h"
#include "nbd/proto.h"

#define THREADS   6
#define REGION    (256 << 10)         /* bytes per thread */
#define OPS       200

struct worker {
  struct r3m_backend *b;
  int index;
  unsigned seed;
  unsigned char model[REGION];
  char failure[160];
  int calls_wrong;             /* done callbacks not called exactly once */
  int errors;                  /* requests that failed */
  bool expect_errors;
};

static void
fail_w (struct worker *w, const char *what, int r)
{
  if (!w->failure[0])
    snprintf (w->failure, sizeof w->failure, "thread %d: %s: %d", w->index,
              what, r);
}

/* A batch of asynchronous requests, checked against the model after. */
static void
async_batch (struct worker *w, uint64_t base)
{
  struct tracker t;
  tracker_init (&t);
  struct treq q[4];
  static _Thread_local unsigned char bufs[4][8192];
  size_t len[4];
  uint64_t off[4];
  bool write[4];
  for (int i = 0; i < 4; i++) {
    len[i] = 1 + (size_t) rand_r (&w->seed) % 8192;
    off[i] = (uint64_t) i * (REGION / 4)
             + (uint64_t) rand_r (&w->seed) % (REGION / 4 - 8192);
    write[i] = rand_r (&w->seed) % 2;
    if (write[i]) {
      for (size_t k = 0; k < len[i]; k++)
        bufs[i][k] = (unsigned char) rand_r (&w->seed);
      memcpy (w->model + off[i], bufs[i], len[i]);
    }
    tsubmit (w->b, &t, &q[i], write[i] ? R3M_IO_WRITE : R3M_IO_READ, bufs[i],
             len[i], base + off[i],
             rand_r (&w->seed) % 4 == 0 ? R3M_IO_URGENT : 0);
  }
  twait (&t);
  for (int i = 0; i < 4; i++) {
    if (q[i].calls != 1)
      w->calls_wrong++;
    if (q[i].result < 0) {
      w->errors++;
      if (!w->expect_errors)
        fail_w (w, "async request", q[i].result);
    } else if (!write[i] && memcmp (bufs[i], w->model + off[i], len[i]))
      fail_w (w, "async read differs from the model", 0);
  }
  tracker_destroy (&t);
}

static void *
worker_main (void *arg)
{
  struct worker *w = arg;
  uint64_t base = (uint64_t) w->index * REGION;
  unsigned char *buf = malloc (70000);
  for (int op = 0; op < OPS && !w->failure[0]; op++) {
    size_t len = 1 + (size_t) rand_r (&w->seed) % 70000;
    uint64_t off = (uint64_t) rand_r (&w->seed) % (REGION - len);
    int r;
    switch (rand_r (&w->seed) % 4) {
    case 0:
      for (size_t k = 0; k < len; k++)
        buf[k] = (unsigned char) rand_r (&w->seed);
      r = r3m_backend_pwrite (w->b, buf, len, base + off, 0);
      if (r == 0)
        memcpy (w->model + off, buf, len);
      break;
    case 1:
      r = r3m_backend_pread (w->b, buf, len, base + off);
      if (r == 0 && memcmp (buf, w->model + off, len))
        fail_w (w, "read differs from the model", 0);
      break;
    case 2:
      r = r3m_backend_zero (w->b, len, base + off, 0);
      if (r == 0)
        memset (w->model + off, 0, len);
      break;
    default:
      async_batch (w, base);
      r = 0;
      break;
    }
    if (r < 0) {
      w->errors++;
      if (!w->expect_errors)
        fail_w (w, "request", r);
      else
        break;
    }
  }
  free (buf);
  return NULL;
}

static void
run_load (struct fake_mem *m, bool expect_errors, int *errors)
{
  struct fake_cfg cfg = fake_default_cfg ();
  cfg.size = (uint64_t) THREADS * REGION;
  cfg.tflags |= NBD_FLAG_CAN_MULTI_CONN;
  cfg.block_size = true;
  cfg.min = 1;
  cfg.pref = 4096;
  cfg.max = 16384;                  /* forces splitting */
  m->bytes = calloc (1, cfg.size);
  struct fake *f = fake_start (fake_memory_script, m, &cfg);
  char uri[256];
  snprintf (uri, sizeof uri, "%s&connections=3&inflight=4", f->uri);
  struct r3m_backend *b = NULL;
  struct r3m_error err;
  if (r3m_backend_open (uri, 0, &b, &err) < 0)
    fail_msg ("open: %s", err.msg);

  static struct worker w[THREADS];
  pthread_t th[THREADS];
  for (int i = 0; i < THREADS; i++) {
    memset (&w[i], 0, sizeof w[i]);
    w[i] = (struct worker) { .b = b, .index = i, .seed = 1000u + (unsigned) i,
                             .expect_errors = expect_errors };
    pthread_create (&th[i], NULL, worker_main, &w[i]);
  }
  *errors = 0;
  for (int i = 0; i < THREADS; i++) {
    pthread_join (th[i], NULL);
    if (w[i].failure[0])
      fail_msg ("%s", w[i].failure);
    assert_int_equal (w[i].calls_wrong, 0);
    *errors += w[i].errors;
  }
  if (!expect_errors)
    for (int i = 0; i < THREADS; i++)
      assert_memory_equal (m->bytes + (size_t) i * REGION, w[i].model,
                           REGION);
  r3m_backend_close (b);
  assert_true (fake_stop (f));
  free (m->bytes);
}

static void
concurrent_mixed_io (void **state)
{
  struct fake_mem m = { .lock = PTHREAD_MUTEX_INITIALIZER, .seed = 77 };
  int errors;
  run_load (&m, false, &errors);
  assert_int_equal (errors, 0);
}

/* The server hangs up in the middle of all this: every request completes
 * exactly once (with an error), every thread returns. */
static void
server_hangs_up_under_load (void **state)
{
  struct fake_mem m = { .lock = PTHREAD_MUTEX_INITIALIZER, .seed = 78,
                        .die_after = 150 };
  int errors;
  run_load (&m, true, &errors);
  assert_true (errors > 0);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (concurrent_mixed_io),
    cmocka_unit_test (server_hangs_up_under_load),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
