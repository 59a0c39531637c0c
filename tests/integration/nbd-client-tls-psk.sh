#!/usr/bin/env bash
# nbds:// with a pre-shared key (tls-psk-file=) against nbdkit
# --tls=require --tls-psk (GnuTLS): checksummed data in and out over a
# Unix socket and TCP, the user from the URI or the login name, and an
# unknown user and a wrong key refused with a message that names the user
# and never the key.
. "$(dirname "$0")/nbd-client-lib.sh"
requires nbdkit openssl sha256sum

# psktool's format, one user:hexkey per line.
alice=$(openssl rand -hex 32)
printf 'alice:%s\n' "$alice" > "$T/keys.psk"
printf 'alice:%s\n' "$(openssl rand -hex 32)" > "$T/wrong.psk"
printf 'mallory:%s\n' "$(openssl rand -hex 32)" > "$T/mallory.psk"

start_nbdkit psk --tls=require --tls-psk="$T/keys.psk" memory 64M
sock=$T/psk.sock
good="nbds+unix://alice@/?socket=$sock&tls-psk-file=$T/keys.psk"

head -c $((8 << 20)) /dev/urandom > "$T/data"
"$TOOL" write "$good" 0 < "$T/data" || fail "write over TLS-PSK"
"$TOOL" read "$good" 0 8M > "$T/back"
[ "$(sha256sum < "$T/back")" = "$(sha256sum < "$T/data")" ] \
  || fail "TLS-PSK read back has another checksum"
"$TOOL" dump "$good" 1M 8 > "$T/all"
cmp -n $((8 << 20)) "$T/all" "$T/data" || fail "pipelined TLS-PSK read differs"
"$TOOL" info "$good" | grep -qx 'tls 1' || fail "info does not say tls"

expect_fail "pre-shared key of user 'mallory'" "$TOOL" info \
  "nbds+unix://mallory@/?socket=$sock&tls-psk-file=$T/mallory.psk"
expect_fail "pre-shared key of user 'alice'" "$TOOL" info \
  "nbds+unix://alice@/?socket=$sock&tls-psk-file=$T/wrong.psk"
for k in "$alice" "$(cut -d: -f2 "$T/wrong.psk")"; do
  ! grep -q "$k" "$T/err" || fail "a key was printed"
done
# The file has no key for the user asked for: said before connecting.
expect_fail "has no key for user bob" "$TOOL" info \
  "nbds+unix://bob@/?socket=$sock&tls-psk-file=$T/keys.psk"
expect_fail "requires TLS" "$TOOL" info "nbd+unix:///?socket=$sock"

# Without a user in the URI, the login name is the user (as in libnbd):
# getlogin's, or the effective user's when there is no login (under sudo
# the two differ, so both get the key).
me=$(id -un)
printf '%s:%s\n' "$me" "$alice" > "$T/me.psk"
login=$(logname 2>/dev/null || true)
if [ -n "$login" ] && [ "$login" != "$me" ]; then
  printf '%s:%s\n' "$login" "$alice" >> "$T/me.psk"
fi
start_nbdkit me --tls=require --tls-psk="$T/me.psk" memory 1M
"$TOOL" info "nbds+unix:///?socket=$T/me.sock&tls-psk-file=$T/me.psk" \
  | grep -qx 'tls 1' || fail "default user name ($me)"

# TCP.
port=$(free_port)
rm -f "$T/tcp.pid"
nbdkit -f -i 127.0.0.1 -p "$port" -P "$T/tcp.pid" --tls=require \
  --tls-psk="$T/keys.psk" memory 1M >"$T/tcp.log" 2>&1 &
PIDS+=($!)
wait_for "$T/tcp.pid"
"$TOOL" info "nbds://alice@127.0.0.1:$port/?tls-psk-file=$T/keys.psk" \
  >/dev/null || fail "nbds:// with a PSK over TCP"
echo PASS
