#!/usr/bin/env bash
# The performance report: alert latency from a rating submitted to an agent's HTTP intake
# to the webhook request arriving at a local receiver, while the hub ingests background
# load; with the load's records/s and bytes on the wire per record, and the hub's and the
# agent's CPU time and peak memory.
#
#   scripts/bench-alerts.sh                          # 10,000 records/s background, 200 probes
#   RATE=20000 PROBES=500 scripts/bench-alerts.sh
#   BACKLOG=4000000 scripts/bench-alerts.sh          # instead: 50 agents back from an outage drain 4,000,000
#                                                    # ratings captured an hour ago, as fast as the hub takes them
#   COMMIT_MAX_RECORDS=5000 scripts/bench-alerts.sh # the hub's commit.maxRecords
#   STORE=postgres scripts/bench-alerts.sh           # the hub on PostgreSQL (COMMIT_WRITERS: its
#                                                    # postgres.commitWriters, default 2; a throwaway server
#                                                    # from scripts/lib/postgres.sh, or the one
#                                                    # FEEDBACK_TEST_POSTGRES_URL and _PASSWORD name)
#
# Real processes on loopback: `feedback-hub serve` (release build, SQLite or PostgreSQL, TLS 1.3) with an
# alert rule for the probe site; `feedback-agent run` (HTTP intake, default batching:
# 100 ms); `feedback-bench load --rate` for the background load; a Python webhook receiver
# that records, per alert, arrival time minus the rating's capture time (the agent stamps
# capturedAt when it accepts the rating; one machine, one clock).
# Bounded: the background load stops after SECONDS_MAX; probes are PROBES × INTERVAL_MS.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

rate="${RATE:-10000}"
probes="${PROBES:-200}"
interval_ms="${INTERVAL_MS:-100}"
seconds="${SECONDS_MAX:-60}"
backlog="${BACKLOG:-0}"
config="${BUILD_CONFIG:-release}"
store="${STORE:-sqlite}"
out="${OUT:-$(mktemp -d)}"
mkdir -p "$out"
case "$store" in
    sqlite | postgres) ;;
    *) echo "bench-alerts.sh: STORE must be sqlite or postgres, got '$store'" >&2; exit 2 ;;
esac

swift build -c "$config" --product feedback-hub
swift build -c "$config" --product feedback-agent
swift build -c "$config" --product feedback-bench
bin="$(swift build -c "$config" --show-bin-path)"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port); http=$(free_port); intake=$(free_port); receiver=$(free_port)
pids=()
pgdir=""
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait "${pids[@]}" 2>/dev/null || true  # reaped quietly: no "Killed" lines
    if [ -n "$pgdir" ]; then
        pg_stop "$pgdir" || true
        rm -rf "$pgdir"
    elif [ -n "${database:-}" ]; then  # a server of your own: drop what this run made
        PGPASSWORD="$FEEDBACK_TEST_POSTGRES_PASSWORD" "$FEEDBACK_TEST_POSTGRES_BIN/psql" -X -q "$FEEDBACK_TEST_POSTGRES_URL" \
            -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" > /dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

# The receiver: one line per webhook, "latency_ms type".
cat > "$out/receiver.py" <<'PY'
import json, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
out = open(sys.argv[2], "a", buffering=1)
class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        now = time.time() * 1000
        message = json.loads(body)
        out.write(f"{now - message['alert']['capturedAt']:.1f} {message['type']}\n")
        self.send_response(204)
        self.end_headers()
    def log_message(self, *args):
        pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Hook).serve_forever()
PY
: > "$out/latencies.txt"
python3 "$out/receiver.py" "$receiver" "$out/latencies.txt" &
pids+=($!)

rm -rf "$out/hub" "$out/agent"
"$bin/feedback-hub" init "$out/hub" --listen "127.0.0.1:$port" --http "127.0.0.1:$http" > /dev/null
cat > "$out/hub/alerts.yaml" <<YAML
targets:
  probe-manager: {url: "http://127.0.0.1:$receiver/hook", secret: "whsec_$(head -c 24 /dev/urandom | base64)"}
routes:
  - {site: probe-site, target: probe-manager}
rules:
  - {name: detractor, scale: nps, sites: [probe-site]}
YAML
echo "alerts: alerts.yaml" >> "$out/hub/hub.yaml"
# COMMIT_MAX_RECORDS: the hub's commit.maxRecords (most ratings one group commit holds).
if [ -n "${COMMIT_MAX_RECORDS:-}" ]; then sed -i "s/^  maxRecords: .*/  maxRecords: $COMMIT_MAX_RECORDS/" "$out/hub/hub.yaml"; fi
if [ "$store" = postgres ]; then
    # shellcheck source=scripts/lib/postgres.sh
    . scripts/lib/postgres.sh
    if [ -z "${FEEDBACK_TEST_POSTGRES_URL:-}" ]; then pgdir="$(mktemp -d -t feedback-pg.XXXXXX)"; fi
    pg_start "${pgdir:-/nonexistent}"
    database="bench_alerts_$$"
    PGPASSWORD="$FEEDBACK_TEST_POSTGRES_PASSWORD" "$FEEDBACK_TEST_POSTGRES_BIN/psql" -X -q "$FEEDBACK_TEST_POSTGRES_URL" \
        -c "CREATE DATABASE $database" > /dev/null
    sed -i '/^store:/d' "$out/hub/hub.yaml"
    printf 'store: "%s/%s"\npostgres: {passwordEnv: FEEDBACK_TEST_POSTGRES_PASSWORD, commitWriters: %s}\n' "${FEEDBACK_TEST_POSTGRES_URL%/*}" "$database" "${COMMIT_WRITERS:-2}" \
        >> "$out/hub/hub.yaml"
    echo "== the hub on PostgreSQL: database $database on ${FEEDBACK_TEST_POSTGRES_URL%/*}"
