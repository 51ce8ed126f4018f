-- Database bootstrap: one login role and one schema per service, nothing shared.
--
-- Run by a superuser with psql, connected to the `platform` database (the caller creates the
-- database first when absent: CREATE DATABASE cannot run inside a function or DO block):
--   psql -v ON_ERROR_STOP=1 -v customers_password=... -v transactions_password=... \
--        -v sync_password=... -d platform -f db/bootstrap.sql
-- scripts/stack feeds the three \set lines on stdin instead, so no password appears in `ps`.
--
-- Idempotent: roles that exist get their password (and attributes) reset; schemas that exist get
-- their owner fixed. The statements are built with format(%I, %L) and run with \gexec because psql
-- variables are not substituted inside a DO block's dollar-quoted body.
--
-- Isolation: each schema is owned by its role and nothing is granted to PUBLIC on it, so one
-- service's role has no USAGE on another's schema and cannot read it. Nobody may create objects
-- in `public`, and only the three roles may connect to the database. TEMPORARY is granted because
-- bulk paths stage rows in temporary tables (session-local, invisible to other roles).

\set ON_ERROR_STOP on

SELECT current_database() <> 'platform' AS wrong_database \gset
\if :wrong_database
    DO $$ BEGIN RAISE EXCEPTION 'bootstrap.sql must be run connected to the platform database'; END $$;
\endif

-- Roles ------------------------------------------------------------------------------------
SELECT format(
           CASE WHEN EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = v.role)
                THEN 'ALTER ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD %L'
                ELSE 'CREATE ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD %L'
           END,
           v.role, v.password)
FROM (VALUES ('customers_svc', :'customers_password'),
             ('transactions_svc', :'transactions_password'),
             ('sync_svc', :'sync_password')) AS v(role, password)
\gexec

-- Schemas ----------------------------------------------------------------------------------
CREATE SCHEMA IF NOT EXISTS customers AUTHORIZATION customers_svc;
CREATE SCHEMA IF NOT EXISTS transactions AUTHORIZATION transactions_svc;
CREATE SCHEMA IF NOT EXISTS sync AUTHORIZATION sync_svc;
ALTER SCHEMA customers OWNER TO customers_svc;
ALTER SCHEMA transactions OWNER TO transactions_svc;
ALTER SCHEMA sync OWNER TO sync_svc;
REVOKE ALL ON SCHEMA customers, transactions, sync FROM PUBLIC;

-- Unqualified names resolve to the role's own schema only.
ALTER ROLE customers_svc IN DATABASE platform SET search_path = customers;
ALTER ROLE transactions_svc IN DATABASE platform SET search_path = transactions;
ALTER ROLE sync_svc IN DATABASE platform SET search_path = sync;

-- The shared surface ------------------------------------------------------------------------
-- Extensions the services' migrations use (creating one needs rights the service roles do not
-- have). pg_trgm: customers' db/customers/004_search_index.sql (its index was dropped again by 005,
-- but a new database applies 004 first).
CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE ALL ON DATABASE platform FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE platform TO customers_svc, transactions_svc, sync_svc;
