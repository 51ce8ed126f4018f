-- Listings in creation order by the primary key instead of the identity column `seq`.
--
-- Every id written since 002 is a UUIDv7 (48-bit millisecond timestamp first: customers.uuid_v7()
-- for registrations, svc_uuid7 in C for imports), so ORDER BY id is creation order to the
-- millisecond, and the primary key already indexes it. `seq` and its index cost every insert an
-- identity draw and a second append-only B-tree entry: on a 1M-user import that was about 8 % of
-- PostgreSQL's work (the import is bound by PostgreSQL). Users created before 002 have random
-- (version 4) ids: they still list exactly once and in a stable order, only not by age.
DROP INDEX customers.users_seq_key;
ALTER TABLE customers.users DROP COLUMN seq;
