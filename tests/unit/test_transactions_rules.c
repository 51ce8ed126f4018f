/* Specification of the transaction use cases' rules (transactions-service/src/transactions.c),
 * without a database, Redis or customers-service: a request refused before posting (customers
 * unavailable, the recipient or the caller gone) is first looked up by its Idempotency-Key, and
 * one that already succeeded is replayed instead of refused; who may read whose transactions; and
 * what a database failure answers; which postings bump whose list version and which list reads
 * the newest-page cache serves.
 *
 * The Makefile links this test with transactions-service's objects except tx_repo.o,
 * customers_client.o, txcache.o and txlist_cache.o (fakes_test_transactions_rules): below are an
 * in-memory ledger of idempotency keys with a failure knob, a customers-service whose answer per
 * user the test sets, a user cache that never knows anything and an in-memory page cache with
 * versions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "customers_client.h"
#include "transactions.h"
#include "tx_repo.h"
#include "txcache.h"
#include "txlist_cache.h"

/* ------------------------------------------------------------------ the in-memory ledger */

#define MAX_KEYS 16

static struct {
    struct { char user[40], key[64], hash[80]; char *body; } k[MAX_KEYS];
    int n;
    int posted;                    /* postings that took effect */
    char list_owner[40];           /* whose list was last read */
    int list_reads;                /* list pages read from the "database" */
    const char *reverse_body;      /* tx_repo_reverse creates a reversal with this body, or not_found */
    svc_status fail_open, fail_next;
} led;

static PGconn *const LED_CONN = (PGconn *)&led;

PGconn *tx_repo_open(struct svc_pg_pool *pool, svc_status *st) {
    *st = led.fail_open;
    return led.fail_open == SVC_OK ? LED_CONN : NULL;
}

void tx_repo_close(struct svc_pg_pool *pool, PGconn *c) { assert_ptr_equal(c, LED_CONN); }

static svc_status led_call(PGconn *c, struct tx_repo_err *err) {
    assert_ptr_equal(c, LED_CONN);
    memset(err, 0, sizeof *err);
    svc_status st = led.fail_next;
    led.fail_next = SVC_OK;
    return st;
}

/* The stored result of (user, key): replayed with the same hash, refused with another. */
static bool led_stored(const char *user, const char *key, const char *hash, struct tx_posting *out) {
    for (int i = 0; i < led.n; i++) {
        if (strcmp(led.k[i].user, user) || strcmp(led.k[i].key, key)) continue;
        bool same = !strcmp(led.k[i].hash, hash);
        snprintf(out->verdict, sizeof out->verdict, "%s", same ? "replayed" : "idempotency_key_reused");
        out->status = same ? 201 : 422;
        out->body = same ? strdup(led.k[i].body) : NULL;
        return true;
    }
    return false;
}

svc_status tx_repo_post(PGconn *c, const char *tx_id, const char *user_id, const char *key, const char *hash,
                        const struct tx_create_req *rq, long ttl_s, struct tx_posting *out, struct tx_repo_err *err) {
    memset(out, 0, sizeof *out);
    svc_status st = led_call(c, err);
    if (st != SVC_OK) return st;
    if (led_stored(user_id, key, hash, out)) return SVC_OK;
    assert_true(led.n < MAX_KEYS);
    snprintf(led.k[led.n].user, sizeof led.k[led.n].user, "%s", user_id);
    snprintf(led.k[led.n].key, sizeof led.k[led.n].key, "%s", key);
    snprintf(led.k[led.n].hash, sizeof led.k[led.n].hash, "%s", hash);
    json_t *b = json_pack("{s:s,s:s,s:s,s:s}", "id", tx_id, "type", tx_type_name(rq->type), "amount", rq->amount,
                          "currency", rq->currency);
    led.k[led.n].body = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    snprintf(out->verdict, sizeof out->verdict, "created");
    out->status = 201;
    out->body = strdup(led.k[led.n].body);
    led.n++;
    led.posted++;
    return SVC_OK;
}

