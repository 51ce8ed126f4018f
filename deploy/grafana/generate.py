#!/usr/bin/python3
"""Writes the Grafana dashboards of deploy/grafana/ (one per service, one for the pipelines) and
deploy/grafana/PANELS.md (every panel and its queries, for reading without Grafana).

    deploy/grafana/generate.py          rewrite the files
    deploy/grafana/generate.py --check  exit 1 when a committed file differs from what this writes

The panels are written here once, as data, so the four dashboards share one layout and one way
of asking each question; the JSON files are what Grafana imports (Dashboards -> Import, or a
provisioning folder). Every query filters on `job`: scrape each instance's /metrics with job = the
service's name (deploy/prometheus/scrape.yml does that on Kubernetes). Figures of a queue, of the
events' stream and the counts of tenants per ERP sync state describe shared state (Redis,
PostgreSQL) and are the same from every sync instance, so they aggregate with max(), not sum().
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
    sel = 'job="%s",upstream="customers"' % job
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


def erp_panels():
    sel = 'job="sync"'
    q = 'job="sync",queue="erp-sync"'
    return ("ERP synchronisation", [
        p("ERP jobs per second by outcome",
          ['sum by (outcome) (rate(erp_jobs_total{%s}[%s]))' % (sel, RI)], "ops",
          "completed; failed (retried later); dead (dead-lettered: alert ErpTenantsFailing); deferred (put back "
          "without spending an attempt, see the deferrals panel); skipped (tenant inactive or deleted).", "{{outcome}}"),
        p("Tenants by sync state",
          ['max by (state) (erp_tenants{%s})' % sel], "short",
          "The status API's state of every tenant, counted every ERP_TENANTS_SAMPLE_MS. failing and auth_failed "
          "fire ErpTenantsFailing; GET /api/tenants/{id}/status says which kind and why.", "{{state}}"),
        p("Records per second: fetched, upserted, unchanged, invalid",
          ['sum by (op) (rate(erp_records_total{%s}[%s]))' % (sel, RI)], "ops",
          "Read from the ERPs and written: unchanged records are not rewritten; invalid ones are skipped.", "{{op}}"),
        p("Deferrals per second by reason (lock contention, rate limit, 429)",
          ['sum by (reason) (rate(erp_job_deferrals_total{%s}[%s]))' % (sel, RI)], "ops",
          "locked: the tenant's lock was held by another job; rate_limited: ERP_SYNC_RATE_MAX was full; "
          "throttled: the tenant's ERP asked to wait (429); unavailable: PostgreSQL or Redis failed.", "{{reason}}"),
        p("ERP calls per second by outcome",
          ['sum by (outcome) (rate(http_client_requests_total{%s,upstream="erp"}[%s]))' % (sel, RI)], "ops",
          "Page requests to the tenants' ERPs (rate_limited: 429; breaker_open: refused at once; refused: the "
          "SSRF check).", "{{outcome}}"),
        p("Per-ERP circuit breakers by state",
          ['sum by (state) (erp_breakers{%s})' % sel], "short",
          "Each instance keeps one breaker per tenant's ERP (ERP_BREAKER_FAILURES, ERP_BREAKER_OPEN_MS), summed "
          "over the instances; open: that ERP's jobs fail at once and are retried later.", "{{state}}"),
        p("erp-sync queue depth by state",
          ['max by (state) (queue_jobs{%s})' % q], "short",
          "waiting and active jobs; delayed: a slot's jitter, a retry or a deferral; dead: dead letters "
          "(GET /admin/queues).", "{{state}}", stack=True),
        p("erp-sync queue lag: age of the oldest job",
          ['max(queue_oldest_job_age_seconds{%s})' % q], "s",
          "A job waiting for a worker or running for long (alert ErpSyncQueueLagHigh above 30 min).", "lag"),
        p("Slots fired and jobs enqueued",
          ['sum by (event) (increase(erp_schedule_total{%s}[1h]))' % sel], "short",
          "Over the last hour: cron slots this platform fired (once across instances) and the jobs they and the "
          "manual triggers enqueued.", "{{event}}"),
    ])


def events_panels():
    sel = 'job="sync"'
    return ("Event ingestion", [
        p("Events accepted per second by type",
          ['sum by (type) (rate(events_accepted_total{%s}[%s]))' % (sel, RI)], "ops",
          "In the Redis stream before the 202.", "{{type}}", stack=True),
        p("Events rejected per second by type and reason",
          ['sum by (type, reason) (rate(events_rejected_total{%s}[%s]))' % (sel, RI)], "ops",
          "invalid (400), forbidden (403), rate_limited (429), unavailable (503: backpressure or Redis down).",
          "{{type}} {{reason}}"),
        p("Events written per second by type, and duplicates",
          [('sum by (type) (rate(events_written_total{%s}[%s]))' % (sel, RI), "{{type}}"),
           ('sum(rate(events_duplicates_total{%s}[%s]))' % (sel, RI), "duplicates")],
          "ops", "Stored by the consumers; duplicates were stored already (a redelivery) and not written again."),
        p("Batches written per second by trigger",
          ['sum by (trigger) (rate(events_batches_total{%s}[%s]))' % (sel, RI)], "ops",
          "size: EVENTS_BATCH_MAX reached; time: EVENTS_FLUSH_MS after the first event; stop: shutdown. None while "
          "events are accepted fires EventsNotWritten.", "{{trigger}}"),
        p("Batch size: p50, p95, p99",
          [('histogram_quantile(%s, sum by (le) (rate(events_batch_size_bucket{%s}[%s])))' % (qq, sel, RI), "p%s" % n)
           for qq, n in (("0.5", "50"), ("0.95", "95"), ("0.99", "99"))],
          "short", "Events per written batch."),
        p("Batch write latency: p50, p95, p99",
          [('histogram_quantile(%s, sum by (le) (rate(events_batch_write_seconds_bucket{%s}[%s])))' % (qq, sel, RI), "p%s" % n)
           for qq, n in (("0.5", "50"), ("0.95", "95"), ("0.99", "99"))],
          "s", "Time to store a batch, all its writes."),
        p("Accepted to committed: p50, p99",
          [('histogram_quantile(%s, sum by (le) (rate(events_commit_latency_seconds_bucket{%s}[%s])))' % (qq, sel, RI), "p%s" % n)
           for qq, n in (("0.5", "50"), ("0.99", "99"))],
          "s", "Per event, from its 202 to its batch's COMMIT."),
        p("Stream lag: age of the oldest event not written",
          ['max(events_queue_lag_seconds{%s})' % sel], "s",
          "Sampled by every instance from the one stream (alert EventsNotWritten above 60 s).", "lag"),
        p("Stream depth: events accepted, not yet written",
          ['max(events_queue_depth{%s})' % sel], "short",
          "At EVENTS_QUEUE_HIGH_WATER new events are refused with 503.", "depth"),
        p("Backpressure: events refused with 503",
          [('sum(rate(events_rejected_total{%s,reason="unavailable"}[%s]))' % (sel, RI), "refused/s"),
           ('max(events_backpressure{%s})' % sel, "over a high-water mark (1)")],
          "short", "Over a high-water mark (stream depth or Redis memory) every new event gets 503 "
                   "events_backlogged (alert EventsBackpressure); refused/s also counts Redis being down."),
        p("Redis used memory",
          ['max(events_redis_used_memory_bytes{%s})' % sel], "bytes",
          "Sampled by the events' maintenance; at EVENTS_REDIS_MEMORY_HIGH_WATER (by default 90 % of Redis's "
          "maxmemory) new events are refused with 503.", "used_memory"),
        p("Dead letters by type",
          ['sum by (type) (increase(events_dead_letters_total{%s}[1h]))' % sel], "short",
          "Over the last hour (alert EventsDeadLettersGrowing); GET /api/events/dead says why, replay after the fix.",
          "{{type}}"),
        p("Append pipelines: round trips and requests per trip",
          [('sum(rate(events_append_round_trips_total{%s}[%s]))' % (sel, RI), "round trips/s"),
           ('sum(rate(events_append_requests_total{%s}[%s])) / sum(rate(events_append_round_trips_total{%s}[%s]))'
            % (sel, RI, sel, RI), "requests per trip")],
          "short", "Requests arriving together share one Redis round trip (EVENTS_APPEND_BATCH_MAX, "
                   "EVENTS_APPEND_LEADERS)."),
        p("Write troubles per second",
          [('sum(rate(events_write_retries_total{%s}[%s]))' % (sel, RI), "retries"),
           ('sum(rate(events_batch_splits_total{%s}[%s]))' % (sel, RI), "splits"),
           ('sum(rate(events_write_waits_total{%s}[%s]))' % (sel, RI), "waits for PostgreSQL"),
           ('sum(rate(events_ack_failures_total{%s}[%s]))' % (sel, RI), "ack failures"),
           ('sum(rate(events_malformed_entries_total{%s}[%s]))' % (sel, RI), "malformed entries")],
          "ops", "Retries and splits isolate events PostgreSQL refuses; waits: PostgreSQL away."),
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
            p("Cache hit ratio",
              ['sum by (cache) (rate(cache_requests_total{job="transactions",result="hit"}[%s])) / sum by (cache) (rate(cache_requests_total{job="transactions"}[%s]))' % (RI, RI)],
              "percentunit", "user_exists: the user check before a posting; tx_list: the newest page of GET /api/transactions.",
              "{{cache}}"),
        ]),
        client_panels("transactions"),
    ]),
    "sync": ("sync-service", "platform-sync", http_panels("sync") + [
        client_panels("sync"),
        queue_panels("sync"),
    ]),
    "pipelines": ("Pipelines: legacy import, ERP sync, events, queues", "platform-pipelines", [
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
        erp_panels(),
        events_panels(),
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
