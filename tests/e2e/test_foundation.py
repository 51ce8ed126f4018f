"""Foundation end-to-end tests: what every service and the Nginx front door promise before any
business feature exists (runtime contract: health, metrics, correlation ids, error envelope,
security headers, CORS, dependency failure, configuration errors, schema isolation, graceful
shutdown).

They run against a real stack (scripts/stack up with the test environment). Tests that stop or
restart parts of the stack come last in this file and put everything back in a finally block,
so the stack is healthy for whatever runs next.
"""

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import http.client

from lib import (SERVICES, UUID4_RE, assert_envelope, new_cid, parse_prometheus, pid_alive)

ALLOWED_ORIGIN = "http://allowed.example"
OTHER_ORIGIN = "http://evil.example"
JSON_POST_ROUTE = "/api/auth/register"   # the first JSON POST route (customers-service)
TWO_MB = 2 * 1024 * 1024


def _health_json(resp, what):
    ctype = resp.headers.get("Content-Type", "")
    assert ctype.split(";")[0].strip() == "application/health+json", "%s content-type %r" % (what, ctype)
    assert isinstance(resp.json, dict), "%s body is not a JSON object: %r" % (what, resp.body[:200])
    return resp.json


def _checks_by_prefix(doc, prefix):
    checks = doc.get("checks")
    assert isinstance(checks, dict), "health document has no checks object: %r" % doc
    return {k: v for k, v in checks.items() if k.startswith(prefix)}


def _assert_check_entries(name, entries, status):
    assert isinstance(entries, list) and entries, "check %s must be a non-empty list: %r" % (name, entries)
    for e in entries:
        assert e.get("status") == status, "check %s status %r, want %r: %r" % (name, e.get("status"), status, e)
        if status == "pass":
            assert isinstance(e.get("observedValue"), (int, float)) and e["observedValue"] >= 0, \
                "check %s observedValue must be a number of ms: %r" % (name, e)
            assert e.get("observedUnit") == "ms", "check %s observedUnit %r" % (name, e.get("observedUnit"))


def _assert_ready_doc(doc, what):
    assert doc.get("status") == "pass", "%s status %r: %r" % (what, doc.get("status"), doc)
    for dep in ("postgres", "redis"):
        found = _checks_by_prefix(doc, dep)
        assert found, "%s has no check named %s*: %r" % (what, dep, doc.get("checks"))
        for name, entries in found.items():
            _assert_check_entries(name, entries, "pass")


# ------------------------------------------------------------------------------------ health
def test_nginx_health_answers_itself(ctx):
    r = ctx.http("GET", "/health")
    assert r.status == 200, r
    doc = _health_json(r, "/health")
    assert doc.get("status") == "pass", doc


def test_health_of_each_service_through_nginx_checks_postgres_and_redis(ctx):
    for svc in SERVICES:
        r = ctx.http("GET", "/health/" + svc)
        assert r.status == 200, "/health/%s -> %d %r" % (svc, r.status, r.body[:300])
        _assert_ready_doc(_health_json(r, "/health/" + svc), "/health/" + svc)


def test_each_instance_is_live_and_ready_directly(ctx):
    for inst in ctx.instances:
        r = ctx.http("GET", ctx.direct(inst, "/health/live"))
        assert r.status == 200, "%s /health/live -> %d %r" % (inst, r.status, r.body[:200])
        r = ctx.http("GET", ctx.direct(inst, "/health/ready"))
        assert r.status == 200, "%s /health/ready -> %d %r" % (inst, r.status, r.body[:300])
        _assert_ready_doc(_health_json(r, inst + " /health/ready"), inst + " /health/ready")


