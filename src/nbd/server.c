/* The NBD server object: exports, listeners, connections, shutdown.
 *
 * Connection life cycle (each step on the connection's own thread):
 *   accepted -> registered in srv->conns (refused when stopping or full)
 *   -> handshake (bounded by handshake_timeout_ms)
 *   -> transmission (inline or pool, see server.h)
 *   -> contexts closed, backend flushed if the client wrote
 *   -> unregistered: counters added to srv->totals, the thread parks itself
 *      on the reap list; from here it never touches srv again
 *   -> socket closed, memory freed, thread ends; joined by the accept
 *      thread, the next shutdown or free.
 * Shutdown first sets the stop flag (new options get ERR_SHUTDOWN, new
 * requests ESHUTDOWN), stops accepting, shuts every socket's read side so
 * idle readers wake, waits grace_ms for the connections to end, then shuts
 * the write side too and waits for the rest, and flushes every export. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "backend/handle.h"
#include "nbd/server.h"
#include "nbd/tls.h"
#include "util/error.h"
#include "util/time.h"

/* A finished connection thread waiting to be joined. */
struct reap {
  pthread_t thread;
  struct reap *next;
};

/* ---- options and logging --------------------------------------------- */

void
r3m_nbd_server_options_init (struct r3m_nbd_server_options *o)
{
  memset (o, 0, sizeof *o);
  o->workers = 16;
  o->max_connections = 256;
  o->handshake_timeout_ms = 30000;
  o->log_level = R3M_NBD_LOG_WARN;
  o->busy_poll_us = 50;
  o->batch_hold_us = 20;
}

void
nbd_srv_log (struct r3m_nbd_server *srv, enum r3m_nbd_log_level level,
             const char *fmt, ...)
{
  if (!srv->opts.log || level > srv->opts.log_level)
    return;
  char msg[512];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  srv->opts.log (srv->opts.log_user, level, msg);
}

bool
nbd_srv_stopping (struct r3m_nbd_server *srv)
{
  return atomic_load_explicit (&srv->stop_flag, memory_order_relaxed);
}

/* ---- creating ------------------------------------------------------------ */

static int
copy_string (const char *s, char **out, struct r3m_error *err)
{
  *out = NULL;
  if (s && !(*out = strdup (s)))
    return util_errno (err, ENOMEM, "nbd server");
  return 0;
}

