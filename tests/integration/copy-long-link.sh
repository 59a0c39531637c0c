#!/usr/bin/env bash
# r3map copy with its default options over a long link: nbdkit pattern
# behind bench/proxy/delay-proxy at 40 ms round trip, so the engine sends
# 1 MiB runs and grows its window 4x.  The copy must be byte for byte the
# pattern (the source is 64 MiB plus a short last chunk), and
# still correct with one chunk per request and a small window.
. "$(dirname "$0")/nbd-client-lib.sh"
R3MAP=$TOOL
PROXY=${2:?usage: $0 R3MAP DELAY-PROXY}
requires nbdkit

size=$(( (64 << 20) + 3000 ))
start_nbdkit pat pattern "$size"
"$PROXY" --target "unix:$T/pat.sock" --delay 20ms --ready-file "$T/p" \
  >/dev/null &
PIDS+=($!)
wait_for "$T/p"
uri="nbd://$(cat "$T/p")/"
/usr/bin/python3 - "$T/expect" "$size" <<'PY'
import struct, sys
n = int(sys.argv[2])
with open(sys.argv[1], "wb") as f:
    data = b"".join(struct.pack(">Q", o) for o in range(0, n + 8, 8))
    f.write(data[:n])
PY
for opts in "" "--request-size 512 --window 8" "--chunk-size 4K --request-size 3M"; do
  rm -f "$T/out"
  # shellcheck disable=SC2086
  "$R3MAP" copy --no-progress $opts "$uri" "file:$T/out" 2>"$T/log" \
    || { cat "$T/log"; fail "copy over the long link failed ($opts)"; }
  cmp "$T/out" "$T/expect" || fail "copy differs from the pattern ($opts)"
done
echo PASS
