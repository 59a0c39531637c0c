/* TLS contexts (OpenSSL) and the socket BIO that conn.c uses under them.
 *
 * Why a BIO of our own: OpenSSL's socket BIO writes with write(2), which
 * raises SIGPIPE when the peer has gone, and a library must not kill its
 * host process or require it to ignore SIGPIPE.  Ours sends with
 * MSG_NOSIGNAL and is otherwise the plain socket BIO: non-blocking I/O with
 * retry flags, end of stream remembered for BIO_eof.  Each context owns its
 * BIO_METHOD, so nothing here is process-global. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "nbd/tls.h"
#include "nbd/tls_psk.h"
#include "util/error.h"

struct nbd_tls {
  SSL_CTX *ctx;
  BIO_METHOD *bio;
  bool server;
  bool verify;               /* peers must present a verified certificate */
  struct nbd_psk_keys psk;   /* server: the key file; client: our key only
                                (n == 1); n == 0 without PSK */
};

/* ---- the socket BIO ---------------------------------------------------- */

/* BIO data: the fd in the BIO's num field, end of stream in its flags. */
static int
bio_sock_write (BIO *b, const char *buf, int len)
{
  BIO_clear_retry_flags (b);
  ssize_t n = send (BIO_get_fd (b, NULL), buf, (size_t) len, MSG_NOSIGNAL);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    BIO_set_retry_write (b);
  return (int) n;
}

