/* See rawnbd.h. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "nbd/proto.h"
#include "rawnbd.h"

static void
set_timeout (int fd)
{
  struct timeval tv = { .tv_sec = 10 };
  setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt (fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

void
raw_connect (struct r3m_nbd_server *srv, struct raw *c)
{
  int sv[2];
  assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
                    0);
  assert_int_equal (r3m_nbd_server_serve_fd (srv, sv[0], NULL), 0);
  c->fd = sv[1];
  set_timeout (c->fd);
}

void
raw_connect_unix (const char *path, struct raw *c)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  strncpy (sa.sun_path, path, sizeof sa.sun_path - 1);
  c->fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true (c->fd >= 0);
  assert_int_equal (connect (c->fd, (struct sockaddr *) &sa, sizeof sa), 0);
  set_timeout (c->fd);
}

void
raw_close (struct raw *c)
{
  if (c->fd >= 0)
    close (c->fd);
  c->fd = -1;
}

void
raw_send (struct raw *c, const void *buf, size_t len)
{
  const unsigned char *p = buf;
  while (len > 0) {
    ssize_t n = send (c->fd, p, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    assert_true (n > 0);
    p += n;
    len -= (size_t) n;
  }
}

void
raw_recv (struct raw *c, void *buf, size_t len)
{
  unsigned char *p = buf;
  while (len > 0) {
    ssize_t n = recv (c->fd, p, len, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      fail_msg ("raw_recv: %s with %zu bytes missing",
                n == 0 ? "end of stream" : strerror (errno), len);
    p += n;
    len -= (size_t) n;
  }
}

bool
raw_closed (struct raw *c)
{
  unsigned char b;
  for (;;) {
    ssize_t n = recv (c->fd, &b, 1, 0);
    if (n == 0 || (n < 0 && errno == ECONNRESET))
      return true;
    if (n < 0 && errno == EINTR)
      continue;
    return false;               /* data, or the timeout ran out */
  }
}