int
r3m_nbd_server_new (const struct r3m_nbd_server_options *o,
                    struct r3m_nbd_server **out, struct r3m_error *err)
{
  struct r3m_nbd_server_options defaults;
  if (!o) {
    r3m_nbd_server_options_init (&defaults);
    o = &defaults;
  }
  if (o->workers == 0 || o->max_connections == 0)
    return util_err (err, EINVAL, "nbd server: workers and max_connections "
                     "must be at least 1");
  if (o->busy_poll_us > 10000)
    return util_err (err, EINVAL, "nbd server: busy polling is at most "
                     "10000 us");
  if (o->batch_hold_us > 10000)
    return util_err (err, EINVAL, "nbd server: holding a batch is at most "
                     "10000 us");
  if (o->tls != R3M_NBD_TLS_OFF && !o->tls_cert && !o->tls_psk)
    return util_err (err, EINVAL, "nbd server: TLS needs a certificate or a "
                     "pre-shared key file");
  struct r3m_nbd_server *srv = calloc (1, sizeof *srv);
  if (!srv)
    return util_errno (err, ENOMEM, "nbd server");
  srv->opts = *o;
  srv->wake_fd = -1;
  /* With one CPU a spinning server only delays the client it waits for. */
  bool cpus = sysconf (_SC_NPROCESSORS_ONLN) > 1;
  srv->spin_ok = o->busy_poll_us > 0 && cpus;
  srv->hold_ok = o->batch_hold_us > 0 && cpus;
  pthread_mutex_init (&srv->lock, NULL);
  pthread_mutex_init (&srv->shutdown_lock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init (&ca);
  pthread_condattr_setclock (&ca, CLOCK_MONOTONIC);
  pthread_cond_init (&srv->conns_changed, &ca);
  pthread_condattr_destroy (&ca);
  int r = copy_string (o->tls_cert, &srv->tls_cert, err);
  if (r == 0)
    r = copy_string (o->tls_key, &srv->tls_key, err);
  if (r == 0)
    r = copy_string (o->tls_ca, &srv->tls_ca, err);
  if (r == 0)
    r = copy_string (o->tls_psk, &srv->tls_psk, err);
  srv->opts.tls_psk = srv->tls_psk;
  srv->opts.tls_cert = srv->tls_cert;
  srv->opts.tls_key = srv->tls_key;
  srv->opts.tls_ca = srv->tls_ca;
  if (r == 0 && o->tls != R3M_NBD_TLS_OFF) {
    struct nbd_tls_options to;
    nbd_tls_options_init (&to);
    to.cert_file = srv->tls_cert;
    to.key_file = srv->tls_key;
    to.ca_file = srv->tls_ca;
    to.psk_file = srv->tls_psk;
    r = nbd_tls_new_server (&to, &srv->tls, err);
  }
  if (r == 0 && (srv->wake_fd = eventfd (0, EFD_CLOEXEC)) < 0)
    r = util_errno (err, errno, "nbd server: eventfd");
  if (r < 0) {
    r3m_nbd_server_free (srv);
    return r;
  }
  *out = srv;
  return 0;
}

/* ---- exports -------------------------------------------------------------- */

static bool
pow2 (uint32_t v)
{
  return v && !(v & (v - 1));
}

const struct nbd_srv_export *
nbd_srv_find_export (struct r3m_nbd_server *srv, const char *name,
                     size_t len)
{
  const struct nbd_srv_export *found = NULL;
  pthread_mutex_lock (&srv->lock);
  for (size_t i = 0; i < srv->nexports && !found; i++) {
    const struct nbd_srv_export *e = srv->exports[i];
    if (strlen (e->name) == len && memcmp (e->name, name, len) == 0)
      found = e;
  }
  pthread_mutex_unlock (&srv->lock);
  return found;
}

static void
export_free (struct nbd_srv_export *e)
{
  if (!e)
    return;
  for (size_t i = 0; i < e->nmetas; i++)
    free (e->metas[i].name);
  free (e->metas);
  free (e->name);
  free (e->description);
  free (e);
}

/* Fill e's block sizes from the options and the backend; 0 or -EINVAL.
 *
 * The minimum is what the server enforces: 1 unless the export asks for
 * more.  A backend's own alignment does not need enforcing (the backend
 * handle does read-modify-write for unaligned requests), so it becomes
 * the preferred size instead: what a client should use to be efficient. */
static int
block_sizes (struct nbd_srv_export *e, const struct r3m_nbd_export_options *o,
             const struct r3m_backend_info *bi, struct r3m_error *err)
{
  e->min_block = o->min_block ? o->min_block : 1;
  if (!pow2 (e->min_block) || e->min_block > 65536)
    return util_err (err, EINVAL, "export '%s': minimum block size %u must "
                     "be a power of two up to 65536", e->name, e->min_block);
  e->max_payload = o->max_payload ? o->max_payload : NBD_MAX_PAYLOAD;
  if (e->max_payload < 512 || e->max_payload > (64u << 20))
    return util_err (err, EINVAL, "export '%s': maximum payload %u must be "
                     "from 512 bytes to 64 MiB", e->name, e->max_payload);
  uint32_t pref = o->preferred_block;
  if (!pref) {
    pref = 4096;
    if (pow2 (bi->preferred_io) && bi->preferred_io > pref)
      pref = bi->preferred_io;
    if (bi->align > pref)
      pref = bi->align;
    if (e->min_block > pref)
      pref = e->min_block;
    while (pref > e->max_payload)
      pref /= 2;
  }
  e->pref_block = pref;
  if (!pow2 (pref) || pref < 512 || pref < e->min_block
      || pref > e->max_payload)
    return util_err (err, EINVAL, "export '%s': preferred block size %u must "
                     "be a power of two from 512 and the minimum to the "
                     "maximum payload", e->name, pref);
  return 0;
}

int
r3m_nbd_server_add_export (struct r3m_nbd_server *srv, const char *name,
                           struct r3m_backend *backend,
                           const struct r3m_nbd_export_options *o,
                           struct r3m_error *err)
{
  struct r3m_nbd_export_options defaults = { 0 };
  if (!o)
    o = &defaults;
  if (!name || !backend || strlen (name) > NBD_MAX_STRING
      || (o->description && strlen (o->description) > NBD_MAX_STRING))
    return util_err (err, EINVAL, "export: a name and a backend are needed; "
                     "names and descriptions are at most %d bytes",
                     NBD_MAX_STRING);
  if (nbd_srv_find_export (srv, name, strlen (name)))
    return util_err (err, EEXIST, "export '%s' exists already", name);
  const struct r3m_backend_info *bi = r3m_backend_get_info (backend);
  struct nbd_srv_export *e = calloc (1, sizeof *e);
  if (!e || !(e->name = strdup (name))
      || !(e->description = strdup (o->description ? o->description : ""))
      || !(e->metas = calloc (1, sizeof *e->metas))
      || !(e->metas[0].name = strdup ("base:allocation"))) {
    export_free (e);
    return util_errno (err, ENOMEM, "export '%s'", name);
  }
  e->nmetas = 1;
  e->metas[0].allocation = true;
  e->backend = backend;
  e->size = bi->size;
  e->read_only = o->read_only || (bi->flags & R3M_BACKEND_READ_ONLY);
  e->multi_conn = !o->no_multi_conn;
  e->inline_io = !backend->ops->submit && bi->async_threads == 0;
  e->direct = e->inline_io ? r3m_backend_direct (backend) : NULL;
  e->fast_zero = bi->flags & R3M_BACKEND_FAST_ZERO;
  int r = block_sizes (e, o, bi, err);
  pthread_mutex_lock (&srv->lock);
  struct nbd_srv_export **a = NULL;
  if (r == 0 && srv->frozen)
    r = util_err (err, EBUSY, "export '%s': add exports before serving",
                  name);
  if (r == 0 && !(a = realloc (srv->exports,
                               (srv->nexports + 1) * sizeof *a)))
    r = util_errno (err, ENOMEM, "export '%s'", name);
  if (r == 0) {
    srv->exports = a;
    srv->exports[srv->nexports++] = e;
  }
  pthread_mutex_unlock (&srv->lock);
  if (r < 0)
    export_free (e);
  return r;
}

int
r3m_nbd_server_add_meta_context (struct r3m_nbd_server *srv,
                                 const char *export_name,
                                 const struct r3m_nbd_meta_context *ctx,
                                 struct r3m_error *err)
{
  if (!ctx || !ctx->name || !ctx->query || !strchr (ctx->name, ':')
      || ctx->name[0] == ':' || strlen (ctx->name) > NBD_MAX_STRING)
    return util_err (err, EINVAL, "meta context: a name 'namespace:leaf' "
                     "and a query callback are needed");
  struct nbd_srv_export *e = (struct nbd_srv_export *)
    nbd_srv_find_export (srv, export_name, strlen (export_name));
  if (!e)
    return util_err (err, ENOENT, "meta context %s: no export '%s'",
                     ctx->name, export_name);
  int r = 0;
  pthread_mutex_lock (&srv->lock);
  for (size_t i = 0; i < e->nmetas && r == 0; i++)
    if (strcmp (e->metas[i].name, ctx->name) == 0)
      r = util_err (err, EEXIST, "meta context %s exists already on '%s'",
                    ctx->name, export_name);
  if (r == 0 && srv->frozen)
    r = util_err (err, EBUSY, "meta context %s: add it before serving",
                  ctx->name);
  struct nbd_srv_meta *m = NULL;
  char *name = NULL;
  if (r == 0 && (!(name = strdup (ctx->name))
                 || !(m = realloc (e->metas,
                                   (e->nmetas + 1) * sizeof *m)))) {
    free (name);
    r = util_errno (err, ENOMEM, "meta context %s", ctx->name);
  }
  if (r == 0) {
    e->metas = m;
    e->metas[e->nmetas] = (struct nbd_srv_meta) { .name = name,
                                                  .ctx = *ctx };
    e->metas[e->nmetas].ctx.name = name;
    e->nmetas++;
  }
  pthread_mutex_unlock (&srv->lock);
  return r;
}

/* ---- listening ------------------------------------------------------------ */

int
r3m_nbd_server_listen (struct r3m_nbd_server *srv, const char *uri,
                       struct r3m_error *err)
{
  struct nbd_uri u;
  int r = nbd_uri_parse (uri, &u, err);
  static const char *const allowed[] = { "socket", NULL };
  if (r == 0)
    r = util_uri_check_params (&u.uri, allowed, uri, err);
  if (r == 0 && u.export_name[0])
    r = util_err (err, EINVAL, "%s: a listen address names no export", uri);
  if (r == 0 && u.uri.user)
    r = util_err (err, EINVAL, "%s: a listen address has no user name", uri);
  if (r == 0 && u.tls && !srv->tls)
    r = util_err (err, EINVAL, "%s: TLS needs --tls=on or require and a "
                  "certificate or pre-shared keys", uri);
  bool tls_required = u.tls || srv->opts.tls == R3M_NBD_TLS_REQUIRE;
  u.tls = tls_required;         /* so the printed address says nbds */
  struct nbd_listener *l = NULL;
  size_t n = 0;
  if (r == 0)
    r = nbd_listen_uri (&u, 128, &l, &n, err);
  nbd_uri_free (&u);
  if (r < 0)
    return r;

