#!/usr/bin/env bash
# The NBD client reads nbdkit's pattern plugin (each 8-byte word holds its
# own offset, big-endian) and gets exactly the pattern; the export is
# read-only and writes fail with EPERM.
. "$(dirname "$0")/nbd-client-lib.sh"
requires nbdkit

start_nbdkit pat pattern 48M; uri=$URI
/usr/bin/python3 - "$T/expect" <<'PY'
import struct, sys
with open(sys.argv[1], "wb") as f:
    for base in range(0, 48 << 20, 1 << 20):
        f.write(b"".join(struct.pack(">Q", o) for o in range(base, base + (1 << 20), 8)))
PY
"$TOOL" dump "$uri" 1M 16 | cmp - "$T/expect" || fail "pattern differs (pipelined)"
# Odd sizes and offsets through the synchronous path.
"$TOOL" read "$uri" 1000003 77777 | cmp - <(tail -c +1000004 "$T/expect" | head -c 77777) \
  || fail "pattern differs (unaligned read)"
"$TOOL" info "$uri" | grep -qx 'read_only 1' || fail "read-only not reported"
expect_fail "Operation not permitted" sh -c "echo x | '$TOOL' write '$uri' 0"
echo PASS
