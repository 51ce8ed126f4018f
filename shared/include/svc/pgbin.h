/* Values of a libpq result fetched in binary format (PQexecPrepared/PQexecParams with
 * resultFormat = 1), as text or C numbers.
 *
 * Why: PostgreSQL's text output functions (uuid_out, timestamptz_out with its time-zone
 * conversion, numeric_out, and more so to_char and JSON built in SQL) are a large share of what a
 * read of many rows costs it (figures: bench/README.md, "the transactions list"); binary output
 * hands over the stored bytes, which this module turns into what the API shows. It also needs
 * no session setting: a binary timestamptz is UTC microseconds whatever TimeZone or DateStyle
 * the session has. Tested against PostgreSQL's own text in tests/unit/test_transactions_list.c.
 *
 * Formats (PostgreSQL's send functions, stable since integer datetimes became the only kind in
 * 10): uuid 16 bytes; int8 8 bytes big-endian; timestamptz int8 µs since 2000-01-01 UTC;
 * numeric int16 ndigits, int16 weight, uint16 sign, int16 dscale, then ndigits base-10000 int16
 * digits, most significant first; text the bytes themselves.
 *
 * Each function returns false for a NULL value, a value of the wrong length or shape, or a
 * numeric that is NaN or infinite; out is then left empty / unchanged. Pure functions on a
 * borrowed result; safe from any thread. */
#ifndef SVC_PGBIN_H
#define SVC_PGBIN_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "svc/cid.h"

/* Lower-case 8-4-4-4-12 text into out (37 bytes). */
bool svc_pgbin_uuid(const PGresult *r, int row, int col, char out[SVC_UUID_LEN + 1]);
bool svc_pgbin_int8(const PGresult *r, int row, int col, int64_t *out);
/* Microseconds since the Unix epoch (UTC). */
bool svc_pgbin_timestamptz(const PGresult *r, int row, int col, int64_t *unix_us);
/* The text numeric_out writes (e.g. "-12.50", "0.00"), NUL-terminated, into out (n bytes);
 * false also when it does not fit. */
bool svc_pgbin_numeric(const PGresult *r, int row, int col, char *out, size_t n);

#endif
