#!/usr/bin/env bash
# Runs compose.yaml's topology for real with rootful podman and checks it end to end
# (docs/OPERATIONS.md#containers):
#
#   - podman set up (scripts/lib/podman.sh) and the images built (scripts/build-images.sh;
#     IMAGES_SKIP_BUILD=1 uses the images there are);
#   - `podman-compose up` (PyPI) of compose.yaml as it is: PostgreSQL, two hubs on it, a
#     branch relay, an agent behind the relay, an agent straight to the hubs, the webhook
#     receiver;
#   - ratings posted to both agents' HTTP intakes (from this machine, through the published
#     ports, with the intake write keys the agents made), every third an NPS detractor; after
#     the first half hub1 is killed (SIGKILL) and the second half goes on through hub2;
#   - then, within $CHECK_WAIT seconds (120): every accepted id stored once in PostgreSQL,
#     one alert per detractor, each delivered to the receiver with a valid signature; the
#     kiosk agent's ratings came through the relay.
#
# It fails, saying what, when a rating or an alert is lost or doubled, and when podman cannot
# run here (it never passes without running the topology). Everything it starts is removed
# at the end, volumes included (CHECK_KEEP=1 keeps the containers for a look).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/lib/podman.sh
. "$root/scripts/lib/podman.sh"
started=$(date +%s)
requests="${CHECK_REQUESTS:-20}"
wait_for="${CHECK_WAIT:-120}"
project=fmcheck

podman_setup
if [ "${IMAGES_SKIP_BUILD:-}" != 1 ]; then
    scripts/build-images.sh
