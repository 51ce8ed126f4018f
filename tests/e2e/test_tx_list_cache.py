"""The newest-page cache of GET /api/transactions (transactions-service/src/txlist_cache.h), through
Nginx and both instances.

What is covered:
- the newest page without cursor or filters is served from the cache (the instances' tx_list hit
  counters rise while the page stays the same);
- read-your-writes: right after every posting's answer, the next list read through Nginx (either
  instance) shows it, for the poster and for a transfer's recipient; a reversal shows at once on
  both parties' pages (the reversal added, the original's status changed);
- filters, totals and cursors are never answered from the cache;
- a row written behind the service's back (straight into PostgreSQL) is not seen on a cached page
  until a posting bumps the version: the documented limit, and the proof that hits do not read
  the database.
"""

import uuid

import lib
from test_customers_auth import admin_session
from test_transactions import list_tx, post_tx, reverse, sessions


def _hits(ctx):
    """tx_list cache (hits, misses) summed over the transactions instances."""
    hits = misses = 0
    for inst in ctx.instances_of("transactions"):
        r = ctx.http("GET", ctx.direct(inst, "/metrics"), timeout=5)
        assert r.status == 200, "%s /metrics -> %d" % (inst, r.status)
        samples, _ = lib.parse_prometheus(r.body.decode())
        for name, labels, value in samples:
            if name == "cache_requests_total" and labels.get("cache") == "tx_list":
                if labels.get("result") == "hit":
                    hits += int(value)
                elif labels.get("result") == "miss":
                    misses += int(value)
    return hits, misses


def _ids(resp):
    return [t["id"] for t in resp.json["data"]]


def test_the_newest_page_is_served_from_the_cache_and_every_posting_shows_at_once(ctx):
    a, b = sessions(ctx, 2)
    post_tx(ctx, a["access"], {"type": "deposit", "amount": "100.00"})
    first = list_tx(ctx, a["access"], {"limit": 5})
    h0, _ = _hits(ctx)
    for _ in range(6):                                   # both instances, through Nginx
        assert list_tx(ctx, a["access"], {"limit": 5}).json == first.json
    h1, _ = _hits(ctx)
    assert h1 - h0 >= 5, "the repeated reads were not cache hits: %d hits" % (h1 - h0)

    # every posting is on the next page read, whichever instance answers it
    for i in range(12):
        if i % 3 == 2:
            t = post_tx(ctx, a["access"], {"type": "transfer", "amount": "1.00", "to_user_id": b["id"]}).json
            assert _ids(list_tx(ctx, b["access"], {"limit": 5}))[0] == t["id"], "recipient's page is stale"
        else:
            t = post_tx(ctx, a["access"], {"type": "deposit" if i % 2 else "withdrawal", "amount": "1.00"}).json
        page = list_tx(ctx, a["access"], {"limit": 5})
        assert _ids(page)[0] == t["id"], "posting %d (%s) missing from the next read: %r" % (i, t["type"], _ids(page))
        assert list_tx(ctx, a["access"], {"limit": 5}).json == page.json

    # a reversal changes both parties' pages at once: the reversal on top, the original reversed
    t = post_tx(ctx, a["access"], {"type": "transfer", "amount": "2.00", "to_user_id": b["id"]}).json
    for s in (a, b):
        assert _ids(list_tx(ctx, s["access"], {"limit": 5}))[0] == t["id"]
    rev = reverse(ctx, admin_session(ctx)["access"], t["id"]).json
    for s in (a, b):
        data = list_tx(ctx, s["access"], {"limit": 5}).json["data"]
        assert [d["id"] for d in data[:2]] == [rev["id"], t["id"]], data[:2]
        assert data[1]["status"] == "reversed" and data[1]["reversed_by"] == rev["id"], data[1]


