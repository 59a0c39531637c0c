#!/usr/bin/env bash
# The server is killed in the middle of a pipelined transfer: the client
# fails with a clear message, quickly, without hanging.
. "$(dirname "$0")/nbd-client-lib.sh"
requires nbdkit timeout

start_nbdkit victim --filter=delay memory 1G rdelay=20ms
pid=$(cat "$T/victim.pid")
rc=0
timeout 60 "$TOOL" dump "$URI" 64K 16 > /dev/null 2> "$T/err" &
dumper=$!
# Let the transfer get going (reads take 20 ms; the whole would take
# seconds), then kill -9.
sleep 0.5
kill -9 "$pid"
wait "$dumper" || rc=$?
[ "$rc" -eq 1 ] || { cat "$T/err"; fail "exit status $rc (124 = hung)"; }
grep -q "closed the connection\|Connection reset" "$T/err" \
  || { cat "$T/err"; fail "unclear message"; }
echo PASS
