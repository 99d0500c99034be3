#!/usr/bin/env bash
# The first command of the README: installs what is missing, builds, and runs the system on
# its embedded defaults, all on loopback:
#
#   - a hub (`feedback-hub serve`) with its SQLite store and TLS 1.3;
#   - a branch agent (`feedback-agent run`), enrolled with a one-time token, taking kiosk
#     presses, product popup ratings and call-centre survey scores over its local HTTP
#     intake (one bad request shows how a refusal looks);
#   - a product backend embedding the agent (Examples/EmbeddedAgent);
#   - then a report of what the hub stored (ratings, negatives and NPS per site), and a
#     tampered batch refused by the hub's signature check.
#
# Alerts to a webhook follow with issue 6. Everything it starts is stopped at the end.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

need=()
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v curl >/dev/null || need+=(curl)
[ -f /usr/include/zstd.h ] || need+=(libzstd-dev)
[ -f /usr/include/sqlite3.h ] || need+=(libsqlite3-dev)
if [ ${#need[@]} -gt 0 ]; then
    echo "== installing ${need[*]}"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -q
    $sudo apt-get install -y -q --no-install-recommends "${need[@]}"
fi

echo "== building"
swift build --product feedback-hub
swift build --product feedback-agent
swift build --product embedded-agent-example
bin="$(swift build --show-bin-path)"
work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port); hubhttp=$(free_port); intake=$(free_port)

echo
echo "== a hub: private CA, server certificate, configuration, empty store"
"$bin/feedback-hub" init "$work/hub" --listen "127.0.0.1:$port" --http "127.0.0.1:$hubhttp"
"$bin/feedback-hub" serve --config "$work/hub/hub.yaml" --log-level warning > "$work/hub.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$hubhttp/readyz" > /dev/null 2>&1 && break; sleep 0.1; done
echo "hub listening on 127.0.0.1:$port (TLS 1.3), operations on http://127.0.0.1:$hubhttp"

echo
echo "== a branch agent: its own key, enrolled with a one-time token"
mkdir -p "$work/branch"
"$bin/feedback-agent" keygen --out "$work/branch/agent.json" | tee "$work/branch/keygen.txt"
token=$("$bin/feedback-hub" agents token --config "$work/hub/hub.yaml" --site branch-042)
"$bin/feedback-agent" enroll --identity "$work/branch/agent.json" --hub "127.0.0.1:$port" --ca "$work/hub/ca.pem" --token "$token"
cat > "$work/branch/agent.yaml" <<YAML
identity: agent.json
hubs: ["127.0.0.1:$port"]
ca: $work/hub/ca.pem
http: {listen: "127.0.0.1:$intake"}
YAML
"$bin/feedback-agent" run --config "$work/branch/agent.yaml" --log-level warning > "$work/branch.log" 2>&1 &
branch=$!
pids+=($branch)
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$intake/healthz" > /dev/null 2>&1 && break; sleep 0.1; done

post() { curl -s -o /dev/stderr -w "%{http_code}" -H 'Content-Type: application/json' -d "$1" "http://127.0.0.1:$intake/v1/feedback" 2>/dev/null; }

echo
echo "== ratings into the branch agent's HTTP intake (each answered once durable on its disk)"
kiosk='['
for score in 4 4 3 1 4 2 4 3 4 1 4 4; do
    kiosk+="{\"source\":\"kiosk\",\"scale\":\"smiley\",\"score\":$score,\"site\":\"branch-042\",\"channel\":\"kiosk\",\"subject\":\"till-3\",\"survey\":\"smiley-exit\"},"
done
kiosk="${kiosk%,}]"
echo "12 kiosk presses at branch-042:        HTTP $(post "$kiosk")"
echo "popup NPS 3 with a comment (web-eu):   HTTP $(post '{"source":"popup","scale":"nps","score":3,"site":"web-eu","channel":"app","subject":"checkout","topic":"refund","survey":"nps-q4","customer":"cust-10022","comment":"Refund still missing after two weeks."}')"
echo "post-call CSAT 2 (cc-leeds, queue):    HTTP $(post '{"source":"call","scale":"csat","score":2,"site":"cc-leeds","channel":"phone","subject":"queue-billing","topic":"billing","survey":"post-call","customer":"+44-113-555-0199"}')"
echo "post-call CSAT 5 (cc-leeds, agent):    HTTP $(post '{"source":"call","scale":"csat","score":5,"site":"cc-leeds","channel":"phone","subject":"agent-417","survey":"post-call"}')"
echo -n "a bad one (NPS 11) is refused:        HTTP "
curl -s -w " %{http_code}\n" -H 'Content-Type: application/json' -d '{"source":"popup","scale":"nps","score":11}' "http://127.0.0.1:$intake/v1/feedback"

echo
echo "== a product backend embedding the agent (Examples/EmbeddedAgent)"
mkdir -p "$work/backend"
"$bin/feedback-agent" keygen --out "$work/backend/agent.json" > /dev/null
"$bin/feedback-agent" enroll --identity "$work/backend/agent.json" --hub "127.0.0.1:$port" --ca "$work/hub/ca.pem" \
    --token "$("$bin/feedback-hub" agents token --config "$work/hub/hub.yaml" --site web-eu)"
"$bin/embedded-agent-example" --identity "$work/backend/agent.json" --hub "127.0.0.1:$port" \
    --ca "$work/hub/ca.pem" --spool "$work/backend/spool" --ratings 20

echo
echo "== the branch agent forwards and drains"
expected=$((12 + 3 + 20))
for _ in $(seq 1 100); do
    stored=$(curl -fs "http://127.0.0.1:$hubhttp/metrics" | awk '/^feedback_hub_records_stored_total/ {print $2}')
    [ "${stored:-0}" -ge "$expected" ] && break
    sleep 0.1
done
"$bin/feedback-agent" status --config "$work/branch/agent.yaml"
kill -TERM "$branch"; wait "$branch" || true
kill -TERM "${pids[0]}"; wait "${pids[0]}" || true

echo
echo "== what the hub stored"
"$bin/feedback-hub" report --config "$work/hub/hub.yaml"

echo
echo "== a forged batch: sealed by the branch agent, one byte changed, checked as the hub checks"
printf '{"source":"kiosk","scale":"smiley","score":1,"site":"branch-042"}\n' > "$work/one.jsonl"
"$bin/feedback-agent" seal --identity "$work/branch/agent.json" --records "$work/one.jsonl" --sequence 1 --out "$work/batch.frame" > /dev/null
public_key="$(sed -n 's/^public key: *//p' "$work/branch/keygen.txt")"
cp "$work/batch.frame" "$work/tampered.frame"
size=$(stat -c %s "$work/tampered.frame")
printf '\xff' | dd of="$work/tampered.frame" bs=1 seek=$((size - 70)) conv=notrunc status=none
echo -n "genuine:  "
"$bin/feedback-hub" inspect "$work/batch.frame" --public-key "$public_key" | head -1
echo -n "tampered: "
if "$bin/feedback-hub" inspect "$work/tampered.frame" --public-key "$public_key" | tail -1; then
    echo "demo: the tampered batch was accepted" >&2
    exit 1
fi

if [ "${stored:-0}" -lt "$expected" ]; then
    echo "demo: the hub stored ${stored:-0} of $expected ratings" >&2
    exit 1
fi
echo
echo "demo: OK: $stored ratings from a branch agent and an embedded agent stored exactly once, signed and verified; the bad rating and the forged batch were refused."
