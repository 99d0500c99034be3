# A throwaway PostgreSQL server for the tests (source it, don't run it).
#
#   . scripts/lib/postgres.sh
#   dir="$(mktemp -d)"
#   pg_start "$dir"     # exports FEEDBACK_TEST_POSTGRES_{URL,PASSWORD,BIN,DIR}
#   ...                 # tests; "$dir/restart.sh", "$dir/stop.sh", "$dir/start.sh"
#   pg_stop "$dir"      # tolerant of a server that is already stopped
#
# pg_start installs the Debian `postgresql` package when no server binaries are there
# (with sudo when not root), makes a fresh cluster in DIR (DIR is the data directory
# itself), listening only on 127.0.0.1 at a free port and on a unix socket in DIR, and
# creates the login role `feedback` (random password, CREATEDB) and its database
# `feedback`. As root the cluster belongs to the `postgres` system user that the Debian
# package creates (initdb and the server refuse to run as root); otherwise to you.
#
# Exported on success:
#   FEEDBACK_TEST_POSTGRES_URL       postgres://feedback@127.0.0.1:PORT/feedback (no password)
#   FEEDBACK_TEST_POSTGRES_PASSWORD  the password of the role feedback (scram-sha-256 over TCP)
#   FEEDBACK_TEST_POSTGRES_BIN       the server's bin directory (pg_ctl, psql, ...)
#   FEEDBACK_TEST_POSTGRES_DIR       DIR, the data directory (pg_ctl -D DIR ...)
# DIR/restart.sh, DIR/stop.sh and DIR/start.sh run pg_ctl as the cluster's owner (extra
# arguments go to pg_ctl, e.g. `restart.sh -m immediate`); the server logs to DIR/log.
#
# When FEEDBACK_TEST_POSTGRES_URL is already set, pg_start starts nothing and says that it
# uses that server; pg_stop then finds no cluster in DIR and does nothing.
#
# Time limits (seconds), overridable from the environment:
#   PG_INSTALL_TIMEOUT (600) each apt-get run; PG_START_TIMEOUT (60) pg_ctl -w start/stop;
#   PG_INIT_TIMEOUT (120) initdb; PG_SQL_TIMEOUT (60) the role and database setup.

_pg_say() { echo "postgres.sh: $*" >&2; }

# The last lines of the server log, indented, for error messages.
_pg_log_tail() {
    if [ -s "$1/log" ]; then
        echo "postgres.sh: last lines of $1/log:" >&2
        tail -n 25 "$1/log" | sed 's/^/    /' >&2
    fi
}

# _pg_run SECS CMD...: runs CMD (a program, not a function) as the cluster's owner, the
# postgres user when we are root and else ourselves, in / (so that a working directory
# closed to that user doesn't matter), killed after SECS seconds.
_pg_run() {
    local secs="$1"
    shift
    if [ "$(id -u)" -ne 0 ]; then
        (cd / && timeout -k 10 "$secs" "$@")
    elif command -v runuser > /dev/null 2>&1; then
        (cd / && timeout -k 10 "$secs" runuser -u postgres -- "$@")
    else
        # shellcheck disable=SC2016 # $0 and $@ are for the inner shell
        (cd / && timeout -k 10 "$secs" su postgres -s /bin/sh -c '"$0" "$@"' "$@")
    fi
}

# Prints the newest /usr/lib/postgresql/*/bin that has initdb, pg_ctl and psql.
_pg_find_bin() {
    local initdb f
    initdb="$(for f in /usr/lib/postgresql/*/bin/initdb; do [ -x "$f" ] && echo "$f"; done | sort -V | tail -n 1)"
    [ -n "$initdb" ] || return 1
    local bin="${initdb%/initdb}"
    [ -x "$bin/initdb" ] && [ -x "$bin/pg_ctl" ] && [ -x "$bin/postgres" ] && [ -x "$bin/psql" ] || return 1
    echo "$bin"
}

