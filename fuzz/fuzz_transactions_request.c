/* What transactions-service reads from a client besides the amount (transactions-service/src/
 * tx_request.c): the POST /api/transactions body and the query parameters of
 * GET /api/transactions and /api/transactions/summary.
 *
 * Input: byte 0 picks the case, bytes 1-2 which parameters are absent (bit i: part i); the rest is
 *   case 0  the POST body (JSON; not an object → skipped, the dispatcher refuses those);
 *   case 1  list query: limit \0 cursor \0 page \0 include_total \0 type \0 status \0 from \0 to
 *           \0 user_id (the paging parameters' own rules are fuzz_paging.c's: here they must get
 *           the reasons svc_page_parse gives, next to the list's own);
 *   case 2  summary query: group_by \0 from \0 to \0 user_id \0 currency.
 * Properties: the parser accepts exactly what the rules of tx_request.h say (written again here,
 * reason by reason: the set of fields with a reason is the set of bad fields), and what it hands
 * on is clean: a canonical amount that parses back to its cents, an allowed currency, a
 * description of at most 500 characters without control characters (C0, DEL or C1, other than
 * tab and newline), a lower-case UUID for a transfer's payee, SQL time literals that tx_parse_instant
 * itself accepts again. */
#include "fuzz.h"

#include <ctype.h>
#include <jansson.h>

#include "money.h"
#include "svc/cid.h"
#include "svc/paging.h"
#include "tx_request.h"

#define CALLER "0190f3a2-7b1c-7def-8123-456789abcdef"
#define MAX_CENTS INT64_C(100000000000)

static bool in(const char *s, const char *const *names, int n) {
    for (int i = 0; s && i < n; i++)
        if (!strcmp(s, names[i])) return true;
    return false;
}

static bool has_reason(const json_t *fields, const char *name) {
    return fields && json_is_string(json_object_get(fields, name));
}

/* ---------------------------------------------------------------- the POST body */

/* Code points of valid UTF-8 (jansson hands out nothing else); false on a control character
 * other than tab and newline: C0, DEL and C1 (U+0080..U+009F). */
static bool description_ok(const char *s, size_t len) {
    size_t chars = 0;
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        unsigned c = *p;
        if (c == 0 || (c < 0x20 && c != '\t' && c != '\n') || c == 0x7f) return false;
        if (c == 0xC2 && p + 1 < end && p[1] >= 0x80 && p[1] <= 0x9F) return false;
        p += c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        chars++;
    }
    return chars <= TX_DESCRIPTION_MAX;
}

static bool amount_form(const char *s) {
    size_t i = 0, f = 0;
    while (s[i] >= '0' && s[i] <= '9') i++;
    if (i < 1 || i > MONEY_MAX_DIGITS) return false;
    if (s[i] == '.') {
        while (s[i + 1 + f] >= '0' && s[i + 1 + f] <= '9') f++;
        if (f < 1 || f > 2) return false;
        i += 1 + f;
    }
    return s[i] == '\0';
}

