/* Comparing two backends by hash (see verify.h).
 *
 * The range is cut into windows of at most WINDOW_CHUNKS chunks.  For each
 * window one thread per side reads it in pieces, feeds the bytes to that
 * side's running hash of the whole range and to a per-chunk hash, and
 * stores each chunk's XXH3-64 in its own array; when both are done the
 * arrays are compared.  The sides never share anything but the window
 * bounds and a stop flag, so each is read independently of the other;
 * windows bound the memory (two arrays and the read buffers) and let a
 * difference stop the work early.
 *
 * How a side reads depends on its backend (see side_plan):
 *  - local (file, dir, memory, pattern): one synchronous read at a time,
 *    LOCAL_IO bytes, hashed while it is still in the CPU cache;
 *  - remote (R3M_BACKEND_REMOTE, e.g. NBD): a ring of asynchronous reads
 *    through r3m_backend_submit, REMOTE_INFLIGHT bytes in flight, so a
 *    round trip is paid once per ring rather than once per read.  Reads
 *    complete in any order; the side hashes the ring's oldest read once it
 *    is done, so the hashes see the bytes in order.  The ring runs ahead
 *    across window boundaries (reads for the next window are already in
 *    flight while the windows are compared), and every read in flight is
 *    waited for before its buffer is freed, whatever stopped the work. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "util/error.h"

#include "verify.h"

/* Reads of 128 KiB keep each side's buffer in the CPU cache between the
 * kernel's copy into it and the hashing: comparing a 1 GiB tmpfs file with
 * itself took 0.8 s of CPU with 128 KiB reads and 1.8 s with 1 MiB reads
 * (64 KiB and 32 KiB were no better than 128 KiB). */
#define LOCAL_IO (128u << 10)

/* A remote side: 32 reads of 1 MiB.  32 MiB in flight carry 800 MiB/s over
 * a 40 ms round trip; 1 MiB per read is what the copy's engine sends too
 * (its --request-size), so a server that copes with the copy copes with
 * this.  A backend with a smaller max_io gets smaller reads, more of them
 * (at most MAX_SLOTS). */
#define REMOTE_IO (1u << 20)
#define REMOTE_INFLIGHT (32u << 20)
#define MAX_SLOTS 1024u

#define WINDOW_CHUNKS 4096

struct side;

/* One read of a remote side's ring. */
struct slot {
  struct r3m_io io;
  struct side *s;
  int result;                /* when done */
  bool done;                 /* guarded by s->lock */
};

struct side {
  struct r3m_backend *b;
  XXH3_state_t *whole;       /* hash of everything read so far */
  XXH3_state_t *piece;       /* hash of the current chunk */
  uint64_t *hashes;          /* one per chunk of the window */
  uint32_t chunk;
  uint64_t window;           /* bytes per window; no read crosses a
                                window boundary */
  uint64_t len;              /* the whole range */
  uint64_t off, wlen;        /* the current window */
  atomic_bool *stop;         /* set by the side that fails */
  int result;                /* 0 or -errno of the failed read */
  uint64_t fail_off;

  size_t io_size;            /* bytes per read */
  unsigned char *bufs;       /* nslots * io_size */
  bool remote;
  /* Remote sides only: the ring.  head, count and next_off belong to the
   * thread hashing the side; a slot's done and result are written by the
   * backend's completion under lock. */
  struct slot *slots;
  unsigned nslots;
  unsigned head;             /* oldest read, the next to hash */
  unsigned count;            /* reads submitted and not yet hashed */
  uint64_t next_off;         /* where the next read starts */
  bool refused;              /* the backend refused a read: submit no more */
  pthread_mutex_t lock;
  pthread_cond_t completed;
  bool sync_init;            /* lock and completed exist */
};

/* The length of the read starting at off: at most io_size, never past the
 * end of the range nor across a window boundary. */
static size_t
piece_len (const struct side *s, uint64_t off)
{
  uint64_t n = s->io_size;
  uint64_t to_window = s->window - off % s->window;
  if (n > to_window)
    n = to_window;
  if (n > s->len - off)
    n = s->len - off;
  return (size_t) n;
}

static void
read_done (struct r3m_io *io, int result)
{
  struct slot *sl = io->user;
  struct side *s = sl->s;
  /* Nothing of the side is touched after the unlock: the hashing thread
   * may free it as soon as it sees the last read done. */
  pthread_mutex_lock (&s->lock);
  sl->result = result;
  sl->done = true;
  pthread_cond_signal (&s->completed);
  pthread_mutex_unlock (&s->lock);
}

/* Fill the ring.  A read the backend refuses counts as done with its
 * error, so that it is reported in order, at its offset, like a read that
 * fails later. */
