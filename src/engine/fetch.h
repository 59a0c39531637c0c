/* On-demand fetches (fetch.c), used by the read and write paths. */
#ifndef R3M_ENGINE_FETCH_H
#define R3M_ENGINE_FETCH_H

#include "engine/engine.h"

/* Requests a caller waits for together. */
struct eng_group {
  pthread_mutex_t mu;         /* guards pending and each member's result */
  pthread_cond_t cv;          /* pending reached 0 */
  unsigned pending;
};

struct eng_dfetch {
  struct r3m_io io;
  struct eng_group *group;
  uint64_t chunk;
  int result;
};

void eng_group_init (struct eng_group *g);
void eng_group_destroy (struct eng_group *g);
/* Submit an urgent fetch of chunk c into buf as a member of g. */
void eng_group_submit (struct r3m_region *r, struct eng_group *g,
                       struct eng_dfetch *f, uint64_t c, void *buf);
void eng_group_wait (struct eng_group *g);
/* Retry failed member f (f->result < 0) up to fetch_retries times; the
 * final failure is recorded in the status.  0 or -errno. */
int eng_fetch_retry (struct r3m_region *r, struct eng_dfetch *f);
/* Store fetched chunk c (BUSY, ours) in the cache and count the fetch. */
int eng_fetch_store (struct r3m_region *r, uint64_t c, const void *buf);
/* The fetch of chunk c (BUSY, ours) ended with e (0: stored): make it
 * LOCAL, or REMOTE when it failed or was invalidated in flight.  True if
 * LOCAL.  Settle leaves a REMOTE chunk to the caller; finish queues it
 * for the puller. */
bool eng_fetch_settle (struct r3m_region *r, uint64_t c, int e);
bool eng_fetch_finish (struct r3m_region *r, uint64_t c, int e);

#endif
