#!/usr/bin/env bash
# The NBD client against slow and failing servers (nbdkit's delay and
# error filters): slow replies still arrive whole; failed requests fail
# with the server's error, others still work; nothing hangs.
. "$(dirname "$0")/nbd-client-lib.sh"
requires nbdkit timeout

# Slow reads: 20 ms each, pipelined.
start_nbdkit slow --filter=delay pattern 16M rdelay=20ms
timeout 60 "$TOOL" dump "$URI" 256K 32 > "$T/slow" || fail "slow dump failed"
[ "$(stat -c %s "$T/slow")" -eq $((16 << 20)) ] || fail "slow dump is short"

# Every read fails with EIO.
start_nbdkit bad --filter=error memory 4M error=EIO error-pread-rate=100%
expect_fail "Input/output error" timeout 60 "$TOOL" read "$URI" 0 64K
# ... writes still work on the same server.
echo hello | "$TOOL" write "$URI" 0 || fail "write failed"

# Some reads fail: the pipelined dump stops with the error, no hang.
start_nbdkit some --filter=error memory 64M error=EIO error-pread-rate=5%
expect_fail "Input/output error" timeout 60 "$TOOL" dump "$URI" 64K 32

# ENOSPC comes back as ENOSPC.
start_nbdkit full --filter=error memory 4M error=ENOSPC error-pwrite-rate=100%
expect_fail "No space left on device" \
  sh -c "head -c 4096 /dev/zero | timeout 60 '$TOOL' write '$URI' 0"
echo PASS
