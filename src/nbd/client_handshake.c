/* Client side of the NBD handshake (fixed newstyle).
 *
 *   greeting   NBDMAGIC IHAVEOPT flags  ->  client flags (FIXED, NO_ZEROES)
 *   STARTTLS   only for nbds://; a refusal is an error, never a silent
 *              fallback to plain text
 *   EXTENDED_HEADERS   unless extended-headers=off; any refusal is fine
 *              (compact headers, as servers before the extension)
 *   STRUCTURED_REPLY   only when extended headers were refused (they imply
 *              structured replies); refusal is fine (simple replies, no
 *              block status)
 *   SET_META_CONTEXT   "base:allocation", only after structured replies
 *   GO         export name + an INFO_BLOCK_SIZE request (so the server may
 *              rely on us honouring its block sizes); REP_INFO EXPORT is
 *              required before the ACK
 *   EXPORT_NAME  fallback when the server does not know GO, and the only
 *              option a server without FIXED_NEWSTYLE gets
 *
 * Every reply is checked: magic, echoed option, length against what the
 * type allows, counts of replies.  A server that breaks the protocol gets
 * EPROTO and a message saying what it sent.  The caller closes the stream
 * on failure.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "nbd/client.h"
#include "util/error.h"

#define OLDSTYLE_MAGIC   UINT64_C (0x00420281861253)
#define MAX_OPT_REPLY    65536   /* bytes in one option reply we accept */
#define MAX_REPLIES      256     /* replies to one option we accept */
#define META_BASE        "base:allocation"

struct hs {
  struct nbd_conn *s;
  const struct nbd_cli_opts *o;
  struct nbd_tls *tls;
  struct r3m_error *err;
};

/* A failed read or write during the handshake, turned into a message. */
static int
io_error (struct hs *h, int r, const char *during)
{
  if (r == -ECONNRESET || r == -EPIPE)
    return util_err (h->err, ECONNRESET,
                     "%s: server closed the connection during %s",
                     h->o->what, during);
  if (r == -ETIMEDOUT)
    return util_err (h->err, ETIMEDOUT,
                     "%s: server did not answer within %u s during %s",
                     h->o->what, h->o->connect_timeout_ms / 1000, during);
  return util_errno (h->err, -r, "%s: %s", h->o->what, during);
}

static int violation (struct hs *h, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));

static int
violation (struct hs *h, const char *fmt, ...)
{
  char msg[160];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  return util_err (h->err, EPROTO, "%s: protocol error from the server: %s",
                   h->o->what, msg);
}

static int
rd (struct hs *h, void *buf, size_t n, const char *during)
{
  int r = nbd_conn_read_exact (h->s, buf, n);
  return r < 0 ? io_error (h, r, during) : 0;
}

static int
skip (struct hs *h, size_t n, const char *during)
{
  char buf[512];
  while (n > 0) {
    size_t k = n < sizeof buf ? n : sizeof buf;
    int r = rd (h, buf, k, during);
    if (r < 0)
      return r;
    n -= k;
  }
  return 0;
}

static int
send_option (struct hs *h, uint32_t opt, const void *data, uint32_t len,
             const char *during)
{
  char hdr[NBD_OPT_HEADER_SIZE];
  nbd_put64 (hdr, NBD_IHAVEOPT);
  nbd_put32 (hdr + 8, opt);
  nbd_put32 (hdr + 12, len);
  struct iovec iov[2] = { { hdr, sizeof hdr },
                          { (void *) (uintptr_t) data, len } };
  int r = nbd_conn_writev_all (h->s, iov, len ? 2 : 1);
  return r < 0 ? io_error (h, r, during) : 0;
}

