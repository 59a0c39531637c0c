/* The NBD client as an r3m backend: nbd://, nbds://, nbd+unix://.
 *
 * A pool of connections to one export.  The first connection's handshake
 * decides everything (size, flags, block sizes); more connections are only
 * opened when the server advertises CAN_MULTI_CONN, since only then does a
 * FLUSH on one connection cover writes completed on the others, and each
 * must agree with the first.  Requests go to the least loaded connection.
 *
 * Open returns as soon as the first connection is ready; the others are
 * negotiated in the background and join the pool as they finish.  Over a
 * 40 ms link a handshake costs about five round trips (0.2 s), and a
 * bulk read should not wait for the second one before its first request.
 * A connection that fails to open is left out: the pool works with fewer.
 * If any connection dies the whole pool dies: a server that broke one
 * connection is not trusted with the others, and callers see one clear
 * error instead of a backend that half works.
 *
 * The synchronous slots are submit plus a wait, marked urgent (a caller is
 * blocked on them).
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <r3map/nbd_client.h>

#include "backend/backends.h"
#include "backend/handle.h"
#include "nbd/client.h"
#include "util/error.h"

/* ---- the pool ---------------------------------------------------------- */

void
nbd_cli_pool_conn_died (struct nbd_cli_pool *p, struct nbd_cli_conn *c,
                        int code)
{
  /* Sequentially consistent with the opener's publish-then-check: either
   * the loop below sees a connection joining now, or the opener sees
   * dead_code and kills it itself. */
  int zero = 0;
  atomic_compare_exchange_strong (&p->dead_code, &zero, code ? code : EIO);
  unsigned n = atomic_load (&p->nconns);
  for (unsigned i = 0; i < n; i++)
    if (p->conns[i] && p->conns[i] != c)
      nbd_cli_conn_kill (p->conns[i], code);
}

static struct nbd_cli_conn *
pick (struct nbd_cli_pool *p)
{
  unsigned n = atomic_load (&p->nconns);
  if (n == 1)
    return p->conns[0];
  unsigned start = atomic_fetch_add (&p->next, 1) % n;
  struct nbd_cli_conn *best = p->conns[start];
  unsigned best_load = atomic_load (&best->load);
  for (unsigned k = 1; k < n && best_load > 0; k++) {
    struct nbd_cli_conn *c = p->conns[(start + k) % n];
    unsigned l = atomic_load (&c->load);
    if (l < best_load) {
      best = c;
      best_load = l;
    }
  }
  return best;
}

/* A peer that vanished without a word (host down, link cut) leaves a TCP
 * connection open for ever; keepalive probes notice within about a
 * minute, and the reader then fails every request. */
