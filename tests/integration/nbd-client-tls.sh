#!/usr/bin/env bash
# nbds:// against nbdkit --tls=require with certificates made here: the
# right CA works (Unix socket and TCP), a wrong CA or a wrong host name is
# refused with a message saying so, a plain client is told TLS is needed,
# and a server that wants a client certificate gets one from tls-cert/key.
. "$(dirname "$0")/nbd-client-lib.sh"
requires nbdkit openssl

c=$T/certs
mkdir -p "$c" "$T/other"
key () { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ca () {   # ca DIR NAME
  key "$1/ca-key.pem"
  openssl req -x509 -new -key "$1/ca-key.pem" -out "$1/ca-cert.pem" -days 2 \
    -subj "/CN=$2" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}
leaf () { # leaf DIR NAME EXT
  key "$1/$2-key.pem"
  openssl req -new -key "$1/$2-key.pem" -out "$1/$2.csr" -subj "/CN=$2" 2>/dev/null
  printf '%s\n' "$3" > "$1/$2.ext"
  openssl x509 -req -in "$1/$2.csr" -CA "$1/ca-cert.pem" -CAkey "$1/ca-key.pem" \
    -CAcreateserial -out "$1/$2-cert.pem" -days 2 -extfile "$1/$2.ext" 2>/dev/null
}
ca "$c" r3map-test-ca
leaf "$c" server "subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth"
leaf "$c" client "extendedKeyUsage=clientAuth"
ca "$T/other" some-other-ca

start_nbdkit tls --tls=require --tls-certificates="$c" memory 16M
sock=$T/tls.sock
good="nbds+unix:///?socket=$sock&tls-hostname=localhost&tls-ca=$c/ca-cert.pem"

head -c $((4 << 20)) /dev/urandom > "$T/data"
"$TOOL" write "$good" 0 < "$T/data" || fail "write over TLS"
"$TOOL" read "$good" 0 4M | cmp - "$T/data" \
  || fail "TLS read back differs"
"$TOOL" dump "$good" 1M 8 > "$T/all"
cmp -n $((4 << 20)) "$T/all" "$T/data" || fail "pipelined TLS read differs"
"$TOOL" info "$good" | grep -qx 'tls 1' || fail "info does not say tls"

expect_fail "certificate" "$TOOL" info \
  "nbds+unix:///?socket=$sock&tls-hostname=localhost&tls-ca=$T/other/ca-cert.pem"
expect_fail "certificate" "$TOOL" info \
  "nbds+unix:///?socket=$sock&tls-hostname=wrong.example&tls-ca=$c/ca-cert.pem"
expect_fail "requires TLS" "$TOOL" info "nbd+unix:///?socket=$sock"

# TCP, the host name checked against the certificate's IP address.
port=$(free_port)
rm -f "$T/tcp.pid"
nbdkit -f -i 127.0.0.1 -p "$port" -P "$T/tcp.pid" --tls=require \
  --tls-certificates="$c" memory 1M >"$T/tcp.log" 2>&1 &
PIDS+=($!)
wait_for "$T/tcp.pid"
"$TOOL" info "nbds://127.0.0.1:$port/?tls-ca=$c/ca-cert.pem" >/dev/null \
  || fail "nbds:// over TCP"

# A server that verifies clients: refused without a certificate, fine
# with one.
start_nbdkit peer --tls=require --tls-certificates="$c" --tls-verify-peer \
  memory 1M
peer="nbds+unix:///?socket=$T/peer.sock&tls-hostname=localhost&tls-ca=$c/ca-cert.pem"
rc=0; "$TOOL" info "$peer" >/dev/null 2>"$T/err" || rc=$?
[ "$rc" -eq 1 ] || fail "client without a certificate was let in"
"$TOOL" info "$peer&tls-cert=$c/client-cert.pem&tls-key=$c/client-key.pem" \
  >/dev/null || fail "client certificate refused"
echo PASS
