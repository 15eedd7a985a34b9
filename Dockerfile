# Switchboard node image: `make image` builds it (deploy/container/image.sh: podman, or docker).
#
# Built and installed by the same scripts a developer and CI run (deploy/deps.sh, make build).
# The runtime stage is Debian bookworm-slim with only the node's shared libraries: the node runs
# as an unprivileged numeric user, writes nothing but stderr (so a read-only root filesystem and
# no capabilities at all suit it), and answers its HEALTHCHECK itself (`switchboard healthcheck`
# asks its /healthz: no curl in the image). Options are SWITCHBOARD_* variables or arguments:
#
#   podman run --rm -p 8080:8080 --read-only --cap-drop=ALL switchboard:dev
#   podman run ... switchboard:dev --redis redis://redis:6379 --log-level debug
#
# SIGTERM closes every WebSocket with 1001 and exits 0; give it time (--stop-timeout 30).
ARG BASE_IMAGE=docker.io/library/debian:bookworm-slim

FROM ${BASE_IMAGE} AS build
WORKDIR /src
# Build dependencies first: this layer stays cached until deps.sh changes.
COPY deploy/deps.sh deploy/deps.sh
RUN bash deploy/deps.sh build && rm -rf /var/lib/apt/lists/*
COPY CMakeLists.txt Makefile ./
COPY proto proto
COPY node node
COPY www www
# The load generator (bench/) is part of the build; it is not installed in the image.
COPY bench bench
RUN make build && DESTDIR=/out cmake --install build --prefix /usr/local --strip

FROM ${BASE_IMAGE}
COPY deploy/deps.sh /tmp/deps.sh
RUN bash /tmp/deps.sh runtime \
    && rm -rf /tmp/deps.sh /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old \
        /var/lib/dpkg/*-old /var/log/apt /var/log/dpkg.log /var/log/alternatives.log
# /usr/local/bin/switchboard and /usr/local/share/switchboard/www (found by --www auto).
COPY --from=build /out/ /
LABEL org.opencontainers.image.title="switchboard" \
      org.opencontainers.image.description="Switchboard: a WebRTC signaling node (WebSocket relay, rooms, Redis clustering)"
USER 10001:10001
EXPOSE 8080
ENV SWITCHBOARD_LISTEN=0.0.0.0:8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/switchboard", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/switchboard"]
