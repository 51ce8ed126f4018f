"""sync-service event ingestion end to end, through Nginx: POST /api/events and /batch into the
Redis stream, the consumers' batched writes into sync.events, the query API, stats, dead letters
and their replay, and every failure the issue names.

What is checked:
- every event type is accepted (202 with its id) and is in the table exactly once; invalid,
  forbidden, malformed and oversized requests queue nothing; a batch accepts its valid events
  even when others are rejected; a client retry with the same eventId is one row;
- the list is the caller's own (admins: everyone's), keyset-paged without gaps or repeats; the
  stats count what was accepted and written; the logs never carry an event's content;
- (restarting the sync instances with test settings, restored in `finally`) size-triggered and
  time-triggered flushes are both observed (/metrics events_batches_total by trigger); the
  per-client rate limit answers 429 with Retry-After; a backlog over the high-water mark answers
  503 with Retry-After; SIGTERM writes what the consumers hold;
- (stopping or killing parts of the stack) Redis down → 503 with Retry-After and nothing lost
  after it returns; PostgreSQL stopped 10 s during a stream of events → every accepted event
  written once it is back; a poison event → a dead letter with PostgreSQL's reason while its
  batch-mates are written, replayed after the fix, and a second replay writes nothing twice; a
  sync instance SIGKILLed while its consumer holds a batch → every accepted event exactly once;
  retention drops old partitions whole and keeps the rest.
Every response of the events API is checked against docs/openapi.yaml (test_customers_auth.call).
"""

import json
import os
import signal
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

from lib import parse_prometheus
from test_customers_auth import admin_session, call, new_session
from test_customers_tokens import service_token

TYPES = ("view", "purchase", "add_to_cart", "remove_from_cart", "login", "logout", "search")
STREAM = "ev:{events}:stream"
_admin = {}


# ------------------------------------------------------------------ helpers

def admin_token(ctx):
    if "t" not in _admin or _admin["exp"] < time.time():
        _admin["t"] = admin_session(ctx)["access"]
        _admin["exp"] = time.time() + 600
    return _admin["t"]


def sid(tag="e2e"):
    """A session id of its own, so each test counts only its own rows."""
    return "%s-%s" % (tag, os.urandom(6).hex())


def post(ctx, token, event, status=202, code=None):
    r = call(ctx, "POST", "/api/events", status, code, body=event, token=token)
    if status == 202:
        assert r.json["status"] == "accepted" and uuid.UUID(r.json["id"]), r.json
    return r


def post_batch(ctx, token, events, status=202, code=None):
    return call(ctx, "POST", "/api/events/batch", status, code, body={"events": events}, token=token)


def rows(ctx, where):
    return int(ctx.psql("SELECT count(*) FROM sync.events WHERE %s" % where).out)


def count_ids(ctx, ids):
    """{id: number of rows} for the given event ids."""
    if not ids:
        return {}
    lst = ",".join("'%s'" % i for i in ids)
    out = ctx.psql("SELECT event_id, count(*) FROM sync.events WHERE event_id IN (%s) GROUP BY 1" % lst).out
    got = {i: 0 for i in ids}
    for line in out.splitlines():
        k, n = line.split("|")
        got[k] = int(n)
    return got


def wait_stored(ctx, ids, timeout=30):
    """Waits until every id is in the table; then asserts each is there exactly once."""
    ids = list(ids)
    ctx.wait_until(lambda: all(n >= 1 for n in count_ids(ctx, ids).values()), timeout=timeout, interval=0.25,
                   what="%d events written" % len(ids))
    counts = count_ids(ctx, ids)
    twice = {k: n for k, n in counts.items() if n != 1}
    assert not twice, "events not stored exactly once: %r" % list(twice.items())[:5]


def metric(ctx, name, labels=None):
    """Sum of a metric over both sync instances (straight to each instance)."""
    total = 0.0
    for inst in ctx.instances_of("sync"):
        r = ctx.http("GET", ctx.direct(inst, "/metrics"))
        assert r.status == 200, r.status
        samples, _ = parse_prometheus(r.body.decode())
        for n, l, v in samples:
            if n == name and all(l.get(k) == w for k, w in (labels or {}).items()):
                total += v
    return total


