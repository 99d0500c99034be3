#!/bin/sh
# The agent's container entrypoint (compose.yaml, docs/OPERATIONS.md#containers).
#
# First start: a key of its own; its enrollment token (and, for a relay, its certificate
# and key) moved out of the bootstrap volume, where the first hub left them for $AGENT_NAME,
# into its own data volume; the CA certificate; a configuration listing the hubs (or the
# relay) in $HUB_ADDRESS (space-separated HOST:PORT); with RELAY=1 a relay section listening
# on :7443; and a write key for the HTTP intake in $data/intake.key (the intake listens
# beyond the container's loopback, so it needs keys). Every start: `feedback-agent run`
# with the HTTP intake on :8088.
set -eu
# agent.yaml holds the enrollment token: owner-only.
umask 077
data=/var/lib/feedbackmesh/agent
bootstrap=/var/lib/feedbackmesh/bootstrap
: "${AGENT_NAME:?set AGENT_NAME}"
mine="$bootstrap/$AGENT_NAME"
if [ ! -f "$data/agent.yaml" ]; then
    while [ ! -f "$mine/token" ] || [ ! -f "$bootstrap/ca.pem" ] || { [ "${RELAY:-0}" = 1 ] && [ ! -f "$mine/relay-key.pem" ]; }; do
        echo "agent-entrypoint: waiting for the hub's enrollment token in $mine"
        sleep 1
    done
    [ -f "$data/agent.json" ] || feedback-agent keygen --out "$data/agent.json"
    cp "$bootstrap/ca.pem" "$data/ca.pem"
    hubs=""
    for hub in ${HUB_ADDRESS:-hub:7443}; do hubs="$hubs${hubs:+, }\"$hub\""; done
    relay=""
    if [ "${RELAY:-0}" = 1 ]; then
        cp "$mine/relay.pem" "$mine/relay-key.pem" "$data/"
        relay='relay: {listen: "0.0.0.0:7443", certificate: relay.pem, privateKey: relay-key.pem}'
    fi
    token=$(cat "$mine/token")
    [ -n "$token" ] || { echo "agent-entrypoint: $mine/token is empty" >&2; exit 1; }
    cat > "$data/agent.yaml.new" << YAML
identity: agent.json
hubs: [$hubs]
ca: ca.pem
enrollmentToken: "$token"
http: {listen: "0.0.0.0:8088"}
$relay
YAML
    mv "$data/agent.yaml.new" "$data/agent.yaml"
    # Moved, not only copied: the bootstrap volume holds a node's material until it started.
    rm -f "$mine/token" "$mine/relay.pem" "$mine/relay-key.pem"
fi
# A write key for backends posting to the intake (also added to a data volume made before
# intake keys existed).
if ! grep -q writeKeys "$data/agent.yaml"; then
    made=$(feedback-agent intake-key --name "$AGENT_NAME-backend")
    echo "$made" | sed -n 's/^write key: //p' > "$data/intake.key"
    digest=$(echo "$made" | sed -n 's/.*sha256: "\([0-9a-f]*\)".*/\1/p')
    sed -i "s|^http: {listen: \"0.0.0.0:8088\"}|http: {listen: \"0.0.0.0:8088\", writeKeys: [{name: $AGENT_NAME-backend, sha256: \"$digest\"}]}|" "$data/agent.yaml"
    echo "agent-entrypoint: intake write key in $data/intake.key (Authorization: Bearer KEY)"
fi
exec feedback-agent run --config "$data/agent.yaml" --log-level "${LOG_LEVEL:-info}"
