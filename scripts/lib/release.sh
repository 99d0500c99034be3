# shellcheck shell=bash
# The release binaries and version the packaging ships (docs/OPERATIONS.md#install): sourced
# by scripts/build-images.sh, scripts/build-packages.sh and .ci/run, from the repository's
# root.
#
#   release_version    prints the agent's softwareVersion (Sources/Agent/FeedbackAgent.swift),
#                      the version of the images and packages; fails when there is none
#   release_binaries   prints the folder holding release feedback-hub and feedback-agent:
#                      $BIN when set, else after building both with the static Swift
#                      standard library (6-7 minutes; swift's output on stderr)

release_version() {
    local version
    version=$(sed -n 's/.*static let softwareVersion = "\([^"]*\)".*/\1/p' Sources/Agent/FeedbackAgent.swift)
    [ -n "$version" ] || { echo "release: no softwareVersion in Sources/Agent/FeedbackAgent.swift" >&2; return 1; }
    echo "$version"
}

release_binaries() {
    local bin=${BIN:-} program
    if [ -z "$bin" ]; then
        echo "== building the release binaries (static Swift standard library)" >&2
        # Each step checked here: inside $(...) bash does not apply set -e, and a failed
        # build must not pass off an older binary left in the build folder.
        swift build -c release --static-swift-stdlib --product feedback-hub >&2 || return 1
        swift build -c release --static-swift-stdlib --product feedback-agent >&2 || return 1
        bin="$(swift build -c release --static-swift-stdlib --show-bin-path)" || return 1
    fi
    for program in feedback-hub feedback-agent; do
        [ -x "$bin/$program" ] || { echo "release: $bin/$program is missing" >&2; return 1; }
    done
    echo "$bin"
}