def configure(ctx, settings):
    """Restarts both sync instances with extra settings; returns restore() (which restarts them
    with their original environment)."""
    saved = ctx.override_env("sync", settings)
    return lambda: ctx.restore_env("sync", saved)


def iso(dt):
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def pending_of(ctx, instance):
    """Stream entries delivered to `instance`'s consumers and not yet acknowledged."""
    out = ctx.redis_cli("XPENDING", STREAM, "writers").splitlines()
    pairs = out[3:]
    return sum(int(pairs[i + 1]) for i in range(0, len(pairs) - 1, 2) if pairs[i].startswith(instance + "-"))


# ------------------------------------------------------------------ the API

def test_events_need_a_token(ctx):
    call(ctx, "POST", "/api/events", 401, body={"eventType": "view", "sessionId": "s"})
    call(ctx, "GET", "/api/events", 401)
    call(ctx, "GET", "/api/events/stats", 401)


def test_every_type_is_accepted_and_stored_exactly_once(ctx):
    u = new_session(ctx)
    s = sid("types")
    ids = {}
    for t in TYPES:
        r = post(ctx, u["access"], {"eventType": t, "sessionId": s, "eventData": {"sku": "A-1", "n": 2}})
        ids[r.json["id"]] = t
    wait_stored(ctx, ids)
    # the stored rows are the events as sent, with the token's subject as userId
    out = ctx.psql("SELECT event_id, event_type, user_id, event_data->>'sku' FROM sync.events WHERE session_id = '%s'"
                   % s).out
    stored = {line.split("|")[0]: line.split("|")[1:] for line in out.splitlines()}
    assert len(stored) == len(TYPES)
    for i, t in ids.items():
        assert stored[i] == [t, u["id"], "A-1"], (i, stored[i])
    # and the list shows them to their user, newest first
    r = call(ctx, "GET", "/api/events", 200, path="/api/events?sessionId=%s" % s, token=u["access"])
    assert sorted(e["id"] for e in r.json["data"]) == sorted(ids), r.json
    times = [e["occurredAt"] for e in r.json["data"]]
    assert times == sorted(times, reverse=True), times
    e = r.json["data"][0]
    assert e["userId"] == u["id"] and e["sessionId"] == s and e["eventData"] == {"sku": "A-1", "n": 2}, e


def test_invalid_requests_queue_nothing(ctx):
    u = new_session(ctx)
    s = sid("invalid")
    r = post(ctx, u["access"], {"eventType": "click", "sessionId": s, "eventData": [1], "color": "red"}, 422,
             "validation_failed")
    fields = r.json["error"]["details"]["fields"]
    assert set(fields) == {"eventType", "eventData", "color"}, fields
    r = post(ctx, u["access"], {"eventType": "view"}, 422, "validation_failed")
    assert "sessionId" in r.json["error"]["details"]["fields"], r.json
    r = post(ctx, u["access"], {"eventType": "view", "sessionId": s, "occurredAt": "2026-01-01"}, 422)
    assert "occurredAt" in r.json["error"]["details"]["fields"]
    future = iso(datetime.now(timezone.utc) + timedelta(hours=25))
    r = post(ctx, u["access"], {"eventType": "view", "sessionId": s, "occurredAt": future}, 422)
    assert r.json["error"]["details"]["fields"]["occurredAt"] == "must not be more than 24 hours in the future"
    r = post(ctx, u["access"], {"eventType": "view", "sessionId": s, "eventId": "123"}, 422)
    # eventData over 16 KiB is a field error, the body itself is fine
    big = {"eventType": "view", "sessionId": s, "eventData": {"k": "x" * (16 * 1024)}}
    r = post(ctx, u["access"], big, 422, "validation_failed")
    assert r.json["error"]["details"]["fields"]["eventData"] == "must be at most 16384 bytes as JSON"
    # malformed JSON, a body that is not an object, the wrong media type, a body over 64 KiB
    call(ctx, "POST", "/api/events", 400, "malformed_json", raw='{"eventType": "view",', token=u["access"],
         headers={"Content-Type": "application/json"})
    call(ctx, "POST", "/api/events", 400, raw='[1]', token=u["access"], headers={"Content-Type": "application/json"})
    call(ctx, "POST", "/api/events", 415, raw='eventType=view', token=u["access"],
         headers={"Content-Type": "application/x-www-form-urlencoded"})
    huge = {"eventType": "view", "sessionId": s, "eventData": {"k": "x" * (70 * 1024)}}
    r = post(ctx, u["access"], huge, 413, "payload_too_large")
    assert r.json["error"]["details"]["max_bytes"] == 65536, r.json
    time.sleep(2.5)   # more than a flush: anything queued would be written by now
    assert rows(ctx, "session_id = '%s'" % s) == 0


