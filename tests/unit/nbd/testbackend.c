/* See testbackend.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "testbackend.h"

static int
tb_pread (void *self, void *buf, size_t len, uint64_t off)
{
  struct tb *tb = self;
  pthread_mutex_lock (&tb->lock);
  tb->reads++;
  int r = tb->fail_reads;
  while (tb->hold && off == tb->hold_off) {
    tb->held++;
    pthread_cond_broadcast (&tb->cond);
    pthread_cond_wait (&tb->cond, &tb->lock);
    tb->held--;
  }
  pthread_mutex_unlock (&tb->lock);
  if (r == 0)
    memcpy (buf, tb->data + off, len);
  return r;
}

static int
tb_pwrite (void *self, const void *buf, size_t len, uint64_t off,
           unsigned flags)
{
  struct tb *tb = self;
  pthread_mutex_lock (&tb->lock);
  tb->writes++;
  tb->fua_writes += (flags & R3M_IO_FUA) != 0;
  memcpy (tb->data + off, buf, len);
  pthread_mutex_unlock (&tb->lock);
  return 0;
}

static int
tb_flush (void *self)
{
  struct tb *tb = self;
  pthread_mutex_lock (&tb->lock);
  tb->flushes++;
  int r = tb->fail_flush;
  pthread_mutex_unlock (&tb->lock);
  return r;
}

static int
tb_zero (void *self, size_t len, uint64_t off, unsigned flags)
{
  struct tb *tb = self;
  pthread_mutex_lock (&tb->lock);
  tb->zeroes++;
  memset (tb->data + off, 0, len);
  pthread_mutex_unlock (&tb->lock);
  return 0;
}

static int
tb_trim (void *self, size_t len, uint64_t off)
{
  struct tb *tb = self;
  pthread_mutex_lock (&tb->lock);
  tb->trims++;
  pthread_mutex_unlock (&tb->lock);
  return 0;
}

static int
tb_extents (void *self, uint64_t off, uint64_t len, struct r3m_extent *ext,
            size_t max, size_t *n)
{
  struct tb *tb = self;
  if (tb->next == 0) {          /* no layout given: all data */
    ext[0] = (struct r3m_extent) { .len = len, .flags = 0 };
    *n = 1;
    return 0;
  }
  /* Find the extent holding off, report from there. */
  uint64_t pos = 0;
  size_t i = 0;
  while (i < tb->next && pos + tb->ext[i].len <= off)
    pos += tb->ext[i++].len;
  *n = 0;
  for (; i < tb->next && *n < max && pos < off + len; i++) {
    uint64_t start = pos > off ? pos : off;
    ext[*n].len = pos + tb->ext[i].len - start;
    ext[*n].flags = tb->ext[i].flags;
    (*n)++;
    pos += tb->ext[i].len;
  }
  return 0;
}

static void
tb_close (void *self)
{
  struct tb *tb = self;
  pthread_mutex_destroy (&tb->lock);
  pthread_cond_destroy (&tb->cond);
  free (tb->data);
  free (tb);
}

static void *
tb_direct (void *self)
{
  struct tb *tb = self;
  return tb->data;
}

static const struct r3m_backend_ops tb_ops_direct = {
  .name = "test", .pread = tb_pread, .pwrite = tb_pwrite,
  .flush = tb_flush, .zero = tb_zero, .trim = tb_trim,
  .extents = tb_extents, .direct = tb_direct, .close = tb_close,
};
static const struct r3m_backend_ops tb_ops = {
  .name = "test", .pread = tb_pread, .pwrite = tb_pwrite,
  .flush = tb_flush, .zero = tb_zero, .trim = tb_trim, .close = tb_close,
};
static const struct r3m_backend_ops tb_ops_extents = {
  .name = "test", .pread = tb_pread, .pwrite = tb_pwrite,
  .flush = tb_flush, .zero = tb_zero, .trim = tb_trim,
  .extents = tb_extents, .close = tb_close,
};

int
tb_new (const struct tb_options *o, struct tb **out, struct r3m_backend **b)
{
  struct tb *tb = calloc (1, sizeof *tb);
  if (!tb || !(tb->data = calloc (1, o->size ? o->size : 1))) {
    free (tb);
    return -ENOMEM;
  }
  tb->size = o->size;
  pthread_mutex_init (&tb->lock, NULL);
  pthread_cond_init (&tb->cond, NULL);
  for (size_t i = 0; o->extents && i < o->nextents && i < 16; i++)
    tb->ext[tb->next++] = o->extents[i];
  struct r3m_backend_info info = {
    .size = o->size,
    .align = o->align ? o->align : 1,
    .flags = (o->fast_zero ? R3M_BACKEND_FAST_ZERO : 0)
             | (o->read_only ? R3M_BACKEND_READ_ONLY : 0),
    .async_threads = o->async_threads,
  };
  const struct r3m_backend_ops *ops = o->direct ? &tb_ops_direct
                                    : o->extents ? &tb_ops_extents : &tb_ops;
  int r = r3m_backend_new (ops, tb, &info, "test", b, NULL);
  if (r < 0) {
    tb_close (tb);
    return r;
  }
  *out = tb;
  return 0;
}

void
tb_hold (struct tb *tb, uint64_t off)
{
  pthread_mutex_lock (&tb->lock);
  tb->hold = true;
  tb->hold_off = off;
  pthread_mutex_unlock (&tb->lock);
}

void
tb_wait_held (struct tb *tb, unsigned n)
{
  pthread_mutex_lock (&tb->lock);
  while (tb->held < n)
    pthread_cond_wait (&tb->cond, &tb->lock);
  pthread_mutex_unlock (&tb->lock);
}

void
tb_release (struct tb *tb)
{
  pthread_mutex_lock (&tb->lock);
  tb->hold = false;
  pthread_cond_broadcast (&tb->cond);
  pthread_mutex_unlock (&tb->lock);
}

unsigned
tb_count (struct tb *tb, const unsigned *counter)
{
  pthread_mutex_lock (&tb->lock);
  unsigned v = *counter;
  pthread_mutex_unlock (&tb->lock);
  return v;
}

void
tb_set (struct tb *tb, int *field, int value)
{
  pthread_mutex_lock (&tb->lock);
  *field = value;
  pthread_mutex_unlock (&tb->lock);
}
