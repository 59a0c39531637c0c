/* NBD client against r3map's own NBD server, in one process: data round
 * trips, block status after zeroing, multi-conn, read-only exports, block
 * size constraints, TLS with client certificates, and a server that shuts
 * down under the client.  The first four run twice: with extended headers
 * (what the two agree on by default) and with extended-headers=off. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <r3map/backend.h>
#include <r3map/nbd.h>
#include <r3map/nbd_client.h>

#include "client-fake.h"
#include "testcerts.h"

struct rig {
  char dir[64];
  struct r3m_backend *store;
  struct r3m_nbd_server *srv;
  char uri[256];
};

/* A server exporting memory:SIZE (or file:DIR/img?size=SIZE when size
 * starts with "file:") as "disk" on a Unix socket. */
static void
rig_start (struct rig *g, const char *size,
           const struct r3m_nbd_server_options *so,
           const struct r3m_nbd_export_options *eo, bool tls)
{
  struct r3m_error err;
  snprintf (g->dir, sizeof g->dir, "/tmp/r3m-cs-XXXXXX");
  assert_non_null (mkdtemp (g->dir));
  char m[160];
  if (strncmp (size, "file:", 5) == 0)
    snprintf (m, sizeof m, "file:%s/img?size=%s", g->dir, size + 5);
  else
    snprintf (m, sizeof m, "memory:%s", size);
  assert_int_equal (r3m_backend_open (m, 0, &g->store, &err), 0);
  struct r3m_nbd_server_options o;
  r3m_nbd_server_options_init (&o);
  if (so)
    o = *so;
  if (r3m_nbd_server_new (&o, &g->srv, &err) < 0)
    fail_msg ("server: %s", err.msg);
  assert_int_equal (r3m_nbd_server_add_export (g->srv, "disk", g->store, eo,
                                               &err), 0);
  char l[160];
  snprintf (l, sizeof l, "nbd+unix:///?socket=%s/s", g->dir);
  if (r3m_nbd_server_listen (g->srv, l, &err) < 0
      || r3m_nbd_server_start (g->srv, &err) < 0)
    fail_msg ("listen: %s", err.msg);
  snprintf (g->uri, sizeof g->uri, "nbd%s+unix:///disk?socket=%s/s",
            tls ? "s" : "", g->dir);
}

static void
rig_stop (struct rig *g)
{
  r3m_nbd_server_free (g->srv);
  r3m_backend_close (g->store);
  char p[128];
  snprintf (p, sizeof p, "%s/s", g->dir);
  unlink (p);
  snprintf (p, sizeof p, "%s/img", g->dir);
  unlink (p);
  rmdir (g->dir);
}

static struct r3m_backend *
open_client (const char *uri)
{
  struct r3m_backend *b = NULL;
  struct r3m_error err;
  if (r3m_backend_open (uri, 0, &b, &err) < 0)
    fail_msg ("open %s: %s", uri, err.msg);
  return b;
}

/* Prestate of the runs without extended headers. */
static const char compact[] = "&extended-headers=off";
#define COMPACT(t) cmocka_unit_test_prestate (t, (void *) compact)

/* The client for g, in the header mode the test runs in. */
static struct r3m_backend *
open_mode (struct rig *g, void **state)
{
  const char *extra = *state ? *state : "";
  char uri[300];
  snprintf (uri, sizeof uri, "%s%s", g->uri, extra);
  struct r3m_backend *b = open_client (uri);
  struct r3m_nbd_client_info info;
  r3m_nbd_client_info (b, &info);
  assert_int_equal (info.extended_headers, extra[0] == '\0');
  return b;
}

static void
round_trips (void **state)
{
  struct rig g;
  rig_start (&g, "16M", NULL, NULL, false);
  struct r3m_backend *b = open_mode (&g, state);
  struct r3m_nbd_client_info info;
  r3m_nbd_client_info (b, &info);
  assert_int_equal (info.size, 16 << 20);
  assert_true (info.structured_replies);
  assert_true (info.block_status);
  assert_int_equal (info.connections, 4);       /* multi-conn advertised */

  unsigned seed = 1;
  unsigned char *w = malloc (3 << 20), *r = malloc (3 << 20);
  for (int i = 0; i < 40; i++) {
    size_t len = 1 + (size_t) rand_r (&seed) % (i % 8 ? 65536 : 3 << 20);
    uint64_t off = (uint64_t) rand_r (&seed) % ((16 << 20) - len);
    for (size_t k = 0; k < len; k++)
      w[k] = (unsigned char) rand_r (&seed);
    assert_int_equal (r3m_backend_pwrite (b, w, len, off, i % 3 ? 0
                                          : R3M_IO_FUA), 0);
    assert_int_equal (r3m_backend_pread (b, r, len, off), 0);
    assert_memory_equal (w, r, len);
    /* And the server's store has it. */
    assert_int_equal (r3m_backend_pread (g.store, r, len, off), 0);
    assert_memory_equal (w, r, len);
  }
  assert_int_equal (r3m_backend_flush (b), 0);
  free (w);
  free (r);
  r3m_backend_close (b);
  rig_stop (&g);
}

