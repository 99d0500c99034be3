#!/usr/bin/env bash
# The first command of the README: installs what is missing, builds, and runs the system on
# its embedded defaults, all on loopback:
#
#   - a local webhook receiver standing in for the managers' systems;
#   - a hub (`feedback-hub serve`) with its SQLite store, TLS 1.3 and alert rules
#     (detractors and unhappy calls to the responsible manager, a window rule for kiosks);
#   - a branch agent (`feedback-agent run`), enrolled with a one-time token, reading a
#     kiosk button box (Linux input events through a FIFO) and an Asterisk CDR log, and
#     taking a product popup rating over its local HTTP intake (one bad request shows how
#     a refusal looks);
#   - a product backend embedding the agent (Examples/EmbeddedAgent);
#   - then a summary: what the hub stored (ratings, negatives and NPS per site), the alerts
#     raised and the signed webhooks delivered, and a tampered batch refused by the hub's
#     signature check.
#
# Everything it starts is stopped at the end.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

need=()
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v curl >/dev/null || need+=(curl)
command -v python3 >/dev/null || need+=(python3)
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
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port); hubhttp=$(free_port); intake=$(free_port); hooks=$(free_port)
secret="whsec_$(head -c 24 /dev/urandom | base64)"

echo
echo "== a webhook receiver on 127.0.0.1:$hooks (checks each Standard Webhooks signature)"
cat > "$work/receiver.py" <<'PY'
import base64, hashlib, hmac, json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
port, secret, log = int(sys.argv[1]), base64.b64decode(sys.argv[2][6:]), open(sys.argv[3], "a", buffering=1)
class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        signed = f"{self.headers['webhook-id']}.{self.headers['webhook-timestamp']}.".encode() + body
        expected = "v1," + base64.b64encode(hmac.new(secret, signed, hashlib.sha256).digest()).decode()
        ok = hmac.compare_digest(expected, self.headers.get("webhook-signature", ""))
        message = json.loads(body)
        log.write(f"{self.path[1:]:<22} {message['type']:<16} signature {'ok' if ok else 'BAD'}  {message['alert']['summary']}\n")
        self.send_response(204 if ok else 401)
        self.end_headers()
    def log_message(self, *args):
        pass
ThreadingHTTPServer(("127.0.0.1", port), Hook).serve_forever()
PY
: > "$work/webhooks.log"
python3 "$work/receiver.py" "$hooks" "$secret" "$work/webhooks.log" &
pids+=($!)

echo
echo "== a hub: private CA, server certificate, configuration, empty store, alert rules"
"$bin/feedback-hub" init "$work/hub" --listen "127.0.0.1:$port" --http "127.0.0.1:$hubhttp"
cat > "$work/hub/alerts.yaml" <<YAML
targets:
  branch-042-manager: {url: "http://127.0.0.1:$hooks/branch-042-manager", secret: "$secret"}
  web-product-lead:   {url: "http://127.0.0.1:$hooks/web-product-lead", secret: "$secret"}
  cc-leeds-supervisor: {url: "http://127.0.0.1:$hooks/cc-leeds-supervisor", secret: "$secret"}
routes:
  - {site: branch-042, target: branch-042-manager}
  - {site: web-eu, target: web-product-lead}
  - {site: cc-leeds, target: cc-leeds-supervisor}
rules:
  - {name: detractor, scale: nps, acknowledgeWithin: 15m, escalate: [branch-042-manager], closeWithin: 1d, remindBefore: 2h}
  - {name: unhappy-call, scale: csat, sources: [call]}
  - name: kiosk-red-wave
    scale: smiley
    sources: [kiosk]
    window: {per: site, share: 40, minResponses: 5, minutes: 15}
YAML
echo "alerts: alerts.yaml" >> "$work/hub/hub.yaml"
"$bin/feedback-hub" alerts check "$work/hub/alerts.yaml"
"$bin/feedback-hub" serve --config "$work/hub/hub.yaml" --log-level warning > "$work/hub.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$hubhttp/readyz" > /dev/null 2>&1 && break; sleep 0.1; done
echo "hub listening on 127.0.0.1:$port (TLS 1.3), operations on http://127.0.0.1:$hubhttp"

