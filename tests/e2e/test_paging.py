"""Paging end to end (through Nginx): cursors under concurrent writes, and one answer for the
same bad query parameter in every service.

What is covered:
- a user's transactions paged with cursors while new postings (deposits, and transfers to and
  from a partner, so both sides of the listing move) arrive concurrently: every transaction
  that existed before the first page is listed exactly once, nothing is listed twice, nothing
  unknown appears, and the order is strictly newest first across pages;
- the same bad paging parameter (`page=+2`, `page=abc`, `limit=0`, `limit=101`, a mangled
  cursor, another list's cursor, `cursor` with `page`, `include_total=yes`) answers the same
  status, code, message and reason on every list of the three services.

Decisions:
- The listing's own `created_at` and `id` are compared, never the local clock.
- Postings are made through the API (no SQL inserts), so the test sees exactly what clients
  see: the rows of the batched posting path and of the posting function alike.
"""

import threading
import time
import urllib.parse

from lib import assert_envelope, new_cid
import openapi_check as oc
from test_customers_auth import admin_session
from test_transactions import list_tx, post_tx, sessions


def _walk(ctx, token, limit, on_page=None):
    """Every page of the caller's transactions by cursor; returns the rows in order."""
    rows, cursor, pages = [], None, 0
    while True:
        q = {"limit": limit}
        if cursor:
            q["cursor"] = cursor
        p = list_tx(ctx, token, q).json
        pages += 1
        assert len(p["data"]) <= limit, p
        assert (p["next_cursor"] is not None) is p["has_more"], p
        rows += p["data"]
        if on_page:
            on_page(pages)
        if not p["has_more"]:
            return rows
        cursor = p["next_cursor"]


def test_cursor_pages_miss_nothing_and_repeat_nothing_while_postings_arrive(ctx):
    a, b = sessions(ctx, 2)
    post_tx(ctx, b["access"], {"type": "deposit", "amount": "1000.00"})
    before = []
    for i in range(60):
        if i % 5 == 4:
            body = {"type": "transfer", "amount": "0.01", "to_user_id": b["id"]}
        elif i % 5 == 3:
            before.append(post_tx(ctx, b["access"], {"type": "transfer", "amount": "0.01",
                                                     "to_user_id": a["id"]}).json["id"])
            continue
        else:
            body = {"type": "deposit", "amount": "1.%02d" % (i % 100)}
        before.append(post_tx(ctx, a["access"], body).json["id"])

    during, stop, errors = [], threading.Event(), []

    def writer(token, body_of):
        try:
            n = 0
            while not stop.is_set() and n < 400:
                during.append(post_tx(ctx, token, body_of(n)).json["id"])
                n += 1
        except BaseException as exc:  # noqa: B902 - reported below
            errors.append(exc)
    writers = [threading.Thread(target=writer, args=(a["access"], lambda n: {"type": "deposit", "amount": "0.01"})),
               threading.Thread(target=writer, args=(b["access"], lambda n: {"type": "transfer", "amount": "0.01",
                                                                            "to_user_id": a["id"]}))]
    for w in writers:
        w.start()
    try:
        # let the writers get going, then page in small pages so that postings land between pages
        deadline = time.monotonic() + 30
        while len(during) < 10 and not errors and time.monotonic() < deadline:
            time.sleep(0.01)
        seen_during_walk = []
        rows = _walk(ctx, a["access"], 7, on_page=lambda n: seen_during_walk.append(len(during)))
    finally:
        stop.set()
        for w in writers:
            w.join()
    assert not errors, "a writer failed: %r" % errors[0]
    assert seen_during_walk[-1] > seen_during_walk[0], "no posting arrived while the pages were read"

    ids = [t["id"] for t in rows]
    dup = {i for i in ids if ids.count(i) > 1}
    assert not dup, "listed twice: %s" % sorted(dup)[:5]
    missed = set(before) - set(ids)
    assert not missed, "%d transactions that existed before the first page were missed" % len(missed)
    unknown = set(ids) - set(before) - set(during)
    assert not unknown, "listed transactions nobody posted: %s" % sorted(unknown)[:5]
    shown = [t["created_at"] for t in rows]  # to the millisecond; the order is by the full time, then id
    assert all(shown[i] >= shown[i + 1] for i in range(len(shown) - 1)), "not newest first across pages"
    assert len(rows) >= len(before), (len(rows), len(before))
    print("     cursor walk: %d pages of 7, %d rows (%d before, %d posted meanwhile, %d of them listed)"
          % (len(seen_during_walk), len(rows), len(before), len(during), len(set(ids) & set(during))))

    # once the writers stop, a fresh walk lists every posting exactly once
    final = [t["id"] for t in _walk(ctx, a["access"], 100)]
    assert len(final) == len(set(final)) == len(set(before) | set(during)), \
        (len(final), len(set(final)), len(set(before) | set(during)))


