#!/usr/bin/env bash
# Installs the Debian packages r3map needs to build and test, and nothing else.
# Usage: scripts/deps.sh [build|test]   (default: build)
# Prints what it installs; exits non-zero with a clear message when it cannot.
set -euo pipefail

build_pkgs=(
  meson ninja-build pkg-config gcc clang libclang-rt-14-dev
  libcmocka-dev libxxhash-dev libzstd-dev
  libfuse3-dev fuse3 libssl-dev openssl
  libhiredis-dev libcurl4-openssl-dev libnl-genl-3-dev liburing-dev
)
# Peers and services the test suite drives for real.
test_pkgs=(
  python3 libnbd-bin nbdkit qemu-utils fio redis-server sqlite3 python3-libnbd
  nbd-client qemu-system-x86 busybox-static cpio iproute2 psmisc
)

want=("${build_pkgs[@]}")
[ "${1:-build}" = test ] && want+=("${test_pkgs[@]}")

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "r3map: installing missing Debian packages: ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "r3map: installing packages needs root; run as root or install them yourself:" >&2
  echo "  apt-get install ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "r3map: installed ${#missing[@]} packages"
