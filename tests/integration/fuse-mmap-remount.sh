#!/usr/bin/env bash
# mmap MAP_SHARED writes from one process reach the server after msync,
# and survive unmount and a new mount (whose cache starts empty).
. "$(dirname "$0")/fuse-lib.sh"
need nbdcopy cmp

serve --listen "nbd+unix:///?socket=$tmp/s" memory:32M
uri=$(sock_uri "$tmp/s" "")

# mapwrite FILE OUT: write 5 MiB of random bytes at 3 MiB + 123 through a
# shared mapping, msync, and save them to OUT.
cat >"$tmp/mapwrite.py" <<'PY'
import mmap, os, sys
data = os.urandom(5 << 20)
fd = os.open(sys.argv[1], os.O_RDWR)
m = mmap.mmap(fd, 0, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
m[(3 << 20) + 123:(8 << 20) + 123] = data
m.flush()                       # msync(MS_SYNC)
m.close()
os.close(fd)
open(sys.argv[2], "wb").write(data)
PY
# mapread FILE OUT: read the same range through a shared mapping.
cat >"$tmp/mapread.py" <<'PY'
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
m = mmap.mmap(fd, 0, mmap.MAP_SHARED, mmap.PROT_READ)
open(sys.argv[2], "wb").write(m[(3 << 20) + 123:(8 << 20) + 123])
m.close()
os.close(fd)
PY

# No background push: only msync can have sent the data.
fuse_mount --push-interval 0 "$uri"
/usr/bin/python3 "$tmp/mapwrite.py" "$file" "$tmp/want" || die "mmap write"
nbdcopy "$uri" "$tmp/server"
cmp -i 0:$(((3 << 20) + 123)) -n $((5 << 20)) "$tmp/want" "$tmp/server" \
  || die "the server lacks the msynced data"
fuse_unmount || die "unmount status $?"

fuse_mount "$uri"
/usr/bin/python3 "$tmp/mapread.py" "$file" "$tmp/got" || die "mmap read"
cmp "$tmp/want" "$tmp/got" || die "data differs after remount"
fuse_unmount || die "second unmount status $?"
echo PASS
