/* The reply reader of an NBD client connection.
 *
 * One thread per connection reads replies in the order the server sends
 * them and matches each to its slot by cookie (gen << 32 | index): a cookie
 * that names a free slot, an old generation or a request already answered
 * is a protocol error.  READ data goes straight from the socket into the
 * caller's buffer.
 *
 * The server is not trusted.  Structured replies are checked field by
 * field (NBD spec, "Structured reply chunk message"): content chunks must
 * lie inside their request and must not overlap (struct nbd_cli_cover
 * proves coverage), a successful read must cover every byte, a block
 * status chunk must name the context we selected and give non-zero
 * extents, error chunks must fit their messages in their length.  Any
 * violation kills the connection with EPROTO and a message; requests still
 * in flight fail, nothing is left half-answered.
 *
 * With extended headers every reply is a chunk with the 32-byte header:
 * its offset must echo the request's, its 64-bit length is refused beyond
 * 32 bits (no chunk we accept can be longer), simple and structured
 * magics are violations, and block status comes as BLOCK_STATUS_EXT
 * (count matching the length, status of base:allocation within 32 bits);
 * the chunk types of the other header style are violations too.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nbd/client.h"
#include "util/error.h"

#define MAX_COVER_IV    1024                 /* disjoint pieces per read */
#define MAX_STATUS_LEN  (4 + 8 * (1u << 20)) /* spec: at most 2^20 extents */
#define MAX_STATUS_EXT_LEN (8 + 16 * (1u << 20))
#define MAX_ERROR_LEN   (6 + 65535 + 8)      /* u16 message + offset */

/* What the reader needs of a slot while it handles one reply. */
struct req {
  uint32_t index;
  struct nbd_cli_slot *sl;
  uint16_t cmd;
  uint64_t off;
  uint64_t len;
};

int
nbd_cli_errno_from_nbd (uint32_t e)
{
  switch (e) {
  case NBD_EPERM: return -EPERM;
  case NBD_EIO: return -EIO;
  case NBD_ENOMEM: return -ENOMEM;
  case NBD_EINVAL: return -EINVAL;
  case NBD_ENOSPC: return -ENOSPC;
  case NBD_EOVERFLOW: return -EOVERFLOW;
  case NBD_ENOTSUP: return -ENOTSUP;
  case NBD_ESHUTDOWN: return -ESHUTDOWN;
  default: return -EINVAL;     /* the spec's rule for unknown errors */
  }
}

static const char *
cmd_name (uint16_t cmd)
{
  static const char *const names[] = {
    "READ", "WRITE", "DISC", "FLUSH", "TRIM", "CACHE", "WRITE_ZEROES",
    "BLOCK_STATUS",
  };
  return cmd < sizeof names / sizeof names[0] ? names[cmd] : "?";
}

/* A protocol violation: kill the connection, return -EPROTO. */
static int violation (struct nbd_cli_conn *c, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));

static int
violation (struct nbd_cli_conn *c, const char *fmt, ...)
{
  char msg[160];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  nbd_cli_conn_fail (c, -EPROTO, "%s: protocol error from the server: %s",
                     c->what, msg);
  return -EPROTO;
}

/* Read from the socket; a failure kills the connection. */
static int
rd (struct nbd_cli_conn *c, void *buf, size_t n)
{
  int r = nbd_conn_read_exact (c->s, buf, n);
  if (r == 0)
    return 0;
  nbd_cli_conn_io_failed (c, r, "reading a reply");
  return r;
}

static int
skip (struct nbd_cli_conn *c, size_t n)
{
  char buf[1024];
  while (n > 0) {
    size_t k = n < sizeof buf ? n : sizeof buf;
    int r = rd (c, buf, k);
    if (r < 0)
      return r;
    n -= k;
  }
  return 0;
}

/* Find the request a cookie names. */
static int
lookup (struct nbd_cli_conn *c, uint64_t cookie, struct req *q)
{
  uint32_t i = (uint32_t) cookie, gen = (uint32_t) (cookie >> 32);
  pthread_mutex_lock (&c->lock);
  bool ok = i < c->nslots && c->slots[i].state != SLOT_FREE
            && c->slots[i].gen == gen && !c->slots[i].replied;
  if (ok) {
    struct nbd_cli_slot *sl = &c->slots[i];
    *q = (struct req) { .index = i, .sl = sl, .cmd = sl->cmd,
                        .off = sl->off, .len = sl->len };
  }
  pthread_mutex_unlock (&c->lock);
  if (!ok)
    return violation (c, "reply for unknown cookie 0x%016" PRIx64, cookie);
  return 0;
}

