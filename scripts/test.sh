#!/usr/bin/env bash
# The whole test suite, as CI runs it:
#   1. unit, integration and stress tests on a normal build;
#   2. unit and stress tests again under ASan+UBSan;
#   3. the concurrency (stress) tests under TSan;
#   4. each libFuzzer harness for a bounded time from its seed corpus.
# Installs what is missing first.  Ends with "N passed, N failed".
# With R3M_CI=1 (set by .ci/run) a skipped test counts as failed: every
# capability is installed there, so a skip would hide a regression.
set -uo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh test || exit 1

jobs=${R3M_TEST_JOBS:-2}
logs=()
status=0

# run DIR "meson setup options" meson-test-args...
run() {
  local dir=$1 setup=$2; shift 2
  echo "== $dir: building"
  # shellcheck disable=SC2086
  if ! scripts/build.sh "$dir" $setup; then
    echo "r3map: build in $dir failed" >&2
    status=1
    return
  fi
  echo "== $dir: testing ($*)"
  # A log left by an earlier run must not stand in for this one if meson
  # test dies before writing its own (summarize.py then reports it).
  rm -f "$dir/meson-logs/testlog.json"
  meson test -C "$dir" --num-processes "$jobs" --print-errorlogs "$@" \
    | grep -E '^ *[0-9]+/[0-9]+ ' || true
  logs+=("$dir/meson-logs/testlog.json")
}

run build "" --no-suite fuzz
run build-asan "-Db_sanitize=address,undefined -Db_lundef=false" \
  --suite unit --suite stress
run build-tsan "-Db_sanitize=thread -Db_lundef=false" --suite stress
CC=clang run build-fuzz "-Dfuzz=true -Db_lundef=false" --suite fuzz

/usr/bin/python3 scripts/summarize.py "${logs[@]}" || status=1
exit $status