svc_status tx_repo_post_alone(PGconn *c, const char *tx_id, const char *user_id, const char *key, const char *hash,
                              const struct tx_create_req *rq, long ttl_s, struct tx_posting *out,
                              struct tx_repo_err *err) {
    return tx_repo_post(c, tx_id, user_id, key, hash, rq, ttl_s, out, err);
}

svc_status tx_repo_post_batch(PGconn *c, struct tx_batch_item *const *items, int n, long ttl_s,
                              struct tx_repo_err *err) {
    for (int i = 0; i < n; i++) items[i]->st = SVC_NOT_FOUND;   /* each is posted on its own */
    return led_call(c, err);
}

svc_status tx_repo_find_key(PGconn *c, const char *user_id, const char *key, const char *hash,
                            struct tx_posting *out, struct tx_repo_err *err) {
    memset(out, 0, sizeof *out);
    svc_status st = led_call(c, err);
    if (st != SVC_OK) return st;
    return led_stored(user_id, key, hash, out) ? SVC_OK : SVC_NOT_FOUND;
}

svc_status tx_repo_reverse(PGconn *c, const char *rev_id, const char *admin_id, const char *key, const char *hash,
                           const char *tx_id, long ttl_s, struct tx_posting *out, struct tx_repo_err *err) {
    memset(out, 0, sizeof *out);
    svc_status st = led_call(c, err);
    snprintf(out->verdict, sizeof out->verdict, "%s", led.reverse_body ? "created" : "not_found");
    out->status = led.reverse_body ? 201 : 404;
    out->body = led.reverse_body ? strdup(led.reverse_body) : NULL;
    return st;
}

static svc_status led_read(PGconn *c, char **json_out, struct tx_repo_err *err) {
    svc_status st = led_call(c, err);
    if (st == SVC_OK) *json_out = strdup("{\"data\":[]}");
    return st;
}

svc_status tx_repo_get(PGconn *c, const char *tx_id, const char *viewer_id, bool as_admin, char **json_out,
                       struct tx_repo_err *err) {
    return led_read(c, json_out, err);
}

svc_status tx_repo_list(PGconn *c, const char *owner_id, const struct tx_list_query *q, char **json_out,
                        struct tx_repo_err *err) {
    snprintf(led.list_owner, sizeof led.list_owner, "%s", owner_id);
    led.list_reads++;
    return led_read(c, json_out, err);
}

svc_status tx_repo_summary(PGconn *c, const char *owner_id, const struct tx_summary_query *q, char **json_out,
                           struct tx_repo_err *err) {
    svc_status st = led_call(c, err);
    if (st == SVC_OK) *json_out = strdup("[]");
    return st;
}

svc_status tx_repo_balance(PGconn *c, const char *user_id, char **json_out, struct tx_repo_err *err) {
    return led_read(c, json_out, err);
}

/* ------------------------------------------------------------------ customers-service and the cache */

#define ANN "0190f7a2-0000-7000-8000-000000000001"
#define BOB "0190f7a2-0000-7000-8000-000000000002"
#define ADA "0190f7a2-0000-7000-8000-000000000003"

static struct { enum user_state ann, bob, ada; int calls; } users;

enum user_state customers_user_state(struct tx_ctx *cx, const char *cid, const char *id, uint32_t *retry_after_s) {
    users.calls++;
    enum user_state st = !strcmp(id, ANN) ? users.ann : !strcmp(id, BOB) ? users.bob : !strcmp(id, ADA) ? users.ada
                                                                                      : USER_MISSING;
    *retry_after_s = st == USER_UNAVAILABLE ? 7 : 1;
    return st;
}

void txcache_lookup(struct tx_ctx *cx, const char *cid, const char *const *ids, int n, enum user_state *states) {
    for (int i = 0; i < n; i++) states[i] = USER_UNKNOWN;
}

void txcache_put_users(struct tx_ctx *cx, const char *const *ids, const enum user_state *states, int n) {}

/* The page cache: a version per user (a counter, as text) and the pages stored under one. */
#define MAX_PAGES 8
static struct {
    struct { char user[40]; int version; int bumps; } v[4];
    struct { char owner[40]; int limit; char version[TXLIST_VERSION_LEN + 1]; char *page; } p[MAX_PAGES];
    int nv, np;
} pc;

