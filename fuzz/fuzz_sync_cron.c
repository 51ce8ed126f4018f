/* SYNC_CRON expressions (sync-service/src/sync_cron.c): parsed at start, then evaluated by the
 * scheduler for the next firing minute.
 *
 * Input: the expression (up to the first NUL); the 8 bytes after that NUL, when present, pick one
 * more starting instant.
 * Properties: a refused expression has a reason; an accepted one only sets bits inside each
 * field's range; sync_cron_next(after) is a whole minute strictly after `after`, within five
 * years, that matches every field (checked here with gmtime and the day-of-month / day-of-week
 * rule of Vixie cron), no matching minute lies between `after` and it (checked over the first
 * two days), and asking again from any earlier instant in between gives the same minute. */
#include "fuzz.h"

#include <time.h>

#include "sync_cron.h"

#define FIVE_YEARS (5LL * 366 * 86400)

static bool matches(const struct sync_cron *c, int64_t t) {
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm)) return false;
    if (!((c->minutes >> tm.tm_min) & 1u) || !((c->hours >> tm.tm_hour) & 1u)) return false;
    if (!((c->months >> (tm.tm_mon + 1)) & 1u)) return false;
    bool md = (c->mdays >> tm.tm_mday) & 1u, wd = (c->wdays >> tm.tm_wday) & 1u;
    return (c->mday_star || c->wday_star) ? (md && wd) : (md || wd);
}

static void check_next(const char *expr, const struct sync_cron *c, int64_t after) {
    int64_t next = sync_cron_next(c, after);
    if (c->off) {
        FUZZ_CHECK(next == -1, "\"%s\" is off but fires at %lld", expr, (long long)next);
        return;
    }
    int64_t first = (after / 60 + 1) * 60;
    /* no match in the first day means next must not be in them either */
    int64_t scan_end = next == -1 ? first + 86400 : next;
    if (scan_end > first + 86400) scan_end = first + 86400;
    for (int64_t t = first; t < scan_end; t += 60)
        FUZZ_CHECK(!matches(c, t), "\"%s\" after %lld: %lld matches but next is %lld", expr, (long long)after,
                   (long long)t, (long long)next);
    if (next == -1) return;
    FUZZ_CHECK(next > after && next % 60 == 0 && next <= after + FIVE_YEARS, "\"%s\" after %lld: next %lld", expr,
               (long long)after, (long long)next);
    FUZZ_CHECK(matches(c, next), "\"%s\" after %lld: next %lld does not match", expr, (long long)after,
               (long long)next);
    int64_t mid = after + (next - after) / 2;
    FUZZ_CHECK(sync_cron_next(c, mid) == next, "\"%s\": next after %lld is %lld, after %lld it is %lld", expr,
               (long long)after, (long long)next, (long long)mid, (long long)sync_cron_next(c, mid));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *expr = fuzz_strndup(data, size);
    size_t n = strlen(expr);

    struct sync_cron c;
    memset(&c, 0xA5, sizeof c);
    const char *why = (const char *)1;
    int rc = sync_cron_parse(expr, &c, &why);
    if (rc != 0) {
        FUZZ_CHECK(rc == -1 && why && *why, "\"%s\" refused without a reason (rc %d)", expr, rc);
        free(expr);
        return 0;
    }
    FUZZ_CHECK(why == NULL, "\"%s\" accepted with a reason", expr);
    if (!c.off) {
        FUZZ_CHECK(c.minutes && c.minutes >> 60 == 0, "\"%s\": minutes %llx", expr, (unsigned long long)c.minutes);
        FUZZ_CHECK(c.hours && c.hours >> 24 == 0, "\"%s\": hours %x", expr, c.hours);
        FUZZ_CHECK(c.mdays && (c.mdays & 1u) == 0, "\"%s\": days %x", expr, c.mdays);
        FUZZ_CHECK(c.months && (c.months & 1u) == 0 && c.months >> 13 == 0, "\"%s\": months %x", expr, c.months);
        FUZZ_CHECK(c.wdays && c.wdays >> 7 == 0, "\"%s\": weekdays %x", expr, c.wdays);
    }

    check_next(expr, &c, 1700000000);       /* 2023-11-14T22:13:20Z */
    check_next(expr, &c, 951782399);        /* 2000-02-28T23:59:59Z: leap day next */
    if (size >= n + 1 + 8) {
        uint64_t raw;
        memcpy(&raw, data + n + 1, 8);
        check_next(expr, &c, (int64_t)(raw % 4102444800u));  /* 1970 .. 2100 */
    }
    free(expr);
    return 0;
}
