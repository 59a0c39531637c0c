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
  r3m_region_options_init (&o->region);
  o->demand_workers = 2;
  o->fetch_timeout_ms = 30000;
  o->scan_interval_ms = 1000;
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

bool
uffd_fail_chunk (struct r3m_uffd *u, uint64_t c, int code, const char *why)
{
  uint8_t s = CH_MISSING;
  if (!atomic_compare_exchange_strong (&u->state[c], &s, CH_FAILED))
    return false;
  /* Report before poisoning: whoever the SIGBUS reaches may look. */
  uint64_t off = uffd_chunk_off (u, c);
  atomic_fetch_add (&u->chunks_failed, 1);
  uffd_record_error (u, code, "chunk %llu at offset %llu: %s",
                     (unsigned long long) c, (unsigned long long) off, why);
  int r = uffd_map_poison (&u->map, off, uffd_chunk_maplen (u, c), 0);
  if (r < 0 && r != -ENOENT)
    uffd_record_error (u, -r, "chunk %llu: cannot poison",
                       (unsigned long long) c);
  return true;
}

static int
check_options (const struct r3m_uffd_options *o, size_t page,
               struct r3m_error *err)
{
  uint32_t cs = o->region.chunk_size;
  if (cs < page || (cs & (cs - 1)) != 0)
    return util_err (err, EINVAL, "userfaultfd: chunk size %u is not a "
                     "power of two of at least a page (%zu)", cs, page);
  if (o->demand_workers == 0)
    return util_err (err, EINVAL, "userfaultfd: at least one demand worker "
                     "is needed");
  return 0;
}

static void
destroy (struct r3m_uffd *u)
{
  r3m_backend_close (u->cache);
  free (u->state);
  free (u->wanted);
  free (u->trimming);
  free (u->installing);
  free (u->zeros);
  free (u->q.demand);
  free (u->q.marks);
  free (u->demand_threads);
  free (u->gone);
  pthread_mutex_destroy (&u->q.lock);
  pthread_cond_destroy (&u->q.demand_cv);
  pthread_cond_destroy (&u->q.mark_cv);
  pthread_cond_destroy (&u->q.marked_cv);
  pthread_mutex_destroy (&u->scan_lock);
  for (unsigned i = 0; i < UFFD_WP_LOCKS; i++)
    pthread_mutex_destroy (&u->wp_lock[i]);
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
  u->chunk = o->region.chunk_size;
  u->chunk_shift = (unsigned) __builtin_ctz (u->chunk);
  u->nchunks = (u->size + u->chunk - 1) >> u->chunk_shift;
  u->stop_fd = -1;
  u->map.fd = u->map.pagemap_fd = -1;
  pthread_mutex_init (&u->q.lock, NULL);
  pthread_cond_init (&u->q.demand_cv, NULL);
  pthread_cond_init (&u->q.marked_cv, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init (&ca);
  pthread_condattr_setclock (&ca, CLOCK_MONOTONIC);
  pthread_cond_init (&u->q.mark_cv, &ca);
  pthread_condattr_destroy (&ca);
  pthread_mutex_init (&u->scan_lock, NULL);
  for (unsigned i = 0; i < UFFD_WP_LOCKS; i++)
    pthread_mutex_init (&u->wp_lock[i], NULL);
  pthread_mutex_init (&u->err_lock, NULL);
  u->state = calloc (u->nchunks, 1);
  u->wanted = calloc (u->nchunks, 1);
  u->trimming = calloc (u->nchunks, 1);
  u->installing = calloc (u->nchunks, 1);
  u->zeros = calloc (1, u->chunk);
  u->q.demand = malloc (u->nchunks * sizeof *u->q.demand);
  return u;
}

static enum uffd_track
track_wanted (enum r3m_uffd_track t)
{
  return t == R3M_UFFD_TRACK_NONE ? UFFD_TRACK_NONE
         : t == R3M_UFFD_TRACK_SYNC ? UFFD_TRACK_SYNC : UFFD_TRACK_ASYNC;
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

/* Stop our threads; then close the region (its final push reads the
 * mapping, so the fault thread is still there to fill discarded pages). */
static int
shut_down (struct r3m_uffd *u, struct r3m_error *err)
{
  uffd_demand_stop (u);
  int r = 0;
  if (u->region)
    r = uffd_collect (u, err);
  uffd_marker_stop (u);
  if (u->region) {
    int e = r3m_region_close (u->region, r < 0 ? NULL : err);
    if (r == 0)
      r = e;
    u->region = NULL;
  }
  release_mapping (u);
  return r;
}

static int
start (struct r3m_uffd *u, struct r3m_error *err)
{
  int r = uffd_cache_new (u, err);
  if (r < 0)
    return r;
  if ((r = uffd_fault_start (u, err)) < 0)
    return r;
  struct r3m_region_options ro = u->opts.region;
  ro.before_push = uffd_before_push;
  ro.before_push_user = u;
  if ((r = r3m_region_open (u->remote, u->cache, &ro, &u->region, err)) < 0)
    return r;
  if ((r = uffd_marker_start (u, err)) < 0)
    return r;
  return uffd_demand_start (u, err);
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
  if (!u || !u->state || !u->wanted || !u->trimming || !u->installing
      || !u->zeros
      || !u->q.demand) {
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
  if ((r = start (u, err)) < 0) {
    shut_down (u, NULL);
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

struct r3m_region *
r3m_uffd_region (struct r3m_uffd *u)
{
  return u->region;
}

int
r3m_uffd_flush (struct r3m_uffd *u, struct r3m_error *err)
{
  int r = uffd_collect (u, err);
  if (r < 0)
    return r;
  r = r3m_region_flush (u->region);
  if (r < 0) {
    struct r3m_region_status st;
    r3m_region_status (u->region, &st);
    return util_err (err, -r, "userfaultfd: flush: %s", st.last_error_msg);
  }
  return 0;
}

int
r3m_uffd_wait_pulled (struct r3m_uffd *u, int timeout_ms)
{
  return r3m_region_wait_pulled (u->region, timeout_ms);
}

void
r3m_uffd_status (struct r3m_uffd *u, struct r3m_uffd_status *st)
{
  memset (st, 0, sizeof *st);
  r3m_region_status (u->region, &st->region);
  st->faults = atomic_load (&u->faults);
  st->wp_faults = atomic_load (&u->wp_faults);
  st->chunks_failed = atomic_load (&u->chunks_failed);
  st->errors = atomic_load (&u->errors);
  st->track = u->map.track == UFFD_TRACK_ASYNC ? R3M_UFFD_TRACK_AUTO
              : u->map.track == UFFD_TRACK_SYNC ? R3M_UFFD_TRACK_SYNC
              : R3M_UFFD_TRACK_NONE;
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
      uffd_fail_chunk (u, c, ECANCELED, "unmapped before it was fetched");
  int r = shut_down (u, err);
  destroy (u);
  return r;
}