static int *version_slot(const char *user, bool bump) {
    for (int i = 0; i < pc.nv; i++)
        if (!strcmp(pc.v[i].user, user)) {
            pc.v[i].bumps += bump;
            return &pc.v[i].version;
        }
    assert_true(pc.nv < 4);
    snprintf(pc.v[pc.nv].user, sizeof pc.v[pc.nv].user, "%s", user);
    pc.v[pc.nv].bumps = bump;
    return &pc.v[pc.nv++].version;
}

static int bumps_of(const char *user) {
    for (int i = 0; i < pc.nv; i++)
        if (!strcmp(pc.v[i].user, user)) return pc.v[i].bumps;
    return 0;
}

bool txlist_cache_get(struct tx_ctx *cx, const char *owner, int limit, char **page,
                      char version[TXLIST_VERSION_LEN + 1], unsigned long *epoch) {
    *epoch = 7;
    snprintf(version, TXLIST_VERSION_LEN + 1, "%d", *version_slot(owner, false));
    *page = NULL;
    for (int i = 0; i < pc.np; i++)
        if (!strcmp(pc.p[i].owner, owner) && pc.p[i].limit == limit && !strcmp(pc.p[i].version, version)) {
            *page = strdup(pc.p[i].page);
            return true;
        }
    return false;
}

void txlist_cache_put(struct tx_ctx *cx, const char *owner, int limit, const char *version, const char *page,
                      unsigned long epoch) {
    assert_int_equal(epoch, 7);                /* the epoch of the lookup that missed */
    assert_true(pc.np < MAX_PAGES);
    snprintf(pc.p[pc.np].owner, sizeof pc.p[pc.np].owner, "%s", owner);
    pc.p[pc.np].limit = limit;
    snprintf(pc.p[pc.np].version, sizeof pc.p[pc.np].version, "%s", version);
    pc.p[pc.np++].page = strdup(page);
}

void txlist_cache_bump(struct tx_ctx *cx, const char *cid, const char *const *parties, int n) {
    for (int i = 0; i < n; i++)
        if (parties[i]) ++*version_slot(parties[i], true);
}

/* ------------------------------------------------------------------ the service around them */

static struct tx_ctx cx;
static atomic_ulong counters[16];
static int devnull = -1;

static int group_setup(void **state) {
    devnull = open("/dev/null", O_WRONLY);
    svc_log_init(&cx.app.log, "transactions", "test", "error", devnull);
    int k = 0;
    for (int i = 0; i < 4; i++) cx.created[i] = &counters[k++];
    cx.replays = &counters[k++];
    cx.key_reused = &counters[k++];
    cx.in_progress = &counters[k++];
    cx.insufficient = &counters[k++];
    cx.ucache_hit = &counters[k++];
    cx.ucache_miss = &counters[k++];
    cx.customers_unavailable = &counters[k++];
    cx.post_batches = &counters[k++];
    cx.post_batched = &counters[k++];
    cx.post_alone = &counters[k++];
    cx.max_amount_cents = INT64_C(100000000000);
    cx.idem_ttl_s = 86400;
    return 0;
}

static int reset(void **state);

static int group_teardown(void **state) {
    reset(state);
    close(devnull);
    return 0;
}

static int reset(void **state) {
    for (int i = 0; i < led.n; i++) free(led.k[i].body);
    memset(&led, 0, sizeof led);
    for (int i = 0; i < pc.np; i++) free(pc.p[i].page);
    memset(&pc, 0, sizeof pc);
    users.ann = users.bob = users.ada = USER_ACTIVE;
    users.calls = 0;
    return 0;
}

static struct svc_principal as(const char *sub, bool admin, bool service) {
    struct svc_principal p = {.is_admin = admin, .is_service = service};
    snprintf(p.sub, sizeof p.sub, "%s", sub);
    snprintf(p.role, sizeof p.role, "%s", service ? "service" : admin ? "admin" : "user");
    return p;
}

static json_t *deposit(const char *amount) {
    return json_pack("{s:s,s:s,s:s}", "type", "deposit", "amount", amount, "currency", "EUR");
}

