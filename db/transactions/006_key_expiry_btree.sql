-- Back to a B-tree for idempotency key expiry (005 tried BRIN).
--
-- A BRIN index only knows block ranges that have been summarised; the newest ones (everything
-- written since autovacuum last summarised, thousands of pages under load) are "maybe" for every
-- search, so each sweep read them all: profiled at ~3.5 ms per sweep, ~55 us per posting
-- amortised, twice the cost of a whole posting without the sweep. With a B-tree the sweep of a
-- table with nothing expired is one index probe; the price is one index entry per key.
DROP INDEX transactions.idempotency_keys_expires_brin;
CREATE INDEX idempotency_keys_expires_idx ON transactions.idempotency_keys (expires_at);

CREATE OR REPLACE FUNCTION transactions.sweep_keys(p_now timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM transactions.idempotency_keys
     WHERE ctid = ANY (ARRAY(SELECT ctid FROM transactions.idempotency_keys
                              WHERE expires_at <= p_now ORDER BY expires_at LIMIT 256
                              FOR UPDATE SKIP LOCKED));
END
$$;
