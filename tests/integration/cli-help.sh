#!/usr/bin/env bash
# The help texts: top-level, per command (both spellings), version.
. "$(dirname "$0")/cli-lib.sh"

run --help
expect_rc 0
expect_out "Usage: r3map COMMAND"
expect_out "Exit status: 0 success, 1 runtime failure"
expect_out "docs/cli.md"
expect_no_err
top=$(cat "$tmp/out")

run -h
expect_rc 0
[ "$(cat "$tmp/out")" = "$top" ] || fail "-h and --help differ"

run help
expect_rc 0
[ "$(cat "$tmp/out")" = "$top" ] || fail "'help' and --help differ"

run help --help
expect_rc 0
[ "$(cat "$tmp/out")" = "$top" ] || fail "'help --help' and --help differ"

run --version
expect_rc 0
grep -qE '^r3map [0-9]+\.[0-9]+\.[0-9]+$' "$tmp/out" || fail "--version: $(cat "$tmp/out")"

# Every command listed in the top-level help has a help of its own, the
# same through `help CMD` and `CMD --help`, that documents --help and the
# exit status.
cmds=$(sed -n '/^Commands:/,/^$/p' <<<"$top" | awk 'NF > 1 {print $1}')
[ -n "$cmds" ] || fail "no commands listed in --help"
for c in $cmds; do
  [ "$c" = help ] && continue
  run help "$c"
  expect_rc 0
  expect_out "Usage: r3map $c"
  expect_out "--help"
  expect_out "Exit status:"
  text=$(cat "$tmp/out")
  run "$c" --help
  expect_rc 0
  [ "$(cat "$tmp/out")" = "$text" ] || fail "'help $c' and '$c --help' differ"
  run "$c" -h
  expect_rc 0
  [ "$(cat "$tmp/out")" = "$text" ] || fail "'help $c' and '$c -h' differ"
done

# Help into a full disk is a failure, not a silent success.
if [ -w /dev/full ]; then
  set +e; "$R3MAP" --help >/dev/full 2>"$tmp/err"; rc=$?; set -e
  last="r3map --help >/dev/full"
  expect_rc 1
  expect_err "r3map: writing to standard output"
fi
echo "PASS"
