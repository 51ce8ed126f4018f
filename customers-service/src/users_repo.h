/* SQL for customers.users and nothing else.
 *
 * Every function takes a borrowed PGconn (from the pool; the caller releases it) and uses
 * parameterised statements only. User rows leave the database already rendered as JSON by
 * customers.user_json() (never containing password_hash), as text the caller owns (free()).
 * Failures are classified by svc_pg_status (svc/pg.h): SVC_UNAVAILABLE, SVC_TIMEOUT, SVC_INVALID,
 * SVC_INTERNAL (logged by the caller with its correlation id), SVC_CONFLICT (a unique violation
 * sets *conflict to "user_name_taken" or "email_taken"; a deadlock or serialization failure
 * leaves it NULL). Successes: SVC_OK, or SVC_NOT_FOUND when no row matched. */
#ifndef CUSTOMERS_USERS_REPO_H
#define CUSTOMERS_USERS_REPO_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>

#include "svc/paging.h"
#include "svc/pg.h"
#include "svc/status.h"

struct user_new {
    const char *user_name;
    const char *email;          /* may be NULL */
    const char *name;
    const char *password_hash;  /* may be NULL */
    const char *role;           /* "user" | "admin" */
    const json_t *permissions;  /* array of strings checked by users_check_permissions; NULL = none */
};

/* NULL fields are left unchanged. */
struct user_patch {
    const char *name;
    const char *email;
    const char *password_hash;
    const char *role;
    const json_t *permissions;  /* as in user_new; NULL = unchanged */
};

/* What login needs. password_hash is owned (free()). */
struct user_auth_row {
    char id[40];
    char role[16];
    char *password_hash;
    char *permissions_json;     /* owned JSON array text */
    bool deleted;
};

/* The connection a use case works on: borrowed from the service's pool (svc_pg_acquire with its
 * default wait; NULL with *st SVC_UNAVAILABLE or SVC_TIMEOUT) and given back with
 * users_repo_close on every path. The use cases (users.c, sessions.c) reach the database only
 * through this file, so their rules can be tested with an in-memory users_repo linked in its
 * place (tests/unit/test_customers_users.c). */
PGconn *users_repo_open(struct svc_pg_pool *pool, svc_status *st);
void users_repo_close(struct svc_pg_pool *pool, PGconn *c);

svc_status users_repo_get_json(PGconn *c, const char *id, bool include_deleted, char **json_out);
svc_status users_repo_get_json_by_name(PGconn *c, const char *user_name, char **json_out);
svc_status users_repo_find_login(PGconn *c, const char *login, struct user_auth_row *out);
svc_status users_repo_get_auth(PGconn *c, const char *id, struct user_auth_row *out);
void user_auth_row_free(struct user_auth_row *r);
svc_status users_repo_insert(PGconn *c, const struct user_new *u, char **json_out, const char **conflict);
svc_status users_repo_insert_if_absent(PGconn *c, const struct user_new *u, bool *inserted);
svc_status users_repo_update(PGconn *c, const char *id, const struct user_patch *p, char **json_out,
                             const char **conflict);
svc_status users_repo_set_password_hash(PGconn *c, const char *id, const char *hash);
svc_status users_repo_soft_delete(PGconn *c, const char *id, char **user_name_out);
/* GET /api/users: newest first by cursor (the UUIDv7 id, so creation order to the millisecond;
 * users made before migration 002 have random ids and list in a stable order, not by age); the
 * deprecated page= keeps its old order, oldest first. */
extern const struct svc_list users_list_kind;
/* One page of users as svc_page_render makes it. search may be NULL. */
svc_status users_repo_list(PGconn *c, const struct svc_page *page, const char *search, bool include_deleted,
                           char **json_out);
/* For GET /internal/users/{id}: {"id","deleted","role"}. */
svc_status users_repo_get_status_json(PGconn *c, const char *id, char **json_out);

#endif
