#!/usr/bin/env bash
# End-to-end hub ingest benchmark: a real `feedback-hub serve` (release build, SQLite store,
# TLS 1.3) on loopback, driven by `feedback-bench load` with many concurrent connections.
# Prints the load generator's figures and the hub's CPU time and resident memory, sampled
# every second into $OUT/hub-rss.tsv (seconds, RSS KiB, CPU seconds).
#
#   scripts/bench-hub.sh                                # 50 connections, 2,000,000 records
#   CONNECTIONS=50 RECORDS=4000000 scripts/bench-hub.sh
#   LIVE=1 SECONDS_MAX=600 RECORDS=1000000000 scripts/bench-hub.sh   # 10-minute soak
#
# Every run stops by itself: after RECORDS are acknowledged or SECONDS_MAX seconds.
# Figures and the machine they came from are kept in docs/BENCHMARKS.md.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

connections="${CONNECTIONS:-50}"
records="${RECORDS:-2000000}"
batch="${BATCH_RECORDS:-1000}"
seconds="${SECONDS_MAX:-120}"
config="${BUILD_CONFIG:-release}"
out="${OUT:-$(mktemp -d)}"
mkdir -p "$out"

swift build -c "$config" --product feedback-hub
swift build -c "$config" --product feedback-bench
bin="$(swift build -c "$config" --show-bin-path)"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
http=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
rm -rf "$out/hub"
"$bin/feedback-hub" init "$out/hub" --listen "127.0.0.1:$port" --http "127.0.0.1:$http" > /dev/null
# Every connection comes from 127.0.0.1 and enrolls at once, each enrollment a durable
# commit: more than the default 32 handshakes per address would evict the slowest (as the
# limit means to for a real address).
sed -i "s/^  maxHandshakesPerAddress: .*/  maxHandshakesPerAddress: $connections/" "$out/hub/hub.yaml"
"$bin/feedback-hub" agents token --config "$out/hub/hub.yaml" --any-site --count "$connections" > "$out/tokens.txt"

"$bin/feedback-hub" serve --config "$out/hub/hub.yaml" --log-level warning > "$out/hub.log" 2>&1 &
hub=$!
trap 'kill -9 $hub 2>/dev/null || true' EXIT
for _ in $(seq 1 200); do
    curl -fs "http://127.0.0.1:$http/readyz" > /dev/null 2>&1 && break
    sleep 0.05
done

ticks=$(getconf CLK_TCK)
(
    start=$(date +%s)
    while kill -0 $hub 2>/dev/null; do
        rss=$(awk '/^VmRSS/ {print $2}' /proc/$hub/status 2>/dev/null || echo 0)
        cpu=$(awk -v t="$ticks" '{printf "%.1f", ($14 + $15) / t}' /proc/$hub/stat 2>/dev/null || echo 0)
        echo -e "$(( $(date +%s) - start ))\t$rss\t$cpu"
        sleep 1
    done
) > "$out/hub-rss.tsv" &
sampler=$!

live=()
if [ "${LIVE:-0}" = 1 ]; then live=(--live); fi
/usr/bin/time -f "bench process: %e s wall, %U s user, %S s system, peak RSS %M KiB" \
    "$bin/feedback-bench" load --hub "127.0.0.1:$port" --ca "$out/hub/ca.pem" --tokens "$out/tokens.txt" \
    --connections "$connections" --records "$records" --batch-records "$batch" --max-seconds "$seconds" "${live[@]}" \
    | tee "$out/bench.txt"

curl -fs "http://127.0.0.1:$http/metrics" > "$out/metrics.txt"
stored=$(awk '/^feedback_hub_records_stored_total/ {print $2}' "$out/metrics.txt")
kill -TERM $hub
wait $hub || true
sleep 1.2
kill $sampler 2>/dev/null || true

echo "hub: records stored (metric) $stored"
# Batches per commit transaction (the group commit's size), what scripts/bench-limit.sh
# gives the raw inserts.
awk '/^feedback_hub_commit_batches_sum/ {sum = $2} /^feedback_hub_commit_batches_count/ {count = $2}
    END {if (count > 0) printf "hub: %d commit transactions, %.1f batches per transaction\n", count, sum / count}' "$out/metrics.txt"
awk -F'\t' 'NR == 1 {first = $2} {if ($2 > peak) peak = $2; last = $2; cpu = $3}
    END {printf "hub: peak RSS %.1f MiB, first sample %.1f MiB, last %.1f MiB, CPU %.1f s\n", peak/1024, first/1024, last/1024, cpu}' "$out/hub-rss.tsv"
echo "store: $(du -sh "$out/hub" | cut -f1) in $out/hub; RSS samples in $out/hub-rss.tsv"
