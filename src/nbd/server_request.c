/* One transmission request: reading it, checking it, executing it.
 *
 * Errors from the backend map to NBD errors by nbd_srv_errno_to_nbd;
 * ENOTSUP only ever answers a FAST_ZERO request, as the spec wants.
 *
 * Checks, in order (the first failure is the reply):
 *   unknown command                      NBD_EINVAL
 *   a flag the command does not take     NBD_EINVAL
 *   write/trim/zero on a read-only export NBD_EPERM
 *   BLOCK_STATUS without a context       NBD_EINVAL
 *   range beyond the end                 NBD_ENOSPC (write, zero),
 *                                        NBD_EINVAL (others)
 *   offset/length not aligned to the minimum block size   NBD_EINVAL
 *   READ/WRITE longer than max payload   NBD_EOVERFLOW (structured READ),
 *                                        NBD_EINVAL (otherwise)
 *   BLOCK_STATUS of length 0             NBD_EINVAL
 * FLUSH ignores its offset and length.  A WRITE that fails a check still
 * has its payload consumed, so the stream stays in step.
 *
 * Extended headers (NBD_OPT_EXTENDED_HEADERS) give 64-bit lengths: the
 * same checks apply, so TRIM, WRITE_ZEROES, CACHE and BLOCK_STATUS may
 * cover more than 4 GiB, and a READ beyond the maximum payload gets
 * NBD_EOVERFLOW.  NBD_CMD_FLAG_PAYLOAD_LEN is required on WRITE and
 * refused elsewhere (the payload is consumed first), both NBD_EINVAL,
 * except on BLOCK_STATUS when the payload form is advertised
 * (NBD_FLAG_BLOCK_STAT_PAYLOAD): there a payload that is malformed or
 * names a context not selected is NBD_EINVAL. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "nbd/server.h"
#include "util/time.h"

/* ---- reading --------------------------------------------------------- */

#define SPIN_QUIET_FACTOR 4     /* silence of spin_ns x this: stop */
#define SPIN_BACKOFF_MIN  16    /* fills without spinning after losing */
#define SPIN_BACKOFF_MAX  4096  /* the CPU while spinning */
#define HOLD_BACKOFF_MAX  4096  /* fills without holding, at most */

int
nbd_srv_reader_init (struct nbd_srv_reader *r, struct nbd_conn *conn,
                     size_t cap)
{
  memset (r, 0, sizeof *r);
  r->conn = conn;
  r->cap = cap;
  r->header_size = NBD_REQUEST_SIZE;
  r->compact_magic = NBD_REQUEST_MAGIC;
  r->spin_backoff = SPIN_BACKOFF_MIN;
  r->hold_backoff = 1;
  r->buf = malloc (cap);
  return r->buf ? 0 : -ENOMEM;
}

void
nbd_srv_reader_set_extended (struct nbd_srv_reader *r)
{
  r->header_size = NBD_EXT_REQUEST_SIZE;
  r->compact_magic = UINT64_MAX;
}

void
nbd_srv_reader_free (struct nbd_srv_reader *r)
{
  free (r->buf);
  r->buf = NULL;
}

/* Read what the socket holds, busy polling first when that pays.
 *
 * A client that pipelines requests sends the next one within
 * microseconds; if we sleep in read(2) instead, its send has to wake us,
 * which on small virtual machines costs the client more than the request
 * itself (and the client is the bottleneck of small random I/O).  So
 * with spin_ns set, a fill first takes what is there without waiting
 * (replies stay batched while requests keep coming), and only when the
 * socket is empty (and holding, fill_hold, found nothing more) sends the
 * batch and polls for up to spin_ns before it sleeps.  Once a client
 * stays silent for much longer than that (it waits for its replies, or is
 * idle), fills sleep at once until requests again follow each other
 * closely.  One spinner per server: two spinning threads would starve
 * each other and the client on two CPUs.
 *
 * Over TCP only the rest of a large payload is read this way, and the
 * request right behind it: between small requests polling made the
 * server answer each at once in a segment of its own, and fio spent
 * more, not less, per request (TCP loopback costs the client per
 * segment more than per wake-up; see docs/nbd-server.md); there only
 * fill_hold polls, while replies wait, to make batches larger.  After a
 * large WRITE there is no batch to lose, and a client streaming them
 * would otherwise wake us once per request. */

