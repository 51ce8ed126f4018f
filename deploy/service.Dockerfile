# Image of one platform service, chosen by the build argument SERVICE (customers, transactions
# or sync). Build from the repository root (the context needs Makefile + shared/):
#   docker build -f deploy/service.Dockerfile --build-arg SERVICE=customers -t platform/customers-service .
#
# Two stages on debian:bookworm-slim: the builder has the -dev packages and compiles with the
# project's own Makefile (same flags as CI); the runtime stage has only the shared libraries the
# binary links (libcurl in its gnutls flavour, as libulfius requires), curl for the HEALTHCHECK,
# and runs as an unprivileged user. Migrations ship in the image because the service applies its
# own schema at start (MIGRATIONS_DIR, relative to the working directory /app).
FROM debian:bookworm-slim AS builder
ARG SERVICE
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential pkg-config libulfius-dev libmicrohttpd-dev libjansson-dev \
      libpq-dev libhiredis-dev libssl-dev libcurl4-gnutls-dev libargon2-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY shared/ shared/
COPY ${SERVICE}-service/ ${SERVICE}-service/
RUN test -n "$SERVICE" && make -j2 "build/${SERVICE}-service" && strip --strip-debug "build/${SERVICE}-service" \
 && mkdir -p "${SERVICE}-service/web"

FROM debian:bookworm-slim
ARG SERVICE
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libulfius2.7 libmicrohttpd12 libjansson4 libpq5 libhiredis0.14 libcurl3-gnutls \
      libargon2-1 libssl3 curl ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin app
WORKDIR /app
COPY --from=builder /src/build/${SERVICE}-service /app/service
COPY db/${SERVICE}/ /app/db/${SERVICE}/
# the operator dashboard's files (sync-service; an empty folder for the others)
COPY --from=builder /src/${SERVICE}-service/web/ /app/${SERVICE}-service/web/
ENV HTTP_PORT=8000 \
    MIGRATIONS_DIR=db/${SERVICE}
USER app
EXPOSE 8000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD curl -fsS -o /dev/null "http://127.0.0.1:${HTTP_PORT}/health/ready" || exit 1
ENTRYPOINT ["/app/service"]
