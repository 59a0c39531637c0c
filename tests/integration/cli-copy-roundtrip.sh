#!/usr/bin/env bash
# r3map copy moves the right bytes: memory->file, file->memory,
# pattern->dir->file, into larger and smaller existing files, with several
# chunk sizes; each checked with cmp against data computed without r3map.
. "$(dirname "$0")/cli-lib.sh"

# A size that is not a multiple of any chunk size used below.
size=$(( (3 << 20) + 3000 ))

# memory -> file: the zeros of a fresh memory backend overwrite random data
# (so zero chunks are really written, not skipped).
head -c "$size" /dev/urandom >"$tmp/rand"
cp "$tmp/rand" "$tmp/f"
run copy "memory:$size" "file:$tmp/f"
expect_rc 0
cmp "$tmp/f" <(head -c "$size" /dev/zero) || fail "memory->file: not all zeros"
[ "$(stat -c %s "$tmp/f")" -eq "$size" ] || fail "memory->file: size changed"

# file -> memory, verified (the only way to see into memory:).
run copy --verify "file:$tmp/rand" "memory:$size"
expect_rc 0
expect_err "verified"

# pattern -> dir -> file, against the pattern computed here.
expected_pattern "$size" "$tmp/expected"
run copy --verify "pattern:$size" "dir:$tmp/chunks"
expect_rc 0
[ -n "$(ls "$tmp/chunks")" ] || fail "pattern->dir: the directory is empty"
run copy --verify "dir:$tmp/chunks" "file:$tmp/out"
expect_rc 0
cmp "$tmp/out" "$tmp/expected" || fail "pattern->dir->file: wrong bytes"

# Chunk sizes, workers and window change how, not what.
for opts in "--chunk-size 4K" "--chunk-size 1M" "--workers 1 --window 1" \
            "--chunk-size 512 --workers 4 --window 256" \
            "--request-size 512" "--chunk-size 4K --request-size 3M" \
            "--chunk-size 1M --request-size 64K" "--window 3 --request-size 5000"; do
  rm -f "$tmp/out"
  # shellcheck disable=SC2086
  run copy $opts "pattern:$size" "file:$tmp/out"
  expect_rc 0
  cmp "$tmp/out" "$tmp/expected" || fail "copy $opts: wrong bytes"
done

# An existing larger file keeps its bytes past SRC's end.
head -c $((8 << 20)) /dev/urandom >"$tmp/big"
cp "$tmp/big" "$tmp/big.orig"
run copy "pattern:$size" "file:$tmp/big"
expect_rc 0
[ "$(stat -c %s "$tmp/big")" -eq $((8 << 20)) ] || fail "larger DST: size changed"
cmp -n "$size" "$tmp/big" "$tmp/expected" || fail "larger DST: wrong head"
cmp -i "$size" "$tmp/big" "$tmp/big.orig" || fail "larger DST: tail changed"

# An existing smaller file is extended to SRC's size.
head -c $((1 << 20)) /dev/urandom >"$tmp/small"
run copy "pattern:$size" "file:$tmp/small"
expect_rc 0
cmp "$tmp/small" "$tmp/expected" || fail "smaller DST: wrong bytes or size"

# A zero-sized copy is fine.
run copy memory:0 "file:$tmp/empty"
expect_rc 0
[ -f "$tmp/empty" ] && [ ! -s "$tmp/empty" ] || fail "empty copy: no empty file"
echo "PASS"
