/* Transmission on the reader thread, for backends that never block.
 *
 * The connection's one thread reads a buffer full of requests, executes
 * them in order and gathers the replies into one writev, sent just before
 * the next read that might block.  With pipelined 4 KiB requests that is
 * one read and one write system call for a whole batch, and no thread
 * hand-offs at all (those are expensive on small virtual machines).
 *
 * Buffers, all per connection:
 *   reader     256 KiB; a WRITE payload that fits is used in place
 *   arena      256 KiB; READ data for batched replies
 *   big        grown on demand up to the largest payload seen; a reply
 *              that uses it (or owns its data) is sent at once
 *
 * Zero copy.  When the backend offers its memory directly (memory:), READ
 * replies point into the store and WRITE payloads are received straight
 * into it: one copy per byte (the kernel's) instead of two.  A batch never
 * holds a reply pointing into the store while a later request of the same
 * batch changes the store: write-like requests send the batch first, so
 * every reply shows the store as it was when its request executed.
 *
 * By reference.  On a plain socket, large READ replies from the store are
 * not even copied into the socket: the kernel takes references to the
 * store's pages (splice_send.c).  The socket may then still be sending
 * them when a later WRITE changes the store; that WRITE was sent before
 * the client had the READ's reply, so the two were in flight together,
 * and NBD leaves the data such a READ returns open.  Over TCP only while
 * this is the server's one connection: the receiver pays more for data
 * in page-sized pieces than for the server's copy, which only pays off
 * while that copy is what limits (TCP loopback, 1 MiB reads: one
 * connection 6.2 -> 7.9-8.8 GB/s by reference, two 9.1-10.2 -> 4.3-8.2).
 * Unix sockets gained either way (6.4 -> 12.4, and 8.6 -> 12.3 for two).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "nbd/server.h"

#define READER_CAP  (256u * 1024)
#define ARENA_CAP   (256u * 1024)
#define BATCH_IOV   64
#define BATCH_HDR   (BATCH_IOV / 2 * NBD_SRV_HDR_MAX)
/* WRITE payloads up to this size pass through the reader buffer even on
 * the zero-copy path; larger ones are received straight into the store. */
#define SMALL_PAYLOAD (64u * 1024)
/* READ replies from the store at least this large go by reference.  Below
 * it the reader pays more for freeing the pages one by one than the copy
 * saves: on TCP loopback 64 KiB reads fell from 6.4 to 3.9 GB/s by
 * reference, 256 KiB reads rose from 6.5 to 7.3. */
#define BY_REF_MIN (256u * 1024)

struct inline_tx {
  struct nbd_srv_conn *sc;
  struct nbd_srv_reader rd;
  struct iovec iov[BATCH_IOV];
  int niov;
  unsigned char hdr[BATCH_HDR];
  size_t hdr_used;
  unsigned char *arena;
  size_t arena_used;
  unsigned char *big;
  size_t big_cap;
  bool direct_pending;        /* a batched reply points into the store */
  bool by_ref;                /* large READ replies by reference */
  bool by_ref_alone;          /* ... only while the server's one
                                 connection (TCP) */
};

/* Send what is batched.  Also the reader's before_block hook. */
static int
flush_batch (void *arg)
{
  struct inline_tx *tx = arg;
  if (tx->niov == 0)
    return 0;
  int r = nbd_conn_writev_all (tx->sc->conn, tx->iov, tx->niov);
  tx->niov = 0;
  tx->hdr_used = 0;
  tx->arena_used = 0;
  tx->direct_pending = false;
  return r;
}

/* The reader's pending hook: how many replies wait in the batch. */
static unsigned
batch_pending (void *arg)
{
  const struct inline_tx *tx = arg;
  return (unsigned) (tx->hdr_used / NBD_SRV_HDR_MAX);
}

static int
grow_big (struct inline_tx *tx, size_t len)
{
  if (len <= tx->big_cap)
    return 0;
  free (tx->big);
  tx->big = malloc (len);
  tx->big_cap = tx->big ? len : 0;
  return tx->big ? 0 : -ENOMEM;
}

/* Where READ data of len bytes goes: the arena when it fits (flushing it
 * first if it is full), else the big buffer.  Sets *now when the reply
 * must go out immediately. */
static int
read_buffer (struct inline_tx *tx, size_t len, void **buf, bool *now)
{
  if (len <= ARENA_CAP) {
    if (len > ARENA_CAP - tx->arena_used) {
      int r = flush_batch (tx);
      if (r < 0)
        return r;
    }
    *buf = tx->arena + tx->arena_used;
    tx->arena_used += len;
    return 0;
  }
  int r = flush_batch (tx);
  if (r == 0)
    r = grow_big (tx, len);
  *buf = tx->big;
  *now = true;
  return r;
}

