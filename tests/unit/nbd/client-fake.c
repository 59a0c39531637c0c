/* The scripted fake NBD server (see client-fake.h). */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "client-fake.h"
#include "nbd/proto.h"

struct fake_cfg
fake_default_cfg (void)
{
  return (struct fake_cfg) {
    .hs_flags = NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES,
    .structured = true,
    .meta = true,
    .size = 1 << 20,
    .tflags = NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_TRIM
              | NBD_FLAG_SEND_WRITE_ZEROES,
  };
}

void
fake_fail (struct fake *f, const char *fmt, ...)
{
  pthread_mutex_lock (&f->lock);
  if (!f->failure[0]) {
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (f->failure, sizeof f->failure, fmt, ap);
    va_end (ap);
  }
  pthread_mutex_unlock (&f->lock);
}

const char *
fake_failed (struct fake *f)
{
  pthread_mutex_lock (&f->lock);
  const char *r = f->failure[0] ? f->failure : NULL;
  pthread_mutex_unlock (&f->lock);
  return r;
}

/* ---- threads ------------------------------------------------------------- */

static void *
conn_main (void *arg)
{
  struct fake_conn *c = arg;
  c->f->script (c);
  shutdown (c->fd, SHUT_RDWR);
  pthread_mutex_lock (&c->f->lock);
  c->f->finished++;
  pthread_cond_broadcast (&c->f->cond);
  pthread_mutex_unlock (&c->f->lock);
  return NULL;
}

static void *
acceptor_main (void *arg)
{
  struct fake *f = arg;
  for (;;) {
    int fd = accept4 (f->lfd, NULL, NULL, SOCK_CLOEXEC);
    pthread_mutex_lock (&f->lock);
    if (fd < 0 || f->stopping || f->nconns == FAKE_MAX_CONNS) {
      pthread_mutex_unlock (&f->lock);
      if (fd >= 0)
        close (fd);
      if (fd < 0 && errno == EINTR)
        continue;
      break;
    }
    struct fake_conn *c = &f->conns[f->nconns];
    *c = (struct fake_conn) { .f = f, .fd = fd, .index = f->nconns };
    pthread_create (&f->threads[f->nconns], NULL, conn_main, c);
    f->nconns++;
    pthread_mutex_unlock (&f->lock);
  }
  return NULL;
}

struct fake *
fake_start (fake_script script, void *user, const struct fake_cfg *cfg)
{
  struct fake *f = calloc (1, sizeof *f);
  f->script = script;
  f->user = user;
  f->cfg = cfg ? *cfg : fake_default_cfg ();
  pthread_mutex_init (&f->lock, NULL);
  pthread_cond_init (&f->cond, NULL);
  snprintf (f->dir, sizeof f->dir, "/tmp/r3m-fake-XXXXXX");
  if (!mkdtemp (f->dir))
    abort ();
  snprintf (f->sock, sizeof f->sock, "%s/s", f->dir);
  snprintf (f->uri, sizeof f->uri, "nbd+unix:///?socket=%s", f->sock);
  f->lfd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  snprintf (sa.sun_path, sizeof sa.sun_path, "%s", f->sock);
  if (bind (f->lfd, (struct sockaddr *) &sa, sizeof sa) < 0
      || listen (f->lfd, 16) < 0)
    abort ();
  pthread_create (&f->acceptor, NULL, acceptor_main, f);
  return f;
}

void
fake_wait_finished (struct fake *f, int n)
{
  pthread_mutex_lock (&f->lock);
  while (f->finished < n)
    pthread_cond_wait (&f->cond, &f->lock);
  pthread_mutex_unlock (&f->lock);
}

bool
fake_stop (struct fake *f)
{
  pthread_mutex_lock (&f->lock);
  f->stopping = true;
  for (int i = 0; i < f->nconns; i++)
    shutdown (f->conns[i].fd, SHUT_RDWR);
  pthread_mutex_unlock (&f->lock);
  shutdown (f->lfd, SHUT_RDWR);
  pthread_join (f->acceptor, NULL);
  for (int i = 0; i < f->nconns; i++) {
    pthread_join (f->threads[i], NULL);
    close (f->conns[i].fd);
  }
  close (f->lfd);
  unlink (f->sock);
  rmdir (f->dir);
  bool ok = !f->failure[0];
  if (!ok)
    fprintf (stderr, "fake server: %s\n", f->failure);
  pthread_cond_destroy (&f->cond);
  pthread_mutex_destroy (&f->lock);
  free (f);
  return ok;
}

