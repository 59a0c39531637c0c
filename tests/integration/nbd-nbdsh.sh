#!/usr/bin/env bash
# Edge cases through libnbd (nbdsh), with strict mode off so libnbd sends
# what a careless or hostile client would: requests past the end,
# misaligned ones, oversized ones, writes to a read-only export.  The
# server must answer each with the right NBD error and keep serving.
. "$(dirname "$0")/nbd-lib.sh"
need nbdsh

serve --listen "nbd+unix:///?socket=$tmp/s" --min-block 512 memory:1M
nbdsh --base-allocation -u "$(sock_uri "$tmp/s" "")" -c '
import nbd

def fails(errno, f, *args, **kw):
    try:
        f(*args, **kw)
    except nbd.Error as e:
        assert e.errno == errno, "%s: got %s, wanted %s" % (f.__name__, e.errno, errno)
        return
    raise AssertionError("%s succeeded, wanted %s" % (f.__name__, errno))

h.set_strict_mode(0)
size = h.get_size()
assert size == 1 << 20
assert h.get_block_size(nbd.SIZE_MINIMUM) == 512

h.pwrite(b"\x55" * 4096, 4096, nbd.CMD_FLAG_FUA)
assert h.pread(4096, 4096) == b"\x55" * 4096
assert h.pread(4096, 4096, nbd.CMD_FLAG_DF) == b"\x55" * 4096

fails("EINVAL", h.pread, 512, size)                 # past the end
fails("ENOSPC", h.pwrite, b"x" * 512, size)         # past the end
fails("EINVAL", h.pread, 512, 100)                  # misaligned offset
fails("EINVAL", h.pwrite, b"x" * 100, 0)            # misaligned length
fails("EINVAL", h.trim, 512, size)                  # trim past the end
fails("ENOSPC", h.zero, 512, size)                  # zero past the end
fails("EINVAL", h.cache, 512, size)
try:                                                # over the max payload
    h.pread(64 << 20, 0)
    raise AssertionError("64 MiB read succeeded")
except nbd.Error as e:
    assert e.errno in ("EINVAL", "EOVERFLOW"), e.errno

# The connection is still good after all that.
h.flush()
h.trim(8192, 0)
h.zero(8192, 0, nbd.CMD_FLAG_NO_HOLE)
assert h.pread(8192, 0) == bytes(8192)
h.zero(8192, 8192, nbd.CMD_FLAG_FAST_ZERO)     # memory: zeroing is fast
h.cache(65536, 0)

extents = []
def cb(metacontext, offset, entries, err):
    assert metacontext == "base:allocation"
    extents.extend(entries)
h.block_status(size, 0, cb)
assert sum(extents[0::2]) == size, extents
h.block_status(size, 0, cb, nbd.CMD_FLAG_REQ_ONE)
h.shutdown()
'
kill -0 "$server_pid" || die "server died"
stop_server || die "server exit status"

serve --listen "nbd+unix:///?socket=$tmp/s" --read-only memory:1M
nbdsh -u "$(sock_uri "$tmp/s" "")" -c '
import nbd
h.set_strict_mode(0)
assert h.is_read_only()
assert not h.can_trim() and not h.can_zero()
for f, args in ((h.pwrite, (b"x" * 512, 0)), (h.trim, (512, 0)),
                (h.zero, (512, 0))):
    try:
        f(*args)
        raise AssertionError("write succeeded on a read-only export")
    except nbd.Error as e:
        assert e.errno == "EPERM", e.errno
assert h.pread(512, 0) == bytes(512)
# No metadata context was negotiated: block status is refused, cleanly.
try:
    h.block_status(512, 0, lambda *a: 0)
    raise AssertionError("block status without a context succeeded")
except nbd.Error as e:
    assert e.errno == "EINVAL", e.errno
assert h.pread(512, 0) == bytes(512)
'
echo PASS