  pthread_mutex_lock (&srv->lock);
  size_t total = srv->nbound + n;
  struct nbd_listener *b = NULL;
  struct nbd_srv_listener *sl = NULL;
  if (srv->started || srv->stopping)
    r = util_err (err, EBUSY, "%s: listen before starting the server", uri);
  else if (!(b = realloc (srv->bound, total * sizeof *b)))
    r = util_errno (err, ENOMEM, "listen");
  else {
    srv->bound = b;
    if (!(sl = realloc (srv->listeners, total * sizeof *sl)))
      r = util_errno (err, ENOMEM, "listen");
    else
      srv->listeners = sl;
  }
  if (r == 0) {
    for (size_t i = 0; i < n; i++) {
      srv->bound[srv->nbound + i] = l[i];
      srv->listeners[srv->nbound + i] = (struct nbd_srv_listener) {
        .fd = l[i].fd, .tls_required = tls_required };
    }
    srv->nbound = total;
    free (l);                   /* the entries moved */
  }
  pthread_mutex_unlock (&srv->lock);
  if (r < 0)
    nbd_listeners_free (l, n);
  return r;
}

size_t
r3m_nbd_server_address_count (const struct r3m_nbd_server *srv)
{
  return srv->nbound;
}

const char *
r3m_nbd_server_address (const struct r3m_nbd_server *srv, size_t i)
{
  return i < srv->nbound ? srv->bound[i].address : NULL;
}

/* ---- connections ---------------------------------------------------------- */

static void
reap_finished (struct r3m_nbd_server *srv)
{
  pthread_mutex_lock (&srv->lock);
  struct reap *list = srv->reap;
  srv->reap = NULL;
  pthread_mutex_unlock (&srv->lock);
  while (list) {
    struct reap *next = list->next;
    pthread_join (list->thread, NULL);
    free (list);
    list = next;
  }
}

struct nbd_srv_conn *
nbd_srv_conn_new (struct r3m_nbd_server *srv, struct nbd_conn *conn,
                  bool tls_required)
{
  struct nbd_srv_conn *sc = calloc (1, sizeof *sc);
  if (!sc)
    return NULL;
  sc->srv = srv;
  sc->conn = conn;
  sc->tls_required = tls_required;
  nbd_conn_describe_peer (conn, sc->peer, sizeof sc->peer);
  pthread_mutex_lock (&srv->lock);
  bool stopping = srv->stopping;
  bool ok = !stopping && srv->nconns < srv->opts.max_connections;
  if (ok) {
    srv->frozen = true;
    sc->next = srv->conns;
    if (srv->conns)
      srv->conns->prev = sc;
    srv->conns = sc;
    srv->nconns++;
    srv->totals.connections++;
  }
  pthread_mutex_unlock (&srv->lock);
  if (!ok) {
    nbd_srv_log (srv, R3M_NBD_LOG_WARN, "%s: refused (%s)", sc->peer,
                 stopping ? "shutting down" : "too many connections");
    free (sc);
    return NULL;
  }
  return sc;
}

static void
add_counters (struct r3m_nbd_server_stats *st, struct nbd_srv_conn *sc)
{
  st->requests += atomic_load (&sc->requests);
  st->bytes_read += atomic_load (&sc->bytes_read);
  st->bytes_written += atomic_load (&sc->bytes_written);
  st->errors += atomic_load (&sc->errors);
  st->holds += atomic_load (&sc->holds);
  st->holds_found += atomic_load (&sc->holds_found);
}

static void
unregister (struct nbd_srv_conn *sc, struct reap *parked)
{
  struct r3m_nbd_server *srv = sc->srv;
  pthread_mutex_lock (&srv->lock);
  if (sc->prev)
    sc->prev->next = sc->next;
  else
    srv->conns = sc->next;
  if (sc->next)
    sc->next->prev = sc->prev;
  srv->nconns--;
  add_counters (&srv->totals, sc);
  if (parked) {
    parked->next = srv->reap;
    srv->reap = parked;
  }
  pthread_cond_broadcast (&srv->conns_changed);
  pthread_mutex_unlock (&srv->lock);
}

static void
conn_run (struct nbd_srv_conn *sc, struct reap *parked)
{
  struct r3m_nbd_server *srv = sc->srv;
  nbd_srv_log (srv, R3M_NBD_LOG_INFO, "%s: connected", sc->peer);
  if (srv->opts.handshake_timeout_ms)
    nbd_conn_set_deadline (sc->conn, util_now_ns ()
                           + srv->opts.handshake_timeout_ms * UINT64_C (1000000));
  int r = nbd_srv_handshake (sc);
  if (r == 0) {
    nbd_conn_set_deadline (sc->conn, 0);
    nbd_srv_log (srv, R3M_NBD_LOG_INFO, "%s: serving export '%s'%s%s",
                 sc->peer, sc->exp->name,
                 sc->extended ? " with extended headers"
                 : sc->structured ? " with structured replies" : "",
                 sc->exp->inline_io ? "" : " (worker pool)");
    if (sc->exp->inline_io)
      nbd_srv_transmit_inline (sc);
    else
      nbd_srv_transmit_pool (sc);
  } else if (r == -ETIMEDOUT)
    nbd_srv_log (srv, R3M_NBD_LOG_WARN, "%s: handshake timed out", sc->peer);
  nbd_srv_meta_close (sc);
  nbd_srv_log (srv, R3M_NBD_LOG_INFO, "%s: disconnected", sc->peer);
  unregister (sc, parked);
  /* From here on srv may be gone. */
  nbd_conn_close (sc->conn);
  nbd_srv_meta_clear (sc);
  free (sc);
}

void
nbd_srv_conn_run (struct nbd_srv_conn *sc)
{
  conn_run (sc, NULL);
}

struct thread_start {
  struct nbd_srv_conn *sc;
  struct reap *parked;
};

static void *
conn_thread (void *arg)
{
  struct thread_start *ts = arg;
  ts->parked->thread = pthread_self ();
  struct nbd_srv_conn *sc = ts->sc;
  struct reap *parked = ts->parked;
  free (ts);
  conn_run (sc, parked);
  return NULL;
}

/* Unix stream sockets have no send buffer autotuning (TCP grows its own
 * to net.ipv4.tcp_wmem's maximum).  With the default of about 208 KiB a
 * 1 MiB READ reply leaves in five rounds, each a sleep of ours and a
 * wake-up of the client's; 4 MiB took both from about 4 context switches
 * per 1 MiB reply to 0.2 (docs/nbd-server.md).  The kernel caps it at
 * net.core.wmem_max. */
static void
tune_socket (struct nbd_conn *conn)
{
  int fd = nbd_conn_fd (conn);
  if (nbd_conn_family (conn) != AF_UNIX)
    return;
  int want = NBD_SRV_UNIX_SNDBUF, have = 0;
  socklen_t hl = sizeof have;
  if (getsockopt (fd, SOL_SOCKET, SO_SNDBUF, &have, &hl) == 0
      && have >= want)
    return;
  setsockopt (fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof want);
}

/* Register and start a thread for conn (owned by us from here). */
static int
spawn (struct r3m_nbd_server *srv, struct nbd_conn *conn, bool tls_required)
{
  struct thread_start *ts = malloc (sizeof *ts);
  struct reap *parked = malloc (sizeof *parked);
  struct nbd_srv_conn *sc = ts && parked
                            ? nbd_srv_conn_new (srv, conn, tls_required)
                            : NULL;
  if (!sc) {
    free (ts);
    free (parked);
    nbd_conn_close (conn);
    return -EAGAIN;
  }
  tune_socket (conn);
  *ts = (struct thread_start) { .sc = sc, .parked = parked };
  pthread_t t;
  int r = pthread_create (&t, NULL, conn_thread, ts);
  if (r != 0) {
    nbd_srv_log (srv, R3M_NBD_LOG_ERROR, "%s: no thread: %s", sc->peer,
                 strerror (r));
    free (ts);
    free (parked);
    unregister (sc, NULL);
    nbd_conn_close (sc->conn);
    free (sc);
    return -r;
  }
  return 0;
}

int
r3m_nbd_server_serve_fd (struct r3m_nbd_server *srv, int fd,
                         struct r3m_error *err)
{
  struct nbd_conn *conn;
  int r = nbd_conn_new (fd, &conn);
  if (r < 0)
    return util_errno (err, -r, "nbd server: serve fd");
  reap_finished (srv);
  r = spawn (srv, conn, srv->opts.tls == R3M_NBD_TLS_REQUIRE);
  return r < 0 ? util_errno (err, -r, "nbd server: serve fd") : 0;
}

/* ---- accepting ------------------------------------------------------------ */

static void
accept_one (struct r3m_nbd_server *srv, size_t i)
{
  int fd = accept4 (srv->listeners[i].fd, NULL, NULL, SOCK_CLOEXEC);
  if (fd < 0) {
    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS
        || errno == ENOMEM) {
      nbd_srv_log (srv, R3M_NBD_LOG_ERROR, "accept: %s", strerror (errno));
      /* Give the system a moment instead of spinning on poll. */
      struct pollfd p = { .fd = srv->wake_fd, .events = POLLIN };
      poll (&p, 1, 100);
    }
    return;
  }
  struct nbd_conn *conn;
  if (nbd_conn_new (fd, &conn) == 0)
    spawn (srv, conn, srv->listeners[i].tls_required);
}

