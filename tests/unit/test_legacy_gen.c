/* Legacy-API simulator: the record generator and knob parsing.
 *
 * The generator's sources are compiled into this test directly (the Makefile links only
 * libshared into unit tests). A record validator written here from the README's validity rules
 * checks that valid records pass and every corrupt shape fails, and a client-side import
 * (newest updatedAt per userName wins) over the formatted stream must agree with gen_expected. */
#define _GNU_SOURCE /* timegm */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <string.h>
#include <time.h>

#include "../../tools/legacy-api/src/gen.c"
#include "../../tools/legacy-api/src/knobs.c"

static const char *const FIELDS[] = {"id", "userName", "email", "name", "createdAt", "updatedAt", "deleted"};

/* ------------------------------------------------------------------ validator (README rules) */

static bool valid_user_name(const char *s) {
    size_t n = strlen(s);
    if (n < 3 || n > 64) return false;
    for (const char *c = s; *c; c++) {
        bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                  *c == '.' || *c == '_' || *c == '-';
        if (!ok) return false;
    }
    return true;
}

static bool valid_email(const char *s) {
    const char *at = strchr(s, '@');
    if (!at || at == s || strchr(at + 1, '@')) return false;
    for (const char *c = s; *c; c++)
        if ((unsigned char)*c <= ' ') return false;
    const char *dom = at + 1, *dot = strrchr(dom, '.');
    return *dom && dot && dot != dom && dot[1] != '\0';
}

/* Strict "YYYY-MM-DDTHH:MM:SSZ" naming a real instant: parse, convert, format back, compare. */
static bool parse_time(const char *s, int64_t *out) {
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (strlen(s) != 20) return false;
    const char *end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (!end || *end) return false;
    int64_t t = (int64_t)timegm(&tm);
    char back[21] = {0};
    gen_format_time(t, back);
    if (strcmp(back, s) != 0) return false;
    *out = t;
    return true;
}

struct parsed {
    json_int_t id;
    const char *user_name;  /* borrowed from the json_t */
    const char *email;
    const char *name;
    int64_t created_at, updated_at;
    bool deleted;
};

/* Validates one record text; on success fills p (strings borrowed from *root, caller decrefs). */
static bool validate(const char *text, json_t **root, struct parsed *p) {
    json_error_t e;
    *root = json_loads(text, JSON_REJECT_DUPLICATES, &e);
    json_t *o = *root;
    if (!o || !json_is_object(o) || json_object_size(o) != 7) return false;
    for (size_t f = 0; f < 7; f++)
        if (!json_object_get(o, FIELDS[f])) return false;
    json_t *id = json_object_get(o, "id"), *un = json_object_get(o, "userName"), *em = json_object_get(o, "email"),
           *nm = json_object_get(o, "name"), *ca = json_object_get(o, "createdAt"),
           *ua = json_object_get(o, "updatedAt"), *del = json_object_get(o, "deleted");
    if (!json_is_integer(id) || json_integer_value(id) < 1) return false;
    if (!json_is_string(un) || !valid_user_name(json_string_value(un))) return false;
    if (!json_is_string(em) || !valid_email(json_string_value(em))) return false;
    if (!json_is_string(nm) || json_string_length(nm) == 0) return false;
    if (!json_is_string(ca) || !parse_time(json_string_value(ca), &p->created_at)) return false;
    if (!json_is_string(ua) || !parse_time(json_string_value(ua), &p->updated_at)) return false;
    if (!json_is_boolean(del)) return false;
    p->id = json_integer_value(id);
    p->user_name = json_string_value(un);
    p->email = json_string_value(em);
    p->name = json_string_value(nm);
    p->deleted = json_is_true(del);
    return true;
}

static struct gen_knobs knobs(uint64_t count, uint64_t seed, double corrupt, double dup, double del) {
    return (struct gen_knobs){.count = count, .seed = seed, .corrupt_rate = corrupt, .dup_rate = dup, .delete_rate = del};
}

/* ------------------------------------------------------------------ tests */

static void test_format_time_known_instants(void **state) {
    char b[21] = {0};
    gen_format_time(0, b);
    assert_string_equal(b, "1970-01-01T00:00:00Z");
    gen_format_time(951782400, b);
    assert_string_equal(b, "2000-02-29T00:00:00Z");
    gen_format_time(1709294400, b);
    assert_string_equal(b, "2024-03-01T12:00:00Z");
    gen_format_time(-1, b);
    assert_string_equal(b, "1969-12-31T23:59:59Z");
    gen_format_time(4102444799LL, b);
    assert_string_equal(b, "2099-12-31T23:59:59Z");
}

