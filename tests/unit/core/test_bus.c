/* test_bus.c: bus insert/overlap rules, lookup and dispatch with device-relative offsets. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"

struct fake_dev {
    uint64_t last_offset;
    uint32_t last_len;
    bool last_write;
    int calls;
    uint8_t value;
};

static void fake_io(void *dev, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
    struct fake_dev *d = dev;
    d->last_offset = offset;
    d->last_len = len;
    d->last_write = is_write;
    d->calls++;
    if (is_write)
        d->value = data[0];
    else
        memset(data, d->value, len);
}

START_TEST(test_insert_and_dispatch_offset)
{
    struct bus b;
    bus_init(&b);
    struct fake_dev d = {0};
    ck_assert_int_eq(bus_insert(&b, 0x3f8, 8, fake_io, &d, "com1"), 0);
    uint8_t v = 0x5a;
    ck_assert_int_eq(bus_access(&b, 0x3fd, &v, 1, true), 0);
    ck_assert_uint_eq(d.last_offset, 5);
    ck_assert(d.last_write);
    ck_assert_uint_eq(d.value, 0x5a);
    uint8_t r = 0;
    ck_assert_int_eq(bus_access(&b, 0x3f8, &r, 1, false), 0);
    ck_assert_uint_eq(d.last_offset, 0);
    ck_assert_uint_eq(r, 0x5a);
    bus_free(&b);
}
END_TEST

START_TEST(test_overlap_rejected)
{
    struct bus b;
    bus_init(&b);
    struct fake_dev d = {0};
    ck_assert_int_eq(bus_insert(&b, 0x100, 0x10, fake_io, &d, "a"), 0);
    ck_assert_int_eq(bus_insert(&b, 0x10f, 1, fake_io, &d, "end"), -EEXIST);
    ck_assert_int_eq(bus_insert(&b, 0xf8, 9, fake_io, &d, "start"), -EEXIST);
    ck_assert_int_eq(bus_insert(&b, 0x0, 0x1000, fake_io, &d, "around"), -EEXIST);
    ck_assert_int_eq(bus_insert(&b, 0x104, 2, fake_io, &d, "inside"), -EEXIST);
    /* Touching ranges are fine on both sides. */
    ck_assert_int_eq(bus_insert(&b, 0x110, 0x10, fake_io, &d, "after"), 0);
    ck_assert_int_eq(bus_insert(&b, 0xf0, 0x10, fake_io, &d, "before"), 0);
    ck_assert_uint_eq(b.count, 3);
    ck_assert_uint_eq(b.ranges[0].base, 0xf0);
    ck_assert_uint_eq(b.ranges[2].base, 0x110);
    bus_free(&b);
}
END_TEST

START_TEST(test_invalid_ranges)
{
    struct bus b;
    bus_init(&b);
    struct fake_dev d = {0};
    ck_assert_int_eq(bus_insert(&b, 0x10, 0, fake_io, &d, "empty"), -EINVAL);
    ck_assert_int_eq(bus_insert(&b, UINT64_MAX - 2, 8, fake_io, &d, "wraps"), -EINVAL);
    ck_assert_int_eq(bus_insert(&b, 0x10, 1, NULL, &d, "no handler"), -EINVAL);
    /* The very top of the address space is a valid range. */
    ck_assert_int_eq(bus_insert(&b, UINT64_MAX - 7, 8, fake_io, &d, "top"), 0);
    ck_assert_ptr_nonnull(bus_find(&b, UINT64_MAX));
    bus_free(&b);
}
END_TEST

START_TEST(test_miss_reads_ones)
{
    struct bus b;
    bus_init(&b);
    struct fake_dev d = {0};
    ck_assert_int_eq(bus_insert(&b, 0x60, 1, fake_io, &d, "kbd"), 0);
    uint32_t v = 0;
    ck_assert_int_eq(bus_access(&b, 0x61, (uint8_t *)&v, 4, false), -ENOENT);
    ck_assert_uint_eq(v, 0xffffffffu);
    /* An access that starts inside a device but runs past its end is refused, not split. */
    ck_assert_int_eq(bus_access(&b, 0x60, (uint8_t *)&v, 2, false), -ENOENT);
    ck_assert_int_eq(d.calls, 0);
    ck_assert_ptr_null(bus_find(&b, 0x5f));
    bus_free(&b);
}
END_TEST

START_TEST(test_many_ranges_sorted_lookup)
{
    struct bus b;
    bus_init(&b);
    struct fake_dev devs[64];
    memset(devs, 0, sizeof(devs));
    /* Insert in a scrambled order; every lookup must find its own device. */
    for (unsigned i = 0; i < 64; i++) {
        unsigned k = (i * 37) % 64;
        ck_assert_int_eq(bus_insert(&b, 0x1000 + k * 0x10, 0x8, fake_io, &devs[k], "d"), 0);
    }
    for (unsigned k = 0; k < 64; k++) {
        const struct bus_range *r = bus_find(&b, 0x1000 + k * 0x10 + 7);
        ck_assert_ptr_nonnull(r);
        ck_assert_ptr_eq(r->dev, &devs[k]);
        ck_assert_ptr_null(bus_find(&b, 0x1000 + k * 0x10 + 8));
    }
    bus_free(&b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("bus");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_insert_and_dispatch_offset);
    tcase_add_test(tc, test_overlap_rejected);
    tcase_add_test(tc, test_invalid_ranges);
    tcase_add_test(tc, test_miss_reads_ones);
    tcase_add_test(tc, test_many_ranges_sorted_lookup);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
