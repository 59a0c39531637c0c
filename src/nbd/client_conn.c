/* One NBD connection in the transmission phase: request slots, the send
 * path, failure.
 *
 * Threads.  A reader thread reads replies (client_reply.c).  Requests are
 * written by whichever thread owns the write side (`sending`): a submitter
 * that finds it free takes it and sends its own request and anything else
 * sendable, so a lone synchronous read costs no thread hop.  A sender
 * thread takes over when nobody else is there: when the reader freed a slot
 * that queued work was waiting for, or when a done callback (running on a
 * reader thread) submitted more work.  A reader thread never writes: if it
 * blocked on a full socket while the server blocked on writing replies to
 * it, both would wait forever.
 *
 * Window.  `nnormal` slots for ordinary requests plus a reserve only
 * R3M_IO_URGENT requests may take, so a request someone waits on never
 * queues behind a full window of background reads.  Urgent requests also
 * leave the queue first.  Requests that find no slot wait in the queue; a
 * request larger than the part size (max_io for READ/WRITE) is sent as
 * several NBD requests, one slot each.
 *
 * Slot life:      FREE --sender--> SENDING --sender--> SENT
 *                   ^                                   |
 *                   +---- complete: SENT and replied ---+
 * `replied` is set by the reader when the final reply is in (or by the
 * reader's exit path, which fails every slot it still has).  Whoever makes
 * the second of {SENT, replied} true completes the slot: usually the
 * reader; the sender when the server answered before its writev returned.
 * Only the reader reads payloads into request buffers, and it only
 * completes slots after it is done with them, so no buffer is touched after
 * its done callback ran.  Once the reader has exited the sender completes
 * what it still holds.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include "nbd/client.h"
#include "util/error.h"
#include "util/time.h"

#define BATCH           64            /* requests per writev */
#define BATCH_BYTES     (8u << 20)    /* payload per writev */
/* TRIM, WRITE_ZEROES, CACHE and BLOCK_STATUS go in parts of at most this
 * with compact headers (32-bit lengths); with extended headers their
 * 64-bit effect length takes any range of an export whole. */
#define BIG_PART        (UINT64_C (1) << 30)
#define EXT_BIG_PART    (UINT64_C (1) << 62)
#define ZERO_BUF_MAX    (1u << 20)

/* ---- helpers ----------------------------------------------------------- */

static void
enqueue (struct nbd_cli_queue *q, struct r3m_io *io, bool at_head)
{
  if (!q->head) {
    NBD_CLI_NEXT (io) = NULL;
    q->head = q->tail = io;
  } else if (at_head) {
    NBD_CLI_NEXT (io) = q->head;
    q->head = io;
  } else {
    NBD_CLI_NEXT (io) = NULL;
    NBD_CLI_NEXT (q->tail) = io;
    q->tail = io;
  }
}

static struct r3m_io *
dequeue (struct nbd_cli_queue *q)
{
  struct r3m_io *io = q->head;
  if (io) {
    q->head = NBD_CLI_NEXT (io);
    if (!q->head)
      q->tail = NULL;
  }
  return io;
}

static bool
on_reader_thread (const struct nbd_cli_conn *c)
{
  if (c->pool) {
    for (unsigned i = 0; i < c->pool->nconns; i++) {
      const struct nbd_cli_conn *o = c->pool->conns[i];
      if (o && o->threads && pthread_equal (pthread_self (), o->reader))
        return true;
    }
    return false;
  }
  return c->threads && pthread_equal (pthread_self (), c->reader);
}

static uint64_t
part_cap (const struct nbd_cli_conn *c, const struct r3m_io *io)
{
  const struct nbd_cli_split *sp = NBD_CLI_SPLIT (io);
  if (sp && sp->flush_stage)
    return 0;
  uint64_t big = c->ex.extended ? EXT_BIG_PART : BIG_PART;
  switch ((int) io->op) {
  case R3M_IO_READ:
  case R3M_IO_WRITE:
    return c->max_io;
  case R3M_IO_ZERO:
    return (c->ex.flags & NBD_FLAG_SEND_WRITE_ZEROES) ? big : c->zero_len;
  default:
    return big;
  }
}

/* ---- completion -------------------------------------------------------- */

static void requeue_flush (struct nbd_cli_conn *c, struct r3m_io *io);

