# Switchboard node image: built and installed by the same scripts a developer and CI run.
FROM debian:bookworm-slim AS build
WORKDIR /src
COPY deploy/deps.sh deploy/deps.sh
RUN bash deploy/deps.sh build
COPY . .
RUN make build && cmake --install build --prefix /opt/switchboard

FROM debian:bookworm-slim
COPY deploy/deps.sh /tmp/deps.sh
RUN bash /tmp/deps.sh runtime && rm -rf /var/lib/apt/lists/* /tmp/deps.sh
COPY --from=build /opt/switchboard /opt/switchboard
USER 65534:65534
EXPOSE 8080
ENV SWITCHBOARD_LISTEN=0.0.0.0:8080
ENTRYPOINT ["/opt/switchboard/bin/switchboard"]
