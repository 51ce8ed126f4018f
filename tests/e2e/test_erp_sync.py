"""ERP synchronisation end to end: sync-service (both instances) against the stack's ERP
simulator (tools/erp-api at PORT_BASE+402), through Nginx.

Checked, with the simulator's own counters as the witness of what reached the ERPs:
- a manual trigger syncs exactly the ERP's records (every field), a second trigger while one waits
  or runs is 409 with the job; a second run with nothing changed rewrites no row (same xmin and
  synced_at); an advance at the ERP makes the next run read and write only what changed, records
  deleted at the source are soft-deleted; the records API pages and filters them;
- a slot over 55 tenants (5 inactive) syncs every active tenant exactly once, starts spread over
  the window, and the two instances never call one tenant's ERP twice at once (per-tenant maximum
  concurrency 1) even with both kinds of every tenant queued together;
- the global rate limit: never more starts in a window than allowed, and under a backlog at least
  90 % of the allowed starts are used;
- a cron slot fires once across the two instances;
- a wrong key is dead at once (status auth_failed); a failing ERP is retried with the backoff and
  dead-lettered while the other tenants complete; a 429 keeps every job off that ERP until its
  Retry-After; a tenant whose stored URL points at a private address is refused at connect time;
- a stale fencing token is refused (no row written by the superseded job);
- a worker SIGKILLed mid-job: the other instance syncs the tenant after the lock TTL, no
  duplicate, and the lost execution's audit row is closed;
- job_runs rows and their filters; retention deletes only old rows.

The sync instances run with short test settings (lock TTL 3 s, backoff 0.4 s, …) written into
their $RUN_DIR/env files; the last test restores the original files. Tenants of other test files
are deactivated first, so slots only meet this file's tenants.
"""

import json
import os
import re
import time

import lib
from lib import new_cid
import openapi_check as oc
from test_customers_auth import admin_session

FAST = {
    "ERP_SYNC_LOCK_TTL_SECONDS": "3",
    "ERP_SYNC_LOCK_RETRY_MS": "300",
    "ERP_SYNC_QUEUE_VISIBILITY_MS": "3000",
    "ERP_SYNC_RETRY_BASE_MS": "400",
    "ERP_SYNC_RETRY_ATTEMPTS": "2",
    "ERP_SYNC_RATE_MAX": "0",
    "ERP_SYNC_CONCURRENCY": "2",
    "ERP_SYNC_DELAY_CUSTOMERS_MS_MAX": "6000",
    "ERP_SYNC_DELAY_PRODUCTS_MS_MAX": "6000",
    "ERP_SYNC_DELAY_STEP_MS": "100",
    "ERP_SYNC_PAGE_SIZE": "100",
    "ERP_BREAKER_FAILURES": "50",
    "ERP_BREAKER_OPEN_MS": "300",
    "ERP_TIMEOUT_MS": "3000",
    "ERP_PAGE_ATTEMPTS": "1",
    "ERP_SYNC_CUSTOMERS_CRON": "off",
    "ERP_SYNC_PRODUCTS_CRON": "off",
    "RETENTION_INTERVAL_MS": "1000",
    "ERP_TENANTS_SAMPLE_MS": "1000",
}
TEMPLATES = ((re.compile(r"^/api/tenants/[^/]+/(sync|status|customers|products)$"), "/api/tenants/{id}/%s"),
             (re.compile(r"^/api/tenants/(?!sync$)[^/]+$"), "/api/tenants/{id}"))

_state = {"saved": None, "applied": None}
_admin = {}


# ------------------------------------------------------------------ helpers

def admin(ctx):
    if "t" not in _admin or _admin["exp"] < time.time():
        _admin["t"] = admin_session(ctx)["access"]
        _admin["exp"] = time.time() + 600
    return _admin["t"]


def template_of(path):
    path = path.split("?", 1)[0]
    for rx, t in TEMPLATES:
        m = rx.match(path)
        if m:
            return t % m.group(1) if "%s" in t else t
    return path


def api(ctx, method, path, status=None, body=None):
    r = ctx.http(method, path, body=body, headers={"Authorization": "Bearer " + admin(ctx),
                                                   "X-Correlation-ID": new_cid("erp")}, timeout=30)
    if status is not None:
        assert r.status == status, "%s %s: %d, want %d: %r" % (method, path, r.status, status, r.body[:400])
    oc.check(r, method, template_of(path))
    return r


def sim_url(ctx, path=""):
    return "http://127.0.0.1:%d%s" % (ctx.port_base + 402, path)


def sim(ctx, method, path, body=None, status=None):
    r = ctx.http(method, sim_url(ctx, path), body=body, timeout=30)
    if status is not None:
        assert r.status == status, "simulator %s %s: %d %r" % (method, path, r.status, r.body[:300])
    return r