/* Read one option reply header for `opt`. */
static int
read_reply (struct hs *h, uint32_t opt, uint32_t *type, uint32_t *len,
            const char *during)
{
  char hdr[NBD_OPT_REPLY_SIZE];
  int r = rd (h, hdr, sizeof hdr, during);
  if (r < 0)
    return r;
  if (nbd_get64 (hdr) != NBD_OPT_REPLY_MAGIC)
    return violation (h, "bad option reply magic during %s (0x%" PRIx64 ")",
                      during, nbd_get64 (hdr));
  if (nbd_get32 (hdr + 8) != opt)
    return violation (h, "reply during %s names option %" PRIu32, during,
                      nbd_get32 (hdr + 8));
  *type = nbd_get32 (hdr + 12);
  *len = nbd_get32 (hdr + 16);
  if (*len > MAX_OPT_REPLY)
    return violation (h, "option reply during %s is %" PRIu32 " bytes long",
                      during, *len);
  return 0;
}

static const char *
rep_err_name (uint32_t type)
{
  switch (type) {
  case NBD_REP_ERR_UNSUP: return "unsupported";
  case NBD_REP_ERR_POLICY: return "refused by policy";
  case NBD_REP_ERR_INVALID: return "invalid request";
  case NBD_REP_ERR_PLATFORM: return "not supported on its platform";
  case NBD_REP_ERR_TLS_REQD: return "TLS required";
  case NBD_REP_ERR_UNKNOWN: return "unknown export";
  case NBD_REP_ERR_SHUTDOWN: return "shutting down";
  case NBD_REP_ERR_BLOCK_SIZE_REQD: return "block size negotiation required";
  case NBD_REP_ERR_TOO_BIG: return "request too big";
  case NBD_REP_ERR_EXT_HEADER_REQD: return "extended headers required";
  default: return "error";
  }
}

/* Read an error reply's payload as a printable message (may be ""). */
static int
read_error_text (struct hs *h, uint32_t len, char *msg, size_t size,
                 const char *during)
{
  size_t keep = len < size - 1 ? len : size - 1;
  int r = rd (h, msg, keep, during);
  if (r == 0)
    r = skip (h, len - keep, during);
  if (r < 0)
    return r;
  msg[keep] = '\0';
  for (size_t i = 0; i < keep; i++)
    if (!isprint ((unsigned char) msg[i]))
      msg[i] = '?';
  return 0;
}

/* An error reply to `during`: turn it into a message and -errno. */
static int
refused (struct hs *h, uint32_t type, uint32_t len, int code,
         const char *during)
{
  char msg[200];
  int r = read_error_text (h, len, msg, sizeof msg, during);
  if (r < 0)
    return r;
  return util_err (h->err, code, "%s: server refused %s: %s%s%s", h->o->what,
                   during, rep_err_name (type), msg[0] ? ": " : "", msg);
}

/* ---- options ------------------------------------------------------------ */

/* The TLS handshake itself; its message gets the URI in front. */
static int
starttls (struct hs *h)
{
  struct r3m_error e;
  r3m_error_clear (&e);
  int r = nbd_conn_tls_connect (h->s, h->tls, h->o->tls_hostname, &e);
  if (r < 0)
    return util_err (h->err, r, "%s: %s", h->o->what,
                     e.msg[0] ? e.msg : "TLS handshake failed");
  return 0;
}

static int
opt_starttls (struct hs *h)
{
  const char *during = "STARTTLS";
  int r = send_option (h, NBD_OPT_STARTTLS, NULL, 0, during);
  uint32_t type, len;
  if (r == 0)
    r = read_reply (h, NBD_OPT_STARTTLS, &type, &len, during);
  if (r < 0)
    return r;
  if (type == NBD_REP_ACK) {
    if (len != 0)
      return violation (h, "%s ACK with %" PRIu32 " bytes", during, len);
    return starttls (h);
  }
  if (type & NBD_REP_ERR (0))
    return refused (h, type, len, ENOTSUP, during);
  return violation (h, "unexpected reply to %s (type 0x%" PRIx32 ")", during, type);
}

/* An option without data that the server either agrees to (ACK, nothing
 * else) or refuses with any error: 1 if agreed, 0 if refused. */
static int
opt_flag (struct hs *h, uint32_t opt, const char *during)
{
  int r = send_option (h, opt, NULL, 0, during);
  uint32_t type, len;
  if (r == 0)
    r = read_reply (h, opt, &type, &len, during);
  if (r < 0)
    return r;
  if (type == NBD_REP_ACK) {
    if (len != 0)
      return violation (h, "%s ACK with %" PRIu32 " bytes", during, len);
    return 1;
  }
  if (type & NBD_REP_ERR (0))
    return skip (h, len, during);
  return violation (h, "unexpected reply to %s (type 0x%" PRIx32 ")", during,
                    type);
}

