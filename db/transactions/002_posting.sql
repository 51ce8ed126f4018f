-- Posting functions: every write of transactions-service is ONE call to one of these, so a request
-- costs one database round trip and one commit.
--
-- Idempotency inside the database: the key's row (user_id, key) is claimed FIRST with
-- INSERT ... ON CONFLICT. When the key is held by a transaction still in flight, the unique index
-- makes this INSERT wait for it; when that one commits we see its row and replay it (or report a
-- reused key when the hash differs); when it rolls back we proceed. A row past expires_at is taken
-- over. Rule failures (insufficient funds, already reversed...) RAISE with a TXnnn SQLSTATE, which
-- rolls back the claim too: only successful effects are remembered, so a client may retry a
-- refused request with the same key once the cause is gone.
--
-- Locks, always in this order, so concurrent postings cannot deadlock:
--   1. the idempotency key row;   2. (reversals) the original transaction row, FOR UPDATE;
--   3. balance rows of ONE currency in ascending user_id order, taken by the UPDATE /
--      INSERT ... ON CONFLICT that changes them.
-- A debit is a single "UPDATE ... WHERE balance >= amount": it waits for a concurrent writer of the
-- row and re-checks the condition on its newest version (READ COMMITTED), so no balance can go
-- negative and no update is lost. The hot path (post_transaction) is one function body with as
-- few statements as possible (each costs an executor start-up): a deposit changes its balance row
-- and inserts the transaction and its entries in one statement; a withdrawal's inserts hang off
-- its conditional debit; a transfer keeps one statement per balance row so the two row locks are
-- taken in ascending user_id order.
--
-- Expired keys are removed a few at a time by the requests themselves (about one call in 64
-- deletes up to 256 rows, SKIP LOCKED so it never waits).
--
-- SQLSTATEs raised: TX001 insufficient_funds, TX002 already_reversed, TX003 not reversible (a
-- reversal cannot be reversed), TX004 invalid argument (a bug in the caller).
-- (Helpers are plpgsql rather than SQL functions: plpgsql keeps its plans for the session.)

-- Claims (p_user, p_key) for a request with hash p_hash that will create transaction p_tx.
-- Returns NULL when claimed; otherwise the stored record's verdict: ('replayed', 201, original
-- body) for the same hash, ('idempotency_key_reused', 422, NULL) for another.
CREATE FUNCTION transactions.claim_key(p_user uuid, p_key text, p_hash text, p_tx uuid, p_now timestamp with time zone, p_ttl_s integer, OUT verdict text, OUT status integer, OUT body text) RETURNS record
    LANGUAGE plpgsql
    AS $$
DECLARE
    v_claimed boolean;
BEGIN
    INSERT INTO transactions.idempotency_keys AS k (user_id, key, request_hash, transaction_id, created_at, expires_at)
    VALUES (p_user, p_key, p_hash, p_tx, p_now, p_now + make_interval(secs => p_ttl_s))
    ON CONFLICT (user_id, key) DO UPDATE
       SET request_hash = EXCLUDED.request_hash, transaction_id = EXCLUDED.transaction_id,
           created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at
     WHERE k.expires_at <= p_now
    RETURNING true INTO v_claimed;
    IF v_claimed THEN
        RETURN;
    END IF;
    SELECT CASE WHEN k.request_hash = p_hash THEN 'replayed' ELSE 'idempotency_key_reused' END,
           CASE WHEN k.request_hash = p_hash THEN 201 ELSE 422 END,
           CASE WHEN k.request_hash = p_hash THEN transactions.tx_json_original(t)::text END
      INTO verdict, status, body
      FROM transactions.idempotency_keys k JOIN transactions.transactions t ON t.id = k.transaction_id
     WHERE k.user_id = p_user AND k.key = p_key;
END
$$;

CREATE FUNCTION transactions.sweep_keys(p_now timestamp with time zone) RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
    DELETE FROM transactions.idempotency_keys
     WHERE ctid = ANY (ARRAY(SELECT ctid FROM transactions.idempotency_keys
                              WHERE expires_at <= p_now ORDER BY expires_at LIMIT 256
                              FOR UPDATE SKIP LOCKED));
END
$$;

