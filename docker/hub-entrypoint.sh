#!/bin/sh
# The hub's container entrypoint (compose.yaml, docs/OPERATIONS.md#containers).
#
# First start of the first hub (HUB_FIRST=1, the default): `feedback-hub init` (CA, a
# certificate for the names in $HUB_HOSTNAME, configuration, store), the store switched to
# PostgreSQL when $STORE is a postgres:// URL (password from $POSTGRES_PASSWORD), the alert
# rules from /etc/feedbackmesh/alerts.yaml if mounted; the CA and the server certificate
# for the other hubs in /var/lib/feedbackmesh/hub-tls when that volume is mounted (only hubs
# mount it); and, in the bootstrap volume, for each "name=sites" of $AGENTS an enrollment
# token (NAME/token), for each of $RELAYS a relay token and a relay certificate for the name
# (NAME/token, NAME/relay.pem, NAME/relay-key.pem), and ca.pem. Each node moves its own files
# out of the bootstrap volume on its first start.
#
# First start of another hub (HUB_FIRST=0): waits for hub-tls, then writes its own
# configuration (its own hubId) on the same store and certificate.
#
# Every start: `feedback-hub serve`.
set -eu
# Keys, the store and the agents' tokens are for this user only (every service runs as uid 10001).
umask 077
data=/var/lib/feedbackmesh/hub
bootstrap=/var/lib/feedbackmesh/bootstrap
shared=/var/lib/feedbackmesh/hub-tls
first="${HUB_FIRST:-1}"

# retry WHAT COMMAND...: the store may still be starting (PostgreSQL); a minute at most,
# the command's error shown once when it gives up.
retry() {
    what=$1
    shift
    tries=0
    until "$@" 2> "$data/.retry.err"; do
        tries=$((tries + 1))
        if [ "$tries" -ge 60 ]; then
            echo "hub-entrypoint: $what failed 60 times, giving up: $(cat "$data/.retry.err")" >&2
            exit 1
        fi
        [ "$tries" != 5 ] || echo "hub-entrypoint: $what: waiting for the store"
        sleep 1
    done
    rm -f "$data/.retry.err"
}

if [ ! -f "$data/hub.yaml" ]; then
    # What a first start cut short left.
    rm -rf "$data.new"
    if [ "$first" = 1 ]; then
        names=""
        for name in ${HUB_HOSTNAME:-hub}; do names="$names --hostname $name"; done
        # shellcheck disable=SC2086
        feedback-hub init "$data.new" $names --listen 0.0.0.0:7443 --http 0.0.0.0:7080 > /dev/null
        if [ -d "$shared" ]; then
            # The key last and whole: the other hubs start once they see it.
            cp "$data.new/ca.pem" "$data.new/hub.pem" "$shared/"
            cp "$data.new/hub-key.pem" "$shared/hub-key.pem.new"
            mv "$shared/hub-key.pem.new" "$shared/hub-key.pem"
        fi
    else
        while [ ! -f "$shared/hub-key.pem" ]; do
            echo "hub-entrypoint: waiting for the first hub's certificate in $shared"
            sleep 1
        done
        mkdir -p "$data.new"
        cp "$shared/ca.pem" "$shared/hub.pem" "$shared/hub-key.pem" "$data.new/"
        cat > "$data.new/hub.yaml" << YAML
# FeedbackMesh hub configuration (docs/OPERATIONS.md): a further hub on the first hub's store and certificate.
hubId: $(cat /proc/sys/kernel/random/uuid)
listen: "0.0.0.0:7443"
http: "0.0.0.0:7080"
tls: {certificate: hub.pem, privateKey: hub-key.pem}
YAML
    fi
    case "${STORE:-}" in
        postgres://* | postgresql://*)
            sed -i '/^store:/d' "$data.new/hub.yaml"
            rm -f "$data.new/feedback.sqlite"
            # The container network has no TLS for PostgreSQL; a database elsewhere: tls verify (docs/SCALING.md).
            printf 'store: "%s"\npostgres: {passwordEnv: POSTGRES_PASSWORD, tls: disable}\n' "$STORE" >> "$data.new/hub.yaml"
            ;;
        "") ;;
        *) echo "hub-entrypoint: STORE must be a postgres:// URL (or unset for SQLite)" >&2; exit 1 ;;
    esac
    if [ -f /etc/feedbackmesh/alerts.yaml ]; then
        cp /etc/feedbackmesh/alerts.yaml "$data.new/alerts.yaml"
        echo "alerts: alerts.yaml" >> "$data.new/hub.yaml"
    fi
    mv "$data.new"/* "$data/"
    rmdir "$data.new"
fi
# bootstrap_node NAME SITES [--relay]: NAME's enrollment token for SITES (comma-separated) in
# the bootstrap volume, with a relay certificate for the name when --relay; once (a marker in
# the hub's volume).
bootstrap_node() {
    name=$1 sites=$2 relay=${3:-}
    [ ! -f "$data/.bootstrap-$name" ] || return 0
    mkdir -p "$bootstrap/$name"
    if [ -n "$relay" ]; then
        feedback-hub certs relay --ca-certificate "$data/ca.pem" --ca-key "$data/ca-key.pem" \
            --hostname "$name" --out "$bootstrap/$name" --force > /dev/null
    fi
    # shellcheck disable=SC2016
    retry "a token for $name" sh -c 'set -f; feedback-hub agents token --config "$1" $4 $(echo "$2" | tr , "\n" | sed "s/^/--site /") > "$3"' \
        - "$data/hub.yaml" "$sites" "$bootstrap/$name/token.new" "$relay"
    # Whole or not at all: the node starts once it sees the token.
    mv "$bootstrap/$name/token.new" "$bootstrap/$name/token"
    touch "$data/.bootstrap-$name"
}

# Each node's enrollment material once (a marker in the hub's volume), also after a first
# start that stopped half way.
if [ "$first" = 1 ]; then
    cp "$data/ca.pem" "$bootstrap/ca.pem"
    for agent in ${AGENTS:-}; do bootstrap_node "${agent%%=*}" "${agent#*=}"; done
    for relay in ${RELAYS:-}; do bootstrap_node "${relay%%=*}" "${relay#*=}" --relay; done
fi
# PostgreSQL may still be starting (or restarting): wait for it rather than fail the start.
case "${STORE:-}" in
    postgres://* | postgresql://*) retry "the store" sh -c 'feedback-hub agents list --config "$1" > /dev/null' - "$data/hub.yaml" ;;
esac
exec feedback-hub serve --config "$data/hub.yaml" --log-level "${LOG_LEVEL:-info}"