/* ---- coverage of structured reads -------------------------------------- */

/* Record [a, b) (relative to the request) as covered; false if it overlaps
 * what is already covered or the read is too fragmented to track. */
static bool
cover_add (struct nbd_cli_cover *cv, uint64_t a, uint64_t b)
{
  if (a < cv->end)
    return false;
  /* Find the first interval that ends after a. */
  size_t lo = 0, hi = cv->n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (cv->iv[mid][1] <= a)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo < cv->n && cv->iv[lo][0] < b)
    return false;
  if (a == cv->end) {
    cv->end = b;
    /* Swallow the intervals that now touch the contiguous prefix. */
    size_t k = 0;
    while (k < cv->n && cv->iv[k][0] == cv->end)
      cv->end = cv->iv[k++][1];
    if (k > 0) {
      memmove (cv->iv, cv->iv + k, (cv->n - k) * sizeof cv->iv[0]);
      cv->n -= k;
    }
    return true;
  }
  if (lo > 0 && cv->iv[lo - 1][1] == a) {
    cv->iv[lo - 1][1] = b;
    if (lo < cv->n && cv->iv[lo][0] == b) {
      cv->iv[lo - 1][1] = cv->iv[lo][1];
      memmove (cv->iv + lo, cv->iv + lo + 1,
               (cv->n - lo - 1) * sizeof cv->iv[0]);
      cv->n--;
    }
    return true;
  }
  if (lo < cv->n && cv->iv[lo][0] == b) {
    cv->iv[lo][0] = a;
    return true;
  }
  if (cv->n == MAX_COVER_IV)
    return false;
  if (cv->n == cv->cap) {
    size_t cap = cv->cap ? cv->cap * 2 : 16;
    void *p = realloc (cv->iv, cap * sizeof cv->iv[0]);
    if (!p)
      return false;
    cv->iv = p;
    cv->cap = cap;
  }
  memmove (cv->iv + lo + 1, cv->iv + lo, (cv->n - lo) * sizeof cv->iv[0]);
  cv->iv[lo][0] = a;
  cv->iv[lo][1] = b;
  cv->n++;
  return true;
}

/* ---- chunks ------------------------------------------------------------ */

/* Check that [off, off+n) lies inside the request and is new. */
static int
claim (struct nbd_cli_conn *c, struct req *q, uint64_t off, uint64_t n,
       const char *what)
{
  if (off < q->off || off - q->off > q->len || n > q->len - (off - q->off))
    return violation (c, "%s at %" PRIu64 "+%" PRIu64 " outside the request "
                      "%" PRIu64 "+%" PRIu64, what, off, n, q->off, q->len);
  uint64_t a = off - q->off;
  if (!cover_add (&q->sl->cover, a, a + n))
    return violation (c, "%s at %" PRIu64 "+%" PRIu64 " overlaps earlier "
                      "data (or the read is too fragmented)", what, off, n);
  return 0;
}

static int
chunk_data (struct nbd_cli_conn *c, struct req *q, uint32_t len)
{
  char b[8];
  if (q->cmd != NBD_CMD_READ || len < 9)
    return violation (c, "OFFSET_DATA of %" PRIu32 " bytes for %s", len,
                      cmd_name (q->cmd));
  int r = rd (c, b, 8);
  uint64_t off = nbd_get64 (b);
  if (r == 0)
    r = claim (c, q, off, len - 8, "data");
  if (r == 0)
    r = rd (c, q->sl->buf + (off - q->off), len - 8);
  return r;
}

static int
chunk_hole (struct nbd_cli_conn *c, struct req *q, uint32_t len)
{
  char b[12];
  if (q->cmd != NBD_CMD_READ || len != 12)
    return violation (c, "OFFSET_HOLE of %" PRIu32 " bytes for %s", len,
                      cmd_name (q->cmd));
  int r = rd (c, b, 12);
  uint64_t off = nbd_get64 (b);
  uint32_t n = nbd_get32 (b + 8);
  if (r == 0 && n == 0)
    r = violation (c, "empty hole");
  if (r == 0)
    r = claim (c, q, off, n, "hole");
  if (r == 0)
    memset (q->sl->buf + (off - q->off), 0, n);
  return r;
}

