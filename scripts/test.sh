#!/usr/bin/env bash
# The full test suite: every unit and integration test, then a short fuzz run of the
# Wire decoders. `swift test` alone runs the tests without the fuzzing.
#
# The tests run against a throwaway PostgreSQL server that this script starts in a temp
# directory and stops and removes on exit (scripts/lib/postgres.sh; it installs the Debian
# package `postgresql` if needed). Set FEEDBACK_TEST_POSTGRES_URL (and
# FEEDBACK_TEST_POSTGRES_PASSWORD) to use a server of your own instead.
#
#   scripts/test.sh                  # FUZZ_SECONDS (default 30) per fuzz target
#   FUZZ_SECONDS=0 scripts/test.sh   # skip fuzzing
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

fuzz_seconds="${FUZZ_SECONDS:-30}"
if ! [[ "$fuzz_seconds" =~ ^[0-9]+$ ]]; then
    echo "test.sh: FUZZ_SECONDS must be a whole number, got '$fuzz_seconds'" >&2
    exit 2
fi

# shellcheck source=scripts/lib/postgres.sh
. scripts/lib/postgres.sh

swift build --build-tests
log="$(mktemp)"
pgdir=""
cleanup() {
    if [ -n "$pgdir" ]; then
        pg_stop "$pgdir" || true
        rm -rf "$pgdir"
    fi
    rm -f "$log"
}
trap cleanup EXIT
pgdir="$(mktemp -d -t feedback-pg.XXXXXX)"
pg_start "$pgdir"   # exports FEEDBACK_TEST_POSTGRES_URL, _PASSWORD, _BIN, _DIR
swift test --skip-build 2>&1 | tee "$log"

if [ "$fuzz_seconds" -gt 0 ]; then
    scripts/fuzz-wire.sh "$fuzz_seconds"
fi

# Repeat the test runner's verdict last, where CI and people look for it.
grep -E "^(✔|✘) Test run with|Executed [0-9]+ tests" "$log" | tail -n 2