-- Credit p_amount to (p_user, p_cur), creating the balance row when absent.
CREATE FUNCTION transactions.credit(p_user uuid, p_cur text, p_amount numeric, p_now timestamp with time zone) RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
    INSERT INTO transactions.balances AS b (user_id, currency, balance, updated_at)
    VALUES (p_user, p_cur, p_amount, p_now)
    ON CONFLICT (user_id, currency) DO UPDATE SET balance = b.balance + EXCLUDED.balance,
                                                  updated_at = EXCLUDED.updated_at;
END
$$;

-- Debit p_amount from (p_user, p_cur); raises TX001 when the balance is short (or absent).
CREATE FUNCTION transactions.debit(p_user uuid, p_cur text, p_amount numeric, p_now timestamp with time zone) RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
    UPDATE transactions.balances SET balance = balance - p_amount, updated_at = p_now
     WHERE user_id = p_user AND currency = p_cur AND balance >= p_amount;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'insufficient funds' USING ERRCODE = 'TX001';
    END IF;
END
$$;

-- POST /api/transactions. p_amount > 0 with 2 decimals; p_to_user only for transfers (the caller
-- has validated everything; the checks here are the last line of defence).
-- Returns ('created', 201, body) or the claim verdict ('replayed' / 'idempotency_key_reused').
CREATE FUNCTION transactions.post_transaction(p_user uuid, p_key text, p_hash text, p_type text, p_amount numeric, p_currency text, p_description text, p_to_user uuid, p_ttl_s integer, OUT verdict text, OUT status integer, OUT body text) RETURNS record
    LANGUAGE plpgsql
    AS $_$
DECLARE
    c_external CONSTANT uuid := '00000000-0000-0000-0000-000000000000';
    v_now timestamptz := now();
    v_tx transactions.transactions;
    v_claimed boolean;
    v_posted boolean;
