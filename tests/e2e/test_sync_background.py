"""sync-service's background work beyond the import itself: the reaper, batches customers-service
refuses, and the schedule. (Coverage showed these paths untested: sync_maint.c and the failure
branch of sync_worker.c.)

- The reaper settles runs whose lease expired, as a crashed instance leaves them (set up directly in
  the database): a PROCESSING run whose batches all finished becomes COMPLETED, or FAILED naming how
  many batches failed; one whose queued batches are no longer in the job queue is FAILED ("N
  batches were lost from the queue"); a RUNNING run whose lease expired more often than
  SYNC_MAX_RESUMES is FAILED and its streaming attempt marked abandoned.
- A batch customers-service refuses for good (422) or answers with a body that is not the bulk
  upsert's answer is not retried: the batch is recorded failed, its job dead-lettered and audited
  (GET /api/job-runs), and the run ends FAILED "1 of 1 batches failed". A 500 (a failure that may
  pass) is retried as a new job attempt, and the run completes with the counts of the answer that
  finally came. customers-service is replaced for that by a scripted server of the test's own
  (CUSTOMERS_URL of the sync instances), which also hands out the service token.

- The legacy API failing: an answer that cannot get better (404, an unsupported content type)
  fails the run at once; one that may (503, a stream cut before the JSON array closed) is read
  again until SYNC_STREAM_MAX_ATTEMPTS, then the run fails naming the last error; a stream that
  is whole on a later attempt completes the run. The legacy API is a scripted server there too.
- SYNC_CRON: with "* * * * *" both instances wake at every minute and exactly one of them (the
  one whose SET NX of sync:cron:<minute> wins) creates a run with trigger "schedule", which
  imports like any other.

Each test restarts the sync instances with test settings (test_sync.configure_sync) and restores
them in a `finally`.
"""

import http.server
import json
import threading
import uuid

from lib import new_cid
from test_sync import (ACTIVE, api, configure_sync, legacy_base, queue_stats, reset_sync_state, run_of,
                       wait_finished)

SMALL_IMPORT = "count=30&seed=11&corrupt_rate=0&dup_rate=0&delete_rate=0&format=json"


def _left_behind(ctx, batches=(), streaming_attempt=False, **cols):
    """A sync run as a crashed instance leaves it (its lease expired a second ago): the run with
    these columns (SQL expressions), its batches (statuses, in order) and optionally an attempt
    still marked streaming, inserted in one transaction so the reaper never sees half of it.
    Returns the run's id."""
    rid = str(uuid.uuid4())
    cols = dict({"id": "'%s'" % rid, "trigger": "'api'", "correlation_id": "'%s'" % new_cid("reaper"),
                 "started_at": "now() - interval '1 minute'", "lease_owner": "'gone-instance'",
                 "lease_expires_at": "now() - interval '1 second'", "attempts": "1"}, **cols)
    sql = ["INSERT INTO sync.sync_runs (%s) VALUES (%s)" % (", ".join(cols), ", ".join(cols.values()))]
    for seq, status in enumerate(batches):
        sql.append("INSERT INTO sync.sync_batches (run_id, seq, digest, records, first_position, status)"
                   " VALUES ('%s', %d, 'd%d', 10, %d, '%s')" % (rid, seq, seq, seq * 10, status))
    if streaming_attempt:
        sql.append("INSERT INTO sync.sync_attempts (run_id, attempt) VALUES ('%s', 1)" % rid)
    ctx.psql("; ".join(sql))
    return rid


def _reaped(ctx, rid, timeout=20):
    return ctx.wait_until(lambda: (lambda r: r if r["status"] not in ACTIVE else None)(run_of(ctx, rid)),
                          timeout=timeout, interval=0.2, what="the reaper finishing run %s" % rid)


def test_reaper_settles_fails_and_gives_up_on_runs_left_behind(ctx):
    reset_sync_state(ctx)
    restore = configure_sync(ctx, "%s/users?%s" % (legacy_base(ctx), SMALL_IMPORT), {"SYNC_MAX_RESUMES": "2"})
    try:
        # every batch finished, the instance died before settling the run
        rid = _left_behind(ctx, ["done", "done"], status="'PROCESSING'", stream_ended_at="now()",
                           batches_total="2", batches_done="2")
        r = _reaped(ctx, rid)
        assert r["status"] == "COMPLETED" and r["error"] is None and r["finished_at"], r

        # one batch failed: the run fails and says how many
        rid = _left_behind(ctx, ["done", "failed"], status="'PROCESSING'", stream_ended_at="now()",
                           batches_total="2", batches_done="1", batches_failed="1")
        r = _reaped(ctx, rid)
        assert r["status"] == "FAILED" and r["error"] == "1 of 2 batches failed", r

        # a batch still queued in the database but no job left in the queue: lost
        assert all(q["waiting"] + q["active"] + q["delayed"] == 0
                   for q in (queue_stats(ctx)["user-sync-batch"],)), queue_stats(ctx)
        rid = _left_behind(ctx, ["done", "queued", "queued"], status="'PROCESSING'", stream_ended_at="now()",
                           batches_total="3", batches_done="1")
        r = _reaped(ctx, rid)
        assert r["status"] == "FAILED" and r["error"] == "2 batches were lost from the queue", r

        # the stream's reader lost its lease more often than SYNC_MAX_RESUMES (2) allows
        rid = _left_behind(ctx, streaming_attempt=True, status="'RUNNING'", resumes="2")
        r = _reaped(ctx, rid)
        assert r["status"] == "FAILED" and r["error"] == "lease expired 3 times: given up", r
        assert ctx.psql("SELECT outcome || ' ' || error FROM sync.sync_attempts WHERE run_id = '%s'" % rid).out == \
            "abandoned owner lost its lease"
        # nothing was enqueued for it: the queues stay idle
        q = queue_stats(ctx)["user-sync"]
        assert q["waiting"] + q["active"] + q["delayed"] == 0, q
    finally:
        restore()