static void *
accept_thread (void *arg)
{
  struct r3m_nbd_server *srv = arg;
  size_t n = srv->nbound;       /* fixed once started */
  struct pollfd *p = calloc (n + 1, sizeof *p);
  if (!p) {
    nbd_srv_log (srv, R3M_NBD_LOG_ERROR, "accept: out of memory");
    return NULL;
  }
  for (size_t i = 0; i < n; i++)
    p[i] = (struct pollfd) { .fd = srv->listeners[i].fd, .events = POLLIN };
  p[n] = (struct pollfd) { .fd = srv->wake_fd, .events = POLLIN };
  while (!nbd_srv_stopping (srv)) {
    int r = poll (p, n + 1, -1);
    if (r < 0 && errno != EINTR)
      break;
    if (p[n].revents)
      break;
    for (size_t i = 0; r > 0 && i < n; i++)
      if (p[i].revents & POLLIN)
        accept_one (srv, i);
    reap_finished (srv);
  }
  free (p);
  return NULL;
}

int
r3m_nbd_server_start (struct r3m_nbd_server *srv, struct r3m_error *err)
{
  pthread_mutex_lock (&srv->lock);
  int r = 0;
  if (srv->started || srv->stopping)
    r = util_err (err, EBUSY, "nbd server: already started or stopped");
  else if (srv->nbound == 0)
    r = util_err (err, EINVAL, "nbd server: nothing to listen on");
  else if (srv->nexports == 0)
    r = util_err (err, EINVAL, "nbd server: no exports");
  else {
    r = -pthread_create (&srv->accept_thread, NULL, accept_thread, srv);
    if (r < 0)
      util_errno (err, -r, "nbd server: accept thread");
    else {
      srv->started = true;
      srv->frozen = true;
    }
  }
  pthread_mutex_unlock (&srv->lock);
  return r;
}