static void
submit_reads (struct side *s)
{
  while (!s->refused && s->count < s->nslots && s->next_off < s->len) {
    struct slot *sl = &s->slots[(s->head + s->count) % s->nslots];
    size_t n = piece_len (s, s->next_off);
    sl->io = (struct r3m_io) {
      .op = R3M_IO_READ,
      .buf = s->bufs + (size_t) (sl - s->slots) * s->io_size,
      .len = n,
      .off = s->next_off,
      .done = read_done,
      .user = sl,
    };
    sl->done = false;
    s->count++;
    s->next_off += n;
    int r = r3m_backend_submit (s->b, &sl->io);
    if (r < 0) {
      pthread_mutex_lock (&s->lock);
      sl->result = r;
      sl->done = true;
      pthread_mutex_unlock (&s->lock);
      s->refused = true;     /* nothing after it is needed */
    }
  }
}

/* The next piece of the side in order: its bytes, length and offset.
 * 0 or -errno of the read. */
static int
next_piece (struct side *s, uint64_t pos, const unsigned char **buf,
            size_t *n)
{
  if (!s->remote) {
    *n = piece_len (s, pos);
    *buf = s->bufs;
    return r3m_backend_pread (s->b, s->bufs, *n, pos);
  }
  submit_reads (s);
  struct slot *sl = &s->slots[s->head];
  pthread_mutex_lock (&s->lock);
  while (!sl->done)
    pthread_cond_wait (&s->completed, &s->lock);
  pthread_mutex_unlock (&s->lock);
  *n = sl->io.len;
  *buf = sl->io.buf;
  return sl->result;
}

/* The piece from next_piece is hashed: its slot may take the next read. */
static void
piece_hashed (struct side *s)
{
  if (s->remote) {
    s->head = (s->head + 1) % s->nslots;
    s->count--;
  }
}

static void *
hash_window (void *arg)
{
  struct side *s = arg;
  uint64_t end = s->off + s->wlen, pos = s->off;
  size_t idx = 0;
  uint64_t in_chunk = 0;     /* bytes of the current chunk hashed so far */
  s->result = 0;
  XXH3_64bits_reset (s->piece);
  while (pos < end) {
    if (atomic_load (s->stop))
      return NULL;           /* the other side failed */
    const unsigned char *buf;
    size_t n;
    int r = next_piece (s, pos, &buf, &n);
    if (r < 0) {
      s->result = r;
      s->fail_off = pos;
      atomic_store (s->stop, true);
      return NULL;
    }
    XXH3_64bits_update (s->whole, buf, n);
    /* Split the piece at chunk boundaries. */
    for (size_t k = 0; k < n;) {
      size_t m = n - k;
      if (m > s->chunk - in_chunk)
        m = (size_t) (s->chunk - in_chunk);
      XXH3_64bits_update (s->piece, buf + k, m);
      k += m;
      in_chunk += m;
      if (in_chunk == s->chunk || pos + k == end) {
        s->hashes[idx++] = XXH3_64bits_digest (s->piece);
        XXH3_64bits_reset (s->piece);
        in_chunk = 0;
      }
    }
    pos += n;
    piece_hashed (s);
  }
  return NULL;
}

/* How the side reads its backend: the read size and, for a remote one,
 * the ring size.  Reads are whole multiples of the backend's alignment
 * and within its max_io, so the handle passes them on unchanged. */
static void
side_plan (struct side *s)
{
  const struct r3m_backend_info *info = r3m_backend_get_info (s->b);
  s->remote = info->flags & R3M_BACKEND_REMOTE;
  if (!s->remote) {
    s->io_size = LOCAL_IO;
    return;
  }
  size_t io = REMOTE_IO;
  if (info->max_io != 0 && info->max_io < io)
    io = info->max_io;
  uint32_t align = info->align ? info->align : 1;
  io = io >= align ? io - io % align : align;
  s->io_size = io;
  uint64_t want = REMOTE_INFLIGHT / io;
  uint64_t need = (s->len + io - 1) / io;  /* no more than the range */
  if (want > need)
    want = need;
  if (want > MAX_SLOTS)
    want = MAX_SLOTS;
  s->nslots = want > 0 ? (unsigned) want : 1;
}

