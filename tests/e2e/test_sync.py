"""sync-service end to end: the streaming import of legacy users from the simulator into
customers-service, through the Redis job queue, with every fault on.

What is checked, against the simulator's own /users/expected summary and a client-side import of
the same stream computed here (newest valid record per userName, by the README's rules):
- the customers schema holds exactly the expected legacy users with their newest values, the
  deleted ones soft-deleted; the run is COMPLETED with the expected valid / invalid / duplicate
  counts; invalid records are listed (by kind) under /api/sync/{id}/errors;
- while the legacy API is down the run keeps retrying (attempts grow) and a second trigger returns
  the same run (200); a trigger after completion starts a new one (202) and re-syncing the same
  data changes nothing (all "unchanged");
- a batch worker SIGKILLed midway: its jobs are reclaimed, the run still completes exactly;
- the instance streaming the legacy API SIGKILLed: the run is resumed from its lease and completes;
- the API's authorization, pagination and 404s;
- every response of the sync API (status, headers, body) matches docs/openapi.yaml (openapi_check,
  applied in `api`).

The sync instances are restarted with test settings (a faulty LEGACY_API_URL, short leases and
visibility timeouts) by rewriting their $RUN_DIR/env files; every test that does so restores the
original files and restarts the instances in a `finally`.
"""

import json
import os
import re
import signal
import time

from lib import assert_envelope, new_cid
import openapi_check as oc
from test_customers_auth import admin_session, new_session

