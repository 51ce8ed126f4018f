/* sync-service: validation of legacy records (the simulator README's rules) and their encoding
 * for the bulk-upsert body.
 *
 * Besides hand-written cases for every rule and every corrupt shape the README lists, the
 * simulator's generator is compiled in: for a stream with every kind of fault, each record must be
 * accepted exactly when the generator made it valid, a rejected one must be reported with the
 * generator's corrupt kind, and duplicates counted by legacy id must equal gen_expected's. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../tools/legacy-api/src/gen.c"
#include "sync_idset.h"
#include "sync_record.h"

#define VALID_PREFIX "{\"id\":1,\"userName\":\"Jurgen.Dvorak_1\",\"email\":\"jurgen.dvorak.1@example.net\","

static const char *parse(const char *text, struct sync_record *r) {
    return sync_record_parse(text, strlen(text), r);
}

static const char *reason_of(const char *text) {
    struct sync_record r;
    return parse(text, &r);
}

/* A valid record with one field's raw JSON value replaced (field NULL: none). */
static const char *with(const char *field, const char *value) {
    static char buf[1024];
    const char *names[] = {"id", "userName", "email", "name", "createdAt", "updatedAt", "deleted"};
    const char *vals[] = {"1", "\"Jurgen.Dvorak_1\"", "\"jurgen.dvorak.1@example.net\"", "\"J\\u00fcrgen Dvo\\u0159\\u00e1k\"",
                          "\"2017-01-02T19:02:05Z\"", "\"2020-01-01T00:00:07Z\"", "false"};
    size_t o = 0;
    buf[o++] = '{';
    bool first = true;
    for (int i = 0; i < 7; i++) {
        const char *v = vals[i];
        if (field && strcmp(field, names[i]) == 0) {
            if (!value) continue;      /* drop the field */
            v = value;
        }
        o += (size_t)snprintf(buf + o, sizeof buf - o, "%s\"%s\":%s", first ? "" : ",", names[i], v);
        first = false;
    }
    snprintf(buf + o, sizeof buf - o, "}");
    return buf;
}

static void test_record_valid_record_is_accepted_and_read(void **state) {
    struct sync_record r;
    const char *text = VALID_PREFIX "\"name\":\"Jürgen Dvořák\",\"createdAt\":\"2017-01-02T19:02:05Z\","
                                    "\"updatedAt\":\"2020-01-01T00:00:07Z\",\"deleted\":true}";
    assert_null(parse(text, &r));
    assert_int_equal(r.id, 1);
    assert_int_equal(r.user_name.len, strlen("Jurgen.Dvorak_1"));
    assert_memory_equal(r.user_name.p, "Jurgen.Dvorak_1", r.user_name.len);
    assert_memory_equal(r.updated_at.p, "2020-01-01T00:00:07Z", 20);
    assert_true(r.deleted);
    assert_null(reason_of(with(NULL, NULL)));
    /* whitespace around tokens and fields in another order are fine */
    assert_null(reason_of(" { \"deleted\" : false , \"id\" : 7 , \"userName\" : \"abc\" , \"email\" : \"a@b.c\" , "
                          "\"name\" : \"n\" , \"updatedAt\" : \"2020-01-01T00:00:00Z\" , \"createdAt\" : "
                          "\"2020-01-01T00:00:00Z\" } "));
}

static void test_record_missing_field_each(void **state) {
    assert_string_equal(reason_of(with("id", NULL)), "missing_field: id");
    assert_string_equal(reason_of(with("userName", NULL)), "missing_field: userName");
    assert_string_equal(reason_of(with("email", NULL)), "missing_field: email");
    assert_string_equal(reason_of(with("name", NULL)), "missing_field: name");
    assert_string_equal(reason_of(with("createdAt", NULL)), "missing_field: createdAt");
    assert_string_equal(reason_of(with("updatedAt", NULL)), "missing_field: updatedAt");
    assert_string_equal(reason_of(with("deleted", NULL)), "missing_field: deleted");
}

