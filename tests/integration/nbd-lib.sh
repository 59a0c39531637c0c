# Shared by the tests/integration/nbd-*.sh scripts: sourced, never run.
#
#   R3MAP          the r3map binary (first argument of every script)
#   tmp            a private directory, removed at exit
#   serve ARGS...  start `r3map serve --pid-file ... ARGS` in the
#                  background, wait until it is ready (its pid file
#                  appears), and set $server_pid and $server_uri (the first
#                  "listening on" address); the server is stopped at exit
#   need CMD...    exit 77 (skip) when a program is missing
#   die MSG        print "FAIL: MSG" and exit 1
set -euo pipefail

R3MAP=${1:?usage: $0 PATH-TO-r3map}
# libnbd's Python tools need Debian's python3, not a pyenv one on PATH.
export PATH=/usr/bin:$PATH
tmp=$(mktemp -d /tmp/r3m-it-XXXXXX)
server_pid=
cleanup () {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

die () { echo "FAIL: $*" >&2; exit 1; }

need () {
  for c in "$@"; do
    command -v "$c" >/dev/null || { echo "SKIP: $c is not installed"; exit 77; }
  done
}

# Poll (no fixed sleeps) until $1 exists or 20 s pass.
wait_for_file () {
  for _ in $(seq 1 400); do
    [ -e "$1" ] && return 0
    if [ -n "$server_pid" ] && ! kill -0 "$server_pid" 2>/dev/null; then
      return 1
    fi
    sleep 0.05
  done
  return 1
}

serve () {
  local pidf=$tmp/serve.pid out=$tmp/serve.out
  rm -f "$pidf"
  "$R3MAP" serve --pid-file "$pidf" "$@" >"$out" 2>"$tmp/serve.err" &
  server_pid=$!
  wait_for_file "$pidf" || { cat "$tmp/serve.err" >&2; die "server did not start"; }
  server_uri=$(sed -n 's/^listening on //p' "$out" | head -n 1)
  [ -n "$server_uri" ] || die "server printed no address"
}

# Stop the server with SIGTERM and return its exit status.
stop_server () {
  local st=0
  [ -n "$server_pid" ] || return 0
  kill -TERM "$server_pid"
  wait "$server_pid" || st=$?
  server_pid=
  return $st
}

sock_uri () { echo "nbd+unix:///$2?socket=$1"; }