static json_t *transfer_to(const char *to) {
    return json_pack("{s:s,s:s,s:s,s:s}", "type", "transfer", "amount", "5.00", "currency", "EUR", "to_user_id", to);
}

static const char *header_of(const struct svc_result *r, const char *name) {
    for (int i = 0; i < SVC_RESULT_MAX_HEADERS; i++)
        if (r->headers[i].name && !strcmp(r->headers[i].name, name)) return r->headers[i].value;
    return NULL;
}

/* Posts body with key as who; checks status and code (NULL for a success) and whether the answer
 * is a replay; releases it. */
static void post(const struct svc_principal *who, const char *key, json_t *body, svc_status st, const char *code,
                 bool replayed) {
    struct svc_result r = tx_create(&cx, "cid", who, key, body);
    json_decref(body);
    if (r.st != st || (code && (!r.code || strcmp(r.code, code))))
        fail_msg("expected %d %s, got %d %s (%s)", st, code ? code : "", r.st, r.code ? r.code : "-",
                 r.message ? r.message : "");
    const char *rep = header_of(&r, "Idempotent-Replayed");
    if (replayed) assert_string_equal(rep ? rep : "(none)", "true");
    else assert_null(rep);
    svc_result_clear(&r);
}

/* ------------------------------------------------------------------ the rules */

static void test_a_request_refused_before_posting_is_replayed_when_it_already_succeeded(void **state) {
    struct svc_principal ann = as(ANN, false, false);
    post(&ann, "k1", deposit("10.00"), SVC_CREATED, NULL, false);
    users.ann = USER_UNAVAILABLE;                     /* customers-service is down now */
    post(&ann, "k1", deposit("10.00"), SVC_CREATED, NULL, true);
    users.ann = USER_DELETED;                         /* the caller's account is gone now */
    post(&ann, "k1", deposit("10.00"), SVC_CREATED, NULL, true);
    assert_int_equal(led.posted, 1);
}

static void test_a_refused_request_that_never_succeeded_is_refused_and_nothing_is_posted(void **state) {
    struct svc_principal ann = as(ANN, false, false);
    users.ann = USER_UNAVAILABLE;
    json_t *body = deposit("1.00");
    struct svc_result r = tx_create(&cx, "cid", &ann, "k2", body);
    json_decref(body);
    assert_int_equal(r.st, SVC_UNAVAILABLE);
    assert_string_equal(r.code, "customers_unavailable");
    assert_int_equal(r.retry_after_s, 7);             /* what customers-service's client advised */
    svc_result_clear(&r);
    users.ann = USER_DELETED;
    post(&ann, "k2", deposit("1.00"), SVC_FORBIDDEN, "user_inactive", false);
    users.ann = USER_ACTIVE;
    users.bob = USER_MISSING;
    post(&ann, "k3", transfer_to(BOB), SVC_UNPROCESSABLE, "recipient_not_found", false);
    assert_int_equal(led.posted, 0);
    assert_int_equal(led.n, 0);
}

static void test_a_transfer_whose_recipient_is_gone_since_is_replayed(void **state) {
    struct svc_principal ann = as(ANN, false, false);
    post(&ann, "t1", transfer_to(BOB), SVC_CREATED, NULL, false);
    users.bob = USER_DELETED;
    post(&ann, "t1", transfer_to(BOB), SVC_CREATED, NULL, true);
    post(&ann, "t2", transfer_to(BOB), SVC_UNPROCESSABLE, "recipient_not_found", false);
    assert_int_equal(led.posted, 1);
}

static void test_a_refused_request_reusing_a_key_for_something_else_says_so(void **state) {
    struct svc_principal ann = as(ANN, false, false);
    post(&ann, "k1", deposit("10.00"), SVC_CREATED, NULL, false);
    users.ann = USER_UNAVAILABLE;
    post(&ann, "k1", deposit("99.00"), SVC_UNPROCESSABLE, "idempotency_key_reused", false);
    assert_int_equal(led.posted, 1);
}

