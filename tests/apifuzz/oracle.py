"""Sending a generated request and judging the answer: the properties every operation must keep,
whatever it is sent.

1. An answer: never a dropped connection or a timeout, no instance (or Nginx) dies, and Nginx logs
   no upstream failure (it retries idempotent requests on the other instance, so a client would
   not see a connection an instance dropped: the error log does).
2. Never a 5xx: the run has no dependency outage, so not even the documented 503.
3. Every error (4xx) is the JSON envelope {"error":{"code","message","details","correlation_id"}},
   and every answer carries X-Correlation-ID (the caller's when it sent a valid one, unless Nginx
   refused the request before reading its headers: UNREAD_HEADERS).
4. The answer matches docs/openapi.yaml: its status is documented for the operation, its body
   validates against the documented schema, documented required headers are present. A method the
   path does not document answers 405 with Allow (or 404).
5. A request the document refuses is not accepted (no 2xx): an invalid parameter, header or body,
   a missing required part, an undocumented media type or method, no valid token on a protected
   operation, a non-admin on an admin operation, a user reading another user's record, a user
   naming another user's account (`user_id`), a party-less caller reading a transaction.
6. A refused request (4xx) writes nothing: no committed row in PostgreSQL, no session created,
   changed or removed in Redis, no job enqueued and no event queued. A read (GET) writes no row either, whatever
   its status. Documented exceptions: presenting a reused refresh token revokes its session.
"""

import http.client
import json
import random
import urllib.parse

import lib
import openapi_check as oc
import reqgen
import schema_gen as sg
import spec_ops
import watch
from world import Example, Sym

TIMEOUT_S = 20
VALID_TOKENS = {"token.user", "token.other", "token.admin", "token.service", "token.victim",
                "token.user.fresh", "token.other.fresh", "token.admin.fresh"}
ADMIN_TOKENS = {"token.admin", "token.admin.fresh"}
# actor token -> the path/query symbols that name the actor's own user
SELF = {"token.user": {"user.id", "user.name"}, "token.user.fresh": {"user.id", "user.name"},
        "token.other": {"other.id", "other.name"}, "token.other.fresh": {"other.id", "other.name"},
        "token.victim": {"victim.id", "victim.name"}}
# transactions a caller is a party to (A paid B tx.own; tx.other is B's deposit; the others are A's)
TX_PARTIES = {"tx.own": {"token.user", "token.other"}, "tx.other": {"token.other"},
              "tx.reversed": {"token.user"}, "tx.reversal": {"token.user"}, "tx.fresh": {"token.user"}}
PROTECTED_REDIS = ("session:", "session_used:", "user_sessions:")
# Answers Nginx gives before it has read the request's headers (a request line over its limit, one
# it cannot parse, headers over the limit): they carry a fresh correlation id, not the caller's.
UNREAD_HEADERS = ("uri_too_long", "bad_request", "headers_too_large")
ALL_OPS = spec_ops.load()
COMMON_STATUSES = set(oc.spec().get("x-common-responses") or {})    # the request limits, on any route
SAFE_METHODS = ("GET", "HEAD")
# Source addresses (127/8) for the requests: a fresh one each time, so per-address limits (login
# failures, Nginx's limit_req) do not pile up over a run. Not hypothesis' random: that one is
# seeded the same for every example.
_RNG = random.Random()


class Sent:
    """A request as sent: the concrete values plus what the generator meant by them."""

    def __init__(self, req, url, headers, body):
        self.req = req
        self.url = url
        self.headers = headers
        self.body = body

    def describe(self):
        hdrs = ", ".join("%s: %s" % (k, v if k != "Authorization" else v[:20] + "...") for k, v in self.headers)
        body = self.body if self.body is None or len(self.body) < 300 else self.body[:300] + b"...(%d bytes)" % len(self.body)
        return "%s %s [%s] body=%r" % (self.req.method, self.url, hdrs, body)


