#!/usr/bin/env bash
# r3map mount's errors: usage errors exit 2, runtime failures exit 1, and
# the two common setup problems (no /dev/fuse, a busy mount point) say so.
. "$(dirname "$0")/fuse-lib.sh"

expect () { # status pattern args...
  local want=$1 pat=$2 st=0
  shift 2
  timeout 60 "$R3MAP" mount "$@" >/dev/null 2>"$tmp/err" || st=$?
  [ "$st" = "$want" ] || die "mount $*: status $st, wanted $want: $(cat "$tmp/err")"
  grep -q -- "$pat" "$tmp/err" || die "mount $*: message: $(cat "$tmp/err")"
}

"$R3MAP" mount --help | grep -q -- '--at=DIR' || die "help text"
expect 2 "--at DIR is required" memory:1M
expect 2 "try 'r3map mount --help'" memory:1M
expect 2 "not one of: fuse" --frontend nbd --at "$mnt" memory:1M
expect 2 "REMOTE" --at "$mnt"
expect 2 "push-interval" --push-interval 5parsecs --at "$mnt" memory:1M
expect 2 "readahead" --readahead 5000 --at "$mnt" memory:1M
expect 2 "nosuch" --at "$mnt" nosuch:1M
expect 1 "$tmp/missing" --at "$tmp/missing" memory:1M
expect 1 "s.sock" --at "$mnt" "nbd+unix:///?socket=$tmp/s.sock"

mount -t tmpfs none "$mnt"
expect 1 "mount point is busy" --at "$mnt" memory:1M
umount "$mnt"

# /dev hidden behind an empty tmpfs, in a namespace of its own.
st=0
unshare -m bash -c 'mount -t tmpfs none /dev && exec "$@"' sh \
  timeout 60 "$R3MAP" mount --at "$mnt" memory:1M 2>"$tmp/err" >/dev/null || st=$?
[ "$st" = 1 ] || die "without /dev/fuse: status $st: $(cat "$tmp/err")"
grep -q "/dev/fuse is missing" "$tmp/err" || die "without /dev/fuse: $(cat "$tmp/err")"
! mountpoint -q "$mnt" || die "something got mounted"
echo PASS
