#!/usr/bin/env bash
# Runs the Wire benchmarks (ordo-one/benchmark) in release mode and prints their tables.
#
#   scripts/bench-wire.sh [FILTER]    # e.g. scripts/bench-wire.sh 'Open.*'
#
# One iteration handles one batch of 1,000 typical records: records/s = throughput × 1,000.
# Figures and the machine they came from are kept in docs/BENCHMARKS.md.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/Benchmarks"
args=(--target WireBenchmarks --no-progress)
if [ $# -gt 0 ]; then args+=(--filter "$1"); fi
swift package --scratch-path "$root/.build-bench" benchmark "${args[@]}"