# ------------------------------------------------------------------ sending
def _http(url, method, headers, body):
    u = urllib.parse.urlsplit(url)
    src = "127.%d.%d.%d" % (_RNG.randint(1, 254), _RNG.randint(0, 255), _RNG.randint(1, 254))
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=TIMEOUT_S, source_address=(src, 0))
    try:
        conn.putrequest(method, (u.path or "/") + ("?" + u.query if u.query else ""), skip_accept_encoding=True)
        for k, v in headers:
            conn.putheader(k, v.encode("latin-1") if isinstance(v, str) else v)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        send_error = None
        try:
            conn.endheaders(body)
        except (BrokenPipeError, ConnectionResetError) as exc:
            send_error = exc                       # an early answer (413) may be waiting
        try:
            resp = conn.getresponse()
            payload = resp.read()
        except (http.client.HTTPException, OSError):
            if send_error is not None:
                raise send_error
            raise
        return lib.Response(resp.status, resp.headers, payload, lib._try_json(payload))
    finally:
        conn.close()


def materialize(ctx, world, req):
    """Resolve the symbols of req; returns Sent."""
    ex = Example()
    path = {k: world.resolve(v, ex) for k, v in req.path.items()}
    base = ctx.url("") if req.target == "gateway" else ctx.direct(req.target)
    url = base + reqgen.encode_path(req.op.template, path)
    query = [(k, world.resolve(v, ex)) for k, v in req.query]
    if query:
        url += "?" + "&".join("%s=%s" % (urllib.parse.quote(k, safe=""), urllib.parse.quote(str(v), safe=""))
                              for k, v in query)
    headers = [(k, world.resolve(v, ex)) for k, v in req.headers]
    if req.auth is not None:
        scheme, tok = req.auth
        headers.append(("Authorization", "%s %s" % (scheme, world.resolve(tok, ex))))
    if req.content_type is not None:
        headers.append(("Content-Type", req.content_type))
    body = None
    if req.body is not None:
        kind, value = req.body
        if kind == "json":
            body = json.dumps(world.resolve(value, ex), ensure_ascii=len(repr(value)) % 2 == 0).encode()
        else:
            body = value
    sent = Sent(req, url, headers, body)
    sent.path_values, sent.query_values = path, query
    return sent


def send(sent):
    return _http(sent.url, sent.req.method, sent.headers, sent.body)


# ------------------------------------------------------------------ what the document refuses
def _parse_json(body):
    def no_constant(name):
        raise ValueError("JSON has no %s" % name)

    def finite(text):
        f = float(text)
        if f in (float("inf"), float("-inf")):
            raise ValueError("number out of range")
        return f
    return json.loads(body.decode("utf-8"), parse_constant=no_constant, parse_float=finite)


def _query_ok(p, text):
    s = sg.merged(p.schema)
    t = s.get("type")
    if t == "integer":
        if not text.lstrip("-").isdigit() or not text.lstrip("-").isascii():
            return False
        return oc.is_valid(int(text), p.schema)
    if t == "boolean":
        return text in ("true", "false")
    return oc.is_valid(text, p.schema)


def spec_violations(sent):
    """Why docs/openapi.yaml refuses this request ([] when it does not)."""
    req, op = sent.req, sent.req.op
    out = []
    if req.method != op.method:
        return ["method %s is not documented for %s" % (req.method, op.template)]
    for p in op.params_in("path"):
        if not oc.is_valid(sent.path_values[p.name], p.schema):
            out.append("path parameter %s invalid" % p.name)
    given = {}
    for k, v in sent.query_values:
        given.setdefault(k, []).append(str(v))
    for p in op.params_in("query"):
        for v in given.get(p.name, []):
            if not _query_ok(p, v):
                out.append("query parameter %s=%r invalid" % (p.name, v))
    hdrs = {}
    for k, v in sent.headers:
        hdrs.setdefault(k.lower(), []).append(v)
    for p in op.params_in("header"):
        values = hdrs.get(p.name.lower(), [])
        if p.required and not values:
            out.append("header %s missing" % p.name)
        if p.name.lower() != "x-correlation-id" and any(not oc.is_valid(v, p.schema) for v in values):
            out.append("header %s invalid" % p.name)
    if op.body:
        ctypes = hdrs.get("content-type", [])
        media = ctypes[0].split(";")[0].strip().lower() if ctypes else None
        if sent.body is None:
            if op.body_required:
                out.append("no body")
        elif media not in [m.lower() for m in op.body]:
            out.append("media type %r not documented" % media)
        elif media == "application/json" or media.endswith("+json"):
            try:
                value = _parse_json(sent.body)
            except ValueError:
                out.append("body is not JSON")
            else:
                if not oc.is_valid(value, op.body["application/json"]):
                    out.append("body does not match its schema")
    out += _authz_violations(sent)
    return out