/* `count` parts of io finished with `result`; call done once all have. */
static void
parts_done (struct nbd_cli_conn *c, struct r3m_io *io, int result,
            unsigned count)
{
  struct nbd_cli_split *sp = NBD_CLI_SPLIT (io);
  if (!sp) {
    io->done (io, result);
    return;
  }
  if (result < 0) {
    int zero = 0;
    atomic_compare_exchange_strong (&sp->error, &zero, result);
  }
  if (atomic_fetch_sub (&sp->remaining, count) != count)
    return;
  result = atomic_load (&sp->error);
  if (result == 0 && sp->flush_after && !sp->flush_stage) {
    requeue_flush (c, io);
    return;
  }
  free (sp);
  NBD_CLI_SPLIT (io) = NULL;
  io->done (io, result);
}

/* Parts of io never sent (it was still queued). */
static void
fail_unsent (struct nbd_cli_conn *c, struct r3m_io *io, int result)
{
  struct nbd_cli_split *sp = NBD_CLI_SPLIT (io);
  if (!sp) {
    io->done (io, result);
    return;
  }
  uint64_t sent = (uintptr_t) NBD_CLI_CURSOR (io);
  uint64_t cap = part_cap (c, io);
  unsigned left = 1;
  if (!sp->flush_stage && cap > 0)
    left = (unsigned) ((io->len - sent + cap - 1) / cap);
  if (left == 0)
    left = 1;
  parts_done (c, io, result, left);
}

/* Release slot i (c->lock held) and return its request and result. */
static struct r3m_io *
release_locked (struct nbd_cli_conn *c, uint32_t i, int *result)
{
  struct nbd_cli_slot *sl = &c->slots[i];
  struct r3m_io *io = sl->io;
  *result = sl->result;
  sl->io = NULL;
  sl->buf = NULL;
  sl->state = SLOT_FREE;
  sl->replied = false;
  sl->cover.end = 0;
  sl->cover.n = 0;
  sl->next_free = c->free_head;
  c->free_head = i;
  c->used--;
  if (sl->normal)
    c->used_normal--;
  atomic_fetch_sub (&c->load, 1);
  return io;
}

static bool sendable_locked (const struct nbd_cli_conn *c);

/* The sender thread is needed when work waits and nobody sends. */
static void
kick_locked (struct nbd_cli_conn *c)
{
  if (!c->sending && sendable_locked (c))
    pthread_cond_signal (&c->wake);
}

void
nbd_cli_slot_finish (struct nbd_cli_conn *c, uint32_t i, int result)
{
  pthread_mutex_lock (&c->lock);
  struct nbd_cli_slot *sl = &c->slots[i];
  sl->replied = true;
  sl->result = result;
  if (sl->state != SLOT_SENT) {
    pthread_mutex_unlock (&c->lock);   /* the sender completes it */
    return;
  }
  struct r3m_io *io = release_locked (c, i, &result);
  kick_locked (c);
  pthread_mutex_unlock (&c->lock);
  parts_done (c, io, result, 1);
}

/* ---- failure ----------------------------------------------------------- */

/* Mark dead; return the queued requests (to fail outside the lock). */
static struct r3m_io *
kill_locked (struct nbd_cli_conn *c, int code, bool *first)
{
  *first = !c->dead;
  if (!c->dead) {
    c->dead = true;
    c->error = code < 0 ? code : -EIO;
    nbd_conn_shutdown (c->s, SHUT_RDWR);
  }
  struct r3m_io *list = NULL;
  struct r3m_io *io;
  while ((io = dequeue (&c->urgent)) || (io = dequeue (&c->normal))) {
    NBD_CLI_NEXT (io) = list;
    list = io;
  }
  pthread_cond_broadcast (&c->wake);
  return list;
}

static void
fail_list (struct nbd_cli_conn *c, struct r3m_io *list, int code)
{
  while (list) {
    struct r3m_io *next = NBD_CLI_NEXT (list);
    atomic_fetch_sub (&c->load, 1);
    fail_unsent (c, list, code);
    list = next;
  }
}

