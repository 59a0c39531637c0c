/* See nbd-server-harness.h. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <r3map/nbd.h>

#include "nbd/server.h"
#include "nbd-server-harness.h"

struct input {
  const uint8_t *p[2];
  size_t left[2];
};

static ssize_t
in_read (void *user, void *buf, size_t len)
{
  struct input *in = user;
  int i = in->left[0] ? 0 : 1;
  if (in->left[i] == 0)
    return 0;
  size_t n = len < in->left[i] ? len : in->left[i];
  memcpy (buf, in->p[i], n);
  in->p[i] += n;
  in->left[i] -= n;
  return (ssize_t) n;
}

static ssize_t
in_writev (void *user, const struct iovec *iov, int iovcnt)
{
  size_t n = 0;
  for (int i = 0; i < iovcnt; i++)
    n += iov[i].iov_len;
  return n ? (ssize_t) n : 1;
}

static const struct nbd_conn_io in_io = { .read = in_read,
                                          .writev = in_writev };

/* A backend that blocks (async_threads > 0), so its export uses the pool. */
static int
slow_pread (void *self, void *buf, size_t len, uint64_t off)
{
  memcpy (buf, (unsigned char *) self + off, len);
  return 0;
}

static int
slow_pwrite (void *self, const void *buf, size_t len, uint64_t off,
             unsigned flags)
{
  memcpy ((unsigned char *) self + off, buf, len);
  return 0;
}

static const struct r3m_backend_ops slow_ops = {
  .name = "fuzz", .pread = slow_pread, .pwrite = slow_pwrite, .close = free,
};

static int
ctx_query (void *user, void *state, uint64_t off, uint64_t len,
           struct r3m_extent *ext, size_t max, size_t *n)
{
  /* Alternating 4 KiB extents, possibly overshooting the request. */
  size_t k = 0;
  for (uint64_t pos = 0; pos < len && k < max; pos += 4096, k++) {
    ext[k].len = 4096;
    ext[k].flags = (uint32_t) (((off + pos) / 4096) & 1);
  }
  *n = k;
  return 0;
}

static struct r3m_nbd_server *
server (void)
{
  static struct r3m_nbd_server *srv;
  if (srv)
    return srv;
  struct r3m_backend *mem, *ro, *slow, *aligned;
  struct r3m_backend_info info = { .size = 1 << 20, .align = 1,
                                   .async_threads = 2 };
  void *store = calloc (1, 1 << 20);
  if (r3m_backend_open ("memory:1M", 0, &mem, NULL) < 0
      || r3m_backend_open ("memory:1M", R3M_OPEN_READ_ONLY, &ro, NULL) < 0
      || r3m_backend_open ("memory:64K", 0, &aligned, NULL) < 0
      || !store
      || r3m_backend_new (&slow_ops, store, &info, "fuzz", &slow, NULL) < 0
      || r3m_nbd_server_new (NULL, &srv, NULL) < 0)
    abort ();
  struct r3m_nbd_export_options al = { .min_block = 512,
                                       .max_payload = 65536,
                                       .description = "aligned" };
  struct r3m_nbd_meta_context ctx = { .name = "x-fuzz:ctx",
                                      .query = ctx_query };
  if (r3m_nbd_server_add_export (srv, "", mem, NULL, NULL) < 0
      || r3m_nbd_server_add_export (srv, "ro", ro, NULL, NULL) < 0
      || r3m_nbd_server_add_export (srv, "pool", slow, NULL, NULL) < 0
      || r3m_nbd_server_add_export (srv, "a", aligned, &al, NULL) < 0
      || r3m_nbd_server_add_meta_context (srv, "a", &ctx, NULL) < 0)
    abort ();
  return srv;                   /* lives as long as the fuzzer */
}

void
fuzz_serve (const uint8_t *prefix, size_t plen, const uint8_t *data,
            size_t len)
{
  struct input in = { { prefix, data }, { plen, len } };
  struct nbd_conn *c;
  if (nbd_conn_new_custom (&in_io, &in, &c) < 0)
    abort ();
  struct nbd_srv_conn *sc = nbd_srv_conn_new (server (), c, false);
  if (!sc)
    abort ();
  nbd_srv_conn_run (sc);        /* frees sc and c */
}