test_reaper_settles_fails_and_gives_up_on_runs_left_behind.timeout = 180


class FakeCustomers:
    """customers-service reduced to a script: POST /api/auth/token hands out a token, each POST
    /internal/users/bulk-upsert takes the next answer of `answers` (the last one repeats). An
    answer is (status, body) where body "ok" means the bulk upsert's answer counting every record
    of the batch as inserted."""

    def __init__(self):
        self.answers = [(200, "ok")]
        self.batches = 0
        self.lock = threading.Lock()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path == "/api/auth/token":
                    return self.answer(200, {"access_token": "fake.service.token", "token_type": "Bearer",
                                             "expires_in": 300})
                if self.path != "/internal/users/bulk-upsert":
                    return self.answer(404, {"error": {"code": "not_found", "message": "no", "details": None,
                                                       "correlation_id": None}})
                with fake.lock:
                    status, out = fake.answers[min(fake.batches, len(fake.answers) - 1)]
                    fake.batches += 1
                if out == "ok":
                    lines = [l for l in body.split(b"\n") if l]
                    out = {"inserted": len(lines), "updated": 0, "deleted": 0, "unchanged": 0, "invalid": []}
                return self.answer(status, out)

            def answer(self, status, out):
                data = out.encode() if isinstance(out, str) else json.dumps(out).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]

    def script(self, *answers):
        with self.lock:
            self.answers = list(answers)
            self.batches = 0

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class FakeLegacy:
    """The legacy API reduced to a script: each GET takes the next (status, content type, body) of
    `answers` (the last one repeats)."""

    def __init__(self):
        self.answers = []
        self.gets = 0
        self.lock = threading.Lock()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                with fake.lock:
                    status, ctype, body = fake.answers[min(fake.gets, len(fake.answers) - 1)]
                    fake.gets += 1
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = "http://127.0.0.1:%d/users" % self.server.server_address[1]

    def script(self, *answers):
        with self.lock:
            self.answers = list(answers)
            self.gets = 0

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _legacy_records(tag, n):
    return json.dumps([{"id": 900000 + i, "userName": "fzlegacy_%s_%d" % (tag, i), "email": "fz%s%d@example.test" % (tag, i),
                        "name": "Legacy %d" % i, "createdAt": "2020-01-01T00:00:00Z", "updatedAt": "2020-01-02T00:00:00Z",
                        "deleted": False} for i in range(n)])


def test_the_legacy_api_failing_fails_the_run_at_once_or_after_the_last_attempt(ctx):
    reset_sync_state(ctx)
    fake = FakeLegacy()
    restore = configure_sync(ctx, fake.url, {"SYNC_STREAM_MAX_ATTEMPTS": "3"})
    try:
        cases = (
            ([(404, "application/json", "{}")], "FAILED", 1, "legacy API answered 404"),
            ([(200, "text/html", "<html></html>")], "FAILED", 1, "legacy API answered an unsupported content type"),
            ([(503, "application/json", "{}")], "FAILED", 3,
             "the legacy stream failed 3 times; last error: legacy API answered 503"),
        )
        for answers, status, attempts, error in cases:
            fake.script(*answers)
            run = _run_once(ctx)
            assert (run["status"], run["attempts"], run["error"]) == (status, attempts, error), run
            assert fake.gets == attempts, "the legacy API was asked %d times, want %d" % (fake.gets, attempts)
        # cut before the array closed, whole the second time: the run completes from the second read
        tag = uuid.uuid4().hex[:8]
        whole = _legacy_records(tag, 2)
        fake.script((200, "application/json", whole[:-20]), (200, "application/json", whole))
        run = _run_once(ctx)
        assert (run["status"], run["attempts"], run["valid"], run["inserted"]) == ("COMPLETED", 2, 2, 2), run
        names = ctx.psql("SELECT string_agg(user_name, ',' ORDER BY user_name) FROM customers.users"
                         " WHERE user_name LIKE 'fzlegacy_%s_%%'" % tag).out
        assert names == "fzlegacy_%s_0,fzlegacy_%s_1" % (tag, tag), names
    finally:
        try:
            restore()
        finally:
            fake.close()