/* Take descriptor i of a status chunk into the caller's extents. */
static int
status_extent (struct nbd_cli_conn *c, struct req *q, uint32_t i,
               uint64_t elen, uint32_t flags, uint64_t *sum)
{
  struct nbd_cli_status *st = NBD_CLI_STATUS (q->sl->io);
  /* Only the last extent may reach past the request. */
  if (elen == 0 || *sum >= q->len)
    return violation (c, "block status extent %" PRIu32 " %s", i,
                      elen == 0 ? "is empty" : "starts past the request");
  if (st->n < st->max) {
    uint64_t left = q->len - *sum;
    st->ext[st->n].len = elen < left ? elen : left;
    st->ext[st->n].flags = ((flags & NBD_STATE_HOLE) ? R3M_EXTENT_HOLE : 0)
                           | ((flags & NBD_STATE_ZERO) ? R3M_EXTENT_ZERO : 0);
    st->n++;
  }
  *sum += elen;
  return 0;
}

/* The context id that starts a status chunk: ours, and only once. */
static int
status_context (struct nbd_cli_conn *c, struct req *q, uint32_t id)
{
  if (id != c->ex.meta_id || q->sl->status_seen)
    return violation (c, "block status for context %" PRIu32 "%s", id,
                      q->sl->status_seen ? " again" : "");
  q->sl->status_seen = true;
  struct nbd_cli_status *st = NBD_CLI_STATUS (q->sl->io);
  st->n = 0;
  return 0;
}

static int
chunk_status (struct nbd_cli_conn *c, struct req *q, uint32_t len)
{
  if (q->cmd != NBD_CMD_BLOCK_STATUS || len < 12 || (len - 4) % 8
      || len > MAX_STATUS_LEN)
    return violation (c, "BLOCK_STATUS chunk of %" PRIu32 " bytes for %s",
                      len, cmd_name (q->cmd));
  char b[8 * 64];
  int r = rd (c, b, 4);
  if (r < 0 || (r = status_context (c, q, nbd_get32 (b))) < 0)
    return r;
  uint32_t count = (len - 4) / 8;
  uint64_t sum = 0;
  for (uint32_t i = 0; i < count;) {
    uint32_t k = count - i < 64 ? count - i : 64;
    if ((r = rd (c, b, 8 * k)) < 0)
      return r;
    for (uint32_t j = 0; j < k; j++, i++)
      if ((r = status_extent (c, q, i, nbd_get32 (b + 8 * j),
                              nbd_get32 (b + 8 * j + 4), &sum)) < 0)
        return r;
  }
  return 0;
}

/* BLOCK_STATUS_EXT: id, count, then (u64 length, u64 status). */
static int
chunk_status_ext (struct nbd_cli_conn *c, struct req *q, uint32_t len)
{
  if (q->cmd != NBD_CMD_BLOCK_STATUS || len < 24 || (len - 8) % 16
      || len > MAX_STATUS_EXT_LEN)
    return violation (c, "BLOCK_STATUS_EXT chunk of %" PRIu32 " bytes for %s",
                      len, cmd_name (q->cmd));
  char b[16 * 32];
  int r = rd (c, b, 8);
  if (r < 0 || (r = status_context (c, q, nbd_get32 (b))) < 0)
    return r;
  uint32_t count = (len - 8) / 16;
  if (nbd_get32 (b + 4) != count)
    return violation (c, "BLOCK_STATUS_EXT of %" PRIu32 " bytes says it has "
                      "%" PRIu32 " extents", len, nbd_get32 (b + 4));
  uint64_t sum = 0;
  for (uint32_t i = 0; i < count;) {
    uint32_t k = count - i < 32 ? count - i : 32;
    if ((r = rd (c, b, 16 * k)) < 0)
      return r;
    for (uint32_t j = 0; j < k; j++, i++) {
      uint64_t status = nbd_get64 (b + 16 * j + 8);
      /* base:allocation is a 32-bit context: the spec wants the rest 0. */
      if (status >> 32)
        return violation (c, "block status extent %" PRIu32 " with status "
                          "0x%" PRIx64, i, status);
      if ((r = status_extent (c, q, i, nbd_get64 (b + 16 * j),
                              (uint32_t) status, &sum)) < 0)
        return r;
    }
  }
  return 0;
}

