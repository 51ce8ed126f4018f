/* Tenant registry of the ERP simulator (see tenants.h). */
#include "tenants.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS 4096

struct registry {
    pthread_rwlock_t lock;
    uint64_t global_seed;
    struct sim_knobs defaults;
    struct sim_tenant *buckets[BUCKETS];
};

static uint64_t name_hash(const char *s) {
    uint64_t h = 1469598103934665603ULL;   /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

bool tenant_name_ok(const char *name) {
    size_t n = strlen(name);
    if (n == 0 || n > TENANT_NAME_MAX) return false;
    for (const char *c = name; *c; c++) {
        bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '.' ||
                  *c == '_' || *c == '-';
        if (!ok) return false;
    }
    return true;
}

struct registry *registry_new(uint64_t global_seed) {
    struct registry *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    if (pthread_rwlock_init(&r->lock, NULL) != 0) {
        free(r);
        return NULL;
    }
    r->global_seed = global_seed;
    knobs_defaults(&r->defaults);
    return r;
}

void registry_free(struct registry *r) {
    if (!r) return;
    for (int i = 0; i < BUCKETS; i++)
        for (struct sim_tenant *t = r->buckets[i], *next; t; t = next) {
            next = t->next;
            free(t);
        }
    pthread_rwlock_destroy(&r->lock);
    free(r);
}

/* Caller holds the lock. */
static struct sim_tenant *lookup(struct registry *r, const char *name) {
    for (struct sim_tenant *t = r->buckets[name_hash(name) % BUCKETS]; t; t = t->next)
        if (strcmp(t->name, name) == 0) return t;
    return NULL;
}

static bool key_ok(const char *k) {
    size_t n = strlen(k);
    if (n == 0 || n > TENANT_KEY_MAX) return false;
    for (; *k; k++)
        if ((unsigned char)*k <= 0x20 || (unsigned char)*k >= 0x7f) return false;
    return true;
}

/* Validates body fields into the given copies; put = every required field present. */
static int apply(const json_t *body, bool put, char *api_key, struct data_set *d, struct sim_knobs *k, uint64_t *seed,
                 bool *seed_given, char *err, size_t errlen) {
    if (!json_is_object(body)) {
        snprintf(err, errlen, "body: must be a JSON object");
        return -1;
    }
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)body, name, v) {
        if (!strcmp(name, "api_key")) {
            if (!json_is_string(v) || !key_ok(json_string_value(v))) {
                snprintf(err, errlen, "api_key: must be 1-%d printable ASCII characters", TENANT_KEY_MAX);
                return -1;
            }
            snprintf(api_key, TENANT_KEY_MAX + 1, "%s", json_string_value(v));
        } else if (!strcmp(name, "customers") || !strcmp(name, "products")) {
            if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > DATA_MAX_RECORDS) {
                snprintf(err, errlen, "%s: must be an integer between 0 and %u", name, DATA_MAX_RECORDS);
                return -1;
            }
            d->count[!strcmp(name, "customers") ? DATA_CUSTOMERS : DATA_PRODUCTS] = (uint32_t)json_integer_value(v);
        } else if (!strcmp(name, "seed")) {
            if (!json_is_integer(v) || json_integer_value(v) < 0) {
                snprintf(err, errlen, "seed: must be a non-negative integer");
                return -1;
            }
            *seed = (uint64_t)json_integer_value(v);
            *seed_given = true;
        } else {
            int one = knobs_set_json(k, name, v, !put, err, errlen);
            if (one < 0) return -1;
            if (one == 0) {
                snprintf(err, errlen, "%s: unknown field", name);
                return -1;
            }
        }
    }
    if (put && !api_key[0]) {
        snprintf(err, errlen, "api_key: required");
        return -1;
    }
    return 0;
}

