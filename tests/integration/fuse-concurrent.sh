#!/usr/bin/env bash
# Concurrent readers and writers from several processes: fio writers with
# pwrite, each on its own 8 MiB, verify what they wrote while fio readers
# scan the whole file and a Python process writes and checks its own 16
# MiB through a shared mapping.  After unmount, a new mount (empty cache)
# verifies everything again, so it all reached the server.
# (fio's own mmap engine is not used: fio 3.33 writes the wrong offsets
# with it when offset= is set, on tmpfs as well.)
. "$(dirname "$0")/fuse-lib.sh"
need fio

serve --listen "nbd+unix:///?socket=$tmp/s" memory:64M
uri=$(sock_uri "$tmp/s" "")

writers () { # extra fio options
  printf '[global]\nfilename=%s\nbs=16k\nverify=crc32c\nverify_fatal=1\n' "$file"
  printf 'randrepeat=1\nioengine=psync\nrw=randwrite\nsize=8m\n%s\n' "$1"
  for i in 0 1 2; do printf '[pwrite%s]\noffset=%sm\n' $i $((i * 8)); done
}

# mapper.py FILE STATE write|check: random 16 KiB blocks in [32M, 48M)
# through a shared mapping, msync now and then, each block checked right
# after it is written; the expected bytes go to STATE.  check compares the
# range with STATE.
cat >"$tmp/mapper.py" <<'PY'
import mmap, os, random, sys
path, state, mode = sys.argv[1:4]
base, size, bs = 32 << 20, 16 << 20, 16 << 10
fd = os.open(path, os.O_RDWR)
m = mmap.mmap(fd, 0, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
if mode == "write":
    model = bytearray(m[base:base + size])
    rnd = random.Random(7)
    for i in range(2000):
        off = rnd.randrange(0, size // bs) * bs
        data = rnd.randbytes(bs)
        m[base + off:base + off + bs] = data
        model[off:off + bs] = data
        if m[base + off:base + off + bs] != data:
            sys.exit("block at %d reads back wrong" % (base + off))
        if i % 256 == 255:
            m.flush()
    m.flush()
    open(state, "wb").write(model)
else:
    if m[base:base + size] != open(state, "rb").read():
        sys.exit("mapped range differs from what was written")
m.close()
os.close(fd)
PY

fuse_mount --pull-workers 1 --push-interval 200ms "$uri"
{
  writers "do_verify=1"
  printf '[readers]\nrw=randread\nverify=null\nnumjobs=2\nsize=64m\noffset=0\n'
} >"$tmp/run.fio"
/usr/bin/python3 "$tmp/mapper.py" "$file" "$tmp/model" write &
mapper=$!
fio --output="$tmp/fio.out" "$tmp/run.fio" || { cat "$tmp/fio.out" >&2; die "fio"; }
wait "$mapper" || die "mapped writer"
fuse_unmount || die "unmount status $?"

fuse_mount "$uri"
writers "verify_only=1" >"$tmp/verify.fio"
fio --output="$tmp/fio2.out" "$tmp/verify.fio" \
  || { cat "$tmp/fio2.out" >&2; die "pwrite data differs after remount"; }
/usr/bin/python3 "$tmp/mapper.py" "$file" "$tmp/model" check \
  || die "mapped data differs after remount"
fuse_unmount || die "second unmount status $?"
echo PASS
