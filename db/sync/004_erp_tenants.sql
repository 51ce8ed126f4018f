-- Tenants (stores) whose ERP sync-service synchronises customers and products from.
--
-- The ERP API key is stored sealed with AES-256-GCM (shared/include/svc/aead.h) under the key in
-- TENANT_SECRETS_KEY_FILE, with the tenant's id as associated data: the database alone (a dump,
-- a replica, a backup) never holds a usable key, and a sealed key copied to another row does not
-- open. The API never returns it.
--
-- seq numbers tenants in creation order; the schedule's deterministic jitter is derived from it
-- (sync-service/src/erp_jitter.h), and slots page through active tenants by it.
-- fence_token is the newest per-tenant lock token that wrote the tenant's synced data: a write
-- carrying an older token is refused (sync-service/src/erp_lock.h, "fencing").
CREATE TABLE sync.tenants (
    id             uuid PRIMARY KEY,
    seq            bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    erp_base_url   text NOT NULL CHECK (length(erp_base_url) BETWEEN 1 AND 2048),
    api_key_sealed bytea NOT NULL,
    is_active      boolean NOT NULL DEFAULT true,
    fence_token    bigint NOT NULL DEFAULT 0 CHECK (fence_token >= 0),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX tenants_created_at_idx ON sync.tenants (created_at DESC, id DESC);
CREATE INDEX tenants_active_seq_idx ON sync.tenants (seq) WHERE is_active;

-- The public representation (the API key is never part of it).
CREATE FUNCTION sync.tenant_json(t sync.tenants) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', t.id,
        'name', t.name,
        'erpBaseUrl', t.erp_base_url,
        'isActive', t.is_active,
        'createdAt', sync.ts_json(t.created_at),
        'updatedAt', sync.ts_json(t.updated_at))
$$;