# ------------------------------------------------------------------------------------ metrics
def test_metrics_direct_have_route_templates_histogram_pools_and_memory(ctx):
    unknown = "/e2e-unknown-" + os.urandom(6).hex()
    for inst in ctx.instances:
        assert ctx.http("GET", ctx.direct(inst, "/health/live")).status == 200
        assert ctx.http("GET", ctx.direct(inst, unknown)).status == 404
        r = ctx.http("GET", ctx.direct(inst, "/metrics"))
        assert r.status == 200, "%s /metrics -> %d" % (inst, r.status)
        assert r.headers.get("Content-Type", "").startswith("text/plain"), r.headers.get("Content-Type")
        text = r.body.decode()
        samples, types = parse_prometheus(text)
        reqs = [(labels, v) for name, labels, v in samples if name == "http_requests_total"]
        assert types.get("http_requests_total") == "counter", "%s: http_requests_total is not a counter" % inst
        live = [v for labels, v in reqs if labels.get("route") == "/health/live"]
        assert live and sum(live) >= 1, "%s: no http_requests_total{route=\"/health/live\"}" % inst
        # Unknown paths must not become label values (unbounded cardinality).
        assert unknown not in text, "%s: raw unknown path %s leaked into metrics" % (inst, unknown)
        hist = [n for n, t in types.items() if t == "histogram"]
        assert hist, "%s: no histogram family" % inst
        buckets = [(n, l) for n, l, _ in samples if n.endswith("_bucket") and n[:-7] in hist]
        assert any(l.get("le") == "+Inf" for _, l in buckets), "%s: histogram without le=\"+Inf\" bucket" % inst
        gauges = [n for n, t in types.items() if t == "gauge" and "pool" in n]
        assert any(re.search(r"pg|postgres|db", n) for n in gauges), "%s: no postgres pool gauge in %s" % (inst, gauges)
        assert any("redis" in n for n in gauges), "%s: no redis pool gauge in %s" % (inst, gauges)
        rss = [v for n, _, v in samples if n == "process_resident_memory_bytes"]
        assert rss and rss[0] > 1024 * 1024, "%s: process_resident_memory_bytes %r" % (inst, rss)


def test_metrics_and_internal_are_not_reachable_through_nginx(ctx):
    for path in ("/metrics", "/internal/anything", "/internal/", "/health/../metrics",
                 "/api/users/metrics", "/api/sync/internal/x"):
        cid = new_cid()
        r = ctx.http("GET", path, headers={"X-Correlation-ID": cid})
        assert_envelope(r, 404, cid)
        assert b"http_requests_total" not in r.body


# ------------------------------------------------------------------------------------ correlation
def _service_log_lines_with(ctx, service, cid):
    hits = []
    for inst in ctx.instances_of(service):
        for line in ctx.logs(inst).splitlines():
            if cid in line:
                try:
                    hits.append(json.loads(line))
                except ValueError:
                    raise AssertionError("%s log line is not JSON: %r" % (inst, line[:200]))
    return hits


def test_correlation_id_is_echoed_and_logged_by_nginx_and_the_service(ctx):
    cid = new_cid()
    r = ctx.http("GET", "/health/customers", headers={"X-Correlation-ID": cid})
    assert r.status == 200, r.status
    assert r.headers.get_all("X-Correlation-ID") == [cid], r.headers.get_all("X-Correlation-ID")
    access = ctx.nginx_access_logs()
    assert access, "no nginx access log under %s/logs" % ctx.run_dir
    ctx.wait_until(lambda: any(cid in ctx.logs(n) for n in access), 2.5, what="cid in nginx access log")
    lines = ctx.wait_until(lambda: _service_log_lines_with(ctx, "customers", cid), 2.5,
                           what="cid in a customers log line")
    assert all(l.get("correlation_id") == cid for l in lines), lines
    for key in ("ts", "level", "service", "instance", "msg"):
        assert key in lines[0], "service log line lacks %s: %r" % (key, lines[0])


def test_correlation_id_direct_is_echoed_and_logged(ctx):
    for svc in SERVICES:
        inst = ctx.instances_of(svc)[0]
        cid = new_cid()
        r = ctx.http("GET", ctx.direct(inst, "/health/live"), headers={"X-Correlation-ID": cid})
        assert r.status == 200 and r.headers.get("X-Correlation-ID") == cid, (inst, r.headers.get("X-Correlation-ID"))
        ctx.wait_until(lambda: cid in ctx.logs(inst), 2.5, what="cid in %s log" % inst)