def uniq(prefix):
    return "%s-%s" % (prefix, os.urandom(4).hex())


def make_tenant(ctx, customers=50, products=20, active=True, key=None, **knobs):
    """A tenant at the simulator and on the platform; returns (platform id, sim name, key)."""
    name, key = uniq("t"), key or "k-" + os.urandom(8).hex()
    sim(ctx, "PUT", "/_sim/tenants/" + name, dict(api_key=key, customers=customers, products=products, **knobs),
        status=201)
    t = api(ctx, "POST", "/api/tenants", 201, body={"name": "E2E " + name, "erpBaseUrl": sim_url(ctx, "/tenants/" + name),
                                                    "apiKey": key, "isActive": active}).json
    return t["id"], name, key


def psql(ctx, sql):
    return ctx.psql(sql, timeout=60).out


def runs(ctx, tenant_id, kind=None):
    """The tenant's job runs, oldest first, as dicts."""
    rows = psql(ctx, "SELECT coalesce(json_agg(sync.job_run_json(j) ORDER BY j.id), '[]') FROM sync.job_runs j "
                     "WHERE tenant_id = '%s'%s" % (tenant_id, " AND kind = '%s'" % kind if kind else ""))
    return json.loads(rows)


def wait_runs(ctx, tenant_id, kind, pred, timeout=60, what=None):
    return ctx.wait_until(lambda: (lambda r: r if pred(r) else None)(runs(ctx, tenant_id, kind)),
                          timeout=timeout, interval=0.2, what=what or "job runs of %s" % tenant_id)


def done(rs, n=1):
    return len([r for r in rs if r["status"] == "completed"]) >= n


def trigger(ctx, tenant_id, kind="customers", status=202, **extra):
    return api(ctx, "POST", "/api/tenants/%s/sync" % tenant_id, status, body=dict(kind=kind, **extra)).json


def sim_records(ctx, name, key, kind, since=None):
    out, page = [], 1
    while True:
        q = "?page=%d&per_page=500%s" % (page, "&updated_since=" + since if since else "")
        r = ctx.http("GET", sim_url(ctx, "/tenants/%s/%s%s" % (name, kind, q)), headers={"X-Api-Key": key}, timeout=30)
        assert r.status == 200, r.body[:200]
        out += r.json["data"]
        if not r.json["has_more"]:
            return out
        page += 1


def stored(ctx, tenant_id, kind):
    if kind == "customers":
        cols = "external_id, name, email, document"
    else:
        cols = "external_id, sku, name, price::text, stock"
    rows = psql(ctx, "SELECT coalesce(json_agg(json_build_array(%s, to_char(source_updated_at AT TIME ZONE 'UTC',"
                     " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), deleted, deleted_at IS NOT NULL) ORDER BY external_id), '[]')"
                     " FROM sync.erp_%s WHERE tenant_id = '%s'" % (cols, kind, tenant_id))
    return json.loads(rows)


def expected(records, kind):
    keys = ("id", "name", "email", "document") if kind == "customers" else ("id", "sku", "name", "price", "stock")
    return sorted([[r[k] for k in keys] + [r["updated_at"], r["deleted"], r["deleted"]] for r in records],
                  key=lambda x: x[0])


def configure(ctx, **extra):
    """Both sync instances with FAST + extra (restarted only when that changes)."""
    want = dict(FAST, **{k: str(v) for k, v in extra.items()})
    if _state["applied"] == want:
        return
    _state["saved"] = ctx.override_env("sync", want, base=_state["saved"])
    _state["applied"] = want


def only_active(ctx, tenant_ids):
    """Deactivate every tenant but these (other test files' tenants would join the slots)."""
    ids = ",".join("'%s'" % i for i in tenant_ids) or "NULL"
    psql(ctx, "UPDATE sync.tenants SET is_active = (id IN (%s)) WHERE is_active OR id IN (%s)" % (ids, ids))


def idle(ctx):
    """No erp-sync job waiting, delayed or running."""
    def check():
        q = api(ctx, "GET", "/admin/queues", 200).json["queues"].get("erp-sync")
        return q is None or q["waiting"] + q["active"] + q["delayed"] == 0
    ctx.wait_until(check, timeout=90, interval=0.3, what="erp-sync queue idle")


def sim_stats(ctx):
    return sim(ctx, "GET", "/stats", status=200).json


def sim_starts(ctx, since_ms=0):
    return sim(ctx, "GET", "/stats/starts?since_ms=%d" % since_ms, status=200).json["starts"]


