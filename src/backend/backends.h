/* The URI openers of the backends r3m_backend_open knows, and helpers they
 * share for reading their URIs.
 *
 * Adding a backend: write `be_open_fn be_NAME_open;` below and one line in
 * the scheme table in registry.c.  An opener gets the parsed URI and the
 * original text (for messages and the description), and returns 0 or
 * -errno with err filled. */
#ifndef R3M_BACKEND_BACKENDS_H
#define R3M_BACKEND_BACKENDS_H

#include <stdint.h>

#include <r3map/backend.h>

#include "util/uri.h"

typedef int be_open_fn (const struct util_uri *u, const char *uri,
                        unsigned open_flags, struct r3m_backend **out,
                        struct r3m_error *err);

be_open_fn be_memory_open;      /* memory:SIZE (memory.c) */
be_open_fn be_pattern_open;     /* pattern:SIZE (pattern.c) */
be_open_fn be_file_open;        /* file:PATH[?size=SIZE] (file.c) */
be_open_fn be_dir_open;         /* dir:PATH?size=&chunk=[&max-open=] (dir.c) */
be_open_fn be_nbd_open;         /* nbd://, nbds://, nbd+unix://, nbds+unix://
                                   (nbd/client_backend.c) */

/* Constructors for callers that have the parameters already (tests). */
int be_memory_new (uint64_t size, unsigned open_flags,
                   const char *description, struct r3m_backend **out,
                   struct r3m_error *err);

/* ---- URI helpers (registry.c) ------------------------------------------ */

/* Parse value as a SIZE for the URI part `name` (e.g. "size", "chunk");
 * the message names the URI, the part and what is wrong. */
int be_arg_size (const char *uri, const char *name, const char *value,
                 uint64_t *out, struct r3m_error *err);

/* Parse value as a decimal integer in [min, max] for the part `name`. */
int be_arg_uint (const char *uri, const char *name, const char *value,
                 uint64_t min, uint64_t max, uint64_t *out,
                 struct r3m_error *err);

/* For SCHEME:SIZE URIs (memory:, pattern:): no authority, no query, and a
 * path that is a size.  usage is shown in messages, e.g. "memory:SIZE". */
int be_uri_opaque_size (const struct util_uri *u, const char *uri,
                        const char *usage, uint64_t *size,
                        struct r3m_error *err);

/* For SCHEME:PATH URIs (file:, dir:): SCHEME:PATH or SCHEME:///PATH, no
 * host, user or port, a non-empty path; *path points into u. */
int be_uri_local_path (const struct util_uri *u, const char *uri,
                       const char *usage, const char **path,
                       struct r3m_error *err);

#endif
