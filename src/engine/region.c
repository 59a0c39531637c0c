/* Region lifetime (open, close, references), the gate, status and error
 * recording.  The design of the engine is described in engine.h and
 * docs/engine.md. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "util/error.h"
#include "util/time.h"

#define MAX_CHUNK (UINT32_C (1) << 30)

void
r3m_region_options_init (struct r3m_region_options *o)
{
  memset (o, 0, sizeof *o);
  o->chunk_size = 64 * 1024;
  o->pull_workers = 2;
  o->pull_window = 64;
  o->push_window = 16;
  o->push_interval_ms = 5000;
  o->fetch_retries = 2;
  o->close_timeout_ms = 30000;
  o->pull_request_size = 1024 * 1024;
}

void
eng_cond_init (pthread_cond_t *cv)
{
  pthread_condattr_t a;
  pthread_condattr_init (&a);
  pthread_condattr_setclock (&a, CLOCK_MONOTONIC);
  pthread_cond_init (cv, &a);
  pthread_condattr_destroy (&a);
}

void
eng_ref (struct r3m_region *r)
{
  atomic_fetch_add_explicit (&r->refs, 1, memory_order_relaxed);
}

static void
destroy (struct r3m_region *r)
{
  eng_puller_free (r);
  eng_pusher_free (r);
  if (r->stripe) {
    for (unsigned i = 0; i < ENG_STRIPES; i++) {
      pthread_cond_destroy (&r->stripe[i].cv);
      pthread_mutex_destroy (&r->stripe[i].mu);
    }
  }
  pthread_mutex_destroy (&r->pull.mu);
  pthread_cond_destroy (&r->pull.cv);
  pthread_mutex_destroy (&r->push.round_mu);
  pthread_mutex_destroy (&r->push.mu);
  pthread_cond_destroy (&r->push.cv);
  pthread_mutex_destroy (&r->gate_mu);
  pthread_cond_destroy (&r->gate_cv);
  pthread_mutex_destroy (&r->prog_mu);
  pthread_cond_destroy (&r->prog_cv);
  pthread_mutex_destroy (&r->err_mu);
  free (r->stripe);
  free (r->chunk);
  free ((void *) r->dirty_bits);
  free ((void *) r->track_bits);
  free ((void *) r->zero_bits);
  free (r);
}

void
eng_unref (struct r3m_region *r)
{
  if (atomic_fetch_sub_explicit (&r->refs, 1, memory_order_acq_rel) == 1)
    destroy (r);
}

/* The message is fmt, then the remote's own words for the failure (b set
 * and it has some: "server closed the connection") or else the errno's. */
static void fail_v (struct r3m_region *r, const struct r3m_backend *b,
                    int err, const char *fmt, va_list ap)
  __attribute__ ((format (printf, 4, 0)));

static void
fail_v (struct r3m_region *r, const struct r3m_backend *b, int err,
        const char *fmt, va_list ap)
{
  char msg[R3M_ERROR_MSG_MAX], why[R3M_ERROR_MSG_MAX], ebuf[128];
  int n = vsnprintf (msg, sizeof msg, fmt, ap);
  if (err < 0)
    err = -err;
  const char *reason = b && r3m_backend_why (b, why, sizeof why)
                       ? why : strerror_r (err, ebuf, sizeof ebuf);
  /* A long reason is cut at the buffer's end, which is fine for a
   * message (the result is tested only to say so to the compiler). */
  if (n >= 0 && (size_t) n < sizeof msg
      && snprintf (msg + n, sizeof msg - (size_t) n, ": %s", reason) < 0)
    msg[n] = '\0';
  atomic_fetch_add (&r->errors, 1);
  pthread_mutex_lock (&r->err_mu);
  r->last_error = err;
  memcpy (r->last_msg, msg, sizeof msg);
  pthread_mutex_unlock (&r->err_mu);
}

void
eng_fail (struct r3m_region *r, int err, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  fail_v (r, NULL, err, fmt, ap);
  va_end (ap);
}

void
eng_fail_remote (struct r3m_region *r, int err, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  fail_v (r, r->remote, err, fmt, ap);
  va_end (ap);
}

void
eng_progress_wake (struct r3m_region *r)
{
  pthread_mutex_lock (&r->prog_mu);
  pthread_cond_broadcast (&r->prog_cv);
  pthread_mutex_unlock (&r->prog_mu);
}

static int
check_options (struct r3m_backend *remote, struct r3m_backend *cache,
               const struct r3m_region_options *o, struct r3m_error *err)
{
  uint32_t cs = o->chunk_size;
  if (cs == 0 || (cs & (cs - 1)) != 0 || cs > MAX_CHUNK)
    return util_err (err, EINVAL,
                     "r3m_region_open: chunk size %u is not a power of two "
                     "up to 1 GiB", cs);
  if (cache && r3m_backend_size (cache) < r3m_backend_size (remote))
    return util_err (err, EINVAL,
                     "r3m_region_open: cache %s (%llu bytes) is smaller than "
                     "remote %s (%llu bytes)", r3m_backend_describe (cache),
                     (unsigned long long) r3m_backend_size (cache),
                     r3m_backend_describe (remote),
                     (unsigned long long) r3m_backend_size (remote));
  if (cache && (r3m_backend_get_info (cache)->flags & R3M_BACKEND_READ_ONLY))
    return util_err (err, EINVAL, "r3m_region_open: cache %s is read-only",
                     r3m_backend_describe (cache));
  return 0;
}

