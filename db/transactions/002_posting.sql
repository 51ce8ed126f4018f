-- Posting functions: every write of transactions-service is ONE call to one of these, so a
-- request costs one database round trip and one commit.
--
-- Idempotency inside the database: the key's row (user_id, key) is claimed FIRST with
-- INSERT ... ON CONFLICT, carrying the request hash and the complete response body (computed
-- up front: the transaction id, timestamps and amounts are all known before anything is
-- written). When the key is held by a transaction still in flight, the unique index makes this
-- INSERT wait for it; when that one commits we see its row and replay it (or report a reused key
-- when the hash differs); when it rolls back we proceed. A row past expires_at is taken over.
-- Rule failures (insufficient funds, already reversed...) RAISE with a TXnnn SQLSTATE, which rolls
-- back the claim too: only successful effects are remembered, so a client may retry a refused
-- request with the same key once the cause is gone.
--
-- Locks, always in this order, so concurrent postings cannot deadlock:
--   1. the idempotency key row;   2. (reversals) the original transaction row, FOR UPDATE;
--   3. balance rows of ONE currency in ascending user_id order (the uuid ordering), taken by the
--      UPDATE / INSERT ... ON CONFLICT that changes them.
-- A debit is a single "UPDATE ... WHERE balance >= amount": it waits for a concurrent writer of
-- the row and re-checks the condition on the row's newest version (READ COMMITTED), so no
-- balance can go negative and no update is lost. The external account has no balance row, so
-- deposits and withdrawals of different users never wait for each other.
--
-- SQLSTATEs raised: TX001 insufficient_funds, TX002 already_reversed, TX003 not reversible
-- (a reversal cannot be reversed), TX004 invalid argument (a bug in the caller).

-- The key row is written before the transaction row it names, so that reference is checked at
-- commit instead of at once.
ALTER TABLE transactions.idempotency_keys DROP CONSTRAINT idempotency_keys_transaction_id_fkey;
ALTER TABLE transactions.idempotency_keys ADD CONSTRAINT idempotency_keys_transaction_id_fkey
    FOREIGN KEY (transaction_id) REFERENCES transactions.transactions (id) DEFERRABLE INITIALLY DEFERRED;

-- Only reversals carry reverses_id: a partial unique index keeps every other insert from paying
-- for an index entry of NULL.
ALTER TABLE transactions.transactions DROP CONSTRAINT transactions_reverses_id_key;
CREATE UNIQUE INDEX transactions_reverses_id_key ON transactions.transactions (reverses_id)
    WHERE reverses_id IS NOT NULL;

-- The API representation of a transaction, built in one place for every read and write path.
CREATE FUNCTION transactions.tx_json(t transactions.transactions) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', t.id,
        'type', t.type,
        'status', t.status,
        'amount', t.amount::text,
        'currency', t.currency,
        'description', t.description,
        'user_id', t.user_id,
        'to_user_id', t.to_user_id,
        'reverses_id', t.reverses_id,
        'reversed_by', t.reversed_by,
        'created_at', to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'updated_at', to_char(t.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
$$;

-- Claims (p_user, p_key) for a request with hash p_hash whose successful answer will be
-- p_body. Returns NULL when claimed; otherwise the stored row's verdict: ('replayed', status,
-- body) for the same hash, ('idempotency_key_reused', 422, NULL) for another.
CREATE FUNCTION transactions.claim_key(p_user uuid, p_key text, p_hash text, p_body text,
                                       p_tx uuid, p_now timestamptz, p_ttl_s int,
                                       OUT verdict text, OUT status int, OUT body text)
LANGUAGE plpgsql AS $$
DECLARE
    v_claimed boolean;
    v_hash text;
BEGIN
    INSERT INTO transactions.idempotency_keys AS k
           (user_id, key, request_hash, response_status, response_body, transaction_id, created_at, expires_at)
    VALUES (p_user, p_key, p_hash, 201, p_body, p_tx, p_now, p_now + make_interval(secs => p_ttl_s))
    ON CONFLICT (user_id, key) DO UPDATE
       SET request_hash = EXCLUDED.request_hash, response_status = EXCLUDED.response_status,
           response_body = EXCLUDED.response_body, transaction_id = EXCLUDED.transaction_id,
           created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at
     WHERE k.expires_at <= p_now
    RETURNING true INTO v_claimed;
    IF v_claimed THEN
        RETURN;
    END IF;
    SELECT k.request_hash, k.response_status, k.response_body INTO v_hash, status, body
      FROM transactions.idempotency_keys k WHERE k.user_id = p_user AND k.key = p_key;
    IF v_hash = p_hash THEN
        verdict := 'replayed';
    ELSE
        verdict := 'idempotency_key_reused';
        status := 422;
        body := NULL;
    END IF;
