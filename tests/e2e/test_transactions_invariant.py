"""The bank invariant: money is neither created nor destroyed under concurrency, client retries,
duplicate idempotency keys and a transactions-service instance killed with SIGKILL midway.

N users are funded by deposits; W client threads then send, through Nginx for LOAD_S seconds,
random transfers among them (60 %), withdrawals (20 %) and deposits (20 %). The service combines
concurrent deposits and withdrawals of different users into one statement (posting batches), so
the SIGKILL below may also cut off batches, and what a batch leaves is posted one by one. Mixed in:
- retries of a request already answered (same key, same body): must replay the same answer;
- the same key with another body: must be refused (422 idempotency_key_reused);
- the same new request sent twice at once: one effect, the other replays or meets it in flight;
- every request that fails in transport (connection dropped, 502/503/504, 409 in flight) is
  retried with the same key and body until it gets an answer, as a careful client would.
Halfway through, transactions-1 is killed with SIGKILL (stack stop-one transactions-1 KILL); it is
restarted when the load ends (and in `finally`, whatever happens).

Afterwards, as the PostgreSQL superuser on the `transactions` schema (db/transactions/001_ledger.sql)
and through the API:
- every transaction's entries sum to zero (and there are at least two);
- each materialised balance equals the sum of its entries; no balance is negative;
- total money is conserved: the test users' balances add up to their deposits minus withdrawals
  (transfers only move money among them), and the external account mirrors all user balances;
- each idempotency key took effect at most once (each request's description carries its key);
- every 201 a client saw is in the ledger with the same id, type, amount and parties, and every
  ledger row of this run is a request some client sent;
- each user's balance read through the API equals the database's.
"""

import os
import random
import threading
import time

import lib
from test_transactions import cents, money, sessions, post_tx, balance

N_USERS = 8
WORKERS = 12
LOAD_S = 20.0
FUND = "500.00"
EXTERNAL = "00000000-0000-0000-0000-000000000000"
RETRY_STATUSES = (502, 503, 504)


