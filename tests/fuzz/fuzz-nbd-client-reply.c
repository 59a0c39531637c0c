/* libFuzzer harness: the NBD client's handshake and reply parser.
 *
 * The fuzz input is everything a server sends.  The client negotiates on
 * an in-memory transport (nbd_conn_new_custom: reads come from the input,
 * writes are discarded), submits a fixed set of requests (reads, a write,
 * flush, zero, trim, block status), then runs its reply reader inline
 * until the input ends or the client rejects it.  Afterwards every
 * request's done callback must have run exactly once; ASan and UBSan
 * catch the rest.  Cookies are deterministic (gen 1, slots 0, 1, ...), so
 * the seeds in corpus/nbd-client/ answer the requests properly and the
 * fuzzer mutates from real sessions (tests/fuzz/nbd-client-seeds.py makes
 * them).
 *
 * Extended headers: the client asks for them only when the server's first
 * option reply (right after the 18-byte greeting) names
 * NBD_OPT_EXTENDED_HEADERS, so seeds from before the extension still
 * negotiate as they did, and one mutated word switches a session over.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nbd/client.h"

struct input {
  const uint8_t *p;
  size_t left;
};

static ssize_t
in_read (void *user, void *buf, size_t len)
{
  struct input *in = user;
  if (in->left == 0)
    return 0;
  size_t n = len < in->left ? len : in->left;
  memcpy (buf, in->p, n);
  in->p += n;
  in->left -= n;
  return (ssize_t) n;
}

static ssize_t
in_writev (void *user, const struct iovec *iov, int iovcnt)
{
  size_t n = 0;
  for (int i = 0; i < iovcnt; i++)
    n += iov[i].iov_len;
  return n ? (ssize_t) n : 1;
}

static const struct nbd_conn_io in_io = { .read = in_read,
                                          .writev = in_writev };

#define NREQ 7
#define HELLO_SIZE 18

/* Does the first option reply name EXTENDED_HEADERS?  (The reply header
 * is the magic, then the option.) */
static bool
wants_extended (const uint8_t *data, size_t size)
{
  return size >= HELLO_SIZE + 12
         && nbd_get64 (data + HELLO_SIZE) == NBD_OPT_REPLY_MAGIC
         && nbd_get32 (data + HELLO_SIZE + 8) == NBD_OPT_EXTENDED_HEADERS;
}

static int calls[NREQ];

static void
done (struct r3m_io *io, int result)
{
  calls[(uintptr_t) io->user]++;
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct input in = { data, size };
  struct nbd_conn *s;
  if (nbd_conn_new_custom (&in_io, &in, &s) < 0)
    abort ();
  struct nbd_cli_opts o;
  if (nbd_cli_opts_parse ("nbd+unix:///?socket=/fuzz", 0, &o, NULL) < 0)
    abort ();
  o.connect_timeout_ms = 0;
  o.extended_headers = wants_extended (data, size);
  struct nbd_cli_export ex;
  struct nbd_cli_conn *c = NULL;
  if (nbd_cli_handshake (s, &o, NULL, &ex, NULL) < 0
      || nbd_cli_conn_new (s, &ex, o.what, 8, 0, &c, NULL) < 0) {
    if (!c)
      nbd_conn_close (s);
    nbd_cli_opts_free (&o);
    return 0;
  }

  static char rbuf[2][65536], wbuf[512];
  struct r3m_extent ext[16];
  struct nbd_cli_status st = { .ext = ext, .max = 16 };
  struct r3m_io io[NREQ] = {
    { .op = R3M_IO_READ, .buf = rbuf[0], .len = 4096, .off = 0 },
    { .op = R3M_IO_READ, .buf = rbuf[1], .len = 65536, .off = 4096 },
    { .op = R3M_IO_WRITE, .buf = wbuf, .len = 512, .off = 0 },
    { .op = R3M_IO_FLUSH },
    { .op = R3M_IO_ZERO, .len = 8192, .off = 0 },
    { .op = R3M_IO_TRIM, .len = 4096, .off = 8192 },
    { .op = (enum r3m_io_op) NBD_CLI_OP_STATUS, .len = 65536, .off = 0 },
  };
  NBD_CLI_STATUS (&io[6]) = &st;
  memset (calls, 0, sizeof calls);
  for (uintptr_t i = 0; i < NREQ; i++) {
    io[i].done = done;
    io[i].user = (void *) i;
    if (nbd_cli_conn_submit (c, &io[i]) < 0)
      calls[i] = 1;           /* refused: done is not called */
  }
  nbd_cli_reader_run (c);
  nbd_cli_conn_free (c);
  nbd_cli_opts_free (&o);
  for (int i = 0; i < NREQ; i++)
    if (calls[i] != 1) {
      fprintf (stderr, "request %d: done called %d times\n", i, calls[i]);
      abort ();
    }
  return 0;
}