END
$$;

-- (Helpers are plpgsql rather than SQL functions: plpgsql keeps its plans for the session, a
-- non-inlinable SQL function would be planned again on every call.)
--
-- Expired keys are removed a few at a time by the requests themselves (about one call in 64
-- deletes up to 256 rows), which outpaces the rate keys are created; SKIP LOCKED keeps it from
-- ever waiting.
CREATE FUNCTION transactions.sweep_keys(p_now timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM transactions.idempotency_keys
     WHERE ctid = ANY (ARRAY(SELECT ctid FROM transactions.idempotency_keys
                              WHERE expires_at <= p_now ORDER BY expires_at LIMIT 256
                              FOR UPDATE SKIP LOCKED));
END
$$;

-- Debit p_amount from (p_user, p_cur); raises TX001 when the balance is short (or absent).
CREATE FUNCTION transactions.debit(p_user uuid, p_cur text, p_amount numeric, p_now timestamptz)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE transactions.balances SET balance = balance - p_amount, updated_at = p_now
     WHERE user_id = p_user AND currency = p_cur AND balance >= p_amount;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'insufficient funds' USING ERRCODE = 'TX001';
    END IF;
END
$$;

CREATE FUNCTION transactions.credit(p_user uuid, p_cur text, p_amount numeric, p_now timestamptz)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO transactions.balances AS b (user_id, currency, balance, updated_at)
    VALUES (p_user, p_cur, p_amount, p_now)
    ON CONFLICT (user_id, currency) DO UPDATE SET balance = b.balance + EXCLUDED.balance,
                                                  updated_at = EXCLUDED.updated_at;
END
$$;

-- POST /api/transactions. p_amount > 0 with 2 decimals; p_to_user only for transfers (the
-- caller has validated everything; the checks here are the last line of defence).
-- Returns ('created', 201, body) or the claim verdict ('replayed' / 'idempotency_key_reused').
CREATE FUNCTION transactions.post_transaction(p_user uuid, p_key text, p_hash text, p_type text,
                                              p_amount numeric, p_currency text, p_description text,
                                              p_to_user uuid, p_ttl_s int,
                                              OUT verdict text, OUT status int, OUT body text)
LANGUAGE plpgsql AS $$
DECLARE
    c_external CONSTANT uuid := '00000000-0000-0000-0000-000000000000';
    v_now timestamptz := now();
    v_tx transactions.transactions;
    v_body text;
BEGIN
    IF p_amount IS NULL OR p_amount <= 0 OR p_type NOT IN ('deposit', 'withdrawal', 'transfer')
       OR (p_type = 'transfer') <> (p_to_user IS NOT NULL) OR p_to_user = p_user THEN
        RAISE EXCEPTION 'invalid posting' USING ERRCODE = 'TX004';
    END IF;
    v_tx := ROW(gen_random_uuid(), p_type, 'completed', p_amount, p_currency, p_description, p_user,
                p_to_user, NULL, NULL, p_user, v_now, v_now)::transactions.transactions;
    v_body := transactions.tx_json(v_tx)::text;

    SELECT c.verdict, c.status, c.body INTO verdict, status, body
      FROM transactions.claim_key(p_user, p_key, p_hash, v_body, v_tx.id, v_now, p_ttl_s) c;
    IF verdict IS NOT NULL THEN
        RETURN;
    END IF;

    IF p_type = 'deposit' THEN
        PERFORM transactions.credit(p_user, p_currency, p_amount, v_now);
    ELSIF p_type = 'withdrawal' THEN
        PERFORM transactions.debit(p_user, p_currency, p_amount, v_now);
    ELSIF p_user < p_to_user THEN
        PERFORM transactions.debit(p_user, p_currency, p_amount, v_now);
        PERFORM transactions.credit(p_to_user, p_currency, p_amount, v_now);
    ELSE
        PERFORM transactions.credit(p_to_user, p_currency, p_amount, v_now);
        PERFORM transactions.debit(p_user, p_currency, p_amount, v_now);
    END IF;

    INSERT INTO transactions.transactions VALUES (v_tx.*);
    INSERT INTO transactions.entries (transaction_id, account_user_id, currency, amount, created_at)
    VALUES (v_tx.id, CASE WHEN p_type = 'transfer' THEN p_to_user WHEN p_type = 'deposit' THEN p_user ELSE c_external END,
            p_currency, p_amount, v_now),
           (v_tx.id, CASE WHEN p_type = 'deposit' THEN c_external ELSE p_user END,
            p_currency, -p_amount, v_now);

    IF random() < 1.0 / 64 THEN
        PERFORM transactions.sweep_keys(v_now);
    END IF;
    verdict := 'created';
    status := 201;
    body := v_body;
END
$$;

-- POST /api/transactions/{id}/reverse by an admin (p_admin). Returns ('created', 201, body of
-- the reversal), ('not_found', 404, NULL) or a claim verdict; raises TX001/TX002/TX003.
CREATE FUNCTION transactions.reverse_transaction(p_admin uuid, p_key text, p_hash text, p_orig uuid,
                                                 p_ttl_s int,
                                                 OUT verdict text, OUT status int, OUT body text)
LANGUAGE plpgsql AS $$
DECLARE
    c_external CONSTANT uuid := '00000000-0000-0000-0000-000000000000';
    v_now timestamptz := now();
    v_orig transactions.transactions;
    v_rev transactions.transactions;
    v_entry record;
    v_body text;
BEGIN
    -- Amount, currency and parties never change after posting, so the reversal's body can be
    -- built from an unlocked read; the status is re-checked under the row lock below.
    SELECT * INTO v_orig FROM transactions.transactions WHERE id = p_orig;
    IF NOT FOUND THEN
        verdict := 'not_found';
        status := 404;
        RETURN;
    END IF;
    v_rev := ROW(gen_random_uuid(), 'reversal', 'completed', v_orig.amount, v_orig.currency,
                 'reversal of ' || v_orig.id, v_orig.user_id, v_orig.to_user_id, v_orig.id, NULL,
                 p_admin, v_now, v_now)::transactions.transactions;
    v_body := transactions.tx_json(v_rev)::text;

    SELECT c.verdict, c.status, c.body INTO verdict, status, body
      FROM transactions.claim_key(p_admin, p_key, p_hash, v_body, v_rev.id, v_now, p_ttl_s) c;
    IF verdict IS NOT NULL THEN
        RETURN;
    END IF;

    SELECT * INTO v_orig FROM transactions.transactions WHERE id = p_orig FOR UPDATE;
    IF v_orig.status = 'reversed' THEN
        RAISE EXCEPTION 'already reversed' USING ERRCODE = 'TX002';
    END IF;
    IF v_orig.type = 'reversal' OR v_orig.status <> 'completed' THEN
        RAISE EXCEPTION 'not reversible' USING ERRCODE = 'TX003';
    END IF;

    -- Undo each user's posting in ascending account order (the lock order).
    FOR v_entry IN SELECT e.account_user_id, e.amount FROM transactions.entries e
                    WHERE e.transaction_id = p_orig AND e.account_user_id <> c_external
                    ORDER BY e.account_user_id LOOP
        IF v_entry.amount > 0 THEN
            PERFORM transactions.debit(v_entry.account_user_id, v_orig.currency, v_entry.amount, v_now);
        ELSE
            PERFORM transactions.credit(v_entry.account_user_id, v_orig.currency, -v_entry.amount, v_now);
        END IF;
    END LOOP;

    INSERT INTO transactions.transactions VALUES (v_rev.*);
    INSERT INTO transactions.entries (transaction_id, account_user_id, currency, amount, created_at)
    SELECT v_rev.id, e.account_user_id, e.currency, -e.amount, v_now
      FROM transactions.entries e WHERE e.transaction_id = p_orig;
    UPDATE transactions.transactions SET status = 'reversed', reversed_by = v_rev.id, updated_at = v_now
     WHERE id = p_orig;
    verdict := 'created';
    status := 201;
    body := v_body;
END
$$;
