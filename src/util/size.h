/* Human sizes: "64M", "1G", "4096", "1.5GiB". */
#ifndef R3M_UTIL_SIZE_H
#define R3M_UTIL_SIZE_H

#include <stddef.h>
#include <stdint.h>

/* Parse a byte count with an optional binary suffix: k/K/KiB, M/MiB, G/GiB,
 * T/TiB, P/PiB (all powers of 1024; a trailing "B" alone means bytes).  A
 * fraction is allowed with a suffix ("1.5G") and must give whole bytes.
 * 0, -EINVAL (not a size) or -ERANGE (does not fit in 64 bits). */
int util_parse_size (const char *s, uint64_t *out);

/* Format bytes for people: "512 B", "64.0 KiB", "1.00 GiB". */
void util_format_size (uint64_t bytes, char *buf, size_t len);

#endif