static void test_same_seed_gives_same_bytes_and_other_seed_differs(void **state) {
    struct gen_knobs a = knobs(3000, 7, 0.1, 0.2, 0.1), b = a, c = a;
    c.seed = 8;
    char ra[GEN_RECORD_MAX], rb[GEN_RECORD_MAX], rc[GEN_RECORD_MAX];
    size_t differing = 0;
    for (uint64_t i = 0; i < a.count; i++) {
        size_t na = gen_record_format(&a, i, ra), nb = gen_record_format(&b, i, rb);
        assert_true(na > 0);
        assert_int_equal(na, nb);
        assert_memory_equal(ra, rb, na);
        size_t nc = gen_record_format(&c, i, rc);
        if (nc != na || memcmp(ra, rc, na) != 0) differing++;
    }
    assert_true(differing > a.count * 9 / 10);
}

static void test_valid_records_meet_every_rule(void **state) {
    struct gen_knobs k = knobs(20000, 3, 0.0, 0.2, 0.3);
    char r[GEN_RECORD_MAX];
    int64_t prev_updated = INT64_MIN;
    size_t non_ascii = 0;
    for (uint64_t i = 0; i < k.count; i++) {
        size_t n = gen_record_format(&k, i, r);
        assert_true(n > 0 && n < GEN_RECORD_MAX - 2);
        json_t *root;
        struct parsed p;
        if (!validate(r, &root, &p)) fail_msg("record %llu invalid: %s", (unsigned long long)i, r);
        assert_true(p.created_at <= p.updated_at);
        assert_true(p.updated_at > prev_updated);  /* a later record is always newer */
        prev_updated = p.updated_at;
        for (const char *c = p.name; *c; c++)
            if ((unsigned char)*c >= 0x80) {
                non_ascii++;
                break;
            }
        json_decref(root);
    }
    assert_true(non_ascii > 0);
}

static void test_every_corrupt_shape_fails_validation(void **state) {
    struct gen_knobs k = knobs(6000, 11, 1.0, 0.3, 0.3);
    char r[GEN_RECORD_MAX];
    uint64_t seen[GEN_CORRUPT_NKINDS] = {0};
    for (uint64_t i = 0; i < k.count; i++) {
        struct gen_record info;
        gen_record_info(&k, i, &info);
        assert_int_equal(info.kind, GEN_CORRUPT);
        seen[info.corrupt]++;
        size_t n = gen_record_format(&k, i, r);
        assert_true(n > 0);
        json_t *root;
        struct parsed p;
        if (validate(r, &root, &p)) fail_msg("corrupt record %llu passes validation: %s", (unsigned long long)i, r);
        if (info.corrupt == GEN_CORRUPT_BROKEN_JSON) {
            assert_null(root);
            /* Skippable by an incremental splitter: balanced braces and quotes, nothing else nests. */
            int depth = 0, quotes = 0;
            for (size_t c = 0; c < n; c++) {
                assert_true(r[c] != '[' && r[c] != ']' && r[c] != '\\' && r[c] != '\n');
                if (r[c] == '"') quotes++;
                if (quotes % 2 == 0 && r[c] == '{') depth++;
                if (quotes % 2 == 0 && r[c] == '}') depth--;
                assert_true(depth >= 0);
                if (c < n - 1) assert_true(depth > 0);
            }
            assert_int_equal(depth, 0);
            assert_int_equal(quotes % 2, 0);
        } else {
            assert_non_null(root);  /* every other shape is well-formed JSON with a bad field */
        }
        json_decref(root);
    }
    for (int c = 0; c < GEN_CORRUPT_NKINDS; c++) assert_true(seen[c] > k.count / GEN_CORRUPT_NKINDS / 2);
}

