/* SYNC_CRON: when the scheduler triggers a sync run.
 *
 * A standard five-field cron expression "minute hour day-of-month month day-of-week", evaluated
 * in UTC: each field is "*", a number, a range "a-b", a step "*" "/n" or "a-b/n", or a comma list of
 * those; day-of-week 0-7 (0 and 7 are Sunday). As in Vixie cron, when both day fields are
 * restricted a day matches if either does. Also accepted: "off" (never), and the shorthands
 * "@hourly", "@daily", "@weekly", "@monthly", "@every <N>m|h" (minutes dividing the hour or hours
 * dividing the day, e.g. "@every 6h" = "0 0/6 * * *"). The default is every six hours.
 *
 * Ownership: struct sync_cron is plain data (copyable). Thread-safe (pure functions). */
#ifndef SYNC_CRON_H
#define SYNC_CRON_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define SYNC_CRON_DEFAULT "0 */6 * * *"

struct sync_cron {
    bool off;
    uint64_t minutes;     /* bit m: minute m matches */
    uint32_t hours;
    uint32_t mdays;       /* bit d for day 1..31 */
    uint16_t months;      /* bit m for month 1..12 */
    uint8_t wdays;        /* bit w for 0..6 (Sunday = 0) */
    bool mday_star, wday_star;
};

/* Returns 0, or -1 with a short reason in *why (static string). */
int sync_cron_parse(const char *expr, struct sync_cron *out, const char **why);
/* The first matching minute strictly after `after` (Unix seconds), or -1 when off or none
 * within five years. */
int64_t sync_cron_next(const struct sync_cron *c, int64_t after);

#endif