# Makes sure the server binaries exist, installing the Debian package if they don't.
_pg_ensure_installed() {
    _pg_find_bin > /dev/null && return 0
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if ! command -v sudo > /dev/null 2>&1; then
            _pg_say "no PostgreSQL server in /usr/lib/postgresql/*/bin and not root, and sudo is missing: install it with 'apt-get install postgresql'"
            return 1
        fi
        # Without a terminal a password prompt would only wait: fail at once instead.
        sudo="sudo"
        if ! [ -t 0 ]; then sudo="sudo -n"; fi
    fi
    if ! command -v apt-get > /dev/null 2>&1; then
        _pg_say "no PostgreSQL server in /usr/lib/postgresql/*/bin and no apt-get to install the 'postgresql' package"
        return 1
    fi
    local t="${PG_INSTALL_TIMEOUT:-600}" out
    out="$(mktemp)"
    _pg_say "no PostgreSQL server binaries: installing the Debian package 'postgresql'"
    # A fresh machine may have no package lists yet: update once and retry.
    if ! $sudo env DEBIAN_FRONTEND=noninteractive timeout -k 10 "$t" \
            apt-get install -y -q --no-install-recommends postgresql > "$out" 2>&1; then
        if ! $sudo env DEBIAN_FRONTEND=noninteractive timeout -k 10 "$t" apt-get update -q > "$out" 2>&1 ||
           ! $sudo env DEBIAN_FRONTEND=noninteractive timeout -k 10 "$t" \
                apt-get install -y -q --no-install-recommends postgresql > "$out" 2>&1; then
            _pg_say "could not install the Debian package 'postgresql' (apt-get failed or took over ${t}s); its last lines:"
            tail -n 15 "$out" | sed 's/^/    /' >&2
            rm -f "$out"
            return 1
        fi
    fi
    rm -f "$out"
    if ! _pg_find_bin > /dev/null; then
        _pg_say "installed 'postgresql' but found no /usr/lib/postgresql/*/bin/{initdb,pg_ctl,postgres,psql}"
        return 1
    fi
}

_pg_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Writes DIR/NAME.sh, a script that runs `pg_ctl ACTION` on this cluster as its owner.
_pg_write_ctl_script() {
    local dir="$1" bin="$2" owner="$3" name="$4" body="$5" f="$1/$4.sh"
    {
        echo '#!/bin/sh'
        echo "# pg_ctl $name for the throwaway PostgreSQL server in this directory, as its owner $owner"
        echo "# (written by scripts/lib/postgres.sh)."
        echo "# Extra arguments go to pg_ctl, e.g. '-m immediate'. The server logs to $dir/log."
        printf 'dir=%q\nbin=%q\nowner=%q\nwait=%q\n' "$dir" "$bin" "$owner" "${PG_START_TIMEOUT:-60}"
        cat << 'EOF'
cd / || exit 1
ctl() {
    if [ "$(id -un)" = "$owner" ]; then "$bin/pg_ctl" "$@"
    elif [ "$(id -u)" -eq 0 ] && command -v runuser > /dev/null 2>&1; then runuser -u "$owner" -- "$bin/pg_ctl" "$@"
    elif [ "$(id -u)" -eq 0 ]; then su "$owner" -s /bin/sh -c '"$0" "$@"' "$bin/pg_ctl" "$@"
    else sudo -n -u "$owner" "$bin/pg_ctl" "$@"
    fi
}
fail() { echo "$0: $1; last lines of $dir/log:" >&2; tail -n 25 "$dir/log" | sed 's/^/    /' >&2; exit 1; }
EOF
        echo "$body"
    } > "$f"
    chmod 755 "$f"
}