static int
before_block (struct nbd_srv_reader *r)
{
  return r->before_block ? r->before_block (r->arg) : 0;
}

/* Skip the next *next attempts, and twice as many after the next loss
 * (up to max). */
static void
back_off (unsigned *skip, unsigned *next, unsigned max)
{
  *skip = *next;
  *next = *next < max ? *next * 2 : max;
}

/* Holding the batch.  A client that pipelines small requests sends the
 * next ones a few microseconds apart, as it takes in replies; answering
 * each as it comes means one send, one segment (TCP) and one wake-up of
 * the client per reply or two, and with small random I/O the client, not
 * the server, is the bottleneck.  So when the socket is empty and
 * replies wait, poll for more requests for up to hold_ns (per batch, not
 * per request) and answer them all in one send.  (On Unix sockets this
 * comes before fill_read's own polling, which sends the batch first.)
 *
 * A client with nothing more to send would wait out every hold, and one
 * with a small window would go in lock step with us: all its requests
 * here, then all its replies there, each side idle in turn (four in
 * flight: 0.7x without this guard).  So no hold once half of the most
 * replies ever seen waiting at once (hold_depth, the client's window as
 * far as we can tell) wait: a client with one or two requests in flight
 * is never held, one with 32 gets batches of up to 16 while the other
 * half keeps it busy.  And a hold that finds nothing skips the
 * next 1, 2, 4, ... holds (up to HOLD_BACKOFF_MAX fills; one that finds
 * a request starts over), for a client whose window shrank.  Shares the
 * one-spinner token with fill_read's polling.  Returns what the socket
 * had, or -EAGAIN: send the batch and sleep. */
static ssize_t
hold_for_more (struct nbd_srv_reader *r, void *buf, size_t len, bool empty)
{
  unsigned waiting = r->pending (r->arg);
  if (waiting > r->hold_depth)
    r->hold_depth = waiting;
  if (waiting == 0 || waiting * 2 >= r->hold_depth)
    return -EAGAIN;
  ssize_t k = empty ? -EAGAIN : nbd_conn_read_now (r->conn, buf, len);
  if (k != -EAGAIN)
    return k;
  if (r->hold_skip > 0) {
    r->hold_skip--;
    return -EAGAIN;
  }
  uint64_t now = util_now_ns ();
  if (r->hold_until == 0)
    r->hold_until = now + r->hold_ns;
  int idle = 0;
  if (now >= r->hold_until
      || !atomic_compare_exchange_strong (r->spin_token, &idle, 1))
    return -EAGAIN;
  k = nbd_conn_read_spin (r->conn, buf, len, r->hold_until - now);
  atomic_store (r->spin_token, 0);
  atomic_fetch_add (r->holds, 1);
  if (k == -EAGAIN || k == -EBUSY) {
    /* Only a batch that holding did not grow at all counts against it:
     * the last hold of one that grew always runs out. */
    if (!r->hold_gained || k == -EBUSY)
      back_off (&r->hold_skip, &r->hold_backoff, HOLD_BACKOFF_MAX);
    return -EAGAIN;
  }
  if (k > 0) {                  /* not the end of the stream, nor an error */
    atomic_fetch_add (r->holds_found, 1);
    r->hold_gained = true;
    r->hold_backoff = 1;
  }
  return k;
}

/* Holding (above), and the end of a batch's hold whenever it sends the
 * batch.  empty: the caller has just found the socket empty. */
static ssize_t
fill_hold (struct nbd_srv_reader *r, void *buf, size_t len, bool empty)
{
  ssize_t k = hold_for_more (r, buf, len, empty);
  if (k == -EAGAIN) {
    /* The batch goes out now; the next one starts afresh. */
    r->hold_until = 0;
    r->hold_gained = false;
  }
  return k;
}

