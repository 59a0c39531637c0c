#!/usr/bin/env bash
# Killing the server under a mount gives I/O errors, not a hung mount:
# reads of chunks never pulled fail with EIO, chunks already local still
# read, and r3map mount still ends on SIGTERM.
. "$(dirname "$0")/fuse-lib.sh"
need nbdcopy cmp

serve --listen "nbd+unix:///?socket=$tmp/s" memory:64M
uri=$(sock_uri "$tmp/s" "")
head -c 64M /dev/urandom >"$tmp/data"
nbdcopy "$tmp/data" "$uri"

fuse_mount --pull-workers 0 --readahead 128K "$uri"
dd if="$file" of="$tmp/head" bs=1M count=1 status=none || die "first read"
cmp -n $((1 << 20)) "$tmp/head" "$tmp/data" || die "first read differs"

kill -KILL "$server_pid"
wait "$server_pid" 2>/dev/null || true
server_pid=

st=0
timeout 60 dd if="$file" of=/dev/null bs=64k skip=512 count=1 \
  iflag=direct 2>"$tmp/dd.err" || st=$?
[ "$st" != 124 ] || die "a read after the server died hung"
[ "$st" != 0 ] || die "a read of a chunk never pulled succeeded"
grep -q "Input/output error" "$tmp/dd.err" || die "dd said: $(cat "$tmp/dd.err")"

# Local data is still there, through a fresh descriptor.
timeout 60 dd if="$file" of="$tmp/head2" bs=64k count=16 status=none \
  || die "local chunks no longer read"
cmp "$tmp/head" "$tmp/head2" || die "local chunks changed"

kill -TERM "$mount_pid"
st=0
wait_exit "$mount_pid" 60 || st=$?
[ "$st" != 124 ] || die "r3map mount did not exit after SIGTERM"
mount_pid=
! mountpoint -q "$mnt" || die "still mounted"
echo "r3map mount exited with $st: $(tail -n 1 "$tmp/mount.err")"
echo PASS
