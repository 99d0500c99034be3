#!/bin/sh
# First start: a key of its own, enrolled with the token the hub left for $AGENT_NAME in
# the bootstrap volume, and a write key for the HTTP intake in $data/intake.key (the intake
# listens beyond the container's loopback, so it needs keys). Every start: `feedback-agent
# run` with the HTTP intake on :8088.
set -eu
# agent.yaml holds the enrollment token: owner-only.
umask 077
data=/var/lib/feedbackmesh/agent
bootstrap=/var/lib/feedbackmesh/bootstrap
mkdir -p "$data"
while [ ! -f "$bootstrap/$AGENT_NAME.token" ]; do
    echo "waiting for the hub's enrollment token $bootstrap/$AGENT_NAME.token"
    sleep 1
done
if [ ! -f "$data/agent.json" ]; then
    feedback-agent keygen --out "$data/agent.json"
    cp "$bootstrap/ca.pem" "$data/ca.pem"
    cat > "$data/agent.yaml" <<YAML
identity: agent.json
hubs: ["${HUB_ADDRESS:-hub:7443}"]
ca: ca.pem
enrollmentToken: "$(cat "$bootstrap/$AGENT_NAME.token")"
http: {listen: "0.0.0.0:8088"}
YAML
fi
# A write key for backends posting to the intake (also added to a data volume made before
# intake keys existed).
if ! grep -q writeKeys "$data/agent.yaml"; then
    made=$(feedback-agent intake-key --name "$AGENT_NAME-backend")
    echo "$made" | sed -n 's/^write key: //p' > "$data/intake.key"
    digest=$(echo "$made" | sed -n 's/.*sha256: "\([0-9a-f]*\)".*/\1/p')
    sed -i "s|^http: {listen: \"0.0.0.0:8088\"}|http: {listen: \"0.0.0.0:8088\", writeKeys: [{name: $AGENT_NAME-backend, sha256: \"$digest\"}]}|" "$data/agent.yaml"
    echo "intake write key in $data/intake.key (Authorization: Bearer KEY)"
fi
exec feedback-agent run --config "$data/agent.yaml" --log-level "${LOG_LEVEL:-info}"
