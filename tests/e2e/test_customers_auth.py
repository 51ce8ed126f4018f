"""customers-service end-to-end tests: registration and login (through Nginx).

Also the home of the helpers the other customers test files import (test_customers_tokens.py,
test_customers_users.py): `call` (one request, checked against docs/openapi.yaml, the error
envelope and the never-leak-a-secret rule), `register`, `login`, `new_session`, `admin_session`
and the JWT helpers.

Decisions:
- Every user is new (random suffix), so the tests neither depend on their order nor on earlier
  runs against the same stack.
- Each request leaves from its own random loopback address (127.x.y.z; Linux routes all of
  127/8 to lo) unless a test passes `ip=`: Nginx rate-limits /api/auth per client address and the
  service counts failed logins per client address (X-Real-IP), and neither limit is what these
  tests are about. The per-account lockout is, and is independent of the address.
- Every response is validated against docs/openapi.yaml (openapi_check) and scanned for secrets
  (password hashes, any key naming a hash or secret, the plaintext password of the request).
"""

import base64
import http.client
import json
import os
import random
import re
import statistics
import time
import urllib.parse

import lib
from lib import assert_envelope, new_cid
import openapi_check as oc

TOKEN_ERROR_CODES = {"missing_token", "token_malformed", "token_alg_not_allowed", "token_unknown_kid",
                     "token_bad_signature", "token_expired", "token_not_yet_valid", "token_bad_issuer",
                     "token_bad_audience", "session_revoked"}


# ------------------------------------------------------------------------------------ requests
def random_ip():
    return "127.%d.%d.%d" % (random.randint(1, 254), random.randint(0, 255), random.randint(1, 254))


def uniq(tag="u"):
    """A fresh valid user_name: [a-z0-9_] only, 3..64 characters."""
    return "e2e_%s_%s" % (tag, os.urandom(5).hex())


def _http_from(ctx, source_ip, method, url, data, headers):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=ctx.default_timeout,
                                      source_address=(source_ip, 0))
    try:
        conn.request(method, (u.path or "/") + ("?" + u.query if u.query else ""), body=data, headers=headers)
        resp = conn.getresponse()
        payload = resp.read()
        return lib.Response(resp.status, resp.headers, payload, lib._try_json(payload))
    finally:
        conn.close()


