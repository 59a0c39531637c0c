#!/usr/bin/env bash
# r3map copy --verify and r3map compare over a long link: nbdkit behind
# bench/proxy/delay-proxy at 40 ms round trip.  Verification keeps many
# reads in flight on a remote side, so it costs about what the copy costs;
# read one 128 KiB piece per round trip, the 64 MiB here took 20 s.  The
# bounds below are loose on purpose (the suite shares a small machine):
# they only tell pipelined from not pipelined.  Differences must still be
# found, at the first differing chunk, also in the short last chunk.
. "$(dirname "$0")/nbd-client-lib.sh"
R3MAP=$TOOL
PROXY=${2:?usage: $0 R3MAP DELAY-PROXY}
requires nbdkit

size=$(( (64 << 20) + 3000 ))
# proxy NAME: a delay-proxy in front of $T/NAME.sock; sets URI to its
# nbd:// address.
proxy () {
  "$PROXY" --target "unix:$T/$1.sock" --delay 20ms --ready-file "$T/$1.p" \
    >/dev/null &
  PIDS+=($!)
  wait_for "$T/$1.p"
  URI="nbd://$(cat "$T/$1.p")/"
}
start_nbdkit pat pattern "$size"
proxy pat; src=$URI
start_nbdkit mem memory "$size"
proxy mem; mem=$URI
start_nbdkit null null "$size"
proxy null; null=$URI

now () { date +%s%N; }
# timed LIMIT_S CMD...: run CMD, status in $rc, output in $T/out, $T/err;
# fail if it took LIMIT_S seconds or more.
timed () {
  local limit=$1; shift
  local t0 t1
  t0=$(now)
  rc=0
  "$@" >"$T/out" 2>"$T/err" || rc=$?
  t1=$(now)
  took_ms=$(( (t1 - t0) / 1000000 ))
  [ "$took_ms" -lt $(( limit * 1000 )) ] \
    || { cat "$T/err" >&2; fail "'$*' took ${took_ms} ms, not under ${limit} s"; }
}
# verified_under LIMIT_S: the summary's "verified in" time is below it.
verified_under () {
  local v
  v=$(sed -n 's/.*verified in \([0-9.]*\) s$/\1/p' "$T/err")
  [ -n "$v" ] || { cat "$T/err" >&2; fail "no 'verified in N s' in the summary"; }
  /usr/bin/python3 -c "import sys; sys.exit(not $v < $1)" \
    || fail "verification took $v s, not under $1 s"
}

# Remote source into a local file, then into a remote destination (both
# sides remote).
timed 30 "$R3MAP" copy --no-progress --verify "$src" "file:$T/out.img"
[ "$rc" -eq 0 ] || { cat "$T/err" >&2; fail "copy --verify to a file: status $rc"; }
verified_under 10
timed 30 "$R3MAP" copy --no-progress --verify "$src" "$mem"
[ "$rc" -eq 0 ] || { cat "$T/err" >&2; fail "copy --verify to NBD: status $rc"; }
verified_under 10

# Identical over the link: the hash is the one of the local pattern.
"$R3MAP" compare pattern:$size "file:$T/out.img" >"$T/want"
timed 30 "$R3MAP" compare "$src" "$mem"
[ "$rc" -eq 0 ] || { cat "$T/err" >&2; fail "compare of equal exports: status $rc"; }
cmp -s "$T/out" "$T/want" || { cat "$T/out" "$T/want" >&2; fail "compare over the link: another verdict or hash"; }

# A destination that drops writes: copy --verify exits 3 at chunk 0.
timed 30 "$R3MAP" copy --no-progress --verify "$src" "$null"
[ "$rc" -eq 3 ] || { cat "$T/err" >&2; fail "copy --verify into null: status $rc, not 3"; }
grep -qF "differ in the chunk at offset 0 (chunk size 64 KiB)" "$T/err" \
  || { cat "$T/err" >&2; fail "copy --verify into null: no first differing chunk"; }

# A difference in the short last chunk, and one in the middle with 4 KiB
# chunks (windows of 16 MiB: the reads run ahead across window boundaries).
last=$(( size - 1 ))
printf 'X' | dd of="$T/out.img" bs=1 seek=$last conv=notrunc status=none
timed 30 "$R3MAP" compare "$src" "file:$T/out.img"
[ "$rc" -eq 3 ] || fail "compare with a changed last byte: status $rc, not 3"
grep -qF "the chunk at offset $(( 64 << 20 )) differs" "$T/out" \
  || { cat "$T/out" >&2; fail "compare: not the last chunk"; }
mid=$(( (40 << 20) + 12345 ))
printf 'X' | dd of="$T/out.img" bs=1 seek=$mid conv=notrunc status=none
timed 30 "$R3MAP" compare --chunk-size 4K "file:$T/out.img" "$src"
[ "$rc" -eq 3 ] || fail "compare with a changed middle byte: status $rc, not 3"
grep -qF "the chunk at offset $(( mid / 4096 * 4096 )) differs (chunk size 4 KiB)" "$T/out" \
  || { cat "$T/out" >&2; fail "compare --chunk-size 4K: not the first differing chunk"; }

# Reads that fail at random (one in five, so one of the first few of 64
# with near certainty): status 1, the offset named, no hang while the
# reads still in flight come back.
start_nbdkit bad pattern "$size" --filter=error error-pread=EIO \
  error-pread-rate=20%
proxy bad
timed 30 "$R3MAP" compare "$URI" pattern:$size
[ "$rc" -eq 1 ] || { cat "$T/err" "$T/out" >&2; fail "compare with failing reads: status $rc, not 1"; }
grep -qE "reading nbd://[^ ]* at offset [0-9]+: Input/output error" "$T/err" \
  || { cat "$T/err" >&2; fail "compare with failing reads: no offset in the message"; }
# The link dies mid-way (the proxy is killed): status 1 with the offset,
# at once, although 32 reads were in flight.  1 GiB at 200 ms round trip
# takes several seconds to compare, so 2.5 s is after the handshake and
# before the end.
start_nbdkit big pattern 1G
"$PROXY" --target "unix:$T/big.sock" --delay 100ms --ready-file "$T/big.p" \
  >/dev/null &
proxy_pid=$!
PIDS+=("$proxy_pid")
wait_for "$T/big.p"
( sleep 2.5; kill "$proxy_pid" ) &
timed 20 "$R3MAP" compare "nbd://$(cat "$T/big.p")/" pattern:1G
[ "$rc" -eq 1 ] || { cat "$T/err" "$T/out" >&2; fail "compare over a dying link: status $rc, not 1"; }
grep -qE "reading nbd://[^ ]* at offset [0-9]+: " "$T/err" \
  || { cat "$T/err" >&2; fail "compare over a dying link: no offset in the message"; }
echo PASS
