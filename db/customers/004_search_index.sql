-- The admin list's search (`GET /api/users?search=`) through a trigram index.
--
-- A search is a case-insensitive substring of user name, e-mail or name. Without an index every
-- search read the whole table: about 2 s over 1M users on an idle machine, past the 5 s statement
-- timeout under load (a 503 found by the API fuzzer), so a few searches a second could occupy the
-- database. pg_trgm's GIN operator class answers ILIKE '%…%' from the pattern's trigrams; the
-- service refuses a search without three letters or digits in a row, which would give the index
-- nothing to look up (customers-service/src/users.c, users_check_search).
--
-- One index over the three columns joined by newlines (a search holds no control character, so a
-- match never spans two columns) costs writes less than three indexes. The expression must stay
-- exactly as USERS_SEARCH_TEXT in customers-service/src/users_repo.c writes it.
--
-- pg_trgm is created by db/bootstrap.sql (a superuser's job: this role may not create extensions).
CREATE INDEX users_search_trgm_idx ON customers.users
    USING gin ((user_name || E'\n' || coalesce(email, '') || E'\n' || name) public.gin_trgm_ops);
