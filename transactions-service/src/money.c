/* Exact money parsing and formatting; see money.h.
 *
 * The parser is a hand-written scanner rather than a regex so that it runs without allocation on
 * every POST and reports precise reasons. Overflow cannot happen: at most 13 integer digits and
 * 2 decimals are accumulated (< 10^15). */
#include "money.h"

#include <string.h>

static const char *const currencies[] = {"BRL", "USD", "EUR", "GBP", "ARS", "CLP", "MXN", "CAD"};

const char *money_parse(const char *s, int64_t *cents_out) {
    static const char *const bad = "must be a decimal string like \"10.50\" (at most 13 digits and 2 decimal places)";
    if (!s || !*s) return bad;
    int64_t v = 0;
    int ndig = 0;
    const char *p = s;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (++ndig > MONEY_MAX_DIGITS) return bad;
        v = v * 10 + (*p - '0');
    }
    if (ndig == 0) return bad;
    int64_t frac = 0;
    if (*p == '.') {
        p++;
        int nfrac = 0;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (++nfrac > 2) return bad;
            frac = frac * 10 + (*p - '0');
        }
        if (nfrac == 0) return bad;
        if (nfrac == 1) frac *= 10;
    }
    if (*p != '\0') return bad;
    *cents_out = v * 100 + frac;
    return NULL;
}

const char *money_parse_amount(const char *s, int64_t max_cents, int64_t *cents_out) {
    int64_t c = 0;
    const char *why = money_parse(s, &c);
    if (why) return why;
    if (c <= 0) return "must be greater than 0";
    if (c > max_cents) return "exceeds the maximum amount of one transaction";
    *cents_out = c;
    return NULL;
}

char *money_format(int64_t cents, char out[MONEY_STR_MAX]) {
    /* Work on the magnitude as unsigned so INT64_MIN does not overflow. */
    uint64_t m = cents < 0 ? (uint64_t)0 - (uint64_t)cents : (uint64_t)cents;
    char tmp[MONEY_STR_MAX];
    int n = 0;
    unsigned frac = (unsigned)(m % 100);
    m /= 100;
    tmp[n++] = (char)('0' + frac % 10);
    tmp[n++] = (char)('0' + frac / 10);
    tmp[n++] = '.';
    do {
        tmp[n++] = (char)('0' + m % 10);
        m /= 10;
    } while (m);
    if (cents < 0) tmp[n++] = '-';
    for (int i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return out;
}

bool money_currency_ok(const char *code) {
    if (!code || strlen(code) != 3) return false;
    for (size_t i = 0; i < sizeof currencies / sizeof currencies[0]; i++)
        if (!memcmp(code, currencies[i], 3)) return true;
    return false;
}
