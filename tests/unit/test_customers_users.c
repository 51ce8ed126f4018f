/* Specification of the user use cases' rules (customers-service/src/users.c), without a database:
 * who may see and change whom (anyone else's user is "not found", never "forbidden", so ids
 * cannot be probed), what only an admin may do, and what a database outage answers.
 *
 * The Makefile links this test with customers-service's objects except users_repo.o
 * (fakes_test_customers_users): the top half of this file is an in-memory users_repo with a
 * knob that makes the next call fail, and it counts the calls, so a test can also tell that a
 * refusal was decided before the repository was asked. Redis points at a closed port: the user
 * cache always misses and sessions cannot be revoked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "users.h"
#include "users_repo.h"

/* ------------------------------------------------------------------ the in-memory repository */

#define MAX_USERS 8

struct mem_user {
    char id[40], user_name[80], email[100], name[100], role[16];
    bool deleted;
};

static struct {
    struct mem_user u[MAX_USERS];
    int n;
    int calls;               /* repository calls (open excluded) */
    svc_status fail_open;    /* != SVC_OK: users_repo_open fails with it */
    svc_status fail_next;    /* != SVC_OK: the next repository call fails with it */
} mem;

/* Any non-NULL pointer: the fake never dereferences its "connection". */
static PGconn *const MEM_CONN = (PGconn *)&mem;

const struct svc_list users_list_kind = {.kind = 'U', .timed = false, .id = SVC_CURSOR_UUID, .legacy_page = true};

PGconn *users_repo_open(struct svc_pg_pool *pool, svc_status *st) {
    if (mem.fail_open != SVC_OK) {
        *st = mem.fail_open;
        return NULL;
    }
    *st = SVC_OK;
    return MEM_CONN;
}

void users_repo_close(struct svc_pg_pool *pool, PGconn *c) { assert_ptr_equal(c, MEM_CONN); }

/* Counts the call; returns the injected failure (once) or SVC_OK. */
static svc_status mem_call(PGconn *c) {
    assert_ptr_equal(c, MEM_CONN);
    mem.calls++;
    svc_status st = mem.fail_next;
    mem.fail_next = SVC_OK;
    return st;
}

static struct mem_user *mem_find(const char *id) {
    for (int i = 0; i < mem.n; i++)
        if (!strcmp(mem.u[i].id, id)) return &mem.u[i];
    return NULL;
}

