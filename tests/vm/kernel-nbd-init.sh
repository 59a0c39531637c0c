#!/bin/sh
# /init of the guest that kernel-nbd.sh boots: the Linux kernel's NBD client
# (nbd.ko + nbd-client) against `r3map serve`.  Every check prints one line
# "R3M-VM PASS name" or "R3M-VM FAIL name: why"; "R3M-VM DONE" ends the run.
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
ip link set lo up

pass() { echo "R3M-VM PASS $1"; }
fail() { echo "R3M-VM FAIL $1: $2"; }
check() { name=$1; shift; if "$@" >/tmp/out 2>&1; then pass "$name"; else fail "$name" "$(tail -3 /tmp/out | tr '\n' ' ')"; fi; }
finish() { echo "R3M-VM DONE"; sync; poweroff -f; }

if ! insmod /nbd.ko nbds_max=4; then fail insmod "nbd.ko did not load"; finish; fi

r3map serve --quiet --pid-file /tmp/serve.pid \
  --listen 'nbd+unix:///?socket=/tmp/s' --listen nbd://127.0.0.1:10809 \
  -e disk=memory:64M -e pat=pattern:16M &
server=$!
i=0
while [ ! -s /tmp/serve.pid ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
[ -s /tmp/serve.pid ] || { fail serve "r3map serve did not start"; finish; }

# Over the Unix socket, one connection.
check connect-unix nbd-client -unix /tmp/s -N disk /dev/nbd0 -b 4096
size=$(blockdev --getsize64 /dev/nbd0)
if [ "$size" = 67108864 ]; then pass size; else fail size "got '$size'"; fi

dd if=/dev/urandom of=/tmp/data bs=1M count=16 2>/dev/null
check write-direct dd if=/tmp/data of=/dev/nbd0 bs=1M oflag=direct
check flush blockdev --flushbufs /dev/nbd0
check read-direct dd if=/dev/nbd0 of=/tmp/back bs=1M count=16 iflag=direct
check same-data cmp /tmp/data /tmp/back

# Small writes at odd 4 KiB offsets, read back through the page cache.
dd if=/dev/urandom of=/tmp/small bs=4096 count=3 2>/dev/null
check write-small dd if=/tmp/small of=/dev/nbd0 bs=4096 seek=12345 conv=fsync
echo 3 > /proc/sys/vm/drop_caches
check read-small sh -c 'dd if=/dev/nbd0 bs=4096 skip=12345 count=3 2>/dev/null | cmp - /tmp/small'

check discard blkdiscard -o 33554432 -l 1048576 /dev/nbd0
check disconnect nbd-client -d /dev/nbd0

# Over TCP with four connections (the server advertises multi-conn): what
# the first connection wrote is there, and parallel writers on different
# connections all land.
check connect-tcp-multi nbd-client 127.0.0.1 10809 -N disk /dev/nbd1 -b 4096 -C 4
check persisted sh -c 'dd if=/dev/nbd1 bs=1M count=16 iflag=direct 2>/dev/null | cmp - /tmp/data'
dd if=/dev/urandom of=/tmp/p1 bs=1M count=8 2>/dev/null
dd if=/dev/urandom of=/tmp/p2 bs=1M count=8 2>/dev/null
dd if=/tmp/p1 of=/dev/nbd1 bs=64K seek=640 oflag=direct 2>/dev/null &
a=$!
dd if=/tmp/p2 of=/dev/nbd1 bs=64K seek=896 oflag=direct 2>/dev/null &
b=$!
if wait $a && wait $b; then pass parallel-writes; else fail parallel-writes "a dd failed"; fi
check parallel-read-1 sh -c 'dd if=/dev/nbd1 bs=64K skip=640 count=128 iflag=direct 2>/dev/null | cmp - /tmp/p1'
check parallel-read-2 sh -c 'dd if=/dev/nbd1 bs=64K skip=896 count=128 iflag=direct 2>/dev/null | cmp - /tmp/p2'

# A read-only export: the kernel marks the device read-only, reads see the
# pattern (each 8-byte word holds its own offset, big-endian).
check connect-readonly nbd-client -unix /tmp/s -N pat /dev/nbd2 -b 4096
ro=$(blockdev --getro /dev/nbd2)
if [ "$ro" = 1 ]; then pass read-only-flag; else fail read-only-flag "getro said '$ro'"; fi
word=$(dd if=/dev/nbd2 bs=8 skip=4097 count=1 iflag=direct 2>/dev/null | hexdump -v -e '8/1 "%02x"')
if [ "$word" = 0000000000008008 ]; then pass pattern-read; else fail pattern-read "word at 32776 is '$word'"; fi
if dd if=/tmp/small of=/dev/nbd2 bs=4096 count=1 oflag=direct 2>/dev/null; then
  fail read-only-write "a write to the read-only device succeeded"
else
  pass read-only-write
fi
check disconnect-readonly nbd-client -d /dev/nbd2

# The server goes away under a connected device: I/O fails, nothing hangs.
# (A child that exited stays a zombie of this shell until waited for, so
# "gone" is: no /proc entry, or state Z.)
gone() { st=$(awk '{print $3}' /proc/$server/stat 2>/dev/null); [ -z "$st" ] || [ "$st" = Z ]; }
kill -TERM $server
i=0
while ! gone && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
if gone; then pass server-exit; else fail server-exit "r3map serve still running 15 s after SIGTERM"; fi
if timeout 60 dd if=/dev/nbd1 of=/dev/null bs=1M count=1 skip=40 iflag=direct 2>/dev/null; then
  fail dead-server-io "a read after the server exited succeeded"
else
  pass dead-server-io
fi
nbd-client -d /dev/nbd1 >/dev/null 2>&1
finish