static void test_only_users_post_and_only_admins_read_another_users_transactions(void **state) {
    struct svc_principal svc = as("sync", false, true), ann = as(ANN, false, false), ada = as(ADA, true, false);
    post(&svc, "k1", deposit("1.00"), SVC_FORBIDDEN, "user_token_required", false);
    assert_int_equal(users.calls, 0);                 /* refused before asking anyone */
    struct svc_page_params none = {0};
    struct svc_result r = tx_list(&cx, "cid", &ann, &none, NULL, NULL, NULL, NULL, BOB);
    assert_int_equal(r.st, SVC_FORBIDDEN);
    svc_result_clear(&r);
    r = tx_list(&cx, "cid", &ann, &none, NULL, NULL, NULL, NULL, NULL);
    assert_int_equal(r.st, SVC_OK);
    assert_string_equal(led.list_owner, ANN);         /* their own, whatever else */
    svc_result_clear(&r);
    r = tx_list(&cx, "cid", &ada, &none, NULL, NULL, NULL, NULL, BOB);
    assert_int_equal(r.st, SVC_OK);
    assert_string_equal(led.list_owner, BOB);
    svc_result_clear(&r);
    r = tx_list(&cx, "cid", &svc, &none, NULL, NULL, NULL, NULL, NULL);
    assert_int_equal(r.st, SVC_FORBIDDEN);
    assert_string_equal(r.code, "user_token_required");
    svc_result_clear(&r);
}

static void test_a_database_failure_answers_the_shared_503s(void **state) {
    struct svc_principal ann = as(ANN, false, false);
    led.fail_next = SVC_TIMEOUT;                      /* statement timeout while posting */
    json_t *body = deposit("1.00");
    struct svc_result r = tx_create(&cx, "cid", &ann, "k1", body);
    json_decref(body);
    assert_int_equal(svc_status_http(r.st), 503);
    assert_string_equal(r.code, "database_timeout");
    assert_int_equal(r.retry_after_s, 1);
    svc_result_clear(&r);
    led.fail_open = SVC_UNAVAILABLE;                  /* no connection at all */
    post(&ann, "k1", deposit("1.00"), SVC_UNAVAILABLE, "database_unavailable", false);
    struct svc_page_params none = {0};
    r = tx_list(&cx, "cid", &ann, &none, NULL, NULL, NULL, NULL, NULL);
    assert_string_equal(r.code, "database_unavailable");
    svc_result_clear(&r);
    led.fail_open = SVC_OK;
    led.fail_next = SVC_UNAVAILABLE;                  /* connection lost during the read */
    r = tx_balance(&cx, "cid", &ann);
    assert_string_equal(r.code, "database_unavailable");
    assert_int_equal(r.retry_after_s, 1);
    svc_result_clear(&r);
    assert_int_equal(led.posted, 0);
}

static void test_a_posting_bumps_the_list_version_of_each_party_and_nothing_else_does(void **state) {
    struct svc_principal ann = as(ANN, false, false), ada = as(ADA, true, false);
    post(&ann, "d1", deposit("10.00"), SVC_CREATED, NULL, false);
    assert_int_equal(bumps_of(ANN), 1);
    post(&ann, "d1", deposit("10.00"), SVC_CREATED, NULL, true);      /* a replay changes nothing */
    post(&ann, "t1", transfer_to(BOB), SVC_CREATED, NULL, false);     /* both sides of a transfer */
    assert_int_equal(bumps_of(ANN), 2);
    assert_int_equal(bumps_of(BOB), 1);
    users.bob = USER_DELETED;                                            /* refused: nothing posted */
    post(&ann, "t2", transfer_to(BOB), SVC_UNPROCESSABLE, "recipient_not_found", false);
    led.fail_next = SVC_TIMEOUT;                                         /* failed: nothing posted */
    post(&ann, "d2", deposit("1.00"), SVC_TIMEOUT, "database_timeout", false);
    assert_int_equal(bumps_of(ANN), 2);
    assert_int_equal(bumps_of(BOB), 1);
    /* a reversal: the parties its body names (the original's) */
    led.reverse_body = "{\"id\":\"r\",\"type\":\"reversal\",\"user_id\":\"" ANN "\",\"to_user_id\":\"" BOB "\"}";
    struct svc_result r = tx_reverse(&cx, "cid", &ada, "rev1", "0190f7a2-0000-7000-8000-0000000000aa");
    assert_int_equal(r.st, SVC_CREATED);
    svc_result_clear(&r);
    assert_int_equal(bumps_of(ANN), 3);
    assert_int_equal(bumps_of(BOB), 2);
    assert_int_equal(bumps_of(ADA), 0);                                  /* the admin's own list did not change */
}

