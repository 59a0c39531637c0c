/* Whole-buffer file I/O shared by the file and dir backends: loops over
 * short transfers and EINTR, and reads bytes past the end of the file as
 * zeros.  All return 0 or -errno. */
#ifndef R3M_BACKEND_FDIO_H
#define R3M_BACKEND_FDIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

int be_fd_pread (int fd, void *buf, size_t len, uint64_t off);

/* fua: the data is durable when this returns (pwritev2 RWF_DSYNC, or
 * pwrite and fdatasync where RWF_DSYNC is not supported). */
int be_fd_pwrite (int fd, const void *buf, size_t len, uint64_t off,
                  bool fua);

/* Write zeros over the range (the fallback when fallocate cannot). */
int be_fd_write_zeros (int fd, size_t len, uint64_t off);

int be_fd_datasync (int fd);

#endif
