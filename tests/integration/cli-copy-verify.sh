#!/usr/bin/env bash
# A verification that finds different data exits 3 and names the first
# differing chunk: r3map compare on different pairs, and r3map copy --verify
# into a destination that drops every write (nbdkit's null plugin behind an
# nbdfuse file, a real file r3map cannot tell from any other).
. "$(dirname "$0")/cli-lib.sh"
requires nbdkit nbdfuse fusermount3
[ -c /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }

# Different pairs.
run compare pattern:4M memory:4M
expect_rc 3
expect_out "different: the chunk at offset 0 differs (chunk size 64 KiB)"

expected_pattern $((4 << 20)) "$tmp/p"
printf 'X' | dd of="$tmp/p" bs=1 seek=$(( (3 << 20) + 70000 )) conv=notrunc status=none
run compare pattern:4M "file:$tmp/p"
expect_rc 3
expect_out "the chunk at offset $(( (3 << 20) + 65536 )) differs"
run compare --chunk-size 4K pattern:4M "file:$tmp/p"
expect_rc 3
expect_out "the chunk at offset $(( (3 << 20) + 69632 )) differs (chunk size 4 KiB)"
run compare --length 3M pattern:4M "file:$tmp/p"
expect_rc 0
expect_out "identical: 3.00 MiB"

# A destination that drops writes.
mkdir "$tmp/mnt"
nbdfuse "$tmp/mnt/disk" --command nbdkit -s null 4M &
cleanup_hooks+=("fusermount3 -u '$tmp/mnt' 2>/dev/null; wait")
for _ in $(seq 100); do [ -e "$tmp/mnt/disk" ] && break; sleep 0.1; done
[ -e "$tmp/mnt/disk" ] || fail "nbdfuse did not start"

run copy --verify pattern:4M "file:$tmp/mnt/disk"
expect_rc 3
expect_err "r3map: copy: verify failed: pattern:4M and file:$tmp/mnt/disk differ in the chunk at offset 0 (chunk size 64 KiB)"
expect_err_prefixed
# Without --verify the same copy succeeds: only verification can tell.
run copy pattern:4M "file:$tmp/mnt/disk"
expect_rc 0
echo "PASS"
