/* r3map: extras of the NBD client backend.
 *
 * The client itself is opened like any backend, from a URI following the
 * NBD URI standard:
 *
 *   nbd://HOST[:PORT][/EXPORT]            TCP (port 10809 by default)
 *   nbds://HOST[:PORT][/EXPORT]           TLS; the server's certificate
 *                                         must chain to tls-ca and name HOST
 *   nbd+unix:///[EXPORT]?socket=PATH      Unix socket
 *   nbds+unix:///[EXPORT]?socket=PATH&tls-hostname=NAME
 *   nbds://USER@HOST/[EXPORT]?tls-psk-file=FILE   TLS with USER's
 *                                         pre-shared key instead of
 *                                         certificates (also nbds+unix;
 *                                         USER defaults to the login name)
 *
 * Query parameters: inflight=N (requests on the wire per connection,
 * default 64), connections=N (default 4, used only when the server
 * advertises multi-conn), connect-timeout=SECONDS (bounds the handshake,
 * default 30, 0 = none), request-timeout=SECONDS (a request without a
 * reply for that long fails every request with ETIMEDOUT; default 0 =
 * wait for ever, since some stores are legitimately slow),
 * tls-ca=FILE, tls-cert=FILE and tls-key=FILE (client certificate),
 * tls-hostname=NAME, extended-headers=on|off (ask for the NBD extended
 * headers extension, default on; servers without it work as before).
 *
 *   r3m_backend_open ("nbd+unix:///disk?socket=/run/nbd.sock", 0, &b, &err);
 *
 * Requests fail with -errno; these calls say why in words.
 */
#ifndef R3MAP_NBD_CLIENT_H
#define R3MAP_NBD_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include <r3map/backend.h>
#include <r3map/error.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Why requests on an NBD client backend fail.  If the connection died
 * (server gone, protocol error), -errno and the reason, e.g.
 * "nbd://h/x: server closed the connection"; every later request fails
 * with the same code.  Otherwise the server's last error reply, if any,
 * with its message ("nbd://h/x: READ at 0+4096 failed: Input/output
 * error: ..."), and 0 if there was none.  -EINVAL if b is not an NBD
 * client backend. */
int r3m_nbd_client_error (const struct r3m_backend *b, struct r3m_error *err);

/* What the handshake settled. */
struct r3m_nbd_client_info {
  uint64_t size;
  uint16_t flags;              /* NBD transmission flags */
  unsigned connections;        /* open connections (see below) */
  unsigned inflight;           /* request window per connection */
  bool structured_replies;
  bool block_status;           /* base:allocation selected */
  bool tls;
  uint32_t min_block, preferred_block, max_payload;
  bool extended_headers;       /* NBD_OPT_EXTENDED_HEADERS agreed */
};

/* 0, or -EINVAL if b is not an NBD client backend.  Opening returns once
 * the first connection is ready; further connections (multi-conn) are
 * negotiated in the background and join as they finish.  This call waits
 * for them, so `connections` is final: those that failed to open are not
 * counted. */
int r3m_nbd_client_info (const struct r3m_backend *b,
                         struct r3m_nbd_client_info *info);

#ifdef __cplusplus
}
#endif
#endif /* R3MAP_NBD_CLIENT_H */
