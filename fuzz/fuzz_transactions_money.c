/* Money amounts (transactions-service/src/money.c): the "amount" string of POST
 * /api/transactions and the canonical text that crosses into PostgreSQL.
 *
 * Input: the amount text (up to the first NUL); the first 8 bytes also serve as an int64 for
 * money_format.
 * Properties: money_parse accepts exactly ^[0-9]{1,13}(\.[0-9]{1,2})?$ (a matcher written here);
 * an accepted amount formats to its canonical text (leading zeros dropped, two decimals) and that
 * text parses back to the same cents; money_parse_amount keeps 0 < cents <= max; money_format of
 * any int64 (INT64_MIN too) is -?[0-9]+\.[0-9]{2} in MONEY_STR_MAX bytes and round-trips within
 * the 13-digit range; money_currency_ok accepts exactly the eight codes. */
#include "fuzz.h"

#include "money.h"

static bool amount_form(const char *s) {
    size_t i = 0;
    while (s[i] >= '0' && s[i] <= '9') i++;
    if (i < 1 || i > MONEY_MAX_DIGITS) return false;
    if (s[i] == '\0') return true;
    if (s[i] != '.') return false;
    size_t f = 0;
    i++;
    while (s[i + f] >= '0' && s[i + f] <= '9') f++;
    return f >= 1 && f <= 2 && s[i + f] == '\0';
}

/* "007.5" -> "7.50" */
static void canonical(const char *s, char *out) {
    while (s[0] == '0' && s[1] >= '0' && s[1] <= '9') s++;
    const char *dot = strchr(s, '.');
    size_t ilen = dot ? (size_t)(dot - s) : strlen(s);
    memcpy(out, s, ilen);
    out[ilen] = '.';
    out[ilen + 1] = dot && dot[1] ? dot[1] : '0';
    out[ilen + 2] = dot && dot[1] && dot[2] ? dot[2] : '0';
    out[ilen + 3] = '\0';
}

static bool formatted_form(const char *s) {
    size_t i = s[0] == '-' ? 1 : 0, d = 0;
    while (s[i + d] >= '0' && s[i + d] <= '9') d++;
    if (d < 1) return false;
    i += d;
    return s[i] == '.' && s[i + 1] >= '0' && s[i + 1] <= '9' && s[i + 2] >= '0' && s[i + 2] <= '9' && s[i + 3] == '\0';
}

static void check_format(int64_t cents) {
    char out[MONEY_STR_MAX + 8];
    memset(out, 'x', sizeof out);
    FUZZ_CHECK(money_format(cents, out) == out, "money_format does not return out");
    size_t n = strnlen(out, sizeof out);
    FUZZ_CHECK(n < MONEY_STR_MAX, "money_format(%lld) wrote %zu bytes", (long long)cents, n);
    FUZZ_CHECK(formatted_form(out), "money_format(%lld) = \"%s\"", (long long)cents, out);
    FUZZ_CHECK((cents < 0) == (out[0] == '-'), "money_format(%lld) = \"%s\": sign", (long long)cents, out);
    if (cents > -INT64_C(1000000000000000) && cents < INT64_C(1000000000000000)) { /* 13 digits + 2 */
        int64_t back = -1;
        const char *why = money_parse(out[0] == '-' ? out + 1 : out, &back);
        FUZZ_CHECK(!why && back == (cents < 0 ? -cents : cents),
                   "money_format(%lld) = \"%s\" parses back as %lld (%s)", (long long)cents, out, (long long)back,
                   why ? why : "ok");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *s = fuzz_strndup(data, size);

    int64_t cents = -1;
    const char *why = money_parse(s, &cents);
    bool form = amount_form(s);
    FUZZ_CHECK((why == NULL) == form, "money_parse(\"%.60s\") %s, the form says %s", s, why ? why : "accepted",
               form ? "valid" : "invalid");
    if (!why) {
        FUZZ_CHECK(cents >= 0 && cents < INT64_C(1000000000000000), "money_parse(\"%s\") = %lld", s,
                   (long long)cents);
        char out[MONEY_STR_MAX], want[MONEY_STR_MAX + 8];
        money_format(cents, out);
        canonical(s, want);
        FUZZ_CHECK(strcmp(out, want) == 0, "\"%s\" -> %lld cents -> \"%s\", canonical form \"%s\"", s,
                   (long long)cents, out, want);
        int64_t again = -1;
        FUZZ_CHECK(money_parse(out, &again) == NULL && again == cents, "\"%s\" does not parse back to %lld", out,
                   (long long)cents);
    }

    int64_t max = size > 0 ? (int64_t)data[0] * 1000 : MONEY_DEFAULT_MAX_CENTS;
    int64_t amt = -7;
    const char *awhy = money_parse_amount(s, max, &amt);
    if (!awhy) {
        FUZZ_CHECK(!why && amt == cents && amt > 0 && amt <= max, "money_parse_amount(\"%s\", %lld) = %lld", s,
                   (long long)max, (long long)amt);
    } else {
        FUZZ_CHECK(amt == -7, "money_parse_amount wrote its output on failure");
        FUZZ_CHECK(why || cents <= 0 || cents > max, "money_parse_amount(\"%s\") refused a valid amount: %s", s, awhy);
    }

    int64_t raw = 0;
    memcpy(&raw, data, size < sizeof raw ? size : sizeof raw);
    check_format(raw);
    check_format(INT64_MIN);
    check_format(INT64_MAX);
    if (!why) check_format(-cents);

    static const char *const codes[] = {"BRL", "USD", "EUR", "GBP", "ARS", "CLP", "MXN", "CAD"};
    bool known = false;
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) known |= strcmp(s, codes[i]) == 0;
    FUZZ_CHECK(money_currency_ok(s) == known, "money_currency_ok(\"%.20s\") = %d", s, !known);

    free(s);
    return 0;
}