fi
venv="${COMPOSE_VENV:-${TMPDIR:-/tmp}/feedbackmesh-podman-compose}"
if [ ! -x "$venv/bin/podman-compose" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q podman-compose==1.6.0
fi
compose() { timeout -k 10 300 "$venv/bin/podman-compose" -p "$project" -f compose.yaml "$@"; }
work=$(mktemp -d)
cleanup() {
    local status=$?
    set +e
    if [ "${CHECK_KEEP:-}" = 1 ]; then
        echo "check-containers: kept the containers (podman ps -a; $venv/bin/podman-compose -p $project -f compose.yaml down -v)" >&2
    else
        compose down -v -t 5 > "$work/down.log" 2>&1 || { echo "check-containers: podman-compose down failed:" >&2; tail -n 5 "$work/down.log" >&2; }
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

container() { echo "${project}_$1_1"; }
fail() {
    echo "check-containers: FAILED: $*" >&2
    local service
    for service in hub1 hub2 relay agent-branch agent-web webhooks postgres; do
        echo "-- last lines of $service:" >&2
        podman logs --tail 12 "$(container "$service")" 2>&1 | sed 's/^/    /' >&2
    done
    exit 1
}
sql() { podman exec -u postgres "$(container postgres)" psql -X -q -A -t -F ' ' -v ON_ERROR_STOP=1 -d feedbackmesh -c "$1"; }

echo
echo "== podman-compose up (compose.yaml)"
compose down -v -t 5 > /dev/null 2>&1 || true
compose up -d > "$work/up.log" 2>&1 || { tail -n 30 "$work/up.log" >&2; fail "podman-compose up failed"; }

# Health checks are not scheduled here: poll them.
healthy() { podman healthcheck run "$(container "$1")" > /dev/null 2>&1; }
for service in postgres webhooks hub1 hub2 relay agent-branch agent-web; do
    for _ in $(seq 1 180); do
        healthy "$service" && break
        sleep 1
    done
    healthy "$service" || fail "$service was not healthy within 180 s"
done
echo "all seven containers healthy, $(($(date +%s) - started)) s after this check began (images built)"

key_branch=$(podman exec "$(container agent-branch)" cat /var/lib/feedbackmesh/agent/intake.key)
key_web=$(podman exec "$(container agent-web)" cat /var/lib/feedbackmesh/agent/intake.key)
[ -n "$key_branch" ] && [ -n "$key_web" ] || fail "an agent made no intake key"

# post PORT KEY SITE REQUEST: ten ratings, every third (by number) an NPS detractor; the ids
# accepted go to ids.txt, the detractors' to detractors.txt.
: > "$work/ids.txt"
: > "$work/detractors.txt"
post() {
    local port=$1 key=$2 site=$3 request=$4 body="[" i n score answer
    for i in $(seq 0 9); do
        n=$((request * 10 + i))
        if [ $((n % 3)) = 0 ]; then score=$((n % 7)); else score=$((7 + n % 4)); fi
        body="$body{\"source\":\"api\",\"scale\":\"nps\",\"score\":$score,\"site\":\"$site\",\"subject\":\"check-$n\"}"
        [ "$i" = 9 ] || body="$body,"
    done
    body="$body]"
    answer=$(curl -fsS --max-time 20 -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
        -H "Idempotency-Key: check-$site-$request" -d "$body" "http://127.0.0.1:$port/v1/feedback") ||
        fail "request $request to $site (port $port) failed"
    python3 - "$answer" "$work/ids.txt" "$work/detractors.txt" "$request" << 'PY'
import json, sys
answer, ids, detractors, request = json.loads(sys.argv[1]), open(sys.argv[2], "a"), open(sys.argv[3], "a"), int(sys.argv[4])
assert answer["accepted"] == 10, answer
for i, id in enumerate(answer["ids"]):
    ids.write(id + "\n")
    if (request * 10 + i) % 3 == 0:
        detractors.write(id + "\n")
PY
}

echo
echo "== $requests requests of 10 ratings to each agent; hub1 killed halfway"
for request in $(seq 0 $((requests - 1))); do
    if [ "$request" = $((requests / 2)) ]; then
        podman kill "$(container hub1)" > /dev/null || fail "could not kill hub1"
        echo "hub1 killed (SIGKILL) after $request requests per agent"
    fi
    post 8088 "$key_branch" branch-042 "$request"
    post 8089 "$key_web" web-eu "$request"
done
accepted=$(wc -l < "$work/ids.txt")
detractors=$(wc -l < "$work/detractors.txt")
echo "accepted $accepted ratings ($detractors detractors)"

echo
echo "== waiting (at most $wait_for s) for PostgreSQL to hold every rating and the receiver every alert"
deadline=$(($(date +%s) + wait_for))
while :; do
    stored=$(sql "SELECT count(*) FROM records WHERE subject LIKE 'check-%'" 2> /dev/null || echo 0)
    delivered=$(podman logs "$(container webhooks)" 2>&1 | grep -c 'signature ok: alert.raised' || true)
    if [ "$stored" -ge "$accepted" ] && [ "$delivered" -ge "$detractors" ]; then break; fi
    [ "$(date +%s)" -lt "$deadline" ] || fail "after $wait_for s: $stored of $accepted ratings stored, $delivered of $detractors alerts delivered"
    sleep 1
done

sql "SELECT id FROM records WHERE subject LIKE 'check-%'" | sort > "$work/stored.txt"
sort "$work/ids.txt" > "$work/accepted.txt"
distinct=$(sort -u "$work/stored.txt" | wc -l)
missing=$(comm -23 "$work/accepted.txt" <(sort -u "$work/stored.txt") | wc -l)
extra=$(comm -13 "$work/accepted.txt" <(sort -u "$work/stored.txt") | wc -l)
alerts=$(sql "SELECT count(*) FROM alerts a JOIN records r ON r.id = a.record_id WHERE r.subject LIKE 'check-%'")
podman logs "$(container webhooks)" 2>&1 | grep 'signature ok: alert.raised' > "$work/webhooks.txt" || true
alert_ids=$(sed -n 's/.* alert \([^ ]*\) webhook-id .*/\1/p' "$work/webhooks.txt" | sort -u | wc -l)
webhook_ids=$(sed -n 's/.* webhook-id \([^:]*\):.*/\1/p' "$work/webhooks.txt" | sort -u | wc -l)
bad=$(podman logs "$(container webhooks)" 2>&1 | grep -c 'signature BAD' || true)
via=$(podman exec "$(container hub2)" feedback-hub agents list --config /var/lib/feedbackmesh/hub/hub.yaml --json |
    python3 -c '
import json, sys
nodes = json.load(sys.stdin)
relays = {n["nodeId"] for n in nodes if n["role"] == "relay"}
print(sum(1 for n in nodes if n["role"] == "agent" and n.get("via") in relays))' 2> /dev/null || echo "?")

echo
echo "ratings accepted by the agents:    $accepted"
echo "rows stored in PostgreSQL:         $(wc -l < "$work/stored.txt") ($distinct distinct ids; missing $missing, unknown $extra)"
echo "alerts raised for these detractors: $alerts of $detractors"
echo "alert.raised webhooks received:    $(wc -l < "$work/webhooks.txt") ($alert_ids distinct alerts, $webhook_ids distinct webhook-ids; bad signatures $bad)"
echo "agents reporting through a relay:  $via"
echo "time:                              $(($(date +%s) - started)) s"
[ "$(wc -l < "$work/stored.txt")" = "$accepted" ] && [ "$distinct" = "$accepted" ] && [ "$missing" = 0 ] ||
    fail "ratings lost or doubled (see above)"
[ "$alerts" = "$detractors" ] || fail "$alerts alerts for $detractors detractors"
[ "$alert_ids" = "$detractors" ] || fail "webhooks for $alert_ids alerts, $detractors detractors"
[ "$bad" = 0 ] || fail "$bad webhooks with a bad signature"
[ "$via" = 1 ] || fail "the kiosk agent did not report through the relay (agents via a relay: $via)"
echo "check-containers: ok"