static void test_record_wrong_type_shapes_from_the_readme(void **state) {
    assert_string_equal(reason_of(with("id", "\"abc17\"")), "wrong_type: id");
    assert_string_equal(reason_of(with("id", "\"123\"")), "wrong_type: id");   /* never coerced */
    assert_string_equal(reason_of(with("deleted", "\"yes\"")), "wrong_type: deleted");
    assert_string_equal(reason_of(with("userName", "17")), "wrong_type: userName");
    assert_string_equal(reason_of(with("email", "null")), "wrong_type: email");
    assert_string_equal(reason_of(with("updatedAt", "1577836807")), "wrong_type: updatedAt");
    assert_string_equal(reason_of(with("name", "[]")), "wrong_type: name");
    assert_string_equal(reason_of(with("deleted", "0")), "wrong_type: deleted");
}

static void test_record_id_must_be_a_positive_json_integer(void **state) {
    assert_string_equal(reason_of(with("id", "0")), "invalid_id: id");
    assert_string_equal(reason_of(with("id", "-3")), "invalid_id: id");
    assert_string_equal(reason_of(with("id", "1.0")), "invalid_id: id");
    assert_string_equal(reason_of(with("id", "1e3")), "invalid_id: id");
    assert_string_equal(reason_of(with("id", "99999999999999999999")), "invalid_id: id");
    assert_null(reason_of(with("id", "9223372036854775807")));
    assert_string_equal(reason_of(with("id", "01")), "broken_json");   /* not JSON */
}

static void test_record_invalid_email_shapes_from_the_readme(void **state) {
    const char *bad[] = {"\"userexample.com\"", "\"us er@example.com\"", "\"@example.com\"", "\"user@\"",
                         "\"user@@example.com\"", "\"user@example\"", "\"user@example.\"", "\"user@.com\"",
                         "\"a\\u00a0b@example.com\"", "\"a@exa\\tmple.com\"", "\"a\\u2003@example.com\"", "\"\""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *why = reason_of(with("email", bad[i]));
        assert_non_null(why);
        assert_string_equal(why, "invalid_email: email");
    }
    assert_null(reason_of(with("email", "\"a@b.c\"")));
    assert_null(reason_of(with("email", "\"a@b..c\"")));
    assert_null(reason_of(with("email", "\"ünï@exämple.com\"")));
    assert_null(reason_of(with("email", "\"o'brien+tag@mail.example.co.uk\"")));
}