/* Get the WRITE payload: in place in the reader buffer when it fits
 * (*in_place: consume it after executing), else copied into big. */
static int
write_payload (struct inline_tx *tx, size_t len, void **buf, bool *in_place)
{
  if (len <= READER_CAP - NBD_REQUEST_SIZE) {
    int r = nbd_srv_reader_need (&tx->rd, len);
    if (r != 0)
      return r > 0 ? -ECONNRESET : r;
    *buf = tx->rd.buf + tx->rd.start;
    *in_place = true;
    return 0;
  }
  int r = grow_big (tx, len);
  if (r == 0)
    r = nbd_srv_reader_copy (&tx->rd, tx->big, len);
  *buf = tx->big;
  return r;
}

static int
queue_reply (struct inline_tx *tx, struct nbd_srv_req *req,
             struct nbd_srv_result *res, bool now)
{
  unsigned char *h = tx->hdr + tx->hdr_used;
  int n = nbd_srv_encode_reply (tx->sc, req, res, h, tx->iov + tx->niov);
  tx->niov += n;
  tx->hdr_used += NBD_SRV_HDR_MAX;
  int r = 0;
  if (now || res->data_owned || tx->niov + 2 > BATCH_IOV
      || tx->hdr_used + NBD_SRV_HDR_MAX > BATCH_HDR)
    r = flush_batch (tx);
  if (res->data_owned)
    free (res->data);
  return r;
}

/* Whether a READ reply of len bytes from the store goes by reference. */
static bool
by_ref_now (const struct inline_tx *tx, size_t len)
{
  return tx->by_ref && len >= BY_REF_MIN
         && (!tx->by_ref_alone
             || atomic_load_explicit (&tx->sc->srv->nconns,
                                      memory_order_relaxed) == 1);
}

/* Send what is batched, then this READ reply with its data by reference. */
static int
reply_by_ref (struct inline_tx *tx, struct nbd_srv_req *req,
              struct nbd_srv_result *res)
{
  int r = flush_batch (tx);
  if (r < 0)
    return r;
  unsigned char hdr[NBD_SRV_HDR_MAX];
  struct iovec iov[2];
  int n = nbd_srv_encode_reply (tx->sc, req, res, hdr, iov);
  /* A READ reply with data is its header, then the data. */
  return nbd_conn_writev_by_ref (tx->sc->conn, iov, n - 1, res->data,
                                 res->len);
}

/* A valid READ or WRITE on a store we may access directly. */
static int
direct_request (struct inline_tx *tx, struct nbd_srv_req *req)
{
  struct nbd_srv_conn *sc = tx->sc;
  unsigned char *p = sc->exp->direct + req->off;
  struct nbd_srv_result res = { 0 };
  if (req->type == NBD_CMD_WRITE) {
    int r = tx->direct_pending ? flush_batch (tx) : 0;
    if (r == 0 && req->len <= SMALL_PAYLOAD) {
      /* Through the reader buffer: the read that completes this payload
       * also picks up the requests behind it (and may busy-poll). */
      r = nbd_srv_reader_need (&tx->rd, req->len);
      if (r == 0) {
        memcpy (p, tx->rd.buf + tx->rd.start, req->len);
        tx->rd.start += req->len;
      } else if (r > 0)
        r = -ECONNRESET;
    } else if (r == 0)
      r = nbd_srv_reader_copy (&tx->rd, p, req->len);
    if (r < 0)
      return r;
    atomic_store (&sc->wrote, true);
    atomic_fetch_add_explicit (&sc->bytes_written, req->len,
                               memory_order_relaxed);
    atomic_fetch_add_explicit (&sc->requests, 1, memory_order_relaxed);
  } else {
    res.data = p;
    res.len = req->len;
    atomic_fetch_add_explicit (&sc->bytes_read, req->len,
                               memory_order_relaxed);
    atomic_fetch_add_explicit (&sc->requests, 1, memory_order_relaxed);
    if (by_ref_now (tx, req->len)) {
      int r = reply_by_ref (tx, req, &res);
      if (r != -EOPNOTSUPP)
        return r;
      /* No pipe (out of descriptors): copy, on this connection from now on. */
      tx->by_ref = false;
    }
    tx->direct_pending = true;
  }
  return queue_reply (tx, req, &res, false);
}

