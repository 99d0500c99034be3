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
#   TEST_WIDTH=4 scripts/test.sh     # at most 4 tests at once (default 8)
#
# The tests run at most TEST_WIDTH at a time (swift-testing's parallelization width; plain
# `swift test` starts all of them at once). Most tests start real hubs, agents and
# databases; all of them (about 300) at once on a 2-core machine left hubs' timers and HTTP handlers
# waiting for tens of seconds for a thread of Swift's cooperative pool (one per core),
# and hang guards fired. See docs/decisions.md, "Tests on a busy machine".
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

fuzz_seconds="${FUZZ_SECONDS:-30}"
if ! [[ "$fuzz_seconds" =~ ^[0-9]+$ ]]; then
    echo "test.sh: FUZZ_SECONDS must be a whole number, got '$fuzz_seconds'" >&2
    exit 2
fi
width="${TEST_WIDTH:-8}"
if ! [[ "$width" =~ ^[1-9][0-9]*$ ]]; then
    echo "test.sh: TEST_WIDTH must be a whole number of 1 or more, got '$width'" >&2
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
# The test bundle itself, so swift-testing takes the width (`swift test` has no flag for it).
# Two kinds of test run alone afterwards, one at a time: the one that restarts the
# PostgreSQL server (every other suite shares it, and a restart under them fails their
# queries), and the connection floods, which hold thousands of descriptors in the test
# process (Foundation's Process.run, which CLI tests call, was seen to crash copying a
# descriptor table that grew under it).
bundle="$(swift build --show-bin-path)/FeedbackMeshPackageTests.xctest"
alone='aDatabaseRestartLosesNothingAndTheHubsRecover|ConnectionFloodTests'
status=0
NO_COLOR=1 "$bundle" --testing-library swift-testing --experimental-maximum-parallelization-width "$width" --skip "$alone" 2>&1 |
    tee "$log" || status=$?
NO_COLOR=1 "$bundle" --testing-library swift-testing --experimental-maximum-parallelization-width 1 --filter "$alone" 2>&1 |
    tee -a "$log" || status=$?

if [ "$fuzz_seconds" -gt 0 ]; then
    scripts/fuzz-wire.sh "$fuzz_seconds"
fi

# Repeat the test runner's verdicts last, where CI and people look for them.
grep -E "^(✔|✘) Test run with" "$log" | sort -u
exit "$status"
