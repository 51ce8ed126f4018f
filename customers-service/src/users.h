/* User use cases for customers-service: validation and rules, no HTTP and no SQL text.
 *
 * Authorization rule for reads and writes of one user: the caller must be that user or an admin;
 * anyone else gets SVC_NOT_FOUND (not forbidden), so user ids cannot be probed.
 * Every function returns a struct svc_result the caller answers with svc_respond_result.
 * Borrowed: cx, cid, who, body (not modified). */
#ifndef CUSTOMERS_USERS_H
#define CUSTOMERS_USERS_H

#include <jansson.h>

#include "ctx.h"
#include "svc/paging.h"

/* Field validators: NULL when valid, else a static reason. */
const char *users_check_user_name(const char *s);
const char *users_check_email(const char *s);
/* A person's name: 1-200 characters of free text without any control character (svc/utf8.h). */
const char *users_check_name(const char *s);
const char *users_check_role(const char *s);
/* Permissions: array of 1..64-char [a-z0-9:._-] strings, at most 32. */
const char *users_check_permissions(const json_t *perms);
/* A list search: 1 to 100 bytes of UTF-8 text without control characters; it is matched as a
 * case-insensitive prefix of the user name or the e-mail (users_repo.c, through their indexes). */
const char *users_check_search(const char *s);
/* Every member of the JSON object body not named in allowed (NULL-terminated) is added to fields
 * (an object, borrowed) with the reason "unknown field": request bodies are closed objects. */
void users_reject_unknown(const json_t *body, const char *const *allowed, json_t *fields);

struct svc_result users_register(struct customers_ctx *cx, const char *cid, const json_t *body);
struct svc_result users_create(struct customers_ctx *cx, const char *cid, const struct svc_principal *who,
                               const json_t *body);
struct svc_result users_get(struct customers_ctx *cx, const char *cid, const struct svc_principal *who,
                            const char *id);
struct svc_result users_get_by_name(struct customers_ctx *cx, const char *cid,
                                    const struct svc_principal *who, const char *user_name);
/* GET /api/users (admin), paged as users_list_kind (users_repo.h) says. */
struct svc_result users_list(struct customers_ctx *cx, const char *cid, const struct svc_principal *who,
                             const struct svc_page_params *paging, const char *search,
                             const char *include_deleted);
/* client_ip: counted by the login guard when a user changes their own password (current_password
 * is a password guess; see login_guard.h). */
struct svc_result users_update(struct customers_ctx *cx, const char *cid, const char *client_ip,
                               const struct svc_principal *who, const char *id, const json_t *body);
struct svc_result users_delete(struct customers_ctx *cx, const char *cid, const struct svc_principal *who,
                               const char *id);
struct svc_result users_internal_status(struct customers_ctx *cx, const char *cid, const char *id);
/* Creates ADMIN_USER_NAME with ADMIN_PASSWORD when absent. Returns 0 or -1 (logged). */
int users_ensure_admin(struct customers_ctx *cx);

#endif