echo
echo "== a branch agent: its own key, enrolled with a one-time token"
mkdir -p "$work/branch"
"$bin/feedback-agent" keygen --out "$work/branch/agent.json" | tee "$work/branch/keygen.txt"
# The token goes through a pipe, never on a command line where `ps` would show it.
"$bin/feedback-hub" agents token --config "$work/hub/hub.yaml" --site branch-042 --site cc-leeds --site web-eu |
    "$bin/feedback-agent" enroll --identity "$work/branch/agent.json" --hub "127.0.0.1:$port" --ca "$work/hub/ca.pem" --token-file -
mkdir -p "$work/branch/cdr"
mkfifo "$work/branch/buttons.events"
cat > "$work/branch/agent.yaml" <<YAML
identity: agent.json
hubs: ["127.0.0.1:$port"]
ca: $work/hub/ca.pem
http: {listen: "127.0.0.1:$intake"}
sites: [branch-042, cc-leeds, web-eu]   # what its enrollment token allows; others are refused at capture
sources:
  - {name: entrance, kind: kiosk, device: buttons.events, site: branch-042, kiosk: entrance-1,
     keys: {KEY_1: 1, KEY_2: 2, KEY_3: 3, KEY_4: 4}, survey: smiley-exit}
  - {name: calls, kind: asterisk, path: cdr/Master.csv, site: cc-leeds, scale: csat,
     score: {column: userfield, pattern: 'survey=(\\d)'}, subject: {column: dstchannel, pattern: 'SIP/([a-z0-9]+)-'},
     timeZone: Europe/London}
YAML
"$bin/feedback-agent" run --config "$work/branch/agent.yaml" --log-level warning > "$work/branch.log" 2>&1 &
branch=$!
pids+=($branch)
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$intake/healthz" > /dev/null 2>&1 && break; sleep 0.1; done

post() { curl -s -o /dev/stderr -w "%{http_code}" -H 'Content-Type: application/json' -d "$1" "http://127.0.0.1:$intake/v1/feedback" 2>/dev/null; }

echo
echo "== a kiosk button box at branch-042: key presses as Linux input events (with contact bounce)"
python3 - "$work/branch/buttons.events" <<'PY'
import struct, sys, time
now = int(time.time()) - 60
events = b""
for i, key in enumerate([4, 1, 1, 4, 2, 1, 4, 3]):                   # smiley 1 (red) .. 4 (green)
    code = 1 + key                                                  # KEY_1 is code 2
    for usec, value in ((0, 1), (3000, 1), (80000, 0)):             # press, bounce 3 ms later, release
        events += struct.pack("<qqHHi", now + i * 5, usec, 1, code, value)
with open(sys.argv[1], "wb") as fifo:
    fifo.write(events)
print("8 presses (4 red), 24 events written to the FIFO")
PY

echo
echo "== the call centre's Asterisk writes CDR lines; the post-call IVR puts the score in the userfield"
cdr() { # n, score ("" for no survey), agent
    printf '"","+44113555%04d","600","from-queue","""Caller"" <+44113555%04d>","SIP/trunk-1","SIP/%s-000%d","Dial","SIP/%s","2026-11-24 09:1%d:00","2026-11-24 09:1%d:04","2026-11-24 09:1%d:50","50","46","ANSWERED","DOCUMENTATION","17640000%02d.1","%s"\n' \
        "$1" "$1" "$3" "$1" "$3" "$1" "$1" "$1" "$1" "${2:+survey=$2}"
}
{ cdr 1 2 agent417; cdr 2 5 agent417; cdr 3 "" agent212; cdr 4 4 agent212; } >> "$work/branch/cdr/Master.csv"
echo "4 calls, 3 with a survey score (one of them CSAT 2)"

echo
echo "== a product popup rating over the branch agent's HTTP intake (answered once durable on its disk)"
echo "popup NPS 3 with a comment (web-eu):   HTTP $(post '{"source":"popup","scale":"nps","score":3,"site":"web-eu","channel":"app","subject":"checkout","topic":"refund","survey":"nps-q4","customer":"cust-10022","comment":"Refund still missing after two weeks."}')"
echo -n "a bad one (NPS 11) is refused:        HTTP "
curl -s -w " %{http_code}\n" -H 'Content-Type: application/json' -d '{"source":"popup","scale":"nps","score":11}' "http://127.0.0.1:$intake/v1/feedback"
echo -n "one for a site it is not enrolled for:  HTTP "
curl -s -w " %{http_code}\n" -H 'Content-Type: application/json' -d '{"source":"popup","scale":"nps","score":2,"site":"branch-777"}' "http://127.0.0.1:$intake/v1/feedback"