class Client:
    """Shared bookkeeping of everything the client threads sent and saw."""

    def __init__(self, ctx, run, users):
        self.ctx, self.run, self.users = ctx, run, users
        self.lock = threading.Lock()
        self.requests = {}       # key -> {"user", "bodies": [body...], "first": body}
        self.created = {}        # key -> the 201 JSON (first seen)
        self.originals = {}      # key -> count of non-replayed 201s
        self.done = []           # keys answered with a final status (for re-sends)
        self.errors = []
        self.unresolved = []
        self.transport_retries = 0
        self.counts = {}
        self.seq = 0

    def next_key(self):
        with self.lock:
            self.seq += 1
            return "inv-%s-%d" % (self.run, self.seq)

    def error(self, msg):
        with self.lock:
            if len(self.errors) < 20:
                self.errors.append(msg)

    def count(self, what):
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + 1

    def send(self, user, key, body, deadline):
        """POST until a final answer (anything but a transport failure or 409 in flight) or the
        deadline; returns the response or None."""
        hdrs = {"Authorization": "Bearer " + user["access"], "Idempotency-Key": key}
        while True:
            try:
                r = self.ctx.http("POST", "/api/transactions", body=body, headers=hdrs, timeout=10)
            except OSError:
                r = None
            if r is not None and r.status not in RETRY_STATUSES and not (
                    r.status == 409 and _code(r) == "idempotency_request_in_progress"):
                return r
            with self.lock:
                self.transport_retries += 1
            if time.monotonic() >= deadline:
                return None
            time.sleep(random.uniform(0.02, 0.15))

    def record(self, user, key, body, r, expect_replay_of=None):
        """Check one final answer against what this key already did; remember a 201."""
        if r is None:
            with self.lock:
                self.unresolved.append(key)
            return
        replayed = r.headers.get("Idempotent-Replayed") == "true"
        if r.status == 201:
            t = r.json
            ok = (isinstance(t, dict) and t.get("amount") == money(cents(body["amount"])) and
                  t.get("type") == body["type"] and t.get("user_id") == user["id"] and
                  t.get("to_user_id") == body.get("to_user_id") and t.get("status") == "completed")
            if not ok:
                self.error("201 for %s does not describe its request %r: %r" % (key, body, r.body[:300]))
            with self.lock:
                first = self.created.setdefault(key, t)
                if not replayed:
                    self.originals[key] = self.originals.get(key, 0) + 1
                n = self.originals.get(key, 0)
            if first != t:
                self.error("key %s answered 201 with two different bodies: %r vs %r" % (key, first, t))
            if n > 1:
                self.error("key %s took effect %d times (201 without Idempotent-Replayed)" % (key, n))
        elif r.status == 422 and _code(r) == "insufficient_funds":
            if expect_replay_of is not None:
                self.error("re-send of %s (answered 201 before) got 422 insufficient_funds" % key)
        else:
            self.error("%s -> %d %r" % (key, r.status, r.body[:200]))
        self.count("%d%s" % (r.status, " replayed" if replayed else ""))
        with self.lock:
            self.done.append(key)

    def new_request(self, rng):
        u = rng.choice(self.users)
        key = self.next_key()
        p = rng.random()
        if p < 0.60:
            v = rng.choice([x for x in self.users if x is not u])
            body = {"type": "transfer", "amount": money(rng.randint(1, 2000)), "to_user_id": v["id"]}
        elif p < 0.80:
            body = {"type": "withdrawal", "amount": money(rng.randint(1, 500))}
        else:
            body = {"type": "deposit", "amount": money(rng.randint(1, 500))}
        body["description"] = "inv %s %s" % (self.run, key)
        with self.lock:
            self.requests[key] = {"user": u, "bodies": [body], "first": body}
        return u, key, body

    def worker(self, seed, stop_at, deadline):
        rng = random.Random(seed)
        while time.monotonic() < stop_at:
            p = rng.random()
            with self.lock:
                old = rng.choice(self.done) if self.done else None
            if p < 0.10 and old is not None:
                # a client re-sends a request it already has an answer for
                req = self.requests[old]
                with self.lock:
                    had = self.created.get(old)
                r = self.send(req["user"], old, req["first"], deadline)
                self.record(req["user"], old, req["first"], r, expect_replay_of=had)
                if had is not None and r is not None:
                    if r.status != 201 or r.headers.get("Idempotent-Replayed") != "true" or r.json != had:
                        self.error("re-send of %s: %d replayed=%r, want the original 201 replayed: %r" % (
                            old, r.status, r.headers.get("Idempotent-Replayed"), r.body[:200]))
                self.count("resend")
            elif p < 0.18 and old is not None:
                # the same key with another body
                req = self.requests[old]
                with self.lock:
                    had = self.created.get(old)
                if had is None:
                    continue
                other = dict(req["first"], amount=money(cents(req["first"]["amount"]) + 1))
                with self.lock:
                    req["bodies"].append(other)
                r = self.send(req["user"], old, other, deadline)
                if r is None:
                    with self.lock:
                        self.unresolved.append(old)
                elif r.status != 422 or _code(r) != "idempotency_key_reused":
                    self.error("key %s reused with another body -> %d %r" % (old, r.status, r.body[:200]))
                self.count("reuse")
            elif p < 0.23:
                # the same new request sent twice at once
                u, key, body = self.new_request(rng)
                out = [None, None]

                def twin(i):
                    out[i] = self.send(u, key, body, deadline)
                ts = [threading.Thread(target=twin, args=(i,)) for i in range(2)]
                for t in ts:
                    t.start()
                for t in ts:
                    t.join()
                for r in out:
                    self.record(u, key, body, r)
                self.count("twin")
            else:
                u, key, body = self.new_request(rng)
                self.record(u, key, body, self.send(u, key, body, deadline))


def _code(r):
    return ((r.json or {}).get("error") or {}).get("code") if isinstance(r.json, dict) else None


def _rows(ctx, sql):
    out = ctx.psql(sql).out
    return [line.split("|") for line in out.splitlines() if line]


def _scalar(ctx, sql):
    return ctx.psql(sql).out.strip()