static void check_create(const uint8_t *data, size_t size) {
    json_t *body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(body)) {
        json_decref(body);
        return;
    }
    struct tx_create_req out;
    json_t *fields = NULL;
    bool ok = tx_parse_create(body, CALLER, MAX_CENTS, &out, &fields);

    /* the rules */
    static const char *const known[] = {"type", "amount", "currency", "description", "to_user_id"};
    static const char *const types[] = {"deposit", "withdrawal", "transfer"};
    static const char *const currencies[] = {"BRL", "USD", "EUR", "GBP", "ARS", "CLP", "MXN", "CAD"};
    size_t bad = 0;
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v) {
        if (!in(key, known, 5)) {
            bad++;
            FUZZ_CHECK(has_reason(fields, key), "unknown field \"%s\" without a reason", key);
        }
    }
    const json_t *t = json_object_get(body, "type");
    const char *type = json_string_value(t);
    bool type_ok = in(type, types, 3) && strlen(type) == json_string_length(t);
    const json_t *a = json_object_get(body, "amount");
    int64_t cents = 0;
    bool amount_ok = json_is_string(a) && strlen(json_string_value(a)) == json_string_length(a) &&
                     amount_form(json_string_value(a)) && !money_parse(json_string_value(a), &cents) && cents > 0 &&
                     cents <= MAX_CENTS;
    const json_t *c = json_object_get(body, "currency");
    bool currency_ok = !c || json_is_null(c) ||
                       (json_is_string(c) && json_string_length(c) == 3 && in(json_string_value(c), currencies, 8));
    const json_t *d = json_object_get(body, "description");
    bool description_good = !d || json_is_null(d) ||
                            (json_is_string(d) && description_ok(json_string_value(d), json_string_length(d)));
    const json_t *to = json_object_get(body, "to_user_id");
    bool has_to = to && !json_is_null(to);
    bool to_ok = true;
    if (type_ok && !strcmp(type, "transfer")) {
        const char *u = json_string_value(to);
        to_ok = has_to && u && strlen(u) == json_string_length(to) && svc_uuid_is_valid(u) && strcasecmp(u, CALLER) != 0;
    } else if (type_ok && has_to) {
        to_ok = false;
    }
    bad += !type_ok + !amount_ok + !currency_ok + !description_good + !to_ok;
    FUZZ_CHECK(ok == (bad == 0), "tx_parse_create %s, the rules find %zu bad fields", ok ? "accepted" : "refused", bad);
    FUZZ_CHECK(has_reason(fields, "type") == !type_ok && has_reason(fields, "amount") == !amount_ok &&
                   has_reason(fields, "currency") == !currency_ok &&
                   has_reason(fields, "description") == !description_good && has_reason(fields, "to_user_id") == !to_ok,
               "the reasons do not name the bad fields");
    FUZZ_CHECK(ok ? fields == NULL : json_object_size(fields) == bad, "%zu reasons for %zu bad fields",
               json_object_size(fields), bad);
    if (ok) {
        char canon[MONEY_STR_MAX];
        FUZZ_CHECK(out.amount_cents == cents && !strcmp(out.amount, money_format(cents, canon)), "amount %s / %lld",
                   out.amount, (long long)out.amount_cents);
        FUZZ_CHECK(!strcmp(types[out.type], type), "type %d for \"%s\"", (int)out.type, type);
        FUZZ_CHECK(in(out.currency, currencies, 8), "currency \"%s\"", out.currency);
        FUZZ_CHECK(!out.description || (json_is_string(d) && out.description == json_string_value(d)), "description");
        if (out.type == TX_TRANSFER) {
            FUZZ_CHECK(svc_uuid_is_valid(out.to_user_id) && !strcasecmp(out.to_user_id, json_string_value(to)),
                       "payee \"%s\"", out.to_user_id);
            for (const char *p = out.to_user_id; *p; p++) FUZZ_CHECK(!isupper((unsigned char)*p), "payee not lower-case");
        } else {
            FUZZ_CHECK(out.to_user_id[0] == '\0', "payee set on a %s", type);
        }
    }
    json_decref(fields);
    json_decref(body);
}

/* ---------------------------------------------------------------- query parameters */

static int num(const char *s, int n) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + s[i] - '0';
    }
    return v;
}

/* tx_request.h: "YYYY-MM-DD" (a real day, year >= 1970) or
 * "YYYY-MM-DDTHH:MM:SS[.f{1,6}](Z|±HH:MM)" (T or t, Z or z). */
static bool instant_ok(const char *s, bool *date_only) {
    size_t n = strlen(s);
    *date_only = n == 10;
    if (n < 10 || s[4] != '-' || s[7] != '-') return false;
    int y = num(s, 4), mo = num(s + 5, 2), d = num(s + 8, 2);
    if (y < 1970 || mo < 1 || mo > 12 || d < 1) return false;
    static const int dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int days = dim[mo - 1] + (mo == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0));
    if (d > days) return false;
    if (n == 10) return true;
    if (n < 20 || n >= TX_INSTANT_MAX || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':') return false;
    int h = num(s + 11, 2), mi = num(s + 14, 2), se = num(s + 17, 2);
    if (h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 || se > 59) return false;
    const char *p = s + 19;
    if (*p == '.') {
        int f = 0;
        while (p[1 + f] >= '0' && p[1 + f] <= '9') f++;
        if (f < 1 || f > 6) return false;
        p += 1 + f;
    }
    if ((*p == 'Z' || *p == 'z') && !p[1]) return true;
    return (*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':' && num(p + 1, 2) >= 0 && num(p + 1, 2) <= 23 &&
           num(p + 4, 2) >= 0 && num(p + 4, 2) <= 59;
}

static void check_instant(const char *name, const char *s, const struct tx_instant *got, bool ok_expected) {
    if (!s || !ok_expected) return;
    FUZZ_CHECK(got->set && got->raw == s, "%s \"%s\" not set", name, s);
    struct tx_instant again;
    FUZZ_CHECK(!tx_parse_instant(got->text, &again) && again.set, "%s \"%s\" gave the literal \"%s\", refused again", name,
               s, got->text);
    if (got->date_only)
        FUZZ_CHECK(strlen(got->text) == 20 && !strncmp(got->text, s, 10) && !strcmp(got->text + 10, "T00:00:00Z"),
                   "%s \"%s\" gave \"%s\"", name, s, got->text);
    else
        FUZZ_CHECK(!strcmp(got->text, s), "%s \"%s\" gave \"%s\"", name, s, got->text);
}

