/* r3m_region_as_backend: a backend handle whose I/O goes through a region,
 * so the NBD server (and anything else written against r3m_backend) can
 * serve a region.  The handle borrows the region. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine/engine.h"
#include "util/error.h"

static int
rb_pread (void *self, void *buf, size_t len, uint64_t off)
{
  return r3m_region_read (self, buf, len, off);
}

static int
rb_pwrite (void *self, const void *buf, size_t len, uint64_t off,
           unsigned flags)
{
  return r3m_region_write (self, buf, len, off, flags);
}

static int
rb_flush (void *self)
{
  return r3m_region_flush (self);
}

static int
rb_zero (void *self, size_t len, uint64_t off, unsigned flags)
{
  return r3m_region_zero (self, len, off, flags & R3M_IO_FUA);
}

static int
rb_trim (void *self, size_t len, uint64_t off)
{
  return r3m_region_trim (self, len, off);
}

/* A direct region reports the remote's allocation.  A cached one reports
 * plain data everywhere: chunks not fetched yet are not holes, and asking
 * the remote would cost a round trip per query. */
static int
rb_extents (void *self, uint64_t off, uint64_t len, struct r3m_extent *ext,
            size_t max, size_t *n)
{
  struct r3m_region *r = self;
  if (!r->cache)
    return r3m_backend_extents (r->remote, off, len, ext, max, n);
  ext[0].len = len;
  ext[0].flags = 0;
  *n = 1;
  return 0;
}

static const struct r3m_backend_ops region_ops = {
  .name = "region",
  .pread = rb_pread,
  .pwrite = rb_pwrite,
  .flush = rb_flush,
  .zero = rb_zero,
  .trim = rb_trim,
  .extents = rb_extents,
};

int
r3m_region_as_backend (struct r3m_region *r, struct r3m_backend **out,
                       struct r3m_error *err)
{
  if (!r || !out)
    return util_err (err, EINVAL, "r3m_region_as_backend: region and out "
                     "are required");
  const struct r3m_backend_info *ri = r3m_backend_get_info (r->remote);
  struct r3m_backend *front = r->cache ? r->cache : r->remote;
  struct r3m_backend_info info = {
    .size = r->size,
    .align = 1,
    .preferred_io = r->cs,
    .flags = (ri->flags & (R3M_BACKEND_READ_ONLY | R3M_BACKEND_VOLATILE))
             | (r3m_backend_get_info (front)->flags & R3M_BACKEND_FAST_ZERO),
    /* Requests submitted to this handle run on a few adapter threads, so
     * a server that pipelines through r3m_backend_submit gets concurrency;
     * one that calls pread/pwrite from its own workers never starts them. */
    .async_threads = 4,
  };
  char desc[512];
  snprintf (desc, sizeof desc, "region:%s", r3m_backend_describe (r->remote));
  return r3m_backend_new (&region_ops, r, &info, desc, out, err);
}
