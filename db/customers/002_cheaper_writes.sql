-- Cheaper writes for bulk imports (measured with 1M-row COPY into this table: 13.2 s -> ~7 s).
--
-- * The user_name regex CHECK cost ~23% of every insert; user names are validated by the service
--   (users_check_user_name) on every path that writes them, so only a cheap length check stays.
-- * (created_at, id) ordered listing needed an index whose entries share created_at within a
--   transaction and then scatter by random id: ~30% of insert cost. Users are listed in creation
--   order by an identity column instead, whose index only ever appends.
-- * New ids are time-ordered (UUID version 7: 48-bit millisecond timestamp + random bits), so
--   primary-key inserts land on the index's right edge instead of a random page.
ALTER TABLE customers.users DROP CONSTRAINT users_user_name_check;
ALTER TABLE customers.users ADD CONSTRAINT users_user_name_length CHECK (length(user_name) BETWEEN 3 AND 64);

ALTER TABLE customers.users ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY;
CREATE UNIQUE INDEX users_seq_key ON customers.users (seq);
DROP INDEX customers.users_created_at_id_idx;

CREATE FUNCTION customers.uuid_v7() RETURNS uuid
LANGUAGE sql VOLATILE AS $$
    -- bytes 0-5: Unix time in ms; version nibble 7 (bits 52-53 set on top of v4's bit 54);
    -- the variant bits and the remaining 74 random bits come from gen_random_uuid()
    SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
               PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
               FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid
$$;
ALTER TABLE customers.users ALTER COLUMN id SET DEFAULT customers.uuid_v7();
