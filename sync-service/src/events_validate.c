/* Validation of one event (see events_validate.h for the rules). Every field is checked and
 * every problem reported at once, one reason per field, as the other services do. */
#include "events_validate.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "svc/utf8.h"

const char *const events_type_names[EVENTS_NTYPES] = {"view",  "purchase", "add_to_cart", "remove_from_cart",
                                                      "login", "logout",   "search"};

int events_type_index(const char *name) {
    for (int i = 0; i < EVENTS_NTYPES; i++)
        if (!strcmp(name, events_type_names[i])) return i;
    return -1;
}

#define TYPE_REASON "must be one of view, purchase, add_to_cart, remove_from_cart, login, logout, search"
#define TEXT_REASON "must be a string of 1 to 128 characters without control characters"

/* ------------------------------------------------------------------ time */

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

int64_t events_day_of(int64_t ms) {
    int64_t d = ms / 86400000;
    if (ms % 86400000 < 0) d--;
    return d;
}

static bool digits(const char *s, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i])) return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

bool events_parse_time(const char *s, int64_t *ms) {
    int y, mo, d, h, mi, sec;
    if (strlen(s) < 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
        !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2, &h) || s[13] != ':' ||
        !digits(s + 14, 2, &mi) || s[16] != ':' || !digits(s + 17, 2, &sec))
        return false;
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap) || h > 23 ||
        mi > 59 || sec > 59)
        return false;
    const char *p = s + 19;
    int frac_ms = 0;
    if (*p == '.') {
        p++;
        int n = 0;
        while (isdigit((unsigned char)p[n])) {
            if (n < 3) frac_ms = frac_ms * 10 + (p[n] - '0');
            n++;
        }
        if (n == 0 || n > 9) return false;
        for (int k = n; k < 3; k++) frac_ms *= 10;
        p += n;
    }
    int offset_min = 0;
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
        offset_min = 0;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        int oh, om;
        if (!digits(p + 1, 2, &oh) || !digits(p + 4, 2, &om) || oh > 23 || om > 59) return false;
        offset_min = (oh * 60 + om) * (*p == '-' ? -1 : 1);
    } else {
        return false;
    }
    int64_t days = days_from_civil(y, (unsigned)mo, (unsigned)d);
    int64_t t = ((days * 24 + h) * 60 + mi) * 60 + sec - (int64_t)offset_min * 60;
    if (t < 0) return false;
    *ms = t * 1000 + frac_ms;
    return true;
}

/* ------------------------------------------------------------------ fields */

/* 1..128 characters of free text: no control character (C0, DEL, C1; svc/utf8.h). */
static bool text_ok(const char *s) {
    size_t chars = 0;
    return svc_text_check(s, strlen(s), 0, &chars) == SVC_TEXT_OK && chars >= 1 && chars <= EVENTS_TEXT_MAX;
}

static void reason(json_t *fields, const char *name, const char *why) {
    if (!json_object_get(fields, name)) json_object_set_new(fields, name, json_string(why));
}

static void lower_uuid(char *dst, const char *src) {
    for (int i = 0; i < SVC_UUID_LEN; i++) dst[i] = (char)tolower((unsigned char)src[i]);
    dst[SVC_UUID_LEN] = '\0';
}

void events_rec_clear(struct event_rec *rec) {
    free(rec->data);
    rec->data = NULL;
    rec->data_len = 0;
}

svc_status events_validate(const json_t *ev, const struct svc_principal *who, const struct events_rules *rules,
                           struct event_rec *rec, json_t **fields_out) {
    memset(rec, 0, sizeof *rec);
    rec->type = -1;
    rec->received_ms = rules->now_ms;
    *fields_out = NULL;
    json_t *fields = json_object();
    if (!fields) return SVC_INTERNAL;
    if (!json_is_object(ev)) {
        reason(fields, "event", "must be a JSON object");
        *fields_out = fields;
        return SVC_UNPROCESSABLE;
    }

    const char *key;
    json_t *v;
    const json_t *data = NULL;
    const char *user = NULL, *event_id = NULL, *occurred = NULL;
    json_object_foreach((json_t *)ev, key, v) {
        if (!strcmp(key, "eventType")) {
            rec->type = json_is_string(v) ? events_type_index(json_string_value(v)) : -1;
            if (rec->type < 0) reason(fields, key, TYPE_REASON);
        } else if (!strcmp(key, "eventData")) {
            if (json_is_object(v)) data = v;
            else if (!json_is_null(v)) reason(fields, key, "must be a JSON object");
        } else if (!strcmp(key, "sessionId")) {
            if (json_is_string(v) && text_ok(json_string_value(v))) rec->session_id = json_string_value(v);
            else reason(fields, key, TEXT_REASON);
        } else if (!strcmp(key, "userId")) {
            if (json_is_string(v) && text_ok(json_string_value(v))) user = json_string_value(v);
            else if (!json_is_null(v)) reason(fields, key, TEXT_REASON);
        } else if (!strcmp(key, "eventId")) {
            if (json_is_string(v) && svc_uuid_is_valid(json_string_value(v))) event_id = json_string_value(v);
            else if (!json_is_null(v)) reason(fields, key, "must be a UUID");
        } else if (!strcmp(key, "occurredAt")) {
            int64_t t;
            if (json_is_string(v) && events_parse_time(json_string_value(v), &t)) {
                occurred = json_string_value(v);
                rec->occurred_ms = t;
            } else if (!json_is_null(v)) {
                reason(fields, key, "must be an RFC 3339 date-time with a time zone");
            }
        } else {
            reason(fields, key, "unknown field");
        }
    }
    if (!json_object_get(ev, "eventType")) reason(fields, "eventType", "is required");
    if (!json_object_get(ev, "sessionId")) reason(fields, "sessionId", "is required");

    if (occurred) {
        int64_t today = events_day_of(rules->now_ms);
        if (rec->occurred_ms > rules->now_ms + EVENTS_MAX_FUTURE_MS)
            reason(fields, "occurredAt", "must not be more than 24 hours in the future");
        else if (events_day_of(rec->occurred_ms) <= today - rules->retention_days)
            reason(fields, "occurredAt", "is older than the retention period");
        rec->client_time = true;
    } else {
        rec->occurred_ms = rules->now_ms;
    }

    if (data) {
        rec->data = json_dumps(data, JSON_COMPACT);
        if (!rec->data) {
            json_decref(fields);
            return SVC_INTERNAL;
        }
        rec->data_len = strlen(rec->data);
        if (rec->data_len > rules->max_data_bytes) reason(fields, "eventData", "must be at most 16384 bytes as JSON");
    } else {
        rec->data = strdup("{}");
        if (!rec->data) {
            json_decref(fields);
            return SVC_INTERNAL;
        }
        rec->data_len = 2;
    }

    if (json_object_size(fields) > 0) {
        events_rec_clear(rec);
        *fields_out = fields;
        return SVC_UNPROCESSABLE;
    }
    json_decref(fields);

    if (user && strcmp(user, who->sub) != 0 && !who->is_admin && !who->is_service) {
        events_rec_clear(rec);
        return SVC_FORBIDDEN;
    }
    rec->user_id = user ? user : who->sub;
    if (event_id) {
        lower_uuid(rec->id, event_id);
        rec->client_id = true;
    } else {
        svc_uuid7(rec->id);
    }
    return SVC_OK;
}
