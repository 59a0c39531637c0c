/* The dir backend's fd cache, with fake descriptors so that every open and
 * close is seen: LRU order, reference counts, removal, the bound. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "backend/dir_cache.h"

#define FD(key) ((int) (1000 + (key)))

struct log {
  int opens[64], closes[64];
  size_t nopens, ncloses;
  uint64_t removed[8];
  size_t nremoved;
  bool exists[16];             /* keys >= 16 never exist */
};

static int
fake_open (void *ctx, uint64_t key, bool create)
{
  struct log *l = ctx;
  if (key >= 16 || (!l->exists[key] && !create))
    return -ENOENT;
  l->exists[key] = true;
  l->opens[l->nopens++] = FD (key);
  return FD (key);
}

static void
fake_close (void *ctx, int fd)
{
  struct log *l = ctx;
  l->closes[l->ncloses++] = fd;
}

static int
fake_remove (void *ctx, uint64_t key)
{
  struct log *l = ctx;
  l->exists[key] = false;
  l->removed[l->nremoved++] = key;
  /* Nothing of this key may be open-in-progress or cached now; a cached
   * entry would have been dropped before we were called. */
  return 7;
}

static const struct be_fdcache_ops ops = { fake_open, fake_close };

static struct be_fdcache *
new_cache (size_t max, struct log *l)
{
  struct be_fdcache *c = NULL;
  assert_int_equal (be_fdcache_new (max, &ops, l, &c), 0);
  return c;
}

/* get + put, returning the fd. */
static int
touch (struct be_fdcache *c, uint64_t key)
{
  int fd;
  struct be_fdent *e;
  assert_int_equal (be_fdcache_get (c, key, true, &fd, &e), 0);
  be_fdcache_put (c, e);
  return fd;
}

static void
test_hit_does_not_reopen (void **state)
{
  struct log l = { 0 };
  struct be_fdcache *c = new_cache (4, &l);
  assert_int_equal (touch (c, 3), FD (3));
  assert_int_equal (touch (c, 3), FD (3));
  assert_int_equal (touch (c, 3), FD (3));
  assert_int_equal (l.nopens, 1);
  assert_int_equal (l.ncloses, 0);
  assert_int_equal (be_fdcache_count (c), 1);
  be_fdcache_free (c);
  assert_int_equal (l.ncloses, 1);
}

/* The original evicted the oldest *opened* file; we evict the least
 * recently *used* one. */
static void
test_evicts_least_recently_used (void **state)
{
  struct log l = { 0 };
  struct be_fdcache *c = new_cache (2, &l);
  touch (c, 0);
  touch (c, 1);
  touch (c, 0);                  /* 0 is now more recent than 1 */
  touch (c, 2);                  /* evicts 1, not 0 */
  assert_int_equal (l.ncloses, 1);
  assert_int_equal (l.closes[0], FD (1));
  touch (c, 0);                  /* still cached */
  assert_int_equal (l.nopens, 3);
  touch (c, 1);                  /* order now 1, 0, 2: evicts 2 */
  assert_int_equal (l.ncloses, 2);
  assert_int_equal (l.closes[1], FD (2));
  assert_int_equal (be_fdcache_count (c), 2);
  be_fdcache_free (c);
}

/* An fd in use is never closed, even when the cache is over its bound; the
 * surplus goes once the users put them back. */
static void
test_in_use_never_closed (void **state)
{
  struct log l = { 0 };
  struct be_fdcache *c = new_cache (1, &l);
  int fd0, fd1, fd2;
  struct be_fdent *e0, *e1, *e2;
  assert_int_equal (be_fdcache_get (c, 0, true, &fd0, &e0), 0);
  assert_int_equal (be_fdcache_get (c, 1, true, &fd1, &e1), 0);
  assert_int_equal (be_fdcache_get (c, 2, true, &fd2, &e2), 0);
  assert_int_equal (l.ncloses, 0);
  assert_int_equal (be_fdcache_count (c), 3);
  be_fdcache_put (c, e1);        /* idle and over the bound: closed */
  assert_int_equal (l.ncloses, 1);
  assert_int_equal (l.closes[0], FD (1));
  be_fdcache_put (c, e0);        /* 0 is now the only idle one: closed */
  assert_int_equal (l.ncloses, 2);
  assert_int_equal (l.closes[1], FD (0));
  be_fdcache_put (c, e2);        /* within the bound: kept */
  assert_int_equal (l.ncloses, 2);
  assert_int_equal (be_fdcache_count (c), 1);
  be_fdcache_free (c);
}

