#!/bin/sh
# Usage: run-fuzzer.sh HARNESS SEED_DIR SECONDS
# (R3M_FUZZ_SECONDS, when set, replaces SECONDS: scripts/fuzz.sh's long runs)
# A bounded libFuzzer run starting from a committed seed corpus.  New inputs
# go to a scratch directory (libFuzzer writes into the first corpus
# directory), never into the source tree; a crashing input is saved in the
# current directory as fuzz-crash-NAME-* and printed in the log.
set -eu
exe=$1 seeds=$2 secs=${R3M_FUZZ_SECONDS:-$3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
name=$(basename "$exe")
status=0
# libFuzzer's own failure code is 77, which meson reads as "skipped".
"$exe" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
  -error_exitcode=1 -timeout_exitcode=1 \
  -artifact_prefix="./fuzz-crash-$name-" -print_final_stats=1 \
  "$work" "$seeds" || status=$?
exit $status
