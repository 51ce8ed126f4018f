# Legacy API simulator image (tools/legacy-api), for development and test deployments only: it
# stands in for the legacy user system sync-service imports from. Build from the repository root:
#   docker build -f deploy/legacy-api.Dockerfile -t platform/legacy-api .
# Same two-stage layout as the service images; the binary links the same libraries (the Makefile
# links every binary against the shared library and its dependencies, a simulator also against
# tools/simlib). Fault knobs: LEGACY_*
# variables (tools/legacy-api/src/knobs.c), e.g. LEGACY_COUNT, LEGACY_SEED, LEGACY_FAIL_RATE.
FROM debian:bookworm-slim AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential pkg-config libulfius-dev libmicrohttpd-dev libjansson-dev \
      libpq-dev libhiredis-dev libssl-dev libcurl4-gnutls-dev libargon2-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY shared/ shared/
COPY tools/legacy-api/ tools/legacy-api/
COPY tools/simlib/ tools/simlib/
RUN make -j2 build/legacy-api && strip --strip-debug build/legacy-api

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libulfius2.7 libmicrohttpd12 libjansson4 libpq5 libhiredis0.14 libcurl3-gnutls \
      libargon2-1 libssl3 curl ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin app
WORKDIR /app
COPY --from=builder /src/build/legacy-api /app/legacy-api
ENV PORT=8000 \
    BIND=0.0.0.0
USER app
EXPOSE 8000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD curl -fsS -o /dev/null "http://127.0.0.1:${PORT}/health" || exit 1
ENTRYPOINT ["/app/legacy-api"]