def test_insane_correlation_id_is_replaced_by_a_uuid4(ctx):
    for bad in ("a" * 200, "has spaces in it", "semi;colon", "x" * 129):
        for url in (ctx.url("/health/customers"), ctx.direct("customers-1", "/health/live"),
                    ctx.direct("sync-1", "/e2e-nope")):
            r = ctx.http("GET", url, headers={"X-Correlation-ID": bad})
            got = r.headers.get("X-Correlation-ID", "")
            assert got != bad and UUID4_RE.match(got), "%s with %r -> X-Correlation-ID %r" % (url, bad[:20], got)
    # The longest sane id (128 chars) is kept.
    edge = "e2e-" + "z" * 124
    r = ctx.http("GET", ctx.direct("customers-1", "/health/live"), headers={"X-Correlation-ID": edge})
    assert r.headers.get("X-Correlation-ID") == edge, r.headers.get("X-Correlation-ID")


def test_each_response_gets_a_fresh_uuid4_without_an_incoming_id(ctx):
    seen = set()
    for url in (ctx.url("/health/customers"), ctx.url("/health/customers"),
                ctx.direct("transactions-1", "/health/live"), ctx.direct("transactions-1", "/health/live")):
        got = ctx.http("GET", url).headers.get("X-Correlation-ID", "")
        assert UUID4_RE.match(got), "%s -> %r" % (url, got)
        seen.add(got)
    assert len(seen) == 4, "correlation ids repeat: %s" % seen


def test_x_request_id_is_used_when_x_correlation_id_is_absent(ctx):
    for url in (ctx.direct("customers-1", "/health/live"), ctx.direct("sync-2", "/health/live"),
                ctx.url("/health/transactions")):
        rid = new_cid("req")
        r = ctx.http("GET", url, headers={"X-Request-ID": rid})
        assert r.headers.get("X-Correlation-ID") == rid, "%s -> %r" % (url, r.headers.get("X-Correlation-ID"))
        cid = new_cid()
        r = ctx.http("GET", url, headers={"X-Request-ID": rid, "X-Correlation-ID": cid})
        assert r.headers.get("X-Correlation-ID") == cid, "X-Correlation-ID must win over X-Request-ID at %s" % url


# ------------------------------------------------------------------------------------ error envelope
def test_unknown_route_is_a_404_envelope_via_nginx_and_direct(ctx):
    for url in [ctx.url("/no-such-route"), ctx.url("/api/auth/e2e-no-such-route")] + \
               [ctx.direct(i, "/e2e/no/such/route") for i in ctx.instances]:
        cid = new_cid()
        assert_envelope(ctx.http("GET", url, headers={"X-Correlation-ID": cid}), 404, cid)
    # without an incoming id, the envelope carries the generated one
    r = ctx.http("GET", ctx.direct("customers-2", "/e2e-nope"))
    err = assert_envelope(r, 404)
    assert err["correlation_id"] == r.headers.get("X-Correlation-ID") and UUID4_RE.match(err["correlation_id"])


def test_wrong_method_is_a_405_with_allow(ctx):
    targets = [ctx.direct(i, "/health/live") for i in ctx.instances] + [ctx.url("/health/customers")]
    for url in targets:
        cid = new_cid()
        r = ctx.http("DELETE", url, headers={"X-Correlation-ID": cid})
        assert_envelope(r, 405, cid)
        allow = [m.strip() for m in r.headers.get("Allow", "").split(",")]
        assert "GET" in allow and "DELETE" not in allow, "%s Allow %r" % (url, r.headers.get("Allow"))
    r = ctx.http("POST", "/health", raw=b"")
    assert_envelope(r, 405)
    assert "GET" in r.headers.get("Allow", ""), r.headers.get("Allow")


def _big_json(size):
    pad = size - len(b'{"pad":""}')
    return b'{"pad":"' + b"x" * pad + b'"}'