static void
kill_common (struct nbd_cli_conn *c, int code, const char *msg, bool notify)
{
  bool first;
  pthread_mutex_lock (&c->lock);
  struct r3m_io *list = kill_locked (c, code, &first);
  int err = c->error;
  if (first && msg && !c->msg[0])
    snprintf (c->msg, sizeof c->msg, "%s", msg);
  pthread_mutex_unlock (&c->lock);
  fail_list (c, list, err);
  if (first && notify && c->pool)
    nbd_cli_pool_conn_died (c->pool, c, err);
}

void
nbd_cli_conn_kill (struct nbd_cli_conn *c, int code)
{
  kill_common (c, code, NULL, false);
}

void
nbd_cli_conn_fail (struct nbd_cli_conn *c, int code, const char *fmt, ...)
{
  char msg[R3M_ERROR_MSG_MAX];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  kill_common (c, code, msg, true);
}

void
nbd_cli_conn_io_failed (struct nbd_cli_conn *c, int code, const char *doing)
{
  /* The sender sees EPIPE or ECONNRESET, the reader the end of the stream
   * (-ECONNRESET from nbd_conn_read_exact). */
  if (code == -EPIPE || code == -ECONNRESET)
    nbd_cli_conn_fail (c, code, "%s: server closed the connection", c->what);
  else
    nbd_cli_conn_fail (c, code, "%s: %s: %s", c->what, doing,
                       strerror (-code));
}

void
nbd_cli_conn_reader_exit (struct nbd_cli_conn *c)
{
  pthread_mutex_lock (&c->lock);
  bool first;
  struct r3m_io *list = kill_locked (c, -ECONNRESET, &first);
  int err = c->error;
  c->reader_exited = true;
  pthread_mutex_unlock (&c->lock);
  fail_list (c, list, err);

  for (uint32_t i = 0; i < c->nslots; i++) {
    pthread_mutex_lock (&c->lock);
    struct nbd_cli_slot *sl = &c->slots[i];
    if (sl->state == SLOT_FREE || sl->replied) {
      pthread_mutex_unlock (&c->lock);
      continue;
    }
    sl->replied = true;
    sl->result = err;
    if (sl->state != SLOT_SENT) {
      pthread_mutex_unlock (&c->lock);   /* the sender completes it */
      continue;
    }
    int result;
    struct r3m_io *io = release_locked (c, i, &result);
    pthread_mutex_unlock (&c->lock);
    parts_done (c, io, result, 1);
  }
}

/* ---- send path --------------------------------------------------------- */

/* Can the head of a queue get a slot now?  (c->lock held) */
static struct nbd_cli_queue *
next_queue_locked (struct nbd_cli_conn *c)
{
  if (c->free_head >= c->nslots)
    return NULL;
  if (c->urgent.head)
    return &c->urgent;
  if (c->normal.head && c->used_normal < c->nnormal)
    return &c->normal;
  return NULL;
}

static bool
sendable_locked (const struct nbd_cli_conn *c)
{
  return next_queue_locked ((struct nbd_cli_conn *) c) != NULL;
}

struct batch {
  unsigned n;              /* requests */
  int iovcnt;
  size_t bytes;
  uint32_t idx[BATCH];
  char hdr[BATCH][NBD_EXT_REQUEST_SIZE];
  struct iovec iov[2 * BATCH];
};

/* A request header, compact or extended (where WRITE, the only command we
 * send with a payload, must say so with PAYLOAD_LEN); returns its size. */
static size_t
encode_request (const struct nbd_cli_conn *c, char *h, uint16_t flags,
                uint16_t cmd, uint64_t cookie, uint64_t off, uint64_t len)
{
  if (c->ex.extended) {
    nbd_put32 (h, NBD_EXT_REQUEST_MAGIC);
    nbd_put16 (h + 4, flags | (cmd == NBD_CMD_WRITE ? NBD_CMD_FLAG_PAYLOAD_LEN
                                                    : 0));
    nbd_put16 (h + 6, cmd);
    nbd_put64 (h + 8, cookie);
    nbd_put64 (h + 16, off);
    nbd_put64 (h + 24, len);
    return NBD_EXT_REQUEST_SIZE;
  }
  nbd_put32 (h, NBD_REQUEST_MAGIC);
  nbd_put16 (h + 4, flags);
  nbd_put16 (h + 6, cmd);
  nbd_put64 (h + 8, cookie);
  nbd_put64 (h + 16, off);
  nbd_put32 (h + 24, (uint32_t) len);   /* part_cap kept it below 2^32 */
  return NBD_REQUEST_SIZE;
}

