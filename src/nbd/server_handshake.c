/* Option haggling (fixed newstyle), from the server's hello to GO.
 *
 *   S: NBDMAGIC IHAVEOPT flags(FIXED_NEWSTYLE|NO_ZEROES)
 *   C: client flags             unknown bits: hard disconnect
 *   loop:
 *   C: IHAVEOPT option length data
 *   S: replies (or, for EXPORT_NAME, the export and transmission)
 *
 * Before an option's data is read, these gates apply in order:
 *   1. a client without FIXED_NEWSTYLE may only send EXPORT_NAME;
 *   2. ABORT is always answered (ACK) and ends the session;
 *   3. while the server shuts down: ERR_SHUTDOWN (EXPORT_NAME: disconnect);
 *   4. TLS required and not up: ERR_TLS_REQD for all but STARTTLS
 *      (EXPORT_NAME: disconnect, it cannot carry an error);
 *   5. data longer than NBD_SRV_MAX_OPTION: skipped, ERR_TOO_BIG
 *      (beyond NBD_SRV_MAX_SKIP, or EXPORT_NAME: disconnect).
 * Unknown options get ERR_UNSUP after their data was read in full, so the
 * stream stays in step.
 *
 * EXTENDED_HEADERS (the spec's extension-ext-header branch) implies
 * structured replies.  Asked twice it gets ERR_INVALID (the spec's answer
 * to a repeated stateful option); STRUCTURED_REPLY after it gets
 * ERR_EXT_HEADER_REQD and changes nothing; EXPORT_NAME after it is a
 * client breaking a MUST, and cannot carry an error: disconnect.
 * STARTTLS forgets it, like everything negotiated in the clear. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "nbd/server.h"
#include "nbd/tls.h"

/* Returned by option handlers: carry on, or enter transmission. */
#define OPT_NEXT 0
#define OPT_GO   1

static int
reply (struct nbd_srv_conn *sc, uint32_t opt, uint32_t type,
       const void *data, size_t len)
{
  unsigned char h[NBD_OPT_REPLY_SIZE];
  nbd_put64 (h, NBD_OPT_REPLY_MAGIC);
  nbd_put32 (h + 8, opt);
  nbd_put32 (h + 12, type);
  nbd_put32 (h + 16, (uint32_t) len);
  struct iovec iov[2] = { { h, sizeof h },
                          { (void *) (uintptr_t) data, len } };
  return nbd_conn_writev_all (sc->conn, iov, len ? 2 : 1);
}

/* An error reply whose data is a message for people. */
static int
reply_error (struct nbd_srv_conn *sc, uint32_t opt, uint32_t type,
             const char *msg)
{
  nbd_srv_log (sc->srv, R3M_NBD_LOG_DEBUG, "%s: option %u refused: %s",
               sc->peer, opt, msg);
  return reply (sc, opt, type, msg, strlen (msg));
}

uint16_t
nbd_srv_eflags (const struct nbd_srv_conn *sc, const struct nbd_srv_export *e)
{
  uint16_t f = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_CACHE;
  if (e->read_only)
    f |= NBD_FLAG_READ_ONLY;
  else
    f |= NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES
         | NBD_FLAG_SEND_FAST_ZERO;
  if (sc->structured)
    f |= NBD_FLAG_SEND_DF;
  /* The spec: only with extended headers, and not without contexts
   * selected for this export. */
  if (sc->extended && sc->nsel > 0 && sc->sel_export
      && strcmp (sc->sel_export, e->name) == 0)
    f |= NBD_FLAG_BLOCK_STAT_PAYLOAD;
  if (e->multi_conn)
    f |= NBD_FLAG_CAN_MULTI_CONN;
  return f;
}

/* The chosen export: flags fixed, selected contexts opened. */
static int
choose (struct nbd_srv_conn *sc, const struct nbd_srv_export *e,
        const char *name, size_t len)
{
  if (sc->sel_export && (strlen (sc->sel_export) != len
                         || memcmp (sc->sel_export, name, len) != 0))
    nbd_srv_meta_clear (sc);    /* selected for another export */
  int r = nbd_srv_meta_open (sc);
  if (r < 0)
    return r;
  sc->exp = e;
  sc->eflags = nbd_srv_eflags (sc, e);
  return 0;
}

