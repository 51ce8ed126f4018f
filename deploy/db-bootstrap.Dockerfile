# Image of the database bootstrap step (deploy/k8s migrations Job, first step): creates the
# `platform` database when absent, the three service roles and schemas (db/bootstrap.sql) with the
# passwords from the mounted secret files. Build from the repository root:
#   docker build -f deploy/db-bootstrap.Dockerfile -t platform/db-bootstrap .
# docker-compose runs the same script in the stock postgres image with bind mounts instead.
FROM postgres:15-bookworm
COPY deploy/db-bootstrap.sh /bootstrap/db-bootstrap.sh
COPY db/bootstrap.sql /bootstrap/bootstrap.sql
ENV BOOTSTRAP_SQL=/bootstrap/bootstrap.sql \
    SECRETS_DIR=/run/secrets
USER postgres
ENTRYPOINT ["sh", "/bootstrap/db-bootstrap.sh"]