static ssize_t
fill_read (struct nbd_srv_reader *r, void *buf, size_t len, bool payload)
{
  bool spin = payload || r->spin_requests || r->streamed;
  if (!payload)
    r->streamed = false;
  if (r->spin_ns == 0 || !spin) {
    if (r->hold_ns && !spin) {  /* !spin: not a payload either */
      ssize_t k = fill_hold (r, buf, len, false);
      if (k != -EAGAIN)
        return k;
    }
    int b = before_block (r);
    return b < 0 ? b : nbd_conn_read_some (r->conn, buf, len);
  }
  ssize_t k = nbd_conn_read_now (r->conn, buf, len);
  if (k != -EAGAIN) {
    r->spin_off = false;
    return k;
  }
  if (r->hold_ns && !payload) {
    k = fill_hold (r, buf, len, true);
    if (k != -EAGAIN)
      return k;
  }
  int b = before_block (r);
  if (b < 0)
    return b;
  int idle = 0;
  if (r->spin_skip > 0)
    r->spin_skip--;
  else if (!r->spin_off
           && atomic_compare_exchange_strong (r->spin_token, &idle, 1)) {
    k = nbd_conn_read_spin (r->conn, buf, len, r->spin_ns);
    atomic_store (r->spin_token, 0);
    if (k == -EBUSY) {
      /* A busy machine: polling would take the CPU from others (and on
       * two CPUs, likely from the client).  Back off, exponentially
       * while this repeats. */
      back_off (&r->spin_skip, &r->spin_backoff, SPIN_BACKOFF_MAX);
    } else if (k != -EAGAIN) {
      r->spin_backoff = SPIN_BACKOFF_MIN;
      return k;
    }
  }
  /* Sleep; how long the client kept us waiting decides the next fill. */
  uint64_t t0 = util_now_ns ();
  k = nbd_conn_read_some (r->conn, buf, len);
  r->spin_off = util_now_ns () - t0 > r->spin_ns * SPIN_QUIET_FACTOR;
  return k;
}

static int
reader_fill (struct nbd_srv_reader *r)
{
  ssize_t k = fill_read (r, r->buf + r->end, r->cap - r->end, false);
  if (k <= 0)
    return k == 0 ? -ENODATA : (int) k;
  r->end += (size_t) k;
  return 0;
}

int
nbd_srv_reader_need (struct nbd_srv_reader *r, size_t n)
{
  if (r->end - r->start >= n)
    return 0;
  if (r->start == r->end)
    r->start = r->end = 0;
  else if (r->cap - r->start < n) {
    memmove (r->buf, r->buf + r->start, r->end - r->start);
    r->end -= r->start;
    r->start = 0;
  }
  while (r->end - r->start < n) {
    bool empty = r->end == r->start;
    int k = reader_fill (r);
    if (k == -ENODATA)
      return empty ? 1 : -ECONNRESET;
    if (k < 0)
      return k;
  }
  return 0;
}

int
nbd_srv_reader_copy (struct nbd_srv_reader *r, void *dst, size_t len)
{
  size_t have = r->end - r->start;
  size_t n = have < len ? have : len;
  memcpy (dst, r->buf + r->start, n);
  r->start += n;
  if (n == len)
    return 0;
  /* Batched replies go out before we wait for the rest: the client is
   * waiting for them, and one more send per large payload is nothing. */
  int b = before_block (r);
  if (b < 0)
    return b;
  unsigned char *p = (unsigned char *) dst + n;
  len -= n;
  r->streamed = true;
  if (!r->spin_ns)
    return nbd_conn_read_exact (r->conn, p, len);
  /* The rest straight into dst, busy polling like a fill: a client
   * streaming a large payload then never has to wake us. */
  while (len > 0) {
    ssize_t k = fill_read (r, p, len, true);
    if (k == 0)
      return -ECONNRESET;
    if (k < 0)
      return (int) k;
    p += k;
    len -= (size_t) k;
  }
  return 0;
}

int
nbd_srv_reader_skip (struct nbd_srv_reader *r, uint64_t len)
{
  size_t have = r->end - r->start;
  size_t n = have < len ? have : (size_t) len;
  r->start += n;
  if (n == len)
    return 0;
  int b = before_block (r);
  if (b < 0)
    return b;
  return nbd_conn_discard (r->conn, len - n);
}

/* The BLOCK_STATUS payload form (u64 effect length, u32 context ids),
 * len bytes of it at the reader: into req->len and req->only, which stays
 * 0 when the payload is malformed (short, no ids, an id twice or beyond
 * NBD_SRV_MAX_FILTER_IDS); consumed either way. */
