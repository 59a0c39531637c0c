# Shared by the nbd-client-*.sh tests.  Source it after setting TOOL
# (path to nbd-client-tool, the first argument).  Gives: a temporary
# directory $T removed on exit, servers started in the background and
# killed on exit, readiness by pidfile (nbdkit writes it when it listens).
set -euo pipefail

TOOL=${1:?usage: $0 PATH-TO-nbd-client-tool}
T=$(mktemp -d /tmp/r3m-nbdc-XXXXXX)
PIDS=()
cleanup () {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$T"
}
trap cleanup EXIT

fail () { echo "FAIL: $*" >&2; exit 1; }

# requires PROGRAM...: skip (77) when a peer is not installed.
requires () {
  for p in "$@"; do
    command -v "$p" >/dev/null || { echo "SKIP: $p is not installed"; exit 77; }
  done
}

# wait_for FILE: poll until it exists (at most 20 s).
wait_for () {
  for _ in $(seq 200); do [ -e "$1" ] && return 0; sleep 0.1; done
  fail "timed out waiting for $1"
}

# start_nbdkit NAME ARGS...: nbdkit on the Unix socket $T/NAME.sock in
# the background; sets URI to its address.  Not in $(...): the server
# must be a child of this shell to be killed on exit.
start_nbdkit () {
  local name=$1; shift
  rm -f "$T/$name.pid"
  nbdkit -f -U "$T/$name.sock" -P "$T/$name.pid" "$@" \
    >>"$T/$name.log" 2>&1 &
  PIDS+=($!)
  wait_for "$T/$name.pid"
  URI="nbd+unix:///?socket=$T/$name.sock"
}

# expect_fail PATTERN CMD...: CMD must exit 1 with PATTERN in stderr.
expect_fail () {
  local pat=$1; shift
  local rc=0
  "$@" >"$T/out" 2>"$T/err" || rc=$?
  [ "$rc" -eq 1 ] || { cat "$T/err" >&2; fail "'$*' exited $rc, not 1"; }
  grep -q -- "$pat" "$T/err" || { cat "$T/err" >&2; fail "'$*': no '$pat' in the message"; }
  [ -z "${VERBOSE:-}" ] || cat "$T/err"
}

# free_port: a TCP port on 127.0.0.1 that was free a moment ago.
free_port () {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
