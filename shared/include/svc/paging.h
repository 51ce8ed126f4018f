/* Paging and the query parameters of every list: one parser, one set of limits and messages, one
 * cursor format, one page shape and one error envelope, for every service.
 *
 * Every list pages by key (keyset paging, as Stripe's starting_after and GitHub's Link cursors):
 * a page holds `limit` rows (default 20, at most 100, unless the list declares its own default and
 * maximum, as the event lists do: 50 and 500) in the list's order (newest first unless the list
 * says otherwise) and, when more rows follow, an opaque `next_cursor` naming the last
 * row shown; sent back as `cursor`, it asks for the rows after that row. A position is a row's
 * unique key, never an offset, so rows inserted meanwhile neither shift a page (no row twice)
 * nor push older rows out of reach (no row missed), and a page costs one index range scan of
 * limit + 1 rows however deep it is: the extra row only says whether more follow (`has_more`).
 * The total is counted only when asked for (`include_total=true`); counting every matching row
 * on every page is what made deep lists slow.
 *
 * Lists that took `page` before cursors existed (marked legacy_page) still take it, deprecated:
 * an offset page answered as before (`page`, `limit`, `total`) plus `has_more` and
 * `next_cursor: null`. `page` together with `cursor` is refused; a list without legacy_page
 * refuses `page` too (it never had it, so no client relies on it).
 *
 * The page, as JSON text (svc_page_render):
 *   {"data":[…],"next_cursor":"…"|null,"has_more":bool,"limit":n[,"page":n][,"total":n]}
 *
 * The cursor is base64url (no padding) of: version (1), the list's kind letter, the time of the
 * row (µs since the Unix epoch, big-endian int64; 0 in lists keyed by id alone), the row's id
 * (16 UUID bytes, a big-endian integer of at most 18 decimal digits, or a length byte and 1-128
 * bytes of text for lists keyed by a foreign system's id) and 4 check bytes (the start of SHA-256
 * over the bytes before them). Decoding is strict — exact length, the canonical base64url text,
 * version, kind, check and value ranges — and any failure is the same validation error on
 * `cursor`, whatever was wrong. The check catches a cursor that was cut, mangled or taken from
 * another list; it is not a signature: a crafted cursor can only name a position in a list the
 * caller may read anyway (filters and permissions are applied on every page), so no secret is
 * involved. Kind letters in use (keep them distinct): U users, T transactions, R sync runs,
 * E a sync run's errors, J job runs, V ingested events, D their dead letters, N tenants,
 * C a tenant's ERP customers, P its ERP products.
 *
 * Integers in the query are digits only: no sign, space or '+' (`page=+2` is as wrong as
 * `page=abc`), and no value outside the parameter's range (so no overflow). A bad parameter is
 * one entry in a "fields" object ({name: reason}, the first reason per name kept) that the
 * caller turns into the 400 validation_failed envelope with svc_query_invalid, so every service
 * says the same thing about the same mistake.
 *
 * Pure functions, safe from any thread; no I/O, no global state. Ownership: parameter strings
 * are borrowed for the call only (the parsed structs copy what they keep); `fields` is the
 * caller's; svc_query_invalid takes it; rendered texts are new (free()). */
#ifndef SVC_PAGING_H
#define SVC_PAGING_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "svc/status.h"

#define SVC_PAGE_LIMIT_DEFAULT 20
#define SVC_PAGE_LIMIT_MAX 100
#define SVC_PAGE_LIMIT_CAP 1000         /* the largest maximum a list may declare */
#define SVC_PAGE_MAX 1000000            /* deprecated page=: offsets up to 10^8 rows */

/* The reasons given in details.fields, the same in every service. */
#define SVC_PAGE_LIMIT_REASON "must be an integer from 1 to 100"
#define SVC_PAGE_PAGE_REASON "must be an integer from 1 to 1000000"
#define SVC_PAGE_CURSOR_REASON "must be a next_cursor returned by this list"
#define SVC_PAGE_CURSOR_AND_PAGE_REASON "cannot be combined with page"
#define SVC_PAGE_NO_PAGE_REASON "not supported by this list; use cursor"
#define SVC_QUERY_BOOL_REASON "must be true or false"
/* The envelope's message for a bad query parameter. */
#define SVC_QUERY_INVALID_MESSAGE "some query parameters are invalid"

/* What a list's key is made of. */
enum svc_cursor_id {
    SVC_CURSOR_UUID,
    SVC_CURSOR_INT,
    SVC_CURSOR_TEXT   /* 1..SVC_CURSOR_ID_MAX bytes without NUL or control characters */
};

/* A list, as its owner declares it once (a static const). */
struct svc_list {
    char kind;                  /* its letter in cursors (see above) */
    bool timed;                 /* the key is (time, id); otherwise id alone */
    enum svc_cursor_id id;      /* a UUID, or a non-negative integer (identity, stream position) */
    bool legacy_page;           /* takes the deprecated page= */
    int limit_default;          /* 0: SVC_PAGE_LIMIT_DEFAULT */
    int limit_max;              /* 0: SVC_PAGE_LIMIT_MAX; at most SVC_PAGE_LIMIT_CAP. The reason for a
                                 * bad limit then names this maximum */
};