def test_a_user_may_not_send_events_as_another_user(ctx):
    u, other = new_session(ctx), new_session(ctx)
    s = sid("forbid")
    post(ctx, u["access"], {"eventType": "login", "sessionId": s, "userId": other["id"]}, 403, "forbidden")
    r = post(ctx, u["access"], {"eventType": "login", "sessionId": s, "userId": u["id"]})
    r2 = post(ctx, admin_token(ctx), {"eventType": "login", "sessionId": s, "userId": other["id"]})
    r3 = post(ctx, service_token(ctx), {"eventType": "logout", "sessionId": s, "userId": other["id"]})
    wait_stored(ctx, [r.json["id"], r2.json["id"], r3.json["id"]])
    out = ctx.psql("SELECT user_id FROM sync.events WHERE session_id = '%s' ORDER BY occurred_at" % s).out
    assert out.splitlines() == [u["id"], other["id"], other["id"]], out


def test_a_batch_accepts_its_valid_events(ctx):
    u = new_session(ctx)
    s = sid("batch")
    r = post_batch(ctx, u["access"], [
        {"eventType": "view", "sessionId": s},
        {"eventType": "nope", "sessionId": s},
        {"eventType": "add_to_cart", "sessionId": s, "eventData": {"sku": "B"}},
        "not an object",
        {"eventType": "purchase", "sessionId": s, "userId": "someone-else"},
        {"eventType": "search", "sessionId": s, "eventData": {"q": "tab\there \\ \"quoted\" \u00e9"}},
    ])
    b = r.json
    assert (b["accepted"], b["rejected"]) == (3, 3), b
    assert [x["status"] for x in b["results"]] == ["accepted", "rejected", "accepted", "rejected", "rejected",
                                                   "accepted"], b
    assert [x["index"] for x in b["results"]] == list(range(6))
    assert b["results"][1]["error"]["code"] == "validation_failed"
    assert "eventType" in b["results"][1]["error"]["details"]["fields"]
    assert b["results"][4]["error"]["code"] == "forbidden"
    ids = [x["id"] for x in b["results"] if x["status"] == "accepted"]
    wait_stored(ctx, ids)
    q = ctx.psql("SELECT event_data->>'q' FROM sync.events WHERE session_id = '%s' AND event_type = 'search'" % s).out
    assert q == "tab\there \\ \"quoted\" \u00e9", repr(q)
    # the envelope itself: 1..500 events, nothing else, at most 1 MiB
    post_batch(ctx, u["access"], [], 422, "validation_failed")
    r = post_batch(ctx, u["access"], [{"eventType": "view", "sessionId": s}] * 501, 422, "validation_failed")
    assert "events" in r.json["error"]["details"]["fields"]
    call(ctx, "POST", "/api/events/batch", 422, "validation_failed", body={"events": [], "extra": 1},
         token=u["access"])
    many = [{"eventType": "view", "sessionId": s, "eventData": {"k": "x" * 2200}} for _ in range(480)]
    assert len(json.dumps({"events": many})) > 1024 * 1024
    call(ctx, "POST", "/api/events/batch", 413, body={"events": many}, token=u["access"])
    time.sleep(2)
    assert rows(ctx, "session_id = '%s'" % s) == 3


def test_a_retry_with_the_same_event_id_is_one_row(ctx):
    u = new_session(ctx)
    s = sid("retry")
    eid = str(uuid.uuid4())
    ev = {"eventType": "purchase", "sessionId": s, "eventId": eid, "eventData": {"order": 17}}
    assert post(ctx, u["access"], ev).json["id"] == eid
    assert post(ctx, u["access"], ev).json["id"] == eid   # the client did not get the first answer
    r = post_batch(ctx, u["access"], [ev, ev])            # and again, twice in one batch
    assert [x["id"] for x in r.json["results"]] == [eid, eid]
    eid2 = str(uuid.uuid4()).upper()
    ev2 = {"eventType": "view", "sessionId": s, "eventId": eid2,
           "occurredAt": iso(datetime.now(timezone.utc) - timedelta(hours=1))}
    assert post(ctx, u["access"], ev2).json["id"] == eid2.lower()
    wait_stored(ctx, [eid, eid2.lower()])
    time.sleep(2)   # the later copies were written too by now (as duplicates, not as rows)
    assert rows(ctx, "session_id = '%s'" % s) == 2
    assert metric(ctx, "events_duplicates_total", {"type": "purchase"}) >= 1