/* An error chunk: remember the first error and the server's message. */
static int
chunk_error (struct nbd_cli_conn *c, struct req *q, uint16_t type,
             uint32_t len)
{
  char b[6];
  uint32_t fixed = type == NBD_REPLY_TYPE_ERROR_OFFSET ? 14 : 6;
  if (len < fixed || len > MAX_ERROR_LEN)
    return violation (c, "error chunk of %" PRIu32 " bytes", len);
  int r = rd (c, b, 6);
  if (r < 0)
    return r;
  uint32_t e = nbd_get32 (b);
  uint16_t mlen = nbd_get16 (b + 4);
  if (e == 0 || mlen > len - fixed)
    return violation (c, "error chunk with error %" PRIu32 " and a %" PRIu16
                      "-byte message in %" PRIu32 " bytes", e, mlen, len);
  char msg[R3M_ERROR_MSG_MAX / 2];
  size_t keep = mlen < sizeof msg - 1 ? mlen : sizeof msg - 1;
  if ((r = rd (c, msg, keep)) < 0 || (r = skip (c, mlen - keep)) < 0)
    return r;
  msg[keep] = '\0';
  for (size_t i = 0; i < keep; i++)
    if (!isprint ((unsigned char) msg[i]))
      msg[i] = '?';
  if (type == NBD_REPLY_TYPE_ERROR_OFFSET) {
    char o[8];
    if ((r = rd (c, o, 8)) < 0)
      return r;
    uint64_t off = nbd_get64 (o);
    if (off < q->off || off - q->off >= q->len)
      return violation (c, "error offset %" PRIu64 " outside the request",
                        off);
    r = skip (c, len - 14 - mlen);
  } else
    r = skip (c, len - 6 - mlen);
  if (r < 0)
    return r;

  int code = nbd_cli_errno_from_nbd (e);
  if (q->sl->result == 0)
    q->sl->result = code;
  pthread_mutex_lock (&c->lock);
  c->req_error = code;
  snprintf (c->req_msg, sizeof c->req_msg, "%s: %s at %" PRIu64 "+%" PRIu64
            " failed: %s%s%s", c->what, cmd_name (q->cmd), q->off, q->len,
            strerror (-code), keep ? ": " : "", msg);
  pthread_mutex_unlock (&c->lock);
  return 0;
}

/* One chunk whose header was read and whose request was found. */
static int
chunk (struct nbd_cli_conn *c, struct req *q, uint16_t flags, uint16_t type,
       uint32_t len)
{
  int r;
  switch (type) {
  case NBD_REPLY_TYPE_NONE:
    if (len != 0 || !(flags & NBD_REPLY_FLAG_DONE))
      return violation (c, "NONE chunk of %" PRIu32 " bytes%s", len,
                        (flags & NBD_REPLY_FLAG_DONE) ? "" : " without DONE");
    r = 0;
    break;
  case NBD_REPLY_TYPE_OFFSET_DATA:
    r = chunk_data (c, q, len);
    break;
  case NBD_REPLY_TYPE_OFFSET_HOLE:
    r = chunk_hole (c, q, len);
    break;
  case NBD_REPLY_TYPE_BLOCK_STATUS:
    if (c->ex.extended)
      return violation (c, "BLOCK_STATUS chunk with extended headers");
    r = chunk_status (c, q, len);
    break;
  case NBD_REPLY_TYPE_BLOCK_STATUS_EXT:
    if (!c->ex.extended)
      return violation (c, "BLOCK_STATUS_EXT chunk without extended "
                        "headers");
    r = chunk_status_ext (c, q, len);
    break;
  default:
    if (!(type & 0x8000))
      return violation (c, "unknown chunk type %" PRIu16, type);
    r = chunk_error (c, q, type, len);
    break;
  }
  if (r < 0 || !(flags & NBD_REPLY_FLAG_DONE))
    return r;

  /* The reply is complete: a success must have delivered everything. */
  int result = q->sl->result;
  if (result == 0 && q->cmd == NBD_CMD_READ && q->sl->cover.end != q->len)
    return violation (c, "READ at %" PRIu64 "+%" PRIu64 " done with only "
                      "part of the data", q->off, q->len);
  if (result == 0 && q->cmd == NBD_CMD_BLOCK_STATUS && !q->sl->status_seen)
    return violation (c, "BLOCK_STATUS done without extents");
  nbd_cli_slot_finish (c, q->index, result);
  return 0;
}