def test_oversized_body_is_a_413_envelope_from_nginx(ctx):
    body = _big_json(TWO_MB)
    for chunked in (False, True):
        cid = new_cid()
        r = ctx.http("POST", JSON_POST_ROUTE, raw=body, chunked=chunked, timeout=20,
                     headers={"Content-Type": "application/json", "X-Correlation-ID": cid})
        assert_envelope(r, 413, cid)


def test_oversized_body_is_a_413_envelope_from_the_service(ctx):
    body = _big_json(TWO_MB)
    url = ctx.direct("customers-1", JSON_POST_ROUTE)
    for chunked in (False, True):
        cid = new_cid()
        r = ctx.http("POST", url, raw=body, chunked=chunked, timeout=20,
                     headers={"Content-Type": "application/json", "X-Correlation-ID": cid})
        assert_envelope(r, 413, cid)
    # Just over the limit (1 MiB + 1) is refused; well under it is not.
    r = ctx.http("POST", url, raw=_big_json(1048577), headers={"Content-Type": "application/json"})
    assert_envelope(r, 413)
    for chunked in (False, True):
        r = ctx.http("POST", url, raw=_big_json(900 * 1024), chunked=chunked,
                     headers={"Content-Type": "application/json"})
        assert r.status != 413 and r.status < 500, "900 KiB body (chunked=%s) -> %d %r" % (chunked, r.status, r.body[:200])


def test_malformed_json_is_a_400_envelope(ctx):
    for url in (ctx.url(JSON_POST_ROUTE), ctx.direct("customers-1", JSON_POST_ROUTE),
                ctx.direct("customers-2", JSON_POST_ROUTE)):
        for raw in (b'{"email": ', b"not json at all", b'{"a":1}{'):
            cid = new_cid()
            r = ctx.http("POST", url, raw=raw, headers={"Content-Type": "application/json", "X-Correlation-ID": cid})
            assert_envelope(r, 400, cid)


def test_wrong_content_type_is_a_415_envelope(ctx):
    body = b'{"email":"e2e@example.com","password":"correct horse battery"}'
    for url in (ctx.url(JSON_POST_ROUTE), ctx.direct("customers-1", JSON_POST_ROUTE)):
        for ctype in ("text/plain", "application/x-www-form-urlencoded", None):
            cid = new_cid()
            headers = {"X-Correlation-ID": cid}
            if ctype:
                headers["Content-Type"] = ctype
            r = ctx.http("POST", url, raw=body, headers=headers)
            assert_envelope(r, 415, cid)


# ------------------------------------------------------------------------------------ headers
def _assert_security_headers(r, what):
    h = r.headers
    assert h.get_all("X-Content-Type-Options") == ["nosniff"], "%s X-Content-Type-Options %r" % (
        what, h.get_all("X-Content-Type-Options"))
    xfo = h.get_all("X-Frame-Options") or []
    assert len(xfo) == 1 and xfo[0].upper() in ("DENY", "SAMEORIGIN"), "%s X-Frame-Options %r" % (what, xfo)
    rp = h.get_all("Referrer-Policy") or []
    assert len(rp) == 1 and rp[0], "%s Referrer-Policy %r" % (what, rp)
    assert h.get("Strict-Transport-Security") is None, "%s sends HSTS over plain http" % what


def test_security_headers_via_nginx_and_direct(ctx):
    checks = [("GET", ctx.url("/health")), ("GET", ctx.url("/health/customers")),
              ("GET", ctx.url("/no-such-route")), ("GET", ctx.url("/api/auth/e2e-nope")),
              ("DELETE", ctx.url("/health/sync")), ("POST", ctx.url("/health"))]
    for inst in ctx.instances:
        checks += [("GET", ctx.direct(inst, "/health/live")), ("GET", ctx.direct(inst, "/e2e-nope"))]
    for method, url in checks:
        _assert_security_headers(ctx.http(method, url), "%s %s" % (method, url))


# ------------------------------------------------------------------------------------ CORS
def _preflight(ctx, url, origin, method="POST"):
    return ctx.http("OPTIONS", url, headers={"Origin": origin, "Access-Control-Request-Method": method,
                                             "Access-Control-Request-Headers": "content-type"})