static void check_range(const json_t *fields, const char *from, const char *to, const struct tx_instant *f,
                        const struct tx_instant *t, size_t *bad) {
    bool fd = false, td = false;
    bool from_ok = !from || instant_ok(from, &fd), to_ok = !to || instant_ok(to, &td);
    bool order_ok = !(from && to && from_ok && to_ok && fd && td && strncmp(from, to, 10) > 0);
    FUZZ_CHECK(has_reason(fields, "from") == !from_ok, "from \"%s\": reason %d", from ? from : "", !from_ok);
    FUZZ_CHECK(has_reason(fields, "to") == !(to_ok && order_ok), "to \"%s\" (from \"%s\")", to ? to : "",
               from ? from : "");
    check_instant("from", from, f, from_ok);
    check_instant("to", to, t, to_ok);
    *bad += !from_ok + !(to_ok && order_ok);
}

static void check_list(char **p) {
    static const char *const types[] = {"deposit", "withdrawal", "transfer", "reversal"};
    static const char *const statuses[] = {"pending", "completed", "failed", "reversed"};
    static const char *const paging_names[] = {"limit", "cursor", "page", "include_total"};
    struct svc_page_params pp = {p[0], p[1], p[2], p[3]};
    struct tx_list_query q;
    json_t *fields = NULL;
    bool ok = tx_parse_list_query(&pp, p[4], p[5], p[6], p[7], p[8], &q, &fields);

    json_t *paging = json_object();
    struct svc_page pg;
    svc_page_parse(&tx_list_kind, &pp, &pg, paging);
    size_t bad = json_object_size(paging);
    for (int i = 0; i < 4; i++)
        FUZZ_CHECK(has_reason(fields, paging_names[i]) == has_reason(paging, paging_names[i]),
                   "list query: paging reason for %s differs from svc_page_parse's", paging_names[i]);
    FUZZ_CHECK(!memcmp(&pg, &q.page, sizeof pg), "list query: the page request differs from svc_page_parse's");
    json_decref(paging);

    bool type_ok = !p[4] || in(p[4], types, 4), status_ok = !p[5] || in(p[5], statuses, 4);
    bool user_ok = !p[8] || svc_uuid_is_valid(p[8]);
    FUZZ_CHECK(has_reason(fields, "type") == !type_ok && has_reason(fields, "status") == !status_ok &&
                   has_reason(fields, "user_id") == !user_ok,
               "list query: the reasons do not name the bad parameters");
    bad += !type_ok + !status_ok + !user_ok;
    check_range(fields, p[6], p[7], &q.from, &q.to, &bad);
    FUZZ_CHECK(ok == (bad == 0) && (ok ? !fields : json_object_size(fields) == bad), "list query %d with %zu bad", ok, bad);
    if (ok) {
        FUZZ_CHECK((!p[4] && !q.type) || (q.type && !strcmp(q.type, p[4])), "type");
        FUZZ_CHECK((!p[5] && !q.status) || (q.status && !strcmp(q.status, p[5])), "status");
    }
    json_decref(fields);
}

static void check_summary(char **p) {
    static const char *const groups[] = {"day", "month", "type"};
    static const char *const currencies[] = {"BRL", "USD", "EUR", "GBP", "ARS", "CLP", "MXN", "CAD"};
    struct tx_summary_query q;
    json_t *fields = NULL;
    bool ok = tx_parse_summary_query(p[0], p[1], p[2], p[3], p[4], &q, &fields);
    size_t bad = 0;
    bool group_ok = !p[0] || in(p[0], groups, 3), user_ok = !p[3] || svc_uuid_is_valid(p[3]);
    bool currency_ok = !p[4] || in(p[4], currencies, 8);
    FUZZ_CHECK(has_reason(fields, "group_by") == !group_ok && has_reason(fields, "user_id") == !user_ok &&
                   has_reason(fields, "currency") == !currency_ok,
               "summary query: the reasons do not name the bad parameters");
    bad += !group_ok + !user_ok + !currency_ok;
    check_range(fields, p[1], p[2], &q.from, &q.to, &bad);
    FUZZ_CHECK(ok == (bad == 0) && (ok ? !fields : json_object_size(fields) == bad), "summary query %d with %zu bad", ok,
               bad);
    if (ok) {
        FUZZ_CHECK(!strcmp(groups[q.group_by], p[0] ? p[0] : "day"), "group_by %d", (int)q.group_by);
        FUZZ_CHECK(!strcmp(q.currency, p[4] ? p[4] : MONEY_DEFAULT_CURRENCY), "currency %s", q.currency);
    }
    json_decref(fields);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3) return 0;
    int which = data[0] % 3;
    if (which == 0) {
        check_create(data + 3, size - 3);
        return 0;
    }
    unsigned absent = (unsigned)data[1] | (unsigned)data[2] << 8;
    char *p[9];
    fuzz_split(data + 3, size - 3, p, 9);
    for (int i = 0; i < 9; i++)
        if (absent & (1u << i)) { free(p[i]); p[i] = NULL; }
    if (which == 1) check_list(p);
    else check_summary(p);
    fuzz_free_parts(p, 9);
    return 0;
}