static int
opt_export_name (struct nbd_srv_conn *sc, const char *data, uint32_t len)
{
  if (sc->extended) {
    nbd_srv_log (sc->srv, R3M_NBD_LOG_WARN, "%s: EXPORT_NAME after "
                 "EXTENDED_HEADERS: disconnecting", sc->peer);
    return -EPROTO;
  }
  const struct nbd_srv_export *e = nbd_srv_find_export (sc->srv, data, len);
  if (!e) {
    nbd_srv_log (sc->srv, R3M_NBD_LOG_WARN,
                 "%s: EXPORT_NAME of an unknown export: disconnecting",
                 sc->peer);
    return -ENOENT;
  }
  int r = choose (sc, e, data, len);
  if (r < 0)
    return r;
  unsigned char buf[10 + 124];
  memset (buf, 0, sizeof buf);
  nbd_put64 (buf, e->size);
  nbd_put16 (buf + 8, sc->eflags);
  r = nbd_conn_write_all (sc->conn, buf, sc->no_zeroes ? 10 : sizeof buf);
  return r < 0 ? r : OPT_GO;
}

static int
opt_list (struct nbd_srv_conn *sc, uint32_t len)
{
  if (len != 0)
    return reply_error (sc, NBD_OPT_LIST, NBD_REP_ERR_INVALID,
                        "LIST takes no data");
  for (size_t i = 0;; i++) {
    /* Exports are never removed, so the pointer stays valid unlocked. */
    pthread_mutex_lock (&sc->srv->lock);
    const struct nbd_srv_export *e = i < sc->srv->nexports
                                     ? sc->srv->exports[i] : NULL;
    pthread_mutex_unlock (&sc->srv->lock);
    if (!e)
      break;
    size_t nlen = strlen (e->name), dlen = strlen (e->description);
    unsigned char *d = malloc (4 + nlen + dlen);
    if (!d)
      return -ENOMEM;
    nbd_put32 (d, (uint32_t) nlen);
    memcpy (d + 4, e->name, nlen);
    memcpy (d + 4 + nlen, e->description, dlen);
    int r = reply (sc, NBD_OPT_LIST, NBD_REP_SERVER, d, 4 + nlen + dlen);
    free (d);
    if (r < 0)
      return r;
  }
  return reply (sc, NBD_OPT_LIST, NBD_REP_ACK, NULL, 0);
}

static int
opt_starttls (struct nbd_srv_conn *sc, uint32_t len)
{
  if (len != 0)
    return reply_error (sc, NBD_OPT_STARTTLS, NBD_REP_ERR_INVALID,
                        "STARTTLS takes no data");
  if (!sc->srv->tls)
    return reply_error (sc, NBD_OPT_STARTTLS, NBD_REP_ERR_POLICY,
                        "TLS is not enabled on this server");
  if (nbd_conn_is_tls (sc->conn))
    return reply_error (sc, NBD_OPT_STARTTLS, NBD_REP_ERR_INVALID,
                        "TLS is already running");
  int r = reply (sc, NBD_OPT_STARTTLS, NBD_REP_ACK, NULL, 0);
  if (r < 0)
    return r;
  struct r3m_error err;
  r3m_error_clear (&err);
  r = nbd_conn_tls_accept (sc->conn, sc->srv->tls, &err);
  if (r < 0) {
    nbd_srv_log (sc->srv, R3M_NBD_LOG_WARN, "%s: %s", sc->peer, err.msg);
    return r;
  }
  /* Nothing negotiated in the clear survives the upgrade. */
  sc->structured = false;
  sc->extended = false;
  nbd_srv_meta_clear (sc);
  nbd_conn_describe_peer (sc->conn, sc->peer, sizeof sc->peer);
  nbd_srv_log (sc->srv, R3M_NBD_LOG_INFO, "%s: TLS established", sc->peer);
  return OPT_NEXT;
}

static int
reply_info (struct nbd_srv_conn *sc, uint32_t opt, uint16_t type,
            const void *payload, size_t len)
{
  unsigned char d[2 + NBD_MAX_STRING];
  nbd_put16 (d, type);
  memcpy (d + 2, payload, len);
  return reply (sc, opt, NBD_REP_INFO, d, 2 + len);
}

