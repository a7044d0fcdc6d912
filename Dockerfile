# syntax=docker/dockerfile:1
# clawbridge in a container: a static-enough release binary on a small non-root image.
#   docker build -t clawbridge .
#   docker run -d --name clawbridge -p 18790:18790 -v clawbridge:/var/lib/clawbridge \
#     -e OPENCLAW_GATEWAY_URL=ws://gateway:18789 -e OPENCLAW_TOKEN=… -e KAPSO_API_KEY=… clawbridge
# The state volume holds the SQLite store, the master key and the gateway device identity:
# keep it (or use CLAWBRIDGE_DATABASE_URL=postgres://… and CLAWBRIDGE_MASTER_KEY for replicas).

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p clawbridge --bin clawbridge \
    && cp target/release/clawbridge /usr/local/bin/clawbridge

FROM debian:bookworm-slim
# TLS roots are compiled in (webpki-roots); tzdata is not needed (KST is fixed at +09:00).
RUN useradd --system --uid 10001 --home-dir /var/lib/clawbridge clawbridge \
    && mkdir -p /var/lib/clawbridge && chown clawbridge /var/lib/clawbridge && chmod 0700 /var/lib/clawbridge
COPY --from=build /usr/local/bin/clawbridge /usr/local/bin/clawbridge
USER clawbridge
ENV CLAWBRIDGE_STATE_DIR=/var/lib/clawbridge \
    CLAWBRIDGE_LISTEN=0.0.0.0:18790 \
    CLAWBRIDGE_LOG_FORMAT=json
VOLUME ["/var/lib/clawbridge"]
EXPOSE 18790
HEALTHCHECK --interval=30s --timeout=6s --start-period=20s --retries=3 CMD ["clawbridge", "health"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["clawbridge"]
CMD ["serve"]
