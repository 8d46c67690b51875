# syntax=docker/dockerfile:1.7
# asset-inventory: one small image with the `inventory` binary. The same image runs the API
# (Deployment, `serve`) and every collector (CronJob, `collect <source>`).
#
#   docker build -t asset-inventory .
#   docker run --read-only --tmpfs /tmp -v inv-data:/data -p 8080:8080 \
#     -e NATS_URL=nats://nats:4222 asset-inventory serve
#
# Runtime: distroless (glibc + libstdc++ for libduckdb, CA certificates), no shell, no package
# manager, user 65532. The root filesystem may be read-only: the DuckDB read model lives in /data
# (a volume) and DuckDB's temporary files in /tmp (a tmpfs or emptyDir).
# Base images are pinned by tag here; the release workflow records the resulting digest and the
# cluster pulls the image by digest only.

ARG RUST_VERSION=1.95
ARG DUCKDB_NPM=@duckdb/node-bindings-linux-x64@1.5.6-r.1

# 1. DuckDB's official prebuilt libduckdb.so (published inside an npm package), as `make` uses it.
FROM node:22-bookworm-slim AS duckdb
ARG DUCKDB_NPM
WORKDIR /duckdb
RUN npm pack --silent "${DUCKDB_NPM}" \
 && tar -xzf ./*.tgz package/libduckdb.so \
 && mv package/libduckdb.so ./libduckdb.so \
 && rm -rf package ./*.tgz

# 2. The binary and the static HEALTHCHECK probe.
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY --from=duckdb /duckdb/libduckdb.so /opt/duckdb/libduckdb.so
ENV DUCKDB_LIB_DIR=/opt/duckdb \
    LD_LIBRARY_PATH=/opt/duckdb \
    CARGO_TARGET_DIR=/src/target
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin inventory \
 && install -D -m 0755 /src/target/release/inventory /out/usr/local/bin/inventory \
 && /out/usr/local/bin/inventory --version
RUN gcc -Os -static -Wall -o /out/usr/local/bin/healthcheck deploy/healthcheck/healthcheck.c \
 && install -d -o 65532 -g 65532 -m 0750 /out/data

# 3. Runtime.
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="asset-inventory" \
      org.opencontainers.image.description="Event-sourced multi-cloud asset inventory (collect, project, serve)" \
      org.opencontainers.image.source="https://github.com/companyos/asset-inventory" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=duckdb /duckdb/libduckdb.so /opt/duckdb/libduckdb.so
COPY --from=build /out/usr/local/bin/ /usr/local/bin/
COPY --from=build --chown=65532:65532 /out/data /data
ENV LD_LIBRARY_PATH=/opt/duckdb \
    TMPDIR=/tmp \
    INVENTORY_LISTEN=0.0.0.0:8080 \
    INVENTORY_DB=/data/api.duckdb \
    INVENTORY_LOG_FORMAT=json
WORKDIR /data
VOLUME ["/data"]
USER 65532:65532
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["/usr/local/bin/healthcheck", "8080", "/healthz"]
ENTRYPOINT ["/usr/local/bin/inventory"]
CMD ["serve"]
