/* Internals of the dir backend shared between its files. */
#ifndef R3M_BACKEND_DIR_H
#define R3M_BACKEND_DIR_H

#include <stdint.h>

#include <r3map/error.h>

/* The metadata file inside a chunk directory: its size and chunk size, so
 * that a reopen needs no parameters and a mismatch is caught. */
#define BE_DIR_META ".r3map-dir"

/* 0 with the values, -ENOENT when the directory has no metadata file, or
 * -errno with err filled (unreadable or malformed). */
int be_dir_meta_read (int dirfd, const char *uri, uint64_t *size,
                      uint64_t *chunk, struct r3m_error *err);

/* Write the metadata file atomically and durably (temporary file, fsync,
 * rename, fsync of the directory).  0 or -errno with err filled. */
int be_dir_meta_write (int dirfd, const char *uri, uint64_t size,
                       uint64_t chunk, struct r3m_error *err);

#endif
