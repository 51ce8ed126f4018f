/* Deterministic legacy-user record generator (no I/O, no HTTP).
 *
 * Every property of record i (its kind, name, timestamps, deleted flag, corruption shape) is a
 * pure function of (knobs, i), computed from counter-based hashing rather than a sequential RNG.
 * Two consequences the rest of the simulator relies on:
 *   - the stream needs no memory that grows with N (record i is formatted from i alone);
 *   - gen_expected() walks the same decisions without formatting anything, so the summary a
 *     test checks an import against is exactly what the stream contains.
 *
 * Record kinds: CORRUPT (probability corrupt_rate), else DUP (probability dup_rate: repeats the
 * userName and id of an earlier valid record, with a newer updatedAt and a changed name and email),
 * else FRESH (a new user). updatedAt strictly increases with i, so a later record of a user is
 * always the newer one. A DUP's target is an earlier non-corrupt record; when a few hashed tries
 * only hit corrupt records the record is FRESH instead. The README documents the validity rules
 * and the exact corrupt shapes.
 *
 * Ownership: all functions write into caller-provided memory; nothing is allocated except the
 * temporary bitmap inside gen_expected(), freed before it returns. Thread-safe (no shared state). */
#ifndef LEGACY_GEN_H
#define LEGACY_GEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GEN_MAX_COUNT 1000000000ULL
/* Upper bound of one formatted record, separators included (names are from bounded tables). */
#define GEN_RECORD_MAX 768

/* The knobs that decide the content of the stream (fault knobs such as fail/drop live in the
 * server: they vary per request and never change which records exist). */
struct gen_knobs {
    uint64_t count;
    uint64_t seed;
    double corrupt_rate;   /* [0,1] */
    double dup_rate;       /* [0,1] */
    double delete_rate;    /* [0,1] */
};

typedef enum { GEN_FRESH = 0, GEN_DUP, GEN_CORRUPT } gen_kind;

typedef enum {
    GEN_CORRUPT_MISSING_FIELD = 0,  /* one required field absent */
    GEN_CORRUPT_WRONG_TYPE,         /* id as string, deleted as "yes", userName as number, ... */
    GEN_CORRUPT_INVALID_EMAIL,      /* email string that is not an address */
    GEN_CORRUPT_INVALID_USERNAME,   /* userName string outside [A-Za-z0-9._-]{3,64} */
    GEN_CORRUPT_INVALID_TIMESTAMP,  /* createdAt/updatedAt string that is not ISO 8601 UTC */
    GEN_CORRUPT_BROKEN_JSON,        /* brace-balanced text that is not JSON */
    GEN_CORRUPT_NKINDS
} gen_corrupt_kind;

/* Everything decided about one record. */
struct gen_record {
    uint64_t index;        /* 0-based position in the stream */
    gen_kind kind;
    gen_corrupt_kind corrupt;  /* meaningful when kind == GEN_CORRUPT */
    unsigned variant;          /* sub-shape of the corruption (which field, which value) */
    uint64_t target;       /* DUP: the earlier record it repeats; otherwise self */
    uint64_t root;         /* index of the FRESH record that introduced this userName (self if FRESH/CORRUPT) */
    unsigned last_name;    /* which last name the record shows: differs from its target's */
    uint64_t id;           /* legacy id = root + 1 */
    bool deleted;
    int64_t created_at;    /* unix seconds (the root's creation time) */
    int64_t updated_at;    /* unix seconds; strictly increasing with index */
};

struct gen_summary {
    uint64_t count;
    uint64_t valid;
    uint64_t corrupt;
    uint64_t distinct_user_names;  /* among valid records */
    uint64_t duplicates;           /* valid records whose userName appeared in an earlier valid record */
    uint64_t deleted_final;        /* distinct userNames whose newest valid record has deleted=true */
    uint64_t corrupt_by_kind[GEN_CORRUPT_NKINDS];
};

/* Fills r with the decisions for record index i (i < k->count is not checked). */
void gen_record_info(const struct gen_knobs *k, uint64_t i, struct gen_record *r);

/* Formats record i as one JSON object (or, for BROKEN_JSON, brace-balanced non-JSON) without a
 * separator or newline. out must hold GEN_RECORD_MAX bytes; returns the number of bytes written
 * (no NUL terminator is counted; one is written when space allows). */
size_t gen_record_format(const struct gen_knobs *k, uint64_t i, char *out);

/* Computes the import outcome of the whole stream without formatting it. Returns 0, or -1 when
 * the temporary bitmap (count/8 bytes) cannot be allocated. */
int gen_expected(const struct gen_knobs *k, struct gen_summary *s);

/* Stable lower-case names of corrupt kinds ("missing_field", ...). */
const char *gen_corrupt_kind_name(gen_corrupt_kind c);

/* Formats unix seconds as "YYYY-MM-DDTHH:MM:SSZ" (20 bytes, no NUL); returns 20. */
size_t gen_format_time(int64_t t, char *out);

#endif