def _insert_behind_the_service(ctx, user_id):
    """A deposit written straight into PostgreSQL (as an operator's fix would be), as the bench seeds
    them: the row with both legs, and the balance credited."""
    tid = str(uuid.uuid4())
    sql = ("INSERT INTO transactions.transactions (id, type, status, amount, currency, description, user_id, "
           "created_by, created_at, updated_at, debit_account, credit_account) VALUES ('%s', 'deposit', "
           "'completed', 0.01, 'BRL', 'behind the service', '%s', '%s', now(), now(), "
           "'00000000-0000-0000-0000-000000000000', '%s'); UPDATE transactions.balances SET balance = balance + 0.01 "
           "WHERE user_id = '%s' AND currency = 'BRL'" % (tid, user_id, user_id, user_id, user_id))
    ctx.psql(sql)
    return tid


def test_filters_totals_and_cursors_read_the_database_and_hits_do_not(ctx):
    (a,) = sessions(ctx, 1)
    d = [post_tx(ctx, a["access"], {"type": "deposit", "amount": "1.00"}).json["id"] for _ in range(3)]
    for _ in range(4):                                   # cached on both instances
        cached = list_tx(ctx, a["access"], {"limit": 2})
    assert _ids(cached) == [d[2], d[1]] and cached.json["has_more"] is True
    hidden = _insert_behind_the_service(ctx, a["id"])
    # the cached newest page does not read PostgreSQL, so it cannot know (the documented limit) ...
    for _ in range(4):
        assert hidden not in _ids(list_tx(ctx, a["access"], {"limit": 2}))
    # ... while a filter, a total, another limit and a cursor page all do
    assert _ids(list_tx(ctx, a["access"], {"limit": 2, "type": "deposit"}))[0] == hidden
    assert _ids(list_tx(ctx, a["access"], {"limit": 2, "status": "completed"}))[0] == hidden
    r = list_tx(ctx, a["access"], {"limit": 2, "include_total": "true"})
    assert _ids(r)[0] == hidden and r.json["total"] == 4, r.json
    assert _ids(list_tx(ctx, a["access"], {"limit": 3}))[0] == hidden
    assert _ids(list_tx(ctx, a["access"], {"limit": 2, "cursor": cached.json["next_cursor"]})) == [d[0]]
    # the next posting bumps the version: the newest page is read again and shows both
    t = post_tx(ctx, a["access"], {"type": "deposit", "amount": "1.00"}).json
    assert _ids(list_tx(ctx, a["access"], {"limit": 2})) == [t["id"], hidden]


def _listener_counts(ctx):
    """http_listener_requests_total by listener, summed over the transactions instances."""
    out = {"main": 0, "read": 0}
    for inst in ctx.instances_of("transactions"):
        r = ctx.http("GET", ctx.direct(inst, "/metrics"), timeout=5)
        samples, _ = lib.parse_prometheus(r.body.decode())
        for name, labels, value in samples:
            if name == "http_listener_requests_total":
                out[labels["listener"]] += int(value)
    return out


def test_nginx_sends_reads_to_the_read_listener_and_writes_to_the_main_one(ctx):
    (a,) = sessions(ctx, 1)
    for inst in ctx.instances_of("transactions"):
        env = ctx.env_of(inst)
        assert env.get("HTTP_READ_PORT"), "%s has no read listener" % inst
        # the read listener serves the same API (straight to it, bypassing Nginx)
        r = ctx.http("GET", "http://127.0.0.1:%s/api/transactions?limit=1" % env["HTTP_READ_PORT"],
                     headers={"Authorization": "Bearer " + a["access"]}, timeout=5)
        assert r.status == 200 and r.json["data"] == [], (inst, r.status, r.body[:200])
    before = _listener_counts(ctx)
    for _ in range(10):
        post_tx(ctx, a["access"], {"type": "deposit", "amount": "1.00"})
    for _ in range(20):
        list_tx(ctx, a["access"], {"limit": 2})
    after = _listener_counts(ctx)
    # metrics scrapes come straight to the main ports (2 per count): 10 posts + 2 + 2 there
    assert after["read"] - before["read"] == 20, (before, after)
    assert after["main"] - before["main"] == 10 + 2, (before, after)
