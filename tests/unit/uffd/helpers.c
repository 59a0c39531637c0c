#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend/backends.h"
#include "helpers.h"
#include "util/time.h"

#define MAXOFF_PAGES (1u << 20)

struct faulty {
  struct r3m_backend *inner;
  pthread_mutex_t lock;      /* guards everything but the counters */
  pthread_cond_t cond;
  uint64_t fail_lo, fail_hi;
  int fail_code;
  int fail_write_code;
  uint64_t stall_lo, stall_hi;
  bool stall;
  unsigned stalled;
  _Atomic uint64_t reads, writes, flushes;
  _Atomic uint32_t *reads_page;   /* per 4 KiB page */
  _Atomic uint8_t *written_page;
  uint64_t pages;
};

static bool
overlaps (uint64_t off, size_t len, uint64_t lo, uint64_t hi)
{
  return off < hi && off + len > lo;
}

static int
f_pread (void *self, void *buf, size_t len, uint64_t off)
{
  struct faulty *f = self;
  atomic_fetch_add (&f->reads, 1);
  for (uint64_t p = off >> 12; p <= (off + len - 1) >> 12 && p < f->pages;
       p++)
    atomic_fetch_add (&f->reads_page[p], 1);
  pthread_mutex_lock (&f->lock);
  if (f->stall && overlaps (off, len, f->stall_lo, f->stall_hi)) {
    f->stalled++;
    pthread_cond_broadcast (&f->cond);
    while (f->stall)
      pthread_cond_wait (&f->cond, &f->lock);
    f->stalled--;
  }
  int code = overlaps (off, len, f->fail_lo, f->fail_hi) ? f->fail_code : 0;
  pthread_mutex_unlock (&f->lock);
  if (code)
    return -code;
  return r3m_backend_pread (f->inner, buf, len, off);
}

static int
f_pwrite (void *self, const void *buf, size_t len, uint64_t off,
          unsigned flags)
{
  struct faulty *f = self;
  pthread_mutex_lock (&f->lock);
  int code = f->fail_write_code;
  pthread_mutex_unlock (&f->lock);
  if (code)
    return -code;
  atomic_fetch_add (&f->writes, 1);
  for (uint64_t p = off >> 12; p <= (off + len - 1) >> 12 && p < f->pages;
       p++)
    atomic_store (&f->written_page[p], 1);
  return r3m_backend_pwrite (f->inner, buf, len, off, flags);
}

static int
f_flush (void *self)
{
  struct faulty *f = self;
  atomic_fetch_add (&f->flushes, 1);
  return r3m_backend_flush (f->inner);
}

static void
f_close (void *self)
{
  struct faulty *f = self;
  r3m_backend_close (f->inner);
  free ((void *) f->reads_page);
  free ((void *) f->written_page);
  pthread_mutex_destroy (&f->lock);
  pthread_cond_destroy (&f->cond);
  free (f);
}

static const struct r3m_backend_ops faulty_ops = {
  .name = "faulty",
  .pread = f_pread,
  .pwrite = f_pwrite,
  .flush = f_flush,
  .close = f_close,
};

struct r3m_backend *
faulty_new (struct r3m_backend *inner, struct faulty **out)
{
  struct faulty *f = calloc (1, sizeof *f);
  if (!f)
    abort ();
  f->inner = inner;
  f->pages = (r3m_backend_size (inner) + 4095) >> 12;
  f->reads_page = calloc (f->pages, sizeof *f->reads_page);
  f->written_page = calloc (f->pages, 1);
  if (!f->reads_page || !f->written_page)
    abort ();
  pthread_mutex_init (&f->lock, NULL);
  pthread_cond_init (&f->cond, NULL);
  struct r3m_backend_info info = *r3m_backend_get_info (inner);
  info.async_threads = 0;
  struct r3m_backend *b;
  if (r3m_backend_new (&faulty_ops, f, &info, "faulty", &b, NULL) < 0)
    abort ();
  *out = f;
  return b;
}

void
faulty_fail_reads (struct faulty *f, uint64_t lo, uint64_t hi, int code)
{
  pthread_mutex_lock (&f->lock);
  f->fail_lo = lo;
  f->fail_hi = hi;
  f->fail_code = code;
  pthread_mutex_unlock (&f->lock);
}