/* Put the next part of the head of q into a free slot and into b.
 * c->lock held. */
static void
take_part_locked (struct nbd_cli_conn *c, struct nbd_cli_queue *q,
                  struct batch *b)
{
  struct r3m_io *io = q->head;
  struct nbd_cli_split *sp = NBD_CLI_SPLIT (io);
  uint64_t sent = (uintptr_t) NBD_CLI_CURSOR (io);
  uint64_t cap = part_cap (c, io);
  uint64_t len = io->len - sent;
  if (cap && len > cap)
    len = cap;

  uint32_t i = c->free_head;
  struct nbd_cli_slot *sl = &c->slots[i];
  c->free_head = sl->next_free;
  c->used++;
  sl->normal = q == &c->normal;
  if (sl->normal)
    c->used_normal++;
  sl->io = io;
  sl->gen++;
  sl->state = SLOT_SENDING;
  sl->replied = false;
  sl->result = 0;
  sl->status_seen = false;
  sl->cover.end = 0;
  sl->cover.n = 0;
  sl->off = io->off + sent;
  sl->len = len;
  sl->since = util_now_ns ();
  sl->buf = NULL;
  sl->cmd_flags = 0;

  bool fua = io->flags & R3M_IO_FUA
             && (c->ex.flags & NBD_FLAG_SEND_FUA);
  if (sp && sp->flush_stage) {
    sl->cmd = NBD_CMD_FLUSH;
    sl->off = 0;
    sl->len = 0;
  } else {
    switch ((int) io->op) {
    case R3M_IO_READ:
      sl->cmd = NBD_CMD_READ;
      sl->buf = (char *) io->buf + sent;
      break;
    case R3M_IO_WRITE:
      sl->cmd = NBD_CMD_WRITE;
      sl->buf = (char *) io->buf + sent;
      sl->cmd_flags = fua ? NBD_CMD_FLAG_FUA : 0;
      break;
    case R3M_IO_ZERO:
      if (c->ex.flags & NBD_FLAG_SEND_WRITE_ZEROES) {
        sl->cmd = NBD_CMD_WRITE_ZEROES;
        sl->cmd_flags = (fua ? NBD_CMD_FLAG_FUA : 0)
                        | ((io->flags & R3M_IO_MAY_TRIM) ? 0
                           : NBD_CMD_FLAG_NO_HOLE);
      } else {
        sl->cmd = NBD_CMD_WRITE;
        sl->buf = c->zero_buf;
        sl->cmd_flags = fua ? NBD_CMD_FLAG_FUA : 0;
      }
      break;
    case R3M_IO_TRIM:
      sl->cmd = NBD_CMD_TRIM;
      sl->cmd_flags = fua ? NBD_CMD_FLAG_FUA : 0;
      break;
    case R3M_IO_FLUSH:
      sl->cmd = NBD_CMD_FLUSH;
      sl->off = 0;
      sl->len = 0;
      break;
    default: /* NBD_CLI_OP_STATUS */
      sl->cmd = NBD_CMD_BLOCK_STATUS;  /* the answer may be partial */
      break;
    }
  }

  atomic_fetch_add (&c->load, 1);
  if (sl->cmd == NBD_CMD_FLUSH || sl->cmd == NBD_CMD_BLOCK_STATUS
      || sent + len >= io->len) {
    dequeue (q);
    atomic_fetch_sub (&c->load, 1);
  } else
    NBD_CLI_CURSOR (io) = (void *) (uintptr_t) (sent + len);

  char *h = b->hdr[b->n];
  size_t hlen = encode_request (c, h, sl->cmd_flags, sl->cmd,
                                (uint64_t) sl->gen << 32 | i, sl->off,
                                sl->len);
  b->iov[b->iovcnt++] = (struct iovec) { h, hlen };
  if (sl->cmd == NBD_CMD_WRITE) {
    b->iov[b->iovcnt++] = (struct iovec) { sl->buf, sl->len };
    b->bytes += sl->len;
  }
  b->idx[b->n++] = i;
}

/* Write what can be sent until nothing can.  Called and returns with
 * c->lock held and c->sending set by the caller; drops the lock while
 * writing. */
