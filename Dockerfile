# syntax=docker/dockerfile:1.7
#
# The Aurora node image: one `aurora` binary on distroless (glibc, CA certificates,
# no shell, no package manager), running as the distroless `nonroot` user (65532).
# docs/operations.md "Container image" explains every line; CI lints this file with
# hadolint and gateway/tests/image.rs starts target/debug/aurora with exactly the
# ENV, ENTRYPOINT and CMD of the final stage and checks its health, readiness and
# listening ports against HEALTHCHECK and EXPOSE.
#
#   docker build -t aurora .
#   docker run --rm -p 8080:8080 -v aurora-data:/var/lib/aurora aurora

# ---- builder: the release binary, stripped --------------------------------------
# Debian 13 (trixie) like the runtime, so the binary links against the same glibc.
FROM rust:1.95-slim-trixie AS builder
WORKDIR /src
COPY . .
# debug = 1 in [profile.release] is for profiling on a workstation; the image ships
# a stripped binary.
ENV CARGO_PROFILE_RELEASE_DEBUG=0 \
    CARGO_PROFILE_RELEASE_STRIP=symbols
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p aurora-gateway --bin aurora \
    && install -D -m 0755 target/release/aurora /out/aurora \
    && install -d -m 0700 /out/data

# ---- runtime -------------------------------------------------------------------------
FROM gcr.io/distroless/cc-debian13:nonroot
COPY --from=builder /out/aurora /usr/local/bin/aurora
# The data directory (node.db, node.key, admin_token, usage.db): owned by the user
# the node runs as, owner-only like the node creates it.
COPY --from=builder --chown=65532:65532 --chmod=0700 /out/data /var/lib/aurora
USER 65532:65532
ENV RUST_LOG=info
VOLUME ["/var/lib/aurora"]
# 8080/tcp: the OpenAI API, admin API, /health, /metrics. 7946/udp: cluster gossip
# and anti-entropy over QUIC (listened on only with CLUSTER_ENABLED=true).
EXPOSE 8080/tcp 7946/udp
# SIGTERM: not ready at once, drain (--drain-timeout-secs), leave the cluster, exit 0.
STOPSIGNAL SIGTERM
# Alive, not ready: a standby of active_passive answers 503 on /health/ready and
# must not be restarted for it.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/aurora", "health", "--url", "http://127.0.0.1:8080/health"]
ENTRYPOINT ["/usr/local/bin/aurora"]
CMD ["serve", "--listen", "0.0.0.0:8080", "--data-dir", "/var/lib/aurora", "--log-format", "json"]
