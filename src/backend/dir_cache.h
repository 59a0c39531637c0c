/* A bounded cache of open file descriptors keyed by a 64-bit number (the
 * dir backend's chunk index), with least-recently-used eviction.
 *
 * Guarantees:
 *  - an fd handed out by be_fdcache_get stays open until the matching
 *    be_fdcache_put, whatever other threads get, put or remove meanwhile;
 *  - at most `max` fds stay open while idle; more are open only while more
 *    than `max` are in use at once, and the surplus is closed as they are
 *    put back;
 *  - eviction takes the least recently *used* idle entry (a hit counts as a
 *    use), not the oldest opened;
 *  - be_fdcache_remove runs its callback (e.g. unlink) with no entry for
 *    the key in the cache and no open of that key in progress, so a later
 *    get opens the file afresh instead of reusing a descriptor of a removed
 *    file.
 *
 * Opening and closing go through callbacks so that tests can count them. */
#ifndef R3M_BACKEND_DIR_CACHE_H
#define R3M_BACKEND_DIR_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct be_fdcache;
struct be_fdent;

struct be_fdcache_ops {
  /* Open key (creating it when create is true): an fd, or -errno.
   * -ENOENT when it does not exist and create is false. */
  int (*open) (void *ctx, uint64_t key, bool create);
  void (*close) (void *ctx, int fd);
};

int be_fdcache_new (size_t max, const struct be_fdcache_ops *ops, void *ctx,
                    struct be_fdcache **out);

/* Free the cache and close every fd; nothing may be in use. */
void be_fdcache_free (struct be_fdcache *c);

/* Get an open fd for key: 0 with *fd and *ent set, or -errno (-ENOENT: the
 * key does not exist and create was false).  Release with be_fdcache_put. */
int be_fdcache_get (struct be_fdcache *c, uint64_t key, bool create, int *fd,
                    struct be_fdent **ent);
void be_fdcache_put (struct be_fdcache *c, struct be_fdent *ent);

/* Drop key from the cache and run fn (ctx, key) while no thread can open
 * it; fds still in use stay valid and are closed when put back.  Returns
 * what fn returns. */
int be_fdcache_remove (struct be_fdcache *c, uint64_t key,
                       int (*fn) (void *ctx, uint64_t key));

/* Number of open fds held by the cache (in use or idle), for tests. */
size_t be_fdcache_count (struct be_fdcache *c);

#endif