# ------------------------------------------------------------------ one answer for one mistake
def _get(ctx, path, token):
    cid = new_cid("pg")
    r = ctx.http("GET", ctx.url(path), headers={"Authorization": "Bearer " + token, "X-Correlation-ID": cid})
    return r, cid


def _lists(ctx, admin, user, run_id):
    """(name, path template, concrete path, token) of every list in the three services."""
    return [
        ("customers users", "/api/users", "/api/users", admin),
        ("transactions", "/api/transactions", "/api/transactions", user),
        ("sync history", "/api/sync/history", "/api/sync/history", admin),
        ("sync run errors", "/api/sync/{id}/errors", "/api/sync/%s/errors" % run_id, admin),
        ("sync job runs", "/api/job-runs", "/api/job-runs", admin),
    ]


def test_the_same_bad_query_parameter_gets_the_same_answer_in_every_service(ctx):
    admin = admin_session(ctx)["access"]
    (u,) = sessions(ctx, 1)
    for _ in range(3):
        post_tx(ctx, u["access"], {"type": "deposit", "amount": "1.00"})
    # a run to list errors of (its errors list is empty but the run exists); the history may
    # hold runs of other tests already
    hist = ctx.http("GET", ctx.url("/api/sync/history?limit=1"), headers={"Authorization": "Bearer " + admin})
    assert hist.status == 200, hist.body[:300]
    if hist.json["data"]:
        run_id = hist.json["data"][0]["id"]
    else:
        r = ctx.http("POST", ctx.url("/api/sync"), headers={"Authorization": "Bearer " + admin})
        assert r.status in (200, 202), r.body[:300]
        run_id = r.json["id"]
    lists = _lists(ctx, admin, u["access"], run_id)

    tx_cursor = list_tx(ctx, u["access"], {"limit": 1}).json["next_cursor"]
    assert tx_cursor, "three transactions and limit=1 must leave a next page"
    mangled = tx_cursor[:10] + ("A" if tx_cursor[10] != "A" else "B") + tx_cursor[11:]
    bad = [("page=+2", "page"), ("page=abc", "page"), ("page=0", "page"), ("page=99999999999999999999", "page"),
           ("limit=0", "limit"), ("limit=101", "limit"), ("limit=-1", "limit"), ("limit=", "limit"),
           ("cursor=" + mangled, "cursor"), ("cursor=" + tx_cursor[:-2], "cursor"), ("cursor=%20", "cursor"),
           ("page=1&cursor=" + tx_cursor, "cursor"), ("include_total=yes", "include_total")]
    for query, field in bad:
        answers = {}
        for name, template, path, token in lists:
            r, cid = _get(ctx, path + "?" + query, token)
            err = assert_envelope(r, 400, cid)
            oc.check(r, "GET", template)
            answers[name] = (r.status, err["code"], err["message"], err["details"]["fields"].get(field),
                             tuple(sorted(err["details"]["fields"])))
        distinct = set(answers.values())
        assert len(distinct) == 1, "%s answered differently: %r" % (query, answers)
        status, code, message, reason, fields = distinct.pop()
        assert (status, code, message) == (400, "validation_failed", "some query parameters are invalid"), answers
        assert fields == (field,) and reason, answers

    # a valid cursor of one list is refused by every other list, with the same answer
    answers = {}
    for name, template, path, token in lists:
        if name == "transactions":
            continue
        r, cid = _get(ctx, path + "?cursor=" + urllib.parse.quote(tx_cursor), token)
        err = assert_envelope(r, 400, cid)
        answers[name] = (err["code"], err["message"], err["details"]["fields"])
    assert len({repr(v) for v in answers.values()}) == 1, answers
    assert list(answers.values())[0][2] == {"cursor": "must be a next_cursor returned by this list"}, answers
