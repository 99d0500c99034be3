#!/usr/bin/env bash
# Fault-injection suite with real processes on loopback (scripts/faults.py): SIGKILL of the
# hub during load, SIGKILL of an agent while sending, the hub down while the agent buffers,
# connections cut mid-frame by a proxy, a full spool, a corrupted spool segment, and through a
# branch relay: the relay SIGKILLed mid-stream, its link to the hub down, its quota reached. After each
# it checks that every rating acknowledged to a caller is stored exactly once and every
# negative one alerted exactly once, and prints a table. Exits non-zero on any loss,
# duplicate, missed or doubled alert.
#
#   scripts/faults.sh                 # 2,000 ratings per scenario
#   RATINGS=500 scripts/faults.sh     # the short form CI runs
#
# Bounded: each scenario waits at most 60–90 s for its ratings.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
swift build --product feedback-hub
swift build --product feedback-agent
bin="$(swift build --show-bin-path)"
exec timeout 900 python3 scripts/faults.py "$bin"
