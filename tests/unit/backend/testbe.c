#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "testbe.h"

/* payload: max_io applies (reads and writes only). */
static void
check (struct testbe *tb, size_t len, uint64_t off, bool payload)
{
  bool end_ok = (off + len) % tb->align == 0 || off + len == tb->size;
  if (off % tb->align != 0 || !end_ok || len == 0 || off + len > tb->size
      || (payload && tb->max_io && len > tb->max_io))
    atomic_fetch_add (&tb->violations, 1);
}

static int
tb_pread (void *self, void *buf, size_t len, uint64_t off)
{
  struct testbe *tb = self;
  check (tb, len, off, true);
  atomic_fetch_add (&tb->reads, 1);
  pthread_mutex_lock (&tb->lock);
  tb->entered++;
  pthread_cond_broadcast (&tb->cond);
  while (tb->gate_closed)
    pthread_cond_wait (&tb->cond, &tb->lock);
  memcpy (buf, tb->data + off, len);
  pthread_mutex_unlock (&tb->lock);
  if (tb->yield)
    sched_yield ();
  return 0;
}

static int
tb_pwrite (void *self, const void *buf, size_t len, uint64_t off,
           unsigned flags)
{
  struct testbe *tb = self;
  check (tb, len, off, true);
  if (flags & ~R3M_IO_FUA)
    atomic_fetch_add (&tb->violations, 1);
  atomic_fetch_add (&tb->writes, 1);
  pthread_mutex_lock (&tb->lock);
  memcpy (tb->data + off, buf, len);
  pthread_mutex_unlock (&tb->lock);
  return 0;
}

static int
tb_zero (void *self, size_t len, uint64_t off, unsigned flags)
{
  struct testbe *tb = self;
  check (tb, len, off, false);
  atomic_fetch_add (&tb->zeros, 1);
  pthread_mutex_lock (&tb->lock);
  memset (tb->data + off, 0, len);
  pthread_mutex_unlock (&tb->lock);
  return 0;
}

static int
tb_trim (void *self, size_t len, uint64_t off)
{
  struct testbe *tb = self;
  check (tb, len, off, false);
  atomic_fetch_add (&tb->trims, 1);
  return 0;
}

static int
tb_flush (void *self)
{
  struct testbe *tb = self;
  atomic_fetch_add (&tb->flushes, 1);
  return 0;
}

static int
tb_submit (void *self, struct r3m_io *io)
{
  struct testbe *tb = self;
  atomic_fetch_add (&tb->native_submits, 1);
  int r;
  switch (io->op) {
  case R3M_IO_READ: r = tb_pread (tb, io->buf, io->len, io->off); break;
  case R3M_IO_WRITE: r = tb_pwrite (tb, io->buf, io->len, io->off, 0); break;
  case R3M_IO_ZERO: r = tb_zero (tb, io->len, io->off, 0); break;
  case R3M_IO_TRIM: r = tb_trim (tb, io->len, io->off); break;
  case R3M_IO_FLUSH: r = tb_flush (tb); break;
  default: r = -EINVAL; break;
  }
  io->done (io, r);
  return 0;
}

static void
tb_close (void *self)
{
  struct testbe *tb = self;
  pthread_mutex_destroy (&tb->lock);
  pthread_cond_destroy (&tb->cond);
  free (tb->data);
  free (tb);
}

static const struct r3m_backend_ops plain_ops = {
  .name = "testbe", .pread = tb_pread, .pwrite = tb_pwrite,
  .flush = tb_flush, .trim = tb_trim, .close = tb_close,
};
static const struct r3m_backend_ops zero_ops = {
  .name = "testbe", .pread = tb_pread, .pwrite = tb_pwrite,
  .flush = tb_flush, .zero = tb_zero, .trim = tb_trim, .close = tb_close,
};
static const struct r3m_backend_ops submit_ops = {
  .name = "testbe", .pread = tb_pread, .pwrite = tb_pwrite,
  .flush = tb_flush, .zero = tb_zero, .trim = tb_trim, .submit = tb_submit,
  .close = tb_close,
};

struct r3m_backend *
testbe_new (const struct testbe_opts *o, struct testbe **out)
{
  struct testbe *tb = calloc (1, sizeof *tb);
  assert_non_null (tb);
  tb->data = calloc (1, (size_t) o->size);
  assert_non_null (tb->data);
  tb->size = o->size;
  tb->align = o->align ? o->align : 1;
  tb->max_io = o->max_io;
  tb->yield = o->yield;
  pthread_mutex_init (&tb->lock, NULL);
  pthread_cond_init (&tb->cond, NULL);
  struct r3m_backend_info info = {
    .size = o->size, .align = tb->align, .max_io = o->max_io,
    .async_threads = o->async_threads,
  };
  const struct r3m_backend_ops *ops = o->native_submit ? &submit_ops
                                      : o->zero_op ? &zero_ops : &plain_ops;
  struct r3m_backend *b = NULL;
  struct r3m_error err = { 0 };
  if (r3m_backend_new (ops, tb, &info, "testbe", &b, &err) != 0)
    fail_msg ("r3m_backend_new: %s", err.msg);
  *out = tb;
  return b;
}

void
testbe_close_gate (struct testbe *tb)
{
  pthread_mutex_lock (&tb->lock);
  tb->gate_closed = true;
  pthread_mutex_unlock (&tb->lock);
}

void
testbe_open_gate (struct testbe *tb)
{
  pthread_mutex_lock (&tb->lock);
  tb->gate_closed = false;
  pthread_cond_broadcast (&tb->cond);
  pthread_mutex_unlock (&tb->lock);
}

void
testbe_wait_entered (struct testbe *tb, unsigned n)
{
  pthread_mutex_lock (&tb->lock);
  while (tb->entered < n)
    pthread_cond_wait (&tb->cond, &tb->lock);
  pthread_mutex_unlock (&tb->lock);
}