fi
# The 50 connections come from 127.0.0.1 and enroll at once, each enrollment a durable commit:
# more than the default 32 handshakes per address would evict the slowest.
sed -i "s/^  maxHandshakesPerAddress: .*/  maxHandshakesPerAddress: 64/" "$out/hub/hub.yaml"
"$bin/feedback-hub" agents token --config "$out/hub/hub.yaml" --any-site --count 50 > "$out/tokens.txt"
"$bin/feedback-hub" serve --config "$out/hub/hub.yaml" --log-level warning > "$out/hub.log" 2>&1 &
hub=$!
pids+=($hub)
for _ in $(seq 1 200); do curl -fs "http://127.0.0.1:$http/readyz" > /dev/null 2>&1 && break; sleep 0.05; done

mkdir -p "$out/agent"
"$bin/feedback-agent" keygen --out "$out/agent/agent.json" > /dev/null
"$bin/feedback-hub" agents token --config "$out/hub/hub.yaml" --site probe-site |
    "$bin/feedback-agent" enroll --identity "$out/agent/agent.json" --hub "127.0.0.1:$port" --ca "$out/hub/ca.pem" --token-file - > /dev/null
cat > "$out/agent/agent.yaml" <<YAML
identity: agent.json
hubs: ["127.0.0.1:$port"]
ca: $out/hub/ca.pem
http: {listen: "127.0.0.1:$intake"}
YAML
"$bin/feedback-agent" run --config "$out/agent/agent.yaml" --log-level warning > "$out/agent.log" 2>&1 &
agent=$!
pids+=($agent)
for _ in $(seq 1 200); do curl -fs "http://127.0.0.1:$intake/healthz" > /dev/null 2>&1 && break; sleep 0.05; done

if [ "$backlog" -gt 0 ]; then
    echo "== background: 50 agents drain a backlog of $backlog ratings captured an hour ago, as fast as the hub takes them"
    "$bin/feedback-bench" load --hub "127.0.0.1:$port" --ca "$out/hub/ca.pem" --tokens "$out/tokens.txt" \
        --connections 50 --records "$backlog" --batch-records 1000 --captured-ago 3600 --max-seconds 600 \
        > "$out/bench.txt" 2>&1 &
    bench=$!
    pids+=($bench)
    # Probes start once the drain has (the load seals its batches first).
    for _ in $(seq 1 1200); do
        stored=$(curl -fs "http://127.0.0.1:$http/metrics" | awk '/^feedback_hub_records_stored_total/ {print $2}')
        [ "${stored:-0}" != 0 ] && break
        sleep 0.1
    done
    sleep 1
else
    echo "== background: $rate records/s for up to $seconds s"
    "$bin/feedback-bench" load --hub "127.0.0.1:$port" --ca "$out/hub/ca.pem" --tokens "$out/tokens.txt" \
        --connections 10 --records $((rate * seconds)) --batch-records 500 --rate "$rate" --live --max-seconds "$seconds" \
        > "$out/bench.txt" 2>&1 &
    bench=$!
    pids+=($bench)
    sleep 3
fi

echo "== $probes detractors into the agent's intake, one every $interval_ms ms"
python3 - "$intake" "$probes" "$interval_ms" <<'PY'
import json, sys, time, urllib.request
port, count, interval = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]) / 1000
for i in range(count):
    body = json.dumps({"source": "popup", "scale": "nps", "score": i % 7, "site": "probe-site", "channel": "app",
                       "subject": "checkout", "comment": f"probe {i}"}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/feedback", body, {"Content-Type": "application/json"})
    assert urllib.request.urlopen(request).status == 202
    time.sleep(interval)
PY
for _ in $(seq 1 100); do [ "$(wc -l < "$out/latencies.txt")" -ge "$probes" ] && break; sleep 0.1; done
stored_during=$(curl -fs "http://127.0.0.1:$http/metrics" | awk '/^feedback_hub_records_stored_total/ {print $2}')
wait $bench || true
# The hub's own view: how long its commits took and how many batches each held.
curl -fs "http://127.0.0.1:$http/metrics" > "$out/hub-metrics.txt" || true
# CPU seconds and peak resident memory of the hub and the agent over the whole run.
usage() { # pid name
    awk -v t="$(getconf CLK_TCK)" -v n="$2" '{printf "%-6s CPU %6.1f s", n, ($14 + $15) / t}' "/proc/$1/stat"
    awk '/^VmHWM/ {printf "   peak RSS %4d MiB\n", $2 / 1024}' "/proc/$1/status"
}
resources="$(usage "$hub" hub; usage "$agent" agent)"

echo
cat "$out/bench.txt"
python3 - "$out/latencies.txt" "$probes" <<'PY'
import sys
values = sorted(float(line.split()[0]) for line in open(sys.argv[1]) if line.strip())
expected = int(sys.argv[2])
def q(p):
    return values[min(len(values) - 1, max(0, int(len(values) * p + 0.999999) - 1))]
print(f"alerts received: {len(values)} of {expected} detractors")
if values:
    print(f"submit -> webhook latency ms: p50 {q(0.50):.1f}  p90 {q(0.90):.1f}  p99 {q(0.99):.1f}  max {values[-1]:.1f}")
PY
echo "hub records stored by the end of the probes: $stored_during"
grep -E '^feedback_hub_(commit_duration_seconds|commit_batches|priority_commits_total|alert_latency_seconds)' "$out/hub-metrics.txt" | grep -v '_bucket' || true
echo "$resources"
echo "files: $out"
