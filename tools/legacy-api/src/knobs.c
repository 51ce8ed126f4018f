/* Knob parsing shared by the environment and the query string (see knobs.h).
 * Numbers are parsed strictly: the whole value must be consumed, no sign on unsigned values, and
 * probabilities must lie in [0,1], so a typo fails loudly instead of silently meaning 0. */
#include "knobs.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const KNOB_NAMES[] = {
    "count", "seed", "rate", "fail_rate", "drop_rate", "corrupt_rate", "dup_rate", "delete_rate",
    "first_byte_delay_ms", NULL,
};

#define MAX_DELAY_MS 600000L
#define MAX_RATE 1e9

void knobs_defaults(struct sim_knobs *k) {
    memset(k, 0, sizeof *k);
    k->gen.count = 1000000;
    k->gen.seed = 42;
}

static bool parse_u64(const char *s, unsigned long long max, unsigned long long *out) {
    if (!s || !*s || *s == '-' || *s == '+' || *s == ' ') return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max) return false;
    *out = v;
    return true;
}

static bool parse_double(const char *s, double min, double max, double *out) {
    if (!s || !*s || *s == ' ') return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v < min || v > max) return false;
    *out = v;
    return true;
}

int knobs_set(struct sim_knobs *k, const char *name, const char *value, char *err, size_t errlen) {
    unsigned long long u;
    double d;
    if (!strcmp(name, "count")) {
        if (!parse_u64(value, GEN_MAX_COUNT, &u)) goto bad_count;
        k->gen.count = u;
    } else if (!strcmp(name, "seed")) {
        if (!parse_u64(value, UINT64_MAX, &u)) goto bad_int;
        k->gen.seed = u;
    } else if (!strcmp(name, "first_byte_delay_ms")) {
        if (!parse_u64(value, MAX_DELAY_MS, &u)) goto bad_delay;
        k->first_byte_delay_ms = (long)u;
    } else if (!strcmp(name, "rate")) {
        if (!parse_double(value, 0.0, MAX_RATE, &d)) goto bad_rate;
        k->rate = d;
    } else {
        double *p = !strcmp(name, "fail_rate")      ? &k->fail_rate
                    : !strcmp(name, "drop_rate")    ? &k->drop_rate
                    : !strcmp(name, "corrupt_rate") ? &k->gen.corrupt_rate
                    : !strcmp(name, "dup_rate")     ? &k->gen.dup_rate
                    : !strcmp(name, "delete_rate")  ? &k->gen.delete_rate
                                                    : NULL;
        if (!p) return 0;
        if (!parse_double(value, 0.0, 1.0, &d)) {
            snprintf(err, errlen, "%s: must be a probability between 0 and 1", name);
            return -1;
        }
        *p = d;
    }
    return 1;
bad_count:
    snprintf(err, errlen, "%s: must be an integer between 0 and %llu", name, (unsigned long long)GEN_MAX_COUNT);
    return -1;
bad_int:
    snprintf(err, errlen, "%s: must be a non-negative 64-bit integer", name);
    return -1;
bad_delay:
    snprintf(err, errlen, "%s: must be an integer between 0 and %ld", name, MAX_DELAY_MS);
    return -1;
bad_rate:
    snprintf(err, errlen, "%s: must be a number of records per second >= 0 (0 = unlimited)", name);
    return -1;
}

int knobs_from_env(struct sim_knobs *k, char *err, size_t errlen) {
    for (const char *const *n = KNOB_NAMES; *n; n++) {
        char var[64] = "LEGACY_";
        size_t len = strlen(var);
        for (const char *c = *n; *c && len < sizeof var - 1; c++)
            var[len++] = (char)(*c >= 'a' && *c <= 'z' ? *c - 'a' + 'A' : *c);
        var[len] = '\0';
        const char *v = getenv(var);
        if (!v) continue;
        char inner[192];
        if (knobs_set(k, *n, v, inner, sizeof inner) < 0) {
            snprintf(err, errlen, "%s (%s)", var, inner);
            return -1;
        }
    }
    return 0;
}
