/* TLS contexts for NBD (OpenSSL), shared by the server and the client.
 *
 * A context holds what every connection of one side shares: the protocol
 * floor (TLS 1.2), the certificate and key, and how peers are verified.
 * Contexts are immutable once made and may be used by any number of
 * connections on any threads; the handshake itself is nbd_conn_tls_accept
 * or nbd_conn_tls_connect (conn.h).
 *
 * Server: cert_file (required) is presented to clients.  With ca_file,
 * every client must present a certificate signed by that CA (mutual TLS);
 * without it, any client may connect (the channel is still encrypted and
 * the server authenticated).
 *
 * Client: the server's certificate is verified against ca_file (or the
 * system's default trust store when ca_file is NULL) and its name against
 * the host name given to nbd_conn_tls_connect, unless verify_peer is false.
 * cert_file/key_file, when given, are presented as a client certificate.
 *
 * Files are PEM.  key_file defaults to cert_file (a PEM holding both).
 *
 * Pre-shared keys (psk_file, psktool's format, see tls_psk.h): a server
 * with psk_file lets in a client that names a user of the file and proves
 * its key, besides or instead of the certificate (cert_file becomes
 * optional).  A client with psk_file authenticates as psk_user with that
 * user's key and accepts only a server that proves the same key: no
 * certificates are involved (ca_file, cert_file and verify_peer are
 * ignored).  The file is read once, here.
 */
#ifndef R3M_NBD_TLS_H
#define R3M_NBD_TLS_H

#include <stdbool.h>

#include <r3map/error.h>

struct nbd_tls;

struct nbd_tls_options {
  const char *cert_file;
  const char *key_file;
  const char *ca_file;
  bool verify_peer;          /* client only; nbd_tls_options_init sets it */
  const char *psk_file;      /* TLS pre-shared keys */
  const char *psk_user;      /* client only: whose key to use */
};

/* Zero everything, verify_peer = true. */
void nbd_tls_options_init (struct nbd_tls_options *o);

/* 0 or -errno with a message naming the file or the OpenSSL reason. */
int nbd_tls_new_server (const struct nbd_tls_options *o,
                        struct nbd_tls **out, struct r3m_error *err);
int nbd_tls_new_client (const struct nbd_tls_options *o,
                        struct nbd_tls **out, struct r3m_error *err);

/* No connection may still use it.  NULL is a no-op. */
void nbd_tls_free (struct nbd_tls *t);

/* Internal to conn.c and tls.c. */
struct ssl_st;
struct ssl_st *nbd_tls_new_ssl (struct nbd_tls *t, int fd, bool server,
                                struct r3m_error *err);
bool nbd_tls_verifies_peer (const struct nbd_tls *t);

/* What the PSK callbacks saw during one handshake, so that its log line
 * can say who failed and why.  conn.c owns one per handshake and attaches
 * it with nbd_tls_attach_note before SSL_accept/SSL_connect. */
struct nbd_tls_note {
  char user[64];             /* server: identity the client offered, made
                                printable and cut; client: our user */
  bool psk_offered;          /* server: the client offered a PSK identity;
                                client: we offered our key */
  bool user_known;           /* server: that identity is in the key file */
  bool cert_refused;         /* client: the server answered with a
                                certificate instead of the key */
};
void nbd_tls_attach_note (struct ssl_st *ssl, struct nbd_tls_note *note);
/* After a successful handshake of a PSK client: did the server accept the
 * key?  (True for contexts without PSK.) */
bool nbd_tls_psk_used (const struct nbd_tls *t, struct ssl_st *ssl);
/* Append OpenSSL's queued error reasons to a message ("; " separated) and
 * clear the queue.  Returns -code like util_err. */
int nbd_tls_err (struct r3m_error *err, int code, const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));

#endif
