/* Transmission with a worker pool, for backends whose calls block (files,
 * remote stores, regions that fetch on demand).
 *
 * The reader thread reads and checks requests (and WRITE payloads) and
 * queues them; up to opts.workers threads, started as the queue needs them,
 * execute and reply in whatever order they finish.  The reader stops
 * reading while NBD_SRV_POOL_INFLIGHT requests or NBD_SRV_POOL_BYTES of
 * payload are queued or running, so a client cannot make us buffer
 * without bound; one request is always admitted, whatever its size.
 *
 * At the end of the stream (DISC, EOF, error) the reader lets the workers
 * finish everything queued, then joins them.  If a reply cannot be
 * written the connection is shut down so the reader stops too.  Once the
 * server is stopping, queued requests are answered NBD_ESHUTDOWN instead
 * of being executed.
 *
 * pool.lock guards every field below it in struct pool. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "nbd/server.h"

#define READER_CAP     (256u * 1024)
#define KEEP_REQS      64             /* recycled requests kept */
#define KEEP_BUF_MAX   (4u << 20)     /* larger buffers are freed */

struct pool {
  struct nbd_srv_conn *sc;
  pthread_mutex_t lock;
  pthread_cond_t work;               /* queue grew or draining */
  pthread_cond_t space;              /* in-flight went down */
  struct nbd_srv_req *head, *tail;   /* queued, not started */
  struct nbd_srv_req *spare;         /* recycled */
  unsigned nspare;
  pthread_t *threads;
  unsigned nthreads, max_threads, idle;
  unsigned inflight;                 /* queued + running */
  size_t inflight_bytes;
  bool draining;                     /* no more requests will come */
  bool failed;                       /* a reply could not be sent */
};

static size_t
cost (const struct nbd_srv_req *req)
{
  bool data = req->type == NBD_CMD_READ || req->type == NBD_CMD_WRITE;
  return data && !req->error ? req->len : 0;
}

/* A request with a buffer of at least len bytes (pool.lock not held). */
static struct nbd_srv_req *
get_req (struct pool *p, size_t len)
{
  pthread_mutex_lock (&p->lock);
  struct nbd_srv_req *req = p->spare;
  if (req) {
    p->spare = req->next;
    p->nspare--;
  }
  pthread_mutex_unlock (&p->lock);
  if (!req && !(req = calloc (1, sizeof *req)))
    return NULL;
  if (req->cap < len) {
    free (req->buf);
    req->buf = malloc (len);
    req->cap = req->buf ? len : 0;
    if (!req->buf) {
      free (req);
      return NULL;
    }
  }
  return req;
}

/* Return a finished request; called with pool.lock held. */
static void
put_req_locked (struct pool *p, struct nbd_srv_req *req)
{
  if (p->nspare >= KEEP_REQS || req->cap > KEEP_BUF_MAX) {
    free (req->buf);
    free (req);
    return;
  }
  req->next = p->spare;
  p->spare = req;
  p->nspare++;
}

static void
run_one (struct pool *p, struct nbd_srv_req *req)
{
  struct nbd_srv_conn *sc = p->sc;
  struct nbd_srv_result res = { 0 };
  void *buf = req->buf;
  if (req->error)
    nbd_srv_result_fail (&res, req->error, "%s", req->msg);
  else if (nbd_srv_stopping (sc->srv))
    nbd_srv_result_fail (&res, NBD_ESHUTDOWN, "the server is shutting down");
  else
    nbd_srv_execute (sc, req, &res);
  atomic_fetch_add_explicit (&sc->requests, 1, memory_order_relaxed);
  if (res.error)
    atomic_fetch_add_explicit (&sc->errors, 1, memory_order_relaxed);

  unsigned char hdr[NBD_SRV_HDR_MAX];
  struct iovec iov[2];
  int n = nbd_srv_encode_reply (sc, req, &res, hdr, iov);
  int r = nbd_conn_writev_all (sc->conn, iov, n);
  if (res.data_owned)
    free (res.data);
  req->buf = buf;
  if (r < 0) {
    pthread_mutex_lock (&p->lock);
    bool first = !p->failed;
    p->failed = true;
    pthread_cond_broadcast (&p->space);
    pthread_mutex_unlock (&p->lock);
    if (first) {
      nbd_srv_log (sc->srv, R3M_NBD_LOG_INFO, "%s: sending a reply: %s",
                   sc->peer, strerror (-r));
      nbd_conn_shutdown (sc->conn, SHUT_RDWR);
    }
  }
}

static void *
worker (void *arg)
{
  struct pool *p = arg;
  pthread_mutex_lock (&p->lock);
  for (;;) {
    while (!p->head && !p->draining) {
      p->idle++;
      pthread_cond_wait (&p->work, &p->lock);
      p->idle--;
    }
    struct nbd_srv_req *req = p->head;
    if (!req)
      break;                          /* draining and nothing left */
    p->head = req->next;
    if (!p->head)
      p->tail = NULL;
    pthread_mutex_unlock (&p->lock);

    run_one (p, req);

    pthread_mutex_lock (&p->lock);
    p->inflight--;
    p->inflight_bytes -= cost (req);
    put_req_locked (p, req);
    pthread_cond_signal (&p->space);
  }
  pthread_mutex_unlock (&p->lock);
  return NULL;
}

/* Queue req, starting a worker if none is idle.  false: no worker could
 * be started at all (the caller runs req itself). */