void
faulty_fail_writes (struct faulty *f, int code)
{
  pthread_mutex_lock (&f->lock);
  f->fail_write_code = code;
  pthread_mutex_unlock (&f->lock);
}

void
faulty_stall_reads (struct faulty *f, uint64_t lo, uint64_t hi)
{
  pthread_mutex_lock (&f->lock);
  f->stall_lo = lo;
  f->stall_hi = hi;
  f->stall = true;
  pthread_mutex_unlock (&f->lock);
}

void
faulty_release (struct faulty *f)
{
  pthread_mutex_lock (&f->lock);
  f->stall = false;
  pthread_cond_broadcast (&f->cond);
  pthread_mutex_unlock (&f->lock);
}

bool
faulty_wait_stalled (struct faulty *f, unsigned n, int timeout_ms)
{
  uint64_t end = util_now_ns () + (uint64_t) timeout_ms * 1000000u;
  pthread_mutex_lock (&f->lock);
  bool ok;
  while (!(ok = f->stalled >= n) && util_now_ns () < end) {
    pthread_mutex_unlock (&f->lock);
    struct timespec ts = { 0, 1000000 };
    nanosleep (&ts, NULL);
    pthread_mutex_lock (&f->lock);
  }
  pthread_mutex_unlock (&f->lock);
  return ok;
}

uint64_t faulty_reads (struct faulty *f) { return atomic_load (&f->reads); }
uint64_t faulty_writes (struct faulty *f) { return atomic_load (&f->writes); }
uint64_t faulty_flushes (struct faulty *f) { return atomic_load (&f->flushes); }

uint64_t
faulty_reads_at (struct faulty *f, uint64_t off)
{
  return atomic_load (&f->reads_page[off >> 12]);
}

bool
faulty_written_at (struct faulty *f, uint64_t off)
{
  return atomic_load (&f->written_page[off >> 12]);
}

struct r3m_backend *
pattern_backend (uint64_t size)
{
  struct r3m_backend *b;
  if (be_memory_new (size, 0, "memory", &b, NULL) < 0)
    abort ();
  unsigned char buf[65536];
  for (uint64_t off = 0; off < size; off += sizeof buf) {
    size_t n = size - off < sizeof buf ? (size_t) (size - off) : sizeof buf;
    for (size_t i = 0; i < n; i++)
      buf[i] = pattern_byte (off + i);
    if (r3m_backend_pwrite (b, buf, n, off, 0) < 0)
      abort ();
  }
  return b;
}

static _Thread_local sigjmp_buf *catch_jb;
static _Thread_local void *catch_addr;
static _Thread_local volatile int catch_sig;

static void
on_fault (int sig, siginfo_t *si, void *ctx)
{
  (void) ctx;
  if (!catch_jb) {
    signal (sig, SIG_DFL);
    raise (sig);
    return;
  }
  catch_sig = sig;
  catch_addr = si->si_addr;
  siglongjmp (*catch_jb, 1);
}

int
catch_fault (void (*fn) (void *), void *arg, void **addr)
{
  struct sigaction sa = { .sa_sigaction = on_fault, .sa_flags = SA_SIGINFO };
  sigemptyset (&sa.sa_mask);
  sigaction (SIGBUS, &sa, NULL);
  sigaction (SIGSEGV, &sa, NULL);
  sigjmp_buf jb;
  catch_sig = 0;
  if (sigsetjmp (jb, 1) == 0) {
    catch_jb = &jb;
    fn (arg);
  }
  catch_jb = NULL;
  if (addr)
    *addr = catch_addr;
  return catch_sig;
}

void
touch_read (void *p)
{
  volatile unsigned char *v = p;
  (void) *v;
}

void
require_uffd (void)
{
  struct r3m_backend *b;
  if (be_memory_new (65536, 0, "memory", &b, NULL) < 0)
    abort ();
  struct r3m_uffd *u;
  struct r3m_error err;
  int r = r3m_uffd_map (b, NULL, &u, &err);
  if (r == -EPERM || r == -ENOSYS || r == -EACCES) {
    printf ("userfaultfd is not available here (%s)\n", err.msg);
    r3m_backend_close (b);
    exit (77);
  }
  if (r == 0)
    r3m_uffd_unmap (u, NULL);
  r3m_backend_close (b);
}