/* ---- stopping -------------------------------------------------------------- */

static void
shutdown_conns_locked (struct r3m_nbd_server *srv, int how)
{
  for (struct nbd_srv_conn *sc = srv->conns; sc; sc = sc->next)
    nbd_conn_shutdown (sc->conn, how);
}

static void
wait_conns (struct r3m_nbd_server *srv, unsigned grace_ms)
{
  struct timespec deadline = util_deadline_ms (grace_ms);
  pthread_mutex_lock (&srv->lock);
  shutdown_conns_locked (srv, SHUT_RD);
  while (srv->nconns > 0)
    if (pthread_cond_timedwait (&srv->conns_changed, &srv->lock, &deadline)
        == ETIMEDOUT)
      break;
  if (srv->nconns > 0) {
    nbd_srv_log (srv, R3M_NBD_LOG_WARN, "shutdown: cutting %zu connection(s)",
                 srv->nconns);
    shutdown_conns_locked (srv, SHUT_RDWR);
    while (srv->nconns > 0)
      pthread_cond_wait (&srv->conns_changed, &srv->lock);
  }
  pthread_mutex_unlock (&srv->lock);
}

static int
flush_exports (struct r3m_nbd_server *srv, struct r3m_error *err)
{
  int first = 0;
  for (size_t i = 0; i < srv->nexports; i++) {
    const struct nbd_srv_export *e = srv->exports[i];
    if (e->read_only)
      continue;
    int r = r3m_backend_flush (e->backend);
    if (r < 0) {
      nbd_srv_log (srv, R3M_NBD_LOG_ERROR, "flush of export '%s' (%s): %s",
                   e->name, r3m_backend_describe (e->backend), strerror (-r));
      if (first == 0)
        first = util_errno (err, -r, "flush of export '%s' (%s)", e->name,
                            r3m_backend_describe (e->backend));
    }
  }
  return first;
}

