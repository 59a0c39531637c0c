#!/usr/bin/env bash
# nbdcopy round trips through r3map serve, over a Unix socket and TCP,
# with one and with four connections; checksums must match.
. "$(dirname "$0")/nbd-lib.sh"
need nbdcopy sha256sum

head -c $((24 << 20)) /dev/urandom >"$tmp/src"
serve --listen "nbd+unix:///?socket=$tmp/s" --listen nbd://127.0.0.1:0 \
      memory:24M
tcp=$(sed -n 's/^listening on //p' "$tmp/serve.out" | grep '^nbd://')
want=$(sha256sum <"$tmp/src" | cut -d' ' -f1)

for u in "$(sock_uri "$tmp/s" "")" "$tcp/"; do
  for conns in 1 4; do
    nbdcopy --connections=$conns "$tmp/src" "$u"
    nbdcopy --connections=$conns "$u" "$tmp/back"
    got=$(sha256sum <"$tmp/back" | cut -d' ' -f1)
    [ "$got" = "$want" ] || die "$u with $conns connections: checksum"
    rm -f "$tmp/back"
  done
done
# Zeroes: nbdcopy of a sparse source uses WRITE_ZEROES.
truncate -s 24M "$tmp/zero"
nbdcopy "$tmp/zero" "$(sock_uri "$tmp/s" "")"
nbdcopy "$(sock_uri "$tmp/s" "")" "$tmp/back"
cmp "$tmp/zero" "$tmp/back" || die "zeroed copy differs"
echo PASS
