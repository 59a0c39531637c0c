/* Metadata contexts: which names a query selects, and block status.
 *
 * Each export has a table of contexts: base:allocation first (answered
 * from r3m_backend_extents), then whatever r3m_nbd_server_add_meta_context
 * added (the migration layer's r3map:dirty and r3map:final).  Queries:
 *
 *   query          LIST_META_CONTEXT            SET_META_CONTEXT
 *   "ns:leaf"      the context of that name     the context of that name
 *   "ns:"          every context in namespace   nothing (spec: ignore)
 *   no colon       nothing                      nothing
 *   (no queries)   every context                nothing
 *
 * A SET selection is remembered with its export name and opened (the
 * provider's open callback) when GO picks the same export. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "nbd/server.h"

int
nbd_srv_meta_match (const struct nbd_srv_export *e, const char *query,
                    size_t qlen, bool list,
                    int (*cb) (const struct nbd_srv_meta *m, void *arg),
                    void *arg)
{
  const char *colon = memchr (query, ':', qlen);
  if (!colon || colon == query)
    return 0;
  bool wildcard = colon == query + qlen - 1;
  if (wildcard && !list)
    return 0;
  for (size_t i = 0; i < e->nmetas; i++) {
    const char *name = e->metas[i].name;
    bool hit = wildcard ? strncmp (name, query, qlen) == 0
                        : strlen (name) == qlen
                          && memcmp (name, query, qlen) == 0;
    if (hit) {
      int r = cb (&e->metas[i], arg);
      if (r < 0)
        return r;
    }
  }
  return 0;
}

void
nbd_srv_meta_clear (struct nbd_srv_conn *sc)
{
  free (sc->sel);
  free (sc->sel_export);
  sc->sel = NULL;
  sc->sel_export = NULL;
  sc->nsel = 0;
}

int
nbd_srv_meta_open (struct nbd_srv_conn *sc)
{
  for (size_t i = 0; i < sc->nsel; i++) {
    struct nbd_srv_sel *s = &sc->sel[i];
    const struct r3m_nbd_meta_context *c = &s->meta->ctx;
    if (s->meta->allocation || !c->open)
      continue;
    int r = c->open (c->user, &s->state);
    if (r < 0) {
      nbd_srv_meta_close (sc);
      return r;
    }
    s->opened = true;
  }
  return 0;
}

void
nbd_srv_meta_close (struct nbd_srv_conn *sc)
{
  for (size_t i = 0; i < sc->nsel; i++) {
    struct nbd_srv_sel *s = &sc->sel[i];
    if (s->opened && s->meta->ctx.close)
      s->meta->ctx.close (s->meta->ctx.user, s->state);
    s->opened = false;
    s->state = NULL;
  }
}

static uint32_t
allocation_flags (uint32_t f)
{
  return ((f & R3M_EXTENT_HOLE) ? NBD_STATE_HOLE : 0)
         | ((f & R3M_EXTENT_ZERO) ? NBD_STATE_ZERO : 0);
}

/* A descriptor's length: 32 bits compact, 64 with extended headers. */
static void
put_extent_len (unsigned char *d, bool extended, uint64_t len)
{
  if (extended)
    nbd_put64 (d, len);
  else
    nbd_put32 (d, (uint32_t) len);
}

/* Append the chunk for one context at out; returns its size, or 0 when
 * the extents describe nothing.  Compact: BLOCK_STATUS with 32-bit
 * descriptors; extended headers: BLOCK_STATUS_EXT, whose 64-bit lengths
 * let one extent cover more than 4 GiB. */