def metric(ctx, name, agg=sum, **labels):
    """One series of the sync instances' /metrics: summed (counters of each instance) or, with
    agg=max, the database's figure every instance reports (erp_tenants)."""
    vals = []
    for inst in ctx.instances_of("sync"):
        r = ctx.http("GET", ctx.direct(inst, "/metrics"), timeout=5)
        assert r.status == 200, r.status
        samples, _ = lib.parse_prometheus(r.body.decode())
        vals += [v for n, l, v in samples if n == name and all(l.get(k) == w for k, w in labels.items())]
    assert vals, "%s%r not exported" % (name, labels)
    return agg(vals)


def wait_metric(ctx, want, name, agg=sum, timeout=10, **labels):
    return ctx.wait_until(lambda: metric(ctx, name, agg, **labels) == want, timeout=timeout, interval=0.2,
                          what="%s%r == %s (now %s)" % (name, labels, want, metric(ctx, name, agg, **labels)))


# ------------------------------------------------------------------ manual syncs and data

def test_erp_manual_sync_writes_exactly_the_erps_records_and_a_second_trigger_is_409(ctx):
    configure(ctx)
    tid, name, key = make_tenant(ctx, customers=1234, products=321, latency_ms=30)
    first = trigger(ctx, tid, "customers")
    assert first["job_id"].startswith("customers:%s:" % tid)
    r = api(ctx, "POST", "/api/tenants/%s/sync" % tid, 409, body={"kind": "customers"})
    assert r.json["error"]["code"] == "job_already_queued"
    assert r.json["error"]["details"]["job_id"] == first["job_id"]
    trigger(ctx, tid, "products")          # the other kind is its own job
    wait_runs(ctx, tid, "customers", done)
    wait_runs(ctx, tid, "products", done)
    assert stored(ctx, tid, "customers") == expected(sim_records(ctx, name, key, "customers"), "customers")
    assert stored(ctx, tid, "products") == expected(sim_records(ctx, name, key, "products"), "products")
    run = runs(ctx, tid, "customers")[0]
    assert run["status"] == "completed" and run["queue"] == "erp-sync" and run["attempt"] == 1, run
    assert (run["fetched"], run["upserted"], run["unchanged"], run["invalid"]) == (1234, 1234, 0, 0), run
    assert run["job_id"] == first["job_id"] and run["tenant_id"] == tid and run["kind"] == "customers"
    assert run["finished_at"] >= run["started_at"] and run["duration_ms"] >= 0 and run["error"] is None
    # Once it finished, a new trigger is accepted again.
    again = trigger(ctx, tid, "customers")
    assert again["job_id"] != first["job_id"]
    wait_runs(ctx, tid, "customers", lambda rs: done(rs, 2))
    _state["main"] = (tid, name, key)


def test_erp_second_run_rewrites_nothing_then_reads_only_the_changes(ctx):
    configure(ctx)
    tid, name, key = _state.get("main") or make_tenant(ctx, customers=1234, products=321)
    if len(runs(ctx, tid, "customers")) == 0:
        trigger(ctx, tid, "customers")
        wait_runs(ctx, tid, "customers", done)
    before = psql(ctx, "SELECT md5(string_agg(xmin::text || synced_at::text, ',' ORDER BY external_id))"
                       " FROM sync.erp_customers WHERE tenant_id = '%s'" % tid)
    n = len(runs(ctx, tid, "customers"))
    trigger(ctx, tid, "customers", full=True)     # everything read again: nothing changed
    rs = wait_runs(ctx, tid, "customers", lambda rs: len(rs) > n and rs[-1]["status"] == "completed")
    assert (rs[-1]["fetched"], rs[-1]["upserted"], rs[-1]["unchanged"]) == (1234, 0, 1234), rs[-1]
    after = psql(ctx, "SELECT md5(string_agg(xmin::text || synced_at::text, ',' ORDER BY external_id))"
                      " FROM sync.erp_customers WHERE tenant_id = '%s'" % tid)
    assert after == before, "an unchanged record was rewritten"
    # The ERP changes 10 % of its customers and deletes some of those.
    watermark = max(c["updated_at"] for c in sim_records(ctx, name, key, "customers"))
    sim(ctx, "POST", "/_sim/tenants/%s/advance" % name, {"share": 0.1, "delete_share": 0.3}, status=200)
    changed = [c for c in sim_records(ctx, name, key, "customers", since=watermark) if c["updated_at"] > watermark]
    assert 60 < len(changed) < 200
    trigger(ctx, tid, "customers")
    rs = wait_runs(ctx, tid, "customers", lambda rs: len(rs) > n + 1 and rs[-1]["status"] == "completed")
    last = rs[-1]
    assert last["upserted"] == len(changed), last
    assert last["fetched"] - last["upserted"] <= 1 and last["fetched"] == last["upserted"] + last["unchanged"], last
    assert stored(ctx, tid, "customers") == expected(sim_records(ctx, name, key, "customers"), "customers")
    deleted = int(psql(ctx, "SELECT count(*) FROM sync.erp_customers WHERE tenant_id = '%s' AND deleted" % tid))
    assert deleted == len([c for c in changed if c["deleted"]]) > 0
    status = api(ctx, "GET", "/api/tenants/%s/status" % tid, 200).json
    assert status["state"] == "ok" and status["kinds"]["customers"]["last_run"]["id"] == last["id"]
    assert status["kinds"]["customers"]["watermark"].startswith(max(c["updated_at"] for c in changed)[:19])


