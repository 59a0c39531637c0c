#!/usr/bin/env bash
# r3map copy with NBD URIs on either side: from nbdkit pattern into a file
# (verified, and byte for byte against the pattern), from a file into an
# nbdkit memory export (read back with libnbd's nbdcopy), and a clear
# error when the server is not there or is killed in the middle.
. "$(dirname "$0")/nbd-client-lib.sh"
R3MAP=$TOOL
requires nbdkit nbdcopy

start_nbdkit pat pattern 64M
"$R3MAP" copy --verify --no-progress "$URI" "file:$T/out" 2>"$T/log" \
  || { cat "$T/log"; fail "copy from nbd failed"; }
grep -q verified "$T/log" || { cat "$T/log"; fail "not verified"; }
/usr/bin/python3 - "$T/expect" <<'PY'
import struct, sys
with open(sys.argv[1], "wb") as f:
    for base in range(0, 64 << 20, 1 << 20):
        f.write(b"".join(struct.pack(">Q", o) for o in range(base, base + (1 << 20), 8)))
PY
cmp "$T/out" "$T/expect" || fail "copy from nbd differs from the pattern"

start_nbdkit mem memory 64M
head -c $((64 << 20)) /dev/urandom > "$T/data"
"$R3MAP" copy --no-progress "file:$T/data" "$URI" 2>"$T/log" \
  || { cat "$T/log"; fail "copy into nbd failed"; }
nbdcopy "$URI" "$T/back"
cmp "$T/back" "$T/data" || fail "copy into nbd differs"

rc=0
"$R3MAP" copy --no-progress "nbd+unix:///?socket=$T/nobody" "file:$T/x" \
  2>"$T/log" || rc=$?
[ "$rc" -eq 1 ] || { cat "$T/log"; fail "exit $rc for a missing server"; }
grep -q "nbd+unix:///?socket=$T/nobody" "$T/log" || { cat "$T/log"; fail "message does not name the URI"; }

# Killed mid-copy (reads take 20 ms, the whole would take seconds): the
# message says what happened in the client's words, not an errno's.
start_nbdkit victim --filter=delay pattern 4G rdelay=20ms
rc=0
timeout 60 "$R3MAP" copy --no-progress "$URI" "file:$T/y" 2>"$T/log" &
copier=$!
sleep 0.5
kill -9 "$(cat "$T/victim.pid")"
wait "$copier" || rc=$?
[ "$rc" -eq 1 ] || { cat "$T/log"; fail "exit $rc when the server died (124 = hung)"; }
grep -q "from nbd+unix:///?socket=$T/victim.sock: server closed the connection" "$T/log" \
  || { cat "$T/log"; fail "unclear message when the server died"; }
echo PASS
