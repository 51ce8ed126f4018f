"""The fuzzer's view of the running stack: a few real users, tokens, transactions and sync runs,
and the symbols that let a generated request name them.

Hypothesis generates requests before anything is sent, and replays them while shrinking, so a
request never holds a token or an id itself: it holds a `Sym` ("token.user", "tx.fresh",
"victim.id") that `World.resolve` turns into a value when the request is sent. Symbols whose
value is used up by the request are made afresh for every example (per `Example`):
- "victim.*": a newly registered user; PUT and DELETE of users aim at victims only, so the
  fixture users and the admin keep their tokens, roles and passwords for the whole run.
- "token.user.fresh", "token.other.fresh", "token.admin.fresh": a new session (logout ends the
  session it presents).
- "refresh.fresh": a refresh token never used; "refresh.used": one already rotated (presenting
  it revokes that throwaway session, as documented).
- "tx.fresh": a new deposit of the fuzz user (a reversal consumes it).
- "fresh.user_name" / "fresh.email" / "idem.fresh": values no earlier request used.
- "tenant.id": the fixture tenant, active, whose ERP is a simulator tenant of a few records
  ("tenant.url", "tenant.key"); "tenant.fresh": a new inactive tenant of that ERP (PATCH and
  DELETE of tenants aim at these only).

Fixture users are registered with names starting "apifuzz_"; login attempts (which lock an account
after five failures) aim at a user of their own, never at the users whose tokens the run needs.
Every helper request here goes through the e2e `call` (response checked against the document), so
a broken fixture fails loudly before any fuzzing starts. Tokens are renewed a minute before they
expire (user tokens live 900 s, service tokens less).
"""

import base64
import os
import re
import time
import uuid

from test_customers_auth import admin_credentials, call, login, register, new_session
from test_customers_tokens import service_client

TOKEN_MAX_AGE_S = 600
TOKEN_RENEW_BEFORE_S = 60      # a token is replaced this long before it expires


class Sym:
    """A value known only when the request is sent."""
    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return "<%s>" % self.name

    def __eq__(self, other):
        return isinstance(other, Sym) and other.name == self.name

    def __hash__(self):
        return hash(("Sym", self.name))


class Example:
    """Values made for one example, so that one symbol means one value within a request."""

    def __init__(self):
        self.values = {}


def _hex(n=5):
    return os.urandom(n).hex()