def test_erp_records_api_pages_by_cursor_with_filters(ctx):
    configure(ctx)
    tid, name, key = _state.get("main") or make_tenant(ctx, customers=1234, products=321)
    if not stored(ctx, tid, "customers"):
        trigger(ctx, tid, "customers")
        wait_runs(ctx, tid, "customers", done)
    total = int(psql(ctx, "SELECT count(*) FROM sync.erp_customers WHERE tenant_id = '%s'" % tid))
    live = int(psql(ctx, "SELECT count(*) FROM sync.erp_customers WHERE tenant_id = '%s' AND NOT deleted" % tid))
    seen, cursor = [], None
    while True:
        page = api(ctx, "GET", "/api/tenants/%s/customers?limit=100%s" % (tid, "&cursor=" + cursor if cursor else ""),
                   200).json
        seen += [c["id"] for c in page["data"]]
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    assert len(seen) == total and seen == sorted(seen) and len(set(seen)) == total
    page = api(ctx, "GET", "/api/tenants/%s/customers?limit=100&deleted=false&include_total=true" % tid, 200).json
    assert page["total"] == live and all(not c["deleted"] for c in page["data"])
    page = api(ctx, "GET", "/api/tenants/%s/customers?limit=100&updatedSince=2025-01-01T00:00:00Z&include_total=true"
               % tid, 200).json
    assert 0 < page["total"] < total and all(c["updated_at"] >= "2025-01-01" for c in page["data"])
    api(ctx, "GET", "/api/tenants/%s/products?limit=5" % tid, 200)
    api(ctx, "GET", "/api/tenants/%s/customers?updatedSince=yesterday" % tid, 400)
    api(ctx, "GET", "/api/tenants/%s/customers?deleted=maybe" % tid, 400)
    api(ctx, "GET", "/api/tenants/%s/customers" % "01936f9e-0000-7000-8000-00000000dead", 404)


# ------------------------------------------------------------------ failures

def test_erp_wrong_key_is_dead_at_once_and_the_status_says_auth_failed(ctx):
    configure(ctx)
    tid, name, key = make_tenant(ctx, customers=10)
    auth_failed = metric(ctx, "erp_tenants", max, state="auth_failed")
    dead = metric(ctx, "erp_jobs_total", outcome="dead")
    api(ctx, "PATCH", "/api/tenants/" + tid, 200, body={"apiKey": "not-the-key"})
    trigger(ctx, tid, "customers")
    rs = wait_runs(ctx, tid, "customers", lambda rs: rs and rs[-1]["status"] == "dead")
    assert len(rs) == 1 and rs[0]["attempt"] == 1 and "401" in rs[0]["error"], rs
    st = api(ctx, "GET", "/api/tenants/%s/status" % tid, 200).json
    assert st["state"] == "auth_failed" and st["kinds"]["customers"]["auth_failed"] is True, st
    assert sim_stats(ctx)["tenants"][name]["status"] == {"401": 1}
    # What the ErpTenantsFailing alert reads (deploy/prometheus/alerts.yml): the tenant counted as
    # auth_failed by both instances, its job as dead.
    wait_metric(ctx, auth_failed + 1, "erp_tenants", max, state="auth_failed")
    wait_metric(ctx, auth_failed + 1, "erp_tenants", min, state="auth_failed")
    assert metric(ctx, "erp_jobs_total", outcome="dead") == dead + 1
    assert metric(ctx, "erp_tenants_up", min) == 1
    # The right key again: the next sync succeeds and the status is ok.
    api(ctx, "PATCH", "/api/tenants/" + tid, 200, body={"apiKey": key})
    trigger(ctx, tid, "customers")
    wait_runs(ctx, tid, "customers", done)
    assert api(ctx, "GET", "/api/tenants/%s/status" % tid, 200).json["state"] == "ok"
    wait_metric(ctx, auth_failed, "erp_tenants", max, state="auth_failed")


