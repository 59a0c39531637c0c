#!/usr/bin/env bash
# Usage errors of r3map copy: status 2, a message naming the problem, the
# pointer to the help, and DST left alone.
. "$(dirname "$0")/cli-lib.sh"

run copy
expect_usage "r3map: copy: expected SRC DST, got 0 operands"
run copy pattern:1M
expect_usage "expected SRC DST, got only 1 operand"
run copy pattern:1M memory:1M memory:1M
expect_usage "'memory:1M' is one operand too many"

run copy --verfy pattern:1M memory:1M
expect_usage "unknown option '--verfy' (did you mean '--verify'?)"
run copy --w 2 pattern:1M memory:1M
expect_usage "option '--w' is ambiguous: --workers, --window"
run copy --chunk-size 3K pattern:1M memory:1M
expect_usage "--chunk-size: '3K' is not a power of two"
run copy --chunk-size 128M pattern:1M memory:1M
expect_usage "--chunk-size: '128M' is out of range (512 B to 64 MiB)"
run copy --workers 0 pattern:1M memory:1M
expect_usage "--workers: '0' is out of range (1 to 256)"
run copy --window lots pattern:1M memory:1M
expect_usage "--window: 'lots' is not a number"
# mount's spellings of the same two settings work too.
run copy --pull-workers 0 pattern:1M memory:1M
expect_usage "'0' is out of range (1 to 256)"
run copy -q --pull-workers 3 --pull-window 8 pattern:1M memory:1M
expect_rc 0
run copy --window -3 pattern:1M memory:1M
expect_usage "--window: '-3' is not a number"
run copy --request-size 100 pattern:1M memory:1M
expect_usage "--request-size: '100' is out of range (512 B to 64 MiB)"
run copy --request-size 1G pattern:1M memory:1M
expect_usage "--request-size: '1G' is out of range (512 B to 64 MiB)"

# Backends.
run copy nosuch:1M memory:1M
expect_usage "nosuch:1M"
run copy pattern:1M memory:lots
expect_usage "memory:lots"
run copy pattern:4M memory:1M
expect_usage "DST memory:1M holds 1.00 MiB, less than the 4.00 MiB of SRC pattern:4M"
# A file the refused copy would have created is not left behind; one that
# was there already is left as it was.
run copy pattern:4M "file:$tmp/small?size=1M"
expect_usage "less than the 4.00 MiB of SRC pattern:4M"
[ ! -e "$tmp/small" ] || fail "$last: left $tmp/small behind"
head -c 1M /dev/urandom >"$tmp/kept"
cp "$tmp/kept" "$tmp/kept.orig"
run copy pattern:4M "file:$tmp/kept?size=1M"
expect_usage "less than the 4.00 MiB of SRC pattern:4M"
cmp -s "$tmp/kept" "$tmp/kept.orig" || fail "$last: changed $tmp/kept"

# Onto itself: the same URI, or the same file spelt differently.
head -c 1M /dev/urandom >"$tmp/x"
cp "$tmp/x" "$tmp/x.orig"
run copy "file:$tmp/x" "file:$tmp/x"
expect_usage "SRC and DST are the same backend (file:$tmp/x)"
mkdir "$tmp/sub"
run copy "file:$tmp/x" "file:$tmp/sub/../x"
expect_usage "are the same file"
ln -s "$tmp/x" "$tmp/link"
run copy "file:$tmp/link" "file:$tmp/x"
expect_usage "are the same file"
cmp "$tmp/x" "$tmp/x.orig" || fail "a refused copy changed the file"

# A usage error leaves no file behind.
run copy --workers 0 pattern:1M "file:$tmp/new"
expect_rc 2
[ ! -e "$tmp/new" ] || fail "a refused copy created DST"
echo "PASS"
