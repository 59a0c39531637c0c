#!/usr/bin/env bash
# bench/proxy/delay-proxy carries an NBD session intact in both directions
# (a pattern export read and a memory export written and read through it)
# and never delivers faster than its delay: a session of several round
# trips through a 25 ms one-way delay takes at least 50 ms.
. "$(dirname "$0")/nbd-client-lib.sh"
PROXY=${2:?usage: $0 TOOL DELAY-PROXY}
requires nbdkit

start_nbdkit pat pattern 8M
"$PROXY" --target "unix:$T/pat.sock" --delay 25ms --ready-file "$T/p1" \
  >/dev/null &
PIDS+=($!)
wait_for "$T/p1"
uri="nbd://$(cat "$T/p1")/?connections=2"
/usr/bin/python3 - "$T/expect" <<'PY'
import struct, sys
with open(sys.argv[1], "wb") as f:
    f.write(b"".join(struct.pack(">Q", o) for o in range(0, 8 << 20, 8)))
PY
t0=$(date +%s%N)
"$TOOL" read "$uri" 0 4096 > /dev/null
t1=$(date +%s%N)
[ $(( (t1 - t0) / 1000000 )) -ge 50 ] || fail "faster than the delay allows: $(( (t1 - t0) / 1000000 )) ms"
"$TOOL" dump "$uri" 256K 16 | cmp - "$T/expect" || fail "pattern differs through the proxy"

start_nbdkit mem memory 8M
"$PROXY" --target "unix:$T/mem.sock" --delay 1ms --ready-file "$T/p2" \
  >/dev/null &
PIDS+=($!)
wait_for "$T/p2"
uri="nbd://$(cat "$T/p2")/"
head -c $((8 << 20)) /dev/urandom > "$T/data"
"$TOOL" load "$uri" 64K 32 < "$T/data"
"$TOOL" dump "$uri" 1M 4 | cmp - "$T/data" || fail "data differs through the proxy"
echo PASS