static int
structured (struct nbd_cli_conn *c, const char *h)
{
  struct req q;
  int r = lookup (c, nbd_get64 (h + 8), &q);
  if (r < 0)
    return r;
  return chunk (c, &q, nbd_get16 (h + 4), nbd_get16 (h + 6),
                nbd_get32 (h + 16));
}

/* An extended reply chunk (NBD_EXT_REPLY_SIZE bytes at h). */
static int
extended (struct nbd_cli_conn *c, const char *h)
{
  uint64_t off = nbd_get64 (h + 16), len = nbd_get64 (h + 24);
  struct req q;
  int r = lookup (c, nbd_get64 (h + 8), &q);
  if (r < 0)
    return r;
  if (off != q.off)
    return violation (c, "reply names offset %" PRIu64 " for %s at %" PRIu64,
                      off, cmd_name (q.cmd), q.off);
  if (len > UINT32_MAX)
    return violation (c, "reply chunk of %" PRIu64 " bytes", len);
  return chunk (c, &q, nbd_get16 (h + 4), nbd_get16 (h + 6), (uint32_t) len);
}

static int
simple (struct nbd_cli_conn *c, const char *h)
{
  uint32_t e = nbd_get32 (h + 4);
  struct req q;
  int r = lookup (c, nbd_get64 (h + 8), &q);
  if (r < 0)
    return r;
  int result = e ? nbd_cli_errno_from_nbd (e) : 0;
  if (e == 0 && q.cmd == NBD_CMD_READ) {
    /* With structured replies a simple reply cannot say how much data
     * follows, so only an error may come this way. */
    if (c->ex.structured)
      return violation (c, "simple reply with data to a READ");
    if ((r = rd (c, q.sl->buf, q.len)) < 0)
      return r;
  }
  if (e == 0 && q.cmd == NBD_CMD_BLOCK_STATUS)
    return violation (c, "simple reply to BLOCK_STATUS");
  if (e != 0) {
    pthread_mutex_lock (&c->lock);
    c->req_error = result;
    snprintf (c->req_msg, sizeof c->req_msg, "%s: %s at %" PRIu64 "+%" PRIu64
              " failed: %s", c->what, cmd_name (q.cmd), q.off, q.len,
              strerror (-result));
    pthread_mutex_unlock (&c->lock);
  }
  nbd_cli_slot_finish (c, q.index, result);
  return 0;
}

/* Read and handle one reply or chunk. */
static int
read_one (struct nbd_cli_conn *c)
{
  char h[NBD_EXT_REPLY_SIZE];
  if (c->ex.extended) {
    int r = rd (c, h, NBD_EXT_REPLY_SIZE);
    if (r < 0)
      return r;
    if (nbd_get32 (h) != NBD_EXT_REPLY_MAGIC)
      return violation (c, "bad reply magic 0x%08" PRIx32 " with extended "
                        "headers", nbd_get32 (h));
    return extended (c, h);
  }
  int r = rd (c, h, NBD_SIMPLE_REPLY_SIZE);
  if (r < 0)
    return r;
  uint32_t magic = nbd_get32 (h);
  if (magic == NBD_SIMPLE_REPLY_MAGIC)
    return simple (c, h);
  if (magic == NBD_STRUCTURED_REPLY_MAGIC && c->ex.structured) {
    if ((r = rd (c, h + NBD_SIMPLE_REPLY_SIZE,
                 NBD_CHUNK_HEADER_SIZE - NBD_SIMPLE_REPLY_SIZE)) < 0)
      return r;
    return structured (c, h);
  }
  return violation (c, "bad reply magic 0x%08" PRIx32, magic);
}

void
nbd_cli_reader_run (struct nbd_cli_conn *c)
{
  for (;;) {
    pthread_mutex_lock (&c->lock);
    bool dead = c->dead;
    pthread_mutex_unlock (&c->lock);
    if (dead || read_one (c) < 0)
      break;
  }
  nbd_cli_conn_reader_exit (c);
}

void *
nbd_cli_reader_main (void *conn)
{
  nbd_cli_reader_run (conn);
  return NULL;
}
