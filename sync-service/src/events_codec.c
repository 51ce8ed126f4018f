/* The stream entry of an event (see events_codec.h for the format). */
#include "events_codec.h"

#include <stdio.h>
#include <string.h>

#include "svc/cid.h"
#include "svc/copy_text.h"

/* y-m-d of a day number (Howard Hinnant's civil_from_days). */
static void civil_from_days(int64_t z, int *y, int *m, int *d) {
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)((int64_t)yoe + era * 400 + (*m <= 2));
}

void events_format_day(int64_t day, char *out) {
    int y, m, d;
    civil_from_days(day, &y, &m, &d);
    snprintf(out, 11, "%04d-%02d-%02d", y, m, d);
}

void events_format_time(int64_t ms, char *out) {
    int64_t day = events_day_of(ms);
    int64_t in_day = ms - day * 86400000;
    int y, m, d;
    civil_from_days(day, &y, &m, &d);
    int h = (int)(in_day / 3600000), mi = (int)(in_day / 60000 % 60), s = (int)(in_day / 1000 % 60);
    snprintf(out, 30, "%04d-%02d-%02d %02d:%02d:%02d.%03d+00", y, m, d, h, mi, s, (int)(in_day % 1000));
}

void events_encode(const struct event_rec *rec, struct svc_buf *out) {
    char head[32], day[11], occurred[30], received[30];
    int hn = snprintf(head, sizeof head, "1%c%lld\t", rec->client_id && !rec->client_time ? 'c' : 'n',
                      (long long)rec->received_ms);
    events_format_day(events_day_of(rec->occurred_ms), day);
    events_format_time(rec->occurred_ms, occurred);
    events_format_time(rec->received_ms, received);
    const char *type = events_type_names[rec->type];
    svc_buf_append(out, head, (size_t)hn);
    svc_buf_append(out, rec->id, SVC_UUID_LEN);
    svc_buf_append(out, "\t", 1);
    svc_buf_append(out, day, 10);
    svc_buf_append(out, "\t", 1);
    svc_buf_puts(out, type);
    svc_buf_append(out, "\t", 1);
    svc_copy_text_append(out, rec->user_id);
    svc_buf_append(out, "\t", 1);
    svc_copy_text_append(out, rec->session_id);
    svc_buf_append(out, "\t", 1);
    svc_copy_text_append_n(out, rec->data, rec->data_len);
    svc_buf_append(out, "\t", 1);
    svc_buf_puts(out, occurred);
    svc_buf_append(out, "\t", 1);
    svc_buf_puts(out, received);
    svc_buf_append(out, "\n", 1);
}

/* The day number of "YYYY-MM-DD", or false. */
static bool parse_day(const char *s, int64_t *day) {
    char t[32];
    if (snprintf(t, sizeof t, "%.10sT00:00:00Z", s) != 20) return false;
    int64_t ms;
    if (!events_parse_time(t, &ms)) return false;
    *day = events_day_of(ms);
    return true;
}

bool events_decode(const char *v, size_t len, struct event_view *out) {
    memset(out, 0, sizeof *out);
    if (len < 4 || v[0] != '1' || (v[1] != 'c' && v[1] != 'n')) return false;
    out->check = v[1] == 'c';
    size_t i = 2;
    int64_t ms = 0;
    /* at most 15 digits (past the year 30000 in ms): more would overflow int64 */
    while (i < len && v[i] >= '0' && v[i] <= '9' && i < 2 + 15) ms = ms * 10 + (v[i++] - '0');
    if (i == 2 || i >= len || v[i] != '\t') return false;
    out->received_ms = ms;
    out->line = v + i + 1;
    out->line_len = len - i - 1;
    const char *l = out->line;
    size_t n = out->line_len;
    /* event_id \t event_day \t event_type \t ... \n */
    if (n < SVC_UUID_LEN + 12 || l[n - 1] != '\n' || l[SVC_UUID_LEN] != '\t' || l[SVC_UUID_LEN + 11] != '\t')
        return false;
    memcpy(out->id, l, SVC_UUID_LEN);
    out->id[SVC_UUID_LEN] = '\0';
    if (!svc_uuid_is_valid(out->id) || !parse_day(l + SVC_UUID_LEN + 1, &out->day)) return false;
    const char *type = l + SVC_UUID_LEN + 12;
    const char *end = memchr(type, '\t', n - (size_t)(type - l));
    if (!end || end - type > 31) return false;
    char name[32];
    memcpy(name, type, (size_t)(end - type));
    name[end - type] = '\0';
    out->type = events_type_index(name);
    return out->type >= 0;
}

bool events_columns(const struct event_view *v, char *buf, size_t cap, const char *cols[EVENTS_COPY_NCOLS]) {
    if (cap < v->line_len + EVENTS_COPY_NCOLS) return false;
    char *w = buf;
    int col = 0;
    cols[col] = w;
    for (size_t i = 0; i + 1 < v->line_len; i++) {   /* the last byte is the '\n' */
        char ch = v->line[i];
        if (ch == '\t') {
            *w++ = '\0';
            if (++col >= EVENTS_COPY_NCOLS) return false;
            cols[col] = w;
        } else if (ch == '\\' && i + 2 < v->line_len) {
            char e = v->line[++i];
            *w++ = e == 't' ? '\t' : e == 'n' ? '\n' : e == 'r' ? '\r' : e;
        } else {
            *w++ = ch;
        }
    }
    *w = '\0';
    return col == EVENTS_COPY_NCOLS - 1;
}
