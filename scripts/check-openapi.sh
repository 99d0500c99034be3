#!/usr/bin/env bash
# Checks docs/openapi.yaml against a running hub with schemathesis (PyPI): every operation,
# with valid and invalid inputs (positive and negative modes), every check — no 5xx, status
# codes, content types, headers and bodies as documented, invalid input refused, auth not
# ignored, 405 for a method a path does not serve (settings: scripts/schemathesis.toml).
# One worker: hypothesis' reading of lambdas (ast.parse) is not thread-safe on Python 3.11.
#
#   scripts/check-openapi.sh                     # about 5 minutes; schemathesis bounded by MAX_TIME
#   EXAMPLES=200 MAX_TIME=900 scripts/check-openapi.sh
#
# It starts, all on loopback: a webhook receiver (answers 204), a hub on SQLite with alert
# rules (cases with a due time), an agent enrolled to it; posts ratings through the agent
# so there are cases and reports to read; makes an admin token; then runs schemathesis
# with that token. Everything it starts is stopped at the end; every wait is bounded. The
# report (JUnit and schemathesis' output) goes to $OUT (default: a new temporary folder,
# named at the end).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
examples="${EXAMPLES:-25}"
max_time="${MAX_TIME:-300}"

# Pinned, in a folder named by the version, so every machine runs the same checks.
version=4.32.5
venv="${VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/feedbackmesh/schemathesis-$version}"
if [ ! -x "$venv/bin/st" ]; then
    echo "== installing schemathesis $version into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "schemathesis==$version"
fi

# The report outlives the run (in a temporary folder unless OUT names one).
out="${OUT:-$(mktemp -d -t openapi-report.XXXXXX)}"
mkdir -p "$out"
name=check-openapi
rules='  - {name: detractor, scale: nps, notify: [manager], acknowledgeWithin: 15m, escalate: [manager], closeWithin: 1d, remindBefore: 1h}
  - {name: unhappy, scale: csat, notify: [manager]}'
. scripts/lib/operations-setup.sh
for index in $(seq 0 29); do
    site=$([ $((index % 3)) = 0 ] && echo branch-042 || echo web-eu)
    if [ $((index % 2)) = 0 ]; then body="{\"source\":\"popup\",\"scale\":\"nps\",\"score\":$((index % 11)),\"site\":\"$site\",\"subject\":\"checkout\",\"comment\":\"rating $index\"}"
    else body="{\"source\":\"api\",\"scale\":\"csat\",\"score\":$((1 + index % 5)),\"site\":\"$site\",\"channel\":\"app\"}"; fi
    curl -fs --max-time 10 -o /dev/null -H 'Content-Type: application/json' -d "$body" "http://127.0.0.1:$intake/v1/feedback"
done
for _ in $(seq 1 200); do
    stored=$(curl -fs --max-time 5 "http://127.0.0.1:$http/metrics" | awk '/^feedback_hub_records_stored_total/ {print $2}')
    [ "${stored:-0}" -ge 30 ] && break
    sleep 0.1
done
[ "${stored:-0}" -ge 30 ] || { echo "check-openapi: the hub stored ${stored:-0} of 30 ratings" >&2; exit 1; }
token=$("$bin/feedback-hub" tokens add --config "$work/hub/hub.yaml" --name schemathesis --role admin --any-site 2>/dev/null)
FEEDBACK_CASE_ID=$(curl -fs --max-time 10 -H "Authorization: Bearer $token" "http://127.0.0.1:$http/v1/alerts?status=open&limit=1" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["alerts"][0]["id"])')
export FEEDBACK_CASE_ID
echo "== hub on http://127.0.0.1:$http with $stored ratings and their cases; schemathesis, $examples examples per operation, at most $max_time s"

# schemathesis takes headers only on its command line, where `ps` shows them: the token is
# an admin token of this throwaway hub, gone with it.
set +e
"$venv/bin/st" --config-file scripts/schemathesis.toml run docs/openapi.yaml --url "http://127.0.0.1:$http" -H "Authorization: Bearer $token" \
    --mode all --max-examples "$examples" --max-time "$max_time" --seed "${SEED:-20261207}" \
    --workers 1 --request-timeout 10 --generation-database none --no-color --output-truncate true \
    --report junit --report-dir "$out" > "$out/schemathesis.txt" 2>&1
status=$?
set -e
tail -40 "$out/schemathesis.txt"
if grep -qiE "fatal|panicked|SIGSEGV|Crash" "$work/hub.log"; then
    echo "check-openapi: the hub logged a crash:" >&2
    tail -20 "$work/hub.log" >&2
    exit 1
fi
curl -fs --max-time 10 "http://127.0.0.1:$http/readyz" > /dev/null || { echo "check-openapi: the hub no longer answers" >&2; exit 1; }
if [ "$status" -ne 0 ]; then
    echo "check-openapi: schemathesis found the API and docs/openapi.yaml disagree (status $status); report in $out" >&2
    exit "$status"
fi
echo "check-openapi: OK: docs/openapi.yaml matches the running hub (report in $out)"