static int
opt_info_go (struct nbd_srv_conn *sc, uint32_t opt, const unsigned char *d,
             uint32_t len)
{
  uint32_t nlen = len >= 6 ? nbd_get32 (d) : 0;
  if (len < 6 || nlen > len - 6
      || len != 4 + nlen + 2 + 2 * (uint32_t) nbd_get16 (d + 4 + nlen))
    return reply_error (sc, opt, NBD_REP_ERR_INVALID,
                        "malformed INFO/GO request");
  const char *name = (const char *) d + 4;
  uint16_t nreq = nbd_get16 (d + 4 + nlen);
  bool want_name = false, want_desc = false;
  for (uint16_t i = 0; i < nreq; i++) {
    uint16_t t = nbd_get16 (d + 4 + nlen + 2 + 2 * i);
    want_name |= t == NBD_INFO_NAME;
    want_desc |= t == NBD_INFO_DESCRIPTION;
  }
  const struct nbd_srv_export *e = nbd_srv_find_export (sc->srv, name, nlen);
  if (!e)
    return reply_error (sc, opt, NBD_REP_ERR_UNKNOWN,
                        "no export of that name");

  uint16_t eflags = nbd_srv_eflags (sc, e);
  unsigned char p[12];
  nbd_put64 (p, e->size);
  nbd_put16 (p + 8, eflags);
  int r = reply_info (sc, opt, NBD_INFO_EXPORT, p, 10);
  if (r == 0 && want_name)
    r = reply_info (sc, opt, NBD_INFO_NAME, e->name, strlen (e->name));
  if (r == 0 && want_desc && e->description[0])
    r = reply_info (sc, opt, NBD_INFO_DESCRIPTION, e->description,
                    strlen (e->description));
  nbd_put32 (p, e->min_block);
  nbd_put32 (p + 4, e->pref_block);
  nbd_put32 (p + 8, e->max_payload);
  if (r == 0)
    r = reply_info (sc, opt, NBD_INFO_BLOCK_SIZE, p, 12);
  if (r < 0 || opt == NBD_OPT_INFO)
    return r < 0 ? r : reply (sc, opt, NBD_REP_ACK, NULL, 0);

  r = choose (sc, e, name, nlen);
  if (r < 0)
    return reply_error (sc, opt, NBD_REP_ERR_POLICY,
                        "a metadata context could not be opened");
  r = reply (sc, opt, NBD_REP_ACK, NULL, 0);
  return r < 0 ? r : OPT_GO;
}

/* ---- metadata contexts --------------------------------------------------- */

struct meta_walk {
  struct nbd_srv_conn *sc;
  const struct nbd_srv_export *e;
  uint32_t opt;
  bool set;
};

static int
meta_reply (struct nbd_srv_conn *sc, uint32_t opt, uint32_t id,
            const char *name)
{
  size_t n = strlen (name);
  unsigned char d[4 + NBD_MAX_STRING];
  nbd_put32 (d, id);
  memcpy (d + 4, name, n);
  return reply (sc, opt, NBD_REP_META_CONTEXT, d, 4 + n);
}

static int
meta_hit (const struct nbd_srv_meta *m, void *arg)
{
  struct meta_walk *w = arg;
  struct nbd_srv_conn *sc = w->sc;
  uint32_t id = (uint32_t) (m - w->e->metas) + 1;
  if (!w->set)
    return meta_reply (sc, w->opt, 0, m->name);
  for (size_t i = 0; i < sc->nsel; i++)
    if (sc->sel[i].meta == m)
      return 0;                 /* asked twice: selected once */
  sc->sel[sc->nsel++] = (struct nbd_srv_sel) { .id = id, .meta = m };
  return meta_reply (sc, w->opt, id, m->name);
}

/* Check the layout: name, count, queries exactly filling len. */
static bool
meta_well_formed (const unsigned char *d, uint32_t len)
{
  if (len < 8)
    return false;
  uint32_t nlen = nbd_get32 (d);
  if (nlen > len - 8 || nlen > NBD_MAX_STRING)
    return false;
  uint32_t nq = nbd_get32 (d + 4 + nlen);
  uint32_t p = 8 + nlen;
  for (uint32_t i = 0; i < nq; i++) {
    if (len - p < 4)
      return false;
    uint32_t ql = nbd_get32 (d + p);
    p += 4;
    if (ql > len - p || ql > NBD_MAX_STRING)
      return false;
    p += ql;
  }
  return p == len;
}

