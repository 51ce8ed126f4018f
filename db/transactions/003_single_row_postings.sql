-- One row per posting. Measured with pgbench calling the posting function (16 sessions, 2 cores):
-- the two-leg posting written as 4 heap rows and about 7 index entries (transactions, 2 entries,
-- idempotency_keys) ran at ~6,600 calls/s; the same posting as ONE row carrying its two legs and
-- its idempotency key, plus the balance change, runs at ~9,500/s. This migration moves to that shape.
--
-- The ledger stays double entry. Every posting moves one amount between exactly two accounts, so
-- its two entries are stored in its own row, the way two-leg ledgers do it (debit account, credit
-- account, amount):
--   credit_account  receives +amount  (deposit: the user; withdrawal: external; transfer: recipient)
--   debit_account   gives    -amount  (deposit: external; withdrawal: the user; transfer: payer)
-- A reversal swaps the original's two accounts. The view transactions.entries shows the legs as
-- rows (two per transaction, summing to zero by construction); balances stay materialised and
-- equal the sum of an account's legs (the bank-invariant test checks it through the view).
--
-- The idempotency record lives in the row it produced: (created_by, idem_key) is unique while the
-- key is set; request_hash and key_expires_at keep the rest. A key past key_expires_at is retired
-- (set to NULL on its old row) when it is used again. The view transactions.idempotency_keys
-- shows the records as before. Nothing is swept any more: a key costs no row of its own.
--
-- A request still in flight with the same key is detected with a transaction-scoped advisory lock
-- on (user, key), tried first by the posting functions (see 'in_progress' below): this replaces
-- the Redis lock and its round trip. Two-int advisory keys have a key space of their own (apart
-- from the migrations' bigint lock); class 1 = idempotency keys, then hashtext(user/key). A hash
-- collision between two keys in flight at the same moment costs one spurious 409 with
-- Retry-After, never a double effect (the unique index decides that).

ALTER TABLE transactions.transactions
    ADD COLUMN debit_account  uuid,
    ADD COLUMN credit_account uuid,
    ADD COLUMN idem_key       text,
    ADD COLUMN request_hash   text,
    ADD COLUMN key_expires_at timestamptz;

-- Every transaction written by 001/002 has exactly two entries, one credit and one debit.
UPDATE transactions.transactions t
   SET debit_account = e.debit, credit_account = e.credit
  FROM (SELECT transaction_id,
               (array_agg(account_user_id) FILTER (WHERE amount < 0))[1] AS debit,
               (array_agg(account_user_id) FILTER (WHERE amount > 0))[1] AS credit
          FROM transactions.entries GROUP BY transaction_id) e
 WHERE e.transaction_id = t.id;

UPDATE transactions.transactions t
   SET idem_key = k.key, request_hash = k.request_hash, key_expires_at = k.expires_at
  FROM transactions.idempotency_keys k
 WHERE k.transaction_id = t.id AND k.user_id = t.created_by;

ALTER TABLE transactions.transactions
    ALTER COLUMN debit_account SET NOT NULL,
    ALTER COLUMN credit_account SET NOT NULL;

CREATE UNIQUE INDEX transactions_created_by_key_idx ON transactions.transactions (created_by, idem_key)
    WHERE idem_key IS NOT NULL;

DROP FUNCTION transactions.post_transaction(uuid, text, text, text, numeric, text, text, uuid, integer);
DROP FUNCTION transactions.reverse_transaction(uuid, text, text, uuid, integer);
DROP FUNCTION transactions.claim_key(uuid, text, text, uuid, timestamptz, integer);
DROP FUNCTION transactions.sweep_keys(timestamptz);
DROP TABLE transactions.entries;
DROP TABLE transactions.idempotency_keys;

CREATE VIEW transactions.entries AS
    SELECT id AS transaction_id, credit_account AS account_user_id, currency, amount, created_at
      FROM transactions.transactions
    UNION ALL
    SELECT id, debit_account, currency, -amount, created_at
      FROM transactions.transactions;

CREATE VIEW transactions.idempotency_keys AS
    SELECT created_by AS user_id, idem_key AS key, request_hash, id AS transaction_id, created_at,
           key_expires_at AS expires_at
      FROM transactions.transactions
     WHERE idem_key IS NOT NULL;

-- What a used key answers: ('replayed', 201, original body) for the same request hash,
-- ('idempotency_key_reused', 422, NULL) for another; NULL verdict when the key is free or expired
-- (an expired key is retired from its old row here, so the caller can claim it).
CREATE FUNCTION transactions.key_verdict(p_user uuid, p_key text, p_hash text, p_now timestamp with time zone, OUT verdict text, OUT status integer, OUT body text) RETURNS record
    LANGUAGE plpgsql
    AS $$
DECLARE
    v_tx transactions.transactions;
BEGIN
    SELECT * INTO v_tx FROM transactions.transactions WHERE created_by = p_user AND idem_key = p_key;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF v_tx.key_expires_at <= p_now THEN
        UPDATE transactions.transactions SET idem_key = NULL, request_hash = NULL, key_expires_at = NULL
         WHERE id = v_tx.id;
        RETURN;
    END IF;
    IF v_tx.request_hash = p_hash THEN
        verdict := 'replayed';
        status := 201;
        body := transactions.tx_json_original(v_tx)::text;
    ELSE
        verdict := 'idempotency_key_reused';
        status := 422;
    END IF;
END
$$;

-- POST /api/transactions. p_id is the new transaction's id, chosen by the service (a UUIDv7: ids
-- made later sort later, so the primary key fills its right edge instead of a random page per
-- insert); p_amount > 0 with 2 decimals; p_to_user only for transfers (the caller has validated
-- everything; the checks here are the last line of defence).
-- Returns ('created', 201, body), ('in_progress', 409, NULL) when a request with the same key is
-- being posted right now, or a key verdict ('replayed' / 'idempotency_key_reused').
--
-- Locks, always in this order, so concurrent postings cannot deadlock: the key's advisory lock;
-- the key's index entry (the INSERT); balance rows of ONE currency in ascending user_id order. A
-- debit is a single "UPDATE ... WHERE balance >= amount": it waits for a concurrent writer of the
-- row and re-checks the condition on its newest version (READ COMMITTED), so no balance can go
-- negative and no update is lost. A rule failure RAISEs (TX001), which rolls back the row too:
-- only successful effects are remembered, so a refused request may be retried with its key.
CREATE FUNCTION transactions.post_transaction(p_id uuid, p_user uuid, p_key text, p_hash text, p_type text, p_amount numeric, p_currency text, p_description text, p_to_user uuid, p_ttl_s integer, OUT verdict text, OUT status integer, OUT body text) RETURNS record
    LANGUAGE plpgsql
    AS $$