/* A sparse file behind the server: a zero that may trim punches a hole,
 * and the client sees it through base:allocation. */
static void
zero_and_block_status (void **state)
{
  struct rig g;
  rig_start (&g, "file:8M", NULL, NULL, false);
  struct r3m_backend *b = open_mode (&g, state);
  char *ones = malloc (8 << 20);
  memset (ones, 1, 8 << 20);
  assert_int_equal (r3m_backend_pwrite (b, ones, 8 << 20, 0, 0), 0);
  assert_int_equal (r3m_backend_zero (b, 2 << 20, 1 << 20, R3M_IO_MAY_TRIM),
                    0);
  struct r3m_extent e[8];
  size_t n;
  assert_int_equal (r3m_backend_extents (b, 0, 8 << 20, e, 8, &n), 0);
  assert_true (n >= 2);
  assert_int_equal (e[0].len, 1 << 20);
  assert_int_equal (e[0].flags, 0);
  assert_true (e[1].flags & R3M_EXTENT_ZERO);
  assert_int_equal (r3m_backend_pread (b, ones, 4096, 2 << 20), 0);
  for (int i = 0; i < 4096; i++)
    assert_int_equal (ones[i], 0);
  free (ones);
  r3m_backend_close (b);
  rig_stop (&g);
}

/* Ranges past 4 GiB (a sparse 8 GiB file): zeroing 5 GiB and asking about
 * it work whether the client sends one 64-bit request (extended headers)
 * or 1 GiB parts. */
static void
zero_beyond_4g (void **state)
{
  struct rig g;
  rig_start (&g, "file:8G", NULL, NULL, false);
  struct r3m_backend *b = open_mode (&g, state);
  const uint64_t gib = UINT64_C (1) << 30;
  char *ones = malloc (1 << 20);
  memset (ones, 1, 1 << 20);
  for (uint64_t off = 0; off < 8 * gib; off += gib)
    assert_int_equal (r3m_backend_pwrite (b, ones, 1 << 20, off, 0), 0);
  assert_int_equal (r3m_backend_zero (b, 5 * gib, gib, R3M_IO_MAY_TRIM), 0);
  struct r3m_extent e[8];
  size_t n;
  assert_int_equal (r3m_backend_extents (b, gib, 5 * gib, e, 8, &n), 0);
  assert_true (n >= 1);
  assert_true (e[0].flags & R3M_EXTENT_ZERO);
  uint64_t zero = 0;
  for (size_t i = 0; i < n && (e[i].flags & R3M_EXTENT_ZERO); i++)
    zero += e[i].len;
  assert_true (zero >= gib);    /* at least the first part's answer */
  for (uint64_t off = gib; off < 6 * gib; off += gib) {
    assert_int_equal (r3m_backend_pread (b, ones, 4096, off), 0);
    for (int i = 0; i < 4096; i++)
      assert_int_equal (ones[i], 0);
  }
  assert_int_equal (r3m_backend_pread (b, ones, 4096, 6 * gib), 0);
  assert_int_equal (ones[0], 1);
  free (ones);
  r3m_backend_close (b);
  rig_stop (&g);
}

static void
read_only_export (void **state)
{
  struct rig g;
  struct r3m_nbd_export_options eo = { .read_only = true };
  rig_start (&g, "1M", NULL, &eo, false);
  struct r3m_backend *b = open_mode (&g, state);
  assert_true (r3m_backend_get_info (b)->flags & R3M_BACKEND_READ_ONLY);
  char c = 0;
  assert_int_equal (r3m_backend_pwrite (b, &c, 1, 0, 0), -EPERM);
  assert_int_equal (r3m_backend_pread (b, &c, 1, 0), 0);
  r3m_backend_close (b);
  rig_stop (&g);
}

/* The server's block sizes reach the handle; unaligned I/O still works
 * (the handle's alignment adapter does the read-modify-write) and every
 * request on the wire is aligned (the server refuses others). */