static void test_record_invalid_user_name_shapes_from_the_readme(void **state) {
    char long_name[80];
    memset(long_name, 'a', sizeof long_name);
    long_name[0] = '"';
    long_name[66] = '"';
    long_name[67] = 0;  /* 65 characters */
    const char *bad[] = {"\"ab\"", "\"\"", "\"bad name 12\"", "\"user!12\"", long_name, "\"abc\\n\"", "\"ab\\u00e9\""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_string_equal(reason_of(with("userName", bad[i])), "invalid_user_name: userName");
    long_name[65] = '"';
    long_name[66] = 0;  /* 64 characters */
    assert_null(reason_of(with("userName", long_name)));
    assert_null(reason_of(with("userName", "\"a.b_c-D9\"")));
    assert_null(reason_of(with("userName", "\"\\u0041bc\"")));   /* escapes are decoded first */
}

static void test_record_invalid_timestamp_shapes_from_the_readme(void **state) {
    const char *bad[] = {"\"not-a-date\"", "\"2024-03-01 12:00:00\"", "\"01/03/2024 12:00\"", "\"\"",
                         "\"2024-13-45T25:61:61Z\"", "\"2023-02-29T00:00:00Z\"", "\"2024-04-31T00:00:00Z\"",
                         "\"2024-01-01T24:00:00Z\"", "\"2024-01-01T00:00:60Z\"", "\"0000-01-01T00:00:00Z\"",
                         "\"2024-01-01T00:00:00+00:00\"", "\"2024-01-01T00:00:00.5Z\""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_string_equal(reason_of(with("createdAt", bad[i])), "invalid_timestamp: createdAt");
        assert_string_equal(reason_of(with("updatedAt", bad[i])), "invalid_timestamp: updatedAt");
    }
    assert_null(reason_of(with("updatedAt", "\"2024-02-29T23:59:59Z\"")));
    assert_null(reason_of(with("updatedAt", "\"2000-02-29T00:00:00Z\"")));
    assert_string_equal(reason_of(with("updatedAt", "\"1900-02-29T00:00:00Z\"")), "invalid_timestamp: updatedAt");
}

static void test_record_broken_json_shapes_from_the_readme(void **state) {
    const char *bad[] = {
        "{\"id\":5,\"userName\":\"x\" \"email\":}",
        "{\"id\":5,\"userName\":\"Jurgen.Dvorak_1\",,\"deleted\":false}",
        "{id:5,userName:\"Jurgen.Dvorak_1\"}",
        "{\"id\":5,\"userName\":\"u\",\"email\":\"a@b.c\",\"name\":\"n\",\"createdAt\":\"2020-01-01T00:00:00Z\","
        "\"updatedAt\":\"2020-01-01T00:00:00Z\",\"deleted\":fals}",
        "{\"id\":5,\"userName\":\"Jurgen.Dvorak_1\",}",
        "{\"id\":5:\"userName\"}",
        "",
        "{",
        "{\"id\":1}}",
        "{\"name\":\"\\x41\"}",
        "{\"name\":\"\\ud800\"}",          /* lone surrogate */
        "{\"name\":\"\\udc00\\ud800\"}",
        "{\"name\":\"tab\there\"}",       /* raw control character */
        "{\"name\":\"\xc3\"}",             /* cut UTF-8 */
        "{\"name\":\"\xc0\xaf\"}",         /* overlong */
        "{\"name\":\"\xed\xa0\x80\"}",     /* UTF-8 encoded surrogate */
        "{\"name\":\"\xf4\x90\x80\x80\"}", /* above U+10FFFF */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) assert_string_equal(reason_of(bad[i]), "broken_json");
}

static void test_record_other_defects(void **state) {
    assert_string_equal(reason_of("[1,2]"), "not_an_object");
    assert_string_equal(reason_of("\"text\""), "not_an_object");
    assert_string_equal(reason_of("42"), "not_an_object");
    assert_string_equal(reason_of("{}"), "missing_field: id");
    char extra[1024];
    const char *v = with(NULL, NULL);
    snprintf(extra, sizeof extra, "%.*s,\"role\":\"admin\"}", (int)strlen(v) - 1, v);
    assert_string_equal(reason_of(extra), "unknown_field");
    snprintf(extra, sizeof extra, "%.*s,\"id\":2}", (int)strlen(v) - 1, v);
    assert_string_equal(reason_of(extra), "duplicate_field");
    /* a key spelled with an escape is the same key */
    snprintf(extra, sizeof extra, "%.*s,\"\\u0069d\":2}", (int)strlen(v) - 1, v);
    assert_string_equal(reason_of(extra), "duplicate_field");
    assert_string_equal(reason_of(with("name", "\"\"")), "invalid_name: name");
    assert_string_equal(reason_of(with("name", "\"a\\u0000b\"")), "invalid_name: name");
    assert_string_equal(reason_of(with("email", "\"a\\u0000@b.c\"")), "invalid_email: email");
}

static void test_record_names_with_escapes_and_unicode_are_valid(void **state) {
    const char *names[] = {"\"O'Brien\"", "\"Say \\\"hi\\\"\"", "\"李小龍\"", "\"Zoë 😀\"", "\"\\ud83d\\ude00\"",
                           "\"back\\\\slash\\/\""};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) assert_null(reason_of(with("name", names[i])));
}

static void test_record_encoding_is_the_bulk_upsert_shape(void **state) {
    struct sync_record r;
    const char *text = with("name", "\"Say \\\"hi\\\" \\u00fc \\ud83d\\ude00\"");
    assert_null(parse(text, &r));
    struct svc_buf b;
    svc_buf_init(&b);
    sync_record_append_tsv(&b, &r);
    assert_false(b.oom);
    assert_string_equal(b.data, "Jurgen.Dvorak_1\tjurgen.dvorak.1@example.net\tSay \"hi\" \xc3\xbc \xf0\x9f\x98\x80\t1\tf\t"
                                "2020-01-01T00:00:07Z\n");
    svc_buf_free(&b);
}

