/* See testcerts.h.  EC P-256 keys: fast to make, fine for TLS 1.2/1.3. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "testcerts.h"

static int
save (const char *dir, const char *name, X509 *cert, EVP_PKEY *key)
{
  char path[4096];
  snprintf (path, sizeof path, "%s/%s%s.pem", dir, name, key ? "-key" : "");
  FILE *f = fopen (path, "w");
  if (!f)
    return -1;
  int ok = key ? PEM_write_PrivateKey (f, key, NULL, NULL, 0, NULL, NULL)
               : PEM_write_X509 (f, cert);
  return fclose (f) == 0 && ok ? 0 : -1;
}

static int
add_ext (X509 *cert, X509 *issuer, int nid, const char *value)
{
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb (&ctx);
  X509V3_set_ctx (&ctx, issuer, cert, NULL, NULL, 0);
  X509_EXTENSION *ext = X509V3_EXT_conf_nid (NULL, &ctx, nid, value);
  if (!ext)
    return -1;
  int ok = X509_add_ext (cert, ext, -1);
  X509_EXTENSION_free (ext);
  return ok ? 0 : -1;
}

/* A certificate for key, signed by (issuer, issuer_key) or self-signed. */
static X509 *
make_cert (EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key,
           bool ca, const char *san, long serial)
{
  X509 *c = X509_new ();
  if (!c)
    return NULL;
  X509_set_version (c, 2);
  ASN1_INTEGER_set (X509_get_serialNumber (c), serial);
  X509_gmtime_adj (X509_getm_notBefore (c), -3600);
  X509_gmtime_adj (X509_getm_notAfter (c), 7L * 24 * 3600);
  X509_set_pubkey (c, key);
  X509_NAME *name = X509_get_subject_name (c);
  X509_NAME_add_entry_by_txt (name, "CN", MBSTRING_ASC,
                              (const unsigned char *) cn, -1, -1, 0);
  X509_set_issuer_name (c, issuer ? X509_get_subject_name (issuer) : name);
  X509 *iss = issuer ? issuer : c;
  int r = add_ext (c, iss, NID_basic_constraints,
                   ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
  if (r == 0)
    r = add_ext (c, iss, NID_key_usage,
                 ca ? "critical,keyCertSign,cRLSign"
                    : "critical,digitalSignature,keyEncipherment");
  if (r == 0)
    r = add_ext (c, iss, NID_subject_key_identifier, "hash");
  if (r == 0 && !ca)
    r = add_ext (c, iss, NID_ext_key_usage, "serverAuth,clientAuth");
  if (r == 0 && san)
    r = add_ext (c, iss, NID_subject_alt_name, san);
  if (r < 0 || !X509_sign (c, issuer_key ? issuer_key : key, EVP_sha256 ())) {
    X509_free (c);
    return NULL;
  }
  return c;
}

static int
make_signed (const char *dir, const char *name, const char *cn,
             const char *san, X509 *ca, EVP_PKEY *ca_key, long serial)
{
  EVP_PKEY *key = EVP_EC_gen ("P-256");
  X509 *c = key ? make_cert (key, cn, ca, ca_key, false, san, serial) : NULL;
  int r = c && save (dir, name, c, NULL) == 0 && save (dir, name, NULL, key) == 0
          ? 0 : -1;
  X509_free (c);
  EVP_PKEY_free (key);
  return r;
}

int
testcerts_make (const char *dir)
{
  int r = -1;
  EVP_PKEY *ca_key = EVP_EC_gen ("P-256");
  EVP_PKEY *other_key = EVP_EC_gen ("P-256");
  X509 *ca = NULL, *other = NULL;
  if (!ca_key || !other_key)
    goto out;
  ca = make_cert (ca_key, "r3map test CA", NULL, NULL, true, NULL, 1);
  other = make_cert (other_key, "r3map other CA", NULL, NULL, true, NULL, 2);
  if (!ca || !other
      || save (dir, "ca", ca, NULL) < 0 || save (dir, "ca", NULL, ca_key) < 0
      || save (dir, "other-ca", other, NULL) < 0)
    goto out;
  if (make_signed (dir, "server", "localhost",
                   "DNS:localhost,IP:127.0.0.1,IP:::1", ca, ca_key, 3) < 0
      || make_signed (dir, "client", "r3map-test-client", NULL, ca, ca_key,
                      4) < 0
      || make_signed (dir, "other-client", "r3map-other-client", NULL, other,
                      other_key, 5) < 0)
    goto out;
  r = 0;
out:
  X509_free (ca);
  X509_free (other);
  EVP_PKEY_free (ca_key);
  EVP_PKEY_free (other_key);
  return r;
}
