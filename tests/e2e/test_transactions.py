"""transactions-service end-to-end tests (through Nginx): every endpoint and every error.

Also the home of the helpers the other transactions test files import
(test_transactions_faults.py, test_transactions_invariant.py): `tx` (one request, checked),
`post_tx`, `balance`, `assert_tx`, money helpers.

What is covered:
- deposit / withdrawal / transfer move money exactly (amounts are decimal strings, never floats:
  ten deposits of "0.10" are exactly "1.00"); balances per currency;
- validation: amount formats, currency allow-list, type, description, to_user_id, JSON, content
  type, the Idempotency-Key header (400, nothing written);
- insufficient funds and unknown/deleted recipients (422, nothing written);
- BOLA: a user can neither read, list, summarise nor reverse another user's transaction, and a
  foreign transaction looks exactly like a missing one (404 transaction_not_found);
- listing filters and pagination; the summary grouped by day, month and type;
- reversal by an admin (balances restored, original marked reversed, twice → 409);
- idempotency (Stripe semantics): replay with Idempotent-Replayed: true and no second effect, the
  same key with another body → 422, concurrent duplicates take effect once (409 while in flight),
  keys are scoped per user, a request refused by validation does not consume its key;
- concurrent deposits and withdrawals of many users (combined into posting batches by the
  service) stay exact to the cent, with duplicates and reused keys among them, and the batcher's
  counters (/metrics of each instance) show statements that carried several postings;
- a session logged out at customers-service is refused here at once (401 session_revoked).

Decisions:
- Every user is new (random suffix), so tests neither depend on each other nor on earlier runs.
- Every response is checked against docs/openapi.yaml when the operation is documented there; a
  separate test fails once, clearly, for each transactions operation the document lacks, so a
  missing document does not hide the behaviour results of every other test.
- Dates for filters and summaries come from the server's own created_at (UTC), never the local
  clock, so a run across midnight cannot flake.
"""

import collections
import concurrent.futures
import datetime
import decimal
import json
import os
import random
import re
import threading
import time
import urllib.parse
import uuid

import lib
from lib import assert_envelope, new_cid
import openapi_check as oc
from test_customers_auth import admin_session, call as customers_call, err_code, login, new_session

AMOUNT_RE = re.compile(r"^[0-9]+\.[0-9]{2}$")
TX_KEYS = ("id", "type", "status", "amount", "currency", "description", "user_id", "to_user_id",
           "reverses_id", "reversed_by", "created_at", "updated_at")

# Every transactions operation (for the documentation test).
OPERATIONS = [("POST", "/api/transactions"), ("GET", "/api/transactions"),
              ("GET", "/api/transactions/{id}"), ("GET", "/api/transactions/summary"),
              ("POST", "/api/transactions/{id}/reverse"), ("GET", "/api/accounts/me/balance")]


# ------------------------------------------------------------------------------------ money
def cents(s):
    """"12.34" -> 1234 (exact, via Decimal)."""
    return int((decimal.Decimal(s) * 100).to_integral_exact())


