/* Money on the C side: exact decimal strings <-> int64 cents, and the currency allow-list.
 *
 * No binary floating point anywhere: "123.45" is parsed digit by digit into 12345 cents and
 * rendered back with exactly two decimals. The accepted form is the API's:
 * ^[0-9]{1,13}(\.[0-9]{1,2})?$ (no sign, no exponent, no blanks); 13 integer digits fit in an
 * int64 number of cents with room to spare (10^15 < 2^63). The database stores NUMERIC(20,2);
 * amounts cross the boundary as the canonical text that money_format writes.
 *
 * Pure functions, no state: safe from any thread. */
#ifndef TX_MONEY_H
#define TX_MONEY_H

#include <stdbool.h>
#include <stdint.h>

#define MONEY_MAX_DIGITS 13
/* Longest money_format output: sign, 17 digits, '.', 2 decimals, NUL. */
#define MONEY_STR_MAX 24
/* The default upper bound of one transaction: 1,000,000,000.00. */
#define MONEY_DEFAULT_MAX_CENTS INT64_C(100000000000)

/* Parses s into cents. Returns NULL on success, else a static reason for the client
 * ("must be a decimal string with at most 2 decimal places", ...). Does not check bounds. */
const char *money_parse(const char *s, int64_t *cents_out);

/* Parses and checks 0 < amount <= max_cents. Returns NULL or a static reason. */
const char *money_parse_amount(const char *s, int64_t max_cents, int64_t *cents_out);

/* Writes cents as "-?D+.DD" into out (MONEY_STR_MAX bytes); handles INT64_MIN. Returns out. */
char *money_format(int64_t cents, char out[MONEY_STR_MAX]);

/* true when code is one of the accepted ISO 4217 codes (BRL USD EUR GBP ARS CLP MXN CAD). */
bool money_currency_ok(const char *code);

#define MONEY_DEFAULT_CURRENCY "BRL"

#endif
