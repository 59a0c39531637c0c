/* The fault-injecting test backend (see fault.h). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fault.h"

#define NOPS (R3M_IO_TRIM + 1)
#define MAX_RULES 32

struct rule_state {
  struct tfault_rule rule;
  unsigned hits;              /* matching calls affected so far */
};

struct tfault {
  struct r3m_backend *inner;
  unsigned shift;
  uint64_t nchunks;

  pthread_mutex_t mu;         /* guards rules, stalled, release_gen */
  pthread_cond_t cv;          /* release */
  struct rule_state rules[MAX_RULES];
  unsigned nrules;
  unsigned stalled;
  uint64_t release_gen;
  bool released;              /* stall rules no longer stall */

  _Atomic uint64_t calls[NOPS];
  atomic_uint active;         /* calls entered and not yet returned */
  _Atomic uint32_t *reads;    /* [nchunks] */
  _Atomic uint32_t *writes;
};

static bool
overlaps (const struct tfault_rule *r, enum r3m_io_op op, size_t len,
          uint64_t off)
{
  if (r->len == 0 || op == R3M_IO_FLUSH)
    return true;
  return off < r->off + r->len && r->off < off + len;
}

/* Block until released, or for ms milliseconds (0: until released). */
static void
stall_locked (struct tfault *f, unsigned ms)
{
  uint64_t gen = f->release_gen;
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (long) (ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  f->stalled++;
  while (f->release_gen == gen) {
    if (ms == 0)
      pthread_cond_wait (&f->cv, &f->mu);
    else if (pthread_cond_timedwait (&f->cv, &f->mu, &ts) == ETIMEDOUT)
      break;
  }
  f->stalled--;
}

/* What a rule does to one call, decided when the call arrives. */
struct verdict {
  int error;                  /* -errno or 0 */
  bool stall;
  unsigned stall_ms;
  bool after;
};

static struct verdict
judge (struct tfault *f, enum r3m_io_op op, size_t len, uint64_t off)
{
  struct verdict v = { 0 };
  uint64_t n = atomic_fetch_add (&f->calls[op], 1) + 1;
  pthread_mutex_lock (&f->mu);
  for (unsigned i = 0; i < f->nrules; i++) {
    struct rule_state *rs = &f->rules[i];
    const struct tfault_rule *r = &rs->rule;
    if ((r->ops && !(r->ops & TF_OP (op)))
        || (r->first_call && n < r->first_call)
        || (r->times && rs->hits >= r->times) || !overlaps (r, op, len, off))
      continue;
    rs->hits++;
    v = (struct verdict) { r->error ? -r->error : 0,
                           r->stall && !f->released, r->stall_ms, r->after };
    break;
  }
  pthread_mutex_unlock (&f->mu);
  return v;
}

/* Apply the stall part of a verdict now if its timing is `after`. */
static void
maybe_stall (struct tfault *f, const struct verdict *v, bool after)
{
  if (!v->stall || v->after != after)
    return;
  pthread_mutex_lock (&f->mu);
  if (!f->released)
    stall_locked (f, v->stall_ms);
  pthread_mutex_unlock (&f->mu);
}

/* Run one call under its verdict: stall before, fail or run, stall after. */
#define RUN(f, op, len, off, call)                                      \
  do {                                                                  \
    atomic_fetch_add (&(f)->active, 1);                                 \
    struct verdict v_ = judge ((f), (op), (len), (off));                \
    maybe_stall ((f), &v_, false);                                      \
    int e_ = v_.error && !v_.after ? v_.error : (call);                 \
    if (v_.error && v_.after)                                           \
      e_ = v_.error;                                                    \
    maybe_stall ((f), &v_, true);                                       \
    atomic_fetch_sub (&(f)->active, 1);                                 \
    return e_;                                                          \
  } while (0)

static void
count_chunks (struct tfault *f, _Atomic uint32_t *arr, size_t len,
              uint64_t off)
{
  if (len == 0)
    return;
  uint64_t first = off >> f->shift, last = (off + len - 1) >> f->shift;
  for (uint64_t c = first; c <= last && c < f->nchunks; c++)
    atomic_fetch_add (&arr[c], 1);
}

static int
tf_pread (void *self, void *buf, size_t len, uint64_t off)
{
  struct tfault *f = self;
  count_chunks (f, f->reads, len, off);
  RUN (f, R3M_IO_READ, len, off, r3m_backend_pread (f->inner, buf, len, off));
}

static int
tf_pwrite (void *self, const void *buf, size_t len, uint64_t off,
           unsigned flags)
{
  struct tfault *f = self;
  count_chunks (f, f->writes, len, off);
  RUN (f, R3M_IO_WRITE, len, off,
       r3m_backend_pwrite (f->inner, buf, len, off, flags));
}

static int
tf_flush (void *self)
{
  struct tfault *f = self;
  RUN (f, R3M_IO_FLUSH, 0, 0, r3m_backend_flush (f->inner));
}

static int
tf_zero (void *self, size_t len, uint64_t off, unsigned flags)
{
  struct tfault *f = self;
  count_chunks (f, f->writes, len, off);
  RUN (f, R3M_IO_ZERO, len, off, r3m_backend_zero (f->inner, len, off, flags));
}

static int
tf_trim (void *self, size_t len, uint64_t off)
{
  struct tfault *f = self;
  RUN (f, R3M_IO_TRIM, len, off, r3m_backend_trim (f->inner, len, off));
}

static int
tf_extents (void *self, uint64_t off, uint64_t len, struct r3m_extent *ext,
            size_t max, size_t *n)
{
  struct tfault *f = self;
  return r3m_backend_extents (f->inner, off, len, ext, max, n);
}

static void
tf_close (void *self)
{
  struct tfault *f = self;
  pthread_cond_destroy (&f->cv);
  pthread_mutex_destroy (&f->mu);
  free ((void *) f->reads);
  free ((void *) f->writes);
  free (f);
}

static const struct r3m_backend_ops tf_ops = {
  .name = "fault",
  .pread = tf_pread,
  .pwrite = tf_pwrite,
  .flush = tf_flush,
  .zero = tf_zero,
  .trim = tf_trim,
  .extents = tf_extents,
  .close = tf_close,
};

int
tfault_new (struct r3m_backend *inner, uint32_t chunk_size,
            unsigned async_threads, struct r3m_backend **out,
            struct tfault **fp)
{
  if (chunk_size == 0 || (chunk_size & (chunk_size - 1)))
    return -EINVAL;
  struct tfault *f = calloc (1, sizeof *f);
  if (!f)
    return -ENOMEM;
  f->inner = inner;
  f->shift = (unsigned) __builtin_ctz (chunk_size);
  f->nchunks = (r3m_backend_size (inner) + chunk_size - 1) >> f->shift;
  size_t n = f->nchunks ? (size_t) f->nchunks : 1;
  f->reads = calloc (n, sizeof *f->reads);
  f->writes = calloc (n, sizeof *f->writes);
  pthread_mutex_init (&f->mu, NULL);
  pthread_condattr_t a;
  pthread_condattr_init (&a);
  pthread_condattr_setclock (&a, CLOCK_MONOTONIC);
  pthread_cond_init (&f->cv, &a);
  pthread_condattr_destroy (&a);
  if (!f->reads || !f->writes) {
    tf_close (f);
    return -ENOMEM;
  }
  struct r3m_backend_info info = *r3m_backend_get_info (inner);
  info.async_threads = async_threads;
  int e = r3m_backend_new (&tf_ops, f, &info, "fault", out, NULL);
  if (e < 0) {
    tf_close (f);
    return e;
  }
  *fp = f;
  return 0;
}

int
tfault_add (struct tfault *f, const struct tfault_rule *rule)
{
  int e = 0;
  pthread_mutex_lock (&f->mu);
  if (f->nrules == MAX_RULES)
    e = -ENOMEM;
  else
    f->rules[f->nrules++] = (struct rule_state) { *rule, 0 };
  if (rule->stall)
    f->released = false;
  pthread_mutex_unlock (&f->mu);
  return e;
}

void
tfault_clear (struct tfault *f)
{
  pthread_mutex_lock (&f->mu);
  f->nrules = 0;
  pthread_mutex_unlock (&f->mu);
}

void
tfault_release (struct tfault *f)
{
  pthread_mutex_lock (&f->mu);
  f->release_gen++;
  f->released = true;
  pthread_cond_broadcast (&f->cv);
  pthread_mutex_unlock (&f->mu);
}

unsigned
tfault_stalled (struct tfault *f)
{
  pthread_mutex_lock (&f->mu);
  unsigned n = f->stalled;
  pthread_mutex_unlock (&f->mu);
  return n;
}

bool
tfault_wait_stalled (struct tfault *f, unsigned n, unsigned timeout_ms)
{
  for (unsigned t = 0; t <= timeout_ms; t++) {
    if (tfault_stalled (f) >= n)
      return true;
    usleep (1000);
  }
  return false;
}

bool
tfault_wait_idle (struct tfault *f, unsigned timeout_ms)
{
  for (unsigned t = 0; t <= timeout_ms; t++) {
    if (atomic_load (&f->active) == 0)
      return true;
    usleep (1000);
  }
  return false;
}

uint64_t
tfault_calls (struct tfault *f, enum r3m_io_op op)
{
  return atomic_load (&f->calls[op]);
}

uint32_t
tfault_chunk_reads (struct tfault *f, uint64_t c)
{
  return c < f->nchunks ? atomic_load (&f->reads[c]) : 0;
}

uint32_t
tfault_chunk_writes (struct tfault *f, uint64_t c)
{
  return c < f->nchunks ? atomic_load (&f->writes[c]) : 0;
}

static uint64_t
distinct (struct tfault *f, _Atomic uint32_t *arr)
{
  uint64_t n = 0;
  for (uint64_t c = 0; c < f->nchunks; c++)
    n += atomic_load (&arr[c]) > 0;
  return n;
}

uint64_t
tfault_chunks_read (struct tfault *f)
{
  return distinct (f, f->reads);
}

uint64_t
tfault_chunks_written (struct tfault *f)
{
  return distinct (f, f->writes);
}

void
tfault_reset_counts (struct tfault *f)
{
  for (int op = 0; op < NOPS; op++)
    atomic_store (&f->calls[op], 0);
  for (uint64_t c = 0; c < f->nchunks; c++) {
    atomic_store (&f->reads[c], 0);
    atomic_store (&f->writes[c], 0);
  }
}
