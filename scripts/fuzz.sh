#!/usr/bin/env bash
# Long fuzzing, apart from the suite (which gives each harness 20 s):
#   scripts/fuzz.sh [SECONDS]      (default 600 per harness)
# Builds the clang fuzz tree (build-fuzz), then runs every libFuzzer harness
# for SECONDS from its committed seed corpus, one after the other.  A
# crashing input is left in build-fuzz as fuzz-crash-NAME-* and named in
# build-fuzz/meson-logs/testlog.txt.  Ends with "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
case $secs in
  ''|*[!0-9]*|0) echo "usage: scripts/fuzz.sh [SECONDS] (a whole number > 0)" >&2; exit 2 ;;
esac
scripts/deps.sh build || exit 1
CC=clang scripts/build.sh build-fuzz -Dfuzz=true -Db_lundef=false || exit 1
log=build-fuzz/meson-logs/testlog.json
rm -f "$log"
echo "== fuzzing each harness for $secs s"
R3M_FUZZ_SECONDS=$secs meson test -C build-fuzz --suite fuzz --num-processes 1 \
  --timeout-multiplier 0 --print-errorlogs
/usr/bin/python3 scripts/summarize.py "$log"