def test_bank_invariant_holds_through_retries_duplicates_and_a_sigkill(ctx):
    run = os.urandom(4).hex()
    users = sessions(ctx, N_USERS)
    ids = [u["id"] for u in users]
    id_list = ",".join("'%s'" % i for i in ids)
    for u in users:
        post_tx(ctx, u["access"], {"type": "deposit", "amount": FUND, "description": "funding %s" % run})
    client = Client(ctx, run, users)
    t_start = time.monotonic()
    stop_at = t_start + LOAD_S
    # A request cut off by the SIGKILL leaves its in-flight lock behind until it expires: its
    # retries get 409 until then, so they may go on that long after the kill.
    lock_s = int(ctx.env_of("transactions-2").get("IDEMPOTENCY_LOCK_MS") or 30000) / 1000.0
    deadline = max(stop_at + 20.0, t_start + LOAD_S / 2 + lock_s + 10.0)
    threads = [threading.Thread(target=client.worker, args=(i, stop_at, deadline), daemon=True)
               for i in range(WORKERS)]
    killed_pid = ctx.pid_of("transactions-1")
    try:
        for t in threads:
            t.start()
        time.sleep(LOAD_S / 2)
        ctx.stack("stop-one", "transactions-1", "KILL")
        assert not ctx.pid_of("transactions-1"), "transactions-1 still has a pid file after SIGKILL"
        assert killed_pid and not lib.pid_alive(killed_pid), "transactions-1 (pid %s) survived SIGKILL" % killed_pid
        for t in threads:
            t.join(max(deadline - time.monotonic(), 0) + 15)
        assert not any(t.is_alive() for t in threads), "client threads hung"
    finally:
        ctx.stack("start-one", "transactions-1", check=False)
        ctx.wait_healthy("transactions-1", timeout=30)
    total = sum(client.counts.get(k, 0) for k in client.counts if k[0].isdigit())
    print("     invariant: %d answers %s, %d transport retries, %d unresolved" % (
        total, sorted(client.counts.items()), client.transport_retries, len(client.unresolved)))
    assert not client.errors, "client-side violations:\n  " + "\n  ".join(client.errors[:10])
    assert len(client.created) >= 200, "too little load to mean anything: %d transactions" % len(client.created)
    # only requests in flight at the kill may lack an answer after retrying past their lock
    assert len(set(client.unresolved)) <= WORKERS * 2, "unresolved requests: %r" % client.unresolved[:10]

    # ---- the ledger, as the superuser
    run_filter = "left(description, %d) = 'inv %s '" % (len("inv %s " % run), run)
    bad = _rows(ctx, """
        SELECT e.transaction_id, sum(e.amount), count(*) FROM transactions.entries e
        JOIN transactions.transactions t ON t.id = e.transaction_id
        WHERE t.user_id IN (%s) OR t.to_user_id IN (%s)
        GROUP BY e.transaction_id HAVING sum(e.amount) <> 0 OR count(*) < 2""" % (id_list, id_list))
    assert not bad, "transactions whose entries do not sum to zero: %r" % bad[:5]
    bad = _rows(ctx, """
        SELECT t.id FROM transactions.transactions t
        WHERE (t.user_id IN (%s) OR t.to_user_id IN (%s))
          AND NOT EXISTS (SELECT 1 FROM transactions.entries e WHERE e.transaction_id = t.id)""" % (id_list, id_list))
    assert not bad, "transactions without entries: %r" % bad[:5]
    bad = _rows(ctx, """
        SELECT coalesce(b.user_id, e.account_user_id), coalesce(b.currency, e.currency), b.balance, e.total
        FROM (SELECT * FROM transactions.balances WHERE user_id IN (%s)) b
        FULL JOIN (SELECT account_user_id, currency, sum(amount) AS total FROM transactions.entries
                   WHERE account_user_id IN (%s) GROUP BY 1, 2) e
          ON b.user_id = e.account_user_id AND b.currency = e.currency
        WHERE coalesce(b.balance, 0) <> coalesce(e.total, 0)""" % (id_list, id_list))
    assert not bad, "materialised balances differ from their entries: %r" % bad[:5]
    neg = _scalar(ctx, "SELECT count(*) FROM transactions.balances WHERE balance < 0")
    assert neg == "0", "%s negative balances" % neg
    neg = _rows(ctx, """SELECT account_user_id, currency, sum(amount) FROM transactions.entries
                        WHERE account_user_id <> '%s' GROUP BY 1, 2 HAVING sum(amount) < 0""" % EXTERNAL)
    assert not neg, "user accounts whose entries sum below zero: %r" % neg[:5]
    # conservation, for the whole ledger and for this run's users
    ext, users_total = _rows(ctx, """
        SELECT coalesce(sum(amount) FILTER (WHERE account_user_id = '%s'), 0),
               coalesce(sum(amount) FILTER (WHERE account_user_id <> '%s'), 0)
        FROM transactions.entries WHERE currency = 'BRL'""" % (EXTERNAL, EXTERNAL))[0]
    assert cents(ext) == -cents(users_total), "external %s does not mirror the users' %s" % (ext, users_total)
    held, deposits, withdrawals = _rows(ctx, """
        SELECT (SELECT coalesce(sum(balance), 0) FROM transactions.balances WHERE user_id IN (%s) AND currency = 'BRL'),
               coalesce(sum(amount) FILTER (WHERE type = 'deposit'), 0),
               coalesce(sum(amount) FILTER (WHERE type = 'withdrawal'), 0)
        FROM transactions.transactions WHERE user_id IN (%s) AND currency = 'BRL'""" % (id_list, id_list))[0]
    assert cents(held) == cents(deposits) - cents(withdrawals), \
        "money not conserved: users hold %s, deposits %s - withdrawals %s = %s" % (
            held, deposits, withdrawals, money(cents(deposits) - cents(withdrawals)))
    foreign = _scalar(ctx, """SELECT count(*) FROM transactions.transactions
                              WHERE type = 'transfer' AND (user_id IN (%s)) <> (to_user_id IN (%s))""" % (id_list, id_list))
    assert foreign == "0", "%s transfers crossed the test's user set" % foreign
    # each key took effect at most once
    dup = _rows(ctx, "SELECT description, count(*) FROM transactions.transactions WHERE %s "
                     "GROUP BY 1 HAVING count(*) > 1" % run_filter)
    assert not dup, "idempotency keys that took effect more than once: %r" % dup[:5]
    dup = _rows(ctx, """SELECT transaction_id, count(*) FROM transactions.idempotency_keys
                        WHERE user_id IN (%s) AND transaction_id IS NOT NULL GROUP BY 1 HAVING count(*) > 1""" % id_list)
    assert not dup, "one transaction claimed by several keys: %r" % dup[:5]
    # every 201 is in the ledger, and the ledger holds nothing nobody asked for
    ledger = {}
    for tid, type_, amount, uid, to_uid, desc in _rows(ctx, """
            SELECT id, type, amount, user_id, coalesce(to_user_id::text, ''), description
            FROM transactions.transactions WHERE %s""" % run_filter):
        ledger[tid] = (type_, amount, uid, to_uid or None, desc)
    for key, t in client.created.items():
        row = ledger.get(t["id"])
        assert row is not None, "201 %s for key %s is not in the ledger" % (t["id"], key)
        assert row == (t["type"], t["amount"], t["user_id"], t["to_user_id"], t["description"]), (row, t)
    for tid, (type_, amount, uid, to_uid, desc) in ledger.items():
        key = desc.split(" ")[2]
        req = client.requests.get(key)
        assert req is not None, "ledger row %s for a key no client sent: %r" % (tid, desc)
        sent = [(b["type"], money(cents(b["amount"])), req["user"]["id"], b.get("to_user_id")) for b in req["bodies"]]
        assert (type_, amount, uid, to_uid) == sent[0], \
            "ledger row %s is not the first body sent with key %s: %r vs %r" % (tid, key, (type_, amount, uid, to_uid), sent)
        if key in client.created:
            assert client.created[key]["id"] == tid, "key %s: client saw %s, ledger has %s" % (
                key, client.created[key]["id"], tid)
    keyed = _rows(ctx, """SELECT k.key, k.transaction_id FROM transactions.idempotency_keys k
                          WHERE k.user_id IN (%s) AND k.transaction_id IS NOT NULL""" % id_list)
    for key, tid in keyed:
        if key in client.created:
            assert client.created[key]["id"] == tid, "idempotency record of %s points at %s, client saw %s" % (
                key, tid, client.created[key]["id"])
    # the API agrees with the database, user by user
    db = dict((uid, bal) for uid, bal in _rows(ctx, "SELECT user_id, balance FROM transactions.balances "
                                                    "WHERE user_id IN (%s) AND currency = 'BRL'" % id_list))
    for u in users:
        assert balance(ctx, u["access"]) == money(cents(db.get(u["id"], "0"))), "API and database disagree for %s" % u["id"]


test_bank_invariant_holds_through_retries_duplicates_and_a_sigkill.timeout = 150