def money(c):
    """1234 -> "12.34"."""
    sign = "-" if c < 0 else ""
    c = abs(c)
    return "%s%d.%02d" % (sign, c // 100, c % 100)


def new_key(tag="k"):
    return "e2e-%s-%s" % (tag, uuid.uuid4())


# ------------------------------------------------------------------------------------ requests
def _documented(method, template):
    try:
        oc.operation(method, template)
        return True
    except AssertionError:
        return False


def tx(ctx, method, template, status=None, code=None, path=None, body=None, token=None, key=None,
       headers=None, raw=None, instance=None, timeout=None, timing=None):
    """One request to a transactions route (through Nginx, or straight to `instance`).

    Checks: X-Correlation-ID echoed; an error is the JSON envelope carrying that id; when given,
    status and code match; the response matches docs/openapi.yaml when the operation is documented.
    key: sent as Idempotency-Key. timing: list receiving the round-trip seconds. Returns lib.Response."""
    path = path or template
    url = ctx.direct(instance, path) if instance else ctx.url(path)
    cid = new_cid("h11")
    hdrs = {"X-Correlation-ID": cid}
    if token is not None:
        hdrs["Authorization"] = "Bearer " + token
    if key is not None:
        hdrs["Idempotency-Key"] = key
    hdrs.update(headers or {})
    t0 = time.monotonic()
    resp = ctx.http(method, url, body=body, raw=raw, headers=hdrs, timeout=timeout)
    if timing is not None:
        timing.append(time.monotonic() - t0)
    what = "%s %s" % (method, path)
    if status is not None:
        assert resp.status == status, "%s -> %d, want %d: %r" % (what, resp.status, status, resp.body[:400])
    assert resp.headers.get("X-Correlation-ID") == cid, "%s: X-Correlation-ID %r, want %r" % (
        what, resp.headers.get("X-Correlation-ID"), cid)
    if resp.status >= 400:
        err = assert_envelope(resp, resp.status, cid)
        if code is not None:
            assert err["code"] == code, "%s -> %d code %r, want %r: %r" % (what, resp.status, err["code"], code, resp.json)
    else:
        assert code is None, "%s -> %d, want error code %r: %r" % (what, resp.status, code, resp.body[:300])
    if _documented(method, template):
        oc.check(resp, method, template)
    return resp


def post_tx(ctx, token, body, status=201, code=None, key=None, **kw):
    """POST /api/transactions with a fresh Idempotency-Key unless one is given."""
    return tx(ctx, "POST", "/api/transactions", status, code, body=body, token=token,
              key=new_key() if key is None else key, **kw)


def get_tx(ctx, token, tx_id, status=200, code=None, **kw):
    return tx(ctx, "GET", "/api/transactions/{id}", status, code, path="/api/transactions/" + tx_id, token=token, **kw)


def list_tx(ctx, token, query=None, status=200, code=None, **kw):
    q = urllib.parse.urlencode(query or {})
    return tx(ctx, "GET", "/api/transactions", status, code, path="/api/transactions" + ("?" + q if q else ""),
              token=token, **kw)


def count_tx(ctx, token, query=None):
    """How many transactions the listing counts (include_total=true)."""
    return list_tx(ctx, token, dict(query or {}, limit=1, include_total="true")).json["total"]


def summary(ctx, token, query, status=200, code=None):
    return tx(ctx, "GET", "/api/transactions/summary", status, code,
              path="/api/transactions/summary?" + urllib.parse.urlencode(query), token=token)


def reverse(ctx, token, tx_id, status=201, code=None, key=None, **kw):
    return tx(ctx, "POST", "/api/transactions/{id}/reverse", status, code,
              path="/api/transactions/%s/reverse" % tx_id, token=token,
              key=new_key("rev") if key is None else key, **kw)


def balances(ctx, token, **kw):
    """{currency: "12.34"} of the caller (GET /api/accounts/me/balance)."""
    r = tx(ctx, "GET", "/api/accounts/me/balance", 200, token=token, **kw)
    j = r.json
    assert isinstance(j, dict) and isinstance(j.get("balances"), list), r.body[:300]
    out = {}
    for b in j["balances"]:
        assert AMOUNT_RE.match(b["balance"]), "balance not a 2-decimal string: %r" % b
        assert b["currency"] not in out, "currency listed twice: %r" % j
        out[b["currency"]] = b["balance"]
    return out


def balance(ctx, token, currency="BRL", **kw):
    """The caller's balance in one currency as a string ("0.00" when the currency is absent)."""
    return balances(ctx, token, **kw).get(currency, "0.00")


def assert_tx(t, type_=None, amount=None, currency="BRL", user_id=None, to_user_id=None, status="completed",
              description=None):
    """t is a transaction object with exactly the contract's keys and these values."""
    assert isinstance(t, dict), t
    missing = [k for k in TX_KEYS if k not in t]
    assert not missing, "transaction lacks %s: %r" % (missing, t)
    assert lib.UUID4_RE.match(t["id"]) or oc._UUID_RE.match(t["id"]), t["id"]
    assert AMOUNT_RE.match(t["amount"]) and not t["amount"].startswith("-"), "amount %r" % t["amount"]
    for k in ("created_at", "updated_at"):
        assert isinstance(t[k], str) and (t[k].endswith("Z") or t[k].endswith("+00:00")), "%s %r" % (k, t[k])
    want = {"type": type_, "amount": amount, "currency": currency, "user_id": user_id, "status": status}
    for k, v in want.items():
        if v is not None:
            assert t[k] == v, "transaction %s %r, want %r: %r" % (k, t[k], v, t)
    if type_ in ("deposit", "withdrawal"):
        assert t["to_user_id"] is None, t
    if to_user_id is not None:
        assert t["to_user_id"] == to_user_id, t
    if description is not None:
        assert t["description"] == description, t
    return t


def _error_without_cid(resp):
    e = dict(resp.json["error"])
    e.pop("correlation_id", None)
    return e, resp.status, (resp.headers.get("Content-Type") or "").split(";")[0]


def _shift_day(day, n):
    return (datetime.date.fromisoformat(day) + datetime.timedelta(days=n)).isoformat()


def sessions(ctx, n):
    """n fresh logged-in users, registered in parallel (each login costs an Argon2 hash)."""
    out = [None] * n
    errors = []

    def one(i):
        try:
            out[i] = new_session(ctx)
        except BaseException as exc:  # noqa: B902 - reported below
            errors.append(exc)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return out


# ------------------------------------------------------------------------------------ documentation
def test_openapi_documents_every_transactions_operation(ctx):
    missing = [("%s %s" % op) for op in OPERATIONS if not _documented(*op)]
    assert not missing, "docs/openapi.yaml does not document: %s" % ", ".join(missing)


# ------------------------------------------------------------------------------------ money moves
def test_deposit_withdrawal_and_transfer_move_money_exactly(ctx):
    a, b = sessions(ctx, 2)
    assert balances(ctx, a["access"]) == {}, "a new user already has balances"
    t0 = time.time()
    d = post_tx(ctx, a["access"], {"type": "deposit", "amount": "100.50"}).json
    assert_tx(d, "deposit", "100.50", "BRL", a["id"])
    assert d["description"] is None and d["to_user_id"] is None and d["reverses_id"] is None and d["reversed_by"] is None, d
    ts = time.mktime(time.strptime(d["created_at"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert abs(ts - t0) < 120, "created_at %r is not now" % d["created_at"]
    assert get_tx(ctx, a["access"], d["id"]).json == d, "GET returns another representation than POST"
    assert balance(ctx, a["access"]) == "100.50"

    w = post_tx(ctx, a["access"], {"type": "withdrawal", "amount": "0.50", "currency": "BRL",
                                   "description": "cash \u00e9\u00e7\u00e3o \u2713"}).json
    assert_tx(w, "withdrawal", "0.50", "BRL", a["id"], description="cash \u00e9\u00e7\u00e3o \u2713")
    assert balance(ctx, a["access"]) == "100.00"

    t = post_tx(ctx, a["access"], {"type": "transfer", "amount": "30.25", "to_user_id": b["id"],
                                   "description": "rent"}).json
    assert_tx(t, "transfer", "30.25", "BRL", a["id"], to_user_id=b["id"], description="rent")
    assert balance(ctx, a["access"]) == "69.75"
    assert balance(ctx, b["access"]) == "30.25"
    # both sides of the transfer can read it; the recipient lists it too
    assert get_tx(ctx, b["access"], t["id"]).json == t
    assert [x["id"] for x in list_tx(ctx, b["access"]).json["data"]] == [t["id"]]

    # amounts without decimals or with one are accepted and rendered with two
    assert post_tx(ctx, a["access"], {"type": "deposit", "amount": "5"}).json["amount"] == "5.00"
    assert post_tx(ctx, a["access"], {"type": "deposit", "amount": "1.5"}).json["amount"] == "1.50"
    assert balance(ctx, a["access"]) == "76.25"

    # balances are per currency
    u = post_tx(ctx, a["access"], {"type": "deposit", "amount": "7.07", "currency": "USD"}).json
    assert_tx(u, "deposit", "7.07", "USD", a["id"])
    post_tx(ctx, a["access"], {"type": "transfer", "amount": "0.07", "currency": "USD", "to_user_id": b["id"]})
    assert balances(ctx, a["access"]) == {"BRL": "76.25", "USD": "7.00"}
    assert balances(ctx, b["access"]) == {"BRL": "30.25", "USD": "0.07"}
    bal = tx(ctx, "GET", "/api/accounts/me/balance", 200, token=b["access"]).json
    assert bal["user_id"] == b["id"], bal


def test_ten_deposits_of_ten_cents_make_exactly_one(ctx):
    (a,) = sessions(ctx, 1)
    for _ in range(10):
        post_tx(ctx, a["access"], {"type": "deposit", "amount": "0.10"})
    assert balance(ctx, a["access"]) == "1.00", "0.10 x 10 is not exactly 1.00"
    # 0.1 + 0.2 is 0.30000000000000004 in binary floating point
    post_tx(ctx, a["access"], {"type": "deposit", "amount": "0.20"})
    post_tx(ctx, a["access"], {"type": "withdrawal", "amount": "1.19"})
    assert balance(ctx, a["access"]) == "0.01"
    post_tx(ctx, a["access"], {"type": "withdrawal", "amount": "0.01"})
    assert balance(ctx, a["access"]) == "0.00"
    # the largest amount, twice: no overflow, still exact to the cent
    post_tx(ctx, a["access"], {"type": "deposit", "amount": "1000000000.00"})
    post_tx(ctx, a["access"], {"type": "deposit", "amount": "999999999.99"})
    assert balance(ctx, a["access"]) == "1999999999.99"
    day = list_tx(ctx, a["access"], {"limit": 1}).json["data"][0]["created_at"][:10]
    s = summary(ctx, a["access"], {"group_by": "type", "from": _shift_day(day, -1), "to": _shift_day(day, 1)}).json
    by = {g["key"]: g for g in s["groups"]}
    assert by["deposit"]["count"] == 13 and by["deposit"]["total_in"] == "2000000001.19", by
    assert by["withdrawal"]["count"] == 2 and by["withdrawal"]["total_out"] == "1.20", by


# ------------------------------------------------------------------------------------ validation
def _details_name(resp, field):
    """When the envelope's details name fields, the expected field is among them."""
    d = resp.json["error"].get("details")
    if isinstance(d, dict) and isinstance(d.get("fields"), dict):
        assert field in d["fields"], "details.fields lacks %r: %r" % (field, d)


def test_invalid_amount_currency_type_and_fields_are_400_and_write_nothing(ctx):
    a, b = sessions(ctx, 2)
    post_tx(ctx, a["access"], {"type": "deposit", "amount": "10.00"})
    dep = {"type": "deposit"}
    cases = []
    for amount in ("1.001", "-1", "-1.00", "0", "0.00", "0.0", "abc", "", " 1.00", "1.00 ", "1,00", "1e3",
                   "+1.00", "1.", ".50", "0x10", "1000000000.01", "99999999999999", "12345678901234.00",
                   "\u0661.00", "NaN", "Infinity"):
        cases.append((dict(dep, amount=amount), "amount"))
    for amount in (1e3, 1000, 0.1, None, True, ["1.00"], {"v": "1.00"}):
        cases.append((dict(dep, amount=amount), "amount"))
    cases.append((dict(dep), "amount"))                                  # missing
    for currency in ("usd", "XXX", "US", "USDD", "", 840, "JPN", "BRL "):
        cases.append((dict(dep, amount="1.00", currency=currency), "currency"))
    for type_ in ("payment", "DEPOSIT", "reversal", "", 1, None):
        cases.append(({"type": type_, "amount": "1.00"}, "type"))
    cases.append(({"amount": "1.00"}, "type"))
    cases.append((dict(dep, amount="1.00", description="d" * 501), "description"))
    cases.append((dict(dep, amount="1.00", description=5), "description"))
    # control characters other than tab and newline, C1 (U+0080..U+009F) included
    for text in ("a\u0085b", "a\u0080", "\u009b31m", "a\u007fb", "a\rb", "\u001b[2J"):
        cases.append((dict(dep, amount="1.00", description=text), "description"))
    tr = {"type": "transfer", "amount": "1.00"}
    cases.append((tr, "to_user_id"))                                     # transfer needs a recipient
    cases.append((dict(tr, to_user_id="not-a-uuid"), "to_user_id"))
    cases.append((dict(tr, to_user_id=7), "to_user_id"))
    cases.append((dict(tr, to_user_id=a["id"]), "to_user_id"))           # to oneself
    for body, field in cases:
        r = post_tx(ctx, a["access"], body, 400, "validation_failed")
        _details_name(r, field)
    # not JSON objects, not JSON, not JSON content
    for raw in (b'{"type": "deposit", "amount": ', b"[1,2]", b'"deposit"', b"null"):
        post_tx(ctx, a["access"], None, 400, raw=raw, headers={"Content-Type": "application/json"})
    post_tx(ctx, a["access"], None, 415, raw=json.dumps({"type": "deposit", "amount": "1.00"}),
            headers={"Content-Type": "text/plain"})
    # the boundaries that are valid
    post_tx(ctx, a["access"], dict(dep, amount="0.01", description="d" * 500))
    post_tx(ctx, a["access"], dict(dep, amount="1.00", currency="EUR"))
    t = post_tx(ctx, a["access"], dict(dep, amount="0.10", description="tab\there\nnew line \u00a0\u00e9")).json
    assert t["description"] == "tab\there\nnew line \u00a0\u00e9", t
    assert balances(ctx, a["access"]) == {"BRL": "10.11", "EUR": "1.00"}, "a refused request wrote money"
    assert count_tx(ctx, a["access"]) == 4, "a refused request was recorded"
    assert balances(ctx, b["access"]) == {}


def test_idempotency_key_is_required_and_bounded(ctx):
    (a,) = sessions(ctx, 1)
    body = {"type": "deposit", "amount": "1.00"}
    tx(ctx, "POST", "/api/transactions", 400, "idempotency_key_required", body=body, token=a["access"])
    for bad in ("", "k" * 256, "bad\x01key", "tab\tkey", "caf\u00e9"):
        r = tx(ctx, "POST", "/api/transactions", 400, body=body, token=a["access"], key=bad)
        assert err_code(r) in ("idempotency_key_required", "idempotency_key_invalid", "validation_failed"), r.json
    assert balances(ctx, a["access"]) == {}, "a request without a valid key wrote money"
    post_tx(ctx, a["access"], body, key="K" * 255)
    post_tx(ctx, a["access"], body, key="!~ printable ASCII ~!")
    assert balance(ctx, a["access"]) == "2.00"


def test_no_token_or_a_bad_token_is_401(ctx):
    for method, path in (("GET", "/api/transactions"), ("GET", "/api/accounts/me/balance"),
                         ("POST", "/api/transactions"), ("GET", "/api/transactions/summary?group_by=type")):
        template = path.split("?")[0]
        tx(ctx, method, template, 401, "missing_token", path=path, key=new_key(),
           body={"type": "deposit", "amount": "1.00"} if method == "POST" else None)
        r = tx(ctx, method, template, 401, path=path, token="not.a.jwt", key=new_key(),
               body={"type": "deposit", "amount": "1.00"} if method == "POST" else None)
        assert (r.headers.get("WWW-Authenticate") or "").startswith("Bearer"), r.headers


# ------------------------------------------------------------------------------------ 422s
def test_insufficient_funds_is_422_and_writes_nothing(ctx):
    a, b = sessions(ctx, 2)
    post_tx(ctx, a["access"], {"type": "deposit", "amount": "10.00"})
    post_tx(ctx, a["access"], {"type": "withdrawal", "amount": "10.01"}, 422, "insufficient_funds")
    post_tx(ctx, a["access"], {"type": "transfer", "amount": "10.01", "to_user_id": b["id"]}, 422, "insufficient_funds")
    post_tx(ctx, a["access"], {"type": "withdrawal", "amount": "0.01", "currency": "USD"}, 422, "insufficient_funds")
    post_tx(ctx, b["access"], {"type": "transfer", "amount": "0.01", "to_user_id": a["id"]}, 422, "insufficient_funds")
    assert balances(ctx, a["access"]) == {"BRL": "10.00"}
    assert balances(ctx, b["access"]) == {}
    assert count_tx(ctx, a["access"]) == 1, "a refused transaction was recorded"
    assert count_tx(ctx, b["access"]) == 0, "a refused transaction was recorded"
    # exactly the balance is fine, and leaves exactly zero
    post_tx(ctx, a["access"], {"type": "transfer", "amount": "4.00", "to_user_id": b["id"]})
    post_tx(ctx, a["access"], {"type": "withdrawal", "amount": "6.00"})
    assert balance(ctx, a["access"]) == "0.00"
    post_tx(ctx, a["access"], {"type": "withdrawal", "amount": "0.01"}, 422, "insufficient_funds")
    assert balance(ctx, b["access"]) == "4.00"


def test_transfer_to_an_unknown_or_deleted_recipient_is_422(ctx):
    a, gone = sessions(ctx, 2)
    post_tx(ctx, a["access"], {"type": "deposit", "amount": "20.00"})
    post_tx(ctx, a["access"], {"type": "transfer", "amount": "1.00", "to_user_id": str(uuid.uuid4())},
            422, "recipient_not_found")
    # a user deleted at customers-service (never seen by transactions before) is no recipient
    customers_call(ctx, "DELETE", "/api/users/{id}", 204, path="/api/users/" + gone["id"], token=gone["access"])
    post_tx(ctx, a["access"], {"type": "transfer", "amount": "1.00", "to_user_id": gone["id"]},
            422, "recipient_not_found")
    # ... and their own token is dead here too
    post_tx(ctx, gone["access"], {"type": "deposit", "amount": "1.00"}, 401, "session_revoked")
    # nothing moved; the sender can still pay a live user
    assert balances(ctx, a["access"]) == {"BRL": "20.00"}
    assert count_tx(ctx, a["access"]) == 1
    (c,) = sessions(ctx, 1)
    post_tx(ctx, a["access"], {"type": "transfer", "amount": "1.00", "to_user_id": c["id"]})
    assert balance(ctx, c["access"]) == "1.00"


# ------------------------------------------------------------------------------------ BOLA
def test_users_cannot_see_list_or_reverse_each_others_transactions(ctx):
    a, b, c = sessions(ctx, 3)
    admin = admin_session(ctx)["access"]
    dep = post_tx(ctx, a["access"], {"type": "deposit", "amount": "9.00"}).json
    tr = post_tx(ctx, a["access"], {"type": "transfer", "amount": "2.00", "to_user_id": b["id"]}).json
    post_tx(ctx, c["access"], {"type": "deposit", "amount": "3.00"})
    # a foreign transaction is indistinguishable from a missing one
    foreign = get_tx(ctx, b["access"], dep["id"], 404, "transaction_not_found")
    missing = get_tx(ctx, b["access"], str(uuid.uuid4()), 404, "transaction_not_found")
    assert _error_without_cid(foreign) == _error_without_cid(missing), (foreign.json, missing.json)
    get_tx(ctx, c["access"], tr["id"], 404, "transaction_not_found")
    r = get_tx(ctx, b["access"], "not-a-uuid", None)
    assert r.status in (400, 404), "GET /api/transactions/not-a-uuid -> %d" % r.status
    assert get_tx(ctx, b["access"], tr["id"]).json["id"] == tr["id"]          # the other side may
    assert get_tx(ctx, admin, dep["id"]).json == get_tx(ctx, a["access"], dep["id"]).json
    # lists: own only; user_id= is an admin's filter
    ids_b = {t["id"] for t in list_tx(ctx, b["access"], {"limit": 100}).json["data"]}
    assert ids_b == {tr["id"]}, ids_b
    r = list_tx(ctx, b["access"], {"user_id": a["id"]}, None)
    assert r.status in (400, 403) or {t["id"] for t in r.json["data"]} <= ids_b, \
        "user B listed A's transactions with user_id=: %r" % r.body[:300]
    ids_admin = {t["id"] for t in list_tx(ctx, admin, {"user_id": a["id"], "limit": 100}).json["data"]}
    assert ids_admin == {dep["id"], tr["id"]}, ids_admin
    # the summary with another user_id never shows that user's money
    day = dep["created_at"][:10]
    q = {"group_by": "type", "from": _shift_day(day, -1), "to": _shift_day(day, 1), "user_id": a["id"]}
    r = summary(ctx, c["access"], q, None)
    if r.status != 403:
        assert r.status == 200, r.body[:300]
        kinds = {g["key"]: g for g in r.json["groups"]}
        assert set(kinds) == {"deposit"} and kinds["deposit"]["total_in"] == "3.00", \
            "user C's summary with user_id=A shows A's money: %r" % r.json
    admin_sum = {g["key"]: g for g in summary(ctx, admin, q).json["groups"]}
    assert admin_sum["deposit"]["total_in"] == "9.00" and admin_sum["transfer"]["total_out"] == "2.00", admin_sum
    # reversing is for admins only, the owner included
    reverse(ctx, b["access"], dep["id"], 403, "forbidden")
    reverse(ctx, a["access"], dep["id"], 403, "forbidden")
    reverse(ctx, b["access"], tr["id"], 403, "forbidden")
    assert get_tx(ctx, a["access"], dep["id"]).json["status"] == "completed"
    assert balances(ctx, a["access"]) == {"BRL": "7.00"} and balances(ctx, b["access"]) == {"BRL": "2.00"}


# ------------------------------------------------------------------------------------ listing
def test_listing_filters_and_pagination(ctx):
    a, b = sessions(ctx, 2)
    ids = []
    for amount in ("10.00", "20.00", "30.00"):
        ids.append(post_tx(ctx, a["access"], {"type": "deposit", "amount": amount}).json["id"])
    for amount in ("1.00", "2.00"):
        ids.append(post_tx(ctx, a["access"], {"type": "withdrawal", "amount": amount}).json["id"])
    for amount in ("3.00", "4.00"):
        ids.append(post_tx(ctx, a["access"], {"type": "transfer", "amount": amount, "to_user_id": b["id"]}).json["id"])
    post_tx(ctx, b["access"], {"type": "deposit", "amount": "1.00"})
    ids.append(post_tx(ctx, b["access"], {"type": "transfer", "amount": "0.50", "to_user_id": a["id"]}).json["id"])

    full = list_tx(ctx, a["access"], {"limit": 100, "include_total": "true"}).json
    assert full["total"] == 8 and full["limit"] == 100 and full["has_more"] is False and full["next_cursor"] is None, \
        {k: full[k] for k in ("total", "limit", "has_more", "next_cursor")}
    assert "page" not in full, full
    assert sorted(t["id"] for t in full["data"]) == sorted(ids)
    newest_first = [t["id"] for t in full["data"]]
    assert [(t["created_at"], t["id"]) for t in full["data"]] == \
        sorted(((t["created_at"], t["id"]) for t in full["data"]), reverse=True), "not newest first"
    for t in full["data"]:
        assert_tx(t)
        assert a["id"] in (t["user_id"], t["to_user_id"]), t
    # cursor pages of 3: the same order, disjoint, complete; no total unless asked for
    seen, cursor = [], None
    for n in (3, 3, 2):
        p = list_tx(ctx, a["access"], dict({"limit": 3}, **({"cursor": cursor} if cursor else {}))).json
        assert len(p["data"]) == n and p["limit"] == 3 and "total" not in p and "page" not in p, p
        assert p["has_more"] is (n == 3) and (p["next_cursor"] is None) is (n < 3), p
        seen += [t["id"] for t in p["data"]]
        cursor = p["next_cursor"]
    assert seen == newest_first, "cursor pages overlap, miss or reorder transactions"
    # the deprecated page=: the old offset pages with their total, same order
    seen = []
    for page in (1, 2, 3):
        p = list_tx(ctx, a["access"], {"limit": 3, "page": page}).json
        assert p["total"] == 8 and p["page"] == page and p["limit"] == 3, p
        assert len(p["data"]) == (3 if page < 3 else 2) and p["has_more"] is (page < 3) and p["next_cursor"] is None, p
        seen += [t["id"] for t in p["data"]]
    assert seen == newest_first, "pages overlap or miss transactions"
    assert list_tx(ctx, a["access"], {"limit": 3, "page": 4}).json["data"] == []
    # filters
    def count(**q):
        r = list_tx(ctx, a["access"], dict(q, limit=100, include_total="true")).json
        assert r["total"] == len(r["data"]), r
        return r
    r = count(type="deposit")
    assert r["total"] == 3 and {t["type"] for t in r["data"]} == {"deposit"}, r
    assert count(type="withdrawal")["total"] == 2
    r = count(type="transfer")
    assert r["total"] == 3, "a transfer must be listed on both sides: %r" % r
    assert count(status="completed")["total"] == 8
    assert count(status="reversed")["total"] == 0
    day = full["data"][0]["created_at"][:10]
    assert count(**{"from": _shift_day(day, -1), "to": _shift_day(day, 1)})["total"] == 8
    assert count(**{"from": _shift_day(day, 1)})["total"] == 0
    assert count(to=_shift_day(day, -1))["total"] == 0
    assert count(type="deposit", **{"from": _shift_day(day, -1)})["total"] == 3
    # a cursor keeps the filters it is sent with: the deposits after the newest deposit
    p = list_tx(ctx, a["access"], {"type": "deposit", "limit": 1}).json
    rest = list_tx(ctx, a["access"], {"type": "deposit", "limit": 10, "cursor": p["next_cursor"]}).json
    assert [t["type"] for t in rest["data"]] == ["deposit", "deposit"] and rest["has_more"] is False, rest
    default = list_tx(ctx, a["access"]).json
    assert len(default["data"]) == 8 and default["limit"] == 20 and "total" not in default, default
    # bad parameters
    for q in ({"limit": 0}, {"limit": 101}, {"limit": "x"}, {"page": 0}, {"page": -1}, {"page": "+2"},
              {"type": "bogus"}, {"status": "bogus"}, {"from": "yesterday"}, {"to": "2024-13-45"},
              {"cursor": "x"}, {"cursor": p["next_cursor"][:-1]}, {"cursor": p["next_cursor"], "page": 1},
              {"include_total": "yes"}):
        list_tx(ctx, a["access"], q, 400, "validation_failed")


def test_summary_groups_by_day_month_and_type(ctx):
    a, b = sessions(ctx, 2)
    post_tx(ctx, a["access"], {"type": "deposit", "amount": "10.00"})
    post_tx(ctx, a["access"], {"type": "deposit", "amount": "5.50"})
    post_tx(ctx, a["access"], {"type": "withdrawal", "amount": "2.25"})
    t = post_tx(ctx, a["access"], {"type": "transfer", "amount": "3.00", "to_user_id": b["id"]}).json
    post_tx(ctx, b["access"], {"type": "transfer", "amount": "1.00", "to_user_id": a["id"]})
    day = t["created_at"][:10]
    rng = {"from": _shift_day(day, -1), "to": _shift_day(day, 1)}
    s = summary(ctx, a["access"], dict(rng, group_by="type")).json
    assert s["group_by"] == "type" and "from" in s and "to" in s, s
    by = {g["key"]: g for g in s["groups"]}
    for g in s["groups"]:
        assert AMOUNT_RE.match(g["total_in"]) and AMOUNT_RE.match(g["total_out"]), g
    assert set(by) == {"deposit", "withdrawal", "transfer"}, by
    assert (by["deposit"]["count"], by["deposit"]["total_in"], by["deposit"]["total_out"]) == (2, "15.50", "0.00"), by
    assert (by["withdrawal"]["count"], by["withdrawal"]["total_in"], by["withdrawal"]["total_out"]) == \
        (1, "0.00", "2.25"), by
    assert (by["transfer"]["count"], by["transfer"]["total_in"], by["transfer"]["total_out"]) == (2, "1.00", "3.00"), by
    for group_by, key in (("day", day), ("month", day[:7])):
        s = summary(ctx, a["access"], dict(rng, group_by=group_by)).json
        assert s["group_by"] == group_by, s
        assert [g["key"] for g in s["groups"]] == [key], "group_by=%s: %r" % (group_by, s)
        g = s["groups"][0]
        assert (g["count"], g["total_in"], g["total_out"]) == (5, "16.50", "5.25"), g
    # outside the range: nothing; bad group_by / dates: 400
    s = summary(ctx, a["access"], {"group_by": "day", "from": _shift_day(day, 1), "to": _shift_day(day, 2)}).json
    assert s["groups"] == [], s
    for q in ({"group_by": "week"}, {"group_by": "type", "from": "not-a-date"}, {"group_by": "day", "to": "2024-02-30"}):
        summary(ctx, a["access"], q, 400, "validation_failed")
    # the recipient's view of the same transfers
    sb = {g["key"]: g for g in summary(ctx, b["access"], dict(rng, group_by="type")).json["groups"]}
    assert set(sb) == {"transfer"} and sb["transfer"]["total_in"] == "3.00" and sb["transfer"]["total_out"] == "1.00", sb


# ------------------------------------------------------------------------------------ reversal
def test_admin_reverses_a_transfer_once_and_balances_are_restored(ctx):
    a, b = sessions(ctx, 2)
    admin = admin_session(ctx)["access"]
    post_tx(ctx, a["access"], {"type": "deposit", "amount": "50.00"})
    t = post_tx(ctx, a["access"], {"type": "transfer", "amount": "20.00", "to_user_id": b["id"]}).json
    assert (balance(ctx, a["access"]), balance(ctx, b["access"])) == ("30.00", "20.00")
    tx(ctx, "POST", "/api/transactions/{id}/reverse", 400, "idempotency_key_required",
       path="/api/transactions/%s/reverse" % t["id"], token=admin)
    key = new_key("rev")
    r1 = reverse(ctx, admin, t["id"], key=key)
    assert r1.status == 201, r1.status
    rev = assert_tx(r1.json, "reversal", "20.00", "BRL")
    assert rev["reverses_id"] == t["id"] and rev["id"] != t["id"], rev
    orig = get_tx(ctx, a["access"], t["id"]).json
    assert orig["status"] == "reversed" and orig["reversed_by"] == rev["id"], orig
    assert get_tx(ctx, b["access"], t["id"]).json["status"] == "reversed"
    assert (balance(ctx, a["access"]), balance(ctx, b["access"])) == ("50.00", "0.00")
    # the same key replays; another key is a second reversal: 409
    r2 = reverse(ctx, admin, t["id"], key=key)
    assert r2.json == r1.json and r2.headers.get("Idempotent-Replayed") == "true", (r2.headers.items(), r2.json)
    reverse(ctx, admin, t["id"], 409, "already_reversed")
    reverse(ctx, admin, str(uuid.uuid4()), 404, "transaction_not_found")
    assert (balance(ctx, a["access"]), balance(ctx, b["access"])) == ("50.00", "0.00")
    # the reversal is listed for the owner and filterable by status
    assert [x["id"] for x in list_tx(ctx, a["access"], {"type": "reversal"}).json["data"]] == [rev["id"]]
    assert [x["id"] for x in list_tx(ctx, a["access"], {"status": "reversed"}).json["data"]] == [t["id"]]


def test_reversing_a_spent_deposit_is_422_and_a_withdrawal_reversal_refunds(ctx):
    (a,) = sessions(ctx, 1)
    admin = admin_session(ctx)["access"]
    d = post_tx(ctx, a["access"], {"type": "deposit", "amount": "10.00"}).json
    w = post_tx(ctx, a["access"], {"type": "withdrawal", "amount": "8.00"}).json
    reverse(ctx, admin, d["id"], 422, "insufficient_funds")
    assert get_tx(ctx, a["access"], d["id"]).json["status"] == "completed"
    assert balance(ctx, a["access"]) == "2.00"
    rev = reverse(ctx, admin, w["id"]).json
    assert rev["type"] == "reversal" and rev["reverses_id"] == w["id"], rev
    assert balance(ctx, a["access"]) == "10.00"
    reverse(ctx, admin, d["id"])                               # now affordable
    assert balance(ctx, a["access"]) == "0.00"
    reverse(ctx, admin, d["id"], 409, "already_reversed")


# ------------------------------------------------------------------------------------ idempotency
def test_replay_returns_the_original_without_a_second_effect(ctx):
    a, b = sessions(ctx, 2)
    key = new_key("replay")
    body = {"type": "deposit", "amount": "7.00", "description": "first"}
    r1 = post_tx(ctx, a["access"], body, key=key, instance="transactions-1")
    assert r1.headers.get("Idempotent-Replayed") in (None, "false"), "the original is marked replayed"
    for inst in ("transactions-2", "transactions-1", None):       # any instance replays
        r = post_tx(ctx, a["access"], body, key=key, instance=inst)
        assert r.headers.get("Idempotent-Replayed") == "true", "no Idempotent-Replayed: true on a replay"
        assert r.json == r1.json, "replay differs:\n%r\n%r" % (r.json, r1.json)
    # the same body with its keys reordered and other whitespace is the same request
    raw = '{ "description" : "first",\n "amount":"7.00",  "type":"deposit" }'
    r = post_tx(ctx, a["access"], None, key=key, raw=raw, headers={"Content-Type": "application/json"})
    assert r.json == r1.json and r.headers.get("Idempotent-Replayed") == "true"
    assert balance(ctx, a["access"]) == "7.00", "a replay had a second effect"
    # the same key with another body is refused, whatever differs
    for other in (dict(body, amount="7.01"), dict(body, description="second"), dict(body, currency="USD"),
                  {"type": "withdrawal", "amount": "7.00", "description": "first"}):
        post_tx(ctx, a["access"], other, 422, "idempotency_key_reused", key=key)
    assert balances(ctx, a["access"]) == {"BRL": "7.00"}
    # keys are per user: B's identical request with A's key is B's own first request
    rb = post_tx(ctx, b["access"], body, key=key)
    assert rb.headers.get("Idempotent-Replayed") in (None, "false") and rb.json["id"] != r1.json["id"], rb.json
    assert rb.json["user_id"] == b["id"]
    assert balance(ctx, b["access"]) == "7.00"
    # a request refused by validation does not consume its key
    key2 = new_key("fixme")
    post_tx(ctx, a["access"], {"type": "deposit", "amount": "abc"}, 400, "validation_failed", key=key2)
    r = post_tx(ctx, a["access"], {"type": "deposit", "amount": "1.00"}, key=key2)
    assert r.headers.get("Idempotent-Replayed") in (None, "false")
    assert balance(ctx, a["access"]) == "8.00"


def _fire_together(ctx, n, token, body, key):
    """n identical POSTs released at once (a barrier); returns their responses."""
    out = [None] * n
    gate = threading.Barrier(n)

    def one(i):
        hdrs = {"Authorization": "Bearer " + token, "Idempotency-Key": key, "X-Correlation-ID": new_cid("dup")}
        gate.wait()
        out[i] = ctx.http("POST", "/api/transactions", body=body, headers=hdrs, timeout=15)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_concurrent_duplicates_take_effect_once_and_in_flight_ones_get_409(ctx):
    a, b = sessions(ctx, 2)
    post_tx(ctx, a["access"], {"type": "deposit", "amount": "1000.00"})
    rounds, in_flight_seen, total = 12, 0, 0
    for i in range(rounds):
        key = new_key("dup%d" % i)
        body = {"type": "transfer", "amount": "1.00", "to_user_id": b["id"], "description": "dup %d" % i}
        rs = _fire_together(ctx, 16, a["access"], body, key)
        created = [r for r in rs if r.status == 201]
        conflicts = [r for r in rs if r.status == 409]
        other = [(r.status, r.body[:200]) for r in rs if r.status not in (201, 409)]
        assert not other, "round %d: unexpected answers %r" % (i, other)
        for r in conflicts:
            assert err_code(r) == "idempotency_request_in_progress", r.json
        # one of the 16 executed; every other one either replayed it or met it in flight
        originals = [r for r in created if r.headers.get("Idempotent-Replayed") != "true"]
        assert len(originals) == 1, "round %d: %d of 16 identical requests took effect" % (i, len(originals))
        final = post_tx(ctx, a["access"], body, key=key)
        assert final.headers.get("Idempotent-Replayed") == "true", "the key's result was not kept"
        assert {r.json["id"] for r in created} == {final.json["id"]}, "one key, two transactions"
        assert all(r.json == final.json for r in created), "replays differ from the original"
        in_flight_seen += len(conflicts)
        total += 1
    assert balance(ctx, b["access"]) == money(100 * total), "duplicates took effect more than once"
    assert balance(ctx, a["access"]) == money(100000 - 100 * total)
    assert count_tx(ctx, b["access"]) == total
    assert in_flight_seen > 0, ("%d rounds of 16 simultaneous duplicates never met a 409 "
                                "idempotency_request_in_progress (they waited and replayed instead)" % rounds)


# ------------------------------------------------------------------------------------ batched postings
BATCH_COUNTERS = ("transactions_post_batches_total", "transactions_post_batched_total",
                  "transactions_post_alone_total")


def _batch_counters(ctx):
    """The posting batcher's counters, summed over the transactions instances (direct /metrics)."""
    out = dict.fromkeys(BATCH_COUNTERS, 0)
    for inst in ctx.instances_of("transactions"):
        r = ctx.http("GET", ctx.direct(inst, "/metrics"), timeout=5)
        assert r.status == 200, "%s /metrics -> %d" % (inst, r.status)
        samples, _ = lib.parse_prometheus(r.body.decode())
        seen = set()
        for name, _labels, value in samples:
            if name in out:
                out[name] += int(value)
                seen.add(name)
        assert seen == set(out), "%s /metrics lacks %s" % (inst, sorted(set(out) - seen))
    return out


def test_concurrent_deposits_and_withdrawals_are_batched_and_exact(ctx):
    """Many users' deposits and withdrawals at once (the service combines them into posting
    batches), with exact duplicates and reused keys among them: every effect is counted exactly
    once, to the cent, and the batcher's counters show statements carrying several postings."""
    run = os.urandom(4).hex()
    rng = random.Random(run)
    users = sessions(ctx, 12)
    fund = "100.00"
    owner = {u["id"]: u for u in users}
    funding = {u["id"]: post_tx(ctx, u["access"], {"type": "deposit", "amount": fund}).json for u in users}
    before = _batch_counters(ctx)

    lock = threading.Lock()
    keys = {}          # key -> {"user", "kind", "bodies": [body, ...], "answers": [(body index, phase, resp)]}
    errors = []
    seq = iter(range(1, 1 << 30))

    def body_for(key, kind):
        p = rng.random()
        if kind == "reuse" or p < 0.45:
            b = {"type": "deposit", "amount": money(rng.randint(1, 5000))}
        elif p < 0.92:
            b = {"type": "withdrawal", "amount": money(rng.randint(1, 6000))}
        else:   # more than a balance can ever hold in this test: always insufficient_funds
            b = {"type": "withdrawal", "amount": money(rng.randint(10000000, 99999999))}
        b["description"] = "batch %s %s" % (run, key)
        return b

    def plan(kind):
        key = "e2e-batch-%s-%d" % (run, next(seq))
        body = body_for(key, kind)
        bodies = [body]
        if kind == "reuse":     # the same key with another amount, sent at the same moment
            bodies.append(dict(body, amount=money(cents(body["amount"]) + 1)))
        keys[key] = {"user": rng.choice(users), "kind": kind, "bodies": bodies, "answers": []}
        return key

    def send(key, bi, phase):
        k = keys[key]
        try:
            r = tx(ctx, "POST", "/api/transactions", body=k["bodies"][bi], token=k["user"]["access"], key=key,
                   timeout=15)
        except Exception as exc:  # noqa: B902 - a transport error or a contract violation is reported
            with lock:
                errors.append("%s %s: %s: %s" % (key, k["bodies"][bi], type(exc).__name__, exc))
            return None
        with lock:
            k["answers"].append((bi, phase, r))
        return r

    def run_job(key):
        k = keys[key]
        if k["kind"] == "single":
            send(key, 0, "load")
            return
        gate = threading.Barrier(2)
        pair = [0, 0] if k["kind"] == "twin" else [0, 1]

        def half(bi):
            gate.wait()
            send(key, bi, "load")
        other = threading.Thread(target=half, args=(pair[1],))
        other.start()
        half(pair[0])
        other.join()

    jobs = [plan("single") for _ in range(440)] + [plan("twin") for _ in range(60)] + \
        [plan("reuse") for _ in range(20)]
    rng.shuffle(jobs)
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=48) as pool:
        list(pool.map(run_job, jobs))
    load_s = time.monotonic() - t0
    after = _batch_counters(ctx)

    def in_flight(r):
        return r.status == 409 and err_code(r) == "idempotency_request_in_progress"

    # A request that met its twin in flight is sent again now, until it gets a final answer.
    for key, k in keys.items():
        for bi in {bi for bi, _, r in k["answers"] if in_flight(r)}:
            deadline = time.monotonic() + 5
            while True:
                r = send(key, bi, "resend")
                if r is None or not in_flight(r) or time.monotonic() > deadline:
                    break
                time.sleep(0.05)

    def original(k):
        """(body index, JSON, phase) of the key's non-replayed 201s (more than one is a double effect)."""
        return [(bi, r.json, phase) for bi, phase, r in k["answers"]
                if r.status == 201 and r.headers.get("Idempotent-Replayed") != "true"]

    # Afterwards, one key of each user that took effect: replays and another body, one at a time.
    later = []
    for u in users:
        mine = [key for key, k in keys.items() if k["user"] is u and len(original(k)) == 1]
        if mine:
            later.append(rng.choice(mine))
    for key in later:
        k = keys[key]
        bi = original(k)[0][0]
        k["bodies"].append(dict(k["bodies"][bi], description="another body, same key"))
        send(key, bi, "replay")
        send(key, len(k["bodies"]) - 1, "replay")

    # ---- every answer, key by key
    counts = collections.Counter()
    expected = {u["id"]: cents(fund) for u in users}
    created = {}     # key -> the original 201 JSON
    for key, k in keys.items():
        uid = k["user"]["id"]
        orig = original(k)
        if len(orig) > 1:
            errors.append("%s took effect %d times: %r" % (key, len(orig), [j for _, j, _ in orig]))
            continue
        obi, oj, ophase = orig[0] if orig else (None, None, None)
        if oj is not None:
            ob = k["bodies"][obi]
            want = {"type": ob["type"], "amount": money(cents(ob["amount"])), "currency": "BRL", "user_id": uid,
                    "to_user_id": None, "status": "completed", "description": ob["description"]}
            got = {f: oj.get(f) for f in want} if isinstance(oj, dict) else oj
            if got != want:
                errors.append("%s: 201 %r does not describe the request %r" % (key, oj, ob))
                continue
            created[key] = oj
            expected[uid] += cents(ob["amount"]) if ob["type"] == "deposit" else -cents(ob["amount"])
            if cents(ob["amount"]) >= 10000000:
                errors.append("%s: a withdrawal of %s from at most a few thousand was accepted" % (key, ob["amount"]))
        last = {}
        for bi, phase, r in k["answers"]:
            b = k["bodies"][bi]
            replayed = r.headers.get("Idempotent-Replayed") == "true"
            code = err_code(r)
            counts["%s %d%s%s" % (k["kind"], r.status, " " + code if code else "",
                                  " replayed" if replayed else "")] += 1
            last[bi] = r
            ok = False
            if r.status == 201:
                ok = bi == obi and r.json == oj and (replayed or phase != "replay")
            elif r.status == 422 and code == "insufficient_funds":
                # not kept as the key's result, so a later request may still post; but once the
                # key's 201 has been answered, the same request replays it
                ok = b["type"] == "withdrawal" and phase != "replay" and not (phase == "resend" and ophase == "load")
            elif r.status == 422 and code == "idempotency_key_reused":
                ok = oj is not None and bi != obi
            elif in_flight(r):
                ok = phase != "replay" and (k["kind"] != "single" or phase == "resend") and \
                    r.headers.get("Retry-After") is not None
            if not ok:
                errors.append("%s (%s, %s, body %r; key's 201: %r): %d replayed=%s %r" % (
                    key, k["kind"], phase, b, oj, r.status, replayed, r.body[:300]))
        if not last or any(in_flight(r) for r in last.values()):
            errors.append("%s (%s) never got a final answer: %r" % (
                key, k["kind"], [(bi, p, r.status) for bi, p, r in k["answers"]]))
    for key in later:
        phases = [(bi, r.status) for bi, p, r in keys[key]["answers"] if p == "replay"]
        if len(phases) != 2:
            errors.append("%s: the later replay / reuse got %r" % (key, phases))
    print("     batching: %d requests in %.1f s; %s" % (sum(counts.values()), load_s, sorted(counts.items())))
    print("     batching: counters before %r after %r" % (before, after))
    assert not errors, "%d wrong answers (run %s):\n  %s" % (len(errors), run, "\n  ".join(errors[:15]))
    assert counts["single 201"] >= 100 and any(c.startswith("single 422 insufficient_funds") for c in counts), counts

    # ---- balances, transactions readable by their owner, the ledger
    for u in users:
        got = balance(ctx, u["access"])
        assert cents(got) == expected[u["id"]], \
            "user %s: balance %s, want %s = %s + deposits - withdrawals answered 201" % (
                u["id"], got, money(expected[u["id"]]), fund)
        assert cents(got) >= 0, "negative balance %s" % got
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        reads = list(pool.map(lambda kv: (kv[0], kv[1], get_tx(ctx, keys[kv[0]]["user"]["access"], kv[1]["id"], None)),
                              created.items()))
    for key, t, r in reads:
        assert r.status == 200 and r.json == t, "GET /api/transactions/%s (key %s) -> %d %r, the 201 said %r" % (
            t["id"], key, r.status, r.body[:300], t)
    ids = ",".join("'%s'" % u["id"] for u in users)
    rows = {}
    for tid, uid, key, type_, amount in (line.split("|") for line in ctx.psql(
            "SELECT id, user_id, coalesce(idem_key, ''), type, amount FROM transactions.transactions "
            "WHERE user_id IN (%s) OR to_user_id IN (%s)" % (ids, ids)).out.splitlines() if line):
        rows[tid] = (uid, key, type_, amount)
    want_rows = {t["id"]: (t["user_id"], key, t["type"], t["amount"]) for key, t in created.items()}
    for uid, t in funding.items():
        want_rows[t["id"]] = (uid, rows.get(t["id"], (None, None))[1], "deposit", fund)
    missing = sorted(set(want_rows) - set(rows))
    extra = sorted(set(rows) - set(want_rows))
    assert not missing and not extra, "ledger rows missing for 201s: %r; rows no 201 announced: %r" % (
        missing[:5], [rows[i] for i in extra[:5]])
    wrong = [(i, rows[i], want_rows[i]) for i in rows if rows[i] != want_rows[i]]
    assert not wrong, "ledger rows differ from their 201s: %r" % wrong[:5]
    per_user = collections.Counter(t["user_id"] for t in created.values())
    for u in users:
        n = count_tx(ctx, u["access"])
        assert n == 1 + per_user[u["id"]], "user %s lists %d transactions, want 1 + %d keys answered 201" % (
            u["id"], n, per_user[u["id"]])
    bad = ctx.psql("""
        SELECT b.user_id, b.balance, coalesce(sum(e.amount), 0) FROM transactions.balances b
        LEFT JOIN transactions.entries e ON e.account_user_id = b.user_id AND e.currency = b.currency
        WHERE b.user_id IN (%s) GROUP BY b.user_id, b.currency, b.balance
        HAVING b.balance <> coalesce(sum(e.amount), 0) OR b.balance < 0""" % ids).out
    assert not bad, "materialised balances differ from their entries or are negative: %s" % bad

    # ---- the batcher combined postings
    d = {k: after[k] - before[k] for k in BATCH_COUNTERS}
    batches, batched = d["transactions_post_batches_total"], d["transactions_post_batched_total"]
    assert batches > 0 and batched > batches, (
        "no posting statement carried two or more postings: batches +%d, postings in them +%d, left alone +%d "
        "(counters before %r, after %r)" % (batches, batched, d["transactions_post_alone_total"], before, after))


test_concurrent_deposits_and_withdrawals_are_batched_and_exact.timeout = 60


# ------------------------------------------------------------------------------------ sessions
def test_logout_at_customers_revokes_access_here_at_once(ctx):
    (a,) = sessions(ctx, 1)
    other = login(ctx, a["user_name"], a["password"])["access_token"]
    post_tx(ctx, a["access"], {"type": "deposit", "amount": "3.00"})
    customers_call(ctx, "POST", "/api/auth/logout", 204, token=a["access"])
    # each instance may trust a session it checked for up to 1 s (shared/include/svc/auth.h)
    t0 = time.monotonic()
    for inst in ("transactions-1", "transactions-2"):
        def refused(inst=inst):
            r = ctx.http("GET", ctx.direct(inst, "/api/accounts/me/balance"),
                         headers={"Authorization": "Bearer " + a["access"]})
            return r.status == 401
        ctx.wait_until(refused, 2.0, what="%s refuses the logged-out token" % inst)
    took = time.monotonic() - t0
    assert took < 1.5, "the logged-out token was accepted for %.2f s after logout" % took
    post_tx(ctx, a["access"], {"type": "deposit", "amount": "1.00"}, 401, "session_revoked")
    list_tx(ctx, a["access"], None, 401, "session_revoked")
    for inst in ("transactions-1", "transactions-2"):
        tx(ctx, "GET", "/api/accounts/me/balance", 401, "session_revoked", token=a["access"], instance=inst)
    # the user's other session still works and sees the money of before
    assert balance(ctx, other) == "3.00"
