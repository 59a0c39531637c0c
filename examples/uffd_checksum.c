/* uffd_checksum: map a remote region and checksum it while it streams in.
 *
 *   uffd_checksum URI [CHUNK]
 *
 * URI is any backend r3map opens: nbd+unix:///?socket=/tmp/s or
 * nbd://127.0.0.1:10809/ for a region served by `r3map serve`, or
 * memory:64M / file:/path for a local look.  The program maps the whole
 * region read-only in spirit (nothing is written), then reads it front to
 * back as plain memory: the first touch of each chunk waits for it, the
 * region's puller keeps fetching ahead, and every few hundred megabytes it
 * prints how far the reader is and how much is already here.  At the end it
 * prints an XXH3-64 of the bytes, comparable with `r3map copy --verify`
 * or any XXH3 of the same data. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <xxhash.h>

#include <r3map/r3map.h>

int
main (int argc, char **argv)
{
  if (argc < 2 || argc > 3) {
    fprintf (stderr, "usage: %s URI [CHUNK_BYTES]\n", argv[0]);
    return 2;
  }
  struct r3m_error err;
  struct r3m_backend *remote;
  if (r3m_backend_open (argv[1], R3M_OPEN_READ_ONLY, &remote, &err) < 0) {
    fprintf (stderr, "%s\n", err.msg);
    return 1;
  }
  struct r3m_uffd_options o;
  r3m_uffd_options_init (&o);
  if (argc == 3)
    o.region.chunk_size = (uint32_t) strtoul (argv[2], NULL, 0);
  o.track = R3M_UFFD_TRACK_NONE;      /* we only read */
  struct r3m_uffd *u;
  if (r3m_uffd_map (remote, &o, &u, &err) < 0) {
    fprintf (stderr, "%s\n", err.msg);
    r3m_backend_close (remote);
    return 1;
  }

  /* Plain memory from here on: a pointer and a length. */
  const unsigned char *p = r3m_uffd_addr (u);
  uint64_t size = r3m_uffd_size (u), step = 256ull << 20;
  XXH3_state_t *h = XXH3_createState ();
  XXH3_64bits_reset (h);
  for (uint64_t off = 0; off < size; off += step) {
    size_t n = size - off < step ? (size_t) (size - off) : (size_t) step;
    XXH3_64bits_update (h, p + off, n);
    struct r3m_uffd_status st;
    r3m_uffd_status (u, &st);
    fprintf (stderr, "read %" PRIu64 " MiB; %" PRIu64 " of %" PRIu64
             " chunks here, %" PRIu64 " faults waited\n",
             (off + n) >> 20, st.region.chunks_local, st.region.chunks,
             st.faults);
  }
  printf ("%016llx  %s\n", (unsigned long long) XXH3_64bits_digest (h),
          argv[1]);
  XXH3_freeState (h);

  struct r3m_uffd_status st;
  r3m_uffd_status (u, &st);
  int rc = 0;
  if (st.chunks_failed > 0) {
    /* Only reachable if the reading thread survived a SIGBUS, which it
     * does not here; kept for programs that catch it. */
    fprintf (stderr, "%s\n", st.last_error_msg);
    rc = 1;
  }
  if (r3m_uffd_unmap (u, &err) < 0) {
    fprintf (stderr, "%s\n", err.msg);
    rc = 1;
  }
  r3m_backend_close (remote);
  return rc;
}
