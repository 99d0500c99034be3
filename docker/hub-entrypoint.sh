#!/bin/sh
# First start: `feedback-hub init` (CA, certificate for the name agents use, config, store),
# the alert rules from /etc/feedbackmesh/alerts.yaml if mounted, and one enrollment token per
# agent named in $AGENTS, written to the shared bootstrap volume with the CA certificate.
# Every start: `feedback-hub serve`.
set -eu
# Keys, the store and the agents' tokens are for this user only (every service runs as uid 10001).
umask 077
data=/var/lib/feedbackmesh/hub
bootstrap=/var/lib/feedbackmesh/bootstrap
if [ ! -f "$data/hub.yaml" ]; then
    feedback-hub init "$data" --hostname "${HUB_HOSTNAME:-hub}" --listen 0.0.0.0:7443 --http 0.0.0.0:7080
    if [ -f /etc/feedbackmesh/alerts.yaml ]; then
        cp /etc/feedbackmesh/alerts.yaml "$data/alerts.yaml"
        echo "alerts: alerts.yaml" >> "$data/hub.yaml"
    fi
    mkdir -p "$bootstrap"
    cp "$data/ca.pem" "$bootstrap/ca.pem"
    for agent in ${AGENTS:-}; do
        site="${agent#*=}"
        name="${agent%%=*}"
        feedback-hub agents token --config "$data/hub.yaml" --site "$site" > "$bootstrap/$name.token"
    done
fi
exec feedback-hub serve --config "$data/hub.yaml" --log-level "${LOG_LEVEL:-info}"
