#!/usr/bin/env bash
# Agent memory and intake throughput: a release `feedback-hub` and a release
# `feedback-agent run` with HTTP intake on loopback. Measures the agent's resident memory
# idle (connected, nothing to send) and under load (CLIENTS Python threads posting arrays
# of 100 ratings for LOAD_SECONDS), and checks that the hub stored every accepted rating.
#
#   scripts/bench-agent.sh                       # 8 clients, 30 s
#   CLIENTS=16 LOAD_SECONDS=60 scripts/bench-agent.sh
#   FOOTPRINT=1 scripts/bench-agent.sh           # and where the idle memory goes (binary, mappings, modules)
#
# Figures and the machine they came from are kept in docs/BENCHMARKS.md.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
clients="${CLIENTS:-8}"
seconds="${LOAD_SECONDS:-30}"
out="${OUT:-$(mktemp -d)}"
mkdir -p "$out"

swift build -c release --product feedback-hub
swift build -c release --product feedback-agent
bin="$(swift build -c release --show-bin-path)"
. scripts/lib/bench-setup.sh
cat > "$out/agent/agent.yaml" <<YAML
identity: agent.json
hubs: ["127.0.0.1:$port"]
ca: $out/hub/ca.pem
http: {listen: "127.0.0.1:$agenthttp"}
YAML

"$bin/feedback-hub" serve --config "$out/hub/hub.yaml" --log-level warning > "$out/hub.log" 2>&1 &
hub=$!
"$bin/feedback-agent" run --config "$out/agent/agent.yaml" --log-level warning > "$out/agent.log" 2>&1 &
agent=$!
trap 'kill -9 $hub $agent 2>/dev/null || true' EXIT
for _ in $(seq 1 200); do curl -fs "http://127.0.0.1:$agenthttp/healthz" > /dev/null 2>&1 && break; sleep 0.05; done

# VmRSS counts the binary's and Swift libraries' file pages too (shared, reclaimable);
# RssAnon is the agent's own memory.
rss() { awk -v k="$1" '$1 == k":" {print $2}' /proc/$agent/status; }
sleep 5
idle=$(rss VmRSS); idle_anon=$(rss RssAnon)
# FOOTPRINT=1: where the idle memory goes, before any load (docs/BENCHMARKS.md, "Agent footprint").
if [ "${FOOTPRINT:-0}" = 1 ]; then python3 scripts/agent-footprint.py "$agent" "$bin/feedback-agent"; fi
echo "0 0" > "$out/peak"
( peak=0; peak_anon=0
  while kill -0 $agent 2>/dev/null; do
      r=$(rss VmRSS 2>/dev/null || echo 0); a=$(rss RssAnon 2>/dev/null || echo 0)
      [ "${r:-0}" -gt "$peak" ] && peak=$r; [ "${a:-0}" -gt "$peak_anon" ] && peak_anon=$a
      echo "$peak $peak_anon" > "$out/peak"; sleep 0.2
  done ) &
sampler=$!

python3 - "$agenthttp" "$clients" "$seconds" > "$out/load.txt" <<'PY'
import json, sys, threading, time, urllib.request
port, clients, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
body = json.dumps([{"source": "popup", "scale": "nps", "score": i % 11, "site": "web-eu", "subject": "checkout",
                    "customer": "cust-%d" % i, "comment": "fine" if i % 3 else ""} for i in range(100)]).encode()
accepted = [0] * clients
deadline = time.time() + seconds
def run(n):
    while time.time() < deadline and accepted[n] < 2_000_000:
        req = urllib.request.Request("http://127.0.0.1:%d/v1/feedback" % port, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            if r.status == 202: accepted[n] += 100
threads = [threading.Thread(target=run, args=(n,)) for n in range(clients)]
start = time.time()
for t in threads: t.start()
for t in threads: t.join()
print("%d %.2f" % (sum(accepted), time.time() - start))
PY
read accepted elapsed < "$out/load.txt"
for _ in $(seq 1 600); do
    stored=$(curl -fs "http://127.0.0.1:$hubhttp/metrics" | awk '/^feedback_hub_records_stored_total/ {print $2}')
    [ "${stored:-0}" -ge "$accepted" ] && break
    sleep 0.1
done
kill $sampler 2>/dev/null || true
read peak peak_anon < "$out/peak"
kill -TERM $agent; wait $agent || true
kill -TERM $hub; wait $hub || true
echo "agent idle, connected: RSS $(( idle / 1024 )) MiB, of it private (RssAnon) $(( idle_anon / 1024 )) MiB"
echo "agent under load peak: RSS $(( peak / 1024 )) MiB, private $(( peak_anon / 1024 )) MiB"
echo "accepted over HTTP:    $accepted ratings in $elapsed s ($(python3 -c "print(int($accepted/$elapsed))") ratings/s, $clients clients, 100 per request)"
echo "stored in the hub:     $stored"