static char *mem_json(const struct mem_user *u) {
    json_t *j = json_pack("{s:s,s:s,s:s?,s:s,s:s,s:b}", "id", u->id, "user_name", u->user_name, "email",
                          u->email[0] ? u->email : NULL, "name", u->name, "role", u->role, "deleted", u->deleted);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

svc_status users_repo_get_json(PGconn *c, const char *id, bool include_deleted, char **json_out) {
    svc_status st = mem_call(c);
    if (st != SVC_OK) return st;
    struct mem_user *u = mem_find(id);
    if (!u || (u->deleted && !include_deleted)) return SVC_NOT_FOUND;
    *json_out = mem_json(u);
    return SVC_OK;
}

svc_status users_repo_get_json_by_name(PGconn *c, const char *user_name, char **json_out) {
    svc_status st = mem_call(c);
    if (st != SVC_OK) return st;
    for (int i = 0; i < mem.n; i++)
        if (!strcasecmp(mem.u[i].user_name, user_name) && !mem.u[i].deleted) {
            *json_out = mem_json(&mem.u[i]);
            return SVC_OK;
        }
    return SVC_NOT_FOUND;
}

static svc_status mem_auth_row(const struct mem_user *u, struct user_auth_row *out) {
    memset(out, 0, sizeof *out);
    if (!u) return SVC_NOT_FOUND;
    snprintf(out->id, sizeof out->id, "%s", u->id);
    snprintf(out->role, sizeof out->role, "%s", u->role);
    out->permissions_json = strdup("[]");
    out->deleted = u->deleted;
    return SVC_OK;
}

svc_status users_repo_find_login(PGconn *c, const char *login, struct user_auth_row *out) {
    svc_status st = mem_call(c);
    if (st != SVC_OK) return st;
    for (int i = 0; i < mem.n; i++)
        if (!strcasecmp(mem.u[i].user_name, login) || !strcasecmp(mem.u[i].email, login))
            return mem_auth_row(&mem.u[i], out);
    return SVC_NOT_FOUND;
}

svc_status users_repo_get_auth(PGconn *c, const char *id, struct user_auth_row *out) {
    svc_status st = mem_call(c);
    return st != SVC_OK ? st : mem_auth_row(mem_find(id), out);
}

void user_auth_row_free(struct user_auth_row *r) {
    free(r->password_hash);
    free(r->permissions_json);
    r->password_hash = r->permissions_json = NULL;
}

static struct mem_user *mem_add(const char *id, const char *user_name, const char *role) {
    struct mem_user *u = &mem.u[mem.n++];
    memset(u, 0, sizeof *u);
    snprintf(u->id, sizeof u->id, "%s", id);
    snprintf(u->user_name, sizeof u->user_name, "%s", user_name);
    snprintf(u->email, sizeof u->email, "%s@example.com", user_name);
    snprintf(u->name, sizeof u->name, "%s", user_name);
    snprintf(u->role, sizeof u->role, "%s", role);
    return u;
}

svc_status users_repo_insert(PGconn *c, const struct user_new *n, char **json_out, const char **conflict) {
    svc_status st = mem_call(c);
    if (st != SVC_OK) return st;
    for (int i = 0; i < mem.n; i++) {
        if (!strcasecmp(mem.u[i].user_name, n->user_name)) { *conflict = "user_name_taken"; return SVC_CONFLICT; }
        if (n->email && !strcasecmp(mem.u[i].email, n->email)) { *conflict = "email_taken"; return SVC_CONFLICT; }
    }
    if (mem.n == MAX_USERS) return SVC_INTERNAL;
    char id[40];
    snprintf(id, sizeof id, "0190f7a2-0000-7000-8000-%012d", 100 + mem.n);
    struct mem_user *u = mem_add(id, n->user_name, n->role);
    snprintf(u->email, sizeof u->email, "%s", n->email ? n->email : "");
    snprintf(u->name, sizeof u->name, "%s", n->name);
    *json_out = mem_json(u);
    return SVC_OK;
}

svc_status users_repo_insert_if_absent(PGconn *c, const struct user_new *u, bool *inserted) {
    const char *conflict = NULL;
    char *json = NULL;
    svc_status st = users_repo_insert(c, u, &json, &conflict);
    free(json);
    *inserted = st == SVC_OK;
    return st == SVC_CONFLICT ? SVC_OK : st;
}

svc_status users_repo_update(PGconn *c, const char *id, const struct user_patch *p, char **json_out,
                             const char **conflict) {
    svc_status st = mem_call(c);
    if (st != SVC_OK) return st;
    struct mem_user *u = mem_find(id);
    if (!u || u->deleted) return SVC_NOT_FOUND;
    if (p->name) snprintf(u->name, sizeof u->name, "%s", p->name);
    if (p->email) snprintf(u->email, sizeof u->email, "%s", p->email);
    if (p->role) snprintf(u->role, sizeof u->role, "%s", p->role);
    *json_out = mem_json(u);
    return SVC_OK;
}

svc_status users_repo_set_password_hash(PGconn *c, const char *id, const char *hash) { return mem_call(c); }

svc_status users_repo_soft_delete(PGconn *c, const char *id, char **user_name_out) {
    svc_status st = mem_call(c);
    if (st != SVC_OK) return st;
    struct mem_user *u = mem_find(id);
    if (!u || u->deleted) return SVC_NOT_FOUND;
    u->deleted = true;
    *user_name_out = strdup(u->user_name);
    return SVC_OK;
}

svc_status users_repo_list(PGconn *c, const struct svc_page *page, const char *search, bool include_deleted,
                           char **json_out) {
    svc_status st = mem_call(c);
    if (st != SVC_OK) return st;
    *json_out = strdup("{\"data\":[],\"limit\":20,\"has_more\":false,\"next_cursor\":null}");
    return SVC_OK;
}

svc_status users_repo_get_status_json(PGconn *c, const char *id, char **json_out) {
    svc_status st = mem_call(c);
    if (st != SVC_OK) return st;
    struct mem_user *u = mem_find(id);
    if (!u) return SVC_NOT_FOUND;
    *json_out = mem_json(u);
    return SVC_OK;
}

/* ------------------------------------------------------------------ the service around it */

#define ANN "0190f7a2-0000-7000-8000-000000000001"
#define BOB "0190f7a2-0000-7000-8000-000000000002"
#define ADA "0190f7a2-0000-7000-8000-000000000003"   /* the admin */
#define GONE "0190f7a2-0000-7000-8000-000000000004"  /* soft-deleted */
#define NOBODY "0190f7a2-0000-7000-8000-0000000000ff"

static struct customers_ctx cx;
static atomic_ulong counters[8];
static int devnull = -1;

static int group_setup(void **state) {
    devnull = open("/dev/null", O_WRONLY);
    svc_log_init(&cx.app.log, "customers", "test", "error", devnull);
    struct svc_redis_config rc = {.host = "127.0.0.1", .port = 1, .size = 2, .connect_timeout_ms = 200,
                                  .command_timeout_ms = 200, .acquire_timeout_ms = 200};
    cx.app.redis = svc_redis_pool_new(&rc);   /* nothing listens on port 1: Redis is down */
    cx.cache_hit = &counters[0];
    cx.cache_miss = &counters[1];
    cx.cache_local_hit = &counters[2];
    cx.cache_local_miss = &counters[3];
    cx.logins_ok = &counters[4];
    cx.logins_failed = &counters[5];
    cx.logins_locked = &counters[6];
    return cx.app.redis ? 0 : -1;
}

static int group_teardown(void **state) {
    svc_redis_pool_free(cx.app.redis);
    close(devnull);
    return 0;
}

static int reset(void **state) {
    memset(&mem, 0, sizeof mem);
    mem_add(ANN, "ann", "user");
    mem_add(BOB, "bob", "user");
    mem_add(ADA, "ada", "admin");
    mem_add(GONE, "gone", "user")->deleted = true;
    return 0;
}

static struct svc_principal as(const char *sub, bool admin) {
    struct svc_principal p = {.is_admin = admin};
    snprintf(p.sub, sizeof p.sub, "%s", sub);
    snprintf(p.sid, sizeof p.sid, "sid-%s", sub);
    snprintf(p.role, sizeof p.role, "%s", admin ? "admin" : "user");
    return p;
}

/* Checks an error result (status, code) and releases it. */
static void assert_refused(struct svc_result r, svc_status st, const char *code) {
    if (r.st != st || !r.code || strcmp(r.code, code))
        fail_msg("expected %d %s, got %d %s (%s)", st, code, r.st, r.code ? r.code : "-", r.message ? r.message : "");
    svc_result_clear(&r);
}

/* Checks a success whose JSON names user id, and releases it. */
static void assert_user(struct svc_result r, svc_status st, const char *id) {
    if (r.st != st) fail_msg("expected %d, got %d %s", st, r.st, r.code ? r.code : "-");
    json_t *j = json_loads(r.raw, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "id")), id);
    json_decref(j);
    svc_result_clear(&r);
}