static int
status_payload (struct nbd_srv_reader *r, struct nbd_srv_req *req,
                uint64_t len)
{
  req->only = 0;
  req->len = 0;
  if (len < 12 || (len - 8) % 4 || len > 8 + 4 * NBD_SRV_MAX_FILTER_IDS)
    return nbd_srv_reader_skip (r, len);
  int k = nbd_srv_reader_need (r, (size_t) len);
  if (k != 0)
    return k > 0 ? -ECONNRESET : k;
  const unsigned char *p = r->buf + r->start;
  r->start += (size_t) len;
  uint64_t only = 0;
  for (uint64_t i = 8; i < len; i += 4) {
    uint32_t id = nbd_get32 (p + i);
    if (id == 0 || id > NBD_SRV_MAX_FILTER_IDS
        || (only & (UINT64_C (1) << (id - 1))))
      return 0;
    only |= UINT64_C (1) << (id - 1);
  }
  req->len = nbd_get64 (p);
  req->only = only;
  return 0;
}

/* An extended header (NBD spec, extension-ext-header, "Request
 * message"), turned into the compact form described in server.h. */
static int
reader_ext_header (struct nbd_srv_reader *r, struct nbd_srv_req *req)
{
  const unsigned char *p = r->buf + r->start;
  if (r->header_size != NBD_EXT_REQUEST_SIZE
      || nbd_get32 (p) != NBD_EXT_REQUEST_MAGIC)
    return -EPROTO;
  uint16_t flags = nbd_get16 (p + 4);
  req->type = nbd_get16 (p + 6);
  req->cookie = nbd_get64 (p + 8);
  req->off = nbd_get64 (p + 16);
  uint64_t len = nbd_get64 (p + 24);
  req->error = 0;
  req->msg = NULL;
  r->start += NBD_EXT_REQUEST_SIZE;
  bool payload = flags & NBD_CMD_FLAG_PAYLOAD_LEN;
  /* The spec lets a server consume an unwanted payload and fail the
   * command; beyond 32 bits it cannot be one, and reading it would take
   * for ever. */
  if (payload && len > NBD_SRV_EXT_MAX_PAYLOAD)
    return -EMSGSIZE;
  if (req->type == NBD_CMD_WRITE) {
    /* Toggled, not cleared: a WRITE that carries it is a plain WRITE from
     * here on, and one without it keeps an unknown flag, which the checks
     * answer with NBD_EINVAL (with len 0, so no payload is read). */
    flags ^= NBD_CMD_FLAG_PAYLOAD_LEN;
    if (!payload)
      len = 0;                  /* an effect length: nothing follows */
  } else if (payload && req->type == NBD_CMD_BLOCK_STATUS) {
    req->flags = flags;
    return status_payload (r, req, len);
  } else if (payload) {
    int k = nbd_srv_reader_skip (r, len);
    if (k < 0)
      return k;
    len = 0;
  }
  req->flags = flags;
  req->len = len;
  return 0;
}

int
nbd_srv_reader_header (struct nbd_srv_reader *r, struct nbd_srv_req *req)
{
  const unsigned char *p = r->buf + r->start;
  if (nbd_get32 (p) != r->compact_magic)
    return reader_ext_header (r, req);
  req->flags = nbd_get16 (p + 4);
  req->type = nbd_get16 (p + 6);
  req->cookie = nbd_get64 (p + 8);
  req->off = nbd_get64 (p + 16);
  req->len = nbd_get32 (p + 24);
  req->error = 0;
  req->msg = NULL;
  r->start += NBD_REQUEST_SIZE;
  return 0;
}

const char *
nbd_srv_header_error (int r)
{
  switch (r) {
  case -EPROTO: return "bad request magic";
  case -EMSGSIZE: return "extended request with a payload over 4 GiB";
  default: return strerror (-r);
  }
}

/* ---- checking ---------------------------------------------------------- */

static const char *
command_name (uint16_t type)
{
  static const char *const names[] = {
    "read", "write", "disconnect", "flush", "trim", "cache", "write zeroes",
    "block status",
  };
  return type < sizeof names / sizeof names[0] ? names[type] : "command";
}

static uint16_t
allowed_flags (const struct nbd_srv_conn *sc, uint16_t type)
{
  /* FUA is valid on every command (and harmless where nothing is
   * written); the others belong to one command each. */
  switch (type) {
  case NBD_CMD_READ:
    return NBD_CMD_FLAG_FUA | (sc->structured ? NBD_CMD_FLAG_DF : 0);
  case NBD_CMD_WRITE_ZEROES:
    return NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE
           | ((sc->eflags & NBD_FLAG_SEND_FAST_ZERO) ? NBD_CMD_FLAG_FAST_ZERO
                                                     : 0);
  case NBD_CMD_BLOCK_STATUS:
    return NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_REQ_ONE
           | ((sc->eflags & NBD_FLAG_BLOCK_STAT_PAYLOAD)
              ? NBD_CMD_FLAG_PAYLOAD_LEN : 0);
  default:
    return NBD_CMD_FLAG_FUA;
  }
}