DECLARE
    c_external CONSTANT uuid := '00000000-0000-0000-0000-000000000000';
    v_now timestamptz := now();
    v_tx transactions.transactions;
    v_rows integer;
    v_debited integer;
BEGIN
    IF p_amount IS NULL OR p_amount <= 0 OR p_type NOT IN ('deposit', 'withdrawal', 'transfer')
       OR (p_type = 'transfer') <> (p_to_user IS NOT NULL) OR p_to_user = p_user
       OR p_currency !~ '^[A-Z]{3}$' OR length(p_description) > 500 OR p_key IS NULL THEN
        RAISE EXCEPTION 'invalid posting' USING ERRCODE = 'TX004';
    END IF;
    IF NOT pg_try_advisory_xact_lock(1, hashtext(p_user::text || '/' || p_key)) THEN
        verdict := 'in_progress';
        status := 409;
        RETURN;
    END IF;
    v_tx := ROW(p_id, p_type, 'completed', p_amount::numeric(20,2), p_currency, p_description,
                p_user, p_to_user, NULL, NULL, p_user, v_now, v_now,
                CASE p_type WHEN 'deposit' THEN c_external ELSE p_user END,
                CASE p_type WHEN 'deposit' THEN p_user WHEN 'withdrawal' THEN c_external ELSE p_to_user END,
                p_key, p_hash, v_now + make_interval(secs => p_ttl_s))::transactions.transactions;

    IF p_type = 'deposit' THEN
        -- The row and the balance change in one statement; the balance moves only if the row
        -- went in (a used key inserts nothing).
        WITH t AS (
            INSERT INTO transactions.transactions VALUES (v_tx.*)
            ON CONFLICT (created_by, idem_key) WHERE idem_key IS NOT NULL DO NOTHING
            RETURNING 1),
        b AS (
            INSERT INTO transactions.balances AS b (user_id, currency, balance, updated_at)
            SELECT p_user, p_currency, v_tx.amount, v_now FROM t
            ON CONFLICT (user_id, currency) DO UPDATE SET balance = b.balance + EXCLUDED.balance,
                                                          updated_at = EXCLUDED.updated_at)
        SELECT count(*) INTO v_rows FROM t;
    ELSIF p_type = 'withdrawal' THEN
        WITH t AS (
            INSERT INTO transactions.transactions VALUES (v_tx.*)
            ON CONFLICT (created_by, idem_key) WHERE idem_key IS NOT NULL DO NOTHING
            RETURNING 1),
        d AS (
            UPDATE transactions.balances SET balance = balance - v_tx.amount, updated_at = v_now
             WHERE user_id = p_user AND currency = p_currency AND balance >= v_tx.amount
               AND EXISTS (SELECT 1 FROM t)
            RETURNING 1)
        SELECT (SELECT count(*) FROM t), (SELECT count(*) FROM d) INTO v_rows, v_debited;
        IF v_rows = 1 AND v_debited = 0 THEN
            RAISE EXCEPTION 'insufficient funds' USING ERRCODE = 'TX001';
        END IF;
    ELSE
        INSERT INTO transactions.transactions VALUES (v_tx.*)
        ON CONFLICT (created_by, idem_key) WHERE idem_key IS NOT NULL DO NOTHING;
        GET DIAGNOSTICS v_rows = ROW_COUNT;
        IF v_rows = 1 THEN
            -- Two balance rows: one statement each, in ascending user_id order (lock order).
            IF p_user < p_to_user THEN
                PERFORM transactions.debit(p_user, p_currency, v_tx.amount, v_now);
                PERFORM transactions.credit(p_to_user, p_currency, v_tx.amount, v_now);
            ELSE
                PERFORM transactions.credit(p_to_user, p_currency, v_tx.amount, v_now);
                PERFORM transactions.debit(p_user, p_currency, v_tx.amount, v_now);
            END IF;
        END IF;
    END IF;

    IF v_rows = 0 THEN
        -- The key is taken: replay, refuse as reused, or (expired) retire it and post again.
        SELECT k.verdict, k.status, k.body INTO verdict, status, body
          FROM transactions.key_verdict(p_user, p_key, p_hash, v_now) k;
        IF verdict IS NULL THEN
            SELECT p.verdict, p.status, p.body INTO verdict, status, body
              FROM transactions.post_transaction(p_id, p_user, p_key, p_hash, p_type, p_amount, p_currency,
                                                 p_description, p_to_user, p_ttl_s) p;
        END IF;
        RETURN;
    END IF;
    verdict := 'created';
    status := 201;
    body := transactions.tx_json_original(v_tx)::text;