/* ------------------------------------------------------------------ the rules */

static void test_a_user_reads_only_themselves_and_anyone_else_is_not_found_not_forbidden(void **state) {
    struct svc_principal ann = as(ANN, false), ada = as(ADA, true);
    assert_user(users_get(&cx, "cid", &ann, ANN), SVC_OK, ANN);
    int before = mem.calls;
    assert_refused(users_get(&cx, "cid", &ann, BOB), SVC_NOT_FOUND, "user_not_found");   /* exists */
    assert_refused(users_get(&cx, "cid", &ann, NOBODY), SVC_NOT_FOUND, "user_not_found"); /* does not */
    assert_refused(users_get(&cx, "cid", &ann, "not-a-uuid"), SVC_NOT_FOUND, "user_not_found");
    assert_int_equal(mem.calls, before);   /* decided without asking the database: no timing to probe */
    assert_user(users_get(&cx, "cid", &ada, BOB), SVC_OK, BOB);
    assert_refused(users_get(&cx, "cid", &ada, NOBODY), SVC_NOT_FOUND, "user_not_found");
}

static void test_by_name_the_same_rule_holds(void **state) {
    struct svc_principal ann = as(ANN, false), ada = as(ADA, true);
    assert_user(users_get_by_name(&cx, "cid", &ann, "ANN"), SVC_OK, ANN);
    assert_refused(users_get_by_name(&cx, "cid", &ann, "bob"), SVC_NOT_FOUND, "user_not_found");
    assert_refused(users_get_by_name(&cx, "cid", &ann, "nobody"), SVC_NOT_FOUND, "user_not_found");
    assert_user(users_get_by_name(&cx, "cid", &ada, "bob"), SVC_OK, BOB);
}

