/* The dir backend's cache of open chunk files (contract in dir_cache.h).
 *
 * Data structure: a chained hash table from key to entry, plus a doubly
 * linked recency list of the same entries, most recently used first.  An
 * entry carries a reference count; only entries with no references are
 * evicted, so a descriptor is never closed under a thread using it.
 *
 * Locks (order: a stripe before `lock`, never the other way round):
 *  - stripes[key % NSTRIPES] serialise opening a key that missed and
 *    removing a key, so an open that raced a remove can never put a
 *    descriptor of a deleted file into the table.  They are held across the
 *    open/unlink system call, but only for keys that map to that stripe.
 *  - `lock` guards the table, the list, the counters and every entry's
 *    refs and cached fields; it is never held across a system call.
 * Descriptors are closed after both are released. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "backend/dir_cache.h"

#define NSTRIPES 64

struct be_fdent {
  uint64_t key;
  int fd;
  unsigned refs;                 /* threads using fd */
  bool cached;                   /* in the table and the list */
  struct be_fdent *hnext;        /* hash chain; victims list once evicted */
  struct be_fdent *prev, *next;  /* recency list */
};

struct be_fdcache {
  const struct be_fdcache_ops *ops;
  void *ctx;
  size_t max;
  pthread_mutex_t stripes[NSTRIPES];
  pthread_mutex_t lock;
  struct be_fdent **buckets;
  unsigned bits;                 /* log2 of the number of buckets */
  struct be_fdent *mru, *lru;
  size_t cached;                 /* entries in the table */
  size_t open;                   /* fds not yet handed to ops->close */
};

/* ---- table and list, all with c->lock held ---------------------------- */

static struct be_fdent **
bucket (struct be_fdcache *c, uint64_t key)
{
  return &c->buckets[(key * 0x9E3779B97F4A7C15ull) >> (64 - c->bits)];
}

static struct be_fdent *
lookup (struct be_fdcache *c, uint64_t key)
{
  for (struct be_fdent *e = *bucket (c, key); e; e = e->hnext)
    if (e->key == key)
      return e;
  return NULL;
}

static void
list_unlink (struct be_fdcache *c, struct be_fdent *e)
{
  if (e->prev)
    e->prev->next = e->next;
  else
    c->mru = e->next;
  if (e->next)
    e->next->prev = e->prev;
  else
    c->lru = e->prev;
  e->prev = e->next = NULL;
}

static void
list_push_front (struct be_fdcache *c, struct be_fdent *e)
{
  e->prev = NULL;
  e->next = c->mru;
  if (c->mru)
    c->mru->prev = e;
  else
    c->lru = e;
  c->mru = e;
}

static void
insert (struct be_fdcache *c, struct be_fdent *e)
{
  struct be_fdent **b = bucket (c, e->key);
  e->hnext = *b;
  *b = e;
  list_push_front (c, e);
  e->cached = true;
  c->cached++;
  c->open++;
}

static void
drop (struct be_fdcache *c, struct be_fdent *e)
{
  for (struct be_fdent **p = bucket (c, e->key); *p; p = &(*p)->hnext)
    if (*p == e) {
      *p = e->hnext;
      break;
    }
  e->hnext = NULL;
  list_unlink (c, e);
  e->cached = false;
  c->cached--;
}

/* Take a reference on a cached entry: it becomes the most recent. */
static void
hit (struct be_fdcache *c, struct be_fdent *e, int *fd, struct be_fdent **ent)
{
  e->refs++;
  list_unlink (c, e);
  list_push_front (c, e);
  *fd = e->fd;
  *ent = e;
}

/* Evict least recently used idle entries while over the bound; return
 * them as a list (through hnext) to close once the lock is released. */
static struct be_fdent *
evict (struct be_fdcache *c)
{
  struct be_fdent *victims = NULL, *e = c->lru;
  while (c->cached > c->max && e) {
    struct be_fdent *prev = e->prev;
    if (e->refs == 0) {
      drop (c, e);
      c->open--;
      e->hnext = victims;
      victims = e;
    }
    e = prev;
  }
  return victims;
}

static void
close_all (struct be_fdcache *c, struct be_fdent *victims)
{
  while (victims) {
    struct be_fdent *next = victims->hnext;
    c->ops->close (c->ctx, victims->fd);
    free (victims);
    victims = next;
  }
}

/* ---- API -------------------------------------------------------------- */