COUNT = 100000
SEED = 4242
CONTENT = "count=%d&seed=%d&corrupt_rate=0.05&dup_rate=0.1&delete_rate=0.1" % (COUNT, SEED)
FAULTS = "fail_rate=0.3&drop_rate=0.5"
FAST = {
    "SYNC_LEASE_TTL_MS": "3000",
    "SYNC_REAPER_INTERVAL_MS": "500",
    "SYNC_QUEUE_VISIBILITY_MS": "3000",
    "SYNC_STREAM_RETRY_BASE_MS": "100",
    "SYNC_STREAM_RETRY_CAP_MS": "800",
    "SYNC_STREAM_MAX_ATTEMPTS": "60",
    "SYNC_BATCH_RETRY_BASE_MS": "100",
    "SYNC_BATCH_RETRY_CAP_MS": "1000",
    "SYNC_CRON": "off",
}
USER_NAME_RE = re.compile(r"^[A-Za-z0-9._-]{3,64}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
FIELDS = ("id", "userName", "email", "name", "createdAt", "updatedAt", "deleted")
ACTIVE = ("PENDING", "RUNNING", "PROCESSING")
# Concrete sync paths -> their template under `paths` in docs/openapi.yaml (None: the path itself).
TEMPLATES = ((re.compile(r"^/api/sync/(status|history)$"), None),
             (re.compile(r"^/api/sync/[^/]+/errors$"), "/api/sync/{id}/errors"),
             (re.compile(r"^/api/sync/[^/]+$"), "/api/sync/{id}"))

_admin = {}


# ------------------------------------------------------------------ helpers

def admin_token(ctx):
    if "t" not in _admin or _admin["exp"] < time.time():
        _admin["t"] = admin_session(ctx)["access"]
        _admin["exp"] = time.time() + 600
    return _admin["t"]


def template_of(path):
    path = path.split("?", 1)[0]
    for rx, template in TEMPLATES:
        if rx.match(path):
            return template or path
    return path


def api(ctx, method, path, status=None, token=None):
    """One sync API request as admin (or `token`); checks the status when given and the response
    against docs/openapi.yaml."""
    r = ctx.http(method, path, headers={"Authorization": "Bearer " + (token or admin_token(ctx)),
                                        "X-Correlation-ID": new_cid("sync")}, timeout=30)
    if status is not None:
        assert r.status == status, "%s %s: %d, want %d: %r" % (method, path, r.status, status, r.body[:400])
    oc.check(r, method, template_of(path))
    return r


def run_of(ctx, run_id):
    return api(ctx, "GET", "/api/sync/" + run_id, 200).json


def legacy_base(ctx):
    return "http://127.0.0.1:%d" % (ctx.port_base + 401)


def sim_get(ctx, path, timeout=60):
    r = ctx.http("GET", legacy_base(ctx) + path, timeout=timeout)
    assert r.status == 200, "simulator %s: %d %r" % (path, r.status, r.body[:200])
    return r


def valid_record(line):
    """The README's validity rules; returns the record dict or None."""
    try:
        r = json.loads(line)
    except ValueError:
        return None
    if not isinstance(r, dict) or set(r) != set(FIELDS):
        return None
    if type(r["id"]) is not int or r["id"] < 1:
        return None
    for f in ("userName", "email", "name", "createdAt", "updatedAt"):
        if not isinstance(r[f], str):
            return None
    if not USER_NAME_RE.fullmatch(r["userName"]) or not EMAIL_RE.fullmatch(r["email"]) or not r["name"]:
        return None
    for f in ("createdAt", "updatedAt"):
        if not TS_RE.fullmatch(r[f]):
            return None
        try:
            time.strptime(r[f], "%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            return None
    if type(r["deleted"]) is not bool:
        return None
    return r


def expected_users(ctx, content):
    """lower(userName) -> (userName, email, name, id, deleted, updatedAt) after a correct import."""
    body = sim_get(ctx, "/users?format=ndjson&" + content).body.decode("utf-8")
    users = {}
    for line in body.splitlines():
        if not line.strip():
            continue
        r = valid_record(line)
        if r is None:
            continue
        key = r["userName"].lower()
        cur = users.get(key)
        if cur is None or r["updatedAt"] >= cur[5]:
            users[key] = (r["userName"], r["email"], r["name"], r["id"], r["deleted"], r["updatedAt"])
    return users


def stored_users(ctx):
    out = ctx.psql(
        "SELECT coalesce(json_agg(json_build_array(user_name, email, name, legacy_id, deleted,"
        " to_char(source_updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
        " deleted_at IS NOT NULL)), '[]') FROM customers.users WHERE source = 'legacy'", timeout=120).out
    rows = json.loads(out)
    for r in rows:
        assert r[4] == r[6], "deleted and deleted_at disagree for %s" % r[0]
    return {r[0].lower(): tuple(r[:6]) for r in rows}


def reset_sync_state(ctx):
    """No active run, idle queues, no legacy users: each import test starts from a known state."""
    ctx.psql("UPDATE sync.sync_runs SET status = 'FAILED', finished_at = now(), lease_owner = NULL,"
             " error = 'reset by the e2e tests' WHERE status IN ('PENDING','RUNNING','PROCESSING')")

    def idle():
        q = api(ctx, "GET", "/admin/queues", 200).json["queues"]
        return all(q[n]["waiting"] + q[n]["active"] + q[n]["delayed"] == 0 for n in q)
    ctx.wait_until(idle, timeout=60, interval=0.5, what="idle sync queues")
    ctx.psql("DELETE FROM customers.users WHERE source = 'legacy'", timeout=120)


def configure_sync(ctx, url, extra=None):
    """Restart sync-1/2 with LEGACY_API_URL=url and the fast test settings; returns a restore
    function that puts the original environment files back and restarts them again."""
    saved = ctx.override_env("sync", dict(FAST, LEGACY_API_URL=url, **(extra or {})))
    return lambda: ctx.restore_env("sync", saved)


def wait_finished(ctx, run_id, timeout):
    return ctx.wait_until(lambda: (lambda r: r if r["status"] not in ACTIVE else None)(run_of(ctx, run_id)),
                          timeout=timeout, interval=0.25, what="run %s finished" % run_id)


def queue_stats(ctx):
    return api(ctx, "GET", "/admin/queues", 200).json["queues"]


def check_counts_add_up(run):
    outcomes = run["inserted"] + run["updated"] + run["unchanged"] + run["deleted"] + run["rejected"]
    assert outcomes == run["valid"], "batch outcomes %d != valid %d: %r" % (outcomes, run["valid"], run)
    b = run["batches"]
    assert b["failed"] == 0 and b["done"] == b["total"] > 0, b


def check_attempts(ctx, run):
    rows = ctx.psql("SELECT attempt, outcome, received FROM sync.sync_attempts WHERE run_id = '%s' ORDER BY attempt"
                    % run["id"]).out.splitlines()
    attempts = [r.split("|") for r in rows]
    assert len(attempts) == run["attempts"], (attempts, run["attempts"])
    assert sum(int(a[2]) for a in attempts) == run["received"], "received is not the sum of the attempts"
    assert attempts[-1][1] == "completed" and all(a[1] != "streaming" for a in attempts), attempts
    return attempts


# ------------------------------------------------------------------ API surface

def test_sync_api_requires_an_admin(ctx):
    cid = new_cid("sync")
    r = ctx.http("POST", "/api/sync", headers={"X-Correlation-ID": cid})
    assert_envelope(r, 401, cid)
    oc.check(r, "POST", "/api/sync")
    user = new_session(ctx)
    for method, path in (("POST", "/api/sync"), ("GET", "/api/sync/status"), ("GET", "/api/sync/history"),
                         ("GET", "/api/job-runs"), ("GET", "/admin/queues")):
        r = api(ctx, method, path, token=user["access"])
        err = assert_envelope(r, 403)
        assert err["code"] == "forbidden", err


def test_sync_unknown_runs_and_bad_pages(ctx):
    for path in ("/api/sync/00000000-0000-4000-8000-000000000000", "/api/sync/not-a-uuid",
                 "/api/sync/00000000-0000-4000-8000-000000000000/errors"):
        err = assert_envelope(api(ctx, "GET", path), 404)
        assert err["code"] == "sync_run_not_found", err
    for q in ("limit=0", "limit=101", "page=0", "page=x", "limit=", "cursor=x", "include_total=1"):
        err = assert_envelope(api(ctx, "GET", "/api/sync/history?" + q), 400)
        assert err["code"] == "validation_failed", err
    for q in ("run_id=x", "queue=", "queue=" + "q" * 65):
        err = assert_envelope(api(ctx, "GET", "/api/job-runs?" + q), 400)
        assert err["code"] == "validation_failed" and set(err["details"]["fields"]) == {q.split("=")[0]}, err
    h = api(ctx, "GET", "/api/sync/history?page=1&limit=5", 200).json
    assert h["page"] == 1 and h["limit"] == 5 and isinstance(h["data"], list) and h["total"] >= len(h["data"])
    j = api(ctx, "GET", "/api/job-runs?limit=3&queue=user-sync-batch", 200).json
    assert j["limit"] == 3 and all(x["queue"] == "user-sync-batch" for x in j["data"]), j
    # job runs by cursor: pages of 2 follow each other, newest first, none twice
    jobs, cursor = [], ""
    for _ in range(3):
        p = api(ctx, "GET", "/api/job-runs?limit=2" + cursor, 200).json
        jobs += p["data"]
        if not p["has_more"]:
            break
        cursor = "&cursor=" + p["next_cursor"]
    keys = [(x["started_at"], x["id"]) for x in jobs]
    assert keys == sorted(keys, reverse=True) and len(set(keys)) == len(keys), keys
    q = queue_stats(ctx)
    for name in ("user-sync", "user-sync-batch"):
        assert set(q[name]) >= {"waiting", "active", "delayed", "dead", "completed", "failed", "retried",
                                "reclaimed"}, q


# ------------------------------------------------------------------ imports (restart the sync instances)

def pending_of(ctx, instance, queue="user-sync-batch"):
    """Jobs of `queue` delivered to `instance`'s consumers and not yet acknowledged (XPENDING)."""
    out = ctx.redis_cli("XPENDING", "q:{%s}:stream" % queue, "workers").splitlines()
    # summary reply: count, smallest id, greatest id, then (consumer, count) pairs
    pairs = out[3:]
    return sum(int(pairs[i + 1]) for i in range(0, len(pairs) - 1, 2)
               if pairs[i].startswith(instance + "-"))


def kill_while_holding_batches(ctx, instance, tries=100):
    """SIGKILL `instance` at a moment it holds batch jobs: it is frozen (SIGSTOP) first, so what
    XPENDING shows it holding is what it loses; if it holds nothing it is thawed and tried again."""
    pid = ctx.pid_of(instance)
    assert pid, "no pid for " + instance
    for _ in range(tries):
        ctx.signal_pid(pid, signal.SIGSTOP)
        if pending_of(ctx, instance) > 0:
            ctx.stack("stop-one", instance, "KILL")   # a stopped process dies of SIGKILL too
            return
        ctx.signal_pid(pid, signal.SIGCONT)
        time.sleep(0.05)
    raise AssertionError("%s never held a batch job in %d looks" % (instance, tries))


def test_sync_imports_exactly_with_every_fault_and_a_killed_batch_worker(ctx):
    expected = json.loads(sim_get(ctx, "/users/expected?" + CONTENT).body)
    want = expected_users(ctx, CONTENT)
    assert len(want) == expected["distinct_user_names"]
    reset_sync_state(ctx)
    reclaimed_before = queue_stats(ctx)["user-sync-batch"]["reclaimed"]
    restore = configure_sync(ctx, "%s/users?%s&%s&format=json" % (legacy_base(ctx), CONTENT, FAULTS))
    legacy_down = False
    try:
        # The legacy API is down when the run starts: the run keeps retrying from the start.
        ctx.stack("stop-one", "legacy-api")
        legacy_down = True
        r = api(ctx, "POST", "/api/sync", 202)
        run_id = r.json["id"]
        assert r.json["status"] in ("PENDING", "RUNNING"), r.json
        again = api(ctx, "POST", "/api/sync", 200)
        assert again.json["id"] == run_id, "a second trigger during a run must return that run"
        ctx.wait_until(lambda: run_of(ctx, run_id)["attempts"] >= 2, timeout=30, what="failed attempts")
        assert run_of(ctx, run_id)["status"] == "RUNNING"
        assert api(ctx, "POST", "/api/sync", 200).json["id"] == run_id
        ctx.stack("start-one", "legacy-api")
        legacy_down = False

        # A batch worker killed while batches are in flight.
        ctx.wait_until(lambda: run_of(ctx, run_id)["batches"]["done"] >= 6, timeout=60, what="batches done")
        kill_while_holding_batches(ctx, "sync-2")
        time.sleep(1.0)
        ctx.stack("start-one", "sync-2")
        ctx.wait_healthy("sync-2", timeout=30)

        run = wait_finished(ctx, run_id, timeout=150)
        assert run["status"] == "COMPLETED", run
        assert run["valid"] == expected["valid"] and run["invalid"] == expected["corrupt"], (run, expected)
        assert run["duplicates"] == expected["duplicates"], (run, expected)
        assert run["received"] >= COUNT and run["attempts"] >= 3, run
        check_counts_add_up(run)
        check_attempts(ctx, run)
        assert run["rejected"] == 0, run

        got = stored_users(ctx)
        assert len(got) == len(want), "stored %d legacy users, want %d" % (len(got), len(want))
        wrong = [k for k in want if got.get(k) != want[k]]
        assert not wrong, "%d users differ, e.g. %r vs %r" % (len(wrong), got.get(wrong[0]), want[wrong[0]])
        assert sum(1 for u in got.values() if u[4]) == expected["deleted_final"]

        # invalid records are listed, by the simulator's kinds, without record content
        errors, cursor = [], ""
        while True:
            e = api(ctx, "GET", "/api/sync/%s/errors?limit=100&include_total=true%s" % (run_id, cursor), 200).json
            errors += e["data"]
            if not e["has_more"]:
                break
            cursor = "&cursor=" + e["next_cursor"]
        assert e["total"] == len(errors) == expected["corrupt"], (e["total"], len(errors))
        # the deprecated page= gives the same records in the same order
        paged, page = [], 1
        while True:
            e = api(ctx, "GET", "/api/sync/%s/errors?page=%d&limit=100" % (run_id, page), 200).json
            paged += e["data"]
            if not e["has_more"]:
                break
            page += 1
        assert paged == errors
        kinds = {}
        for x in errors:
            kinds[x["reason"].split(":")[0]] = kinds.get(x["reason"].split(":")[0], 0) + 1
        assert kinds == expected["corrupt_by_kind"], (kinds, expected["corrupt_by_kind"])
        positions = [x["position"] for x in errors]
        assert positions == sorted(positions) and len(set(positions)) == len(positions)

        assert queue_stats(ctx)["user-sync-batch"]["reclaimed"] > reclaimed_before, \
            "the killed worker's batch was never reclaimed"
        status = api(ctx, "GET", "/api/sync/status", 200).json
        assert status["id"] == run_id and status["progress"]["active"] is False, status
        hist = api(ctx, "GET", "/api/sync/history?limit=1", 200).json
        assert hist["data"][0]["id"] == run_id, hist
        jobs = api(ctx, "GET", "/api/job-runs?run_id=%s&limit=100&include_total=true" % run_id, 200).json
        assert jobs["total"] >= run["batches"]["total"], jobs["total"]

        # after completion: a new run, and the same data changes nothing (NDJSON this time)
        configure_sync(ctx, "%s/users?%s&%s" % (legacy_base(ctx), CONTENT, FAULTS))  # undone by restore()
        r2 = api(ctx, "POST", "/api/sync", 202)
        assert r2.json["id"] != run_id
        run2 = wait_finished(ctx, r2.json["id"], timeout=120)
        assert run2["status"] == "COMPLETED", run2
        assert run2["unchanged"] == run2["valid"] == expected["valid"], run2
        assert run2["inserted"] == run2["updated"] == run2["deleted"] == 0, run2
        assert run2["invalid"] == expected["corrupt"] and run2["duplicates"] == expected["duplicates"], run2
        check_counts_add_up(run2)
        assert stored_users(ctx) == got
    finally:
        if legacy_down:
            ctx.stack("start-one", "legacy-api")
        restore()


test_sync_imports_exactly_with_every_fault_and_a_killed_batch_worker.timeout = 300


def test_sync_run_survives_its_stream_reader_being_killed(ctx):
    content = "count=20000&seed=77&corrupt_rate=0.02&dup_rate=0.1&delete_rate=0.1"
    expected = json.loads(sim_get(ctx, "/users/expected?" + content).body)
    reset_sync_state(ctx)
    # 5,000 records/s: the stream lasts about 4 s, long enough to kill its reader midway
    restore = configure_sync(ctx, "%s/users?%s&rate=5000" % (legacy_base(ctx), content))
    try:
        run_id = api(ctx, "POST", "/api/sync", 202).json["id"]
        ctx.wait_until(lambda: run_of(ctx, run_id)["received"] >= 3000, timeout=30, what="streaming")
        owner = ctx.psql("SELECT lease_owner FROM sync.sync_runs WHERE id = '%s'" % run_id).out
        victim = owner.split(":")[0]
        assert victim in ctx.instances_of("sync"), owner
        ctx.stack("stop-one", victim, "KILL")
        time.sleep(0.5)
        ctx.stack("start-one", victim)
        ctx.wait_healthy(victim, timeout=30)
        run = wait_finished(ctx, run_id, timeout=90)
        assert run["status"] == "COMPLETED", run
        assert run["attempts"] >= 2, run
        assert run["valid"] == expected["valid"] and run["invalid"] == expected["corrupt"], (run, expected)
        assert run["duplicates"] == expected["duplicates"]
        attempts = check_attempts(ctx, run)
        assert any(a[1] == "abandoned" for a in attempts), attempts
        check_counts_add_up(run)
        n = int(ctx.psql("SELECT count(*) FROM customers.users WHERE source = 'legacy'").out)
        assert n == expected["distinct_user_names"], (n, expected)
    finally:
        restore()


test_sync_run_survives_its_stream_reader_being_killed.timeout = 180