static void
block_sizes (void **state)
{
  struct rig g;
  struct r3m_nbd_export_options eo = { .min_block = 4096,
                                       .max_payload = 65536,
                                       .no_multi_conn = true };
  rig_start (&g, "4M", NULL, &eo, false);
  struct r3m_backend *b = open_mode (&g, state);
  const struct r3m_backend_info *i = r3m_backend_get_info (b);
  assert_int_equal (i->align, 4096);
  assert_int_equal (i->max_io, 65536);
  struct r3m_nbd_client_info info;
  r3m_nbd_client_info (b, &info);
  assert_int_equal (info.connections, 1);
  char w[10000], r[10000];
  for (int k = 0; k < 10000; k++)
    w[k] = (char) (k * 13);
  assert_int_equal (r3m_backend_pwrite (b, w, 10000, 1234, 0), 0);
  assert_int_equal (r3m_backend_pread (b, r, 10000, 1234), 0);
  assert_memory_equal (w, r, 10000);
  char *big = malloc (1 << 20);
  assert_int_equal (r3m_backend_pread (b, big, 1 << 20, 4096), 0);
  free (big);
  struct r3m_nbd_server_stats st;
  r3m_nbd_server_stats (g.srv, &st);
  assert_int_equal (st.errors, 0);
  r3m_backend_close (b);
  rig_stop (&g);
}

static void
tls_with_client_certificate (void **state)
{
  char certs[64];
  snprintf (certs, sizeof certs, "/tmp/r3m-cs-certs-XXXXXX");
  assert_non_null (mkdtemp (certs));
  assert_int_equal (testcerts_make (certs), 0);
  char cert[128], key[128], ca[128];
  snprintf (cert, sizeof cert, "%s/server.pem", certs);
  snprintf (key, sizeof key, "%s/server-key.pem", certs);
  snprintf (ca, sizeof ca, "%s/ca.pem", certs);
  struct r3m_nbd_server_options so;
  r3m_nbd_server_options_init (&so);
  so.tls = R3M_NBD_TLS_REQUIRE;
  so.tls_cert = cert;
  so.tls_key = key;
  so.tls_ca = ca;                /* clients must show a certificate */
  struct rig g;
  rig_start (&g, "4M", &so, NULL, true);

  char uri[1024];
  snprintf (uri, sizeof uri, "%s&tls-hostname=localhost&tls-ca=%s"
            "&tls-cert=%s/client.pem&tls-key=%s/client-key.pem", g.uri, ca,
            certs, certs);
  struct r3m_backend *b = open_client (uri);
  char w[5000], r[5000];
  memset (w, 0x5c, sizeof w);
  assert_int_equal (r3m_backend_pwrite (b, w, sizeof w, 100, 0), 0);
  assert_int_equal (r3m_backend_pread (b, r, sizeof r, 100), 0);
  assert_memory_equal (w, r, sizeof w);
  r3m_backend_close (b);

  /* Without the client certificate: refused. */
  snprintf (uri, sizeof uri, "%s&tls-hostname=localhost&tls-ca=%s", g.uri,
            ca);
  struct r3m_error err;
  b = NULL;
  assert_true (r3m_backend_open (uri, 0, &b, &err) < 0);
  assert_null (b);
  /* The wrong CA: refused with a certificate message. */
  snprintf (uri, sizeof uri, "%s&tls-hostname=localhost&tls-ca=%s/other-ca.pem",
            g.uri, certs);
  assert_true (r3m_backend_open (uri, 0, &b, &err) < 0);
  assert_non_null (strstr (err.msg, "certificate"));
  rig_stop (&g);
  char cmd[128];
  snprintf (cmd, sizeof cmd, "rm -rf %s", certs);
  assert_int_equal (system (cmd), 0);
}

/* The server goes away with requests in flight: each completes once,
 * with an error; later calls fail at once. */
static void
server_shutdown_under_load (void **state)
{
  struct rig g;
  rig_start (&g, "64M", NULL, NULL, false);
  struct r3m_backend *b = open_client (g.uri);
  struct tracker t;
  tracker_init (&t);
  enum { N = 256 };
  static struct treq q[N];
  static char buf[N][65536];
  for (int i = 0; i < N; i++)
    tsubmit (b, &t, &q[i], R3M_IO_READ, buf[i], 65536,
             (uint64_t) i * 65536, 0);
  struct r3m_error err;
  r3m_nbd_server_shutdown (g.srv, 0, &err);
  twait (&t);
  int failed = 0;
  for (int i = 0; i < N; i++) {
    assert_int_equal (q[i].calls, 1);
    failed += q[i].result < 0;
  }
  (void) failed;               /* some may have finished before */
  assert_true (r3m_backend_pread (b, buf[0], 512, 0) < 0);
  assert_true (r3m_nbd_client_error (b, &err) < 0);
  r3m_backend_close (b);
  tracker_destroy (&t);
  rig_stop (&g);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (round_trips),
    COMPACT (round_trips),
    cmocka_unit_test (zero_and_block_status),
    COMPACT (zero_and_block_status),
    cmocka_unit_test (zero_beyond_4g),
    COMPACT (zero_beyond_4g),
    cmocka_unit_test (read_only_export),
    COMPACT (read_only_export),
    cmocka_unit_test (block_sizes),
    COMPACT (block_sizes),
    cmocka_unit_test (tls_with_client_certificate),
    cmocka_unit_test (server_shutdown_under_load),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
