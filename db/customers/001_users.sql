-- Users owned by customers-service.
-- user_name and email are unique case-insensitively (expression indexes on lower()); soft-deleted
-- rows keep their names reserved because the indexes are not partial on "deleted".
CREATE TABLE customers.users (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_name         text NOT NULL CHECK (user_name ~ '^[A-Za-z0-9._-]{3,64}$'),
    email             text CHECK (email IS NULL OR length(email) <= 254),
    name              text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    password_hash     text,
    role              text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    permissions       text[] NOT NULL DEFAULT '{}',
    source            text NOT NULL DEFAULT 'local' CHECK (source IN ('local', 'legacy')),
    legacy_id         bigint,
    source_updated_at timestamptz,          -- legacy record's updatedAt: newest wins on import
    deleted           boolean NOT NULL DEFAULT false,
    deleted_at        timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CHECK (deleted = (deleted_at IS NOT NULL))
);

CREATE UNIQUE INDEX users_user_name_lower_key ON customers.users (lower(user_name));
CREATE UNIQUE INDEX users_email_lower_key ON customers.users (lower(email)) WHERE email IS NOT NULL;
CREATE INDEX users_created_at_id_idx ON customers.users (created_at, id);

-- The public representation of a user, built once in SQL so every read path returns the same
-- shape and never includes password_hash.
CREATE FUNCTION customers.user_json(u customers.users) RETURNS json
LANGUAGE sql IMMUTABLE AS $$
    SELECT json_build_object(
        'id', u.id,
        'user_name', u.user_name,
        'email', u.email,
        'name', u.name,
        'role', u.role,
        'permissions', to_json(u.permissions),
        'source', u.source,
        'legacy_id', u.legacy_id,
        'deleted', u.deleted,
        'deleted_at', to_char(u.deleted_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'created_at', to_char(u.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'updated_at', to_char(u.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
$$;
