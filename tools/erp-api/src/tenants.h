/* erp-api: the registry of simulated tenants and their request counters.
 *
 * A tenant exists once PUT /_sim/tenants/{name} has created it: its API key, record counts, seed,
 * advances (data.h) and knob overrides (knobs.h). Calls to an unknown tenant answer 404.
 *
 * Entries are never freed before exit (DELETE only marks one absent; a later PUT revives it), so
 * a request may keep its struct sim_tenant pointer without a reference count. A request copies
 * what it needs (registry_view) under the read lock and then builds its page without any lock.
 *
 * Synchronisation: one rwlock guards the hash table and every entry's configuration; counters
 * are atomics (the concurrency maximum is kept with a CAS loop). */
#ifndef ERP_TENANTS_H
#define ERP_TENANTS_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "data.h"
#include "knobs.h"

#define TENANT_NAME_MAX 64
#define TENANT_KEY_MAX 128

/* Status codes counted per tenant (anything else counts as "other"). */
enum { ST_200, ST_400, ST_401, ST_404, ST_429, ST_500, ST_502, ST_503, ST_OTHER, ST_COUNT };

struct sim_tenant {
    char name[TENANT_NAME_MAX + 1];
    struct sim_tenant *next;          /* hash chain */
    /* configuration: under the registry lock */
    bool exists;
    char api_key[TENANT_KEY_MAX + 1];
    struct data_set data;
    struct sim_knobs knobs;
    /* counters */
    atomic_ulong requests, starts, by_kind[2], by_status[ST_COUNT], hangs, malformed;
    atomic_int concurrent, max_concurrent;
};

struct tenant_view {
    char api_key[TENANT_KEY_MAX + 1];
    struct data_set data;
    struct sim_knobs knobs;
};

struct registry;

struct registry *registry_new(uint64_t global_seed);
void registry_free(struct registry *r);

/* [A-Za-z0-9._-]{1,64} */
bool tenant_name_ok(const char *name);

/* PUT: creates or replaces the tenant from a JSON object {api_key, customers, products, seed?,
 * knobs…}; a replaced tenant starts again from version 0 (no advances). Returns 1 created, 0
 * replaced, -1 invalid (err set). */
int registry_put(struct registry *r, const char *name, const json_t *body, char *err, size_t errlen);
/* PATCH: changes the given fields (api_key, customers, products, knobs; null unsets a knob).
 * Returns 0, -1 invalid (err set), -2 unknown tenant. */
int registry_patch(struct registry *r, const char *name, const json_t *body, char *err, size_t errlen);
/* Records an advance. Returns the advance number, -1 when no more can be recorded, -2 unknown. */
int registry_advance(struct registry *r, const char *name, double share, double delete_share);
/* Returns false when the tenant did not exist. */
bool registry_delete(struct registry *r, const char *name);
/* The tenant and a copy of its configuration, or NULL when unknown. */
struct sim_tenant *registry_view(struct registry *r, const char *name, struct tenant_view *view);
/* {"name","customers","products","seed","advances","knobs":{…}} for GET /_sim/tenants/{name}, with
 * per-kind summaries (data_summary) since `since` (< 0: all); NULL when unknown. */
json_t *registry_describe(struct registry *r, const char *name, int64_t since);

/* Global knob defaults (PATCH /_sim/defaults); copied out / applied under the lock. */
void registry_defaults(struct registry *r, struct sim_knobs *out);
int registry_patch_defaults(struct registry *r, const json_t *body, char *err, size_t errlen);

/* Calls fn for every existing tenant (under the read lock: fn must not call the registry). */
void registry_each(struct registry *r, void (*fn)(void *arg, struct sim_tenant *t), void *arg);

/* Counters. */
void tenant_begin(struct sim_tenant *t);      /* a request is being answered: concurrency + 1 */
void tenant_end(struct sim_tenant *t);        /* its answer is sent (or the connection closed) */
void tenant_count_status(struct sim_tenant *t, unsigned status);
void tenant_reset_counters(struct sim_tenant *t);

#endif