/* Two users of one key share one fd; it stays until both put it. */
static void
test_shared_refs (void **state)
{
  struct log l = { 0 };
  struct be_fdcache *c = new_cache (1, &l);
  int a, b;
  struct be_fdent *ea, *eb;
  assert_int_equal (be_fdcache_get (c, 5, true, &a, &ea), 0);
  assert_int_equal (be_fdcache_get (c, 5, true, &b, &eb), 0);
  assert_int_equal (a, b);
  assert_int_equal (l.nopens, 1);
  be_fdcache_put (c, ea);
  touch (c, 6);                  /* 5 is in use: 6 is the surplus */
  assert_int_equal (l.ncloses, 1);
  assert_int_equal (l.closes[0], FD (6));
  be_fdcache_put (c, eb);
  assert_int_equal (l.ncloses, 1);
  be_fdcache_free (c);
}

static void
test_missing_not_cached (void **state)
{
  struct log l = { 0 };
  struct be_fdcache *c = new_cache (4, &l);
  int fd;
  struct be_fdent *e;
  assert_int_equal (be_fdcache_get (c, 9, false, &fd, &e), -ENOENT);
  assert_int_equal (be_fdcache_get (c, 20, true, &fd, &e), -ENOENT);
  assert_int_equal (be_fdcache_count (c), 0);
  assert_int_equal (be_fdcache_get (c, 9, true, &fd, &e), 0);   /* creates */
  be_fdcache_put (c, e);
  assert_int_equal (be_fdcache_get (c, 9, false, &fd, &e), 0);
  be_fdcache_put (c, e);
  assert_int_equal (l.nopens, 1);
  be_fdcache_free (c);
}

static void
test_remove_idle (void **state)
{
  struct log l = { 0 };
  struct be_fdcache *c = new_cache (4, &l);
  touch (c, 2);
  assert_int_equal (be_fdcache_remove (c, 2, fake_remove), 7);
  assert_int_equal (l.nremoved, 1);
  assert_int_equal (l.ncloses, 1);
  assert_int_equal (be_fdcache_count (c), 0);
  int fd;
  struct be_fdent *e;
  assert_int_equal (be_fdcache_get (c, 2, false, &fd, &e), -ENOENT);
  /* Removing a key that is not cached still runs fn. */
  assert_int_equal (be_fdcache_remove (c, 3, fake_remove), 7);
  assert_int_equal (l.nremoved, 2);
  be_fdcache_free (c);
}

/* Removing a key in use: the user's fd stays valid, the next get opens
 * afresh, and the old fd is closed when its user puts it. */
static void
test_remove_in_use (void **state)
{
  struct log l = { 0 };
  struct be_fdcache *c = new_cache (4, &l);
  int fd_old, fd_new;
  struct be_fdent *e_old, *e_new;
  assert_int_equal (be_fdcache_get (c, 4, true, &fd_old, &e_old), 0);
  be_fdcache_remove (c, 4, fake_remove);
  assert_int_equal (l.ncloses, 0);
  assert_int_equal (be_fdcache_count (c), 1);
  assert_int_equal (be_fdcache_get (c, 4, true, &fd_new, &e_new), 0);
  assert_int_equal (l.nopens, 2);
  assert_int_equal (be_fdcache_count (c), 2);
  be_fdcache_put (c, e_old);
  assert_int_equal (l.ncloses, 1);
  be_fdcache_put (c, e_new);
  assert_int_equal (l.ncloses, 1);
  assert_int_equal (be_fdcache_count (c), 1);
  be_fdcache_free (c);
  assert_int_equal (l.ncloses, 2);
}

static void
test_zero_bound_refused (void **state)
{
  struct be_fdcache *c = NULL;
  assert_int_equal (be_fdcache_new (0, &ops, NULL, &c), -EINVAL);
  assert_null (c);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_hit_does_not_reopen),
    cmocka_unit_test (test_evicts_least_recently_used),
    cmocka_unit_test (test_in_use_never_closed),
    cmocka_unit_test (test_shared_refs),
    cmocka_unit_test (test_missing_not_cached),
    cmocka_unit_test (test_remove_idle),
    cmocka_unit_test (test_remove_in_use),
    cmocka_unit_test (test_zero_bound_refused),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
