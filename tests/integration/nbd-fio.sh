#!/usr/bin/env bash
# fio's nbd engine (libnbd, many requests in flight) against r3map serve:
# a short random write/read run with verification, over a Unix socket and
# over TCP, with busy polling on (default) and off (--busy-poll 0).
. "$(dirname "$0")/nbd-lib.sh"
need fio

cd "$tmp"   # fio leaves its verify-state files in the working directory
for poll in "" "--busy-poll 0"; do
  for transport in unix tcp; do
    stop_server || die "server exit status"
    if [ "$transport" = unix ]; then
      # shellcheck disable=SC2086
      serve --listen "nbd+unix:///?socket=$tmp/s" $poll memory:64M
      uri=$(sock_uri "$tmp/s" "")
    else
      # shellcheck disable=SC2086
      serve --listen nbd://127.0.0.1:0 $poll memory:64M
      uri=$server_uri/
    fi
    what="$transport ${poll:-polling}"
    fio --name=verify --ioengine=nbd --uri="$uri" \
        --rw=randwrite --bs=4k --iodepth=32 --size=16M --verify=crc32c \
        --verify_fatal=1 --do_verify=1 --output="$tmp/fio.out" \
      || { cat "$tmp/fio.out" >&2; die "fio failed ($what)"; }
    grep -q 'err= 0' "$tmp/fio.out" \
      || { cat "$tmp/fio.out" >&2; die "fio errors ($what)"; }
    fio --name=seq --ioengine=nbd --uri="$uri" \
        --rw=write --bs=1M --iodepth=16 --size=32M --verify=md5 \
        --do_verify=1 --verify_fatal=1 --output="$tmp/fio2.out" \
      || { cat "$tmp/fio2.out" >&2; die "fio sequential failed ($what)"; }
    rm -f ./*.state
  done
done
echo PASS