def _actor(req):
    if req.auth is None:
        return None
    scheme, tok = req.auth
    if scheme.lower() != "bearer" or not isinstance(tok, Sym) or tok.name not in VALID_TOKENS:
        return "invalid"
    return tok.name


def _dashboard_violations(sent):
    """The dashboard's operator (basic auth) and, for its POSTs, the session's CSRF token, its
    cookie and a same-origin request."""
    req, op = sent.req, sent.req.op
    if req.auth != ("Basic", Sym("basic.operator")):
        return ["no operator credentials"]
    if op.method != "POST":
        return []
    hdr = {}
    for k, v in req.headers:
        hdr.setdefault(k.lower(), []).append(v)
    out = []
    if hdr.get("x-csrf-token") != [Sym("header.x-csrf-token")] or hdr.get("cookie") != [Sym("dash.cookie")]:
        out.append("no session cookie with its CSRF token")
    if any(o != Sym("origin.self") for o in hdr.get("origin", [])) or \
            any(f != "same-origin" for f in hdr.get("sec-fetch-site", [])):
        out.append("a cross-origin request")
    return out


def _authz_violations(sent):
    req, op = sent.req, sent.req.op
    actor = _actor(req)
    if op.public:
        return []
    if "operatorBasic" in op.schemes:
        return _dashboard_violations(sent)
    if actor in (None, "invalid"):
        return ["no valid access token"]
    summary = oc.operation(op.method, op.template).get("summary", "")
    out = []
    if "(admin)" in summary and actor not in ADMIN_TOKENS:
        out.append("not an admin")
    if "(service token)" in summary and actor != "token.service":
        out.append("not a service token")
    named = {v.name for v in list(req.path.values()) + [v for _, v in req.query] if isinstance(v, Sym)}
    if "(self or admin)" in summary and actor not in ADMIN_TOKENS:
        people = {n for n in named if n.split(".")[0] in ("user", "other", "victim", "admin")}
        if people - SELF.get(actor, set()):
            out.append("another user's record")
    if op.template.startswith("/api/transactions") and actor not in ADMIN_TOKENS:
        for n in named:
            if n in TX_PARTIES and actor not in TX_PARTIES[n]:
                out.append("a transaction the caller is no party to")
        if any(k == "user_id" for k, _ in req.query):
            ids = [v for k, v in req.query if k == "user_id"]
            if any(not (isinstance(v, Sym) and v.name in SELF.get(actor, set())) for v in ids):
                out.append("user_id names another user")
    return out


