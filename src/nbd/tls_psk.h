/* TLS pre-shared key files, in the format of GnuTLS's psktool (what libnbd
 * and nbdkit read): one "username:hexkey" per line.
 *
 *   alice:8c1a0f...          (even number of hex digits)
 *
 * Besides psktool's lines we accept blank lines and lines starting with
 * '#' (comments), and ignore trailing white space (a file edited on
 * Windows).  Everything else is an error naming the line: no ':', an empty
 * or over-long user name, a name with control characters, a key that is
 * not hex, of odd length, shorter than 16 bytes or longer than 256, and a
 * name given twice.  Messages never contain key material.
 *
 * Keys live in memory that is wiped when the set is freed. */
#ifndef R3M_NBD_TLS_PSK_H
#define R3M_NBD_TLS_PSK_H

#include <stddef.h>

#include <r3map/error.h>

/* A user name is a TLS PSK identity; OpenSSL's TLS 1.2 callbacks take at
 * most 256 bytes with the NUL, so longer names could not work there. */
#define NBD_PSK_USER_MAX 255
/* 128 bits at least: a shorter secret is guessable offline from one
 * recorded handshake.  At most 256 bytes: what OpenSSL 1.1.1 stores as a
 * TLS 1.3 session's key (3.x takes 512).  psktool's default is 32. */
#define NBD_PSK_KEY_MIN 16
#define NBD_PSK_KEY_MAX 256
/* A key file is small; a bigger one is a mistake (a wrong path). */
#define NBD_PSK_FILE_MAX (1 << 20)

struct nbd_psk_entry {
  char *user;
  unsigned char key[NBD_PSK_KEY_MAX];
  size_t key_len;
};

struct nbd_psk_keys {
  struct nbd_psk_entry *v;
  size_t n;
};

/* Parse text[0..len) (need not be NUL-terminated); messages start with
 * `what` (the file name) and the line number.  On failure *out is empty.
 * 0 or -EINVAL (-ENOMEM). */
int nbd_psk_parse (const char *text, size_t len, const char *what,
                   struct nbd_psk_keys *out, struct r3m_error *err);

/* Read and parse the file at path.  A file without any key is an error
 * too: it would refuse everyone and is surely not what was meant. */
int nbd_psk_load (const char *path, struct nbd_psk_keys *out,
                  struct r3m_error *err);

/* The entry for user (user_len bytes, not NUL-terminated), or NULL. */
const struct nbd_psk_entry *nbd_psk_find (const struct nbd_psk_keys *k,
                                          const char *user, size_t user_len);

/* Wipe the keys and free.  Leaves k empty; an empty k is a no-op. */
void nbd_psk_keys_free (struct nbd_psk_keys *k);

#endif