static void
drain_locked (struct nbd_cli_conn *c)
{
  struct batch *b = malloc (sizeof *b);
  struct nbd_cli_queue *q;
  while ((q = next_queue_locked (c))) {
    if (c->dead)
      break;
    if (!b) {
      /* Without memory nothing can be sent: fail the waiting work. */
      bool first;
      struct r3m_io *list = kill_locked (c, -ENOMEM, &first);
      pthread_mutex_unlock (&c->lock);
      fail_list (c, list, -ENOMEM);
      pthread_mutex_lock (&c->lock);
      return;
    }
    b->n = 0;
    b->iovcnt = 0;
    b->bytes = 0;
    do
      take_part_locked (c, q, b);
    while (b->n < BATCH && b->bytes < BATCH_BYTES
           && (q = next_queue_locked (c)));

    pthread_mutex_unlock (&c->lock);
    int r = nbd_conn_writev_all (c->s, b->iov, b->iovcnt);
    if (r < 0)
      nbd_cli_conn_io_failed (c, r, "sending a request");
    pthread_mutex_lock (&c->lock);

    for (unsigned k = 0; k < b->n; k++) {
      uint32_t i = b->idx[k];
      struct nbd_cli_slot *sl = &c->slots[i];
      sl->state = SLOT_SENT;
      if (!sl->replied && c->reader_exited) {
        sl->replied = true;
        sl->result = c->error;
      }
      if (!sl->replied)
        continue;
      int result;
      struct r3m_io *io = release_locked (c, i, &result);
      pthread_mutex_unlock (&c->lock);
      parts_done (c, io, result, 1);
      pthread_mutex_lock (&c->lock);
    }
  }
  free (b);
}

/* How long the oldest request on the wire has waited (c->lock held). */
static uint64_t
oldest_wait_ms_locked (const struct nbd_cli_conn *c, uint64_t now)
{
  uint64_t oldest = now;
  for (uint32_t i = 0; i < c->nslots; i++) {
    const struct nbd_cli_slot *sl = &c->slots[i];
    if (sl->state == SLOT_SENT && !sl->replied && sl->since < oldest)
      oldest = sl->since;
  }
  return (now - oldest) / 1000000;
}

/* The sender thread: sends what waits when nobody else does, and with a
 * request timeout also watches the age of requests on the wire. */
static void *
sender_main (void *arg)
{
  struct nbd_cli_conn *c = arg;
  unsigned tmo = c->request_timeout_ms;
  unsigned tick = tmo / 4 > 50 ? tmo / 4 : 50;
  pthread_mutex_lock (&c->lock);
  for (;;) {
    while (!c->stopping && (c->sending || !sendable_locked (c))) {
      /* With a timeout, tick even when idle: requests sent by other
       * threads do not wake this one. */
      if (!tmo || c->dead) {
        pthread_cond_wait (&c->wake, &c->lock);
        continue;
      }
      struct timespec ts = util_deadline_ms (tick);
      pthread_cond_timedwait (&c->wake, &c->lock, &ts);
      if (!c->dead && oldest_wait_ms_locked (c, util_now_ns ()) >= tmo) {
        pthread_mutex_unlock (&c->lock);
        nbd_cli_conn_fail (c, -ETIMEDOUT, "%s: no reply from the server "
                           "within %u s", c->what, tmo / 1000);
        pthread_mutex_lock (&c->lock);
      }
    }
    if (c->stopping)
      break;
    c->sending = true;
    drain_locked (c);
    c->sending = false;
  }
  pthread_mutex_unlock (&c->lock);
  return NULL;
}

/* Queue io (c->lock held) and send now if this thread may. */
static void
queue_and_send_locked (struct nbd_cli_conn *c, struct r3m_io *io,
                       bool at_head)
{
  atomic_fetch_add (&c->load, 1);
  enqueue ((io->flags & R3M_IO_URGENT) ? &c->urgent : &c->normal, io,
           at_head);
  if (c->sending)
    return;
  if (c->threads && on_reader_thread (c)) {
    pthread_cond_signal (&c->wake);
    return;
  }
  c->sending = true;
  drain_locked (c);
  c->sending = false;
}