static size_t
encode_chunk (unsigned char *out, const struct nbd_srv_sel *s,
              const struct nbd_srv_req *req, bool last, bool extended,
              const struct r3m_extent *ext, size_t n)
{
  size_t hsize = extended ? NBD_EXT_REPLY_SIZE + 8 : NBD_CHUNK_HEADER_SIZE + 4;
  size_t dsize = extended ? 16 : 8;
  unsigned char *d = out + hsize;
  size_t count = 0;
  uint64_t pos = 0, cur = 0;
  uint32_t prev = 0;
  /* Trim to the request (then every compact length fits 32 bits), skip
   * empty extents, merge neighbours with equal flags. */
  for (size_t j = 0; j < n && pos < req->len; j++) {
    uint64_t l = ext[j].len;
    if (l == 0)
      continue;
    if (l > req->len - pos)
      l = req->len - pos;
    uint32_t f = s->meta->allocation ? allocation_flags (ext[j].flags)
                                     : ext[j].flags;
    if (count > 0 && f == prev)
      cur += l;
    else {
      if (count > 0)
        put_extent_len (d + dsize * (count - 1), extended, cur);
      if (extended) {
        nbd_put32 (d + dsize * count + 8, 0);   /* status: high 32 bits */
        nbd_put32 (d + dsize * count + 12, f);
      } else
        nbd_put32 (d + dsize * count + 4, f);
      count++;
      cur = l;
      prev = f;
    }
    pos += l;
  }
  if (count == 0)
    return 0;
  put_extent_len (d + dsize * (count - 1), extended, cur);
  if (extended) {
    nbd_put32 (out, NBD_EXT_REPLY_MAGIC);
    nbd_put16 (out + 4, last ? NBD_REPLY_FLAG_DONE : 0);
    nbd_put16 (out + 6, NBD_REPLY_TYPE_BLOCK_STATUS_EXT);
    nbd_put64 (out + 8, req->cookie);
    nbd_put64 (out + 16, req->off);
    nbd_put64 (out + 24, 8 + dsize * count);
    nbd_put32 (out + 32, s->id);
    nbd_put32 (out + 36, (uint32_t) count);
    return hsize + dsize * count;
  }
  uint32_t plen = (uint32_t) (4 + 8 * count);
  nbd_put32 (out, NBD_STRUCTURED_REPLY_MAGIC);
  nbd_put16 (out + 4, last ? NBD_REPLY_FLAG_DONE : 0);
  nbd_put16 (out + 6, NBD_REPLY_TYPE_BLOCK_STATUS);
  nbd_put64 (out + 8, req->cookie);
  nbd_put32 (out + 16, plen);
  nbd_put32 (out + 20, s->id);
  return NBD_CHUNK_HEADER_SIZE + plen;
}

static bool
asked (const struct nbd_srv_req *req, const struct nbd_srv_sel *s)
{
  return s->id <= NBD_SRV_MAX_FILTER_IDS
         && (req->only >> (s->id - 1)) & 1;
}

void
nbd_srv_block_status (struct nbd_srv_conn *sc, const struct nbd_srv_req *req,
                      struct nbd_srv_result *res)
{
  size_t max = (req->flags & NBD_CMD_FLAG_REQ_ONE) ? 1 : NBD_SRV_MAX_EXTENTS;
  size_t per = sc->extended ? NBD_EXT_REPLY_SIZE + 8 + 16 * max
                            : NBD_CHUNK_HEADER_SIZE + 4 + 8 * max;
  struct r3m_extent *ext = malloc (max * sizeof *ext);
  unsigned char *out = malloc (per * sc->nsel);
  if (!ext || !out) {
    free (ext);
    free (out);
    nbd_srv_result_fail (res, NBD_ENOMEM, "block status: out of memory");
    return;
  }
  /* The payload form asks for some of the contexts (req->only). */
  bool filter = req->flags & NBD_CMD_FLAG_PAYLOAD_LEN;
  size_t last = 0;
  for (size_t i = 0; i < sc->nsel; i++)
    if (!filter || asked (req, &sc->sel[i]))
      last = i;
  size_t used = 0;
  for (size_t i = 0; i < sc->nsel; i++) {
    const struct nbd_srv_sel *s = &sc->sel[i];
    if (filter && !asked (req, s))
      continue;
    const struct r3m_nbd_meta_context *c = &s->meta->ctx;
    size_t n = 0;
    int r = s->meta->allocation
      ? r3m_backend_extents (sc->exp->backend, req->off, req->len, ext, max,
                             &n)
      : c->query (c->user, s->state, req->off, req->len, ext, max, &n);
    size_t k = r < 0 || n > max ? 0
             : encode_chunk (out + used, s, req, i == last, sc->extended,
                             ext, n);
    if (k == 0) {
      nbd_srv_result_fail (res, r < 0 ? nbd_srv_errno_to_nbd (r) : NBD_EIO,
                           "block status %s: %s", s->meta->name,
                           r < 0 ? strerror (-r) : "no extents");
      free (ext);
      free (out);
      return;
    }
    used += k;
  }
  free (ext);
  res->data = out;
  res->len = used;
  res->data_owned = true;
}
