/* test_bus.c: bus insert/overlap rules, lookup and dispatch with device-relative offsets. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"

struct fake_dev {
    struct device dev;
    uint64_t last_offset;
    unsigned last_region;
    uint32_t last_len;
    bool last_write;
    int calls;
    uint8_t value;
};

static struct fake_dev *record(struct device *dev, unsigned region, uint64_t offset, uint32_t len,
                               bool is_write)
{
    struct fake_dev *d = (struct fake_dev *)dev;
    d->last_offset = offset;
    d->last_region = region;
    d->last_len = len;
    d->last_write = is_write;
    d->calls++;
    return d;
}

static void fake_read(struct device *dev, unsigned region, uint64_t offset, uint8_t *data,
                      uint32_t len)
{
    memset(data, record(dev, region, offset, len, false)->value, len);
}

static void fake_write(struct device *dev, unsigned region, uint64_t offset, const uint8_t *data,
                       uint32_t len)
{
    record(dev, region, offset, len, true)->value = data[0];
}

static const struct device_ops fake_ops = {.read = fake_read, .write = fake_write};
static const struct device_ops no_ops = {0};

#define FAKE_DEV                                                                                   \
    {                                                                                              \
        .dev = {.name = "fake", .ops = &fake_ops }                                                 \
    }

START_TEST(test_insert_and_dispatch_offset)
{
    struct bus b;
    bus_init(&b);
    struct fake_dev d = FAKE_DEV;
    ck_assert_int_eq(bus_insert(&b, 0x3f8, 8, &d.dev, 0), 0);
    uint8_t v = 0x5a;
    ck_assert_int_eq(bus_access(&b, 0x3fd, &v, 1, true), 0);
    ck_assert_uint_eq(d.last_offset, 5);
    ck_assert_uint_eq(d.last_region, 0);
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
    struct fake_dev d = FAKE_DEV;
    ck_assert_int_eq(bus_insert(&b, 0x100, 0x10, &d.dev, 0), 0);
    ck_assert_int_eq(bus_insert(&b, 0x10f, 1, &d.dev, 0), -EEXIST);
    ck_assert_int_eq(bus_insert(&b, 0xf8, 9, &d.dev, 0), -EEXIST);
    ck_assert_int_eq(bus_insert(&b, 0x0, 0x1000, &d.dev, 0), -EEXIST);
    ck_assert_int_eq(bus_insert(&b, 0x104, 2, &d.dev, 0), -EEXIST);
    /* Touching ranges are fine on both sides. */
    ck_assert_int_eq(bus_insert(&b, 0x110, 0x10, &d.dev, 0), 0);
    ck_assert_int_eq(bus_insert(&b, 0xf0, 0x10, &d.dev, 0), 0);
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
    struct fake_dev d = FAKE_DEV;
    ck_assert_int_eq(bus_insert(&b, 0x10, 0, &d.dev, 0), -EINVAL);
    ck_assert_int_eq(bus_insert(&b, UINT64_MAX - 2, 8, &d.dev, 0), -EINVAL);
    ck_assert_int_eq(bus_insert(&b, 0x10, 1, NULL, 0), -EINVAL);
    struct fake_dev silent = {.dev = {.name = "no handlers", .ops = &no_ops}};
    ck_assert_int_eq(bus_insert(&b, 0x10, 1, &silent.dev, 0), -EINVAL);
    /* The very top of the address space is a valid range. */
    ck_assert_int_eq(bus_insert(&b, UINT64_MAX - 7, 8, &d.dev, 0), 0);
    ck_assert_ptr_nonnull(bus_find(&b, UINT64_MAX));
    bus_free(&b);
}
END_TEST

START_TEST(test_miss_reads_ones)
{
    struct bus b;
    bus_init(&b);
    struct fake_dev d = FAKE_DEV;
    ck_assert_int_eq(bus_insert(&b, 0x60, 1, &d.dev, 0), 0);
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
    for (unsigned i = 0; i < 64; i++)
        devs[i] = (struct fake_dev)FAKE_DEV;
    /* Insert in a scrambled order; every lookup must find its own device. */
    for (unsigned i = 0; i < 64; i++) {
        unsigned k = (i * 37) % 64;
        ck_assert_int_eq(bus_insert(&b, 0x1000 + k * 0x10, 0x8, &devs[k].dev, k % 3), 0);
    }
    for (unsigned k = 0; k < 64; k++) {
        const struct bus_range *r = bus_find(&b, 0x1000 + k * 0x10 + 7);
        ck_assert_ptr_nonnull(r);
        ck_assert_ptr_eq(r->dev, &devs[k].dev);
        ck_assert_uint_eq(r->region, k % 3);
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
