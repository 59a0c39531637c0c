#!/usr/bin/env bash
# The whole test suite, as CI runs it:
#   1. unit, integration and stress tests on a normal build;
#   2. unit and stress tests again under ASan+UBSan, with the r3map
#      command's integration tests (suite cli: a few seconds);
#   3. the concurrency (stress) tests and the NBD tests (suite threads)
#      under TSan;
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
  local log="$dir/meson-logs/testlog.json"
  # A log left by an earlier run must not stand in for this one: if the
  # build or meson test fails before writing a new one, summarize.py
  # reports the missing log as a failure.
  rm -f "$log"
  logs+=("$log")
  echo "== $dir: building"
  # shellcheck disable=SC2086
  if ! scripts/build.sh "$dir" $setup; then
    echo "r3map: build in $dir failed" >&2
    status=1
    return
  fi
  echo "== $dir: testing ($*)"
  local out="$dir/meson-logs/test-output.txt"
  meson test -C "$dir" --num-processes "$jobs" --print-errorlogs "$@" \
    >"$out" 2>&1
  local rc=$?
  grep -E '^ *[0-9]+/[0-9]+ ' "$out"
  if [ $rc -ne 0 ]; then
    echo "r3map: some tests in $dir failed; their output: $out" >&2
  elif [ ! -f "$log" ]; then
    # A selection with no tests yet (say, no stress tests) succeeds
    # without writing a log: an empty one counts as zero tests.
    : >"$log"
  fi
}

run build "" --no-suite fuzz
run build-asan "-Db_sanitize=address,undefined -Db_lundef=false" \
  --suite unit --suite stress --suite cli
run build-tsan "-Db_sanitize=thread -Db_lundef=false" \
  --suite stress --suite threads
CC=clang run build-fuzz "-Dfuzz=true -Db_lundef=false" --suite fuzz

/usr/bin/python3 scripts/summarize.py "${logs[@]}" || status=1
exit $status
