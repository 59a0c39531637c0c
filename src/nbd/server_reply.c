/* Encoding replies.
 *
 *   request       structured replies negotiated      simple replies
 *   READ ok       OFFSET_DATA chunk (DONE) + data     16-byte reply + data
 *                 (NONE chunk for a 0-byte read)
 *   BLOCK_STATUS  the chunks server_meta.c encoded    (never: needs SR)
 *   other ok      simple reply                         simple reply
 *   any error     ERROR chunk (DONE) with a message    simple reply, error
 *
 * The spec allows simple replies for payload-free successes even after
 * structured replies were negotiated, and they are 4 bytes shorter.
 *
 * With extended headers every reply is a chunk with the 32-byte header
 * (which echoes the request's offset): a payload-free success is a NONE
 * chunk, READ data one OFFSET_DATA chunk, an error one ERROR chunk, block
 * status the BLOCK_STATUS_EXT chunks server_meta.c encoded.  We never
 * split a READ or send holes, so ERROR_OFFSET is never needed. */
#include <stdio.h>
#include <string.h>

#include "nbd/server.h"

void
nbd_srv_result_fail (struct nbd_srv_result *res, int nbd_error,
                     const char *fmt, ...)
{
  res->error = nbd_error;
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (res->msg, sizeof res->msg, fmt, ap);
  va_end (ap);
}

static size_t
chunk_header (unsigned char *h, uint16_t flags, uint16_t type,
              uint64_t cookie, uint32_t len)
{
  nbd_put32 (h, NBD_STRUCTURED_REPLY_MAGIC);
  nbd_put16 (h + 4, flags);
  nbd_put16 (h + 6, type);
  nbd_put64 (h + 8, cookie);
  nbd_put32 (h + 16, len);
  return NBD_CHUNK_HEADER_SIZE;
}

static size_t
simple_header (unsigned char *h, uint32_t error, uint64_t cookie)
{
  nbd_put32 (h, NBD_SIMPLE_REPLY_MAGIC);
  nbd_put32 (h + 4, error);
  nbd_put64 (h + 8, cookie);
  return NBD_SIMPLE_REPLY_SIZE;
}

static size_t
ext_header (unsigned char *h, uint16_t flags, uint16_t type,
            const struct nbd_srv_req *req, uint64_t len)
{
  nbd_put32 (h, NBD_EXT_REPLY_MAGIC);
  nbd_put16 (h + 4, flags);
  nbd_put16 (h + 6, type);
  nbd_put64 (h + 8, req->cookie);
  nbd_put64 (h + 16, req->off);
  nbd_put64 (h + 24, len);
  return NBD_EXT_REPLY_SIZE;
}

/* The error payload after a chunk header of n bytes; returns the total. */
static size_t
error_payload (unsigned char *hdr, size_t n, const struct nbd_srv_result *res,
               size_t mlen)
{
  nbd_put32 (hdr + n, (uint32_t) res->error);
  nbd_put16 (hdr + n + 4, (uint16_t) mlen);
  memcpy (hdr + n + 6, res->msg, mlen);
  return n + 6 + mlen;
}

static int
encode_ext (const struct nbd_srv_req *req, const struct nbd_srv_result *res,
            unsigned char *hdr, struct iovec *iov)
{
  size_t n;
  if (res->error) {
    size_t mlen = strnlen (res->msg, NBD_SRV_MSG_MAX);
    n = ext_header (hdr, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, req,
                    6 + mlen);
    n = error_payload (hdr, n, res, mlen);
  } else if (req->type == NBD_CMD_BLOCK_STATUS) {
    iov[0] = (struct iovec) { res->data, res->len };
    return 1;
  } else if (req->type != NBD_CMD_READ || res->len == 0)
    n = ext_header (hdr, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, req, 0);
  else {
    n = ext_header (hdr, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_DATA, req,
                    res->len + 8);
    nbd_put64 (hdr + n, req->off);
    n += 8;
  }
  iov[0] = (struct iovec) { hdr, n };
  if (res->error || req->type != NBD_CMD_READ || res->len == 0)
    return 1;
  iov[1] = (struct iovec) { res->data, res->len };
  return 2;
}

int
nbd_srv_encode_reply (const struct nbd_srv_conn *sc,
                      const struct nbd_srv_req *req,
                      const struct nbd_srv_result *res,
                      unsigned char *hdr, struct iovec *iov)
{
  if (sc->extended)
    return encode_ext (req, res, hdr, iov);
  if (res->error) {
    size_t n;
    if (sc->structured) {
      size_t mlen = strnlen (res->msg, NBD_SRV_MSG_MAX);
      n = chunk_header (hdr, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR,
                        req->cookie, (uint32_t) (6 + mlen));
      n = error_payload (hdr, n, res, mlen);
    } else
      n = simple_header (hdr, (uint32_t) res->error, req->cookie);
    iov[0] = (struct iovec) { hdr, n };
    return 1;
  }

  if (req->type == NBD_CMD_BLOCK_STATUS) {
    iov[0] = (struct iovec) { res->data, res->len };
    return 1;
  }

  if (req->type != NBD_CMD_READ) {
    iov[0] = (struct iovec) { hdr, simple_header (hdr, 0, req->cookie) };
    return 1;
  }

  size_t n;
  if (!sc->structured)
    n = simple_header (hdr, 0, req->cookie);
  else if (res->len == 0)
    n = chunk_header (hdr, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE,
                      req->cookie, 0);
  else {
    n = chunk_header (hdr, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_DATA,
                      req->cookie, (uint32_t) (res->len + 8));
    nbd_put64 (hdr + n, req->off);
    n += 8;
  }
  iov[0] = (struct iovec) { hdr, n };
  if (res->len == 0)
    return 1;
  iov[1] = (struct iovec) { res->data, res->len };
  return 2;
}