def _vary_has_origin(r):
    return any(v.strip().lower() == "origin" for hv in (r.headers.get_all("Vary") or []) for v in hv.split(","))


def test_cors_preflight_allows_only_configured_origins(ctx):
    targets = [(ctx.direct(ctx.instances_of(s)[0], "/health/ready"), "GET") for s in SERVICES] + \
              [(ctx.url(JSON_POST_ROUTE), "POST"), (ctx.direct("customers-1", JSON_POST_ROUTE), "POST")]
    for url, method in targets:
        r = _preflight(ctx, url, ALLOWED_ORIGIN, method)
        assert r.status == 204, "preflight %s -> %d %r" % (url, r.status, r.body[:200])
        assert r.headers.get_all("Access-Control-Allow-Origin") == [ALLOWED_ORIGIN], \
            "%s ACAO %r" % (url, r.headers.get_all("Access-Control-Allow-Origin"))
        assert _vary_has_origin(r), "%s Vary %r" % (url, r.headers.get_all("Vary"))
        assert method in r.headers.get("Access-Control-Allow-Methods", ""), \
            "%s Access-Control-Allow-Methods %r" % (url, r.headers.get("Access-Control-Allow-Methods"))
        assert "content-type" in r.headers.get("Access-Control-Allow-Headers", "").lower(), \
            "%s Access-Control-Allow-Headers %r" % (url, r.headers.get("Access-Control-Allow-Headers"))
        for origin in (OTHER_ORIGIN, ALLOWED_ORIGIN + ".evil.example", "null"):
            r = _preflight(ctx, url, origin, method)
            assert r.headers.get("Access-Control-Allow-Origin") is None, \
                "%s gave ACAO %r to %s" % (url, r.headers.get("Access-Control-Allow-Origin"), origin)


def test_cors_on_simple_requests(ctx):
    for url in (ctx.url("/health/customers"), ctx.direct("transactions-2", "/health/live")):
        r = ctx.http("GET", url, headers={"Origin": ALLOWED_ORIGIN})
        assert r.status == 200
        assert r.headers.get_all("Access-Control-Allow-Origin") == [ALLOWED_ORIGIN], \
            "%s ACAO %r" % (url, r.headers.get_all("Access-Control-Allow-Origin"))
        assert _vary_has_origin(r), "%s Vary %r" % (url, r.headers.get_all("Vary"))
        r = ctx.http("GET", url, headers={"Origin": OTHER_ORIGIN})
        assert r.status == 200 and r.headers.get("Access-Control-Allow-Origin") is None, \
            "%s ACAO %r for another origin" % (url, r.headers.get("Access-Control-Allow-Origin"))
        r = ctx.http("GET", url)
        assert r.headers.get("Access-Control-Allow-Origin") is None


# ------------------------------------------------------------------------------------ database isolation
def _db_login(ctx, inst):
    env = ctx.env_of(inst)
    if env.get("DB_PASSWORD_FILE"):
        path = env["DB_PASSWORD_FILE"]
        with open(path if os.path.isabs(path) else os.path.join(ctx.repo, path)) as f:
            password = f.read().rstrip("\n")
    else:
        password = env["DB_PASSWORD"]
    return dict(user=env["DB_USER"], password=password, host=env["DB_HOST"],
                port=int(env.get("DB_PORT", "5432")), dbname=env["DB_NAME"])


def test_each_role_sees_only_its_own_schema(ctx):
    logins = {svc: _db_login(ctx, ctx.instances_of(svc)[0]) for svc in SERVICES}
    for svc, login in logins.items():
        assert login["user"] == svc + "_svc", "%s logs in as %r" % (svc, login["user"])
        for other in SERVICES:
            if other == svc:
                continue
            r = ctx.psql("SELECT * FROM %s.schema_migrations" % other, check=False, **login)
            assert r.rc != 0 and "permission denied" in r.err, \
                "%s read %s.schema_migrations: rc=%d out=%r err=%r" % (login["user"], other, r.rc, r.out[:100], r.err)
        r = ctx.psql("CREATE TABLE public.e2e_probe_%s (i int)" % svc, check=False, **login)
        assert r.rc != 0 and "permission denied" in r.err, "%s can create in public: %r" % (login["user"], r.err)
    for svc, login in logins.items():
        n = ctx.psql("SELECT count(*) FROM %s.schema_migrations" % svc, **login).out
        assert int(n) >= 1, "%s.schema_migrations is empty (no migration applied)" % svc


