#!/usr/bin/env bash
# The mesh benchmark (issue 14), real processes on loopback, release builds:
#   1. records/s through one relay to a hub, next to the same load sent straight to the hub
#      in the same run (`feedback-bench load`, its nodes enrolled at the hub with --enroll-at);
#      the figure is end to end: from the load's start until the hub has stored every record;
#   2. alert latency, submit → webhook, p50/p99, for a probe agent straight on the hub, one
#      behind one relay and one behind two (kiosk → branch → region → hub);
#   3. a relay's resident memory while it holds a backlog (its link to the hub cut by a
#      small proxy), and how fast it drains once the link is back (through that Python
#      proxy, which costs CPU of its own).
#
#   scripts/bench-relay.sh
#   RECORDS=2000000 BACKLOG=4000000 PROBES=200 scripts/bench-relay.sh
#
# Bounded: every load stops after SECONDS_MAX; every wait has a deadline.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

connections="${CONNECTIONS:-20}"
records="${RECORDS:-1000000}"
backlog="${BACKLOG:-2000000}"
probes="${PROBES:-100}"
seconds="${SECONDS_MAX:-120}"
config="${BUILD_CONFIG:-release}"
out="${OUT:-$(mktemp -d)}"
mkdir -p "$out"

swift build -c "$config" --product feedback-hub
swift build -c "$config" --product feedback-agent
swift build -c "$config" --product feedback-bench
bin="$(swift build -c "$config" --show-bin-path)"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_url() { for _ in $(seq 1 400); do curl -fs "$1" > /dev/null 2>&1 && return 0; sleep 0.05; done; echo "no answer from $1" >&2; return 1; }
pids=()
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done' EXIT
port=$(free_port); http=$(free_port); receiver=$(free_port); gate=$(free_port); gatectl=$(free_port)

# Webhook receiver: one line per alert, "latency_ms site".
cat > "$out/receiver.py" <<'PY'
import json, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
out = open(sys.argv[2], "a", buffering=1)
class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        alert = json.loads(body)["alert"]
        out.write(f"{time.time() * 1000 - alert['capturedAt']:.1f} {alert['site']}\n")
        self.send_response(204)
        self.end_headers()
    def log_message(self, *args):
        pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Hook).serve_forever()
PY
: > "$out/latencies.txt"
python3 "$out/receiver.py" "$receiver" "$out/latencies.txt" &
pids+=($!)