static bool
enqueue (struct pool *p, struct nbd_srv_req *req)
{
  pthread_mutex_lock (&p->lock);
  req->next = NULL;
  if (p->tail)
    p->tail->next = req;
  else
    p->head = req;
  p->tail = req;
  if (p->idle == 0 && p->nthreads < p->max_threads
      && pthread_create (&p->threads[p->nthreads], NULL, worker, p) == 0)
    p->nthreads++;
  bool ok = p->nthreads > 0;
  if (ok)
    pthread_cond_signal (&p->work);
  else {
    p->head = p->tail = NULL;         /* take it back */
  }
  pthread_mutex_unlock (&p->lock);
  return ok;
}

/* Wait for room for a request of cost c; false if the connection failed. */
static bool
admit (struct pool *p, size_t c)
{
  pthread_mutex_lock (&p->lock);
  while (!p->failed && p->inflight > 0
         && (p->inflight >= NBD_SRV_POOL_INFLIGHT
             || p->inflight_bytes + c > NBD_SRV_POOL_BYTES))
    pthread_cond_wait (&p->space, &p->lock);
  bool ok = !p->failed;
  if (ok) {
    p->inflight++;
    p->inflight_bytes += c;
  }
  pthread_mutex_unlock (&p->lock);
  return ok;
}

static void
unadmit (struct pool *p, size_t c)
{
  pthread_mutex_lock (&p->lock);
  p->inflight--;
  p->inflight_bytes -= c;
  pthread_mutex_unlock (&p->lock);
}

/* Read one request after its header; 0 to go on, < 0 to stop. */
static int
one_request (struct pool *p, struct nbd_srv_reader *rd,
             const struct nbd_srv_req *hdr)
{
  struct nbd_srv_req tmp = *hdr;
  nbd_srv_validate (p->sc, &tmp);
  size_t c = cost (&tmp);
  if (!admit (p, c))
    return -EPIPE;
  struct nbd_srv_req *req = get_req (p, c);
  if (!req) {
    unadmit (p, c);
    return -ENOMEM;
  }
  void *buf = req->buf;
  size_t cap = req->cap;
  *req = tmp;
  req->buf = buf;
  req->cap = cap;
  int r = 0;
  if (req->type == NBD_CMD_WRITE && req->len > 0)
    r = req->error ? nbd_srv_reader_skip (rd, req->len)
                   : nbd_srv_reader_copy (rd, req->buf, req->len);
  if (r < 0) {
    pthread_mutex_lock (&p->lock);
    p->inflight--;
    p->inflight_bytes -= c;
    put_req_locked (p, req);
    pthread_mutex_unlock (&p->lock);
    return r;
  }
  if (!enqueue (p, req)) {
    run_one (p, req);
    pthread_mutex_lock (&p->lock);
    p->inflight--;
    p->inflight_bytes -= c;
    put_req_locked (p, req);
    pthread_mutex_unlock (&p->lock);
  }
  return 0;
}

static void
read_requests (struct pool *p, struct nbd_srv_reader *rd)
{
  struct nbd_srv_conn *sc = p->sc;
  for (;;) {
    int r = nbd_srv_reader_need (rd, rd->header_size);
    if (r != 0) {
      if (r < 0 && r != -ECONNRESET && r != -EPIPE)
        nbd_srv_log (sc->srv, R3M_NBD_LOG_INFO, "%s: %s", sc->peer,
                     strerror (-r));
      return;
    }
    struct nbd_srv_req req = { 0 };
    int h = nbd_srv_reader_header (rd, &req);
    if (h < 0) {
      nbd_srv_log (sc->srv, R3M_NBD_LOG_WARN, "%s: %s: disconnecting",
                   sc->peer, nbd_srv_header_error (h));
      return;
    }
    if (req.type == NBD_CMD_DISC)
      return;
    r = one_request (p, rd, &req);
    if (r < 0) {
      if (r != -EPIPE)
        nbd_srv_log (sc->srv, R3M_NBD_LOG_INFO, "%s: %s", sc->peer,
                     strerror (-r));
      return;
    }
  }
}

void
nbd_srv_transmit_pool (struct nbd_srv_conn *sc)
{
  struct pool p = { .sc = sc, .max_threads = sc->srv->opts.workers };
  struct nbd_srv_reader rd;
  p.threads = calloc (p.max_threads, sizeof *p.threads);
  if (!p.threads || nbd_srv_reader_init (&rd, sc->conn, READER_CAP) < 0) {
    free (p.threads);
    nbd_srv_log (sc->srv, R3M_NBD_LOG_ERROR, "%s: out of memory", sc->peer);
    return;
  }
  if (sc->extended)
    nbd_srv_reader_set_extended (&rd);
  pthread_mutex_init (&p.lock, NULL);
  pthread_cond_init (&p.work, NULL);
  pthread_cond_init (&p.space, NULL);

  read_requests (&p, &rd);

  pthread_mutex_lock (&p.lock);
  p.draining = true;
  pthread_cond_broadcast (&p.work);
  pthread_mutex_unlock (&p.lock);
  for (unsigned i = 0; i < p.nthreads; i++)
    pthread_join (p.threads[i], NULL);
  while (p.spare) {
    struct nbd_srv_req *next = p.spare->next;
    free (p.spare->buf);
    free (p.spare);
    p.spare = next;
  }
  nbd_srv_reader_free (&rd);
  free (p.threads);
  pthread_cond_destroy (&p.space);
  pthread_cond_destroy (&p.work);
  pthread_mutex_destroy (&p.lock);
  nbd_srv_flush_if_wrote (sc);
}
