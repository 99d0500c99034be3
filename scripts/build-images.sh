#!/usr/bin/env bash
# Builds the container images with podman from binaries built on this machine
# (docs/OPERATIONS.md#containers), where the Dockerfile's Swift build image cannot be pulled:
#
#   feedbackmesh:latest (and :VERSION)  docker/Containerfile.prebuilt: feedback-hub and
#                                       feedback-agent (release, static Swift standard
#                                       library) on debian:bookworm, uid 10001, no build tools
#   feedbackmesh-postgres:15            docker/Containerfile.postgres (compose.yaml's database)
#   feedbackmesh-webhooks:latest        docker/Containerfile.webhooks (compose.yaml's receiver)
#
# Sets podman up first (scripts/lib/podman.sh: packages, configuration, the local Debian base
# image). BIN=DIR takes the binaries from DIR instead of building them. Prints each image's size.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/lib/podman.sh
. "$root/scripts/lib/podman.sh"
# shellcheck source=scripts/lib/release.sh
. "$root/scripts/lib/release.sh"
podman_setup

version=$(release_version)
BIN=$(release_binaries)
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
for program in feedback-hub feedback-agent; do
    # Stripped: the symbols are a third of the binary and not needed to run it.
    strip --strip-unneeded -o "$context/$program" "$BIN/$program"
done
cp docker/hub-entrypoint.sh docker/agent-entrypoint.sh "$context/"

build() {
    local file=$1 dir=$2
    shift 2
    echo "== $* from $file"
    podman build --pull=never --format docker --quiet -f "$file" "${@/#/--tag=}" "$dir" > /dev/null
}
build docker/Containerfile.prebuilt "$context" localhost/feedbackmesh:latest "localhost/feedbackmesh:$version"
build docker/Containerfile.postgres docker localhost/feedbackmesh-postgres:15
build docker/Containerfile.webhooks docker localhost/feedbackmesh-webhooks:latest
echo
podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}' |
    grep -E '^localhost/(feedbackmesh(-postgres|-webhooks)?|debian):' | sort -u | sed 's/^/image /'