static int
opt_structured (struct hs *h)
{
  return opt_flag (h, NBD_OPT_STRUCTURED_REPLY, "STRUCTURED_REPLY");
}

static int
opt_extended (struct hs *h)
{
  return opt_flag (h, NBD_OPT_EXTENDED_HEADERS, "EXTENDED_HEADERS");
}

static int
opt_set_meta (struct hs *h, struct nbd_cli_export *ex)
{
  const char *during = "SET_META_CONTEXT";
  const char *name = h->o->uri.export_name;
  size_t nlen = strlen (name), qlen = strlen (META_BASE);
  char data[4 + NBD_MAX_STRING + 4 + 4 + sizeof META_BASE];
  size_t n = 0;
  nbd_put32 (data + n, (uint32_t) nlen); n += 4;
  memcpy (data + n, name, nlen); n += nlen;
  nbd_put32 (data + n, 1); n += 4;
  nbd_put32 (data + n, (uint32_t) qlen); n += 4;
  memcpy (data + n, META_BASE, qlen); n += qlen;
  int r = send_option (h, NBD_OPT_SET_META_CONTEXT, data, (uint32_t) n,
                       during);
  if (r < 0)
    return r;

  for (int count = 0; count < MAX_REPLIES; count++) {
    uint32_t type, len;
    r = read_reply (h, NBD_OPT_SET_META_CONTEXT, &type, &len, during);
    if (r < 0)
      return r;
    if (type == NBD_REP_ACK)
      return len == 0 ? 0
        : violation (h, "%s ACK with %" PRIu32 " bytes", during, len);
    if (type & NBD_REP_ERR (0)) {
      ex->has_meta = false;     /* no block status; reads still work */
      return skip (h, len, during);
    }
    if (type != NBD_REP_META_CONTEXT)
      return violation (h, "unexpected reply to %s (type 0x%" PRIx32 ")", during,
                        type);
    char buf[4 + sizeof META_BASE];
    if (len != 4 + qlen)
      return violation (h, "%s reply for a context we did not ask for "
                        "(%" PRIu32 " bytes)", during, len);
    r = rd (h, buf, len, during);
    if (r < 0)
      return r;
    if (memcmp (buf + 4, META_BASE, qlen) != 0)
      return violation (h, "%s reply for a context we did not ask for",
                        during);
    if (ex->has_meta)
      return violation (h, "%s selected base:allocation twice", during);
    ex->has_meta = true;
    ex->meta_id = nbd_get32 (buf);
  }
  return violation (h, "more than %d replies to SET_META_CONTEXT",
                    MAX_REPLIES);
}

/* Check and store INFO_BLOCK_SIZE. */
static int
take_block_size (struct hs *h, const char *p, struct nbd_cli_export *ex)
{
  uint32_t min = nbd_get32 (p), pref = nbd_get32 (p + 4),
    max = nbd_get32 (p + 8);
  if (min == 0 || min > 65536 || (min & (min - 1)))
    return violation (h, "minimum block size %" PRIu32, min);
  if (max < min)
    return violation (h, "maximum payload %" PRIu32
                      " below the minimum block", max);
  /* The preferred size is only a hint: repair rather than refuse. */
  if (pref < min || (pref & (pref - 1)))
    pref = min > 4096 ? min : 4096;
  ex->min_block = min;
  ex->pref_block = pref;
  ex->max_payload = max;
  return 0;
}

static int
take_export (struct hs *h, uint64_t size, uint16_t flags,
             struct nbd_cli_export *ex)
{
  if (size > INT64_MAX)
    return violation (h, "export size %" PRIu64, size);
  ex->size = size;
  /* Servers that predate transmission flags send 0: no features. */
  ex->flags = (flags & NBD_FLAG_HAS_FLAGS) ? flags : 0;
  return 0;
}