/* ---- raw I/O ------------------------------------------------------------- */

bool
fk_read (struct fake_conn *c, void *buf, size_t n)
{
  char *p = buf;
  while (n > 0) {
    ssize_t r = read (c->fd, p, n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return false;
    p += r;
    n -= (size_t) r;
  }
  return true;
}

bool
fk_write (struct fake_conn *c, const void *buf, size_t n)
{
  const char *p = buf;
  while (n > 0) {
    ssize_t r = send (c->fd, p, n, MSG_NOSIGNAL);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return false;
    p += r;
    n -= (size_t) r;
  }
  return true;
}

/* ---- handshake ----------------------------------------------------------- */

void
fk_greeting (struct fake_conn *c, uint16_t flags)
{
  char b[NBD_HELLO_SIZE];
  nbd_put64 (b, NBD_MAGIC);
  nbd_put64 (b + 8, NBD_IHAVEOPT);
  nbd_put16 (b + 16, flags);
  fk_write (c, b, sizeof b);
}

bool
fk_read_option (struct fake_conn *c, uint32_t *opt, uint32_t *len,
                void *data, size_t cap)
{
  char h[NBD_OPT_HEADER_SIZE];
  if (!fk_read (c, h, sizeof h))
    return false;
  if (nbd_get64 (h) != NBD_IHAVEOPT) {
    fake_fail (c->f, "option without IHAVEOPT");
    return false;
  }
  *opt = nbd_get32 (h + 8);
  *len = nbd_get32 (h + 12);
  size_t keep = *len < cap ? *len : cap;
  if (!fk_read (c, data, keep))
    return false;
  char skip[256];
  for (size_t left = *len - keep; left > 0;) {
    size_t k = left < sizeof skip ? left : sizeof skip;
    if (!fk_read (c, skip, k))
      return false;
    left -= k;
  }
  return true;
}

void
fk_opt_reply (struct fake_conn *c, uint32_t opt, uint32_t type,
              const void *data, uint32_t len)
{
  char h[NBD_OPT_REPLY_SIZE];
  nbd_put64 (h, NBD_OPT_REPLY_MAGIC);
  nbd_put32 (h + 8, opt);
  nbd_put32 (h + 12, type);
  nbd_put32 (h + 16, len);
  fk_write (c, h, sizeof h);
  if (len)
    fk_write (c, data, len);
}

static void
send_export_info (struct fake_conn *c, uint32_t opt)
{
  const struct fake_cfg *cfg = &c->f->cfg;
  char b[14];
  nbd_put16 (b, NBD_INFO_EXPORT);
  nbd_put64 (b + 2, cfg->size);
  nbd_put16 (b + 10, cfg->tflags | NBD_FLAG_HAS_FLAGS);
  fk_opt_reply (c, opt, NBD_REP_INFO, b, 12);
  if (cfg->block_size) {
    nbd_put16 (b, NBD_INFO_BLOCK_SIZE);
    nbd_put32 (b + 2, cfg->min);
    nbd_put32 (b + 6, cfg->pref);
    nbd_put32 (b + 10, cfg->max);
    fk_opt_reply (c, opt, NBD_REP_INFO, b, 14);
  }
}

static bool
handle_go (struct fake_conn *c, const char *d, uint32_t len)
{
  struct fake *f = c->f;
  pthread_mutex_lock (&f->lock);
  f->go_len = len;
  if (len >= 6) {
    uint32_t nlen = nbd_get32 (d);
    if (nlen <= len - 6 && 4 + nlen + 2 <= 512) {
      f->go_infos = nbd_get16 (d + 4 + nlen);
      for (uint16_t i = 0; i < f->go_infos && 6 + nlen + 2 * i + 2 <= 512;
           i++)
        if (nbd_get16 (d + 6 + nlen + 2 * i) == NBD_INFO_BLOCK_SIZE)
          f->go_asked_block_size = true;
    }
  }
  pthread_mutex_unlock (&f->lock);
  send_export_info (c, NBD_OPT_GO);
  fk_opt_reply (c, NBD_OPT_GO, NBD_REP_ACK, NULL, 0);
  return true;
}

bool
fake_handshake (struct fake_conn *c)
{
  const struct fake_cfg *cfg = &c->f->cfg;
  fk_greeting (c, cfg->hs_flags);
  char b[4];
  if (!fk_read (c, b, 4))
    return false;
  pthread_mutex_lock (&c->f->lock);
  c->f->client_flags = nbd_get32 (b);
  pthread_mutex_unlock (&c->f->lock);
  char d[512];
  for (;;) {
    uint32_t opt, len;
    if (!fk_read_option (c, &opt, &len, d, sizeof d))
      return false;
    switch (opt) {
    case NBD_OPT_STRUCTURED_REPLY:
      pthread_mutex_lock (&c->f->lock);
      c->f->asked_structured = true;
      pthread_mutex_unlock (&c->f->lock);
      fk_opt_reply (c, opt, cfg->structured ? NBD_REP_ACK : NBD_REP_ERR_UNSUP,
                    NULL, 0);
      break;
    case NBD_OPT_EXTENDED_HEADERS:
      pthread_mutex_lock (&c->f->lock);
      c->f->asked_extended = true;
      pthread_mutex_unlock (&c->f->lock);
      c->ext = cfg->extended;
      fk_opt_reply (c, opt, cfg->extended ? NBD_REP_ACK : NBD_REP_ERR_UNSUP,
                    NULL, 0);
      break;
    case NBD_OPT_SET_META_CONTEXT:
      if (cfg->meta) {
        char m[4 + 15];
        nbd_put32 (m, FAKE_META_ID);
        memcpy (m + 4, "base:allocation", 15);
        fk_opt_reply (c, opt, NBD_REP_META_CONTEXT, m, sizeof m);
        fk_opt_reply (c, opt, NBD_REP_ACK, NULL, 0);
      } else
        fk_opt_reply (c, opt, NBD_REP_ERR_UNSUP, NULL, 0);
      break;
    case NBD_OPT_GO:
      if (cfg->go_unsupported) {
        fk_opt_reply (c, opt, NBD_REP_ERR_UNSUP, NULL, 0);
        break;
      }
      return handle_go (c, d, len);
    case NBD_OPT_EXPORT_NAME: {
      char e[10 + 124] = { 0 };
      nbd_put64 (e, cfg->size);
      nbd_put16 (e + 8, cfg->tflags | NBD_FLAG_HAS_FLAGS);
      return fk_write (c, e, (c->f->client_flags & NBD_FLAG_C_NO_ZEROES)
                       ? 10 : sizeof e);
    }
    default:
      fk_opt_reply (c, opt, NBD_REP_ERR_UNSUP, NULL, 0);
      break;
    }
  }
}

/* ---- transmission -------------------------------------------------------- */

/* The rest of an extended request after its magic. */
static bool
read_ext_req (struct fake_conn *c, struct fk_req *r, const char *h)
{
  char t[NBD_EXT_REQUEST_SIZE - NBD_REQUEST_SIZE];
  if (!fk_read (c, t, sizeof t))
    return false;
  uint64_t len = (uint64_t) nbd_get32 (h + 24) << 32 | nbd_get32 (t);
  bool payload = r->flags & NBD_CMD_FLAG_PAYLOAD_LEN;
  if ((payload && len > UINT32_MAX) || payload != (r->type == NBD_CMD_WRITE)) {
    fake_fail (c->f, "extended request type %u, flags 0x%x, length %llu",
               r->type, r->flags, (unsigned long long) len);
    return false;
  }
  r->flags &= (uint16_t) ~NBD_CMD_FLAG_PAYLOAD_LEN;
  r->len = len;
  return true;
}

bool
fk_read_req (struct fake_conn *c, struct fk_req *r)
{
  char h[NBD_REQUEST_SIZE];
  memset (r, 0, sizeof *r);
  if (!fk_read (c, h, sizeof h))
    return false;
  if (nbd_get32 (h) != (c->ext ? NBD_EXT_REQUEST_MAGIC : NBD_REQUEST_MAGIC)) {
    fake_fail (c->f, "bad request magic");
    return false;
  }
  r->flags = nbd_get16 (h + 4);
  r->type = nbd_get16 (h + 6);
  r->cookie = nbd_get64 (h + 8);
  r->off = nbd_get64 (h + 16);
  r->len = nbd_get32 (h + 24);
  if (c->ext && !read_ext_req (c, r, h))
    return false;
  c->offs[(uint32_t) r->cookie % FAKE_OFFS] = r->off;
  if (r->type == NBD_CMD_WRITE) {
    r->data = malloc (r->len ? r->len : 1);
    if (!fk_read (c, r->data, r->len)) {
      free (r->data);
      r->data = NULL;
      return false;
    }
  }
  return true;
}

void
fk_ext_header (struct fake_conn *c, uint16_t flags, uint16_t type,
               uint64_t cookie, uint64_t off, uint64_t len)
{
  char h[NBD_EXT_REPLY_SIZE];
  nbd_put32 (h, NBD_EXT_REPLY_MAGIC);
  nbd_put16 (h + 4, flags);
  nbd_put16 (h + 6, type);
  nbd_put64 (h + 8, cookie);
  nbd_put64 (h + 16, off);
  nbd_put64 (h + 24, len);
  fk_write (c, h, sizeof h);
}

void
fk_simple (struct fake_conn *c, uint64_t cookie, uint32_t error,
           const void *data, uint32_t len)
{
  char h[NBD_SIMPLE_REPLY_SIZE];
  nbd_put32 (h, NBD_SIMPLE_REPLY_MAGIC);
  nbd_put32 (h + 4, error);
  nbd_put64 (h + 8, cookie);
  fk_write (c, h, sizeof h);
  if (len)
    fk_write (c, data, len);
}

void
fk_chunk (struct fake_conn *c, uint16_t flags, uint16_t type, uint64_t cookie,
          const void *payload, uint32_t len)
{
  if (c->ext)
    fk_ext_header (c, flags, type, cookie,
                   c->offs[(uint32_t) cookie % FAKE_OFFS], len);
  else {
    char h[NBD_CHUNK_HEADER_SIZE];
    nbd_put32 (h, NBD_STRUCTURED_REPLY_MAGIC);
    nbd_put16 (h + 4, flags);
    nbd_put16 (h + 6, type);
    nbd_put64 (h + 8, cookie);
    nbd_put32 (h + 16, len);
    fk_write (c, h, sizeof h);
  }
  if (len)
    fk_write (c, payload, len);
}

void
fk_data (struct fake_conn *c, uint64_t cookie, bool done, uint64_t off,
         const void *data, uint32_t len)
{
  char o[8];
  nbd_put64 (o, off);
  /* Header and offset first, then the data from where it is. */
  if (c->ext)
    fk_ext_header (c, done ? NBD_REPLY_FLAG_DONE : 0,
                   NBD_REPLY_TYPE_OFFSET_DATA, cookie,
                   c->offs[(uint32_t) cookie % FAKE_OFFS], len + 8);
  else {
    char h[NBD_CHUNK_HEADER_SIZE];
    nbd_put32 (h, NBD_STRUCTURED_REPLY_MAGIC);
    nbd_put16 (h + 4, done ? NBD_REPLY_FLAG_DONE : 0);
    nbd_put16 (h + 6, NBD_REPLY_TYPE_OFFSET_DATA);
    nbd_put64 (h + 8, cookie);
    nbd_put32 (h + 16, len + 8);
    fk_write (c, h, sizeof h);
  }
  fk_write (c, o, 8);
  fk_write (c, data, len);
}

void
fk_hole (struct fake_conn *c, uint64_t cookie, bool done, uint64_t off,
         uint32_t len)
{
  char p[12];
  nbd_put64 (p, off);
  nbd_put32 (p + 8, len);
  fk_chunk (c, done ? NBD_REPLY_FLAG_DONE : 0, NBD_REPLY_TYPE_OFFSET_HOLE,
            cookie, p, 12);
}

void
fk_done (struct fake_conn *c, uint64_t cookie)
{
  fk_chunk (c, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, cookie, NULL, 0);
}

void
fk_error (struct fake_conn *c, uint64_t cookie, bool done, uint32_t error,
          const char *msg)
{
  char p[6 + 256];
  size_t m = strlen (msg);
  nbd_put32 (p, error);
  nbd_put16 (p + 4, (uint16_t) m);
  memcpy (p + 6, msg, m);
  fk_chunk (c, done ? NBD_REPLY_FLAG_DONE : 0, NBD_REPLY_TYPE_ERROR, cookie,
            p, (uint32_t) (6 + m));
}

void
fk_status (struct fake_conn *c, uint64_t cookie, bool done, uint32_t id,
           const uint64_t (*ext)[2], uint32_t n)
{
  if (c->ext) {
    char *q = malloc (8 + 16 * (size_t) n);
    nbd_put32 (q, id);
    nbd_put32 (q + 4, n);
    for (uint32_t i = 0; i < n; i++) {
      nbd_put64 (q + 8 + 16 * i, ext[i][0]);
      nbd_put64 (q + 16 + 16 * i, ext[i][1]);
    }
    fk_chunk (c, done ? NBD_REPLY_FLAG_DONE : 0,
              NBD_REPLY_TYPE_BLOCK_STATUS_EXT, cookie, q, 8 + 16 * n);
    free (q);
    return;
  }
  char *p = malloc (4 + 8 * (size_t) n);
  nbd_put32 (p, id);
  for (uint32_t i = 0; i < n; i++) {
    nbd_put32 (p + 4 + 8 * i, (uint32_t) ext[i][0]);
    nbd_put32 (p + 8 + 8 * i, (uint32_t) ext[i][1]);
  }
  fk_chunk (c, done ? NBD_REPLY_FLAG_DONE : 0, NBD_REPLY_TYPE_BLOCK_STATUS,
            cookie, p, 4 + 8 * n);
  free (p);
}

/* ---- a correct, scrambling memory server --------------------------------- */

/* A reply without data: simple, or a chunk with extended headers. */
static void
fk_status_reply (struct fake_conn *c, uint64_t cookie, uint32_t error)
{
  if (!c->ext)
    fk_simple (c, cookie, error, NULL, 0);
  else if (error)
    fk_error (c, cookie, true, error, "refused");
  else
    fk_done (c, cookie);
}

static void
answer (struct fake_conn *c, struct fake_mem *m, struct fk_req *r,
        unsigned *seed)
{
  uint64_t size = c->f->cfg.size;
  bool structured = c->f->cfg.structured || c->ext;
  if (r->type == NBD_CMD_READ || r->type == NBD_CMD_WRITE
      || r->type == NBD_CMD_WRITE_ZEROES || r->type == NBD_CMD_TRIM) {
    if (r->off > size || r->len > size - r->off) {
      fk_status_reply (c, r->cookie, r->type == NBD_CMD_WRITE ? NBD_ENOSPC
                       : NBD_EINVAL);
      return;
    }
  }
  switch (r->type) {
  case NBD_CMD_READ: {
    unsigned char *copy = malloc (r->len ? r->len : 1);
    pthread_mutex_lock (&m->lock);
    memcpy (copy, m->bytes + r->off, r->len);
    pthread_mutex_unlock (&m->lock);
    if (!structured) {
      fk_simple (c, r->cookie, 0, copy, r->len);
    } else {
      /* Up to three chunks, the last one sent first. */
      uint32_t cut1 = r->len > 2 ? (uint32_t) rand_r (seed) % r->len : 0;
      uint32_t cut2 = cut1 + (r->len - cut1 > 1 ? (uint32_t) rand_r (seed)
                              % (r->len - cut1) : 0);
      if (cut2 < r->len)
        fk_data (c, r->cookie, false, r->off + cut2, copy + cut2,
                 r->len - cut2);
      if (cut1 > 0)
        fk_data (c, r->cookie, false, r->off, copy, cut1);
      if (cut2 > cut1)
        fk_data (c, r->cookie, false, r->off + cut1, copy + cut1,
                 cut2 - cut1);
      fk_done (c, r->cookie);
    }
    free (copy);
    break;
  }
  case NBD_CMD_WRITE:
  case NBD_CMD_WRITE_ZEROES:
    pthread_mutex_lock (&m->lock);
    if (r->type == NBD_CMD_WRITE)
      memcpy (m->bytes + r->off, r->data, r->len);
    else
      memset (m->bytes + r->off, 0, r->len);
    pthread_mutex_unlock (&m->lock);
    fk_status_reply (c, r->cookie, 0);
    break;
  case NBD_CMD_FLUSH:
  case NBD_CMD_TRIM:
    fk_status_reply (c, r->cookie, 0);
    break;
  default:
    fk_status_reply (c, r->cookie, NBD_EINVAL);
    break;
  }
}

void
fake_serve_memory (struct fake_conn *c)
{
  struct fake_mem *m = c->f->user;
  unsigned seed = m->seed + (unsigned) c->index;
  struct fk_req batch[16];
  for (;;) {
    /* Take what has arrived (at least one request), answer in a shuffled
     * order. */
    int n = 0;
    bool eof = false;
    do {
      if (!fk_read_req (c, &batch[n])) {
        eof = true;
        break;
      }
      if (batch[n].type == NBD_CMD_DISC) {
        eof = true;
        break;
      }
      n++;
      struct pollfd p = { .fd = c->fd, .events = POLLIN };
      if (poll (&p, 1, 0) != 1)
        break;
    } while (n < 16);
    pthread_mutex_lock (&m->lock);
    bool die = m->die_after
               && m->requests[c->index] + (unsigned) n >= m->die_after;
    pthread_mutex_unlock (&m->lock);
    if (die) {
      for (int i = 0; i < n; i++)
        free (batch[i].data);
      return;
    }
    for (int i = n - 1; i > 0; i--) {
      int j = rand_r (&seed) % (i + 1);
      struct fk_req t = batch[i];
      batch[i] = batch[j];
      batch[j] = t;
    }
    for (int i = 0; i < n; i++) {
      answer (c, m, &batch[i], &seed);
      free (batch[i].data);
    }
    pthread_mutex_lock (&m->lock);
    m->requests[c->index] += (unsigned) n;
    pthread_mutex_unlock (&m->lock);
    if (eof)
      return;
  }
}

void
fake_memory_script (struct fake_conn *c)
{
  if (fake_handshake (c))
    fake_serve_memory (c);
}

/* ---- client side --------------------------------------------------------- */

void
tracker_init (struct tracker *t)
{
  pthread_mutex_init (&t->lock, NULL);
  pthread_cond_init (&t->cond, NULL);
  t->pending = 0;
}

void
tracker_destroy (struct tracker *t)
{
  pthread_cond_destroy (&t->cond);
  pthread_mutex_destroy (&t->lock);
}

static void
tdone (struct r3m_io *io, int result)
{
  struct treq *q = io->user;
  pthread_mutex_lock (&q->t->lock);
  q->calls++;
  q->result = result;
  q->t->pending--;
  pthread_cond_broadcast (&q->t->cond);
  pthread_mutex_unlock (&q->t->lock);
}

int
tsubmit (struct r3m_backend *b, struct tracker *t, struct treq *q,
         enum r3m_io_op op, void *buf, size_t len, uint64_t off,
         unsigned flags)
{
  memset (q, 0, sizeof *q);
  q->t = t;
  q->io = (struct r3m_io) { .op = op, .flags = flags, .buf = buf, .len = len,
                            .off = off, .done = tdone, .user = q };
  pthread_mutex_lock (&t->lock);
  t->pending++;
  pthread_mutex_unlock (&t->lock);
  int r = r3m_backend_submit (b, &q->io);
  if (r < 0) {
    pthread_mutex_lock (&t->lock);
    t->pending--;
    q->calls++;
    q->result = r;
    pthread_mutex_unlock (&t->lock);
  }
  return r;
}

void
twait (struct tracker *t)
{
  pthread_mutex_lock (&t->lock);
  while (t->pending > 0)
    pthread_cond_wait (&t->cond, &t->lock);
  pthread_mutex_unlock (&t->lock);
}
