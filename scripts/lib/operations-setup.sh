# Shared by check-openapi.sh and check-dashboard.sh (source it): builds the hub and the
# agent (debug), then starts on loopback a webhook receiver that answers 204, a hub on
# SQLite in $work/hub with the alert rules in $rules (a YAML list), and an agent in
# $work/agent enrolled for web-eu and branch-042 with its HTTP intake. Every wait is
# bounded; everything started is killed and $work removed when the script exits.
#
#   name=check-x; rules='  - {name: detractor, …}'
#   intake_settings=', surveyKeys: [...]'   # optional: more of the agent's http section
#   . scripts/lib/operations-setup.sh   # sets bin, work, port, http, intake, hooks; defines ready
swift build --product feedback-hub > /dev/null
swift build --product feedback-agent > /dev/null
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
port=$(free_port); http=$(free_port); intake=$(free_port); hooks=$(free_port)

python3 -c '
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(204)
        self.end_headers()
    def log_message(self, *args):
        pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Hook).serve_forever()
' "$hooks" &
pids+=($!)

"$bin/feedback-hub" init "$work/hub" --listen "127.0.0.1:$port" --http "127.0.0.1:$http" > /dev/null
printf 'targets:\n  manager: {url: "http://127.0.0.1:%s/manager"}\nrules:\n%s\n' "$hooks" "$rules" > "$work/hub/alerts.yaml"
echo "alerts: alerts.yaml" >> "$work/hub/hub.yaml"
"$bin/feedback-hub" serve --config "$work/hub/hub.yaml" --log-level warning > "$work/hub.log" 2>&1 &
pids+=($!)
ready() { for _ in $(seq 1 300); do curl -fs --max-time 2 "$1" > /dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }
ready "http://127.0.0.1:$http/readyz" || { echo "$name: the hub did not become ready" >&2; tail -20 "$work/hub.log" >&2; exit 1; }

mkdir -p "$work/agent"
"$bin/feedback-agent" keygen --out "$work/agent/agent.json" > /dev/null
"$bin/feedback-hub" agents token --config "$work/hub/hub.yaml" --site web-eu --site branch-042 |
    "$bin/feedback-agent" enroll --identity "$work/agent/agent.json" --hub "127.0.0.1:$port" --ca "$work/hub/ca.pem" --token-file - > /dev/null
cat > "$work/agent/agent.yaml" <<YAML
identity: agent.json
hubs: ["127.0.0.1:$port"]
ca: $work/hub/ca.pem
http: {listen: "127.0.0.1:$intake"${intake_settings:-}}
sites: [web-eu, branch-042]
YAML
"$bin/feedback-agent" run --config "$work/agent/agent.yaml" --log-level warning > "$work/agent.log" 2>&1 &
pids+=($!)
ready "http://127.0.0.1:$intake/healthz" || { echo "$name: the agent did not start" >&2; tail -20 "$work/agent.log" >&2; exit 1; }