BEGIN
    IF p_amount IS NULL OR p_amount <= 0 OR p_type NOT IN ('deposit', 'withdrawal', 'transfer')
       OR (p_type = 'transfer') <> (p_to_user IS NOT NULL) OR p_to_user = p_user
       OR p_currency !~ '^[A-Z]{3}$' OR length(p_description) > 500 THEN
        RAISE EXCEPTION 'invalid posting' USING ERRCODE = 'TX004';
    END IF;
    v_tx := ROW(gen_random_uuid(), p_type, 'completed', p_amount::numeric(20,2), p_currency, p_description, p_user,
                p_to_user, NULL, NULL, p_user, v_now, v_now)::transactions.transactions;

    INSERT INTO transactions.idempotency_keys AS k (user_id, key, request_hash, transaction_id, created_at, expires_at)
    VALUES (p_user, p_key, p_hash, v_tx.id, v_now, v_now + make_interval(secs => p_ttl_s))
    ON CONFLICT (user_id, key) DO UPDATE
       SET request_hash = EXCLUDED.request_hash, transaction_id = EXCLUDED.transaction_id,
           created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at
     WHERE k.expires_at <= v_now
    RETURNING true INTO v_claimed;
    IF v_claimed IS NULL THEN
        SELECT CASE WHEN k.request_hash = p_hash THEN 'replayed' ELSE 'idempotency_key_reused' END,
               CASE WHEN k.request_hash = p_hash THEN 201 ELSE 422 END,
               CASE WHEN k.request_hash = p_hash THEN transactions.tx_json_original(t)::text END
          INTO verdict, status, body
          FROM transactions.idempotency_keys k JOIN transactions.transactions t ON t.id = k.transaction_id
         WHERE k.user_id = p_user AND k.key = p_key;
        RETURN;
    END IF;

    IF p_type = 'transfer' THEN
        -- Two balance rows: changed one statement each, in ascending user_id order (lock order).
        IF p_user < p_to_user THEN
            UPDATE transactions.balances SET balance = balance - p_amount, updated_at = v_now
             WHERE user_id = p_user AND currency = p_currency AND balance >= p_amount;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'insufficient funds' USING ERRCODE = 'TX001';
            END IF;
        END IF;
        INSERT INTO transactions.balances AS b (user_id, currency, balance, updated_at)
        VALUES (p_to_user, p_currency, p_amount, v_now)
        ON CONFLICT (user_id, currency) DO UPDATE SET balance = b.balance + EXCLUDED.balance,
                                                      updated_at = EXCLUDED.updated_at;
        IF p_user > p_to_user THEN
            UPDATE transactions.balances SET balance = balance - p_amount, updated_at = v_now
             WHERE user_id = p_user AND currency = p_currency AND balance >= p_amount;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'insufficient funds' USING ERRCODE = 'TX001';
            END IF;
        END IF;
        WITH t AS (INSERT INTO transactions.transactions VALUES (v_tx.*))
        INSERT INTO transactions.entries (transaction_id, account_user_id, currency, amount, created_at)
        VALUES (v_tx.id, p_to_user, p_currency, p_amount, v_now), (v_tx.id, p_user, p_currency, -p_amount, v_now);
    ELSIF p_type = 'deposit' THEN
        -- One balance row: its change and the inserts in one statement.
        WITH b AS (
            INSERT INTO transactions.balances AS b (user_id, currency, balance, updated_at)
            VALUES (p_user, p_currency, p_amount, v_now)
            ON CONFLICT (user_id, currency) DO UPDATE SET balance = b.balance + EXCLUDED.balance,
                                                          updated_at = EXCLUDED.updated_at),
        t AS (INSERT INTO transactions.transactions VALUES (v_tx.*))
        INSERT INTO transactions.entries (transaction_id, account_user_id, currency, amount, created_at)
        VALUES (v_tx.id, p_user, p_currency, p_amount, v_now), (v_tx.id, c_external, p_currency, -p_amount, v_now);
    ELSE
        -- Withdrawal: the inserts happen only when the conditional debit found the funds.
        WITH d AS (
            UPDATE transactions.balances SET balance = balance - p_amount, updated_at = v_now
             WHERE user_id = p_user AND currency = p_currency AND balance >= p_amount
            RETURNING 1),
        t AS (INSERT INTO transactions.transactions SELECT (v_tx).* FROM d),
        e AS (
            INSERT INTO transactions.entries (transaction_id, account_user_id, currency, amount, created_at)
            SELECT v_tx.id, v.account, p_currency, v.amount, v_now
              FROM d, (VALUES (c_external, p_amount), (p_user, -p_amount)) AS v(account, amount))
        SELECT EXISTS (SELECT 1 FROM d) INTO v_posted;
        IF NOT v_posted THEN
            RAISE EXCEPTION 'insufficient funds' USING ERRCODE = 'TX001';
        END IF;
    END IF;

    IF random() < 1.0 / 64 THEN
        PERFORM transactions.sweep_keys(v_now);
    END IF;
    verdict := 'created';
    status := 201;
    body := transactions.tx_json_original(v_tx)::text;
END
$_$;

-- POST /api/transactions/{id}/reverse by an admin (p_admin). Returns ('created', 201, body of the
-- reversal), ('not_found', 404, NULL) or a claim verdict; raises TX001/TX002/TX003.
CREATE FUNCTION transactions.reverse_transaction(p_admin uuid, p_key text, p_hash text, p_orig uuid, p_ttl_s integer, OUT verdict text, OUT status integer, OUT body text) RETURNS record
    LANGUAGE plpgsql
    AS $$
DECLARE
    c_external CONSTANT uuid := '00000000-0000-0000-0000-000000000000';
    v_now timestamptz := now();
    v_orig transactions.transactions;
    v_rev transactions.transactions;
    v_entry record;
BEGIN
    SELECT * INTO v_orig FROM transactions.transactions WHERE id = p_orig;
    IF NOT FOUND THEN
        verdict := 'not_found';
        status := 404;
        RETURN;
    END IF;
    v_rev := ROW(gen_random_uuid(), 'reversal', 'completed', v_orig.amount, v_orig.currency,
                 'reversal of ' || v_orig.id, v_orig.user_id, v_orig.to_user_id, v_orig.id, NULL,
                 p_admin, v_now, v_now)::transactions.transactions;

    SELECT c.verdict, c.status, c.body INTO verdict, status, body
      FROM transactions.claim_key(p_admin, p_key, p_hash, v_rev.id, v_now, p_ttl_s) c;
    IF verdict IS NOT NULL THEN
        RETURN;
    END IF;

    -- Amount, currency and parties never change, so the unlocked read above was good for the
    -- reversal's row; the status is decided under the row lock.
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
    body := transactions.tx_json_original(v_rev)::text;
END
$$;
