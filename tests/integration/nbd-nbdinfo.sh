#!/usr/bin/env bash
# nbdinfo against r3map serve: export details, the export list, the
# allocation map, and content.
. "$(dirname "$0")/nbd-lib.sh"
need nbdinfo

serve --listen "nbd+unix:///?socket=$tmp/s" \
      -e =memory:64M -e other=memory:1M
u=$(sock_uri "$tmp/s" "")

info=$(nbdinfo "$u")
echo "$info" | grep -q 'export-size: 67108864' || die "size: $info"
echo "$info" | grep -q 'can_multi_conn: true' || die "multi-conn: $info"
echo "$info" | grep -q 'can_fua: true' || die "fua: $info"
echo "$info" | grep -q 'is_read_only: false' || die "read-only: $info"
echo "$info" | grep -q 'block_size_maximum: 33554432' || die "max: $info"
echo "$info" | grep -q 'base:allocation' || die "contexts: $info"
[ "$(nbdinfo --size "$(sock_uri "$tmp/s" other)")" = 1048576 ] \
  || die "size of 'other'"

list=$(nbdinfo --list --json "$u")
echo "$list" | grep -q '"export-name": "other"' || die "list: $list"
echo "$list" | grep -q '"export-name": ""' || die "list: $list"

map=$(nbdinfo --map "$u")
echo "$map" | grep -Eq '^ *0 +67108864 +0 +data' || die "map: $map"

# An unknown export is an error for the client, not a crash for us.
if nbdinfo "$(sock_uri "$tmp/s" nope)" 2>"$tmp/err"; then
  die "unknown export accepted"
fi
kill -0 "$server_pid" || die "server died"
echo PASS
