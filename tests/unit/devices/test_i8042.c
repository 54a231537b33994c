/* test_i8042.c: the i8042 through its device interface: probe answers, the reset paths, reset. */
#include <check.h>

#include "devices/i8042.h"

struct ends {
    int resets;
};

static void on_end(void *ctx, enum kiln_exit_reason reason, int status, int error, const char *msg)
{
    (void)status;
    (void)error;
    (void)msg;
    ck_assert_int_eq(reason, KILN_EXIT_REBOOT);
    ((struct ends *)ctx)->resets++;
}

enum { DATA, CMD }; /* the device's regions: ports 0x60 and 0x64 */

static uint8_t in(struct device *d, unsigned region)
{
    uint8_t v = 0xaa;
    d->ops->read(d, region, 0, &v, 1);
    return v;
}

static void out(struct device *d, unsigned region, uint8_t v)
{
    d->ops->write(d, region, 0, &v, 1);
}

static struct device *make(struct ends *e)
{
    const struct end_vm end = {on_end, e};
    struct device *d;
    ck_assert_int_eq(i8042_create(&end, &d), 0);
    return d;
}

START_TEST(test_ranges)
{
    struct ends e = {0};
    struct device *d = make(&e);
    ck_assert_uint_eq(d->nranges, 2);
    ck_assert_uint_eq(d->ranges[DATA].base, I8042_DATA_PORT);
    ck_assert_uint_eq(d->ranges[CMD].base, I8042_CMD_PORT);
    ck_assert_int_eq(d->ranges[DATA].space, DEVICE_PIO);
    d->ops->destroy(d);
}
END_TEST

START_TEST(test_probe_answers)
{
    struct ends e = {0};
    struct device *d = make(&e);
    ck_assert_uint_eq(in(d, CMD) & 0x01, 0); /* output buffer empty */
    out(d, CMD, 0xaa);                       /* self test */
    ck_assert_uint_eq(in(d, CMD) & 0x01, 1);
    ck_assert_uint_eq(in(d, DATA), 0x55);
    ck_assert_uint_eq(in(d, CMD) & 0x01, 0);
    out(d, CMD, 0x20); /* read the configuration byte: keyboard and mouse disabled */
    ck_assert_uint_eq(in(d, DATA), 0x30);
    ck_assert_int_eq(e.resets, 0);
    d->ops->destroy(d);
}
END_TEST

START_TEST(test_reset_paths)
{
    struct ends e = {0};
    struct device *d = make(&e);
    out(d, CMD, 0xd1);  /* write the output port ... */
    out(d, DATA, 0x01); /* ... reset line high: nothing */
    ck_assert_int_eq(e.resets, 0);
    out(d, CMD, 0xd1);
    out(d, DATA, 0x00); /* reset line low: CPU reset */
    ck_assert_int_eq(e.resets, 1);
    out(d, CMD, 0xfe); /* pulse reset */
    ck_assert_int_eq(e.resets, 2);
    d->ops->destroy(d);
}
END_TEST

START_TEST(test_reset_op_restores_power_on)
{
    struct ends e = {0};
    struct device *d = make(&e);
    out(d, CMD, 0x60); /* write the configuration byte */
    out(d, DATA, 0x47);
    out(d, CMD, 0xaa); /* leave a byte in the output buffer */
    out(d, CMD, 0x60); /* and a command waiting for its data */
    ck_assert_uint_eq(in(d, CMD) & 0x09, 0x09);
    ck_assert_int_eq(d->ops->reset(d), 0);
    ck_assert_uint_eq(in(d, CMD) & 0x09, 0); /* empty, no command pending */
    out(d, CMD, 0x20);
    ck_assert_uint_eq(in(d, DATA), 0x30);
    ck_assert_int_eq(e.resets, 0);
    d->ops->destroy(d);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("i8042");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_ranges);
    tcase_add_test(tc, test_probe_answers);
    tcase_add_test(tc, test_reset_paths);
    tcase_add_test(tc, test_reset_op_restores_power_on);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
