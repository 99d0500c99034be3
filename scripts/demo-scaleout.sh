#!/usr/bin/env bash
# Two hubs on one PostgreSQL database, and a hub killed under load (docs/SCALING.md). It
# installs what is missing, builds, and runs everything on loopback:
#
#   - a throwaway PostgreSQL server (scripts/lib/postgres.sh; when FEEDBACK_TEST_POSTGRES_URL
#     and FEEDBACK_TEST_POSTGRES_PASSWORD are set, that server is used instead) and a fresh
#     database on it for this run;
#   - a local webhook receiver standing in for a manager's system (checks every Standard
#     Webhooks signature and notes each webhook-id);
#   - two hubs (`feedback-hub serve`) on that one database, started together, with one CA,
#     one server certificate and a detractor alert rule;
#   - one agent (`feedback-agent run`) listing both hubs, enrolled with a one-time token made
#     through hub 1's command line and redeemed at hub 2 (the registry is the database's);
#   - ratings posted to the agent's HTTP intake in requests of 10, every third an NPS
#     detractor; partway through, hub 1 is killed with SIGKILL and the posting goes on
#     while the agent fails over to hub 2;
#   - then a wait (bounded) until the database holds every accepted rating, and a summary:
#     ratings accepted against rows stored (and distinct ids, and the very ids), batches,
#     alerts against detractors, webhooks received (distinct webhook-ids against requests),
#     and what each hub stored (from their /metrics). It exits non-zero, with a line saying
#     what, if a rating or an alert was lost or counted twice.
#
# Environment: DEMO_SKIP_BUILD=1 uses the binaries in .build/debug without building;
# DEMO_REQUESTS (50) requests of 10 ratings; DEMO_KILL_AT (20) the request after which hub 1
# is killed, DEMO_KILL_DELAY (0.025) seconds after its answer; DEMO_WAIT (60) seconds to wait for the database and for the webhooks;
# DEMO_KEEP=1 keeps the work folder (logs, configurations) for a look afterwards.
#
# Everything it starts is stopped at the end, PostgreSQL included.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/lib/postgres.sh
. "$root/scripts/lib/postgres.sh"
started=$(date +%s)
requests="${DEMO_REQUESTS:-50}"
kill_at="${DEMO_KILL_AT:-20}"
wait_for="${DEMO_WAIT:-60}"
kill_delay="${DEMO_KILL_DELAY:-0.025}"

need=()
command -v curl > /dev/null || need+=(curl)
command -v python3 > /dev/null || need+=(python3)
if [ "${DEMO_SKIP_BUILD:-}" != 1 ]; then
    command -v pkg-config > /dev/null || need+=(pkg-config)
    [ -f /usr/include/zstd.h ] || need+=(libzstd-dev)
    [ -f /usr/include/sqlite3.h ] || need+=(libsqlite3-dev)