def test_the_list_is_the_callers_own_and_pages_without_gaps(ctx):
    u, other = new_session(ctx), new_session(ctx)
    s = sid("list")
    base = datetime.now(timezone.utc) - timedelta(minutes=30)
    ids = []
    for i in range(7):
        r = post(ctx, u["access"], {"eventType": TYPES[i], "sessionId": s, "occurredAt": iso(base + timedelta(seconds=i))})
        ids.append(r.json["id"])
    mine = post(ctx, other["access"], {"eventType": "view", "sessionId": s}).json["id"]
    wait_stored(ctx, ids + [mine])
    # pages of 3 through the user's 7 events, newest first, each once
    seen, cursor = [], None
    while True:
        path = "/api/events?sessionId=%s&limit=3" % s + ("&cursor=%s" % cursor if cursor else "")
        page = call(ctx, "GET", "/api/events", 200, path=path, token=u["access"]).json
        assert page["limit"] == 3 and len(page["data"]) <= 3
        seen += [e["id"] for e in page["data"]]
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        cursor = page["next_cursor"]
    assert seen == ids[::-1], seen
    # the other user sees only their own; another user's id is 403; an admin sees both
    r = call(ctx, "GET", "/api/events", 200, path="/api/events?sessionId=%s" % s, token=other["access"])
    assert [e["id"] for e in r.json["data"]] == [mine]
    call(ctx, "GET", "/api/events", 403, "forbidden", path="/api/events?userId=%s" % u["id"], token=other["access"])
    r = call(ctx, "GET", "/api/events", 200, path="/api/events?sessionId=%s&include_total=true" % s,
             token=admin_token(ctx))
    assert r.json["total"] == 8 and len(r.json["data"]) == 8, r.json
    # filters: type, and a time window [from, to)
    r = call(ctx, "GET", "/api/events", 200, path="/api/events?sessionId=%s&type=purchase" % s, token=u["access"])
    assert [e["id"] for e in r.json["data"]] == [ids[1]]
    path = "/api/events?sessionId=%s&from=%s&to=%s" % (s, iso(base + timedelta(seconds=2)), iso(base + timedelta(seconds=5)))
    r = call(ctx, "GET", "/api/events", 200, path=path, token=u["access"])
    assert [e["id"] for e in r.json["data"]] == ids[2:5][::-1], r.json
    # bad parameters name themselves
    r = call(ctx, "GET", "/api/events", 400, "validation_failed", path="/api/events?limit=501&type=x&from=yesterday&cursor=abc",
             token=u["access"])
    assert set(r.json["error"]["details"]["fields"]) == {"limit", "type", "from", "cursor"}, r.json
    call(ctx, "GET", "/api/events", 400, "validation_failed", path="/api/events?page=2", token=u["access"])


def test_stats_and_metrics_count_what_happened(ctx):
    admin = admin_token(ctx)
    before = call(ctx, "GET", "/api/events/stats", 200, token=admin).json
    u = new_session(ctx)
    call(ctx, "GET", "/api/events/stats", 403, "forbidden", token=u["access"])
    s = sid("stats")
    ids = [post(ctx, u["access"], {"eventType": "remove_from_cart", "sessionId": s}).json["id"] for _ in range(5)]
    wait_stored(ctx, ids)

    def counted():
        now = call(ctx, "GET", "/api/events/stats", 200, token=admin).json
        t, b = now["types"]["remove_from_cart"], before["types"]["remove_from_cart"]
        return now if t["accepted"] >= b["accepted"] + 5 and t["written"] >= b["written"] + 5 else None
    now = ctx.wait_until(counted, timeout=10, interval=0.3, what="stats counted the events")
    assert now["batches"]["written"] > before["batches"]["written"]
    assert now["batches"]["avg_size"] > 0 and now["batches"]["avg_write_ms"] > 0
    assert now["events_per_s_1m"] > 0
    assert now["queue"]["depth"] >= 0 and now["queue"]["lag_ms"] >= 0
    assert isinstance(now["dead"], int)
    assert metric(ctx, "events_accepted_total", {"type": "remove_from_cart"}) >= 5
    assert metric(ctx, "events_written_total", {"type": "remove_from_cart"}) >= 5
    assert metric(ctx, "events_commit_latency_seconds_count") >= 5
    assert metric(ctx, "events_batch_size_count") >= 1
    assert ctx.http("GET", "/metrics").status == 404   # never through Nginx


