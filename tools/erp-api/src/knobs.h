/* erp-api fault knobs: global defaults (environment ERP_SIM_<NAME>, or PATCH /_sim/defaults) and
 * per-tenant overrides (PUT/PATCH /_sim/tenants/{t}). One table drives both sources, so an
 * environment variable and a JSON field accept exactly the same values.
 *
 * A tenant's knob is "unset" (inherit the global value) until given; JSON null unsets it again.
 * Plain values, copied wherever they are used. */
#ifndef ERP_KNOBS_H
#define ERP_KNOBS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

enum knob_id {
    KNOB_LATENCY_MS = 0,    /* every answer waits this long first */
    KNOB_ERROR_RATE,        /* probability of a 500/502/503 (503 with Retry-After: 1) */
    KNOB_TIMEOUT_RATE,      /* probability that the call hangs for hang_ms, then the connection closes */
    KNOB_HANG_MS,
    KNOB_MALFORMED_RATE,    /* probability of a malformed page (truncated, data not an array, HTML) */
    KNOB_THROTTLE_RATE,     /* probability of a 429 with Retry-After: retry_after_s */
    KNOB_RETRY_AFTER_S,
    KNOB_FAIL,              /* 0/1: every call answers fail_status */
    KNOB_FAIL_STATUS,
    KNOB_COUNT
};

struct sim_knobs {
    double v[KNOB_COUNT];
    bool set[KNOB_COUNT];   /* tenant overrides: which values are given */
};

/* Built-in defaults: no latency, no faults, hang 120000 ms, Retry-After 1 s, fail status 500;
 * every value marked set. */
void knobs_defaults(struct sim_knobs *k);
/* Tenant overrides: nothing set. */
void knobs_unset(struct sim_knobs *k);
/* Effective value of knob id for a tenant: its own when set, else the global default. */
double knobs_get(const struct sim_knobs *tenant, const struct sim_knobs *global, enum knob_id id);

const char *knobs_name(enum knob_id id);
/* Applies one JSON field if name is a knob: 1 set (or unset by null when allow_null), 0 not a
 * knob, -1 invalid (err gets "<name>: <reason>"). */
int knobs_set_json(struct sim_knobs *k, const char *name, const json_t *v, bool allow_null, char *err, size_t errlen);
/* Applies every ERP_SIM_<NAME> variable present. 0, or -1 with err set. */
int knobs_from_env(struct sim_knobs *k, char *err, size_t errlen);
/* Adds the knobs that are set to obj (numbers; fail as a boolean). */
void knobs_to_json(const struct sim_knobs *k, json_t *obj);

#endif
