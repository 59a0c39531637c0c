/* r3map: remote memory regions over NBD.  Include this for everything. */
#ifndef R3MAP_R3MAP_H
#define R3MAP_R3MAP_H

#include <r3map/error.h>
#include <r3map/backend.h>
#include <r3map/region.h>
#include <r3map/uffd.h>
#include <r3map/fuse.h>

#define R3M_VERSION_STRING "0.1.0"

#endif /* R3MAP_R3MAP_H */
