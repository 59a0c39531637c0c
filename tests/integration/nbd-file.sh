#!/usr/bin/env bash
# A file export (a backend that blocks, so the server's worker pool runs
# it): nbdcopy with four connections, fio with verification, sparse map
# through nbdinfo, and the data in the file after SIGTERM.
. "$(dirname "$0")/nbd-lib.sh"
need nbdcopy nbdinfo fio

head -c $((16 << 20)) /dev/urandom >"$tmp/src"
truncate -s 32M "$tmp/src"                 # data, then a hole
serve --listen "nbd+unix:///?socket=$tmp/s" -v "file:$tmp/img?size=32M"
u=$(sock_uri "$tmp/s" "")
nbdcopy --connections=4 "$tmp/src" "$u"
nbdcopy --connections=4 "$u" "$tmp/back"
cmp "$tmp/src" "$tmp/back" || die "round trip differs"
grep -q 'worker pool' "$tmp/serve.err" || die "file export not on the pool"

# base:allocation from the file's extents: the tail is a hole.
nbdinfo --map "$u" | tail -n 1 | grep -q 'hole' || die "no hole in the map"

fio --name=verify --ioengine=nbd --uri="$u" --rw=randrw --bs=16k \
    --iodepth=32 --size=8M --offset=16M --verify=crc32c --do_verify=1 \
    --verify_fatal=1 --output="$tmp/fio.out" \
  || { cat "$tmp/fio.out" >&2; die "fio failed"; }

stop_server || die "exit status after SIGTERM"
cmp -n $((16 << 20)) "$tmp/src" "$tmp/img" || die "file content after exit"
echo PASS