# pg_start DIR: see the top of this file.
pg_start() {
    local dir="${1:-}"
    if [ -n "${FEEDBACK_TEST_POSTGRES_URL:-}" ]; then
        _pg_say "FEEDBACK_TEST_POSTGRES_URL is set: using the server given there ($(printf '%s' "$FEEDBACK_TEST_POSTGRES_URL" | sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#')), starting none"
        return 0
    fi
    if [ -z "$dir" ]; then
        _pg_say "pg_start: usage: pg_start DIR"
        return 2
    fi
    local t0
    t0="$(date +%s.%N)"
    command -v python3 > /dev/null 2>&1 || { _pg_say "pg_start: python3 is needed to pick a free port"; return 1; }
    _pg_ensure_installed || return 1
    local bin
    bin="$(_pg_find_bin)" || { _pg_say "pg_start: no usable PostgreSQL bin directory"; return 1; }

    mkdir -p "$dir" || { _pg_say "pg_start: cannot create $dir"; return 1; }
    dir="$(cd "$dir" && pwd -P)" || return 1
    if [ -n "$(ls -A "$dir")" ]; then
        _pg_say "pg_start: $dir is not empty; it needs an empty directory for a fresh cluster"
        return 1
    fi
    # The unix socket's path ($dir/.s.PGSQL.PORT) must fit in sun_path (107 bytes).
    if [ "${#dir}" -gt 80 ]; then
        _pg_say "pg_start: $dir is too long a path for the server's unix socket (over 80 characters); use a shorter one, e.g. under /tmp"
        return 1
    fi

    local owner
    owner="$(id -un)"
    if [ "$(id -u)" -eq 0 ]; then
        owner="postgres"
        if ! id postgres > /dev/null 2>&1; then
            _pg_say "pg_start: running as root but there is no 'postgres' user (the Debian package 'postgresql' creates it); initdb refuses to run as root"
            return 1
        fi
        chown postgres:postgres "$dir" || { _pg_say "pg_start: cannot chown $dir to postgres"; return 1; }
    fi
    chmod 700 "$dir" || return 1
    if ! _pg_run 30 test -w "$dir" -a -x "$dir"; then
        _pg_say "pg_start: user $owner cannot write to $dir (a parent directory may be closed to it, e.g. under /root); use a directory under /tmp"
        return 1
    fi

    local init_t="${PG_INIT_TIMEOUT:-120}" start_t="${PG_START_TIMEOUT:-60}" sql_t="${PG_SQL_TIMEOUT:-60}"
    local initlog="$dir.initdb.log"
    if ! _pg_run "$init_t" "$bin/initdb" -D "$dir" -U postgres -A trust \
            -E UTF8 --locale=C --no-instructions > "$initlog" 2>&1; then
        _pg_say "pg_start: initdb failed or took over ${init_t}s in $dir as user $owner; its output:"
        tail -n 25 "$initlog" | sed 's/^/    /' >&2
        rm -f "$initlog"
        return 1
    fi
    rm -f "$initlog"

    cat > "$dir/pg_hba.conf" << 'EOF'
# Written by scripts/lib/postgres.sh: the socket in this directory trusts everyone,
# TCP on 127.0.0.1 needs a password.
local   all   all                  trust
host    all   all   127.0.0.1/32   scram-sha-256
EOF
    printf "\n# Written by scripts/lib/postgres.sh\ninclude 'feedback-test.conf'\n" >> "$dir/postgresql.conf"

    local port="" ok="" lines _
    # The free port is only free when python3 looks; if another process takes it before
    # the server binds, try again with a new one.
    for _ in 1 2 3; do
        port="$(_pg_free_port)" || { _pg_say "pg_start: python3 could not find a free port"; return 1; }
        cat > "$dir/feedback-test.conf" << EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
unix_socket_permissions = 0777
max_connections = 200
shared_buffers = 256MB
fsync = on
synchronous_commit = on
password_encryption = 'scram-sha-256'
logging_collector = off
EOF
        if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$dir/pg_hba.conf" "$dir/feedback-test.conf"; fi
        lines=0
        if [ -f "$dir/log" ]; then lines="$(wc -l < "$dir/log")"; fi
        if _pg_run $((start_t + 15)) "$bin/pg_ctl" -D "$dir" -l "$dir/log" -w -t "$start_t" start > /dev/null 2>&1; then
            ok=1
            break
        fi
        # pg_ctl -w gave up: make sure no half-started server stays behind.
        _pg_run 45 "$bin/pg_ctl" -D "$dir" -m immediate -w -t 30 stop > /dev/null 2>&1 || true
        if ! tail -n "+$((lines + 1))" "$dir/log" 2> /dev/null | grep -q "could not bind"; then break; fi
        _pg_say "pg_start: port $port was taken before the server bound it; trying another"
    done
    if [ -z "$ok" ]; then
        _pg_say "pg_start: the PostgreSQL server in $dir did not start (pg_ctl -w -t $start_t start, port $port, user $owner)"
        _pg_log_tail "$dir"
        return 1
    fi

    local password
    password="$(python3 -c 'import secrets; print(secrets.token_hex(16))')" || return 1
    # Over the unix socket as the superuser postgres (trust). The password is hex, so it
    # needs no quoting.
    if ! timeout -k 10 "$sql_t" "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres -d postgres \
            -c "CREATE ROLE feedback LOGIN CREATEDB PASSWORD '$password'" \
            -c "CREATE DATABASE feedback OWNER feedback" > "$dir.psql.log" 2>&1; then
        _pg_say "pg_start: could not create the role and database feedback (psql over $dir, port $port) within ${sql_t}s; psql said:"
        sed 's/^/    /' "$dir.psql.log" >&2
        rm -f "$dir.psql.log"
        _pg_log_tail "$dir"
        pg_stop "$dir" || true
        return 1
    fi
    rm -f "$dir.psql.log"

    # The bodies are expanded by the written scripts, not here.
    # shellcheck disable=SC2016
    _pg_write_ctl_script "$dir" "$bin" "$owner" restart \
        'ctl -D "$dir" -l "$dir/log" -w -t "$wait" restart -m fast "$@" || fail "pg_ctl restart failed"'
    # shellcheck disable=SC2016
    _pg_write_ctl_script "$dir" "$bin" "$owner" start \
        'if ctl -D "$dir" status > /dev/null 2>&1; then echo "$0: already running"; exit 0; fi
ctl -D "$dir" -l "$dir/log" -w -t "$wait" start "$@" || fail "pg_ctl start failed"'
    # shellcheck disable=SC2016
    _pg_write_ctl_script "$dir" "$bin" "$owner" stop \
        'if ! ctl -D "$dir" status > /dev/null 2>&1; then echo "$0: not running"; exit 0; fi
ctl -D "$dir" -w -t "$wait" stop -m fast "$@" || fail "pg_ctl stop failed"'

    export FEEDBACK_TEST_POSTGRES_URL="postgres://feedback@127.0.0.1:$port/feedback"
    export FEEDBACK_TEST_POSTGRES_PASSWORD="$password"
    export FEEDBACK_TEST_POSTGRES_BIN="$bin"
    export FEEDBACK_TEST_POSTGRES_DIR="$dir"
    local version
    version="$("$bin/postgres" --version 2> /dev/null | awk '{print $3}')"
    _pg_say "PostgreSQL $version up on 127.0.0.1:$port (data and log in $dir, user $owner) in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')s"
}

# pg_stop DIR: stops the server of DIR if one runs there; quiet when there is none.
pg_stop() {
    local dir="${1:-}"
    [ -n "$dir" ] && [ -f "$dir/PG_VERSION" ] || return 0
    local bin
    bin="$(_pg_find_bin)" || { _pg_say "pg_stop: no PostgreSQL bin directory to stop $dir with"; return 1; }
    if ! _pg_run 30 "$bin/pg_ctl" -D "$dir" status > /dev/null 2>&1; then
        return 0
    fi
    local t="${PG_START_TIMEOUT:-60}"
    if ! _pg_run $((t + 15)) "$bin/pg_ctl" -D "$dir" -m fast -w -t "$t" stop > /dev/null 2>&1; then
        _pg_say "pg_stop: the server in $dir did not stop within ${t}s (pg_ctl -m fast stop); sending it SIGKILL"
        _pg_log_tail "$dir"
        local pid
        pid="$(head -n 1 "$dir/postmaster.pid" 2> /dev/null)"
        if [ -n "$pid" ]; then kill -KILL "$pid" 2> /dev/null || true; fi
        return 1
    fi
}
