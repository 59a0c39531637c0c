#!/usr/bin/env bash
# SIGTERM, SIGINT and SIGHUP end r3map mount with status 0 after writing
# everything back: even with the file still open and mapped by another
# process that wrote through the mapping and never called msync.
. "$(dirname "$0")/fuse-lib.sh"
need nbdcopy cmp

serve --listen "nbd+unix:///?socket=$tmp/s" memory:16M
uri=$(sock_uri "$tmp/s" "")

# holder.py FILE OUT READY: write 2 MiB at 5 MiB through a shared mapping,
# save them to OUT, create READY, then keep the mapping until killed.
cat >"$tmp/holder.py" <<'PY'
import mmap, os, signal, sys
data = os.urandom(2 << 20)
fd = os.open(sys.argv[1], os.O_RDWR)
m = mmap.mmap(fd, 0, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
m[5 << 20:7 << 20] = data
open(sys.argv[2], "wb").write(data)
open(sys.argv[3], "w").close()
signal.pause()
PY

for sig in TERM INT HUP; do
  # No background push: only the shutdown can send the data.
  fuse_mount --push-interval 0 "$uri"
  rm -f "$tmp/ready"
  /usr/bin/python3 "$tmp/holder.py" "$file" "$tmp/want" "$tmp/ready" &
  holder=$!
  for _ in $(seq 1 400); do [ -e "$tmp/ready" ] && break; sleep 0.05; done
  [ -e "$tmp/ready" ] || die "the mapping process did not start"

  kill -$sig "$mount_pid"
  st=0
  wait_exit "$mount_pid" 60 || st=$?
  [ "$st" != 124 ] || die "r3map mount did not exit after SIG$sig"
  [ "$st" = 0 ] || die "status $st after SIG$sig: $(cat "$tmp/mount.err")"
  mount_pid=
  grep -q "unmounting" "$tmp/mount.err" || die "no message: $(cat "$tmp/mount.err")"
  ! mountpoint -q "$mnt" || die "still mounted after SIG$sig"
  kill "$holder" 2>/dev/null || true
  wait "$holder" 2>/dev/null || true

  nbdcopy "$uri" "$tmp/server"
  cmp -i 0:$((5 << 20)) -n $((2 << 20)) "$tmp/want" "$tmp/server" \
    || die "SIG$sig: the server lacks the mapped writes"
done
echo PASS
