/* Monotonic time. */
#ifndef R3M_UTIL_TIME_H
#define R3M_UTIL_TIME_H

#include <stdint.h>
#include <time.h>

static inline uint64_t
util_now_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

/* An absolute CLOCK_MONOTONIC deadline ms milliseconds from now, for
 * pthread_cond_timedwait on condition variables set to that clock. */
static inline struct timespec
util_deadline_ms (uint64_t ms)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  ts.tv_sec += (time_t) (ms / 1000);
  ts.tv_nsec += (long) (ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  return ts;
}

#endif