static int
alloc_tables (struct r3m_region *r)
{
  r->stripe = aligned_alloc (64, ENG_STRIPES * sizeof *r->stripe);
  r->nwords = (size_t) ((r->nchunks + 63) / 64);
  if (r->nwords == 0)
    r->nwords = 1;
  r->dirty_bits = calloc (r->nwords, sizeof *r->dirty_bits);
  r->track_bits = calloc (r->nwords, sizeof *r->track_bits);
  r->zero_bits = calloc (r->nwords, sizeof *r->zero_bits);
  if (r->cache && r->nchunks > 0)
    r->chunk = calloc ((size_t) r->nchunks, sizeof *r->chunk);
  if (!r->stripe || !r->dirty_bits || !r->track_bits || !r->zero_bits
      || (r->cache && r->nchunks > 0 && !r->chunk))
    return -ENOMEM;
  for (unsigned i = 0; i < ENG_STRIPES; i++) {
    pthread_mutex_init (&r->stripe[i].mu, NULL);
    eng_cond_init (&r->stripe[i].cv);
    r->stripe[i].waiters = 0;
  }
  return 0;
}

static struct r3m_region *
region_new (struct r3m_backend *remote, struct r3m_backend *cache,
            const struct r3m_region_options *o)
{
  struct r3m_region *r = calloc (1, sizeof *r);
  if (!r)
    return NULL;
  r->remote = remote;
  r->cache = cache;
  r->o = *o;
  r->size = r3m_backend_size (remote);
  r->cs = o->chunk_size;
  r->shift = (unsigned) __builtin_ctz (o->chunk_size);
  r->nchunks = (r->size + r->cs - 1) >> r->shift;
  r->read_only = (r3m_backend_get_info (remote)->flags
                  & R3M_BACKEND_READ_ONLY) != 0;
  atomic_init (&r->refs, 1);
  atomic_init (&r->gate_open, !o->gated);
  pthread_mutex_init (&r->pull.mu, NULL);
  eng_cond_init (&r->pull.cv);
  pthread_mutex_init (&r->push.round_mu, NULL);
  pthread_mutex_init (&r->push.mu, NULL);
  eng_cond_init (&r->push.cv);
  pthread_mutex_init (&r->gate_mu, NULL);
  eng_cond_init (&r->gate_cv);
  pthread_mutex_init (&r->prog_mu, NULL);
  eng_cond_init (&r->prog_cv);
  pthread_mutex_init (&r->err_mu, NULL);
  return r;
}

int
r3m_region_open (struct r3m_backend *remote, struct r3m_backend *cache,
                 const struct r3m_region_options *opts,
                 struct r3m_region **out, struct r3m_error *err)
{
  struct r3m_region_options defaults;
  if (!remote || !out)
    return util_err (err, EINVAL, "r3m_region_open: remote and out are "
                     "required");
  if (!opts) {
    r3m_region_options_init (&defaults);
    opts = &defaults;
  }
  int e = check_options (remote, cache, opts, err);
  if (e < 0)
    return e;

  struct r3m_region *r = region_new (remote, cache, opts);
  if (!r)
    return util_errno (err, ENOMEM, "r3m_region_open");
  if (alloc_tables (r) < 0) {
    /* Stripes may be half made: destroy only what is complete. */
    if (r->stripe) {
      free (r->stripe);
      r->stripe = NULL;
    }
    destroy (r);
    return util_errno (err, ENOMEM, "r3m_region_open");
  }
  e = eng_pusher_start (r);
  if (e == 0 && cache)
    e = eng_puller_start (r);
  if (e < 0) {
    (void) r3m_region_close (r, NULL);
    return util_errno (err, -e, "r3m_region_open: starting threads");
  }
  if (cache && opts->pull_first) {
    e = r3m_region_wait_pulled (r, -1);
    if (e < 0) {
      struct r3m_region_status st;
      r3m_region_status (r, &st);
      (void) r3m_region_close (r, NULL);
      return util_err (err, -e, "r3m_region_open: pulling first: %s",
                       st.last_error_msg[0] ? st.last_error_msg
                                            : strerror (-e));
    }
  }
  *out = r;
  return 0;
}

/* Join t by deadline; detach it if it does not end by then. */
static bool
join_by (pthread_t t, uint64_t deadline_ns)
{
  uint64_t now = util_now_ns ();
  struct timespec ts;
  clock_gettime (CLOCK_REALTIME, &ts);  /* timedjoin takes a REALTIME time */
  uint64_t left = deadline_ns > now ? deadline_ns - now : 0;
  ts.tv_sec += (time_t) (left / 1000000000u);
  ts.tv_nsec += (long) (left % 1000000000u);
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  if (pthread_timedjoin_np (t, NULL, &ts) == 0)
    return true;
  pthread_detach (t);
  return false;
}