def test_logs_never_carry_an_events_content(ctx):
    u = new_session(ctx)
    secret = "pii-" + os.urandom(8).hex()
    s = sid("pii")
    r = post(ctx, u["access"], {"eventType": "search", "sessionId": s, "eventData": {"email": secret + "@example.test"}})
    post(ctx, u["access"], {"eventType": "search", "sessionId": secret}, 202)
    post(ctx, u["access"], {"eventType": "bogus", "sessionId": secret, "eventData": {"q": secret}}, 422)
    wait_stored(ctx, [r.json["id"]])
    time.sleep(0.5)   # the services write their buffered log lines every 100 ms
    for name in ctx.instances_of("sync"):
        assert secret not in ctx.logs(name), "%s logged an event's content" % name


# ------------------------------------------------------------------ with test settings (restarts)

def test_size_and_time_triggered_flushes(ctx):
    before_size = metric(ctx, "events_batches_total", {"trigger": "size"})
    before_time = metric(ctx, "events_batches_total", {"trigger": "time"})
    restore = configure(ctx, {"EVENTS_BATCH_MAX": "50", "EVENTS_FLUSH_MS": "4000"})
    try:
        u = new_session(ctx)
        # the metrics restarted with the instances
        assert metric(ctx, "events_batches_total", {"trigger": "size"}) == 0
        # one event: it waits for the timer, not for 49 more
        s = sid("time")
        eid = post(ctx, u["access"], {"eventType": "view", "sessionId": s}).json["id"]
        t0 = time.monotonic()
        time.sleep(1.5)
        assert rows(ctx, "session_id = '%s'" % s) == 0, "written before the flush time"
        wait_stored(ctx, [eid], timeout=15)
        assert time.monotonic() - t0 >= 3.0
        ctx.wait_until(lambda: metric(ctx, "events_batches_total", {"trigger": "time"}) >= 1, timeout=5)
        # 100 events at once: two full batches, written without waiting for the timer
        s = sid("size")
        r = post_batch(ctx, u["access"], [{"eventType": "search", "sessionId": s} for _ in range(100)])
        t0 = time.monotonic()
        ids = [x["id"] for x in r.json["results"]]
        wait_stored(ctx, ids, timeout=15)
        assert time.monotonic() - t0 < 3.5, "took %.1f s: the size trigger did not fire" % (time.monotonic() - t0)
        assert metric(ctx, "events_batches_total", {"trigger": "size"}) >= 2
    finally:
        restore()
    assert before_size >= 0 and before_time >= 0


test_size_and_time_triggered_flushes.timeout = 150


def test_a_client_over_its_rate_gets_429_with_retry_after(ctx):
    restore = configure(ctx, {"EVENTS_RATE_PER_S": "5", "EVENTS_RATE_BURST": "500"})
    try:
        u, other = new_session(ctx), new_session(ctx)
        s = sid("rate")
        # each instance lets a client send a burst of 500 and then 5 per second: with two instances,
        # six batches of 500 within a second or two cannot all pass
        codes, limited = [], None
        for _ in range(6):
            r = call(ctx, "POST", "/api/events/batch", body={"events": [{"eventType": "view", "sessionId": s}] * 500},
                     token=u["access"])
            codes.append(r.status)
            if r.status == 429:
                limited = r
        assert set(codes) <= {202, 429} and codes.count(429) >= 1, codes
        assert limited.json["error"]["code"] == "rate_limited"
        assert int(limited.headers["Retry-After"]) >= 1
        post(ctx, other["access"], {"eventType": "view", "sessionId": s})   # another client is not limited
        time.sleep(2)
        assert rows(ctx, "session_id = '%s'" % s) == 500 * codes.count(202) + 1
    finally:
        restore()


