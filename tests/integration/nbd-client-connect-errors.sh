#!/usr/bin/env bash
# Errors before transmission: a refused port, a missing socket, an unknown
# export, a plain client against a TLS-only server, a non-NBD server.  Each
# gives a message naming the URI and saying what went wrong.
. "$(dirname "$0")/nbd-client-lib.sh"
requires nbdkit

port=$(free_port)
expect_fail "nbd://127.0.0.1:$port/x: connect to 127.0.0.1 port $port: Connection refused" \
  "$TOOL" info "nbd://127.0.0.1:$port/x"
expect_fail "No such file or directory" \
  "$TOOL" info "nbd+unix:///x?socket=$T/nothing-here"

start_nbdkit named --filter=exportname memory 1M exportname=disk \
  exportname-strict=true
"$TOOL" info "nbd+unix:///disk?socket=$T/named.sock" >/dev/null \
  || fail "the right export name was refused"
expect_fail "no export named 'other'" \
  "$TOOL" info "nbd+unix:///other?socket=$T/named.sock"

# Something that is not an NBD server.
/usr/bin/python3 - "$T/fake.sock" "$T/fake.ready" <<'PY' &
import socket, sys, os
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1)
open(sys.argv[2], "w").close()
c, _ = s.accept(); c.sendall(b"220 smtp.example.com ESMTP\r\n")
try: c.recv(100)
except OSError: pass
PY
PIDS+=($!)
wait_for "$T/fake.ready"
expect_fail "not an NBD server" "$TOOL" info "nbd+unix:///?socket=$T/fake.sock"
echo PASS
