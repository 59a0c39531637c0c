/* The userfaultfd frontend's public calls: map, flush, status, unmap.
 * The design is in internal.h; the kernel half in map.c. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frontend/uffd/internal.h"
#include "util/error.h"

void
r3m_uffd_options_init (struct r3m_uffd_options *o)
{
  memset (o, 0, sizeof *o);
  o->chunk_size = 64 * 1024;
  o->pull_workers = 2;
  o->background_pull = true;
  o->readahead = 16;
  o->fetch_retries = 2;
  o->fetch_timeout_ms = 30000;
  o->track = R3M_UFFD_TRACK_AUTO;
}

void
uffd_record_error (struct r3m_uffd *u, int code, const char *fmt, ...)
{
  atomic_fetch_add (&u->errors, 1);
  pthread_mutex_lock (&u->err_lock);
  u->last_error = code < 0 ? -code : code;
  va_list ap;
  va_start (ap, fmt);
  int n = vsnprintf (u->last_error_msg, sizeof u->last_error_msg, fmt, ap);
  va_end (ap);
  if (n >= 0 && (size_t) n < sizeof u->last_error_msg) {
    char buf[128];
    snprintf (u->last_error_msg + n, sizeof u->last_error_msg - (size_t) n,
              ": %s", strerror_r (u->last_error, buf, sizeof buf));
  }
  pthread_mutex_unlock (&u->err_lock);
}

static int
check_options (const struct r3m_uffd_options *o, size_t page,
               struct r3m_error *err)
{
  if (o->chunk_size < page || (o->chunk_size & (o->chunk_size - 1)) != 0)
    return util_err (err, EINVAL, "userfaultfd: chunk size %u is not a "
                     "power of two of at least a page (%zu)",
                     o->chunk_size, page);
  if (o->pull_workers == 0)
    return util_err (err, EINVAL, "userfaultfd: at least one fetch worker "
                     "is needed");
  return 0;
}

/* Unmap with the fault thread still reading (munmap waits for it to read
 * the unmap event), then stop it and close the descriptor. */
static void
release_mapping (struct r3m_uffd *u)
{
  pthread_mutex_lock (&u->map.lock);
  size_t n = u->ngone;
  uint64_t *keep = n ? malloc (n * 2 * sizeof *keep) : NULL;
  if (keep)
    memcpy (keep, u->gone, n * 2 * sizeof *keep);
  pthread_mutex_unlock (&u->map.lock);
  if (n == 0 || keep)
    uffd_map_unmap (&u->map, keep, n);
  free (keep);
  uffd_fault_stop (u);
  uffd_map_close (&u->map);
}

static void
destroy (struct r3m_uffd *u)
{
  free (u->state);
  free (u->wanted);
  free (u->dirty);
  free (u->demand);
  free (u->order);
  free (u->workers);
  free (u->gone);
  for (unsigned i = 0; i < UFFD_WP_LOCKS; i++)
    pthread_mutex_destroy (&u->wp_lock[i]);
  pthread_mutex_destroy (&u->lock);
  pthread_cond_destroy (&u->work);
  pthread_cond_destroy (&u->progress);
  pthread_mutex_destroy (&u->push_lock);
  pthread_mutex_destroy (&u->err_lock);
  free (u);
}

