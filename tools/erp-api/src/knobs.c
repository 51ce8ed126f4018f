/* Knob table and parsing (see knobs.h). Values are checked strictly: a probability outside [0,1]
 * or a fractional millisecond count is refused, so a typo fails loudly instead of meaning 0. */
#include "knobs.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum knob_type { T_PROB, T_INT, T_BOOL };

static const struct {
    const char *name;
    enum knob_type type;
    double min, max, def;
} KNOBS[KNOB_COUNT] = {
    [KNOB_LATENCY_MS] = {"latency_ms", T_INT, 0, 600000, 0},
    [KNOB_ERROR_RATE] = {"error_rate", T_PROB, 0, 1, 0},
    [KNOB_TIMEOUT_RATE] = {"timeout_rate", T_PROB, 0, 1, 0},
    [KNOB_HANG_MS] = {"hang_ms", T_INT, 0, 3600000, 120000},
    [KNOB_MALFORMED_RATE] = {"malformed_rate", T_PROB, 0, 1, 0},
    [KNOB_THROTTLE_RATE] = {"throttle_rate", T_PROB, 0, 1, 0},
    [KNOB_RETRY_AFTER_S] = {"retry_after_s", T_INT, 0, 86400, 1},
    [KNOB_FAIL] = {"fail", T_BOOL, 0, 1, 0},
    [KNOB_FAIL_STATUS] = {"fail_status", T_INT, 400, 599, 500},
};

void knobs_defaults(struct sim_knobs *k) {
    for (int i = 0; i < KNOB_COUNT; i++) {
        k->v[i] = KNOBS[i].def;
        k->set[i] = true;
    }
}

void knobs_unset(struct sim_knobs *k) { memset(k, 0, sizeof *k); }

double knobs_get(const struct sim_knobs *tenant, const struct sim_knobs *global, enum knob_id id) {
    return tenant && tenant->set[id] ? tenant->v[id] : global->v[id];
}

const char *knobs_name(enum knob_id id) { return KNOBS[id].name; }

static int bad(enum knob_id id, char *err, size_t errlen) {
    const char *why = KNOBS[id].type == T_PROB ? "must be a probability between 0 and 1"
                      : KNOBS[id].type == T_BOOL ? "must be a boolean"
                                                 : NULL;
    if (why) snprintf(err, errlen, "%s: %s", KNOBS[id].name, why);
    else snprintf(err, errlen, "%s: must be an integer between %.0f and %.0f", KNOBS[id].name, KNOBS[id].min, KNOBS[id].max);
    return -1;
}

static int find(const char *name) {
    for (int i = 0; i < KNOB_COUNT; i++)
        if (strcmp(name, KNOBS[i].name) == 0) return i;
    return -1;
}

static bool in_range(enum knob_id id, double v) {
    if (!isfinite(v) || v < KNOBS[id].min || v > KNOBS[id].max) return false;
    return KNOBS[id].type == T_PROB || v == floor(v);
}

int knobs_set_json(struct sim_knobs *k, const char *name, const json_t *v, bool allow_null, char *err, size_t errlen) {
    int id = find(name);
    if (id < 0) return 0;
    if (json_is_null(v) && allow_null) {
        k->set[id] = false;
        return 1;
    }
    double d;
    if (KNOBS[id].type == T_BOOL) {
        if (!json_is_boolean(v)) return bad((enum knob_id)id, err, errlen);
        d = json_is_true(v) ? 1 : 0;
    } else {
        if (!json_is_number(v)) return bad((enum knob_id)id, err, errlen);
        d = json_number_value(v);
    }
    if (!in_range((enum knob_id)id, d)) return bad((enum knob_id)id, err, errlen);
    k->v[id] = d;
    k->set[id] = true;
    return 1;
}

int knobs_from_env(struct sim_knobs *k, char *err, size_t errlen) {
    for (int id = 0; id < KNOB_COUNT; id++) {
        char var[64] = "ERP_SIM_";
        size_t len = strlen(var);
        for (const char *c = KNOBS[id].name; *c && len < sizeof var - 1; c++)
            var[len++] = (char)(*c >= 'a' && *c <= 'z' ? *c - 'a' + 'A' : *c);
        var[len] = '\0';
        const char *s = getenv(var);
        if (!s || !*s) continue;
        double d;
        char *end;
        errno = 0;
        if (KNOBS[id].type == T_BOOL && (!strcmp(s, "true") || !strcmp(s, "1"))) d = 1;
        else if (KNOBS[id].type == T_BOOL && (!strcmp(s, "false") || !strcmp(s, "0"))) d = 0;
        else if (KNOBS[id].type == T_BOOL) d = -1;
        else {
            d = strtod(s, &end);
            if (errno || *end || end == s) d = NAN;
        }
        if (!in_range((enum knob_id)id, d)) {
            char inner[160];
            bad((enum knob_id)id, inner, sizeof inner);
            snprintf(err, errlen, "%s (%s)", var, inner);
            return -1;
        }
        k->v[id] = d;
        k->set[id] = true;
    }
    return 0;
}

void knobs_to_json(const struct sim_knobs *k, json_t *obj) {
    for (int id = 0; id < KNOB_COUNT; id++) {
        if (!k->set[id]) continue;
        json_t *v = KNOBS[id].type == T_BOOL ? json_boolean(k->v[id] != 0)
                    : KNOBS[id].type == T_INT ? json_integer((json_int_t)k->v[id])
                                              : json_real(k->v[id]);
        json_object_set_new(obj, KNOBS[id].name, v);
    }
}
