/* A posted transaction's body in C; see tx_json.h. */
#include "tx_json.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

bool tx_json_epoch_us(const char *s, int64_t *us_out) {
    if (!s) return false;
    bool neg = *s == '-';
    if (neg) s++;
    if (*s < '0' || *s > '9') return false;
    int64_t secs = 0;
    int n = 0;
    for (; *s >= '0' && *s <= '9'; s++)
        if (++n > 12) return false;   /* beyond year 33000: not a timestamp we write */
        else secs = secs * 10 + (*s - '0');
    int64_t frac = 0, scale = 100000;
    if (*s == '.') {
        s++;
        if (*s < '0' || *s > '9') return false;
        for (; *s >= '0' && *s <= '9'; s++, scale /= 10)
            if (scale > 0) frac += (*s - '0') * scale;
    }
    if (*s) return false;
    int64_t us = secs * 1000000 + frac;
    *us_out = neg ? -us : us;
    return true;
}

void tx_json_append_string(struct svc_buf *b, const char *s) {
    svc_buf_append(b, "\"", 1);
    const char *run = s;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c != '"' && c != '\\') continue;   /* the common case: copied as one run */
        const char *esc;
        char u[8];
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default:
            snprintf(u, sizeof u, "\\u%04x", c);
            esc = u;
        }
        svc_buf_append(b, run, (size_t)(s - run));
        svc_buf_puts(b, esc);
        run = s + 1;
    }
    svc_buf_append(b, run, (size_t)(s - run));
    svc_buf_append(b, "\"", 1);
}

/* One member: lead is the literal text before the value (", \"key\" : "); the value escaped, or
 * null. A list page renders 20 rows of 12 members, so the keys are not escaped again each time. */
#define MEMBER(b, lead, value) member((b), lead, sizeof lead - 1, (value))
static void member(struct svc_buf *b, const char *lead, size_t lead_len, const char *value) {
    svc_buf_append(b, lead, lead_len);
    if (value) tx_json_append_string(b, value);
    else svc_buf_append(b, "null", 4);
}

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" (milliseconds truncated, as to_char's MS) into ts (32 bytes). */
static bool iso_ms(int64_t unix_us, char ts[32]) {
    int64_t secs = unix_us / 1000000, us = unix_us % 1000000;
    if (us < 0) {
        us += 1000000;
        secs -= 1;
    }
    time_t t = (time_t)secs;
    struct tm tm;
    if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999) return false;
    /* digits written by hand: snprintf was a visible share of rendering a page of 20 rows */
    unsigned f[7] = {(unsigned)(tm.tm_year + 1900), (unsigned)tm.tm_mon + 1, (unsigned)tm.tm_mday,
                     (unsigned)tm.tm_hour, (unsigned)tm.tm_min, (unsigned)tm.tm_sec, (unsigned)(us / 1000)};
    static const int width[7] = {4, 2, 2, 2, 2, 2, 3};
    static const char after[7] = {'-', '-', 'T', ':', ':', '.', 'Z'};
    char *o = ts;
    for (int i = 0; i < 7; i++) {
        for (int k = width[i] - 1; k >= 0; k--, f[i] /= 10) o[k] = (char)('0' + f[i] % 10);
        o += width[i];
        *o++ = after[i];
    }
    *o = '\0';
    return true;
}

bool tx_json_append(struct svc_buf *b, const struct tx_json_row *row) {
    char created[32], updated[32];
    if (!iso_ms(row->created_us, created) || !iso_ms(row->updated_us, updated)) return false;
    svc_buf_reserve(b, 448 + (row->description ? 6 * strlen(row->description) : 0));
    MEMBER(b, "{\"id\" : ", row->id);
    MEMBER(b, ", \"type\" : ", row->type);
    MEMBER(b, ", \"status\" : ", row->status);
    MEMBER(b, ", \"amount\" : ", row->amount);
    MEMBER(b, ", \"currency\" : ", row->currency);
    MEMBER(b, ", \"description\" : ", row->description);
    MEMBER(b, ", \"user_id\" : ", row->user_id);
    MEMBER(b, ", \"to_user_id\" : ", row->to_user_id);
    MEMBER(b, ", \"reverses_id\" : ", row->reverses_id);
    MEMBER(b, ", \"reversed_by\" : ", row->reversed_by);
    MEMBER(b, ", \"created_at\" : ", created);
    MEMBER(b, ", \"updated_at\" : ", updated);
    svc_buf_append(b, "}", 1);
    return true;
}

char *tx_json_created(const struct tx_json_row *row) {
    struct tx_json_row r = *row;
    r.status = "completed";
    r.reverses_id = r.reversed_by = NULL;
    r.updated_us = r.created_us;
    struct svc_buf b;
    svc_buf_init(&b);
    if (!tx_json_append(&b, &r) || b.oom) {
        svc_buf_free(&b);
        return NULL;
    }
    return svc_buf_steal(&b);
}
