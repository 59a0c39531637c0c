/* libFuzzer harness for the TLS pre-shared key file parser
 * (src/nbd/tls_psk.c).  Besides crashes and sanitizer reports it checks
 * invariants: every key parsed is well formed and found by its name; a
 * failure names a line that exists and carries no key material. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nbd/tls_psk.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

#define CHECK(c) do { if (!(c)) { fprintf (stderr, "invariant: %s\n", #c); \
                                  abort (); } } while (0)

static int
is_hex (char c)
{
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')
         || (c >= 'A' && c <= 'F');
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  const char *text = (const char *) data;
  struct nbd_psk_keys k;
  struct r3m_error err = { 0 };
  int r = nbd_psk_parse (text, size, "keys", &k, &err);
  if (r == 0) {
    for (size_t i = 0; i < k.n; i++) {
      const struct nbd_psk_entry *e = &k.v[i];
      size_t ulen = strlen (e->user);
      CHECK (ulen >= 1 && ulen <= NBD_PSK_USER_MAX);
      CHECK (!strchr (e->user, ':'));
      CHECK (e->key_len >= NBD_PSK_KEY_MIN && e->key_len <= NBD_PSK_KEY_MAX);
      CHECK (nbd_psk_find (&k, e->user, ulen) == e);
    }
    nbd_psk_keys_free (&k);
    CHECK (k.n == 0 && !k.v);
    return 0;
  }
  CHECK (r == -EINVAL && err.code == EINVAL && k.n == 0 && !k.v);
  size_t line;
  CHECK (sscanf (err.msg, "keys: line %zu:", &line) == 1);
  size_t lines = 1;
  for (size_t i = 0; i < size; i++)
    lines += text[i] == '\n';
  CHECK (line >= 1 && line <= lines);
  /* Only "user NAME given twice" quotes the input, and only a name. */
  if (!strstr (err.msg, " given twice")) {
    size_t run = 0;
    for (const char *p = err.msg; *p; p++) {
      run = is_hex (*p) ? run + 1 : 0;
      CHECK (run < 8);
    }
  }
  return 0;
}