/* FUA emulation: the parts are done, now a flush, then done. */
static void
requeue_flush (struct nbd_cli_conn *c, struct r3m_io *io)
{
  struct nbd_cli_split *sp = NBD_CLI_SPLIT (io);
  sp->flush_stage = true;
  atomic_store (&sp->remaining, 1);
  NBD_CLI_CURSOR (io) = (void *) 0;
  pthread_mutex_lock (&c->lock);
  if (c->dead) {
    int err = c->error;
    pthread_mutex_unlock (&c->lock);
    parts_done (c, io, err, 1);
    return;
  }
  /* Never send from here: this may be the reader thread. */
  atomic_fetch_add (&c->load, 1);
  enqueue (&c->urgent, io, true);
  if (!c->sending)
    pthread_cond_signal (&c->wake);
  pthread_mutex_unlock (&c->lock);
}

int
nbd_cli_conn_submit (struct nbd_cli_conn *c, struct r3m_io *io)
{
  uint32_t mb = c->ex.min_block;
  bool data = io->op != R3M_IO_FLUSH;
  if (data && ((io->off | io->len) & (mb - 1)))
    return -EINVAL;             /* the handle aligns; this is a bug */
  bool noop = (io->op == R3M_IO_FLUSH
               && !(c->ex.flags & NBD_FLAG_SEND_FLUSH))
              || (io->op == R3M_IO_TRIM && !(c->ex.flags & NBD_FLAG_SEND_TRIM))
              || ((int) io->op == NBD_CLI_OP_STATUS && !c->ex.has_meta)
              || (data && io->len == 0);
  if ((int) io->op == NBD_CLI_OP_STATUS && !c->ex.has_meta && io->len) {
    /* Without base:allocation everything is data. */
    struct nbd_cli_status *st = NBD_CLI_STATUS (io);
    st->ext[0] = (struct r3m_extent) { .len = io->len, .flags = 0 };
    st->n = 1;
  }
  if (noop) {
    pthread_mutex_lock (&c->lock);
    int r = c->dead ? c->error : 0;
    pthread_mutex_unlock (&c->lock);
    if (r == 0)
      io->done (io, 0);
    return r;
  }

  NBD_CLI_SPLIT (io) = NULL;
  NBD_CLI_CURSOR (io) = (void *) 0;
  uint64_t cap = part_cap (c, io);
  uint64_t parts = ((int) io->op == NBD_CLI_OP_STATUS || cap == 0) ? 1
                   : (io->len + cap - 1) / cap;
  bool fua_emulated = (io->op == R3M_IO_WRITE || io->op == R3M_IO_ZERO)
                      && (io->flags & R3M_IO_FUA)
                      && !(c->ex.flags & NBD_FLAG_SEND_FUA)
                      && (c->ex.flags & NBD_FLAG_SEND_FLUSH);
  if (parts > 1 || fua_emulated) {
    struct nbd_cli_split *sp = calloc (1, sizeof *sp);
    if (!sp)
      return -ENOMEM;
    atomic_init (&sp->remaining, (unsigned) parts);
    atomic_init (&sp->error, 0);
    sp->flush_after = fua_emulated;
    NBD_CLI_SPLIT (io) = sp;
  }

  pthread_mutex_lock (&c->lock);
  if (c->dead) {
    int r = c->error;
    pthread_mutex_unlock (&c->lock);
    free (NBD_CLI_SPLIT (io));
    NBD_CLI_SPLIT (io) = NULL;
    return r;
  }
  queue_and_send_locked (c, io, false);
  pthread_mutex_unlock (&c->lock);
  return 0;
}

/* ---- life cycle -------------------------------------------------------- */

