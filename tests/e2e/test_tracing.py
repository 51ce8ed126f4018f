"""W3C Trace Context end to end: one traceparent sent to Nginx is followed through every hop.

- A deposit of a user never checked before: Nginx -> transactions-service -> (east-west Nginx) ->
  customers-service's /internal/users/{id}. Every log line of the request (Nginx's access lines,
  both services' lines, found by the request's correlation id) carries the trace id; each service
  hop has its own span whose parent is the caller's (transactions' parent is the traceparent's
  parent-id, customers' parent is the client span transactions logged for its call).
- A legacy import: POST /api/sync -> the run's orchestrator job -> its batch jobs on the queue ->
  bulk upserts at customers-service. Every line of the run (the run's correlation id) in sync,
  customers and Nginx carries the trace id of the POST, including the lines the queue workers
  wrote while running its jobs.
- Without a traceparent Nginx starts a trace, and the service continues it; a malformed one is
  replaced, never passed on.
"""
import json
import os

from lib import new_cid
from test_customers_auth import admin_session, new_session
import test_sync

PARENT = "00f067aa0ba902b7"


def new_trace_id():
    return os.urandom(16).hex()


def lines_of(ctx, names, pred):
    out = []
    for name in names:
        for raw in ctx.logs(name).splitlines():
            try:
                j = json.loads(raw)
            except ValueError:
                continue
            if isinstance(j, dict) and pred(j):
                j["_log"] = name
                out.append(j)
    return out


SERVICE_LOGS = ("customers-1", "customers-2", "transactions-1", "transactions-2", "sync-1", "sync-2")


def nginx_logs(ctx):
    return ctx.nginx_access_logs()


def test_one_trace_through_nginx_transactions_and_customers(ctx):
    s = new_session(ctx)
    trace = new_trace_id()
    cid = new_cid("trace")
    r = ctx.http("POST", "/api/transactions", body={"type": "deposit", "amount": "5.00"},
                 headers={"Authorization": "Bearer " + s["access"], "Idempotency-Key": new_cid("k"),
                          "X-Correlation-ID": cid, "traceparent": "00-%s-%s-01" % (trace, PARENT),
                          "tracestate": "e2e=1"})
    assert r.status == 201, r.body[:300]

    def all_lines():
        svc = lines_of(ctx, SERVICE_LOGS, lambda j: j.get("correlation_id") == cid)
        ngx = lines_of(ctx, nginx_logs(ctx), lambda j: j.get("correlation_id") == cid)
        have = {(l["_log"].split("-")[0], l.get("msg")) for l in svc}
        if ("customers", "request") in have and ("transactions", "request") in have and len(ngx) >= 2:
            return svc, ngx
        return None
    svc, ngx = ctx.wait_until(all_lines, timeout=10, interval=0.2, what="the request's log lines")

    untraced = [l for l in svc + ngx if l.get("trace_id") != trace]
    assert not untraced, "lines without the trace id %s: %r" % (trace, untraced[:3])
    uris = sorted(l["uri"].split("/")[1] + "/" + l["uri"].split("/")[2] for l in ngx)
    assert uris == ["api/transactions", "internal/users"], "Nginx lines: %r" % [l["uri"] for l in ngx]

    tx_req = [l for l in svc if l["service"] == "transactions" and l["msg"] == "request"][0]
    call = [l for l in svc if l["service"] == "transactions" and l["msg"] == "upstream call"]
    cu_req = [l for l in svc if l["service"] == "customers" and l["msg"] == "request"][0]
    assert tx_req["fields"]["parent_span_id"] == PARENT, tx_req
    assert call, "transactions logged no upstream call: %r" % svc
    client_spans = {c["fields"].get("client_span_id") for c in call}
    assert cu_req["fields"]["parent_span_id"] in client_spans, (cu_req, client_spans)
    spans = {tx_req["span_id"], cu_req["span_id"], PARENT}
    assert len(spans) == 3 and all(len(x) == 16 for x in spans), spans
    # every line of a service hop carries that hop's span
    assert {l["span_id"] for l in svc if l["service"] == "transactions"} == {tx_req["span_id"]}


