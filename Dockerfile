# Renkei Note: build the `renkei` binary, then run it in a small image as a non-root user.
# SQLite and the PostgreSQL client library (libpq, without TLS) are compiled into the binary,
# so the runtime image needs no database libraries.

FROM rust:1-bookworm AS builder
WORKDIR /build
COPY Cargo.toml Cargo.lock ./
# Build settings (the bundled SQLite's compile options).
COPY .cargo ./.cargo
COPY src ./src
COPY migrations ./migrations
COPY api-spec ./api-spec
# The workspace's benchmark crate must be present for cargo to read the workspace; only the
# service is built.
COPY bench ./bench
RUN cargo build --release --locked -p renkei

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 renkei \
    && useradd --system --uid 10001 --gid renkei --home-dir /var/lib/renkei --shell /usr/sbin/nologin renkei \
    && mkdir -p /var/lib/renkei \
    && chown renkei:renkei /var/lib/renkei
COPY --from=builder /build/target/release/renkei /usr/local/bin/renkei
ENV RENKEI_DATA_DIR=/var/lib/renkei \
    RENKEI_BIND=0.0.0.0:8080
WORKDIR /var/lib/renkei
USER renkei
EXPOSE 8080
# No HEALTHCHECK: the image has no HTTP client. Probe GET /livez and GET /readyz from outside.
ENTRYPOINT ["/usr/local/bin/renkei"]
CMD ["serve"]
