-- What the ERP synchronisation writes: each tenant's customers and products as its ERP last
-- reported them, keyed by (tenant, the ERP's own id), and where each tenant's last complete sync
-- of a kind got to.
--
-- Rows are written in batches by one statement (sync-service/src/erp_repo.c): COPY into a
-- staging table and one INSERT … ON CONFLICT DO UPDATE whose WHERE leaves a row alone unless its
-- content or its source timestamp changed (an unchanged row gets no new version at all), or, while
-- a tenant has no row of the kind yet, COPY straight into the table. A record deleted at the
-- source stays, with deleted = true and deleted_at. No foreign key to sync.tenants: a per-row
-- check would cost every COPY row a lookup; deleting a tenant deletes its rows in the same
-- statement (tenants_repo.c). synced_at is when the row was last written, so an operator (and the
-- tests) can see that a sync rewrote nothing.
CREATE TABLE sync.erp_customers (
    tenant_id         uuid NOT NULL,
    external_id       text NOT NULL,
    name              text NOT NULL,
    email             text,
    document          text,
    source_updated_at timestamptz NOT NULL,
    deleted           boolean NOT NULL DEFAULT false,
    deleted_at        timestamptz,
    synced_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, external_id)
);

CREATE TABLE sync.erp_products (
    tenant_id         uuid NOT NULL,
    external_id       text NOT NULL,
    sku               text,
    name              text NOT NULL,
    price             numeric NOT NULL,        -- as the ERP wrote it (its scale kept): "12.30"
    stock             bigint NOT NULL,
    source_updated_at timestamptz NOT NULL,
    deleted           boolean NOT NULL DEFAULT false,
    deleted_at        timestamptz,
    synced_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, external_id)
);

-- Per tenant and kind: the newest source updated_at read by the last complete sync (the next
-- sync asks for updated_since = watermark, inclusive), and whether the ERP refused the key.
CREATE TABLE sync.erp_sync_state (
    tenant_id    uuid NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('customers', 'products')),
    watermark    timestamptz,
    synced_at    timestamptz,
    auth_failed  boolean NOT NULL DEFAULT false,
    PRIMARY KEY (tenant_id, kind)
);

CREATE FUNCTION sync.erp_customer_json(c sync.erp_customers) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', c.external_id,
        'name', c.name,
        'email', c.email,
        'document', c.document,
        'updated_at', sync.ts_json(c.source_updated_at),
        'deleted', c.deleted,
        'deleted_at', sync.ts_json(c.deleted_at),
        'synced_at', sync.ts_json(c.synced_at))
$$;

CREATE FUNCTION sync.erp_product_json(p sync.erp_products) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', p.external_id,
        'sku', p.sku,
        'name', p.name,
        'price', p.price::text,
        'stock', p.stock,
        'updated_at', sync.ts_json(p.source_updated_at),
        'deleted', p.deleted,
        'deleted_at', sync.ts_json(p.deleted_at),
        'synced_at', sync.ts_json(p.synced_at))
$$;
