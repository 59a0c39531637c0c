#!/usr/bin/env bash
# What r3map copy prints: one summary line when stderr is not a terminal,
# nothing with --quiet, a progress bar on a pseudo-terminal (or with
# --progress), erased before the summary.
. "$(dirname "$0")/cli-lib.sh"
requires script

summary='^r3map: copied 8\.00 MiB in [0-9.]+ s \([0-9.]+ [KMGT]?i?B/s\)'

run copy pattern:8M memory:8M
expect_rc 0
expect_no_out
[ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "not one summary line"
grep -qE "${summary}\$" "$tmp/err" || fail "summary: $(cat "$tmp/err")"
grep -q $'\r' "$tmp/err" && fail "a carriage return without a terminal"

run copy --verify pattern:8M memory:8M
expect_rc 0
grep -qE "${summary}, verified in [0-9.]+ s\$" "$tmp/err" \
  || fail "verified summary: $(cat "$tmp/err")"

run copy --quiet --verify pattern:8M memory:8M
expect_rc 0
expect_no_out
expect_no_err

# --progress draws even into a file: frames start with a carriage return,
# the last one at 100%, then the line is erased and the summary follows.
run copy --progress pattern:64M memory:64M
expect_rc 0
grep -q $'\r\\[' "$tmp/err" || fail "--progress: no bar frame"
grep -qF "100%  64.0 MiB / 64.0 MiB" "$tmp/err" || fail "--progress: no final frame"
tail -c 200 "$tmp/err" | grep -qE $'\r\e\\[Kr3map: copied 64\\.0 MiB' \
  || fail "--progress: bar not erased before the summary"

# On a pseudo-terminal the bar is the default; --no-progress turns it off.
# script -e returns r3map's status; -q keeps its own messages away.
set +e
script -qec "$R3MAP copy pattern:64M memory:64M" /dev/null >"$tmp/tty" 2>&1
rc=$?
set -e
last="r3map copy (on a pty)"
expect_rc 0
grep -qF "ETA" "$tmp/tty" || fail "pty: no progress bar"
grep -qF "100%" "$tmp/tty" || fail "pty: no final frame"
grep -qF "r3map: copied 64.0 MiB" "$tmp/tty" || fail "pty: no summary"

set +e
script -qec "$R3MAP copy --no-progress pattern:64M memory:64M" /dev/null \
  >"$tmp/tty" 2>&1
rc=$?
set -e
last="r3map copy --no-progress (on a pty)"
expect_rc 0
grep -qF "ETA" "$tmp/tty" && fail "pty --no-progress: a bar was drawn"
grep -qF "r3map: copied 64.0 MiB" "$tmp/tty" || fail "pty --no-progress: no summary"
echo "PASS"
