/* Key files for TLS pre-shared keys (see tls_psk.h for the format).
 *
 * Every buffer that held key material (the file text, the decoded keys) is
 * wiped with OPENSSL_cleanse before it is freed, which the compiler may not
 * optimise away as it may a memset. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "nbd/tls_psk.h"
#include "util/error.h"

static int
hex_value (char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

static bool
is_blank (char c)
{
  return c == ' ' || c == '\t' || c == '\r';
}

static int
add_entry (struct nbd_psk_keys *k, size_t *cap, const char *user,
           size_t user_len, struct r3m_error *err)
{
  if (k->n == *cap) {
    size_t ncap = *cap ? *cap * 2 : 4;
    struct nbd_psk_entry *v = calloc (ncap, sizeof *v);
    if (!v)
      return util_errno (err, ENOMEM, "tls-psk");
    if (k->n)
      memcpy (v, k->v, k->n * sizeof *v);
    /* The old array held keys too. */
    if (k->v)
      OPENSSL_cleanse (k->v, k->n * sizeof *v);
    free (k->v);
    k->v = v;
    *cap = ncap;
  }
  struct nbd_psk_entry *e = &k->v[k->n];
  e->user = strndup (user, user_len);
  if (!e->user)
    return util_errno (err, ENOMEM, "tls-psk");
  k->n++;
  return 0;
}

/* One line without its newline: s[0..len).  0, 1 when the line holds no
 * key (blank, comment), or -errno. */
static int
parse_line (struct nbd_psk_keys *k, size_t *cap, const char *s, size_t len,
            const char *what, size_t line, struct r3m_error *err)
{
  while (len > 0 && is_blank (s[len - 1]))
    len--;
  if (len == 0 || s[0] == '#')
    return 1;
  const char *colon = memchr (s, ':', len);
  if (!colon)
    return util_err (err, EINVAL, "%s: line %zu: expected username:hexkey",
                     what, line);
  size_t ulen = (size_t) (colon - s);
  if (ulen == 0)
    return util_err (err, EINVAL, "%s: line %zu: empty user name", what,
                     line);
  if (ulen > NBD_PSK_USER_MAX)
    return util_err (err, EINVAL, "%s: line %zu: user name longer than %d "
                     "bytes", what, line, NBD_PSK_USER_MAX);
  for (size_t i = 0; i < ulen; i++)
    if ((unsigned char) s[i] < 0x20 || s[i] == 0x7f)
      return util_err (err, EINVAL, "%s: line %zu: control character in "
                       "the user name", what, line);
  if (nbd_psk_find (k, s, ulen))
    return util_err (err, EINVAL, "%s: line %zu: user %.*s given twice",
                     what, line, (int) ulen, s);
  const char *hex = colon + 1;
  size_t hlen = len - ulen - 1;
  if (hlen == 0)
    return util_err (err, EINVAL, "%s: line %zu: empty key", what, line);
  for (size_t i = 0; i < hlen; i++)
    if (hex_value (hex[i]) < 0)
      return util_err (err, EINVAL, "%s: line %zu: the key is not "
                       "hexadecimal", what, line);
  if (hlen % 2)
    return util_err (err, EINVAL, "%s: line %zu: the key has an odd number "
                     "of hex digits", what, line);
  if (hlen / 2 < NBD_PSK_KEY_MIN || hlen / 2 > NBD_PSK_KEY_MAX)
    return util_err (err, EINVAL, "%s: line %zu: the key has %zu bytes; "
                     "from %d to %d are allowed", what, line, hlen / 2,
                     NBD_PSK_KEY_MIN, NBD_PSK_KEY_MAX);
  int r = add_entry (k, cap, s, ulen, err);
  if (r < 0)
    return r;
  struct nbd_psk_entry *e = &k->v[k->n - 1];
  for (size_t i = 0; i < hlen / 2; i++)
    e->key[i] = (unsigned char) (hex_value (hex[2 * i]) << 4
                                 | hex_value (hex[2 * i + 1]));
  e->key_len = hlen / 2;
  return 0;
}

