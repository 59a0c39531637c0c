#!/usr/bin/env bash
# TLS with certificates made here by the openssl tool: nbdinfo and nbdcopy
# (libnbd, GnuTLS) against r3map serve --tls=require, a plain client
# refused, and client certificates checked against a CA.
. "$(dirname "$0")/nbd-lib.sh"
need openssl nbdinfo nbdcopy

pki=$tmp/pki
mkdir -p "$pki/good" "$pki/bad"
cd "$pki"
ossl () { openssl "$@" 2>/dev/null; }
# A CA, a server certificate for 127.0.0.1 and localhost, a client
# certificate from the CA, and one from an unrelated CA.
mkca () {
  ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$1-key.pem" -out "$1.pem" -days 2 -subj "/CN=$1" \
    -addext basicConstraints=critical,CA:TRUE
}
mkcert () { # name ca extra-ext
  ossl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$1-key.pem" -out "$1.csr" -subj "/CN=$1"
  printf '%s\n' "$3" >"$1.ext"
  ossl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2-key.pem" \
    -CAcreateserial -days 2 -out "$1.pem" -extfile "$1.ext"
}
mkca ca
mkca otherca
mkcert server ca "subjectAltName=DNS:localhost,IP:127.0.0.1"
mkcert client ca "extendedKeyUsage=clientAuth"
mkcert intruder otherca "extendedKeyUsage=clientAuth"
# libnbd's layout: DIR/{ca-cert,client-cert,client-key}.pem
cp ca.pem good/ca-cert.pem; cp client.pem good/client-cert.pem
cp client-key.pem good/client-key.pem
cp ca.pem bad/ca-cert.pem; cp intruder.pem bad/client-cert.pem
cp intruder-key.pem bad/client-key.pem
cd - >/dev/null

# 1. Server certificate only.
serve --listen nbd://127.0.0.1:0 --tls=require -vv \
      --tls-cert "$pki/server.pem" --tls-key "$pki/server-key.pem" memory:8M
case $server_uri in nbds://*) ;; *) die "address should say nbds: $server_uri" ;; esac
port=${server_uri##*:}
good="nbds://127.0.0.1:$port/?tls-certificates=$pki/good"
nbdinfo "$good" | grep -q 'protocol: newstyle-fixed with TLS' \
  || die "nbdinfo over TLS"
head -c $((8 << 20)) /dev/urandom >"$tmp/src"
nbdcopy "$tmp/src" "$good"
nbdcopy "$good" "$tmp/back"
cmp "$tmp/src" "$tmp/back" || die "TLS round trip differs"
# A plain client is refused with ERR_TLS_REQD (the server's debug log
# shows the refusal; libnbd only says the option failed).
if nbdinfo "nbd://127.0.0.1:$port/" >/dev/null 2>"$tmp/err"; then
  die "plain client accepted in require mode"
fi
grep -q 'refused: TLS is required' "$tmp/serve.err" \
  || die "no TLS refusal logged: $(cat "$tmp/err")"
# Wrong host name: the certificate says 127.0.0.1/localhost only.
if nbdinfo "nbds://127.0.0.2:$port/?tls-certificates=$pki/good" \
     2>"$tmp/err"; then
  die "wrong host name accepted"
fi
stop_server || die "server exit status"

# 2. Client certificates required.
serve --listen nbd://127.0.0.1:0 --tls=require --tls-ca "$pki/ca.pem" \
      --tls-cert "$pki/server.pem" --tls-key "$pki/server-key.pem" memory:8M
port=${server_uri##*:}
nbdinfo --size "nbds://127.0.0.1:$port/?tls-certificates=$pki/good" \
  >/dev/null || die "good client certificate refused"
if nbdinfo --size "nbds://127.0.0.1:$port/?tls-certificates=$pki/bad" \
     2>"$tmp/err"; then
  die "client certificate from another CA accepted"
fi
kill -0 "$server_pid" || die "server died"
echo PASS