static int
go_info (struct hs *h, uint32_t len, struct nbd_cli_export *ex,
         bool *seen_export, const char *during)
{
  char p[14];
  if (len < 2)
    return violation (h, "%s INFO reply of %" PRIu32 " bytes", during, len);
  int r = rd (h, p, 2, during);
  if (r < 0)
    return r;
  uint16_t info = nbd_get16 (p);
  len -= 2;
  if (info == NBD_INFO_EXPORT || info == NBD_INFO_BLOCK_SIZE) {
    uint32_t want = info == NBD_INFO_EXPORT ? 10 : 12;
    if (len != want)
      return violation (h, "%s INFO of %" PRIu32 " bytes", during, len + 2);
    r = rd (h, p, len, during);
    if (r < 0)
      return r;
    if (info == NBD_INFO_BLOCK_SIZE)
      return take_block_size (h, p, ex);
    *seen_export = true;
    return take_export (h, nbd_get64 (p), nbd_get16 (p + 8), ex);
  }
  return skip (h, len, during);   /* NAME, DESCRIPTION, future types */
}

/* 0 on ACK, 1 when the server does not know GO (try EXPORT_NAME). */
static int
opt_go (struct hs *h, struct nbd_cli_export *ex)
{
  const char *during = "GO";
  const char *name = h->o->uri.export_name;
  size_t nlen = strlen (name);
  char data[4 + NBD_MAX_STRING + 2 + 2];
  size_t n = 0;
  nbd_put32 (data + n, (uint32_t) nlen); n += 4;
  memcpy (data + n, name, nlen); n += nlen;
  nbd_put16 (data + n, 1); n += 2;
  nbd_put16 (data + n, NBD_INFO_BLOCK_SIZE); n += 2;
  /* The length covers all of it (the Go original sent 0 here). */
  int r = send_option (h, NBD_OPT_GO, data, (uint32_t) n, during);
  if (r < 0)
    return r;

  bool seen_export = false;
  for (int count = 0; count < MAX_REPLIES; count++) {
    uint32_t type, len;
    r = read_reply (h, NBD_OPT_GO, &type, &len, during);
    if (r < 0)
      return r;
    switch (type) {
    case NBD_REP_INFO:
      r = go_info (h, len, ex, &seen_export, during);
      if (r < 0)
        return r;
      continue;
    case NBD_REP_ACK:
      if (len != 0)
        return violation (h, "%s ACK with %" PRIu32 " bytes", during, len);
      if (!seen_export)
        return violation (h, "%s ACK without the export size", during);
      return 0;
    case NBD_REP_ERR_UNSUP:
      r = skip (h, len, during);
      return r < 0 ? r : 1;
    case NBD_REP_ERR_UNKNOWN: {
      char msg[200];
      r = read_error_text (h, len, msg, sizeof msg, during);
      if (r < 0)
        return r;
      return util_err (h->err, ENOENT, "%s: server has no export named "
                       "'%s'%s%s", h->o->what, name, msg[0] ? ": " : "", msg);
    }
    case NBD_REP_ERR_TLS_REQD:
      r = skip (h, len, during);
      return r < 0 ? r : util_err (h->err, EACCES, "%s: server requires TLS "
                                   "(use nbds://)", h->o->what);
    default:
      if (type & NBD_REP_ERR (0))
        return refused (h, type, len, type == NBD_REP_ERR_POLICY ? EACCES
                        : EINVAL, during);
      return violation (h, "unexpected reply to %s (type 0x%" PRIx32 ")", during,
                        type);
    }
  }
  return violation (h, "more than %d replies to GO", MAX_REPLIES);
}

static int
opt_export_name (struct hs *h, bool no_zeroes, struct nbd_cli_export *ex)
{
  const char *during = "EXPORT_NAME";
  int r = send_option (h, NBD_OPT_EXPORT_NAME, h->o->uri.export_name,
                       (uint32_t) strlen (h->o->uri.export_name), during);
  if (r < 0)
    return r;
  char buf[10 + 124];
  r = nbd_conn_read_exact (h->s, buf, no_zeroes ? 10 : sizeof buf);
  if (r == -ECONNRESET)
    return util_err (h->err, ENOENT, "%s: server closed the connection "
                     "after EXPORT_NAME (no export named '%s'?)", h->o->what,
                     h->o->uri.export_name);
  if (r < 0)
    return io_error (h, r, during);
  ex->old_export_name = true;
  return take_export (h, nbd_get64 (buf), nbd_get16 (buf + 8), ex);
}