static void
keepalive (struct nbd_conn *s)
{
  int fd = nbd_conn_fd (s);
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (fd < 0 || getsockname (fd, (struct sockaddr *) &ss, &sl) < 0
      || (ss.ss_family != AF_INET && ss.ss_family != AF_INET6))
    return;
  int on = 1, idle = 30, intvl = 10, cnt = 3;
  setsockopt (fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
  setsockopt (fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  setsockopt (fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
  setsockopt (fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
}

/* Connect and negotiate one connection. */
static int
open_conn (struct nbd_cli_pool *p, unsigned index, struct nbd_cli_conn **out,
           struct r3m_error *err)
{
  struct nbd_conn *s;
  struct nbd_cli_export ex;
  struct r3m_error e;
  r3m_error_clear (&e);
  int r = nbd_uri_connect (&p->o.uri, &s, &e);
  if (r < 0)
    return util_err (err, r, "%s: %s", p->o.what, e.msg);
  r = nbd_cli_handshake (s, &p->o, p->tls, &ex, err);
  if (r == 0 && index > 0) {
    const struct nbd_cli_export *f = &p->conns[0]->ex;
    if (ex.size != f->size || ex.flags != f->flags
        || ex.structured != f->structured || ex.extended != f->extended
        || ex.has_meta != f->has_meta
        || ex.min_block != f->min_block || ex.max_payload != f->max_payload)
      r = util_err (err, EPROTO, "%s: protocol error from the server: "
                    "connection %u describes the export differently",
                    p->o.what, index + 1);
  }
  if (r < 0) {
    nbd_conn_close (s);
    return r;
  }
  keepalive (s);
  r = nbd_cli_conn_new (s, &ex, p->o.what, p->o.inflight,
                        p->o.request_timeout_ms, out, err);
  if (r < 0)
    return r;
  (*out)->pool = p;
  (*out)->index = index;
  return 0;
}

/* The connections after the first, negotiated in parallel (a handshake
 * is round trips that nothing can pipeline) on threads of their own. */
struct opener {
  struct nbd_cli_pool *p;
  unsigned index;
  pthread_t thread;
  bool started;
  int result;
  struct nbd_cli_conn *conn;
  struct r3m_error err;
};

static void *
opener_main (void *arg)
{
  struct opener *op = arg;
  op->result = open_conn (op->p, op->index, &op->conn, &op->err);
  return NULL;
}

static void
discard_conn (struct nbd_cli_conn *c)
{
  nbd_cli_conn_disc (c);
  nbd_cli_conn_stop (c);
  nbd_cli_conn_free (c);
}

/* Start c and make it visible to pick(); false if it cannot join. */
static bool
publish (struct nbd_cli_pool *p, struct nbd_cli_conn *c)
{
  if (atomic_load (&p->closing) || nbd_cli_conn_start (c, NULL) < 0)
    return false;
  unsigned n = atomic_load (&p->nconns);
  c->index = n;
  p->conns[n] = c;
  atomic_store (&p->nconns, n + 1);
  int code = atomic_load (&p->dead_code);
  if (code)
    nbd_cli_conn_kill (c, code);
  return true;
}

static void *
grow_main (void *arg)
{
  struct nbd_cli_pool *p = arg;
  unsigned want = p->o.connections;
  struct opener *op = calloc (want, sizeof *op);
  if (!op)
    return NULL;
  for (unsigned i = 1; i < want; i++) {
    op[i] = (struct opener) { .p = p, .index = i };
    op[i].started = pthread_create (&op[i].thread, NULL, opener_main,
                                    &op[i]) == 0;
    if (!op[i].started)
      opener_main (&op[i]);
  }
  /* In index order, each as soon as its own handshake is done. */
  for (unsigned i = 1; i < want; i++) {
    if (op[i].started)
      pthread_join (op[i].thread, NULL);
    if (op[i].result == 0 && !publish (p, op[i].conn))
      discard_conn (op[i].conn);
  }
  free (op);
  return NULL;
}

/* Wait until every connection that will join has joined. */
static void
wait_opener (struct nbd_cli_pool *p)
{
  pthread_mutex_lock (&p->open_lock);
  if (p->opener_started && !p->opener_joined) {
    pthread_join (p->opener, NULL);
    p->opener_joined = true;
  }
  pthread_mutex_unlock (&p->open_lock);
}

static int
make_tls (struct nbd_cli_pool *p, struct r3m_error *err)
{
  struct nbd_tls_options t;
  nbd_tls_options_init (&t);
  t.ca_file = p->o.tls_ca;
  t.cert_file = p->o.tls_cert;
  t.key_file = p->o.tls_key;
  t.psk_file = p->o.tls_psk_file;
  t.psk_user = p->o.tls_username;
  struct r3m_error e;
  r3m_error_clear (&e);
  int r = nbd_tls_new_client (&t, &p->tls, &e);
  if (r < 0)
    return util_err (err, r, "%s: %s", p->o.what, e.msg);
  return 0;
}

/* In three passes: a reader that dies while its siblings are shut down
 * kills them (nbd_cli_pool_conn_died), so none may be freed before every
 * thread of every connection is gone. */
static void
pool_free (struct nbd_cli_pool *p)
{
  atomic_store (&p->closing, true);
  wait_opener (p);
  unsigned n = atomic_load (&p->nconns);
  for (unsigned i = 0; i < n; i++)
    nbd_cli_conn_disc (p->conns[i]);
  for (unsigned i = 0; i < n; i++)
    nbd_cli_conn_stop (p->conns[i]);
  for (unsigned i = 0; i < n; i++)
    nbd_cli_conn_free (p->conns[i]);
  pthread_mutex_destroy (&p->open_lock);
  free (p->conns);
  nbd_tls_free (p->tls);
  nbd_cli_opts_free (&p->o);
  free (p);
}

static int
pool_open (const char *uri, unsigned flags, struct nbd_cli_pool **out,
           struct r3m_error *err)
{
  struct nbd_cli_pool *p = calloc (1, sizeof *p);
  if (!p)
    return util_errno (err, ENOMEM, "%s", uri);
  int r = nbd_cli_opts_parse (uri, flags, &p->o, err);
  if (r < 0) {
    free (p);
    return r;
  }
  pthread_mutex_init (&p->open_lock, NULL);
  p->conns = calloc (p->o.connections, sizeof *p->conns);
  if (!p->conns) {
    r = util_errno (err, ENOMEM, "%s", uri);
    goto fail;
  }
  if (p->o.uri.tls && (r = make_tls (p, err)) < 0)
    goto fail;
  r = open_conn (p, 0, &p->conns[0], err);
  if (r < 0)
    goto fail;
  atomic_store (&p->nconns, 1);
  if ((r = nbd_cli_conn_start (p->conns[0], err)) < 0)
    goto fail;
  if ((p->conns[0]->ex.flags & NBD_FLAG_CAN_MULTI_CONN)
      && p->o.connections > 1)
    p->opener_started = pthread_create (&p->opener, NULL, grow_main,
                                        p) == 0;
  *out = p;
  return 0;

fail:
  pool_free (p);
  return r;
}

/* ---- synchronous calls on submit --------------------------------------- */

struct waiter {
  pthread_mutex_t lock;      /* guards done and result */
  pthread_cond_t cond;
  bool done;
  int result;
};

static void
wake (struct r3m_io *io, int result)
{
  struct waiter *w = io->user;
  pthread_mutex_lock (&w->lock);
  w->done = true;
  w->result = result;
  pthread_cond_signal (&w->cond);
  pthread_mutex_unlock (&w->lock);
}

static int
run_sync (struct nbd_cli_pool *p, struct r3m_io *io)
{
  struct waiter w = { .done = false };
  pthread_mutex_init (&w.lock, NULL);
  pthread_cond_init (&w.cond, NULL);
  io->flags |= R3M_IO_URGENT;
  io->done = wake;
  io->user = &w;
  int r = nbd_cli_conn_submit (pick (p), io);
  if (r == 0) {
    pthread_mutex_lock (&w.lock);
    while (!w.done)
      pthread_cond_wait (&w.cond, &w.lock);
    r = w.result;
    pthread_mutex_unlock (&w.lock);
  }
  pthread_cond_destroy (&w.cond);
  pthread_mutex_destroy (&w.lock);
  return r;
}

static int
nbd_pread (void *self, void *buf, size_t len, uint64_t off)
{
  struct r3m_io io = { .op = R3M_IO_READ, .buf = buf, .len = len,
                       .off = off };
  return run_sync (self, &io);
}

static int
nbd_pwrite (void *self, const void *buf, size_t len, uint64_t off,
            unsigned flags)
{
  struct r3m_io io = { .op = R3M_IO_WRITE, .buf = (void *) (uintptr_t) buf,
                       .len = len, .off = off, .flags = flags };
  return run_sync (self, &io);
}

static int
nbd_flush (void *self)
{
  struct r3m_io io = { .op = R3M_IO_FLUSH };
  return run_sync (self, &io);
}

static int
nbd_zero (void *self, size_t len, uint64_t off, unsigned flags)
{
  struct r3m_io io = { .op = R3M_IO_ZERO, .len = len, .off = off,
                       .flags = flags };
  return run_sync (self, &io);
}

static int
nbd_trim (void *self, size_t len, uint64_t off)
{
  struct r3m_io io = { .op = R3M_IO_TRIM, .len = len, .off = off };
  return run_sync (self, &io);
}

/* BLOCK_STATUS from off, aligned to the server's block size: the request
 * covers whole blocks and the answer is trimmed to [off, off + len). */
static int
nbd_extents (void *self, uint64_t off, uint64_t len, struct r3m_extent *ext,
             size_t max, size_t *n)
{
  struct nbd_cli_pool *p = self;
  const struct nbd_cli_export *ex = &p->conns[0]->ex;
  uint64_t mb = ex->min_block;
  uint64_t a = off / mb * mb;
  uint64_t end = (off + len + mb - 1) / mb * mb;
  if (end > ex->size / mb * mb)
    end = ex->size / mb * mb;   /* a partial last block cannot be asked */
  if (end <= a) {
    *n = 0;
    return 0;
  }
  struct nbd_cli_status st = { .ext = ext, .max = max };
  struct r3m_io io = { .op = (enum r3m_io_op) NBD_CLI_OP_STATUS,
                       .len = end - a, .off = a };
  NBD_CLI_STATUS (&io) = &st;
  int r = run_sync (p, &io);
  if (r < 0)
    return r;
  /* Drop what lies before off. */
  uint64_t skip = off - a;
  size_t k = 0;
  while (k < st.n && skip >= ext[k].len)
    skip -= ext[k++].len;
  if (k == st.n) {
    *n = 0;
    return 0;
  }
  memmove (ext, ext + k, (st.n - k) * sizeof *ext);
  ext[0].len -= skip;
  /* ... and what lies past off + len. */
  size_t m = 0;
  for (uint64_t left = len; m < st.n - k && left > 0; m++) {
    if (ext[m].len > left)
      ext[m].len = left;
    left -= ext[m].len;
  }
  *n = m;
  return 0;
}

static int
nbd_submit (void *self, struct r3m_io *io)
{
  return nbd_cli_conn_submit (pick (self), io);
}

static void
nbd_close (void *self)
{
  pool_free (self);
}

/* The connection that died first has the message; its siblings were
 * killed without one.  Copies that message and its error; with bare, the
 * message goes without the "URI: " in front.  false: none died with one. */
static bool
first_death (const struct nbd_cli_pool *p, bool bare, int *error,
             char *buf, size_t len)
{
  unsigned n = atomic_load (&p->nconns);
  bool found = false;
  for (unsigned i = 0; i < n && !found; i++) {
    struct nbd_cli_conn *c = p->conns[i];
    pthread_mutex_lock (&c->lock);
    if (c->dead && c->msg[0]) {
      const char *m = c->msg;
      size_t w = strlen (c->what);
      if (bare && strncmp (m, c->what, w) == 0
          && strncmp (m + w, ": ", 2) == 0)
        m += w + 2;
      snprintf (buf, len, "%s", m);
      *error = c->error;
      found = true;
    }
    pthread_mutex_unlock (&c->lock);
  }
  return found;
}

/* Without the URI, which whoever reports it names already ("background
 * fetch of chunk 3 from nbd://h/x: server closed the connection"). */
static int
nbd_why (void *self, char *buf, size_t len)
{
  int error;
  return first_death (self, true, &error, buf, len);
}

static const struct r3m_backend_ops nbd_ops = {
  .name = "nbd",
  .pread = nbd_pread,
  .pwrite = nbd_pwrite,
  .flush = nbd_flush,
  .zero = nbd_zero,
  .trim = nbd_trim,
  .extents = nbd_extents,
  .submit = nbd_submit,
  .close = nbd_close,
  .why = nbd_why,
};

int
nbd_cli_backend_open (const char *uri, unsigned flags,
                      struct r3m_backend **out, struct r3m_error *err)
{
  struct nbd_cli_pool *p = NULL;
  int r = pool_open (uri, flags, &p, err);
  if (r < 0 || !p)
    return r < 0 ? r : -EIO;
  const struct nbd_cli_conn *c = p->conns[0];
  bool ro = (c->ex.flags & NBD_FLAG_READ_ONLY)
            || (flags & R3M_OPEN_READ_ONLY);
  struct r3m_backend_info info = {
    .size = c->ex.size,
    .align = c->ex.min_block,
    .preferred_io = c->ex.pref_block,
    .max_io = c->max_io,
    .flags = (ro ? R3M_BACKEND_READ_ONLY : 0) | R3M_BACKEND_REMOTE
             | ((c->ex.flags & NBD_FLAG_SEND_WRITE_ZEROES)
                ? R3M_BACKEND_FAST_ZERO : 0),
    .async_threads = 0,
  };
  r = r3m_backend_new (&nbd_ops, p, &info, uri, out, err);
  if (r < 0)
    pool_free (p);
  return r;
}

/* The URI registry's entry point (src/backend/registry.c). */
int
be_nbd_open (const struct util_uri *u, const char *uri, unsigned flags,
             struct r3m_backend **out, struct r3m_error *err)
{
  return nbd_cli_backend_open (uri, flags, out, err);
}

/* ---- public extras (include/r3map/nbd_client.h) ------------------------ */

int
r3m_nbd_client_error (const struct r3m_backend *b, struct r3m_error *err)
{
  r3m_error_clear (err);
  if (!b || b->ops != &nbd_ops)
    return util_err (err, EINVAL, "r3m_nbd_client_error: not an NBD "
                     "client backend");
  const struct nbd_cli_pool *p = b->self;
  char msg[R3M_ERROR_MSG_MAX];
  int error;
  if (first_death (p, false, &error, msg, sizeof msg))
    return util_err (err, error, "%s", msg);
  unsigned n = atomic_load (&p->nconns);
  int code = 0;
  for (unsigned i = 0; i < n && code == 0; i++) {
    struct nbd_cli_conn *c = p->conns[i];
    pthread_mutex_lock (&c->lock);
    if (c->dead)
      code = util_errno (err, c->error, "%s", c->what);
    pthread_mutex_unlock (&c->lock);
  }
  for (unsigned i = 0; i < n && code == 0; i++) {
    struct nbd_cli_conn *c = p->conns[i];
    pthread_mutex_lock (&c->lock);
    if (c->req_msg[0])
      code = util_err (err, c->req_error, "%s", c->req_msg);
    pthread_mutex_unlock (&c->lock);
  }
  return code;
}

int
r3m_nbd_client_info (const struct r3m_backend *b,
                     struct r3m_nbd_client_info *info)
{
  if (!b || b->ops != &nbd_ops || !info)
    return -EINVAL;
  struct nbd_cli_pool *p = b->self;
  wait_opener (p);
  const struct nbd_cli_conn *c = p->conns[0];
  *info = (struct r3m_nbd_client_info) {
    .size = c->ex.size,
    .flags = c->ex.flags,
    .connections = atomic_load (&p->nconns),
    .inflight = p->o.inflight,
    .structured_replies = c->ex.structured,
    .block_status = c->ex.has_meta,
    .min_block = c->ex.min_block,
    .preferred_block = c->ex.pref_block,
    .max_payload = c->ex.max_payload,
    .tls = p->o.uri.tls,
    .extended_headers = c->ex.extended,
  };
  return 0;
}
