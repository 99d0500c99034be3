#!/usr/bin/env bash
# The agent's memory and backlog figures of issue 13 in one run (release builds):
#  1. idle RSS of `feedback-agent run` connected to a `feedback-hub`;
#  2. the hub stops; CLIENTS Python threads post ratings to the agent's HTTP intake until
#     its spool holds BACKLOG_MIB; RSS (VmRSS and RssAnon from /proc) sampled every 0.2 s;
#  3. the hub starts again and the agent drains the backlog to it: records/s from the
#     moment the agent is connected until its spool is empty, RSS sampled throughout;
#     the hub must have stored every accepted rating, once;
#  4. the spool's append rate with group fsync (`feedback-bench spool`, 256 writers x 100).
#
#   scripts/bench-agent-backlog.sh                    # 1 GiB backlog
#   BACKLOG_MIB=256 scripts/bench-agent-backlog.sh    # smaller, quicker
#
# Figures and the machine they came from are kept in docs/BENCHMARKS.md.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
backlog_mib="${BACKLOG_MIB:-1024}"
clients="${CLIENTS:-6}"
out="${OUT:-$(mktemp -d)}"
mkdir -p "$out"

if [ -z "${SKIP_BUILD:-}" ]; then
    swift build -c release --product feedback-hub
    swift build -c release --product feedback-agent
    swift build -c release --product feedback-bench
fi
bin="$(swift build -c release --show-bin-path)"
. scripts/lib/bench-setup.sh
cat > "$out/agent/agent.yaml" <<YAML
identity: agent.json
hubs: ["127.0.0.1:$port"]
ca: $out/hub/ca.pem
spool: {quotaBytes: $(( (backlog_mib + 256) << 20 ))}
http: {listen: "127.0.0.1:$agenthttp", maxBodyBytes: 4194304}
drainTimeoutMs: 60000
YAML

"$bin/feedback-hub" serve --config "$out/hub/hub.yaml" --log-level warning > "$out/hub.log" 2>&1 &
hub=$!
"$bin/feedback-agent" run --config "$out/agent/agent.yaml" --log-level warning > "$out/agent.log" 2>&1 &
agent=$!
trap 'kill -9 $agent $hub 2>/dev/null || true' EXIT
for _ in $(seq 1 200); do curl -fs "http://127.0.0.1:$agenthttp/healthz" > /dev/null 2>&1 && break; sleep 0.05; done
status() { curl -fs "http://127.0.0.1:$agenthttp/status" | python3 -c "import json,sys; print(json.load(sys.stdin).get('$1', ''))"; }
for _ in $(seq 1 200); do [ -n "$(status connectedHub)" ] && break; sleep 0.05; done

rss() { awk -v k="$1" '$1 == k":" {print $2}' /proc/$agent/status; }
sleep 5
idle=$(rss VmRSS); idle_anon=$(rss RssAnon)
kill -TERM $hub; wait $hub || true
sleep 1
down=$(rss VmRSS); down_anon=$(rss RssAnon)
# Peaks per phase: the sampler writes "phase peak peak_anon" lines; the phase is read from a file.
echo fill > "$out/phase"
( while kill -0 $agent 2>/dev/null; do
      echo "$(cat "$out/phase") $(rss VmRSS 2>/dev/null || echo 0) $(rss RssAnon 2>/dev/null || echo 0)"; sleep 0.2
  done ) > "$out/samples" &
sampler=$!

python3 - "$agenthttp" "$clients" "$backlog_mib" > "$out/fill.txt" <<'PY'
import json, random, sys, threading, time, urllib.request
port, clients, backlog = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]) << 20
rng = random.Random(7)
words = "fast friendly slow queue checkout staff price clean rude helpful waited again never always".split()
bodies = [json.dumps([{"source": "popup", "scale": "nps", "score": rng.randrange(11), "site": "web-eu",
                       "subject": "checkout", "customer": "cust-%d" % rng.randrange(10**6),
                       "comment": " ".join(rng.choice(words) for _ in range(rng.randrange(12)))}
                      for _ in range(1000)]).encode() for _ in range(32)]
