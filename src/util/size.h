/* Human sizes: "64M", "1G", "4096", "1.5GiB". */
#ifndef R3M_UTIL_SIZE_H
#define R3M_UTIL_SIZE_H

#include <stddef.h>
#include <stdint.h>

/* Parse a byte count with an optional binary suffix: k/K/KB/KiB, m/M/MB/MiB,
 * g/G/GB/GiB, t/T/TB/TiB, p/P/PB/PiB, e/E/EB/EiB (all powers of 1024, as
 * nbdkit and qemu-img read them; "b" or "B" alone means bytes).  A fraction
 * is allowed ("1.5G", at most 9 digits) and must give whole bytes.
 * 0, -EINVAL (not a size) or -ERANGE (does not fit in 64 bits). */
int util_parse_size (const char *s, uint64_t *out);

/* Format bytes for people, three significant digits: "512 B", "64.0 KiB",
 * "1.00 GiB", "16.0 EiB".  Always NUL-terminates when len > 0. */
void util_format_size (uint64_t bytes, char *buf, size_t len);

#endif
