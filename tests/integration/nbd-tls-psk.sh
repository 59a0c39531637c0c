#!/usr/bin/env bash
# TLS with pre-shared keys on the server (r3map serve --tls-psk), against
# libnbd's tools (GnuTLS) and our own client: the right key gets in, a
# wrong key and an unknown user fail the handshake with a log line naming
# the user (never a key) and can do nothing in require mode; a server with
# a certificate besides the keys serves both kinds of client.
. "$(dirname "$0")/nbd-lib.sh"
need openssl nbdinfo nbdcopy sha256sum

# psktool's format, one user:hexkey per line (comments and blank lines
# are ours, GnuTLS skips lines it does not need).
alice=$(openssl rand -hex 32)
{ echo "# test keys"; echo "alice:$alice"; echo
  echo "carol:$(openssl rand -hex 16)"; } > "$tmp/keys.psk"
printf 'alice:%s\n' "$(openssl rand -hex 32)" > "$tmp/wrong.psk"
printf 'mallory:%s\n' "$(openssl rand -hex 32)" > "$tmp/mallory.psk"
grep alice "$tmp/keys.psk" > "$tmp/alice.psk"
sock=$tmp/s
uri () { echo "nbds+unix://$1@/?socket=$sock&tls-psk-file=$2"; }

# 1. Keys only, TLS required.
serve --listen "nbd+unix:///?socket=$sock" --tls=require \
      --tls-psk "$tmp/keys.psk" -vv memory:16M
nbdinfo "$(uri alice "$tmp/alice.psk")" \
  | grep -q 'protocol: newstyle-fixed with TLS' || die "nbdinfo with a PSK"
head -c $((16 << 20)) /dev/urandom > "$tmp/src"
nbdcopy "$tmp/src" "$(uri alice "$tmp/alice.psk")"
nbdcopy "$(uri alice "$tmp/alice.psk")" "$tmp/back"
[ "$(sha256sum < "$tmp/back")" = "$(sha256sum < "$tmp/src")" ] \
  || die "PSK round trip has another checksum"
grep -q "(tls: psk user alice): TLS established" "$tmp/serve.err" \
  || die "no log line names the PSK user"

if nbdinfo --size "$(uri alice "$tmp/wrong.psk")" >/dev/null 2>&1; then
  die "wrong key accepted"
fi
grep -q "PSK user 'alice' did not prove the key" "$tmp/serve.err" \
  || die "wrong key not logged"
if nbdinfo --size "$(uri mallory "$tmp/mallory.psk")" >/dev/null 2>&1; then
  die "unknown user accepted"
fi
grep -q "unknown PSK user 'mallory'" "$tmp/serve.err" \
  || die "unknown user not logged"
for k in $(cut -d: -f2 "$tmp/keys.psk" "$tmp/wrong.psk" "$tmp/mallory.psk"); do
  ! grep -q "$k" "$tmp/serve.err" || die "a key was logged"
done
# Require mode: without TLS nothing is possible either.
if nbdinfo --list "nbd+unix:///?socket=$sock" >/dev/null 2>&1; then
  die "plain client listed exports in require mode"
fi

# Our own client, with the second user's 16-byte key.
"$R3MAP" copy --verify "$(uri carol "$tmp/keys.psk")" "file:$tmp/ours" \
  >/dev/null 2>"$tmp/err" || die "r3map copy with a PSK: $(cat "$tmp/err")"
cmp "$tmp/ours" "$tmp/src" || die "r3map copy with a PSK differs"
if "$R3MAP" copy "$(uri alice "$tmp/wrong.psk")" "file:$tmp/x" 2>"$tmp/err"; then
  die "our client got in with a wrong key"
fi
grep -q "pre-shared key of user 'alice'" "$tmp/err" \
  || die "our client's message: $(cat "$tmp/err")"
kill -0 "$server_pid" || die "server died"
stop_server || die "server exit status"

