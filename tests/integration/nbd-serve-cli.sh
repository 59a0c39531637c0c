#!/usr/bin/env bash
# r3map serve as a command: usage errors and their exit status, readiness
# through the pid file, clean exit on SIGTERM/SIGINT (pid file and socket
# removed), and a shutdown while a client is busy.
. "$(dirname "$0")/nbd-lib.sh"
need fio

usage () { # expected-status args...
  local want=$1 st=0; shift
  "$R3MAP" serve "$@" >/dev/null 2>"$tmp/err" || st=$?
  [ "$st" = "$want" ] || die "serve $*: status $st, wanted $want"
  grep -q '^r3map: serve: ' "$tmp/err" || die "serve $*: message: $(cat "$tmp/err")"
}
usage 2
usage 2 --bogus memory:1M
usage 2 --tls maybe memory:1M
usage 2 --tls=on memory:1M
usage 2 --tls-cert x.pem memory:1M
usage 2 --min-block 3 memory:1M
usage 2 --grace 5 memory:1M
usage 2 --workers 0 memory:1M
usage 2 --busy-poll 10001 memory:1M
usage 2 --busy-poll x memory:1M
usage 2 --export noequals memory:1M
usage 2 -e a=memory:1M -e a=memory:1M
usage 2 --listen http://x memory:1M
usage 2 --listen nbd://127.0.0.1:0/export memory:1M
usage 2 nosuchscheme:1M
usage 2 memory:1M memory:2M
"$R3MAP" serve --help | grep -q -- '--listen URI' || die "help text"

# A port already taken is a runtime failure (1).
serve --listen nbd://127.0.0.1:0 memory:1M
taken=$server_uri
usage 1 --listen "$taken" memory:1M

for sig in TERM INT; do
  stop_server || true
  serve --listen "nbd+unix:///?socket=$tmp/s" memory:1M
  pidf=$tmp/serve.pid
  [ "$(cat "$pidf")" = "$server_pid" ] || die "pid file content"
  [ -S "$tmp/s" ] || die "no socket"
  st=0
  kill -$sig "$server_pid"
  wait "$server_pid" || st=$?
  server_pid=
  [ "$st" = 0 ] || die "exit status $st after SIG$sig"
  [ ! -e "$pidf" ] || die "pid file left behind"
  [ ! -e "$tmp/s" ] || die "socket left behind"
done

# Shutdown while fio keeps requests in flight: the server exits within
# its grace period, with status 0.
serve --listen "nbd+unix:///?socket=$tmp/s" --grace 2s -v memory:64M
fio --name=busy --ioengine=nbd --uri="$(sock_uri "$tmp/s" "")" \
    --rw=randrw --bs=64k --iodepth=16 --size=64M --time_based \
    --runtime=30 --output="$tmp/fio.out" >/dev/null 2>&1 &
fio_pid=$!
wait_for_file "$tmp/serve.err"
for _ in $(seq 1 400); do
  grep -q "serving export" "$tmp/serve.err" && break
  sleep 0.05
done
grep -q "serving export" "$tmp/serve.err" || die "fio never connected"
start=$(date +%s)
st=0
kill -TERM "$server_pid"
wait "$server_pid" || st=$?
server_pid=
took=$(( $(date +%s) - start ))
[ "$st" = 0 ] || die "exit status $st with a busy client"
[ "$took" -le 8 ] || die "shutdown took ${took}s with a 2 s grace"
wait "$fio_pid" || true      # fio sees the server go; any status is fine
echo PASS
