/* Shared set-up for the FUSE frontend tests: a private mount namespace, a
 * temporary mount point, and a "spy" backend that counts calls and can be
 * told to fail. */
#ifndef R3M_TEST_FUSE_HARNESS_H
#define R3M_TEST_FUSE_HARNESS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <r3map/r3map.h>

/* Exit 77 with a reason when FUSE mounts cannot be made here; otherwise
 * move the process into a private mount namespace, so that a crashing test
 * can never leave a mount behind.  Call first in main, before any thread. */
void ft_require_fuse (void);

struct ft_spy {
  struct r3m_backend *inner;     /* memory: backend holding the data */
  /* Serializes calls, so that ThreadSanitizer sees the order between a
   * test thread touching the store directly and a FUSE worker touching it
   * because of a system call (an order only the kernel knows). */
  pthread_mutex_t lock;
  atomic_uint reads, writes, flushes, zeros;
  atomic_int fail;               /* positive errno: every call fails */
};

/* A backend of `size` bytes whose calls go to a memory: backend and are
 * counted in *spy (owned by the backend).  Tests read and write the store
 * through this backend, never through spy->inner. */
struct r3m_backend *ft_spy_new (uint64_t size, struct ft_spy **spy);

struct ft_mount {
  char dir[64];                  /* the mount point (a fresh temp dir) */
  struct r3m_backend *be;
  struct ft_spy *spy;
  struct r3m_fuse *fs;
  const char *path;              /* the file */
};

/* Mount one file "disk" of `size` bytes over a spy backend.  opts may be
 * NULL.  Fails the test on error. */
void ft_mount (struct ft_mount *m, uint64_t size,
               const struct r3m_fuse_options *opts);
/* Close the mount (if still open), the backend and remove the dir. */
void ft_unmount (struct ft_mount *m);

/* Fill buf with a pattern that depends on the absolute offset and a seed. */
void ft_pattern (void *buf, size_t len, uint64_t off, unsigned seed);

#endif