# A TCP proxy in front of the hub whose link can be cut and healed (POST /cut, /heal on its
# control port): the branch's WAN link.
cat > "$out/gate.py" <<'PY'
import socket, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
listen, target, control = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
state = {"open": True, "socks": []}
lock = threading.Lock()
def pipe(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data: break
            b.sendall(data)
    except OSError: pass
    for s in (a, b):
        try: s.close()
        except OSError: pass
def accept(server):
    while True:
        client, _ = server.accept()
        if not state["open"]:
            client.close(); continue
        try: upstream = socket.create_connection(("127.0.0.1", target))
        except OSError: client.close(); continue
        with lock: state["socks"] += [client, upstream]
        threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
class Control(BaseHTTPRequestHandler):
    def do_POST(self):
        with lock:
            state["open"] = self.path == "/heal"
            if not state["open"]:
                for s in state["socks"]:
                    try: s.shutdown(socket.SHUT_RDWR); s.close()
                    except OSError: pass
                state["socks"] = []
        self.send_response(204); self.end_headers()
    def log_message(self, *args): pass
server = socket.socket(); server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", listen)); server.listen(256)
threading.Thread(target=accept, args=(server,), daemon=True).start()
ThreadingHTTPServer(("127.0.0.1", control), Control).serve_forever()
PY

rm -rf "$out/hub" "$out"/relay-* "$out"/probe-*
"$bin/feedback-hub" init "$out/hub" --listen "127.0.0.1:$port" --http "127.0.0.1:$http" > /dev/null
cat > "$out/hub/alerts.yaml" <<YAML
targets:
  probe-manager: {url: "http://127.0.0.1:$receiver/hook", secret: "whsec_$(head -c 24 /dev/urandom | base64)"}
routes:
  - {site: probe-0, target: probe-manager}
  - {site: probe-1, target: probe-manager}
  - {site: probe-2, target: probe-manager}
rules:
  - {name: detractor, scale: nps, sites: [probe-0, probe-1, probe-2]}
YAML
echo "alerts: alerts.yaml" >> "$out/hub/hub.yaml"
"$bin/feedback-hub" serve --config "$out/hub/hub.yaml" --log-level warning > "$out/hub.log" 2>&1 &
hub=$!
pids+=($hub)
wait_url "http://127.0.0.1:$http/readyz"
python3 "$out/gate.py" "$gate" "$port" "$gatectl" &
pids+=($!)

token() { "$bin/feedback-hub" agents token --config "$out/hub/hub.yaml" "$@"; }
# node NAME UPSTREAM SITE [relay]: keygen, enroll at the hub, config; prints nothing.
node() {
    local name=$1 upstream=$2 site=$3 role=${4:-agent} dir="$out/$1" intake relayport
    mkdir -p "$dir"
    "$bin/feedback-agent" keygen --out "$dir/agent.json" > /dev/null
    if [ "$role" = relay ]; then flags=(--site "$site" --relay); else flags=(--site "$site"); fi
    token "${flags[@]}" | "$bin/feedback-agent" enroll --identity "$dir/agent.json" --hub "127.0.0.1:$port" \
        --ca "$out/hub/ca.pem" --token-file - > /dev/null
    intake=$(free_port); echo "$intake" > "$dir/intake"
    cat > "$dir/agent.yaml" <<YAML
identity: agent.json
hubs: ["$upstream"]
ca: $out/hub/ca.pem
http: {listen: "127.0.0.1:$intake"}
YAML
    if [ "$role" = relay ]; then
        relayport=$(free_port); echo "$relayport" > "$dir/port"
        "$bin/feedback-hub" certs relay --hostname 127.0.0.1 --ca-certificate "$out/hub/ca.pem" --ca-key "$out/hub/ca-key.pem" \
            --out "$dir" > /dev/null
        echo "relay: {listen: \"127.0.0.1:$relayport\", certificate: relay.pem, privateKey: relay-key.pem}" >> "$dir/agent.yaml"
    fi
    "$bin/feedback-agent" run --config "$dir/agent.yaml" --log-level warning > "$dir/agent.log" 2>&1 &
    echo $! > "$dir/pid"
    pids+=($!)
    wait_url "http://127.0.0.1:$intake/healthz"
}
stored() { curl -fs "http://127.0.0.1:$http/metrics" | awk '/^feedback_hub_records_stored_total/ {print $2 + 0}'; }
usage() { # pid name
    awk -v t="$(getconf CLK_TCK)" -v n="$2" '{printf "%-14s CPU %6.1f s", n, ($14 + $15) / t}' "/proc/$1/stat"
    awk '/^VmRSS/ {r=$2} /^RssAnon/ {a=$2} /^VmHWM/ {h=$2} END {printf "   RSS %5.1f MiB (anon %5.1f)  peak %5.1f MiB\n", r/1024, a/1024, h/1024}' "/proc/$1/status"
}

node relay-direct "127.0.0.1:$port" "*" relay  # phase 1: nothing between it and the hub
node relay-region "127.0.0.1:$gate" "*" relay  # phases 2 and 3: its link to the hub can be cut
node relay-branch "127.0.0.1:$(cat "$out/relay-region/port")" "*" relay
sleep 3  # each relay has the hub's registry

# load TARGET NAME [extra flags]: end-to-end records/s until the hub has stored them all.
load() {
    local target=$1 name=$2; shift 2
    token --any-site --count "$connections" > "$out/tokens-$name.txt"
    local before; before=$(stored)
    local start; start=$(date +%s.%N)
    "$bin/feedback-bench" load --hub "$target" --ca "$out/hub/ca.pem" --tokens "$out/tokens-$name.txt" \
        --connections "$connections" --records "$records" --batch-records 1000 --max-seconds "$seconds" "$@" > "$out/load-$name.txt" 2>&1
    for _ in $(seq 1 $((seconds * 10))); do [ "$(stored)" -ge $((before + records)) ] && break; sleep 0.1; done
    local end; end=$(date +%s.%N)
    local got=$(( $(stored) - before ))
    python3 -c "import sys; print(f'{sys.argv[1]:<28} {int(sys.argv[2]):>9} records stored in {float(sys.argv[4]) - float(sys.argv[3]):6.2f} s = {int(sys.argv[2]) / (float(sys.argv[4]) - float(sys.argv[3])):>9,.0f} records/s end to end')" \
        "$name" "$got" "$start" "$end"
    grep -E "records/s|acknowledged" "$out/load-$name.txt" | sed 's/^/    load: /' | head -3
}

echo "== 1. throughput: $records records, $connections connections, batches of 1000"
load "127.0.0.1:$port" "straight to the hub"
load "127.0.0.1:$(cat "$out/relay-direct/port")" "through one relay" --enroll-at "127.0.0.1:$port"
usage "$(cat "$out/relay-direct/pid")" "relay"

echo "== 2. alert latency: $probes detractors per path, one every 100 ms"
node probe-0 "127.0.0.1:$port" probe-0
node probe-1 "127.0.0.1:$(cat "$out/relay-region/port")" probe-1
node probe-2 "127.0.0.1:$(cat "$out/relay-branch/port")" probe-2
sleep 2
for hops in 0 1 2; do
    python3 - "$(cat "$out/probe-$hops/intake")" "$probes" "probe-$hops" <<'PY'
import json, sys, time, urllib.request
port, count, site = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
for i in range(count):
    body = json.dumps({"source": "popup", "scale": "nps", "score": i % 7, "site": site}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/feedback", body, {"Content-Type": "application/json"})
    assert urllib.request.urlopen(request).status == 202
    time.sleep(0.1)
PY
done
for _ in $(seq 1 100); do [ "$(wc -l < "$out/latencies.txt")" -ge $((probes * 3)) ] && break; sleep 0.1; done
python3 - "$out/latencies.txt" "$probes" <<'PY'
import sys, collections
by = collections.defaultdict(list)
for line in open(sys.argv[1]):
    latency, site = line.split()
    by[site].append(float(latency))
def q(values, p):
    return values[min(len(values) - 1, max(0, int(len(values) * p + 0.999999) - 1))]
base = None
for hops, name in ((0, "straight to the hub"), (1, "through one relay"), (2, "through two relays")):
    values = sorted(by[f"probe-{hops}"])
    if not values:
        print(f"{name:<22} no alerts"); continue
    p50, p99 = q(values, 0.5), q(values, 0.99)
    base = base or (p50, p99)
    extra = "" if hops == 0 else f"   (+{(p99 - base[1]) / hops:.1f} ms p99 per hop)"
    print(f"{name:<22} {len(values):>4} of {sys.argv[2]} alerts   submit -> webhook ms: p50 {p50:6.1f}  p99 {p99:6.1f}{extra}")
PY

echo "== 3. a relay holding a backlog of $backlog records (its link to the hub cut), then draining"
region=$(cat "$out/relay-region/pid")
before=$(stored)
token --any-site --count "$connections" > "$out/tokens-backlog.txt"
"$bin/feedback-bench" load --hub "127.0.0.1:$(cat "$out/relay-region/port")" --ca "$out/hub/ca.pem" --tokens "$out/tokens-backlog.txt" \
    --connections "$connections" --records "$backlog" --batch-records 1000 --max-seconds "$seconds" --live \
    --enroll-at "127.0.0.1:$port" > "$out/load-backlog.txt" 2>&1 &
loader=$!
pids+=($loader)
# The nodes are enrolled (and known to the relay) once their first records reach the hub:
# then the link goes down and the rest piles up at the relay.
for _ in $(seq 1 600); do [ "$(stored)" -gt "$before" ] && break; sleep 0.05; done
curl -fs -X POST "http://127.0.0.1:$gatectl/cut"
wait $loader || true
held=$(( backlog - ($(stored) - before) ))
echo "    the relay holds $held records ($(du -sh "$out/relay-region/spool" | cut -f1) of spool) for the hub"
grep -E "records/s" "$out/load-backlog.txt" | sed 's/^/    into the relay: /' | head -2
echo "    relay spool: $(du -sh "$out/relay-region/spool" | cut -f1)"
usage "$region" "relay (held)"
start=$(date +%s.%N)
curl -fs -X POST "http://127.0.0.1:$gatectl/heal"
for _ in $(seq 1 $((seconds * 10))); do [ "$(stored)" -ge $((before + backlog)) ] && break; sleep 0.1; done
end=$(date +%s.%N)
python3 -c "import sys; n=int(sys.argv[1]); t=float(sys.argv[3])-float(sys.argv[2]); print(f'    drained {n} records through the relay in {t:.1f} s = {n/t:,.0f} records/s')" \
    "$(( $(stored) - before ))" "$start" "$end"
usage "$region" "relay (drained)"
usage "$hub" "hub"
echo "files: $out"
