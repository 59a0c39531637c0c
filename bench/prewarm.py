#!/usr/bin/python3
"""Touch and free SIZE of memory, so that what is allocated next reuses
pages the host still backs.

These VMs give freed memory back to the host (virtio-balloon free page
reporting), and touching such memory again costs 1.6-3.2 s per GiB against
0.34 s for memory freed a moment ago (docs/benchmarks.md, "Warm and cold
memory on these VMs").  Benchmarks call this before every measured run, for
every client alike, so that none of them pays for the machine's history.

  bench/prewarm.py SIZE        (e.g. 2G; K, M, G suffixes; 0 does nothing)
"""
import mmap
import sys

MADV_NOHUGEPAGE = 15        # 4 KiB pages, as the clients' own memory uses
MADV_POPULATE_WRITE = 23


def size_bytes(text):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if text[-1:].upper() in units:
        return int(text[:-1]) * units[text[-1].upper()]
    return int(text)


def prewarm(nbytes):
    if nbytes <= 0:
        return
    m = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        m.madvise(MADV_NOHUGEPAGE)
        m.madvise(MADV_POPULATE_WRITE)
    except OSError:             # kernels before 5.14: touch every page
        for off in range(0, nbytes, 4096):
            m[off] = 1
    m.close()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: " + __doc__.strip().splitlines()[-1].strip())
    try:
        prewarm(size_bytes(sys.argv[1]))
    except ValueError:
        sys.exit("prewarm.py: %r is not a size (e.g. 2G)" % sys.argv[1])