int
be_fdcache_new (size_t max, const struct be_fdcache_ops *ops, void *ctx,
                struct be_fdcache **out)
{
  if (max == 0)
    return -EINVAL;
  struct be_fdcache *c = calloc (1, sizeof *c);
  if (!c)
    return -ENOMEM;
  c->bits = 4;
  while (c->bits < 20 && ((size_t) 1 << c->bits) < 2 * max)
    c->bits++;
  c->buckets = calloc ((size_t) 1 << c->bits, sizeof *c->buckets);
  if (!c->buckets) {
    free (c);
    return -ENOMEM;
  }
  c->ops = ops;
  c->ctx = ctx;
  c->max = max;
  pthread_mutex_init (&c->lock, NULL);
  for (unsigned i = 0; i < NSTRIPES; i++)
    pthread_mutex_init (&c->stripes[i], NULL);
  *out = c;
  return 0;
}

void
be_fdcache_free (struct be_fdcache *c)
{
  if (!c)
    return;
  struct be_fdent *victims = NULL;
  while (c->lru) {
    struct be_fdent *e = c->lru;
    drop (c, e);
    e->hnext = victims;
    victims = e;
  }
  close_all (c, victims);
  pthread_mutex_destroy (&c->lock);
  for (unsigned i = 0; i < NSTRIPES; i++)
    pthread_mutex_destroy (&c->stripes[i]);
  free (c->buckets);
  free (c);
}

int
be_fdcache_get (struct be_fdcache *c, uint64_t key, bool create, int *fd,
                struct be_fdent **ent)
{
  pthread_mutex_lock (&c->lock);
  struct be_fdent *e = lookup (c, key);
  if (e) {
    hit (c, e, fd, ent);
    pthread_mutex_unlock (&c->lock);
    return 0;
  }
  pthread_mutex_unlock (&c->lock);

  /* Miss: open under the key's stripe, after checking again that nobody
   * opened it while we waited for the stripe. */
  pthread_mutex_t *stripe = &c->stripes[key % NSTRIPES];
  pthread_mutex_lock (stripe);
  pthread_mutex_lock (&c->lock);
  e = lookup (c, key);
  if (e)
    hit (c, e, fd, ent);
  pthread_mutex_unlock (&c->lock);
  if (e) {
    pthread_mutex_unlock (stripe);
    return 0;
  }
  int f = c->ops->open (c->ctx, key, create);
  if (f < 0) {
    pthread_mutex_unlock (stripe);
    return f;
  }
  e = calloc (1, sizeof *e);
  if (!e) {
    c->ops->close (c->ctx, f);
    pthread_mutex_unlock (stripe);
    return -ENOMEM;
  }
  e->key = key;
  e->fd = f;
  e->refs = 1;
  pthread_mutex_lock (&c->lock);
  insert (c, e);
  struct be_fdent *victims = evict (c);
  pthread_mutex_unlock (&c->lock);
  pthread_mutex_unlock (stripe);
  close_all (c, victims);
  *fd = f;
  *ent = e;
  return 0;
}

void
be_fdcache_put (struct be_fdcache *c, struct be_fdent *e)
{
  struct be_fdent *victims = NULL;
  pthread_mutex_lock (&c->lock);
  e->refs--;
  if (e->refs == 0 && !e->cached) {
    c->open--;                   /* removed while in use: close it now */
    victims = e;
  }
  else if (e->refs == 0)
    victims = evict (c);
  pthread_mutex_unlock (&c->lock);
  close_all (c, victims);
}

int
be_fdcache_remove (struct be_fdcache *c, uint64_t key,
                   int (*fn) (void *ctx, uint64_t key))
{
  pthread_mutex_t *stripe = &c->stripes[key % NSTRIPES];
  struct be_fdent *victim = NULL;
  pthread_mutex_lock (stripe);
  pthread_mutex_lock (&c->lock);
  struct be_fdent *e = lookup (c, key);
  if (e) {
    drop (c, e);
    if (e->refs == 0) {
      c->open--;
      victim = e;
    }
  }
  pthread_mutex_unlock (&c->lock);
  int r = fn (c->ctx, key);
  pthread_mutex_unlock (stripe);
  close_all (c, victim);
  return r;
}

size_t
be_fdcache_count (struct be_fdcache *c)
{
  pthread_mutex_lock (&c->lock);
  size_t n = c->open;
  pthread_mutex_unlock (&c->lock);
  return n;
}
