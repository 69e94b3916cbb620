# syntax=docker/dockerfile:1
# OnAir in a container: `docker compose up` (docker-compose.yml) runs it with PostgreSQL.
# .ci/compose runs this file's build command and its start and health-check steps on the host,
# so keep the `cargo build` line, the ENTRYPOINT/CMD and the HEALTHCHECK as they are there.

# The builder's Debian release must be the runtime's: the binary links that glibc.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# web/dist is committed, so the build needs no Node; the caches only speed up a rebuild.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p onair \
    && cp target/release/onair /usr/local/bin/onair

FROM debian:bookworm-slim
# ca-certificates for a TLS connection to a managed PostgreSQL; nothing else is needed at run
# time (the health check is the binary's own `onair healthcheck`, no curl).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 onair \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/onair --shell /usr/sbin/nologin onair \
    && mkdir -p /var/lib/onair/recordings \
    && chown -R onair:onair /var/lib/onair
COPY --from=build /usr/local/bin/onair /usr/local/bin/onair
# Numeric, so a runtime that checks for a non-root user can tell without the image's passwd.
USER 10001:10001
WORKDIR /var/lib/onair
# The embedded SQLite file (when no DATABASE_URL is given) and the replays live in the volume.
ENV ONAIR_STORAGE_DATA_DIR=/var/lib/onair \
    ONAIR_HLS_RECORDINGS_DIR=/var/lib/onair/recordings \
    ONAIR_RTMP_LISTEN=0.0.0.0:1935 \
    ONAIR_HTTP_LISTEN=0.0.0.0:8080
VOLUME ["/var/lib/onair"]
# 1936 is RTMPS, listening only once a certificate is configured.
EXPOSE 1935 1936 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["onair", "healthcheck"]
ENTRYPOINT ["onair"]
CMD ["serve"]