END
$$;

-- POST /api/transactions/{id}/reverse by an admin (p_admin); p_id is the reversal's id. Returns ('created', 201, body of the
-- reversal), ('not_found', 404, NULL), ('in_progress', 409, NULL) or a key verdict; raises
-- TX001/TX002/TX003. The reversal's legs are the original's, swapped.
CREATE FUNCTION transactions.reverse_transaction(p_id uuid, p_admin uuid, p_key text, p_hash text, p_orig uuid, p_ttl_s integer, OUT verdict text, OUT status integer, OUT body text) RETURNS record
    LANGUAGE plpgsql
    AS $$
DECLARE
    c_external CONSTANT uuid := '00000000-0000-0000-0000-000000000000';
    v_now timestamptz := now();
    v_orig transactions.transactions;
    v_rev transactions.transactions;
BEGIN
    IF NOT pg_try_advisory_xact_lock(1, hashtext(p_admin::text || '/' || p_key)) THEN
        verdict := 'in_progress';
        status := 409;
        RETURN;
    END IF;
    SELECT k.verdict, k.status, k.body INTO verdict, status, body
      FROM transactions.key_verdict(p_admin, p_key, p_hash, v_now) k;
    IF verdict IS NOT NULL THEN
        RETURN;
    END IF;

    SELECT * INTO v_orig FROM transactions.transactions WHERE id = p_orig FOR UPDATE;
    IF NOT FOUND THEN
        verdict := 'not_found';
        status := 404;
        RETURN;
    END IF;
    IF v_orig.status = 'reversed' THEN
        RAISE EXCEPTION 'already reversed' USING ERRCODE = 'TX002';
    END IF;
    IF v_orig.type = 'reversal' OR v_orig.status <> 'completed' THEN
        RAISE EXCEPTION 'not reversible' USING ERRCODE = 'TX003';
    END IF;
    v_rev := ROW(p_id, 'reversal', 'completed', v_orig.amount, v_orig.currency,
                 'reversal of ' || v_orig.id, v_orig.user_id, v_orig.to_user_id, v_orig.id, NULL,
                 p_admin, v_now, v_now, v_orig.credit_account, v_orig.debit_account,
                 p_key, p_hash, v_now + make_interval(secs => p_ttl_s))::transactions.transactions;

    -- Undo each user account's leg in ascending account order (the lock order); the external
    -- account has no balance row.
    IF v_rev.debit_account <> c_external AND v_rev.credit_account <> c_external
       AND v_rev.credit_account < v_rev.debit_account THEN
        PERFORM transactions.credit(v_rev.credit_account, v_rev.currency, v_rev.amount, v_now);
        PERFORM transactions.debit(v_rev.debit_account, v_rev.currency, v_rev.amount, v_now);
    ELSE
        IF v_rev.debit_account <> c_external THEN
            PERFORM transactions.debit(v_rev.debit_account, v_rev.currency, v_rev.amount, v_now);
        END IF;
        IF v_rev.credit_account <> c_external THEN
            PERFORM transactions.credit(v_rev.credit_account, v_rev.currency, v_rev.amount, v_now);
        END IF;
    END IF;

    INSERT INTO transactions.transactions VALUES (v_rev.*);
    UPDATE transactions.transactions SET status = 'reversed', reversed_by = v_rev.id, updated_at = v_now
     WHERE id = p_orig;
    verdict := 'created';
    status := 201;
    body := transactions.tx_json_original(v_rev)::text;
END
$$;