static int
greeting (struct hs *h, bool *fixed, bool *no_zeroes)
{
  char buf[NBD_HELLO_SIZE];
  int r = rd (h, buf, 16, "the greeting");
  if (r < 0)
    return r;
  if (nbd_get64 (buf) != NBD_MAGIC)
    return util_err (h->err, EPROTO, "%s: not an NBD server (bad greeting)",
                     h->o->what);
  uint64_t m = nbd_get64 (buf + 8);
  if (m == OLDSTYLE_MAGIC)
    return util_err (h->err, EPROTONOSUPPORT, "%s: server speaks the "
                     "oldstyle protocol, which is not supported", h->o->what);
  if (m != NBD_IHAVEOPT)
    return util_err (h->err, EPROTO, "%s: not an NBD server (bad greeting)",
                     h->o->what);
  r = rd (h, buf, 2, "the greeting");
  if (r < 0)
    return r;
  uint16_t flags = nbd_get16 (buf);
  *fixed = flags & NBD_FLAG_FIXED_NEWSTYLE;
  *no_zeroes = flags & NBD_FLAG_NO_ZEROES;
  uint32_t cflags = (*fixed ? NBD_FLAG_C_FIXED_NEWSTYLE : 0)
                    | (*no_zeroes ? NBD_FLAG_C_NO_ZEROES : 0);
  nbd_put32 (buf, cflags);
  r = nbd_conn_write_all (h->s, buf, 4);
  return r < 0 ? io_error (h, r, "the greeting") : 0;
}

static int
negotiate (struct hs *h, struct nbd_cli_export *ex)
{
  bool fixed = false, no_zeroes = false;
  int r = greeting (h, &fixed, &no_zeroes);
  if (r < 0)
    return r;
  if (!fixed) {
    /* Such a server drops the connection on any option it does not know,
     * so EXPORT_NAME is all it can be asked. */
    if (h->o->uri.tls)
      return util_err (h->err, ENOTSUP, "%s: server is too old for TLS "
                       "(no fixed newstyle)", h->o->what);
    return opt_export_name (h, no_zeroes, ex);
  }
  if (h->o->uri.tls && (r = opt_starttls (h)) < 0)
    return r;
  if (h->o->extended_headers && (r = opt_extended (h)) < 0)
    return r;
  ex->extended = h->o->extended_headers && r == 1;
  if (!ex->extended && (r = opt_structured (h)) < 0)
    return r;
  ex->structured = ex->extended || r == 1;
  if (ex->structured && (r = opt_set_meta (h, ex)) < 0)
    return r;
  r = opt_go (h, ex);
  /* After agreeing to extended headers a server must not refuse GO as
   * unknown, and EXPORT_NAME is forbidden to us. */
  if (r == 1 && ex->extended)
    return violation (h, "GO unsupported after EXTENDED_HEADERS");
  if (r == 1)
    r = opt_export_name (h, no_zeroes, ex);
  return r;
}

int
nbd_cli_handshake (struct nbd_conn *s, const struct nbd_cli_opts *o,
                   struct nbd_tls *tls, struct nbd_cli_export *ex,
                   struct r3m_error *err)
{
  struct hs h = { .s = s, .o = o, .tls = tls, .err = err };
  memset (ex, 0, sizeof *ex);
  /* Defaults of the spec when the server says nothing. */
  ex->min_block = 1;
  ex->pref_block = 4096;
  ex->max_payload = NBD_MAX_PAYLOAD;
  nbd_conn_set_timeout (s, o->connect_timeout_ms);
  int r = negotiate (&h, ex);
  nbd_conn_set_timeout (s, 0);
  if (r < 0)
    return r;
  if (!ex->structured)
    ex->has_meta = false;
  return 0;
}