/* The TSV line: JSON escapes decoded, TAB/LF/CR/backslash in COPY text escapes, the rest raw. */
static void test_record_tsv_line_decodes_json_and_escapes_copy_text(void **state) {
    struct sync_record r;
    const char *text = with("name", "\"a\\tb\\nc\\rd\\\\e\\u00fc\\/\\\"\\b f\"");
    assert_null(parse(text, &r));
    struct svc_buf b;
    svc_buf_init(&b);
    sync_record_append_tsv(&b, &r);
    assert_false(b.oom);
    assert_string_equal(b.data, "Jurgen.Dvorak_1\tjurgen.dvorak.1@example.net\t"
                                "a\\tb\\nc\\rd\\\\e\xc3\xbc/\"\b f\t1\tf\t2020-01-01T00:00:07Z\n");
    /* a plain record is its tokens joined by TABs */
    svc_buf_reset(&b);
    assert_null(parse(with("name", "\"Plain Name\""), &r));
    sync_record_append_tsv(&b, &r);
    assert_string_equal(b.data, "Jurgen.Dvorak_1\tjurgen.dvorak.1@example.net\tPlain Name\t1\tf\t2020-01-01T00:00:07Z\n");
    svc_buf_free(&b);
}

/* Every record of a faulty generated stream gets the generator's verdict. */
static void test_record_agrees_with_the_simulator_generator(void **state) {
    struct gen_knobs k = {.count = 200000, .seed = 42, .corrupt_rate = 0.05, .dup_rate = 0.1, .delete_rate = 0.1};
    struct gen_summary exp;
    assert_int_equal(gen_expected(&k, &exp), 0);
    struct sync_idset *ids = idset_new();
    assert_non_null(ids);
    uint64_t valid = 0, dups = 0, by_kind[GEN_CORRUPT_NKINDS] = {0};
    char rec[GEN_RECORD_MAX];
    struct svc_buf b;
    svc_buf_init(&b);
    for (uint64_t i = 0; i < k.count; i++) {
        struct gen_record info;
        gen_record_info(&k, i, &info);
        size_t n = gen_record_format(&k, i, rec);
        struct sync_record r;
        const char *why = sync_record_parse(rec, n, &r);
        if (info.kind != GEN_CORRUPT) {
            if (why) fail_msg("record %llu rejected: %s", (unsigned long long)i, why);
            assert_int_equal(r.id, info.id);
            assert_int_equal(r.deleted, info.deleted);
            valid++;
            if (idset_add(ids, (uint64_t)r.id) == 0) dups++;
            if (i % 997 == 0) { /* the encoding is one line of six fields */
                svc_buf_reset(&b);
                sync_record_append_tsv(&b, &r);
                assert_false(b.oom);
                size_t tabs = 0, lfs = 0;
                for (size_t j = 0; j < b.len; j++) {
                    tabs += b.data[j] == '\t';
                    lfs += b.data[j] == '\n';
                }
                assert_int_equal(tabs, 5);
                assert_int_equal(lfs, 1);
                assert_int_equal(b.data[b.len - 1], '\n');
            }
        } else {
            if (!why) fail_msg("record %llu accepted: %.*s", (unsigned long long)i, (int)n, rec);
            const char *kind = gen_corrupt_kind_name(info.corrupt);
            if (strncmp(why, kind, strlen(kind)) != 0)
                fail_msg("record %llu: reason %s, generator kind %s", (unsigned long long)i, why, kind);
            by_kind[info.corrupt]++;
        }
    }
    assert_int_equal(valid, exp.valid);
    assert_int_equal(dups, exp.duplicates);
    assert_int_equal(idset_count(ids), exp.distinct_user_names);
    for (int c = 0; c < GEN_CORRUPT_NKINDS; c++) assert_int_equal(by_kind[c], exp.corrupt_by_kind[c]);
    svc_buf_free(&b);
    idset_free(ids);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_valid_record_is_accepted_and_read),
        cmocka_unit_test(test_record_missing_field_each),
        cmocka_unit_test(test_record_wrong_type_shapes_from_the_readme),
        cmocka_unit_test(test_record_id_must_be_a_positive_json_integer),
        cmocka_unit_test(test_record_invalid_email_shapes_from_the_readme),
        cmocka_unit_test(test_record_invalid_user_name_shapes_from_the_readme),
        cmocka_unit_test(test_record_invalid_timestamp_shapes_from_the_readme),
        cmocka_unit_test(test_record_broken_json_shapes_from_the_readme),
        cmocka_unit_test(test_record_other_defects),
        cmocka_unit_test(test_record_names_with_escapes_and_unicode_are_valid),
        cmocka_unit_test(test_record_encoding_is_the_bulk_upsert_shape),
        cmocka_unit_test(test_record_tsv_line_decodes_json_and_escapes_copy_text),
        cmocka_unit_test(test_record_agrees_with_the_simulator_generator),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
