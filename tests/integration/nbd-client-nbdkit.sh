#!/usr/bin/env bash
# The NBD client against nbdkit's memory plugin: synchronous and pipelined
# reads and writes, zero, trim, flush, block status, multi-conn.
. "$(dirname "$0")/nbd-client-lib.sh"
requires nbdkit

start_nbdkit mem memory 64M; uri=$URI

"$TOOL" info "$uri" > "$T/info"
grep -qx 'size 67108864' "$T/info" || fail "size: $(cat "$T/info")"
grep -qx 'structured 1' "$T/info" || fail "no structured replies"
grep -qx 'block_status 1' "$T/info" || fail "no base:allocation"
grep -qx 'connections 4' "$T/info" || fail "multi-conn not used"

# Random data at an odd offset, back synchronously and pipelined.
head -c $((8 << 20)) /dev/urandom > "$T/data"
"$TOOL" write "$uri" 12345 < "$T/data"
"$TOOL" read "$uri" 12345 8M > "$T/back"
cmp "$T/data" "$T/back" || fail "synchronous read differs"
"$TOOL" dump "$uri" 1M 32 > "$T/all"
cmp <(head -c 12345 /dev/zero; cat "$T/data"; head -c $(((56 << 20) - 12345)) /dev/zero) \
    "$T/all" || fail "pipelined dump differs"

# Pipelined load of a whole image, then compare.
head -c $((64 << 20)) /dev/urandom > "$T/image"
"$TOOL" load "$uri" 256K 64 < "$T/image"
"$TOOL" dump "$uri" 4M 8 | cmp - "$T/image" || fail "load/dump differs"

# Zero and trim read back as zeros; block status sees the hole.
"$TOOL" zero "$uri" 1M 2M
"$TOOL" read "$uri" 1M 2M | cmp - <(head -c $((2 << 20)) /dev/zero) \
  || fail "zeroed range is not zero"
"$TOOL" trim "$uri" 8M 1M
"$TOOL" flush "$uri"
"$TOOL" extents "$uri" 0 16M > "$T/ext"
grep -q '^1048576 2097152 hole,zero$' "$T/ext" || { cat "$T/ext"; fail "extents"; }

# A single connection when the server does not offer multi-conn.
start_nbdkit one --filter=multi-conn memory 1M multi-conn-mode=disable
uri1=$URI
"$TOOL" info "$uri1&connections=8" | grep -qx 'connections 1' \
  || fail "used several connections without multi-conn"
echo PASS