fi
if [ ${#need[@]} -gt 0 ]; then
    echo "== installing ${need[*]}"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -q
    $sudo apt-get install -y -q --no-install-recommends "${need[@]}"
fi

if [ "${DEMO_SKIP_BUILD:-}" = 1 ]; then
    bin="$root/.build/debug"
    echo "== not building (DEMO_SKIP_BUILD=1): using $bin"
else
    echo "== building"
    swift build --product feedback-hub
    swift build --product feedback-agent
    bin="$(swift build --show-bin-path)"
fi
for program in feedback-hub feedback-agent; do
    if ! [ -x "$bin/$program" ]; then
        echo "demo-scaleout: $bin/$program is missing (build it, or run without DEMO_SKIP_BUILD)" >&2
        exit 1
    fi
done

work="$(mktemp -d)"
# The server's own folder: short (its unix socket lives there) and outside $work, which is
# closed to the postgres user when we are root.
pgdir="$(mktemp -d /tmp/demo-scaleout-pg.XXXXXX)"
pids=()
psql=""
admin_url=""
database=""
drop_database=""
cleanup() {
    local status=$?
    set +e
    for pid in "${pids[@]}"; do kill -9 "$pid" 2> /dev/null; done
    wait 2> /dev/null
    if [ -n "$drop_database" ]; then
        timeout -k 5 30 "$psql" -X -q -d "$admin_url" -c "DROP DATABASE IF EXISTS $drop_database WITH (FORCE)" > /dev/null 2>&1 ||
            echo "demo-scaleout: could not drop the database $drop_database on $admin_url" >&2
    fi
    pg_stop "$pgdir"
    rm -rf "$pgdir"
    if [ "${DEMO_KEEP:-}" = 1 ]; then
        echo "demo-scaleout: kept $work (hub1/hub.log, hub2/hub.log, agent/agent.log, webhooks.jsonl)" >&2
    else
        rm -rf "$work"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The last lines of each log, for a failure.
show_logs() {
    local log
    for log in "$work/hub1/hub.log" "$work/hub2/hub.log" "$work/agent/agent.log"; do
        [ -s "$log" ] || continue
        echo "-- last lines of ${log#"$work"/}:" >&2
        tail -n 15 "$log" | sed 's/^/    /' >&2
    done
}
fail() {
    echo "demo-scaleout: FAILED: $*" >&2
    show_logs
    exit 1
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# metric PORT NAME: the value of one sample (NAME with its labels, as printed) as an integer, 0 if absent.
metric() {
    curl -fs --max-time 2 "http://127.0.0.1:$1/metrics" 2> /dev/null | awk -v m="$2" '$1 == m {printf "%d\n", $2; found = 1} END {if (!found) print 0}'
}
ready() { curl -fs --max-time 2 "http://127.0.0.1:$1/$2" > /dev/null 2>&1; }

port1=$(free_port); http1=$(free_port); port2=$(free_port); http2=$(free_port)
intake=$(free_port); hooks=$(free_port)
secret="whsec_$(head -c 24 /dev/urandom | base64)"

echo
echo "== PostgreSQL"
pg_start "$pgdir" || fail "could not start PostgreSQL (see the lines above)"
[ -n "${FEEDBACK_TEST_POSTGRES_PASSWORD:-}" ] || fail "FEEDBACK_TEST_POSTGRES_URL is set but FEEDBACK_TEST_POSTGRES_PASSWORD is not"
export FEEDBACK_TEST_POSTGRES_PASSWORD
if [ -n "${FEEDBACK_TEST_POSTGRES_BIN:-}" ] && [ -x "$FEEDBACK_TEST_POSTGRES_BIN/psql" ]; then
    psql="$FEEDBACK_TEST_POSTGRES_BIN/psql"
elif command -v psql > /dev/null; then
    psql="$(command -v psql)"
else
    psql="$(_pg_find_bin)/psql" || fail "no psql found (set FEEDBACK_TEST_POSTGRES_BIN)"
fi
export PGPASSWORD="$FEEDBACK_TEST_POSTGRES_PASSWORD" PGCONNECT_TIMEOUT=5
admin_url="$FEEDBACK_TEST_POSTGRES_URL"
# sql_at URL QUERY: unaligned, tuples only, fields separated by a space; bounded.
sql_at() { timeout -k 5 30 "$psql" -X -q -A -t -F ' ' -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }
# A fresh database for this run, so that the counts below are this run's alone.
database="demo_scaleout_$(date +%s)_$$"
if sql_at "$admin_url" "CREATE DATABASE $database" > "$work/createdb.log" 2>&1; then
    drop_database="$database"
    db_url="${admin_url%/*}/$database"
else
    # A role without CREATEDB: use the given database if no hub has used it yet.
    db_url="$admin_url"
    database="${admin_url##*/}"
    if [ "$(sql_at "$db_url" "SELECT to_regclass('records') IS NOT NULL")" != f ]; then
        fail "cannot create a database on $admin_url ($(head -n 1 "$work/createdb.log")), and the database there already holds hub tables"
    fi
fi
echo "database $database on ${db_url%/*} (password from FEEDBACK_TEST_POSTGRES_PASSWORD)"
sql() { sql_at "$db_url" "$1"; }

echo
echo "== a webhook receiver on 127.0.0.1:$hooks (checks each Standard Webhooks signature, notes each webhook-id)"
cat > "$work/receiver.py" << 'PY'
import base64, hashlib, hmac, json, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
port, secret, log = int(sys.argv[1]), base64.b64decode(sys.argv[2][6:]), open(sys.argv[3], "a", buffering=1)
lock = threading.Lock()
class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        signed = f"{self.headers['webhook-id']}.{self.headers['webhook-timestamp']}.".encode() + body
        expected = "v1," + base64.b64encode(hmac.new(secret, signed, hashlib.sha256).digest()).decode()
        ok = hmac.compare_digest(expected, self.headers.get("webhook-signature", ""))
        try:
            message = json.loads(body)
        except ValueError:
            message = {}
        alert = message.get("alert") if isinstance(message.get("alert"), dict) else {}
        with lock:
            log.write(json.dumps({"target": self.path[1:], "webhookId": self.headers.get("webhook-id"), "signature": ok,
                                  "type": message.get("type"), "alert": alert.get("id"), "summary": alert.get("summary")}) + "\n")
        self.send_response(204 if ok else 401)
        self.end_headers()
    def log_message(self, *args):
        pass
ThreadingHTTPServer(("127.0.0.1", port), Hook).serve_forever()
PY
: > "$work/webhooks.jsonl"
python3 "$work/receiver.py" "$hooks" "$secret" "$work/webhooks.jsonl" &
pids+=($!)

echo
echo "== two hubs on that database: one CA and certificate, each its own hubId and ports"
timeout 60 "$bin/feedback-hub" init "$work/hub1" --listen "127.0.0.1:$port1" --http "127.0.0.1:$http1" ||
    fail "feedback-hub init exited $?"
# The hubs store in PostgreSQL: the SQLite file init made is not used.
rm -f "$work/hub1/feedback.sqlite" "$work/hub1/feedback.sqlite-wal" "$work/hub1/feedback.sqlite-shm"
cat > "$work/alerts.yaml" << YAML
targets:
  manager: {url: "http://127.0.0.1:$hooks/manager", secret: "$secret"}
rules:
  - {name: detractor, scale: nps, notify: [manager]}
# A delivery hub 1 claimed when it died goes out from hub 2 once its lease ends (2 x timeout + 5 s).
delivery: {firstRetry: 100ms, maxRetry: 1s, timeout: 2s}
YAML
timeout 60 "$bin/feedback-hub" alerts check "$work/alerts.yaml" || fail "feedback-hub alerts check exited $?"
mkdir -p "$work/hub2"
chmod 700 "$work/hub2"
cat > "$work/hub2/hub.yaml" << YAML
# The second hub: its own id and ports, the first hub's certificate (issued by the CA agents trust).
hubId: $(python3 -c 'import uuid; print(uuid.uuid4())')
listen: "127.0.0.1:$port2"
http: "127.0.0.1:$http2"
tls: {certificate: $work/hub1/hub.pem, privateKey: $work/hub1/hub-key.pem}
YAML
for hub in hub1 hub2; do
    sed -i '/^store:/d' "$work/$hub/hub.yaml"
    cat >> "$work/$hub/hub.yaml" << YAML
store: "$db_url"
postgres: {passwordEnv: FEEDBACK_TEST_POSTGRES_PASSWORD, poolSize: 6}
alerts: $work/alerts.yaml
YAML
done
# Both start at once: the migrations run once, under an advisory lock.
"$bin/feedback-hub" serve --config "$work/hub1/hub.yaml" --log-level info > "$work/hub1/hub.log" 2>&1 &
hub1=$!
pids+=("$hub1")
"$bin/feedback-hub" serve --config "$work/hub2/hub.yaml" --log-level info > "$work/hub2/hub.log" 2>&1 &
hub2=$!
pids+=("$hub2")
for _ in $(seq 1 600); do
    if ready "$http1" readyz && ready "$http2" readyz; then break; fi
    kill -0 "$hub1" 2> /dev/null || fail "hub 1 exited at start"
    kill -0 "$hub2" 2> /dev/null || fail "hub 2 exited at start"
    sleep 0.1
done
ready "$http1" readyz || fail "hub 1 was not ready within 60 s"
ready "$http2" readyz || fail "hub 2 was not ready within 60 s"
echo "hub 1 on 127.0.0.1:$port1 (operations http://127.0.0.1:$http1), hub 2 on 127.0.0.1:$port2 (operations http://127.0.0.1:$http2)"
echo "tables: $(sql "SELECT string_agg(tablename, ' ' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public' AND tablename NOT LIKE 'records\_%'")"

echo
echo "== an agent listing both hubs: a token made through hub 1's command line, redeemed at hub 2"
mkdir -p "$work/agent"
timeout 60 "$bin/feedback-agent" keygen --out "$work/agent/agent.json" | tee "$work/agent/keygen.txt" ||
    fail "feedback-agent keygen exited ${PIPESTATUS[0]}"
# The token goes through a pipe, never on a command line where `ps` would show it.
timeout 60 "$bin/feedback-hub" agents token --config "$work/hub1/hub.yaml" --site branch-1 |
    timeout 60 "$bin/feedback-agent" enroll --identity "$work/agent/agent.json" --hub "127.0.0.1:$port2" --ca "$work/hub1/ca.pem" --token-file - || {
    status=("${PIPESTATUS[@]}")
    fail "enrollment failed: \`feedback-hub agents token\` exited ${status[0]}, \`feedback-agent enroll\` ${status[1]}$([ "${status[0]}" -ge 128 ] && echo " (the hub command died of signal $((status[0] - 128)))")"
}
# Each hub reloads the registry (the database's nodes table) every second: give hub 1 that
# second, so that the agent, which tries hub 1 first, finds its key known there.
sleep 2
cat > "$work/agent/agent.yaml" << YAML
identity: agent.json
hubs: ["127.0.0.1:$port1", "127.0.0.1:$port2"]
ca: $work/hub1/ca.pem
spool: {directory: spool, fsync: "5"}
batch: {maxRecords: 50, maxAgeMs: 20}
http: {listen: "127.0.0.1:$intake"}
sites: [branch-1]
drainTimeoutMs: 2000
YAML
"$bin/feedback-agent" run --config "$work/agent/agent.yaml" --log-level info > "$work/agent/agent.log" 2>&1 &
agent=$!
pids+=("$agent")
connected=""
for _ in $(seq 1 200); do
    kill -0 "$agent" 2> /dev/null || fail "the agent exited at start"
    connected="$(curl -fs --max-time 2 "http://127.0.0.1:$intake/status" 2> /dev/null |
        python3 -c 'import json, sys; print(json.load(sys.stdin).get("connectedHub") or "")' 2> /dev/null || true)"
    [ -n "$connected" ] && break
    sleep 0.1
done
[ -n "$connected" ] || fail "the agent did not connect to a hub within 20 s"
[ "$connected" = "127.0.0.1:$port1" ] || fail "the agent connected to $connected, not to hub 1 (127.0.0.1:$port1), the one to be killed"
echo "agent intake on http://127.0.0.1:$intake, connected to hub 1 ($connected), which knows the key hub 2 enrolled: one registry"

echo
echo "== $requests requests of 10 NPS ratings to the agent's intake, every third a detractor; hub 1 killed (SIGKILL) after request $kill_at"
: > "$work/accepted.ids"
accepted=0
detractors=0
refused=0
hub1_records=0
hub1_batches=0
killed_at_rows=0
for request in $(seq 1 "$requests"); do
    body="["
    negatives=0
    for i in $(seq 0 9); do
        n=$(((request - 1) * 10 + i))
        if [ $((n % 3)) -eq 0 ]; then
            score=2
            negatives=$((negatives + 1))
            comment=',"comment":"too slow"'
        else
            score=9
            comment=""
        fi
        [ "$i" -eq 0 ] || body+=","
        body+="{\"source\":\"api\",\"scale\":\"nps\",\"score\":$score,\"site\":\"branch-1\",\"survey\":\"scaleout-demo\",\"customer\":\"c-$n\"$comment}"
    done
    body+="]"
    if [ "$request" -eq "$kill_at" ]; then
        # Hub 1 must have stored something before it dies (and still hold the agent).
        for _ in $(seq 1 300); do
            [ "$(metric "$http1" feedback_hub_records_stored_total)" -gt 0 ] && break
            sleep 0.1
        done
        hub1_records=$(metric "$http1" feedback_hub_records_stored_total)
        hub1_batches=$(metric "$http1" 'feedback_hub_batches_total{outcome="stored"}')
        [ "$hub1_records" -gt 0 ] || fail "hub 1 stored nothing in 30 s before it was to be killed"
    fi
    code="$(curl -s --max-time 10 -o "$work/response.json" -w '%{http_code}' -H 'Content-Type: application/json' \
        -d "$body" "http://127.0.0.1:$intake/v1/feedback" || true)"
    ids="$(grep -oE '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}' "$work/response.json" 2> /dev/null || true)"
    if [ "$code" = 202 ] && [ "$(printf '%s\n' "$ids" | grep -c .)" -eq 10 ]; then
        printf '%s\n' "$ids" >> "$work/accepted.ids"
        accepted=$((accepted + 10))
        detractors=$((detractors + negatives))
    else
        refused=$((refused + 1))
        echo "request $request: HTTP ${code:-none}: $(head -c 300 "$work/response.json" 2> /dev/null || true)"
    fi
    if [ "$request" -eq "$kill_at" ]; then
        # About when the agent has sealed this request's ratings (batch.maxAgeMs 20) and
        # sent them: hub 1 dies with whatever it has in flight.
        sleep "$kill_delay"
        kill -KILL "$hub1"
        wait "$hub1" 2> /dev/null || true
        remaining=()
        for pid in "${pids[@]}"; do [ "$pid" = "$hub1" ] || remaining+=("$pid"); done
        pids=("${remaining[@]}")
        killed_at_rows=$(sql "SELECT count(*) FROM records")
        echo "request $request: hub 1 killed (SIGKILL) with $accepted ratings accepted, $killed_at_rows rows in the database; its /metrics a request earlier: $hub1_records records in $hub1_batches batches"
    fi
    sleep 0.05
done
echo "posted $((requests * 10)) ratings: $accepted accepted (202), $((refused * 10)) refused; $detractors detractors among those accepted"

echo
echo "== waiting (at most ${wait_for} s) until the database holds every accepted rating"
rows=0
for _ in $(seq 1 $((wait_for * 5))); do
    rows=$(sql "SELECT count(*) FROM records")
    [ "$rows" -ge "$accepted" ] && break
    sleep 0.2
done
echo "$rows rows in records after $(($(date +%s) - started)) s since the start"
echo "agent: $("$bin/feedback-agent" status --config "$work/agent/agent.yaml" 2>&1 | grep -E 'connected hub|unacknowledged|acknowledged batches' | tr -s ' ' | paste -sd ';' -)"

alerts=$(sql "SELECT count(*) FROM alerts")
echo
echo "== waiting (at most ${wait_for} s) until the receiver has a webhook for every alert ($alerts)"
distinct_hooks=0
for _ in $(seq 1 $((wait_for * 5))); do
    distinct_hooks=$(python3 -c 'import json, sys; print(len({json.loads(l)["webhookId"] for l in open(sys.argv[1]) if l.strip()}))' "$work/webhooks.jsonl")
    [ "$distinct_hooks" -ge "$alerts" ] && break
    sleep 0.2
done
# A moment more, so that a webhook sent twice would be seen.
sleep 2

# ---- the counts
read -r rows distinct_ids negative_rows <<< "$(sql "SELECT count(*), count(DISTINCT id), count(*) FILTER (WHERE negative) FROM records")"
read -r batches batch_records batch_stored <<< "$(sql "SELECT count(*), coalesce(sum(record_count), 0), coalesce(sum(stored_records), 0) FROM batches")"
read -r alerts alert_records <<< "$(sql "SELECT count(*), count(DISTINCT record_id) FROM alerts")"
alerts_orphan=$(sql "SELECT count(*) FROM alerts a WHERE NOT EXISTS (SELECT 1 FROM records r WHERE r.id = a.record_id)")
deliveries=$(sql "SELECT coalesce(string_agg(state || ' ' || n, ', ' ORDER BY state), 'none') FROM (SELECT state, count(*) AS n FROM alert_deliveries GROUP BY state) s")
partitions=$(sql "SELECT string_agg(p || ' ' || n, ', ' ORDER BY p) FROM (SELECT tableoid::regclass::text AS p, count(*) AS n FROM records GROUP BY 1) s")
sql "SELECT id::text FROM records" | tr 'A-F' 'a-f' | sort > "$work/stored.ids"
tr 'A-F' 'a-f' < "$work/accepted.ids" | sort > "$work/accepted.sorted"
missing=$(comm -23 "$work/accepted.sorted" "$work/stored.ids" | grep -c . || true)
unexpected=$(comm -13 "$work/accepted.sorted" "$work/stored.ids" | grep -c . || true)
accepted_twice=$(uniq -d "$work/accepted.sorted" | grep -c . || true)
read -r hooks_total hooks_distinct hooks_alerts hooks_bad <<< "$(python3 - "$work/webhooks.jsonl" << 'PY'
import json, sys
hooks = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
print(len(hooks), len({h["webhookId"] for h in hooks}), len({h["alert"] for h in hooks}), sum(1 for h in hooks if not h["signature"]))
PY
)"
hub2_records=$(metric "$http2" feedback_hub_records_stored_total)
hub2_batches=$(metric "$http2" 'feedback_hub_batches_total{outcome="stored"}')
hub2_duplicates=$(metric "$http2" 'feedback_hub_batches_total{outcome="duplicate"}')
hub2_raised=$(metric "$http2" feedback_hub_alerts_raised_total)
hub2_delivered=$(metric "$http2" 'feedback_hub_alert_deliveries_total{outcome="delivered"}')
agent_sent=$(metric "$intake" feedback_agent_batches_sent_total)
agent_acked=$(metric "$intake" feedback_agent_batches_acknowledged_total)
agent_retried=$(metric "$intake" feedback_agent_batches_retried_total)
agent_dead=$(metric "$intake" feedback_agent_batches_dead_lettered_total)
agent_connections=$(metric "$intake" feedback_agent_connections_total)
agent_failures=$(metric "$intake" feedback_agent_connect_failures_total)
agent_pending=$(metric "$intake" feedback_agent_spool_records)

echo
echo "== summary"
printf '  %-34s %s\n' \
    "ratings accepted by the agent" "$accepted of $((requests * 10)) posted ($refused requests refused)" \
    "rows in records" "$rows ($distinct_ids distinct ids; $missing accepted ids missing, $unexpected not accepted)" \
    "  in partitions" "${partitions:-none}" \
    "batches" "$batches holding $batch_records records, $batch_stored stored by them (the rest: already stored)" \
    "detractors posted" "$detractors (negative rows: $negative_rows)" \
    "alerts in alerts" "$alerts for $alert_records distinct records ($alerts_orphan without their record)" \
    "alert deliveries" "$deliveries" \
    "webhooks received" "$hooks_total requests, $hooks_distinct distinct webhook-ids, $hooks_alerts distinct alerts, $hooks_bad bad signatures" \
    "hub 1 (killed)" "$((rows - hub2_records)) records (rows less hub 2's); its /metrics a request before SIGKILL: $hub1_records records in $hub1_batches batches" \
    "hub 2" "$hub2_records records in $hub2_batches batches, $hub2_duplicates batches answered duplicate, $hub2_raised alerts raised, $hub2_delivered webhooks delivered" \
    "agent" "$agent_sent batches sent, $agent_acked acknowledged, $agent_retried retried, $agent_dead dead letters; $agent_connections connections, $agent_failures failed attempts; $agent_pending records pending" \
    "took" "$(($(date +%s) - started)) s"
echo
echo "agent's hub connections (agent.log):"
grep -E 'connected to hub|hub connection ended|cannot reach hub|returning to the first hub' "$work/agent/agent.log" | sed 's/^/    /' | head -n 12 || true
for log in hub2/hub.log agent/agent.log; do
    problems=$(grep -cE ' (warning|error|critical) ' "$work/$log" || true)
    if [ "$problems" -gt 0 ]; then
        echo "$problems warning or error lines in $log, the first:"
        grep -E ' (warning|error|critical) ' "$work/$log" | head -n 5 | cut -c 1-400 | sed 's/^/    /'
    fi
done

# ---- the verdict
problems=()
[ "$refused" -eq 0 ] || problems+=("the agent refused $refused of $requests requests (its intake does not depend on a hub)")
[ "$accepted_twice" -eq 0 ] || problems+=("the agent gave $accepted_twice ids twice")
[ "$missing" -eq 0 ] || problems+=("$missing accepted ratings are not in the database (lost)")
[ "$unexpected" -eq 0 ] || problems+=("$unexpected rows in the database were never accepted")
[ "$rows" -eq "$accepted" ] || problems+=("$rows rows for $accepted accepted ratings")
[ "$distinct_ids" -eq "$rows" ] || problems+=("$((rows - distinct_ids)) record ids stored twice")
[ "$batch_stored" -eq "$rows" ] || problems+=("batches say they stored $batch_stored records, records holds $rows")
[ "$negative_rows" -eq "$detractors" ] || problems+=("$negative_rows negative rows for $detractors detractors posted")
[ "$alerts" -eq "$detractors" ] || problems+=("$alerts alerts for $detractors detractors")
[ "$alert_records" -eq "$alerts" ] || problems+=("$((alerts - alert_records)) records alerted twice")
[ "$alerts_orphan" -eq 0 ] || problems+=("$alerts_orphan alerts whose record is not stored")
[ "$hooks_distinct" -eq "$alerts" ] || problems+=("$hooks_distinct distinct webhooks for $alerts alerts")
[ "$hooks_alerts" -eq "$hooks_distinct" ] || problems+=("$hooks_distinct webhook-ids for $hooks_alerts alerts (one alert sent under two ids)")
[ "$hooks_bad" -eq 0 ] || problems+=("$hooks_bad webhooks with a bad signature")
[ "$agent_dead" -eq 0 ] || problems+=("the agent dead-lettered $agent_dead batches")
if [ ${#problems[@]} -gt 0 ]; then
    echo
    for problem in "${problems[@]}"; do echo "demo-scaleout: FAILED: $problem" >&2; done
    show_logs
    exit 1
fi
echo
again=""
if [ "$hooks_total" -gt "$hooks_distinct" ]; then
    again=" ($((hooks_total - hooks_distinct)) sent again with the same webhook-id after hub 1 died: at-least-once in the crash window, as documented)"
fi
echo "demo-scaleout: OK: $accepted ratings accepted, $rows stored exactly once across two hubs with hub 1 killed mid-stream; $alerts alerts for $detractors detractors, each delivered under one webhook-id$again; $(($(date +%s) - started)) s."
