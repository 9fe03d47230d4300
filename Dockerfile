# Multi-stage: a Rust builder compiles exactly what `make build` compiles;
# a slim Debian runtime holds the three binaries and runs them as non-root.
ARG RUST_IMAGE=rust:1-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# etcd for docker-compose.ha.yml (the metadata on etcd): Debian's own
# etcd-server, the release Harbour is tested against. First, so building
# the etcd service (`--target etcd`) builds nothing else.
FROM ${RUNTIME_IMAGE} AS etcd
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends etcd-server etcd-client \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/etcd
EXPOSE 2379 2380
CMD ["etcd"]

FROM ${RUST_IMAGE} AS builder
WORKDIR /src
COPY . .
RUN cargo build --release --locked --workspace --bins

FROM ${RUNTIME_IMAGE}
RUN useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin harbour \
    && mkdir -p /data /meta /secrets \
    && chown harbour:harbour /data /meta /secrets \
    && chmod 700 /secrets
COPY --from=builder /src/target/release/harbour-naming /src/target/release/harbour-storage /src/target/release/harbour /usr/local/bin/
USER harbour
# Overridden per service in docker-compose.yml; the naming server by default.
HEALTHCHECK --interval=5s --timeout=5s --retries=5 CMD ["harbour-naming", "--health-check"]
# Data under /data, metadata under /meta: mount a volume on each (the compose
# file names them). No VOLUME line, so no anonymous volumes pile up.
ENV DATA_DIR=/data META_DIR=/meta
EXPOSE 8000 8001 8002
CMD ["harbour-naming"]
