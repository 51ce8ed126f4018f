# ERP simulator image (tools/erp-api), for development and test deployments only: it stands in
# for the tenants' ERPs sync-service synchronises from. Build from the repository root:
#   docker build -f deploy/erp-api.Dockerfile -t platform/erp-api .
# Same two-stage layout as the service images; the binary links the same libraries (the Makefile
# links every binary against the shared library and its dependencies, a simulator also against
# tools/simlib). Global fault knobs:
# ERP_SIM_* variables (tools/erp-api/README.md), e.g. ERP_SIM_LATENCY_MS, ERP_SIM_ERROR_RATE;
# tenants are created through its control API (PUT /_sim/tenants/{tenant}).
FROM debian:bookworm-slim AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential pkg-config libulfius-dev libmicrohttpd-dev libjansson-dev \
      libpq-dev libhiredis-dev libssl-dev libcurl4-gnutls-dev libargon2-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY shared/ shared/
COPY tools/erp-api/ tools/erp-api/
COPY tools/simlib/ tools/simlib/
RUN make -j2 build/erp-api && strip --strip-debug build/erp-api

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libulfius2.7 libmicrohttpd12 libjansson4 libpq5 libhiredis0.14 libcurl3-gnutls \
      libargon2-1 libssl3 curl ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin app
WORKDIR /app
COPY --from=builder /src/build/erp-api /app/erp-api
ENV PORT=8000 \
    BIND=0.0.0.0
USER app
EXPOSE 8000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD curl -fsS -o /dev/null "http://127.0.0.1:${PORT}/health" || exit 1
ENTRYPOINT ["/app/erp-api"]