void
raw_hello (struct raw *c, uint32_t cflags)
{
  unsigned char h[18];
  raw_recv (c, h, sizeof h);
  assert_true (nbd_get64 (h) == NBD_MAGIC);
  assert_true (nbd_get64 (h + 8) == NBD_IHAVEOPT);
  assert_int_equal (nbd_get16 (h + 16),
                    NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
  unsigned char f[4];
  nbd_put32 (f, cflags);
  raw_send (c, f, 4);
}

void
raw_opt (struct raw *c, uint32_t opt, const void *data, uint32_t len)
{
  unsigned char h[16];
  nbd_put64 (h, NBD_IHAVEOPT);
  nbd_put32 (h + 8, opt);
  nbd_put32 (h + 12, len);
  raw_send (c, h, sizeof h);
  if (len)
    raw_send (c, data, len);
}

void
raw_opt_reply (struct raw *c, uint32_t expect_opt, uint32_t *type,
               void *data, uint32_t cap, uint32_t *len)
{
  unsigned char h[20];
  raw_recv (c, h, sizeof h);
  assert_true (nbd_get64 (h) == NBD_OPT_REPLY_MAGIC);
  assert_int_equal (nbd_get32 (h + 8), expect_opt);
  *type = nbd_get32 (h + 12);
  uint32_t l = nbd_get32 (h + 16);
  if (len)
    *len = l;
  unsigned char junk[4096];
  while (l > 0) {
    uint32_t n = l;
    void *dst = junk;
    if (data && cap > 0) {
      n = l < cap ? l : cap;
      dst = data;
      data = (unsigned char *) data + n;
      cap -= n;
    } else if (n > sizeof junk)
      n = sizeof junk;
    raw_recv (c, dst, n);
    l -= n;
  }
}

void
raw_opt_expect (struct raw *c, uint32_t opt, uint32_t want)
{
  raw_opt (c, opt, NULL, 0);
  uint32_t type;
  raw_opt_reply (c, opt, &type, NULL, 0, NULL);
  assert_int_equal (type, want);
}

uint32_t
raw_info_data (unsigned char *buf, const char *name, const uint16_t *reqs,
               uint16_t nreq)
{
  uint32_t n = (uint32_t) strlen (name);
  nbd_put32 (buf, n);
  memcpy (buf + 4, name, n);
  nbd_put16 (buf + 4 + n, nreq);
  for (uint16_t i = 0; i < nreq; i++)
    nbd_put16 (buf + 6 + n + 2 * i, reqs[i]);
  return 6 + n + 2u * nreq;
}

uint32_t
raw_meta_data (unsigned char *buf, const char *name,
               const char *const *queries, uint32_t nq)
{
  uint32_t n = (uint32_t) strlen (name);
  nbd_put32 (buf, n);
  memcpy (buf + 4, name, n);
  nbd_put32 (buf + 4 + n, nq);
  uint32_t p = 8 + n;
  for (uint32_t i = 0; i < nq; i++) {
    uint32_t ql = (uint32_t) strlen (queries[i]);
    nbd_put32 (buf + p, ql);
    memcpy (buf + p + 4, queries[i], ql);
    p += 4 + ql;
  }
  return p;
}

/* SET_META_CONTEXT (if asked) and GO, after the hello and whatever
 * options the caller negotiated. */
static void
meta_and_go (struct raw *c, const char *name, const char *const *meta,
             uint32_t nmeta, uint64_t *size, uint16_t *eflags)
{
  unsigned char buf[8192];
  uint32_t type, len;
  if (nmeta) {
    raw_opt (c, NBD_OPT_SET_META_CONTEXT, buf,
             raw_meta_data (buf, name, meta, nmeta));
    do
      raw_opt_reply (c, NBD_OPT_SET_META_CONTEXT, &type, NULL, 0, NULL);
    while (type == NBD_REP_META_CONTEXT);
    assert_int_equal (type, NBD_REP_ACK);
  }
  uint16_t req = NBD_INFO_BLOCK_SIZE;
  raw_opt (c, NBD_OPT_GO, buf, raw_info_data (buf, name, &req, 1));
  for (;;) {
    raw_opt_reply (c, NBD_OPT_GO, &type, buf, sizeof buf, &len);
    if (type == NBD_REP_ACK)
      break;
    assert_int_equal (type, NBD_REP_INFO);
    if (nbd_get16 (buf) == NBD_INFO_EXPORT) {
      assert_int_equal (len, 12);
      if (size)
        *size = nbd_get64 (buf + 2);
      if (eflags)
        *eflags = nbd_get16 (buf + 10);
    }
  }
}

void
raw_go (struct raw *c, const char *name, bool structured,
        const char *const *meta, uint32_t nmeta, uint64_t *size,
        uint16_t *eflags)
{
  raw_hello (c, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
  if (structured)
    raw_opt_expect (c, NBD_OPT_STRUCTURED_REPLY, NBD_REP_ACK);
  meta_and_go (c, name, meta, nmeta, size, eflags);
}

void
raw_go_ext (struct raw *c, const char *name, const char *const *meta,
            uint32_t nmeta, uint64_t *size, uint16_t *eflags)
{
  raw_hello (c, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
  raw_opt_expect (c, NBD_OPT_EXTENDED_HEADERS, NBD_REP_ACK);
  meta_and_go (c, name, meta, nmeta, size, eflags);
}

void
raw_put_request (unsigned char *h, uint16_t flags, uint16_t type,
                 uint64_t cookie, uint64_t off, uint32_t len)
{
  nbd_put32 (h, NBD_REQUEST_MAGIC);
  nbd_put16 (h + 4, flags);
  nbd_put16 (h + 6, type);
  nbd_put64 (h + 8, cookie);
  nbd_put64 (h + 16, off);
  nbd_put32 (h + 24, len);
}

void
raw_request (struct raw *c, uint16_t flags, uint16_t type, uint64_t cookie,
             uint64_t off, uint32_t len, const void *payload)
{
  unsigned char h[NBD_REQUEST_SIZE];
  raw_put_request (h, flags, type, cookie, off, len);
  raw_send (c, h, sizeof h);
  if (payload && len)
    raw_send (c, payload, len);
}

void
raw_simple (struct raw *c, uint32_t *error, uint64_t *cookie)
{
  unsigned char h[16];
  raw_recv (c, h, sizeof h);
  assert_true (nbd_get32 (h) == NBD_SIMPLE_REPLY_MAGIC);
  *error = nbd_get32 (h + 4);
  *cookie = nbd_get64 (h + 8);
}

void
raw_chunk (struct raw *c, uint16_t *flags, uint16_t *type, uint64_t *cookie,
           void *payload, uint32_t cap, uint32_t *len)
{
  unsigned char h[20];
  raw_recv (c, h, sizeof h);
  assert_true (nbd_get32 (h) == NBD_STRUCTURED_REPLY_MAGIC);
  *flags = nbd_get16 (h + 4);
  *type = nbd_get16 (h + 6);
  *cookie = nbd_get64 (h + 8);
  *len = nbd_get32 (h + 16);
  assert_true (*len <= cap);
  raw_recv (c, payload, *len);
}

void
raw_ext_request (struct raw *c, uint16_t flags, uint16_t type,
                 uint64_t cookie, uint64_t off, uint64_t len,
                 const void *payload, size_t plen)
{
  unsigned char h[32];
  nbd_put32 (h, NBD_EXT_REQUEST_MAGIC);
  nbd_put16 (h + 4, flags);
  nbd_put16 (h + 6, type);
  nbd_put64 (h + 8, cookie);
  nbd_put64 (h + 16, off);
  nbd_put64 (h + 24, len);
  raw_send (c, h, sizeof h);
  if (payload && plen)
    raw_send (c, payload, plen);
}

void
raw_ext_chunk (struct raw *c, uint16_t *flags, uint16_t *type,
               uint64_t *cookie, uint64_t *off, void *payload, uint32_t cap,
               uint64_t *len)
{
  unsigned char h[32];
  raw_recv (c, h, sizeof h);
  assert_true (nbd_get32 (h) == NBD_EXT_REPLY_MAGIC);
  *flags = nbd_get16 (h + 4);
  *type = nbd_get16 (h + 6);
  *cookie = nbd_get64 (h + 8);
  *off = nbd_get64 (h + 16);
  *len = nbd_get64 (h + 24);
  assert_true (*len <= cap);
  raw_recv (c, payload, (size_t) *len);
}