test_a_client_over_its_rate_gets_429_with_retry_after.timeout = 150


def test_a_backlog_over_the_high_water_mark_is_503(ctx):
    # no consumers: the stream only grows; 20 waiting events is the mark
    restore = configure(ctx, {"EVENTS_CONSUMERS": "0", "EVENTS_QUEUE_HIGH_WATER": "20", "EVENTS_BUSY_RETRY_AFTER_S": "7"})
    ids = []
    try:
        u = new_session(ctx)
        s = sid("backlog")
        r = post_batch(ctx, u["access"], [{"eventType": "login", "sessionId": s} for _ in range(30)])
        ids = [x["id"] for x in r.json["results"]]

        def refused():
            r = call(ctx, "POST", "/api/events", body={"eventType": "login", "sessionId": s}, token=u["access"])
            if r.status == 202:
                ids.append(r.json["id"])
                return None
            return r
        r = ctx.wait_until(refused, timeout=10, interval=0.1, what="503 over the high-water mark")
        assert r.status == 503 and r.json["error"]["code"] == "events_backlogged", r.json
        assert r.headers["Retry-After"] == "7"
        assert metric(ctx, "events_backpressure") >= 1
    finally:
        restore()
    wait_stored(ctx, ids)   # the backlog is written once consumers run again


test_a_backlog_over_the_high_water_mark_is_503.timeout = 150


def test_sigterm_writes_what_the_consumers_hold(ctx):
    restore = configure(ctx, {"EVENTS_FLUSH_MS": "600000"})
    stopped = False
    try:
        u = new_session(ctx)
        s = sid("sigterm")
        ids = [post(ctx, u["access"], {"eventType": "logout", "sessionId": s}).json["id"] for _ in range(6)]
        ctx.wait_until(lambda: int(ctx.redis_cli("XPENDING", STREAM, "writers").splitlines()[0] or 0) >= 6,
                       timeout=10, what="the consumers hold the events")
        assert rows(ctx, "session_id = '%s'" % s) == 0
        for name in ctx.instances_of("sync"):
            ctx.stack("stop-one", name)   # SIGTERM, waits for the exit
        stopped = True
        counts = count_ids(ctx, ids)
        assert all(n == 1 for n in counts.values()), counts
        assert ctx.redis_cli("XLEN", STREAM) == "0"   # written, acknowledged and deleted
    finally:
        if stopped:
            for name in ctx.instances_of("sync"):
                ctx.stack("start-one", name)
        restore()


test_sigterm_writes_what_the_consumers_hold.timeout = 150


# ------------------------------------------------------------------ faults

def test_redis_down_is_503_and_nothing_is_lost(ctx):
    u = new_session(ctx)
    svc = service_token(ctx)   # a service token needs no session lookup, so the request reaches the stream
    s = sid("redis")
    first = post(ctx, u["access"], {"eventType": "view", "sessionId": s}).json["id"]
    wait_stored(ctx, [first])
    ctx.stack("stop-one", "redis")
    try:
        r = call(ctx, "POST", "/api/events", 503, "queue_unavailable", body={"eventType": "view", "sessionId": s},
                 token=svc)
        assert int(r.headers["Retry-After"]) >= 1
        r = call(ctx, "POST", "/api/events/batch", 503, body={"events": [{"eventType": "view", "sessionId": s}]},
                 token=svc)
        assert int(r.headers["Retry-After"]) >= 1
    finally:
        ctx.stack("start-one", "redis")
        for name in ctx.instances_of("sync"):
            ctx.wait_healthy(name, timeout=30)
    # accepted again once Redis is back, and written (the consumers reconnect by themselves)
    ids = [post(ctx, svc, {"eventType": "search", "sessionId": s, "userId": u["id"]}).json["id"] for _ in range(3)]
    wait_stored(ctx, ids, timeout=30)
    assert rows(ctx, "session_id = '%s'" % s) == 4


test_redis_down_is_503_and_nothing_is_lost.timeout = 120


