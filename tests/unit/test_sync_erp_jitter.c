/* sync-service ERP schedule: the deterministic jitter (erp_jitter.h) and the job payloads/ids
 * (erp_job.h).
 *
 * The bar: over 1,000 tenants no 1-minute window of the spread holds more than 1.5× the average
 * starts (every sliding minute, not only calendar minutes), the offsets are the same on every call
 * (every instance, every restart: a pure function with pinned values), and they stay inside the
 * window in whole steps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "erp_jitter.h"
#include "erp_job.h"

static int cmp64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The most starts in any window of `win` ms (sliding over every start). */
static int busiest(int64_t *offs, int n, int64_t win) {
    qsort(offs, (size_t)n, sizeof *offs, cmp64);
    int best = 0;
    for (int i = 0, j = 0; i < n; i++) {
        while (offs[i] - offs[j] >= win) j++;
        if (i - j + 1 > best) best = i - j + 1;
    }
    return best;
}

static void check_spread(int n, int64_t window, int64_t step) {
    int64_t *offs = malloc((size_t)n * sizeof *offs);
    for (int i = 0; i < n; i++) {
        offs[i] = erp_jitter_offset_ms(i + 1, window, step);
        assert_true(offs[i] >= 0 && offs[i] <= window);
        assert_int_equal(offs[i] % step, 0);
    }
    double avg = (double)n * 60000.0 / (double)window;
    int max = busiest(offs, n, 60000);
    if (max > 1.5 * avg) fail_msg("window %lld ms: busiest minute %d starts, average %.1f", (long long)window, max, avg);
    free(offs);
}

static void test_1000_tenants_never_crowd_a_minute(void **state) {
    check_spread(1000, 3600000, 1000);   /* the default window and step */
    check_spread(1000, 1800000, 1000);
    check_spread(1000, 7200000, 1000);
    check_spread(1000, 600000, 100);
    check_spread(5000, 3600000, 1000);
}

static void test_offsets_are_deterministic_and_pinned(void **state) {
    for (int64_t seq = 1; seq < 100; seq++)
        assert_int_equal(erp_jitter_offset_ms(seq, 3600000, 1000), erp_jitter_offset_ms(seq, 3600000, 1000));
    /* Pinned: a change of the formula moves every tenant's schedule, so it must be deliberate. */
    assert_int_equal(erp_jitter_offset_ms(1, 3600000, 1000), 2225000);
    assert_int_equal(erp_jitter_offset_ms(2, 3600000, 1000), 850000);
    assert_int_equal(erp_jitter_offset_ms(1000, 3600000, 1000), 122000);
    /* No window: no delay; a step larger than the window: 0 or the window's start. */
    assert_int_equal(erp_jitter_offset_ms(5, 0, 1000), 0);
    assert_int_equal(erp_jitter_offset_ms(5, 500, 1000), 0);
    assert_int_equal(erp_jitter_offset_ms(5, 1000, 0) <= 1000, 1);
}

static void test_job_payload_round_trips_and_holds_no_pii(void **state) {
    struct erp_job_spec s = {.kind = ERP_PRODUCTS, .full = true};
    strcpy(s.tenant, "01936f9e-0000-7000-8000-000000000001");
    strcpy(s.slot, "s29944560");
    char payload[160], id[SVC_QUEUE_JOB_ID_MAX + 1], unique[SVC_QUEUE_JOB_ID_MAX + 1];
    assert_int_equal(erp_job_payload(&s, payload, sizeof payload), 0);
    assert_string_equal(payload, "erp1 products 01936f9e-0000-7000-8000-000000000001 s29944560 1");
    struct erp_job_spec back;
    assert_int_equal(erp_job_parse(payload, strlen(payload), &back), 0);
    assert_int_equal(back.kind, ERP_PRODUCTS);
    assert_true(back.full);
    assert_string_equal(back.tenant, s.tenant);
    assert_string_equal(back.slot, s.slot);
    erp_job_id(&s, id);
    assert_string_equal(id, "products:01936f9e-0000-7000-8000-000000000001:s29944560");
    erp_job_unique_key(ERP_PRODUCTS, s.tenant, unique);
    assert_string_equal(unique, "products:01936f9e-0000-7000-8000-000000000001");
    const char *bad[] = {"", "erp1 invoices 01936f9e-0000-7000-8000-000000000001 s1 0",
                         "erp1 products not-a-uuid s1 0", "erp1 products 01936f9e-0000-7000-8000-000000000001 s:1 0",
                         "erp1 products 01936f9e-0000-7000-8000-000000000001 s1 2",
                         "erp1 products 01936f9e-0000-7000-8000-000000000001 s1 0 extra", "erp2 products x y 0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) assert_int_equal(erp_job_parse(bad[i], strlen(bad[i]), &back), -1);
    strcpy(s.slot, "bad slot");
    assert_int_equal(erp_job_payload(&s, payload, sizeof payload), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_1000_tenants_never_crowd_a_minute),
        cmocka_unit_test(test_offsets_are_deterministic_and_pinned),
        cmocka_unit_test(test_job_payload_round_trips_and_holds_no_pii),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