/* One request whose header was just read.  0 to go on, < 0 to stop. */
static int
one_request (struct inline_tx *tx, struct nbd_srv_req *req)
{
  struct nbd_srv_conn *sc = tx->sc;
  nbd_srv_validate (sc, req);
  if (!req->error && nbd_srv_stopping (sc->srv)) {
    req->error = NBD_ESHUTDOWN;
    req->msg = "the server is shutting down";
  }
  uint16_t t = req->type;
  if (sc->exp->direct && !req->error && req->len > 0
      && (t == NBD_CMD_READ || t == NBD_CMD_WRITE))
    return direct_request (tx, req);
  bool in_place = false, now = false;
  int r = 0;
  if (tx->direct_pending && !req->error
      && (t == NBD_CMD_WRITE || t == NBD_CMD_TRIM
          || t == NBD_CMD_WRITE_ZEROES))
    r = flush_batch (tx);
  req->buf = NULL;
  if (r < 0)
    return r;
  if (t == NBD_CMD_WRITE && req->len > 0)
    r = req->error ? nbd_srv_reader_skip (&tx->rd, req->len)
                   : write_payload (tx, req->len, &req->buf, &in_place);
  else if (t == NBD_CMD_READ && !req->error && req->len > 0)
    r = read_buffer (tx, req->len, &req->buf, &now);
  if (r < 0)
    return r;

  struct nbd_srv_result res = { 0 };
  if (req->error)
    nbd_srv_result_fail (&res, req->error, "%s", req->msg);
  else
    nbd_srv_execute (sc, req, &res);
  if (in_place)
    tx->rd.start += req->len;
  atomic_fetch_add_explicit (&sc->requests, 1, memory_order_relaxed);
  if (res.error)
    atomic_fetch_add_explicit (&sc->errors, 1, memory_order_relaxed);
  return queue_reply (tx, req, &res, now);
}

void
nbd_srv_transmit_inline (struct nbd_srv_conn *sc)
{
  struct inline_tx *tx = calloc (1, sizeof *tx);
  if (!tx || nbd_srv_reader_init (&tx->rd, sc->conn, READER_CAP) < 0
      || !(tx->arena = malloc (ARENA_CAP))) {
    nbd_srv_log (sc->srv, R3M_NBD_LOG_ERROR, "%s: out of memory", sc->peer);
    goto out;
  }
  tx->sc = sc;
  if (sc->extended)
    nbd_srv_reader_set_extended (&tx->rd);
  tx->rd.before_block = flush_batch;
  tx->by_ref = sc->exp->direct && nbd_conn_can_write_by_ref (sc->conn);
  tx->by_ref_alone = nbd_conn_family (sc->conn) != AF_UNIX;
  /* TLS buffers inside OpenSSL, where polling the socket cannot see. */
  bool plain = nbd_conn_fd (sc->conn) >= 0 && !nbd_conn_is_tls (sc->conn);
  bool unix_socket = nbd_conn_family (sc->conn) == AF_UNIX;
  tx->rd.spin_token = &sc->srv->spinners;
  if (plain && sc->srv->spin_ok) {
    tx->rd.spin_ns = sc->srv->opts.busy_poll_us * UINT64_C (1000);
    tx->rd.spin_requests = unix_socket;
  }
  if (plain && sc->srv->hold_ok) {
    tx->rd.hold_ns = sc->srv->opts.batch_hold_us * UINT64_C (1000);
    tx->rd.pending = batch_pending;
    tx->rd.holds = &sc->holds;
    tx->rd.holds_found = &sc->holds_found;
  }
  tx->rd.arg = tx;
  for (;;) {
    int r = nbd_srv_reader_need (&tx->rd, tx->rd.header_size);
    if (r != 0) {
      if (r < 0 && r != -ECONNRESET && r != -EPIPE)
        nbd_srv_log (sc->srv, R3M_NBD_LOG_INFO, "%s: %s", sc->peer,
                     strerror (-r));
      break;
    }
    struct nbd_srv_req req;
    int h = nbd_srv_reader_header (&tx->rd, &req);
    if (h < 0) {
      nbd_srv_log (sc->srv, R3M_NBD_LOG_WARN, "%s: %s: disconnecting",
                   sc->peer, nbd_srv_header_error (h));
      break;
    }
    if (req.type == NBD_CMD_DISC)
      break;
    r = one_request (tx, &req);
    if (r < 0) {
      nbd_srv_log (sc->srv, R3M_NBD_LOG_INFO, "%s: %s", sc->peer,
                   strerror (-r));
      break;
    }
  }
  flush_batch (tx);
  nbd_srv_reader_free (&tx->rd);
out:
  if (tx) {
    free (tx->arena);
    free (tx->big);
  }
  free (tx);
  nbd_srv_flush_if_wrote (sc);
}
