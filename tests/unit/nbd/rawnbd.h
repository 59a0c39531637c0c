/* A raw NBD client for server tests: it sends exactly the bytes a test
 * asks for, including malformed ones, and reads replies field by field.
 * Every call asserts (cmocka) on I/O errors, and reads time out after a
 * few seconds, so a server that fails to answer fails the test instead of
 * hanging it. */
#ifndef R3M_TEST_RAWNBD_H
#define R3M_TEST_RAWNBD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <r3map/nbd.h>

struct raw {
  int fd;
};

/* Connect to srv over a socketpair (r3m_nbd_server_serve_fd). */
void raw_connect (struct r3m_nbd_server *srv, struct raw *c);
/* Connect to a Unix socket path. */
void raw_connect_unix (const char *path, struct raw *c);
void raw_close (struct raw *c);

void raw_send (struct raw *c, const void *buf, size_t len);
void raw_recv (struct raw *c, void *buf, size_t len);
/* True when the server closed the connection (reads end of stream, or the
 * connection was reset) within the timeout. */
bool raw_closed (struct raw *c);

/* Read the hello (asserting its magic and flags) and send client flags. */
void raw_hello (struct raw *c, uint32_t cflags);

void raw_opt (struct raw *c, uint32_t opt, const void *data, uint32_t len);
/* Read one option reply; data (up to cap bytes) and its length. */
void raw_opt_reply (struct raw *c, uint32_t expect_opt, uint32_t *type,
                    void *data, uint32_t cap, uint32_t *len);
/* Send opt with no data and expect one reply of type want. */
void raw_opt_expect (struct raw *c, uint32_t opt, uint32_t want);

/* Build INFO/GO data into buf; returns its length. */
uint32_t raw_info_data (unsigned char *buf, const char *name,
                        const uint16_t *reqs, uint16_t nreq);
/* Build LIST/SET_META_CONTEXT data. */
uint32_t raw_meta_data (unsigned char *buf, const char *name,
                        const char *const *queries, uint32_t nq);

/* Hello, optionally STRUCTURED_REPLY and SET_META_CONTEXT (queries), then
 * GO on name, reading replies up to the ACK.  Returns the export's size
 * and flags. */
void raw_go (struct raw *c, const char *name, bool structured,
             const char *const *meta, uint32_t nmeta, uint64_t *size,
             uint16_t *eflags);

/* The same with NBD_OPT_EXTENDED_HEADERS instead of STRUCTURED_REPLY. */
void raw_go_ext (struct raw *c, const char *name, const char *const *meta,
                 uint32_t nmeta, uint64_t *size, uint16_t *eflags);

/* Encode a compact request header into h (NBD_REQUEST_SIZE bytes), for
 * tests that send several requests, or a header apart from its payload. */
void raw_put_request (unsigned char *h, uint16_t flags, uint16_t type,
                      uint64_t cookie, uint64_t off, uint32_t len);
void raw_request (struct raw *c, uint16_t flags, uint16_t type,
                  uint64_t cookie, uint64_t off, uint32_t len,
                  const void *payload);
/* Read a simple reply header. */
void raw_simple (struct raw *c, uint32_t *error, uint64_t *cookie);
/* Read a structured chunk: header fields and up to cap payload bytes (the
 * rest is asserted to fit). */
void raw_chunk (struct raw *c, uint16_t *flags, uint16_t *type,
                uint64_t *cookie, void *payload, uint32_t cap,
                uint32_t *len);

/* Extended headers: a request (the payload, plen bytes, is sent as is:
 * len need not match it) and a reply chunk. */
void raw_ext_request (struct raw *c, uint16_t flags, uint16_t type,
                      uint64_t cookie, uint64_t off, uint64_t len,
                      const void *payload, size_t plen);
void raw_ext_chunk (struct raw *c, uint16_t *flags, uint16_t *type,
                    uint64_t *cookie, uint64_t *off, void *payload,
                    uint32_t cap, uint64_t *len);

#endif
