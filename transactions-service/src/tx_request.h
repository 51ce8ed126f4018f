/* Validation of transactions-service requests: the POST body and the query parameters of the
 * list and summary endpoints. No HTTP, no I/O: pure functions the use cases call and the unit
 * tests drive directly.
 *
 * Every parser collects ALL problems into a "fields" object ({name: reason}) so a client fixes
 * them at once; the caller wraps it into a 400 validation_failed envelope.
 *
 * Dates (from/to): "YYYY-MM-DD" (a UTC calendar day; `to` includes the whole day) or an RFC 3339
 * timestamp "YYYY-MM-DDTHH:MM:SS[.ffffff](Z|±HH:MM)" (`to` inclusive). Both are checked for
 * calendar validity here so the database never sees a malformed value.
 *
 * Ownership: strings in the parsed structs are either copied into fixed arrays or borrowed from
 * the json_t / query map given (valid while those are). *fields_out is a new reference. */
#ifndef TX_REQUEST_H
#define TX_REQUEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "money.h"
#include "svc/cid.h"
#include "svc/paging.h"

#define TX_DESCRIPTION_MAX 500
#define TX_INSTANT_MAX 40

enum tx_type { TX_DEPOSIT = 0, TX_WITHDRAWAL, TX_TRANSFER, TX_REVERSAL };

const char *tx_type_name(enum tx_type t);

struct tx_create_req {
    enum tx_type type;
    int64_t amount_cents;
    char amount[MONEY_STR_MAX];            /* canonical "123.45" */
    char currency[4];
    const char *description;               /* borrowed from the body; NULL when absent/null */
    char to_user_id[SVC_UUID_LEN + 1];     /* lower-case; "" unless a transfer */
};

/* Validates body against caller_id (a lower-case UUID). Returns true and fills out, or false
 * with *fields_out set to a new object of reasons. */
bool tx_parse_create(const json_t *body, const char *caller_id, int64_t max_cents,
                     struct tx_create_req *out, json_t **fields_out);

/* A parsed time bound. */
struct tx_instant {
    bool set;
    bool date_only;                        /* "YYYY-MM-DD" */
    char text[TX_INSTANT_MAX];             /* timestamptz literal for SQL ("...T00:00:00Z" for dates) */
    const char *raw;                       /* as given (borrowed), echoed back by summary */
};

/* NULL on success (also when s is NULL: not set), else a static reason. */
const char *tx_parse_instant(const char *s, struct tx_instant *out);

/* GET /api/transactions: newest first by (created_at, id); takes the deprecated page=. */
extern const struct svc_list tx_list_kind;

struct tx_list_query {
    struct svc_page page;
    const char *type;                      /* NULL = any; else a valid type name (static string) */
    const char *status;                    /* NULL = any; else a valid status name (static string) */
    struct tx_instant from, to;
    const char *user_id;                   /* NULL = caller; borrowed */
};

/* All arguments may be NULL (absent); paging is parsed by svc_page_parse (svc/paging.h). */
bool tx_parse_list_query(const struct svc_page_params *paging, const char *type, const char *status,
                         const char *from, const char *to, const char *user_id,
                         struct tx_list_query *out, json_t **fields_out);

enum tx_group_by { TX_GROUP_DAY = 0, TX_GROUP_MONTH, TX_GROUP_TYPE };

const char *tx_group_by_name(enum tx_group_by g);

struct tx_summary_query {
    enum tx_group_by group_by;             /* default day */
    struct tx_instant from, to;
    const char *user_id;                   /* NULL = caller; borrowed */
    char currency[4];                      /* totals are per currency [BRL] */
};

bool tx_parse_summary_query(const char *group_by, const char *from, const char *to, const char *user_id,
                            const char *currency, struct tx_summary_query *out, json_t **fields_out);

/* Copies a UUID lower-cased into out; false when s is not a UUID. */
bool tx_uuid_lower(const char *s, char out[SVC_UUID_LEN + 1]);

#endif
