#!/usr/bin/env bash
# Quick self-check of scripts/lib/postgres.sh: starts a throwaway server in a temp
# directory, connects over TCP with the password, restarts it with DIR/restart.sh,
# connects again, stops and starts it with DIR/stop.sh and DIR/start.sh, then stops it
# and removes the directory. Exits non-zero with a message on any failure.
#
#   scripts/check-postgres-lib.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/lib/postgres.sh
. "$root/scripts/lib/postgres.sh"

# This checks the library's own server: ignore one given from outside.
unset FEEDBACK_TEST_POSTGRES_URL FEEDBACK_TEST_POSTGRES_PASSWORD FEEDBACK_TEST_POSTGRES_BIN FEEDBACK_TEST_POSTGRES_DIR

fail() {
    echo "check-postgres-lib.sh: FAILED: $*" >&2
    if [ -n "${dir:-}" ] && [ -s "$dir/log" ]; then
        echo "check-postgres-lib.sh: last lines of $dir/log:" >&2
        tail -n 25 "$dir/log" | sed 's/^/    /' >&2
    fi
    exit 1
}

dir="$(mktemp -d -t feedback-pg-check.XXXXXX)"
cleanup() {
    pg_stop "$dir" || true
    rm -rf "$dir"
}
trap cleanup EXIT

# psql as feedback over TCP with the password; prints the single value.
query() {
    PGPASSWORD="$FEEDBACK_TEST_POSTGRES_PASSWORD" PGCONNECT_TIMEOUT=10 \
        timeout -k 5 30 "$FEEDBACK_TEST_POSTGRES_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 \
        "$FEEDBACK_TEST_POSTGRES_URL" -c "$1"
}
expect() {
    local got
    got="$(query "$1" 2>&1)" || fail "$3: psql '$1' over $FEEDBACK_TEST_POSTGRES_URL failed: $got"
    [ "$got" = "$2" ] || fail "$3: '$1' gave '$got', expected '$2'"
}

start=$(date +%s)
pg_start "$dir" || fail "pg_start $dir"
for v in FEEDBACK_TEST_POSTGRES_URL FEEDBACK_TEST_POSTGRES_PASSWORD FEEDBACK_TEST_POSTGRES_BIN FEEDBACK_TEST_POSTGRES_DIR; do
    [ -n "${!v:-}" ] || fail "pg_start did not export $v"
done
[[ "$FEEDBACK_TEST_POSTGRES_URL" =~ ^postgres://feedback@127\.0\.0\.1:[0-9]+/feedback$ ]] ||
    fail "unexpected FEEDBACK_TEST_POSTGRES_URL '$FEEDBACK_TEST_POSTGRES_URL'"
[ "$FEEDBACK_TEST_POSTGRES_DIR" = "$(cd "$dir" && pwd -P)" ] || fail "FEEDBACK_TEST_POSTGRES_DIR is '$FEEDBACK_TEST_POSTGRES_DIR', not $dir"
for s in restart start stop; do [ -x "$dir/$s.sh" ] || fail "no executable $dir/$s.sh"; done

expect "SELECT 1" 1 "first connection"
expect "SELECT current_user || ' ' || current_database()" "feedback feedback" "role and database"
expect "SELECT string_agg(current_setting(n), ' ' ORDER BY n) FROM unnest(ARRAY['fsync','listen_addresses','max_connections','shared_buffers','synchronous_commit']) n" \
    "on 127.0.0.1 200 256MB on" "settings"
expect "SELECT rolcreatedb FROM pg_roles WHERE rolname = current_user" t "CREATEDB"
# The password must really be checked over TCP (scram-sha-256, not trust).
if PGPASSWORD=wrong PGCONNECT_TIMEOUT=10 timeout -k 5 30 "$FEEDBACK_TEST_POSTGRES_BIN/psql" -X -q -A -t \
        "$FEEDBACK_TEST_POSTGRES_URL" -c "SELECT 1" > /dev/null 2>&1; then
    fail "a wrong password was accepted over TCP"
fi
echo "check-postgres-lib.sh: connected over TCP with the password ($(( $(date +%s) - start ))s since pg_start)"

# restart.sh, with its output in a pipe: the restarted server must not keep the pipe
# open (the inner timeout would then end `cat` with 124).
before="$(query "SELECT pg_postmaster_start_time()")" || fail "query before restart"
"$dir/restart.sh" 2>&1 | timeout 120 cat > /dev/null || fail "$dir/restart.sh failed or its output pipe stayed open"
expect "SELECT 1" 1 "connection after restart.sh"
after="$(query "SELECT pg_postmaster_start_time()")" || fail "query after restart"
[ "$before" != "$after" ] || fail "restart.sh did not restart the server (start time still $before)"
echo "check-postgres-lib.sh: restart.sh restarted the server and it accepts connections"

# stop.sh, then start.sh (each twice: both tolerate a server already in that state).
"$dir/stop.sh" > /dev/null || fail "$dir/stop.sh"
"$dir/stop.sh" > /dev/null || fail "$dir/stop.sh on a stopped server"
if query "SELECT 1" > /dev/null 2>&1; then fail "the server still answers after stop.sh"; fi
"$dir/start.sh" 2>&1 | timeout 120 cat > /dev/null || fail "$dir/start.sh failed or its output pipe stayed open"
"$dir/start.sh" > /dev/null || fail "$dir/start.sh on a running server"
expect "SELECT 1" 1 "connection after stop.sh and start.sh"

pg_stop "$dir" || fail "pg_stop $dir"
if query "SELECT 1" > /dev/null 2>&1; then fail "the server still answers after pg_stop"; fi
pg_stop "$dir" || fail "pg_stop $dir on a stopped server"

# With a server given from outside, pg_start starts nothing.
other="$(mktemp -d -t feedback-pg-check.XXXXXX)"
FEEDBACK_TEST_POSTGRES_URL="postgres://x@127.0.0.1:1/x" pg_start "$other" 2> /dev/null || fail "pg_start with FEEDBACK_TEST_POSTGRES_URL set"
[ -z "$(ls -A "$other")" ] || fail "pg_start with FEEDBACK_TEST_POSTGRES_URL set wrote into $other"
rmdir "$other"

echo "check-postgres-lib.sh: OK ($(( $(date +%s) - start ))s)"