def test_erp_failing_erp_is_retried_with_backoff_then_dead_while_others_sync(ctx):
    configure(ctx)
    failing = metric(ctx, "erp_tenants", max, state="failing")
    bad, bad_name, _ = make_tenant(ctx, customers=10, fail=True, fail_status=503)
    good = [make_tenant(ctx, customers=120) for _ in range(3)]
    trigger(ctx, bad, "customers")
    for g in good:
        trigger(ctx, g[0], "customers")
    rs = wait_runs(ctx, bad, "customers", lambda rs: rs and rs[-1]["status"] == "dead", timeout=60)
    # ERP_SYNC_RETRY_ATTEMPTS=2: three runs, the waits 0.4 s then 0.8 s (base × 2^(attempt-1)).
    assert [r["attempt"] for r in rs] == [1, 2, 3], rs
    assert [r["status"] for r in rs] == ["failed", "failed", "dead"], rs
    starts = [time.mktime(time.strptime(r["started_at"][:19], "%Y-%m-%dT%H:%M:%S")) + float(r["started_at"][19:-1] or 0)
              for r in rs]
    ends = [time.mktime(time.strptime(r["finished_at"][:19], "%Y-%m-%dT%H:%M:%S")) + float(r["finished_at"][19:-1] or 0)
            for r in rs]
    assert starts[1] - ends[0] >= 0.35 and starts[2] - ends[1] >= 0.75, (starts, ends)
    assert all("503" in r["error"] for r in rs)
    for g in good:
        wait_runs(ctx, g[0], "customers", done)
        assert len(stored(ctx, g[0], "customers")) == 120
    st = api(ctx, "GET", "/api/tenants/%s/status" % bad, 200).json
    assert st["state"] == "failing" and st["kinds"]["customers"]["last_run"]["status"] == "dead"
    dead = api(ctx, "GET", "/api/job-runs?tenant=%s&status=dead" % bad, 200).json["data"]
    assert len(dead) == 1 and dead[0]["attempt"] == 3
    assert sim_stats(ctx)["tenants"][bad_name]["status"].get("503") == 3
    wait_metric(ctx, failing + 1, "erp_tenants", max, state="failing")


def test_erp_a_throttled_erp_is_not_called_by_any_job_before_its_retry_after(ctx):
    configure(ctx)
    throttled = metric(ctx, "erp_job_deferrals_total", reason="throttled")
    tid, name, key = make_tenant(ctx, customers=30, products=30, throttle_rate=1, retry_after_s=2)
    trigger(ctx, tid, "customers")
    ctx.wait_until(lambda: sim_stats(ctx)["tenants"][name]["status"].get("429") == 1, timeout=20, what="a 429")
    throttled_at = time.time()
    sim(ctx, "PATCH", "/_sim/tenants/" + name, {"throttle_rate": 0}, status=200)
    trigger(ctx, tid, "products")     # the other kind: must wait for the Retry-After too
    wait_runs(ctx, tid, "customers", done, timeout=30)
    wait_runs(ctx, tid, "products", done, timeout=30)
    later = [s for s in sim_starts(ctx) if s["tenant"] == name][1:]
    assert later and all(s["at_ms"] / 1000.0 >= throttled_at + 1.8 for s in later), (throttled_at, later)
    rs = runs(ctx, tid, "customers")
    assert rs[0]["status"] == "failed" and "429" in rs[0]["error"] and rs[-1]["status"] == "completed"
    # The products job was put back for the Retry-After, counted as such.
    assert metric(ctx, "erp_job_deferrals_total", reason="throttled") > throttled


def test_erp_a_private_address_is_refused_when_the_sync_connects(ctx):
    configure(ctx)
    tid, name, key = make_tenant(ctx, customers=10)
    # Written behind the API's back (as DNS rebinding would turn a public name private): the
    # stack's PostgreSQL port, on loopback, which the test stack does not allow.
    psql(ctx, "UPDATE sync.tenants SET erp_base_url = 'http://127.0.0.1:%d/x' WHERE id = '%s'" % (ctx.port_base + 10, tid))
    allowed = ctx.env_of("sync-1").get("ERP_ALLOWED_HOSTS", "")
    if "127.0.0.1" in [h.strip() for h in allowed.split(",")]:
        psql(ctx, "UPDATE sync.tenants SET erp_base_url = 'http://0x0a000001:80/x' WHERE id = '%s'" % tid)
    trigger(ctx, tid, "customers")
    rs = wait_runs(ctx, tid, "customers", lambda rs: rs and rs[-1]["status"] == "dead")
    assert len(rs) == 1 and "erp_url_refused" in rs[0]["error"], rs


