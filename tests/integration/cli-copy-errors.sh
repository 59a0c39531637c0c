#!/usr/bin/env bash
# Runtime failures exit 1 with a message naming the backend and what
# failed: a missing source, a destination in a missing directory, a
# read-only file system, a file system that fills up mid-copy.
. "$(dirname "$0")/cli-lib.sh"
requires unshare
unshare -m true 2>/dev/null || { echo "SKIP: cannot create a mount namespace (needs root)"; exit 77; }

run copy "file:$tmp/nope" memory:1M
expect_rc 1
expect_err "r3map: copy: "
expect_err "$tmp/nope"
# The wording is the file backend's; any that says the file is missing.
grep -qiE "no such file|does not exist" "$tmp/err" || fail "$last: no reason given"
expect_err_prefixed

run copy pattern:1M "file:$tmp/no/such/dir/x"
expect_rc 1
expect_err "$tmp/no/such/dir/x"
expect_err_prefixed

# The mounts live in a private mount namespace that vanishes with it.
mnt="$tmp/mnt"
mkdir "$mnt"
in_ns() {
  last="r3map in a mount namespace: $1"
  set +e
  unshare -m bash -c "mount -t tmpfs -o size=1M r3map-test '$mnt' && $1" \
    _ "$R3MAP" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  set -e
}

# A read-only file system: the open for writing fails.
in_ns "head -c 1M /dev/zero >'$mnt/x' && mount -o remount,ro '$mnt' && \"\$1\" copy pattern:1M 'file:$mnt/x'"
expect_rc 1
expect_err "file:$mnt/x"
expect_err "Read-only file system"
expect_err_prefixed

# A full file system: creating the 8 MiB file works (sparse), writing the
# second MiB fails.
in_ns "\"\$1\" copy pattern:8M 'file:$mnt/x'"
expect_rc 1
expect_err "r3map: copy: copying pattern:8M to file:$mnt/x failed"
expect_err "No space left on device"
grep -q "size=" "$tmp/err" && fail "the message quotes the size= r3map added"
expect_err_prefixed
echo "PASS"