class World:
    def __init__(self, ctx):
        self.ctx = ctx
        self._tokens = {}
        self.admin_name, self.admin_password = admin_credentials(ctx)
        self.a = self._user("a")
        self.b = self._user("b")
        self.login_user = register(ctx, user_name="apifuzz_l_" + _hex())
        self.client_id, self.client_secret = service_client(ctx, "sync")
        self.admin_id = call(ctx, "GET", "/api/auth/me", 200, token=self.token("admin")).json["id"]
        # money: A holds BRL and USD, sent some to B; B has a deposit of its own (A cannot see it)
        for amount, cur in (("100000.00", "BRL"), ("5000.00", "USD")):
            self.deposit(self.a, amount, cur)
        self.tx_own = self.post_tx(self.a, {"type": "transfer", "amount": "10.00", "to_user_id": self.b["id"]})["id"]
        self.tx_other = self.deposit(self.b, "20.00")
        self.tx_reversed = self.deposit(self.a, "1.00")
        self.tx_reversal = self.reverse(self.tx_reversed)
        self.run_id = None            # set by ensure_sync_run (the sync operations need a run)
        self._tenant = None           # (id, ERP URL, API key), made on first use
        self._dash = None

    # ---------------------------------------------------------------- fixtures
    def _user(self, tag):
        s = new_session(self.ctx, user_name="apifuzz_%s_%s" % (tag, _hex()))
        s["born"] = time.monotonic()
        return s

    def token(self, who):
        """A current access token of "user" (A), "other" (B), "admin" or "service"."""
        t = self._tokens.get(who)
        if t and time.monotonic() < t[1]:
            return t[0]
        if who == "admin":
            answer = login(self.ctx, self.admin_name, self.admin_password)
        elif who == "service":
            answer = call(self.ctx, "POST", "/api/auth/token", 200,
                          body={"client_id": self.client_id, "client_secret": self.client_secret}).json
        else:
            s = self.a if who == "user" else self.b
            answer = login(self.ctx, s["user_name"], s["password"])
        lifetime = min(int(answer["expires_in"]) - TOKEN_RENEW_BEFORE_S, TOKEN_MAX_AGE_S)
        self._tokens[who] = (answer["access_token"], time.monotonic() + lifetime)
        return answer["access_token"]

    def post_tx(self, session, body):
        tok = self.token("user" if session is self.a else "other")
        return call(self.ctx, "POST", "/api/transactions", 201, token=tok, body=body,
                    headers={"Idempotency-Key": str(uuid.uuid4())}).json

    def deposit(self, session, amount, currency="BRL"):
        return self.post_tx(session, {"type": "deposit", "amount": amount, "currency": currency})["id"]

    def reverse(self, tx_id):
        return call(self.ctx, "POST", "/api/transactions/{id}/reverse", 201,
                    path="/api/transactions/%s/reverse" % tx_id, token=self.token("admin"),
                    headers={"Idempotency-Key": str(uuid.uuid4())}).json["id"]

    # ---------------------------------------------------------------- symbols
    def resolve(self, value, ex):
        """value with every Sym replaced (recursively through lists, tuples and dicts)."""
        if isinstance(value, Sym):
            if value.name not in ex.values:
                ex.values[value.name] = self._make(value.name, ex)
            return ex.values[value.name]
        if isinstance(value, list):
            return [self.resolve(v, ex) for v in value]
        if isinstance(value, tuple):
            return tuple(self.resolve(v, ex) for v in value)
        if isinstance(value, dict):
            return {self.resolve(k, ex): self.resolve(v, ex) for k, v in value.items()}
        return value

    def _victim(self, ex):
        if "victim" not in ex.values:
            ex.values["victim"] = register(self.ctx, user_name="apifuzz_v_" + _hex())
        return ex.values["victim"]

    def _make(self, name, ex):
        ctx = self.ctx
        if name.startswith("victim.") or name == "token.victim":
            v = self._victim(ex)
            if name in ("victim.token", "token.victim"):
                return login(ctx, v["user_name"], v["password"])["access_token"]
            return v[name.split(".", 1)[1]]
        simple = {
            "user.id": lambda: self.a["id"], "user.name": lambda: self.a["user_name"],
            "user.email": lambda: self.a["email"],
            "other.id": lambda: self.b["id"], "other.name": lambda: self.b["user_name"],
            "other.email": lambda: self.b["email"],
            "admin.id": lambda: self.admin_id, "admin.name": lambda: self.admin_name,
            "login.name": lambda: self.login_user["user_name"], "login.email": lambda: self.login_user["email"],
            "login.password": lambda: self.login_user["password"],
            "client.id": lambda: self.client_id, "client.secret": lambda: self.client_secret,
            "token.user": lambda: self.token("user"), "token.other": lambda: self.token("other"),
            "token.admin": lambda: self.token("admin"), "token.service": lambda: self.token("service"),
            "tx.own": lambda: self.tx_own, "tx.other": lambda: self.tx_other,
            "tx.reversed": lambda: self.tx_reversed, "tx.reversal": lambda: self.tx_reversal,
            "run.id": lambda: self.run_id or str(uuid.uuid4()),
            "fresh.user_name": lambda: "fz_" + _hex(),
            "fresh.email": lambda: "fz-%s@example.test" % _hex(),
            "idem.fresh": lambda: str(uuid.uuid4()),
            "tenant.id": lambda: self.tenant()[0], "tenant.url": lambda: self.tenant()[1],
            "tenant.key": lambda: self.tenant()[2], "tenant.fresh": lambda: self.new_tenant(False),
        }
        if name in simple:
            return simple[name]()
        if name == "token.user.fresh":
            return login(ctx, self.a["user_name"], self.a["password"])["access_token"]
        if name == "token.other.fresh":
            return login(ctx, self.b["user_name"], self.b["password"])["access_token"]
        if name == "token.admin.fresh":
            return login(ctx, self.admin_name, self.admin_password)["access_token"]
        if name == "token.tampered":
            head, claims, sig = self.token("user").split(".")
            flip = "A" if claims[5] != "A" else "B"
            return "%s.%s%s%s.%s" % (head, claims[:5], flip, claims[6:], sig)
        if name == "refresh.fresh":
            return login(ctx, self.a["user_name"], self.a["password"])["refresh_token"]
        if name == "refresh.used":
            old = login(ctx, self.a["user_name"], self.a["password"])["refresh_token"]
            call(ctx, "POST", "/api/auth/refresh", 200, body={"refresh_token": old})
            return old
        if name == "tx.fresh":
            return self.deposit(self.a, "2.00")
        if name == "basic.operator":
            return self.operator_basic()
        if name == "basic.wrong":
            return base64.b64encode(b"operator:wrong-password").decode()
        if name in ("dash.cookie", "header.x-csrf-token"):
            cookie, token = self.dashboard_session()
            return cookie if name == "dash.cookie" else token
        if name == "origin.self":
            return self.ctx.base
        raise KeyError("unknown symbol %s" % name)

    # ---------------------------------------------------------------- ERP tenants
    def tenant(self):
        """(id, erpBaseUrl, apiKey) of the fixture tenant: active, its ERP a tenant of the erp-api
        simulator with a few records, so that its syncs finish in a moment."""
        if self._tenant is None:
            name, key = "apifuzz-" + _hex(), "k-" + _hex(8)
            sim = "http://127.0.0.1:%d" % (self.ctx.port_base + 402)
            r = self.ctx.http("PUT", sim + "/_sim/tenants/" + name, body={"api_key": key, "customers": 5, "products": 5})
            assert r.status == 201, "erp-api simulator: PUT /_sim/tenants/%s -> %d %r" % (name, r.status, r.body[:200])
            self._tenant = (None, sim + "/tenants/" + name, key)
            self._tenant = (self.new_tenant(True), self._tenant[1], key)
        return self._tenant

    def new_tenant(self, active):
        _, url, key = self.tenant()
        return call(self.ctx, "POST", "/api/tenants", 201, token=self.token("admin"),
                    body={"name": "apifuzz " + _hex(), "erpBaseUrl": url, "apiKey": key, "isActive": active}).json["id"]

    # ---------------------------------------------------------------- the sync dashboard
    def operator_basic(self):
        """base64 "user:password" of the dashboard's operator (sync-1's environment)."""
        env = self.ctx.env_of("sync-1")
        path = env.get("QUEUE_DASHBOARD_PASSWORD_FILE", "")
        path = path if os.path.isabs(path) else os.path.join(self.ctx.repo, path)
        with open(path, encoding="utf-8") as f:
            password = f.read().rstrip("\n")
        return base64.b64encode(("%s:%s" % (env.get("QUEUE_DASHBOARD_USER", "operator"), password)).encode()).decode()

    def dashboard_session(self):
        """(Cookie header value, CSRF token) of a dashboard page session (fetched once: the token is
        a MAC of the session id, valid as long as the cookie)."""
        if self._dash is None:
            r = self.ctx.http("GET", "/admin/dashboard", headers={"Authorization": "Basic " + self.operator_basic()})
            assert r.status == 200, "GET /admin/dashboard as the operator: %d %r" % (r.status, r.body[:200])
            cookie = (r.headers.get("Set-Cookie") or "").split(";")[0]
            m = re.search(rb'<meta name="csrf-token" content="([0-9a-f]+)"', r.body)
            assert cookie.startswith("dash_session=") and m, "the dashboard page gave no session or token"
            self._dash = (cookie, m.group(1).decode())
        return self._dash

    def wait_queues_idle(self, timeout=60):
        """Until no job waits, runs or is delayed (a dead job moved back to waiting is run by the
        workers, whose writes would blur the no-write checks of the next requests)."""
        def idle():
            q = call(self.ctx, "GET", "/admin/queues", 200, token=self.token("admin")).json["queues"]
            return all(v is None or v["waiting"] + v["active"] + v["delayed"] == 0 for v in q.values())
        self.ctx.wait_until(idle, timeout=timeout, interval=0.1, what="idle job queues")

    def heal(self):
        """Fixture tokens that stopped working (names), dropped so the next use logs in again.
        None should: each would mean a request ended a session the fuzzer did not hand it."""
        lost = []
        for who in ("user", "other", "admin"):
            t = self._tokens.get(who)
            if t and self.ctx.http("GET", "/api/auth/me", headers={"Authorization": "Bearer " + t[0]}).status != 200:
                lost.append(who)
                del self._tokens[who]
        return lost

    # ---------------------------------------------------------------- sync runs
    def ensure_sync_run(self):
        """A finished run to name in /api/sync/{id} (triggers one when there is none)."""
        r = call(self.ctx, "GET", "/api/sync/history", 200, path="/api/sync/history?limit=1",
                 token=self.token("admin")).json
        if r["data"]:
            self.run_id = r["data"][0]["id"]
        else:
            self.run_id = call(self.ctx, "POST", "/api/sync", 202, token=self.token("admin")).json["id"]
        self.wait_run(self.run_id)

    def wait_run(self, run_id, timeout=90):
        """Until the run is COMPLETED or FAILED: its workers write to the database meanwhile, which
        would blur the no-write checks of the requests that follow."""
        def finished():
            r = call(self.ctx, "GET", "/api/sync/{id}", 200, path="/api/sync/" + run_id, token=self.token("admin"))
            return r.json["status"] in ("COMPLETED", "FAILED")
        self.ctx.wait_until(finished, timeout=timeout, interval=0.1, what="sync run %s finished" % run_id)


