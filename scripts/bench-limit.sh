#!/usr/bin/env bash
# The hub's ingest against the storage engine's limit, in one run (issue 17): first
# scripts/bench-hub.sh (a real hub, TLS, 50 connections by default), then, right after on
# the same machine, `feedback-bench raw-insert`: the same number of ratings into the hub's
# own SQLite schema with SQLite's C API alone, in batches of the same size and
# transactions of as many batches as the hub's group commit took on average. Prints both
# rates and their ratio.
#
#   scripts/bench-limit.sh                          # 2,000,000 ratings
#   RECORDS=4000000 scripts/bench-limit.sh
#
# Every run stops by itself (bench-hub.sh's SECONDS_MAX; raw-insert inserts RECORDS).
# Figures and the machine they came from are kept in docs/BENCHMARKS.md.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

records="${RECORDS:-2000000}"
batch="${BATCH_RECORDS:-1000}"
out="${OUT:-$(mktemp -d)}"
mkdir -p "$out"
export RECORDS="$records" BATCH_RECORDS="$batch" OUT="$out/hub-run"

echo "== the hub (scripts/bench-hub.sh)"
scripts/bench-hub.sh | tee "$out/hub.txt"
hub_rate=$(awk '/^throughput:/ {print $2}' "$out/hub.txt")
per_tx=$(awk '/batches per transaction/ {printf "%d", $(NF-3) + 0.5}' "$out/hub.txt")
[ -n "$hub_rate" ] && [ -n "$per_tx" ] || { echo "bench-limit: no throughput or transaction size from bench-hub.sh" >&2; exit 1; }
[ "$per_tx" -ge 1 ] || per_tx=1
rm -rf "$out/hub-run/hub"

echo "== raw inserts into the hub's schema (feedback-bench raw-insert, $per_tx batches per transaction)"
bin="$(swift build -c release --show-bin-path)"
rm -rf "$out/raw"
"$bin/feedback-bench" raw-insert --store "$out/raw" --records "$records" --batch-records "$batch" --transaction-batches "$per_tx" |
    tee "$out/raw.txt"
raw_rate=$(awk '/^raw insert:/ {print $NF == "records/s" ? $(NF-1) : $NF}' "$out/raw.txt")
rm -rf "$out/raw"

awk -v hub="$hub_rate" -v raw="$raw_rate" 'BEGIN {
    printf "hub %.0f records/s, raw %.0f records/s: the hub at %.1f %% of the storage engine'"'"'s rate\n", hub, raw, 100 * hub / raw }'