static int
opt_meta (struct nbd_srv_conn *sc, uint32_t opt, const unsigned char *d,
          uint32_t len)
{
  bool set = opt == NBD_OPT_SET_META_CONTEXT;
  if (set)
    nbd_srv_meta_clear (sc);    /* replaced even when this one fails */
  if (!sc->structured)
    return reply_error (sc, opt, NBD_REP_ERR_INVALID,
                        "negotiate structured replies first");
  if (!meta_well_formed (d, len))
    return reply_error (sc, opt, NBD_REP_ERR_INVALID,
                        "malformed metadata context request");
  uint32_t nlen = nbd_get32 (d);
  const char *name = (const char *) d + 4;
  const struct nbd_srv_export *e = nbd_srv_find_export (sc->srv, name, nlen);
  if (!e)
    return reply_error (sc, opt, NBD_REP_ERR_UNKNOWN,
                        "no export of that name");
  if (set) {
    sc->sel = calloc (e->nmetas, sizeof *sc->sel);
    sc->sel_export = strndup (name, nlen);
    if (!sc->sel || !sc->sel_export)
      return -ENOMEM;
  }
  struct meta_walk w = { .sc = sc, .e = e, .opt = opt, .set = set };
  uint32_t nq = nbd_get32 (d + 4 + nlen);
  int r = 0;
  if (nq == 0 && !set)
    for (size_t i = 0; r == 0 && i < e->nmetas; i++)
      r = meta_hit (&e->metas[i], &w);
  uint32_t p = 8 + nlen;
  for (uint32_t i = 0; r == 0 && i < nq; i++) {
    uint32_t ql = nbd_get32 (d + p);
    r = nbd_srv_meta_match (e, (const char *) d + p + 4, ql, !set, meta_hit,
                            &w);
    p += 4 + ql;
  }
  return r < 0 ? r : reply (sc, opt, NBD_REP_ACK, NULL, 0);
}

/* ---- the option loop ------------------------------------------------------- */

static int
option_with_data (struct nbd_srv_conn *sc, uint32_t opt,
                  const unsigned char *d, uint32_t len)
{
  switch (opt) {
  case NBD_OPT_EXPORT_NAME:
    return opt_export_name (sc, (const char *) d, len);
  case NBD_OPT_LIST:
    return opt_list (sc, len);
  case NBD_OPT_STARTTLS:
    return opt_starttls (sc, len);
  case NBD_OPT_INFO:
  case NBD_OPT_GO:
    return opt_info_go (sc, opt, d, len);
  case NBD_OPT_STRUCTURED_REPLY:
    if (len != 0)
      return reply_error (sc, opt, NBD_REP_ERR_INVALID,
                          "STRUCTURED_REPLY takes no data");
    if (sc->extended)
      return reply_error (sc, opt, NBD_REP_ERR_EXT_HEADER_REQD,
                          "extended headers were negotiated and take "
                          "precedence");
    sc->structured = true;
    return reply (sc, opt, NBD_REP_ACK, NULL, 0);
  case NBD_OPT_EXTENDED_HEADERS:
    if (len != 0)
      return reply_error (sc, opt, NBD_REP_ERR_INVALID,
                          "EXTENDED_HEADERS takes no data");
    if (sc->extended)
      return reply_error (sc, opt, NBD_REP_ERR_INVALID,
                          "extended headers were negotiated already");
    sc->extended = sc->structured = true;
    return reply (sc, opt, NBD_REP_ACK, NULL, 0);
  case NBD_OPT_LIST_META_CONTEXT:
  case NBD_OPT_SET_META_CONTEXT:
    return opt_meta (sc, opt, d, len);
  default:
    return reply_error (sc, opt, NBD_REP_ERR_UNSUP, "unknown option");
  }
}