/* A client-side import of the formatted stream: newest updatedAt per userName wins. */
static void check_expected_matches_import(struct gen_knobs k) {
    char r[GEN_RECORD_MAX];
    json_t *latest = json_object();  /* userName -> [updatedAt, deleted] */
    assert_non_null(latest);
    uint64_t valid = 0, corrupt = 0, dups = 0;
    for (uint64_t i = 0; i < k.count; i++) {
        assert_true(gen_record_format(&k, i, r) > 0);
        json_t *root;
        struct parsed p;
        if (!validate(r, &root, &p)) {
            corrupt++;
            json_decref(root);
            continue;
        }
        valid++;
        json_t *prev = json_object_get(latest, p.user_name);
        struct gen_record info;
        gen_record_info(&k, i, &info);
        assert_int_equal(info.kind == GEN_DUP, prev != NULL);
        if (prev) {
            dups++;
            assert_true(p.updated_at > json_integer_value(json_array_get(prev, 0)));
            /* a repeat is newer than the record it repeats and changes its name and email */
            char tr[GEN_RECORD_MAX];
            assert_true(gen_record_format(&k, info.target, tr) > 0);
            json_t *troot;
            struct parsed t;
            assert_true(validate(tr, &troot, &t));
            assert_string_equal(p.user_name, t.user_name);
            assert_int_equal(p.id, t.id);
            assert_true(p.updated_at > t.updated_at);
            assert_true(p.created_at == t.created_at);
            assert_string_not_equal(p.email, t.email);
            assert_string_not_equal(p.name, t.name);
            json_decref(troot);
        }
        if (!prev || p.updated_at > json_integer_value(json_array_get(prev, 0)))
            assert_int_equal(json_object_set_new(latest, p.user_name,
                                                 json_pack("[I,b]", (json_int_t)p.updated_at, p.deleted)),
                             0);
        json_decref(root);
    }
    uint64_t deleted_final = 0;
    const char *key;
    json_t *v;
    json_object_foreach(latest, key, v) if (json_is_true(json_array_get(v, 1))) deleted_final++;

    struct gen_summary s;
    assert_int_equal(gen_expected(&k, &s), 0);
    assert_int_equal(s.count, k.count);
    assert_int_equal(s.valid, valid);
    assert_int_equal(s.corrupt, corrupt);
    assert_int_equal(s.duplicates, dups);
    assert_int_equal(s.distinct_user_names, json_object_size(latest));
    assert_int_equal(s.deleted_final, deleted_final);
    uint64_t by_kind = 0;
    for (int c = 0; c < GEN_CORRUPT_NKINDS; c++) by_kind += s.corrupt_by_kind[c];
    assert_int_equal(by_kind, s.corrupt);
    json_decref(latest);
}

static void test_expected_summary_matches_client_side_import(void **state) {
    check_expected_matches_import(knobs(30000, 42, 0.1, 0.2, 0.15));
    check_expected_matches_import(knobs(5000, 1, 0.5, 0.5, 0.5));
    check_expected_matches_import(knobs(2000, 99, 0.0, 0.0, 0.0));
}

static void test_extreme_rates(void **state) {
    struct gen_summary s;
    struct gen_knobs all_dup = knobs(1000, 5, 0.0, 1.0, 0.0);
    assert_int_equal(gen_expected(&all_dup, &s), 0);
    assert_int_equal(s.distinct_user_names, 1);
    assert_int_equal(s.duplicates, 999);
    assert_int_equal(s.deleted_final, 0);
    check_expected_matches_import(all_dup);

    struct gen_knobs all_deleted = knobs(1000, 5, 0.0, 0.3, 1.0);
    assert_int_equal(gen_expected(&all_deleted, &s), 0);
    assert_int_equal(s.deleted_final, s.distinct_user_names);
    assert_true(s.duplicates > 200 && s.duplicates < 400);

    struct gen_knobs all_corrupt = knobs(1000, 5, 1.0, 0.5, 0.5);
    assert_int_equal(gen_expected(&all_corrupt, &s), 0);
    assert_int_equal(s.valid, 0);
    assert_int_equal(s.distinct_user_names, 0);
    assert_int_equal(s.deleted_final, 0);

    struct gen_knobs none = knobs(0, 5, 0.5, 0.5, 0.5);
    assert_int_equal(gen_expected(&none, &s), 0);
    assert_int_equal(s.count + s.valid + s.corrupt + s.distinct_user_names + s.deleted_final, 0);
}

static void test_rates_are_honoured_statistically(void **state) {
    struct gen_knobs k = knobs(200000, 77, 0.05, 0.1, 0.2);
    struct gen_summary s;
    assert_int_equal(gen_expected(&k, &s), 0);
    assert_true(s.corrupt > 9000 && s.corrupt < 11000);              /* 5% of 200k */
    assert_true(s.duplicates > 17000 && s.duplicates < 21000);       /* ~10% of the valid ones */
    assert_true(s.deleted_final > s.distinct_user_names / 6 && s.deleted_final < s.distinct_user_names / 4);
}

