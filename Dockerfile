# FeedbackMesh hub and agent. Build stage: the Swift image with the -dev libraries;
# run stage: Swift's slim runtime image with libzstd and SQLite.
#
#   docker build -t feedbackmesh .
#   docker compose up        (see compose.yaml and docs/OPERATIONS.md#docker)
#
# One image holds both binaries; the compose file picks the command.

FROM swift:6.3-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends libzstd-dev libsqlite3-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Package.swift names every target, tests included, so all their folders are copied.
COPY Package.swift ./
COPY Sources ./Sources
COPY Examples ./Examples
COPY Tests ./Tests
COPY Benchmarks ./Benchmarks
COPY Fuzz ./Fuzz
RUN swift build -c release --product feedback-hub \
    && swift build -c release --product feedback-agent \
    && mkdir -p /out \
    && cp "$(swift build -c release --show-bin-path)/feedback-hub" "$(swift build -c release --show-bin-path)/feedback-agent" /out/

FROM swift:6.3-bookworm-slim AS run
RUN apt-get update \
    && apt-get install -y --no-install-recommends libzstd1 libsqlite3-0 curl ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --create-home --home-dir /var/lib/feedbackmesh feedbackmesh
COPY --from=build /out/feedback-hub /out/feedback-agent /usr/local/bin/
COPY docker/hub-entrypoint.sh docker/agent-entrypoint.sh /usr/local/bin/
USER 10001
WORKDIR /var/lib/feedbackmesh
# 7443: the protocol (TLS); 7080: hub operations (metrics, health, alert API); 8088: agent HTTP intake.
EXPOSE 7443 7080 8088
ENTRYPOINT ["/usr/local/bin/hub-entrypoint.sh"]
