#!/usr/bin/python3
"""Writes the Grafana dashboards of deploy/grafana/ (one per service, one for the pipelines) and
deploy/grafana/PANELS.md (every panel and its queries, for reading without Grafana).

    deploy/grafana/generate.py          rewrite the files
    deploy/grafana/generate.py --check  exit 1 when a committed file differs from what this writes

The panels are written here once, as data, so the four dashboards share one layout and one way
of asking each question; the JSON files are what Grafana imports (Dashboards -> Import, or a
provisioning folder). Every query filters on `job`: scrape each instance's /metrics with job = the
service's name (deploy/prometheus/scrape.yml does that on Kubernetes). Figures of a queue come
from Redis and are the same from every sync instance, so they aggregate with max(), not sum().
tests/e2e/test_observability.py checks every metric and label named here against the /metrics of
a running stack; tests/static/run runs --check.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RI = "$__rate_interval"


def p(title, exprs, unit="short", desc="", legend=None, stack=False):
    """A time-series panel: exprs is a list of (expr, legend) or of exprs."""
    targets = []
    for i, e in enumerate(exprs):
        expr, leg = e if isinstance(e, tuple) else (e, legend or "")
        targets.append({"refId": chr(ord("A") + i), "expr": expr, "legendFormat": leg,
                        "datasource": {"type": "prometheus", "uid": "${datasource}"}})
    return {"title": title, "description": desc, "unit": unit, "targets": targets, "stack": stack}


def http_panels(job):
    sel = 'job="%s"' % job
    return [
        ("Traffic", [
            p("Requests per second by route",
              ['sum by (route) (rate(http_requests_total{%s}[%s]))' % (sel, RI)], "reqps",
              "All answered requests, per route template (ids never become labels).", "{{route}}"),
            p("Errors: share of 5xx and 4xx",
              [('sum(rate(http_requests_total{%s,status=~"5.."}[%s])) / sum(rate(http_requests_total{%s}[%s]))' % (sel, RI, sel, RI), "5xx"),
               ('sum(rate(http_requests_total{%s,status=~"4.."}[%s])) / sum(rate(http_requests_total{%s}[%s]))' % (sel, RI, sel, RI), "4xx")],
              "percentunit", "5xx is the service failing (alert HighErrorRate above 5 %); 4xx is clients' mistakes."),
            p("5xx per second by route and status",
              ['sum by (route, status) (rate(http_requests_total{%s,status=~"5.."}[%s]))' % (sel, RI)], "reqps",
              "Which route fails, and how (503: a dependency or a pool; 504: a statement timeout).", "{{route}} {{status}}"),
            p("Requests in flight",
              ['sum by (instance) (http_inflight_requests{%s})' % sel], "short",
              "Requests inside a handler right now, per instance.", "{{instance}}"),
        ]),
        ("Latency", [
            p("p50 latency by route",
              ['histogram_quantile(0.5, sum by (le, route) (rate(http_request_duration_seconds_bucket{%s}[%s])))' % (sel, RI)],
              "s", "Median request duration inside the service.", "{{route}}"),
            p("p95 latency by route",
              ['histogram_quantile(0.95, sum by (le, route) (rate(http_request_duration_seconds_bucket{%s}[%s])))' % (sel, RI)],
              "s", "Alert HighLatencyP95 fires above 1 s for the whole service.", "{{route}}"),
            p("p99 latency by route",
              ['histogram_quantile(0.99, sum by (le, route) (rate(http_request_duration_seconds_bucket{%s}[%s])))' % (sel, RI)],
              "s", "", "{{route}}"),
            p("Mean latency by route",
              ['sum by (route) (rate(http_request_duration_seconds_sum{%s}[%s])) / sum by (route) (rate(http_request_duration_seconds_count{%s}[%s]))' % (sel, RI, sel, RI)],
              "s", "", "{{route}}"),
        ]),
        ("Pools and process", [
            p("PostgreSQL pool: in use / max, waiting",
              [('sum by (instance) (db_pool_connections{%s,state="in_use"}) / sum by (instance) (db_pool_connections{%s,state="max"})' % (sel, sel), "in use / max {{instance}}"),
               ('sum by (instance) (db_pool_connections{%s,state="waiting"})' % sel, "waiting {{instance}}")],
              "short", "Saturation of the PostgreSQL pool (DB_POOL_SIZE); waiting > 0 means handlers queue for a connection."),
            p("Redis pool: in use / max, waiting",
              [('sum by (instance) (redis_pool_connections{%s,state="in_use"}) / sum by (instance) (redis_pool_connections{%s,state="max"})' % (sel, sel), "in use / max {{instance}}"),
               ('sum by (instance) (redis_pool_connections{%s,state="waiting"})' % sel, "waiting {{instance}}")],
              "short", ""),
            p("Pool timeouts and reconnects per second",
              [('sum(rate(db_pool_timeouts_total{%s}[%s]))' % (sel, RI), "PostgreSQL timeouts"),
               ('sum(rate(redis_pool_timeouts_total{%s}[%s]))' % (sel, RI), "Redis timeouts"),
               ('sum(rate(db_pool_reconnects_total{%s}[%s]))' % (sel, RI), "PostgreSQL reconnects"),
               ('sum(rate(redis_pool_reconnects_total{%s}[%s]))' % (sel, RI), "Redis reconnects")],
              "ops", "A timeout is a 503 answered because no connection was free in time."),
            p("Resident memory",
              ['process_resident_memory_bytes{%s}' % sel], "bytes",
              "Per instance; compare with the Deployment's memory limit (deploy/k8s).", "{{instance}}"),
        ]),
    ]


def client_panels(job):
    sel = 'job="%s"' % job
    return ("Calls to customers-service", [
        p("Circuit breaker state",
          ['max by (instance, upstream) (circuit_breaker_state{%s})' % sel], "short",
          "0 closed, 1 half-open, 2 open (calls refused at once with 503).", "{{upstream}} {{instance}}"),
        p("Upstream calls per second by outcome",
          ['sum by (upstream, outcome) (rate(http_client_requests_total{%s}[%s]))' % (sel, RI)], "ops",
          "", "{{upstream}} {{outcome}}"),
        p("Retries per second",
          ['sum by (upstream) (rate(http_client_retries_total{%s}[%s]))' % (sel, RI)], "ops", "", "{{upstream}}"),
    ])


def queue_panels(job):
    sel = 'job="%s"' % job
    return ("Queues", [
        p("Queue depth by state",
          ['max by (queue, state) (queue_jobs{%s,state=~"waiting|active|delayed"})' % sel], "short",
          "Jobs waiting, being run and waiting for a retry (the queue's figures in Redis).", "{{queue}} {{state}}", stack=True),
        p("Queue lag: age of the oldest job",
          ['max by (queue) (queue_oldest_job_age_seconds{%s})' % sel], "s",
          "How long the oldest job has been in the stream (alert QueueLagHigh).", "{{queue}}"),
        p("Dead letters",
          ['max by (queue) (queue_jobs{%s,state="dead"})' % sel], "short",
          "Jobs given up after their last attempt (alert DeadLettersGrowing); GET /admin/queues lists them.", "{{queue}}"),
        p("Jobs finished per second by result",
          ['max by (queue, result) (rate(queue_jobs_processed_total{%s}[%s]))' % (sel, RI)], "ops",
          "completed, retried, failed (dead-lettered), reclaimed (a worker died).", "{{queue}} {{result}}"),
    ])


DASHBOARDS = {
    "customers": ("customers-service", "platform-customers", http_panels("customers") + [
        ("Identity", [
            p("Logins per second by result",
              ['sum by (result) (rate(logins_total{job="customers"}[%s]))' % RI], "ops",
              "Failures climbing with one client address is brute force (the guard answers 429).", "{{result}}"),
            p("User cache hit ratio",
              ['sum by (cache) (rate(cache_requests_total{job="customers",result="hit"}[%s])) / sum by (cache) (rate(cache_requests_total{job="customers"}[%s]))' % (RI, RI)],
              "percentunit", "", "{{cache}}"),
        ]),
    ]),
    "transactions": ("transactions-service", "platform-transactions", http_panels("transactions") + [
        ("Ledger", [
            p("Transactions created per second by type",
              ['sum by (type) (rate(transactions_created_total{job="transactions"}[%s]))' % RI], "ops", "", "{{type}}"),
            p("Refusals and idempotency per second",
              [('sum by (reason) (rate(transactions_refused_total{job="transactions"}[%s]))' % RI, "refused: {{reason}}"),
               ('sum by (result) (rate(idempotency_requests_total{job="transactions"}[%s]))' % RI, "idempotency: {{result}}")],
              "ops", "customers_unavailable means the breaker towards customers-service is open."),
            p("Posting batches: mean size",
              ['sum(rate(transactions_post_batched_total{job="transactions"}[%s])) / sum(rate(transactions_post_batches_total{job="transactions"}[%s]))' % (RI, RI)],
              "short", "Deposits and withdrawals combined into one statement and commit.", "postings per batch"),
            p("User-existence cache hit ratio",
              ['sum(rate(cache_requests_total{job="transactions",result="hit"}[%s])) / sum(rate(cache_requests_total{job="transactions"}[%s]))' % (RI, RI)],
              "percentunit", "", "hit ratio"),
        ]),
        client_panels("transactions"),
    ]),
    "sync": ("sync-service", "platform-sync", http_panels("sync") + [
        client_panels("sync"),
        queue_panels("sync"),
    ]),
    "pipelines": ("Pipelines: legacy import, queues", "platform-pipelines", [
        ("Legacy import", [
            p("Records per second by outcome",
              ['sum by (outcome) (rate(sync_records_total{job="sync"}[%s]))' % RI], "ops",
              "Records read from the legacy stream: valid, invalid, duplicate.", "{{outcome}}"),
            p("Batches per second by event",
              ['sum by (event) (rate(sync_batches_total{job="sync"}[%s]))' % RI], "ops",
              "enqueued by the reader, done/retried/failed by the workers (bulk upserts).", "{{event}}"),
            p("Runs and stream attempts",
              [('sum by (event) (increase(sync_runs_total{job="sync"}[1h]))', "runs {{event}}"),
               ('sum by (result) (increase(sync_stream_attempts_total{job="sync"}[1h]))', "attempts {{result}}")],
              "short", "Over the last hour."),
        ]),
        queue_panels("sync"),
    ]),
}


def dashboard(key):
    title, uid, rows = DASHBOARDS[key]
    panels, y, pid = [], 0, 1
    for row_title, row in rows:
        panels.append({"id": pid, "type": "row", "title": row_title, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        pid += 1
        y += 1
        for i, spec in enumerate(row):
            panels.append({
                "id": pid, "type": "timeseries", "title": spec["title"], "description": spec["description"],
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": y + 8 * (i // 2)},
                "fieldConfig": {"defaults": {"unit": spec["unit"],
                                             "custom": {"stacking": {"mode": "normal" if spec["stack"] else "none"}}},
                                "overrides": []},
                "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
                "targets": spec["targets"],
            })
            pid += 1
        y += 8 * ((len(row) + 1) // 2)
    return {
        "title": "Platform / " + title, "uid": uid, "tags": ["platform"], "editable": True,
        "schemaVersion": 39, "version": 1, "time": {"from": "now-1h", "to": "now"}, "refresh": "30s",
        "timezone": "utc", "graphTooltip": 1,
        "templating": {"list": [{"name": "datasource", "label": "Prometheus", "type": "datasource",
                                 "query": "prometheus", "current": {}, "hide": 0}]},
        "annotations": {"list": []}, "links": [], "panels": panels,
    }


def panels_md():
    out = ["# Dashboard panels", "",
           "Written by `deploy/grafana/generate.py` with the dashboards beside it: every panel of every",
           "dashboard and its PromQL, for reading and reviewing without Grafana.", ""]
    for key in DASHBOARDS:
        title, uid, rows = DASHBOARDS[key]
        out += ["## %s (`%s.json`, uid `%s`)" % (title, key, uid), ""]
        for row_title, row in rows:
            out += ["### %s" % row_title, "", "| Panel | Unit | Query |", "|---|---|---|"]
            for spec in row:
                q = "<br>".join("`%s`" % t["expr"].replace("|", "\\|") for t in spec["targets"])
                out.append("| %s | %s | %s |" % (spec["title"], spec["unit"], q))
            out.append("")
    return "\n".join(out)


def files():
    f = {os.path.join(HERE, k + ".json"): json.dumps(dashboard(k), indent=2) + "\n" for k in DASHBOARDS}
    f[os.path.join(HERE, "PANELS.md")] = panels_md()
    return f


def main(argv):
    check = "--check" in argv
    stale = []
    for path, text in files().items():
        if check:
            try:
                same = open(path, encoding="utf-8").read() == text
            except FileNotFoundError:
                same = False
            if not same:
                stale.append(os.path.relpath(path))
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
    if stale:
        print("out of date (run deploy/grafana/generate.py): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
