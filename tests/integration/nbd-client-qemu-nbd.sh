#!/usr/bin/env bash
# The NBD client against qemu-nbd serving a raw file (structured replies
# with holes, its own block sizes): what we write is in the file, what is
# in the file is what we read, holes read as zeros.
. "$(dirname "$0")/nbd-client-lib.sh"
requires qemu-nbd

truncate -s 32M "$T/disk.raw"
head -c $((4 << 20)) /dev/urandom > "$T/data"
dd if="$T/data" of="$T/disk.raw" bs=1M seek=20 conv=notrunc status=none
qemu-nbd -f raw -t -k "$T/q.sock" --pid-file "$T/q.pid" "$T/disk.raw" \
  >"$T/q.log" 2>&1 &
PIDS+=($!)
wait_for "$T/q.pid"
wait_for "$T/q.sock"
uri="nbd+unix:///?socket=$T/q.sock"

"$TOOL" dump "$uri" 1M 8 | cmp - "$T/disk.raw" || fail "dump differs from the file"
head -c $((3 << 20)) /dev/urandom > "$T/more"
"$TOOL" write "$uri" 4096 < "$T/more"
"$TOOL" flush "$uri"
cmp <(dd if="$T/disk.raw" bs=4096 skip=1 count=768 status=none) "$T/more" \
  || fail "written data is not in the file"
"$TOOL" extents "$uri" 0 32M > "$T/ext"
grep -q 'hole' "$T/ext" || { cat "$T/ext"; fail "no hole reported"; }
echo PASS
