#!/usr/bin/env bash
# Hub ingest on PostgreSQL, measured against the database's own limit in one run:
#
#   1. the raw rate of the hub's inserts into the hub's schema without the hub
#      (scripts/bench-postgres-raw.py, strategy b: the UNNEST statement the hub uses, the
#      same batch sizes, two clients like the hub's two commit writers), on a throwaway
#      PostgreSQL 15 (scripts/lib/postgres.sh);
#   2. one release `feedback-hub serve` on that database, driven by `feedback-bench load`;
#   3. two hubs on one database, each driven by half the connections.
#
#   scripts/bench-hub-postgres.sh                         # 50 connections, 1,000,000 records per run
#   CONNECTIONS=50 RECORDS=2000000 scripts/bench-hub-postgres.sh
#
# Every run stops by itself (RECORDS acknowledged or SECONDS_MAX). Figures and the machine go
# in docs/BENCHMARKS.md. FEEDBACK_TEST_POSTGRES_URL (and _PASSWORD) use a server of your own.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/lib/postgres.sh
. scripts/lib/postgres.sh

connections="${CONNECTIONS:-50}"
records="${RECORDS:-1000000}"
batch="${BATCH_RECORDS:-1000}"
seconds="${SECONDS_MAX:-120}"
config="${BUILD_CONFIG:-release}"
out="${OUT:-$(mktemp -d)}"
mkdir -p "$out"

swift build -c "$config" --product feedback-hub
swift build -c "$config" --product feedback-bench
bin="$(swift build -c "$config" --show-bin-path)"

pids=()
pgdir=""
cleanup() {
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    if [ -n "$pgdir" ]; then pg_stop "$pgdir" || true; rm -rf "$pgdir"; fi
}
trap cleanup EXIT
if [ -z "${FEEDBACK_TEST_POSTGRES_URL:-}" ]; then pgdir="$(mktemp -d -t feedback-pg.XXXXXX)"; fi
pg_start "${pgdir:-/nonexistent}"
psql_url="${FEEDBACK_TEST_POSTGRES_URL%/*}"
export PGPASSWORD="$FEEDBACK_TEST_POSTGRES_PASSWORD"
sql() { "$FEEDBACK_TEST_POSTGRES_BIN/psql" -X -q -t -A "$psql_url/$1" -c "$2"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Two clients, as a hub has two commit writers (postgres.commitWriters).
echo "== raw: the hub's statement (UNNEST) into the hub's schema, no hub; 2 clients, transactions of 10,000 records (about what one group commit holds at this load)"
python3 scripts/bench-postgres-raw.py --strategy b --clients 2 --records "$records" --batch "$batch" --tx-records 10000 | tee "$out/raw.txt"

# One database per hub run, so each starts empty.
run_hubs() {
    local count=$1 database="bench_$1_$$"
    sql feedback "CREATE DATABASE $database" > /dev/null
    rm -rf "$out/hubs$count"
    local ports=() https=()
    for index in $(seq 1 "$count"); do
        local port http dir="$out/hubs$count/hub$index"
        port=$(free_port); http=$(free_port)
        ports+=("$port"); https+=("$http")
        if [ "$index" = 1 ]; then
            "$bin/feedback-hub" init "$dir" --listen "127.0.0.1:$port" --http "127.0.0.1:$http" > /dev/null
            sed -i '/^store:/d' "$dir/hub.yaml"
            # Every connection comes from 127.0.0.1 and enrolls at once: on PostgreSQL each
            # enrollment is a committed transaction, and more than the default 32 handshakes
            # per address would evict the slowest (as the limit means to for a real address).
            sed -i "s/^  maxHandshakesPerAddress: .*/  maxHandshakesPerAddress: $connections/" "$dir/hub.yaml"
        else
            mkdir -p "$dir"
            printf 'hubId: %s\nlisten: "127.0.0.1:%s"\nhttp: "127.0.0.1:%s"\ntls: {certificate: %s, privateKey: %s}\nlimits: {maxHandshakesPerAddress: %s}\n' \
                "$(python3 -c 'import uuid; print(uuid.uuid4())')" "$port" "$http" "$out/hubs$count/hub1/hub.pem" "$out/hubs$count/hub1/hub-key.pem" \
                "$connections" > "$dir/hub.yaml"
        fi
        printf 'store: "%s/%s"\npostgres: {passwordEnv: FEEDBACK_TEST_POSTGRES_PASSWORD, poolSize: 8}\n' "$psql_url" "$database" >> "$dir/hub.yaml"
    done
    "$bin/feedback-hub" agents token --config "$out/hubs$count/hub1/hub.yaml" --any-site --count "$connections" > "$out/tokens$count.txt"
    local hubs=()
    for index in $(seq 1 "$count"); do
        "$bin/feedback-hub" serve --config "$out/hubs$count/hub$index/hub.yaml" --log-level warning > "$out/hubs$count/hub$index.log" 2>&1 &
        hubs+=($!); pids+=($!)
    done
    for http in "${https[@]}"; do
        for _ in $(seq 1 400); do curl -fs "http://127.0.0.1:$http/readyz" > /dev/null 2>&1 && break; sleep 0.05; done
    done
    local per=$(( connections / count )) each=$(( records / count )) loads=()
    for index in $(seq 1 "$count"); do
        sed -n "$(( (index - 1) * per + 1 )),$(( index * per ))p" "$out/tokens$count.txt" > "$out/tokens$count-$index.txt"
        "$bin/feedback-bench" load --hub "127.0.0.1:${ports[$((index - 1))]}" --ca "$out/hubs$count/hub1/ca.pem" \
            --tokens "$out/tokens$count-$index.txt" --connections "$per" --records "$each" --batch-records "$batch" \
            --max-seconds "$seconds" > "$out/bench$count-$index.txt" 2>&1 &
        loads+=($!)
    done
    local started ended
    started=$(date +%s.%N)
    for load in "${loads[@]}"; do wait "$load"; done
    ended=$(date +%s.%N)
    local stored
    stored=$(sql "$database" "SELECT COUNT(*) FROM records")
    for hub in "${hubs[@]}"; do kill -TERM "$hub" 2>/dev/null || true; wait "$hub" 2>/dev/null || true; done
    for index in $(seq 1 "$count"); do grep -E "throughput|acknowledged|latency" "$out/bench$count-$index.txt" | sed "s/^/  hub $index: /"; done
    python3 -c "import sys; s=$stored; t=$ended-$started; print(f'{sys.argv[1]} hub(s): {s} records stored in {t:.1f} s: {s/t:,.0f} records/s')" "$count" | tee "$out/hubs$count.txt"
    # An autovacuum worker still on the database can make the drop fail for a moment.
    for _ in 1 2 3 4 5; do sql feedback "DROP DATABASE $database WITH (FORCE)" > /dev/null 2>&1 && return; sleep 2; done
    echo "bench-hub-postgres.sh: could not drop database $database" >&2
}

echo "== one hub"
run_hubs 1
echo "== two hubs, one database"
run_hubs 2
echo "results in $out"
