/* Request validation for transactions-service; see tx_request.h. */
#include "tx_request.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svc/utf8.h"

static const char *const type_names[] = {"deposit", "withdrawal", "transfer", "reversal"};
static const char *const status_names[] = {"pending", "completed", "failed", "reversed"};
static const char *const group_names[] = {"day", "month", "type"};

const char *tx_type_name(enum tx_type t) { return type_names[t]; }
const char *tx_group_by_name(enum tx_group_by g) { return group_names[g]; }

static void reason(json_t *fields, const char *key, const char *why) {
    if (!json_object_get(fields, key)) json_object_set_new(fields, key, json_string(why));
}

bool tx_uuid_lower(const char *s, char out[SVC_UUID_LEN + 1]) {
    if (!s || !svc_uuid_is_valid(s)) return false;
    for (int i = 0; i < SVC_UUID_LEN; i++) out[i] = (char)tolower((unsigned char)s[i]);
    out[SVC_UUID_LEN] = '\0';
    return true;
}

bool tx_parse_create(const json_t *body, const char *caller_id, int64_t max_cents,
                     struct tx_create_req *out, json_t **fields_out) {
    memset(out, 0, sizeof *out);
    json_t *fields = json_object();
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)body, key, v) {
        if (strcmp(key, "type") && strcmp(key, "amount") && strcmp(key, "currency") &&
            strcmp(key, "description") && strcmp(key, "to_user_id"))
            reason(fields, key, "unknown field");
    }

    int type = -1;
    v = json_object_get(body, "type");
    if (!v) reason(fields, "type", "required");
    else if (!json_is_string(v)) reason(fields, "type", "must be a string");
    else {
        for (int i = 0; i < TX_REVERSAL; i++)
            if (!strcmp(json_string_value(v), type_names[i])) type = i;
        if (type < 0) reason(fields, "type", "must be \"deposit\", \"withdrawal\" or \"transfer\"");
    }

    v = json_object_get(body, "amount");
    if (!v) reason(fields, "amount", "required");
    else if (!json_is_string(v)) reason(fields, "amount", "must be a string such as \"10.50\" (numbers are refused to avoid floating point)");
    else {
        const char *why = money_parse_amount(json_string_value(v), max_cents, &out->amount_cents);
        if (why) reason(fields, "amount", why);
        else money_format(out->amount_cents, out->amount);
    }

    v = json_object_get(body, "currency");
    if (!v || json_is_null(v)) memcpy(out->currency, MONEY_DEFAULT_CURRENCY, 4);
    else if (!json_is_string(v) || !money_currency_ok(json_string_value(v)))
        reason(fields, "currency", "must be one of BRL, USD, EUR, GBP, ARS, CLP, MXN, CAD");
    else memcpy(out->currency, json_string_value(v), 4);

    v = json_object_get(body, "description");
    if (v && !json_is_null(v)) {
        /* free text: tab and newline allowed, every other control character (C1 too) refused */
        size_t chars = 0;
        enum svc_text_verdict tv = SVC_TEXT_OK;
        if (!json_is_string(v)) reason(fields, "description", "must be a string or null");
        else if ((tv = svc_text_check(json_string_value(v), json_string_length(v), SVC_TEXT_TAB | SVC_TEXT_NEWLINE,
                                      &chars)) == SVC_TEXT_NOT_UTF8) reason(fields, "description", svc_text_reason(tv));
        else if (chars > TX_DESCRIPTION_MAX) reason(fields, "description", "must be at most 500 characters");
        else if (tv != SVC_TEXT_OK) reason(fields, "description", svc_text_reason(tv));
        else out->description = json_string_value(v);
    }

    v = json_object_get(body, "to_user_id");
    bool has_to = v && !json_is_null(v);
    if (type == TX_TRANSFER) {
        if (!has_to) reason(fields, "to_user_id", "required for a transfer");
        else if (!json_is_string(v) || !tx_uuid_lower(json_string_value(v), out->to_user_id))
            reason(fields, "to_user_id", "must be a user id (UUID)");
        else if (caller_id && !strcmp(out->to_user_id, caller_id))
            reason(fields, "to_user_id", "must differ from the caller");
    } else if (has_to && type >= 0) {
        reason(fields, "to_user_id", "only allowed for a transfer");
    }
    if (type >= 0) out->type = (enum tx_type)type;

    if (json_object_size(fields) > 0) {
        *fields_out = fields;
        return false;
    }
    json_decref(fields);
    *fields_out = NULL;
    return true;
}

/* ---- dates ---- */

