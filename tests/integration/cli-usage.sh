#!/usr/bin/env bash
# Every usage error: exit status 2, a one-line message naming the problem
# (prefixed "r3map: "), a pointer to the help, nothing on stdout.
. "$(dirname "$0")/cli-lib.sh"

# The top level.
run
expect_rc 2
expect_err "r3map: no command given"
expect_err "try 'r3map --help'"

run frobnicate
expect_usage "r3map: unknown command 'frobnicate'"
grep -q "did you mean" "$tmp/err" && fail "a suggestion for an unrelated word"

run compar
expect_usage "unknown command 'compar' (did you mean 'compare'?)"
run comprae
expect_usage "(did you mean 'compare'?)"

run --frobnicate
expect_usage "unknown option '--frobnicate'"
run help nope
expect_usage "unknown command 'nope'"
run help compare copy
expect_usage "help takes one command name"

# Options of a command (compare stands for all: they share cli_getopt).
run compare --chunksize 4K memory:1M memory:1M
expect_usage "r3map: compare: unknown option '--chunksize' (did you mean '--chunk-size'?)"
expect_err "try 'r3map compare --help'"
run compare --frobnicate memory:1M memory:1M
expect_usage "unknown option '--frobnicate'"
grep -q "did you mean" "$tmp/err" && fail "a suggestion for an unrelated option"
run compare -x memory:1M memory:1M
expect_usage "unknown option '-x'"
run compare --quiet=yes memory:1M memory:1M
expect_usage "option '--quiet' takes no value"
run compare memory:1M memory:1M --chunk-size
expect_usage "option '--chunk-size' needs a value"
run compare memory:1M memory:1M -c
expect_usage "option '-c' needs a value"

# Values.
run compare --chunk-size 3000 memory:1M memory:1M
expect_usage "--chunk-size: '3000' is not a power of two"
run compare --chunk-size 12Q memory:1M memory:1M
expect_usage "--chunk-size: '12Q' is not a size"
run compare --chunk-size 1G memory:1M memory:1M
expect_usage "--chunk-size: '1G' is out of range"
run compare --chunk-size 99999999999999999999999 memory:1M memory:1M
expect_usage "is out of range"
run compare --length 2M memory:1M memory:1M
expect_usage "--length 2.00 MiB is more than memory:1M holds (1.00 MiB)"

# Operands.
run compare
expect_usage "expected A B, got 0 operands"
run compare memory:1M
expect_usage "expected A B, got only 1 operand"
run compare memory:1M memory:1M memory:1M
expect_usage "'memory:1M' is one operand too many"

# URIs.
run compare nosuch:1M memory:1M
expect_usage "nosuch:1M"
run compare memory:lots memory:1M
expect_usage "memory:lots"
echo "PASS"