static struct r3m_uffd *
alloc_handle (struct r3m_backend *remote, const struct r3m_uffd_options *o)
{
  struct r3m_uffd *u = calloc (1, sizeof *u);
  if (!u)
    return NULL;
  u->remote = remote;
  u->opts = *o;
  u->size = r3m_backend_size (remote);
  u->chunk = o->chunk_size;
  u->chunk_shift = (unsigned) __builtin_ctz (o->chunk_size);
  u->nchunks = (u->size + u->chunk - 1) >> u->chunk_shift;
  u->stop_fd = -1;
  u->map.fd = u->map.pagemap_fd = -1;
  for (unsigned i = 0; i < UFFD_WP_LOCKS; i++)
    pthread_mutex_init (&u->wp_lock[i], NULL);
  pthread_mutex_init (&u->lock, NULL);
  pthread_cond_init (&u->work, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init (&ca);
  pthread_condattr_setclock (&ca, CLOCK_MONOTONIC);
  pthread_cond_init (&u->progress, &ca);
  pthread_condattr_destroy (&ca);
  pthread_mutex_init (&u->push_lock, NULL);
  pthread_mutex_init (&u->err_lock, NULL);
  u->state = calloc (u->nchunks, 1);
  u->wanted = calloc (u->nchunks, 1);
  u->dirty = calloc (u->nchunks, 1);
  return u;
}

static enum uffd_track
track_wanted (enum r3m_uffd_track t)
{
  return t == R3M_UFFD_TRACK_NONE ? UFFD_TRACK_NONE
         : t == R3M_UFFD_TRACK_SYNC ? UFFD_TRACK_SYNC : UFFD_TRACK_ASYNC;
}

int
r3m_uffd_map (struct r3m_backend *remote,
              const struct r3m_uffd_options *opts, struct r3m_uffd **out,
              struct r3m_error *err)
{
  struct r3m_uffd_options o;
  if (opts)
    o = *opts;
  else
    r3m_uffd_options_init (&o);
  if (!remote || !out)
    return util_err (err, EINVAL, "r3m_uffd_map: remote and out are needed");
  int r = check_options (&o, (size_t) sysconf (_SC_PAGESIZE), err);
  if (r < 0)
    return r;
  if (r3m_backend_size (remote) == 0)
    return util_err (err, EINVAL, "r3m_uffd_map: %s is empty",
                     r3m_backend_describe (remote));
  if (r3m_backend_size (remote) > SIZE_MAX / 2)
    return util_err (err, EFBIG, "r3m_uffd_map: %s does not fit in the "
                     "address space", r3m_backend_describe (remote));

  struct r3m_uffd *u = alloc_handle (remote, &o);
  if (!u || !u->state || !u->wanted || !u->dirty) {
    if (u)
      destroy (u);
    return util_errno (err, ENOMEM, "r3m_uffd_map");
  }
  r = uffd_map_create ((size_t) u->size, track_wanted (o.track), &u->map,
                       err);
  if (r < 0) {
    destroy (u);              /* the mapping is already released */
    return r;
  }
  if ((r = uffd_fault_start (u, err)) < 0
      || (r = uffd_pull_start (u, err)) < 0) {
    uffd_pull_stop (u);
    release_mapping (u);
    destroy (u);
    return r;
  }
  *out = u;
  return 0;
}

void *
r3m_uffd_addr (const struct r3m_uffd *u)
{
  return (void *) atomic_load (&((struct r3m_uffd *) u)->map.base);
}

uint64_t
r3m_uffd_size (const struct r3m_uffd *u)
{
  return u->size;
}

int
r3m_uffd_flush (struct r3m_uffd *u, struct r3m_error *err)
{
  return uffd_push (u, err);
}

int
r3m_uffd_wait_pulled (struct r3m_uffd *u, int timeout_ms)
{
  return uffd_pull_wait (u, timeout_ms);
}

void
r3m_uffd_status (struct r3m_uffd *u, struct r3m_uffd_status *st)
{
  memset (st, 0, sizeof *st);
  st->size = u->size;
  st->chunk_size = u->chunk;
  st->chunks = u->nchunks;
  st->chunks_local = atomic_load (&u->chunks_local);
  for (uint64_t c = 0; c < u->nchunks; c++)
    st->chunks_dirty += atomic_load (&u->dirty[c]);
  st->chunks_failed = atomic_load (&u->chunks_failed);
  st->faults = atomic_load (&u->faults);
  st->wp_faults = atomic_load (&u->wp_faults);
  st->fetches_demand = atomic_load (&u->fetches_demand);
  st->fetches_background = atomic_load (&u->fetches_background);
  st->bytes_fetched = atomic_load (&u->bytes_fetched);
  st->pushes = atomic_load (&u->pushes);
  st->bytes_pushed = atomic_load (&u->bytes_pushed);
  st->errors = atomic_load (&u->errors);
  st->track = u->map.track == UFFD_TRACK_ASYNC ? R3M_UFFD_TRACK_AUTO
              : u->map.track == UFFD_TRACK_SYNC ? R3M_UFFD_TRACK_SYNC
              : R3M_UFFD_TRACK_NONE;
  st->pull_done = st->chunks_local >= u->nchunks;
  pthread_mutex_lock (&u->err_lock);
  st->last_error = u->last_error;
  memcpy (st->last_error_msg, u->last_error_msg, sizeof st->last_error_msg);
  pthread_mutex_unlock (&u->err_lock);
}

int
r3m_uffd_unmap (struct r3m_uffd *u, struct r3m_error *err)
{
  if (!u)
    return 0;
  /* From now on a fault on a missing chunk gets SIGBUS instead of a
   * fetch, and so does every thread already waiting for one, even while
   * a stalled fetch keeps us from stopping its worker. */
  atomic_store (&u->closing, true);
  for (uint64_t c = 0; c < u->nchunks; c++)
    if (atomic_load (&u->wanted[c]))
      uffd_pull_fail (u, c, ECANCELED, "unmapped before it was fetched");
  uffd_pull_stop (u);
  /* The fault thread stays until the mapping is gone: discarded pages that
   * the final push reads are filled with zeros by it. */
  int r = uffd_push (u, err);
  release_mapping (u);
  destroy (u);
  return r;
}