#define SVC_CURSOR_ID_MAX 128   /* a text id; a UUID's text is 36, an integer id at most 18 digits */
#define SVC_CURSOR_TEXT_MAX 192 /* an encoded cursor, without the NUL (40 characters for UUID lists) */
#define SVC_CURSOR_TIME_MAX 253402300799999999LL /* 9999-12-31T23:59:59.999999Z in µs */

/* A position in a list: the key of the row after which the next page starts. */
struct svc_cursor {
    int64_t time_us;                   /* 0 in a list that is not timed */
    char id[SVC_CURSOR_ID_MAX + 1];    /* lower-case UUID text, decimal digits, or the text id */
};

/* A parsed page request. */
struct svc_page {
    int limit;
    bool include_total;         /* always true in page mode */
    long page;                  /* > 0: deprecated page mode, offset (page - 1) * limit; 0: keyset */
    bool after;                 /* a cursor was given: start after `at` */
    struct svc_cursor at;
};

/* The query parameters, as given (NULL = absent). */
struct svc_page_params {
    const char *limit, *cursor, *page, *include_total;
};
/* The four parameters of a request (http.h's svc_query), for a route handler. */
#define SVC_PAGE_PARAMS(r)                                                                         \
    ((struct svc_page_params){svc_query((r), "limit"), svc_query((r), "cursor"), svc_query((r), "page"), \
                              svc_query((r), "include_total")})

/* Parses p for list l into out (always filled, with defaults where a parameter is bad). Returns
 * false after adding a reason per bad parameter to fields. */
bool svc_page_parse(const struct svc_list *l, const struct svc_page_params *p, struct svc_page *out,
                    json_t *fields);

/* A page request as SQL parameters (text, for PQexecParams). Holds pointers into itself: fill
 * it where it is used, never copy it. */
struct svc_page_sql {
    const char *fetch;          /* limit + 1 */
    const char *offset;         /* "0" unless page mode */
    const char *time;           /* NULL, or the cursor's time as a timestamptz literal (UTC) */
    const char *id;             /* NULL, or the cursor's id */
    const char *total;          /* "t" when the total is to be counted, else "f" */
    char fetch_buf[16], offset_buf[24], time_buf[40];
};
void svc_page_sql(const struct svc_page *p, struct svc_page_sql *out);

/* Encodes / decodes a cursor of list l. Encode returns false when c is out of range for l (a
 * time outside 0..SVC_CURSOR_TIME_MAX, or a time in a list that is not timed; an id that is not
 * a UUID, not a non-negative int64, or text that is empty, too long or holds a control character). Decode is the strict check above. */
bool svc_cursor_encode(const struct svc_list *l, const struct svc_cursor *c, char out[SVC_CURSOR_TEXT_MAX + 1]);
bool svc_cursor_decode(const struct svc_list *l, const char *text, struct svc_cursor *out);

/* The page as JSON text from the rows read for it (in the list's order, at most limit + 1;
 * rows[i] are JSON texts, borrowed). last is the key of rows[limit - 1], the last row shown; it
 * is read only when nrows > limit (has_more). total < 0: not counted (left out of the page).
 * Returns new text, or NULL when out of memory or last is out of range (a bug in the caller). */
char *svc_page_render(const struct svc_list *l, const struct svc_page *p, const char *const *rows, int nrows,
                      const struct svc_cursor *last, long long total);

/* The same from a query result whose columns are, in this order: the row's JSON, its key's time
 * in µs (bigint text; NULL in a list that is not timed), its key's id, and the total (bigint
 * text, or NULL when not counted). A row whose JSON is NULL is skipped: a statement that must
 * return its total even for an empty page returns one such row. Sets *json_out (new text);
 * SVC_INTERNAL when the result is not shaped so or memory ran out. */
svc_status svc_page_render_pg(const struct svc_list *l, const struct svc_page *p, const PGresult *res,
                              char **json_out);

/* Query parameters other than paging, with the same rules and messages. Each returns true and
 * sets *out (def when s is NULL), or adds its reason for name to fields and returns false. */
/* Digits only, value in [min, max]; reason "must be an integer from MIN to MAX". */
bool svc_query_long(json_t *fields, const char *name, const char *s, long def, long min, long max, long *out);
/* "true" or "false". */
bool svc_query_bool(json_t *fields, const char *name, const char *s, bool def, bool *out);
/* Adds why for name unless name already has a reason. */
void svc_query_reason(json_t *fields, const char *name, const char *why);

/* 400 validation_failed, SVC_QUERY_INVALID_MESSAGE, details {"fields": fields}; takes fields. */
struct svc_result svc_query_invalid(json_t *fields);

#endif
