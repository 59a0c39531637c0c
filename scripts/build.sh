#!/usr/bin/env bash
# Configures and builds one build directory (default: build).
# Usage: scripts/build.sh [DIR [meson setup options...]]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
[ $# -gt 0 ] && shift
if [ ! -f "$dir/build.ninja" ]; then
  meson setup "$dir" "$@" >/dev/null
fi
ninja -C "$dir" >/dev/null || ninja -C "$dir"