static int
option (struct nbd_srv_conn *sc, uint32_t opt, uint32_t len)
{
  bool tls_missing = sc->tls_required && !nbd_conn_is_tls (sc->conn);
  if (!sc->fixed && opt != NBD_OPT_EXPORT_NAME) {
    nbd_srv_log (sc->srv, R3M_NBD_LOG_WARN, "%s: option %u from a client "
                 "without fixed newstyle: disconnecting", sc->peer, opt);
    return -EPROTO;
  }
  if (opt == NBD_OPT_ABORT) {
    if (nbd_conn_discard (sc->conn, len) == 0)
      reply (sc, opt, NBD_REP_ACK, NULL, 0);   /* it may not read it */
    return -ECONNABORTED;
  }
  bool stopping = nbd_srv_stopping (sc->srv);
  if (opt == NBD_OPT_EXPORT_NAME
      && (stopping || tls_missing || len > NBD_MAX_STRING)) {
    nbd_srv_log (sc->srv, R3M_NBD_LOG_WARN, "%s: EXPORT_NAME refused (%s): "
                 "disconnecting", sc->peer,
                 stopping ? "shutting down" : tls_missing ? "TLS required"
                                                          : "name too long");
    return -EACCES;
  }
  if (len > NBD_SRV_MAX_SKIP) {
    nbd_srv_log (sc->srv, R3M_NBD_LOG_WARN, "%s: option of %u bytes: "
                 "disconnecting", sc->peer, len);
    return -EPROTO;
  }
  uint32_t refuse = stopping ? NBD_REP_ERR_SHUTDOWN
                  : tls_missing && opt != NBD_OPT_STARTTLS
                    ? NBD_REP_ERR_TLS_REQD
                  : len > NBD_SRV_MAX_OPTION ? NBD_REP_ERR_TOO_BIG : 0;
  if (refuse) {
    int r = nbd_conn_discard (sc->conn, len);
    return r < 0 ? r : reply_error (sc, opt, refuse,
                                    refuse == NBD_REP_ERR_SHUTDOWN
                                    ? "the server is shutting down"
                                    : refuse == NBD_REP_ERR_TLS_REQD
                                    ? "TLS is required: send STARTTLS first"
                                    : "option data too long");
  }
  unsigned char *d = malloc (len ? len : 1);
  if (!d)
    return -ENOMEM;
  int r = nbd_conn_read_exact (sc->conn, d, len);
  if (r == 0)
    r = option_with_data (sc, opt, d, len);
  free (d);
  return r;
}

int
nbd_srv_handshake (struct nbd_srv_conn *sc)
{
  unsigned char hello[NBD_HELLO_SIZE];
  nbd_put64 (hello, NBD_MAGIC);
  nbd_put64 (hello + 8, NBD_IHAVEOPT);
  nbd_put16 (hello + 16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
  int r = nbd_conn_write_all (sc->conn, hello, sizeof hello);
  unsigned char cf[4];
  if (r == 0)
    r = nbd_conn_read_exact (sc->conn, cf, 4);
  if (r < 0)
    return r;
  uint32_t cflags = nbd_get32 (cf);
  if (cflags & ~(uint32_t) (NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)) {
    nbd_srv_log (sc->srv, R3M_NBD_LOG_WARN,
                 "%s: unknown client flags 0x%x: disconnecting", sc->peer,
                 cflags);
    return -EPROTO;
  }
  sc->fixed = cflags & NBD_FLAG_C_FIXED_NEWSTYLE;
  sc->no_zeroes = cflags & NBD_FLAG_C_NO_ZEROES;

  for (unsigned n = 0; n < NBD_SRV_MAX_OPTIONS; n++) {
    unsigned char h[NBD_OPT_HEADER_SIZE];
    r = nbd_conn_read_exact (sc->conn, h, sizeof h);
    if (r < 0)
      return r;
    if (nbd_get64 (h) != NBD_IHAVEOPT) {
      nbd_srv_log (sc->srv, R3M_NBD_LOG_WARN,
                   "%s: bad option magic: disconnecting", sc->peer);
      return -EPROTO;
    }
    uint32_t opt = nbd_get32 (h + 8), len = nbd_get32 (h + 12);
    nbd_srv_log (sc->srv, R3M_NBD_LOG_DEBUG, "%s: option %u, %u bytes",
                 sc->peer, opt, len);
    r = option (sc, opt, len);
    if (r != OPT_NEXT)
      return r == OPT_GO ? 0 : r;
  }
  nbd_srv_log (sc->srv, R3M_NBD_LOG_WARN, "%s: more than %d options: "
               "disconnecting", sc->peer, NBD_SRV_MAX_OPTIONS);
  return -EPROTO;
}
