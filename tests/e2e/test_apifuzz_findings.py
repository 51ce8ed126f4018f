"""What the API fuzzer (tests/apifuzz) found, one plain test per finding, so each stays fixed even
when a fuzz run does not happen to generate that request again.

- /health/ready of transactions-service and sync-service: the circuit-breaker checks broke the
  documented schema (sync's had no `time`; both report the state as a string, which the schema
  did not allow).
- POST /api/auth/login, /api/auth/refresh and /api/auth/token accepted unknown body fields (a
  login with an extra field started a session) although their schemas are closed objects.
- POST /api/auth/logout with a service token answered an undocumented 400 (now documented).
- GET /admin/queues from a browser (Accept: text/html) answered an undocumented 303 (now documented).
- The dashboard's dead-job actions took an entry id whose part is past 2^64-1 (it matches the
  documented pattern) to Redis, whose script failed: 500 instead of 404 job_not_found.
"""

from lib import new_cid
import openapi_check as oc
from test_customers_auth import call, login, new_session
from test_customers_tokens import service_client, service_token


def test_readiness_of_every_instance_matches_the_documented_schema(ctx):
    for name in ctx.instances:
        r = ctx.http("GET", ctx.direct(name, "/health/ready"), headers={"X-Correlation-ID": new_cid("fz")})
        body = oc.check(r, "GET", "/health/ready", 200)
        for key, observations in body.get("checks", {}).items():
            if key.endswith(":circuitBreaker"):
                c = observations[0]
                assert c["observedValue"] in ("closed", "half_open", "open"), (name, c)
                assert c["time"], (name, c)


def _unknown_field(resp, field):
    fields = (resp.json["error"].get("details") or {}).get("fields") or {}
    assert fields.get(field) == "unknown field", resp.json


def test_login_refuses_unknown_fields_and_starts_no_session(ctx):
    s = new_session(ctx)
    before = ctx.redis_cli("SCARD", "user_sessions:" + s["id"])
    r = call(ctx, "POST", "/api/auth/login", 400, "validation_failed",
             body={"login": s["user_name"], "password": s["password"], "remember_me": True})
    _unknown_field(r, "remember_me")
    assert ctx.redis_cli("SCARD", "user_sessions:" + s["id"]) == before, "a refused login created a session"
    login(ctx, s["user_name"], s["password"])        # the same credentials alone still work


def test_refresh_refuses_unknown_fields_and_keeps_the_token(ctx):
    s = new_session(ctx)
    r = call(ctx, "POST", "/api/auth/refresh", 400, "validation_failed",
             body={"refresh_token": s["refresh"], "scope": "admin"})
    _unknown_field(r, "scope")
    # nothing was rotated: the token still refreshes once
    call(ctx, "POST", "/api/auth/refresh", 200, body={"refresh_token": s["refresh"]})


def test_service_token_refuses_unknown_fields(ctx):
    client_id, secret = service_client(ctx, "sync")
    r = call(ctx, "POST", "/api/auth/token", 400, "validation_failed",
             body={"client_id": client_id, "client_secret": secret, "user_id": None})
    _unknown_field(r, "user_id")
    call(ctx, "POST", "/api/auth/token", 200, body={"client_id": client_id, "client_secret": secret})


def test_logout_with_a_service_token_is_a_documented_400(ctx):
    call(ctx, "POST", "/api/auth/logout", 400, "no_session", token=service_token(ctx, "sync"))


def test_a_browser_asking_for_the_queues_is_sent_to_the_dashboard_as_documented(ctx):
    r = ctx.http("GET", "/admin/queues", headers={"Accept": "text/html", "X-Correlation-ID": new_cid("fz")})
    oc.check(r, "GET", "/admin/queues", 303)
    assert r.headers.get("Location") == "/admin/dashboard", r.headers.get("Location")


def _operator(ctx):
    """Authorization, Cookie and X-CSRF-Token of a dashboard session of the operator."""
    import base64
    import re
    env = ctx.env_of("sync-1")
    path = env["QUEUE_DASHBOARD_PASSWORD_FILE"]
    with open(path if path.startswith("/") else ctx.repo + "/" + path, encoding="utf-8") as f:
        basic = "Basic " + base64.b64encode(("%s:%s" % (env.get("QUEUE_DASHBOARD_USER", "operator"),
                                                          f.read().rstrip("\n"))).encode()).decode()
    r = ctx.http("GET", "/admin/dashboard", headers={"Authorization": basic})
    assert r.status == 200, (r.status, r.body[:200])
    token = re.search(rb'<meta name="csrf-token" content="([0-9a-f]+)"', r.body).group(1).decode()
    return {"Authorization": basic, "Cookie": r.headers["Set-Cookie"].split(";")[0], "X-CSRF-Token": token}


def test_dead_job_actions_with_an_entry_id_redis_refuses_answer_404(ctx):
    hdrs = _operator(ctx)
    for entry in ("1-20001112055500000000", "18446744073709551616-0"):
        for action in ("retry", "remove"):
            path = "/admin/dashboard/api/queues/user-sync-batch/dead/%s/%s" % (entry, action)
            r = ctx.http("POST", path, headers=dict(hdrs, **{"X-Correlation-ID": new_cid("fz")}))
            oc.check(r, "POST", "/admin/dashboard/api/queues/{queue}/dead/{id}/" + action, 404)
            assert r.json["error"]["code"] == "job_not_found", r.json