def test_erp_a_stale_fencing_token_is_refused(ctx):
    """A newer holder wrote the tenant meanwhile (here: its token raised in the database while
    this job reads slowly): the job's write is refused, nothing of it lands, and it stops."""
    configure(ctx)
    tid, name, key = make_tenant(ctx, customers=600, latency_ms=300)
    trigger(ctx, tid, "customers")
    ctx.wait_until(lambda: sim_stats(ctx)["tenants"][name]["starts"] >= 1, timeout=20, what="the job started")
    psql(ctx, "UPDATE sync.tenants SET fence_token = fence_token + 1000000 WHERE id = '%s'" % tid)
    rs = wait_runs(ctx, tid, "customers", lambda rs: rs and rs[-1]["status"] != "running", timeout=30)
    assert len(rs) == 1 and rs[0]["status"] == "failed" and "stale fencing token" in rs[0]["error"], rs
    assert rs[0]["fetched"] == 600 and rs[0]["upserted"] == 0
    assert stored(ctx, tid, "customers") == []
    time.sleep(1.5)
    assert len(runs(ctx, tid, "customers")) == 1, "a superseded job is not retried"


def test_erp_a_locked_tenant_puts_its_job_back_counted_as_lock_contention(ctx):
    """The tenant's lock held elsewhere (here: set by hand for 1.5 s): the job is put back without
    spending an attempt, counted in erp_job_deferrals_total{reason="locked"} (the dashboard's lock
    contention), and runs once the lock is gone."""
    configure(ctx)
    tid, name, key = make_tenant(ctx, customers=10)
    locked = metric(ctx, "erp_job_deferrals_total", reason="locked")
    ctx.redis_cli("SET", "erp:lock:{%s}" % tid, "e2e-holder 0 someone", "PX", "1500")
    t0 = time.time()
    trigger(ctx, tid, "customers")
    rs = wait_runs(ctx, tid, "customers", done, timeout=30)
    assert len(rs) == 1 and rs[0]["attempt"] == 1, rs
    assert metric(ctx, "erp_job_deferrals_total", reason="locked") > locked
    assert sim_stats(ctx)["tenants"][name]["starts"] == 1
    assert time.time() - t0 >= 1.4


# ------------------------------------------------------------------ slots, spread, concurrency, rate

def test_erp_slot_syncs_every_active_tenant_once_spread_and_never_twice_at_once(ctx):
    configure(ctx)
    made = [make_tenant(ctx, customers=150, products=40, latency_ms=40) for _ in range(55)]
    inactive = made[:5]
    for t in inactive:
        api(ctx, "PATCH", "/api/tenants/" + t[0], 200, body={"isActive": False})
    active = made[5:]
    only_active(ctx, [t[0] for t in active])
    idle(ctx)
    sim(ctx, "DELETE", "/stats", status=204)
    t0 = time.time()
    r = api(ctx, "POST", "/api/tenants/sync", 202, body={"kind": "customers", "spreadMs": 6000}).json
    assert (r["tenants"], r["enqueued"], r["skipped"], r["window_ms"]) == (50, 50, 0, 6000), r
    for t in active:
        wait_runs(ctx, t[0], "customers", done, timeout=90)
    for t in inactive:
        assert runs(ctx, t[0]) == []
    slot = r["slot"]
    for t in active:
        rs = runs(ctx, t[0], "customers")
        assert [x["job_id"] for x in rs] == ["customers:%s:%s" % (t[0], slot)], rs
        assert len(stored(ctx, t[0], "customers")) == 150
    starts = sorted(s["at_ms"] / 1000.0 - t0 for s in sim_starts(ctx) if s["kind"] == "customers")
    assert len(starts) == 50
    buckets = [0] * 7
    for s in starts:
        buckets[min(int(s), 6)] += 1
    # Even: every second of the 6-second window starts some tenants, none gets a pile.
    assert all(b >= 2 for b in buckets[:6]) and max(buckets) <= 17, buckets
    assert starts[-1] - starts[0] >= 4.5, starts

    # Both kinds of every tenant at once, four workers on two instances: the per-tenant lock
    # keeps each ERP to one call at a time.
    sim(ctx, "DELETE", "/stats", status=204)
    api(ctx, "POST", "/api/tenants/sync", 202, body={"kind": "customers", "spreadMs": 0, "full": True})
    api(ctx, "POST", "/api/tenants/sync", 202, body={"kind": "products", "spreadMs": 0})
    for t in active:
        wait_runs(ctx, t[0], "products", done, timeout=120)
        wait_runs(ctx, t[0], "customers", lambda rs: done(rs, 2), timeout=120)
    st = sim_stats(ctx)["tenants"]
    assert max(st[t[1]]["max_concurrent"] for t in active) == 1, {t[1]: st[t[1]]["max_concurrent"] for t in active}
    assert all(st[t[1]]["starts"] == 2 for t in active)
    _state["slot_tenants"] = active


