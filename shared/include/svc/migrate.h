/* Schema migrations: db/<service>/NNN_name.sql applied in order, each exactly once.
 *
 * Applied versions are recorded in <schema>.schema_migrations (version, name, checksum,
 * applied_at). The whole run holds a PostgreSQL advisory lock keyed on the schema name, so several
 * instances starting at once apply each file once; the others wait and then find nothing to do.
 * Each file runs in its own transaction together with its bookkeeping row. A file already applied
 * whose checksum changed is reported as an error (migrations are append-only). */
#ifndef SVC_MIGRATE_H
#define SVC_MIGRATE_H

#include <libpq-fe.h>
#include <stddef.h>

/* Applies pending migrations from dir into schema (search_path is set to the schema).
 * The schema must exist (created by db/bootstrap.sql); conn must be idle. A file must not contain
 * BEGIN/COMMIT itself; statement_timeout does not apply to migrations or to waiting for the lock.
 * Returns the number applied (>= 0) or -1 with a one-line reason in err. */
int svc_migrate(PGconn *conn, const char *schema, const char *dir, char *err, size_t errlen);

#endif
