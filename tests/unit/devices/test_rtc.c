/* test_rtc.c: the RTC's CMOS memory and clock through its ports, and its snapshot state. */
#include <check.h>
#include <string.h>
#include <unistd.h>

#include "devices/rtc.h"
#include "state.h"

static const struct rtc_config cfg = {.ram_below_4g = 256u << 20, .cpus = 2};
static struct device *dev;

static void setup(void)
{
    ck_assert_int_eq(rtc_create(&cfg, &dev), 0);
}

static void teardown(void)
{
    dev->ops->destroy(dev);
}

static uint8_t rd(struct device *d, uint8_t reg)
{
    uint8_t v;
    d->ops->write(d, 0, 0, &reg, 1);
    d->ops->read(d, 0, 1, &v, 1);
    return v;
}

static void wr(struct device *d, uint8_t reg, uint8_t v)
{
    d->ops->write(d, 0, 0, &reg, 1);
    d->ops->write(d, 0, 1, &v, 1);
}

/* Set the clock (binary, 24-hour) to 2031-07-04 12:34:SS, the way a guest does. */
static void set_clock(struct device *d, uint8_t sec)
{
    wr(d, 0x0b, 0x80 | 0x04 | 0x02);
    const uint8_t regs[][2] = {{0x00, sec}, {0x02, 34}, {0x04, 12}, {0x07, 4},
                               {0x08, 7},   {0x09, 31}, {0x32, 20}};
    for (size_t i = 0; i < sizeof(regs) / sizeof(regs[0]); i++)
        wr(d, regs[i][0], regs[i][1]);
    wr(d, 0x0b, 0x04 | 0x02);
}

/* Seconds since 12:34:00 on the clock, checking the date is the one set_clock set. */
static int clock_seconds(struct device *d)
{
    ck_assert_uint_eq(rd(d, 0x09), 31);
    ck_assert_uint_eq(rd(d, 0x32), 20);
    ck_assert_uint_eq(rd(d, 0x08), 7);
    ck_assert_uint_eq(rd(d, 0x07), 4);
    ck_assert_uint_eq(rd(d, 0x04), 12);
    return (rd(d, 0x02) - 34) * 60 + rd(d, 0x00);
}

static void save(struct device *d, struct device_state *st)
{
    *st = (struct device_state){0};
    ck_assert_int_eq(d->ops->save(d, st), 0);
}

/* A new device restored from st: 0 or the restore's error. */
static int restore(const struct device_state *st, struct device **out)
{
    ck_assert_int_eq(rtc_create(&cfg, out), 0);
    struct device_state r = state_reader(st->buf, st->len);
    int ret = (*out)->ops->restore(*out, &r);
    return ret == 0 ? state_done(&r) : ret;
}

START_TEST(test_cmos_facts)
{
    ck_assert_uint_eq(rd(dev, 0x5f), 1); /* vCPUs - 1 */
    ck_assert_uint_eq(rd(dev, 0x15) | rd(dev, 0x16) << 8, 640);
    ck_assert_uint_eq(rd(dev, 0x0d), 0x80); /* valid RAM and time */
}
END_TEST

/* CMOS memory, the index, and the guest's clock survive, the clock from where it stood. */
START_TEST(test_save_restore)
{
    set_clock(dev, 5);
    wr(dev, 0x40, 0x5a); /* a CMOS cell the guest keeps something in */
    wr(dev, 0x01, 0x30); /* the alarm's seconds */
    uint8_t idx = 0x40;  /* left selected, as if between its two accesses */
    dev->ops->write(dev, 0, 0, &idx, 1);
    struct device_state st;
    save(dev, &st);
    struct device *r;
    ck_assert_int_eq(restore(&st, &r), 0);
    uint8_t v;
    r->ops->read(r, 0, 1, &v, 1); /* no index written: the saved one */
    ck_assert_uint_eq(v, 0x5a);
    ck_assert_uint_eq(rd(r, 0x01), 0x30);
    ck_assert_uint_eq(rd(r, 0x0b), 0x06);
    int s = clock_seconds(r);
    ck_assert_int_ge(s, 5);
    ck_assert_int_le(s, 7);
    r->ops->destroy(r);
    state_free(&st);
}
END_TEST

/* No time passes for the guest between the snapshot and the restore. */
START_TEST(test_clock_continues_from_the_snapshot)
{
    set_clock(dev, 10);
    struct device_state st;
    save(dev, &st);
    sleep(2);
    struct device *r;
    ck_assert_int_eq(restore(&st, &r), 0);
    ck_assert_int_le(clock_seconds(r), 11); /* not 12 or more: the pause does not count */
    ck_assert_int_ge(clock_seconds(dev), 12);
    r->ops->destroy(r);
    state_free(&st);
}
END_TEST

/* A clock being set (register B's SET) stays stopped at the time being set. */
START_TEST(test_frozen_clock)
{
    set_clock(dev, 20);
    wr(dev, 0x0b, 0x80 | 0x04 | 0x02);
    wr(dev, 0x00, 42);
    struct device_state st;
    save(dev, &st);
    struct device *r;
    ck_assert_int_eq(restore(&st, &r), 0);
    ck_assert_int_eq(clock_seconds(r), 42);
    wr(r, 0x0b, 0x04 | 0x02); /* runs again from there */
    ck_assert_int_ge(clock_seconds(r), 42);
    ck_assert_int_le(clock_seconds(r), 43);
    r->ops->destroy(r);
    state_free(&st);
}
END_TEST

/* What no guest write can make is refused, as is a short or long state. */
START_TEST(test_restore_hostile)
{
    struct device_state st;
    save(dev, &st);
    struct {
        size_t at;
        uint8_t v;
    } bad[] = {
        {0, 0x80},             /* index past the 128 cells */
        {1 + 0x0a, 0xa6},      /* register A with UIP set */
        {1 + 128 + 8, 0},      /* month 0 */
        {1 + 128 + 8, 13},     /* month 13 */
        {1 + 128 + 8 + 1, 32}, /* day 32 */
        {1 + 128 + 8 + 2, 24}, /* hour 24 */
        {1 + 128 + 8 + 4, 60}, /* second 60 */
        {1 + 128 + 7, 0x80},   /* a negative year */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t old = st.buf[bad[i].at];
        st.buf[bad[i].at] = bad[i].v;
        struct device *r;
        ck_assert_int_eq(restore(&st, &r), -EINVAL);
        r->ops->destroy(r);
        st.buf[bad[i].at] = old;
    }
    struct device *r;
    st.len--;
    ck_assert_int_eq(restore(&st, &r), -EINVAL);
    r->ops->destroy(r);
    st.len++;
    uint8_t extra = 0;
    state_put(&st, &extra, 1);
    ck_assert_int_eq(restore(&st, &r), -EINVAL);
    r->ops->destroy(r);
    state_free(&st);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("rtc");
    TCase *tc = tcase_create("device");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_cmos_facts);
    tcase_add_test(tc, test_save_restore);
    tcase_add_test(tc, test_clock_continues_from_the_snapshot);
    tcase_add_test(tc, test_frozen_clock);
    tcase_add_test(tc, test_restore_hostile);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
