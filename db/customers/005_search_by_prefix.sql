-- The admin list's search (`GET /api/users?search=`) becomes a case-insensitive PREFIX of user
-- name, e-mail or name, served by B-tree indexes, and 004's trigram index goes.
--
-- Measured with bench/bulk_upsert.sh's binary (200k new users, 2000-row batches, two sessions, same
-- machine, same minutes): the GIN trigram index of 004 cut the import's inserts from 52k-68k to 24k
-- rows/s and its updates by a quarter (GIN keeps about thirty trigrams per user), which would
-- undo the import's lead over its peer; a search read every row without it. Prefixes are what an
-- operator types (the start of an e-mail, a user name or a name) and a B-tree answers them: user
-- name and e-mail already have their lower() indexes (001); the name gets one here, a plain B-tree
-- entry per insert. The database's collation is C, so `lower(col) LIKE 'p%'` is an index range.
--
-- 004 stays as it was applied (migrations are checksummed); pg_trgm stays in db/bootstrap.sql
-- for it.
DROP INDEX IF EXISTS customers.users_search_trgm_idx;
CREATE INDEX users_name_lower_idx ON customers.users (lower(name));