static void test_changing_or_deleting_another_user_is_not_found_and_changes_nothing(void **state) {
    struct svc_principal ann = as(ANN, false);
    json_t *body = json_pack("{s:s}", "name", "Hijacked");
    int before = mem.calls;
    assert_refused(users_update(&cx, "cid", "127.0.0.1", &ann, BOB, body), SVC_NOT_FOUND, "user_not_found");
    assert_refused(users_delete(&cx, "cid", &ann, BOB), SVC_NOT_FOUND, "user_not_found");
    assert_int_equal(mem.calls, before);
    assert_string_equal(mem_find(BOB)->name, "bob");
    assert_false(mem_find(BOB)->deleted);
    /* their own name they may change */
    assert_user(users_update(&cx, "cid", "127.0.0.1", &ann, ANN, body), SVC_OK, ANN);
    assert_string_equal(mem_find(ANN)->name, "Hijacked");
    json_decref(body);
}

static void test_a_deleted_user_is_not_found_even_for_an_admin(void **state) {
    struct svc_principal ada = as(ADA, true), gone = as(GONE, false);
    assert_refused(users_get(&cx, "cid", &ada, GONE), SVC_NOT_FOUND, "user_not_found");
    assert_refused(users_get(&cx, "cid", &gone, GONE), SVC_NOT_FOUND, "user_not_found");
    json_t *body = json_pack("{s:s}", "name", "Back");
    assert_refused(users_update(&cx, "cid", "127.0.0.1", &ada, GONE, body), SVC_NOT_FOUND, "user_not_found");
    json_decref(body);
    assert_string_equal(mem_find(GONE)->name, "gone");
}

static void test_only_an_admin_lists_or_creates_users(void **state) {
    struct svc_principal ann = as(ANN, false), ada = as(ADA, true);
    struct svc_page_params none = {0};
    assert_refused(users_list(&cx, "cid", &ann, &none, NULL, NULL), SVC_FORBIDDEN, "forbidden");
    json_t *body = json_pack("{s:s,s:s,s:s}", "user_name", "carl", "email", "carl@example.com", "name", "Carl");
    int before = mem.calls;
    assert_refused(users_create(&cx, "cid", &ann, body), SVC_FORBIDDEN, "forbidden");
    assert_int_equal(mem.calls, before);
    struct svc_result r = users_create(&cx, "cid", &ada, body);   /* an admin may omit the password */
    assert_int_equal(r.st, SVC_CREATED);
    svc_result_clear(&r);
    assert_refused(users_create(&cx, "cid", &ada, body), SVC_CONFLICT, "user_name_taken");
    json_decref(body);
    r = users_list(&cx, "cid", &ada, &none, NULL, NULL);
    assert_int_equal(r.st, SVC_OK);
    svc_result_clear(&r);
}

/* A search is 1 to 100 bytes of text without control characters (users.h). */
static void test_a_search_is_free_text_of_at_most_100_bytes(void **state) {
    (void)state;
    assert_null(users_check_search("a"));
    assert_null(users_check_search("x.y-Ab9"));
    assert_null(users_check_search("zo\xc3\xab srch42"));
    assert_null(users_check_search("50%_off"));
    assert_non_null(users_check_search("abc\ndef"));       /* control characters, C0 and C1 */
    assert_non_null(users_check_search("abc\xc2\x85"));
    assert_non_null(users_check_search("abc\xff"));        /* not UTF-8 */
    char big[102];
    memset(big, 'a', 101);
    big[101] = '\0';
    assert_string_equal(users_check_search(big), "at most 100 bytes");
    assert_null(users_check_search(big + 1));
    /* the use case refuses it before any query */
    struct svc_principal ada = as(ADA, true);
    struct svc_page_params none = {0};
    int before = mem.calls;
    assert_refused(users_list(&cx, "cid", &ada, &none, "a\tb", NULL), SVC_INVALID, "validation_failed");
    assert_int_equal(mem.calls, before);
}