def test_postgres_stopped_for_10s_loses_nothing(ctx):
    u = new_session(ctx)
    token = u["access"]
    s = sid("pgdown")
    accepted, failures, stop = [], [], threading.Event()

    def stream():
        while not stop.is_set():
            try:
                r = ctx.http("POST", "/api/events", body={"eventType": "view", "sessionId": s},
                             headers={"Authorization": "Bearer " + token}, timeout=5)
                if r.status == 202:
                    accepted.append(r.json["id"])
                else:
                    failures.append(r.status)
            except OSError as e:
                failures.append(str(e))
            time.sleep(0.05)
    th = threading.Thread(target=stream, daemon=True)
    th.start()
    try:
        time.sleep(2)
        ctx.stack("stop-one", "postgres")
        down_at = len(accepted)
        time.sleep(10)
        during = len(accepted) - down_at
        ctx.stack("start-one", "postgres")
        time.sleep(3)
    finally:
        stop.set()
        th.join(10)
        ctx.stack("start-one", "postgres", check=False)
    assert during > 20, "events must be accepted while PostgreSQL is down (%d were)" % during
    assert not failures, failures[:5]
    wait_stored(ctx, accepted, timeout=60)
    assert rows(ctx, "session_id = '%s'" % s) == len(accepted)
    for name in ctx.instances_of("sync"):
        ctx.wait_healthy(name, timeout=30)


test_postgres_stopped_for_10s_loses_nothing.timeout = 180


def test_a_poison_event_is_dead_lettered_its_batch_mates_written_and_replayed_after_a_fix(ctx):
    admin = admin_token(ctx)
    u = new_session(ctx)
    s = sid("poison")
    poison_session = "poison-" + s
    ctx.psql("ALTER TABLE sync.events ADD CONSTRAINT e2e_no_poison CHECK (session_id <> '%s')" % poison_session)
    fixed = False
    try:
        events = [{"eventType": "add_to_cart", "sessionId": s, "eventData": {"i": i}} for i in range(9)]
        events.insert(4, {"eventType": "purchase", "sessionId": poison_session, "eventData": {"order": 1}})
        r = post_batch(ctx, u["access"], events)
        ids = [x["id"] for x in r.json["results"]]
        bad = ids[4]

        def dead_letter():
            page = call(ctx, "GET", "/api/events/dead", 200, path="/api/events/dead?type=purchase", token=admin).json
            return next((d for d in page["data"] if d["eventId"] == bad), None)
        d = ctx.wait_until(dead_letter, timeout=30, interval=0.3, what="the poison event dead-lettered")
        assert d["sqlstate"] == "23514" and "e2e_no_poison" in d["reason"], d
        assert d["replayedAt"] is None and d["attempts"] >= 1
        assert d["event"]["sessionId"] == poison_session and d["event"]["eventData"] == {"order": 1}, d
        wait_stored(ctx, ids[:4] + ids[5:])   # every batch-mate is written
        assert count_ids(ctx, [bad])[bad] == 0
        stats = call(ctx, "GET", "/api/events/stats", 200, token=admin).json
        assert stats["dead"] >= 1 and stats["types"]["purchase"]["dead"] >= 1, stats
        call(ctx, "POST", "/api/events/dead/replay", 403, body={"ids": [bad]}, token=u["access"])
        call(ctx, "POST", "/api/events/dead/replay", 422, "validation_failed", body={}, token=admin)
        # the fix, then the replay
        ctx.psql("ALTER TABLE sync.events DROP CONSTRAINT e2e_no_poison")
        fixed = True
        r = call(ctx, "POST", "/api/events/dead/replay", 200, body={"ids": [bad]}, token=admin)
        assert r.json == {"replayed": 1, "ids": [bad], "has_more": False}, r.json
        wait_stored(ctx, [bad])
        # replayed twice: nothing outstanding to replay, nothing written twice
        r = call(ctx, "POST", "/api/events/dead/replay", 200, body={"ids": [bad]}, token=admin)
        assert r.json["replayed"] == 0, r.json
        page = call(ctx, "GET", "/api/events/dead", 200, path="/api/events/dead?status=replayed&type=purchase",
                    token=admin).json
        assert any(x["eventId"] == bad and x["replayedAt"] for x in page["data"]), page
        time.sleep(2)
        assert count_ids(ctx, [bad])[bad] == 1
        assert rows(ctx, "session_id IN ('%s', '%s')" % (s, poison_session)) == 10
    finally:
        if not fixed:
            ctx.psql("ALTER TABLE sync.events DROP CONSTRAINT IF EXISTS e2e_no_poison", check=False)