test_the_legacy_api_failing_fails_the_run_at_once_or_after_the_last_attempt.timeout = 240


def _run_once(ctx):
    run_id = api(ctx, "POST", "/api/sync", 202).json["id"]
    return wait_finished(ctx, run_id, 60)


def _batch_jobs(ctx, run_id):
    r = api(ctx, "GET", "/api/job-runs?queue=user-sync-batch&run_id=%s&limit=100" % run_id, 200).json["data"]
    return sorted(r, key=lambda j: j["attempt"])


def test_batches_customers_service_refuses_fail_the_run_and_are_dead_lettered(ctx):
    reset_sync_state(ctx)
    fake = FakeCustomers()
    restore = configure_sync(ctx, "%s/users?%s" % (legacy_base(ctx), SMALL_IMPORT),
                             {"CUSTOMERS_URL": fake.url, "SYNC_BATCH_MAX_ATTEMPTS": "3"})
    try:
        for answer, error in (((422, {"error": {"code": "validation_failed", "message": "no", "details": None,
                                                "correlation_id": None}}), "customers-service answered 422"),
                              ((200, "{\"inserted\": \"many\"}"), "malformed bulk-upsert answer")):
            dead_before = queue_stats(ctx)["user-sync-batch"]["dead"]
            fake.script(answer)
            run = _run_once(ctx)
            assert run["status"] == "FAILED" and run["error"] == "1 of 1 batches failed", run
            assert run["batches"] == {"total": 1, "done": 0, "failed": 1}, run
            assert run["inserted"] == 0 and run["valid"] == 30, run
            assert fake.batches == 1, "a batch refused for good was sent %d times" % fake.batches
            jobs = _batch_jobs(ctx, run["id"])
            assert [(j["status"], j["error"]) for j in jobs] == [("failed", error)], jobs
            assert queue_stats(ctx)["user-sync-batch"]["dead"] == dead_before + 1, "the job was not dead-lettered"

        # a 500 may pass: the job is tried again and the run completes with the later answer
        retried_before = queue_stats(ctx)["user-sync-batch"]["retried"]
        fake.script((500, {"error": {"code": "internal_error", "message": "boom", "details": None,
                                     "correlation_id": None}}), (200, "ok"))
        run = _run_once(ctx)
        assert run["status"] == "COMPLETED" and run["error"] is None, run
        assert run["batches"] == {"total": 1, "done": 1, "failed": 0} and run["inserted"] == 30, run
        jobs = _batch_jobs(ctx, run["id"])
        assert [(j["attempt"], j["status"]) for j in jobs] == [(1, "failed"), (2, "completed")], jobs
        assert jobs[0]["error"] == "customers-service answered 500", jobs
        assert queue_stats(ctx)["user-sync-batch"]["retried"] == retried_before + 1
    finally:
        try:
            restore()
        finally:
            fake.close()
test_batches_customers_service_refuses_fail_the_run_and_are_dead_lettered.timeout = 240


def test_the_schedule_starts_one_run_per_minute_whatever_the_number_of_instances(ctx):
    reset_sync_state(ctx)
    before = {r["id"] for r in api(ctx, "GET", "/api/sync/history?limit=100", 200).json["data"]}
    restore = configure_sync(ctx, "%s/users?%s" % (legacy_base(ctx), SMALL_IMPORT), {"SYNC_CRON": "* * * * *"})
    try:
        def scheduled():
            runs = [r for r in api(ctx, "GET", "/api/sync/history?limit=100", 200).json["data"] if r["id"] not in before]
            return runs if runs else None
        runs = ctx.wait_until(scheduled, timeout=75, interval=0.5, what="a scheduled run")
        run = wait_finished(ctx, runs[0]["id"], 60)
        assert run["trigger"] == "schedule" and run["status"] == "COMPLETED", run
        assert run["valid"] == 30 and run["inserted"] + run["unchanged"] + run["updated"] == 30, run
        minute = run["created_at"][:16]
        same_minute = [r for r in api(ctx, "GET", "/api/sync/history?limit=100", 200).json["data"]
                       if r["id"] not in before and r["created_at"][:16] == minute]
        assert len(same_minute) == 1, "two instances both started a run for %s: %r" % (minute, same_minute)
        keys = ctx.redis_cli("KEYS", "sync:cron:*").split()
        owners = {ctx.redis_cli("GET", k) for k in keys}
        assert owners and owners <= set(ctx.instances_of("sync")), (keys, owners)
    finally:
        restore()
test_the_schedule_starts_one_run_per_minute_whatever_the_number_of_instances.timeout = 240