# ------------------------------------------------------------------------------------ configuration
def _service_binary(ctx, service):
    return os.path.join(ctx.build_dir, service + "-service")


def _free_port(ctx):
    port = ctx.port_base + 190
    while ctx.port_open(port):
        port += 1
    return port


def test_missing_or_malformed_required_variable_exits_1_with_one_line(ctx):
    base = ctx.env_of("customers-1")          # started like the stack does: env -i + this file
    base["HTTP_PORT"] = str(_free_port(ctx))
    cases = [("DB_HOST", None), ("HTTP_PORT", "not-a-port"), ("REDIS_HOST", None)]
    for var, value in cases:
        env = dict(base)
        if value is None:
            env.pop(var, None)
        else:
            env[var] = value
        t0 = time.monotonic()
        p = subprocess.run([_service_binary(ctx, "customers")], cwd=ctx.repo, env=env,
                           capture_output=True, text=True, timeout=2)
        took = time.monotonic() - t0
        lines = [l for l in p.stderr.splitlines() if l.strip()]
        assert p.returncode == 1, "%s=%r: exit %d after %.2fs (stderr %r)" % (var, value, p.returncode, took, p.stderr[-300:])
        assert len(lines) == 1 and var in lines[0], "%s=%r: stderr must be one line naming it: %r" % (var, value, p.stderr)
        for secret_var in ("DB_PASSWORD", "REDIS_PASSWORD"):
            secret = env.get(secret_var)
            assert not secret or secret not in p.stderr + p.stdout, "%s leaked in output" % secret_var