accepted = [0] * clients
done = threading.Event()
def spool_bytes():
    with urllib.request.urlopen("http://127.0.0.1:%d/status" % port, timeout=10) as r:
        return json.load(r)["spoolBytes"]
def run(n):
    i = n
    while not done.is_set() and accepted[n] < 50_000_000:
        req = urllib.request.Request("http://127.0.0.1:%d/v1/feedback" % port, data=bodies[i % len(bodies)],
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            if r.status == 202: accepted[n] += 1000
        i += clients
threads = [threading.Thread(target=run, args=(n,)) for n in range(clients)]
start = time.time()
for t in threads: t.start()
while spool_bytes() < backlog and time.time() - start < 1800: time.sleep(0.5)
done.set()
for t in threads: t.join()
print("%d %.2f %d" % (sum(accepted), time.time() - start, spool_bytes()))
PY
read accepted fill_seconds backlog_bytes < "$out/fill.txt"
sleep 2
full=$(rss VmRSS); full_anon=$(rss RssAnon)

echo drain > "$out/phase"
"$bin/feedback-hub" serve --config "$out/hub/hub.yaml" --log-level warning > "$out/hub.log" 2>&1 &
hub=$!
for _ in $(seq 1 1200); do [ -n "$(status connectedHub)" ] && break; sleep 0.05; done
cpu() { awk '{print $14 + $15}' /proc/$1/stat; }   # user + system ticks
drain_start=$(date +%s.%N); hub_cpu0=$(cpu $hub); agent_cpu0=$(cpu $agent)
for _ in $(seq 1 18000); do
    [ "$(status unsealedRecords 2>/dev/null)" = 0 ] && [ "$(status unacknowledgedBatches 2>/dev/null)" = 0 ] && break
    sleep 0.1
done
drain_end=$(date +%s.%N); hub_cpu=$(( $(cpu $hub) - hub_cpu0 )); agent_cpu=$(( $(cpu $agent) - agent_cpu0 ))
echo done > "$out/phase"
stored=$(curl -fs "http://127.0.0.1:$hubhttp/metrics" | awk '/^feedback_hub_records_stored_total/ {print $2}')
duplicates=$(curl -fs "http://127.0.0.1:$hubhttp/metrics" | awk '/^feedback_hub_batches_total\{outcome="duplicate"\}/ {print $2}')
kill $sampler 2>/dev/null || true
kill -TERM $agent; wait $agent || true
kill -TERM $hub; wait $hub || true
"$bin/feedback-bench" spool --directory "$out" --records 2000000 --writers 256 --per-append 100 > "$out/spool.txt"

peak() { awk -v p="$1" -v c="$2" '$1 == p && $c > m {m = $c} END {print m + 0}' "$out/samples"; }
mib() { python3 -c "print('%.1f MiB' % ($1 / 1024))"; }
echo "agent idle, connected:       RSS $(mib "$idle"), RssAnon $(mib "$idle_anon")"
echo "hub stopped:                 RSS $(mib "$down"), RssAnon $(mib "$down_anon")"
echo "filling the backlog (peak):  RSS $(mib "$(peak fill 2)"), RssAnon $(mib "$(peak fill 3)")"
echo "backlog in place:            RSS $(mib "$full"), RssAnon $(mib "$full_anon"), spool $(( backlog_bytes >> 20 )) MiB"
echo "draining (peak):             RSS $(mib "$(peak drain 2)"), RssAnon $(mib "$(peak drain 3)")"
echo "accepted over HTTP:          $accepted ratings in $fill_seconds s"
python3 -c "print('drained:                     %d ratings in %.1f s: %d records/s' % ($accepted, $drain_end - $drain_start, $accepted / ($drain_end - $drain_start)))"
hz=$(getconf CLK_TCK)
python3 -c "print('CPU while draining:          hub %.1f s, agent %.1f s (of %.1f s on 2 cores)' % ($hub_cpu / $hz, $agent_cpu / $hz, $drain_end - $drain_start))"
echo "stored in the hub:           ${stored:-0} (batches answered duplicate: ${duplicates:-0})"
echo "spool appends (group fsync): $(cat "$out/spool.txt")"
[ "${stored:-0}" = "$accepted" ] || { echo "MISMATCH: accepted $accepted, stored ${stored:-0}" >&2; exit 1; }