def small_legacy_source(ctx, count=40):
    """Restart the legacy-api simulator serving `count` records (LEGACY_COUNT) instead of its
    default million, so each import the fuzzer triggers takes a moment; returns restore()."""
    path = os.path.join(ctx.run_dir, "env", "legacy-api.env")
    with open(path, encoding="utf-8") as f:
        saved = f.read()
    lines = [l for l in saved.splitlines() if not l.startswith("LEGACY_COUNT=")] + ["LEGACY_COUNT=%d" % count]

    def restart(text):
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        ctx.stack("stop-one", "legacy-api")
        ctx.stack("start-one", "legacy-api")
    restart("\n".join(lines) + "\n")
    return lambda: restart(saved)


def quick_erp_sync(ctx):
    """Restart the sync instances with the ERP rate limit lifted (ERP_SYNC_RATE_MAX, 10 calls a
    minute by default) and slots spread over 2 s instead of an hour (ERP_SYNC_DELAY_*_MS_MAX):
    the fuzzer waits for idle queues after each sync it triggers; returns restore()."""
    quick = {"ERP_SYNC_RATE_MAX": "1000000", "ERP_SYNC_DELAY_CUSTOMERS_MS_MAX": "2000",
             "ERP_SYNC_DELAY_PRODUCTS_MS_MAX": "2000"}
    saved = {}
    for name in ctx.instances_of("sync"):
        with open(os.path.join(ctx.run_dir, "env", name + ".env"), encoding="utf-8") as f:
            saved[name] = f.read()

    def restart(texts):
        for name, text in texts.items():
            with open(os.path.join(ctx.run_dir, "env", name + ".env"), "w", encoding="utf-8") as f:
                f.write(text)
            ctx.stack("stop-one", name)
            ctx.stack("start-one", name)
        for name in texts:
            ctx.wait_healthy(name, timeout=30)
    restart({name: "".join(l + "\n" for l in text.splitlines() if l.split("=", 1)[0] not in quick)
             + "".join("%s=%s\n" % kv for kv in quick.items()) for name, text in saved.items()})
    return lambda: restart(saved)