# ------------------------------------------------------------------ the properties
class Oracle:
    def __init__(self, ctx):
        self.ctx = ctx
        self.pg = watch.PgWatch(ctx)
        self.redis = watch.RedisWatch(ctx)
        self.logs = watch.LogWatch(ctx)

    def close(self):
        self.pg.close()
        self.redis.close()

    def exchange(self, sent):
        """Send with the side channels marked around it; returns (response or exception, marks)."""
        self.logs.new_problems()                  # whatever happened before is not this request's
        r0, x0 = self.redis.mark(), self.pg.mark()
        try:
            resp = send(sent)
        except (OSError, http.client.HTTPException) as exc:
            resp = exc
        r1 = self.redis.mark()
        return resp, (x0, r0, r1)

    def judge(self, sent, resp, marks):
        """AssertionError listing every broken property (with the request), or None."""
        req, op = sent.req, sent.req.op
        problems = []
        if isinstance(resp, Exception):
            problems.append("no answer: %s: %s" % (type(resp).__name__, resp))
        else:
            problems += self._answer(sent, resp)
        status = None if isinstance(resp, Exception) else resp.status
        x0, r0, r1 = marks
        if status is None or status >= 400 or req.method in SAFE_METHODS:
            writes = self.pg.writes_since(x0)
            if writes:
                problems.append("%s wrote to PostgreSQL: %s" % (
                    "a read" if status is not None and status < 400 else "a refused request",
                    ", ".join("%s (%d rows)" % w for w in writes)))
            bad = [w for w in watch.redis_writes(self.redis.since(r0, r1)) if _protected(w)]
            if bad and not self._allowed_redis(op, resp):
                problems.append("%s changed Redis: %s" % (
                    "a read" if status is not None and status < 400 else "a refused request",
                    ", ".join("%s %s" % w for w in bad[:5])))
        else:
            self.redis.since(r0, r1)
        problems += ["log: " + p for p in self.logs.new_problems()]
        dead = watch.dead_processes(self.ctx)
        if dead:
            problems.append("processes gone: %s" % ", ".join(dead))
        if problems:
            answer = "no answer" if status is None else "%d %s" % (status, resp.body[:300])
            return AssertionError("%s\n  request: %s\n  answer: %s" % ("; ".join(problems), sent.describe(), answer))
        return None

    def _answer(self, sent, resp):
        req, op = sent.req, sent.req.op
        out = []
        sent_cid = [v for k, v in sent.headers if k.lower() == "x-correlation-id"]
        cid_ok = len(sent_cid) == 1 and oc.is_valid(sent_cid[0], {"$ref": "#/components/parameters/CorrelationId/schema"})
        got_cid = resp.headers.get("X-Correlation-ID")
        err_code = ((resp.json or {}).get("error") or {}).get("code") if isinstance(resp.json, dict) else None
        if not got_cid:
            out.append("no X-Correlation-ID")
        elif cid_ok and got_cid != sent_cid[0] and err_code not in UNREAD_HEADERS:
            out.append("X-Correlation-ID %r, sent %r" % (got_cid, sent_cid[0]))
        if resp.status >= 500:
            out.append("status %d" % resp.status)
        if resp.status >= 400:
            try:
                lib.assert_envelope(resp, resp.status, got_cid if got_cid else None)
            except AssertionError as exc:
                out.append("not the error envelope: %s" % exc)
        # another method on the same path may be another operation (GET /internal/users/bulk-upsert
        # is getInternalUser with id "bulk-upsert")
        doc_op = op if req.method == op.method else spec_ops.match(ALL_OPS, req.method, urllib.parse.urlsplit(sent.url).path)
        if doc_op is not None:
            try:
                oc.check(resp, doc_op.method, doc_op.template)
            except AssertionError as exc:
                out.append("against docs/openapi.yaml: %s" % str(exc)[:400])
        elif resp.status == 405:
            if not resp.headers.get("Allow"):
                out.append("405 without Allow")
        elif resp.status != 404 and str(resp.status) not in COMMON_STATUSES:
            out.append("undocumented method %s answered %d (want 405)" % (req.method, resp.status))
        if 200 <= resp.status < 300 and doc_op is op:
            why = spec_violations(sent)
            if why:
                out.append("accepted a request the document refuses (%s)" % "; ".join(why))
        return out

    @staticmethod
    def _allowed_redis(op, resp):
        code = ((resp.json or {}).get("error") or {}).get("code") if not isinstance(resp, Exception) else None
        return op.op_id == "refreshTokens" and code == "refresh_token_reused"


def _protected(write):
    cmd, key = write
    if key.startswith(PROTECTED_REDIS):
        return True
    if key == "ev:{events}:stream" and cmd == "XADD":           # an event accepted
        return True
    return key.startswith("q:") and cmd in ("XADD", "SET")      # a job enqueued
