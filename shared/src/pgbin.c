/* Binary libpq values as text and numbers; see pgbin.h. */
#include "svc/pgbin.h"

#include <string.h>

/* 2000-01-01T00:00:00Z in µs since the Unix epoch. */
#define PG_EPOCH_UNIX_US 946684800000000LL

#define NUMERIC_POS 0x0000
#define NUMERIC_NEG 0x4000

static const unsigned char *value(const PGresult *r, int row, int col, int len) {
    if (row < 0 || row >= PQntuples(r) || col < 0 || col >= PQnfields(r) || PQgetisnull(r, row, col)) return NULL;
    if (PQfformat(r, col) != 1 || (len >= 0 && PQgetlength(r, row, col) != len)) return NULL;
    return (const unsigned char *)PQgetvalue(r, row, col);
}

static uint64_t be64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | p[i];
    return v;
}

static unsigned be16(const unsigned char *p) { return (unsigned)p[0] << 8 | p[1]; }

bool svc_pgbin_uuid(const PGresult *r, int row, int col, char out[SVC_UUID_LEN + 1]) {
    static const char hex[] = "0123456789abcdef";
    out[0] = '\0';
    const unsigned char *p = value(r, row, col, 16);
    if (!p) return false;
    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) *o++ = '-';
        *o++ = hex[p[i] >> 4];
        *o++ = hex[p[i] & 15];
    }
    *o = '\0';
    return true;
}

bool svc_pgbin_int8(const PGresult *r, int row, int col, int64_t *out) {
    const unsigned char *p = value(r, row, col, 8);
    if (!p) return false;
    *out = (int64_t)be64(p);
    return true;
}

bool svc_pgbin_timestamptz(const PGresult *r, int row, int col, int64_t *unix_us) {
    int64_t pg;
    if (!svc_pgbin_int8(r, row, col, &pg)) return false;
    if (pg == INT64_MAX || pg == INT64_MIN || pg > INT64_MAX - PG_EPOCH_UNIX_US) return false;  /* ±infinity */
    *unix_us = pg + PG_EPOCH_UNIX_US;
    return true;
}

/* Appends c to out at *o while it fits (one byte is kept for the NUL). */
static bool put(char *out, size_t n, size_t *o, char c) {
    if (*o + 1 >= n) return false;
    out[(*o)++] = c;
    return true;
}

bool svc_pgbin_numeric(const PGresult *r, int row, int col, char *out, size_t n) {
    if (n) out[0] = '\0';
    const unsigned char *p = value(r, row, col, -1);
    if (!p || n == 0) return false;
    int len = PQgetlength(r, row, col);
    if (len < 8) return false;
    int ndigits = (int)be16(p);
    int weight = (int16_t)be16(p + 2);
    unsigned sign = be16(p + 4);
    int dscale = (int)be16(p + 6);
    if ((sign != NUMERIC_POS && sign != NUMERIC_NEG) || dscale > 0x3FFF || len != 8 + 2 * ndigits) return false;
    const unsigned char *d = p + 8;
    size_t o = 0;
    if (sign == NUMERIC_NEG && !put(out, n, &o, '-')) return false;
    /* The integer part: base-10000 groups 0..weight, the first without leading zeros. */
    if (weight < 0) {
        if (!put(out, n, &o, '0')) return false;
    } else {
        for (int i = 0; i <= weight; i++) {
            unsigned g = i < ndigits ? be16(d + 2 * i) : 0;
            if (g > 9999) return false;
            char four[4] = {(char)('0' + g / 1000), (char)('0' + g / 100 % 10), (char)('0' + g / 10 % 10),
                            (char)('0' + g % 10)};
            int from = 0;
            if (i == 0)
                while (from < 3 && four[from] == '0') from++;
            for (int k = from; k < 4; k++)
                if (!put(out, n, &o, four[k])) return false;
        }
    }
    /* The fraction: exactly dscale digits, from the groups after weight. */
    if (dscale > 0) {
        if (!put(out, n, &o, '.')) return false;
        int written = 0;
        for (int i = weight + 1; written < dscale; i++) {
            unsigned g = i >= 0 && i < ndigits ? be16(d + 2 * i) : 0;
            if (g > 9999) return false;
            char four[4] = {(char)('0' + g / 1000), (char)('0' + g / 100 % 10), (char)('0' + g / 10 % 10),
                            (char)('0' + g % 10)};
            for (int k = 0; k < 4 && written < dscale; k++, written++)
                if (!put(out, n, &o, four[k])) return false;
        }
    }
    out[o] = '\0';
    return true;
}
