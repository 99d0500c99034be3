# FeedbackMesh hub and agent. Build stage: the Swift image with the -dev libraries, release
# binaries with the static Swift standard library; run stage: Debian bookworm with the two
# libraries they link (libzstd, SQLite) and curl for health checks, the same image as
# docker/Containerfile.prebuilt makes from binaries built on the host (scripts/build-images.sh).
#
#   docker build -t feedbackmesh .
#   docker compose up        (see compose.yaml and docs/OPERATIONS.md#containers)
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
RUN swift build -c release --static-swift-stdlib --product feedback-hub \
    && swift build -c release --static-swift-stdlib --product feedback-agent \
    && mkdir -p /out \
    && strip --strip-unneeded -o /out/feedback-hub "$(swift build -c release --static-swift-stdlib --show-bin-path)/feedback-hub" \
    && strip --strip-unneeded -o /out/feedback-agent "$(swift build -c release --static-swift-stdlib --show-bin-path)/feedback-agent"

FROM debian:bookworm AS run
RUN apt-get update \
    && apt-get install -y --no-install-recommends libzstd1 libsqlite3-0 curl ca-certificates \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/feedbackmesh --no-create-home feedbackmesh \
    && install -d -o 10001 -g 10001 -m 0700 /var/lib/feedbackmesh /var/lib/feedbackmesh/hub \
        /var/lib/feedbackmesh/agent /var/lib/feedbackmesh/bootstrap /var/lib/feedbackmesh/hub-tls
# The folders above exist in the image, owned by the service user, so that the volumes
# mounted on them start out as theirs (Docker and podman copy a folder's owner into a new
# named volume; a volume on a path the image lacks belongs to root).
COPY --from=build /out/feedback-hub /out/feedback-agent /usr/local/bin/
COPY docker/hub-entrypoint.sh docker/agent-entrypoint.sh /usr/local/bin/
USER 10001
WORKDIR /var/lib/feedbackmesh
# 7443: the protocol (TLS; hubs and relays); 7080: hub operations; 8088: agent HTTP intake.
EXPOSE 7443 7080 8088
HEALTHCHECK --interval=5s --timeout=3s --retries=12 CMD ["curl", "-fsS", "http://127.0.0.1:7080/readyz"]
ENTRYPOINT ["/usr/local/bin/hub-entrypoint.sh"]
