-- The ledger owned by transactions-service (double entry).
--
-- transactions  one row per business transaction (deposit, withdrawal, transfer, reversal).
--               user_id is the account the transaction belongs to (the payer of a transfer);
--               to_user_id the recipient of a transfer; a reversal copies both from the original so
--               it is visible to the same parties. created_by is the actor (the admin for reversals).
-- entries       the double-entry postings: each transaction writes >= 2 entries whose amounts sum
--               to zero (credit > 0, debit < 0). The platform's counterparty for deposits and
--               withdrawals is the "external" account 00000000-0000-0000-0000-000000000000, which
--               may go negative.
-- balances      materialised sum of entries per (user_id, currency), updated in the same database
--               transaction as the entries; never negative (CHECK as the last line of defence; the
--               posting function reports insufficient funds before touching anything).
--               The external account is deliberately NOT materialised: every deposit and withdrawal
--               would otherwise lock its single row and serialise all of them. Its balance is
--               derived from entries when needed (it is the negated sum of all user balances).
-- idempotency_keys  the durable record of a request made with an Idempotency-Key, written in the
--               same database transaction as its effect: (user_id, key) unique, the request hash,
--               the response status and body to replay, expiry after 24 h.
--
-- Money is NUMERIC(20,2) everywhere; no floating point.

CREATE TABLE transactions.transactions (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    type         text NOT NULL CHECK (type IN ('deposit', 'withdrawal', 'transfer', 'reversal')),
    status       text NOT NULL CHECK (status IN ('pending', 'completed', 'failed', 'reversed')),
    amount       numeric(20,2) NOT NULL CHECK (amount > 0),
    currency     text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    description  text CHECK (description IS NULL OR length(description) <= 500),
    user_id      uuid NOT NULL,
    to_user_id   uuid,
    reverses_id  uuid UNIQUE REFERENCES transactions.transactions (id),
    reversed_by  uuid REFERENCES transactions.transactions (id),
    created_by   uuid NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((type = 'transfer') = (to_user_id IS NOT NULL) OR type = 'reversal'),
    CHECK (to_user_id IS NULL OR to_user_id <> user_id),
    CHECK ((type = 'reversal') = (reverses_id IS NOT NULL)),
    CHECK ((status = 'reversed') = (reversed_by IS NOT NULL))
);

CREATE INDEX transactions_user_created_idx ON transactions.transactions (user_id, created_at DESC, id DESC);
CREATE INDEX transactions_to_user_created_idx ON transactions.transactions (to_user_id, created_at DESC, id DESC)
    WHERE to_user_id IS NOT NULL;

CREATE TABLE transactions.entries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transaction_id  uuid NOT NULL REFERENCES transactions.transactions (id),
    account_user_id uuid NOT NULL,
    currency        text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    amount          numeric(20,2) NOT NULL CHECK (amount <> 0),
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX entries_transaction_idx ON transactions.entries (transaction_id);
CREATE INDEX entries_account_created_idx ON transactions.entries (account_user_id, created_at);

CREATE TABLE transactions.balances (
    user_id    uuid NOT NULL,
    currency   text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    balance    numeric(20,2) NOT NULL DEFAULT 0 CHECK (balance >= 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, currency),
    CHECK (user_id <> '00000000-0000-0000-0000-000000000000')
);

CREATE TABLE transactions.idempotency_keys (
    user_id         uuid NOT NULL,
    key             text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash    text NOT NULL,
    response_status smallint NOT NULL,
    response_body   text NOT NULL,
    transaction_id  uuid REFERENCES transactions.transactions (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    PRIMARY KEY (user_id, key)
);

CREATE INDEX idempotency_keys_expires_idx ON transactions.idempotency_keys (expires_at);
