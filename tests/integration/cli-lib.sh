# Shared by the cli-*.sh tests (sourced).  $1 is the r3map binary.
# Each test runs r3map with `run ARGS...` and checks the outcome with the
# expect_* helpers; the first failed check ends the test with its reason.
set -euo pipefail

R3MAP=${1:?usage: $0 PATH-TO-r3map}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/r3map-cli.XXXXXX")
cleanup_hooks=()
cleanup() {
  for h in "${cleanup_hooks[@]}"; do eval "$h" || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  for f in out err; do
    [ -s "$tmp/$f" ] && { echo "--- std$f of the last run:" >&2; cat "$tmp/$f" >&2; }
  done
  exit 1
}

# run ARGS...: run r3map; stdout in $tmp/out, stderr in $tmp/err, status in $rc.
run() {
  last="r3map $*"
  set +e
  "$R3MAP" "$@" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  set -e
}

expect_rc() {
  [ "$rc" -eq "$1" ] || fail "$last: exit status $rc, expected $1"
}

# expect_err TEXT / expect_out TEXT: the fixed string is in stderr / stdout.
expect_err() { grep -qF -- "$1" "$tmp/err" || fail "$last: stderr lacks '$1'"; }
expect_out() { grep -qF -- "$1" "$tmp/out" || fail "$last: stdout lacks '$1'"; }
expect_no_out() { [ ! -s "$tmp/out" ] || fail "$last: unexpected stdout"; }
expect_no_err() { [ ! -s "$tmp/err" ] || fail "$last: unexpected stderr"; }

# Every stderr line starts with "r3map: ".
expect_err_prefixed() {
  if grep -qv '^r3map: ' "$tmp/err"; then
    fail "$last: a stderr line lacks the 'r3map: ' prefix"
  fi
}

# expect_usage TEXT: a usage error (status 2) whose message holds TEXT,
# followed by the pointer to the help.
expect_usage() {
  expect_rc 2
  expect_err "$1"
  expect_err "try 'r3map"
  expect_err_prefixed
  expect_no_out
}

# expected_pattern SIZE FILE: the bytes of pattern:SIZE, computed here
# independently of r3map (each 8-byte word is its offset, big-endian).
expected_pattern() {
  /usr/bin/python3 - "$1" "$2" <<'PY'
import struct, sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "wb") as f:
    step = 1 << 20
    for base in range(0, n, step):
        end = min(n, base + step)
        words = range(base, end, 8)   # the last word may be cut short
        f.write(b"".join(struct.pack(">Q", w) for w in words)[: end - base])
PY
}

# requires CMD...: skip (77) with a reason unless each program exists.
requires() {
  for c in "$@"; do
    command -v "$c" >/dev/null || { echo "SKIP: $c is not installed (scripts/deps.sh test)"; exit 77; }
  done
}
