# One Dockerfile for the four services; the build argument SERVICE picks the binary:
#
#   docker build --build-arg SERVICE=user-service -t rust-event-platform/user-service:local .
#
# SERVICE is one of api-gateway, user-service, order-service, payment-service
# (anything else fails at the final FROM with "runtime-<name>: not found").
# infra/docker-compose.yml builds all four from here.
#
# Stages:
#   chef     Rust toolchain + C toolchain + cargo-chef
#   planner  reduces the workspace to recipe.json (manifests and lock file only)
#   cacher   builds every dependency of the workspace from recipe.json; this layer is
#            reused as long as Cargo.toml/Cargo.lock do not change, and it is the same
#            layer for all four services (nothing before it depends on SERVICE)
#   builder  copies the sources and builds `--release --bin $SERVICE`
#   runtime  debian:bookworm-slim, libssl3, ca-certificates and curl (for HEALTHCHECK), non-root
#
# Notes:
# - rdkafka builds librdkafka from source with its configure/make build (no cmake):
#   the builder needs gcc, g++, make and pkg-config. With rdkafka's `ssl` feature
#   (SASL/SCRAM and TLS to the brokers) librdkafka links the system OpenSSL
#   dynamically, found through pkg-config: libssl-dev in the builder, libssl3 in the
#   runtime image. zlib is built by libz-sys from its bundled sources when zlib1g-dev is
#   absent. So beyond glibc the binary needs OpenSSL 3 (libssl.so.3, libcrypto.so.3):
#   `ldd /usr/local/bin/service` in the image lists what it loads.
# - SASL_SSL verifies the brokers' certificates against the OpenSSL default CA store,
#   which ca-certificates fills (OpenSSL also honours SSL_CERT_FILE / SSL_CERT_DIR).
# - sqlx runs its queries at run time (sqlx::query, no query! macros), so no
#   database and no SQLX_OFFLINE / .sqlx data are needed at build time. The
#   migrations are embedded by sqlx::migrate!("./migrations") from the sources copied
#   into the builder.
# - The runtime image is debian:bookworm-slim rather than distroless/cc so that the
#   image carries a HEALTHCHECK (curl); the glibc matches the bookworm builder.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm
# Global, so that it can choose the final stage below.
ARG SERVICE

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS chef
ARG CARGO_CHEF_VERSION=0.1.77
# Unpinned apt packages: the toolchain follows bookworm's security updates.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc g++ make pkg-config libssl-dev \
 && rm -rf /var/lib/apt/lists/*
RUN cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}" \
 && rm -rf "${CARGO_HOME}/registry"
WORKDIR /app

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS cacher
COPY --from=planner /app/recipe.json recipe.json
# The whole workspace's dependencies, not one binary's: the four images share this layer.
RUN cargo chef cook --release --locked --recipe-path recipe.json

FROM cacher AS builder
ARG SERVICE
RUN test -n "${SERVICE}" || { echo "build with --build-arg SERVICE=<api-gateway|user-service|order-service|payment-service>" >&2; exit 1; }
COPY . .
RUN cargo build --release --locked --bin "${SERVICE}" \
 && install -D -m 0755 "target/release/${SERVICE}" /out/service

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# libssl3: the OpenSSL librdkafka links (bookworm's; the builder's libssl-dev is the same release).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin app
# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
# The services bind 127.0.0.1 by default; in a container they listen on every interface.
ENV HOST=0.0.0.0
# Liveness only: the process answers. Readiness (database, broker, consumer group)
# is what compose's depends_on and Kubernetes' readinessProbe wait for.
# Shell form on purpose: ${PORT} is expanded when the check runs.
# hadolint ignore=DL3025
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD curl -fsS -o /dev/null "http://127.0.0.1:${ADMIN_PORT:-${PORT}}/health/live" || exit 1

# One small stage per service with its port: the services' own default PORT
# (see <service>/src/configuration.rs), set explicitly so HEALTHCHECK knows it.
FROM runtime AS runtime-api-gateway
ENV PORT=3005
# Health and metrics on a port of their own, reachable by probes and Prometheus; publish
# only 3005 to clients.
ENV ADMIN_PORT=9305 ADMIN_HOST=0.0.0.0
EXPOSE 3005 9305

FROM runtime AS runtime-user-service
ENV PORT=3001
EXPOSE 3001

FROM runtime AS runtime-order-service
ENV PORT=3002
EXPOSE 3002

FROM runtime AS runtime-payment-service
ENV PORT=3003
EXPOSE 3003

# A stage of this file (above), not an image: hadolint cannot tell.
# hadolint ignore=DL3006
FROM runtime-${SERVICE}
ARG SERVICE
LABEL org.opencontainers.image.title="${SERVICE}" \
      org.opencontainers.image.description="rust-event-platform ${SERVICE}" \
      org.opencontainers.image.licenses="MIT"
COPY --from=builder /out/service /usr/local/bin/service
ENTRYPOINT ["/usr/local/bin/service"]
