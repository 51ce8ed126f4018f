"""The same database trouble answers the same way in every service (issue 15).

Each scenario sends one read to every service while PostgreSQL is in trouble and compares what
comes back: the status, the error code and message, and Retry-After must be the same in
customers-service, transactions-service and sync-service.

- statement timeout: the tables behind the reads are locked (ACCESS EXCLUSIVE) by another
  session, so each service's query waits until its DB_STATEMENT_TIMEOUT_MS cancels it (57014):
  503 database_timeout, Retry-After;
- connection lost during a query: the same lock, and while the services' queries wait on it
  their backends are terminated (pg_terminate_backend, 57P01): 503 database_unavailable,
  Retry-After;
- outage: PostgreSQL is stopped (scripts/stack stop-one postgres): 503 database_unavailable,
  Retry-After, both straight to an instance and through Nginx; PostgreSQL is started again in
  `finally` and every service answers 200 again without a restart.

Probes go straight to one instance of each service (Nginx retries a 503 on the other instance
and marks instances down after two failures, which would turn later answers into its own 502);
the outage scenario also sends one request per service through Nginx.
"""

import subprocess
import threading
import time

from lib import assert_envelope, new_cid
from test_customers_auth import admin_session, call

LOCKED_TABLES = ("customers.users", "transactions.transactions", "sync.job_runs")
SERVICE_ROLES = ("customers_svc", "transactions_svc", "sync_svc")


def _probes(ctx, session, fresh_user_id):
    """(label, instance, path) of one uncached read per service, each reading a locked table (the
    transactions list with a filter: its newest unfiltered page may be cached, txlist_cache.h)."""
    return [
        ("customers list", "customers-1", "/api/users?limit=1"),
        ("customers get", "customers-2", "/api/users/" + fresh_user_id),
        ("transactions list", "transactions-1", "/api/transactions?limit=1&type=deposit"),
        ("sync job runs", "sync-1", "/api/job-runs?limit=1"),
    ]


def _fresh_user(ctx, session):
    """A user nobody has read yet (so no cache holds it): GET /api/users/{id} must ask PostgreSQL."""
    name = "dbfault" + new_cid("u")[-10:].replace("-", "").lower()
    r = call(ctx, "POST", "/api/users", 201, token=session["access"],
             body={"user_name": name, "email": name + "@example.com", "name": "DB Fault",
                   "password": "Correct-Horse-Battery-9"})
    return r.json["id"]


def _statement_timeout_s(ctx):
    return int(ctx.env_of("customers-1").get("DB_STATEMENT_TIMEOUT_MS") or 5000) / 1000.0


def _answer(ctx, session, instance, path, timeout):
    cid = new_cid("dbfault")
    r = ctx.http("GET", ctx.direct(instance, path), timeout=timeout,
                 headers={"Authorization": "Bearer " + session["access"], "X-Correlation-ID": cid})
    return r, cid


def _same_answers(answers, status, code):
    """answers: label -> (response, cid). All must be `status` with `code`, one message and one
    Retry-After between them."""
    seen = set()
    for label, (r, cid) in answers.items():
        assert r.status == status, "%s: %d %r, expected %d %s" % (label, r.status, r.body[:300], status, code)
        assert_envelope(r, status, cid)
        err = r.json["error"]
        assert err["code"] == code, "%s: code %r, expected %r" % (label, err["code"], code)
        ra = r.headers.get("Retry-After")
        assert ra and ra.isdigit() and int(ra) >= 1, "%s: Retry-After %r" % (label, ra)
        seen.add((r.status, err["code"], err["message"], ra))
    assert len(seen) == 1, "the services answer the same trouble differently: %r" % sorted(seen)
    return seen.pop()


class _TableLock:
    """Holds ACCESS EXCLUSIVE locks on LOCKED_TABLES from a psql session until released."""

    def __init__(self, ctx):
        self.ctx = ctx
        conninfo = ctx.pg_conninfo or "host=%s/pg/sock port=%d dbname=platform user=postgres" % (
            ctx.run_dir, ctx.pg_port)
        self.p = subprocess.Popen(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", conninfo],
                                  stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True)
        self.p.stdin.write("BEGIN;\nLOCK TABLE %s IN ACCESS EXCLUSIVE MODE;\n" % ", ".join(LOCKED_TABLES))
        self.p.stdin.flush()
        names = ", ".join("'%s'::regclass" % t for t in LOCKED_TABLES)
        ctx.wait_until(lambda: ctx.psql(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'relation' AND mode = 'AccessExclusiveLock' "
            "AND granted AND relation IN (%s)" % names).out == str(len(LOCKED_TABLES)),
            10, interval=0.1, what="the tables locked")

    def release(self):
        if self.p.poll() is None:
            try:
                self.p.stdin.write("ROLLBACK;\n")
                self.p.stdin.close()
            except BrokenPipeError:
                pass
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def _in_parallel(ctx, session, probes, timeout):
    answers = {}

    def one(label, instance, path):
        answers[label] = _answer(ctx, session, instance, path, timeout)
    threads = [threading.Thread(target=one, args=p) for p in probes]
    for t in threads:
        t.start()
    return threads, answers


