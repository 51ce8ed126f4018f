-- The users search matches a prefix of the user name or the e-mail only: 005's index on lower(name)
-- cost the legacy import a fifth of its throughput (bench/sync.sh, 1M users, same machine and
-- minutes: 79,872 records/s and 17.8 s of PostgreSQL CPU with it, 99,701 and 13.4 s without; a
-- name is random text, so each insert lands on a random leaf of another large B-tree). User name
-- and e-mail keep their unique lower() indexes from 001, which answer a prefix at no extra cost.
DROP INDEX IF EXISTS customers.users_name_lower_idx;
