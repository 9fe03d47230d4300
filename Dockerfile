# Multi-stage: a Rust builder compiles exactly what `make build` compiles;
# a slim Debian runtime holds the three binaries and runs them as non-root.
ARG RUST_IMAGE=rust:1-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS builder
WORKDIR /src
COPY . .
RUN cargo build --release --locked --workspace --bins

FROM ${RUNTIME_IMAGE}
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin harbour \
    && mkdir -p /data /meta \
    && chown harbour:harbour /data /meta
COPY --from=builder /src/target/release/harbour-naming /src/target/release/harbour-storage /src/target/release/harbour /usr/local/bin/
USER harbour
ENV DATA_DIR=/data META_DIR=/meta
VOLUME ["/data", "/meta"]
EXPOSE 8000 8001 8002
CMD ["harbour-naming"]
