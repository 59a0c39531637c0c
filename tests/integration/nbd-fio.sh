#!/usr/bin/env bash
# fio's nbd engine (libnbd, many requests in flight) against r3map serve:
# a short random write/read run with verification.
. "$(dirname "$0")/nbd-lib.sh"
need fio

serve --listen "nbd+unix:///?socket=$tmp/s" memory:64M
cd "$tmp"   # fio leaves its verify-state files in the working directory
fio --name=verify --ioengine=nbd --uri="$(sock_uri "$tmp/s" "")" \
    --rw=randwrite --bs=4k --iodepth=32 --size=16M --verify=crc32c \
    --verify_fatal=1 --do_verify=1 --output="$tmp/fio.out" \
  || { cat "$tmp/fio.out" >&2; die "fio failed"; }
grep -q 'err= 0' "$tmp/fio.out" || { cat "$tmp/fio.out" >&2; die "fio errors"; }
fio --name=seq --ioengine=nbd --uri="$(sock_uri "$tmp/s" "")" \
    --rw=write --bs=1M --iodepth=16 --size=32M --verify=md5 \
    --do_verify=1 --verify_fatal=1 --output="$tmp/fio2.out" \
  || { cat "$tmp/fio2.out" >&2; die "fio sequential failed"; }
echo PASS