def test_erp_rate_limit_is_never_exceeded_and_is_used_under_a_backlog(ctx):
    configure(ctx, ERP_SYNC_RATE_MAX=5, ERP_SYNC_RATE_WINDOW_MS=3000)
    made = [make_tenant(ctx, customers=5, products=0) for _ in range(40)]
    only_active(ctx, [t[0] for t in made])
    idle(ctx)
    sim(ctx, "DELETE", "/stats", status=204)
    limited = metric(ctx, "erp_job_deferrals_total", reason="rate_limited")
    api(ctx, "POST", "/api/tenants/sync", 202, body={"kind": "customers", "spreadMs": 0})
    for t in made:
        wait_runs(ctx, t[0], "customers", done, timeout=120)
    assert metric(ctx, "erp_job_deferrals_total", reason="rate_limited") > limited
    starts = sorted(s["at_ms"] for s in sim_starts(ctx))
    assert len(starts) == 40
    # Never more than 5 in any window: admissions are on Redis's clock, the first page reaches the
    # ERP a few milliseconds later, so the window checked here is 250 ms shorter.
    for i in range(len(starts) - 5):
        assert starts[i + 5] - starts[i] >= 3000 - 250, "6 starts within %d ms" % (starts[i + 5] - starts[i])
    # Used: after the first window's 5, the backlog ran at >= 90 % of 5 per 3 s.
    span = (starts[-1] - starts[0]) / 3000.0
    assert (len(starts) - 5) / (span * 5) >= 0.9, "utilisation %.2f over %.1f windows" % ((len(starts) - 5) / (span * 5), span)


