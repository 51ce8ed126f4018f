-- The ledger owned by transactions-service (double entry). Money is NUMERIC(20,2) everywhere.
--
-- transactions  one row per business transaction (deposit, withdrawal, transfer, reversal).
--               user_id is the account it belongs to (the payer of a transfer); to_user_id the
--               recipient; a reversal copies both from the original so the same parties see it;
--               created_by is the actor (the admin for reversals). Only status, reversed_by and
--               updated_at ever change.
-- entries       the double-entry postings: each transaction writes >= 2 entries summing to zero
--               (credit > 0, debit < 0), at most one per account, so (transaction_id,
--               account_user_id) is the key. The counterparty of deposits and withdrawals is the
--               "external" account 00000000-0000-0000-0000-000000000000, which may go negative.
-- balances      materialised sum of entries per (user_id, currency), updated in the same database
--               transaction as the entries; never negative. The external account is deliberately
--               NOT materialised: its single row would serialise every deposit and withdrawal; its
--               balance is the negated sum of all user balances.
-- idempotency_keys  the durable record of a request made with an Idempotency-Key, written in the
--               same database transaction as its effect: (user_id, key), the request hash, the
--               transaction it created and the expiry (24 h). The original response is rebuilt
--               from the transaction row (tx_json_original), so no body is stored.
--
-- Write cost decides POST throughput, so (measured with pgbench calling the posting function):
-- * no foreign keys from entries/idempotency_keys to transactions: the posting functions are the
--   only writers and insert the referenced row in the same transaction (the bank-invariant test
--   checks it); the references between transactions, written only by reversals, stay;
-- * CHECK constraints only where they protect money (balance >= 0, amount signs): PostgreSQL
--   rebuilds every constraint expression per INSERT/UPDATE statement (~11 % of a posting);
--   the other rules are checked by the posting functions and the service;
-- * the external account's entries are not indexed by account (every deposit would insert into
--   the same index page), reverses_id is indexed only where set, and key expiry uses a B-tree
--   (a BRIN index left recent blocks unsummarised and made every sweep scan them).

CREATE TABLE transactions.transactions (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    type        text NOT NULL,
    status      text NOT NULL,
    amount      numeric(20,2) NOT NULL CHECK (amount > 0),
    currency    text NOT NULL,
    description text,
    user_id     uuid NOT NULL,
    to_user_id  uuid,
    reverses_id uuid REFERENCES transactions.transactions (id),
    reversed_by uuid REFERENCES transactions.transactions (id),
    created_by  uuid NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX transactions_user_created_idx ON transactions.transactions (user_id, created_at DESC, id DESC);
CREATE INDEX transactions_to_user_created_idx ON transactions.transactions (to_user_id, created_at DESC, id DESC)
    WHERE to_user_id IS NOT NULL;
CREATE UNIQUE INDEX transactions_reverses_id_key ON transactions.transactions (reverses_id)
    WHERE reverses_id IS NOT NULL;

CREATE TABLE transactions.entries (
    transaction_id  uuid NOT NULL,
    account_user_id uuid NOT NULL,
    currency        text NOT NULL,
    amount          numeric(20,2) NOT NULL CHECK (amount <> 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (transaction_id, account_user_id)
);
CREATE INDEX entries_account_created_idx ON transactions.entries (account_user_id, created_at)
    WHERE account_user_id <> '00000000-0000-0000-0000-000000000000'::uuid;

CREATE TABLE transactions.balances (
    user_id    uuid NOT NULL,
    currency   text NOT NULL,
    balance    numeric(20,2) NOT NULL DEFAULT 0 CHECK (balance >= 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, currency)
);

CREATE TABLE transactions.idempotency_keys (
    user_id        uuid NOT NULL,
    key            text NOT NULL,
    request_hash   text NOT NULL,
    transaction_id uuid,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_expires_idx ON transactions.idempotency_keys (expires_at);

-- The API representation of a transaction, built in one place for every read and write path.
CREATE FUNCTION transactions.tx_json(t transactions.transactions) RETURNS json
    LANGUAGE sql STABLE
    AS $$
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

-- The body a transaction had when it was created (replays of its idempotency key).
CREATE FUNCTION transactions.tx_json_original(t transactions.transactions) RETURNS json
    LANGUAGE sql STABLE
    AS $$
    SELECT json_build_object(
        'id', t.id,
        'type', t.type,
        'status', 'completed',
        'amount', t.amount::text,
        'currency', t.currency,
        'description', t.description,
        'user_id', t.user_id,
        'to_user_id', t.to_user_id,
        'reverses_id', t.reverses_id,
        'reversed_by', NULL::uuid,
        'created_at', to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'updated_at', to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
$$;