static bool digits(const char *s, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

static int days_in_month(int y, int m) {
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : d[m - 1];
}

const char *tx_parse_instant(const char *s, struct tx_instant *out) {
    static const char *const bad = "must be a date YYYY-MM-DD or an RFC 3339 timestamp";
    memset(out, 0, sizeof *out);
    if (!s) return NULL;
    size_t n = strlen(s);
    int y, mo, d;
    if (n < 10 || s[4] != '-' || s[7] != '-' || !digits(s, 4, &y) || !digits(s + 5, 2, &mo) ||
        !digits(s + 8, 2, &d))
        return bad;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo)) return "is not a valid calendar date";
    out->set = true;
    out->raw = s;
    if (n == 10) {
        out->date_only = true;
        snprintf(out->text, sizeof out->text, "%.10sT00:00:00Z", s);
        return NULL;
    }
    int h, mi, se;
    if (n < 20 || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':' || !digits(s + 11, 2, &h) ||
        !digits(s + 14, 2, &mi) || !digits(s + 17, 2, &se) || h > 23 || mi > 59 || se > 59) {
        out->set = false;
        return bad;
    }
    const char *p = s + 19;
    if (*p == '.') {
        int nf = 0;
        for (p++; *p >= '0' && *p <= '9'; p++) nf++;
        if (nf < 1 || nf > 6) { out->set = false; return bad; }
    }
    int oh, om;
    bool zone_ok = ((*p == 'Z' || *p == 'z') && p[1] == '\0') ||
                   ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':' && digits(p + 1, 2, &oh) &&
                    digits(p + 4, 2, &om) && oh <= 23 && om <= 59);
    if (!zone_ok || n >= sizeof out->text) {
        out->set = false;
        return bad;
    }
    memcpy(out->text, s, n + 1);
    return NULL;
}

static const char *pick(const char *s, const char *const *names, int n) {
    for (int i = 0; i < n; i++)
        if (!strcmp(s, names[i])) return names[i];
    return NULL;
}

static void parse_range(const char *from, const char *to, struct tx_instant *f, struct tx_instant *t,
                        json_t *fields) {
    const char *why = tx_parse_instant(from, f);
    if (why) reason(fields, "from", why);
    why = tx_parse_instant(to, t);
    if (why) reason(fields, "to", why);
    if (f->set && t->set && f->date_only && t->date_only && strcmp(f->text, t->text) > 0)
        reason(fields, "to", "must not be before from");
}

static bool finish(json_t *fields, json_t **fields_out) {
    if (json_object_size(fields) > 0) {
        *fields_out = fields;
        return false;
    }
    json_decref(fields);
    *fields_out = NULL;
    return true;
}

const struct svc_list tx_list_kind = {.kind = 'T', .timed = true, .id = SVC_CURSOR_UUID, .legacy_page = true};

bool tx_parse_list_query(const struct svc_page_params *paging, const char *type, const char *status,
                         const char *from, const char *to, const char *user_id,
                         struct tx_list_query *out, json_t **fields_out) {
    memset(out, 0, sizeof *out);
    json_t *fields = json_object();
    svc_page_parse(&tx_list_kind, paging, &out->page, fields);
    if (type && !(out->type = pick(type, type_names, 4)))
        reason(fields, "type", "must be deposit, withdrawal, transfer or reversal");
    if (status && !(out->status = pick(status, status_names, 4)))
        reason(fields, "status", "must be pending, completed, failed or reversed");
    parse_range(from, to, &out->from, &out->to, fields);
    if (user_id && !svc_uuid_is_valid(user_id)) reason(fields, "user_id", "must be a user id (UUID)");
    out->user_id = user_id;
    return finish(fields, fields_out);
}

bool tx_parse_summary_query(const char *group_by, const char *from, const char *to, const char *user_id,
                            const char *currency, struct tx_summary_query *out, json_t **fields_out) {
    memset(out, 0, sizeof *out);
    json_t *fields = json_object();
    out->group_by = TX_GROUP_DAY;
    if (group_by) {
        const char *g = pick(group_by, group_names, 3);
        if (!g) reason(fields, "group_by", "must be day, month or type");
        else out->group_by = (enum tx_group_by)(g == group_names[0] ? 0 : g == group_names[1] ? 1 : 2);
    }
    parse_range(from, to, &out->from, &out->to, fields);
    if (user_id && !svc_uuid_is_valid(user_id)) reason(fields, "user_id", "must be a user id (UUID)");
    out->user_id = user_id;
    if (!currency) memcpy(out->currency, MONEY_DEFAULT_CURRENCY, 4);
    else if (!money_currency_ok(currency)) reason(fields, "currency", "must be one of BRL, USD, EUR, GBP, ARS, CLP, MXN, CAD");
    else memcpy(out->currency, currency, 4);
    return finish(fields, fields_out);
}