# ------------------------------------------------------------------------------------ draining
def _spawn_probe(ctx, service, tag):
    """Start an extra instance of a service on a free port (env of <service>-1), as our child."""
    env = ctx.env_of(service + "-1")
    env["HTTP_PORT"] = str(_free_port(ctx))
    env["SERVICE_INSTANCE"] = "e2e-" + tag
    log = open(os.path.join(ctx.run_dir, "logs", "e2e-%s.log" % tag), "ab")
    try:
        child = subprocess.Popen([_service_binary(ctx, service)], cwd=ctx.repo, env=env, stdout=log,
                                 stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        log.close()
    return child, int(env["HTTP_PORT"])


def _read_http_response(sock, timeout):
    """Read one HTTP/1.1 response (Content-Length or close-delimited) -> (status, headers, body)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError("connection closed before a response (got %r)" % data[:100])
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    want = int(headers.get("content-length", "-1"))
    while want < 0 or len(body) < want:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    assert want < 0 or len(body) == want, "truncated body: %d of %d bytes" % (len(body), want)
    return status, headers, body


def test_sigterm_lets_a_request_still_being_received_finish(ctx):
    """A request whose headers arrived before SIGTERM is in flight: its body may arrive later (slow
    client, well within SHUTDOWN_GRACE_MS) and it still gets its whole response; new connections
    are refused meanwhile; the process exits 0."""
    child, port = _spawn_probe(ctx, "customers", "drain")
    sock = None
    try:
        ctx.wait_until(lambda: ctx.http("GET", "http://127.0.0.1:%d/health/live" % port, timeout=1).status == 200,
                       10, what="probe instance live")
        cid = new_cid()
        body = json.dumps({"pad": "x" * 4000}).encode()
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"POST /e2e/drain-probe HTTP/1.1\r\nHost: e2e\r\nContent-Type: application/json\r\n"
                     b"X-Correlation-ID: " + cid.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(body) +
                     body[:1000])
        time.sleep(0.3)                     # the server has read the headers and part of the body
        child.send_signal(signal.SIGTERM)
        ctx.wait_until(lambda: not ctx.port_open(port), 2, what="listener closed after SIGTERM")
        time.sleep(0.7)                     # a slow client: the rest comes well after the signal
        sock.sendall(body[1000:])
        status, headers, resp_body = _read_http_response(sock, 5)
        assert status == 404 and headers.get("x-correlation-id") == cid, (status, headers, resp_body[:200])
        assert json.loads(resp_body)["error"]["correlation_id"] == cid, resp_body[:200]
        rc = child.wait(timeout=15)
        assert rc == 0, "exit status %d after SIGTERM" % rc
    finally:
        if sock is not None:
            sock.close()
        if child.poll() is None:
            child.kill()
            child.wait(5)


test_sigterm_lets_a_request_still_being_received_finish.timeout = 40


# ------------------------------------------------------------------------------------ Redis outage
def _service_pids(ctx):
    pids = {inst: ctx.pid_of(inst) for inst in ctx.instances}
    for inst, pid in pids.items():
        assert pid and pid_alive(pid), "%s not running (pid %r)" % (inst, pid)
    return pids


def _all_ready(ctx):
    return all(ctx.http("GET", "/health/" + svc, timeout=2).status == 200 for svc in SERVICES)


def test_redis_outage_turns_readiness_503_and_recovers_without_restart(ctx):
    pids = _service_pids(ctx)
    try:
        ctx.stack("stop-one", "redis")
        ctx.wait_until(lambda: not ctx.port_open(ctx.redis_port), 5, what="redis port closed")

        def degraded():
            r = ctx.http("GET", "/health/customers", timeout=3)
            return r if r.status == 503 else None
        r = ctx.wait_until(degraded, 3, what="/health/customers 503")
        doc = _health_json(r, "/health/customers (redis down)")
        assert doc.get("status") == "fail", doc
        failing = _checks_by_prefix(doc, "redis")
        assert failing, "503 does not name a redis check: %r" % doc
        for name, entries in failing.items():
            _assert_check_entries(name, entries, "fail")
        for name, entries in _checks_by_prefix(doc, "postgres").items():
            _assert_check_entries(name, entries, "pass")
        for inst in ctx.instances:
            assert ctx.http("GET", ctx.direct(inst, "/health/live")).status == 200, "%s not live without redis" % inst
            assert ctx.http("GET", ctx.direct(inst, "/health/ready")).status == 503, "%s ready without redis" % inst
        assert _service_pids(ctx) == pids, "a service process died or restarted while redis was down"
    finally:
        if not ctx.port_open(ctx.redis_port):
            ctx.stack("start-one", "redis")
    ctx.wait_until(lambda: ctx.port_open(ctx.redis_port), 10, what="redis back")
    t0 = time.monotonic()
    for inst in ctx.instances:
        ctx.wait_until(lambda: ctx.http("GET", ctx.direct(inst, "/health/ready"), timeout=2).status == 200,
                       max(0.5, 5 - (time.monotonic() - t0)), interval=0.1, what="%s ready after redis returned" % inst)
    recovered = time.monotonic() - t0
    # Nginx counts the 503s as upstream failures (proxy_next_upstream http_503, max_fails/fail_timeout),
    # so it may take one fail_timeout longer to route again.
    ctx.wait_until(lambda: _all_ready(ctx), 8, interval=0.2, what="all services ready through nginx")
    assert _service_pids(ctx) == pids, "services were restarted (recovery must not need a restart)"
    print("     redis recovery seen after %.2fs (nginx after %.2fs)" % (recovered, time.monotonic() - t0))


# ------------------------------------------------------------------------------------ graceful shutdown
def _ready_count(ctx, inst):
    r = ctx.http("GET", ctx.direct(inst, "/metrics"), timeout=3)
    samples, _ = parse_prometheus(r.body.decode())
    return sum(v for n, l, v in samples if n == "http_requests_total" and l.get("route") == "/health/ready")


class _Load:
    """N keep-alive clients doing GET path through Nginx until stopped; counts outcomes."""

    def __init__(self, ctx, path, workers):
        self.host, self.port = "127.0.0.1", ctx.nginx_port
        self.path, self.workers = path, workers
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.status = {}
        self.errors = []
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(workers)]

    def _run(self):
        conn = None
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
                conn.request("GET", self.path)
                resp = conn.getresponse()
                resp.read()
                with self.lock:
                    self.status[resp.status] = self.status.get(resp.status, 0) + 1
                if resp.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                with self.lock:
                    self.errors.append("%s: %s" % (type(exc).__name__, exc))
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(15)


def test_sigterm_under_load_finishes_in_flight_requests_and_exits_0(ctx):
    inst = "customers-1"
    env = ctx.env_of(inst)
    port = int(env["HTTP_PORT"])
    grace_s = int(env.get("SHUTDOWN_GRACE_MS", "10000")) / 1000.0
    ctx.stack("stop-one", inst)
    ctx.wait_until(lambda: not ctx.port_open(port), 10, what="%s port closed" % inst)
    log_path = ctx.log_path(inst)
    offset = os.path.getsize(log_path) if os.path.exists(log_path) else 0
    child = None
    load = None
    try:
        # Run the instance as our own child (same binary, env and log file the stack uses), so
        # its exit status is observable.
        with open(log_path, "ab") as log:
            child = subprocess.Popen([_service_binary(ctx, "customers")], cwd=ctx.repo, env=env,
                                     stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        with open(os.path.join(ctx.run_dir, "pids", inst + ".pid"), "w") as f:
            f.write("%d\n" % child.pid)   # so `scripts/stack down` stops it should this run die
        ctx.wait_healthy(inst, 15)
        # Nginx may still hold the instance as failed from the stop; wait until it routes to it.
        before = _ready_count(ctx, inst)
        ctx.wait_until(lambda: ctx.http("GET", "/health/customers").status == 200 and
                       _ready_count(ctx, inst) > before, 8, interval=0.02, what="nginx routes to %s" % inst)
        load = _Load(ctx, "/health/customers", 16)
        load.start()
        time.sleep(1.0)
        served = _ready_count(ctx, inst)
        assert served > before + 10, "load did not reach %s (count %d -> %d)" % (inst, before, served)
        t_term = time.monotonic()
        child.send_signal(signal.SIGTERM)
        rc = child.wait(timeout=grace_s + 5)
        took = time.monotonic() - t_term
        time.sleep(max(0.0, 3.0 - took))   # keep the load running against customers-2 alone
        load.finish()
        total = sum(load.status.values())
        bad = {s: n for s, n in load.status.items() if s >= 500}
        assert not load.errors, "%d client connection errors, e.g. %s" % (len(load.errors), load.errors[:3])
        assert not bad, "5xx during shutdown: %s (of %d)" % (bad, total)
        assert total > 200 and set(load.status) == {200}, "load results %s" % load.status
        assert rc == 0, "%s exited %d after SIGTERM" % (inst, rc)
        assert took < grace_s + 1, "shutdown took %.1fs (grace %.1fs)" % (took, grace_s)
        with open(log_path, encoding="utf-8", errors="replace") as f:
            f.seek(offset)
            tail = [json.loads(l) for l in f.read().splitlines() if l.startswith("{")]
        assert any(re.search(r"shut|stop|drain|exit", str(l.get("msg", "")), re.I) for l in tail), \
            "no shutdown line in %s log: %r" % (inst, [l.get("msg") for l in tail[-5:]])
        print("     %d requests, statuses %s, %s stopped in %.0f ms" % (total, load.status, inst, took * 1000))
    finally:
        if load is not None:
            load.finish()
        if child is not None and child.poll() is None:
            child.kill()
            child.wait(5)
        ctx.stack("start-one", inst)
        ctx.wait_healthy(inst, 15)


test_sigterm_under_load_finishes_in_flight_requests_and_exits_0.timeout = 60