static int
side_init (struct side *s, struct r3m_backend *b, uint64_t len,
           uint32_t chunk, atomic_bool *stop)
{
  memset (s, 0, sizeof *s);
  s->b = b;
  s->chunk = chunk;
  s->window = (uint64_t) chunk * WINDOW_CHUNKS;
  s->len = len;
  s->stop = stop;
  side_plan (s);
  if (s->remote) {
    if (pthread_mutex_init (&s->lock, NULL) != 0)
      return -ENOMEM;
    if (pthread_cond_init (&s->completed, NULL) != 0) {
      pthread_mutex_destroy (&s->lock);
      return -ENOMEM;
    }
    s->sync_init = true;
    s->slots = calloc (s->nslots, sizeof *s->slots);
    if (!s->slots)
      return -ENOMEM;
    for (unsigned i = 0; i < s->nslots; i++)
      s->slots[i].s = s;
  }
  size_t nbufs = s->remote ? s->nslots : 1;
  s->whole = XXH3_createState ();
  s->piece = XXH3_createState ();
  s->bufs = malloc (nbufs * s->io_size);
  s->hashes = calloc (WINDOW_CHUNKS, sizeof *s->hashes);
  if (!s->whole || !s->piece || !s->bufs || !s->hashes)
    return -ENOMEM;
  XXH3_64bits_reset (s->whole);
  return 0;
}

/* Wait for every read still in flight: the comparison may stop (a
 * difference, a failed read on either side) with the ring full. */
static void
side_drain (struct side *s)
{
  if (!s->remote || !s->sync_init)
    return;
  pthread_mutex_lock (&s->lock);
  for (unsigned i = 0; i < s->count; i++) {
    struct slot *sl = &s->slots[(s->head + i) % s->nslots];
    while (!sl->done)
      pthread_cond_wait (&s->completed, &s->lock);
  }
  pthread_mutex_unlock (&s->lock);
  s->count = 0;
}

static void
side_free (struct side *s)
{
  side_drain (s);
  if (s->sync_init) {
    pthread_cond_destroy (&s->completed);
    pthread_mutex_destroy (&s->lock);
  }
  XXH3_freeState (s->whole);
  XXH3_freeState (s->piece);
  free (s->slots);
  free (s->bufs);
  free (s->hashes);
}

/* Hash the window on both sides at once: b on a new thread, a on this one
 * (or both here if no thread can be had). */
static void
hash_both (struct side *a, struct side *b)
{
  pthread_t t;
  bool threaded = pthread_create (&t, NULL, hash_window, b) == 0;
  hash_window (a);
  if (threaded)
    pthread_join (t, NULL);
  else
    hash_window (b);
}

static int
compare_windows (struct side *sa, struct side *sb, uint64_t len,
                 uint32_t chunk, struct cli_verify_result *res,
                 struct r3m_error *err)
{
  uint64_t window = (uint64_t) chunk * WINDOW_CHUNKS;
  for (uint64_t off = 0; off < len; off += window) {
    uint64_t n = len - off < window ? len - off : window;
    sa->off = sb->off = off;
    sa->wlen = sb->wlen = n;
    hash_both (sa, sb);
    struct side *failed = sa->result < 0 ? sa : sb->result < 0 ? sb : NULL;
    if (failed)
      return util_errno (err, -failed->result, "reading %s at offset %llu",
                         r3m_backend_describe (failed->b),
                         (unsigned long long) failed->fail_off);
    size_t chunks = (size_t) ((n + chunk - 1) / chunk);
    for (size_t i = 0; i < chunks; i++)
      if (sa->hashes[i] != sb->hashes[i]) {
        res->first_diff = off + (uint64_t) i * chunk;
        return 0;
      }
  }
  res->hash_a = XXH3_64bits_digest (sa->whole);
  res->hash_b = XXH3_64bits_digest (sb->whole);
  return 0;
}

int
cli_verify (struct r3m_backend *a, struct r3m_backend *b, uint64_t len,
            uint32_t chunk, struct cli_verify_result *res,
            struct r3m_error *err)
{
  res->first_diff = CLI_VERIFY_SAME;
  res->hash_a = res->hash_b = 0;
  if (chunk == 0)
    return util_err (err, EINVAL, "verify: chunk size 0");
  if (r3m_backend_size (a) < len || r3m_backend_size (b) < len)
    return util_err (err, EINVAL, "verify: %s or %s is smaller than %llu "
                     "bytes", r3m_backend_describe (a),
                     r3m_backend_describe (b), (unsigned long long) len);

  atomic_bool stop = false;
  struct side sa, sb;
  int r = side_init (&sa, a, len, chunk, &stop);
  if (r == 0)
    r = side_init (&sb, b, len, chunk, &stop);
  else
    memset (&sb, 0, sizeof sb);
  if (r < 0)
    r = util_errno (err, -r, "verify");
  else
    r = compare_windows (&sa, &sb, len, chunk, res, err);
  side_free (&sa);
  side_free (&sb);
  return r;
}
