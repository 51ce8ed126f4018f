/* Simulator knobs: defaults from the environment (LEGACY_*), overridden per request by query
 * parameters of the same short name (count, seed, rate, ...). One table drives both sources so
 * an environment variable and its query parameter always accept exactly the same values.
 * Plain values: no ownership questions; a struct sim_knobs is copied into each request. */
#ifndef LEGACY_KNOBS_H
#define LEGACY_KNOBS_H

#include <stdbool.h>
#include <stddef.h>

#include "gen.h"

struct sim_knobs {
    struct gen_knobs gen;      /* count, seed, corrupt/dup/delete rates: decide the content */
    double rate;               /* records per second, 0 = as fast as the client reads */
    double fail_rate;          /* probability of answering 500/503 instead of streaming */
    double drop_rate;          /* probability of cutting the stream after a random record */
    long first_byte_delay_ms;  /* delay before the response status line */
};

/* Built-in defaults (count 1,000,000, seed 42, every rate 0). */
void knobs_defaults(struct sim_knobs *k);

/* Sets one knob by its short name ("count", "fail_rate", ...). Returns 1 when set, 0 when the
 * name is not a knob, -1 when the value is invalid (err gets "<name>: <reason>"). */
int knobs_set(struct sim_knobs *k, const char *name, const char *value, char *err, size_t errlen);

/* Applies every LEGACY_<NAME> variable present in the environment. Returns 0, or -1 with err set. */
int knobs_from_env(struct sim_knobs *k, char *err, size_t errlen);

/* The short names, NULL-terminated (for iterating query parameters). */
extern const char *const KNOB_NAMES[];

#endif