int registry_put(struct registry *r, const char *name, const json_t *body, char *err, size_t errlen) {
    char key[TENANT_KEY_MAX + 1] = "";
    struct data_set d;
    memset(&d, 0, sizeof d);
    struct sim_knobs k;
    knobs_unset(&k);
    uint64_t seed = 0;
    bool seed_given = false;
    if (apply(body, true, key, &d, &k, &seed, &seed_given, err, errlen) != 0) return -1;
    d.seed = seed_given ? seed : name_hash(name) ^ r->global_seed;

    pthread_rwlock_wrlock(&r->lock);
    struct sim_tenant *t = lookup(r, name);
    int created = !t || !t->exists;
    if (!t) {
        t = calloc(1, sizeof *t);
        if (!t) {
            pthread_rwlock_unlock(&r->lock);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        snprintf(t->name, sizeof t->name, "%s", name);
        size_t b = name_hash(name) % BUCKETS;
        t->next = r->buckets[b];
        r->buckets[b] = t;
    }
    t->exists = true;
    memcpy(t->api_key, key, sizeof key);
    t->data = d;
    t->knobs = k;
    pthread_rwlock_unlock(&r->lock);
    return created;
}

int registry_patch(struct registry *r, const char *name, const json_t *body, char *err, size_t errlen) {
    pthread_rwlock_wrlock(&r->lock);
    struct sim_tenant *t = lookup(r, name);
    if (!t || !t->exists) {
        pthread_rwlock_unlock(&r->lock);
        return -2;
    }
    char key[TENANT_KEY_MAX + 1];
    memcpy(key, t->api_key, sizeof key);
    struct data_set d = t->data;
    struct sim_knobs k = t->knobs;
    uint64_t seed = d.seed;
    bool seed_given = false;
    int rc = apply(body, false, key, &d, &k, &seed, &seed_given, err, errlen);
    if (rc == 0) {
        d.seed = seed;
        memcpy(t->api_key, key, sizeof key);
        t->data = d;
        t->knobs = k;
    }
    pthread_rwlock_unlock(&r->lock);
    return rc;
}

int registry_advance(struct registry *r, const char *name, double share, double delete_share) {
    pthread_rwlock_wrlock(&r->lock);
    struct sim_tenant *t = lookup(r, name);
    int rc = !t || !t->exists ? -2 : data_advance(&t->data, share, delete_share);
    pthread_rwlock_unlock(&r->lock);
    return rc;
}

bool registry_delete(struct registry *r, const char *name) {
    pthread_rwlock_wrlock(&r->lock);
    struct sim_tenant *t = lookup(r, name);
    bool existed = t && t->exists;
    if (t) t->exists = false;
    pthread_rwlock_unlock(&r->lock);
    return existed;
}

struct sim_tenant *registry_view(struct registry *r, const char *name, struct tenant_view *view) {
    pthread_rwlock_rdlock(&r->lock);
    struct sim_tenant *t = lookup(r, name);
    if (t && t->exists) {
        memcpy(view->api_key, t->api_key, sizeof view->api_key);
        view->data = t->data;
        view->knobs = t->knobs;
    } else {
        t = NULL;
    }
    pthread_rwlock_unlock(&r->lock);
    return t;
}

static json_t *summary_json(const struct data_set *d, enum data_kind kind, int64_t since) {
    struct data_summary s;
    data_summary(d, kind, since, &s);
    char ts[24] = "";
    if (s.total) data_ts(s.max_updated_at, ts);
    return json_pack("{s:I,s:I,s:I,s:s?}", "total", (json_int_t)s.total, "deleted", (json_int_t)s.deleted, "matching",
                     (json_int_t)s.matching, "max_updated_at", s.total ? ts : NULL);
}

json_t *registry_describe(struct registry *r, const char *name, int64_t since) {
    struct tenant_view v;
    if (!registry_view(r, name, &v)) return NULL;
    json_t *knobs = json_object();
    if (!knobs) return NULL;
    knobs_to_json(&v.knobs, knobs);
    char seed[24];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)v.data.seed);
    return json_pack("{s:s,s:I,s:I,s:s,s:i,s:o,s:o,s:o}", "name", name, "customers",
                     (json_int_t)v.data.count[DATA_CUSTOMERS], "products", (json_int_t)v.data.count[DATA_PRODUCTS],
                     "seed", seed, "advances", v.data.advances, "knobs", knobs, "customers_summary",
                     summary_json(&v.data, DATA_CUSTOMERS, since), "products_summary",
                     summary_json(&v.data, DATA_PRODUCTS, since));
}

void registry_defaults(struct registry *r, struct sim_knobs *out) {
    pthread_rwlock_rdlock(&r->lock);
    *out = r->defaults;
    pthread_rwlock_unlock(&r->lock);
}

int registry_patch_defaults(struct registry *r, const json_t *body, char *err, size_t errlen) {
    if (!json_is_object(body)) {
        snprintf(err, errlen, "body: must be a JSON object");
        return -1;
    }
    pthread_rwlock_wrlock(&r->lock);
    struct sim_knobs k = r->defaults;
    const char *name;
    json_t *v;
    int rc = 0;
    json_object_foreach((json_t *)body, name, v) {
        int one = knobs_set_json(&k, name, v, false, err, errlen);
        if (one < 0 || one == 0) {
            if (one == 0) snprintf(err, errlen, "%s: not a knob", name);
            rc = -1;
            break;
        }
    }
    if (rc == 0) r->defaults = k;
    pthread_rwlock_unlock(&r->lock);
    return rc;
}

void registry_each(struct registry *r, void (*fn)(void *arg, struct sim_tenant *t), void *arg) {
    pthread_rwlock_rdlock(&r->lock);
    for (int i = 0; i < BUCKETS; i++)
        for (struct sim_tenant *t = r->buckets[i]; t; t = t->next)
            if (t->exists) fn(arg, t);
    pthread_rwlock_unlock(&r->lock);
}

void tenant_begin(struct sim_tenant *t) {
    int now = atomic_fetch_add(&t->concurrent, 1) + 1;
    int max = atomic_load(&t->max_concurrent);
    while (now > max && !atomic_compare_exchange_weak(&t->max_concurrent, &max, now)) {
    }
}

void tenant_end(struct sim_tenant *t) { atomic_fetch_sub(&t->concurrent, 1); }

void tenant_count_status(struct sim_tenant *t, unsigned status) {
    int i;
    switch (status) {
    case 200: i = ST_200; break;
    case 400: i = ST_400; break;
    case 401: i = ST_401; break;
    case 404: i = ST_404; break;
    case 429: i = ST_429; break;
    case 500: i = ST_500; break;
    case 502: i = ST_502; break;
    case 503: i = ST_503; break;
    default: i = ST_OTHER;
    }
    atomic_fetch_add(&t->by_status[i], 1);
}

void tenant_reset_counters(struct sim_tenant *t) {
    atomic_store(&t->requests, 0);
    atomic_store(&t->starts, 0);
    for (int i = 0; i < 2; i++) atomic_store(&t->by_kind[i], 0);
    for (int i = 0; i < ST_COUNT; i++) atomic_store(&t->by_status[i], 0);
    atomic_store(&t->hangs, 0);
    atomic_store(&t->malformed, 0);
    atomic_store(&t->max_concurrent, atomic_load(&t->concurrent));
}