def test_nginx_starts_a_trace_when_there_is_none_and_replaces_a_malformed_one(ctx):
    s = new_session(ctx)
    for tp in (None, "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01", "00-" + "0" * 32 + "-" + PARENT + "-01"):
        cid = new_cid("trace")
        headers = {"Authorization": "Bearer " + s["access"], "X-Correlation-ID": cid}
        if tp:
            headers.update(traceparent=tp, tracestate="bad=state")
        assert ctx.http("GET", "/api/users/" + s["id"], headers=headers).status == 200

        def found():
            a = lines_of(ctx, ("customers-1", "customers-2"), lambda j: j.get("correlation_id") == cid and j.get("msg") == "request")
            n = lines_of(ctx, nginx_logs(ctx), lambda j: j.get("correlation_id") == cid)
            return (a[0], n[0]) if a and n else None
        line, ngx = ctx.wait_until(found, timeout=10, interval=0.2, what="the request's lines")
        assert len(line["trace_id"]) == 32 and line["trace_id"] != "0" * 32, line
        assert line["trace_id"] == ngx["trace_id"], (line, ngx)
        assert tp is None or line["trace_id"] not in tp.lower(), "a malformed traceparent was passed on: %r" % line
        # the service's parent is the span Nginx made: the last 16 digits of its request id
        assert line["fields"]["parent_span_id"] == line["trace_id"][16:], line


def test_one_trace_through_an_import_and_its_queue_jobs(ctx):
    test_sync.reset_sync_state(ctx)
    url = test_sync.legacy_base(ctx) + "/users?count=5000&seed=919"
    restore = test_sync.configure_sync(ctx, url, {"SYNC_BATCH_SIZE": "1000"})
    try:
        admin = admin_session(ctx)
        trace = new_trace_id()
        cid = new_cid("trace-import")
        r = ctx.http("POST", "/api/sync", headers={"Authorization": "Bearer " + admin["access"],
                                                   "X-Correlation-ID": cid,
                                                   "traceparent": "00-%s-%s-01" % (trace, PARENT)})
        assert r.status == 202, r.body[:300]
        run = test_sync.wait_finished(ctx, r.json["id"], timeout=120)
        assert run["status"] == "COMPLETED", run
        assert run["batches"]["total"] >= 5, run["batches"]
        total = run["batches"]["total"]

        def flushed():
            # services flush log lines every 100 ms, Nginx its access log every second
            ngx = lines_of(ctx, nginx_logs(ctx), lambda j: j.get("correlation_id") == cid)
            if len([l for l in ngx if l["uri"] == "/internal/users/bulk-upsert"]) < total:
                return None
            return lines_of(ctx, SERVICE_LOGS, lambda j: j.get("correlation_id") == cid), ngx
        svc, ngx = ctx.wait_until(flushed, timeout=15, interval=0.5, what="the run's log lines")
        untraced = [l for l in svc + ngx if l.get("trace_id") != trace]
        assert not untraced, "lines of the run without its trace id: %r" % untraced[:3]
        msgs = {(l["service"], l["msg"]) for l in svc}
        for want in (("sync", "request"), ("sync", "sync: run taken"), ("sync", "upstream call"),
                     ("customers", "bulk upsert applied"), ("customers", "request")):
            assert want in msgs, "no %r line in the run's trace: %r" % (want, sorted(msgs))
        # the batch jobs ran in spans of their own, children of the run's trace
        batch_spans = {l["span_id"] for l in svc if l["service"] == "sync" and l["msg"] == "upstream call"}
        request_span = [l for l in svc if l["service"] == "sync" and l["msg"] == "request"][0]["span_id"]
        assert len(batch_spans) >= 2 and request_span not in batch_spans, batch_spans
    finally:
        restore()


test_one_trace_through_an_import_and_its_queue_jobs.timeout = 240