static void test_a_non_admin_naming_role_or_permissions_is_refused_as_a_whole(void **state) {
    struct svc_principal ann = as(ANN, false);
    json_t *body = json_pack("{s:s,s:s}", "name", "Ann Admin", "role", "admin");
    int before = mem.calls;
    struct svc_result r = users_update(&cx, "cid", "127.0.0.1", &ann, ANN, body);
    assert_int_equal(r.st, SVC_FORBIDDEN);
    assert_string_equal(r.code, "forbidden_fields");
    assert_non_null(json_object_get(r.details, "fields"));
    svc_result_clear(&r);
    json_decref(body);
    assert_int_equal(mem.calls, before);
    assert_string_equal(mem_find(ANN)->role, "user");
    assert_string_equal(mem_find(ANN)->name, "ann");
}

static void test_database_outage_and_timeout_answer_the_shared_503s(void **state) {
    struct svc_principal ann = as(ANN, false);
    mem.fail_open = SVC_UNAVAILABLE;                     /* no connection at all */
    struct svc_result r = users_get(&cx, "cid", &ann, ANN);
    assert_int_equal(svc_status_http(r.st), 503);
    assert_string_equal(r.code, "database_unavailable");
    assert_int_equal(r.retry_after_s, 1);
    svc_result_clear(&r);
    mem.fail_open = SVC_TIMEOUT;                         /* no free connection in time */
    assert_refused(users_get(&cx, "cid", &ann, ANN), SVC_TIMEOUT, "database_timeout");
    mem.fail_open = SVC_OK;
    mem.fail_next = SVC_TIMEOUT;                         /* statement timeout during the query */
    r = users_get(&cx, "cid", &ann, ANN);
    assert_int_equal(svc_status_http(r.st), 503);
    assert_string_equal(r.code, "database_timeout");
    assert_int_equal(r.retry_after_s, 1);
    svc_result_clear(&r);
    mem.fail_next = SVC_UNAVAILABLE;                     /* connection lost during the query */
    assert_refused(users_get(&cx, "cid", &ann, ANN), SVC_UNAVAILABLE, "database_unavailable");
    mem.fail_next = SVC_INTERNAL;                        /* a bug */
    assert_refused(users_get(&cx, "cid", &ann, ANN), SVC_INTERNAL, "internal_error");
    struct svc_principal ada = as(ADA, true);
    json_t *body = json_pack("{s:s}", "name", "x");
    mem.fail_next = SVC_UNAVAILABLE;
    assert_refused(users_update(&cx, "cid", "127.0.0.1", &ada, BOB, body), SVC_UNAVAILABLE, "database_unavailable");
    json_decref(body);
}

static void test_a_delete_whose_sessions_cannot_be_revoked_changes_nothing(void **state) {
    struct svc_principal ada = as(ADA, true);
    int before = mem.calls;
    assert_refused(users_delete(&cx, "cid", &ada, BOB), SVC_UNAVAILABLE, "session_store_unavailable");
    assert_int_equal(mem.calls, before);
    assert_false(mem_find(BOB)->deleted);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_a_user_reads_only_themselves_and_anyone_else_is_not_found_not_forbidden, reset),
        cmocka_unit_test_setup(test_by_name_the_same_rule_holds, reset),
        cmocka_unit_test_setup(test_changing_or_deleting_another_user_is_not_found_and_changes_nothing, reset),
        cmocka_unit_test_setup(test_a_deleted_user_is_not_found_even_for_an_admin, reset),
        cmocka_unit_test_setup(test_only_an_admin_lists_or_creates_users, reset),
        cmocka_unit_test_setup(test_a_search_is_free_text_of_at_most_100_bytes, reset),
        cmocka_unit_test_setup(test_a_non_admin_naming_role_or_permissions_is_refused_as_a_whole, reset),
        cmocka_unit_test_setup(test_database_outage_and_timeout_answer_the_shared_503s, reset),
        cmocka_unit_test_setup(test_a_delete_whose_sessions_cannot_be_revoked_changes_nothing, reset),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