static void test_user_names_are_unique_per_introducing_record(void **state) {
    /* No duplicates requested: every valid userName must be distinct, case-insensitively too. */
    struct gen_knobs k = knobs(20000, 123, 0.0, 0.0, 0.0);
    json_t *names = json_object();
    char r[GEN_RECORD_MAX];
    for (uint64_t i = 0; i < k.count; i++) {
        assert_true(gen_record_format(&k, i, r) > 0);
        json_t *root;
        struct parsed p;
        assert_true(validate(r, &root, &p));
        assert_int_equal(p.id, (json_int_t)i + 1);
        char lower[72];
        size_t n = 0;
        for (const char *c = p.user_name; *c && n < sizeof lower - 1; c++)
            lower[n++] = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
        lower[n] = '\0';
        assert_null(json_object_get(names, lower));
        json_object_set_new(names, lower, json_true());
        json_decref(root);
    }
    json_decref(names);
}

static void test_knobs_parse_strictly(void **state) {
    struct sim_knobs k;
    char err[192];
    knobs_defaults(&k);
    assert_int_equal(k.gen.count, 1000000);
    assert_int_equal(knobs_set(&k, "count", "250", err, sizeof err), 1);
    assert_int_equal(k.gen.count, 250);
    assert_int_equal(knobs_set(&k, "count", "-1", err, sizeof err), -1);
    assert_non_null(strstr(err, "count"));
    assert_int_equal(knobs_set(&k, "count", "12abc", err, sizeof err), -1);
    assert_int_equal(knobs_set(&k, "count", "2000000000", err, sizeof err), -1);
    assert_int_equal(knobs_set(&k, "count", NULL, err, sizeof err), -1);
    assert_int_equal(knobs_set(&k, "dup_rate", "0.25", err, sizeof err), 1);
    assert_true(k.gen.dup_rate == 0.25);
    assert_int_equal(knobs_set(&k, "fail_rate", "1.5", err, sizeof err), -1);
    assert_int_equal(knobs_set(&k, "drop_rate", "nan", err, sizeof err), -1);
    assert_int_equal(knobs_set(&k, "rate", "2000", err, sizeof err), 1);
    assert_true(k.rate == 2000.0);
    assert_int_equal(knobs_set(&k, "rate", "-3", err, sizeof err), -1);
    assert_int_equal(knobs_set(&k, "seed", "18446744073709551615", err, sizeof err), 1);
    assert_true(k.gen.seed == UINT64_MAX);
    assert_int_equal(knobs_set(&k, "first_byte_delay_ms", "700", err, sizeof err), 1);
    assert_int_equal(k.first_byte_delay_ms, 700);
    assert_int_equal(knobs_set(&k, "colour", "blue", err, sizeof err), 0);
}

static void test_knobs_from_env_names_the_variable(void **state) {
    struct sim_knobs k;
    char err[256];
    knobs_defaults(&k);
    setenv("LEGACY_CORRUPT_RATE", "0.05", 1);
    setenv("LEGACY_FIRST_BYTE_DELAY_MS", "15", 1);
    assert_int_equal(knobs_from_env(&k, err, sizeof err), 0);
    assert_true(k.gen.corrupt_rate == 0.05);
    assert_int_equal(k.first_byte_delay_ms, 15);
    setenv("LEGACY_COUNT", "lots", 1);
    assert_int_equal(knobs_from_env(&k, err, sizeof err), -1);
    assert_non_null(strstr(err, "LEGACY_COUNT"));
    unsetenv("LEGACY_COUNT");
    unsetenv("LEGACY_CORRUPT_RATE");
    unsetenv("LEGACY_FIRST_BYTE_DELAY_MS");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_time_known_instants),
        cmocka_unit_test(test_same_seed_gives_same_bytes_and_other_seed_differs),
        cmocka_unit_test(test_valid_records_meet_every_rule),
        cmocka_unit_test(test_every_corrupt_shape_fails_validation),
        cmocka_unit_test(test_expected_summary_matches_client_side_import),
        cmocka_unit_test(test_extreme_rates),
        cmocka_unit_test(test_rates_are_honoured_statistically),
        cmocka_unit_test(test_user_names_are_unique_per_introducing_record),
        cmocka_unit_test(test_knobs_parse_strictly),
        cmocka_unit_test(test_knobs_from_env_names_the_variable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