def test_erp_cron_slot_fires_once_across_both_instances(ctx):
    tenants = _state.get("slot_tenants") or [make_tenant(ctx, customers=20) for _ in range(10)]
    configure(ctx, ERP_SYNC_CUSTOMERS_CRON="* * * * *", ERP_SYNC_DELAY_CUSTOMERS_MS_MAX=3000)
    only_active(ctx, [t[0] for t in tenants])
    idle(ctx)
    minute = (int(time.time()) // 60 + 1) * 60
    ctx.wait_until(lambda: time.time() > minute + 2, timeout=70, interval=0.5, what="the next minute")
    key = "erp:slot:customers:%d" % minute
    ctx.wait_until(lambda: ctx.redis_cli("GET", key) == "done", timeout=20, what=key + " done")
    slot = "s%d" % (minute // 60)
    for t in tenants:
        rs = wait_runs(ctx, t[0], "customers", lambda rs: any(r["job_id"].endswith(":" + slot) and
                                                             r["status"] == "completed" for r in rs), timeout=60)
        assert len([r for r in rs if r["job_id"].endswith(":" + slot)]) == 1
    lines = [l for n in ctx.instances_of("sync") for l in ctx.logs(n).splitlines()
             if '"erp: slot enqueued"' in l and '"slot":"%s"' % slot in l]
    assert len(lines) == 1, lines
    configure(ctx)   # the schedule off again


# ------------------------------------------------------------------ audit

def test_erp_job_runs_are_filtered_and_retention_deletes_only_old_rows(ctx):
    configure(ctx)
    tid, name, key = _state.get("main") or make_tenant(ctx, customers=10)
    if not runs(ctx, tid):
        trigger(ctx, tid, "customers")
        wait_runs(ctx, tid, "customers", done)
    page = api(ctx, "GET", "/api/job-runs?tenant=%s&include_total=true&limit=100" % tid, 200).json
    assert page["total"] == len(runs(ctx, tid)) and all(r["tenant_id"] == tid for r in page["data"])
    page = api(ctx, "GET", "/api/job-runs?tenant=%s&status=completed&from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z"
               "&limit=100" % tid, 200).json
    assert page["data"] and all(r["status"] == "completed" for r in page["data"])
    assert api(ctx, "GET", "/api/job-runs?tenant=%s&to=2000-01-01T00:00:00Z" % tid, 200).json["data"] == []
    assert api(ctx, "GET", "/api/job-runs?queue=erp-sync&limit=1", 200).json["data"][0]["queue"] == "erp-sync"
    r = api(ctx, "GET", "/api/job-runs?tenant=x&status=done&from=now", 400).json
    assert set(r["error"]["details"]["fields"]) == {"tenant", "status", "from"}
    # Retention (RETENTION_DAYS_JOBRUN=90, every second in this configuration): 91 days old goes,
    # 89 days old stays.
    marker = uniq("retention")
    psql(ctx, "INSERT INTO sync.job_runs (queue, job_id, attempt, instance, status, started_at, finished_at)"
              " VALUES ('erp-sync', '%s-old', 1, 'e2e', 'completed', now() - interval '91 days', now() - interval '91 days'),"
              " ('erp-sync', '%s-recent', 1, 'e2e', 'completed', now() - interval '89 days', now() - interval '89 days')"
              % (marker, marker))
    ctx.wait_until(lambda: psql(ctx, "SELECT count(*) FROM sync.job_runs WHERE job_id = '%s-old'" % marker) == "0",
                   timeout=15, what="the old row deleted")
    assert psql(ctx, "SELECT count(*) FROM sync.job_runs WHERE job_id = '%s-recent'" % marker) == "1"
    assert psql(ctx, "SELECT count(*) FROM sync.job_runs WHERE started_at < now() - interval '90 days'") == "0"


# ------------------------------------------------------------------ a killed worker (restarts an instance)

def test_erp_a_stopping_instance_hands_its_running_job_back_at_once(ctx):
    configure(ctx)
    tid, name, key = make_tenant(ctx, customers=2000, latency_ms=200)
    only_active(ctx, [tid])
    idle(ctx)
    trigger(ctx, tid, "customers")
    holder = ctx.wait_until(lambda: ctx.redis_cli("GET", "erp:lock:{%s}" % tid), timeout=20, what="the lock")
    victim = holder.split(" ")[2]
    ctx.wait_until(lambda: sim_stats(ctx)["tenants"][name]["requests"] >= 3, timeout=20, what="a few pages read")
    t0 = time.time()
    try:
        ctx.stack("stop-one", victim)            # SIGTERM: stops between two pages
        assert time.time() - t0 < 10, "the instance took %.1f s to stop" % (time.time() - t0)
        rs = wait_runs(ctx, tid, "customers", done, timeout=60)
    finally:
        ctx.stack("start-one", victim)
        ctx.wait_healthy(victim, timeout=30)
    assert rs[0]["instance"] == victim and rs[0]["status"] == "failed" and "stopping" in rs[0]["error"], rs
    assert rs[-1]["attempt"] == 1 and rs[-1]["instance"] != victim, rs   # no attempt spent
    assert len(stored(ctx, tid, "customers")) == 2000


def test_erp_a_worker_killed_mid_job_leaves_the_tenant_to_the_other_instance(ctx):
    configure(ctx)
    tid, name, key = make_tenant(ctx, customers=2000, latency_ms=200)
    only_active(ctx, [tid])
    idle(ctx)
    sim(ctx, "DELETE", "/stats", status=204)
    trigger(ctx, tid, "customers")
    holder = ctx.wait_until(lambda: ctx.redis_cli("GET", "erp:lock:{%s}" % tid), timeout=20, what="the lock")
    victim = holder.split(" ")[2]
    assert victim in ctx.instances_of("sync"), holder
    ctx.wait_until(lambda: sim_stats(ctx)["tenants"][name]["requests"] >= 3, timeout=20, what="a few pages read")
    try:
        ctx.stack("stop-one", victim, "KILL")
        rs = wait_runs(ctx, tid, "customers", done, timeout=60)
    finally:
        ctx.stack("start-one", victim)
        ctx.wait_healthy(victim, timeout=30)
    rows = stored(ctx, tid, "customers")
    assert len(rows) == 2000 and len({r[0] for r in rows}) == 2000
    assert rows == expected(sim_records(ctx, name, key, "customers"), "customers")
    assert sim_stats(ctx)["tenants"][name]["max_concurrent"] == 1
    assert rs[-1]["instance"] != victim and rs[-1]["attempt"] == 2, rs
    assert rs[0]["instance"] == victim and rs[0]["status"] == "failed" and "worker lost" in rs[0]["error"], rs


def test_erp_restore_the_sync_settings(ctx):
    if _state["saved"]:
        ctx.restore_env("sync", _state["saved"])
        _state["saved"] = _state["applied"] = None
    psql(ctx, "UPDATE sync.tenants SET is_active = false WHERE name LIKE 'E2E t-%'")


test_erp_slot_syncs_every_active_tenant_once_spread_and_never_twice_at_once.timeout = 300
test_erp_rate_limit_is_never_exceeded_and_is_used_under_a_backlog.timeout = 240
test_erp_cron_slot_fires_once_across_both_instances.timeout = 240
test_erp_a_worker_killed_mid_job_leaves_the_tenant_to_the_other_instance.timeout = 180
test_erp_a_stopping_instance_hands_its_running_job_back_at_once.timeout = 120
test_erp_failing_erp_is_retried_with_backoff_then_dead_while_others_sync.timeout = 120