/* Why req's flags were refused.  With extended headers PAYLOAD_LEN is
 * left on a request exactly when it is wrong (see server.h). */
static const char *
flag_problem (const struct nbd_srv_conn *sc, const struct nbd_srv_req *req)
{
  if (!sc->extended || !(req->flags & NBD_CMD_FLAG_PAYLOAD_LEN))
    return "command flag not valid for this command";
  return req->type == NBD_CMD_WRITE
         ? "WRITE without NBD_CMD_FLAG_PAYLOAD_LEN"
         : "this command takes no payload";
}

/* A BLOCK_STATUS payload named only contexts that are selected. */
static bool
only_selected (const struct nbd_srv_conn *sc, const struct nbd_srv_req *req)
{
  uint64_t selected = 0;
  for (size_t i = 0; i < sc->nsel; i++)
    if (sc->sel[i].id <= NBD_SRV_MAX_FILTER_IDS)
      selected |= UINT64_C (1) << (sc->sel[i].id - 1);
  return req->only != 0 && (req->only & ~selected) == 0;
}

/* The first check req fails: its NBD error and *msg, or 0. */
static int
check (const struct nbd_srv_conn *sc, const struct nbd_srv_req *req,
       const char **msg)
{
  const struct nbd_srv_export *e = sc->exp;
  uint16_t t = req->type;
  if (t > NBD_CMD_BLOCK_STATUS || t == NBD_CMD_DISC)
    return *msg = "unknown command", NBD_EINVAL;
  if (req->flags & ~allowed_flags (sc, t))
    return *msg = flag_problem (sc, req), NBD_EINVAL;
  bool writes = t == NBD_CMD_WRITE || t == NBD_CMD_TRIM
                || t == NBD_CMD_WRITE_ZEROES;
  if (writes && e->read_only)
    return *msg = "the export is read-only", NBD_EPERM;
  if (t == NBD_CMD_BLOCK_STATUS) {
    if (sc->nsel == 0)
      return *msg = "no metadata context was selected", NBD_EINVAL;
    if ((req->flags & NBD_CMD_FLAG_PAYLOAD_LEN) && !only_selected (sc, req))
      return *msg = "block status payload malformed or naming a context "
                    "not selected", NBD_EINVAL;
  }
  if (t == NBD_CMD_FLUSH)
    return 0;
  if (req->off > e->size || req->len > e->size - req->off) {
    *msg = "request goes beyond the end of the export";
    return t == NBD_CMD_WRITE || t == NBD_CMD_WRITE_ZEROES ? NBD_ENOSPC
                                                           : NBD_EINVAL;
  }
  if (e->min_block > 1
      && (req->off % e->min_block != 0
          || (req->len % e->min_block != 0 && req->off + req->len != e->size)))
    return *msg = "request is not aligned to the minimum block size",
           NBD_EINVAL;
  if ((t == NBD_CMD_READ || t == NBD_CMD_WRITE) && req->len > e->max_payload) {
    *msg = "request is larger than the maximum payload";
    return t == NBD_CMD_READ && sc->structured ? NBD_EOVERFLOW : NBD_EINVAL;
  }
  if (t == NBD_CMD_BLOCK_STATUS && req->len == 0)
    return *msg = "block status of zero bytes", NBD_EINVAL;
  return 0;
}

void
nbd_srv_validate (struct nbd_srv_conn *sc, struct nbd_srv_req *req)
{
  req->msg = NULL;
  req->error = check (sc, req, &req->msg);
}

/* ---- executing --------------------------------------------------------- */

int
nbd_srv_errno_to_nbd (int r)
{
  switch (-r) {
  case EPERM: case EROFS: case EACCES:
    return NBD_EPERM;
  case ENOMEM:
    return NBD_ENOMEM;
  case EINVAL:
    return NBD_EINVAL;
  case ENOSPC: case EDQUOT: case EFBIG:
    return NBD_ENOSPC;
  case ENOTSUP:
    return NBD_ENOTSUP;
  case ESHUTDOWN:
    return NBD_ESHUTDOWN;
  default:
    return NBD_EIO;
  }
}

