#!/usr/bin/env bash
# Dashboard page time: each page of a hub (release build) served over a store of many
# ratings, as a browser gets it (one session cookie), RUNS times, p50 and p99 of the whole
# answer (curl's time_total: connect, render, transfer).
#
#   scripts/bench-dashboard.sh                              # 1,000,000 ratings in a new store
#   RATINGS_STORE=/tmp/rb.sqlite RECORDS=0 scripts/bench-dashboard.sh   # a store filled before
#                  (feedback-bench reports --store /tmp/rb.sqlite --records 10000000)
#
# The store is filled by `feedback-bench reports` (the hub's own commit, rollups kept as in
# production: 200 branches over 90 days). Bounded: RUNS requests per page, each with a
# 60-second limit.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
runs="${RUNS:-20}"
records="${RECORDS:-1000000}"
swift build -c release --product feedback-hub > /dev/null
swift build -c release --product feedback-bench > /dev/null
bin="$(swift build -c release --show-bin-path)"
work="$(mktemp -d)"
store="${RATINGS_STORE:-$work/ratings.sqlite}"
pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2> /dev/null && wait "$pid" 2> /dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
if [ "$records" -gt 0 ]; then
    echo "== filling $store with $records ratings"
    "$bin/feedback-bench" reports --store "$store" --records "$records" --runs 1 > /dev/null
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port); http=$(free_port)
"$bin/feedback-hub" init "$work/hub" --listen "127.0.0.1:$port" --http "127.0.0.1:$http" > /dev/null
sed -i "s|^store:.*|store: $store|" "$work/hub/hub.yaml"
"$bin/feedback-hub" serve --config "$work/hub/hub.yaml" --log-level warning > "$work/hub.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do curl -fs --max-time 2 "http://127.0.0.1:$http/readyz" > /dev/null 2>&1 && break; sleep 0.1; done
token=$("$bin/feedback-hub" tokens add --config "$work/hub/hub.yaml" --name bench --role manager --any-site 2>/dev/null)
cookie=$(curl -fs --max-time 10 -D - -o /dev/null -X POST -H "Authorization: Bearer $token" "http://127.0.0.1:$http/v1/session" |
    sed -n 's/^[Ss]et-[Cc]ookie: \(fm_session=[^;]*\).*/\1/p')
ratings=$(sqlite3 "$store" 'SELECT count(*) FROM records' 2> /dev/null || echo "?")
echo "== $ratings ratings; $runs requests per page; $(nproc) cores, $(uname -m)"
printf '%-34s %10s %10s %10s\n' page p50_ms p99_ms bytes
for page in "/?days=1" "/?days=7" "/?days=30" "/?days=90" "/cases" "/fleet" "/health"; do
    times=()
    for _ in $(seq 1 "$runs"); do
        times+=("$(curl -fs --max-time 60 -o "$work/page.html" -w '%{time_total}' -H "Cookie: $cookie" "http://127.0.0.1:$http$page")")
    done
    printf '%s\n' "${times[@]}" | python3 -c '
import sys
page, size = sys.argv[1], sys.argv[2]
values = sorted(float(line) * 1000 for line in sys.stdin)
p = lambda q: values[min(len(values) - 1, int(q * len(values)))]
print(f"{page:<34} {p(0.5):>10.1f} {p(0.99):>10.1f} {size:>10}")
' "$page" "$(stat -c %s "$work/page.html")"
done
