#!/usr/bin/env bash
# r3map mount --frontend fuse over r3map serve: the printed path is a file
# of the remote's size, writes reach the server after fsync, reads return
# what the server holds, and fusermount3 -u ends r3map mount with status 0
# and a summary of what moved.
. "$(dirname "$0")/fuse-lib.sh"
need nbdcopy cmp

serve --listen "nbd+unix:///?socket=$tmp/s" memory:64M
uri=$(sock_uri "$tmp/s" "")
head -c 8M /dev/urandom >"$tmp/a"
nbdcopy "$tmp/a" "$uri"          # 8 MiB the mount must see

fuse_mount --frontend fuse "$uri"
[ "$file" = "$mnt/region" ] || die "path $file, wanted $mnt/region"
[ "$(stat -c %s "$file")" = $((64 << 20)) ] || die "size $(stat -c %s "$file")"
cmp -n $((8 << 20)) "$tmp/a" "$file" || die "read differs from the server"

head -c 3M /dev/urandom >"$tmp/b"
dd if="$tmp/b" of="$file" bs=1M seek=20 conv=notrunc,fsync status=none \
  || die "dd into the mount"
nbdcopy "$uri" "$tmp/all"        # what the server has now
cmp -i 0:$((20 << 20)) -n $((3 << 20)) "$tmp/b" "$tmp/all" \
  || die "the server lacks the fsynced write"

st=0
fuse_unmount || st=$?
[ "$st" = 0 ] || die "r3map mount exited with $st: $(cat "$tmp/mount.err")"
[ "$(summary_field chunks)" = 1024 ] || die "summary: $(cat "$tmp/mount.err")"
[ "$(summary_field pushed)" -ge 48 ] || die "summary pushed: $(cat "$tmp/mount.err")"
! mountpoint -q "$mnt" || die "still mounted"

# --name, and a read-only mount refuses writes.
fuse_mount --name disk.img --read-only "$uri"
[ "$file" = "$mnt/disk.img" ] || die "--name: $file"
if dd if=/dev/zero of="$file" bs=4k count=1 conv=notrunc status=none 2>"$tmp/dd.err"; then
  die "wrote to a read-only mount"
fi
grep -q "Read-only file system" "$tmp/dd.err" || die "dd said: $(cat "$tmp/dd.err")"
fuse_unmount || die "second unmount status $?"
echo PASS