/* NBD_CMD_CACHE: read through (a region behind the backend pulls the
 * data in) and drop the bytes.  Backends that run inline are plain
 * memory, where there is nothing to warm. */
static int
cache_through (const struct nbd_srv_export *e, uint64_t off, uint64_t len)
{
  if (e->inline_io || len == 0)
    return 0;
  size_t step = len < (1u << 20) ? (size_t) len : 1u << 20;
  unsigned char *buf = malloc (step);
  if (!buf)
    return -ENOMEM;
  int r = 0;
  for (uint64_t done = 0; r == 0 && done < len; done += step) {
    size_t n = len - done < step ? (size_t) (len - done) : step;
    r = r3m_backend_pread (e->backend, buf, n, off + done);
  }
  free (buf);
  return r;
}

static int
flush (struct nbd_srv_conn *sc)
{
  /* Clear first: a write that completes while we flush sets it again. */
  atomic_store (&sc->wrote, false);
  int r = r3m_backend_flush (sc->exp->backend);
  if (r < 0)
    atomic_store (&sc->wrote, true);
  return r;
}

void
nbd_srv_flush_if_wrote (struct nbd_srv_conn *sc)
{
  if (!sc->exp || !atomic_load (&sc->wrote))
    return;
  int r = flush (sc);
  if (r < 0)
    nbd_srv_log (sc->srv, R3M_NBD_LOG_ERROR,
                 "%s: flush at disconnect: %s", sc->peer, strerror (-r));
}

void
nbd_srv_execute (struct nbd_srv_conn *sc, struct nbd_srv_req *req,
                 struct nbd_srv_result *res)
{
  const struct nbd_srv_export *e = sc->exp;
  bool fua = req->flags & NBD_CMD_FLAG_FUA;
  int r = 0;
  switch (req->type) {
  case NBD_CMD_READ:
    r = r3m_backend_pread (e->backend, req->buf, req->len, req->off);
    res->data = req->buf;
    res->len = req->len;
    if (r == 0)
      atomic_fetch_add_explicit (&sc->bytes_read, req->len,
                                 memory_order_relaxed);
    break;
  case NBD_CMD_WRITE:
    atomic_store (&sc->wrote, true);
    r = r3m_backend_pwrite (e->backend, req->buf, req->len, req->off,
                            fua ? R3M_IO_FUA : 0);
    if (r == 0)
      atomic_fetch_add_explicit (&sc->bytes_written, req->len,
                                 memory_order_relaxed);
    break;
  case NBD_CMD_FLUSH:
    r = flush (sc);
    break;
  case NBD_CMD_TRIM:
    atomic_store (&sc->wrote, true);
    r = r3m_backend_trim (e->backend, req->len, req->off);
    if (r == 0 && fua)
      r = flush (sc);
    break;
  case NBD_CMD_CACHE:
    r = cache_through (e, req->off, req->len);
    break;
  case NBD_CMD_WRITE_ZEROES:
    if ((req->flags & NBD_CMD_FLAG_FAST_ZERO) && !e->fast_zero) {
      r = -ENOTSUP;
      break;
    }
    atomic_store (&sc->wrote, true);
    r = r3m_backend_zero (e->backend, req->len, req->off,
                          (fua ? R3M_IO_FUA : 0)
                          | ((req->flags & NBD_CMD_FLAG_NO_HOLE)
                             ? 0 : R3M_IO_MAY_TRIM));
    break;
  case NBD_CMD_BLOCK_STATUS:
    nbd_srv_block_status (sc, req, res);
    return;
  }
  if (r < 0) {
    /* ENOTSUP is reserved for a refused fast zero. */
    bool fast = req->type == NBD_CMD_WRITE_ZEROES
                && (req->flags & NBD_CMD_FLAG_FAST_ZERO);
    int ne = nbd_srv_errno_to_nbd (r);
    if (ne == NBD_ENOTSUP && !fast)
      ne = NBD_EIO;
    if (fast && r == -ENOTSUP)
      nbd_srv_result_fail (res, ne, "zeroing is not faster than writing "
                           "on this export");
    else
      nbd_srv_result_fail (res, ne, "%s: %s", command_name (req->type),
                           strerror (-r));
  }
}