int
r3m_nbd_server_shutdown (struct r3m_nbd_server *srv, unsigned grace_ms,
                         struct r3m_error *err)
{
  pthread_mutex_lock (&srv->shutdown_lock);
  pthread_mutex_lock (&srv->lock);
  bool done = srv->stopped, started = srv->started;
  srv->stopping = true;
  atomic_store (&srv->stop_flag, true);
  pthread_mutex_unlock (&srv->lock);
  if (done) {
    pthread_mutex_unlock (&srv->shutdown_lock);
    return 0;
  }
  if (started) {
    uint64_t one = 1;
    if (write (srv->wake_fd, &one, sizeof one) < 0)
      nbd_srv_log (srv, R3M_NBD_LOG_ERROR, "shutdown: eventfd: %s",
                   strerror (errno));
    pthread_join (srv->accept_thread, NULL);
  }
  nbd_listeners_free (srv->bound, srv->nbound);   /* removes Unix sockets */
  free (srv->listeners);
  srv->bound = NULL;
  srv->listeners = NULL;
  srv->nbound = 0;
  wait_conns (srv, grace_ms);
  reap_finished (srv);
  int r = flush_exports (srv, err);
  pthread_mutex_lock (&srv->lock);
  srv->stopped = true;
  pthread_mutex_unlock (&srv->lock);
  pthread_mutex_unlock (&srv->shutdown_lock);
  return r;
}

void
r3m_nbd_server_free (struct r3m_nbd_server *srv)
{
  if (!srv)
    return;
  r3m_nbd_server_shutdown (srv, 0, NULL);
  for (size_t i = 0; i < srv->nexports; i++)
    export_free (srv->exports[i]);
  free (srv->exports);
  nbd_tls_free (srv->tls);
  if (srv->wake_fd >= 0)
    close (srv->wake_fd);
  free (srv->tls_cert);
  free (srv->tls_key);
  free (srv->tls_ca);
  free (srv->tls_psk);
  pthread_cond_destroy (&srv->conns_changed);
  pthread_mutex_destroy (&srv->shutdown_lock);
  pthread_mutex_destroy (&srv->lock);
  free (srv);
}

void
r3m_nbd_server_stats (struct r3m_nbd_server *srv,
                      struct r3m_nbd_server_stats *st)
{
  pthread_mutex_lock (&srv->lock);
  *st = srv->totals;
  st->active = srv->nconns;
  for (struct nbd_srv_conn *sc = srv->conns; sc; sc = sc->next)
    add_counters (st, sc);
  pthread_mutex_unlock (&srv->lock);
}