# 2. A certificate besides the keys (--tls=on): PSK clients, certificate
# clients and, in on mode, plain clients all work; an unknown user still
# fails (GnuTLS has no use for the certificate it gets instead).
pki=$tmp/pki
mkdir -p "$pki"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout "$pki/server-key.pem" -out "$pki/ca-cert.pem" -days 2 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost 2>/dev/null
serve --listen "nbd+unix:///?socket=$sock" --tls=on -v \
      --tls-cert "$pki/ca-cert.pem" --tls-key "$pki/server-key.pem" \
      --tls-psk "$tmp/keys.psk" memory:1M
nbdinfo --size "$(uri alice "$tmp/alice.psk")" >/dev/null \
  || die "PSK client of a server with a certificate"
nbdinfo --size "nbds+unix:///?socket=$sock&tls-certificates=$pki&tls-hostname=localhost" \
  >/dev/null || die "certificate client of a server with keys"
nbdinfo --size "nbd+unix:///?socket=$sock" >/dev/null \
  || die "plain client in on mode"
if nbdinfo --size "$(uri mallory "$tmp/mallory.psk")" >/dev/null 2>&1; then
  die "unknown user accepted by a server with a certificate"
fi
grep -q "unknown PSK user 'mallory'" "$tmp/serve.err" \
  || die "unknown user not logged with a certificate"
"$R3MAP" copy "$(uri alice "$tmp/keys.psk")" "file:$tmp/x" 2>"$tmp/err" \
  || die "r3map copy with a PSK, server with a certificate"
if "$R3MAP" copy "$(uri mallory "$tmp/mallory.psk")" "file:$tmp/x" \
     2>"$tmp/err"; then
  die "our client accepted a certificate instead of its key"
fi
grep -q "offered a certificate instead" "$tmp/err" \
  || die "our client's message: $(cat "$tmp/err")"
stop_server || die "server exit status"

# 2b. Client certificates required (--tls-ca): a PSK client's key is its
# proof; a certificate client without a certificate is refused.
serve --listen "nbd+unix:///?socket=$sock" --tls=require \
      --tls-cert "$pki/ca-cert.pem" --tls-key "$pki/server-key.pem" \
      --tls-ca "$pki/ca-cert.pem" --tls-psk "$tmp/keys.psk" memory:1M
nbdinfo --size "$(uri alice "$tmp/alice.psk")" >/dev/null \
  || die "PSK client of a server that verifies certificates"
if nbdinfo --size "nbds+unix:///?socket=$sock&tls-certificates=$pki&tls-hostname=localhost" \
     >/dev/null 2>&1; then
  die "certificate client without a certificate accepted"
fi
stop_server || die "server exit status"

# 3. Bad key files are refused at start, naming the line, never the key.
printf 'alice:%s\nbob:abc\n' "$alice" > "$tmp/odd.psk"
if "$R3MAP" serve --tls=require --tls-psk "$tmp/odd.psk" \
     --listen "nbd+unix:///?socket=$sock" memory:1M 2>"$tmp/err"; then
  die "odd-length key accepted"
fi
grep -q "line 2: the key has an odd number of hex digits" "$tmp/err" \
  || die "bad key file message: $(cat "$tmp/err")"
! grep -q "$alice" "$tmp/err" || die "a key was printed"
# Usage: keys need a TLS mode, and a listen address takes no user.
st=0; "$R3MAP" serve --tls-psk "$tmp/keys.psk" memory:1M 2>"$tmp/err" || st=$?
[ "$st" = 2 ] || die "--tls-psk without --tls: status $st"
st=0; "$R3MAP" serve --tls=require memory:1M 2>"$tmp/err" || st=$?
[ "$st" = 2 ] && grep -q -- "--tls-psk" "$tmp/err" \
  || die "--tls=require alone: status $st, $(cat "$tmp/err")"
st=0; "$R3MAP" serve --tls=require --tls-psk "$tmp/keys.psk" \
  --listen "nbds+unix://alice@/?socket=$sock" memory:1M 2>"$tmp/err" || st=$?
grep -q "no user name" "$tmp/err" || die "user in a listen URI: $(cat "$tmp/err")"
[ "$st" != 0 ] || die "user in a listen URI accepted"
echo PASS
