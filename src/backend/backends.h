/* Constructors of the built-in backends, called by the URI registry
 * (registry.c) and by tests.  Each returns 0 or -errno with err filled. */
#ifndef R3M_BACKEND_BACKENDS_H
#define R3M_BACKEND_BACKENDS_H

#include <stdint.h>

#include <r3map/backend.h>

int be_memory_new (uint64_t size, unsigned open_flags,
                   const char *description, struct r3m_backend **out,
                   struct r3m_error *err);

#endif