int
r3m_region_close (struct r3m_region *r, struct r3m_error *err)
{
  if (!r)
    return 0;
  atomic_store (&r->closing, true);
  pthread_mutex_lock (&r->gate_mu);
  pthread_cond_broadcast (&r->gate_cv);
  pthread_mutex_unlock (&r->gate_mu);
  eng_progress_wake (r);

  uint64_t deadline = util_now_ns ()
                      + (uint64_t) r->o.close_timeout_ms * 1000000u;
  eng_puller_stop (r, deadline);
  eng_pusher_stop (r);

  int rc = 0;
  if (r->push.thread_started) {
    if (join_by (r->push.thread, deadline)) {
      pthread_mutex_lock (&r->push.mu);
      rc = r->push.final_result;
      pthread_mutex_unlock (&r->push.mu);
    } else {
      rc = -ETIMEDOUT;
      eng_fail (r, rc, "close: the final push and flush did not finish");
    }
  }
  bool pull_stuck = false;
  for (unsigned i = 0; i < r->pull.nthreads; i++)
    if (!join_by (r->pull.threads[i], deadline))
      pull_stuck = true;
  if (pull_stuck)
    eng_fail (r, -ETIMEDOUT, "close: background fetches did not finish");
  /* A background fetch still on its way into the cache's own memory would
   * write into the cache after close returned: say so, so that the owner
   * does not close the backends under it. */
  if (eng_puller_landing (r)) {
    eng_fail (r, -ETIMEDOUT, "close: background fetches into the cache's "
              "memory did not finish");
    if (rc == 0)
      rc = -ETIMEDOUT;
  }
  atomic_store (&r->abandoned, true);

  if (rc < 0) {
    pthread_mutex_lock (&r->err_mu);
    util_err (err, -rc, "%s", r->last_msg);
    pthread_mutex_unlock (&r->err_mu);
  }
  eng_unref (r);
  return rc;
}

uint64_t
r3m_region_size (const struct r3m_region *r)
{
  return r->size;
}

uint32_t
r3m_region_chunk_size (const struct r3m_region *r)
{
  return r->cs;
}

int
eng_gate (struct r3m_region *r)
{
  if (atomic_load_explicit (&r->gate_open, memory_order_acquire))
    return 0;
  pthread_mutex_lock (&r->gate_mu);
  while (!atomic_load (&r->gate_open) && !atomic_load (&r->closing))
    pthread_cond_wait (&r->gate_cv, &r->gate_mu);
  pthread_mutex_unlock (&r->gate_mu);
  return atomic_load (&r->gate_open) ? 0 : -ESHUTDOWN;
}

void
r3m_region_gate_open (struct r3m_region *r)
{
  pthread_mutex_lock (&r->gate_mu);
  atomic_store_explicit (&r->gate_open, true, memory_order_release);
  pthread_cond_broadcast (&r->gate_cv);
  pthread_mutex_unlock (&r->gate_mu);
}

int
r3m_region_wait_pulled (struct r3m_region *r, int timeout_ms)
{
  if (!r->cache)
    return 0;
  struct timespec ts = util_deadline_ms (timeout_ms > 0
                                         ? (uint64_t) timeout_ms : 0);
  int rc = 0;
  pthread_mutex_lock (&r->prog_mu);
  for (;;) {
    if (atomic_load (&r->n_local) == r->nchunks)
      break;
    int pe = atomic_load (&r->pull_error);
    if (pe) {
      rc = -pe;
      break;
    }
    if (atomic_load (&r->closing)) {
      rc = -ESHUTDOWN;
      break;
    }
    if (timeout_ms == 0) {
      rc = -ETIMEDOUT;
      break;
    }
    if (timeout_ms < 0)
      pthread_cond_wait (&r->prog_cv, &r->prog_mu);
    else if (pthread_cond_timedwait (&r->prog_cv, &r->prog_mu, &ts)
             == ETIMEDOUT)
      timeout_ms = 0;           /* check once more, then time out */
  }
  pthread_mutex_unlock (&r->prog_mu);
  return rc;
}

void
r3m_region_status (struct r3m_region *r, struct r3m_region_status *st)
{
  memset (st, 0, sizeof *st);
  st->size = r->size;
  st->chunk_size = r->cs;
  st->chunks = r->nchunks;
  st->chunks_local = r->cache ? atomic_load (&r->n_local) : 0;
  st->chunks_dirty = atomic_load (&r->n_dirty);
  st->fetches_demand = atomic_load (&r->fetch_demand);
  st->fetches_background = atomic_load (&r->fetch_bg);
  st->bytes_fetched = atomic_load (&r->bytes_fetched);
  st->pushes = atomic_load (&r->pushes);
  st->bytes_pushed = atomic_load (&r->bytes_pushed);
  st->errors = atomic_load (&r->errors);
  st->pull_done = !r->cache || st->chunks_local == r->nchunks;
  pthread_mutex_lock (&r->err_mu);
  st->last_error = r->last_error;
  memcpy (st->last_error_msg, r->last_msg, sizeof st->last_error_msg);
  pthread_mutex_unlock (&r->err_mu);
}
