/* Validation of one legacy user record and its encoding for customers-service's bulk upsert.
 *
 * The rules are exactly the legacy API's (tools/legacy-api/README.md, "Records"): a JSON object
 * with the seven fields id, userName, email, name, createdAt, updatedAt, deleted and no other;
 * id a JSON integer >= 1 (no coercion); userName matching ^[A-Za-z0-9._-]{3,64}$; email matching
 * ^[^@\s]+@[^@\s]+\.[^@\s]+$ (\s as Python's str.isspace); name a non-empty string;
 * createdAt/updatedAt "YYYY-MM-DDTHH:MM:SSZ" naming a real UTC instant; deleted a JSON boolean.
 * One deliberate addition: a string containing U+0000 is refused (PostgreSQL text cannot hold it
 * and the receiving JSON parser rejects it), reported as that field's invalid value.
 *
 * The element is parsed by a strict single-pass JSON reader written for this shape (RFC 8259
 * grammar, UTF-8 checked, \u escapes with surrogate pairs checked, nesting limited) instead of a
 * general DOM parser: at 10^5-10^6 records/s an allocation per value would cost more than the
 * whole rest of the import. Strings that need no unescaping (nearly all) are checked in place.
 *
 * The reason for an invalid record is a short stable text "<kind>" or "<kind>: <field>", the kinds
 * being those of the legacy API's corrupt_by_kind summary (missing_field, wrong_type,
 * invalid_email, invalid_user_name, invalid_timestamp, broken_json) plus unknown_field,
 * duplicate_field, not_an_object, invalid_id, invalid_name and too_large. It never contains
 * record content (no PII).
 *
 * Encoding: a valid record is appended to a bulk-upsert body as one line of the TSV form
 * (customers-service bulk_upsert.h): user_name, email, name, legacy_id, deleted (t/f), updated_at,
 * separated by TABs, strings in COPY text escapes. String tokens without a JSON escape (nearly
 * all) are copied byte for byte; they were verified to be UTF-8 without control characters.
 *
 * Ownership: struct sync_record points into the element text given to sync_record_parse and
 * is valid as long as that text is. Thread-safe (no state). */
#ifndef SYNC_RECORD_H
#define SYNC_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "svc/buf.h"

/* A JSON string token as it appears in the element: the bytes between the quotes, still
 * escaped. */
struct sync_record_token {
    const char *p;
    size_t len;
};

struct sync_record {
    int64_t id;
    struct sync_record_token user_name, email, name, created_at, updated_at;
    bool deleted;
};

/* Returns NULL when the element text is a valid record (and fills *out), else the reason
 * (a static string). */
const char *sync_record_parse(const char *text, size_t len, struct sync_record *out);

/* Appends the bulk-upsert TSV line (with its LF) of a valid record. Check b->oom once afterwards. */
void sync_record_append_tsv(struct svc_buf *b, const struct sync_record *r);

/* The rules on their own (exposed for tests); s is unescaped text of n bytes. */
bool sync_record_user_name_ok(const char *s, size_t n);
bool sync_record_email_ok(const char *s, size_t n);
bool sync_record_timestamp_ok(const char *s, size_t n);

#endif
