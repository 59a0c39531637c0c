#!/usr/bin/env bash
# The first thing to run.  Installs the Debian packages needed to build
# (scripts/deps.sh build; needs root when something is missing), builds
# r3map, then shows it working with no server or other setup:
#   1. copy a generated region (pattern:SIZE) into a directory of chunk
#      files, through the region engine, verified;
#   2. copy that directory back into a plain file, verified;
#   3. compare the file with the pattern once more, independently.
# Usage: scripts/demo.sh [SIZE]      (default 256M; e.g. 1G)
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-256M}

step() { printf '\n== %s\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

step "Installing missing build packages (scripts/deps.sh build)"
scripts/deps.sh build
echo "all build packages are installed"

step "Building into build/ (scripts/build.sh)"
scripts/build.sh build
r3map=build/tools/r3map/r3map
"$r3map" --version

work=$(mktemp -d "${TMPDIR:-/tmp}/r3map-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT

step "1. A generated $size region into a directory of 1 MiB chunk files"
echo "pattern:$size is read-only and generated on the fly: each 8-byte word"
echo "holds its own offset.  The region engine pulls it into the directory."
show "$r3map" copy --verify --chunk-size 1M "pattern:$size" "dir:$work/chunks"
echo "the directory now holds $(find "$work/chunks" -type f ! -name '.*' | wc -l)" \
     "chunk files and its metadata (.r3map-dir), $(du -sh "$work/chunks" | cut -f1) in all"

step "2. The directory back into one file"
show "$r3map" copy --verify "dir:$work/chunks" "file:$work/region.img"
ls -l "$work/region.img"

step "3. The file against the pattern, read independently"
show "$r3map" compare "pattern:$size" "file:$work/region.img"

step "Done: $size went pattern -> dir -> file and arrived intact."
echo "Next: 'r3map --help', docs/cli.md, and ./scripts/test.sh for the whole suite."