def _waiting_backends(ctx):
    roles = ", ".join("'%s'" % r for r in SERVICE_ROLES)
    out = ctx.psql("SELECT usename || ' ' || pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                   "AND usename IN (%s)" % roles).out
    return [line.split() for line in out.splitlines() if line.strip()]


def _all_answer_200(ctx, session, probes):
    for label, instance, path in probes:
        r, _ = _answer(ctx, session, instance, path, 10)
        if r.status != 200:
            return False
    return True


def test_a_statement_timeout_answers_503_database_timeout_in_every_service(ctx):
    session = admin_session(ctx)
    probes = _probes(ctx, session, _fresh_user(ctx, session))
    limit_s = _statement_timeout_s(ctx)
    lock = _TableLock(ctx)
    try:
        t0 = time.monotonic()
        threads, answers = _in_parallel(ctx, session, probes, limit_s + 15)
        for t in threads:
            t.join(limit_s + 20)
        took = time.monotonic() - t0
    finally:
        lock.release()
    assert len(answers) == len(probes), "some probes never answered: %r" % sorted(answers)
    assert took >= limit_s * 0.8, "answered after %.1fs, before the %.1fs statement timeout" % (took, limit_s)
    print("     %s after %.1fs (statement timeout %.1fs)" % (
        _same_answers(answers, 503, "database_timeout"), took, limit_s))
    assert _all_answer_200(ctx, session, probes), "a service does not answer 200 once the lock is gone"


def test_a_connection_lost_during_a_query_answers_503_database_unavailable_in_every_service(ctx):
    session = admin_session(ctx)
    probes = _probes(ctx, session, _fresh_user(ctx, session))
    limit_s = _statement_timeout_s(ctx)
    lock = _TableLock(ctx)
    killed = []
    try:
        threads, answers = _in_parallel(ctx, session, probes, limit_s + 15)
        # every probe's query is waiting on the lock (the customers instance has two)
        ctx.wait_until(lambda: len(_waiting_backends(ctx)) >= len(probes), limit_s * 0.6, interval=0.05,
                       what="every service's query waiting on the lock")
        for role, pid in _waiting_backends(ctx):
            ctx.psql("SELECT pg_terminate_backend(%d)" % int(pid))
            killed.append(role)
        for t in threads:
            t.join(limit_s + 20)
    finally:
        lock.release()
    assert set(killed) == set(SERVICE_ROLES), "terminated backends of %r only" % killed
    assert len(answers) == len(probes), "some probes never answered: %r" % sorted(answers)
    print("     %s" % (_same_answers(answers, 503, "database_unavailable"),))
    assert _all_answer_200(ctx, session, probes), "a service does not answer 200 after its backend was terminated"


def test_postgres_down_answers_503_database_unavailable_in_every_service(ctx):
    session = admin_session(ctx)
    probes = _probes(ctx, session, _fresh_user(ctx, session))
    try:
        ctx.stack("stop-one", "postgres")
        ctx.wait_until(lambda: not ctx.port_open(ctx.pg_port), 10, what="postgres port closed")
        answers = {label: _answer(ctx, session, instance, path, 15) for label, instance, path in probes}
        for path in ("/api/users?limit=1", "/api/transactions?limit=1&type=deposit", "/api/job-runs?limit=1"):
            cid = new_cid("dbfault")
            answers["nginx " + path] = (ctx.http("GET", path, timeout=15, headers={
                "Authorization": "Bearer " + session["access"], "X-Correlation-ID": cid}), cid)
        print("     %s" % (_same_answers(answers, 503, "database_unavailable"),))
    finally:
        if not ctx.port_open(ctx.pg_port):
            ctx.stack("start-one", "postgres")
    ctx.wait_until(lambda: ctx.port_open(ctx.pg_port), 20, what="postgres back")
    ctx.wait_until(lambda: _all_answer_200(ctx, session, probes), 15, interval=0.2,
                   what="every service answering 200 again without a restart")
    # Nginx marked the instances down after their 503s: wait until it routes to them again.
    for path in ("/api/users?limit=1", "/api/transactions?limit=1&type=deposit", "/api/job-runs?limit=1"):
        ctx.wait_until(lambda: ctx.http("GET", path, timeout=5, headers={
            "Authorization": "Bearer " + session["access"]}).status == 200, 12, interval=0.2,
            what="%s through nginx again" % path)


test_a_statement_timeout_answers_503_database_timeout_in_every_service.timeout = 60
test_a_connection_lost_during_a_query_answers_503_database_unavailable_in_every_service.timeout = 60
test_postgres_down_answers_503_database_unavailable_in_every_service.timeout = 90