int
nbd_psk_parse (const char *text, size_t len, const char *what,
               struct nbd_psk_keys *out, struct r3m_error *err)
{
  memset (out, 0, sizeof *out);
  size_t cap = 0;
  size_t line = 1;
  for (size_t at = 0; at < len; line++) {
    const char *nl = memchr (text + at, '\n', len - at);
    size_t end = nl ? (size_t) (nl - text) : len;
    int r = 0;
    if (memchr (text + at, '\0', end - at))
      r = util_err (err, EINVAL, "%s: line %zu: NUL byte", what, line);
    else
      r = parse_line (out, &cap, text + at, end - at, what, line, err);
    if (r < 0) {
      nbd_psk_keys_free (out);
      return r;
    }
    at = end + 1;
  }
  return 0;
}

static int
read_file (const char *path, char **buf, size_t *len, struct r3m_error *err)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return util_errno (err, errno, "tls-psk: %s", path);
  struct stat st;
  if (fstat (fd, &st) < 0) {
    int e = errno;
    close (fd);
    return util_errno (err, e, "tls-psk: %s", path);
  }
  if (!S_ISREG (st.st_mode) || st.st_size > NBD_PSK_FILE_MAX) {
    close (fd);
    return util_err (err, EINVAL, "tls-psk: %s: not a regular file of at "
                     "most %d bytes", path, NBD_PSK_FILE_MAX);
  }
  size_t cap = (size_t) st.st_size;
  char *b = malloc (cap + 1);
  if (!b) {
    close (fd);
    return util_errno (err, ENOMEM, "tls-psk: %s", path);
  }
  size_t got = 0;
  /* Read to the end even if the file grew meanwhile, up to cap + 1 to see
   * that it did. */
  for (;;) {
    ssize_t n = read (fd, b + got, cap + 1 - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int e = errno;
      OPENSSL_cleanse (b, got);
      free (b);
      close (fd);
      return util_errno (err, e, "tls-psk: %s", path);
    }
    if (n == 0 || (got += (size_t) n) == cap + 1)
      break;
  }
  close (fd);
  if (got > cap) {
    OPENSSL_cleanse (b, got);
    free (b);
    return util_err (err, EINVAL, "tls-psk: %s changed while being read",
                     path);
  }
  *buf = b;
  *len = got;
  return 0;
}

int
nbd_psk_load (const char *path, struct nbd_psk_keys *out,
              struct r3m_error *err)
{
  memset (out, 0, sizeof *out);
  char *text = NULL;
  size_t len = 0;
  int r = read_file (path, &text, &len, err);
  if (r < 0)
    return r;
  char what[300];
  snprintf (what, sizeof what, "tls-psk: %s", path);
  r = nbd_psk_parse (text, len, what, out, err);
  OPENSSL_cleanse (text, len);
  free (text);
  if (r == 0 && out->n == 0)
    r = util_err (err, EINVAL, "%s: no keys in the file", what);
  if (r < 0)
    nbd_psk_keys_free (out);
  return r;
}

const struct nbd_psk_entry *
nbd_psk_find (const struct nbd_psk_keys *k, const char *user,
              size_t user_len)
{
  for (size_t i = 0; i < k->n; i++)
    if (strlen (k->v[i].user) == user_len
        && memcmp (k->v[i].user, user, user_len) == 0)
      return &k->v[i];
  return NULL;
}

void
nbd_psk_keys_free (struct nbd_psk_keys *k)
{
  for (size_t i = 0; i < k->n; i++)
    free (k->v[i].user);
  if (k->v)
    OPENSSL_cleanse (k->v, k->n * sizeof *k->v);
  free (k->v);
  memset (k, 0, sizeof *k);
}
