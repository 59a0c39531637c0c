#!/usr/bin/env bash
# Ctrl-C (SIGINT) or SIGTERM during a copy: r3map says how far it got,
# stops the pull, flushes what DST already holds and exits with 128 + the
# signal's number; a second signal ends it at once when stopping hangs.  A
# background job of a shell script, which starts with SIGINT ignored, keeps
# ignoring it.
. "$(dirname "$0")/cli-lib.sh"
requires timeout cmp

shm=/dev/shm/r3map-cli-interrupt.$$
cleanup_hooks+=("rm -f '$shm'")

# signal_copy SIG SRC DST: the copy, sent SIG after a second.
signal_copy() {
  last="r3map copy $2 $3, SIG$1 after 1 s"
  set +e
  timeout --preserve-status -s "$1" 1 "$R3MAP" copy "$2" "$3" \
    >"$tmp/out" 2>"$tmp/err"
  rc=$?
  set -e
}

signal_copy INT pattern:64G memory:64G
expect_rc 130
expect_err "r3map: copy: interrupted (SIGINT) after "
expect_err ": memory:64G holds part of pattern:64G"
expect_err_prefixed

# Into a file: what was copied before the signal is there and right.
signal_copy TERM pattern:64G "file:$shm"
expect_rc 143
expect_err "r3map: copy: interrupted (SIGTERM) after "
expect_err "file:$shm holds part of pattern:64G"
expect_err_prefixed
expected_pattern $((1 << 20)) "$tmp/want"
head -c $((1 << 20)) "$shm" | cmp -s - "$tmp/want" \
  || fail "$last: the first MiB of DST is not the pattern"
rm -f "$shm"

# A source that stops answering (the server is stopped): the first SIGTERM
# is reported at once, and stopping waits for the requests in flight (a
# copy waits for its final flush as long as it takes); a second SIGTERM a
# few seconds later ends r3map at once.
"$R3MAP" serve -q --listen "nbd+unix:///?socket=$tmp/s" \
  --pid-file "$tmp/pid" pattern:16G >/dev/null 2>&1 &
spid=$!
cleanup_hooks+=("kill -CONT $spid 2>/dev/null; kill $spid 2>/dev/null")
for _ in $(seq 100); do [ -s "$tmp/pid" ] && break; sleep 0.05; done
[ -s "$tmp/pid" ] || fail "r3map serve did not start"
"$R3MAP" copy "nbd+unix:///?socket=$tmp/s" memory:16G >"$tmp/out" 2>"$tmp/err" &
cpid=$!
sleep 1      # connected and copying (16 GiB take several seconds)
kill -STOP "$spid"
sleep 0.3
kill -TERM "$cpid"
sleep 2.5
last="r3map copy from a stopped server, SIGTERM"
kill -0 "$cpid" 2>/dev/null || fail "$last: it ended while its source hangs"
expect_err "r3map: copy: interrupted (SIGTERM) after "
kill -TERM "$cpid"
for _ in $(seq 20); do kill -0 "$cpid" 2>/dev/null || break; sleep 0.05; done
kill -0 "$cpid" 2>/dev/null && fail "$last: a second SIGTERM did not end it"
set +e
wait "$cpid"
rc=$?
set -e
expect_rc 143
kill -CONT "$spid"

# A shell script's background job has SIGINT ignored; r3map must not
# start catching it (nor stop the copy).
"$R3MAP" copy -q pattern:4G memory:4G >"$tmp/out" 2>"$tmp/err" &
pid=$!
sleep 0.3
kill -INT "$pid" 2>/dev/null || true
set +e
wait "$pid"
rc=$?
set -e
last="r3map copy in the background, SIGINT after 0.3 s"
expect_rc 0
grep -q interrupted "$tmp/err" && fail "$last: it took the ignored SIGINT"
echo "PASS"
