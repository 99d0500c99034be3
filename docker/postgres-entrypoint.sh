#!/bin/sh
# First start: initdb with scram-sha-256 for every TCP connection, then the role and the
# database for the hubs, then a marker; a first start cut short is begun again from an empty
# folder. The password goes to psql on its standard input, never on a command line.
# Every start: postgres in the foreground.
set -eu
bin=/usr/lib/postgresql/15/bin
: "${POSTGRES_USER:?set POSTGRES_USER}" "${POSTGRES_DB:?set POSTGRES_DB}" "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
case "$POSTGRES_USER$POSTGRES_DB" in
    *[!a-z0-9_]*) echo "POSTGRES_USER and POSTGRES_DB: lower-case letters, digits and _ only" >&2; exit 1 ;;
esac
if [ ! -f "$PGDATA/.feedbackmesh-initialized" ]; then
    find "$PGDATA" -mindepth 1 -delete
    "$bin/initdb" -D "$PGDATA" --auth-local=peer --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 > /dev/null
    echo "host all all 0.0.0.0/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
    echo "host all all ::/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
    "$bin/pg_ctl" -D "$PGDATA" -o "-c listen_addresses=''" -w start > /dev/null
    password=$(printf '%s' "$POSTGRES_PASSWORD" | sed "s/'/''/g")
    printf "CREATE ROLE %s LOGIN PASSWORD '%s';\nCREATE DATABASE %s OWNER %s;\n" \
        "$POSTGRES_USER" "$password" "$POSTGRES_DB" "$POSTGRES_USER" |
        "$bin/psql" -X -q -v ON_ERROR_STOP=1 -d postgres
    "$bin/pg_ctl" -D "$PGDATA" -m fast -w stop > /dev/null
    touch "$PGDATA/.feedbackmesh-initialized"
    echo "postgres: made the cluster, the role $POSTGRES_USER and the database $POSTGRES_DB"
fi
exec "$bin/postgres" -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/run/postgresql
