#!/usr/bin/env bash
# The uffd example end to end: the checksum of a file read through the
# mapping does not depend on the chunk size, changes when one byte of the
# file changes, and differs from that of a zero file of the same size (a
# mapping that returned zeros would pass the first check alone).  Then the
# same file served by `r3map serve` and mapped over NBD gives the same sum.
set -euo pipefail
bin=$1
r3map=$2
dir=$(mktemp -d)
server=
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
head -c $((24 * 1024 * 1024 + 5000)) /dev/urandom > "$dir/data"
truncate -s $((24 * 1024 * 1024 + 5000)) "$dir/zero"

a=$("$bin" "file:$dir/data" 2>/dev/null | cut -d' ' -f1)
b=$("$bin" "file:$dir/data" 4096 2>/dev/null | cut -d' ' -f1)
c=$("$bin" "file:$dir/data" 1048576 2>/dev/null | cut -d' ' -f1)
z=$("$bin" "file:$dir/zero" 2>/dev/null | cut -d' ' -f1)
# Flip one byte's bits (a fixed byte written into random data would leave
# it unchanged 1 time in 256).
/usr/bin/python3 - "$dir/data" $((13 * 1024 * 1024 + 7)) <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2]))
    b = f.read(1)[0]
    f.seek(int(sys.argv[2]))
    f.write(bytes([b ^ 0xFF]))
PY
d=$("$bin" "file:$dir/data" 2>/dev/null | cut -d' ' -f1)

# Over NBD: the example is the client of a real server on a Unix socket.
"$r3map" serve --quiet --read-only --pid-file "$dir/pid" \
  --listen "nbd+unix:///?socket=$dir/s" "file:$dir/data" &
server=$!
for _ in $(seq 100); do [ -s "$dir/pid" ] && break; sleep 0.1; done
n=$("$bin" "nbd+unix:///?socket=$dir/s" 2>/dev/null | cut -d' ' -f1)

fail=0
[ -n "$n" ] && [ "$n" = "$d" ] || { echo "over NBD: $n, from the file: $d"; fail=1; }
[ -n "$a" ] && [ "$a" = "$b" ] && [ "$a" = "$c" ] || { echo "chunk sizes disagree: $a $b $c"; fail=1; }
[ "$a" != "$z" ] || { echo "data hashes like zeros"; fail=1; }
[ "$a" != "$d" ] || { echo "a changed byte went unseen"; fail=1; }
[ $fail = 0 ] && echo "uffd_checksum: 3 chunk sizes agree, changes seen, NBD agrees"
exit $fail