test_a_poison_event_is_dead_lettered_its_batch_mates_written_and_replayed_after_a_fix.timeout = 120


def test_a_consumer_killed_mid_batch_loses_and_duplicates_nothing(ctx):
    # writes take 3 s (a statement trigger sleeps), so a batch is in flight long enough to kill its
    # consumer; another instance's consumer takes the batch over after the visibility timeout
    restore = configure(ctx, {"EVENTS_VISIBILITY_MS": "3000"})
    ctx.psql("CREATE OR REPLACE FUNCTION sync.e2e_slow() RETURNS trigger LANGUAGE plpgsql AS "
             "$$BEGIN PERFORM pg_sleep(3); RETURN NULL; END$$")
    ctx.psql("CREATE TRIGGER e2e_slow AFTER INSERT ON sync.events FOR EACH STATEMENT EXECUTE FUNCTION sync.e2e_slow()")
    slow = True
    victim = None
    try:
        u = new_session(ctx)
        s = sid("kill")
        ids = []
        for _ in range(4):
            r = post_batch(ctx, u["access"], [{"eventType": "view", "sessionId": s} for _ in range(100)])
            ids += [x["id"] for x in r.json["results"]]
        # freeze an instance while it holds entries, then kill it
        for _ in range(200):
            for name in ctx.instances_of("sync"):
                pid = ctx.pid_of(name)
                ctx.signal_pid(pid, signal.SIGSTOP)
                if pending_of(ctx, name) > 0:
                    victim = name
                    break
                ctx.signal_pid(pid, signal.SIGCONT)
            if victim:
                break
            time.sleep(0.05)
        assert victim, "no instance ever held a batch"
        ctx.stack("stop-one", victim, "KILL")
        ctx.psql("DROP TRIGGER e2e_slow ON sync.events")
        slow = False
        wait_stored(ctx, ids, timeout=60)
        assert rows(ctx, "session_id = '%s'" % s) == len(ids)
    finally:
        if slow:
            ctx.psql("DROP TRIGGER IF EXISTS e2e_slow ON sync.events", check=False)
        ctx.psql("DROP FUNCTION IF EXISTS sync.e2e_slow()", check=False)
        if victim:
            ctx.stack("start-one", victim)
        restore()


test_a_consumer_killed_mid_batch_loses_and_duplicates_nothing.timeout = 180


def test_retention_drops_old_partitions_and_keeps_the_rest(ctx):
    u = new_session(ctx)
    s = sid("retention")
    now = datetime.now(timezone.utc)
    old = post(ctx, u["access"], {"eventType": "view", "sessionId": s, "occurredAt": iso(now - timedelta(days=5))})
    kept = post(ctx, u["access"], {"eventType": "view", "sessionId": s, "occurredAt": iso(now - timedelta(days=1))})
    wait_stored(ctx, [old.json["id"], kept.json["id"]])
    old_part = "events_p" + (now - timedelta(days=5)).strftime("%Y%m%d")
    kept_part = "events_p" + (now - timedelta(days=1)).strftime("%Y%m%d")
    ahead_part = "events_p" + (now + timedelta(days=3)).strftime("%Y%m%d")
    exists = "SELECT to_regclass('sync.%s') IS NOT NULL"
    assert ctx.psql(exists % old_part).out == "t"
    restore = configure(ctx, {"EVENTS_RETENTION_DAYS": "3"})
    try:
        ctx.wait_until(lambda: ctx.psql(exists % old_part).out == "f", timeout=20, what="old partition dropped")
        assert ctx.psql(exists % kept_part).out == "t"
        assert ctx.psql(exists % ahead_part).out == "t"
        assert count_ids(ctx, [old.json["id"], kept.json["id"]]) == {old.json["id"]: 0, kept.json["id"]: 1}
        # the window now refuses what it would not keep
        r = post(ctx, u["access"], {"eventType": "view", "sessionId": s, "occurredAt": iso(now - timedelta(days=4))},
                 422)
        assert r.json["error"]["details"]["fields"]["occurredAt"] == "is older than the retention period"
    finally:
        restore()
    assert ctx.psql(exists % old_part).out == "t"   # recreated (empty) for the 90-day window


test_retention_drops_old_partitions_and_keeps_the_rest.timeout = 150