echo
echo "== a product backend embedding the agent (Examples/EmbeddedAgent)"
mkdir -p "$work/backend"
"$bin/feedback-agent" keygen --out "$work/backend/agent.json" > /dev/null
"$bin/feedback-hub" agents token --config "$work/hub/hub.yaml" --site web-eu |
    "$bin/feedback-agent" enroll --identity "$work/backend/agent.json" --hub "127.0.0.1:$port" --ca "$work/hub/ca.pem" --token-file -
"$bin/embedded-agent-example" --identity "$work/backend/agent.json" --hub "127.0.0.1:$port" \
    --ca "$work/hub/ca.pem" --spool "$work/backend/spool" --ratings 20

echo
echo "== the branch agent forwards and drains"
expected=$((8 + 3 + 1 + 20))
for _ in $(seq 1 100); do
    stored=$(curl -fs "http://127.0.0.1:$hubhttp/metrics" | awk '/^feedback_hub_records_stored_total/ {print $2}')
    [ "${stored:-0}" -ge "$expected" ] && break
    sleep 0.1
done
"$bin/feedback-agent" status --config "$work/branch/agent.yaml"
kill -TERM "$branch"; wait "$branch" || true

for _ in $(seq 1 50); do
    delivered=$(curl -fs "http://127.0.0.1:$hubhttp/metrics" | awk '/^feedback_hub_alert_deliveries_total.*delivered/ {print $2}')
    raised=$(curl -fs "http://127.0.0.1:$hubhttp/metrics" | awk '/^feedback_hub_alerts_raised_total/ {print $2}')
    [ -n "${raised:-}" ] && [ "${delivered:-0}" -ge "${raised:-1}" ] && break
    sleep 0.1
done
echo
echo "== open alerts, as the team sees them (GET /v1/alerts?status=open)"
# The API needs a token: a viewer's for every site, made on the hub's host and shown once.
# The header goes through a 0600 file, so the secret is never on a command line (ps).
(umask 077 && printf 'Authorization: Bearer %s\n' \
    "$("$bin/feedback-hub" tokens add --config "$work/hub/hub.yaml" --name "demo viewer" --role viewer --any-site 2>/dev/null)" \
    > "$work/viewer.header")
curl -fs -H @"$work/viewer.header" "http://127.0.0.1:$hubhttp/v1/alerts?status=open" > "$work/alerts.json"
python3 - "$work/alerts.json" <<'PY'
import collections, json, sys
alerts = json.load(open(sys.argv[1]))["alerts"]
for rule, count in collections.Counter(a["rule"] for a in alerts).items():
    print(f"  {rule:<15} {count:>3} open, e.g. {next(a['summary'] for a in alerts if a['rule'] == rule)}")
PY
echo
echo "== a manager closes the loop on a detractor's case (assign, start, complete with a note)"
(umask 077 && printf 'Authorization: Bearer %s\n' \
    "$("$bin/feedback-hub" tokens add --config "$work/hub/hub.yaml" --name "demo manager" --role manager --any-site 2>/dev/null)" \
    > "$work/manager.header")
case_id=$(python3 -c 'import json, sys; print(next(a["id"] for a in json.load(open(sys.argv[1]))["alerts"] if a["rule"] == "detractor"))' "$work/alerts.json")
for step in 'assign {"owner":"Anna Petrova"}' 'start {"note":"calling the customer"}' \
    'complete {"note":"called back, refund issued","customerReached":true}'; do
    curl -fs -H @"$work/manager.header" -X POST -d "${step#* }" "http://127.0.0.1:$hubhttp/v1/alerts/$case_id/${step%% *}" > "$work/case.json"