def _walk(value, path="$"):
    if isinstance(value, dict):
        for k, v in value.items():
            yield path, k, v
            yield from _walk(v, "%s.%s" % (path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, "%s[%d]" % (path, i))


def assert_no_secrets(resp, *plaintexts):
    """No password hash, no key naming a hash/secret and none of the plaintexts in the response."""
    body = resp.body.decode("utf-8", "replace")
    assert "$argon2" not in body, "a password hash leaked: %r" % body[:300]
    assert "password_hash" not in body.lower(), "password_hash leaked: %r" % body[:300]
    for _, key, _ in _walk(resp.json):
        k = str(key).lower()
        assert "hash" not in k and "secret" not in k, "response has a key %r: %r" % (key, body[:300])
    for p in plaintexts:
        if p:
            assert p not in body, "the plaintext password is echoed: %r" % body[:300]
            assert p not in "".join("%s:%s" % kv for kv in resp.headers.items()), "password echoed in headers"


def call(ctx, method, template, status=None, code=None, path=None, body=None, token=None, raw=None,
         headers=None, instance=None, ip=None, secrets=(), timing=None):
    """One request to template (or the concrete path), through Nginx or straight to `instance`.

    Checks: the correlation id is echoed; the response matches docs/openapi.yaml for its status;
    no secret leaks; an error is the JSON envelope; when status/code are given, they match; a 401
    for a token problem carries WWW-Authenticate: Bearer. timing: a list that receives the
    round-trip time in seconds (checks excluded). Returns lib.Response."""
    path = path or template
    url = ctx.direct(instance, path) if instance else ctx.url(path)
    cid = new_cid("h8")
    hdrs = {"X-Correlation-ID": cid}
    if token is not None:
        hdrs["Authorization"] = "Bearer " + token
    hdrs.update(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        if not any(k.lower() == "content-type" for k in hdrs):
            hdrs["Content-Type"] = "application/json"
    elif raw is not None:
        data = raw.encode() if isinstance(raw, str) else raw
    t0 = time.monotonic()
    resp = _http_from(ctx, ip or random_ip(), method, url, data, hdrs)
    if timing is not None:
        timing.append(time.monotonic() - t0)
    what = "%s %s" % (method, path)
    if status is not None:
        assert resp.status == status, "%s -> %d, want %d: %r" % (what, resp.status, status, resp.body[:400])
    assert resp.headers.get("X-Correlation-ID") == cid, "%s: X-Correlation-ID %r, want %r" % (
        what, resp.headers.get("X-Correlation-ID"), cid)
    oc.check(resp, method, template)
    pw = [body.get(k) for k in ("password", "current_password", "client_secret")] if isinstance(body, dict) else []
    assert_no_secrets(resp, *(list(secrets) + [p for p in pw if isinstance(p, str) and len(p) >= 8]))
    if resp.status >= 400:
        err = assert_envelope(resp, resp.status, cid)
        if code is not None:
            assert err["code"] == code, "%s -> %d code %r, want %r: %r" % (what, resp.status, err["code"], code, resp.json)
        if resp.status == 401 and err["code"] in TOKEN_ERROR_CODES:
            assert (resp.headers.get("WWW-Authenticate") or "").startswith("Bearer"), \
                "%s -> 401 %s without WWW-Authenticate: Bearer" % (what, err["code"])
    else:
        assert code is None, "%s -> %d, want error code %r" % (what, resp.status, code)
    return resp


def err_code(resp):
    return ((resp.json or {}).get("error") or {}).get("code")


REVOCATION_BOUND_S = 1.0      # contract: a revoked session is refused everywhere within 1 s
REVOCATION_SLACK_S = 0.25     # scheduling slack for the test itself


def assert_revoked(ctx, token, since, urls=None):
    """The access token is refused with 401 session_revoked by every customers instance (directly)
    and through Nginx no later than REVOCATION_BOUND_S after `since` (time.monotonic() taken just
    before the revoking request was sent); then checked once more with every response check.
    Instances cache a positive session lookup for up to 1 s, so an earlier answer may still be 200."""
    targets = ctx.instances_of("customers") + [None]       # None: through Nginx
    deadline = since + REVOCATION_BOUND_S + REVOCATION_SLACK_S

    def code_at(inst):
        url = ctx.direct(inst, "/api/auth/me") if inst else ctx.url("/api/auth/me")
        r = ctx.http("GET", url, headers={"Authorization": "Bearer " + token})
        return err_code(r) if r.status == 401 else "status %d" % r.status

    for inst in targets:
        left = max(deadline - time.monotonic(), 0.01)
        ctx.wait_until(lambda: code_at(inst) == "session_revoked", left,
                       what="%s refuses the revoked token within %.1f s" % (inst or "nginx", REVOCATION_BOUND_S))
    for inst in targets:
        for _ in range(2):     # through Nginx: both upstreams in turn
            call(ctx, "GET", "/api/auth/me", 401, "session_revoked", token=token, instance=inst)


# ------------------------------------------------------------------------------------ users
def register(ctx, user_name=None, email=None, name=None, password=None):
    """Register a new user; returns {"user", "user_name", "email", "password", "id"}."""
    user_name = user_name or uniq()
    email = email or "%s@example.test" % user_name.replace("_", "-")
    password = password or "pw-" + os.urandom(9).hex()
    name = name or "E2E " + user_name
    r = call(ctx, "POST", "/api/auth/register", 201,
             body={"user_name": user_name, "email": email, "name": name, "password": password})
    u = r.json
    return {"user": u, "id": u["id"], "user_name": user_name, "email": email, "password": password, "name": name}


def login(ctx, login_name, password, ip=None):
    """Log in (must succeed); returns the token response JSON."""
    r = call(ctx, "POST", "/api/auth/login", 200, body={"login": login_name, "password": password}, ip=ip)
    t = r.json
    assert t["token_type"] == "Bearer" and t["expires_in"] == 900, t
    assert t["access_token"] and t["refresh_token"] and t["access_token"] != t["refresh_token"], t
    return t


def new_session(ctx, **kw):
    """A fresh registered user, logged in: register()'s dict plus "access" and "refresh"."""
    s = register(ctx, **kw)
    t = login(ctx, s["user_name"], s["password"])
    s.update(access=t["access_token"], refresh=t["refresh_token"])
    return s


def _repo_path(ctx, p):
    return p if os.path.isabs(p) else os.path.join(ctx.repo, p)


def admin_credentials(ctx):
    env = ctx.env_of("customers-1")
    name = env.get("ADMIN_USER_NAME") or "admin"
    pw_file = env.get("ADMIN_PASSWORD_FILE") or os.path.join(ctx.run_dir, "secrets", "admin_password")
    with open(_repo_path(ctx, pw_file), encoding="utf-8") as f:
        return name, f.read().rstrip("\n")


def admin_session(ctx):
    name, pw = admin_credentials(ctx)
    t = login(ctx, name, pw)
    me = call(ctx, "GET", "/api/auth/me", 200, token=t["access_token"]).json
    assert me["role"] == "admin", "the configured admin is not an admin: %r" % me
    return {"id": me["id"], "user_name": name, "password": pw, "access": t["access_token"],
            "refresh": t["refresh_token"], "user": me}


# ------------------------------------------------------------------------------------ JWT helpers
def b64u(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64u_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def jwt_parts(token):
    """(header, claims) of a compact JWS, unverified."""
    h, p, _ = token.split(".")
    return json.loads(b64u_decode(h)), json.loads(b64u_decode(p))


def jwt_compact(header, claims, signer=None):
    """header.claims.signature with signature = signer(signing_input_bytes) (b'' when None)."""
    signing_input = "%s.%s" % (b64u(json.dumps(header, separators=(",", ":"))),
                               b64u(json.dumps(claims, separators=(",", ":"))))
    sig = signer(signing_input.encode()) if signer else b""
    return signing_input + "." + b64u(sig)


def rs256_signer(private_key):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    return lambda data: private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def jwt_private_key(ctx):
    """The stack's real signing key (customers-1's JWT_PRIVATE_KEY_FILE) as a cryptography key."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    env = ctx.env_of("customers-1")
    path = env.get("JWT_PRIVATE_KEY_FILE")
    assert path, "customers-1 has no JWT_PRIVATE_KEY_FILE in its environment: %s" % sorted(env)
    with open(_repo_path(ctx, path), "rb") as f:
        return load_pem_private_key(f.read(), password=None)


def jwt_expectations(ctx):
    env = ctx.env_of("customers-1")
    return env.get("JWT_ISSUER") or "platform-customers", env.get("JWT_AUDIENCE") or "platform"


# ------------------------------------------------------------------------------------ register
def test_register_returns_the_user_without_any_secret(ctx):
    user_name = uniq("reg")
    email = "%s@Example.test" % user_name.replace("_", "-")
    password = "Reg-" + os.urandom(8).hex()
    t0 = time.time()
    r = call(ctx, "POST", "/api/auth/register", 201,
             body={"user_name": user_name, "email": email, "name": "Ada Lovelace", "password": password})
    u = r.json
    assert lib.UUID4_RE.match(u["id"]) or oc._UUID_RE.match(u["id"]), u["id"]
    assert u["user_name"] == user_name and u["name"] == "Ada Lovelace", u
    assert u["email"].lower() == email.lower(), u
    assert u["role"] == "user" and u["permissions"] == [], u
    assert u["source"] == "local" and u["legacy_id"] is None, u
    assert u["deleted"] is False and u["deleted_at"] is None, u
    for k in ("created_at", "updated_at"):
        assert u[k].endswith("Z"), "%s is not UTC 'Z': %r" % (k, u[k])
        ts = time.mktime(time.strptime(u[k][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
        assert abs(ts - t0) < 120, "%s %r is not now" % (k, u[k])
    assert password not in r.body.decode(), "password echoed"
    # The user can log in and sees the same record, still without secrets.
    t = login(ctx, user_name, password)
    me = call(ctx, "GET", "/api/auth/me", 200, token=t["access_token"]).json
    assert me["id"] == u["id"] and me["user_name"] == user_name, me


def test_register_duplicates_are_409_case_insensitively(ctx):
    s = register(ctx)
    other_email = "x-%s@example.test" % os.urandom(5).hex()
    for user_name in (s["user_name"], s["user_name"].upper()):
        call(ctx, "POST", "/api/auth/register", 409, "user_name_taken",
                 body={"user_name": user_name, "email": other_email, "name": "Dup", "password": "Dup-password-1"})
    for email in (s["email"], s["email"].upper()):
        call(ctx, "POST", "/api/auth/register", 409, "email_taken",
             body={"user_name": uniq("dup"), "email": email, "name": "Dup", "password": "Dup-password-1"})
    # None of the refused attempts created anything: the other e-mail is still free.
    register(ctx, email=other_email)


EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")


def test_duplicate_registration_leaves_no_email_in_any_log(ctx):
    """No personal data in any log, PostgreSQL's included: a unique violation on lower(email) used
    to log `DETAIL: Key (lower(email))=(...) already exists.` (and a failing statement's text can
    hold literals). The server logs the error without DETAIL or statement (docs/operations.md,
    "PostgreSQL settings"), so after duplicates through every path the log holds no address."""
    mark = "users_email_lower_key"
    before = ctx.logs("postgres").count(mark)
    s, t = new_session(ctx), register(ctx)
    emails = [s["email"], t["email"]]
    for email in (s["email"], s["email"].upper()):
        call(ctx, "POST", "/api/auth/register", 409, "email_taken",
             body={"user_name": uniq("pii"), "email": email, "name": "Dup", "password": "Dup-password-1"})
    call(ctx, "PUT", "/api/users/{id}", 409, "email_taken", path="/api/users/" + s["id"], token=s["access"],
         body={"email": t["email"]})
    call(ctx, "POST", "/api/users", 409, "email_taken", token=admin_session(ctx)["access"],
         body={"user_name": uniq("pii"), "email": t["email"], "name": "Dup", "password": "Dup-password-1"})
    # the refusals reached PostgreSQL as unique violations (else this test would prove nothing)
    log = ctx.wait_until(lambda: (lambda text: text if text.count(mark) >= before + 4 else None)(ctx.logs("postgres")),
                         timeout=5, what="4 unique violations on %s in postgres.log" % mark)
    for name in ctx.log_names():                     # the services' and Nginx's logs neither
        text = log if name == "postgres" else ctx.logs(name)
        for email in emails:
            for form in (email, email.lower(), email.upper()):
                assert form not in text, "%s.log holds the e-mail address %s" % (name, form)
    # and nothing else written since the server last started (with its current settings) holds
    # one: every earlier test's traffic and the unit tests' databases log there too
    since_start = log[log.rfind("database system is ready to accept connections"):]
    found = sorted(set(EMAIL_RE.findall(since_start)))
    assert not found, "postgres.log holds e-mail addresses: %s" % found[:5]


def _validation(ctx, body, field):
    r = call(ctx, "POST", "/api/auth/register", 400, "validation_failed", body=body)
    details = r.json["error"]["details"]
    assert isinstance(details, dict) and isinstance(details.get("fields"), dict), \
        "validation_failed without details.fields: %r" % r.json
    assert field in details["fields"], "details.fields lacks %r for %r: %r" % (field, body, details)
    assert isinstance(details["fields"][field], str) and details["fields"][field], details
    return details["fields"]


def test_register_validation_failures_name_the_field(ctx):
    user_name = uniq("val")
    good = {"user_name": user_name, "email": user_name.replace("_", "-") + "@example.test",
            "name": "Valid Name", "password": "Valid-pass-123"}

    def with_(**kw):
        b = dict(good)
        b.update(kw)
        return b

    cases = [
        (with_(user_name="ab"), "user_name"),                       # too short
        (with_(user_name="a" * 65), "user_name"),                   # too long
        (with_(user_name="bad name"), "user_name"),                 # space
        (with_(user_name="bad/name"), "user_name"),
        (with_(user_name="b\u00e4d"), "user_name"),                 # non-ASCII
        (with_(email="not-an-email"), "email"),
        (with_(email="a@b"), "email"),                              # no TLD
        (with_(email="x" * 250 + "@example.test"), "email"),        # > 254
        (with_(name=""), "name"),
        (with_(name="n" * 201), "name"),
        (with_(name="Ada\u0085Lovelace"), "name"),                 # C1 control (NEXT LINE)
        (with_(name="Ada\u009b31m"), "name"),                      # C1 CSI
        (with_(name="Ada\tLovelace"), "name"),                     # a name holds no control at all
        (with_(name="Ada\u007f"), "name"),
        (with_(password="Short-1"), "password"),                    # 7 characters
        (with_(password="p" * 129), "password"),
        (with_(password=user_name.upper()), "password"),            # equals user_name (case-insens.)
        (with_(user_name=12345), "user_name"),                      # wrong type
    ]
    for body, field in cases:
        _validation(ctx, body, field)
    b = dict(good)
    del b["password"]
    _validation(ctx, b, "password")
    b = dict(good)
    del b["user_name"]
    _validation(ctx, b, "user_name")
    # Unknown fields are refused, privilege-looking ones included.
    for extra in ("nickname", "role", "permissions", "is_admin"):
        fields = _validation(ctx, with_(**{extra: "admin" if extra != "permissions" else ["admin"]}), extra)
        assert "unknown" in fields[extra].lower(), fields
    # Boundaries that are valid: 3/64-character names, 8/128-character passwords.
    ok3 = "e" + os.urandom(1).hex()       # may exist from an earlier run: 201 or user_name_taken
    r = call(ctx, "POST", "/api/auth/register", body=with_(user_name=ok3, email="%s-%s@example.test" % (ok3, os.urandom(4).hex()),
                                                           password="12345678"))
    assert r.status == 201 or (r.status == 409 and err_code(r) == "user_name_taken"), \
        "3-character user_name / 8-character password -> %d %r" % (r.status, r.body[:300])
    long_name = ("e2e_" + os.urandom(30).hex())[:64]
    call(ctx, "POST", "/api/auth/register", 201, body=with_(user_name=long_name, email=long_name[:40] + "@example.test",
                                                           password="p" * 128))
    # Nothing above created the original user: it registers now.
    call(ctx, "POST", "/api/auth/register", 201, body=good)


def test_register_malformed_body_and_wrong_content_type(ctx):
    good = json.dumps({"user_name": uniq("mal"), "email": "m-%s@example.test" % os.urandom(4).hex(),
                       "name": "M", "password": "Valid-pass-123"})
    for raw in (b'{"user_name": ', b"[1,2]", b'"just a string"', good[:-1].encode()):
        call(ctx, "POST", "/api/auth/register", 400, raw=raw, headers={"Content-Type": "application/json"})
    for ctype in ("text/plain", "application/x-www-form-urlencoded"):
        call(ctx, "POST", "/api/auth/register", 415, raw=good.encode(), headers={"Content-Type": ctype})
    # The well-formed body was never accepted above.
    call(ctx, "POST", "/api/auth/register", 201, raw=good.encode(),
         headers={"Content-Type": "application/json; charset=utf-8"})


# ------------------------------------------------------------------------------------ login
def test_login_by_user_name_and_by_email(ctx):
    s = register(ctx)
    a = login(ctx, s["user_name"], s["password"])
    b = login(ctx, s["email"], s["password"])
    for t in (a, b):
        me = call(ctx, "GET", "/api/auth/me", 200, token=t["access_token"]).json
        assert me["id"] == s["id"], me
    assert a["refresh_token"] != b["refresh_token"] and a["access_token"] != b["access_token"]
    _, ca = jwt_parts(a["access_token"])
    _, cb = jwt_parts(b["access_token"])
    assert ca["sub"] == cb["sub"] == s["id"], (ca, cb)
    assert ca["sid"] != cb["sid"], "two logins share one session id"


def _timed_login(ctx, login_name, password):
    timing = []
    r = call(ctx, "POST", "/api/auth/login", 401, "invalid_credentials", body={"login": login_name, "password": password},
             timing=timing)
    return timing[0], r


def _comparable(resp):
    j = json.loads(resp.body)
    j["error"].pop("correlation_id", None)
    return j, resp.headers.get("Content-Type"), resp.headers.get("WWW-Authenticate")


def test_wrong_password_and_unknown_user_look_the_same(ctx):
    s = register(ctx)
    login(ctx, s["user_name"], s["password"])            # warm up; resets the account counter
    unknown = uniq("nobody")
    wrong, missing = [], []
    # 4 failures on the account stays below its lockout threshold of 5.
    for _ in range(4):
        dt, rw = _timed_login(ctx, s["user_name"], "Wrong-" + os.urandom(6).hex())
        wrong.append(dt)
        dt, rm = _timed_login(ctx, unknown, "Wrong-" + os.urandom(6).hex())
        missing.append(dt)
        assert _comparable(rw) == _comparable(rm), "bodies differ:\n%r\n%r" % (rw.body, rm.body)
    mw, mm = statistics.median(wrong), statistics.median(missing)
    ratio = max(mw, mm) / max(min(mw, mm), 1e-6)
    assert ratio <= 3.0, "login timing reveals whether the user exists: median wrong password %.1f ms, " \
                         "unknown user %.1f ms (ratio %.1f)" % (mw * 1000, mm * 1000, ratio)
    # The right password still works (the 4 failures did not lock the account).
    login(ctx, s["user_name"], s["password"])


def test_five_failures_lock_the_account_with_429_and_retry_after(ctx):
    s = register(ctx)
    for i in range(5):
        _timed_login(ctx, s["user_name"], "Wrong-%d-%s" % (i, os.urandom(4).hex()))
    for password, pw_kind in ((s["password"], "right"), ("Wrong-again-" + os.urandom(4).hex(), "wrong")):
        # The account is locked, whichever identifier names it (user_name, e-mail, other case).
        for login_name, kind in ((s["user_name"], "user_name"), (s["email"], "e-mail"),
                                 (s["user_name"].upper(), "upper-case user_name")):
            r = call(ctx, "POST", "/api/auth/login", body={"login": login_name, "password": password})
            assert r.status == 429 and err_code(r) == "too_many_attempts", \
                "after 5 failures by user_name, login by %s with the %s password -> %d %r" % (
                    kind, pw_kind, r.status, r.body[:120])
            ra = r.headers.get("Retry-After", "")
            assert ra.isdigit() and 1 <= int(ra) <= 15 * 60, "Retry-After %r" % ra
            assert "access_token" not in r.body.decode()
    # The lock is per account: another user logs in normally.
    other = register(ctx)
    login(ctx, other["user_name"], other["password"])