static int
bio_sock_read (BIO *b, char *buf, int len)
{
  BIO_clear_retry_flags (b);
  ssize_t n = recv (BIO_get_fd (b, NULL), buf, (size_t) len, 0);
  if (n == 0)
    BIO_set_flags (b, BIO_FLAGS_IN_EOF);
  else if (n < 0
           && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    BIO_set_retry_read (b);
  return (int) n;
}

static long
bio_sock_ctrl (BIO *b, int cmd, long num, void *ptr)
{
  switch (cmd) {
  case BIO_C_SET_FD:
    BIO_set_data (b, (void *) (intptr_t) *(int *) ptr);
    BIO_set_init (b, 1);
    return 1;
  case BIO_C_GET_FD:
    if (!BIO_get_init (b))
      return -1;
    if (ptr)
      *(int *) ptr = (int) (intptr_t) BIO_get_data (b);
    return (long) (intptr_t) BIO_get_data (b);
  case BIO_CTRL_EOF:
    return BIO_test_flags (b, BIO_FLAGS_IN_EOF) != 0;
  case BIO_CTRL_FLUSH:
    return 1;
  default:
    return 0;
  }
}

static int
bio_sock_puts (BIO *b, const char *s)
{
  return bio_sock_write (b, s, (int) strlen (s));
}

static BIO_METHOD *
bio_method_new (void)
{
  BIO_METHOD *m = BIO_meth_new (BIO_get_new_index () | BIO_TYPE_SOURCE_SINK
                                | BIO_TYPE_DESCRIPTOR, "r3map socket");
  if (!m)
    return NULL;
  if (!BIO_meth_set_write (m, bio_sock_write)
      || !BIO_meth_set_read (m, bio_sock_read)
      || !BIO_meth_set_puts (m, bio_sock_puts)
      || !BIO_meth_set_ctrl (m, bio_sock_ctrl)) {
    BIO_meth_free (m);
    return NULL;
  }
  return m;
}

/* ---- errors ------------------------------------------------------------ */

int
nbd_tls_err (struct r3m_error *err, int code, const char *fmt, ...)
{
  char msg[R3M_ERROR_MSG_MAX];
  va_list ap;
  va_start (ap, fmt);
  int n = vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  size_t used = n < 0 ? 0 : (size_t) n < sizeof msg ? (size_t) n
                                                     : sizeof msg - 1;
  const char *sep = ": ";
  unsigned long e;
  while ((e = ERR_get_error ()) != 0) {
    char reason[160];
    ERR_error_string_n (e, reason, sizeof reason);
    /* "error:0A000086:SSL routines::certificate verify failed": the text
     * after the last ':' is what a person wants. */
    const char *r = strrchr (reason, ':');
    r = r && r[1] ? r + 1 : reason;
    if (used + 1 < sizeof msg) {
      n = snprintf (msg + used, sizeof msg - used, "%s%s", sep, r);
      if (n > 0)
        used += (size_t) n < sizeof msg - used ? (size_t) n
                                               : sizeof msg - used - 1;
    }
    sep = "; ";
  }
  return util_err (err, code, "%s", msg);
}

/* ---- pre-shared keys ----------------------------------------------------
 *
 * TLS 1.3 external PSKs through OpenSSL's session callbacks: the key goes
 * into a session whose cipher is TLS_AES_128_GCM_SHA256, because the
 * session's cipher fixes the PSK's hash and GnuTLS (libnbd, nbdkit) binds
 * external keys to SHA-256.  docs/nbd-server.md "TLS with pre-shared keys"
 * says why these callbacks and not the older PSK ones. */

static const unsigned char tls_aes_128_gcm_sha256[] = { 0x13, 0x01 };
/* OpenSSL's default TLS 1.3 list with the SHA-384 suite last. */
static const char psk_ciphersuites[] =
  "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384";

static SSL_SESSION *
psk_session (SSL *ssl, const struct nbd_psk_entry *e)
{
  SSL_SESSION *s = SSL_SESSION_new ();
  const SSL_CIPHER *c = SSL_CIPHER_find (ssl, tls_aes_128_gcm_sha256);
  if (!s || !c || !SSL_SESSION_set1_master_key (s, e->key, e->key_len)
      || !SSL_SESSION_set_cipher (s, c)
      || !SSL_SESSION_set_protocol_version (s, TLS1_3_VERSION)) {
    SSL_SESSION_free (s);
    return NULL;
  }
  return s;
}

/* A user name from the network, fit for a log line. */
static void
note_user (struct nbd_tls_note *note, const unsigned char *id, size_t len)
{
  size_t max = sizeof note->user - 1;
  size_t n = len < max ? len : max;
  for (size_t i = 0; i < n; i++)
    note->user[i] = id[i] >= 0x20 && id[i] < 0x7f ? (char) id[i] : '?';
  note->user[n] = '\0';
  if (len > max && max >= 3)
    memcpy (note->user + max - 3, "...", 3);
}

static struct nbd_tls *
tls_of (SSL *ssl)
{
  return SSL_CTX_get_app_data (SSL_get_SSL_CTX (ssl));
}

/* Server: the client offered identity id.  An unknown one is not an error
 * here (returning 1 without a session): OpenSSL then tries a certificate
 * handshake, which fails when the server has none, and conn.c names the
 * unknown user in its message. */
static int
psk_find_session (SSL *ssl, const unsigned char *id, size_t len,
                  SSL_SESSION **sess)
{
  struct nbd_tls *t = tls_of (ssl);
  struct nbd_tls_note *note = SSL_get_app_data (ssl);
  const struct nbd_psk_entry *e = nbd_psk_find (&t->psk, (const char *) id,
                                                len);
  *sess = NULL;
  if (note) {
    note->psk_offered = true;
    note->user_known = e != NULL;
    note_user (note, id, len);
  }
  if (!e)
    return 1;
  *sess = psk_session (ssl, e);
  return *sess != NULL;
}

/* Client: offer our key.  md is NULL on the first ClientHello; after a
 * HelloRetryRequest it is the hash of the cipher the server chose, and a
 * key bound to SHA-256 cannot be offered for another one. */
static int
psk_use_session (SSL *ssl, const EVP_MD *md, const unsigned char **id,
                 size_t *len, SSL_SESSION **sess)
{
  struct nbd_tls *t = tls_of (ssl);
  struct nbd_tls_note *note = SSL_get_app_data (ssl);
  const struct nbd_psk_entry *e = &t->psk.v[0];
  *sess = NULL;
  if (md && !EVP_MD_is_a (md, "SHA256"))
    return 1;
  *sess = psk_session (ssl, e);
  if (!*sess)
    return 0;
  *id = (const unsigned char *) e->user;
  *len = strlen (e->user);
  if (note) {
    note->psk_offered = true;
    note_user (note, *id, *len);
  }
  return 1;
}

/* Client: with a PSK, a server that sends a certificate has not accepted
 * the key (wrong key, unknown user, or a server without PSK); there is
 * nothing to verify it against, so the handshake ends here. */
static int
psk_refuse_certificate (int ok, X509_STORE_CTX *x)
{
  (void) ok;
  SSL *ssl = X509_STORE_CTX_get_ex_data (x,
                                        SSL_get_ex_data_X509_STORE_CTX_idx ());
  struct nbd_tls_note *note = ssl ? SSL_get_app_data (ssl) : NULL;
  if (note)
    note->cert_refused = true;
  X509_STORE_CTX_set_error (x, X509_V_ERR_APPLICATION_VERIFICATION);
  return 0;
}

static int
psk_setup (struct nbd_tls *t, const struct nbd_tls_options *o,
           struct r3m_error *err)
{
  int r = nbd_psk_load (o->psk_file, &t->psk, err);
  if (r < 0)
    return r;
  SSL_CTX_set_app_data (t->ctx, t);
  /* External PSKs exist only from TLS 1.3 on with these callbacks. */
  if (t->server) {
    /* A PSK handshake is a resumption to OpenSSL, which refuses one
     * without a session id context when clients are verified (--tls-ca):
     * "session id context uninitialized". */
    static const unsigned char sid_ctx[] = "r3map-nbd";
    if (SSL_CTX_set_session_id_context (t->ctx, sid_ctx,
                                        sizeof sid_ctx - 1) != 1
        || SSL_CTX_set_ciphersuites (t->ctx, psk_ciphersuites) != 1)
      return nbd_tls_err (err, ENOTSUP, "tls-psk: TLS 1.3 cipher suites");
    SSL_CTX_set_options (t->ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_psk_find_session_callback (t->ctx, psk_find_session);
    return 0;
  }
  if (!o->psk_user || !*o->psk_user)
    return util_err (err, EINVAL, "tls-psk: %s: no user name given",
                     o->psk_file);
  const struct nbd_psk_entry *e = nbd_psk_find (&t->psk, o->psk_user,
                                                strlen (o->psk_user));
  if (!e)
    return util_err (err, EACCES, "tls-psk: %s has no key for user %s",
                     o->psk_file, o->psk_user);
  /* Keep only our own key. */
  if (e != &t->psk.v[0]) {
    struct nbd_psk_entry tmp = t->psk.v[0];
    t->psk.v[0] = *e;
    t->psk.v[e - t->psk.v] = tmp;
    OPENSSL_cleanse (&tmp, sizeof tmp);
  }
  for (size_t i = 1; i < t->psk.n; i++) {
    free (t->psk.v[i].user);
    OPENSSL_cleanse (&t->psk.v[i], sizeof t->psk.v[i]);
  }
  t->psk.n = 1;
  if (SSL_CTX_set_min_proto_version (t->ctx, TLS1_3_VERSION) != 1)
    return nbd_tls_err (err, ENOTSUP, "tls-psk: TLS 1.3");
  SSL_CTX_set_psk_use_session_callback (t->ctx, psk_use_session);
  SSL_CTX_set_verify (t->ctx, SSL_VERIFY_PEER, psk_refuse_certificate);
  return 0;
}

void
nbd_tls_attach_note (SSL *ssl, struct nbd_tls_note *note)
{
  SSL_set_app_data (ssl, note);
}

bool
nbd_tls_psk_used (const struct nbd_tls *t, SSL *ssl)
{
  return t->server || t->psk.n == 0 || SSL_session_reused (ssl);
}

/* ---- contexts ---------------------------------------------------------- */

void
nbd_tls_options_init (struct nbd_tls_options *o)
{
  memset (o, 0, sizeof *o);
  o->verify_peer = true;
}

static int
tls_new (bool server, struct nbd_tls **out, struct r3m_error *err)
{
  struct nbd_tls *t = calloc (1, sizeof *t);
  if (!t)
    return util_errno (err, ENOMEM, "tls");
  t->server = server;
  t->ctx = SSL_CTX_new (server ? TLS_server_method () : TLS_client_method ());
  t->bio = bio_method_new ();
  if (!t->ctx || !t->bio) {
    nbd_tls_free (t);
    return nbd_tls_err (err, ENOMEM, "tls: creating a context");
  }
  /* TLS 1.2 is the floor the NBD spec and our brief ask for.  No
   * renegotiation: it would let SSL_write read from the socket behind the
   * reader's back (see conn.c on locking).  Peers that close without
   * close_notify are common among NBD clients: treat it as end of stream. */
  SSL_CTX_set_min_proto_version (t->ctx, TLS1_2_VERSION);
  SSL_CTX_set_options (t->ctx, SSL_OP_NO_RENEGOTIATION
                               | SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_CTX_set_mode (t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE
                            | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  *out = t;
  return 0;
}

static int
load_cert_and_key (struct nbd_tls *t, const char *cert, const char *key,
                   struct r3m_error *err)
{
  if (!key)
    key = cert;
  if (SSL_CTX_use_certificate_chain_file (t->ctx, cert) != 1)
    return nbd_tls_err (err, EINVAL, "tls: certificate %s", cert);
  if (SSL_CTX_use_PrivateKey_file (t->ctx, key, SSL_FILETYPE_PEM) != 1)
    return nbd_tls_err (err, EINVAL, "tls: private key %s", key);
  if (SSL_CTX_check_private_key (t->ctx) != 1)
    return nbd_tls_err (err, EINVAL,
                        "tls: private key %s does not match certificate %s",
                        key, cert);
  return 0;
}

int
nbd_tls_new_server (const struct nbd_tls_options *o, struct nbd_tls **out,
                    struct r3m_error *err)
{
  if (!o || (!o->cert_file && !o->psk_file))
    return util_err (err, EINVAL, "tls: the server needs a certificate or "
                     "a pre-shared key file");
  ERR_clear_error ();
  struct nbd_tls *t;
  int r = tls_new (true, &t, err);
  if (r < 0)
    return r;
  if (o->cert_file)
    r = load_cert_and_key (t, o->cert_file, o->key_file, err);
  if (r == 0 && o->psk_file)
    r = psk_setup (t, o, err);
  if (r == 0 && o->ca_file) {
    STACK_OF (X509_NAME) *names = SSL_load_client_CA_file (o->ca_file);
    if (!names || SSL_CTX_load_verify_locations (t->ctx, o->ca_file,
                                                 NULL) != 1) {
      sk_X509_NAME_pop_free (names, X509_NAME_free);
      r = nbd_tls_err (err, EINVAL, "tls: CA file %s", o->ca_file);
    } else {
      SSL_CTX_set_client_CA_list (t->ctx, names);
      SSL_CTX_set_verify (t->ctx,
                          SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                          NULL);
      t->verify = true;
    }
  }
  if (r < 0) {
    nbd_tls_free (t);
    return r;
  }
  /* No session tickets: we keep no session cache worth resuming, and
   * tickets are extra writes right after the handshake. */
  SSL_CTX_set_num_tickets (t->ctx, 0);
  *out = t;
  return 0;
}

int
nbd_tls_new_client (const struct nbd_tls_options *o, struct nbd_tls **out,
                    struct r3m_error *err)
{
  struct nbd_tls_options defaults;
  if (!o) {
    nbd_tls_options_init (&defaults);
    o = &defaults;
  }
  ERR_clear_error ();
  struct nbd_tls *t;
  int r = tls_new (false, &t, err);
  if (r < 0)
    return r;
  if (o->psk_file) {
    r = psk_setup (t, o, err);
    if (r < 0) {
      nbd_tls_free (t);
      return r;
    }
    *out = t;
    return 0;
  }
  if (o->cert_file)
    r = load_cert_and_key (t, o->cert_file, o->key_file, err);
  if (r == 0) {
    int ok = o->ca_file
             ? SSL_CTX_load_verify_locations (t->ctx, o->ca_file, NULL)
             : SSL_CTX_set_default_verify_paths (t->ctx);
    if (ok != 1)
      r = nbd_tls_err (err, EINVAL, "tls: CA file %s",
                       o->ca_file ? o->ca_file : "(system default)");
  }
  if (r < 0) {
    nbd_tls_free (t);
    return r;
  }
  t->verify = o->verify_peer;
  SSL_CTX_set_verify (t->ctx, t->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE,
                      NULL);
  *out = t;
  return 0;
}

void
nbd_tls_free (struct nbd_tls *t)
{
  if (!t)
    return;
  SSL_CTX_free (t->ctx);
  BIO_meth_free (t->bio);
  nbd_psk_keys_free (&t->psk);
  free (t);
}

bool
nbd_tls_verifies_peer (const struct nbd_tls *t)
{
  return t->verify;
}

SSL *
nbd_tls_new_ssl (struct nbd_tls *t, int fd, bool server,
                 struct r3m_error *err)
{
  if (server != t->server) {
    util_err (err, EINVAL, "tls: a %s context used for a %s connection",
              t->server ? "server" : "client", server ? "server" : "client");
    return NULL;
  }
  ERR_clear_error ();
  SSL *ssl = SSL_new (t->ctx);
  BIO *bio = BIO_new (t->bio);
  if (!ssl || !bio) {
    SSL_free (ssl);
    BIO_free (bio);
    nbd_tls_err (err, ENOMEM, "tls: creating a session");
    return NULL;
  }
  BIO_set_fd (bio, fd, BIO_NOCLOSE);
  SSL_set_bio (ssl, bio, bio);           /* ssl owns bio from here */
  return ssl;
}
