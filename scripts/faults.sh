#!/usr/bin/env bash
# Fault-injection suite with real processes on loopback (scripts/faults.py): SIGKILL of the
# hub during load, SIGKILL of an agent while sending, the hub down while the agent buffers,
# connections cut mid-frame by a proxy, a full spool, a corrupted spool segment; through a
# branch relay: the relay SIGKILLed mid-stream, its link to the hub down, its quota reached;
# and two hubs on one PostgreSQL: hub 1 SIGKILLed under load, the database restarted, the
# hubs' link to the database cut. After each it checks that every rating acknowledged to a
# caller is stored exactly once and every negative one alerted exactly once, and prints a
# table. Exits non-zero on any loss, duplicate, missed or doubled alert.
#
#   scripts/faults.sh                 # 2,000 ratings per scenario
#   RATINGS=500 scripts/faults.sh     # the short form CI runs
#   ONLY=scaleout scripts/faults.sh   # the scenarios whose function name holds 'scaleout'
#
# The scale-out scenarios need a PostgreSQL server: this script starts a throwaway one
# (scripts/lib/postgres.sh, which installs the Debian package if needed) and removes it at
# the end, unless FEEDBACK_TEST_POSTGRES_URL and _PASSWORD, _BIN, _DIR name one already.
#
# Bounded: each scenario waits at most 60–90 s for its ratings.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
swift build --product feedback-hub
swift build --product feedback-agent
bin="$(swift build --show-bin-path)"

# shellcheck source=scripts/lib/postgres.sh
. scripts/lib/postgres.sh
pgdir=""
cleanup() {
    if [ -n "$pgdir" ]; then
        pg_stop "$pgdir" || true
        rm -rf "$pgdir"
    fi
}
trap cleanup EXIT
if [ -z "${FEEDBACK_TEST_POSTGRES_URL:-}" ]; then
    pgdir="$(mktemp -d -t feedback-pg.XXXXXX)"
    pg_start "$pgdir"   # exports FEEDBACK_TEST_POSTGRES_URL, _PASSWORD, _BIN, _DIR
fi
for variable in FEEDBACK_TEST_POSTGRES_PASSWORD FEEDBACK_TEST_POSTGRES_BIN FEEDBACK_TEST_POSTGRES_DIR; do
    if [ -z "${!variable:-}" ]; then
        echo "faults.sh: FEEDBACK_TEST_POSTGRES_URL is set but $variable is not (the scale-out scenarios need all four)" >&2
        exit 2
    fi
done
timeout 1200 python3 scripts/faults.py "$bin"