static void test_only_the_newest_unfiltered_page_is_cached_and_a_bump_retires_it(void **state) {
    struct svc_principal ann = as(ANN, false, false), ada = as(ADA, true, false);
    struct svc_page_params none = {0}, ten = {.limit = "10"}, total = {.include_total = "true"};
    struct svc_result r = tx_list(&cx, "cid", &ann, &none, NULL, NULL, NULL, NULL, NULL);
    assert_int_equal(r.st, SVC_OK);
    svc_result_clear(&r);
    assert_int_equal(led.list_reads, 1);
    r = tx_list(&cx, "cid", &ann, &none, NULL, NULL, NULL, NULL, NULL);   /* served from the cache */
    assert_int_equal(r.st, SVC_OK);
    assert_string_equal(r.raw, "{\"data\":[]}");
    svc_result_clear(&r);
    r = tx_list(&cx, "cid", &ada, &none, NULL, NULL, NULL, NULL, ANN);    /* an admin reading ann's: the same page */
    svc_result_clear(&r);
    assert_int_equal(led.list_reads, 1);
    r = tx_list(&cx, "cid", &ann, &ten, NULL, NULL, NULL, NULL, NULL);    /* another limit: its own page */
    svc_result_clear(&r);
    assert_int_equal(led.list_reads, 2);
    /* filters, a total and a cursor always read the database */
    r = tx_list(&cx, "cid", &ann, &none, "deposit", NULL, NULL, NULL, NULL);
    svc_result_clear(&r);
    r = tx_list(&cx, "cid", &ann, &none, NULL, "completed", NULL, NULL, NULL);
    svc_result_clear(&r);
    r = tx_list(&cx, "cid", &ann, &none, NULL, NULL, "2026-01-01", NULL, NULL);
    svc_result_clear(&r);
    r = tx_list(&cx, "cid", &ann, &total, NULL, NULL, NULL, NULL, NULL);
    svc_result_clear(&r);
    assert_int_equal(led.list_reads, 6);
    assert_int_equal(pc.np, 2);                                           /* none of those was stored */
    /* a posting retires ann's pages: the next read goes to the database */
    post(&ann, "d1", deposit("10.00"), SVC_CREATED, NULL, false);
    r = tx_list(&cx, "cid", &ann, &none, NULL, NULL, NULL, NULL, NULL);
    svc_result_clear(&r);
    assert_int_equal(led.list_reads, 7);
    /* a failed read stores nothing */
    post(&ann, "d2", deposit("10.00"), SVC_CREATED, NULL, false);
    led.fail_next = SVC_UNAVAILABLE;
    r = tx_list(&cx, "cid", &ann, &none, NULL, NULL, NULL, NULL, NULL);
    assert_string_equal(r.code, "database_unavailable");
    svc_result_clear(&r);
    assert_int_equal(pc.np, 3);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_a_request_refused_before_posting_is_replayed_when_it_already_succeeded, reset),
        cmocka_unit_test_setup(test_a_refused_request_that_never_succeeded_is_refused_and_nothing_is_posted, reset),
        cmocka_unit_test_setup(test_a_transfer_whose_recipient_is_gone_since_is_replayed, reset),
        cmocka_unit_test_setup(test_a_refused_request_reusing_a_key_for_something_else_says_so, reset),
        cmocka_unit_test_setup(test_only_users_post_and_only_admins_read_another_users_transactions, reset),
        cmocka_unit_test_setup(test_a_database_failure_answers_the_shared_503s, reset),
        cmocka_unit_test_setup(test_a_posting_bumps_the_list_version_of_each_party_and_nothing_else_does, reset),
        cmocka_unit_test_setup(test_only_the_newest_unfiltered_page_is_cached_and_a_bump_retires_it, reset),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
