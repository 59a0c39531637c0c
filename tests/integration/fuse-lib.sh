# Shared by the tests/integration/fuse-*.sh scripts: sourced, never run.
#
# Everything nbd-lib.sh offers (R3MAP, tmp, serve, need, die, ...) plus:
#   mnt                 the mount point ($tmp/mnt)
#   fuse_mount ARGS...  start `r3map mount --at $mnt ARGS` in the background,
#                       wait until it is ready (pid file), set $mount_pid and
#                       $file (the path it printed)
#   fuse_unmount        fusermount3 -u, then wait for r3map mount to exit;
#                       returns its exit status
#   wait_exit PID SECS  wait for a background process for at most SECS;
#                       returns its status (124 if it did not exit)
#   summary_field N     from the summary line of the last mount: N=local,
#                       demand, background or pushed
#
# The script re-runs itself in a private mount namespace, so no mount can
# outlive it, and the exit trap unmounts and stops whatever is left.

if [ -z "${R3M_FUSE_NS:-}" ]; then
  if [ "$(id -u)" != 0 ]; then echo "SKIP: FUSE tests mount, so need root"; exit 77; fi
  if [ ! -c /dev/fuse ]; then echo "SKIP: /dev/fuse is missing"; exit 77; fi
  command -v unshare >/dev/null || { echo "SKIP: unshare is missing"; exit 77; }
  export R3M_FUSE_NS=1
  exec unshare -m --propagation private bash "$0" "$@"
fi

. "$(dirname "$0")/nbd-lib.sh"
need fusermount3

mnt=$tmp/mnt
mkdir "$mnt"
mount_pid=

wait_exit () { # pid seconds
  local st=0
  timeout "$2" tail --pid="$1" -f /dev/null 2>/dev/null || return 124
  wait "$1" || st=$?
  return $st
}

fuse_cleanup () {
  if [ -n "$mount_pid" ] && kill -0 "$mount_pid" 2>/dev/null; then
    kill -TERM "$mount_pid" 2>/dev/null || true
    wait_exit "$mount_pid" 20 || kill -KILL "$mount_pid" 2>/dev/null || true
  fi
  umount -l "$mnt" 2>/dev/null || true
  cleanup
}
trap fuse_cleanup EXIT

fuse_mount () {
  local pidf=$tmp/mount.pid
  rm -f "$pidf"
  "$R3MAP" mount --pid-file "$pidf" --at "$mnt" "$@" \
    >"$tmp/mount.out" 2>"$tmp/mount.err" &
  mount_pid=$!
  for _ in $(seq 1 400); do
    [ -e "$pidf" ] && break
    kill -0 "$mount_pid" 2>/dev/null || break
    sleep 0.05
  done
  [ -e "$pidf" ] || { cat "$tmp/mount.err" >&2; die "r3map mount did not start"; }
  file=$(head -n 1 "$tmp/mount.out")
  [ -f "$file" ] || die "r3map mount printed '$file', not a file"
}

fuse_unmount () {
  local st=0
  fusermount3 -u "$mnt" || die "fusermount3 -u failed"
  wait_exit "$mount_pid" 30 || st=$?
  [ "$st" != 124 ] || die "r3map mount did not exit after fusermount3 -u"
  mount_pid=
  return $st
}

summary_field () {
  local line
  line=$(grep '^r3map: mount: .* chunks local' "$tmp/mount.err" | tail -n 1)
  [ -n "$line" ] || die "no summary line in: $(cat "$tmp/mount.err")"
  case $1 in
    local)      sed -E 's/^r3map: mount: ([0-9]+) of.*/\1/' <<<"$line" ;;
    chunks)     sed -E 's/^r3map: mount: [0-9]+ of ([0-9]+) chunks.*/\1/' <<<"$line" ;;
    demand)     sed -E 's/.*\(([0-9]+) fetched on demand.*/\1/' <<<"$line" ;;
    background) sed -E 's/.*, ([0-9]+) in the background.*/\1/' <<<"$line" ;;
    pushed)     sed -E 's/.*\), ([0-9]+) chunks pushed.*/\1/' <<<"$line" ;;
  esac
}