done
python3 - "$work/case.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
print(f"  case {c['id'][:8]}…: {c['status']}, owner {c['owner']}, customer reached: {c['customerReached']}; notes: {c['note']!r}")
PY
for _ in $(seq 1 50); do grep -q "case.completed" "$work/webhooks.log" && break; sleep 0.1; done
grep "case\." "$work/webhooks.log" | sed 's/^/  webhook: /'
curl -fs -H @"$work/viewer.header" "http://127.0.0.1:$hubhttp/v1/reports/cases?groupBy=site&from=2020-01-01" > "$work/cases.json"
python3 - "$work/cases.json" <<'PY'
import json, sys
for group in json.load(open(sys.argv[1]))["groups"]:
    loop = group.get("closeTheLoop")
    rate = f"closed the loop in time for {loop['met']} of {loop['decided']} decided" if loop else "none decided yet"
    print(f"  {group['key']:<12} {group['raised']:>2} cases: {group['completed']} completed, {group['notClosed']} open; {rate}")
PY
echo
echo "== the last year per site, with 95 % intervals (GET /v1/reports/ratings?groupBy=site)"
curl -fs -H @"$work/viewer.header" "http://127.0.0.1:$hubhttp/v1/reports/ratings?groupBy=site&from=$(date -u -d '-365 days' +%Y-%m-%dT%H:%M:%SZ)" \
    > "$work/report.json"
python3 - "$work/report.json" <<'PY'
import json, sys
for group in json.load(open(sys.argv[1]))["groups"]:
    now = group["current"]
    figures = []
    for name, value in (("nps", "score"), ("csat", "percent"), ("smiley", "mean")):
        if name in now:
            f = now[name]
            figures.append(f"{name.upper()} {f[value]:+.0f} [{f['low']:+.0f}, {f['high']:+.0f}] of {f['responses']}")
    misuse = f", {now['misuse']} misuse left out" if now["misuse"] else ""
    print(f"  {group['key']['site']:<12} {now['responses']:>3} ratings: " + "; ".join(figures) + misuse)
PY

echo
echo "== the dashboard at http://127.0.0.1:$hubhttp/ (the overview page, as a manager's browser gets it; docs/DASHBOARD.md)"
curl -fs -H @"$work/manager.header" "http://127.0.0.1:$hubhttp/?days=90" > "$work/overview.html"
python3 - "$work/overview.html" <<'PY'
import html.parser, sys
class Rows(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(); self.rows, self.row, self.cell, self.charts, self.figures = [], None, None, 0, False
    def handle_starttag(self, tag, attrs):
        if tag == "details" and ("class", "chart-table") in attrs: self.figures = True  # a chart's figures, not the site table
        elif tag == "tr" and not self.figures: self.row = []
        elif tag in ("td", "th") and self.row is not None: self.cell = ""
        elif tag == "svg": self.charts += 1
    def handle_endtag(self, tag):
        if tag == "details": self.figures = False
        elif tag in ("td", "th") and self.cell is not None: self.row.append(self.cell.strip()); self.cell = None
        elif tag == "tr" and self.row: self.rows.append(self.row); self.row = None
    def handle_data(self, data):
        if self.cell is not None: self.cell += data
page = Rows(); page.feed(open(sys.argv[1], encoding="utf-8").read())
print(f"  {page.charts} SVG charts drawn by the hub; the site table, last 90 days:")
for row in page.rows:
    print(f"  {row[0]:<12} {row[1]:>8} {row[3]:<26} {row[5]}")
PY

kill -TERM "${pids[1]}"; wait "${pids[1]}" || true

echo
echo "== what the hub stored"
"$bin/feedback-hub" report --config "$work/hub/hub.yaml"

echo
echo "== webhooks the managers received ($(wc -l < "$work/webhooks.log") in all, every signature checked)"
head -4 "$work/webhooks.log"
[ "$(wc -l < "$work/webhooks.log")" -le 4 ] || echo "  … and $(( $(wc -l < "$work/webhooks.log") - 4 )) more"


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
alerts=$(wc -l < "$work/webhooks.log")
if [ "$alerts" -lt 3 ] || grep -q "signature BAD" "$work/webhooks.log"; then
    echo "demo: expected at least 3 signed webhooks (kiosk wave, unhappy call, detractor), got $alerts" >&2
    exit 1
fi
echo
echo "demo: OK: $stored ratings from a kiosk, a call log, a popup and an embedded agent stored exactly once, signed and verified; $alerts alerts and case events delivered as signed webhooks; the bad rating and the forged batch were refused."
