/* erp-api: the records a simulated tenant's ERP holds, generated on demand.
 *
 * Nothing is stored: record i of a kind is a pure function of (seed, kind, i, version), and its
 * version is a pure function of (seed, kind, i) and the tenant's list of "advances". An advance
 * (POST /_sim/tenants/{t}/advance) moves updated_at forward for a share of the records, so a
 * second sync can be incremental: record i takes version k (the latest advance k whose hash of
 * (seed, kind, i, k) falls under that advance's share), gets updated_at = T(k) and new content,
 * and is deleted at the source when a second hash falls under the advance's delete share.
 *
 *   version 0:  updated_at = 2024-01-01T00:00:00Z + i seconds (i < 100,000), never deleted
 *   version k:  updated_at = 2025-01-01T00:00:00Z + k days + (i mod 3600) seconds
 *
 * So updated_at never moves backwards, a record keeps its id, and the same seed and the same
 * advances always give byte-identical pages (tests compare them).
 *
 * Pages follow the ERP contract (docs/operations.md, "The ERP contract"): ids are strings,
 * prices decimal strings, pages start at 1, updated_since is inclusive, records in id order.
 *
 * Plain data and pure functions: a struct data_set is copied out of the tenant registry (under its
 * lock) before a page is built, so page building takes no lock. */
#ifndef ERP_DATA_H
#define ERP_DATA_H

#include <stdbool.h>
#include <stdint.h>

#include "svc/buf.h"

#define DATA_MAX_RECORDS 100000u   /* per kind and tenant */
#define DATA_MAX_ADVANCES 64       /* advances kept per tenant */
#define DATA_MAX_PER_PAGE 500
#define DATA_V0_BASE 1704067200LL  /* 2024-01-01T00:00:00Z */
#define DATA_T0 1735689600LL       /* 2025-01-01T00:00:00Z */

enum data_kind { DATA_CUSTOMERS = 0, DATA_PRODUCTS = 1 };

struct data_set {
    uint64_t seed;
    uint32_t count[2];                       /* records per kind */
    int advances;                            /* 0..DATA_MAX_ADVANCES */
    double share[DATA_MAX_ADVANCES + 1];     /* [k] for advance k (1-based) */
    double delete_share[DATA_MAX_ADVANCES + 1];
};

struct data_record_meta {
    int version;
    int64_t updated_at;   /* Unix seconds */
    bool deleted;
};

/* Version, updated_at and deleted flag of record i (< count) of a kind. */
void data_meta(const struct data_set *d, enum data_kind kind, uint32_t i, struct data_record_meta *out);

/* Appends record i as one JSON object (no trailing comma). */
void data_format(const struct data_set *d, enum data_kind kind, uint32_t i, struct svc_buf *out);

/* Appends the whole page body {"data":[…],"page":N,"per_page":M,"has_more":b}. since < 0: no
 * updated_since filter. Returns the number of records on the page. */
int data_page(const struct data_set *d, enum data_kind kind, uint32_t page, uint32_t per_page, int64_t since,
              struct svc_buf *out);

/* Summary over every record of a kind: total, deleted, how many have updated_at >= since (since <
 * 0: all) and the newest updated_at (0 when there is no record). */
struct data_summary { uint32_t total, deleted, matching; int64_t max_updated_at; };
void data_summary(const struct data_set *d, enum data_kind kind, int64_t since, struct data_summary *out);

/* Records an advance: share and delete_share in [0,1]. Returns the new advance number, or -1 when
 * DATA_MAX_ADVANCES is reached. */
int data_advance(struct data_set *d, double share, double delete_share);

/* "2024-01-01T00:00:00Z" form of t (21 bytes with the NUL). */
void data_ts(int64_t t, char out[24]);
/* RFC 3339 date-time ("…Z", "…+02:00", fractional seconds allowed) to Unix seconds. A fraction
 * rounds up: records carry whole seconds, so `updated_at >= result` keeps exactly the records at
 * or after the instant. Returns 0, or -1 when malformed. */
int data_parse_ts(const char *s, int64_t *out);

/* 64-bit mix of the arguments (splitmix64 finaliser chain): the generator's only source of
 * "randomness". Exposed for tests. */
uint64_t data_hash(uint64_t seed, uint64_t a, uint64_t b, uint64_t c);

#endif