int
nbd_cli_conn_new (struct nbd_conn *s, const struct nbd_cli_export *ex,
                  const char *what, unsigned inflight,
                  unsigned request_timeout_ms,
                  struct nbd_cli_conn **out, struct r3m_error *err)
{
  struct nbd_cli_conn *c = calloc (1, sizeof *c);
  if (!c) {
    nbd_conn_close (s);
    return util_errno (err, ENOMEM, "%s", what);
  }
  c->what = what;
  c->ex = *ex;
  c->request_timeout_ms = request_timeout_ms;
  uint32_t mb = ex->min_block;
  uint32_t max = ex->max_payload < NBD_MAX_PAYLOAD ? ex->max_payload
                 : NBD_MAX_PAYLOAD;
  c->max_io = max / mb * mb;
  c->nnormal = inflight;
  c->nslots = inflight + (inflight / 8 > 2 ? inflight / 8 : 2);
  c->slots = calloc (c->nslots, sizeof *c->slots);
  if (!c->slots)
    goto nomem;
  for (uint32_t i = 0; i < c->nslots; i++)
    c->slots[i].next_free = i + 1;
  if (!(ex->flags & NBD_FLAG_SEND_WRITE_ZEROES)) {
    /* Zeroing by writing: an untouched anonymous mapping reads as zeros
     * and costs no memory. */
    c->zero_len = c->max_io < ZERO_BUF_MAX ? c->max_io : ZERO_BUF_MAX;
    c->zero_len = c->zero_len / mb * mb;
    c->zero_buf = mmap (NULL, c->zero_len, PROT_READ,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (c->zero_buf == MAP_FAILED) {
      c->zero_buf = NULL;
      goto nomem;
    }
  }
  pthread_mutex_init (&c->lock, NULL);
  /* Timed waits (the request timeout) use the monotonic clock. */
  pthread_condattr_t ca;
  pthread_condattr_init (&ca);
  pthread_condattr_setclock (&ca, CLOCK_MONOTONIC);
  pthread_cond_init (&c->wake, &ca);
  pthread_condattr_destroy (&ca);
  atomic_init (&c->load, 0);
  c->s = s;
  *out = c;
  return 0;

nomem:
  free (c->slots);
  free (c);
  nbd_conn_close (s);
  return util_errno (err, ENOMEM, "%s", what);
}

int
nbd_cli_conn_start (struct nbd_cli_conn *c, struct r3m_error *err)
{
  int r = pthread_create (&c->reader, NULL, nbd_cli_reader_main, c);
  if (r != 0)
    return util_errno (err, r, "%s: starting the reader thread", c->what);
  r = pthread_create (&c->sender, NULL, sender_main, c);
  if (r != 0) {
    nbd_cli_conn_kill (c, -r);
    pthread_join (c->reader, NULL);
    return util_errno (err, r, "%s: starting the sender thread", c->what);
  }
  c->threads = true;
  return 0;
}

/* Best effort: tell the server we are leaving (skipped if a sender is
 * busy, which the close contract rules out). */
void
nbd_cli_conn_disc (struct nbd_cli_conn *c)
{
  pthread_mutex_lock (&c->lock);
  if (c->sending || c->dead || !c->threads) {
    pthread_mutex_unlock (&c->lock);
    return;
  }
  c->sending = true;
  pthread_mutex_unlock (&c->lock);
  char h[NBD_EXT_REQUEST_SIZE];
  nbd_conn_write_all (c->s, h, encode_request (c, h, 0, NBD_CMD_DISC, 0, 0,
                                               0));
  pthread_mutex_lock (&c->lock);
  c->sending = false;
  pthread_mutex_unlock (&c->lock);
}

void
nbd_cli_conn_stop (struct nbd_cli_conn *c)
{
  pthread_mutex_lock (&c->lock);
  bool first;
  struct r3m_io *list = kill_locked (c, -ESHUTDOWN, &first);
  c->stopping = true;
  pthread_cond_broadcast (&c->wake);
  pthread_mutex_unlock (&c->lock);
  fail_list (c, list, -ESHUTDOWN);
  /* threads stays set: sibling readers may still look at it
   * (on_reader_thread) until the pool has stopped them all. */
  if (c->threads && !c->joined) {
    pthread_join (c->reader, NULL);
    pthread_join (c->sender, NULL);
    c->joined = true;
  } else if (!c->threads && !c->reader_exited) {
    nbd_cli_conn_reader_exit (c);
  }
}

void
nbd_cli_conn_free (struct nbd_cli_conn *c)
{
  if (!c)
    return;
  nbd_cli_conn_stop (c);
  nbd_conn_close (c->s);
  for (uint32_t i = 0; i < c->nslots; i++)
    free (c->slots[i].cover.iv);
  free (c->slots);
  if (c->zero_buf)
    munmap (c->zero_buf, c->zero_len);
  pthread_cond_destroy (&c->wake);
  pthread_mutex_destroy (&c->lock);
  free (c);
}
